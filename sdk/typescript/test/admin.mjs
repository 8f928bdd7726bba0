// Against a running stack (CORNJACKET_URL, CORNJACKET_TOKEN with every scope, READ_TOKEN with
// only read, DLQ_IDS: two pending dead letters): the admin helpers (rules, deliveries,
// breakers, dead letters) and getStats, each answer plain (Dates, JSON objects, no
// $typeName); a read-only token is refused the admin helpers. Prints {"ok": true} last.
import assert from "node:assert/strict";
import {
  connect, createRule, deleteRule, disableRule, discardDeadLetters, enableRule, getDeadLetter, getRule,
  getStats, InvalidArgument, listAudit, listBreakers, listDeadLetters, listDeliveries, listRules, NotFound,
  PermissionDenied, replayDeadLetters, replayDeliveries, testRule, updateRule,
} from "../dist/index.js";

const baseUrl = process.env.CORNJACKET_URL;
const cj = connect({ baseUrl, token: process.env.CORNJACKET_TOKEN });
const reader = connect({ baseUrl, token: process.env.READ_TOKEN });
const [first, second] = process.env.DLQ_IDS.split(",");
const noTypeName = (v) => assert.equal(JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x)).includes("$typeName"), false);
const kind = `ts_${Date.now()}`;

const rule = await createRule(cj, {
  name: "ts rule", eventTypePattern: `${kind}.*`, url: "http://127.0.0.1:9/never",
  condition: "payload.value > 5", headers: { "x-team": "ops" },
});
assert.ok(rule.createdAt instanceof Date && rule.generatedSecret.startsWith("whsec_"));
assert.deepEqual(Object.keys(rule.target.headers), ["x-team"]);
noTypeName(rule);
assert.equal((await getRule(cj, rule.ruleId)).name, "ts rule");
assert.ok((await listRules(cj, { limit: 100 })).rules.some((r) => r.ruleId === rule.ruleId));
assert.equal((await updateRule(cj, rule.ruleId, { name: "renamed" })).name, "renamed");
assert.equal((await disableRule(cj, rule.ruleId, "ts test")).disabledReason, "ts test");
assert.equal((await enableRule(cj, rule.ruleId)).enabled, true);
const hit = await testRule(cj, { eventType: `${kind}.reading`, payload: { value: 9 } }, { ruleId: rule.ruleId });
assert.deepEqual([hit.matched, hit.patternMatched, hit.conditionMatched], [true, true, true]);
await assert.rejects(
  testRule(cj, { eventType: "x" }, { eventTypePattern: "*", condition: "payload. >" }),
  (e) => e instanceof InvalidArgument && /position/.test(e.rawMessage),
);
const deliveries = await listDeliveries(cj, { ruleId: rule.ruleId, status: "failed" });
assert.deepEqual([deliveries.deliveries, deliveries.total], [[], 0]);
assert.equal((await replayDeliveries(cj, { allFailed: true, ruleId: rule.ruleId })).replayed, 0);
assert.ok(Array.isArray(await listBreakers(cj)));
await deleteRule(cj, rule.ruleId);
await assert.rejects(getRule(cj, rule.ruleId), (e) => e instanceof NotFound);

const letter = await getDeadLetter(cj, first);
assert.ok(letter.failedAt instanceof Date && letter.status === "pending");
noTypeName(letter);
assert.ok((await listDeadLetters(cj, { status: "pending", limit: 100 })).deadLetters.some((d) => d.dlqId === first));
await assert.rejects(replayDeadLetters(reader, { dlqIds: [first] }), (e) => e instanceof PermissionDenied);
const replayed = await replayDeadLetters(cj, { dlqIds: [first] });
assert.equal(replayed.replayed, 1);
assert.equal((await discardDeadLetters(cj, [second])).discarded, 1);

const stats = await getStats(reader); // read scope is enough
assert.ok(stats.measuredAt instanceof Date && Array.isArray(stats.consumerLag));
noTypeName(stats);
const audit = await listAudit(cj, { from: "2000-01-01T00:00:00Z", pageSize: 5 });
assert.ok(audit.records.length && audit.records.every((r) => r.at instanceof Date && !("$typeName" in r)));

for (const call of [
  () => createRule(reader, { name: "x", eventTypePattern: "*", url: "http://127.0.0.1:9/" }),
  () => listDeliveries(reader), () => listBreakers(reader), () => discardDeadLetters(reader, [second]),
]) {
  await assert.rejects(call(), (e) => e instanceof PermissionDenied);
}
console.log(JSON.stringify({ ok: true }));
