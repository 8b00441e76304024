// The world map: equirectangular land (cached), satellites computed every frame from the Walker
// shells the server sends, and an overlay of devices, gateways, cloud regions and sites that is
// redrawn only when the state or the colouring changes. Markers are batched into one path per
// colour so that tens of thousands stay smooth.

const OCEAN = "#0a1624";
const LAND = "#22364a";
const BORDER = "rgba(120, 150, 180, 0.35)";
const SAT = "rgba(230, 235, 245, 0.75)";

export const LINK_COLOURS = {
  cellular: "#4fc3f7", satellite: "#ffb74d", wired: "#81c784", none: "#e57373", unknown: "#6e7681",
};
export const UPDATE_COLOURS = {
  none: "#6e7681", scheduled: "#90a4ae", retrieved: "#90a4ae", downloading: "#4fc3f7",
  downloaded: "#4dd0e1", installing: "#ba68c8", rebooting: "#ba68c8", confirmed: "#81c784",
  success: "#81c784", failed: "#e57373", error: "#e57373", timed_out: "#ff8a65",
  cancelling: "#616161", cancelled: "#616161", canceled: "#616161", other: "#f0e68c",
};

/** Walker shells -> a function giving every satellite's Earth-fixed position at a time. */
export function makeOrbits(map) {
  const shells = (map.constellation && map.constellation.shells) || [];
  const gmst0 = map.earth.gmst_rad;
  const rot = map.earth.rotation_rad_s;
  const t0 = map.now_s;
  const size = shells.reduce((n, s) => n + s.planes * s.sats_per_plane, 0);
  const prepared = shells.map((s) => {
    const P = s.planes, S = s.sats_per_plane;
    const u0 = new Float64Array(P * S);
    for (let p = 0; p < P; p++) {
      for (let k = 0; k < S; k++) u0[p * S + k] = 2 * Math.PI * (k / S + (s.phasing * p) / (P * S));
    }
    const inc = (s.inclination_deg * Math.PI) / 180;
    return { s, P, S, u0, ci: Math.cos(inc), si: Math.sin(inc), r: s.radius_km };
  });

  /** Fill `out` (Float64Array of 3 * size: x, y, z km, Earth-fixed) for UNIX time t_s. */
  function ecef(t_s, out = new Float64Array(3 * size)) {
    const gmst = gmst0 + rot * (t_s - t0);
    let j = 0;
    for (const q of prepared) {
      const { s, P, S, u0, ci, si, r } = q;
      const dt = t_s - s.epoch_unix_s;
      const w = (s.arglat_rate_rad_s * dt) % (2 * Math.PI);
      const cw = Math.cos(w), sw = Math.sin(w);
      const raan0 = (s.raan0_deg * Math.PI) / 180 + s.raan_rate_rad_s * dt - gmst;
      for (let p = 0; p < P; p++) {
        const node = raan0 + (2 * Math.PI * p) / P;
        const cn = Math.cos(node), sn = Math.sin(node);
        for (let k = 0; k < S; k++) {
          const a = u0[p * S + k];
          const ca = Math.cos(a), sa = Math.sin(a);
          const cu = ca * cw - sa * sw, su = sa * cw + ca * sw;
          out[j++] = r * (cn * cu - sn * su * ci);
          out[j++] = r * (sn * cu + cn * su * ci);
          out[j++] = r * su * si;
        }
      }
    }
    return out;
  }
  return { size, ecef };
}

