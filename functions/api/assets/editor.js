// The editor of an intersection: a new one created whole, an edited one saved as a JSON Merge
// Patch of what the operator changed.

import { $, fill, h, toast } from "./dom.js";
import { ApiError } from "./api.js";
import { state } from "./state.js";
import { refresh, write } from "./refresh.js";

function editorLights(x) {
  fill($("f-lights"), [0, 1, 2, 3].map((i) => {
    const l = x ? x.lights.find((m) => m.light === i) : { saturation_veh_h: 1800, position: ["N", "E", "S", "W"][i] };
    const pos = l && typeof l.position === "string" ? l.position : "";
    return h("tr", { "data-light": i },
      h("td", { text: i }),
      h("td", {}, h("input", { type: "checkbox", class: "f-present", checked: !!l, "aria-label": "Light " + i + " present" })),
      h("td", {}, h("input", { type: "number", class: "f-sat", min: 1, step: 1, value: l ? l.saturation_veh_h : 1800, "aria-label": "Saturation of light " + i })),
      h("td", {}, h("input", { type: "text", class: "f-pos", size: 6, value: pos, "aria-label": "Position of light " + i })));
  }));
}

export function phaseRow(p) {
  return h("tr", { class: "f-phase" },
    h("td", {}, h("input", { type: "text", class: "f-plights", size: 8, value: p.lights.join(","), "aria-label": "Lights of the phase" })),
    h("td", {}, h("input", { type: "number", class: "f-green", min: 0, step: "any", value: p.green_s, "aria-label": "Green time" })),
    h("td", {}, h("input", { type: "number", class: "f-red", min: 0, step: "any", value: p.red_s, "aria-label": "Red time" })),
    h("td", {}, h("button", { type: "button", class: "small secondary", text: "Remove", onclick: (e) => e.target.closest("tr").remove() })));
}

export function openEditor(x) {
  state.editing = x || null;
  $("editor-title").textContent = x ? "Edit " + x.id : "New intersection";
  $("f-save").textContent = x ? "Save" : "Create";
  $("f-id").value = x ? x.id : "";
  $("f-id").readOnly = !!x;
  $("f-name").value = x && x.name ? x.name : "";
  const centre = centreOfCity();
  $("f-lat").value = x ? x.lat : centre[0];
  $("f-lon").value = x ? x.lon : centre[1];
  editorLights(x);
  const phases = x ? x.phases : [{ lights: [0, 2], green_s: 30, red_s: 34 }, { lights: [1, 3], green_s: 30, red_s: 34 }];
  fill($("f-phases"), phases.map(phaseRow));
  $("f-error").textContent = "";
}

function centreOfCity() {
  const xs = state.intersections;
  if (!xs.length) return [41.8902, 12.4922];
  const lat = xs.reduce((a, x) => a + x.lat, 0) / xs.length;
  const lon = xs.reduce((a, x) => a + x.lon, 0) / xs.length;
  return [Number(lat.toFixed(6)), Number(lon.toFixed(6))];
}

function numberOrText(v) {
  const n = Number(v);
  return v.trim() !== "" && isFinite(n) ? n : v;
}

function readEditor() {
  const base = state.editing ? JSON.parse(JSON.stringify(state.editing)) : {};
  const x = Object.assign(base, {
    id: $("f-id").value.trim(),
    lat: numberOrText($("f-lat").value),
    lon: numberOrText($("f-lon").value),
  });
  const name = $("f-name").value.trim();
  if (name) x.name = name; else delete x.name;
  const old = new Map((state.editing ? state.editing.lights : []).map((l) => [l.light, l]));
  x.lights = [];
  for (const row of $("f-lights").querySelectorAll("tr")) {
    if (!row.querySelector(".f-present").checked) continue;
    const i = Number(row.dataset.light);
    const l = Object.assign({}, old.get(i) || {}, { light: i, saturation_veh_h: numberOrText(row.querySelector(".f-sat").value) });
    const pos = row.querySelector(".f-pos").value.trim();
    if (pos) l.position = pos; else if (typeof l.position === "string") delete l.position;
    x.lights.push(l);
  }
  const oldPhases = state.editing ? state.editing.phases : [];
  x.phases = [...$("f-phases").querySelectorAll("tr")].map((row, i) => Object.assign({}, oldPhases[i] || {}, {
    lights: row.querySelector(".f-plights").value.split(/[ ,;]+/).filter(Boolean).map(numberOrText),
    green_s: numberOrText(row.querySelector(".f-green").value),
    red_s: numberOrText(row.querySelector(".f-red").value),
  }));
  return x;
}

// A JSON Merge Patch (RFC 7396) that turns `a` into `b`: the fields that differ (objects
// recursively, arrays whole), `null` for the ones `b` dropped.
function mergePatchDiff(a, b) {
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const out = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!(k in b)) { out[k] = null; continue; }
    if (JSON.stringify(a[k]) === JSON.stringify(b[k])) continue;
    out[k] = isObj(a[k]) && isObj(b[k]) ? mergePatchDiff(a[k], b[k]) : b[k];
  }
  return out;
}

export async function saveEditor(e) {
  e.preventDefault();
  const x = readEditor();
  const selectedBefore = state.selected;
  $("f-error").textContent = "";
  try {
    if (state.editing) {
      // Only what the operator changed: a retiming (or another operator's edit of other
      // fields) since the form was opened is kept, not overwritten with what the form showed.
      const patch = mergePatchDiff(state.editing, x);
      if (!Object.keys(patch).length) { toast("Nothing changed"); return; }
      await write("PATCH", "/api/intersections/" + encodeURIComponent(state.editing.id), patch, x.id + " saved");
    } else {
      await write("POST", "/api/intersections", x, x.id + " created");
    }
    // The saved intersection becomes the selection, unless the operator selected another one
    // while the save was under way (the write waits for a refresh: seconds on a busy API):
    // a late save must not move the operator's next action to it.
    if (state.selected === selectedBefore) state.selected = x.id;
    openEditor(state.intersections.find((i) => i.id === x.id));
    await refresh();
  } catch (err) {
    $("f-error").textContent = err instanceof ApiError ? err.describe() : String(err);
  }
}
