// The refresh: every panel read from the API and drawn again; a write, then a refresh; the
// choice of an intersection.

import { $, toast } from "./dom.js";
import { ApiError, CITY_EVERY_MS, SMALL_CITY, api, loadCity } from "./api.js";
import { CLOSED_ALARMS_SHOWN, OPEN_ALARMS_SHOWN, state } from "./state.js";
import { renderMap } from "./map.js";
import { renderMedians, renderTop10 } from "./results.js";
import { renderAlarms } from "./alarms.js";
import { renderCharts, renderStatus } from "./stats.js";
import { renderTimings } from "./timings.js";
import { renderDetail } from "./detail.js";

// A write that another change overtook between the store's read and its write (a retiming:
// 409, "send it again") is sent again, at most RESEND times: the page sends no If-Match, so the
// operator's change applies to whatever the intersection holds by then.
const RESEND = 3;

function overtaken(e) {
  return e instanceof ApiError && e.status === 409 && /send it again/.test(e.message);
}

export async function write(method, path, body, done) {
  try {
    let r;
    for (let attempt = 0; ; attempt++) {
      try {
        r = await api(method, path, body);
        break;
      } catch (e) {
        if (!overtaken(e) || attempt >= RESEND) throw e;
      }
    }
    state.cityAt = 0;
    if (done) toast(done);
    await refresh();
    return r;
  } catch (e) {
    toast(e instanceof ApiError ? e.describe() : String(e), true);
    throw e;
  }
}

export async function refresh() {
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
      // Kept under the id they were read for: a selection made meanwhile is not shown them.
      const selected = state.selected;
      const id = encodeURIComponent(selected);
      const [timings, lamps, history] = await Promise.all([
        api("GET", "/api/intersections/" + id + "/timings"),
        api("GET", "/api/intersections/" + id + "/lamps"),
        api("GET", "/api/intersections/" + id + "/history"),
      ]);
      state.detail = { id: selected, timings, lamps, history };
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

export function render() {
  renderStatus();
  renderMap();
  renderTop10();
  renderMedians();
  renderAlarms();
  renderCharts();
  renderTimings();
  renderDetail();
}

export function select(id) {
  state.selected = id;
  state.detail = null;
  renderMap();
  renderDetail();
  refresh();
}
