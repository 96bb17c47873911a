// Float bits explorer: type a number, see its bits in float32, float16, bfloat16, e4m3fn, e5m2.
//
// The typed number is read as a double, rounded to float32 (Math.fround), and every narrower
// format rounds that float32 value to nearest, ties to even, subnormals included: the same as
// NumPy's and ml_dtypes' casts (quantbook's FloatBitsExplorer.state computes them there).

// name: [exponent bits, mantissa bits, has infinities]
const FLOAT_FORMATS = [
  ["float32", 8, 23, true],
  ["float16", 5, 10, true],
  ["bfloat16", 8, 7, true],
  ["float8_e4m3fn", 4, 3, false],
  ["float8_e5m2", 5, 2, true],
];
const FIELD_COLORS = { sign: COLORS.vermillion, exponent: COLORS.sky, mantissa: COLORS.yellow };
const FIELD_TEXT = { sign: "#fff", exponent: "#000", mantissa: "#000" };
const NUMBER_RE = /^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\s*$/i;
const PRESETS = ["0.1", "1", "-0", "1e-7", "65504", "448", "464", "465", "57344", "1e39", "inf", "nan"];

// The typed text as a double (the Python side uses float() with the same rule), or null.
function parseNumber(text) {
  if (!NUMBER_RE.test(text)) return null;
  const t = text.trim().toLowerCase().replace(/^\+/, "");
  if (/nan$/.test(t)) return NaN;
  if (/inf(inity)?$/.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
  return Number(t);
}

const SPECS = FLOAT_FORMATS.map(([name, e, m, hasInf]) => floatFormat(name, e, m, hasInf ? "ieee" : "fn"));

// float32 bits straight from a typed array (NaN is 0x7fc00000).
const bits32 = new DataView(new ArrayBuffer(4));
function float32Pattern(v) {
  bits32.setFloat32(0, v);
  return bits32.getUint32(0);
}

function jsonNumber(v) {
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return v;
}

// Everything the explorer shows, as FloatBitsExplorer.state() computes it in Python.
function floatBitsState(text, overflow) {
  const x = parseNumber(text);
  const x32 = f32(x);
  const formats = SPECS.map((f) => {
    let v = x32;
    if (overflow === "saturate" && !Number.isNaN(x)) v = clamp(x32, -f.max, f.max);
    const pattern = f.name === "float32" ? float32Pattern(v) : floatEncode(v, f);
    const plain = f.name === "float32" ? x32 : floatDecode(floatEncode(x32, f), f);
    const word = pattern.toString(2).padStart(f.bits, "0");
    const value = floatDecode(pattern, f);
    const E = parseInt(word.slice(1, 1 + f.e), 2);
    const M = parseInt(word.slice(1 + f.e), 2);
    let kind = "normal";
    if (Number.isNaN(value)) kind = "nan";
    else if (!Number.isFinite(value)) kind = "inf";
    else if (E === 0) kind = M === 0 ? "zero" : "subnormal";
    const error = Number.isFinite(value) && Number.isFinite(x) ? value - x : null;
    return {
      name: f.name,
      bits: f.bits,
      exponent_bits: f.e,
      mantissa_bits: f.m,
      bias: f.bias,
      max: f.max,
      has_inf: f.hasInf,
      pattern,
      sign: word[0],
      exponent: word.slice(1, 1 + f.e),
      mantissa: word.slice(1 + f.e),
      E,
      M,
      value: jsonNumber(value),
      kind,
      error,
      rel_error: error !== null && x !== 0 ? Math.abs(error) / Math.abs(x) : null,
      overflow: Number.isFinite(x) && !Number.isFinite(plain),
    };
  });
  return { text, x: jsonNumber(x), overflow, formats };
}

function fieldBoxes(bits, field) {
  const box = h("span", { class: "qb-field", title: field });
  for (const ch of bits) {
    const b = h("span", { class: "qb-bitbox", text: ch });
    b.style.background = FIELD_COLORS[field];
    b.style.color = FIELD_TEXT[field];
    box.append(b);
  }
  return box;
}

function shown(v) {
  if (typeof v === "string") return { nan: "NaN", inf: "+∞", "-inf": "−∞" }[v];
  if (Object.is(v, -0)) return "−0";
  return Number(v.toPrecision(10)).toString();
}

function meaning(f) {
  if (f.kind === "nan") return f.has_inf ? "NaN (exponent all ones, mantissa ≠ 0)" : "NaN (S.1111.111: e4m3fn has no ∞)";
  if (f.kind === "inf") return "∞ (exponent all ones, mantissa 0)";
  if (f.kind === "zero") return "zero (E = 0, M = 0)";
  const s = f.sign === "1" ? "−" : "";
  if (f.kind === "subnormal") return `subnormal: ${s}2^${1 - f.bias} · ${f.M}/2^${f.mantissa_bits}`;
  return `${s}2^(${f.E}−${f.bias}) · (1 + ${f.M}/2^${f.mantissa_bits})`;
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "floatbits" });
  const title = h("div", { class: "qb-title", text: "A number in five float formats" });
  const text = field("floatbits-x", "x =", { type: "text", name: "text", class: "qb-number", inputmode: "decimal", spellcheck: "false" });
  const overflow = choice(
    "floatbits-overflow",
    "overflow",
    [
      ["ieee", "IEEE, as ml_dtypes: ±∞ (NaN in e4m3fn)"],
      ["saturate", "saturate to ±max (torch's e4m3fn cast)"],
    ],
    model.get("overflow"),
    "overflow",
  );
  const presets = h("div", { class: "qb-controls", "aria-label": "example numbers" });
  for (const p of PRESETS) {
    const b = h("button", { type: "button", class: "qb-button", "data-control": `preset-${p}`, text: p });
    b.addEventListener("click", () => setTraits(model, { text: p }));
    presets.append(b);
  }
  const message = h("p", { class: "qb-error", role: "alert" });
  const note = h("p", { class: "qb-legend" });
  const tableBox = h("div", { class: "qb-table-box" });
  root.append(title, h("div", { class: "qb-controls" }, text.wrap, overflow.wrap), presets, message, note, tableBox);
  el.append(root);
  let inputError = null;

  function update() {
    const t = model.get("text");
    const ov = model.get("overflow");
    if (document.activeElement !== text.input) text.input.value = t;
    overflow.select.value = ov;
    const st = floatBitsState(t, ov);
    const x = parseNumber(t);
    const x32 = f32(x);
    note.textContent =
      `x = ${shown(jsonNumber(x))} is stored as float32 first (${shown(jsonNumber(x32))}); ` +
      "each narrower format rounds that float32 to its nearest value, ties to even. " +
      "Sign in vermillion, exponent in blue, mantissa in yellow.";
    const rows = st.formats.map((f) => {
      const label = f.overflow ? (ov === "saturate" ? " (saturated)" : " (overflow)") : "";
      return h(
        "tr",
        {},
        h("th", { scope: "row", class: "qb-format" }, h("div", { text: f.name }), h("div", { class: "qb-legend", text: meaning(f) + label })),
        h(
          "td",
          { class: "qb-bits" },
          fieldBoxes(f.sign, "sign"),
          " ",
          fieldBoxes(f.exponent, "exponent"),
          " ",
          fieldBoxes(f.mantissa, "mantissa"),
          h("div", { class: "qb-legend", text: `0x${f.pattern.toString(16).padStart(f.bits / 4, "0")}` }),
        ),
        h("td", { text: shown(f.value) }),
        h("td", { text: f.error === null ? "—" : fmt(f.error, 3) }),
        h("td", { text: f.rel_error === null ? "—" : fmt(f.rel_error, 3) }),
      );
    });
    const head = ["format (what the bits mean)", "sign · exponent · mantissa (hex)", "stored value", "error", "relative error"];
    tableBox.replaceChildren(
      h(
        "table",
        { class: "qb-table qb-floatbits" },
        h("caption", { text: "The stored bits and the value they mean (error = stored − typed)" }),
        h("thead", {}, h("tr", {}, ...head.map((c) => h("th", { text: c })))),
        h("tbody", {}, ...rows),
      ),
    );
    message.textContent = inputError || "";
    root.dataset.state = JSON.stringify({ ...st, input_error: inputError });
    performance.mark("qb-redraw-end");
  }

  text.input.addEventListener("change", () => {
    const t = text.input.value;
    if (parseNumber(t) === null) {
      inputError = `not a number: "${t}" (try 0.1, -3e-5, inf or nan)`;
      update();
      return;
    }
    inputError = null;
    if (t === model.get("text")) update();
    else setTraits(model, { text: t });
  });
  overflow.select.addEventListener("change", () => setTraits(model, { overflow: overflow.select.value }));

  return follow(model, root, { data: [], settings: ["text", "overflow"], loadData: () => {}, update });
}

export default { render };
