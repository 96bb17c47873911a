// K-quant explorer: one Q4_K super-block (256 weights, 144 bytes) as a byte map. Mirrors
// KQuantExplorer.state() in Python: the same bit extraction (get_scale_min_k4), fp16 d and dmin
// decoded bit for bit, and x = (d · sc) · q − dmin · m with every step one float32 operation.

const F16 = floatFormat("float16", 5, 10, "ieee");
const KQ_ROLE_COLORS = { d: COLORS.green, dmin: COLORS.green, scale: COLORS.blue, min: COLORS.purple, code: COLORS.orange };

// A float32 value for the JSON state: "nan", "inf", "-inf" where JSON has no number.
function kqNumber(v) {
  if (Number.isFinite(v)) return v;
  return Number.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

function kqFp16(raw, at) {
  return floatDecode(raw[at] | (raw[at + 1] << 8), F16);
}

// get_scale_min_k4 over the 12 bytes at block offset 4: eight 6-bit scales and mins.
function kqUnpack(raw) {
  const b = raw.slice(4, 16);
  const scales = [];
  const mins = [];
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      scales.push(b[j] & 63);
      mins.push(b[j + 4] & 63);
    } else {
      scales.push((b[j + 4] & 15) | ((b[j - 4] >> 6) << 4));
      mins.push((b[j + 4] >> 4) | ((b[j] >> 6) << 4));
    }
  }
  return { scales, mins };
}

// Where weight i's code sits: byte 16 + 32 (j div 2) + l, low nibble for even j, high for odd.
function kqCodeLocation(i) {
  const j = Math.floor(i / 32);
  return { byte: 16 + 32 * Math.floor(j / 2) + (i % 32), from_bit: 4 * (j % 2), n_bits: 4, to_bit: 0 };
}

// Where sub-block j's scale and min sit (as scale_min_pieces in Python).
function kqPieces(j) {
  if (j < 4) {
    return [
      [{ byte: 4 + j, from_bit: 0, n_bits: 6, to_bit: 0 }],
      [{ byte: 8 + j, from_bit: 0, n_bits: 6, to_bit: 0 }],
    ];
  }
  return [
    [
      { byte: 8 + j, from_bit: 0, n_bits: 4, to_bit: 0 },
      { byte: j, from_bit: 6, n_bits: 2, to_bit: 4 },
    ],
    [
      { byte: 8 + j, from_bit: 4, n_bits: 4, to_bit: 0 },
      { byte: 4 + j, from_bit: 6, n_bits: 2, to_bit: 4 },
    ],
  ];
}

function kqWithBits(pieces, raw) {
  return pieces.map((p) => {
    const v = (raw[p.byte] >> p.from_bit) & ((1 << p.n_bits) - 1);
    return { ...p, bits: v.toString(2).padStart(p.n_bits, "0") };
  });
}

// Everything the explorer shows, as KQuantExplorer.state() computes it in Python.
function kquantState(raw, weight) {
  const d = kqFp16(raw, 0);
  const dmin = kqFp16(raw, 2);
  const { scales, mins } = kqUnpack(raw);
  const values = [];
  for (let i = 0; i < 256; i++) {
    const j = Math.floor(i / 32);
    const loc = kqCodeLocation(i);
    const q = (raw[loc.byte] >> loc.from_bit) & 15;
    values.push(kqNumber(f32(f32(f32(d * scales[j]) * q) - f32(dmin * mins[j]))));
  }
  const j = Math.floor(weight / 32);
  const code = kqWithBits([kqCodeLocation(weight)], raw)[0];
  const q = parseInt(code.bits, 2);
  const [sp, mp] = kqPieces(j);
  const sc = scales[j];
  const m = mins[j];
  const dSc = f32(d * sc);
  const dScQ = f32(dSc * q);
  const dminM = f32(dmin * m);
  const x = f32(dScQ - dminM);
  return {
    format: "q4_k",
    raw: raw.slice(),
    weight,
    sub_block: j,
    index_in_sub_block: weight % 32,
    d_bits: (raw[0] | (raw[1] << 8)).toString(2).padStart(16, "0"),
    d: kqNumber(d),
    dmin_bits: (raw[2] | (raw[3] << 8)).toString(2).padStart(16, "0"),
    dmin: kqNumber(dmin),
    scales,
    mins,
    code: { ...code, value: q },
    scale: { pieces: kqWithBits(sp, raw), value: sc },
    min: { pieces: kqWithBits(mp, raw), value: m },
    steps: { d_sc: kqNumber(dSc), d_sc_q: kqNumber(dScQ), dmin_m: kqNumber(dminM), x: kqNumber(x) },
    values,
  };
}

