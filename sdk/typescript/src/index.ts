/**
 * Cornjacket TypeScript SDK: typed gRPC clients for every service through Envoy, with
 * retries on UNAVAILABLE, deadlines and bearer tokens, plus the HTTP/JSON ingest route.
 */
import {
  create,
  fromJson,
  type DescField,
  type DescMessage,
  type JsonObject,
  type Message,
  type MessageShape,
} from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, ValueSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { randomUUID } from "node:crypto";

import {
  ActionService,
  BreakerSchema,
  DeliverySchema,
  ListDeliveriesResponseSchema,
  ListRulesResponseSchema,
  ReplayDeliveriesResponseSchema,
  RuleSchema,
  TestRuleResponseSchema,
} from "./gen/cornjacket/v1/actions_pb.js";
import { AuditService, ListAuditRecordsResponseSchema } from "./gen/cornjacket/v1/audit_pb.js";
import {
  DeadLetterSchema,
  DeadLetterService,
  DiscardDeadLettersResponseSchema,
  ListDeadLettersResponseSchema,
  ReplayDeadLettersResponseSchema,
} from "./gen/cornjacket/v1/dlq_pb.js";
import {
  InferenceService,
  ListAnomaliesResponseSchema,
  ListScoresResponseSchema,
  ModelStatusSchema,
} from "./gen/cornjacket/v1/inference_pb.js";
import {
  IngestEventRequestSchema,
  IngestionService,
  type IngestEventRequest,
} from "./gen/cornjacket/v1/ingestion_pb.js";
import { LineageService } from "./gen/cornjacket/v1/lineage_pb.js";
import { QueryService } from "./gen/cornjacket/v1/query_pb.js";
import { GetSeriesResponseSchema, SeriesService } from "./gen/cornjacket/v1/series_pb.js";
import { StatsSchema, StatsService } from "./gen/cornjacket/v1/stats_pb.js";
import type { EventEnvelope } from "./gen/cornjacket/v1/events_pb.js";
import type { Projection } from "./gen/cornjacket/v1/query_pb.js";
import { WatchEndReason, WatchService } from "./gen/cornjacket/v1/watch_pb.js";

export * from "./gen/cornjacket/v1/actions_pb.js";
export * from "./gen/cornjacket/v1/audit_pb.js";
export * from "./gen/cornjacket/v1/dlq_pb.js";
export * from "./gen/cornjacket/v1/events_pb.js";
export * from "./gen/cornjacket/v1/inference_pb.js";
export * from "./gen/cornjacket/v1/ingestion_pb.js";
export * from "./gen/cornjacket/v1/lineage_pb.js";
export * from "./gen/cornjacket/v1/query_pb.js";
export * from "./gen/cornjacket/v1/series_pb.js";
export * from "./gen/cornjacket/v1/stats_pb.js";
export * from "./gen/cornjacket/v1/watch_pb.js";

export interface Options {
  /** Envoy's address, e.g. "http://127.0.0.1:8080" (https:// for TLS). */
  baseUrl: string;
  /** Sent as "authorization: Bearer <token>" on every call. */
  token?: string;
  /** Deadline per call (default 10 s). */
  timeoutMs?: number;
  /** Retries after UNAVAILABLE, with exponential backoff from 100 ms (default 3). */
  retries?: number;
}

export interface Cornjacket {
  ingestion: Client<typeof IngestionService>;
  query: Client<typeof QueryService>;
  deadLetters: Client<typeof DeadLetterService>;
  lineage: Client<typeof LineageService>;
  actions: Client<typeof ActionService>;
  audit: Client<typeof AuditService>;
  series: Client<typeof SeriesService>;
  inference: Client<typeof InferenceService>;
  watch: Client<typeof WatchService>;
  stats: Client<typeof StatsService>;
}

/** Clients for every service, sharing one HTTP/2 connection to Envoy. */
export function connect(options: Options): Cornjacket {
  const interceptors: Interceptor[] = [typedErrors, retryUnavailable(options.retries ?? 3)];
  if (options.token) {
    const value = `Bearer ${options.token}`;
    interceptors.push((next) => (req) => {
      req.header.set("authorization", value);
      return next(req);
    });
  }
  const transport = createGrpcTransport({
    baseUrl: options.baseUrl,
    interceptors,
    defaultTimeoutMs: options.timeoutMs ?? 10_000,
  });
  return {
    ingestion: createClient(IngestionService, transport),
    query: createClient(QueryService, transport),
    deadLetters: createClient(DeadLetterService, transport),
    lineage: createClient(LineageService, transport),
    actions: createClient(ActionService, transport),
    audit: createClient(AuditService, transport),
    series: createClient(SeriesService, transport),
    inference: createClient(InferenceService, transport),
    watch: createClient(WatchService, transport),
    stats: createClient(StatsService, transport),
  };
}

