// The console talks only to the public HTTP/JSON API, with the signed-in user's token.

const TOKEN_KEY = "cornjacket.token";

export function savedToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function saveToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function headers(token: string): HeadersInit {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export interface Health {
  status: string;
  unhealthy?: string[];
  message?: string;
  auth?: string;
  warning?: string;
}

export async function health(): Promise<Health> {
  const r = await fetch("/health");
  return (await r.json()) as Health;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function fail(r: Response): Promise<never> {
  let message = r.statusText;
  try {
    const body = (await r.json()) as { message?: string };
    message = body.message ?? message;
  } catch {
    // not JSON: keep the status text
  }
  throw new ApiError(r.status, message);
}

/** Checks a token against a read call: 401 invalid, 403 lacks the read scope. */
export async function checkToken(token: string): Promise<void> {
  const r = await fetch("/api/v1/projections/sensor_state?limit=1", { headers: headers(token) });
  if (!r.ok) await fail(r);
}

export interface EventEnvelope {
  event_id: string;
  event_type: string;
  aggregate_id: string;
  event_time: string;
  ingested_at: string;
  payload: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

export interface WatchMessage {
  event?: EventEnvelope;
  heartbeat?: Record<string, never>;
  end?: { reason: string; message: string };
  position: string;
}

export interface WatchFilter {
  event_type_prefix: string;
  aggregate_id: string;
}

/**
 * WatchEvents as Server-Sent Events. EventSource cannot send an Authorization header, so
 * the stream is read with fetch: each "data: {json}" line is one message.
 */
export async function watchEvents(
  token: string,
  filter: WatchFilter,
  position: string,
  onMessage: (m: WatchMessage) => void,
  signal: AbortSignal,
): Promise<void> {
  const q = new URLSearchParams();
  if (filter.event_type_prefix) q.set("event_type_prefix", filter.event_type_prefix);
  if (filter.aggregate_id) q.set("aggregate_id", filter.aggregate_id);
  if (position) q.set("position", position);
  const r = await fetch(`/api/v1/watch/events?${q}`, { headers: headers(token), signal });
  if (!r.ok || !r.body) await fail(r);
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trimEnd();
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("data:")) onMessage(JSON.parse(line.slice(5)) as WatchMessage);
    }
  }
}
