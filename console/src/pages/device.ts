// A device: health, latest values, a metric's series in a chosen bucket with the AI
// service's anomalies marked, and its last event (with a link to its lineage).
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, get, type Anomaly, type LatestValue, type Projection, type Series } from "../api";
import type { ChartData } from "../chart";
import { ErrorLine, Json, message, useLoad, when, type Session } from "../ui";

// Bucket choices: raw reads (under 1m) may span at most 24 h, so each range has its own.
const RANGES: Record<string, { seconds: number; buckets: string[] }> = {
  "1h": { seconds: 3600, buckets: ["10s", "1m", "5m"] },
  "24h": { seconds: 86400, buckets: ["1m", "15m", "1h"] },
  "7d": { seconds: 7 * 86400, buckets: ["1h", "6h", "1d"] },
};

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86400_000 };

function bucketMs(bucket: string): number {
  return Number(bucket.slice(0, -1)) * UNIT_MS[bucket.slice(-1)];
}

async function orNull<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

function chartData(series: Series, anomalies: Anomaly[], start: Date, end: Date): ChartData {
  const origin = Date.parse(series.origin ?? "") / 1000;
  const step = Number(series.bucket_seconds ?? 0);
  const points = new Map<number, [number | null, number | null]>();
  (series.index ?? []).forEach((i, n) => {
    points.set(origin + Number(i) * step, [series.avg?.[n] ?? null, null]);
  });
  for (const a of anomalies) {
    const t = Date.parse(a.event_time) / 1000;
    const at = points.get(t);
    points.set(t, [at?.[0] ?? null, a.value]);
  }
  const times = [...points.keys()].sort((a, b) => a - b);
  return {
    times,
    values: times.map((t) => points.get(t)![0]),
    anomalies: times.map((t) => points.get(t)![1]),
    start: start.getTime() / 1000,
    end: end.getTime() / 1000,
  };
}

function Chart(props: { token: string; device: string; metric: string }) {
  const [range, setRange] = useState("1h");
  const [bucket, setBucket] = useState("1m");
  const box = useRef<HTMLDivElement>(null);
  const { token, device, metric } = props;
  const { value, error } = useLoad(async () => {
    // the window ends at the next bucket boundary after now (buckets start at multiples of
    // their size since the epoch)
    const step = bucketMs(bucket);
    const end = new Date(Math.ceil(Date.now() / step) * step);
    const start = new Date(end.getTime() - RANGES[range].seconds * 1000);
    const d = encodeURIComponent(device);
    const [series, anomalies] = await Promise.all([
      get<Series>(token, `/api/v1/devices/${d}/series/${encodeURIComponent(metric)}`, {
        start: start.toISOString(),
        end: end.toISOString(),
        bucket,
        aggregates: "avg", // the chart plots the average: a quarter of the answer's bytes
      }),
      get<{ anomalies?: Anomaly[] }>(token, "/api/v1/inference/anomalies", {
        device,
        from: start.toISOString(),
        to: end.toISOString(),
        page_size: 100,
      }).then((r) => (r.anomalies ?? []).filter((a) => a.metric === metric)),
    ]);
    return { series, anomalies, start, end };
  }, [device, metric, range, bucket], 10000);
  useEffect(() => {
    if (!value || !box.current) return;
    const el = box.current;
    let destroy = () => {};
    let live = true;
    void import("../chart").then((m) => {
      if (live) destroy = m.drawChart(el, metric, chartData(value.series, value.anomalies, value.start, value.end));
    });
    return () => {
      live = false;
      destroy();
    };
  }, [value]);
  const pickRange = (r: string) => {
    setRange(r);
    if (!RANGES[r].buckets.includes(bucket)) setBucket(RANGES[r].buckets[1]);
  };
  return html`<section>
    <h2>${metric}</h2>
    <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>Range<select name="range" value=${range}
        onChange=${(e: Event) => pickRange((e.target as HTMLSelectElement).value)}>
        ${Object.keys(RANGES).map((r) => html`<option value=${r}>last ${r}</option>`)}
      </select></label>
      <label>Bucket<select name="bucket" value=${bucket}
        onChange=${(e: Event) => setBucket((e.target as HTMLSelectElement).value)}>
        ${RANGES[range].buckets.map((b) => html`<option value=${b}>${b}</option>`)}
      </select></label>
    </form>
    <${ErrorLine} error=${error} />
    <div class="chart" ref=${box} data-testid="chart"
      data-points=${value ? (value.series.index ?? []).length : ""}></div>
    ${value &&
    html`<p class="status">${`${(value.series.index ?? []).length} buckets from ${value.series.source || "no data"}; ${value.anomalies.length} anomalies`}</p>
    ${value.anomalies.length > 0 &&
      html`<table><thead><tr><th>Anomaly at</th><th>Value</th><th>Score</th><th>Reading</th></tr></thead>
        <tbody data-testid="anomalies">${value.anomalies.map(
          (a) => html`<tr><td>${when(a.event_time)}</td><td>${a.value}</td><td>${a.score.toFixed(2)}</td>
            <td><a href=${`#/lineage/${a.source_event_id}`}>lineage</a></td></tr>`,
        )}</tbody></table>`}`}
  </section>`;
}