/**
 * Calls that must not be sent twice: each makes something new or acts on what it finds (a
 * second rule, the next dead letters replayed, a delete or discard answered NotFound after
 * it worked). Through Envoy, UNAVAILABLE does not mean nothing was done: a route timeout
 * (504) and an upstream reset after the request went out (503) both reach the client as
 * UNAVAILABLE while the service may have committed. These throw Unavailable at once.
 */
const NOT_RETRIED = new Set([
  "cornjacket.v1.ActionService/CreateRule",
  "cornjacket.v1.ActionService/DeleteRule",
  "cornjacket.v1.ActionService/ReplayDeliveries",
  "cornjacket.v1.ActionService/DiscardDelivery",
  "cornjacket.v1.DeadLetterService/ReplayDeadLetters",
  "cornjacket.v1.DeadLetterService/DiscardDeadLetters",
  "cornjacket.v1.InferenceService/ResetModel",
]);

/**
 * UNAVAILABLE: retried for reads and updates that leave the same state when repeated (use
 * idempotency keys for ingest), not for NOT_RETRIED. Unary calls only: a stream's request is
 * an iterable the first attempt has consumed (a re-send would go out empty), and a
 * WatchStream reopens by itself from its position.
 */
function retryUnavailable(retries: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream || NOT_RETRIED.has(`${req.service.typeName}/${req.method.name}`)) return next(req);
    req = { ...req, message: withIdempotencyKeys(req.service.typeName, req.method.name, req.message) };
    for (let attempt = 0; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code !== Code.Unavailable || attempt >= retries) throw err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  };
}

/**
 * An ingest without an idempotency key gets a random one before its first attempt, so a
 * re-send after UNAVAILABLE (which through Envoy can follow a commit: a route timeout, a
 * reset after the request went out) is answered "duplicate" instead of stored twice.
 */
function withIdempotencyKeys<T>(service: string, method: string, message: T): T {
  if (service !== IngestionService.typeName) return message;
  // Copies: the caller's request is left as it was (a request object reused for the next
  // event must not carry this one's key: ingestion would answer it "duplicate").
  const keyed = (r: IngestEventRequest): IngestEventRequest =>
    r.idempotencyKey ? r : { ...r, idempotencyKey: randomUUID() };
  if (method === "IngestEvent") return keyed(message as IngestEventRequest) as T;
  if (method === "IngestEvents") {
    const batch = message as { events?: IngestEventRequest[] };
    return { ...batch, events: (batch.events ?? []).map(keyed) } as T;
  }
  return message;
}

export interface EventOptions {
  eventTime?: Date;
  traceId?: string;
  idempotencyKey?: string;
}

/** Build an ingest request from plain values (the payload is any JSON object). */
export function event(
  eventType: string,
  aggregateId: string,
  payload: JsonObject,
  opts: EventOptions = {},
): IngestEventRequest {
  return create(IngestEventRequestSchema, {
    eventType,
    aggregateId,
    payload: fromJson(ValueSchema, payload),
    eventTime: opts.eventTime ? timestampFromDate(opts.eventTime) : undefined,
    traceId: opts.traceId ?? "",
    idempotencyKey: opts.idempotencyKey ?? "",
  });
}

