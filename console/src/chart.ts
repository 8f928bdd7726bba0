// The series chart (uPlot), loaded with the device page only: a line of bucket averages and
// the AI service's anomalies as red points on it.
import uPlot from "uplot";

export interface ChartData {
  times: number[]; // seconds since the epoch, ascending
  values: (number | null)[];
  anomalies: (number | null)[]; // the anomaly's value at its time, null elsewhere
  start: number; // the window shown, seconds (a single point would otherwise span years)
  end: number;
}

export function drawChart(el: HTMLElement, metric: string, data: ChartData): () => void {
  const width = Math.max(280, Math.min(el.clientWidth || 800, 1150));
  const plot = new uPlot(
    {
      width,
      height: 260,
      scales: { x: { time: true, range: [data.start, data.end] } },
      series: [
        {},
        { label: metric, stroke: "#2463b8", width: 2, spanGaps: true },
        {
          label: "anomaly",
          stroke: "#c0162a",
          fill: "#c0162a",
          width: 0,
          points: { show: true, size: 9, fill: "#c0162a" },
        },
      ],
    },
    [data.times, data.values, data.anomalies],
    el,
  );
  return () => plot.destroy();
}
