// The dashboard: plain JavaScript modules, no library, nothing loaded from elsewhere. It polls
// the API every few seconds and draws the map and the charts as SVG. Text from the API is always
// set as text (never parsed as HTML). Writes send the operator's token, kept in sessionStorage.
//
// The modules: dom.js (elements, formatting), api.js (the API), state.js (what was read and
// what follows from it), refresh.js (the refresh loop, writes), a module per panel (map.js,
// results.js, alarms.js, stats.js, timings.js, detail.js) and editor.js.

import { $ } from "./dom.js";
import { TOKEN_KEY } from "./api.js";
import { state } from "./state.js";
import { refresh, render, write } from "./refresh.js";
import { setMode } from "./detail.js";
import { openEditor, phaseRow, saveEditor } from "./editor.js";

const REFRESH_MS = 3000;

function showTokenState() {
  const has = !!sessionStorage.getItem(TOKEN_KEY);
  $("token-state").textContent = has ? "token set for this tab" : "read-only";
}

function init() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $("token").value = "";
    showTokenState();
  });
  $("token-clear").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); });
  $("editor").addEventListener("submit", saveEditor);
  $("f-new").addEventListener("click", () => openEditor(null));
  $("f-add-phase").addEventListener("click", () => $("f-phases").append(phaseRow({ lights: [], green_s: 20, red_s: 40 })));
  $("detail-edit").addEventListener("click", () => {
    const x = state.intersections.find((i) => i.id === state.selected);
    if (x) { openEditor(x); $("editor").scrollIntoView({ behavior: "smooth" }); }
  });
  $("detail-delete").addEventListener("click", () => {
    const id = state.selected;
    if (!id || !confirm("Delete intersection " + id + "?")) return;
    write("DELETE", "/api/intersections/" + encodeURIComponent(id), undefined, id + " deleted")
      .then(() => { state.selected = null; if (state.editing && state.editing.id === id) openEditor(null); render(); })
      .catch(() => {});
  });
  $("detail-mode").addEventListener("change", () => { $("detail-mode").dataset.chosenFor = state.selected; });
  $("control-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const x = state.intersections.find((i) => i.id === state.selected);
    if (!x) return;
    // Set or refused, the store's mode is shown again from the next refresh on.
    setMode(x, $("detail-mode").value).catch(() => {})
      .finally(() => { delete $("detail-mode").dataset.chosenFor; });
  });
  $("add-light").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = state.selected;
    const body = { light: Number($("add-light-index").value), saturation_veh_h: Number($("add-light-sat").value) };
    const pos = $("add-light-pos").value.trim();
    if (pos) body.position = pos;
    write("POST", "/api/intersections/" + encodeURIComponent(id) + "/lights", body, "Light " + body.light + " added").catch(() => {});
  });
  showTokenState();
  openEditor(null);
  refresh().then(() => { if (!state.editing) openEditor(null); });
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", init);
