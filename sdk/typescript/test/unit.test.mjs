// The SDK's own behaviour without a stack (node --test; `npm test` after `make sdk-ts`):
// typed errors, the stream's retry decisions, the UNAVAILABLE interceptor, against fakes or
// a fake gRPC server (node:http2) where the wire matters.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { test } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  DeliverySchema, event, IngestEventRequestSchema, IngestEventsRequestSchema, plain, RuleSchema, StatsSchema,
  WatchEventsResponseSchema,
  Aborted, connect, CornjacketError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
  RateLimited, toCornjacketError, Unauthenticated, Unavailable, watchEvents, WatchEndReason, WatchStream,
} from "../dist/index.js";

const CLASSES = { NotFound, PermissionDenied, Unavailable, Unauthenticated, InvalidArgument, FailedPrecondition, Aborted, RateLimited };

test("instanceof on the SDK's error classes is exact", () => {
  const cases = [
    [Code.NotFound, NotFound], [Code.PermissionDenied, PermissionDenied], [Code.Unavailable, Unavailable],
    [Code.Unauthenticated, Unauthenticated], [Code.InvalidArgument, InvalidArgument],
    [Code.FailedPrecondition, FailedPrecondition], [Code.Aborted, Aborted], [Code.ResourceExhausted, RateLimited],
  ];
  for (const [code, Kind] of cases) {
    const e = toCornjacketError(new ConnectError("m", code));
    assert.equal(e.constructor, Kind);
    for (const [name, Other] of Object.entries(CLASSES)) {
      assert.equal(e instanceof Other, Other === Kind, `${Kind.name} instanceof ${name}`);
    }
    assert.ok(e instanceof CornjacketError && e instanceof ConnectError && e instanceof Error);
    assert.equal(e.code, code);
  }
  const plain = new ConnectError("m", Code.NotFound);
  assert.ok(!(plain instanceof NotFound) && !(plain instanceof CornjacketError));
  assert.ok(!(new Error("x") instanceof CornjacketError));
});

const hb = (position) => ({ position, item: { case: "heartbeat", value: {} } });
const ev = (position, id) => ({ position, item: { case: "event", value: { eventId: id } } });
const end = (position) => ({
  position, item: { case: "end", value: { reason: WatchEndReason.TOO_SLOW, message: "behind" } },
});
const fast = { retryDelayMs: 1 };

async function drain(stream) {
  const got = [];
  for await (const x of stream) got.push(x);
  return got;
}

for (const [name, code] of [
  ["an expired position", Code.FailedPrecondition], ["no token", Code.Unauthenticated],
  ["a missing scope", Code.PermissionDenied], ["a bad request", Code.InvalidArgument],
]) {
  test(`a stream refused for ${name} is not reopened`, async () => {
    let opens = 0;
    const s = new WatchStream(async function* () {
      opens++;
      throw toCornjacketError(new ConnectError("refused", code));
    }, (m) => m, fast);
    await assert.rejects(drain(s), (e) => e.code === code);
    assert.equal(opens, 1);
  });
}

test("a lost connection is reopened from the position", async () => {
  const at = [];
  const s = new WatchStream(async function* (position) {
    at.push(position);
    if (at.length === 1) {
      yield hb("w1.a");
      yield ev("w1.b", "e1");
      throw toCornjacketError(new ConnectError("gone", Code.Unavailable));
    }
    yield hb("w1.b");
    yield ev("w1.c", "e2");
  }, (m) => m.item.value.eventId, fast);
  assert.deepEqual(await drain(s), ["e1", "e2"]);
  assert.deepEqual(at, ["", "w1.b"]);
});

test("a client ended as too slow again and again is told so", async () => {
  let opens = 0;
  const s = new WatchStream(async function* () {
    opens++;
    if (opens > 50) throw new Error(`reopened ${opens} times`);
    yield hb("w1.p");
    yield end("w1.p");
  }, (m) => m, fast);
  await assert.rejects(drain(s), (e) => e instanceof Aborted && /too_slow/.test(e.message));
  assert.equal(opens, 6);
});

test("a client cut off (ABORTED) again and again is told so", async () => {
  let opens = 0;
  const s = new WatchStream(async function* () {
    opens++;
    if (opens > 50) throw new Error(`reopened ${opens} times`);
    yield hb("w1.p");
    throw toCornjacketError(new ConnectError("did not take a message", Code.Aborted));
  }, (m) => m, fast);
  await assert.rejects(drain(s), (e) => e instanceof Aborted);
  assert.equal(opens, 6);
});

test("an event delivered between cut-offs starts the count again", async () => {
  let opens = 0;
  const s = new WatchStream(async function* () {
    opens++;
    if (opens === 20) return; // the server closes: the stream ends
    yield hb(`w1.${opens}`);
    yield ev(`w1.${opens}`, `e${opens}`);
    yield end(`w1.${opens}`);
  }, (m) => m.item.value.eventId, fast);
  assert.equal((await drain(s)).length, 19);
});

