// The API: JSON over fetch, a write sending the operator's token (kept in sessionStorage), the
// city read a page at a time.

export const TOKEN_KEY = "traffic.token";

export class ApiError extends Error {
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
export const CITY_EVERY_MS = 30000;
export const SMALL_CITY = 1000;
const CITY_PAGE = 500;

export async function api(method, path, body) {
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
export async function loadCity(pageSize = CITY_PAGE) {
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
