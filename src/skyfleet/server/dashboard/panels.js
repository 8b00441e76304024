// The panels under the map: rollouts (with halt / resume), the audit log, the fleet table, a
// site's RTT against fiber, and a Powershare home. Every string from the server goes into the
// page through esc() or textContent.

import { lineChart } from "./chart.js";

/** Text made safe for innerHTML. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** "2026-01-01 12:34:56" for UNIX seconds (UTC). */
export function utc(t_s) {
  if (t_s == null || !Number.isFinite(t_s)) return "";
  return new Date(t_s * 1000).toISOString().slice(0, 19).replace("T", " ");
}

function pct(v) { return v == null || !Number.isFinite(v) ? "-" : `${v.toFixed(1)}%`; }

const DONE_OK = ["confirmed"];
const DONE_BAD = ["failed", "timed_out", "cancelled"];
// The operations each rollout status allows (skyfleet.rollout), for a server that does not send
// a rollout's "operations" list.
const ALLOWED = {
  created: ["start", "cancel"],
  running: ["halt", "cancel", "rollback"],
  waiting: ["halt", "resume", "cancel", "rollback"],
  halted: ["resume", "cancel", "rollback"],
  complete: ["rollback"],
  cancelled: ["rollback"],
};

/** The operations a rollout allows now: the server's list, else the ones its status allows. */
export function operations(r) {
  return new Set(Array.isArray(r.operations) ? r.operations : ALLOWED[r.status] || []);
}

// --- rollouts --------------------------------------------------------------------------------------

export class Rollouts {
  /** `act(id, verb)` posts halt or resume and resolves to {ok, message}. */
  constructor(root, msg, act) {
    this.root = root;
    this.msg = msg;
    this.act = act;
    this.cards = new Map();
    root.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-verb]");
      if (button) this.click(Number(button.dataset.id), button.dataset.verb, button);
    });
  }

  async click(id, verb, button) {
    button.disabled = true;
    this.say(`${verb} rollout ${id}...`, "");
    const { ok, message } = await this.act(id, verb);
    this.say(ok ? `rollout ${id}: ${verb} accepted` : `rollout ${id}: ${verb} refused: ${message}`, ok ? "ok" : "error");
    button.disabled = false;
  }

  say(text, kind) {
    this.msg.textContent = text;
    this.msg.className = `msg ${kind}`;
  }

  update(rollouts) {
    const seen = new Set();
    let previous = null;
    for (const r of rollouts || []) {
      seen.add(r.id);
      let card = this.cards.get(r.id);
      if (!card) { card = this.card(r); this.cards.set(r.id, card); }
      // Newest first, as the state lists them.
      if (previous ? previous.nextSibling !== card.el : this.root.firstChild !== card.el) {
        this.root.insertBefore(card.el, previous ? previous.nextSibling : this.root.firstChild);
      }
      previous = card.el;
      this.fill(card, r);
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) { card.el.remove(); this.cards.delete(id); }
    }
    if (!this.cards.size) this.root.innerHTML = '<div class="note">no rollouts</div>';
    else this.root.querySelectorAll(":scope > .note").forEach((n) => n.remove());
  }

  card(r) {
    const el = document.createElement("div");
    el.className = "rollout";
    el.dataset.rollout = String(r.id);
    el.innerHTML = `<div class="rollout-head"><span class="name"></span><span class="release note"></span>
      <span class="status"></span><span class="reason note"></span><span class="totals note"></span>
      <span class="buttons"><button data-verb="halt" data-id="${esc(r.id)}">Halt</button>
      <button data-verb="resume" data-id="${esc(r.id)}">Resume</button></span></div><div class="groups"></div>`;
    return { el, groups: el.querySelector(".groups"), key: "" };
  }

  fill(card, r) {
    const q = (s) => card.el.querySelector(s);
    q(".name").textContent = `#${r.id} ${r.name || ""}`;
    q(".release").textContent = r.release || "";
    const status = q(".status");
    status.textContent = r.status;
    status.className = `status ${r.status}`;
    q(".reason").textContent = r.reason ? `(${r.reason})` : "";
    q(".totals").textContent = `${r.finished ?? 0} / ${r.total ?? 0} finished`;
    const ops = operations(r);
    q('button[data-verb="halt"]').hidden = !ops.has("halt");
    q('button[data-verb="resume"]').hidden = !ops.has("resume");
    const key = JSON.stringify(r.groups);
    if (key === card.key) return;
    card.key = key;
    card.groups.innerHTML = (r.groups || []).map(group).join("");
    // Bar widths through the DOM: the page's Content-Security-Policy refuses style attributes.
    for (const bar of card.groups.querySelectorAll(".bar > span[data-pct]")) bar.style.width = `${bar.dataset.pct}%`;
  }
}

