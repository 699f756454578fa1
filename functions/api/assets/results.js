// The results of each window length: its top 10 by mean speed and the intersections above its
// median vehicle count, in the window the operator picks.

import { $, fill, fmt, h, shortTime, busyIn } from "./dom.js";
import { shownWindow, state } from "./state.js";
import { select } from "./refresh.js";
import { renderMap } from "./map.js";

function windowPicker(length) {
  const recent = state.recent[length] || [];
  const shown = shownWindow(length);
  const sel = h("select", {
    "aria-label": "Window of length " + length,
    onchange: (e) => { state.chosen[length] = e.target.value; renderTop10(); renderMedians(); renderMap(); },
  });
  sel.append(h("option", { value: "", text: "newest window" }));
  for (const w of recent) {
    const o = h("option", { value: w.start, text: shortTime(w.start) + (w.closed ? "" : " (open)") });
    if (state.chosen[length] === w.start) o.selected = true;
    sel.append(o);
  }
  return h("div", { class: "window-head" },
    shown ? [shortTime(shown.start), " – ", shortTime(shown.end), " ",
      h("span", { class: "badge" + (shown.closed ? "" : " open"), text: shown.closed ? "closed" : "provisional" }),
      " · ", shown.readings.toLocaleString(), " readings"] : "no results yet",
    h("div", {}, sel));
}

export function renderTop10() {
  const box = $("top10");
  if (!state.results || busyIn("top10")) return;
  fill(box, state.results.windows.map((length) => {
    const w = shownWindow(length);
    const top = w ? w.top10 : [];
    const max = Math.max(1, ...top.map((e) => e.mean_speed_kmh));
    return h("div", { class: "top10", "data-length": length },
      h("h3", { text: length }),
      windowPicker(length),
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", { text: "#" }), h("th", { text: "Intersection" }), h("th", { class: "num", text: "km/h" }))),
        h("tbody", {}, top.map((e, i) =>
          h("tr", { class: "link", onclick: () => select(e.intersection_id) },
            h("td", { text: i + 1 }),
            h("td", {}, e.intersection_id, h("div", { class: "bar", "data-w": e.mean_speed_kmh / max })),
            h("td", { class: "num", text: fmt(e.mean_speed_kmh) }))))));
  }));
  for (const b of box.querySelectorAll(".bar")) b.style.width = (100 * Number(b.dataset.w)) + "%";
}

export function renderMedians() {
  const box = $("medians");
  if (!state.results) return;
  fill(box, state.results.windows.map((length) => {
    const w = shownWindow(length);
    const above = w ? w.above_median : [];
    return h("div", { class: "median", "data-length": length },
      h("h3", { text: length }),
      h("div", {}, h("span", { class: "muted", text: "global median " }),
        h("span", { class: "big", text: w ? fmt(w.global_median_vehicles) : "–" }),
        h("span", { class: "muted", text: " vehicles" })),
      h("div", { class: "muted", text: above.length + " intersection" + (above.length === 1 ? "" : "s") + " above it" }),
      h("table", {},
        h("tbody", {}, above.slice(0, 12).map((e) =>
          h("tr", { class: "link", onclick: () => select(e.intersection_id) },
            h("td", { text: e.intersection_id }), h("td", { class: "num", text: fmt(e.median_vehicles) }))))),
      above.length > 12 ? h("div", { class: "muted", text: "+ " + (above.length - 12) + " more" }) : null);
  }));
}
