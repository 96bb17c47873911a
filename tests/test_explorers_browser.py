"""The explorers on the built website agree with quantbook, setting by setting.

Every built page whose saved widget state holds a quantbook explorer is opened in headless
Chromium (fixtures in conftest.py). Each explorer on it is driven with the keyboard and its form
controls through many settings; after every move the explorer's ``data-state`` (what it shows)
is compared with quantbook computed here in Python for the same settings.

Tolerances, and why:
- integers (codes, bytes, bit strings, Hamming distances, counts): exactly equal;
- dequantized values, scales, clip limits: exactly equal as float32 numbers (the browser rounds
  to float32 with Math.fround wherever quantbook computes in float32);
- MSE, SQNR, cosine: relative 1e-9, since they are float64 sums whose order differs (NumPy sums
  pairwise, the browser from left to right); max |error| exactly.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from quantbook import affine, embeddings, granularity, metrics, packing, symmetric
from quantbook.explorers.floatbits import float_bits_state
from quantbook.explorers.kquant import kquant_state, scale_min_pieces
from quantbook.explorers.microscaling import microscaling_state
from quantbook.explorers.smoothquant import smoothquant_state, unpack, w8a8_smoothed

pytestmark = pytest.mark.browser

# The built book by default; QUANTBOOK_SITE_DIR points these tests at another built site (for
# instance a small book with one page of explorers, quicker to build while working on them).
SITE_DIR = Path(os.environ.get("QUANTBOOK_SITE_DIR")
                or Path(__file__).resolve().parents[1] / "_build" / "html")


@pytest.fixture(scope="session")
def site_dir():
    if not (SITE_DIR / "index.html").is_file():
        pytest.fail(f"The website is not built: {SITE_DIR / 'index.html'} is missing (make book).")
    return SITE_DIR

SUM_TOL = 1e-9


def pages_with_explorers(site_dir) -> list[str]:
    """Built pages (paths relative to the site) whose saved widget state holds an explorer
    (anywidget saves each widget's class name, ``quantbook.explorers.<module>.<Class>``)."""
    found = []
    for page in sorted(site_dir.rglob("*.html")) if site_dir.is_dir() else []:
        if "_static" in page.parts or page.name in ("genindex.html", "search.html"):
            continue
        html = page.read_text(encoding="utf-8", errors="replace")
        # Saved widget state, not prose: the package reference names the classes too.
        if "application/vnd.jupyter.widget-state+json" in html and "quantbook.explorers." in html:
            found.append(page.relative_to(site_dir).as_posix())
    return found


def saved_explorer_views(html: str) -> list[str]:
    """Model ids of the saved widget views on a page that are explorers (a cold build also
    saves other widgets, such as a progress bar, which have no fallback of their own)."""
    state = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>',
                      html, re.S)
    models = json.loads(state.group(1))["state"] if state else {}
    explorers = {mid for mid, m in models.items()
                 if str(m.get("state", {}).get("_anywidget_id", "")).startswith(
                     "quantbook.explorers.")}
    views = re.findall(r'<script type="application/vnd.jupyter.widget-view\+json">(.*?)</script>',
                       html, re.S)
    return [v for v in (json.loads(text)["model_id"] for text in views) if v in explorers]


def f32(values) -> list[float]:
    """float32 values as Python floats, to compare with JSON numbers exactly."""
    return np.asarray(values, dtype=np.float32).astype(np.float64).tolist()


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=SUM_TOL, abs_tol=1e-300)


def finite(v):
    return v if math.isfinite(v) else None


class Explorer:
    """One explorer on the page: its controls and its state."""

    def __init__(self, page, root):
        self.page = page
        self.root = root
        self.seen = set()
        self.focused = None

    def state(self) -> dict:
        return json.loads(self.root.get_attribute("data-state"))

    def sample(self) -> dict:
        return json.loads(self.root.get_attribute("data-sample"))

    def control(self, name):
        return self.root.locator(f'[data-control="{name}"]')

    def press(self, name, key, times=1):
        """Real key presses on a focused control (the keyboard user's way to move it)."""
        if self.focused != name:
            self.control(name).focus()
            self.focused = name
        for _ in range(times):
            self.page.keyboard.press(key)

    def select(self, name, value):
        self.control(name).select_option(str(value))
        self.focused = None

    def type(self, name, text):
        c = self.control(name)
        c.fill(text)
        c.press("Enter")  # fires "change"
        self.focused = name

    def remember(self, state, *keys):
        self.seen.add(tuple(json.dumps(state[k]) for k in keys))


