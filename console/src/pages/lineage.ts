// Event lineage: paste an event id, see its hops as a timeline (GET /api/v1/events/{id}/lineage).
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";

import { get, type EventLineage } from "../api";
import { ErrorLine, Json, message, when, type Session } from "../ui";

export function Lineage(props: { session: Session; eventId: string }) {
  const [text, setText] = useState(props.eventId);
  const [found, setFound] = useState<EventLineage | null>(null);
  const [error, setError] = useState("");
  const load = async (id: string) => {
    try {
      setFound(await get<EventLineage>(props.session.token, `/api/v1/events/${encodeURIComponent(id)}/lineage`));
      setError("");
    } catch (e) {
      setFound(null);
      setError(message(e));
    }
  };
  useEffect(() => {
    setText(props.eventId);
    if (props.eventId) void load(props.eventId);
  }, [props.eventId]);
  const submit = (e: Event) => {
    e.preventDefault();
    const id = text.trim();
    if (id) location.hash = `#/lineage/${encodeURIComponent(id)}`;
  };
  return html`<main>
    <h1>Event lineage</h1>
    <form class="filters" onSubmit=${submit}>
      <label>Event id<input name="event_id" value=${text} size="40"
        onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Trace</button>
    </form>
    <${ErrorLine} error=${error} />
    ${found &&
    html`<section>
      ${found.event &&
      html`<p><strong>${found.event.event_type}</strong> of${" "}<a href=${`#/device/${encodeURIComponent(found.event.aggregate_id)}`}>${found.event.aggregate_id}</a>,
        at ${when(found.event.event_time)}</p>`}
      <ol class="timeline" data-testid="lineage">
        ${found.hops.map(
          (h) => html`<li class=${`hop ${h.status}`} data-stage=${h.stage}>
            <span class="stage">${h.stage}</span>
            <span class="badge">${h.status}</span>
            <time>${when(h.at)}</time>
            <span class="detail">${h.detail}</span>
          </li>`,
        )}
      </ol>
      ${found.event && html`<details><summary>Payload</summary><${Json} value=${found.event.payload} /></details>`}
    </section>`}
  </main>`;
}
