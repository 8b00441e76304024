// A small canvas line chart: axes with ticks and labels, one line per series, gaps where a value
// is null or not finite, optional constant reference lines and a "now" marker. No dependencies.

const AXIS = "#8b949e";
const GRID = "rgba(139, 148, 158, 0.15)";

/** Round tick steps (1, 2, 5 x 10^n) covering [lo, hi] with about `count` ticks. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

const TIME_STEPS_S = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeTicks(lo, hi, count = 6) {
  const step = TIME_STEPS_S.find((s) => (hi - lo) / s <= count) || 86400;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(t);
  return out;
}

/** "HH:MM" UTC for UNIX seconds. */
export function utcHM(t_s) {
  return new Date(t_s * 1000).toISOString().slice(11, 16);
}

/** A tick label with as many decimals as the tick step needs (59.98, 59.99, 60 not 60, 60, 60). */
function fmtTick(v, step) {
  if (!(step > 0) || step >= 1 || Math.abs(v) >= 10000) return fmt(v);
  return v.toFixed(Math.min(6, Math.ceil(-Math.log10(step) - 1e-9)));
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 10000) return (v / 1000).toFixed(0) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, "");
  return v.toFixed(2).replace(/\.?0+$/, "") || "0";
}

/** Size the canvas's backing store to its CSS box (device pixels); the 2D context, in CSS px. */
function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(100, canvas.clientWidth);
  const h = Math.max(60, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

/**
 * Draw a line chart.
 * opts: {series: [{name, color, xs, ys, dash?}], refs?: [{name, color, y}], yLabel, xTime (bool:
 * x in UNIX s, labelled HH:MM UTC), xMin?, xMax?, yMin?, yMax?, now? (x of a marker), empty?}
 */
export function lineChart(canvas, opts) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 46, r: 10, t: 20, b: 22 };
  const series = opts.series || [];
  const refs = opts.refs || [];
  let xMin = opts.xMin ?? Infinity, xMax = opts.xMax ?? -Infinity;
  let yMin = Infinity, yMax = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (y == null || !Number.isFinite(y)) continue;
      if (opts.xMin == null) xMin = Math.min(xMin, s.xs[i]);
      if (opts.xMax == null) xMax = Math.max(xMax, s.xs[i]);
      yMin = Math.min(yMin, y);
      yMax = Math.max(yMax, y);
    }
  }
  for (const r of refs) {
    if (Number.isFinite(r.y)) { yMin = Math.min(yMin, r.y); yMax = Math.max(yMax, r.y); }
  }
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  if (!Number.isFinite(yMin) || !Number.isFinite(xMin) || !(xMax > xMin)) {
    ctx.fillStyle = AXIS;
    ctx.textAlign = "center";
    ctx.fillText(opts.empty || "no data", w / 2, h / 2);
    return;
  }
  if (opts.yMin != null) yMin = Math.min(yMin, opts.yMin);
  if (opts.yMax != null) yMax = Math.max(yMax, opts.yMax);
  if (yMax - yMin < 1e-9) { yMin -= 1; yMax += 1; }
  const span = yMax - yMin;
  yMin -= span * 0.06; yMax += span * 0.06;
  const X = (x) => pad.l + ((x - xMin) / (xMax - xMin)) * (w - pad.l - pad.r);
  const Y = (y) => h - pad.b - ((y - yMin) / (yMax - yMin)) * (h - pad.t - pad.b);

  // Grid, ticks and labels.
  ctx.strokeStyle = GRID;
  ctx.lineWidth = 1;
  ctx.fillStyle = AXIS;
  ctx.textAlign = "right";
  const yt = niceTicks(yMin, yMax, Math.max(2, Math.floor((h - 40) / 30)));
  for (const v of yt) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(fmtTick(v, yt.length > 1 ? yt[1] - yt[0] : 0), pad.l - 4, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const xt = opts.xTime ? timeTicks(xMin, xMax, Math.max(2, Math.floor(w / 90))) : niceTicks(xMin, xMax);
  for (const v of xt) {
    const x = Math.round(X(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, h - pad.b); ctx.stroke();
    ctx.fillText(opts.xTime ? utcHM(v) : fmt(v), x, h - pad.b + 4);
  }
  ctx.strokeStyle = AXIS;
  ctx.beginPath();
  ctx.moveTo(pad.l + 0.5, pad.t); ctx.lineTo(pad.l + 0.5, h - pad.b + 0.5); ctx.lineTo(w - pad.r, h - pad.b + 0.5);
  ctx.stroke();
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillText(opts.yLabel || "", 4, 9);
  if (opts.xTime) { ctx.textAlign = "right"; ctx.fillText("UTC", w - pad.r, h - 6); }

  // Reference lines, dashed.
  ctx.save();
  ctx.beginPath(); ctx.rect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b); ctx.clip();
  ctx.setLineDash([5, 4]);
  for (const r of refs) {
    if (!Number.isFinite(r.y)) continue;
    ctx.strokeStyle = r.color;
    ctx.beginPath(); ctx.moveTo(pad.l, Y(r.y)); ctx.lineTo(w - pad.r, Y(r.y)); ctx.stroke();
  }
  ctx.setLineDash([]);
  // Series: a new sub-path after every missing value, so gaps show.
  ctx.lineWidth = 1.5;
  ctx.lineJoin = "round";
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (y == null || !Number.isFinite(y)) { pen = false; continue; }
      if (pen) ctx.lineTo(X(s.xs[i]), Y(y)); else { ctx.moveTo(X(s.xs[i]), Y(y)); pen = true; }
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  if (opts.now != null && opts.now >= xMin && opts.now <= xMax) {
    ctx.strokeStyle = "rgba(255,255,255,0.5)";
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(X(opts.now), pad.t); ctx.lineTo(X(opts.now), h - pad.b); ctx.stroke();
  }
  ctx.restore();

  // Legend along the top.
  let lx = pad.l + 4;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (const item of [...series, ...refs.map((r) => ({ ...r, dash: [4, 3] }))]) {
    ctx.strokeStyle = item.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(item.dash || []);
    ctx.beginPath(); ctx.moveTo(lx, 9); ctx.lineTo(lx + 14, 9); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = AXIS;
    ctx.fillText(item.name, lx + 18, 9);
    lx += 26 + ctx.measureText(item.name).width;
    if (lx > w - 60) break;
  }
}