# --- affine -----------------------------------------------------------------------------------


def check_affine(ex: Explorer, data: np.ndarray):
    st = ex.state()
    s, z, bits, signed = st["scale"], st["zero_point"], st["bits"], st["signed"]
    assert (st["qmin"], st["qmax"]) == affine.qrange(bits, signed)
    x = np.asarray(st["x"], dtype=np.float32)
    q = affine.quantize(x, s, z, bits, signed)
    assert st["q"] == q.astype(int).tolist(), st
    assert st["x_hat"] == f32(affine.dequantize(q, s, z)), st
    x_hat = affine.dequantize(affine.quantize(data, s, z, bits, signed), s, z)
    assert close(st["mse"], metrics.mse(data, x_hat))
    assert st["max_error"] == metrics.max_abs_error(data, x_hat)
    assert close(st["sqnr_db"], finite(metrics.sqnr_db(data, x_hat)))
    lo, hi = affine.representable_range(s, z, bits, signed)
    assert st["range"] == [lo, hi]
    half = float(np.float32(s)) / 2
    d64 = data.astype(np.float64)
    assert st["clipped"] == int(((d64 < lo - half) | (d64 > hi + half)).sum())
    ex.remember(st, "scale", "zero_point", "bits", "signed")
    return st


def drive_affine(ex: Explorer):
    data = np.asarray(ex.sample()["data"], dtype=np.float32)
    fit = lambda bits, signed: affine.qparams(  # noqa: E731
        float(data.min()), float(data.max()), bits, signed)
    check_affine(ex, data)
    for key, times in [("ArrowRight", 3), ("ArrowLeft", 7), ("PageUp", 1), ("End", 1),
                       ("Home", 1), ("ArrowRight", 2)]:
        for _ in range(times):
            ex.press("scale", key)
            check_affine(ex, data)
    for key, times in [("ArrowRight", 4), ("ArrowLeft", 9), ("PageDown", 1),
                       ("Home", 1), ("End", 1)]:
        for _ in range(times):
            ex.press("zero_point", key)
            check_affine(ex, data)
    ex.press("bits", "End")
    for _ in range(6):  # 8 bits down to 2, each refits S and Z to min/max
        ex.press("bits", "ArrowLeft")
        st = check_affine(ex, data)
        assert (st["scale"], st["zero_point"]) == fit(st["bits"], st["signed"])
    assert st["bits"] == 2
    for signed in (False, True, False):
        ex.select("signed", str(signed).lower())
        st = check_affine(ex, data)
        assert st["signed"] is signed
        assert (st["scale"], st["zero_point"]) == fit(st["bits"], signed)
    ex.press("bits", "End")
    ex.press("zero_point", "ArrowRight", 5)
    check_affine(ex, data)
    # Typed scales, among them exact ties: S = 2x for a shown x > 0 puts x / S exactly on 0.5,
    # which rounds to 0 (half to even), where JavaScript's Math.round would give 1.
    x = np.asarray(ex.state()["x"], dtype=np.float32)
    ties = [float(2 * v) for v in x if v > 0][-3:]
    assert ties, "the affine explorer shows no positive point to put on a tie"
    for scale in [0.01, 0.003, 1e-5, 7.25, *ties]:
        ex.type("scale-value", repr(scale))
        st = check_affine(ex, data)
        assert st["scale"] == scale
        if scale in ties:
            k = st["x"].index(scale / 2)
            assert st["q"][k] == st["zero_point"], "0.5 must round to 0, half to even"
    ex.control("fit").click()
    st = check_affine(ex, data)
    assert (st["scale"], st["zero_point"]) == fit(st["bits"], st["signed"])
    assert len(ex.seen) >= 20


# --- bit width --------------------------------------------------------------------------------


def scheme_round_trip(values, bits, scheme):
    if scheme == "symmetric":
        q, s = symmetric.quantize(values, bits)
        return q, symmetric.dequantize(q, s), s, 0
    q, s, z = affine.quantize_minmax(values, bits)
    return q, affine.dequantize(q, s, z), s, z


