// Circuit breakers per webhook endpoint (GET /api/v1/breakers); listing only (no API changes them).
import { html } from "htm/preact";

import { get, type Breaker } from "../api";
import { ErrorLine, useLoad, when, type Session } from "../ui";

export function Breakers(props: { session: Session }) {
  const list = useLoad(() => get<{ breakers?: Breaker[] }>(props.session.token, "/api/v1/breakers"), []);
  const rows = list.value?.breakers ?? [];
  return html`<main>
    <h1>Breakers</h1>
    <p><button type="button" onClick=${() => list.reload()}>Refresh</button></p>
    <${ErrorLine} error=${list.error} />
    <table>
      <thead><tr><th>Endpoint</th><th>State</th><th>Failures in a row</th><th>Retry at</th><th>Updated</th></tr></thead>
      <tbody data-testid="breakers">${rows.map(
        (b) => html`<tr data-endpoint=${b.endpoint}>
          <td>${b.endpoint}</td><td class=${b.state === "closed" ? "ok" : "error"}>${b.state}</td>
          <td>${b.consecutive_failures ?? 0}</td><td>${when(b.retry_at)}</td><td>${when(b.updated_at)}</td></tr>`,
      )}</tbody>
    </table>
    ${list.value && !rows.length && html`<p class="status">No endpoint has a breaker yet.</p>`}
  </main>`;
}
