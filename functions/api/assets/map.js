// The map: every intersection at its place, coloured by its mean speed, ringed when a lamp is
// broken, marked when above the median vehicle count.

import { fill, fmt, s, $ } from "./dom.js";
import { busy, openAlarmsById, speeds, state } from "./state.js";
import { select } from "./refresh.js";
import { silentText } from "./alarms.js";

function speedColour(v) {
  // 10 km/h red → 35 amber → 60 green.
  const t = Math.max(0, Math.min(1, (v - 10) / 50));
  const stops = [[216, 67, 21], [249, 168, 37], [46, 125, 50]];
  const [a, b, u] = t < 0.5 ? [stops[0], stops[1], t * 2] : [stops[1], stops[2], (t - 0.5) * 2];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * u));
  return "rgb(" + c.join(",") + ")";
}

export function renderMap() {
  const svg = $("map");
  const xs = state.intersections;
  $("map-count").textContent = "(" + xs.length + ")";
  if (!xs.length) { fill(svg, s("text", { x: 20, y: 40, text: "No intersections yet." })); return; }
  const W = 640, H = 420, pad = 28;
  const lats = xs.map((x) => x.lat), lons = xs.map((x) => x.lon);
  const latMid = (Math.min(...lats) + Math.max(...lats)) / 2;
  const k = Math.cos(latMid * Math.PI / 180);
  const px = xs.map((x) => x.lon * k), py = xs.map((x) => -x.lat);
  const x0 = Math.min(...px), x1 = Math.max(...px), y0 = Math.min(...py), y1 = Math.max(...py);
  const span = Math.max(x1 - x0, y1 - y0, 1e-9);
  const scale = Math.min((W - 2 * pad) / Math.max(x1 - x0, span * 1e-3), (H - 2 * pad) / Math.max(y1 - y0, span * 1e-3));
  const ox = (W - (x1 - x0) * scale) / 2, oy = (H - (y1 - y0) * scale) / 2;
  const pos = (i) => [ox + (px[i] - x0) * scale, oy + (py[i] - y0) * scale];
  const r = Math.max(4, Math.min(13, 220 / Math.sqrt(xs.length)));
  const sp = speeds(), hot = busy(), broken = openAlarmsById();
  const nodes = [];
  xs.forEach((x, i) => {
    const [cx, cy] = pos(i);
    const v = sp.get(x.id);
    const alarms = broken.get(x.id) || [];
    const tip = [x.id + (x.name ? " — " + x.name : "")];
    if (v !== undefined) tip.push("mean speed " + fmt(v) + " km/h");
    if (hot.has(x.id)) tip.push("above the median vehicle count");
    for (const a of alarms) tip.push(a.kind === "sensor_silent" ? silentText(a) : "broken " + a.lamp + " lamp on light " + a.light);
    const g = s("g", {
      class: "node" + (alarms.length ? " broken" : "") + (x.id === state.selected ? " selected" : ""),
      "data-id": x.id, tabindex: 0,
      onclick: () => select(x.id),
      onkeydown: (e) => { if (e.key === "Enter") select(x.id); },
    },
    s("title", { text: tip.join("\n") }),
    s("circle", {
      cx, cy, r,
      fill: v !== undefined ? speedColour(v) : "#b0bec5",
      stroke: alarms.length ? "#c62828" : (x.id === state.selected ? "#13202d" : "#ffffff"),
      "stroke-width": alarms.length ? 3.5 : (x.id === state.selected ? 2.5 : 1.5),
    }),
    hot.has(x.id) ? s("circle", { cx, cy, r: Math.max(2, r / 3), fill: "#6a1b9a" }) : null,
    xs.length <= 60 ? s("text", { class: "label", x: cx + r + 2, y: cy + 3, text: x.id }) : null);
    nodes.push(g);
  });
  fill(svg, nodes);
}
