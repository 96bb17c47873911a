// Microscaling explorer: 32 values in MXFP4 (one E8M0 scale per 32) or NVFP4 (one E4M3 scale per
// 16 and a float32 tensor scale), E2M1 elements. Mirrors MicroscalingExplorer.state() in Python:
// every step is one float32 operation (Math.fround), E2M1 and E4M3 round to nearest even.

const E2M1 = floatFormat("float4_e2m1fn", 2, 1, "finite");
const E4M3 = floatFormat("float8_e4m3fn", 4, 3, "fn");
const E2M1_GRID = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
const MX_BLOCK = { mxfp4: 32, nvfp4: 16 };
const VALUE_RE = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const BLOCK_COLORS = [COLORS.blue, COLORS.purple];

// E2M1 codes, element values and decoded values of x with one float32 scale.
function mxElements(x, scale) {
  const codes = [];
  const elements = [];
  const xHat = [];
  for (const v of x) {
    const ratio = scale === 0 ? 0 : clamp(f32(v / scale), -6, 6);
    const code = floatEncode(ratio, E2M1);
    const p = floatDecode(code, E2M1);
    codes.push(code);
    elements.push(p);
    xHat.push(f32(p * scale));
  }
  return { codes, elements, xHat };
}

function absMax(x) {
  let a = 0;
  for (const v of x) a = Math.max(a, Math.abs(v));
  return a;
}

function byteBits(b) {
  return b.toString(2).padStart(8, "0");
}

// OCP MX v1.0: X = 2^(floor(log2 amax) - 2), an E8M0 byte (bias 127) clamped to [0, 254].
function mxfp4Block(x) {
  const amax = absMax(x);
  const k = amax > 0 ? floorLog2(amax) : null;
  const byte = amax > 0 ? clamp(k - 2 + 127, 0, 254) : 0;
  const scale = 2 ** (byte - 127);
  const el = mxElements(x, scale);
  return {
    block: { amax, log2_floor: k, scale_byte: byte, scale_bits: byteBits(byte), scale, grid: E2M1_GRID.map((g) => f32(g * scale)), codes: el.codes, elements: el.elements },
    xHat: el.xHat,
  };
}

// NVFP4 tensor scale: amax / (6 * 448) in float32, or 1 where that is 0.
function nvfp4TensorScale(amax) {
  const s = f32(f32(amax) / 2688);
  return s === 0 ? 1 : s;
}

// NVFP4: d = E4M3(min(amax / (6 s), 448)), elements E2M1(x / (d s)).
function nvfp4Block(x, ts) {
  const amax = absMax(x);
  const target = Math.min(f32(amax / f32(6 * ts)), 448);
  const byte = floatEncode(target, E4M3);
  const d = floatDecode(byte, E4M3);
  const total = f32(d * ts);
  const el = mxElements(x, total);
  return {
    block: { amax, target, scale_byte: byte, scale_bits: byteBits(byte), scale: d, total_scale: total, grid: E2M1_GRID.map((g) => f32(g * total)), codes: el.codes, elements: el.elements },
    xHat: el.xHat,
  };
}

// Everything the explorer shows, as MicroscalingExplorer.state() computes it in Python.
function microscalingState(values, fmt, tensorAmax) {
  const x = values.map(f32);
  const n = MX_BLOCK[fmt];
  const ts = fmt === "nvfp4" ? nvfp4TensorScale(tensorAmax) : null;
  const blocks = [];
  const xHat = [];
  for (let start = 0; start < x.length; start += n) {
    const chunk = x.slice(start, start + n);
    const r = fmt === "mxfp4" ? mxfp4Block(chunk) : nvfp4Block(chunk, ts);
    blocks.push(r.block);
    xHat.push(...r.xHat);
  }
  const error = x.map((v, i) => xHat[i] - v);
  let se = 0;
  let sx = 0;
  let maxError = 0;
  let clipped = 0;
  x.forEach((v, i) => {
    se += error[i] * error[i];
    sx += v * v;
    maxError = Math.max(maxError, Math.abs(error[i]));
    const g = blocks[Math.floor(i / n)].grid;
    if (Math.abs(v) > g[7] + (g[7] - g[6]) / 2) clipped += 1;
  });
  return {
    format: fmt,
    values: x,
    tensor_amax: f32(tensorAmax),
    tensor_scale: ts,
    block_size: n,
    blocks,
    codes: blocks.flatMap((b) => b.codes),
    x_hat: xHat,
    error,
    mse: se / x.length,
    max_error: maxError,
    sqnr_db: se > 0 && sx > 0 ? 10 * Math.log10(sx / se) : null,
    clipped,
    bits_per_weight: 4 + 8 / n,
  };
}

