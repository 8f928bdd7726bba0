// The audit log (GET /api/v1/audit): admin calls of every owner, oldest first, paged by token.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { get, type AuditRecord } from "../api";
import { ErrorLine, Json, useLoad, when, type Session } from "../ui";

function hoursAgo(h: number): string {
  return new Date(Date.now() - h * 3600_000).toISOString().slice(0, 16);
}

export function Audit(props: { session: Session }) {
  const [range, setRange] = useState({ from: hoursAgo(24), to: "" });
  const [draft, setDraft] = useState(range);
  // the tokens of the pages seen so far: Previous pops one
  const [pages, setPages] = useState<string[]>([""]);
  const pageToken = pages[pages.length - 1];
  const list = useLoad(
    () =>
      get<{ records?: AuditRecord[]; next_page_token?: string }>(props.session.token, "/api/v1/audit", {
        from: range.from ? new Date(range.from).toISOString() : undefined,
        to: range.to ? new Date(range.to).toISOString() : undefined,
        page_size: 50,
        page_token: pageToken,
      }),
    [range, pageToken],
  );
  const rows = list.value?.records ?? [];
  const next = list.value?.next_page_token;
  return html`<main>
    <h1>Audit log</h1>
    <form class="filters" onSubmit=${(e: Event) => (e.preventDefault(), setPages([""]), setRange({ ...draft }))}>
      <label>From<input type="datetime-local" name="from" value=${draft.from}
        onInput=${(e: Event) => setDraft({ ...draft, from: (e.target as HTMLInputElement).value })} /></label>
      <label>To<input type="datetime-local" name="to" value=${draft.to}
        onInput=${(e: Event) => setDraft({ ...draft, to: (e.target as HTMLInputElement).value })} /></label>
      <button type="submit">Show</button>
    </form>
    <p class="status">Times are your browser's local time.</p>
    <${ErrorLine} error=${list.error} />
    <table>
      <thead><tr><th>At</th><th>Who</th><th>Action</th><th>Target</th><th>Outcome</th><th>Change</th></tr></thead>
      <tbody data-testid="audit">${rows.map(
        (a) => html`<tr data-audit-id=${a.audit_id}>
          <td>${when(a.at)}</td><td>${a.subject}</td><td>${a.owner}: ${a.action}</td><td>${a.target}</td>
          <td class=${a.outcome === "OK" ? "ok" : "error"}>${a.outcome}${a.error ? `: ${a.error}` : ""}</td>
          <td>${a.change && Object.keys(a.change).length > 0 &&
            html`<details><summary>change</summary><${Json} value=${a.change} /></details>`}</td></tr>`,
      )}</tbody>
    </table>
    <nav class="pager" aria-label="pages">
      <button type="button" disabled=${pages.length <= 1} onClick=${() => setPages(pages.slice(0, -1))}>Previous</button>
      <button type="button" disabled=${!next} onClick=${() => next && setPages([...pages, next])}>Next</button>
    </nav>
  </main>`;
}