function group(g) {
  const counts = g.counts || {};
  const total = g.total || 0;
  const ok = DONE_OK.reduce((n, k) => n + (counts[k] || 0), 0);
  const bad = DONE_BAD.reduce((n, k) => n + (counts[k] || 0), 0);
  const waiting = counts.scheduled || 0;
  const prog = Math.max(0, total - ok - bad - waiting);
  const w = (n) => (total ? (100 * n) / total : 0).toFixed(2);
  const parts = Object.entries(counts).filter(([, n]) => n).map(([k, n]) => `${esc(k)} ${esc(n)}`).join(", ");
  const state = g.started ? "started" : "not started";
  const link = g.waiting_for_link ? ` · ${esc(g.waiting_for_link)} waiting for a link` : "";
  return `<div class="group" data-group="${esc(g.index)}"><span class="gname" title="${esc(g.group)}">${esc(g.index)}. ${esc(g.group)}</span>
    <div class="bar" title="${esc(ok)} ok, ${esc(bad)} failed, ${esc(prog)} in progress of ${esc(total)}"><span class="ok" data-pct="${esc(w(ok))}"></span><span class="bad" data-pct="${esc(w(bad))}"></span><span class="prog" data-pct="${esc(w(prog))}"></span></div>
    <span class="counts note">${state} · ${esc(total)} devices · ${parts || "none"} · success ${esc(pct(g.success_rate_pct))} · errors ${esc(pct(g.error_rate_pct))}${link}</span></div>`;
}

// --- audit -----------------------------------------------------------------------------------------

export function renderAudit(tbody, entries) {
  const rows = (entries || []).slice().sort((a, b) => (b.ts - a.ts) || (b.id - a.id));
  const key = rows.length ? `${rows[0].id}:${rows.length}` : "";
  if (tbody.dataset.key === key) return;
  tbody.dataset.key = key;
  tbody.innerHTML = rows.map((e) => {
    const change = e.from_state || e.to_state ? ` ${e.from_state ?? ""} → ${e.to_state ?? ""}` : "";
    const what = [e.rollout_id != null ? `rollout ${e.rollout_id}` : "", e.device_id ? `device ${e.device_id}` : "", e.detail || ""].filter(Boolean).join(" · ");
    return `<tr><td>${esc(utc(e.ts))}</td><td>${esc(e.actor)}</td><td>${esc(e.event)}${esc(change)}</td><td class="detail">${esc(what)}</td></tr>`;
  }).join("") || '<tr><td colspan="4" class="note">no entries</td></tr>';
}

// --- fleet table -----------------------------------------------------------------------------------

const MAX_ROWS = 200;

export class FleetTable {
  constructor(tbody, count, filters) {
    this.tbody = tbody;
    this.count = count;
    this.filters = filters; // {search, kind, hw, link, update}: input / select elements
    this.state = null;
    for (const el of Object.values(filters)) el.addEventListener("input", () => this.render());
  }

  update(state) {
    this.state = state;
    const d = state.devices;
    for (const col of ["kind", "hw", "link", "update"]) {
      const select = this.filters[col];
      const values = [...new Set(d[col].map((v) => v ?? ""))].filter((v) => v !== "").sort();
      const key = values.join("\u0000");
      if (select.dataset.key === key) continue;
      select.dataset.key = key;
      const chosen = select.value;
      const first = select.options[0].outerHTML;
      select.innerHTML = first + values.map((v) => `<option>${esc(v)}</option>`).join("");
      select.value = values.includes(chosen) ? chosen : "";
    }
    this.render();
  }

