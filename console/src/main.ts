// The Cornjacket console (issue 19). Preact + htm (no JSX transform), hash routes so the edge
// serves one page. Scopes are read from the token for display only: the API enforces them.
import { html } from "htm/preact";
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import "uplot/dist/uPlot.min.css";

import { ApiError, checkToken, health, saveToken, savedToken, tokenScopes, type Health } from "./api";
import { Audit } from "./pages/audit";
import { Breakers } from "./pages/breakers";
import { Deliveries } from "./pages/deliveries";
import { Device } from "./pages/device";
import { Dlq } from "./pages/dlq";
import { Lineage } from "./pages/lineage";
import { Overview } from "./pages/overview";
import { Projections } from "./pages/projections";
import { Rules } from "./pages/rules";
import { Tail } from "./pages/tail";
import "./style.css";
import type { Session } from "./ui";

function useRoute(): string[] {
  const [route, setRoute] = useState(location.hash || "#/overview");
  useEffect(() => {
    const on = () => setRoute(location.hash || "#/overview");
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  // "#/device/dev%2F1" -> ["device", "dev/1"]
  const [page, ...rest] = route.replace(/^#\/?/, "").split("/");
  return [page || "overview", decodeURIComponent(rest.join("/"))];
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

// [route, label, needs admin]
const PAGES: [string, string, boolean][] = [
  ["overview", "Overview", false],
  ["tail", "Live tail", false],
  ["device", "Devices", false],
  ["lineage", "Lineage", false],
  ["projections", "Projections", false],
  ["dlq", "Dead letters", true],
  ["rules", "Rules", true],
  ["deliveries", "Deliveries", true],
  ["breakers", "Breakers", true],
  ["audit", "Audit", true],
];

function Page(props: { page: string; arg: string; session: Session }) {
  const { page, arg, session } = props;
  switch (page) {
    case "tail":
      return html`<${Tail} session=${session} />`;
    case "device":
      return html`<${Device} session=${session} device=${arg} />`;
    case "lineage":
      return html`<${Lineage} session=${session} eventId=${arg} />`;
    case "projections":
      return html`<${Projections} session=${session} />`;
    case "dlq":
      return html`<${Dlq} session=${session} />`;
    case "rules":
      return html`<${Rules} session=${session} />`;
    case "deliveries":
      return html`<${Deliveries} key=${arg} session=${session} ruleId=${arg} />`;
    case "breakers":
      return html`<${Breakers} session=${session} />`;
    case "audit":
      return html`<${Audit} session=${session} />`;
    default:
      return html`<${Overview} session=${session} />`;
  }
}

function App() {
  const [page, arg] = useRoute();
  const [token, setToken] = useState(savedToken());
  const [h, setH] = useState<Health | null>(null);
  useEffect(() => {
    health().then(setH, () => setH({ status: "unreachable" }));
  }, []);
  const insecure = h?.auth === "disabled";
  const session = useMemo<Session>(
    () =>
      insecure ? { token: "", admin: true } : { token, admin: tokenScopes(token).has("admin") },
    [insecure, token],
  );
  if (!h) return html`<main><p>Loading…</p></main>`;
  const signedIn = insecure || !!token;
  const signOut = () => (saveToken(""), setToken(""));
  return html`
    ${insecure && html`<div class="warning" role="alert">${h.warning}</div>`}
    <header>
      <strong>Cornjacket</strong>
      ${signedIn &&
      html`<nav aria-label="pages">${PAGES.filter(([, , admin]) => !admin || session.admin).map(
        ([route, label]) =>
          html`<a href=${`#/${route}`} aria-current=${page === route ? "page" : undefined}>${label}</a>`,
      )}</nav>`}
      ${!insecure && token && html`<button type="button" onClick=${signOut}>Sign out</button>`}
    </header>
    ${signedIn
      ? html`<${Page} page=${page} arg=${arg} session=${session} />`
      : html`<${SignIn} onToken=${setToken} />`}
  `;
}

render(html`<${App} />`, document.getElementById("app")!);
