// Bit-width explorer: 2..8 bits, symmetric (absmax) or affine (min/max), MSE and SQNR live.

// quantbook.symmetric.quantize per tensor: S = float32(max|x| / (2^(b-1) - 1)) (1.0 for all
// zeros), q = clamp(rint(x / S), -(2^(b-1) - 1), 2^(b-1) - 1), x_hat = float32(S) * q.
function symmetricScale(absmax, bits) {
  const s = f32(absmax / (2 ** (bits - 1) - 1));
  return s > 0 ? s : 1.0;
}

function symmetricRoundTrip(data, scale, bits, q, xHat) {
  const top = 2 ** (bits - 1) - 1;
  const s = f32(scale);
  for (let i = 0; i < data.length; i++) {
    const code = clamp(roundHalfEven(f32(data[i] / s)), -top, top);
    q[i] = code;
    xHat[i] = f32(code * s);
  }
}

function schemeParams(view, absmax, bits, scheme) {
  if (scheme === "symmetric") return [symmetricScale(absmax, bits), 0];
  return affineParams(view.min, view.max, bits, true);
}

function roundTrip(values, scheme, scale, zeroPoint, bits, q, xHat) {
  if (scheme === "symmetric") symmetricRoundTrip(values, scale, bits, q, xHat);
  else affineRoundTrip(values, scale, zeroPoint, bits, true, q, xHat);
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "bitwidth" });
  const title = h("div", { class: "qb-title", text: "Bit width: fewer bits, coarser grid" });
  const bits = slider("bitwidth-bits", "bits", { min: 2, max: 8, step: 1, value: 4, name: "bits" });
  const scheme = choice(
    "bitwidth-scheme",
    "scheme",
    [["symmetric", "symmetric (absmax, Z = 0)"], ["affine", "affine (min/max, zero point)"]],
    "symmetric",
    "scheme",
  );
  const controls = h("div", { class: "qb-controls" }, bits.wrap, scheme.wrap);
  const hist = canvasPanel("Histogram of the data with the quantization grid for the chosen bit width", 150);
  const err = canvasPanel("Quantization error of every data point against its value", 110);
  const curve = canvasPanel("SQNR in decibels against bit width for both schemes; the current choice is marked", 130);
  const stats = h("p", { class: "qb-stats", "aria-live": "polite" });
  const tableBox = h("div", { class: "qb-table-box" });
  root.append(title, controls, hist, err, stats, curve, tableBox);
  el.append(root);

  let data;
  let view;
  let counts;
  let absmax;
  let q;
  let xHat;
  let sqnrCurve;

  function loadData() {
    data = Float64Array.from(model.get("data"));
    view = dataView(data);
    absmax = Math.max(Math.abs(view.min), Math.abs(view.max));
    counts = histogram(data, view.lo, view.hi, 60);
    q = new Int32Array(data.length);
    xHat = new Float64Array(data.length);
    sqnrCurve = { bits: [2, 3, 4, 5, 6, 7, 8], symmetric: [], affine: [] };
    for (const sc of ["symmetric", "affine"]) {
      for (const b of sqnrCurve.bits) {
        const [S, Z] = schemeParams(view, absmax, b, sc);
        roundTrip(data, sc, S, Z, b, q, xHat);
        sqnrCurve[sc].push(errorStats(data, xHat).sqnr_db);
      }
    }
    root.dataset.sample = JSON.stringify({ data: Array.from(data), x: model.get("x") });
  }

  function drawCurve(b, sc) {
    const { ctx, w, h: height } = prepare(curve);
    const pad = { l: 40, r: 10, t: 10, b: 22 };
    const all = [...sqnrCurve.symmetric, ...sqnrCurve.affine].filter((v) => v !== null);
    const top = Math.max(10, ...all);
    const X = (k) => pad.l + ((k - 2) / 6) * (w - pad.l - pad.r);
    const Y = (v) => height - pad.b - (Math.max(0, Math.min(v, top)) / top) * (height - pad.t - pad.b);
    drawAxes(ctx, pad, w, height);
    ctx.fillStyle = COLORS.black;
    ctx.textAlign = "center";
    for (const k of sqnrCurve.bits) ctx.fillText(String(k), X(k), height - 8);
    ctx.textAlign = "right";
    ctx.fillText(`${Math.round(top)} dB`, pad.l - 4, pad.t + 8);
    ctx.fillText("0", pad.l - 4, height - pad.b);
    const styles = { symmetric: [COLORS.blue, []], affine: [COLORS.orange, [5, 3]] };
    for (const name of ["symmetric", "affine"]) {
      const [color, dash] = styles[name];
      ctx.strokeStyle = color;
      ctx.setLineDash(dash);
      ctx.lineWidth = 2;
      ctx.beginPath();
      sqnrCurve[name].forEach((v, i) => {
        const y = Y(v === null ? top : v);
        if (i === 0) ctx.moveTo(X(i + 2), y);
        else ctx.lineTo(X(i + 2), y);
      });
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.lineWidth = 1;
    const v = sqnrCurve[sc][b - 2];
    ctx.fillStyle = COLORS.vermillion;
    ctx.beginPath();
    ctx.arc(X(b), Y(v === null ? top : v), 5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.textAlign = "left";
    ctx.fillStyle = COLORS.blue;
    ctx.fillText("— symmetric", pad.l + 6, pad.t + 8);
    ctx.fillStyle = COLORS.orange;
    ctx.fillText("- - affine", pad.l + 90, pad.t + 8);
    ctx.fillStyle = COLORS.black;
    ctx.fillText("SQNR (dB) vs bits", pad.l + 160, pad.t + 8);
  }

  function update() {
    const b = model.get("bits");
    const sc = model.get("scheme");
    bits.input.value = String(b);
    bits.out.textContent = String(b);
    scheme.select.value = sc;
    const [S, Z] = schemeParams(view, absmax, b, sc);
    roundTrip(data, sc, S, Z, b, q, xHat);
    const st = errorStats(data, xHat);
    const [qmin, qmax] = sc === "symmetric" ? [-(2 ** (b - 1) - 1), 2 ** (b - 1) - 1] : qrange(b, true);
    const s32 = f32(S);
    const levels = [];
    for (let c = qmin; c <= qmax; c++) levels.push(f32(s32 * (c - Z)));
    drawGrid(hist, view, counts, levels, levels[0] - s32 / 2, levels[levels.length - 1] + s32 / 2);
    drawError(err, view, data, xHat, s32 / 2);
    drawCurve(b, sc);

    const x = model.get("x");
    const xq = new Int32Array(x.length);
    const xh = new Float64Array(x.length);
    roundTrip(x, sc, S, Z, b, xq, xh);
    stats.textContent =
      `${qmax - qmin + 1} codes (${qmin}…${qmax}), S = ${fmt(S)}, Z = ${Z} · MSE ${fmt(st.mse)} · ` +
      `max |error| ${fmt(st.max_error)} · SQNR ${fmt(st.sqnr_db, 3)} dB`;
    tableBox.replaceChildren(pointsTable("A few data points, exactly", x, xq, xh));
    root.dataset.state = JSON.stringify({
      bits: b,
      scheme: sc,
      scale: S,
      zero_point: Z,
      qmin,
      qmax,
      x,
      q: Array.from(xq),
      x_hat: Array.from(xh),
      mse: st.mse,
      max_error: st.max_error,
      sqnr_db: st.sqnr_db,
      n: data.length,
      curve: sqnrCurve,
    });
    performance.mark("qb-redraw-end");
  }

  bits.input.addEventListener("input", () => setTraits(model, { bits: Number(bits.input.value) }));
  scheme.select.addEventListener("change", () => setTraits(model, { scheme: scheme.select.value }));

  return follow(model, root, {
    data: ["data", "x"],
    settings: ["bits", "scheme"],
    loadData,
    update,
  });
}

export default { render };