/** A fake gRPC server: answers each call by `answer(n, body)`; records request bodies. */
async function fakeServer(answer) {
  const bodies = [];
  const server = http2.createServer();
  const sessions = new Set();
  server.on("session", (s) => sessions.add(s));
  server.on("stream", (stream) => {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      bodies.push(body);
      const [status, message] = answer(bodies.length, body);
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", "grpc-status": String(status), "grpc-message": message },
        { endStream: true },
      );
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { bodies, url: `http://127.0.0.1:${server.address().port}`, close: () => {
    for (const s of sessions) s.destroy();
    server.close();
  } };
}

test("a stream refused as UNAVAILABLE is re-sent with its whole request", async () => {
  const srv = await fakeServer((n) => (n === 1 ? [Code.Unavailable, "restarting"] : [Code.InvalidArgument, "stop here"]));
  try {
    const cj = connect({ baseUrl: srv.url });
    await assert.rejects(drain(watchEvents(cj, { position: "w1.resume-here" })), (e) => e instanceof InvalidArgument);
    assert.equal(srv.bodies.length, 2);
    for (const body of srv.bodies) assert.match(body.toString("latin1"), /w1\.resume-here/);
  } finally {
    srv.close();
  }
});

test("a unary call refused as UNAVAILABLE is retried by the interceptor", async () => {
  const srv = await fakeServer((n) => (n < 3 ? [Code.Unavailable, "restarting"] : [Code.NotFound, "none"]));
  try {
    const cj = connect({ baseUrl: srv.url });
    await assert.rejects(cj.query.getProjection({ projectionType: "t", aggregateId: "a" }), (e) => e instanceof NotFound);
    assert.equal(srv.bodies.length, 3);
    assert.ok(srv.bodies.every((b) => b.length === srv.bodies[0].length && b.length > 5));
  } finally {
    srv.close();
  }
});

// Through Envoy, UNAVAILABLE can follow work that was done (a route timeout is a 504, an
// upstream reset after the request went out a 503: both UNAVAILABLE to the client).
for (const [name, call] of [
  ["CreateRule", (cj) => cj.actions.createRule({ name: "r", eventTypePattern: "*", target: { url: "http://x.test/" } })],
  ["DeleteRule", (cj) => cj.actions.deleteRule({ ruleId: "r1" })],
  ["ReplayDeliveries", (cj) => cj.actions.replayDeliveries({ allFailed: true })],
  ["DiscardDelivery", (cj) => cj.actions.discardDelivery({ deliveryId: "d1" })],
  ["ReplayDeadLetters", (cj) => cj.deadLetters.replayDeadLetters({ filter: { consumer: "c" } })],
  ["DiscardDeadLetters", (cj) => cj.deadLetters.discardDeadLetters({ dlqIds: ["x"] })],
  ["ResetModel", (cj) => cj.inference.resetModel({ device: "d" })],
]) {
  test(`${name} (not safe to repeat) is not re-sent after UNAVAILABLE`, async () => {
    const srv = await fakeServer(() => [Code.Unavailable, "upstream request timeout"]);
    try {
      const cj = connect({ baseUrl: srv.url });
      await assert.rejects(call(cj), (e) => e instanceof Unavailable);
      assert.equal(srv.bodies.length, 1);
    } finally {
      srv.close();
    }
  });
}

test("an ingest without a key is re-sent with one key, so it cannot be stored twice", async () => {
  const srv = await fakeServer(() => [Code.Unavailable, "upstream request timeout"]);
  try {
    const cj = connect({ baseUrl: srv.url, retries: 2 });
    await assert.rejects(cj.ingestion.ingestEvent(event("t", "a", { v: 1 })), (e) => e instanceof Unavailable);
    const keys = srv.bodies.map((b) => fromBinary(IngestEventRequestSchema, b.subarray(5)).idempotencyKey);
    assert.equal(keys.length, 3);
    assert.ok(keys[0]);
    assert.deepEqual(new Set(keys).size, 1);
    srv.bodies.length = 0;
    const batch = { events: [event("t", "a", { v: 1 }), event("t", "b", { v: 2 }, { idempotencyKey: "mine" })] };
    await assert.rejects(cj.ingestion.ingestEvents(batch), (e) => e instanceof Unavailable);
    const sent = srv.bodies.map((b) =>
      fromBinary(IngestEventsRequestSchema, b.subarray(5)).events.map((e) => e.idempotencyKey).join(","));
    assert.equal(sent.length, 3);
    assert.equal(new Set(sent).size, 1);
    const [first, mine] = sent[0].split(",");
    assert.ok(first);
    assert.equal(mine, "mine");
  } finally {
    srv.close();
  }
});

test("an idempotent update is still retried after UNAVAILABLE", async () => {
  const srv = await fakeServer(() => [Code.Unavailable, "restarting"]);
  try {
    const cj = connect({ baseUrl: srv.url, retries: 2 });
    await assert.rejects(cj.actions.disableRule({ ruleId: "r1" }), (e) => e instanceof Unavailable);
    assert.equal(srv.bodies.length, 3);
  } finally {
    srv.close();
  }
});

// --- issue 19's last gaps: streams ended for their age, plain answers ----------------------
const aged = (position) => ({
  position, item: { case: "end", value: { reason: WatchEndReason.MAX_DURATION, message: "max duration" } },
});

test("a stream ended for its age is reopened at once from its position, not as a failure", async () => {
  const opens = [];
  // A backoff would wait minutes (the test's timeout); six ends without an event in a row
  // would throw, were they counted as failures.
  const s = new WatchStream(async function* (position) {
    opens.push(position);
    const n = opens.length;
    if (n === 30) return;
    yield hb(`p${n - 1}`);
    if (n % 10 === 0) yield ev(`p${n}`, `e${n}`);
    yield aged(`p${n}`);
  }, (m) => m.item.value.eventId, { position: "p0", retryDelayMs: 1_000_000 });
  assert.deepEqual(await drain(s), ["e10", "e20"]);
  assert.deepEqual(opens, Array.from({ length: 30 }, (_, i) => `p${i}`));
  assert.equal(s.end.reason, "max_duration");
});

test("plain() gives Dates, JSON objects and no $typeName, by the message's schema", () => {
  const at = new Date("2026-12-01T10:00:00.123Z");
  const rule = create(RuleSchema, {
    ruleId: "r1",
    createdAt: timestampFromDate(at),
    target: { url: "http://x", headers: { "x-team": "ops" }, secrets: ["whsec_…abcd"] },
  });
  const p = plain(RuleSchema, rule);
  assert.ok(p.createdAt instanceof Date && p.createdAt.getTime() === at.getTime());
  assert.equal(p.updatedAt, undefined);
  assert.deepEqual(p.target, { url: "http://x", headers: { "x-team": "ops" }, secrets: ["whsec_…abcd"] });
  assert.equal(JSON.stringify(p).includes("$typeName"), false);

  const delivery = plain(DeliverySchema, create(DeliverySchema, {
    deliveryId: "d1", attempts: [{ attempt: 1, startedAt: timestampFromDate(at), statusCode: 500 }],
  }));
  assert.ok(delivery.attempts[0].startedAt instanceof Date && !("$typeName" in delivery.attempts[0]));

  const msg = create(WatchEventsResponseSchema, {
    position: "p", item: { case: "event", value: { eventId: "e1", eventTime: timestampFromDate(at), payload: { v: 1 } } },
  });
  const w = plain(WatchEventsResponseSchema, msg);
  assert.equal(w.item.case, "event");
  assert.ok(w.item.value.eventTime instanceof Date);
  assert.deepEqual(w.item.value.payload, { v: 1 });
  assert.equal(w.item.value.metadata, undefined);

  const stats = plain(StatsSchema, create(StatsSchema, { outboxDepth: 3n, consumerLag: [{ group: "g", lag: 2n }] }));
  assert.equal(stats.outboxDepth, 3n);
  assert.deepEqual(stats.consumerLag, [{ group: "g", lag: 2n, known: false }]);
  assert.equal(stats.measuredAt, undefined);
});

test("an ingest leaves the caller's request as it was: a reused request is a new event", async () => {
  const srv = await fakeServer(() => [Code.NotFound, "none"]);
  try {
    const cj = connect({ baseUrl: srv.url, retries: 0 });
    const req = event("t", "a", { v: 1 });
    await assert.rejects(cj.ingestion.ingestEvent(req), (e) => e instanceof NotFound);
    assert.equal(req.idempotencyKey, "", "the SDK wrote its key into the caller's request");
    req.payload = event("t", "a", { v: 2 }).payload; // the next reading, same object
    await assert.rejects(cj.ingestion.ingestEvent(req), (e) => e instanceof NotFound);
    const keys = srv.bodies.map((b) => fromBinary(IngestEventRequestSchema, b.subarray(5)).idempotencyKey);
    assert.equal(keys.length, 2);
    assert.ok(keys[0] && keys[1] && keys[0] !== keys[1], `one key for two events: ${keys}`);
    const batch = create(IngestEventsRequestSchema, { events: [event("t", "b", { v: 3 })] });
    await assert.rejects(cj.ingestion.ingestEvents(batch), (e) => e instanceof NotFound);
    assert.equal(batch.events[0].idempotencyKey, "");
  } finally {
    srv.close();
  }
});
