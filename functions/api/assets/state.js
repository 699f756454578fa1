// What the page shows, as read at the last refresh, and the facts derived from it.

// Open alarms the page shows (the map and the open table), and alarms of the log it reads
// for the closed table: one page each, every 3 s.
export const OPEN_ALARMS_SHOWN = 1000;
export const CLOSED_ALARMS_SHOWN = 50;

export const state = {
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

function shortest() {
  return state.results && state.results.windows.length ? state.results.windows[0] : null;
}

export function shownWindow(length) {
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
export function speeds() {
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

export function busy() {
  const m = new Set();
  const w = shortest() && shownWindow(shortest());
  if (w) for (const e of w.above_median) m.add(e.intersection_id);
  return m;
}

export function openAlarmsById() {
  const m = new Map();
  for (const a of (state.alarms ? state.alarms.alarms : [])) {
    if (!a.open) continue;
    if (!m.has(a.intersection_id)) m.set(a.intersection_id, []);
    m.get(a.intersection_id).push(a);
  }
  return m;
}

export function modeOf(x) {
  return (x.control && x.control.mode) || "adaptive";
}