def check_bitwidth(ex: Explorer, data: np.ndarray):
    st = ex.state()
    bits, scheme = st["bits"], st["scheme"]
    _, x_hat, s, z = scheme_round_trip(data, bits, scheme)
    assert (st["scale"], st["zero_point"]) == (s, z), st
    # The shown points are data values within [min, max] of the sample, so quantizing them
    # with the sample keeps S and Z: quantbook's codes for them, with the data's parameters.
    x = np.asarray(st["x"], dtype=np.float32)
    q_all, x_hat_all, s_all, z_all = scheme_round_trip(np.concatenate([data, x]), bits, scheme)
    assert (s_all, z_all) == (s, z)
    assert st["q"] == q_all[data.size:].astype(int).tolist(), st
    assert st["x_hat"] == f32(x_hat_all[data.size:])
    assert close(st["mse"], metrics.mse(data, x_hat))
    assert st["max_error"] == metrics.max_abs_error(data, x_hat)
    assert close(st["sqnr_db"], finite(metrics.sqnr_db(data, x_hat)))
    ex.remember(st, "bits", "scheme")
    return st


def drive_bitwidth(ex: Explorer):
    data = np.asarray(ex.sample()["data"], dtype=np.float32)
    st = check_bitwidth(ex, data)
    for scheme in ("symmetric", "affine"):
        curve = [finite(metrics.sqnr_db(data, scheme_round_trip(data, b, scheme)[1]))
                 for b in range(2, 9)]
        assert all(close(a, b) for a, b in zip(st["curve"][scheme], curve, strict=True))
    for scheme in ("affine", "symmetric", "affine"):
        ex.select("scheme", scheme)
        check_bitwidth(ex, data)
        ex.press("bits", "Home")
        check_bitwidth(ex, data)
        for _ in range(6):
            ex.press("bits", "ArrowRight")
            check_bitwidth(ex, data)
        for _ in range(3):
            ex.press("bits", "ArrowLeft")
            check_bitwidth(ex, data)
    assert len(ex.seen) == 14  # 7 bit widths x 2 schemes


# --- granularity ------------------------------------------------------------------------------


def check_granularity(ex: Explorer, w0: np.ndarray):
    st = ex.state()
    kind, g, out, bits = st["granularity"], st["group_size"], st["outlier"], st["bits"]
    w = w0.copy()
    r = w.shape[0] // 2
    if out > 0:
        w[r, 0] = np.float32(out) * np.abs(w0).max()
    axis = 0 if kind == "per-channel" else None
    group = g if kind == "per-group" else None
    q, scale = symmetric.quantize(w, bits, axis=axis, group_size=group)
    x_hat = granularity.fake_quantize(w, bits, kind, group_size=g, axis=0)
    assert st["scales"] == f32(np.ravel(scale))
    assert st["x"] == f32(w[r, :8]) and st["outlier_row"] == r
    assert st["q"] == np.asarray(q)[r, :8].astype(int).tolist(), st
    assert st["x_hat"] == f32(x_hat[r, :8])
    rows = [metrics.mse(w[i], x_hat[i]) for i in range(w.shape[0])]
    assert all(close(a, b) for a, b in zip(st["row_mse"], rows, strict=True))
    assert close(st["mse"], metrics.mse(w, x_hat))
    assert st["max_error"] == metrics.max_abs_error(w, x_hat)
    per_scale = {"per-tensor": w.size, "per-channel": w.shape[1]}.get(kind, g)
    assert st["bits_per_weight"] == granularity.effective_bits(bits, per_scale)
    ex.remember(st, "granularity", "group_size", "outlier", "bits")
    return st


def drive_granularity(ex: Explorer):
    w0 = np.asarray(ex.sample()["w"], dtype=np.float32)
    check_granularity(ex, w0)
    sizes = [int(o) for o in ex.control("group_size").locator("option").evaluate_all(
        "os => os.map(o => o.value)")]
    for kind in ("per-tensor", "per-channel", "per-group"):
        ex.select("granularity", kind)
        check_granularity(ex, w0)
        ex.press("outlier", "Home")
        check_granularity(ex, w0)
        for _ in range(3):
            ex.press("outlier", "ArrowRight")
            check_granularity(ex, w0)
        ex.press("outlier", "PageUp")
        check_granularity(ex, w0)
        ex.press("bits", "ArrowRight")
        check_granularity(ex, w0)
        ex.press("bits", "Home")
        check_granularity(ex, w0)
    for g in sizes:
        ex.select("group_size", g)
        st = check_granularity(ex, w0)
        assert st["group_size"] == g
    # Per group (and per channel) the outlier costs its own row only: every other row's error
    # is exactly what it was without it, while its row's error grows.
    ex.select("group_size", sizes[0])
    ex.press("outlier", "End")
    with_outlier = check_granularity(ex, w0)
    ex.press("outlier", "Home")
    without = check_granularity(ex, w0)
    r = with_outlier["outlier_row"]
    assert with_outlier["row_mse"][r] > without["row_mse"][r]
    assert [v for i, v in enumerate(with_outlier["row_mse"]) if i != r] == \
        [v for i, v in enumerate(without["row_mse"]) if i != r]
    assert len(ex.seen) >= 20