// The roles of each byte for the shown weight: which of d, dmin, scale, min, code it holds.
function kqRoles(st) {
  const roles = Array.from({ length: 144 }, () => []);
  for (const b of [0, 1]) roles[b].push("d");
  for (const b of [2, 3]) roles[b].push("dmin");
  for (const p of st.scale.pieces) roles[p.byte].push("scale");
  for (const p of st.min.pieces) roles[p.byte].push("min");
  roles[st.code.byte].push("code");
  return roles;
}

// Clicking byte b: the weights it serves, in order (a nibble byte: its two weights; a scale
// byte: the same position in each sub-block whose scale or min it holds; d and dmin: none).
function kqByteTargets(b, weight) {
  const l = weight % 32;
  if (b >= 16) {
    const c = Math.floor((b - 16) / 32);
    const k = (b - 16) % 32;
    return [64 * c + k, 64 * c + 32 + k];
  }
  if (b < 4) return [];
  const out = [];
  for (let j = 0; j < 8; j++) {
    const [sp, mp] = kqPieces(j);
    if ([...sp, ...mp].some((p) => p.byte === b)) out.push(32 * j + l);
  }
  return out;
}

function kqHex(b) {
  return b.toString(16).padStart(2, "0");
}

function kqShow(v) {
  return typeof v === "string" ? v : fmt(v, 6);
}

