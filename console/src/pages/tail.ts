// The live tail: WatchEvents over SSE, filters, pause. Events arriving between two frames are
// rendered once per animation frame, so 1,000 events/s cost ~60 renders/s, not 1,000.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, watchEvents, type EventEnvelope, type WatchFilter } from "../api";
import type { Session } from "../ui";

const MAX_ROWS = 500;

export function Tail(props: { session: Session }) {
  const [filter, setFilter] = useState<WatchFilter>({ event_type_prefix: "", aggregate_id: "" });
  const [draft, setDraft] = useState<WatchFilter>(filter);
  const [rows, setRows] = useState<EventEnvelope[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const [seen, setSeen] = useState(0);
  const [state, setState] = useState("connecting");
  const pausedRef = useRef(false);
  const holdRef = useRef<EventEnvelope[]>([]);
  pausedRef.current = paused;

  useEffect(() => {
    const abort = new AbortController();
    let position = "";
    let incoming: EventEnvelope[] = [];
    let count = 0;
    let frame = 0;
    const flush = () => {
      frame = 0;
      const batch = incoming.reverse();
      incoming = [];
      setSeen(count);
      if (pausedRef.current) {
        holdRef.current.push(...batch.reverse());
        if (holdRef.current.length > MAX_ROWS) holdRef.current.splice(0, holdRef.current.length - MAX_ROWS);
        setHeld(holdRef.current.length);
      } else {
        setRows((r) => batch.concat(r).slice(0, MAX_ROWS));
      }
    };
    setRows([]);
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          await watchEvents(
            props.session.token,
            filter,
            position,
            (m) => {
              position = m.position || position;
              if (m.heartbeat) setState("live");
              if (m.end) setState(`ended: ${m.end.message}`);
              if (!m.event) return;
              incoming.push(m.event);
              if (incoming.length > MAX_ROWS) incoming.splice(0, incoming.length - MAX_ROWS);
              count += 1;
              if (!frame) frame = requestAnimationFrame(flush);
            },
            abort.signal,
          );
        } catch (e) {
          if (abort.signal.aborted) return;
          setState(`disconnected: ${(e as Error).message}; retrying`);
          if (e instanceof ApiError && e.status < 500 && e.status !== 429) return;
        }
        // the stream ended (server shutdown, too slow, proxy): resume from the position
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    void run();
    return () => {
      abort.abort();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [props.session.token, filter]);

  const togglePause = () => {
    if (paused) {
      const back = holdRef.current.reverse();
      holdRef.current = [];
      setHeld(0);
      setRows((r) => [...back, ...r].slice(0, MAX_ROWS));
    }
    setPaused(!paused);
  };
  const field = (name: keyof WatchFilter) => (e: Event) =>
    setDraft({ ...draft, [name]: (e.target as HTMLInputElement).value });

  return html`<main>
    <h1>Live tail</h1>
    <form class="filters" onSubmit=${(e: Event) => (e.preventDefault(), setFilter({ ...draft }))}>
      <label>Event type prefix<input name="event_type_prefix" value=${draft.event_type_prefix}
        onInput=${field("event_type_prefix")} placeholder="sensor." /></label>
      <label>Aggregate<input name="aggregate_id" value=${draft.aggregate_id}
        onInput=${field("aggregate_id")} /></label>
      <button type="submit">Apply</button>
      <button type="button" onClick=${togglePause}>${paused ? `Resume (${held})` : "Pause"}</button>
    </form>
    <p class="status"><span data-testid="tail-state">${state}</span>${"; "}<span data-testid="tail-seen"
      >${seen}</span>${` events seen, the last ${MAX_ROWS} kept`}</p>
    <div class="scroll">
    <table class="tail">
      <thead><tr><th>Ingested</th><th>Type</th><th>Event id</th><th>Aggregate</th><th>Payload</th></tr></thead>
      <tbody data-testid="tail">
        ${rows.map(
          (ev) => html`<tr key=${ev.event_id} data-event-id=${ev.event_id}>
            <td>${ev.ingested_at}</td><td>${ev.event_type}</td>
            <td><a href=${`#/lineage/${ev.event_id}`}><code>${ev.event_id}</code></a></td>
            <td><a href=${`#/device/${encodeURIComponent(ev.aggregate_id)}`}>${ev.aggregate_id}</a></td>
            <td><code>${JSON.stringify(ev.payload)}</code></td>
          </tr>`,
        )}
      </tbody>
    </table>
    </div>
  </main>`;
}
