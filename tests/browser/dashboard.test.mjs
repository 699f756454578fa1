// The dashboard in a real browser: Debian's headless Chromium driven by playwright-core (which
// downloads no browser), against a running `traffic local` given by BASE_URL and API_TOKEN.
// Run by scripts/test.d/browser.sh, which starts the server. Every wait is bounded.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const TOKEN = process.env.API_TOKEN;
const SCREENSHOT = process.env.SCREENSHOT;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const NEW_ID = "I-BROWSER-1";

assert.ok(BASE && TOKEN, "BASE_URL and API_TOKEN must be set (scripts/test.d/browser.sh sets them)");

let context;
let page;
let userDataDir;
const pageErrors = [];
const foreignRequests = [];

/** GET a JSON document of the API (not through the page), within 10 s. */
async function getJson(path) {
  const r = await fetch(BASE + path, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

/** Polls `check` every 500 ms until it returns a truthy value or `ms` pass. */
async function eventually(what, ms, check) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`${what}: not within ${ms / 1000} s (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

before(async () => {
  userDataDir = mkdtempSync(join(tmpdir(), "traffic-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1400, height: 1000 },
    timeout: 60_000,
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(BASE) && !u.startsWith("data:")) foreignRequests.push(u);
  });
  page.on("dialog", (d) => d.accept());
});

after(async () => {
  if (context) await context.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test("the dashboard loads and shows every intersection on the map", async () => {
  await page.goto(BASE + "/", { waitUntil: "load", timeout: 30_000 });
  assert.equal(await page.title(), "Traffic monitor");
  const { body: { intersections: xs } } = await getJson("/api/intersections?limit=500");
  assert.ok(xs.length >= 1, "the city has intersections");
  await page.waitForFunction(
    (n) => document.querySelectorAll("#map g.node").length === n, xs.length, { timeout: 30_000 });
});

test("live results appear in the top-10 and median panels", async () => {
  await page.waitForFunction(
    () => document.querySelectorAll("#top10 tbody tr").length > 0, null, { timeout: 120_000 });
  const first = await page.locator("#top10 .top10").first().locator("tbody tr").first().innerText();
  assert.match(first, /^1\s+\S+\s+\d+\.\d/);
  await page.waitForFunction(
    () => [...document.querySelectorAll("#medians .big")].some((e) => e.textContent !== "–"),
    null, { timeout: 60_000 });
  await page.waitForFunction(
    () => Number((document.querySelector("[data-counter=accepted] span:last-child") || {}).textContent?.replace(/\D/g, "") || 0) > 0,
    null, { timeout: 60_000 });
});

test("the map colours every intersection with traffic by its speed, not only the top-10", async () => {
  // 20 intersections, all with traffic: once the network state of the shown window is in,
  // more than the top-10 have a speed colour (grey is "no speed").
  const coloured = () => [...document.querySelectorAll("#map g.node > circle:first-of-type")]
    .filter((c) => c.getAttribute("fill") !== "#b0bec5").length;
  await page.waitForFunction(`(${coloured})() > 10`, null, { timeout: 60_000 });
  const { body: net } = await getJson("/api/network");
  assert.ok(net && net.length && net.start, "the merge stored a network state");
  assert.ok(net.intersections.filter((x) => x.mean_speed_kmh !== null).length > 10);
});

test("the page reads the city page by page, following each page's next cursor", async () => {
  const { body: { intersections: xs } } = await getJson("/api/intersections?limit=500");
  assert.ok(xs.length > 7, "more than one page of 7");
  const ids = await page.evaluate(async () => {
    const { loadCity } = await import("/assets/api.js");
    return (await loadCity(7)).map((x) => x.id);
  });
  assert.deepEqual(ids, xs.map((x) => x.id));
});

test("without the token a create through the page is refused and changes nothing", async () => {
  await page.click("#f-new");
  await page.fill("#f-id", NEW_ID);
  await page.click("#f-save");
  await page.waitForFunction(
    () => /Not authorised/.test(document.getElementById("f-error").textContent), null, { timeout: 15_000 });
  assert.equal((await getJson("/api/intersections/" + NEW_ID)).status, 404);
});

test("an alarm acknowledged through the page keeps its note, who and when", async () => {
  await page.fill("#token", TOKEN);
  await page.click("#token-save");
  await page.waitForFunction(
    () => document.getElementById("token-state").textContent.includes("token set"), null, { timeout: 5_000 });
  // Lamps fail now and then in the simulated city; wait for an open alarm to show.
  const first = page.locator("#alarms-open button.ack").first();
  await first.waitFor({ state: "visible", timeout: 240_000 });
  const id = await first.getAttribute("data-alarm");
  // The table is redrawn at every refresh and may reorder: from here on, this alarm's button.
  const button = page.locator(`#alarms-open button.ack[data-alarm="${id}"]`);
  const severity = await page.locator(`#alarms-open tr[data-alarm="${id}"] .severity`).textContent();
  assert.ok(["critical", "major", "minor"].includes(severity), `severity shown: ${severity}`);
  // The page asks for a note in a prompt: answer this one (every other dialog is accepted).
  page.removeAllListeners("dialog");
  page.once("dialog", (d) => {
    d.accept("crew sent");
    page.on("dialog", (later) => later.accept());
  });
  await button.click();
  const acked = await eventually(`the acknowledgement of ${id} in the store`, 20_000, async () => {
    const { body } = await getJson("/api/alarms?open=true&limit=1000");
    return body.alarms.find((a) => a.id === id && a.ack);
  });
  assert.equal(acked.ack.note, "crew sent");
  assert.equal(acked.ack.by, "operator");
  assert.ok(!Number.isNaN(Date.parse(acked.ack.at)), acked.ack.at);
  assert.equal(acked.severity, severity);
  await page.waitForFunction(
    (i) => (document.querySelector(`#alarms-open tr[data-alarm="${i}"] td.acked`) || {}).textContent?.includes("crew sent"),
    id, { timeout: 15_000 });
});