function kqParseHex(text) {
  const clean = text.replace(/0x/gi, "").replace(/[\s,;:]+/g, "");
  if (!/^[0-9a-fA-F]*$/.test(clean)) return { error: "bytes: type hexadecimal digits (0-9, a-f)" };
  if (clean.length !== 288) return { error: `bytes: type 144 bytes (288 hex digits), got ${clean.length} digits` };
  const raw = [];
  for (let i = 0; i < 288; i += 2) raw.push(parseInt(clean.slice(i, i + 2), 16));
  return { raw };
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer qb-kquant", "data-explorer": "kquant" });
  const title = h("div", { class: "qb-title", text: "Q4_K super-block: 256 weights in 144 bytes" });
  const blockChoice = poolChoice(model, "kq-block", "super-block", "raw", "bytes given / typed", "encoded block", () => {
    inputError = null;
  });
  const weightField = field("kq-weight", "weight (0-255)", { type: "number", min: "0", max: "255", step: "1", name: "weight", class: "qb-number" });
  const rawField = field("kq-raw", "bytes (hex)", { type: "text", name: "raw", class: "qb-text", spellcheck: "false" });
  const random = h("button", { type: "button", class: "qb-button", "data-control": "random", text: "random bytes" });
  const controls = h("div", { class: "qb-controls" }, blockChoice.wrap, weightField.wrap, rawField.wrap, random);
  const message = h("p", { class: "qb-error", role: "alert" });
  const mapLabel = h("div", { class: "qb-legend", text: "The 256 decoded weights, one row per sub-block of 32 (orange positive, blue negative, darker is larger, grey not finite; click one):" });
  const plot = canvasPanel("The 256 decoded weights of the super-block, one row per sub-block of 32; click a weight to inspect it", 8 * 15 + 12);
  const bytesLabel = h("div", { class: "qb-legend" });
  const byteMap = h("div", { class: "qb-kq-bytemap" });
  const bitsBox = h("div", { class: "qb-kq-bits", "aria-live": "polite" });
  const steps = h("div", { class: "qb-stats", "aria-live": "polite" });
  root.append(title, controls, message, mapLabel, plot, bytesLabel, byteMap, bitsBox, steps);
  el.append(root);

  // the 144 byte buttons, built once: bytes 0-15 (d, dmin, scales) then four rows of 32 nibble bytes
  const byteButtons = [];
  const rows = [h("div", { class: "qb-kq-row" }, h("span", { class: "qb-kq-rowlabel", text: "0-15" }))];
  for (let c = 0; c < 4; c++) rows.push(h("div", { class: "qb-kq-row" }, h("span", { class: "qb-kq-rowlabel", text: `sub-blocks ${2 * c}/${2 * c + 1}` })));
  for (let b = 0; b < 144; b++) {
    const btn = h("button", { type: "button", class: "qb-kq-byte", "data-byte": b });
    byteButtons.push(btn);
    rows[b < 16 ? 0 : 1 + Math.floor((b - 16) / 32)].append(btn);
    btn.addEventListener("click", () => {
      const w = model.get("weight");
      const targets = kqByteTargets(b, w);
      if (!targets.length) return;
      const at = targets.indexOf(w);
      inputError = null;
      setTraits(model, { weight: targets[(at + 1) % targets.length] });
    });
  }
  byteMap.append(...rows);
  let inputError = null;
  let layout = null;

  function draw(st) {
    const { ctx, w, h: height } = prepare(plot);
    const pad = { l: 16, r: 4, t: 4, b: 4 };
    const cw = (w - pad.l - pad.r) / 32;
    const ch = (height - pad.t - pad.b) / 8;
    layout = { pad, cw, ch };
    let top = 0;
    for (const v of st.values) if (typeof v === "number") top = Math.max(top, Math.abs(v));
    top = top || 1;
    ctx.textAlign = "right";
    for (let i = 0; i < 256; i++) {
      const j = Math.floor(i / 32);
      const v = st.values[i];
      const x0 = pad.l + (i % 32) * cw;
      const y0 = pad.t + j * ch;
      if (typeof v !== "number") ctx.fillStyle = COLORS.grey;
      else {
        ctx.fillStyle = v < 0 ? COLORS.blue : COLORS.orange;
        ctx.globalAlpha = 0.15 + 0.85 * Math.min(1, Math.abs(v) / top);
      }
      ctx.fillRect(x0 + 0.5, y0 + 0.5, cw - 1, ch - 1);
      ctx.globalAlpha = 1;
      if (i % 32 === 0) {
        ctx.fillStyle = COLORS.black;
        ctx.fillText(String(j), pad.l - 4, y0 + ch - 3);
      }
    }
    const sx = pad.l + (st.weight % 32) * cw;
    const sy = pad.t + st.sub_block * ch;
    ctx.strokeStyle = COLORS.black;
    ctx.lineWidth = 2;
    ctx.strokeRect(sx, sy, cw, ch);
    ctx.lineWidth = 1;
  }

  // One byte as 8 bit boxes (bit 7 first), the bits of each role coloured.
  function byteBits(raw, b, marks, label) {
    const boxes = [];
    for (let bit = 7; bit >= 0; bit--) {
      const role = marks[bit];
      const box = h("span", { class: "qb-bitbox", text: String((raw[b] >> bit) & 1), title: `byte ${b} bit ${bit}${role ? `: ${role}` : ""}` });
      if (role) {
        box.style.background = KQ_ROLE_COLORS[role];
        box.style.color = role === "code" ? "#000" : "#fff";
      }
      boxes.push(box);
    }
    return h("span", { class: "qb-byte" }, h("span", {}, ...boxes), h("span", { class: "qb-legend", text: label }));
  }

  function update() {
    const raw = model.get("raw");
    const weight = model.get("weight");
    const st = kquantState(raw, weight);
    draw(st);
    blockChoice.select.value = String(model.get("block"));
    if (document.activeElement !== weightField.input) weightField.input.value = String(weight);
    if (document.activeElement !== rawField.input) rawField.input.value = raw.map(kqHex).join(" ");
    const roles = kqRoles(st);
    byteButtons.forEach((btn, b) => {
      btn.textContent = kqHex(raw[b]);
      const r = roles[b];
      const region = b < 4 ? "fp16 d, dmin" : b < 16 ? "packed scales and mins" : "nibbles";
      btn.setAttribute("aria-label", `byte ${b} (${region}) = 0x${kqHex(raw[b])}${r.length ? `, holds the ${r.join(" and ")}` : ""}`);
      btn.dataset.roles = r.join(" ");
      if (r.length === 0) {
        btn.style.background = b < 16 ? "#eeeeee" : "";
        btn.style.color = "";
      } else if (r.length === 1) {
        btn.style.background = KQ_ROLE_COLORS[r[0]];
        btn.style.color = r[0] === "code" ? "#000" : "#fff";
      } else {
        btn.style.background = `linear-gradient(90deg, ${KQ_ROLE_COLORS[r[0]]} 50%, ${KQ_ROLE_COLORS[r[1]]} 50%)`;
        btn.style.color = "#fff";
      }
    });
    bytesLabel.textContent =
      `The 144 bytes (hex): coloured are those weight ${weight} needs. Green: d (bytes 0-1) and dmin (2-3); ` +
      `blue: its scale; purple: its min; orange: its 4-bit code. Click a byte to jump to a weight it serves.`;
    // the 12 scale bytes, bit by bit, with sub-block j's scale and min bits coloured
    const marks = Array.from({ length: 144 }, () => ({}));
    for (const [role, pieces] of [["scale", st.scale.pieces], ["min", st.min.pieces]]) {
      for (const p of pieces) for (let k = 0; k < p.n_bits; k++) marks[p.byte][p.from_bit + k] = role;
    }
    for (let k = 0; k < 4; k++) marks[st.code.byte][st.code.from_bit + k] = "code";
    const scaleBytes = [];
    for (let b = 4; b < 16; b++) scaleBytes.push(byteBits(raw, b, marks[b], `byte ${b}`));
    const pieceText = (name, part) =>
      `${name} of sub-block ${st.sub_block} = ` +
      part.pieces
        .slice()
        .reverse()
        .map((p) => `${p.bits} (byte ${p.byte}, bits ${p.from_bit}-${p.from_bit + p.n_bits - 1})`)
        .join(" ‖ ") +
      ` = ${part.value}`;
    const split = st.sub_block >= 4 ? " Sub-blocks 4-7 are split: the low 4 bits from byte " +
      `${8 + st.sub_block}, the top 2 bits from bits 6-7 of bytes ${st.sub_block} (scale) and ${4 + st.sub_block} (min).` : "";
    bitsBox.replaceChildren(
      h("div", { class: "qb-legend", text: `The 12 packed scale bytes (bit 7 on the left); weight ${weight} is in sub-block ${st.sub_block}.${split}` }),
      h("div", { class: "qb-nibbles" }, ...scaleBytes),
      h("div", { class: "qb-bits", text: pieceText("scale", st.scale) }),
      h("div", { class: "qb-bits", text: pieceText("min", st.min) }),
      h("div", { class: "qb-nibbles" },
        byteBits(raw, 0, {}, "byte 0"), byteBits(raw, 1, {}, "byte 1"),
        byteBits(raw, 2, {}, "byte 2"), byteBits(raw, 3, {}, "byte 3"),
        byteBits(raw, st.code.byte, marks[st.code.byte], `byte ${st.code.byte} (code)`)),
      h("div", { class: "qb-bits", text: `d = fp16 ${st.d_bits} (bytes 1,0) = ${kqShow(st.d)} · dmin = fp16 ${st.dmin_bits} (bytes 3,2) = ${kqShow(st.dmin)}` }),
      h("div", { class: "qb-bits", text: `code q = ${st.code.bits} (${st.code.from_bit ? "high" : "low"} nibble of byte ${st.code.byte}) = ${st.code.value}` }),
    );
    const s = st.steps;
    steps.textContent =
      `x[${weight}] = d · sc · q − dmin · m, in float32: d · sc = ${kqShow(st.d)} × ${st.scale.value} = ${kqShow(s.d_sc)}; ` +
      `× q = ${kqShow(s.d_sc)} × ${st.code.value} = ${kqShow(s.d_sc_q)}; dmin · m = ${kqShow(st.dmin)} × ${st.min.value} = ${kqShow(s.dmin_m)}; ` +
      `x = ${kqShow(s.d_sc_q)} − ${kqShow(s.dmin_m)} = ${kqShow(s.x)}`;
    message.textContent = inputError || "";
    root.dataset.state = JSON.stringify({ ...st, block: model.get("block"), input_error: inputError });
    performance.mark("qb-redraw-end");
  }

  weightField.input.addEventListener("input", () => {
    const text = weightField.input.value.trim();
    const v = Number(text);
    if (text !== "" && Number.isInteger(v) && v >= 0 && v <= 255) {
      inputError = null;
      setTraits(model, { weight: v });
    } else {
      inputError = `weight must be an integer 0-255, got "${weightField.input.value}"`;
      update();
    }
  });
  rawField.input.addEventListener("change", () => {
    const r = kqParseHex(rawField.input.value);
    if (r.error) {
      inputError = r.error;
      update();
      return;
    }
    inputError = null;
    setTraits(model, { raw: r.raw, block: -1 });
  });
  random.addEventListener("click", () => {
    const raw = Array.from({ length: 144 }, () => Math.floor(Math.random() * 256));
    inputError = null;
    setTraits(model, { raw, block: -1 });
  });
  plot.addEventListener("click", (event) => {
    if (!layout) return;
    const rect = plot.getBoundingClientRect();
    const { pad, cw, ch } = layout;
    const col = Math.floor((event.clientX - rect.left - pad.l) / cw);
    const row = Math.floor((event.clientY - rect.top - pad.t) / ch);
    if (col < 0 || col > 31 || row < 0 || row > 7) return;
    inputError = null;
    setTraits(model, { weight: 32 * row + col });
  });

  return follow(model, root, {
    data: [],
    settings: ["raw", "weight", "block"],
    loadData: () => {},
    update,
  });
}

export default { render };
