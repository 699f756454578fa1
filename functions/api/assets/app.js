// The dashboard: plain JavaScript, no library, nothing loaded from elsewhere. It polls the API
// every few seconds and draws the map and the charts as SVG. Text from the API is always set as
// text (never parsed as HTML). Writes send the operator's token, kept in sessionStorage.
"use strict";

const REFRESH_MS = 3000;
const TOKEN_KEY = "traffic.token";
// Open alarms the page shows (the map and the open table), and alarms of the log it reads
// for the closed table: one page each, every 3 s.
const OPEN_ALARMS_SHOWN = 1000;
const CLOSED_ALARMS_SHOWN = 50;
const SVG_NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f6feb", "#d84315", "#2e7d32", "#6a1b9a", "#00838f", "#f9a825"];

const state = {
  config: null,
  intersections: [],
  results: null,
  network: null,     // every intersection over the newest shortest window (/api/network)
  cityAt: 0,         // when the intersections were last loaded (ms; 0 = reload now)
  recent: {},        // length -> windows, newest first
  chosen: {},        // length -> chosen window start ("" = newest)
  alarms: null,
  stats: null,
  selected: null,    // intersection id
  detail: null,      // {timings, lamps}
  editing: null,     // the intersection being edited, or null for a new one
  refreshing: false,
  again: false,      // a refresh was asked for while one was running
  autoSelected: false,
  lastOk: null,
};

// ---- DOM helpers --------------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function s(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
}

// Whether the operator is typing or choosing inside the element `id` (then it is not redrawn).
function busyIn(id) {
  const a = document.activeElement;
  return !!a && a !== document.body && $(id).contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
}

function fill(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function fmt(x, digits = 1) {
  return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–";
}

function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "Z");
}

function shortTime(iso) {
  const t = time(iso);
  return t.length > 17 ? t.slice(5, 16) : t;
}

let toastTimer = null;
function toast(message, bad) {
  const t = $("toast");
  t.textContent = message;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 7000 : 3500);
}

// ---- The API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : "HTTP " + status);
    this.status = status;
    this.field = body && body.field;
  }
  describe() {
    const f = this.field ? " (" + this.field + ")" : "";
    if (this.status === 401) return "Not authorised: enter the operator token at the top. " + this.message;
    return this.message + f;
  }
}

// The city list is reloaded on every refresh while it is small; a larger one every
// CITY_EVERY_MS (and after an edit), a page at a time: pages of CITY_PAGE (the API's largest),
// following each page's `next` cursor until it is null.
const CITY_EVERY_MS = 30000;
const SMALL_CITY = 1000;
const CITY_PAGE = 500;

async function api(method, path, body) {
  return (await apiWithLink(method, path, body)).json;
}

// The answer and the `rel="next"` target of its Link header (paged lists), if any.
async function apiWithLink(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 10000);
  try {
    const r = await fetch(path, {
      method, headers, signal: ctrl.signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (!r.ok) throw new ApiError(r.status, json);
    const m = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get("Link") || "");
    return { json, next: m ? m[1] : null };
  } finally {
    clearTimeout(timer);
  }
}

// Every intersection, following the list's pages (a page may be shorter than asked and still
// have a `next`: only a null `next` ends the list).
async function loadCity(pageSize = CITY_PAGE) {
  const all = [];
  const first = "/api/intersections?limit=" + pageSize;
  let path = first;
  for (let pages = 0; path && pages < 1000; pages++) {
    const page = await api("GET", path);
    all.push(...page.intersections);
    path = page.next ? first + "&cursor=" + encodeURIComponent(page.next) : null;
  }
  return all;
}

async function write(method, path, body, done) {
  try {
    const r = await api(method, path, body);
    state.cityAt = 0;
    if (done) toast(done);
    await refresh();
    return r;
  } catch (e) {
    toast(e instanceof ApiError ? e.describe() : String(e), true);
    throw e;
  }
}

