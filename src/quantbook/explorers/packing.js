// Packing explorer: int4 values in, bytes out, every bit drawn, for each nibble order.

const GGUF_BLOCK = 32;
const ELEMENT_COLORS = [COLORS.blue, COLORS.orange, COLORS.green, COLORS.purple, COLORS.sky, COLORS.vermillion];

function nibbleBits(v) {
  return (v & 15).toString(2).padStart(4, "0");
}

// Which element sits in the low and the high nibble of each byte (quantbook.packing._split);
// an index >= n is the zero padding of an odd length.
function layout(n, order) {
  const m = n + (n % 2);
  const bytes = [];
  for (let i = 0; i < m / 2; i++) {
    if (order === "low-first") bytes.push([2 * i, 2 * i + 1]);
    else if (order === "high-first") bytes.push([2 * i + 1, 2 * i]);
    else if (order === "planar") bytes.push([i, i + m / 2]);
    else {
      const block = Math.floor(i / (GGUF_BLOCK / 2));
      const j = i % (GGUF_BLOCK / 2);
      bytes.push([block * GGUF_BLOCK + j, block * GGUF_BLOCK + j + GGUF_BLOCK / 2]);
    }
  }
  return bytes;
}

// Mirrors quantbook.packing.pack_int4 / unpack_int4 on one row, errors included.
function pack(values, signed, order) {
  const [lo, hi] = signed ? [-8, 7] : [0, 15];
  const bad = values.findIndex((v) => !Number.isInteger(v) || v < lo || v > hi);
  if (bad >= 0) {
    return { error: `q must be in [${lo}, ${hi}] for ${signed ? "signed" : "unsigned"} int4; got ${values[bad]} at index ${bad}` };
  }
  if (order === "gguf" && values.length % GGUF_BLOCK) {
    return { error: `q must have a last axis that is a multiple of ${GGUF_BLOCK} for order='gguf', got length ${values.length}` };
  }
  const nib = (k) => (k < values.length ? values[k] & 15 : 0);
  const places = layout(values.length, order);
  const bytes = places.map(([l, hgh]) => nib(l) | (nib(hgh) << 4));
  const unpacked = new Array(values.length);
  places.forEach(([l, hgh], i) => {
    for (const [k, nibble] of [[l, bytes[i] & 15], [hgh, bytes[i] >> 4]]) {
      if (k < values.length) unpacked[k] = signed && nibble >= 8 ? nibble - 16 : nibble;
    }
  });
  return { bytes, places, unpacked, error: null };
}

function parseValues(text) {
  const parts = text.split(/[\s,;]+/).filter((t) => t.length);
  const values = parts.map(Number);
  const bad = parts.findIndex((t, i) => !/^[+-]?\d+$/.test(t) || !Number.isInteger(values[i]));
  if (bad >= 0) return { error: `not a whole number: "${parts[bad]}"` };
  if (values.length > 64) return { error: "at most 64 values" };
  return { values };
}

function bitBoxes(bits, color, label) {
  const box = h("span", { class: "qb-nibble", title: label });
  for (const ch of bits) {
    const b = h("span", { class: "qb-bitbox", text: ch });
    b.style.background = ch === "1" ? color : "#fff";
    b.style.color = ch === "1" ? "#fff" : "#000";
    box.append(b);
  }
  return box;
}

