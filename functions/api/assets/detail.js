// The selected intersection: its lights with their lamps (save, repair, delete), its control
// mode and limits, the proposal of a manual one, its timings, its traffic over the closed windows.

import { $, busyIn, fill, fmt, h } from "./dom.js";
import { modeOf, openAlarmsById, state } from "./state.js";
import { write } from "./refresh.js";
import { repair } from "./alarms.js";
import { historyChart, phaseBars, renderPlan } from "./timings.js";
import { volumeChart } from "./volume.js";

export function renderDetail() {
  const x = state.intersections.find((i) => i.id === state.selected);
  $("detail-empty").hidden = !!x;
  $("detail-body").hidden = !x;
  $("detail-id").textContent = x ? x.id : "";
  if (!x) return;
  const alarms = openAlarmsById().get(x.id) || [];
  $("detail-meta").textContent = (x.name ? x.name + " · " : "") + fmt(x.lat, 5) + ", " + fmt(x.lon, 5) +
    " · " + x.lights.length + " lights · " + x.phases.length + " phases" +
    (alarms.length ? " · " + alarms.length + " open alarm" + (alarms.length === 1 ? "" : "s") : "");
  // Details fetched for another selection (a refresh that was under way) are not shown.
  const detail = state.detail && state.detail.id === x.id ? state.detail : null;
  const lamps = new Map(((detail && detail.lamps) || []).map((l) => [l.light, l]));
  if (!busyIn("detail-lights")) fill($("detail-lights"), x.lights.map((l) => {
    const lamp = lamps.get(l.light);
    const sat = h("input", { type: "number", min: 1, step: 1, value: l.saturation_veh_h, "aria-label": "Saturation of light " + l.light });
    const posText = typeof l.position === "string" ? l.position : (l.position ? JSON.stringify(l.position) : "");
    const pos = h("input", { type: "text", size: 6, value: posText, placeholder: typeof l.approach === "string" ? l.approach : "",
      "aria-label": "Position of light " + l.light });
    return h("tr", { "data-light": l.light },
      h("td", { text: l.light }),
      h("td", {}, sat),
      h("td", {}, pos),
      h("td", {}, lamp ? ["red", "yellow", "green"].map((c) =>
        h("i", { class: "lamp " + (lamp.lamps[c] === "broken" ? "broken" : c), title: c + " " + lamp.lamps[c] })) : "…"),
      h("td", {},
        h("button", { type: "button", class: "small secondary", text: "Save",
          onclick: () => saveLight(x, l, sat.value, pos.value) }), " ",
        h("button", { type: "button", class: "small repair", text: "Repair", "data-light": l.light,
          onclick: () => repair(x.id, l.light).catch(() => {}) }), " ",
        h("button", { type: "button", class: "small danger", text: "Delete",
          onclick: () => deleteLight(x, l.light) })));
  }));
  const free = [0, 1, 2, 3].filter((i) => !x.lights.some((l) => l.light === i));
  $("add-light").hidden = !free.length;
  if (!busyIn("add-light")) fill($("add-light-index"), free.map((i) => h("option", { value: i, text: i })));
  renderControl(x);
  const t = detail && detail.timings;
  $("detail-body").dataset.loaded = t ? x.id : "";
  if (!t) {
    $("detail-cycle").textContent = "loading…";
    fill($("detail-phases"));
    renderPlan(null);
    fill($("detail-history"));
  } else {
    $("detail-cycle").textContent = "cycle " + fmt(t.current.cycle_s) + " s · " +
      (modeOf(x) === "manual" ? "operator's plan" : (t.current.retimed_from ? "from " + t.current.retimed_from : "fixed"));
    phaseBars($("detail-phases"), t.current);
    renderPlan(t.current.plan, t.current.phases);
    historyChart($("detail-history"), t.history);
  }
  const history = detail && detail.history;
  $("detail-volume-text").textContent = history && history.windows.length
    ? history.windows.length + " windows of " + history.length : "";
  volumeChart($("detail-volume"), history);
}

function saveLight(x, l, sat, position) {
  const body = Object.assign({}, l, { saturation_veh_h: Number(sat) });
  if (position) body.position = position; else delete body.position;
  write("PUT", "/api/intersections/" + encodeURIComponent(x.id) + "/lights/" + l.light, body,
    "Light " + l.light + " of " + x.id + " saved").catch(() => {});
}

function deleteLight(x, light) {
  if (!confirm("Delete light " + light + " of " + x.id + "?")) return;
  write("DELETE", "/api/intersections/" + encodeURIComponent(x.id) + "/lights/" + light, undefined,
    "Light " + light + " of " + x.id + " deleted").catch(() => {});
}

// The control mode (adaptive, fixed or manual: the operator's plan, Webster's proposal beside
// it) and its limits.
function limitsText(l) {
  if (!l) return "no limits";
  const parts = [];
  if (l.min_green_s && l.min_green_s.length) parts.push("min green " + l.min_green_s.map((m) => (m === null ? "–" : fmt(m, 0))).join(" / ") + " s");
  if (l.max_cycle_s) parts.push("max cycle " + fmt(l.max_cycle_s, 0) + " s");
  if (l.max_green_change) parts.push("max change ±" + fmt(l.max_green_change * 100, 0) + " %");
  return parts.join(" · ") || "no limits";
}

// Sets the selected intersection's mode, keeping its limits.
export function setMode(x, mode) {
  const body = { mode };
  if (x.control && x.control.limits) body.limits = x.control.limits;
  return write("PUT", "/api/intersections/" + encodeURIComponent(x.id) + "/control", body,
    x.id + " is now " + mode);
}

function renderControl(x) {
  // A mode chosen for this intersection and not set yet stays chosen through refreshes.
  const chooser = $("detail-mode");
  if (!busyIn("control-form") && chooser.dataset.chosenFor !== x.id) chooser.value = modeOf(x);
  $("control-form").dataset.mode = modeOf(x);
  $("detail-limits").textContent = limitsText(x.control && x.control.limits);
  const p = modeOf(x) === "manual" ? x.proposal : null;
  $("detail-proposal").hidden = !p;
  if (!p) return;
  $("detail-proposal-text").textContent = "cycle " + fmt(p.cycle_s) + " s from " + p.from + " · Y " + fmt(p.flow_ratio, 2) +
    " · flows " + p.flows.map((f) => "light " + f.light + " " + fmt(f.flow_veh_h, 0) + " veh/h").join(", ");
  phaseBars($("detail-proposal-phases"), p);
}
