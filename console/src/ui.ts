// Small shared pieces of the pages: loading state, errors, a confirmed action, paging.
import { html } from "htm/preact";
import { useCallback, useEffect, useState } from "preact/hooks";

import { ApiError } from "./api";

export interface Session {
  token: string;
  /** The token claims the admin scope (display only: the API enforces). */
  admin: boolean;
}

export function message(e: unknown): string {
  const status = e instanceof ApiError ? ` (${e.status})` : "";
  return `${(e as Error).message}${status}`;
}

/** Runs ``load`` now, whenever ``deps`` change and every ``refresh`` ms (0: never);
 * ``reload`` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], refresh = 0) {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState("");
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (v) => live && (setValue(v), setError("")),
      (e) => live && setError(message(e)),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  useEffect(() => {
    if (!refresh) return;
    const timer = setInterval(reload, refresh);
    return () => clearInterval(timer);
  }, [refresh]);
  return { value, error, reload };
}

export function ErrorLine(props: { error: string }) {
  return props.error ? html`<p class="error" role="alert">${props.error}</p>` : null;
}

export function when(t?: string): string {
  if (!t) return "";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/**
 * A button whose action must be confirmed: the first press asks, "Confirm" does it,
 * "Cancel" (or Escape) backs out.
 */
export function ConfirmButton(props: {
  label: string;
  question: string;
  onConfirm: () => Promise<unknown> | void;
}) {
  const [asking, setAsking] = useState(false);
  if (!asking)
    return html`<button type="button" onClick=${() => setAsking(true)}>${props.label}</button>`;
  return html`<span class="confirm" role="group" aria-label=${props.question}
    onKeyDown=${(e: KeyboardEvent) => e.key === "Escape" && setAsking(false)}>
    <span>${props.question}</span>
    <button type="button" class="danger" autofocus
      onClick=${async () => (setAsking(false), await props.onConfirm())}>Confirm</button>
    <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
  </span>`;
}

export function Pager(props: {
  offset: number;
  limit: number;
  total: number;
  onOffset: (o: number) => void;
}) {
  const { offset, limit, total } = props;
  const last = Math.min(offset + limit, total);
  return html`<nav class="pager" aria-label="pages">
    <button type="button" disabled=${offset <= 0}
      onClick=${() => props.onOffset(Math.max(0, offset - limit))}>Previous</button>
    <span data-testid="page-range">${total ? `${offset + 1}–${last} of ${total}` : "none"}</span>
    <button type="button" disabled=${last >= total}
      onClick=${() => props.onOffset(offset + limit)}>Next</button>
  </nav>`;
}

export function Json(props: { value: unknown }) {
  return html`<pre class="json">${JSON.stringify(props.value, null, 2)}</pre>`;
}