function render({ model, el }) {
  const root = h("div", { class: "qb-explorer", "data-explorer": "packing" });
  const title = h("div", { class: "qb-title", text: "Packing int4: two values per byte" });
  const orders = model.get("orders");
  const order = choice("packing-order", "nibble order", orders.map((o) => [o, o]), model.get("order"), "order");
  const signed = choice("packing-signed", "int4", [["true", "signed [-8, 7]"], ["false", "unsigned [0, 15]"]], "true", "signed");
  const text = field("packing-values", "values", { type: "text", name: "values", class: "qb-text", inputmode: "text" });
  const message = h("p", { class: "qb-error", role: "alert" });
  const controls = h("div", { class: "qb-controls" }, order.wrap, signed.wrap, text.wrap);
  const valuesBox = h("div", { class: "qb-nibbles", "aria-label": "values and their nibbles" });
  const bytesBox = h("div", { class: "qb-nibbles", "aria-label": "bytes, high nibble first" });
  const summary = h("p", { class: "qb-stats", "aria-live": "polite" });
  root.append(
    title,
    controls,
    message,
    h("div", { class: "qb-legend", text: "Values (element index: value, its 4-bit pattern)" }),
    valuesBox,
    h("div", { class: "qb-legend", text: "Bytes (bits 7…4 = high nibble | bits 3…0 = low nibble; the element in each nibble below)" }),
    bytesBox,
    summary,
  );
  el.append(root);
  let inputError = null;

  function update() {
    const values = model.get("values");
    const o = model.get("order");
    const sg = model.get("signed");
    order.select.value = o;
    signed.select.value = String(sg);
    if (document.activeElement !== text.input) text.input.value = values.join(", ");
    const color = (k) => ELEMENT_COLORS[k % ELEMENT_COLORS.length];
    valuesBox.replaceChildren(
      ...values.map((v, k) =>
        h("span", { class: "qb-cell" }, h("span", { text: `#${k}: ${v}` }), bitBoxes(nibbleBits(v), color(k), `element ${k}`)),
      ),
    );
    const result = pack(values, sg, o);
    const state = { values, order: o, signed: sg, n: values.length };
    if (result.error) {
      bytesBox.replaceChildren();
      summary.textContent = "";
      Object.assign(state, { bytes: null, bits: null, unpacked: null, error: result.error });
    } else {
      const bitsText = result.bytes.map((b) => `${nibbleBits(b >> 4)} ${nibbleBits(b)}`);
      bytesBox.replaceChildren(
        ...result.bytes.map((b, i) => {
          const [l, hgh] = result.places[i];
          const name = (k) => (k < values.length ? `#${k}` : "pad");
          const col = (k) => (k < values.length ? color(k) : COLORS.grey);
          return h(
            "span",
            { class: "qb-byte" },
            h("span", { class: "qb-bits" }, bitBoxes(nibbleBits(b >> 4), col(hgh), `high nibble: ${name(hgh)}`), " ",
              bitBoxes(nibbleBits(b), col(l), `low nibble: ${name(l)}`)),
            h("span", { text: `byte ${i} = ${b} (0x${b.toString(16).padStart(2, "0")}): ${name(hgh)} | ${name(l)}` }),
          );
        }),
      );
      summary.textContent = `${values.length} values → ${result.bytes.length} bytes; unpacked back: [${result.unpacked.join(", ")}]`;
      Object.assign(state, {
        nibbles: values.map(nibbleBits),
        bytes: result.bytes,
        bits: bitsText,
        unpacked: result.unpacked,
        error: null,
      });
    }
    message.textContent = inputError || result.error || "";
    state.input_error = inputError;
    root.dataset.state = JSON.stringify(state);
    performance.mark("qb-redraw-end");
  }

  const set = (values) => setTraits(model, values);
  order.select.addEventListener("change", () => set({ order: order.select.value }));
  // Same bits, other reading: a value out of range for the new type keeps its nibble.
  signed.select.addEventListener("change", () => {
    const sg = signed.select.value === "true";
    const values = model.get("values").map((v) => {
      const nibble = v & 15;
      return sg && nibble >= 8 ? nibble - 16 : nibble;
    });
    inputError = null;
    set({ values, signed: sg });
  });
  text.input.addEventListener("change", () => {
    const parsed = parseValues(text.input.value);
    const sg = model.get("signed");
    const [lo, hi] = sg ? [-8, 7] : [0, 15];
    if (parsed.error) inputError = parsed.error;
    else if (parsed.values.some((v) => v < lo || v > hi)) {
      inputError = `values must be in [${lo}, ${hi}] for ${sg ? "signed" : "unsigned"} int4 (never wrapped)`;
    } else {
      inputError = null;
      set({ values: parsed.values });
      return;
    }
    update();
  });

  return follow(model, root, { data: [], settings: ["values", "order", "signed"], loadData: () => {}, update });
}

export default { render };