/** POST /api/v1/events over HTTP/JSON; resolves to the answer or throws with the message. */
export async function ingestJson(
  baseUrl: string,
  body: { event_type: string; aggregate_id: string; payload: JsonObject; event_time?: string },
  init: { token?: string; idempotencyKey?: string } = {},
): Promise<{ event_id: string; status: string }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.idempotencyKey) headers["idempotency-key"] = init.idempotencyKey;
  const r = await fetch(new URL("/api/v1/events", baseUrl), {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const answer = (await r.json()) as { event_id: string; status: string; message?: string };
  if (r.status !== 202) throw new Error(`ingest failed (${r.status}): ${answer.message ?? ""}`);
  return answer;
}

// --- plain answers: one converter over the message's schema ----------------------------------

/**
 * What a typed helper resolves to: the message's fields without `$typeName`/`$unknown`,
 * Timestamps as Dates (undefined when unset), Structs as plain JSON objects (as protobuf-es
 * has them), repeated fields as arrays, maps as objects, unset message fields undefined,
 * enums as their TypeScript enum values, 64-bit integers as bigint (as protobuf-es has them).
 */
export type Plain<T> = T extends Timestamp
  ? Date
  : T extends Uint8Array
    ? T
    : T extends readonly (infer U)[]
      ? Plain<U>[]
      : T extends Message
        ? { [K in keyof T as K extends "$typeName" | "$unknown" ? never : K]: Plain<T[K]> }
        : T extends { case: infer C; value: infer V }
          ? { case: C; value: Plain<V> }
          : T;
/** The plain form of a schema's messages, e.g. `PlainOf<typeof RuleSchema>`. */
export type PlainOf<S extends DescMessage> = Plain<MessageShape<S>>;

const KEEP = new Set([
  "google.protobuf.Struct",
  "google.protobuf.Value",
  "google.protobuf.ListValue",
]);

function plainValue(desc: DescMessage | undefined, value: unknown): unknown {
  if (value === undefined || desc === undefined) return value;
  if (desc.typeName === "google.protobuf.Timestamp") return timestampDate(value as Timestamp);
  if (KEEP.has(desc.typeName) || desc.typeName.startsWith("google.protobuf.")) return value;
  return plainMessage(desc, value as Record<string, unknown>);
}

function plainField(field: DescField, value: unknown): unknown {
  switch (field.fieldKind) {
    case "message":
      return plainValue(field.message, value);
    case "list":
      return (value as unknown[]).map((v) => (field.listKind === "message" ? plainValue(field.message, v) : v));
    case "map": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>))
        out[k] = field.mapKind === "message" ? plainValue(field.message, v) : v;
      return out;
    }
    default:
      return value;
  }
}

function plainMessage(desc: DescMessage, msg: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const member of desc.members) {
    const value = msg[member.localName];
    if (member.kind === "oneof") {
      const chosen = value as { case?: string; value?: unknown };
      const field = member.fields.find((f) => f.localName === chosen.case);
      out[member.localName] = field ? { case: chosen.case, value: plainField(field, chosen.value) } : { case: undefined };
    } else {
      out[member.localName] = plainField(member, value);
    }
  }
  return out;
}

/** The plain form of any answer, e.g. `plain(RuleSchema, await cj.actions.getRule({ ruleId }))`. */
export function plain<S extends DescMessage>(schema: S, message: MessageShape<S>): PlainOf<S> {
  return plainMessage(schema, message as unknown as Record<string, unknown>) as PlainOf<S>;
}

const rfc3339 = (t: Date | string) => (typeof t === "string" ? t : t.toISOString());

export interface AuditQuery {
  /** RFC 3339 bounds on when a call began: from <= at < to. */
  from?: string;
  to?: string;
  /** 1..100 (default 20). */
  pageSize?: number;
  /** nextPageToken of the previous page. */
  pageToken?: string;
}

/** One page of the audit log (admin calls, oldest first); needs the admin scope. */
export async function listAudit(cj: Cornjacket, q: AuditQuery = {}): Promise<PlainOf<typeof ListAuditRecordsResponseSchema>> {
  const r = await cj.audit.listAuditRecords({
    fromTime: q.from ?? "",
    toTime: q.to ?? "",
    pageSize: q.pageSize,
    pageToken: q.pageToken ?? "",
  });
  return plain(ListAuditRecordsResponseSchema, r);
}

export interface SeriesQuery {
  device: string;
  metric: string;
  /** [start, end): Dates or RFC 3339 text with a zone. */
  start: Date | string;
  end: Date | string;
  /** 1s..1d, e.g. "10s", "1m", "1h" (default "1m"). */
  bucket?: string;
  /** Only these columns, e.g. ["avg"] (count, sum, min, max, avg, first, last; default all). */
  aggregates?: string[];
}

/** A device's metric in buckets with count, sum, min, max, avg, first, last; needs read. */
export async function getSeries(cj: Cornjacket, q: SeriesQuery): Promise<PlainOf<typeof GetSeriesResponseSchema>> {
  const r = await cj.series.getSeries({
    device: q.device,
    metric: q.metric,
    start: rfc3339(q.start),
    end: rfc3339(q.end),
    bucket: q.bucket ?? "1m",
    aggregates: q.aggregates ?? [],
  });
  return plain(GetSeriesResponseSchema, r);
}
// --- anomaly detection (issue 18) ---------------------------------------------------------

export interface PageQuery {
  /** 1..1000 (default 100). */
  pageSize?: number;
  /** nextPageToken of the previous page. */
  pageToken?: string;
}