export class WorldMap {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.land = null;
    this.base = document.createElement("canvas");
    this.overlay = document.createElement("canvas");
    this.overlayDirty = true;
    this.baseDirty = true;
    this.w = 0;
    this.h = 0;
    this.orbits = null;
    this.satBuf = null;
    this.drawnDevices = 0;
    this.drawnSatellites = 0;
  }

  setLand(land) { this.land = land; this.baseDirty = true; }

  setOrbits(orbits) { this.orbits = orbits; this.satBuf = new Float64Array(3 * orbits.size); }

  /** Match the canvas to its box; true when the size changed. */
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(200, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.round(w / 2);
    if (w === this.w && h === this.h) return false;
    this.w = w; this.h = h;
    for (const c of [this.canvas, this.base, this.overlay]) { c.width = w; c.height = h; }
    this.canvas.style.height = `${h / dpr}px`;
    this.baseDirty = this.overlayDirty = true;
    return true;
  }

  x(lon) { return ((lon + 180) / 360) * this.w; }

  y(lat) { return ((90 - lat) / 180) * this.h; }

  drawBase() {
    const ctx = this.base.getContext("2d");
    const { w, h } = this;
    ctx.fillStyle = OCEAN;
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "rgba(120, 150, 180, 0.10)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let lon = -150; lon < 180; lon += 30) { ctx.moveTo(this.x(lon), 0); ctx.lineTo(this.x(lon), h); }
    for (let lat = -60; lat <= 60; lat += 30) { ctx.moveTo(0, this.y(lat)); ctx.lineTo(w, this.y(lat)); }
    ctx.stroke();
    if (this.land) {
      const path = new Path2D();
      for (const ring of this.land.land || []) this.addShape(path, ring, true);
      ctx.fillStyle = LAND;
      ctx.fill(path, "evenodd");
      const borders = new Path2D();
      for (const line of this.land.borders || []) this.addShape(borders, line, false);
      ctx.strokeStyle = BORDER;
      ctx.lineWidth = Math.max(0.5, w / 3000);
      ctx.stroke(borders);
    }
    this.baseDirty = false;
  }

  /** A ring or line of [lon, lat, ...]; again shifted 360 deg where it passes the map's edge. */
  addShape(path, flat, closed) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < flat.length; i += 2) { lo = Math.min(lo, flat[i]); hi = Math.max(hi, flat[i]); }
    for (const shift of [-360, 0, 360]) {
      if (hi + shift < -180 || lo + shift > 180) continue;
      path.moveTo(this.x(flat[0] + shift), this.y(flat[1]));
      for (let i = 2; i < flat.length; i += 2) path.lineTo(this.x(flat[i] + shift), this.y(flat[i + 1]));
      if (closed) path.closePath();
    }
  }

  /** Devices (coloured by `mode`), gateways, regions and sites onto the overlay canvas. */
  drawOverlay(state, map, mode) {
    const ctx = this.overlay.getContext("2d");
    const { w, h } = this;
    const dpr = window.devicePixelRatio || 1;
    ctx.clearRect(0, 0, w, h);
    if (map && map.gateways) {
      const g = map.gateways;
      ctx.fillStyle = "rgba(129, 199, 132, 0.8)";
      const s = 2.5 * dpr;
      ctx.beginPath();
      for (let i = 0; i < g.lat_deg.length; i++) {
        const x = this.x(g.lon_deg[i]), y = this.y(g.lat_deg[i]);
        ctx.moveTo(x, y - s); ctx.lineTo(x + s, y + s); ctx.lineTo(x - s, y + s); ctx.closePath();
      }
      ctx.fill();
    }
    let drawn = 0;
    const d = state && state.devices;
    if (d && d.id) {
      const colours = mode === "update" ? UPDATE_COLOURS : LINK_COLOURS;
      const column = mode === "update" ? d.update : d.link;
      const fallback = mode === "update" ? "other" : "unknown";
      const paths = new Map();
      const size = Math.max(2, Math.round(2.5 * dpr));
      const half = size / 2;
      const lats = d.lat_deg, lons = d.lon_deg;
      for (let i = 0; i < d.id.length; i++) {
        const lat = lats[i], lon = lons[i];
        if (lat == null || lon == null) continue;
        const key = column[i] && colours[column[i]] ? column[i] : fallback;
        let path = paths.get(key);
        if (!path) { path = new Path2D(); paths.set(key, path); }
        path.rect(this.x(lon) - half, this.y(lat) - half, size, size);
        drawn++;
      }
      for (const [key, path] of paths) { ctx.fillStyle = colours[key]; ctx.fill(path); }
    }
    this.drawnDevices = drawn;
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    for (const r of (map && map.regions) || []) {
      const x = this.x(r.lon_deg), y = this.y(r.lat_deg), s = 3 * dpr;
      ctx.fillStyle = "#4dd0e1";
      ctx.fillRect(x - s, y - s, 2 * s, 2 * s);
      ctx.fillStyle = "rgba(77, 208, 225, 0.85)";
      this.label(ctx, r.id, x, y + 8 * dpr, 6 * dpr);
    }
    for (const site of (state && state.sites) || []) {
      if (site.lat_deg == null || site.lon_deg == null) continue;
      const x = this.x(site.lon_deg), y = this.y(site.lat_deg), s = 5 * dpr;
      ctx.fillStyle = "#ffffff";
      ctx.strokeStyle = "#0a1624";
      ctx.beginPath();
      ctx.moveTo(x, y - s); ctx.lineTo(x + s, y); ctx.lineTo(x, y + s); ctx.lineTo(x - s, y); ctx.closePath();
      ctx.fill(); ctx.stroke();
      ctx.lineWidth = 3 * dpr;
      this.label(ctx, site.name || site.id, x, y, 8 * dpr, true);
      ctx.lineWidth = 1;
    }
    this.overlayDirty = false;
    return drawn;
  }

  /** Text beside a marker: to its right, or to its left near the map's right edge. */
  label(ctx, text, x, y, gap, halo = false) {
    const right = x + gap + ctx.measureText(text).width > this.w;
    ctx.textAlign = right ? "right" : "left";
    const at = right ? x - gap : x + gap;
    if (halo) ctx.strokeText(text, at, y);
    ctx.fillText(text, at, y);
    ctx.textAlign = "left";
  }

  /** One frame: land, satellites at simulated time t_s, the overlay. */
  frame(t_s) {
    const ctx = this.ctx;
    if (this.baseDirty) this.drawBase();
    ctx.drawImage(this.base, 0, 0);
    let sats = 0;
    if (this.orbits && Number.isFinite(t_s)) {
      const buf = this.orbits.ecef(t_s, this.satBuf);
      const dpr = window.devicePixelRatio || 1;
      const s = dpr >= 2 ? 2 : 1.5;
      const kx = this.w / (2 * Math.PI), ky = this.h / Math.PI;
      ctx.fillStyle = SAT;
      ctx.beginPath();
      for (let i = 0; i < buf.length; i += 3) {
        const x = buf[i], y = buf[i + 1], z = buf[i + 2];
        const lon = Math.atan2(y, x);
        const lat = Math.atan2(z, Math.hypot(x, y));
        ctx.rect((lon + Math.PI) * kx - s / 2, (Math.PI / 2 - lat) * ky - s / 2, s, s);
        sats++;
      }
      ctx.fill();
    }
    ctx.drawImage(this.overlay, 0, 0);
    this.drawnSatellites = sats;
  }
}
