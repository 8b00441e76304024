// skyfleet's dashboard: the token, the simulated clock, the server connection (server-sent
// events read through fetch, polling as the fallback) and the wiring of the map and the panels.
// window.skyfleet exposes what the browser tests and the load benchmark read.

import { LINK_COLOURS, UPDATE_COLOURS, WorldMap, makeOrbits } from "./map.js";
import { lineChart } from "./chart.js";
import { FleetTable, Rollouts, drawHome, drawSiteChart, esc, renderAudit, utc } from "./panels.js";

const API = "/api/v1";
const TOKEN_KEY = "skyfleet.token";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const sf = (window.skyfleet = {
  ready: false, readyAt: null, drawnDevices: 0, drawnSatellites: 0, frames: 0,
  state: null, map: null, connection: "connecting", charts: { site: 0, home: 0 },
  /** Simulated UNIX time now, as the page keeps it. */
  simNow: () => clock.now(),
  /** Earth-fixed satellite positions (x, y, z km, flat) at UNIX time t_s, as the map draws them. */
  satellitesAt: (t_s) => (orbits ? Array.from(orbits.ecef(t_s)) : []),
});

// --- the token ------------------------------------------------------------------------------------

function initialToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    const token = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
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

const clock = {
  sim_s: NaN, wall_ms: 0, rate: 1,
  anchor(now_s, rate) {
    this.sim_s = now_s; this.wall_ms = performance.now();
    if (Number.isFinite(rate) && rate > 0) this.rate = rate;
  },
  now() { return this.sim_s + ((performance.now() - this.wall_ms) / 1000) * this.rate; },
};

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
  $("legend").innerHTML = keys.map((k) => `<span><i style="background:${colours[k]}"></i>${esc(k)}</span>`).join("")
    + '<span><i style="background:#e6ebf5"></i>satellite</span><span><i style="background:#81c784;border-radius:0;clip-path:polygon(50% 0,100% 100%,0 100%)"></i>gateway</span>'
    + '<span><i style="background:#4dd0e1"></i>cloud region</span><span><i style="background:#fff;transform:rotate(45deg) scale(.8)"></i>site</span>';
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
  clock.anchor(state.now_s, state.time_rate);
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
  const links = Object.entries(f.by_link || {}).map(([k, n]) => `${esc(k)} <b>${n.toLocaleString()}</b>`).join(" · ");
  $("counts").innerHTML = `devices <b>${s.total.toLocaleString()}</b> · online <b>${(f.online ?? 0).toLocaleString()}</b>`
    + ` · silent <b>${(f.silent ?? 0).toLocaleString()}</b>${links ? ` · ${links}` : ""} · satellites <b>${sf.drawnSatellites.toLocaleString()}</b>`;
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

async function stream(gen) {
  streamAbort = new AbortController();
  const response = await fetch(`${API}/dashboard/events`, {
    headers: headers({ Accept: "text/event-stream" }), signal: streamAbort.signal, cache: "no-store",
  });
  if (!response.ok || !response.body) {
    const error = new Error(`events: ${response.status}`);
    error.status = response.status;
    throw error;
  }
  connection("sse", "live");
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
      if (event === "state" && data.length) onState(JSON.parse(data.join("\n")));
    }
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
    try {
      await stream(gen);
    } catch (error) {
      if (gen !== generation || error.name === "AbortError") return;
      if (error.status === 401 || error.status === 403) { authOrRetry(error, gen); return; }
    }
    // Fall back to polling for a while, then try the stream again.
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
      if (!Number.isFinite(clock.sim_s)) clock.anchor(map.now_s, map.time_rate);
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
  loadHome(true);
});

// --- the site and home panels (fetched on their own) ---------------------------------------------

let siteSeries = null;
let siteFetched = 0;