# --- packing ----------------------------------------------------------------------------------


def check_packing(ex: Explorer):
    st = ex.state()
    values, order, signed = st["values"], st["order"], st["signed"]
    q = np.asarray(values, dtype=np.int16)
    try:
        packed = packing.pack_int4(q, signed, order)
    except ValueError:
        assert st["error"] and st["bytes"] is None, st
        ex.remember(st, "values", "order", "signed")
        return st
    assert st["error"] is None, st
    assert st["bytes"] == packed.astype(int).tolist(), st
    assert st["bits"] == np.asarray(packing.byte_bits(packed)).tolist()
    assert st["unpacked"] == packing.unpack_int4(packed, len(values), signed, order).tolist()
    ex.remember(st, "values", "order", "signed")
    return st


def drive_packing(ex: Explorer):
    rng = np.random.default_rng(11)
    orders = ex.control("order").locator("option").evaluate_all(
        "os => os.map(o => o.value)")
    assert tuple(orders) == packing.ORDERS
    check_packing(ex)
    for order in packing.ORDERS:
        ex.select("order", order)
        for n in (1, 7, 32):
            ex.select("signed", "true")
            values = rng.integers(-8, 8, n).tolist()
            ex.type("values", ", ".join(map(str, values)))
            st = check_packing(ex)
            assert st["values"] == values
            ex.select("signed", "false")  # same bits, read unsigned
            st2 = check_packing(ex)
            assert st2["values"] == [v & 15 for v in values]
            assert st2["bytes"] == st["bytes"]
    # bad input is refused, never wrapped: the values stay as they were
    ex.select("order", "low-first")
    ex.select("signed", "true")
    before = ex.state()["values"]
    for text in ("1, 9", "3, x", "2.5"):
        ex.type("values", text)
        st = check_packing(ex)
        assert st["values"] == before and st["input_error"], text
    assert len(ex.seen) >= 20


# --- embeddings -------------------------------------------------------------------------------


def check_embedding(ex: Explorer, a: np.ndarray, b: np.ndarray):
    st = ex.state()
    mix, dims = st["mix"], st["dims"]
    bt = (np.float32(1 - mix) * b + np.float32(mix) * a)[:dims]
    codes = embeddings.quantize_embeddings(np.stack([a[:dims], bt]), "ubinary")
    signs = embeddings.dequantize_embeddings(codes, "ubinary", dim=dims) > 0
    assert st["bits_a"] == "".join("1" if s else "0" for s in signs[0])
    assert st["bits_b"] == "".join("1" if s else "0" for s in signs[1])
    assert st["hamming"] == int(embeddings.hamming_distance(codes[0], codes[1]))
    a64, b64 = a[:dims].astype(np.float64), bt.astype(np.float64)
    assert close(st["cosine"], float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64))))
    assert close(st["cosine_from_hamming"], math.cos(math.pi * st["hamming"] / dims))
    ex.remember(st, "mix", "dims")
    return st


def drive_embedding(ex: Explorer):
    sample = ex.sample()
    a = np.asarray(sample["a"], dtype=np.float32)
    b = np.asarray(sample["b"], dtype=np.float32)
    hamming = [check_embedding(ex, a, b)["hamming"]]
    for _ in range(12):
        ex.press("mix", "ArrowRight")
        hamming.append(check_embedding(ex, a, b)["hamming"])
    ex.press("mix", "End")
    st = check_embedding(ex, a, b)
    assert st["hamming"] == 0 and close(st["cosine"], 1.0)
    ex.press("mix", "Home")
    for _ in range(6):
        ex.press("dims", "ArrowLeft")
        check_embedding(ex, a, b)
    ex.press("dims", "Home")
    check_embedding(ex, a, b)
    ex.press("mix", "ArrowRight", 8)
    check_embedding(ex, a, b)
    assert hamming[-1] <= hamming[0]  # turning b toward a flips bits back
    assert len(ex.seen) >= 20


# --- float bits -------------------------------------------------------------------------------


def as_json(state) -> dict:
    """A state through JSON, every number a float (JSON integers above 2^53 stay exact)."""
    return json.loads(json.dumps(state), parse_int=float)