function parseValues(text) {
  const parts = text.split(/[\s,;]+/).filter((t) => t.length);
  const bad = parts.find((t) => !VALUE_RE.test(t));
  if (bad !== undefined) return { error: `not a number: "${bad}"` };
  // float32, and -0 as 0: the values travel as JSON, which has no negative zero
  const values = parts.map((t) => f32(Number(t)) + 0);
  if (values.some((v) => !Number.isFinite(v))) return { error: "a value is too large for float32" };
  if (values.length !== 32) return { error: `type 32 values (one MXFP4 block), got ${values.length}` };
  return { values };
}

function describeBlock(st, b, i) {
  const first = i * st.block_size;
  const range = `values ${first}–${first + st.block_size - 1}`;
  const grid = `E2M1 grid: 0, ±${b.grid.slice(1).map((g) => fmt(g, 4)).join(", ±")}`;
  if (st.format === "mxfp4") {
    if (b.log2_floor === null) return `${range}: all zero → E8M0 byte ${b.scale_bits} (X = 2^−127). ${grid}`;
    return (
      `${range}: amax ${fmt(b.amax, 5)}, ⌊log2 amax⌋ = ${b.log2_floor}, E8M0 byte ${b.scale_bits} = ${b.scale_byte} ` +
      `→ X = 2^(${b.scale_byte} − 127) = ${fmt(b.scale, 5)} (amax / X = ${fmt(b.amax / b.scale, 4)}). ${grid}`
    );
  }
  return (
    `${range}: amax ${fmt(b.amax, 5)}, amax / (6 s) = ${fmt(b.target, 5)} → E4M3 byte ${b.scale_bits} = ${fmt(b.scale, 5)}, ` +
    `d · s = ${fmt(b.total_scale, 5)}. ${grid}`
  );
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "microscaling" });
  const title = h("div", { class: "qb-title", text: "Microscaling: 32 values, shared scales, 4-bit codes" });
  const format = choice("mx-format", "format", [["mxfp4", "MXFP4 (E8M0 scale per 32)"], ["nvfp4", "NVFP4 (E4M3 scale per 16)"]], model.get("format"), "format");
  const blockChoice = poolChoice(model, "mx-block", "weights", "values", "typed / dragged", "sample block");
  const amax = field("mx-amax", "tensor amax", { type: "number", step: "any", min: "0", name: "tensor_amax", class: "qb-number" });
  const text = field("mx-values", "values", { type: "text", name: "values", class: "qb-text", spellcheck: "false" });
  const controls = h("div", { class: "qb-controls" }, format.wrap, blockChoice.wrap, amax.wrap, text.wrap);
  const message = h("p", { class: "qb-error", role: "alert" });
  const scales = h("div", { class: "qb-legend", "aria-live": "polite" });
  const plot = canvasPanel("The 32 values (dots), their decoded values (bars) and each block's E2M1 grid (lines); drag a column to change its value", 200);
  plot.style.touchAction = "none";
  const stats = h("p", { class: "qb-stats", "aria-live": "polite" });
  const tableBox = h("div", { class: "qb-table-box qb-scroll" });
  root.append(title, controls, message, scales, plot, stats, tableBox);
  el.append(root);
  let inputError = null;
  let frozen = null; // the y range while a drag is under way
  let layout = null;

  function draw(st) {
    const { ctx, w, h: height } = prepare(plot);
    const pad = { l: 8, r: 8, t: 10, b: 16 };
    let top = frozen;
    if (top === null) {
      top = 0;
      for (const v of st.values) top = Math.max(top, Math.abs(v));
      for (const b of st.blocks) top = Math.max(top, b.grid[7]);
      top = (top || 1) * 1.1;
    }
    const colW = (w - pad.l - pad.r) / st.values.length;
    const Y = (v) => pad.t + ((top - v) / (2 * top)) * (height - pad.t - pad.b);
    layout = { pad, colW, top, height };
    st.blocks.forEach((b, i) => {
      const x0 = pad.l + i * st.block_size * colW;
      const x1 = x0 + st.block_size * colW;
      ctx.strokeStyle = BLOCK_COLORS[i % 2];
      ctx.globalAlpha = 0.35;
      ctx.beginPath();
      for (const g of b.grid) {
        for (const v of g === 0 ? [0] : [g, -g]) {
          const y = Math.round(Y(v)) + 0.5;
          ctx.moveTo(x0, y);
          ctx.lineTo(x1, y);
        }
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
    });
    st.values.forEach((v, i) => {
      const cx = pad.l + (i + 0.5) * colW;
      ctx.strokeStyle = COLORS.vermillion;
      ctx.beginPath();
      ctx.moveTo(cx, Y(v));
      ctx.lineTo(cx, Y(st.x_hat[i]));
      ctx.stroke();
      ctx.fillStyle = COLORS.orange;
      ctx.fillRect(cx - colW * 0.35, Y(st.x_hat[i]) - 1.5, colW * 0.7, 3);
      ctx.fillStyle = COLORS.black;
      ctx.beginPath();
      ctx.arc(cx, Y(v), Math.min(3, colW / 3), 0, 2 * Math.PI);
      ctx.fill();
    });
    ctx.fillStyle = COLORS.black;
    ctx.textAlign = "left";
    ctx.fillText(`±${fmt(top, 3)}`, pad.l, pad.t);
    ctx.fillText("dots: x · bars: x̂ · lines: the E2M1 grid of each block", pad.l, height - 3);
  }

  function update() {
    const values = model.get("values");
    const fmtName = model.get("format");
    const tAmax = model.get("tensor_amax");
    const st = microscalingState(values, fmtName, tAmax);
    draw(st); // first, while the page's layout is still clean (the canvas reads its width)
    format.select.value = fmtName;
    blockChoice.select.value = String(model.get("block"));
    amax.wrap.style.display = fmtName === "nvfp4" ? "" : "none";
    if (document.activeElement !== amax.input) amax.input.value = String(tAmax);
    if (document.activeElement !== text.input) text.input.value = values.map((v) => String(v)).join(", ");
    const head =
      fmtName === "nvfp4"
        ? `tensor scale s = f32(${fmt(st.tensor_amax, 5)} / (6 · 448)) = ${fmt(st.tensor_scale, 5)}. `
        : "";
    scales.replaceChildren(
      h("div", { text: head + "Each block's scale and the E2M1 grid it implies (codes: sign bit, 2 exponent bits, 1 mantissa bit):" }),
      ...st.blocks.map((b, i) => h("div", { text: `block ${i}, ${describeBlock(st, b, i)}` })),
    );
    stats.textContent =
      `${st.bits_per_weight} bits per weight · MSE ${fmt(st.mse)} · max |error| ${fmt(st.max_error)} · ` +
      `SQNR ${fmt(st.sqnr_db, 3)} dB · clipped (beyond 6 × scale + half a step) ${st.clipped} of 32`;
    const rows = st.values.map((v, i) => {
      const b = st.blocks[Math.floor(i / st.block_size)];
      const scale = fmtName === "mxfp4" ? b.scale : b.total_scale;
      return h(
        "tr",
        {},
        h("td", { text: String(i) }),
        h("td", { text: fmt(v, 6) }),
        h("td", { text: scale === 0 ? "—" : fmt(f32(v / scale), 4) }),
        h("td", { class: "qb-bits", text: st.codes[i].toString(2).padStart(4, "0") }),
        h("td", { text: String(b.elements[i % st.block_size]) }),
        h("td", { text: fmt(st.x_hat[i], 6) }),
        h("td", { text: fmt(st.error[i], 3) }),
      );
    });
    tableBox.replaceChildren(
      h(
        "table",
        { class: "qb-table" },
        h("caption", { text: "Every element: x / scale rounds to the nearest E2M1 value, ties to even" }),
        h("thead", {}, h("tr", {}, ...["i", "x", "x / scale", "code", "E2M1", "x̂", "x̂ − x"].map((c) => h("th", { text: c })))),
        h("tbody", {}, ...rows),
      ),
    );
    message.textContent = inputError || "";
    root.dataset.state = JSON.stringify({ ...st, block: model.get("block"), input_error: inputError });
    performance.mark("qb-redraw-end");
  }

  format.select.addEventListener("change", () => setTraits(model, { format: format.select.value }));
  amax.input.addEventListener("change", () => {
    const v = f32(Number(amax.input.value));
    if (amax.input.value.trim() !== "" && Number.isFinite(v) && v >= 0) {
      inputError = null;
      setTraits(model, { tensor_amax: v });
    } else {
      inputError = `tensor amax must be a number ≥ 0, got "${amax.input.value}"`;
      update();
    }
  });
  text.input.addEventListener("change", () => {
    const r = parseValues(text.input.value);
    if (r.error) {
      inputError = r.error;
      update();
      return;
    }
    inputError = null;
    setTraits(model, { values: r.values, block: -1 });
  });

  // Drag a column up or down to set its value (the y range stays put while dragging).
  function dragTo(event) {
    if (!layout) return;
    const rect = plot.getBoundingClientRect();
    const { pad, colW, top, height } = layout;
    const i = clamp(Math.floor((event.clientX - rect.left - pad.l) / colW), 0, 31);
    const frac = clamp((event.clientY - rect.top - pad.t) / (height - pad.t - pad.b), 0, 1);
    const v = f32(Number((top - frac * 2 * top).toPrecision(3))) + 0; // -0 as 0 (JSON)
    const values = model.get("values").slice();
    values[i] = v;
    setTraits(model, { values, block: -1 });
  }
  plot.addEventListener("pointerdown", (event) => {
    frozen = layout ? layout.top : null;
    plot.setPointerCapture(event.pointerId);
    dragTo(event);
  });
  plot.addEventListener("pointermove", (event) => {
    if (frozen !== null) dragTo(event);
  });
  const release = () => {
    if (frozen === null) return;
    frozen = null;
    update();
  };
  plot.addEventListener("pointerup", release);
  plot.addEventListener("pointercancel", release);

  return follow(model, root, {
    data: [],
    settings: ["values", "format", "tensor_amax", "block"],
    loadData: () => {},
    update,
  });
}

export default { render };