  render() {
    const state = this.state;
    if (!state) return;
    const d = state.devices;
    const f = this.filters;
    const text = f.search.value.trim().toLowerCase();
    const want = { kind: f.kind.value, hw: f.hw.value, link: f.link.value, update: f.update.value };
    const rows = [];
    let matches = 0;
    for (let i = 0; i < d.id.length; i++) {
      if (text && !String(d.id[i]).toLowerCase().includes(text)) continue;
      if (want.kind && d.kind[i] !== want.kind) continue;
      if (want.hw && d.hw[i] !== want.hw) continue;
      if (want.link && d.link[i] !== want.link) continue;
      if (want.update && d.update[i] !== want.update) continue;
      matches++;
      if (rows.length < MAX_ROWS) rows.push(i);
    }
    const now = state.now_s;
    this.tbody.innerHTML = rows.map((i) => {
      const pos = d.lat_deg[i] == null ? "" : `${d.lat_deg[i].toFixed(2)}, ${d.lon_deg[i].toFixed(2)}`;
      const seen = d.last_seen[i] == null ? "never" : `${ago(now - d.last_seen[i])} ago`;
      const link = d.link[i] ?? "";
      return `<tr><td>${esc(d.id[i])}</td><td>${esc(d.kind[i])}</td><td>${esc(d.hw[i])}</td><td class="link-${esc(link)}">${esc(link)}</td><td>${d.rtt_ms[i] == null ? "" : esc(Math.round(d.rtt_ms[i]))}</td><td>${esc(d.version[i])}</td><td>${esc(d.update[i])}</td><td>${esc(pos)}</td><td>${esc(seen)}</td></tr>`;
    }).join("");
    const of = state.truncated ? ` (the first ${d.id.length.toLocaleString()} of ${state.total.toLocaleString()} devices)` : "";
    this.count.textContent = `${matches.toLocaleString()} matching${of}${matches > MAX_ROWS ? `, showing the first ${MAX_ROWS}` : ""}`;
  }
}

function ago(s) {
  if (!Number.isFinite(s)) return "";
  s = Math.max(0, s);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.round(s / 86400)} d`;
}

// --- site link chart -------------------------------------------------------------------------------

export function drawSiteChart(canvas, series, now_s) {
  if (!series || !series.t_s) { lineChart(canvas, { series: [], empty: "select a site" }); return; }
  const xs = series.t_s.map((t) => series.start_unix_s + t);
  const line = (mode, color, name) => ({ name, color, xs, ys: (series[mode] && series[mode].rtt_ms) || [] });
  const ref = (v) => (Array.isArray(v) ? v.find((x) => x != null) : v);
  lineChart(canvas, {
    series: [line("isl", "#4fc3f7", "satellite, laser links"), line("bent-pipe", "#ffb74d", "satellite, bent pipe")],
    refs: [
      { name: "fiber", color: "#81c784", y: ref(series.fiber_rtt_ms) },
      { name: "internet", color: "#9e9e9e", y: ref(series.internet_rtt_ms) },
    ],
    yLabel: "ms", xTime: true, now: now_s, yMin: 0,
    xMin: xs[0], xMax: xs[xs.length - 1],
  });
}

// --- Powershare ------------------------------------------------------------------------------------

const PALETTE = ["#4fc3f7", "#ffb74d", "#81c784", "#ba68c8", "#e57373", "#4dd0e1", "#f0e68c", "#90a4ae"];

/** samples: [{id, history: newest first}] -> three charts. */
export function drawHome(canvases, devices, now_s) {
  const make = (field) => devices.map((dev, k) => {
    const h = dev.history.slice().reverse();
    return { name: dev.id, color: PALETTE[k % PALETTE.length], xs: h.map((s) => s.ts), ys: h.map((s) => s[field]) };
  }).filter((s) => s.ys.some((v) => v != null));
  lineChart(canvases.freq, { series: make("freq_hz"), yLabel: "Hz", xTime: true, now: now_s, empty: "no frequency samples" });
  lineChart(canvases.soc, { series: make("soc_pct"), yLabel: "SoC %", xTime: true, now: now_s, empty: "no state-of-charge samples" });
  lineChart(canvases.power, { series: make("power_w"), yLabel: "W", xTime: true, now: now_s, empty: "no power samples" });
}
