// Against a running stack (CORNJACKET_URL, e.g. http://127.0.0.1:8080, and CORNJACKET_TOKEN, a
// bearer token with every scope, e.g. `cornjacket token`): ingest over gRPC and
// HTTP/JSON, read the projection back, check errors come back typed. Exits non-zero on failure.
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  connect, event, getSeries, ingestJson, InvalidArgument, listAnomalies, listAudit, listScores, modelStatus,
  getProjection, listProjections, NotFound, PermissionDenied, Unavailable, watchEvents, watchProjection,
} from "../dist/index.js";

const baseUrl = process.env.CORNJACKET_URL;
assert.ok(baseUrl, "set CORNJACKET_URL");
const token = process.env.CORNJACKET_TOKEN || undefined;
const cj = connect({ baseUrl, token });
const agg = `ts-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

const accepted = await cj.ingestion.ingestEvent(
  event("sensor.reading", agg, { value: 21.5, unit: "C" }, { eventTime: new Date(Date.now() - 1000) }),
);
assert.equal(accepted.status, "accepted");

const viaHttp = await ingestJson(baseUrl, {
  event_type: "sensor.reading",
  aggregate_id: agg,
  payload: { value: 22.5, unit: "C" },
}, { token });
assert.equal(viaHttp.status, "accepted");

let projection;
for (let i = 0; i < 100; i++) {
  try {
    projection = await cj.query.getProjection({ projectionType: "sensor_state", aggregateId: agg });
    if (projection.lastEventId === viaHttp.event_id) break;
  } catch (e) {
    if (ConnectError.from(e).code !== Code.NotFound) throw e;
  }
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(projection?.lastEventId, viaHttp.event_id);
assert.equal(projection.state?.value, 22.5);

// Time series (issue 17): both readings become points of the device's "value" metric.
let series;
for (let i = 0; i < 200; i++) {
  series = await getSeries(cj, {
    device: agg,
    metric: "value",
    start: new Date(Date.now() - 3_600_000),
    end: new Date(Date.now() + 60_000),
    bucket: "1d",
  });
  if (series.count.reduce((n, c) => n + c, 0) === 2) break;
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(series.sum.reduce((s, x) => s + x, 0), 44);
// Only the maximum: the same buckets, the other columns empty.
const maxOnly = await getSeries(cj, {
  device: agg,
  metric: "value",
  start: new Date(Date.now() - 3_600_000),
  end: new Date(Date.now() + 60_000),
  bucket: "1d",
  aggregates: ["max"],
});
assert.deepEqual(maxOnly.index, series.index);
assert.deepEqual(maxOnly.max, series.max);
assert.deepEqual([maxOnly.count, maxOnly.sum, maxOnly.avg], [[], [], []]);

const lineage = await cj.lineage.getEventLineage({ eventId: accepted.eventId });
assert.equal(lineage.hops[0].stage, "accepted");

const rule = await cj.actions.createRule({
  name: `ts-${agg}`,
  eventTypePattern: "sdk.check",
  target: { url: "http://127.0.0.1:9/never", headers: {}, secrets: [] },
});
assert.ok(rule.generatedSecret.startsWith("whsec_"));
assert.equal((await cj.actions.getRule({ ruleId: rule.ruleId })).name, `ts-${agg}`);
await cj.actions.deleteRule({ ruleId: rule.ruleId });

const audited = [];
for (let token = ""; ; ) {
  const from = new Date(Date.now() - 600_000).toISOString();
  const page = await listAudit(cj, { from, pageSize: 50, pageToken: token });
  audited.push(...page.records);
  token = page.nextPageToken;
  if (!token) break;
}
assert.ok(
  audited.some((r) => r.target === rule.ruleId && r.action.endsWith("/DeleteRule") && r.outcome === "OK"),
);

// Anomaly detection (issue 18): the reads answer; a device without a model is NOT_FOUND.
const anomalies = await listAnomalies(cj, { pageSize: 5 });
assert.ok(Array.isArray(anomalies.anomalies));
let scores;
for (let i = 0; i < 100; i++) {
  scores = await listScores(cj, agg);
  if (scores.scores.length === 2) break;
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(scores?.scores.length, 2);
await assert.rejects(
  modelStatus(cj, `${agg}-none`),
  (e) => ConnectError.from(e).code === Code.NotFound,
);

await assert.rejects(
  cj.ingestion.ingestEvent(event("nope", agg, {})),
  (e) => ConnectError.from(e).code === Code.InvalidArgument && /dot notation/.test(e.message),
);
// Typed errors: the SDK's classes (still ConnectErrors), each only its own code.
await assert.rejects(
  cj.query.getProjection({ projectionType: "sensor_state", aggregateId: `${agg}-none` }),
  (e) => e instanceof NotFound && e instanceof ConnectError && e.code === Code.NotFound
    && !(e instanceof PermissionDenied) && !(e instanceof Unavailable) && !(e instanceof InvalidArgument),
);
await assert.rejects(
  cj.ingestion.ingestEvent(event("nope", agg, {})),
  (e) => e instanceof InvalidArgument && e.code === Code.InvalidArgument && !(e instanceof NotFound),
);

// Plain answers: the state a JSON object, times as Dates.
const plainState = await getProjection(cj, "sensor_state", agg);
assert.equal(plainState.state.value, 22.5);
assert.ok(plainState.lastEventTimestamp instanceof Date);
const listed = await listProjections(cj, "sensor_state", { limit: 1 });
assert.equal(listed.limit, 1);
assert.equal(listed.projections.length, 1);

// Live streams (issue 19): for await, plain objects, a position to resume from.
const live = `${agg}-live`;
const stream = watchEvents(cj, { eventTypePrefix: "sensor.", aggregateId: live });
await stream.start(); // the server reads from here on
const sent = [];
for (let n = 0; n < 3; n++) {
  sent.push((await cj.ingestion.ingestEvent(event("sensor.reading", live, { value: n, unit: "C" }))).eventId);
}
const got = [];
let afterFirst;
for await (const ev of stream) {
  assert.ok(ev.eventTime instanceof Date);
  assert.equal(ev.payload.unit, "C");
  got.push(ev.eventId);
  if (got.length === 1) afterFirst = stream.position;
  if (got.length === 3) break;
}
assert.deepEqual(got, sent);
const again = [];
for await (const ev of watchEvents(cj, { aggregateId: live, position: afterFirst })) {
  again.push(ev.eventId);
  if (again.length === 2) break;
}
assert.deepEqual(again, sent.slice(1));
for await (const p of watchProjection(cj, "sensor_state", { aggregateId: live })) {
  assert.equal(typeof p.state, "object");
  if (p.state.value === 2) break; // the current state, or a change after it
}

console.log(JSON.stringify({ ok: true, aggregate: agg, grpc: accepted.eventId, http: viaHttp.event_id }));
