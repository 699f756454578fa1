// The alarms: the open ones, most urgent first, with their acknowledgement and repair, and the
// newest closed ones.

import { $, fill, h, time } from "./dom.js";
import { CLOSED_ALARMS_SHOWN, state } from "./state.js";
import { select, write } from "./refresh.js";

export function repair(id, light) {
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
export function silentText(x) {
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

export function renderAlarms() {
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