def check_floatbits(ex: Explorer):
    st = json.loads(ex.root.get_attribute("data-state"), parse_int=float)
    st.pop("input_error")
    assert st == as_json(float_bits_state(st["text"], st["overflow"])), st["text"]
    ex.remember(st, "text", "overflow")
    return st


def floatbits_inputs() -> list[str]:
    """Typed numbers: ties of every narrow format, subnormals, overflow, signed zeros, specials."""
    import ml_dtypes

    texts = ["0.1", "-0", "0", "1e-7", "65504", "65520", "65519.99", "448", "464", "464.0001",
             "-465", "57344", "61440", "61439", "1e39", "-1e39", "3.4028235e38", "3.4028236e38",
             "1e-45", "7e-46", "-1e-46", "1e-40", "inf", "-Infinity", "NaN", "+2.5", ".5",
             "1.00390625", "1.0078125", "2.98023223876953125e-08", "-9.183549615799121e-41"]
    rng = np.random.default_rng(12)
    for dtype in (np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2):
        bits = np.dtype(dtype).itemsize * 8
        patterns = np.arange(2**bits, dtype=np.uint16 if bits == 16 else np.uint8)
        with np.errstate(invalid="ignore"):
            vals = patterns.view(dtype).astype(np.float64)
        vals = np.unique(vals[np.isfinite(vals)])
        ties = (vals[1:] + vals[:-1]) / 2  # exactly halfway: round half to even decides
        for t in rng.choice(ties, 8, replace=False):
            texts.append(repr(float(np.float32(t))))
        positive = vals[vals > 0]
        texts += [repr(float(positive[0])), repr(float(positive[0] / 2))]  # subnormal, its tie
    texts += [repr(float(v)) for v in rng.standard_normal(10) * 10.0 ** rng.integers(-40, 38, 10)]
    return texts


def drive_floatbits(ex: Explorer):
    check_floatbits(ex)
    for overflow in ("ieee", "saturate"):
        ex.select("overflow", overflow)
        for text in floatbits_inputs():
            ex.type("text", text)
            st = check_floatbits(ex)
            assert st["text"] == text and st["overflow"] == overflow
    for preset in ("465", "-0", "nan"):
        ex.control(f"preset-{preset}").click()
        assert check_floatbits(ex)["text"] == preset
    ex.select("overflow", "ieee")
    ex.type("text", "465")
    row = check_floatbits(ex)["formats"][3]
    assert row["name"] == "float8_e4m3fn" and row["kind"] == "nan" and row["overflow"] is True
    for bad in ("abc", "1,5", "0x10"):
        ex.type("text", bad)
        st = json.loads(ex.root.get_attribute("data-state"))
        assert st["text"] == "465" and st["input_error"], bad
    assert len(ex.seen) >= 100


# --- microscaling ---------------------------------------------------------------------------


def check_microscaling(ex: Explorer):
    st = json.loads(ex.root.get_attribute("data-state"), parse_int=float)
    st.pop("input_error")
    st.pop("block")
    py = as_json(microscaling_state(st["values"], st["format"], st["tensor_amax"]))
    assert st["values"] == f32(st["values"])  # what the browser holds is float32
    for key in ("mse", "sqnr_db"):
        assert close(st.pop(key), py.pop(key)), key
    assert st == py, (st["format"], st["values"])
    ex.remember(st, "format", "values", "tensor_amax")
    return st


def microscaling_blocks() -> list[list[float]]:
    """Blocks of 32: E2M1 ties at several scales, zeros, subnormals, huge values, an outlier."""
    rng = np.random.default_rng(13)
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, 0.5, 6.0, 0.0])
    blocks = [np.zeros(32), np.r_[np.zeros(31), -1e-3]]
    for k in range(8):
        scale = 2.0 ** int(rng.integers(-12, 12))
        v = rng.choice(np.r_[ties, -ties], 32) * scale
        v[k] = 4 * scale * (-1) ** k  # amax 4 X: x / X lands exactly on the ties
        blocks.append(v)
    blocks += [rng.standard_normal(32) * 1e-40, rng.standard_normal(32) * 1e37,
               np.r_[rng.standard_normal(31) * 0.02, 0.9]]
    return [f32(b) for b in blocks]


