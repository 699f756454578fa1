// DOM helpers: elements built with their text set as text (never parsed as HTML), the
// formatting of figures and times, and the toast.

const SVG_NS = "http://www.w3.org/2000/svg";
export const COLOURS = ["#1f6feb", "#d84315", "#2e7d32", "#6a1b9a", "#00838f", "#f9a825"];

export function $(id) { return document.getElementById(id); }

export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function s(tag, attrs, ...children) {
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
export function busyIn(id) {
  const a = document.activeElement;
  return !!a && a !== document.body && $(id).contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
}

export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function fmt(x, digits = 1) {
  return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–";
}

export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "Z");
}

export function shortTime(iso) {
  const t = time(iso);
  return t.length > 17 ? t.slice(5, 16) : t;
}

let toastTimer = null;
export function toast(message, bad) {
  const t = $("toast");
  t.textContent = message;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 7000 : 3500);
}
