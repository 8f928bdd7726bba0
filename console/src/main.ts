// The Cornjacket console (issue 19): sign-in, overview, live tail. Preact + htm (no JSX
// transform), hash routes so the edge serves one page.
import { html } from "htm/preact";
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import {
  ApiError,
  checkToken,
  health,
  saveToken,
  savedToken,
  watchEvents,
  type EventEnvelope,
  type Health,
  type WatchFilter,
} from "./api";
import "./style.css";

const MAX_ROWS = 500;

function useRoute(): string {
  const [route, setRoute] = useState(location.hash || "#/overview");
  useEffect(() => {
    const on = () => setRoute(location.hash || "#/overview");
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function SignIn(props: { onToken: (t: string) => void }) {
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = text.trim();
    try {
      await checkToken(token);
      saveToken(token);
      props.onToken(token);
    } catch (err) {
      const status = err instanceof ApiError ? ` (${err.status})` : "";
      setError(`${(err as Error).message}${status}`);
    }
  };
  return html`<main>
    <h1>Sign in</h1>
    <p>Paste a token (<code>cornjacket token --scope read</code>). It stays in this tab only.</p>
    <form onSubmit=${submit}>
      <label>Token<textarea name="token" aria-label="token" value=${text}
        onInput=${(e: Event) => setText((e.target as HTMLTextAreaElement).value)} /></label>
      <p><button type="submit">Sign in</button></p>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

function Overview() {
  const [h, setH] = useState<Health | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const load = () =>
      health()
        .then((v) => live && (setH(v), setError("")))
        .catch((e: Error) => live && setError(e.message));
    load();
    const timer = setInterval(load, 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);
  return html`<main>
    <h1>Overview</h1>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${h &&
    html`<p>Platform: <strong data-testid="health" class=${h.status === "healthy" ? "ok" : "error"}
        >${h.status}</strong></p>
      ${h.unhealthy?.length
        ? html`<p class="error">Not serving: ${h.unhealthy.join(", ")}</p>`
        : html`<p>Every service is serving.</p>`}`}
    <p class="status">Refreshed every 5 s from /health.</p>
  </main>`;
}

function Tail(props: { token: string }) {
  const [filter, setFilter] = useState<WatchFilter>({ event_type_prefix: "", aggregate_id: "" });
  const [draft, setDraft] = useState<WatchFilter>(filter);
  const [rows, setRows] = useState<EventEnvelope[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const [state, setState] = useState("connecting");
  const pausedRef = useRef(false);
  const holdRef = useRef<EventEnvelope[]>([]);
  pausedRef.current = paused;

  useEffect(() => {
    const abort = new AbortController();
    let position = "";
    setRows([]);
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          await watchEvents(
            props.token,
            filter,
            position,
            (m) => {
              position = m.position || position;
              if (m.heartbeat) setState("live");
              if (m.end) setState(`ended: ${m.end.message}`);
              if (!m.event) return;
              if (pausedRef.current) {
                holdRef.current.push(m.event);
                setHeld(holdRef.current.length);
              } else {
                const ev = m.event;
                setRows((r) => [ev, ...r].slice(0, MAX_ROWS));
              }
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
    run();
    return () => abort.abort();
  }, [props.token, filter]);

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
    <p class="status" data-testid="tail-state">${state}</p>
    <table>
      <thead><tr><th>Ingested</th><th>Type</th><th>Event id</th><th>Aggregate</th><th>Payload</th></tr></thead>
      <tbody data-testid="tail">
        ${rows.map(
          (ev) => html`<tr key=${ev.event_id} data-event-id=${ev.event_id}>
            <td>${ev.ingested_at}</td><td>${ev.event_type}</td><td><code>${ev.event_id}</code></td>
            <td>${ev.aggregate_id}</td><td><code>${JSON.stringify(ev.payload)}</code></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </main>`;
}

function App() {
  const route = useRoute();
  const [token, setToken] = useState(savedToken());
  const [h, setH] = useState<Health | null>(null);
  useEffect(() => {
    health().then(setH, () => setH({ status: "unreachable" }));
  }, []);
  if (!h) return html`<main><p>Loading…</p></main>`;
  const insecure = h.auth === "disabled";
  const nav = (href: string, label: string) =>
    html`<a href=${href} aria-current=${route === href ? "page" : undefined}>${label}</a>`;
  const signOut = () => (saveToken(""), setToken(""));
  return html`
    ${insecure && html`<div class="warning" role="alert">${h.warning}</div>`}
    <header>
      <strong>Cornjacket</strong>
      ${nav("#/overview", "Overview")} ${nav("#/tail", "Live tail")}
      ${!insecure && token && html`<button type="button" onClick=${signOut}>Sign out</button>`}
    </header>
    ${!insecure && !token
      ? html`<${SignIn} onToken=${setToken} />`
      : route === "#/tail"
        ? html`<${Tail} token=${insecure ? "" : token} />`
        : html`<${Overview} />`}
  `;
}

render(html`<${App} />`, document.getElementById("app")!);