def drive_microscaling(ex: Explorer):
    check_microscaling(ex)
    n_pool = ex.control("block").locator("option").count() - 1
    assert n_pool >= 4, "the explorer draws its blocks from a tensor of weights"
    for fmt in ("mxfp4", "nvfp4"):
        ex.select("format", fmt)
        for b in range(n_pool):
            ex.select("block", b)
            check_microscaling(ex)
        for values in microscaling_blocks():
            ex.type("values", ", ".join(repr(v) for v in values))
            st = check_microscaling(ex)
            assert st["values"] == values
    # NVFP4's tensor scale from a typed amax (0, and one so small that amax / 2688 underflows
    # float32, fall back to a tensor scale of 1)
    for amax in ("0.5", "2", "0", "1e-42", "1e30"):
        ex.type("tensor_amax", amax)
        st = check_microscaling(ex)
        assert st["tensor_amax"] == f32([float(amax)])[0]
    # drag three columns of the figure up or down
    plot = ex.root.locator("canvas")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    for fx, fy in ((0.1, 0.2), (0.5, 0.8), (0.93, 0.4)):
        before = ex.state()["values"]
        x = box["x"] + fx * box["width"]
        ex.page.mouse.move(x, box["y"] + 0.5 * box["height"])
        ex.page.mouse.down()
        ex.page.mouse.move(x, box["y"] + fy * box["height"], steps=4)
        ex.page.mouse.up()
        st = check_microscaling(ex)
        assert sum(a != b for a, b in zip(st["values"], before, strict=True)) == 1
    ex.select("format", "mxfp4")
    check_microscaling(ex)
    before = ex.state()["values"]
    for bad in ("1, 2, 3", "abc", ", ".join(["1e39"] * 32)):
        ex.type("values", bad)
        st = json.loads(ex.root.get_attribute("data-state"))
        assert st["values"] == before and st["input_error"], bad
    assert len(ex.seen) >= 40


# --- K-quant super-block ----------------------------------------------------------------------


def check_kquant(ex: Explorer):
    st = json.loads(ex.root.get_attribute("data-state"), parse_int=float)
    st.pop("input_error")
    st.pop("block")
    raw = [int(b) for b in st["raw"]]
    py = as_json(kquant_state(raw, int(st["weight"])))
    assert st == py, (raw, st["weight"])
    ex.remember(st, "raw", "weight")
    return st


def kquant_byte_targets(byte: int, weight: int) -> list[int]:
    """The weights a click on ``byte`` cycles through: a nibble byte's two weights; a scale byte's
    sub-blocks (at the same position l); none for d and dmin."""
    k = weight % 32
    if byte >= 16:
        c, m = divmod(byte - 16, 32)
        return [64 * c + m, 64 * c + 32 + m]
    return [32 * j + k for j in range(8)
            if any(p["byte"] == byte for p in sum(scale_min_pieces(j), []))]


def kquant_blocks() -> list[list[int]]:
    """Random bytes (fp16 inf, NaN and subnormal d and dmin among them), zeros and all ones."""
    rng = np.random.default_rng(14)
    blocks = [rng.integers(0, 256, 144) for _ in range(3)]
    for d, dmin in ((0x7C00, 0x3C00), (0x7E01, 0xFC00), (0x0001, 0x83FF)):
        b = rng.integers(0, 256, 144)
        b[0:4] = np.array([d, dmin], "<u2").view(np.uint8)
        blocks.append(b)
    blocks += [np.zeros(144, int), np.full(144, 255)]
    return [[int(v) for v in b] for b in blocks]


# every sub-block, both ends of each, and more of the split sub-blocks 4-7
KQUANT_WEIGHTS = (0, 31, 40, 63, 64, 95, 100, 127, 128, 141, 159, 160, 175, 191, 192, 200, 223,
                  224, 239, 255)


