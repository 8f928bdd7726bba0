// Dead letters: the event handler's (poison events) and the orchestrator's failed webhook
// deliveries. Filter, inspect, replay, discard; replay and discard ask for confirmation.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { get, post, type DeadLetter, type Delivery, type Page } from "../api";
import { ConfirmButton, ErrorLine, Json, Pager, message, useLoad, when, type Session } from "../ui";
import { Attempts } from "./deliveries";

const LIMIT = 20;

function DeadLetters(props: { session: Session }) {
  const { token, admin } = props.session;
  const [filter, setFilter] = useState({ consumer: "", status: "pending" });
  const [draft, setDraft] = useState(filter);
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState("");
  const [note, setNote] = useState("");
  const list = useLoad(
    () =>
      get<Page & { dead_letters?: DeadLetter[] }>(token, "/api/v1/dlq", {
        "filter.consumer": filter.consumer,
        "filter.status": filter.status,
        limit: LIMIT,
        offset,
      }),
    [filter, offset],
  );
  const act = async (verb: "replay" | "discard", id: string) => {
    try {
      const r = await post<{ outcomes?: { status: string; error?: string }[] }>(
        token,
        `/api/v1/dlq:${verb}`,
        { dlq_ids: [id] },
      );
      const o = r.outcomes?.[0];
      setNote(`${verb} ${id}: ${o?.status ?? "done"}${o?.error ? ` (${o.error})` : ""}`);
    } catch (e) {
      setNote(`${verb} ${id} failed: ${message(e)}`);
    }
    list.reload();
  };
  const rows = list.value?.dead_letters ?? [];
  return html`<section>
    <h2>Event handler dead letters</h2>
    <form class="filters" onSubmit=${(e: Event) => (e.preventDefault(), setOffset(0), setFilter({ ...draft }))}>
      <label>Consumer<input name="consumer" value=${draft.consumer}
        onInput=${(e: Event) => setDraft({ ...draft, consumer: (e.target as HTMLInputElement).value })} /></label>
      <label>Status<select name="status" value=${draft.status}
        onChange=${(e: Event) => setDraft({ ...draft, status: (e.target as HTMLSelectElement).value })}>
        ${["pending", "replayed", "discarded", ""].map((s) => html`<option value=${s}>${s || "any"}</option>`)}
      </select></label>
      <button type="submit">Filter</button>
    </form>
    <${ErrorLine} error=${list.error} />
    ${note && html`<p class="status" role="status">${note}</p>`}
    <table>
      <thead><tr><th>Failed</th><th>Consumer</th><th>Event</th><th>Error</th><th>Status</th><th></th></tr></thead>
      <tbody data-testid="dead-letters">${rows.map(
        (d) => html`<tr data-dlq-id=${d.dlq_id}>
          <td>${when(d.failed_at)}</td><td>${d.consumer}</td>
          <td>${d.event_type} ${d.aggregate_id}</td><td>${d.error_message}</td>
          <td>${d.status} (${d.retry_count ?? 0} retries)</td>
          <td class="actions">
            <button type="button" onClick=${() => setOpen(open === d.dlq_id ? "" : d.dlq_id)}>Inspect</button>
            ${admin && d.status === "pending" &&
            html`<${ConfirmButton} label="Replay" question="Replay this dead letter?"
                onConfirm=${() => act("replay", d.dlq_id)} />
              <${ConfirmButton} label="Discard" question="Discard this dead letter?"
                onConfirm=${() => act("discard", d.dlq_id)} />`}
          </td></tr>
          ${open === d.dlq_id && html`<tr><td colspan="6"><${Json} value=${d} />
            ${d.event_id && html`<a href=${`#/lineage/${d.event_id}`}>lineage of ${d.event_id}</a>`}</td></tr>`}`,
      )}</tbody>
    </table>
    ${list.value && html`<${Pager} offset=${offset} limit=${LIMIT} total=${list.value.total ?? 0} onOffset=${setOffset} />`}
  </section>`;
}

function FailedDeliveries(props: { session: Session }) {
  const { token, admin } = props.session;
  const [rule, setRule] = useState("");
  const [draft, setDraft] = useState("");
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState("");
  const [note, setNote] = useState("");
  const list = useLoad(
    () =>
      get<Page & { deliveries?: Delivery[] }>(token, "/api/v1/deliveries", {
        status: "failed",
        rule_id: rule,
        limit: LIMIT,
        offset,
      }),
    [rule, offset],
  );
  const replay = async (id: string) => {
    try {
      const r = await post<{ replayed?: number }>(token, "/api/v1/deliveries:replay", { delivery_ids: [id] });
      setNote(`replayed ${r.replayed ?? 0} delivery (${id})`);
    } catch (e) {
      setNote(`replay ${id} failed: ${message(e)}`);
    }
    list.reload();
  };
  const discard = async (id: string) => {
    try {
      await post(token, `/api/v1/deliveries/${id}:discard`);
      setNote(`discarded ${id}`);
    } catch (e) {
      setNote(`discard ${id} failed: ${message(e)}`);
    }
    list.reload();
  };
  const rows = list.value?.deliveries ?? [];
  return html`<section>
    <h2>Failed webhook deliveries</h2>
    <form class="filters" onSubmit=${(e: Event) => (e.preventDefault(), setOffset(0), setRule(draft.trim()))}>
      <label>Rule id<input name="rule_id" value=${draft}
        onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Filter</button>
      <button type="button" onClick=${() => list.reload()}>Refresh</button>
    </form>
    <${ErrorLine} error=${list.error} />
    ${note && html`<p class="status" role="status">${note}</p>`}
    <table>
      <thead><tr><th>Created</th><th>Target</th><th>Event</th><th>Attempts</th><th>Last error</th><th></th></tr></thead>
      <tbody data-testid="failed-deliveries">${rows.map(
        (d) => html`<tr data-delivery-id=${d.delivery_id} data-event-id=${d.event_id}>
          <td>${when(d.created_at)}</td><td>${d.target_url}</td>
          <td><a href=${`#/lineage/${d.event_id}`}>${d.event_type}</a></td>
          <td>${d.attempt_count}</td><td>${d.last_error}</td>
          <td class="actions">
            <button type="button" onClick=${() => setOpen(open === d.delivery_id ? "" : d.delivery_id)}>Inspect</button>
            ${admin &&
            html`<${ConfirmButton} label="Replay" question="Send this delivery again?"
                onConfirm=${() => replay(d.delivery_id)} />
              <${ConfirmButton} label="Discard" question="Give up on this delivery?"
                onConfirm=${() => discard(d.delivery_id)} />`}
          </td></tr>
          ${open === d.delivery_id && html`<tr><td colspan="6"><${Attempts} attempts=${d.attempts ?? []} /></td></tr>`}`,
      )}</tbody>
    </table>
    ${list.value && html`<${Pager} offset=${offset} limit=${LIMIT} total=${list.value.total ?? 0} onOffset=${setOffset} />`}
  </section>`;
}

export function Dlq(props: { session: Session }) {
  return html`<main>
    <h1>Dead letters</h1>
    <${FailedDeliveries} session=${props.session} />
    <${DeadLetters} session=${props.session} />
  </main>`;
}
