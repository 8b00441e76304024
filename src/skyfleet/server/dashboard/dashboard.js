// skyfleet's dashboard: the token, the simulated clock, the server connection (server-sent
// events read through fetch, polling as the fallback) and the wiring of the map and the panels.
// window.skyfleet exposes what the browser tests and the load benchmark read.

import { LINK_COLOURS, UPDATE_COLOURS, WorldMap, makeOrbits } from "./map.js";
import { lineChart } from "./chart.js";
import { FleetTable, Rollouts, drawSiteChart, esc, renderAudit, utc } from "./panels.js";
import { HomePanel } from "./powershare.js";

const API = "/api/v1";
const TOKEN_KEY = "skyfleet.token";
const POLL_MS = 2000; // the server's event interval, and the polling interval (wall ms)
const STALL_EVENTS = 3; // no state event for this many intervals: the stream has stalled
const SLEW_S = 4; // a small clock difference is absorbed over this many wall seconds
const STEP_WALL_S = 2; // behind by over this many wall seconds' worth of simulated time: step
const RESET_WALL_S = 120; // ahead by over this many: a different clock (a restarted server)
const $ = (id) => document.getElementById(id);

const sf = (window.skyfleet = {
  ready: false, readyAt: null, drawnDevices: 0, drawnSatellites: 0, frames: 0,
  state: null, map: null, connection: "connecting", charts: { site: 0, home: 0 },
  /** Simulated UNIX time now, as the page keeps it. */
  simNow: () => clock.now(),
  /** The page's clock: sync(now_s, rate) is what every server answer calls. */
  clock: null, makeClock: null, streamProblem: "",
  /** The site chart's fetched window [start_s, end_s] (simulated UNIX s) and its last "now" mark. */
  siteWindow: null, siteMark: null, homeAuto: true,
  /** Earth-fixed satellite positions (x, y, z km, flat) at UNIX time t_s, as the map draws them. */
  satellitesAt: (t_s) => (orbits ? Array.from(orbits.ecef(t_s)) : []),
});

// --- the token ------------------------------------------------------------------------------------

function initialToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    const token = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    // Out of the address bar and the history: the token lives in sessionStorage from here on.
    history.replaceState(history.state, "", location.pathname + location.search);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}
let token = initialToken();

function headers(extra = {}) {
  return token ? { Authorization: `Bearer ${token}`, ...extra } : extra;
}

