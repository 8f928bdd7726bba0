// Rules: list, create and edit (the condition parser's positioned errors shown under the
// condition), enable/disable, delete with confirmation; each rule links to its deliveries;
// a rule (or a pattern and condition not saved yet) tested against a sample event.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { call, post, get, ApiError, type Page, type Rule, type RuleTestResult } from "../api";
import { ConfirmButton, ErrorLine, Pager, message, useLoad, type Session } from "../ui";

const LIMIT = 20;

interface Draft {
  name: string;
  event_type_pattern: string;
  condition: string;
  url: string;
}

const EMPTY: Draft = { name: "", event_type_pattern: "sensor.reading", condition: "", url: "" };

/** The condition parser says "... at position N" (1-based): point at it. */
export function conditionPosition(error: string): number | null {
  if (!error.startsWith("condition:")) return null;
  const m = /position (\d+)/.exec(error);
  return m ? Number(m[1]) : null;
}

function RuleForm(props: { session: Session; rule: Rule | null; onDone: (note: string) => void }) {
  const { rule } = props;
  const [d, setD] = useState<Draft>(
    rule
      ? { name: rule.name, event_type_pattern: rule.event_type_pattern, condition: rule.condition ?? "", url: rule.target.url }
      : EMPTY,
  );
  const [error, setError] = useState("");
  const [tried, setTried] = useState("");
  const field = (k: keyof Draft) => (e: Event) => setD({ ...d, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setTried(d.condition);
    try {
      if (rule) {
        const body: Record<string, unknown> = {
          name: d.name,
          event_type_pattern: d.event_type_pattern,
          condition: d.condition,
        };
        // the API shows masked target URLs: send the target only when it was changed
        if (d.url !== rule.target.url) body.target = { url: d.url };
        await call<Rule>(props.session.token, "PATCH", `/api/v1/rules/${rule.rule_id}`, undefined, body);
        props.onDone(`saved ${d.name}`);
      } else {
        const made = await post<Rule>(props.session.token, "/api/v1/rules", {
          name: d.name,
          event_type_pattern: d.event_type_pattern,
          condition: d.condition,
          target: { url: d.url },
          enabled: true,
        });
        props.onDone(
          `created ${made.name}` +
            (made.generated_secret ? `; its signing secret (shown once): ${made.generated_secret}` : ""),
        );
      }
    } catch (err) {
      setError(err instanceof ApiError ? err.message : message(err));
    }
  };
  const pos = conditionPosition(error);
  return html`<form class="rule-form" onSubmit=${submit} aria-label=${rule ? "edit rule" : "new rule"}>
    <h2>${rule ? `Edit ${rule.name}` : "New rule"}</h2>
    <label>Name<input name="name" value=${d.name} onInput=${field("name")} required /></label>
    <label>Event type pattern<input name="event_type_pattern" value=${d.event_type_pattern}
      onInput=${field("event_type_pattern")} placeholder="sensor.reading, sensor.* or *" /></label>
    <label>Condition<input name="condition" value=${d.condition} onInput=${field("condition")}
      class="mono" placeholder='payload.value > 80 and payload.unit == "C"'
      aria-invalid=${pos !== null} aria-describedby=${pos !== null ? "condition-error" : undefined} /></label>
    ${pos !== null &&
    html`<pre class="caret" id="condition-error" data-testid="condition-error">${
      `${tried}\n${" ".repeat(Math.max(0, pos - 1))}^ ${error.replace(/^condition: /, "")}`
    }</pre>`}
    <label>Webhook URL<input name="url" value=${d.url} onInput=${field("url")} type="url" /></label>
    ${pos === null && html`<${ErrorLine} error=${error} />`}
    <p><button type="submit">${rule ? "Save" : "Create rule"}</button>
      <button type="button" onClick=${() => props.onDone("")}>Cancel</button></p>
  </form>`;
}

interface Sample {
  event_type_pattern: string;
  condition: string;
  event_type: string;
  aggregate_id: string;
  source: string;
  payload: string;
}

const SAMPLE: Sample = {
  event_type_pattern: "sensor.reading",
  condition: "",
  event_type: "sensor.reading",
  aggregate_id: "device-1",
  source: "http",
  payload: '{"value": 85, "unit": "C"}',
};

/** POST /api/v1/rules:test: the orchestrator's own matcher, nothing stored or sent. A rule
 * picked from the table is tested as stored (by id); otherwise the typed pattern and
 * condition are. */
function TestPanel(props: { session: Session; rule: Rule | null; onClear: () => void }) {
  const { rule } = props;
  const [d, setD] = useState<Sample>(SAMPLE);
  const [result, setResult] = useState<RuleTestResult | null>(null);
  const [error, setError] = useState("");
  const [tried, setTried] = useState("");
  const field = (k: keyof Sample) => (e: Event) =>
    setD({ ...d, [k]: (e.target as HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    setError("");
    let payload: unknown;
    try {
      payload = JSON.parse(d.payload || "{}");
    } catch (err) {
      setError(`payload is not JSON: ${message(err)}`);
      return;
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      setError("payload must be a JSON object");
      return;
    }
    setTried(rule ? (rule.condition ?? "") : d.condition);
    const event = { event_type: d.event_type, aggregate_id: d.aggregate_id, payload, metadata: { source: d.source } };
    const body = rule
      ? { rule_id: rule.rule_id, event }
      : { event_type_pattern: d.event_type_pattern, condition: d.condition, event };
    try {
      setResult(await post<RuleTestResult>(props.session.token, "/api/v1/rules:test", body));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : message(err));
    }
  };
  const pos = conditionPosition(error);
  const yes = (v?: boolean) => (v ? "yes" : "no");
  return html`<form class="rule-form" onSubmit=${submit} aria-label="test a rule">
    <h2>Test against a sample event</h2>
    ${rule
      ? html`<p data-testid="test-rule-name">Rule <strong>${rule.name}</strong>: <code>${rule.event_type_pattern}</code>
          ${rule.condition ? html` where <code>${rule.condition}</code>` : ""}
          <button type="button" onClick=${props.onClear}>Type a pattern instead</button></p>`
      : html`<label>Event type pattern<input name="test_pattern" value=${d.event_type_pattern}
            onInput=${field("event_type_pattern")} placeholder="sensor.reading, sensor.* or *" /></label>
          <label>Condition<input name="test_condition" value=${d.condition} onInput=${field("condition")}
            class="mono" placeholder='payload.value > 80 and payload.unit == "C"'
            aria-invalid=${pos !== null} aria-describedby=${pos !== null ? "test-condition-error" : undefined} /></label>`}
    ${pos !== null &&
    html`<pre class="caret" id="test-condition-error" data-testid="test-condition-error">${
      `${tried}\n${" ".repeat(Math.max(0, pos - 1))}^ ${error.replace(/^condition: /, "")}`
    }</pre>`}
    <label>Event type<input name="test_event_type" value=${d.event_type} onInput=${field("event_type")} /></label>
    <label>Aggregate id<input name="test_aggregate_id" value=${d.aggregate_id} onInput=${field("aggregate_id")} /></label>
    <label>Source (metadata.source)<select name="test_source" value=${d.source} onChange=${field("source")}>
      ${["http", "grpc", "mqtt", "ai"].map((v) => html`<option value=${v}>${v}</option>`)}
    </select></label>
    <label>Payload (JSON object)<textarea name="test_payload" class="mono" rows="4"
      onInput=${field("payload")}>${d.payload}</textarea></label>
    ${pos === null && html`<${ErrorLine} error=${error} />`}
    <p><button type="submit">Test</button></p>
    ${result &&
    html`<p role="status" data-testid="test-result" class=${result.matched ? "ok" : "error"}>
${`${result.matched ? "Matches: a delivery would be made" : "Does not match"} (pattern: ${yes(
        result.pattern_matched,
      )}, condition: ${yes(result.condition_matched)})`}</p>`}
  </form>`;
}

export function Rules(props: { session: Session }) {
  const { token, admin } = props.session;
  const [offset, setOffset] = useState(0);
  const [editing, setEditing] = useState<Rule | "new" | null>(null);
  const [note, setNote] = useState("");
  const [testing, setTesting] = useState<Rule | null>(null);
  const list = useLoad(
    () => get<Page & { rules?: Rule[] }>(token, "/api/v1/rules", { limit: LIMIT, offset }),
    [offset],
  );
  const act = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
      setNote(what);
    } catch (e) {
      setNote(`${what} failed: ${message(e)}`);
    }
    list.reload();
  };
  const done = (n: string) => {
    setEditing(null);
    if (n) setNote(n);
    list.reload();
  };
  const rows = list.value?.rules ?? [];
  return html`<main>
    <h1>Rules</h1>
    ${admin && !editing && html`<p><button type="button" onClick=${() => setEditing("new")}>New rule</button></p>`}
    ${editing &&
    html`<${RuleForm} key=${editing === "new" ? "new" : editing.rule_id} session=${props.session}
      rule=${editing === "new" ? null : editing} onDone=${done} />`}
    ${note && html`<p class="status" role="status" data-testid="rules-note">${note}</p>`}
    ${admin &&
    html`<${TestPanel} key=${testing?.rule_id ?? "inline"} session=${props.session} rule=${testing}
      onClear=${() => setTesting(null)} />`}
    <${ErrorLine} error=${list.error} />
    <table>
      <thead><tr><th>Name</th><th>Pattern</th><th>Condition</th><th>Target</th><th>State</th><th></th></tr></thead>
      <tbody data-testid="rules">${rows.map(
        (r) => html`<tr data-rule-id=${r.rule_id}>
          <td>${r.name}</td><td><code>${r.event_type_pattern}</code></td><td><code>${r.condition}</code></td>
          <td>${r.target.url}</td>
          <td>${r.enabled ? "enabled" : `disabled${r.disabled_reason ? `: ${r.disabled_reason}` : ""}`}</td>
          <td class="actions">
            <a href=${`#/deliveries/${r.rule_id}`}>Deliveries</a>
            ${admin &&
            html`<button type="button" onClick=${() => setEditing(r)}>Edit</button>
              <button type="button" onClick=${() => setTesting(r)}>Test</button>
              ${r.enabled
                ? html`<button type="button" onClick=${() =>
                    act(`disabled ${r.name}`, () => post(token, `/api/v1/rules/${r.rule_id}:disable`, { reason: "disabled in the console" }))}>Disable</button>`
                : html`<button type="button" onClick=${() =>
                    act(`enabled ${r.name}`, () => post(token, `/api/v1/rules/${r.rule_id}:enable`))}>Enable</button>`}
              <${ConfirmButton} label="Delete" question=${`Delete ${r.name} and its deliveries?`}
                onConfirm=${() => act(`deleted ${r.name}`, () => call(token, "DELETE", `/api/v1/rules/${r.rule_id}`))} />`}
          </td></tr>`,
      )}</tbody>
    </table>
    ${list.value && html`<${Pager} offset=${offset} limit=${LIMIT} total=${list.value.total ?? 0} onOffset=${setOffset} />`}
  </main>`;
}