test("a repair done through the page reaches the store", async () => {
  await page.fill("#token", TOKEN);
  await page.click("#token-save");
  await page.waitForFunction(
    () => document.getElementById("token-state").textContent.includes("token set"), null, { timeout: 5_000 });
  // Lamps fail now and then in the simulated city; wait for an open alarm to show.
  const first = page.locator("#alarms-open button.repair").first();
  await first.waitFor({ state: "visible", timeout: 240_000 });
  const id = await first.getAttribute("data-id");
  const light = Number(await first.getAttribute("data-light"));
  // The table is redrawn at every refresh and may reorder: from here on, this light's button.
  const button = page.locator(`#alarms-open button.repair[data-id="${id}"][data-light="${light}"]`).first();
  const { body: before } = await getJson("/api/alarms?open=true&limit=1000");
  const open = before.alarms.filter((a) => a.intersection_id === id && a.light === light);
  assert.ok(open.length > 0, `the API shows the alarm of ${id} light ${light} as open`);
  await button.click();
  const repaired = await eventually(`the repair of ${id} light ${light} in the store`, 20_000, async () => {
    const { body } = await getJson("/api/alarms?limit=1000");
    // Not done until every one is repaired (an empty list would end the wait at once).
    const done = body.alarms.filter((a) => open.some((o) => o.id === a.id && a.repaired_at));
    return done.length === open.length ? done : null;
  });
  assert.equal(repaired.length, open.length);
  await page.waitForFunction(
    ([i, l]) => ![...document.querySelectorAll("#alarms-open button.repair")]
      .some((b) => b.dataset.id === i && Number(b.dataset.light) === l),
    [id, light], { timeout: 15_000 });
});

test("a create done through the page reaches the store and the map", async () => {
  await page.click("#f-new");
  await page.fill("#f-id", NEW_ID);
  await page.fill("#f-name", "Created by the browser test");
  await page.click("#f-save");
  const { body } = await eventually(`${NEW_ID} in the store`, 20_000, async () => {
    const r = await getJson("/api/intersections/" + NEW_ID);
    return r.status === 200 && r;
  });
  assert.equal(body.name, "Created by the browser test");
  assert.equal(body.lights.length, 4);
  assert.deepEqual(body.phases.map((p) => p.lights), [[0, 2], [1, 3]]);
  await page.locator(`#map g.node[data-id="${NEW_ID}"]`).waitFor({ timeout: 15_000 });
});

