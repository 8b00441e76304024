// The Powershare panel: one home's devices (frequency, state of charge, power). By default the
// page shows a home that is riding through the outage - one whose devices report an island
// state - and otherwise the first home with samples; once the user picks a home, it stays.

import { drawHome, esc } from "./panels.js";

/** Device states of a home off the grid (the demo's outage homes); "grid" is the normal one. */
export const OUTAGE_STATES = new Set(["grid-forming", "following", "island", "tripped"]);

const REFRESH_MS = 5000; // the shown home's telemetry, at most this often (wall)
const PROBE_MS = 15000; // a look for an outage home, at most this often (wall)
const PROBE_HOMES = 40; // homes a look asks about (one device each), taking turns
const PROBE_BATCH = 8; // requests at once

export class HomePanel {
  /** api(path) -> JSON; now() -> simulated UNIX s; ui: {select, note, canvases}. */
  constructor(ui, api, now) {
    this.ui = ui;
    this.api = api;
    this.now = now;
    this.auto = true; // the page chooses, until the user does
    this.outage = new Map(); // home -> whether its devices' latest state is an outage state
    this.data = [];
    this.devices = new Map(); // home -> device ids, those with samples first
    this.withSamples = [];
    this.fetched = 0;
    this.busy = false;
    this.probedAt = -Infinity;
    this.cursor = 0;
    this.loads = 0;
    ui.select.addEventListener("change", () => { this.auto = false; this.load(true); });
  }

  update(state) {
    const d = state.devices;
    const devices = new Map();
    const seen = new Set();
    const live = Array.isArray(d.state); // a column with each device's latest state, if sent
    if (live) this.outage.clear();
    for (let i = 0; i < d.id.length; i++) {
      const h = d.home[i];
      if (h == null) continue;
      if (!devices.has(h)) devices.set(h, []);
      const ids = devices.get(h);
      if (d.last_seen[i] != null) { ids.unshift(d.id[i]); seen.add(h); } else ids.push(d.id[i]);
      if (live && OUTAGE_STATES.has(d.state[i])) this.outage.set(h, true);
      else if (live && !this.outage.has(h)) this.outage.set(h, false);
    }
    this.devices = devices;
    const list = [...devices.keys()].sort();
    this.withSamples = list.filter((h) => seen.has(h));
    const select = this.ui.select;
    const key = list.join("\u0000");
    if (select.dataset.key !== key) {
      select.dataset.key = key;
      const chosen = select.value;
      select.innerHTML = list.map((h) => `<option>${esc(h)}</option>`).join("");
      select.value = list.includes(chosen) ? chosen : "";
      if (!list.includes(chosen)) this.auto = true;
    }
    if (!list.length) { this.ui.note.textContent = "no Powershare homes"; return; }
    this.choose();
    if (this.auto && !live && !this.outage.get(select.value)) this.probe();
    this.load(false);
  }

  /** The page's choice: the shown home while it is in the outage, else the first that is, else
   * the first home with samples. */
  choose() {
    const select = this.ui.select;
    if (!this.auto) return;
    const current = select.value;
    let want = this.outage.get(current) ? current : this.withSamples.find((h) => this.outage.get(h));
    if (want == null) want = this.withSamples.includes(current) ? current : (this.withSamples[0] ?? current);
    if (!want) want = select.options[0]?.value ?? "";
    if (want !== current) { select.value = want; this.load(true); }
  }

  /** Ask for the latest sample of one device in each of a few homes with samples, in turns,
   * until one is in the outage (the state columns carry no device state). */
  async probe() {
    const homes = this.withSamples.filter((h) => !this.outage.has(h) || !this.outage.get(h));
    if (!homes.length || performance.now() - this.probedAt < PROBE_MS) return;
    this.probedAt = performance.now();
    const start = this.cursor % homes.length;
    const turn = [...homes.slice(start), ...homes.slice(0, start)].slice(0, PROBE_HOMES);
    this.cursor = start + turn.length;
    for (let k = 0; k < turn.length; k += PROBE_BATCH) {
      const batch = turn.slice(k, k + PROBE_BATCH);
      const found = await Promise.all(batch.map(async (home) => {
        const id = (this.devices.get(home) || [])[0];
        if (id == null) return false;
        try {
          const t = await this.api(`/devices/${encodeURIComponent(id)}/telemetry?limit=1`);
          const inOutage = OUTAGE_STATES.has(t.latest?.state);
          this.outage.set(home, inOutage);
          return inOutage;
        } catch {
          return false;
        }
      }));
      if (found.some(Boolean)) break;
    }
    this.choose();
  }

  async load(force) {
    const home = this.ui.select.value;
    const canvases = this.ui.canvases;
    if (!home) { drawHome(canvases, [], NaN); return; }
    if (this.busy || (!force && performance.now() - this.fetched < REFRESH_MS)) return;
    this.busy = true;
    this.fetched = performance.now();
    const ids = (this.devices.get(home) || []).slice(0, 8).sort();
    try {
      this.data = await Promise.all(ids.map(async (id) => {
        const t = await this.api(`/devices/${encodeURIComponent(id)}/telemetry?limit=1000`);
        return { id, history: t.history || [] };
      }));
      const latest = this.data.map((h) => h.history[0]).filter(Boolean);
      const states = [...new Set(latest.map((s) => s.state).filter(Boolean))];
      if (latest.length) this.outage.set(home, states.some((s) => OUTAGE_STATES.has(s)));
      this.ui.note.textContent = `${ids.length} devices${states.length ? ` · ${states.join(", ")}` : ""}`;
    } catch (error) {
      this.ui.note.textContent = `telemetry: ${error.message}`;
    } finally {
      this.busy = false;
    }
    if (this.ui.select.value !== home) { this.load(true); return; } // changed meanwhile
    this.draw();
    if (this.data.length) this.loads++;
  }

  draw() {
    drawHome(this.ui.canvases, this.data, this.now());
  }
}
