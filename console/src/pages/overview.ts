// Overview: health of every service and the figures the API has, refreshed every 5 s.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";

import { get, health, type Anomaly, type Breaker, type Health, type Page, type Stats } from "../api";
import { message, type Session } from "../ui";

interface Figures {
  health: Health | null;
  dlqPending?: number | string;
  failedDeliveries?: number | string;
  openBreakers?: number | string;
  anomaliesHour?: number | string;
  stats?: Stats;
  statsError?: string;
}

const settle = async <T>(p: Promise<T>, f: (v: T) => number | string): Promise<number | string> => {
  try {
    return f(await p);
  } catch (e) {
    return `unavailable: ${message(e)}`;
  }
};

async function figures(s: Session): Promise<Figures> {
  const hourAgo = new Date(Date.now() - 3600_000).toISOString();
  const admin = s.admin
    ? await Promise.all([
        settle(get<Page>(s.token, "/api/v1/dlq", { "filter.status": "pending", limit: 1 }), (r) => r.total ?? 0),
        settle(get<Page>(s.token, "/api/v1/deliveries", { status: "failed", limit: 1 }), (r) => r.total ?? 0),
        settle(
          get<{ breakers?: Breaker[] }>(s.token, "/api/v1/breakers"),
          (r) => (r.breakers ?? []).filter((b) => b.state !== "closed").length,
        ),
      ])
    : [];
  const [h, anomalies, stats] = await Promise.all([
    health().catch(() => ({ status: "unreachable" }) as Health),
    settle(
      get<{ anomalies?: Anomaly[]; next_page_token?: string }>(s.token, "/api/v1/inference/anomalies", {
        from: hourAgo,
        page_size: 100,
      }),
      (r) => `${(r.anomalies ?? []).length}${r.next_page_token ? "+" : ""}`,
    ),
    get<Stats>(s.token, "/api/v1/stats").then(
      (v) => ({ stats: v }),
      (e: unknown) => ({ statsError: `unavailable: ${message(e)}` }),
    ),
  ]);
  return {
    health: h,
    dlqPending: admin[0],
    failedDeliveries: admin[1],
    openBreakers: admin[2],
    anomaliesHour: anomalies,
    ...stats,
  };
}

const num = (v?: string | number) => Number(v ?? 0);
const capped = (v: string | number | undefined, more?: boolean) => `${num(v)}${more ? "+" : ""}`;

function age(seconds?: number): string {
  const s = seconds ?? 0;
  if (s < 1) return "";
  return s < 120 ? `, oldest ${Math.round(s)} s` : `, oldest ${Math.round(s / 60)} min`;
}

/** Ingest rate, outbox and consumer lag (GET /api/v1/stats, read scope). */
function Flow(props: { stats?: Stats; error?: string }) {
  const st = props.stats;
  if (!st) return props.error ? html`<p class="error" data-testid="stats-error">${props.error}</p>` : null;
  const lagging = (st.consumer_lag ?? []).filter((g) => !g.known || num(g.lag) > 0).length;
  return html`<section class="cards">
      <div class="card figure">
        <h2>Ingest rate</h2>
        <p data-testid="ingest-rate" class="big">${(st.ingest_rate_per_second ?? 0).toFixed(1)}/s</p>
        <p data-testid="accepted-minute">${capped(st.accepted_last_minute, st.accepted_last_minute_capped)} accepted in the last minute</p>
      </div>
      <div class="card figure">
        <h2>Outbox</h2>
        <p data-testid="outbox-depth" class=${num(st.outbox_depth) > 0 ? "big error" : "big"}>${capped(st.outbox_depth, st.outbox_depth_capped)}</p>
        <p>rows waiting for the relay${age(st.outbox_oldest_age_seconds)}</p>
      </div>
      <div class="card figure">
        <h2>Consumer lag</h2>
        <table data-testid="consumer-lag">
          <tbody>${(st.consumer_lag ?? []).map(
            (g) => html`<tr data-group=${g.group}><td>${g.group}</td>
              <td class=${!g.known || num(g.lag) > 0 ? "error" : ""}>${g.known ? num(g.lag) : "unknown"}</td></tr>`,
          )}</tbody>
        </table>
        <p>${lagging ? `${lagging} behind` : "every group caught up"}</p>
      </div>
    </section>
    ${st.unavailable?.length
      ? html`<p class="error" data-testid="stats-unavailable">Not answering: ${st.unavailable.join(", ")}</p>`
      : null}`;
}

function Figure(props: { label: string; value?: number | string; href?: string; id: string }) {
  if (props.value === undefined) return null;
  const bad = typeof props.value === "number" && props.value > 0;
  return html`<div class="card figure">
    <h2>${props.href ? html`<a href=${props.href}>${props.label}</a>` : props.label}</h2>
    <p data-testid=${props.id} class=${bad ? "big error" : "big"}>${props.value}</p>
  </div>`;
}

export function Overview(props: { session: Session }) {
  const [f, setF] = useState<Figures | null>(null);
  useEffect(() => {
    let live = true;
    const load = () => figures(props.session).then((v) => live && setF(v));
    void load();
    const timer = setInterval(load, 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [props.session]);
  const h = f?.health;
  return html`<main>
    <h1>Overview</h1>
    ${h &&
    html`<p>Platform: <strong data-testid="health" class=${h.status === "healthy" ? "ok" : "error"}
        >${h.status}</strong></p>
      ${h.unhealthy?.length
        ? html`<p class="error">Not serving: ${h.unhealthy.join(", ")}</p>`
        : html`<p>Every service is serving.</p>`}`}
    ${f &&
    html`<section class="cards">
      <${Figure} id="dlq-pending" label="Dead letters pending" value=${f.dlqPending} href="#/dlq" />
      <${Figure} id="failed-deliveries" label="Failed deliveries" value=${f.failedDeliveries} href="#/dlq" />
      <${Figure} id="open-breakers" label="Open breakers" value=${f.openBreakers} href="#/breakers" />
      <${Figure} id="anomalies-hour" label="Anomalies, last hour" value=${f.anomaliesHour} />
    </section>
    <${Flow} stats=${f.stats} error=${f.statsError} />`}
    <p class="status">Refreshed every 5 s (the figures are at most about a second old).</p>
  </main>`;
}