def drive_kquant(ex: Explorer):
    check_kquant(ex)
    n_pool = ex.control("block").locator("option").count() - 1 if ex.control(
        "block").count() else 0
    for b in range(n_pool):
        ex.select("block", b)
        for w in KQUANT_WEIGHTS[b % 2::2]:
            ex.type("weight", str(w))
            assert check_kquant(ex)["weight"] == w
    for raw in kquant_blocks():
        ex.type("raw", " ".join(f"{v:02x}" for v in raw))
        for w in KQUANT_WEIGHTS:
            ex.type("weight", str(w))
            st = check_kquant(ex)
            assert st["raw"] == raw and st["weight"] == w
    # click weights in the map: a cell in every sub-block
    plot = ex.root.locator("canvas")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    cw, ch = (box["width"] - 20) / 32, (box["height"] - 8) / 8
    for j, k in ((0, 3), (1, 30), (2, 7), (3, 16), (4, 0), (5, 9), (6, 21), (7, 31)):
        plot.click(position={"x": 16 + (k + 0.5) * cw, "y": 4 + (j + 0.5) * ch})
        assert check_kquant(ex)["weight"] == 32 * j + k
    # click bytes: a nibble byte twice (its two weights), the split scale bytes, d
    for byte in (16, 16, 79, 143, 4, 8, 12, 12, 15, 7, 11, 0):
        before = ex.state()["weight"]
        ex.root.locator(f'[data-byte="{byte}"]').click()
        st = check_kquant(ex)
        targets = kquant_byte_targets(byte, before)
        if targets:
            at = targets.index(before) if before in targets else -1
            assert st["weight"] == targets[(at + 1) % len(targets)], (byte, before)
            assert byte in {p["byte"] for p in st["scale"]["pieces"] + st["min"]["pieces"]} | {
                st["code"]["byte"]}
        else:
            assert st["weight"] == before
    for _ in range(3):
        ex.control("random").click()
        for w in (5, 133, 250):
            ex.type("weight", str(w))
            check_kquant(ex)
    before = ex.state()
    for name, bad in (("raw", "00 11"), ("raw", "zz" * 144), ("weight", "256"), ("weight", "-1"),
                      ("weight", "2.5")):
        ex.type(name, bad)
        st = json.loads(ex.root.get_attribute("data-state"))
        assert st["raw"] == before["raw"] and st["weight"] == before["weight"], bad
        assert st["input_error"], bad
    assert len(ex.seen) >= 150


# --- SmoothQuant on a real layer --------------------------------------------------------------
#
# Tolerances of this explorer: its factors s_j are float32 powers. The browser rounds the float64
# Math.pow to float32; NumPy's float32 power (a SIMD routine on some CPUs, libm's powf on others)
# may land one float32 step away. So s is compared to within 4 float32 ulps (relative 5e-7);
# then Python recomputes everything downstream FROM THE PAGE'S s, which must agree exactly
# (channel maxima, scales, clamped codes, shown outputs) or to 1e-9 (MSE, SQNR, max |error|:
# float64 sums in another order). The SQNR curve, whose factors the page does not list, is
# compared with Python's own to 1e-4 relative (an ulp of s can move a code by one step).

SQ_ULP_TOL = 5e-7


def sq_layer(ex: Explorer):
    d = ex.sample()
    t, o, n = d["shape"]
    return (unpack(d["x_data"], (t, n)), unpack(d["w_data"], (o, n)),
            np.asarray(d["x_absmax"], np.float32), np.asarray(d["w_absmax"], np.float32))


def check_smoothquant(ex: Explorer, layer, curves: dict):
    x, w, xa, wa = layer
    st = ex.state()
    alpha, weights = st["alpha"], st["weights"]
    py = smoothquant_state(x, w, xa, wa, alpha, weights)
    s_page = np.asarray(st["s"], np.float32)
    assert st["s"] == f32(s_page)  # the page's factors are float32 numbers
    np.testing.assert_allclose(s_page, py["s"], rtol=SQ_ULP_TOL, atol=0)
    ours = w8a8_smoothed(x, w, xa, wa, s_page, weights == "per-channel")
    for key in ("x_max", "w_max", "x_scale", "w_scale", "x_clamped"):
        assert st[key] == ours[key], (key, alpha, weights)
    assert st["y_shown"] == f32(ours["y_q"][0, :len(st["y_shown"])])
    for key in ("mse", "max_error", "sqnr_db"):
        assert close(st[key], ours[key]), (key, alpha, weights)
    assert all(close(a, b) for a, b in zip(st["y_float_shown"], py["y_float_shown"], strict=True))
    for key in ("tokens", "outputs", "channels", "top_channel", "table_channels", "alphas",
                "weights", "alpha"):
        assert st[key] == py[key], key
    if weights not in curves:
        curves[weights] = (st["curve"], st["sqnr_none_db"])
        assert close(st["sqnr_none_db"], py["sqnr_none_db"])
        assert all(math.isclose(a, b, rel_tol=1e-4)
                   for a, b in zip(st["curve"], py["curve"], strict=True))
    assert (st["curve"], st["sqnr_none_db"]) == tuple(curves[weights])  # computed once per setting
    i = st["alphas"].index(round(alpha, 2))
    assert close(st["curve"][i], st["sqnr_db"])  # the marker sits on the curve
    ex.remember(st, "alpha", "weights")
    return st