/** A device's scores, oldest first (read scope). */
export async function listScores(
  cj: Cornjacket,
  device: string,
  q: PageQuery & { metric?: string } = {},
): Promise<PlainOf<typeof ListScoresResponseSchema>> {
  const r = await cj.inference.listScores({
    device,
    metric: q.metric ?? "",
    pageSize: q.pageSize ?? 0,
    pageToken: q.pageToken ?? "",
  });
  return plain(ListScoresResponseSchema, r);
}

/** Anomalies newest first, of one device or (device "") of all (read scope). */
export async function listAnomalies(
  cj: Cornjacket,
  q: PageQuery & { device?: string } = {},
): Promise<PlainOf<typeof ListAnomaliesResponseSchema>> {
  const r = await cj.inference.listAnomalies({
    device: q.device ?? "",
    pageSize: q.pageSize ?? 0,
    pageToken: q.pageToken ?? "",
  });
  return plain(ListAnomaliesResponseSchema, r);
}

/** The models of a device, one per metric (read scope). */
export async function modelStatus(cj: Cornjacket, device: string): Promise<PlainOf<typeof ModelStatusSchema>> {
  return plain(ModelStatusSchema, await cj.inference.getModelStatus({ device }));
}

/** Forget a device's models (admin scope); resolves to how many were reset. */
export async function resetModel(cj: Cornjacket, device: string, metric = ""): Promise<number> {
  return (await cj.inference.resetModel({ device, metric })).reset;
}

// --- the SDK's errors -----------------------------------------------------------------------

/**
 * A failed call. Still a ConnectError (code, rawMessage), so older catch blocks keep working.
 * `instanceof` on the SDK's classes follows the prototype chain: ConnectError's own
 * Symbol.hasInstance (inherited by subclasses) answers true for any ConnectError-shaped
 * value, which made every error an instance of every class (NotFound caught a 403).
 */
export class CornjacketError extends ConnectError {
  static override [Symbol.hasInstance](v: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, v);
  }
}
/** The request was refused as it is (HTTP 400); do not retry it unchanged. */
export class InvalidArgument extends CornjacketError {}
export class NotFound extends CornjacketError {}
export class AlreadyExists extends CornjacketError {}
/** Not in a state that allows this (e.g. a stream position the bus no longer keeps). */
export class FailedPrecondition extends CornjacketError {}
/** No valid token (HTTP 401). */
export class Unauthenticated extends CornjacketError {}
/** The token's scopes do not allow this (HTTP 403). */
export class PermissionDenied extends CornjacketError {}
/** Too many calls or every stream slot taken (HTTP 429); retryAfterMs when the edge said. */
export class RateLimited extends CornjacketError {
  retryAfterMs?: number;
}
/** Unreachable, starting or stopping (or the deadline passed): retry later. */
export class Unavailable extends CornjacketError {}
/** The server cut the call off (e.g. a stream read too slowly): retry or resume. */
export class Aborted extends CornjacketError {}

const ERRORS: Partial<Record<Code, typeof CornjacketError>> = {
  [Code.InvalidArgument]: InvalidArgument,
  [Code.OutOfRange]: InvalidArgument,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.Unauthenticated]: Unauthenticated,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.Unavailable]: Unavailable,
  [Code.DeadlineExceeded]: Unavailable,
  [Code.Aborted]: Aborted,
};

/** The SDK's error for anything a call threw. */
export function toCornjacketError(e: unknown): CornjacketError {
  if (e instanceof CornjacketError) return e;
  const err = ConnectError.from(e);
  if (err.code === Code.ResourceExhausted) {
    const limited = new RateLimited(err.rawMessage, err.code, err.metadata, undefined, err.cause);
    const after = Number(err.metadata.get("retry-after"));
    if (err.metadata.has("retry-after") && Number.isFinite(after)) limited.retryAfterMs = after * 1000;
    return limited;
  }
  const Kind = ERRORS[err.code] ?? CornjacketError;
  return new Kind(err.rawMessage, err.code, err.metadata, undefined, err.cause);
}

const typedErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    throw toCornjacketError(e);
  }
};

// --- live streams (issue 19) ----------------------------------------------------------------

/** An event as plain values: dates are Dates, the payload a JSON object. */
export interface PlainEvent {
  eventId: string;
  eventType: string;
  aggregateId: string;
  eventTime?: Date;
  ingestedAt?: Date;
  payload: JsonObject;
  traceId: string;
  source: string;
}

/** A projection as plain values: its state a JSON object. */
export interface PlainProjection {
  projectionId: string;
  projectionType: string;
  aggregateId: string;
  state: JsonObject;
  lastEventId: string;
  lastEventTimestamp?: Date;
  updatedAt?: Date;
}

