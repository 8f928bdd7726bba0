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

/** The scopes a token claims, decoded for display only (the edge verifies and enforces). */
export function tokenScopes(token: string): Set<string> {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const scope = (JSON.parse(json) as { scope?: unknown }).scope;
    return new Set(typeof scope === "string" ? scope.split(" ").filter(Boolean) : []);
  } catch {
    return new Set();
  }
}

type Params = Record<string, string | number | boolean | undefined>;

function query(params: Params = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** One call of the public HTTP/JSON API; a non-2xx answer throws ApiError with its message. */
export async function call<T>(
  token: string,
  method: string,
  path: string,
  params?: Params,
  body?: unknown,
): Promise<T> {
  const init: RequestInit = { method, headers: headers(token) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...headers(token), "content-type": "application/json" };
  }
  const r = await fetch(`${path}${query(params)}`, init);
  if (!r.ok) await fail(r);
  return (await r.json()) as T;
}

export const get = <T>(token: string, path: string, params?: Params) =>
  call<T>(token, "GET", path, params);
export const post = <T>(token: string, path: string, body: unknown = {}) =>
  call<T>(token, "POST", path, undefined, body);

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

// The shapes the pages read (gen/openapi/openapi.json has them all).
export interface LineageHop {
  stage: string;
  status: string;
  at?: string;
  detail?: string;
}
export interface EventLineage {
  event_id: string;
  event?: EventEnvelope;
  hops: LineageHop[];
}
export interface DeadLetter {
  dlq_id: string;
  consumer: string;
  event_id?: string;
  event_type?: string;
  aggregate_id?: string;
  error_message: string;
  failed_at: string;
  retry_count: number;
  status: string;
  size_bytes?: number;
}
export interface DeliveryAttempt {
  attempt: number;
  started_at: string;
  duration_ms: number;
  outcome: string;
  status_code?: number;
  error?: string;
  url?: string;
}
export interface Delivery {
  delivery_id: string;
  rule_id: string;
  event_id: string;
  event_type: string;
  target_url: string;
  status: string;
  attempt_count: number;
  next_attempt_at?: string;
  last_error?: string;
  created_at: string;
  updated_at?: string;
  delivered_at?: string;
  replay_count?: number;
  attempts?: DeliveryAttempt[];
}
export interface Rule {
  rule_id: string;
  name: string;
  event_type_pattern: string;
  condition?: string;
  target: { url: string; headers?: Record<string, string>; secrets?: string[] };
  enabled: boolean;
  disabled_reason?: string;
  created_at?: string;
  updated_at?: string;
  generated_secret?: string;
}
export interface Breaker {
  endpoint: string;
  state: string;
  consecutive_failures: number;
  retry_at?: string;
  updated_at?: string;
}
export interface AuditRecord {
  audit_id: string;
  owner: string;
  at: string;
  subject: string;
  request_id?: string;
  action: string;
  target?: string;
  change?: Record<string, unknown>;
  outcome: string;
  error?: string;
}
export interface Projection {
  projection_id: string;
  projection_type: string;
  aggregate_id: string;
  state: Record<string, unknown>;
  last_event_id: string;
  last_event_timestamp: string;
  updated_at: string;
}
export interface Page {
  total: number;
  limit: number;
  offset: number;
}
export interface LatestValue {
  metric: string;
  time: string;
  value: number;
}
export interface Series {
  origin?: string;
  bucket_seconds?: string | number;
  index?: (string | number)[];
  avg?: number[];
  min?: number[];
  max?: number[];
  source?: string;
}
export interface Anomaly {
  source_event_id: string;
  anomaly_event_id: string;
  device: string;
  metric: string;
  event_time: string;
  value: number;
  score: number;
  threshold: number;
}
// issue 19: the overview's figures (GET /api/v1/stats) and a rule tested against a sample
// event (POST /api/v1/rules:test). int64 fields come as strings in proto3 JSON.
export interface ConsumerLag {
  group: string;
  lag?: string | number;
  known?: boolean;
}
export interface Stats {
  measured_at: string;
  ingest_rate_per_second?: number;
  accepted_last_minute?: string | number;
  accepted_last_minute_capped?: boolean;
  outbox_depth?: string | number;
  outbox_depth_capped?: boolean;
  outbox_oldest_age_seconds?: number;
  consumer_lag?: ConsumerLag[];
  dead_letters_pending?: string | number;
  deliveries_failed?: string | number;
  unavailable?: string[];
}
export interface RuleTestResult {
  matched?: boolean;
  pattern_matched?: boolean;
  condition_matched?: boolean;
  event_type_pattern: string;
  condition?: string;
}