/** GET or POST JSON; throws an Error whose message is the API's "detail" (or "error"). */
async function api(path, options = {}) {
  const response = await fetch(API + path, { ...options, headers: headers(options.headers) });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      const d = body.detail ?? body.error;
      if (d != null) detail = typeof d === "string" ? d : JSON.stringify(d);
    } catch { /* not JSON: keep the status line */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// --- the simulated clock ---------------------------------------------------------------------------

// Simulated time runs at `rate` simulated seconds a wall second. The server stamps now_s when it
// sends an answer; the page's clock follows it without ever going back: a small difference is
// absorbed by running a little faster or slower for a few seconds (holding still when the page is
// ahead), and only a difference over STEP_WALL_S wall seconds' worth of simulated time moves the
// clock at once - forward. (A server that is behind by over RESET_WALL_S wall seconds' worth is
// another clock - a restarted demo - and is taken as it is.) Piecewise: from (sim_s, wall_ms) at
// `slew` sim s / wall s for slew_ms, then at `rate`. The tests make their own with makeClock.
const makeClock = () => ({
  sim_s: NaN, wall_ms: 0, rate: 1, slew: 1, slew_ms: 0, steps: 0,
  now(at_ms = performance.now()) {
    const el = Math.max(0, at_ms - this.wall_ms);
    const slewed = Math.min(el, this.slew_ms);
    return this.sim_s + (slewed * this.slew + (el - slewed) * this.rate) / 1000;
  },
  sync(now_s, rate) {
    if (!Number.isFinite(now_s)) return;
    const at = performance.now();
    const mine = this.now(at); // before the rate changes: the clock goes on from where it is
    if (Number.isFinite(rate) && rate > 0) this.rate = rate;
    if (!Number.isFinite(mine)) { this.set(now_s, at); return; }
    const drift = now_s - mine; // > 0: the page is behind
    const unit = Math.max(1, this.rate);
    if (drift > STEP_WALL_S * unit || drift < -RESET_WALL_S * unit) { this.set(now_s, at); this.steps++; return; }
    const over_s = Math.max(SLEW_S, -drift / this.rate); // ahead by a lot: hold until it catches up
    this.sim_s = mine; this.wall_ms = at;
    this.slew = Math.max(0, this.rate + drift / over_s);
    this.slew_ms = over_s * 1000;
  },
  set(now_s, at) { this.sim_s = now_s; this.wall_ms = at; this.slew = this.rate; this.slew_ms = 0; },
});
const clock = (sf.clock = makeClock());
sf.makeClock = makeClock;

// --- the map -------------------------------------------------------------------------------------

const worldMap = new WorldMap($("map"));
let orbits = null;
let mapInfo = null;
let landLoaded = false;
let colourMode = "link";

function legend() {
  const colours = colourMode === "update" ? UPDATE_COLOURS : LINK_COLOURS;
  const d = sf.state && sf.state.devices;
  const present = d ? new Set(colourMode === "update" ? d.update : d.link.map((v) => v ?? "unknown")) : new Set();
  const keys = Object.keys(colours).filter((k) => present.has(k) || (colourMode === "link" && k !== "unknown"));
  // No inline style attributes (the page's Content-Security-Policy refuses them): the swatch
  // colours are set through the DOM; the fixed markers' shapes are classes in dashboard.css.
  $("legend").innerHTML = keys.map((k) => `<span><i data-colour="${esc(colours[k])}"></i>${esc(k)}</span>`).join("")
    + '<span><i class="sat"></i>satellite</span><span><i class="gateway"></i>gateway</span>'
    + '<span><i class="region"></i>cloud region</span><span><i class="site"></i>site</span>';
  for (const i of $("legend").querySelectorAll("i[data-colour]")) i.style.background = i.dataset.colour;
}

for (const radio of document.querySelectorAll('input[name="colour"]')) {
  radio.addEventListener("change", () => {
    colourMode = radio.value;
    worldMap.overlayDirty = true;
    legend();
  });
}

function frame() {
  worldMap.resize();
  if (worldMap.overlayDirty && sf.state) {
    sf.drawnDevices = worldMap.drawOverlay(sf.state, mapInfo, colourMode);
  }
  worldMap.frame(clock.now());
  sf.drawnSatellites = worldMap.drawnSatellites;
  sf.frames++;
  if (!sf.ready && sf.state && orbits && landLoaded && !worldMap.overlayDirty) {
    sf.ready = true;
    sf.readyAt = performance.now();
  }
  if (sf.frames % 15 === 0) header();
  requestAnimationFrame(frame);
}

// --- state updates --------------------------------------------------------------------------------

const rollouts = new Rollouts($("rollouts"), $("rollout-msg"), async (id, verb) => {
  try {
    await api(`/rollouts/${encodeURIComponent(id)}/${verb}`, { method: "POST" });
    refreshState();
    return { ok: true, message: "" };
  } catch (error) {
    return { ok: false, message: error.message };
  }
});
const fleet = new FleetTable($("fleet").tBodies[0], $("f-count"), {
  search: $("f-search"), kind: $("f-kind"), hw: $("f-hw"), link: $("f-link"), update: $("f-update"),
});

function onState(state) {
  sf.state = state;
  clock.sync(state.now_s, state.time_rate);
  worldMap.overlayDirty = true;
  header();
  legend();
  rollouts.update(state.rollouts);
  renderAudit($("audit").tBodies[0], state.audit);
  fleet.update(state);
  sites(state.sites);
  homes(state);
}

function header() {
  const now = clock.now();
  $("sim-time").textContent = Number.isFinite(now) ? `${utc(now)} UTC` : "--";
  $("sim-rate").textContent = clock.rate !== 1 ? `x${Math.round(clock.rate).toLocaleString()}` : "x1";
  const s = sf.state;
  if (!s) return;
  const f = s.fleet || {};
  const n = (v) => esc(Number(v ?? 0).toLocaleString());
  const links = Object.entries(f.by_link || {}).map(([k, v]) => `${esc(k)} <b>${n(v)}</b>`).join(" · ");
  $("counts").innerHTML = `devices <b>${n(s.total)}</b> · online <b>${n(f.online)}</b>`
    + ` · silent <b>${n(f.silent)}</b>${links ? ` · ${links}` : ""} · satellites <b>${n(sf.drawnSatellites)}</b>`;
}

function connection(kind, text) {
  sf.connection = kind;
  const el = $("conn");
  el.className = `conn ${kind === "sse" ? "live" : kind === "polling" ? "poll" : "off"}`;
  el.textContent = text;
}

// --- the connection: SSE through fetch, polling as the fallback -------------------------------------

let generation = 0; // bumped when the token changes: older loops stop
let streamAbort = null;

async function refreshState() {
  try { onState(await api("/dashboard/state")); } catch { /* the stream or the poll will say */ }
}

/**
 * Read the event stream until it ends or fails. A watchdog aborts it when no state event comes
 * for STALL_EVENTS intervals (a server or proxy that keeps the connection open but sends
 * nothing): the error then says "stalled", and the caller falls back to polling.
 */
async function stream(gen) {
  const abort = (streamAbort = new AbortController());
  let stalled = false;
  let timer = 0;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { stalled = true; abort.abort(); }, STALL_EVENTS * POLL_MS);
  };
  watch(); // also for the response's headers and the first event
  try {
    const response = await fetch(`${API}/dashboard/events`, {
      headers: headers({ Accept: "text/event-stream" }), signal: abort.signal, cache: "no-store",
    });
    if (!response.ok || !response.body) {
      const error = new Error(`events: ${response.status}`);
      error.status = response.status;
      throw error;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || gen !== generation) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        if (event === "state" && data.length) {
          watch();
          if (gen !== generation) break;
          onState(JSON.parse(data.join("\n")));
          connection("sse", "live");
        }
      }
    }
  } catch (error) {
    if (stalled) throw new Error("the event stream stalled");
    throw error;
  } finally {
    clearTimeout(timer);
    if (!abort.signal.aborted) abort.abort(); // close the connection whatever ended the loop
  }
  throw new Error("the event stream ended");
}