const date = (t?: Timestamp) => (t ? timestampDate(t) : undefined);
// google.protobuf.Struct is a plain JSON object in protobuf-es already.
const json = (s?: JsonObject): JsonObject => s ?? {};

export function plainEvent(e: EventEnvelope): PlainEvent {
  return {
    eventId: e.eventId,
    eventType: e.eventType,
    aggregateId: e.aggregateId,
    eventTime: date(e.eventTime),
    ingestedAt: date(e.ingestedAt),
    payload: json(e.payload),
    traceId: e.metadata?.traceId ?? "",
    source: e.metadata?.source ?? "",
  };
}

export function plainProjection(p: Projection): PlainProjection {
  return {
    projectionId: p.projectionId,
    projectionType: p.projectionType,
    aggregateId: p.aggregateId,
    state: json(p.state),
    lastEventId: p.lastEventId,
    lastEventTimestamp: date(p.lastEventTimestamp),
    updatedAt: date(p.updatedAt),
  };
}

type WatchMessage = {
  position: string;
  item: { case: string | undefined; value?: unknown };
};

/**
 * A live stream: `for await (const ev of stream)`. `position` is where it stands (after the
 * last item handed out): pass it back to resume. A stream the server ends (too slow,
 * shutting down) or a lost connection is reopened from there when `resume` is on (default);
 * one ended for its age (the server's CJ_WATCH_MAX_DURATION) at once, without a backoff and
 * without counting as a failure.
 * A projection stream cut off while sending the current state starts it again; a stream
 * refused because every watcher slot is taken (RateLimited) is retried the same way, with a
 * backoff. After 5 reopenings in a row without progress (no item, no second heartbeat) the
 * stream throws its last failure: Aborted for a client cut off as too slow again and again.
 * Errors of the request or token (FailedPrecondition for an expired position, 401, 403, 400)
 * are thrown at once.
 */
export class WatchStream<T> implements AsyncIterable<T> {
  position: string;
  /** A projection stream has sent the whole current state (then come changes). */
  current: boolean;
  /** Why the server last ended the stream, if it did. */
  end?: { reason: "too_slow" | "shutdown" | "max_duration" | "unspecified"; message: string };
  private readonly abort = new AbortController();

  constructor(
    private readonly open: (position: string, signal: AbortSignal) => AsyncIterable<WatchMessage>,
    private readonly pick: (msg: WatchMessage) => T,
    opts: { position?: string; snapshot?: boolean; resume?: boolean; retryDelayMs?: number } = {},
  ) {
    this.retryDelayMs = opts.retryDelayMs ?? 100;
    this.position = opts.position ?? "";
    this.current = !opts.snapshot;
    this.resume = opts.resume ?? true;
  }

  private readonly resume: boolean;
  /** First backoff before a reopening (doubling up to 20 times this). */
  private readonly retryDelayMs: number;

  cancel(): void {
    this.abort.abort();
  }

  private raw?: AsyncGenerator<T | undefined>;
  private readonly ahead: T[] = [];

  /** Open the stream and wait for its first message (the server has its position then: an
   * event sent after this is on the stream); resolves to the position. */
  async start(): Promise<string> {
    if (!this.raw) {
      this.raw = this.run();
      const first = await this.raw.next();
      if (!first.done && first.value !== undefined) this.ahead.push(first.value);
    }
    return this.position;
  }

