/**
 * Cornjacket TypeScript SDK: typed gRPC clients for every service through Envoy, with
 * retries on UNAVAILABLE, deadlines and bearer tokens, plus the HTTP/JSON ingest route.
 */
import { create, fromJson, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { ActionService } from "./gen/cornjacket/v1/actions_pb.js";
import { AuditService, type ListAuditRecordsResponse } from "./gen/cornjacket/v1/audit_pb.js";
import { DeadLetterService } from "./gen/cornjacket/v1/dlq_pb.js";
import {
  InferenceService,
  type ListAnomaliesResponse,
  type ListScoresResponse,
  type ModelStatus,
} from "./gen/cornjacket/v1/inference_pb.js";
import {
  IngestEventRequestSchema,
  IngestionService,
  type IngestEventRequest,
} from "./gen/cornjacket/v1/ingestion_pb.js";
import { LineageService } from "./gen/cornjacket/v1/lineage_pb.js";
import { QueryService } from "./gen/cornjacket/v1/query_pb.js";
import { SeriesService, type GetSeriesResponse } from "./gen/cornjacket/v1/series_pb.js";

export * from "./gen/cornjacket/v1/actions_pb.js";
export * from "./gen/cornjacket/v1/audit_pb.js";
export * from "./gen/cornjacket/v1/dlq_pb.js";
export * from "./gen/cornjacket/v1/events_pb.js";
export * from "./gen/cornjacket/v1/inference_pb.js";
export * from "./gen/cornjacket/v1/ingestion_pb.js";
export * from "./gen/cornjacket/v1/lineage_pb.js";
export * from "./gen/cornjacket/v1/query_pb.js";
export * from "./gen/cornjacket/v1/series_pb.js";

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
}

/** Clients for every service, sharing one HTTP/2 connection to Envoy. */
export function connect(options: Options): Cornjacket {
  const interceptors: Interceptor[] = [retryUnavailable(options.retries ?? 3)];
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
  };
}

/** UNAVAILABLE means nothing was accepted: safe to retry (use idempotency keys for ingest). */
function retryUnavailable(retries: number): Interceptor {
  return (next) => async (req) => {
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
export function listAudit(cj: Cornjacket, q: AuditQuery = {}): Promise<ListAuditRecordsResponse> {
  return cj.audit.listAuditRecords({
    fromTime: q.from ?? "",
    toTime: q.to ?? "",
    pageSize: q.pageSize,
    pageToken: q.pageToken ?? "",
  });
}

export interface SeriesQuery {
  device: string;
  metric: string;
  /** [start, end): Dates or RFC 3339 text with a zone. */
  start: Date | string;
  end: Date | string;
  /** 1s..1d, e.g. "10s", "1m", "1h" (default "1m"). */
  bucket?: string;
}

/** A device's metric in buckets with count, sum, min, max, avg, first, last; needs read. */
export function getSeries(cj: Cornjacket, q: SeriesQuery): Promise<GetSeriesResponse> {
  const text = (t: Date | string) => (typeof t === "string" ? t : t.toISOString());
  return cj.series.getSeries({
    device: q.device,
    metric: q.metric,
    start: text(q.start),
    end: text(q.end),
    bucket: q.bucket ?? "1m",
  });
}
// --- anomaly detection (issue 18) ---------------------------------------------------------

export interface PageQuery {
  /** 1..1000 (default 100). */
  pageSize?: number;
  /** nextPageToken of the previous page. */
  pageToken?: string;
}

/** A device's scores, oldest first (read scope). */
export function listScores(
  cj: Cornjacket,
  device: string,
  q: PageQuery & { metric?: string } = {},
): Promise<ListScoresResponse> {
  return cj.inference.listScores({
    device,
    metric: q.metric ?? "",
    pageSize: q.pageSize ?? 0,
    pageToken: q.pageToken ?? "",
  });
}

/** Anomalies newest first, of one device or (device "") of all (read scope). */
export function listAnomalies(
  cj: Cornjacket,
  q: PageQuery & { device?: string } = {},
): Promise<ListAnomaliesResponse> {
  return cj.inference.listAnomalies({
    device: q.device ?? "",
    pageSize: q.pageSize ?? 0,
    pageToken: q.pageToken ?? "",
  });
}

/** The models of a device, one per metric (read scope). */
export function modelStatus(cj: Cornjacket, device: string): Promise<ModelStatus> {
  return cj.inference.getModelStatus({ device });
}

/** Forget a device's models (admin scope); resolves to how many were reset. */
export async function resetModel(cj: Cornjacket, device: string, metric = ""): Promise<number> {
  return (await cj.inference.resetModel({ device, metric })).reset;
}