test("an edit through the page changes only what was edited", async () => {
  // Open the editor on the intersection created above, let its timings change behind the
  // form's back (as a retiming would), then save a new name: the name changes, the newer
  // timings stay.
  await page.locator(`#map g.node[data-id="${NEW_ID}"] circle`).first().click();
  await page.click("#detail-edit");
  await page.waitForFunction((id) => document.getElementById("f-id").value === id, NEW_ID);
  const { body: x } = await getJson("/api/intersections/" + NEW_ID);
  x.phases = x.phases.map((p) => ({ ...p, green_s: 17, red_s: 47 }));
  const put = await fetch(BASE + "/api/intersections/" + NEW_ID, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: "Bearer " + TOKEN },
    body: JSON.stringify(x),
  });
  assert.equal(put.status, 200);
  await page.fill("#f-name", "Renamed by the browser test");
  await page.click("#f-save");
  const { body } = await eventually(`the new name of ${NEW_ID} in the store`, 20_000, async () => {
    const r = await getJson("/api/intersections/" + NEW_ID);
    return r.body.name === "Renamed by the browser test" && r;
  });
  assert.deepEqual(body.phases.map((p) => [p.green_s, p.red_s]), [[17, 47], [17, 47]]);
});

test("the merge's runs and the latency from arrival to result are charted", async () => {
  await page.waitForFunction(
    () => document.querySelectorAll("#chart-result-latency polyline").length > 0, null, { timeout: 90_000 });
  const runs = await page.locator('#merge-figures [data-merge="merge runs"] span').nth(1).textContent();
  assert.ok(Number(runs.replace(/\D/g, "")) > 0, `merge runs shown: ${runs}`);
});

test("an intersection switched to manual through the page keeps its plan and shows Webster's proposal", async () => {
  const { body: { intersections: xs } } = await getJson("/api/intersections?limit=500");
  const x = xs.find((i) => i.id !== NEW_ID);
  await page.locator(`#map g.node[data-id="${x.id}"] circle`).first().click();
  await page.locator(`#detail-body[data-loaded="${x.id}"]`).waitFor({ timeout: 15_000 });
  await page.selectOption("#detail-mode", "manual");
  // The operator looks elsewhere before pressing Set; the choice outlives the page's refreshes (every 3 s) until it is set: wait for one to pass.
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  const status = await page.textContent("#status");
  await page.waitForFunction((s) => document.getElementById("status").textContent !== s, status, { timeout: 15_000 });
  assert.equal(await page.inputValue("#detail-mode"), "manual", "a refresh kept the chosen mode");
  await page.click("#detail-mode-set");
  const manual = await eventually(`${x.id} manual in the store`, 20_000, async () => {
    const r = await getJson("/api/intersections/" + x.id);
    return r.body.control && r.body.control.mode === "manual" && r.body;
  }).catch(async (e) => {
    // What the page told the operator (a refusal is a toast) says why.
    const said = await page.textContent("#toast").catch(() => null);
    throw new Error(`${e.message}; the page's last message: ${JSON.stringify(said)}`);
  });
  // The merge keeps the plan and records its proposal beside it at the next retiming round.
  const proposed = await eventually(`Webster's proposal for ${x.id}`, 120_000, async () => {
    const r = await getJson("/api/intersections/" + x.id);
    return r.body.proposal && r.body;
  });
  assert.deepEqual(proposed.phases, manual.phases, "the plan stands through the retiming");
  assert.equal(proposed.control.mode, "manual");
  // It sticks: a fresh page shows the mode and the proposal.
  await page.reload({ waitUntil: "load", timeout: 30_000 });
  await page.locator(`#map g.node[data-id="${x.id}"] circle`).first().click();
  await page.locator(`#control-form[data-mode="manual"]`).waitFor({ timeout: 15_000 });
  assert.equal(await page.inputValue("#detail-mode"), "manual");
  await page.locator("#detail-proposal:not([hidden])").waitFor({ timeout: 15_000 });
  await page.waitForFunction(
    (id) => [...document.querySelectorAll("#timings td[data-mode]")].some((td) => td.dataset.mode === "manual"),
    x.id, { timeout: 15_000 });
});