  /** Leaving a `for await` early (break, throw) cancels the stream. */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    this.raw ??= this.run();
    try {
      while (this.ahead.length) yield this.ahead.shift() as T;
      for (;;) {
        const next = await this.raw.next();
        if (next.done) return;
        if (next.value !== undefined) yield next.value;
      }
    } finally {
      this.cancel();
      await this.raw.return(undefined);
    }
  }

  private async *run(): AsyncGenerator<T | undefined> {
    // Reopenings in a row without progress: an item handed out, or a heartbeat after the
    // stream's first (it stayed open a heartbeat interval). Every stream starts with a
    // heartbeat, so that one alone is not progress: a client cut off again and again is told.
    let failures = 0;
    while (!this.abort.signal.aborted) {
      const call = new AbortController();
      const onAbort = () => call.abort();
      this.abort.signal.addEventListener("abort", onAbort);
      let failure: CornjacketError | undefined;
      let aged = false;
      try {
        let heartbeats = 0;
        for await (const msg of this.open(this.current ? this.position : "", call.signal)) {
          const kind = msg.item.case;
          if (kind === "end") {
            const end = msg.item.value as { reason: WatchEndReason; message: string };
            this.position = msg.position || this.position;
            const reason = END_REASONS[end.reason] ?? "unspecified";
            this.end = { reason, message: end.message };
            if (reason === "max_duration") {
              aged = true; // the stream's age, not a failure: reopened at once
              break;
            }
            const text = `the server ended the stream (${reason}): ${end.message}`;
            failure = reason === "shutdown" ? new Unavailable(text, Code.Unavailable) : new Aborted(text, Code.Aborted);
            break;
          }
          if (msg.position && (this.current || kind === "heartbeat")) this.position = msg.position;
          if (kind === "heartbeat") {
            if (heartbeats++ > 0) failures = 0;
            this.current = true;
            yield undefined; // (start() waits for a first message of any kind)
            continue;
          }
          failures = 0;
          yield this.pick(msg);
        }
        // Ended by the server without a WatchEnd: done. With one: reopen from the position.
        if (aged && this.resume) continue;
        if (failure === undefined || !this.resume) return;
      } catch (e) {
        if (this.abort.signal.aborted) return;
        failure = toCornjacketError(e);
        if (!this.resume || !RETRYABLE.has(failure.code)) throw failure;
      } finally {
        this.abort.signal.removeEventListener("abort", onAbort);
        call.abort();
      }
      if (failures >= MAX_REOPENS) throw failure;
      failures++;
      let wait = Math.min(20 * this.retryDelayMs, this.retryDelayMs * 2 ** failures);
      if (failure instanceof RateLimited && failure.retryAfterMs) wait = Math.max(wait, failure.retryAfterMs);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

const END_REASONS: Partial<Record<WatchEndReason, "too_slow" | "shutdown" | "max_duration">> = {
  [WatchEndReason.TOO_SLOW]: "too_slow",
  [WatchEndReason.SHUTDOWN]: "shutdown",
  [WatchEndReason.MAX_DURATION]: "max_duration",
};

/** Stream failures worth reopening for: nothing wrong with the request or the token. */
const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.ResourceExhausted]);
/** Reopenings in a row without progress before a stream raises its last failure. */
const MAX_REOPENS = 5;

export interface WatchEventsQuery {
  /** Only events whose type starts with this, e.g. "sensor." */
  eventTypePrefix?: string;
  /** Only this aggregate's events. */
  aggregateId?: string;
  /** Resume after this position (a stream's `position`); default: from now. */
  position?: string;
  /** Reopen by itself after a server end or a lost connection (default true). */
  resume?: boolean;
}

/** Events as they reach the bus: `for await (const ev of watchEvents(cj, {...}))`. Read scope. */
export function watchEvents(cj: Cornjacket, q: WatchEventsQuery = {}): WatchStream<PlainEvent> {
  return new WatchStream(
    (position, signal) =>
      cj.watch.watchEvents(
        { eventTypePrefix: q.eventTypePrefix ?? "", aggregateId: q.aggregateId ?? "", position },
        { signal, timeoutMs: 0 },
      ) as AsyncIterable<WatchMessage>,
    (msg) => plainEvent(msg.item.value as EventEnvelope),
    { position: q.position, resume: q.resume },
  );
}

/** One projection (or every one of a type): the current state first, then each change. */
export function watchProjection(
  cj: Cornjacket,
  projectionType: string,
  q: { aggregateId?: string; position?: string; resume?: boolean } = {},
): WatchStream<PlainProjection> {
  return new WatchStream(
    (position, signal) =>
      cj.watch.watchProjection(
        { projectionType, aggregateId: q.aggregateId ?? "", position },
        { signal, timeoutMs: 0 },
      ) as AsyncIterable<WatchMessage>,
    (msg) => plainProjection(msg.item.value as Projection),
    { position: q.position, snapshot: !q.position, resume: q.resume },
  );
}

// --- plain answers for the query API ------------------------------------------------------

/** A projection as plain values (state a JSON object, Dates); NotFound when there is none. */
export async function getProjection(
  cj: Cornjacket,
  projectionType: string,
  aggregateId: string,
): Promise<PlainProjection> {
  return plainProjection(await cj.query.getProjection({ projectionType, aggregateId }));
}

/** One page of a type's projections as plain values. */
export async function listProjections(
  cj: Cornjacket,
  projectionType: string,
  q: { limit?: number; offset?: number } = {},
): Promise<{ projections: PlainProjection[]; total: number; limit: number; offset: number }> {
  const r = await cj.query.listProjections({ projectionType, limit: q.limit, offset: q.offset ?? 0 });
  return { projections: r.projections.map(plainProjection), total: r.total, limit: r.limit, offset: r.offset };
}