def drive_smoothquant(ex: Explorer):
    layer = sq_layer(ex)
    curves = {}
    check_smoothquant(ex, layer, curves)
    for weights in ("per-tensor", "per-channel"):
        ex.select("weights", weights)
        ex.press("alpha", "Home")
        st = check_smoothquant(ex, layer, curves)
        assert st["alpha"] == 0
        for _ in range(20):
            ex.press("alpha", "ArrowRight")
            st = check_smoothquant(ex, layer, curves)
        assert st["alpha"] == 1
        # alpha = 1: every activation channel is scaled to max 1 (above the clamp)
        assert np.allclose(st["x_max"], 1.0, rtol=1e-6)
        ex.press("alpha", "PageDown")
        check_smoothquant(ex, layer, curves)
    assert len(ex.seen) == 42  # 21 values of alpha x 2 kinds of weight scales


# --- every page with explorers ----------------------------------------------------------------

DRIVERS = {
    "affine": drive_affine,
    "bitwidth": drive_bitwidth,
    "granularity": drive_granularity,
    "packing": drive_packing,
    "embedding": drive_embedding,
    "floatbits": drive_floatbits,
    "microscaling": drive_microscaling,
    "kquant": drive_kquant,
    "smoothquant": drive_smoothquant,
}


def test_the_site_has_explorers(site_dir):
    assert pages_with_explorers(site_dir), f"no page under {site_dir} holds a quantbook explorer"


# Pages are found when the tests are collected (the site is built before `pytest` runs).
@pytest.mark.parametrize("path", pages_with_explorers(SITE_DIR))
def test_explorers_on_page(browser_page, path):
    """Open the page once; every explorer on it renders, fits a phone and a laptop, has labelled
    controls, and agrees with quantbook through every control and many settings."""
    browser_page.open(path)
    roots = browser_page.locator("[data-explorer]")
    kinds = [roots.nth(i).get_attribute("data-explorer") for i in range(roots.count())]
    saved = browser_page.content().count("quantbook.explorers.")
    assert kinds, f"{path}: {saved} saved explorer widget(s), none rendered"
    for width in (360, 1280):  # a phone, then a laptop
        browser_page.set_viewport_size({"width": width, "height": 800})
        browser_page.wait_for_timeout(100)  # the figures follow the new width
        for i, kind in enumerate(kinds):
            root = roots.nth(i)
            assert json.loads(root.get_attribute("data-state")), (path, kind)
            assert root.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), (path, kind, width)
            unlabeled = root.evaluate("""e => Array.from(e.querySelectorAll("input, select"))
                .filter((c) => !(c.labels && c.labels.length)).length""")
            assert unlabeled == 0, (path, kind)
    # each explorer's static fallback (for pages without JavaScript) gave way to it
    fallbacks = browser_page.locator("[data-qb-fallback]")
    assert fallbacks.count() == len(kinds), path
    for i in range(fallbacks.count()):
        assert fallbacks.nth(i).is_hidden(), (path, i)
    for i, kind in enumerate(kinds):
        drivers = [drive for name, drive in DRIVERS.items() if name in kind]
        assert len(drivers) == 1, f"{path}: unknown explorer {kind!r}"
        drivers[0](Explorer(browser_page, roots.nth(i)))
    browser_page.assert_clean()


@pytest.mark.parametrize("path", pages_with_explorers(SITE_DIR))
def test_explorers_have_a_fallback_without_javascript(chromium_browser, site_url, path):
    """With JavaScript off the explorers cannot run: each one's starting state shows instead,
    as plain HTML (the first of the explorer's two outputs), and nothing leaves the machine."""
    from conftest import GuardedPage

    context = chromium_browser.new_context(java_script_enabled=False,
                                           viewport={"width": 1280, "height": 900})
    try:
        guarded = GuardedPage(context, site_url)
        guarded.page.goto(site_url + path, wait_until="load")
        saved = len(saved_explorer_views(guarded.page.content()))
        fallbacks = guarded.page.locator("[data-qb-fallback]")
        assert fallbacks.count() == saved > 0, path
        for i in range(fallbacks.count()):
            box = fallbacks.nth(i)
            assert box.is_visible(), (path, i)
            text = box.inner_text()
            assert "needs JavaScript" in text and len(text) > 120, (path, i, text)
        assert guarded.page.locator("[data-explorer]").count() == 0  # nothing ran
        assert not guarded.external_requests, guarded.external_requests
    finally:
        context.close()
