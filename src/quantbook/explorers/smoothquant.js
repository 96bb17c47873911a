// SmoothQuant explorer: the migration strength alpha on a real layer, W8A8 against float.
// Mirrors quantbook.explorers.smoothquant.smoothquant_state: s_j in float32 as
// quantbook.smoothquant.smoothing_factors (clamps at 1e-5), smoothing in float32, int8 codes
// round half to even, the integer product exact, the rescale in float64 then float32.

const SQ_CLAMP = f32(1e-5);
const SQ_ALPHAS = Array.from({ length: 21 }, (_, k) => Math.round(k * 5) / 100);
const SQ_SHOWN = 8;
const SQ_TABLE = 4; // channels in the table: the largest activation maxima

// base64 of little-endian float32 bytes -> Float32Array
function unpackF32(text) {
  const bin = atob(text);
  const view = new DataView(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
  const out = new Float32Array(bin.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

// s_j = max(max|X_j|^a / max(max|W_j|, 1e-5)^(1-a), 1e-5), every operation in float32.
function smoothingFactors(xa, wa, alpha) {
  const a = f32(alpha);
  const b = f32(1 - a);
  return xa.map((x, j) => {
    const num = f32(Math.pow(x, a));
    const den = f32(Math.pow(Math.max(wa[j], SQ_CLAMP), b));
    return Math.max(f32(num / den), SQ_CLAMP);
  });
}

// max|W_kj s_j| / 127 per row k (float32), 1 for an all-zero row: symmetric.absmax_scale(axis=0)
function rowScales(ws, rows, n) {
  const out = new Array(rows);
  for (let k = 0; k < rows; k++) {
    let m = 0;
    for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(ws[k * n + j]));
    const sc = f32(m / 127);
    out[k] = sc > 0 ? sc : 1.0;
  }
  return out;
}

// One W8A8 pass with factors s; d holds the data (x, w, yFloat, absmax vectors, sizes).
function w8a8Smoothed(d, s, perChannel, keep) {
  const { t, o, n } = d;
  const xMax = d.xa.map((v, j) => f32(v / s[j]));
  const wMax = d.wa.map((v, j) => f32(v * s[j]));
  let xm = 0;
  let wm = 0;
  for (let j = 0; j < n; j++) {
    xm = Math.max(xm, xMax[j]);
    wm = Math.max(wm, wMax[j]);
  }
  const xScale = xm / 127; // float64, as float(...) / 127 in Python
  const sx32 = f32(xScale);
  const qx = new Float64Array(t * n);
  let clamped = 0;
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < n; j++) {
      const code = roundHalfEven(f32(f32(d.x[i * n + j] / s[j]) / sx32));
      if (Math.abs(code) > 127) clamped += 1;
      qx[i * n + j] = clamp(code, -127, 127);
    }
  }
  const ws = new Float64Array(o * n);
  for (let k = 0; k < o; k++) for (let j = 0; j < n; j++) ws[k * n + j] = f32(d.w[k * n + j] * s[j]);
  let wScale;
  let rowScale;
  if (perChannel) {
    wScale = rowScales(ws, o, n);
    rowScale = wScale;
  } else {
    const sc = f32(wm / 127);
    wScale = wm > 0 ? sc : 1.0;
    rowScale = new Array(o).fill(wScale);
  }
  const qw = new Float64Array(o * n);
  for (let k = 0; k < o; k++) {
    const sc = rowScale[k];
    for (let j = 0; j < n; j++) qw[k * n + j] = clamp(roundHalfEven(f32(ws[k * n + j] / sc)), -127, 127);
  }
  const yq = keep ? new Float32Array(t * o) : null;
  let se = 0;
  let sy = 0;
  let maxError = 0;
  for (let i = 0; i < t; i++) {
    for (let k = 0; k < o; k++) {
      let acc = 0; // an exact integer: |acc| <= n * 127^2, far below 2^53
      for (let j = 0; j < n; j++) acc += qx[i * n + j] * qw[k * n + j];
      const y = f32(acc * (xScale * rowScale[k]));
      if (keep) yq[i * o + k] = y;
      const ref = d.yFloat[i * o + k];
      const e = ref - y;
      se += e * e;
      sy += ref * ref;
      maxError = Math.max(maxError, Math.abs(e));
    }
  }
  return {
    x_max: xMax,
    w_max: wMax,
    x_scale: xScale,
    w_scale: wScale,
    x_clamped: clamped,
    mse: se / (t * o),
    max_error: maxError,
    sqnr_db: se > 0 ? 10 * Math.log10(sy / se) : null,
    yq,
  };
}

function loadLayer(model) {
  const [t, o, n] = model.get("shape");
  const x = unpackF32(model.get("x_data"));
  const w = unpackF32(model.get("w_data"));
  const yFloat = new Float64Array(t * o);
  for (let i = 0; i < t; i++) {
    for (let k = 0; k < o; k++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc += x[i * n + j] * w[k * n + j];
      yFloat[i * o + k] = acc;
    }
  }
  const xa = model.get("x_absmax").map(f32);
  const wa = model.get("w_absmax").map(f32);
  let top = 0;
  xa.forEach((v, j) => {
    if (v > xa[top]) top = j;
  });
  const order = xa.map((v, j) => j).sort((p, q) => xa[q] - xa[p] || p - q);
  return { t, o, n, x, w, yFloat, xa, wa, top, tableChannels: order.slice(0, SQ_TABLE) };
}

