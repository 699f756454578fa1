// The timings: every intersection's cycle, greens, plan and mode; the selected one's plan, its
// phases as bars and its retimings as a chart.

import { $, COLOURS, fill, fmt, h, s, shortTime } from "./dom.js";
import { modeOf, state } from "./state.js";
import { select } from "./refresh.js";

export function renderTimings() {
  const yellow = state.config ? state.config.webster.yellow_s : 4;
  fill($("timings"), state.intersections.map((x) => {
    const cycle = Math.max(0, ...x.phases.map((p) => p.green_s + yellow + p.red_s));
    return h("tr", { class: "link", onclick: () => select(x.id) },
      h("td", { text: x.id }),
      h("td", { class: "num", text: fmt(cycle) }),
      h("td", { text: x.phases.map((p) => fmt(p.green_s, 0)).join(" / ") }),
      h("td", { "data-plan": x.id, text: planRange(x.plan) }),
      h("td", { class: "muted", "data-mode": modeOf(x),
        text: modeOf(x) !== "adaptive" ? modeOf(x) : (x.retimed_from || "fixed (not retimed yet)") }));
  }));
}

// Each phase's minimum to maximum green of a plan, and its offset when it has one.
function planRange(plan) {
  if (!plan) return "–";
  const range = plan.phases.map((p) => fmt(p.min_green_s, 0) + "–" + fmt(p.max_green_s, 0)).join(" / ");
  return plan.offset_s === null || plan.offset_s === undefined ? range : range + " · offset " + fmt(plan.offset_s, 0);
}

// The plan an actuated controller runs (docs/contracts.md, "Plans"): per phase its minimum,
// fixed-time and maximum green; the cycle, and the offset when it is coordinated.
export function renderPlan(plan, phases) {
  if (!plan) {
    $("detail-plan-text").textContent = "";
    fill($("detail-plan"));
    return;
  }
  $("detail-plan-text").textContent = "cycle " + fmt(plan.cycle_s) + " s · " +
    (plan.offset_s === null || plan.offset_s === undefined ? "not coordinated" : "offset " + fmt(plan.offset_s) + " s");
  fill($("detail-plan"), plan.phases.map((p, i) => h("tr", { "data-phase": i },
    h("td", { text: phases[i] ? "lights " + phases[i].lights.join(",") : String(i) }),
    ...["min_green_s", "green_s", "max_green_s"].map((k) =>
      h("td", { class: "num", "data-field": k, "data-value": p[k], text: fmt(p[k]) })))));
}

// A timing's phases as bars of green, yellow and red over its cycle.
export function phaseBars(svg, timing) {
  const yellow = state.config ? state.config.webster.yellow_s : 4;
  const W = 560, L = 70, rowH = 22;
  const cycle = Math.max(1, timing.cycle_s);
  const k = (W - L - 10) / cycle;
  const rows = timing.phases.map((p, i) => {
    const y = 6 + i * rowH;
    return s("g", {},
      s("text", { x: 0, y: y + 13, text: "lights " + p.lights.join(",") }),
      s("rect", { x: L, y, width: p.green_s * k, height: 16, fill: "#43a047" }, s("title", { text: "green " + fmt(p.green_s) + " s" })),
      s("rect", { x: L + p.green_s * k, y, width: yellow * k, height: 16, fill: "#fdd835" }, s("title", { text: "yellow " + fmt(yellow) + " s" })),
      s("rect", { x: L + (p.green_s + yellow) * k, y, width: Math.max(0, p.red_s) * k, height: 16, fill: "#e53935" }, s("title", { text: "red " + fmt(p.red_s) + " s" })),
      s("text", { class: "on-bar", x: L + 4, y: y + 12, text: fmt(p.green_s, 0) + " s" }));
  });
  svg.setAttribute("viewBox", "0 0 " + W + " " + Math.max(40, 12 + timing.phases.length * rowH));
  fill(svg, rows);
}

// The retimings of an intersection: its cycle and each phase's green, one point per retiming.
export function historyChart(svg, history) {
  const W = 560, H = 200, L = 40, R = 10, T = 16, B = 30;
  if (!history.length) { fill(svg, s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", text: "not retimed yet" })); return; }
  const n = history.length;
  const phases = Math.max(...history.map((t) => t.phases.length));
  const yMax = Math.max(10, ...history.flatMap((t) => t.phases.map((p) => p.green_s)), ...history.map((t) => t.cycle_s));
  const X = (i) => L + (W - L - R) * (n === 1 ? 0.5 : i / (n - 1));
  const Y = (v) => H - B - (H - T - B) * v / yMax;
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = yMax * i / 4;
    parts.push(s("line", { class: "grid-line", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    parts.push(s("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end", text: Math.round(v) }));
  }
  const every = Math.max(1, Math.ceil(n / 6));
  history.forEach((t, i) => {
    // Every `every`-th retiming is labelled, and the last one (then not its close neighbour).
    const last = i === n - 1;
    if (last || (i % every === 0 && n - 1 - i >= every / 2)) {
      const label = (t.retimed_from || t.at || "").split("@").pop();
      const anchor = n > 1 && i === n - 1 ? "end" : (n > 1 && i === 0 ? "start" : "middle");
      parts.push(s("text", { x: X(i), y: H - 10, "text-anchor": anchor, text: shortTime(label).slice(-5) }));
    }
  });
  const series = [{ name: "cycle", colour: "#607d8b", dashed: true, values: history.map((t) => t.cycle_s) }];
  for (let p = 0; p < phases; p++) {
    series.push({ name: "phase " + (p + 1) + " green", colour: COLOURS[p % COLOURS.length],
      values: history.map((t) => (t.phases[p] ? t.phases[p].green_s : null)) });
  }
  series.forEach((sr, i) => {
    const pts = sr.values.map((v, j) => (v === null ? null : X(j).toFixed(1) + "," + Y(v).toFixed(1))).filter(Boolean);
    if (pts.length === 1) {
      const [cx, cy] = pts[0].split(",");
      parts.push(s("circle", { cx, cy, r: 3, fill: sr.colour }));
    } else {
      parts.push(s("polyline", { class: "series" + (sr.dashed ? " dashed" : ""), stroke: sr.colour, points: pts.join(" ") }));
    }
    parts.push(s("rect", { x: L + 8 + i * 120, y: 2, width: 10, height: 3, fill: sr.colour }));
    parts.push(s("text", { x: L + 22 + i * 120, y: 7, text: sr.name }));
  });
  parts.push(s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  parts.push(s("text", { x: 2, y: T + 10, text: "s" }));
  fill(svg, parts);
}
