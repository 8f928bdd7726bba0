// The projections browser: a type, its rows in pages (GET /api/v1/projections/{type}).
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { get, type Page, type Projection } from "../api";
import { ErrorLine, Pager, useLoad, when, type Session } from "../ui";

const TYPES = ["sensor_state", "user_session", "device_health"];
const LIMIT = 25;

export function Projections(props: { session: Session }) {
  const [type, setType] = useState(TYPES[0]);
  const [offset, setOffset] = useState(0);
  const list = useLoad(
    () =>
      get<Page & { projections?: Projection[] }>(props.session.token, `/api/v1/projections/${type}`, {
        limit: LIMIT,
        offset,
      }),
    [type, offset],
  );
  const rows = list.value?.projections ?? [];
  return html`<main>
    <h1>Projections</h1>
    <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>Type<select name="projection_type" value=${type}
        onChange=${(e: Event) => (setOffset(0), setType((e.target as HTMLSelectElement).value))}>
        ${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
      <button type="button" onClick=${() => list.reload()}>Refresh</button>
    </form>
    <${ErrorLine} error=${list.error} />
    <table>
      <thead><tr><th>Aggregate</th><th>State</th><th>Last event</th><th>Updated</th></tr></thead>
      <tbody data-testid="projections">${rows.map(
        (p) => html`<tr data-aggregate-id=${p.aggregate_id}>
          <td>${type === "user_session" ? p.aggregate_id
            : html`<a href=${`#/device/${encodeURIComponent(p.aggregate_id)}`}>${p.aggregate_id}</a>`}</td>
          <td><code>${JSON.stringify(p.state)}</code></td>
          <td><a href=${`#/lineage/${p.last_event_id}`}>${when(p.last_event_timestamp)}</a></td>
          <td>${when(p.updated_at)}</td></tr>`,
      )}</tbody>
    </table>
    ${list.value && html`<${Pager} offset=${offset} limit=${LIMIT} total=${list.value.total ?? 0} onOffset=${setOffset} />`}
  </main>`;
}
