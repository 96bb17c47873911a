// Affine explorer: scale, zero point and bit width over a histogram of the data.

const STEPS_PER_OCTAVE = 40; // one arrow-key press multiplies the scale by 2^(1/40), ~1.7 %
const OCTAVES = 3; // the scale slider spans 1/8x .. 8x the min/max fit

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "affine" });
  const title = h("div", { class: "qb-title", text: "Affine quantization: x ≈ S · (q − Z)" });
  const scale = slider("affine-scale", "scale S", {
    min: 0,
    max: 2 * OCTAVES * STEPS_PER_OCTAVE,
    step: 1,
    value: OCTAVES * STEPS_PER_OCTAVE,
    name: "scale",
  });
  const scaleField = field("affine-scale-value", "S =", {
    type: "number",
    step: "any",
    min: "0",
    name: "scale-value",
    class: "qb-number",
  });
  const zero = slider("affine-zp", "zero point Z", { min: -128, max: 127, step: 1, value: 0, name: "zero_point" });
  const bits = slider("affine-bits", "bits", { min: 2, max: 8, step: 1, value: 8, name: "bits" });
  const signed = choice("affine-signed", "integers", [["true", "signed"], ["false", "unsigned"]], "true", "signed");
  const fit = h("button", { type: "button", class: "qb-button", "data-control": "fit", text: "Fit S, Z to min/max" });
  const controls = h("div", { class: "qb-controls" }, scale.wrap, scaleField.wrap, zero.wrap, bits.wrap, signed.wrap, fit);
  const hist = canvasPanel("Histogram of the data with the quantization grid; shaded regions are clipped", 150);
  const err = canvasPanel("Quantization error of every data point against its value", 120);
  const stats = h("p", { class: "qb-stats", "aria-live": "polite" });
  const tableBox = h("div", { class: "qb-table-box" });
  root.append(title, controls, hist, err, stats, tableBox);
  el.append(root);

  let data = new Float64Array(0);
  let view = null;
  let counts = [];
  let q = new Int32Array(0);
  let xHat = new Float64Array(0);

  function loadData() {
    data = Float64Array.from(model.get("data"));
    view = dataView(data);
    counts = histogram(data, view.lo, view.hi, 60);
    q = new Int32Array(data.length);
    xHat = new Float64Array(data.length);
    root.dataset.sample = JSON.stringify({ data: Array.from(data), x: model.get("x") });
  }

  function fitted(b, s) {
    return affineParams(view.min, view.max, b, s);
  }

  function update() {
    const S = model.get("scale");
    const Z = model.get("zero_point");
    const b = model.get("bits");
    const sg = model.get("signed");
    const [qmin, qmax] = qrange(b, sg);
    // controls follow the model (a change may come from Python)
    const ref = fitted(b, sg)[0];
    const pos = Math.round(STEPS_PER_OCTAVE * Math.log2(S / ref)) + OCTAVES * STEPS_PER_OCTAVE;
    scale.input.value = String(clamp(pos, 0, 2 * OCTAVES * STEPS_PER_OCTAVE));
    scale.out.textContent = fmt(S, 4);
    if (document.activeElement !== scaleField.input) scaleField.input.value = String(S);
    zero.input.min = String(qmin);
    zero.input.max = String(qmax);
    zero.input.value = String(Z);
    zero.out.textContent = String(Z);
    bits.input.value = String(b);
    bits.out.textContent = String(b);
    signed.select.value = String(sg);

    affineRoundTrip(data, S, Z, b, sg, q, xHat);
    const st = errorStats(data, xHat);
    // Clipped: more than half a step beyond the first or last code, where rounding alone
    // cannot reach (the error there is the clipping error).
    const s32 = f32(S);
    const lowEnd = f32(s32 * (qmin - Z));
    const highEnd = f32(s32 * (qmax - Z));
    const clipLow = lowEnd - s32 / 2;
    const clipHigh = highEnd + s32 / 2;
    let clipped = 0;
    for (let i = 0; i < data.length; i++) if (data[i] < clipLow || data[i] > clipHigh) clipped += 1;

    const levels = [];
    const first = Math.max(qmin, Math.ceil(view.lo / s32 + Z) - 1);
    const last = Math.min(qmax, Math.floor(view.hi / s32 + Z) + 1);
    for (let c = first; c <= last && levels.length < 4096; c++) levels.push(f32(s32 * (c - Z)));
    drawGrid(hist, view, counts, levels, clipLow, clipHigh);
    drawError(err, view, data, xHat, s32 / 2);

    const x = model.get("x");
    const xq = new Int32Array(x.length);
    const xh = new Float64Array(x.length);
    affineRoundTrip(x, S, Z, b, sg, xq, xh);
    stats.textContent =
      `codes ${qmin}…${qmax}, representable [${fmt(lowEnd)}, ${fmt(highEnd)}] · ` +
      `MSE ${fmt(st.mse)} · max |error| ${fmt(st.max_error)} · SQNR ${fmt(st.sqnr_db, 3)} dB · ` +
      `clipped ${clipped} of ${data.length}`;
    tableBox.replaceChildren(pointsTable("A few data points, exactly", x, xq, xh));
    root.dataset.state = JSON.stringify({
      scale: S,
      zero_point: Z,
      bits: b,
      signed: sg,
      qmin,
      qmax,
      x,
      q: Array.from(xq),
      x_hat: Array.from(xh),
      mse: st.mse,
      max_error: st.max_error,
      sqnr_db: st.sqnr_db,
      clipped,
      n: data.length,
      range: [lowEnd, highEnd],
    });
    performance.mark("qb-redraw-end");
  }

  // Set several traits, redraw once, then tell the kernel (if any).
  let batching = false;
  function set(values) {
    batching = true;
    setTraits(model, values);
    batching = false;
    update();
  }

  scale.input.addEventListener("input", () => {
    const ref = fitted(model.get("bits"), model.get("signed"))[0];
    const k = Number(scale.input.value) - OCTAVES * STEPS_PER_OCTAVE;
    set({ scale: ref * 2 ** (k / STEPS_PER_OCTAVE) });
  });
  scaleField.input.addEventListener("change", () => {
    const v = Number(scaleField.input.value);
    if (Number.isFinite(v) && v > 0) set({ scale: v });
    else scaleField.input.value = String(model.get("scale"));
  });
  zero.input.addEventListener("input", () => set({ zero_point: Number(zero.input.value) }));
  // A new integer type refits S and Z to the data's min/max (quantbook.affine.qparams).
  function refit(b, sg) {
    const [S, Z] = fitted(b, sg);
    set({ bits: b, signed: sg, scale: S, zero_point: Z });
  }
  bits.input.addEventListener("input", () => refit(Number(bits.input.value), model.get("signed")));
  signed.select.addEventListener("change", () => refit(model.get("bits"), signed.select.value === "true"));
  fit.addEventListener("click", () => refit(model.get("bits"), model.get("signed")));

  return follow(model, root, {
    data: ["data", "x"],
    settings: ["scale", "zero_point", "bits", "signed"],
    loadData,
    update,
    onSetting: () => {
      if (!batching) update();
    },
  });
}

export default { render };
