// Shared helpers for the Quantbook explorers. Python joins this file in front of each explorer's
// own module (anywidget loads one self-contained ES module, so there are no imports here).
//
// The arithmetic mirrors quantbook exactly: round half to even (numpy.rint), the same clamping,
// and float32 wherever quantbook computes in float32 (Math.fround rounds a double to the nearest
// float32; a float32 operation equals the double operation rounded once with Math.fround).

const COLORS = {
  black: "#000000",
  orange: "#E69F00",
  sky: "#56B4E9",
  green: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  purple: "#CC79A7",
  grey: "#6b6b6b",
};

const f32 = Math.fround;

// numpy.rint: the nearest integer, ties to the even one. Math.round breaks ties upward, so a tie
// (r - v === 0.5, exact in floating point) that landed on an odd integer goes one step down.
function roundHalfEven(v) {
  if (!Number.isFinite(v)) return v;
  const r = Math.round(v);
  if (r - v === 0.5 && Math.abs(r % 2) === 1) return r - 1;
  return r;
}

function clamp(v, lo, hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

// quantbook.affine.qrange
function qrange(bits, signed) {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

// quantbook.affine.qparams for scalars: float64 arithmetic, range widened to contain 0.
function affineParams(xMin, xMax, bits, signed) {
  const [qmin, qmax] = qrange(bits, signed);
  const lo = Math.min(xMin, 0);
  const hi = Math.max(xMax, 0);
  let scale = (hi - lo) / (qmax - qmin);
  if (!(scale > 0)) scale = 1.0;
  const zeroPoint = clamp(roundHalfEven(qmin - lo / scale), qmin, qmax);
  return [scale, zeroPoint + 0]; // + 0 turns -0 into 0
}

// quantbook.affine.quantize / dequantize on float32 data: q = clamp(rint(x / S) + Z),
// x_hat = float32(S) * float32(q - Z). Fills the typed arrays q and xHat.
function affineRoundTrip(data, scale, zeroPoint, bits, signed, q, xHat) {
  const [qmin, qmax] = qrange(bits, signed);
  const s = f32(scale);
  for (let i = 0; i < data.length; i++) {
    const code = clamp(roundHalfEven(f32(data[i] / s)) + zeroPoint, qmin, qmax);
    q[i] = code;
    xHat[i] = f32(s * (code - zeroPoint));
  }
}

// Error figures as quantbook.metrics computes them (float64 sums over float32 values).
function errorStats(x, xHat) {
  let se = 0;
  let sx = 0;
  let maxErr = 0;
  for (let i = 0; i < x.length; i++) {
    const e = x[i] - xHat[i];
    se += e * e;
    sx += x[i] * x[i];
    const a = Math.abs(e);
    if (a > maxErr) maxErr = a;
  }
  const n = x.length;
  const mse = n ? se / n : 0;
  // SQNR = 10 log10(signal power / noise power); no noise -> +inf, sent as null in JSON.
  let sqnr = null;
  if (se > 0) sqnr = 10 * Math.log10(sx / se);
  return { mse, max_error: maxErr, sqnr_db: sqnr };
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

let uid = 0;
function nextId(prefix) {
  uid += 1;
  return `qb-${prefix}-${uid}-${Math.random().toString(36).slice(2, 7)}`;
}

// h("div", {class: "x"}, child, ...) builds an element.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

// A labelled <input type=range> (keyboard: arrows, Home/End, PageUp/PageDown) with its value.
function slider(prefix, labelText, { min, max, step, value, name }) {
  const id = nextId(prefix);
  const input = h("input", { type: "range", id, min, max, step, value, name, "data-control": name });
  const out = h("output", { for: id, class: "qb-value" });
  const wrap = h("div", { class: "qb-control" }, h("label", { for: id, text: labelText }), input, out);
  return { wrap, input, out };
}

// A labelled <select>.
function choice(prefix, labelText, options, value, name) {
  const id = nextId(prefix);
  const select = h("select", { id, name, "data-control": name });
  for (const [val, text] of options) {
    const opt = h("option", { value: val, text });
    if (String(val) === String(value)) opt.selected = true;
    select.append(opt);
  }
  const wrap = h("div", { class: "qb-control" }, h("label", { for: id, text: labelText }), select);
  return { wrap, select };
}

// The choice of a sample block from the explorer's pool (BlockPoolExplorer in Python): block i
// sets the trait `shows` to pool[i]; "-1" (`editedText`) stands for values given or edited.
// `onChoose` runs first. The wrap is null when the pool is empty (nothing to choose).
function poolChoice(model, prefix, labelText, shows, editedText, blockText, onChoose = () => {}) {
  const pool = model.get("pool");
  const options = [["-1", editedText], ...pool.map((_, i) => [String(i), `${blockText} ${i + 1}`])];
  const c = choice(prefix, labelText, options, String(model.get("block")), "block");
  c.select.addEventListener("change", () => {
    const b = Number(c.select.value);
    onChoose();
    setTraits(model, b >= 0 ? { block: b, [shows]: pool[b] } : { block: -1 });
  });
  return { wrap: pool.length ? c.wrap : null, select: c.select };
}

// A labelled numeric or text field.
function field(prefix, labelText, attrs) {
  const id = nextId(prefix);
  const input = h("input", { id, ...attrs, "data-control": attrs.name });
  const wrap = h("div", { class: "qb-control" }, h("label", { for: id, text: labelText }), input);
  return { wrap, input };
}

// Send a change to the kernel when there is one. On the static website there is no kernel and
// save_changes may throw; the explorer keeps working in the page all the same.
function save(model) {
  try {
    model.save_changes();
  } catch (err) {
    // no kernel: nothing to sync to
  }
}

function canvasPanel(label, height) {
  const canvas = h("canvas", { role: "img", "aria-label": label, class: "qb-canvas" });
  canvas.dataset.height = String(height);
  return canvas;
}

// Size a canvas to its box (CSS width 100%) at the device's pixel ratio; returns ctx, w, h.
function prepare(canvas, fallbackWidth = 640) {
  const width = Math.max(240, Math.round(canvas.clientWidth || fallbackWidth));
  const height = Number(canvas.dataset.height);
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, w: width, h: height };
}

// The two axes of a plot: the y axis on the left, the x axis at the bottom, in grey.
function drawAxes(ctx, pad, width, height) {
  ctx.strokeStyle = COLORS.grey;
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, height - pad.b);
  ctx.lineTo(width - pad.r, height - pad.b);
  ctx.stroke();
}

function histogram(values, lo, hi, nbins) {
  const counts = new Array(nbins).fill(0);
  const width = hi - lo || 1;
  for (const v of values) {
    const b = Math.min(nbins - 1, Math.max(0, Math.floor(((v - lo) / width) * nbins)));
    counts[b] += 1;
  }
  return counts;
}

// The data's histogram with the quantization grid on top: a faint line at every code's value,
// the clipped region (beyond the first and last code) shaded.
function drawGrid(canvas, view, counts, levels, lowEnd, highEnd) {
  const { ctx, w, h: height } = prepare(canvas);
  const pad = { l: 8, r: 8, t: 8, b: 18 };
  const X = (v) => pad.l + ((v - view.lo) / (view.hi - view.lo)) * (w - pad.l - pad.r);
  const base = height - pad.b;
  // clipped regions
  ctx.fillStyle = "rgba(213, 94, 0, 0.16)";
  if (lowEnd > view.lo) ctx.fillRect(pad.l, pad.t, X(lowEnd) - pad.l, base - pad.t);
  if (highEnd < view.hi) ctx.fillRect(X(highEnd), pad.t, w - pad.r - X(highEnd), base - pad.t);
  // histogram
  const peak = Math.max(1, ...counts);
  const bw = (w - pad.l - pad.r) / counts.length;
  ctx.fillStyle = COLORS.sky;
  for (let i = 0; i < counts.length; i++) {
    const bh = (counts[i] / peak) * (base - pad.t);
    ctx.fillRect(pad.l + i * bw, base - bh, Math.max(1, bw - 0.5), bh);
  }
  // integer grid: draw every level unless they crowd closer than 2 px
  const visible = levels.filter((v) => v >= view.lo && v <= view.hi);
  const spacing = visible.length > 1 ? (w - pad.l - pad.r) / visible.length : w;
  ctx.strokeStyle = COLORS.blue;
  ctx.globalAlpha = spacing < 2 ? 0.15 : spacing < 6 ? 0.35 : 0.7;
  ctx.beginPath();
  for (const v of visible) {
    const px = Math.round(X(v)) + 0.5;
    ctx.moveTo(px, pad.t);
    ctx.lineTo(px, base);
  }
  ctx.stroke();
  ctx.globalAlpha = 1;
  // clip boundaries and zero
  ctx.strokeStyle = COLORS.vermillion;
  ctx.lineWidth = 2;
  for (const v of [lowEnd, highEnd]) {
    if (v >= view.lo && v <= view.hi) {
      ctx.beginPath();
      ctx.moveTo(X(v), pad.t);
      ctx.lineTo(X(v), base);
      ctx.stroke();
    }
  }
  ctx.lineWidth = 1;
  ctx.fillStyle = COLORS.black;
  ctx.textAlign = "left";
  ctx.fillText(fmt(view.lo, 3), pad.l, height - 4);
  ctx.textAlign = "right";
  ctx.fillText(fmt(view.hi, 3), w - pad.r, height - 4);
  if (view.lo < 0 && view.hi > 0) {
    ctx.textAlign = "center";
    ctx.fillText("0", X(0), height - 4);
  }
  return X;
}

// Error x_hat - x against x for every data point, with the ±S/2 rounding band. The points go
// into one pixel buffer (putImageData): thousands of fillRect calls would cost the browser far
// more to record and raster.
function drawError(canvas, view, data, xHat, halfStep) {
  const { ctx, w, h: height } = prepare(canvas);
  const pad = { l: 8, r: 8, t: 8, b: 8 };
  let emax = halfStep * 1.5;
  for (let i = 0; i < data.length; i++) emax = Math.max(emax, Math.abs(xHat[i] - data[i]));
  emax = Math.min(emax, halfStep * 6 || emax);
  const X = (v) => pad.l + ((v - view.lo) / (view.hi - view.lo)) * (w - pad.l - pad.r);
  const mid = pad.t + (height - pad.t - pad.b) / 2;
  const Y = (e) => mid - (clamp(e, -emax, emax) / emax) * ((height - pad.t - pad.b) / 2);
  const ratio = canvas.width / w;
  // one pixel buffer per canvas, reused while the size stays
  let img = canvas.qbImage;
  if (!img || img.width !== canvas.width || img.height !== canvas.height) {
    img = ctx.createImageData(canvas.width, canvas.height);
    canvas.qbImage = img;
  }
  const px = img.data;
  px.fill(0);
  const dot = Math.max(2, Math.round(2 * ratio));
  for (let i = 0; i < data.length; i++) {
    const cx = Math.round(X(data[i]) * ratio) - 1;
    const cy = Math.round(Y(xHat[i] - data[i]) * ratio) - 1;
    for (let dy = 0; dy < dot; dy++) {
      const row = cy + dy;
      if (row < 0 || row >= canvas.height) continue;
      for (let dx = 0; dx < dot; dx++) {
        const col = cx + dx;
        if (col < 0 || col >= canvas.width) continue;
        const k = 4 * (row * canvas.width + col);
        px[k] = 0x00; // Okabe-Ito blue #0072B2
        px[k + 1] = 0x72;
        px[k + 2] = 0xb2;
        px[k + 3] = 0xff;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  ctx.strokeStyle = COLORS.grey;
  ctx.beginPath();
  ctx.moveTo(pad.l, mid);
  ctx.lineTo(w - pad.r, mid);
  ctx.stroke();
  ctx.setLineDash([4, 3]);
  ctx.strokeStyle = COLORS.green;
  for (const e of [halfStep, -halfStep]) {
    ctx.beginPath();
    ctx.moveTo(pad.l, Y(e));
    ctx.lineTo(w - pad.r, Y(e));
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.fillStyle = COLORS.black;
  ctx.textAlign = "left";
  ctx.fillText(`error x̂ − x (dashed: ±S/2 = ±${fmt(halfStep, 3)})`, pad.l + 2, pad.t + 10);
}

function dataView(data) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  const margin = (hi - lo) * 0.06;
  return { lo: lo - margin, hi: hi + margin, min: lo + 0, max: hi + 0 };
}

// A table of a few points: x, q, x_hat, error.
function pointsTable(caption, x, q, xHat) {
  const rows = x.map((v, i) =>
    h(
      "tr",
      {},
      h("td", { text: fmt(v, 6) }),
      h("td", { text: String(q[i]) }),
      h("td", { text: fmt(xHat[i], 6) }),
      h("td", { text: fmt(xHat[i] - v, 3) }),
    ),
  );
  return h(
    "table",
    { class: "qb-table" },
    h("caption", { text: caption }),
    h(
      "thead",
      {},
      h("tr", {}, h("th", { text: "x" }), h("th", { text: "q" }), h("th", { text: "x̂" }), h("th", { text: "x̂ − x" })),
    ),
    h("tbody", {}, ...rows),
  );
}

// Observe the element's width so the figures follow a resized window or a rotated phone.
// Set traits from the page, then tell the kernel (if any) once.
function setTraits(model, values) {
  for (const [k, v] of Object.entries(values)) model.set(k, v);
  save(model);
}

// Draw now; reload and redraw when the data changes, redraw when a setting or the width changes.
// Returns the cleanup that anywidget calls when the view goes away.
function follow(model, root, { data, settings, loadData, update, onSetting = update }) {
  loadData();
  update();
  hideFallback(model);
  const offData = listen(model, data, () => {
    loadData();
    update();
  });
  const off = listen(model, settings, onSetting);
  const offResize = onResize(root, update);
  return () => {
    offData();
    off();
    offResize();
  };
}

// The static fallback (plain HTML of the starting state, displayed by Python just before the
// widget, for pages without JavaScript) gives way to the live explorer once it has rendered.
function hideFallback(model) {
  const id = model.get("_fallback_id");
  const node = id ? document.getElementById(id) : null;
  if (node) {
    node.hidden = true;
    node.style.display = "none";
  }
}

function onResize(el, redraw) {
  if (typeof ResizeObserver === "undefined") return () => {};
  let last = el.clientWidth;
  const ro = new ResizeObserver(() => {
    if (el.clientWidth !== last) {
      last = el.clientWidth;
      redraw();
    }
  });
  ro.observe(el);
  return () => ro.disconnect();
}

function listen(model, names, callback) {
  for (const n of names) model.on(`change:${n}`, callback);
  return () => {
    for (const n of names) model.off(`change:${n}`, callback);
  };
}

// --- small binary float formats, bit for bit (float16, bfloat16, float8, E2M1, ...) ----------
//
// A format has e exponent bits and m mantissa bits and is one of three kinds:
// "ieee"   the top exponent holds inf and NaN (float16, bfloat16, float8_e5m2);
// "fn"     no inf, only S.1111.111 is NaN (float8_e4m3fn), overflow gives NaN as ml_dtypes;
// "finite" no inf, no NaN (float4_e2m1fn): overflow saturates to +-max, as ml_dtypes does.
// Values round to nearest, ties to even, subnormals included (the casts of ml_dtypes).

// floor(log2 a) for a positive finite double, exactly (from its exponent field).
const floatScratch = new DataView(new ArrayBuffer(8));
function floorLog2(a) {
  floatScratch.setFloat64(0, a);
  const e = (floatScratch.getUint32(0) >>> 20) & 0x7ff;
  if (e === 0) return floorLog2(a * 2 ** 64) - 64; // a subnormal double
  return e - 1023;
}

function floatFormat(name, e, m, kind) {
  const bias = 2 ** (e - 1) - 1;
  const topE = kind === "ieee" ? 2 ** e - 2 : 2 ** e - 1;
  const topM = kind === "fn" ? 2 ** m - 2 : 2 ** m - 1;
  const max = (1 + topM / 2 ** m) * 2 ** (topE - bias);
  return { name, e, m, kind, hasInf: kind === "ieee", bias, bits: 1 + e + m, max, emin: 1 - bias };
}

function floatNaN(f, sign) {
  if (f.kind === "fn") return sign * 2 ** (f.bits - 1) + 2 ** (f.bits - 1) - 1; // S.1111.111
  return (2 ** f.e - 1) * 2 ** f.m + 2 ** (f.m - 1); // the quiet NaN, positive
}

// What a value beyond the format's largest becomes: inf, NaN ("fn") or +-max ("finite").
function floatOverflow(f, sign) {
  const signBit = sign * 2 ** (f.bits - 1);
  if (f.kind === "ieee") return signBit + (2 ** f.e - 1) * 2 ** f.m;
  if (f.kind === "fn") return floatNaN(f, sign);
  return signBit + 2 ** (f.bits - 1) - 1;
}

// The bit pattern of v (a double, e.g. a float32 value) rounded to format f, ties to even.
function floatEncode(v, f) {
  if (Number.isNaN(v)) return f.kind === "finite" ? 0 : floatNaN(f, 0);
  const sign = v < 0 || Object.is(v, -0) ? 1 : 0;
  const a = Math.abs(v);
  const signBit = sign * 2 ** (f.bits - 1);
  if (a === Infinity) return floatOverflow(f, sign);
  if (a === 0) return signBit;
  const k = Math.max(floorLog2(a), f.emin);
  const q = 2 ** (k - f.m); // the spacing in a's binade (or among the subnormals)
  const r = roundHalfEven(a / q) * q;
  if (r > f.max) return floatOverflow(f, sign);
  if (r === 0) return signBit;
  if (r < 2 ** f.emin) return signBit + r / 2 ** (f.emin - f.m); // subnormal: E = 0
  const kr = floorLog2(r);
  return signBit + (kr + f.bias) * 2 ** f.m + (r / 2 ** (kr - f.m) - 2 ** f.m);
}

// The value of a bit pattern: (-1)^s 2^(E-bias) (1 + M/2^m), or (-1)^s 2^(1-bias) M/2^m if E = 0.
function floatDecode(pattern, f) {
  const sign = Math.floor(pattern / 2 ** (f.bits - 1));
  const E = Math.floor(pattern / 2 ** f.m) % 2 ** f.e;
  const M = pattern % 2 ** f.m;
  const s = sign ? -1 : 1;
  if (f.kind === "ieee" && E === 2 ** f.e - 1) return M ? NaN : s * Infinity;
  if (f.kind === "fn" && E === 2 ** f.e - 1 && M === 2 ** f.m - 1) return NaN;
  if (E === 0) return s * M * 2 ** (f.emin - f.m);
  return s * (2 ** f.m + M) * 2 ** (E - f.bias - f.m);
}
