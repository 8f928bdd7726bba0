// Webhook deliveries with their attempts (GET /api/v1/deliveries), filtered by rule and status.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { get, type Delivery, type DeliveryAttempt, type Page } from "../api";
import { ErrorLine, Pager, useLoad, when, type Session } from "../ui";

const LIMIT = 20;

export function Attempts(props: { attempts: DeliveryAttempt[] }) {
  if (!props.attempts.length) return html`<p class="status">no attempts yet</p>`;
  return html`<table class="attempts">
    <thead><tr><th>#</th><th>Started</th><th>Outcome</th><th>HTTP</th><th>ms</th><th>Error</th></tr></thead>
    <tbody data-testid="attempts">${props.attempts.map(
      (a) => html`<tr><td>${a.attempt}</td><td>${when(a.started_at)}</td><td>${a.outcome}</td>
        <td>${a.status_code || ""}</td><td>${a.duration_ms}</td><td>${a.error}</td></tr>`,
    )}</tbody>
  </table>`;
}

export function Deliveries(props: { session: Session; ruleId: string }) {
  const { token } = props.session;
  const [filter, setFilter] = useState({ rule_id: props.ruleId, status: "" });
  const [draft, setDraft] = useState(filter);
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState("");
  const list = useLoad(
    () =>
      get<Page & { deliveries?: Delivery[] }>(token, "/api/v1/deliveries", {
        ...filter,
        limit: LIMIT,
        offset,
      }),
    [filter, offset],
  );
  const rows = list.value?.deliveries ?? [];
  return html`<main>
    <h1>Deliveries</h1>
    <form class="filters" onSubmit=${(e: Event) => (e.preventDefault(), setOffset(0), setFilter({ ...draft }))}>
      <label>Rule id<input name="rule_id" value=${draft.rule_id}
        onInput=${(e: Event) => setDraft({ ...draft, rule_id: (e.target as HTMLInputElement).value })} /></label>
      <label>Status<select name="status" value=${draft.status}
        onChange=${(e: Event) => setDraft({ ...draft, status: (e.target as HTMLSelectElement).value })}>
        ${["", "pending", "delivered", "failed", "discarded", "suppressed"].map(
          (s) => html`<option value=${s}>${s || "any"}</option>`,
        )}
      </select></label>
      <button type="submit">Filter</button>
      <button type="button" onClick=${() => list.reload()}>Refresh</button>
    </form>
    <${ErrorLine} error=${list.error} />
    <table>
      <thead><tr><th>Created</th><th>Status</th><th>Target</th><th>Event</th><th>Attempts</th><th></th></tr></thead>
      <tbody data-testid="deliveries">${rows.map(
        (d) => html`<tr data-delivery-id=${d.delivery_id} data-event-id=${d.event_id} data-status=${d.status}>
          <td>${when(d.created_at)}</td><td>${d.status}</td><td>${d.target_url}</td>
          <td><a href=${`#/lineage/${d.event_id}`}>${d.event_type}</a></td><td>${d.attempt_count}</td>
          <td><button type="button" onClick=${() => setOpen(open === d.delivery_id ? "" : d.delivery_id)}
            >Attempts</button></td></tr>
          ${open === d.delivery_id && html`<tr><td colspan="6"><${Attempts} attempts=${d.attempts ?? []} /></td></tr>`}`,
      )}</tbody>
    </table>
    ${list.value && html`<${Pager} offset=${offset} limit=${LIMIT} total=${list.value.total ?? 0} onOffset=${setOffset} />`}
  </main>`;
}