async function connect() {
  const gen = ++generation;
  if (streamAbort) streamAbort.abort();
  if (!token) { connection("off", "no token"); return; }
  connection("connecting", "connecting");
  loadMap(gen); // in parallel with the first state event
  while (gen === generation) {
    let why = "";
    try {
      await stream(gen);
    } catch (error) {
      if (gen !== generation || error.name === "AbortError") return;
      if (error.status === 401 || error.status === 403) { authOrRetry(error, gen); return; }
      why = error.message;
    }
    if (gen !== generation) return;
    // Fall back to polling for a while, then try the stream again.
    sf.streamProblem = why;
    connection("polling", "polling");
    for (let i = 0; i < 5 && gen === generation; i++) {
      try { onState(await api("/dashboard/state")); connection("polling", "polling"); } catch (error) {
        if (error.status === 401 || error.status === 403) { authOrRetry(error, gen); return; }
        connection("off", "disconnected");
      }
      await new Promise((done) => setTimeout(done, POLL_MS));
    }
  }
}

/** The constellation, gateways and regions (retried until they come, or the token changes). */
async function loadMap(gen) {
  while (gen === generation) {
    try {
      const map = await api("/dashboard/map");
      if (gen !== generation) return;
      mapInfo = sf.map = map;
      orbits = makeOrbits(map);
      worldMap.setOrbits(orbits);
      clock.sync(map.now_s, map.time_rate);
      worldMap.overlayDirty = true;
      return;
    } catch (error) {
      if (error.status === 401 || error.status === 403) return; // the stream says so
      await new Promise((done) => setTimeout(done, POLL_MS));
    }
  }
}

function authOrRetry(error, gen) {
  if (error.status === 401 || error.status === 403) {
    connection("off", `token refused: ${error.message}`);
    return;
  }
  connection("off", "disconnected");
  setTimeout(() => { if (gen === generation) connect(); }, POLL_MS);
}

$("token-input").value = token;
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  connect();
  loadSite(true);
  homePanel.load(true);
});

// --- the site and home panels (fetched on their own) ---------------------------------------------

let siteSeries = null;
let siteFetched = -Infinity;
let siteBusy = false;
const SITE_MIN_MS = 4000; // refetch the site's series at most this often (wall)
const SITE_RETRY_MS = 30000; // after a refused or failed fetch