// Everything the explorer shows, as smoothquant_state computes it in Python.
function smoothquantState(d, alpha, weights, curves) {
  const perChannel = weights === "per-channel";
  const s = smoothingFactors(d.xa, d.wa, alpha);
  const r = w8a8Smoothed(d, s, perChannel, true);
  if (!curves[weights]) {
    const ones = d.xa.map(() => 1);
    curves[weights] = {
      none: w8a8Smoothed(d, ones, perChannel, false).sqnr_db,
      curve: SQ_ALPHAS.map((a) => w8a8Smoothed(d, smoothingFactors(d.xa, d.wa, a), perChannel, false).sqnr_db),
    };
  }
  const yq = r.yq;
  delete r.yq;
  return {
    alpha,
    weights,
    tokens: d.t,
    outputs: d.o,
    channels: d.n,
    s,
    ...r,
    top_channel: d.top,
    y_shown: Array.from(yq.slice(0, SQ_SHOWN)),
    y_float_shown: Array.from(d.yFloat.slice(0, SQ_SHOWN)),
    sqnr_none_db: curves[weights].none,
    alphas: SQ_ALPHAS,
    curve: curves[weights].curve,
  };
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "smoothquant" });
  const title = h("div", { class: "qb-title" });
  const alpha = slider("sq-alpha", "α", { min: 0, max: 1, step: 0.05, value: 0.5, name: "alpha" });
  const weights = choice(
    "sq-weights",
    "weight scales",
    [["per-tensor", "per tensor"], ["per-channel", "per output row"]],
    model.get("weights"),
    "weights",
  );
  const controls = h("div", { class: "qb-controls" }, alpha.wrap, weights.wrap);
  const maxima = canvasPanel("Largest magnitude of each input channel, activations and weights, before (faint) and after smoothing (log scale)", 210);
  const legend = h("p", {
    class: "qb-legend",
    text: "Per input channel j (log scale): orange max|X_j| / s_j (activations), blue s_j · max|W_j| (weights); faint: before smoothing.",
  });
  const curvePlot = canvasPanel("W8A8 output SQNR against alpha, the current alpha marked, no smoothing dotted", 150);
  const stats = h("p", { class: "qb-stats", "aria-live": "polite" });
  const tableBox = h("div", { class: "qb-table-box" });
  root.append(title, controls, maxima, legend, curvePlot, stats, tableBox);
  el.append(root);

  let d = null;
  let curves = {};

  function loadData() {
    d = loadLayer(model);
    curves = {};
    // the layer's data as the page holds it, for the browser test to recompute in Python
    const keys = ["x_data", "w_data", "shape", "x_absmax", "w_absmax"];
    root.dataset.sample = JSON.stringify(Object.fromEntries(keys.map((k) => [k, model.get(k)])));
  }

  function drawMaxima(st) {
    const { ctx, w, h: height } = prepare(maxima);
    const pad = { l: 36, r: 8, t: 8, b: 18 };
    const series = [
      [d.xa, COLORS.orange, 0.3],
      [d.wa, COLORS.blue, 0.3],
      [st.x_max, COLORS.orange, 1],
      [st.w_max, COLORS.blue, 1],
    ];
    let lo = Infinity;
    let hi = 0;
    for (const [v] of series) {
      for (const a of v) {
        if (a > 0) {
          lo = Math.min(lo, a);
          hi = Math.max(hi, a);
        }
      }
    }
    if (!(hi > 0)) [lo, hi] = [1, 10];
    const l0 = Math.floor(Math.log10(lo));
    const l1 = Math.max(Math.ceil(Math.log10(hi)), l0 + 1);
    const X = (j) => pad.l + ((j + 0.5) / d.n) * (w - pad.l - pad.r);
    const Y = (v) => pad.t + ((l1 - Math.log10(Math.max(v, 10 ** l0))) / (l1 - l0)) * (height - pad.t - pad.b);
    ctx.fillStyle = COLORS.black;
    ctx.textAlign = "right";
    ctx.strokeStyle = "#e2e2e2";
    for (let e = l0; e <= l1; e++) {
      ctx.beginPath();
      ctx.moveTo(pad.l, Y(10 ** e));
      ctx.lineTo(w - pad.r, Y(10 ** e));
      ctx.stroke();
      ctx.fillText(`1e${e}`, pad.l - 3, Y(10 ** e) + 4);
    }
    for (const [v, color, alphaLine] of series) {
      ctx.strokeStyle = color;
      ctx.globalAlpha = alphaLine;
      ctx.lineWidth = alphaLine < 1 ? 1 : 1.5;
      ctx.beginPath();
      v.forEach((a, j) => (j ? ctx.lineTo(X(j), Y(a)) : ctx.moveTo(X(j), Y(a))));
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    ctx.fillText(`channel ${d.top}`, X(d.top), height - 4);
    ctx.textAlign = "left";
    ctx.fillText("0", pad.l, height - 4);
    ctx.textAlign = "right";
    ctx.fillText(String(d.n - 1), w - pad.r, height - 4);
  }

  function drawCurve(st) {
    const { ctx, w, h: height } = prepare(curvePlot);
    const pad = { l: 36, r: 8, t: 14, b: 18 };
    const vals = [...st.curve, st.sqnr_none_db].filter((v) => v !== null);
    let lo = Math.floor(Math.min(...vals) - 1);
    let hi = Math.ceil(Math.max(...vals) + 1);
    if (!(hi > lo)) [lo, hi] = [0, 1];
    const X = (a) => pad.l + a * (w - pad.l - pad.r);
    const Y = (v) => pad.t + ((hi - v) / (hi - lo)) * (height - pad.t - pad.b);
    drawAxes(ctx, pad, w, height);
    if (st.sqnr_none_db !== null) {
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(pad.l, Y(st.sqnr_none_db));
      ctx.lineTo(w - pad.r, Y(st.sqnr_none_db));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.strokeStyle = COLORS.green;
    ctx.lineWidth = 2;
    ctx.beginPath();
    st.curve.forEach((v, i) => (i ? ctx.lineTo(X(st.alphas[i]), Y(v)) : ctx.moveTo(X(st.alphas[i]), Y(v))));
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.fillStyle = COLORS.vermillion;
    ctx.beginPath();
    ctx.arc(X(st.alpha), Y(st.sqnr_db === null ? hi : st.sqnr_db), 5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = COLORS.black;
    ctx.textAlign = "right";
    ctx.fillText(`${hi} dB`, pad.l - 3, pad.t + 4);
    ctx.fillText(`${lo}`, pad.l - 3, height - pad.b);
    [["left", 0], ["center", 0.5], ["right", 1]].forEach(([align, a]) => {
      ctx.textAlign = align;
      ctx.fillText(`α = ${a}`, X(a), height - 4);
    });
    ctx.textAlign = "left";
    ctx.fillText("output SQNR against α (dotted: no smoothing)", pad.l + 6, pad.t - 3);
  }

  function update() {
    const a = model.get("alpha");
    const wt = model.get("weights");
    const st = smoothquantState(d, a, wt, curves);
    drawMaxima(st); // first, while the page's layout is still clean (the canvas reads its width)
    drawCurve(st);
    alpha.input.value = String(a);
    alpha.out.textContent = a.toFixed(2);
    weights.select.value = wt;
    const layer = model.get("layer");
    title.textContent = `SmoothQuant on a real layer${layer ? ` (${layer})` : ""}: move α, watch W8A8`;
    const j = st.top_channel;
    const wText = wt === "per-channel"
      ? `one per output row, ${fmt(Math.min(...st.w_scale), 3)} to ${fmt(Math.max(...st.w_scale), 3)}`
      : fmt(st.w_scale, 4);
    stats.textContent =
      `s_j from ${fmt(Math.min(...st.s), 3)} to ${fmt(Math.max(...st.s), 3)}; channel ${j}: s = ${fmt(st.s[j], 4)}. ` +
      `Scales: activations ${fmt(st.x_scale, 4)} (static, from the calibration maxima), weights ${wText}. ` +
      `${st.tokens} tokens × ${st.outputs} outputs: output SQNR ${fmt(st.sqnr_db, 4)} dB ` +
      `(no smoothing: ${fmt(st.sqnr_none_db, 4)} dB) · MSE ${fmt(st.mse)} · max |error| ${fmt(st.max_error)}` +
      (st.x_clamped ? ` · ${st.x_clamped} activation codes clamped at ±127` : "");
    const rows = d.tableChannels.map((c) =>
      h(
        "tr",
        {},
        h("td", { text: String(c) }),
        h("td", { text: fmt(d.xa[c], 4) }),
        h("td", { text: fmt(d.wa[c], 4) }),
        h("td", { text: fmt(st.s[c], 4) }),
        h("td", { text: fmt(st.x_max[c], 4) }),
        h("td", { text: fmt(st.w_max[c], 4) }),
      ),
    );
    tableBox.replaceChildren(
      h(
        "table",
        { class: "qb-table" },
        h("caption", { text: "The channels with the largest activations" }),
        h("thead", {}, h("tr", {}, ...["j", "max|X_j|", "max|W_j|", "s_j", "max|X_j| / s_j", "s_j max|W_j|"].map((c) => h("th", { text: c })))),
        h("tbody", {}, ...rows),
      ),
    );
    root.dataset.state = JSON.stringify({ ...st, table_channels: d.tableChannels });
    performance.mark("qb-redraw-end");
  }

  alpha.input.addEventListener("input", () => setTraits(model, { alpha: Number(alpha.input.value) }));
  weights.select.addEventListener("change", () => setTraits(model, { weights: weights.select.value }));

  return follow(model, root, {
    data: ["x_data", "w_data", "shape", "x_absmax", "w_absmax"],
    settings: ["alpha", "weights", "layer"],
    loadData,
    update,
  });
}

export default { render };
