// The selected intersection's traffic over its recent closed windows, from the archive
// (GET /api/intersections/{id}/history): vehicles per window as bars (left axis) and the
// vehicle-weighted mean speed as a line (right axis).

import { fill, fmt, s, shortTime } from "./dom.js";

// A rounded maximum for an axis: 1, 2 or 5 times a power of ten at or above `v`.
function niceMax(v) {
  const mag = Math.pow(10, Math.floor(Math.log10(Math.max(1, v))));
  return [1, 2, 5, 10].map((k) => k * mag).find((m) => m >= v);
}

export function volumeChart(svg, history) {
  const W = 560, H = 200, L = 44, R = 44, T = 16, B = 28;
  const windows = (history && history.windows) || [];
  svg.dataset.windows = String(windows.length);
  if (!windows.length) {
    fill(svg, s("text", { x: W / 2, y: H / 2, "text-anchor": "middle",
      text: history ? "no closed window archived yet" : "loading…" }));
    return;
  }
  const vMax = niceMax(Math.max(...windows.map((w) => w.vehicles)));
  const speeds = windows.map((w) => w.mean_speed_kmh).filter((x) => x !== null);
  const sMax = niceMax(Math.max(10, ...speeds));
  const n = windows.length;
  const slot = (W - L - R) / n;
  const X = (i) => L + slot * (i + 0.5);
  const Yv = (v) => H - B - (H - T - B) * v / vMax;
  const Ys = (v) => H - B - (H - T - B) * v / sMax;
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const k = i / 4;
    parts.push(s("line", { class: "grid-line", x1: L, x2: W - R, y1: Yv(vMax * k), y2: Yv(vMax * k) }));
    parts.push(s("text", { x: L - 4, y: Yv(vMax * k) + 3, "text-anchor": "end", text: Math.round(vMax * k) }));
    parts.push(s("text", { x: W - R + 4, y: Ys(sMax * k) + 3, text: Math.round(sMax * k) }));
  }
  windows.forEach((w, i) => {
    parts.push(s("rect", {
      class: "volume", x: X(i) - slot * 0.4, y: Yv(w.vehicles), width: slot * 0.8, height: Yv(0) - Yv(w.vehicles),
      fill: "#90caf9", "data-start": w.start, "data-vehicles": w.vehicles,
    }, s("title", { text: shortTime(w.start) + ": " + w.vehicles + " vehicles, " + w.readings + " readings, " +
      (w.mean_speed_kmh === null ? "no vehicle" : fmt(w.mean_speed_kmh) + " km/h") })));
  });
  const every = Math.max(1, Math.ceil(n / 6));
  windows.forEach((w, i) => {
    if (i % every === 0 || i === n - 1) {
      parts.push(s("text", { x: X(i), y: H - 10, "text-anchor": "middle", text: shortTime(w.start).slice(-5) }));
    }
  });
  const points = windows.map((w, i) => (w.mean_speed_kmh === null ? null : X(i).toFixed(1) + "," + Ys(w.mean_speed_kmh).toFixed(1)))
    .filter(Boolean);
  if (points.length > 1) {
    parts.push(s("polyline", { class: "series", stroke: "#d84315", "data-series": "speed", "data-points": points.length, points: points.join(" ") }));
  } else if (points.length === 1) {
    const [cx, cy] = points[0].split(",");
    parts.push(s("circle", { cx, cy, r: 3, fill: "#d84315", "data-series": "speed", "data-points": 1 }));
  }
  parts.push(s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  parts.push(s("rect", { x: L + 8, y: 2, width: 10, height: 6, fill: "#90caf9" }));
  parts.push(s("text", { x: L + 22, y: 8, text: "vehicles per window" }));
  parts.push(s("rect", { x: L + 168, y: 4, width: 10, height: 3, fill: "#d84315" }));
  parts.push(s("text", { x: L + 182, y: 8, text: "mean speed, km/h (right)" }));
  fill(svg, parts);
}