export function Device(props: { session: Session; device: string }) {
  const [text, setText] = useState(props.device);
  const [metric, setMetric] = useState("");
  const { token } = props.session;
  const device = props.device;
  useEffect(() => setText(device), [device]);
  const { value, error } = useLoad(async () => {
    if (!device) return null;
    const d = encodeURIComponent(device);
    // A device without anomalies has no device_health row: ask for it only when the AI
    // service has an anomaly of the device (no 404 in the browser's log otherwise).
    const healthOf = async () => {
      const any = await get<{ anomalies?: Anomaly[] }>(token, "/api/v1/inference/anomalies", {
        device,
        page_size: 1,
      });
      if (!any.anomalies?.length) return null;
      return orNull(get<Projection>(token, `/api/v1/projections/device_health/${d}`));
    };
    const [latest, health, state] = await Promise.all([
      orNull(get<{ values?: LatestValue[] }>(token, `/api/v1/devices/${d}/latest`)),
      healthOf(),
      orNull(get<Projection>(token, `/api/v1/projections/sensor_state/${d}`)),
    ]);
    return { latest: latest?.values ?? [], health, state };
  }, [device, token], 5000);
  const metrics = value?.latest.map((v) => v.metric) ?? [];
  const shown = metrics.includes(metric) ? metric : metrics[0];
  const status = value?.health ? String(value.health.state.status ?? "") : "ok";
  return html`<main>
    <h1>Device${device ? ` ${device}` : ""}</h1>
    <form class="filters" onSubmit=${(e: Event) => {
      e.preventDefault();
      if (text.trim()) location.hash = `#/device/${encodeURIComponent(text.trim())}`;
    }}>
      <label>Device id<input name="device" value=${text}
        onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Show</button>
    </form>
    <${ErrorLine} error=${error} />
    ${device && html`<p class="status">Refreshed every 5 s (the chart every 10 s).</p>`}
    ${value &&
    html`<section class="cards">
        <div class="card"><h2>Health</h2>
          <p data-testid="device-health" class=${status === "ok" ? "ok" : "error"}>${status}</p>
          ${value.health &&
          html`<p class="status">${`last anomaly ${when(String(value.health.state.last_anomaly_at ?? ""))}, ${String(value.health.state.anomalies_24h ?? 0)} in 24 h`}</p>`}
        </div>
        <div class="card"><h2>Latest values</h2>
          ${value.latest.length
            ? html`<dl data-testid="latest">${value.latest.map(
                (v) => html`<dt>${v.metric}</dt><dd>${v.value} <small>${when(v.time)}</small></dd>`,
              )}</dl>`
            : html`<p class="status">no time series yet</p>`}
        </div>
        <div class="card"><h2>Last event</h2>
          ${value.state
            ? html`<p data-testid="last-event"><a href=${`#/lineage/${value.state.last_event_id}`}
                  >${value.state.last_event_id}</a><br /><small>${when(value.state.last_event_timestamp)}</small></p>
                <${Json} value=${value.state.state} />`
            : html`<p class="status">none</p>`}
        </div>
      </section>
      ${metrics.length > 1 &&
      html`<label>Metric<select name="metric" value=${shown}
          onChange=${(e: Event) => setMetric((e.target as HTMLSelectElement).value)}>
          ${metrics.map((m) => html`<option value=${m}>${m}</option>`)}</select></label>`}
      ${shown && html`<${Chart} token=${token} device=${device} metric=${shown} />`}`}
  </main>`;
}