// ---- Refresh ------------------------------------------------------------------------------

async function refresh() {
  if (state.refreshing) { state.again = true; return; }
  state.refreshing = true;
  state.again = false;
  try {
    if (!state.config) state.config = await api("GET", "/api/config");
    const cityStamp = state.cityAt;
    const cityDue = state.intersections.length <= SMALL_CITY || Date.now() - cityStamp > CITY_EVERY_MS;
    // Alarms: the open ones (the map and the open table) from the open view, and the newest
    // of the log for the closed table; each page reads only what it returns.
    const [xs, results, network, openAlarms, recentAlarms, stats] = await Promise.all([
      cityDue ? loadCity() : state.intersections,
      api("GET", "/api/results"),
      api("GET", "/api/network"),
      api("GET", "/api/alarms?open=true&limit=" + OPEN_ALARMS_SHOWN),
      api("GET", "/api/alarms?limit=" + CLOSED_ALARMS_SHOWN),
      api("GET", "/api/stats?minutes=60"),
    ]);
    const alarms = {
      open: openAlarms.open,
      alarms: openAlarms.alarms,
      closed: recentAlarms.alarms.filter((x) => !x.open),
    };
    // An edit made meanwhile reset the stamp: keep it reset so the next refresh reloads.
    if (cityDue && state.cityAt === cityStamp) state.cityAt = Date.now();
    state.intersections = xs;
    state.results = results;
    state.network = network;
    state.alarms = alarms;
    state.stats = stats;
    const recent = await Promise.all(
      results.windows.map((w) => api("GET", "/api/results/" + encodeURIComponent(w) + "?limit=8")));
    for (const r of recent) state.recent[r.length] = r.windows;
    if (state.selected && !xs.some((x) => x.id === state.selected)) state.selected = null;
    if (!state.selected && !state.autoSelected && xs.length) {
      // Start on an intersection with a broken lamp, if there is one.
      const broken = alarms.alarms.find((a) => a.open && xs.some((x) => x.id === a.intersection_id));
      state.selected = broken ? broken.intersection_id : xs[0].id;
      state.autoSelected = true;
    }
    if (state.selected) {
      const id = encodeURIComponent(state.selected);
      const [timings, lamps] = await Promise.all([
        api("GET", "/api/intersections/" + id + "/timings"),
        api("GET", "/api/intersections/" + id + "/lamps"),
      ]);
      state.detail = { id: state.selected, timings, lamps };
    } else {
      state.detail = null;
    }
    state.lastOk = new Date();
    render();
  } catch (e) {
    $("status").textContent = "Cannot reach the API: " + (e instanceof ApiError ? e.describe() : e.message);
  } finally {
    state.refreshing = false;
  }
  if (state.again) return refresh();
}

function render() {
  renderStatus();
  renderMap();
  renderTop10();
  renderMedians();
  renderAlarms();
  renderCharts();
  renderTimings();
  renderDetail();
}

// ---- Derived facts ------------------------------------------------------------------------

function shortest() {
  return state.results && state.results.windows.length ? state.results.windows[0] : null;
}

function shownWindow(length) {
  const recent = state.recent[length] || [];
  const chosen = state.chosen[length];
  if (chosen) {
    const w = recent.find((r) => r.start === chosen);
    if (w) return w;
  }
  return (state.results && state.results.current[length]) || recent[0] || null;
}

// Mean speed per intersection over the shown window of the shortest length: every
// intersection when it is the window of the network state (the newest), else its top-10.
function speeds() {
  const m = new Map();
  const w = shortest() && shownWindow(shortest());
  if (!w) return m;
  const net = state.network;
  if (net && net.length === w.length && net.start === w.start) {
    for (const x of net.intersections) {
      if (x.mean_speed_kmh !== null) m.set(x.intersection_id, x.mean_speed_kmh);
    }
  }
  for (const e of w.top10) m.set(e.intersection_id, e.mean_speed_kmh);
  return m;
}