// --- rules, deliveries, breakers, dead letters (admin scope), stats (read) ------------------

export type PlainRule = PlainOf<typeof RuleSchema>;
export type PlainDelivery = PlainOf<typeof DeliverySchema>;
export type PlainDeadLetter = PlainOf<typeof DeadLetterSchema>;
export type PlainStats = PlainOf<typeof StatsSchema>;

export interface RuleTarget {
  /** http:// or https:// URL the matching events are posted to. */
  url: string;
  /** Extra request headers (strings). */
  headers?: JsonObject;
  /** "whsec_..." signing secrets; none: the service generates one (`generatedSecret`, once). */
  secrets?: string[];
}

export interface NewRule extends RuleTarget {
  name: string;
  /** "sensor.reading" (exact), "sensor.*" (prefix) or "*". */
  eventTypePattern: string;
  /** e.g. `payload.value > 80 and payload.unit == "C"`; a bad one: InvalidArgument with its position. */
  condition?: string;
  /** Default true. */
  enabled?: boolean;
}

const target = (t: RuleTarget) => ({ url: t.url, headers: t.headers, secrets: t.secrets ?? [] });

/** Create a webhook rule (admin scope). */
export async function createRule(cj: Cornjacket, rule: NewRule): Promise<PlainRule> {
  const r = await cj.actions.createRule({
    name: rule.name,
    eventTypePattern: rule.eventTypePattern,
    condition: rule.condition ?? "",
    target: target(rule),
    enabled: rule.enabled ?? true,
  });
  return plain(RuleSchema, r);
}

/** A rule by id (admin scope); NotFound when there is none. */
export async function getRule(cj: Cornjacket, ruleId: string): Promise<PlainRule> {
  return plain(RuleSchema, await cj.actions.getRule({ ruleId }));
}

/** A page of rules (admin scope); limit 1..100 (default 20). */
export async function listRules(
  cj: Cornjacket,
  q: { limit?: number; offset?: number } = {},
): Promise<PlainOf<typeof ListRulesResponseSchema>> {
  return plain(ListRulesResponseSchema, await cj.actions.listRules({ limit: q.limit, offset: q.offset ?? 0 }));
}

/** Change the fields given (admin scope): condition "" removes it; a `target` replaces the
 * old one (empty secrets keep the current ones). */
export async function updateRule(
  cj: Cornjacket,
  ruleId: string,
  change: { name?: string; eventTypePattern?: string; condition?: string; target?: RuleTarget },
): Promise<PlainRule> {
  const r = await cj.actions.updateRule({
    ruleId,
    name: change.name,
    eventTypePattern: change.eventTypePattern,
    condition: change.condition,
    target: change.target ? target(change.target) : undefined,
  });
  return plain(RuleSchema, r);
}

/** Enable a rule (admin scope). */
export async function enableRule(cj: Cornjacket, ruleId: string): Promise<PlainRule> {
  return plain(RuleSchema, await cj.actions.enableRule({ ruleId }));
}

/** Disable a rule (admin scope); `reason` is kept as its disabledReason. */
export async function disableRule(cj: Cornjacket, ruleId: string, reason = ""): Promise<PlainRule> {
  return plain(RuleSchema, await cj.actions.disableRule({ ruleId, reason }));
}

/** Delete a rule with its deliveries (admin scope). */
export async function deleteRule(cj: Cornjacket, ruleId: string): Promise<void> {
  await cj.actions.deleteRule({ ruleId });
}

export interface SampleEvent {
  eventType: string;
  aggregateId?: string;
  payload?: JsonObject;
  /** "http", "grpc", "mqtt" or "ai". */
  source?: string;
}

/** Whether a sample event would match a rule (admin scope): an existing one (`ruleId`) or a
 * pattern and condition given inline. Nothing is stored or sent. */
export async function testRule(
  cj: Cornjacket,
  sample: SampleEvent,
  rule: { ruleId?: string; eventTypePattern?: string; condition?: string },
): Promise<PlainOf<typeof TestRuleResponseSchema>> {
  const r = await cj.actions.testRule({
    ruleId: rule.ruleId ?? "",
    eventTypePattern: rule.eventTypePattern ?? "",
    condition: rule.condition ?? "",
    event: {
      eventType: sample.eventType,
      aggregateId: sample.aggregateId ?? "",
      payload: sample.payload ?? {},
      metadata: { source: sample.source ?? "" },
    },
  });
  return plain(TestRuleResponseSchema, r);
}

