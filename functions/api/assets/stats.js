// The status bar and the system's own figures: throughput, latencies, the merge and the
// counters, as line charts over the last hour.

import { $, COLOURS, fill, fmt, h, s, time } from "./dom.js";
import { state } from "./state.js";

export function renderStatus() {
  const st = state.stats;
  let eventTime = null;
  if (st) for (const sh of st.shards) if (sh.max_event && (!eventTime || sh.max_event > eventTime)) eventTime = sh.max_event;
  const open = state.alarms ? state.alarms.open : 0;
  $("status").textContent =
    "Updated " + state.lastOk.toLocaleTimeString() +
    " · event time " + time(eventTime) +
    " · " + state.intersections.length + " intersections · " + open + " open alarm" + (open === 1 ? "" : "s") +
    (st ? " · readings accepted " + st.counters.accepted.toLocaleString() : "");
}

// A line chart: series = [{name, colour, dashed, points: [[xMs, y]]}], x over [from, to].
function lineChart(svg, series, from, to, unit) {
  const W = 560, H = 200, L = 48, R = 10, T = 10, B = 26;
  const ys = series.flatMap((sr) => sr.points.map((p) => p[1]));
  let yMax = Math.max(1, ...ys);
  const mag = Math.pow(10, Math.floor(Math.log10(yMax)));
  yMax = Math.ceil(yMax / mag) * mag;
  const X = (t) => L + (W - L - R) * (to > from ? (t - from) / (to - from) : 0.5);
  const Y = (v) => H - B - (H - T - B) * (v / yMax);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = yMax * i / 4;
    parts.push(s("line", { class: "grid-line", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    parts.push(s("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end", text: v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k" : String(Math.round(v * 10) / 10) }));
  }
  // Ticks on whole minutes (UTC), at most seven.
  const step = [1, 2, 5, 10, 15, 30, 60].map((m) => m * 60000).find((st) => (to - from) / st <= 7) || 3600000;
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    const d = new Date(t);
    parts.push(s("line", { class: "grid-line", x1: X(t), x2: X(t), y1: T, y2: H - B }));
    parts.push(s("text", { x: X(t), y: H - 8, "text-anchor": "middle",
      text: String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0") }));
  }
  parts.push(s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  parts.push(s("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  series.forEach((sr, i) => {
    const pts = sr.points.slice().sort((a, b) => a[0] - b[0]);
    if (pts.length === 1) parts.push(s("circle", { cx: X(pts[0][0]), cy: Y(pts[0][1]), r: 3, fill: sr.colour }));
    if (pts.length > 1) {
      parts.push(s("polyline", {
        class: "series" + (sr.dashed ? " dashed" : ""), stroke: sr.colour, "data-series": sr.name,
        points: pts.map((p) => X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" "),
      }));
    }
    parts.push(s("rect", { x: L + 8 + i * 150, y: T, width: 10, height: 3, fill: sr.colour }));
    parts.push(s("text", { x: L + 22 + i * 150, y: T + 5, text: sr.name }));
  });
  if (!ys.length) parts.push(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", text: "no figures yet" }));
  parts.push(s("text", { x: 4, y: T + 4, text: unit }));
  fill(svg, parts);
}

// A window length as the API writes it (15m, 1h, 24h, 30s) in ms.
function windowMs(text) {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) return 0;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
}

export function renderCharts() {
  const st = state.stats;
  if (!st) return;
  const to = Date.parse(st.now);
  const first = Math.min(to - 10 * 60000, ...st.series.map((p) => p.minute_ms));
  const from = Math.max(Date.parse(st.since), first);
  const fn = (name) => st.series.filter((p) => p.function === name);
  // The minute under way is unfinished: its count is scaled to a whole minute, once 15 s of it
  // have passed (before that it is left out).
  const perMinute = (name) => fn(name)
    .filter((p) => to - p.minute_ms >= 15000)
    .map((p) => [p.minute_ms, to - p.minute_ms < 60000 ? Math.round(p.records * 60000 / (to - p.minute_ms)) : p.records]);
  lineChart($("chart-throughput"), [
    { name: "ingest", colour: COLOURS[0], points: perMinute("ingest") },
    { name: "fault", colour: COLOURS[1], dashed: true, points: perMinute("fault") },
  ], from, to, "/min");
  lineChart($("chart-latency"), [
    { name: "mean", colour: COLOURS[0], points: fn("ingest").map((p) => [p.minute_ms, p.mean_latency_ms]) },
    { name: "max", colour: COLOURS[1], dashed: true, points: fn("ingest").map((p) => [p.minute_ms, p.max_latency_ms]) },
  ], from, to, "ms");
  // Arrival to the first result of each window length, and to the retiming it caused.
  const resultSeries = [...new Set(st.series.map((p) => p.function).filter((f) => f.startsWith("result_")))]
    .sort((a, b) => windowMs(a.slice(7)) - windowMs(b.slice(7)));
  lineChart($("chart-result-latency"), [...resultSeries, "retiming"].map((name, i) => ({
    name: name === "retiming" ? "retiming" : name.slice(7),
    colour: COLOURS[i % COLOURS.length],
    dashed: name === "retiming",
    points: fn(name).filter((p) => p.records > 0).map((p) => [p.minute_ms, p.mean_latency_ms / 1000]),
  })), from, to, "s");
  const total = (name) => (st.functions || []).find((f) => f.function === name);
  const merge = total("merge"), retiming = total("retiming");
  fill($("merge-figures"), [
    ["merge runs", merge ? merge.invocations.toLocaleString() : "0"],
    ["mean run", merge ? fmt(merge.mean_latency_ms, 0) + " ms" : "–"],
    ["windows closed", merge ? merge.accepted.toLocaleString() : "0"],
    ["retimed", retiming ? retiming.accepted.toLocaleString() : "0"],
  ].map(([k, v]) => h("div", { "data-merge": k }, h("span", { text: k }), h("span", { text: v }))));
  const c = st.counters;
  fill($("counters"), [["accepted", c.accepted], ["rejected", c.rejected], ["late", c.late], ["duplicates", c.duplicates], ["shards", st.shards.length]]
    .map(([k, v]) => h("div", { "data-counter": k }, h("span", { text: k }), h("span", { text: v.toLocaleString() }))));
}