function busy() {
  const m = new Set();
  const w = shortest() && shownWindow(shortest());
  if (w) for (const e of w.above_median) m.add(e.intersection_id);
  return m;
}

function openAlarmsById() {
  const m = new Map();
  for (const a of (state.alarms ? state.alarms.alarms : [])) {
    if (!a.open) continue;
    if (!m.has(a.intersection_id)) m.set(a.intersection_id, []);
    m.get(a.intersection_id).push(a);
  }
  return m;
}

function speedColour(v) {
  // 10 km/h red → 35 amber → 60 green.
  const t = Math.max(0, Math.min(1, (v - 10) / 50));
  const stops = [[216, 67, 21], [249, 168, 37], [46, 125, 50]];
  const [a, b, u] = t < 0.5 ? [stops[0], stops[1], t * 2] : [stops[1], stops[2], (t - 0.5) * 2];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * u));
  return "rgb(" + c.join(",") + ")";
}

// ---- Status bar ---------------------------------------------------------------------------

function renderStatus() {
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

// ---- Map ----------------------------------------------------------------------------------

function renderMap() {
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

function select(id) {
  state.selected = id;
  state.detail = null;
  renderMap();
  renderDetail();
  refresh();
}

// ---- Results ------------------------------------------------------------------------------

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

function renderTop10() {
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

function renderMedians() {
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

// ---- Alarms -------------------------------------------------------------------------------

function repair(id, light) {
  return write("POST", "/api/intersections/" + encodeURIComponent(id) + "/lights/" + light + "/repair",
    undefined, "Repair of " + id + " light " + light + " recorded");
}

function acknowledge(x) {
  // The note is optional: an empty answer acknowledges without one, Cancel does nothing.
  const note = window.prompt("Acknowledge " + x.text + "\nNote (optional):", "");
  if (note === null) return Promise.resolve();
  return write("POST", "/api/alarms/" + encodeURIComponent(x.id) + "/ack",
    note.trim() ? { note: note.trim() } : {}, "Alarm acknowledged");
}

// What a sensor-silent alarm is about, in words.
function silentText(x) {
  return x.scope === "light" ? "no reading from light " + x.light
    : x.scope === "city" ? "most detectors of the city silent" : "no reading from any light";
}

// The alarm's subject: the broken lamp, or what fell silent.
function whatCell(x) {
  return x.kind === "sensor_silent"
    ? h("td", { class: "silent", text: "silent: " + x.scope })
    : h("td", {}, h("i", { class: "lamp broken" }), x.lamp);
}

function severityCell(x) {
  return h("td", {}, h("span", { class: "severity " + x.severity, text: x.severity }));
}

function ackCell(x) {
  if (!x.ack) return h("td", { class: "muted", text: x.held_down ? "held down (flapping)" : "—" });
  return h("td", { class: "acked", title: x.ack.note || "",
    text: x.ack.by + " " + time(x.ack.at) + (x.ack.note ? " · " + x.ack.note : "") });
}

function renderAlarms() {
  const a = state.alarms;
  if (!a) return;
  $("alarm-count").textContent = "(" + a.open + " open)";
  $("repaired-count").textContent = "(" + a.closed.length + " among the newest " + CLOSED_ALARMS_SHOWN + ")";
  const rank = { critical: 0, major: 1, minor: 2 };
  // Most urgent first, then newest first (the API's order).
  const open = a.alarms.filter((x) => x.open)
    .map((x, i) => [x, i]).sort((p, q) => (rank[p[0].severity] - rank[q[0].severity]) || (p[1] - q[1]))
    .map((p) => p[0]);
  const done = a.closed;
  fill($("alarms-open"), open.length ? open.map((x) =>
    h("tr", { class: "alarm " + x.severity, "data-alarm": x.id },
      h("td", { text: time(x.ts) }),
      severityCell(x),
      h("td", {}, x.scope === "city" ? "city-wide"
        : h("a", { href: "#", onclick: (e) => { e.preventDefault(); select(x.intersection_id); }, text: x.intersection_id })),
      h("td", { text: x.scope === "light" || !x.scope ? x.light : "all" }),
      whatCell(x),
      ackCell(x),
      h("td", {},
        x.ack ? null : h("button", {
          type: "button", class: "small ack", "data-alarm": x.id,
          onclick: (e) => { e.target.disabled = true; acknowledge(x).catch(() => {}).finally(() => { e.target.disabled = false; }); },
          text: "Ack",
        }),
        x.kind === "sensor_silent" ? null : h("button", {
          type: "button", class: "small repair", "data-id": x.intersection_id, "data-light": x.light,
          onclick: (e) => { e.target.disabled = true; repair(x.intersection_id, x.light).catch(() => { e.target.disabled = false; }); },
          text: "Repair",
        }))))
    : h("tr", {}, h("td", { colspan: 7, class: "muted", text: "No open alarms." })));
  fill($("alarms-repaired"), done.map((x) =>
    h("tr", {},
      h("td", { text: time(x.ts) }), severityCell(x), h("td", { text: x.intersection_id }), h("td", { text: x.light }),
      h("td", { text: x.kind === "sensor_silent" ? "silent: " + x.scope : x.lamp }), ackCell(x),
      h("td", { text: time(x.repaired_at) + (x.closed_why ? " (" + x.closed_why + ")" : "") }))));
}

// ---- Charts -------------------------------------------------------------------------------

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

function renderCharts() {
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

// ---- Timings ------------------------------------------------------------------------------

function renderTimings() {
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
function renderPlan(plan, phases) {
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

// ---- Control mode -------------------------------------------------------------------------

function modeOf(x) {
  return (x.control && x.control.mode) || "adaptive";
}

function limitsText(l) {
  if (!l) return "no limits";
  const parts = [];
  if (l.min_green_s && l.min_green_s.length) parts.push("min green " + l.min_green_s.map((m) => (m === null ? "–" : fmt(m, 0))).join(" / ") + " s");
  if (l.max_cycle_s) parts.push("max cycle " + fmt(l.max_cycle_s, 0) + " s");
  if (l.max_green_change) parts.push("max change ±" + fmt(l.max_green_change * 100, 0) + " %");
  return parts.join(" · ") || "no limits";
}

// Sets the selected intersection's mode, keeping its limits.
function setMode(x, mode) {
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

function phaseBars(svg, timing) {
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

function historyChart(svg, history) {
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

// ---- Selected intersection ----------------------------------------------------------------

function renderDetail() {
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

// ---- Editor -------------------------------------------------------------------------------

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

function phaseRow(p) {
  return h("tr", { class: "f-phase" },
    h("td", {}, h("input", { type: "text", class: "f-plights", size: 8, value: p.lights.join(","), "aria-label": "Lights of the phase" })),
    h("td", {}, h("input", { type: "number", class: "f-green", min: 0, step: "any", value: p.green_s, "aria-label": "Green time" })),
    h("td", {}, h("input", { type: "number", class: "f-red", min: 0, step: "any", value: p.red_s, "aria-label": "Red time" })),
    h("td", {}, h("button", { type: "button", class: "small secondary", text: "Remove", onclick: (e) => e.target.closest("tr").remove() })));
}

function openEditor(x) {
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

async function saveEditor(e) {
  e.preventDefault();
  const x = readEditor();
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
    state.selected = x.id;
    openEditor(state.intersections.find((i) => i.id === x.id));
    await refresh();
  } catch (err) {
    $("f-error").textContent = err instanceof ApiError ? err.describe() : String(err);
  }
}

// ---- Wiring -------------------------------------------------------------------------------

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