test("an intersection's plan for actuated control is shown beside its timings", async () => {
  const { body: { timings } } = await getJson("/api/timings?limit=500");
  const t = timings.find((x) => x.retimed_from) || timings[0];
  await page.locator(`#map g.node[data-id="${t.intersection_id}"] circle`).first().click();
  await page.locator(`#detail-body[data-loaded="${t.intersection_id}"]`).waitFor({ timeout: 15_000 });
  // A retiming may land between the page's read and this one: the page's next refresh catches up.
  const shown = await eventually(`${t.intersection_id}'s plan in the page`, 20_000, async () => {
    const { body } = await getJson("/api/intersections/" + t.intersection_id + "/timings");
    const rows = await page.evaluate(() => [...document.querySelectorAll("#detail-plan tr")].map((tr) =>
      [...tr.querySelectorAll("td[data-field]")].map((td) => Number(td.dataset.value))));
    const want = body.current.plan.phases.map((p) => [p.min_green_s, p.green_s, p.max_green_s]);
    return JSON.stringify(rows) === JSON.stringify(want) && { rows, plan: body.current.plan };
  });
  assert.ok(shown.rows.length > 0, "a row per phase");
  for (const [min, green, max] of shown.rows) assert.ok(min <= green && green <= max, `${min} ≤ ${green} ≤ ${max}`);
  const text = await page.textContent("#detail-plan-text");
  assert.match(text, /^cycle \d+\.\d s · (not coordinated|offset )/);
  // The list of timings shows each phase's range.
  const range = await page.textContent(`#timings td[data-plan="${t.intersection_id}"]`);
  assert.match(range, /^\d+–\d+( \/ \d+–\d+)*/);
});

test("an intersection's vehicles and speed over the closed windows are charted from the archive", async () => {
  const { body: { intersections } } = await getJson("/api/intersections?limit=500");
  const id = intersections[0].id;
  await page.locator(`#map g.node[data-id="${id}"] circle`).first().click();
  await page.locator(`#detail-body[data-loaded="${id}"]`).waitFor({ timeout: 15_000 });
  // Windows close while the page runs: the page's chart and the API agree at some refresh, and
  // at least one window is archived by then.
  const shown = await eventually(`${id}'s history in the page`, 30_000, async () => {
    const { body } = await getJson("/api/intersections/" + encodeURIComponent(id) + "/history");
    const bars = await page.evaluate(() => [...document.querySelectorAll("#detail-volume rect.volume")].map((r) =>
      [r.dataset.start, Number(r.dataset.vehicles)]));
    const want = body.windows.map((w) => [w.start, w.vehicles]);
    return want.length > 0 && JSON.stringify(bars) === JSON.stringify(want) && { bars, body };
  });
  assert.equal(shown.body.length, "15m");
  const speeds = shown.body.windows.filter((w) => w.mean_speed_kmh !== null).length;
  const drawn = await page.evaluate(() => {
    const line = document.querySelector('#detail-volume [data-series="speed"]');
    return line ? Number(line.dataset.points) : 0;
  });
  assert.equal(drawn, speeds, "a speed point per window with vehicles");
  assert.match(await page.textContent("#detail-volume-text"), /^\d+ windows of 15m$/);
});

test("a screenshot of the dashboard with data is saved", async () => {
  // Charts read better with a few minutes of figures; take the picture regardless after 90 s.
  await page.waitForFunction(
    () => document.querySelectorAll("#chart-throughput polyline").length > 0, null, { timeout: 90_000 })
    .catch(() => {});
  // Show an intersection whose timings the merge has changed, if any has been retimed.
  const { body: { timings } } = await getJson("/api/timings?limit=500");
  const retimed = timings.find((t) => t.retimed_from) || timings[0];
  await page.locator(`#map g.node[data-id="${retimed.intersection_id}"] circle`).first().click();
  await page.waitForFunction(
    (id) => document.getElementById("detail-id").textContent === id, retimed.intersection_id, { timeout: 10_000 });
  await page.locator(`#detail-body[data-loaded="${retimed.intersection_id}"]`).waitFor({ timeout: 15_000 });
  await page.evaluate(() => window.scrollTo(0, 0));
  if (SCREENSHOT) {
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 30_000 });
  }
});

test("the page raised no script error and loaded nothing from another origin", () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(foreignRequests, []);
});