function sites(list) {
  const select = $("site-select");
  const ids = (list || []).map((s) => s.id);
  const key = ids.join("\u0000");
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

async function loadSite(force) {
  const id = $("site-select").value;
  if (!id || !Number.isFinite(clock.sim_s)) { drawSiteChart($("site-chart"), null); return; }
  if (!force && performance.now() - siteFetched < 20000) return;
  siteFetched = performance.now();
  if (!siteSeries || siteSeries.id !== id) lineChart($("site-chart"), { series: [], empty: "computing the link..." });
  const start = Math.floor(clock.now() - 3600);
  try {
    siteSeries = await api(`/sites/${encodeURIComponent(id)}/link?duration_s=7200&step_s=60&start_s=${start}`);
  } catch (error) {
    siteSeries = null;
    $("site-note").textContent = `link series: ${error.message}`;
  }
  drawSiteChart($("site-chart"), siteSeries, clock.now());
  if (siteSeries) sf.charts.site++;
}
$("site-select").addEventListener("change", () => loadSite(true));

let homeData = [];
let homeFetched = 0;
let homeBusy = false;

function homes(state) {
  const d = state.devices;
  const names = new Set();
  const withSamples = [];
  for (let i = 0; i < d.id.length; i++) {
    const h = d.home[i];
    if (h == null) continue;
    names.add(h);
    if (d.last_seen[i] != null && !withSamples.includes(h)) withSamples.push(h);
  }
  const list = [...names].sort();
  const select = $("home-select");
  const key = list.join("\u0000");
  if (select.dataset.key !== key) {
    select.dataset.key = key;
    const chosen = select.value;
    select.innerHTML = list.map((h) => `<option>${esc(h)}</option>`).join("");
    select.value = list.includes(chosen) ? chosen : (withSamples.sort()[0] ?? list[0] ?? "");
    if (select.value !== chosen) loadHome(true);
  }
  if (!list.length) $("home-note").textContent = "no Powershare homes";
  loadHome(false);
}

async function loadHome(force) {
  const home = $("home-select").value;
  const state = sf.state;
  const canvases = { freq: $("freq-chart"), soc: $("soc-chart"), power: $("power-chart") };
  if (!home || !state) { drawHome(canvases, [], NaN); return; }
  if (homeBusy || (!force && performance.now() - homeFetched < 5000)) return;
  homeBusy = true;
  homeFetched = performance.now();
  const d = state.devices;
  const ids = d.id.filter((_, i) => d.home[i] === home).slice(0, 8);
  try {
    homeData = await Promise.all(ids.map(async (id) => {
      const t = await api(`/devices/${encodeURIComponent(id)}/telemetry?limit=1000`);
      return { id, history: t.history || [] };
    }));
    const latest = homeData.map((h) => h.history[0]).filter(Boolean);
    const states = [...new Set(latest.map((s) => s.state).filter(Boolean))].join(", ");
    $("home-note").textContent = `${ids.length} devices${states ? ` · ${states}` : ""}`;
  } catch (error) {
    $("home-note").textContent = `telemetry: ${error.message}`;
  } finally {
    homeBusy = false;
  }
  drawHome(canvases, homeData, clock.now());
  if (homeData.length) sf.charts.home++;
}
$("home-select").addEventListener("change", () => loadHome(true));

window.addEventListener("resize", () => {
  if (siteSeries) drawSiteChart($("site-chart"), siteSeries, clock.now());
  drawHome({ freq: $("freq-chart"), soc: $("soc-chart"), power: $("power-chart") }, homeData, clock.now());
});

// --- start --------------------------------------------------------------------------------------

fetch("land-110m.json")
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`land: ${r.status}`))))
  .then((land) => worldMap.setLand(land))
  .catch((error) => { $("map-note").textContent = `map shapes: ${error.message}`; })
  .finally(() => { landLoaded = true; });
legend();
drawSiteChart($("site-chart"), null);
drawHome({ freq: $("freq-chart"), soc: $("soc-chart"), power: $("power-chart") }, [], NaN);
connect();
requestAnimationFrame(frame);