function sites(list) {
  const select = $("site-select");
  const ids = (list || []).map((s) => s.id);
  const key = (list || []).map((s) => `${s.id}\u0001${s.name ?? ""}`).join("\u0000");
  if (select.dataset.key !== key) {
    select.dataset.key = key;
    const chosen = select.value;
    select.innerHTML = (list || []).map((s) => `<option value="${esc(s.id)}">${esc(s.name || s.id)}</option>`).join("");
    select.value = ids.includes(chosen) ? chosen : ids[0] ?? "";
    if (select.value !== chosen) loadSite(true);
  }
  const site = (list || []).find((s) => s.id === select.value);
  $("site-note").textContent = site ? siteNote(site) : "no sites";
  loadSite(false);
}

function siteNote(site) {
  const l = site.link;
  if (!l) return site.problem || "";
  const now = (m) => (l[m] && l[m].rtt_now_ms != null ? `${l[m].rtt_now_ms.toFixed(0)} ms` : "no path");
  return `${site.region || ""} · laser links ${now("isl")} · bent pipe ${now("bent-pipe")} · fiber ${l.fiber_rtt_ms?.toFixed(0)} ms · internet ${l.internet_rtt_ms?.toFixed(0)} ms`;
}

/** The simulated span the site chart covers: two hours, or half a minute of wall time when the
 * clock runs fast (six hours at x720), so that it is not off the chart a few seconds later. */
function siteSpan_s() { return Math.max(7200, 30 * clock.rate); }

/** Whether the page's now has left the middle half of the fetched window (or there is none). */
function siteStale(id, now) {
  const w = sf.siteWindow;
  if (!siteSeries || siteSeries.id !== id || !w) return true;
  const quarter = (w[1] - w[0]) / 4;
  return now < w[0] + quarter || now > w[1] - quarter || w[1] - w[0] < siteSpan_s() * 0.9;
}

async function loadSite(force) {
  const id = $("site-select").value;
  if (!id || !Number.isFinite(clock.sim_s)) { drawSiteChart($("site-chart"), null); return; }
  const now = clock.now();
  if (siteBusy || (!force && (!siteStale(id, now) || performance.now() - siteFetched < SITE_MIN_MS))) return;
  siteBusy = true;
  siteFetched = performance.now();
  if (!siteSeries || siteSeries.id !== id) lineChart($("site-chart"), { series: [], empty: "computing the link..." });
  const span = siteSpan_s();
  const step = Math.max(60, Math.round(span / 120));
  const start = Math.floor(now - span / 2);
  try {
    siteSeries = await api(`/sites/${encodeURIComponent(id)}/link?duration_s=${span}&step_s=${step}&start_s=${start}`);
    sf.siteWindow = [start, start + span];
  } catch (error) {
    siteSeries = null;
    sf.siteWindow = null;
    siteFetched = performance.now() + SITE_RETRY_MS - SITE_MIN_MS; // not every few seconds
    $("site-note").textContent = `link series: ${error.message}`;
  } finally {
    siteBusy = false;
  }
  if (siteSeries && siteSeries.id !== $("site-select").value) { loadSite(true); return; } // changed meanwhile
  drawSite();
  if (siteSeries) sf.charts.site++;
}
$("site-select").addEventListener("change", () => loadSite(true));

function drawSite() {
  const now = clock.now();
  drawSiteChart($("site-chart"), siteSeries, now);
  sf.siteMark = siteSeries ? now : null;
}

const homePanel = new HomePanel(
  { select: $("home-select"), note: $("home-note"), canvases: { freq: $("freq-chart"), soc: $("soc-chart"), power: $("power-chart") } },
  api, () => clock.now(),
);
sf.homes = homePanel;

function homes(state) {
  homePanel.update(state);
  sf.charts.home = homePanel.loads;
}

// Once a second: the site chart's "now" line moves, and a new window is fetched when now leaves
// the middle half of the one drawn (simulated time runs fast in the demo).
setInterval(() => {
  if (siteSeries) drawSite();
  loadSite(false);
  sf.charts.home = homePanel.loads;
}, 1000);

window.addEventListener("resize", () => {
  if (siteSeries) drawSite();
  homePanel.draw();
});

// --- start --------------------------------------------------------------------------------------

fetch("land-110m.json")
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`land: ${r.status}`))))
  .then((land) => worldMap.setLand(land))
  .catch((error) => { $("map-note").textContent = `map shapes: ${error.message}`; })
  .finally(() => { landLoaded = true; });
legend();
drawSiteChart($("site-chart"), null);
homePanel.draw();
connect();
requestAnimationFrame(frame);
