// Embedding explorer: sign bits of two embeddings, Hamming distance against cosine similarity.

// b turned toward a, in float32 like NumPy: float32(1 - mix) * b + float32(mix) * a.
function mixToward(a, b, mix, out) {
  const wb = f32(1 - mix);
  const wa = f32(mix);
  for (let i = 0; i < a.length; i++) out[i] = f32(f32(wb * b[i]) + f32(wa * a[i]));
}

// Binary quantization keeps x > 0 as a 1 bit (quantbook.embeddings "ubinary").
function signBits(v, dims) {
  let s = "";
  for (let i = 0; i < dims; i++) s += v[i] > 0 ? "1" : "0";
  return s;
}

function compare(a, bt, dims) {
  const bitsA = signBits(a, dims);
  const bitsB = signBits(bt, dims);
  let hamming = 0;
  for (let i = 0; i < dims; i++) if (bitsA[i] !== bitsB[i]) hamming += 1;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < dims; i++) {
    dot += a[i] * bt[i];
    na += a[i] * a[i];
    nb += bt[i] * bt[i];
  }
  const norm = Math.sqrt(na) * Math.sqrt(nb);
  return { bitsA, bitsB, hamming, cosine: norm > 0 ? dot / norm : 0 };
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "embedding" });
  const title = h("div", { class: "qb-title", text: "Binary embeddings: one sign bit per dimension" });
  const mix = slider("embedding-mix", "turn b toward a", { min: 0, max: 1, step: 0.025, value: 0, name: "mix" });
  const dims = slider("embedding-dims", "dimensions compared", { min: 8, max: 8, step: 8, value: 8, name: "dims" });
  const controls = h("div", { class: "qb-controls" }, mix.wrap, dims.wrap);
  const grid = canvasPanel("Sign bits of both embeddings; differing bits are marked", 170);
  const plot = canvasPanel("Cosine similarity against the Hamming distance as b turns toward a", 150);
  const stats = h("p", { class: "qb-stats", "aria-live": "polite" });
  const legend = h("p", { class: "qb-legend" });
  root.append(title, controls, grid, legend, stats, plot);
  el.append(root);

  let a;
  let b;
  let bt;

  function loadData() {
    a = Float64Array.from(model.get("a"));
    b = Float64Array.from(model.get("b"));
    bt = new Float64Array(a.length);
    dims.input.min = String(Math.min(8, a.length));
    dims.input.max = String(a.length);
    root.dataset.sample = JSON.stringify({ a: Array.from(a), b: Array.from(b) });
  }

  // Text cut to fit the canvas width, with an ellipsis.
  function fitText(ctx, text, width) {
    if (ctx.measureText(text).width <= width) return text;
    let n = text.length;
    while (n > 1 && ctx.measureText(`${text.slice(0, n)}…`).width > width) n -= 1;
    return `${text.slice(0, n)}…`;
  }

  function drawBits(r, d, labels) {
    // As many bits per row as fit at 8 px or more per bit (a multiple of 8, at most 64); the
    // canvas grows to hold both grids.
    const width = Math.max(240, Math.round(grid.clientWidth || 640));
    const perRow = clamp(Math.floor((width - 8) / 10 / 8) * 8, 8, 64);
    const cell = Math.min(14, Math.floor((width - 8) / perRow));
    const rowsEach = Math.ceil(d / perRow);
    const labelH = 16;
    grid.dataset.height = String(2 * (labelH + rowsEach * cell) + 8);
    const { ctx, w } = prepare(grid);
    const drawOne = (bits, y0, other) => {
      for (let i = 0; i < d; i++) {
        const x = 4 + (i % perRow) * cell;
        const y = y0 + Math.floor(i / perRow) * cell;
        ctx.fillStyle = bits[i] === "1" ? COLORS.blue : "#ffffff";
        ctx.fillRect(x, y, cell - 1, cell - 1);
        if (bits[i] !== other[i]) {
          ctx.strokeStyle = COLORS.vermillion;
          ctx.lineWidth = 2;
          ctx.strokeRect(x + 1, y + 1, cell - 3, cell - 3);
          ctx.lineWidth = 1;
        } else {
          ctx.strokeStyle = "#c8c8c8";
          ctx.strokeRect(x + 0.5, y + 0.5, cell - 2, cell - 2);
        }
      }
    };
    ctx.fillStyle = COLORS.black;
    ctx.textAlign = "left";
    ctx.fillText(fitText(ctx, labels[0], w - 8), 4, 12);
    drawOne(r.bitsA, labelH, r.bitsB);
    const y1 = 2 * labelH + rowsEach * cell + 4;
    ctx.fillStyle = COLORS.black;
    ctx.fillText(fitText(ctx, labels[1], w - 8), 4, y1 - 4);
    drawOne(r.bitsB, y1, r.bitsA);
  }

  function drawPlot(d, current) {
    const { ctx, w, h: height } = prepare(plot);
    const pad = { l: 44, r: 10, t: 10, b: 26 };
    const X = (hd) => pad.l + hd * (w - pad.l - pad.r); // fraction of bits that differ, 0..1
    const Y = (c) => pad.t + ((1 - c) / 2) * (height - pad.t - pad.b); // cosine -1..1
    drawAxes(ctx, pad, w, height);
    // cos(pi h/d): the angle random hyperplanes would give
    ctx.strokeStyle = COLORS.green;
    ctx.setLineDash([5, 3]);
    ctx.beginPath();
    for (let k = 0; k <= 50; k++) {
      const t = k / 50;
      if (k === 0) ctx.moveTo(X(t), Y(Math.cos(Math.PI * t)));
      else ctx.lineTo(X(t), Y(Math.cos(Math.PI * t)));
    }
    ctx.stroke();
    ctx.setLineDash([]);
    // the path as b turns toward a
    const tmp = new Float64Array(a.length);
    ctx.fillStyle = COLORS.blue;
    for (let k = 0; k <= 40; k++) {
      mixToward(a, b, k / 40, tmp);
      const r = compare(a, tmp, d);
      ctx.fillRect(X(r.hamming / d) - 2, Y(r.cosine) - 2, 4, 4);
    }
    ctx.fillStyle = COLORS.vermillion;
    ctx.beginPath();
    ctx.arc(X(current.hamming / d), Y(current.cosine), 6, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = COLORS.black;
    ctx.textAlign = "right";
    ctx.fillText("cos 1", pad.l - 4, pad.t + 8);
    ctx.fillText("−1", pad.l - 4, height - pad.b);
    ctx.textAlign = "left";
    ctx.fillText("0", pad.l, height - 8);
    ctx.textAlign = "right";
    ctx.fillText("Hamming / dims = 1", w - pad.r, height - 8);
    ctx.textAlign = "left";
    ctx.fillStyle = COLORS.green;
    ctx.fillText("- - cos(π·h/d)", pad.l + 8, height - pad.b - 6);
  }

  function update() {
    const m = model.get("mix");
    const d = model.get("dims");
    const labels = model.get("labels");
    mix.input.value = String(m);
    mix.out.textContent = m.toFixed(3);
    dims.input.value = String(d);
    dims.out.textContent = String(d);
    mixToward(a, b, m, bt);
    const r = compare(a, bt, d);
    const estimate = Math.cos((Math.PI * r.hamming) / d);
    drawBits(r, d, labels);
    drawPlot(d, r);
    legend.textContent = `Filled = bit 1 (value > 0); outlined in vermillion = the bits of ${labels[0]} and ${labels[1]} differ.`;
    stats.textContent =
      `Hamming distance ${r.hamming} of ${d} bits (${fmt((100 * r.hamming) / d, 3)} %) · ` +
      `cosine ${fmt(r.cosine, 4)} · cos(π·h/d) = ${fmt(estimate, 4)} · ` +
      `${d} floats = ${4 * d} bytes, ${d} bits = ${Math.ceil(d / 8)} bytes`;
    root.dataset.state = JSON.stringify({
      mix: m,
      dims: d,
      labels,
      bits_a: r.bitsA,
      bits_b: r.bitsB,
      hamming: r.hamming,
      cosine: r.cosine,
      cosine_from_hamming: estimate,
    });
    performance.mark("qb-redraw-end");
  }

  const set = (name, value) => setTraits(model, { [name]: value });
  mix.input.addEventListener("input", () => set("mix", Number(mix.input.value)));
  dims.input.addEventListener("input", () => set("dims", Number(dims.input.value)));

  return follow(model, root, {
    data: ["a", "b"],
    settings: ["mix", "dims", "labels"],
    loadData,
    update,
  });
}

export default { render };
