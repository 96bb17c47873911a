// Granularity explorer: one symmetric scale per tensor, per row or per group, and an outlier.

// quantbook.symmetric.quantize with scales per block of columns [start, end) of each row:
// S = float32(max|w| / (2^(b-1) - 1)) per block (1.0 for all zeros), q = clamp(rint(w / S)),
// x_hat = float32(q * S). Per tensor the block is the whole matrix.
function symmetricBlocks(w, rows, cols, bits, granularity, groupSize, q, xHat) {
  const top = 2 ** (bits - 1) - 1;
  const scaleOf = (m) => {
    const s = f32(m / top);
    return s > 0 ? s : 1.0;
  };
  const scales = [];
  if (granularity === "per-tensor") {
    let m = 0;
    for (let i = 0; i < w.length; i++) m = Math.max(m, Math.abs(w[i]));
    scales.push(scaleOf(m));
  }
  const width = granularity === "per-group" ? groupSize : cols;
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += width) {
      let s = scales[0];
      if (granularity !== "per-tensor") {
        let m = 0;
        for (let c = c0; c < c0 + width; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
        s = scaleOf(m);
        scales.push(s);
      }
      for (let c = c0; c < c0 + width; c++) {
        const i = r * cols + c;
        const code = clamp(roundHalfEven(f32(w[i] / s)), -top, top);
        q[i] = code;
        xHat[i] = f32(code * s);
      }
    }
  }
  return scales;
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "granularity" });
  const title = h("div", { class: "qb-title", text: "Granularity: how many weights share a scale" });
  const gran = choice(
    "granularity-kind",
    "scales",
    [["per-tensor", "per tensor (1)"], ["per-channel", "per channel (1 per row)"], ["per-group", "per group"]],
    "per-tensor",
    "granularity",
  );
  const group = choice("granularity-group", "group size", [], 32, "group_size");
  const outlier = slider("granularity-outlier", "outlier × max|w|", {
    min: 0,
    max: 20,
    step: 0.5,
    value: 0,
    name: "outlier",
  });
  const bits = slider("granularity-bits", "bits", { min: 2, max: 8, step: 1, value: 4, name: "bits" });
  const controls = h("div", { class: "qb-controls" }, gran.wrap, group.wrap, outlier.wrap, bits.wrap);
  const heat = canvasPanel("Error of every weight (rows by columns) and mean squared error per row", 200);
  const stats = h("p", { class: "qb-stats", "aria-live": "polite" });
  const tableBox = h("div", { class: "qb-table-box" });
  const legend = h("p", {
    class: "qb-legend",
    text: "Left: |x̂ − x| per weight (darker = larger; the outlier is circled). Right: MSE per row (log scale).",
  });
  root.append(title, controls, heat, legend, stats, tableBox);
  el.append(root);

  let base;
  let rows;
  let cols;
  let w;
  let q;
  let xHat;

  function loadData() {
    const m = model.get("w");
    rows = m.length;
    cols = rows ? m[0].length : 0;
    base = new Float64Array(rows * cols);
    m.forEach((row, r) => row.forEach((v, c) => (base[r * cols + c] = v)));
    w = new Float64Array(base.length);
    q = new Int32Array(base.length);
    xHat = new Float64Array(base.length);
    group.select.replaceChildren(
      ...model.get("group_sizes").map((g) => h("option", { value: g, text: String(g) })),
    );
    root.dataset.sample = JSON.stringify({ w: m });
  }

  function draw(rowMse, r0) {
    const { ctx, w: width, h: height } = prepare(heat);
    const barW = Math.min(160, Math.round(width * 0.3));
    const mapW = width - barW - 16;
    const cw = mapW / cols;
    const rh = (height - 4) / rows;
    let emax = 0;
    for (let i = 0; i < w.length; i++) emax = Math.max(emax, Math.abs(xHat[i] - w[i]));
    // The heat map goes into one pixel buffer (one putImageData instead of a fillRect per
    // weight): light yellow (no error) to dark blue (the largest error), readable without colour.
    const ratio = heat.width / width;
    const W = Math.max(1, Math.round(mapW * ratio));
    const H = Math.max(1, Math.round((height - 4) * ratio));
    let img = heat.qbImage;
    if (!img || img.width !== W || img.height !== H) {
      img = ctx.createImageData(W, H);
      heat.qbImage = img;
    }
    const px = img.data;
    const shade = new Uint8ClampedArray(3 * w.length);
    for (let i = 0; i < w.length; i++) {
      const t = emax > 0 ? Math.sqrt(Math.abs(xHat[i] - w[i]) / emax) : 0;
      shade[3 * i] = 255 - 255 * t;
      shade[3 * i + 1] = 250 - 136 * t;
      shade[3 * i + 2] = 230 - 52 * t;
    }
    for (let y = 0; y < H; y++) {
      const r = Math.min(rows - 1, Math.floor((y * rows) / H));
      for (let x = 0; x < W; x++) {
        const i = r * cols + Math.min(cols - 1, Math.floor((x * cols) / W));
        const k = 4 * (y * W + x);
        px[k] = shade[3 * i];
        px[k + 1] = shade[3 * i + 1];
        px[k + 2] = shade[3 * i + 2];
        px[k + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    if (model.get("outlier") > 0) {
      ctx.strokeStyle = COLORS.vermillion;
      ctx.lineWidth = 2;
      ctx.strokeRect(0, r0 * rh, Math.max(cw, 4), Math.max(rh, 4));
      ctx.lineWidth = 1;
    }
    const logs = rowMse.map((v) => (v > 0 ? Math.log10(v) : null));
    const finite = logs.filter((v) => v !== null);
    const lo = finite.length ? Math.min(...finite) - 0.5 : -1;
    const hi = finite.length ? Math.max(...finite) : 0;
    const x0 = mapW + 12;
    for (let r = 0; r < rows; r++) {
      const v = logs[r];
      const len = v === null ? 0 : ((v - lo) / (hi - lo || 1)) * (barW - 4);
      ctx.fillStyle = r === r0 && model.get("outlier") > 0 ? COLORS.vermillion : COLORS.blue;
      ctx.fillRect(x0, r * rh + rh * 0.15, Math.max(1, len), Math.max(1, rh * 0.7));
    }
  }

  function update() {
    const g = model.get("granularity");
    const gs = model.get("group_size");
    const out = model.get("outlier");
    const b = model.get("bits");
    gran.select.value = g;
    group.select.value = String(gs);
    group.select.disabled = g !== "per-group";
    outlier.input.value = String(out);
    outlier.out.textContent = String(out);
    bits.input.value = String(b);
    bits.out.textContent = String(b);

    w.set(base);
    const r0 = Math.floor(rows / 2);
    if (out > 0) {
      let m = 0;
      for (let i = 0; i < base.length; i++) m = Math.max(m, Math.abs(f32(base[i])));
      w[r0 * cols] = f32(f32(out) * m);
    }
    const scales = symmetricBlocks(w, rows, cols, b, g, gs, q, xHat);
    const rowMse = [];
    for (let r = 0; r < rows; r++) {
      rowMse.push(errorStats(w.subarray(r * cols, (r + 1) * cols), xHat.subarray(r * cols, (r + 1) * cols)).mse);
    }
    const st = errorStats(w, xHat);
    const perScale = g === "per-tensor" ? rows * cols : g === "per-channel" ? cols : gs;
    const bpw = b + 16 / perScale;
    draw(rowMse, r0);
    const shown = Math.min(8, cols);
    const x = Array.from(w.subarray(r0 * cols, r0 * cols + shown));
    stats.textContent =
      `${scales.length} scale${scales.length > 1 ? "s" : ""} · ${fmt(bpw)} bits per weight (fp16 scales) · ` +
      `MSE ${fmt(st.mse)} · max |error| ${fmt(st.max_error)} · SQNR ${fmt(st.sqnr_db, 3)} dB`;
    tableBox.replaceChildren(
      pointsTable(
        `Row ${r0}${out > 0 ? " (with the outlier)" : ""}, first ${shown} weights`,
        x,
        Array.from(q.subarray(r0 * cols, r0 * cols + shown)),
        Array.from(xHat.subarray(r0 * cols, r0 * cols + shown)),
      ),
    );
    root.dataset.state = JSON.stringify({
      granularity: g,
      group_size: gs,
      outlier: out,
      bits: b,
      rows,
      cols,
      outlier_row: r0,
      scales,
      row_mse: rowMse,
      mse: st.mse,
      max_error: st.max_error,
      sqnr_db: st.sqnr_db,
      bits_per_weight: bpw,
      x,
      q: Array.from(q.subarray(r0 * cols, r0 * cols + shown)),
      x_hat: Array.from(xHat.subarray(r0 * cols, r0 * cols + shown)),
    });
    performance.mark("qb-redraw-end");
  }

  const set = (name, value) => setTraits(model, { [name]: value });
  gran.select.addEventListener("change", () => set("granularity", gran.select.value));
  group.select.addEventListener("change", () => set("group_size", Number(group.select.value)));
  outlier.input.addEventListener("input", () => set("outlier", Number(outlier.input.value)));
  bits.input.addEventListener("input", () => set("bits", Number(bits.input.value)));

  return follow(model, root, {
    data: ["w", "group_sizes"],
    settings: ["granularity", "group_size", "outlier", "bits"],
    loadData,
    update,
  });
}

export default { render };