export interface DeliveryQuery {
  ruleId?: string;
  /** e.g. "failed" (the webhook DLQ), "delivered", "pending", "discarded". */
  status?: string;
  eventId?: string;
  /** Dates or RFC 3339 text. */
  since?: Date | string;
  until?: Date | string;
  limit?: number;
  offset?: number;
}

/** Deliveries newest first, with their attempts (admin scope). */
export async function listDeliveries(
  cj: Cornjacket,
  q: DeliveryQuery = {},
): Promise<PlainOf<typeof ListDeliveriesResponseSchema>> {
  const r = await cj.actions.listDeliveries({
    ruleId: q.ruleId ?? "",
    status: q.status ?? "",
    eventId: q.eventId ?? "",
    since: q.since ? rfc3339(q.since) : "",
    until: q.until ? rfc3339(q.until) : "",
    limit: q.limit,
    offset: q.offset ?? 0,
  });
  return plain(ListDeliveriesResponseSchema, r);
}

/** A delivery with its attempts (admin scope). */
export async function getDelivery(cj: Cornjacket, deliveryId: string): Promise<PlainDelivery> {
  return plain(DeliverySchema, await cj.actions.getDelivery({ deliveryId }));
}

/** Send failed (or discarded) deliveries again (admin scope): the ids given, or every
 * failed one (of `ruleId`, if given) with `allFailed`. */
export async function replayDeliveries(
  cj: Cornjacket,
  q: { deliveryIds?: string[]; allFailed?: boolean; ruleId?: string },
): Promise<PlainOf<typeof ReplayDeliveriesResponseSchema>> {
  const r = await cj.actions.replayDeliveries({
    deliveryIds: q.deliveryIds ?? [],
    allFailed: q.allFailed ?? false,
    ruleId: q.ruleId ?? "",
  });
  return plain(ReplayDeliveriesResponseSchema, r);
}

/** Give up on a failed delivery for good (admin scope). */
export async function discardDelivery(cj: Cornjacket, deliveryId: string): Promise<PlainDelivery> {
  return plain(DeliverySchema, await cj.actions.discardDelivery({ deliveryId }));
}

/** The circuit breakers, one per endpoint (admin scope). */
export async function listBreakers(cj: Cornjacket): Promise<PlainOf<typeof BreakerSchema>[]> {
  return (await cj.actions.listBreakers({})).breakers.map((b) => plain(BreakerSchema, b));
}

export interface DeadLetterQuery {
  /** "pending", "replayed" or "discarded". */
  status?: string;
  consumer?: string;
  limit?: number;
  offset?: number;
}

/** Dead letters newest first (admin scope). */
export async function listDeadLetters(
  cj: Cornjacket,
  q: DeadLetterQuery = {},
): Promise<PlainOf<typeof ListDeadLettersResponseSchema>> {
  const r = await cj.deadLetters.listDeadLetters({
    filter: { status: q.status ?? "", consumer: q.consumer ?? "" },
    limit: q.limit,
    offset: q.offset ?? 0,
  });
  return plain(ListDeadLettersResponseSchema, r);
}

/** A dead letter by id (admin scope). */
export async function getDeadLetter(cj: Cornjacket, dlqId: string): Promise<PlainDeadLetter> {
  return plain(DeadLetterSchema, await cj.deadLetters.getDeadLetter({ dlqId }));
}

/** Send pending dead letters to their consumer again (admin scope): the ids given, or without
 * ids the pending ones of `consumer` (at most `limit`, default 100). */
export async function replayDeadLetters(
  cj: Cornjacket,
  q: { dlqIds?: string[]; consumer?: string; limit?: number },
): Promise<PlainOf<typeof ReplayDeadLettersResponseSchema>> {
  const r = await cj.deadLetters.replayDeadLetters({
    dlqIds: q.dlqIds ?? [],
    filter: { consumer: q.consumer ?? "" },
    limit: q.limit,
  });
  return plain(ReplayDeadLettersResponseSchema, r);
}

/** Give up on pending dead letters (admin scope). */
export async function discardDeadLetters(
  cj: Cornjacket,
  dlqIds: string[],
): Promise<PlainOf<typeof DiscardDeadLettersResponseSchema>> {
  return plain(DiscardDeadLettersResponseSchema, await cj.deadLetters.discardDeadLetters({ dlqIds }));
}

/** The console overview's figures (read scope): ingest rate, outbox depth, consumer lag, dead
 * letters pending, failed deliveries; `unavailable` names what could not be measured. */
export async function getStats(cj: Cornjacket): Promise<PlainStats> {
  return plain(StatsSchema, await cj.stats.getStats({}));
}
