"""The explorers' Python side: constructors, synced traits, derived values and bad input.

What the browser shows is checked against quantbook in tests/test_explorers_browser.py; here each
explorer's ``state()`` (the same keys as its ``data-state``) is checked against quantbook called
directly, after settings change from Python.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pytest

from quantbook import affine, embeddings, granularity, metrics, packing, symmetric
from quantbook import smoothquant as sq
from quantbook.explorers import (
    AffineExplorer,
    BitWidthExplorer,
    EmbeddingExplorer,
    FloatBitsExplorer,
    GranularityExplorer,
    KQuantExplorer,
    MicroscalingExplorer,
    PackingExplorer,
    SmoothQuantExplorer,
)
from quantbook.explorers._base import MAX_POINTS, sample


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((48, 160)) * 0.05).astype(np.float32)


def f32_list(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()


# --- the shipped JavaScript -------------------------------------------------------------------


@pytest.mark.parametrize("cls, name", [
    (AffineExplorer, "affine"), (BitWidthExplorer, "bitwidth"),
    (GranularityExplorer, "granularity"), (PackingExplorer, "packing"),
    (EmbeddingExplorer, "embedding"), (FloatBitsExplorer, "floatbits"),
    (MicroscalingExplorer, "microscaling"), (KQuantExplorer, "kquant"),
    (SmoothQuantExplorer, "smoothquant"),
])
def test_module_is_shipped_self_contained(cls, name):
    esm = str(cls._esm)
    assert f'"data-explorer": "{name}"' in esm
    assert "export default { render }" in esm
    assert "roundHalfEven" in esm
    # no imports, no fetches: everything the explorer runs is in this one text
    assert not re.search(r"^\s*import\s", esm, re.M)
    assert "fetch(" not in esm and "http://" not in esm and "https://" not in esm
    files = resources.files("quantbook.explorers")
    assert files.joinpath(f"{name}.js").is_file() and files.joinpath("explorers.css").is_file()
    assert "max-width: 100%" in str(cls._css)


# --- affine -----------------------------------------------------------------------------------


def test_affine_fits_minmax_and_samples(weights):
    e = AffineExplorer(weights)
    s, z = affine.qparams(float(weights.min()), float(weights.max()), 8, True)
    assert (e.scale, e.zero_point, e.bits, e.signed) == (s, z, 8, True)
    assert len(e.data) == MAX_POINTS
    assert min(e.data) == float(weights.min()) and max(e.data) == float(weights.max())
    assert e.data == AffineExplorer(weights).data  # seeded: the same sample every time
    assert set(e.x) <= set(weights.ravel().astype(np.float64).tolist())


def test_affine_state_matches_quantbook(weights):
    e = AffineExplorer(weights, scale=0.004, zero_point=3, bits=6, signed=True)
    st = e.state()
    x = np.asarray(e.x, dtype=np.float32)
    q = affine.quantize(x, 0.004, 3, 6, True)
    assert st["q"] == q.astype(int).tolist()
    assert st["x_hat"] == f32_list(affine.dequantize(q, 0.004, 3))
    assert (st["qmin"], st["qmax"]) == (-32, 31)
    data = np.asarray(e.data, dtype=np.float32)
    x_hat = affine.dequantize(affine.quantize(data, 0.004, 3, 6, True), 0.004, 3)
    assert st["mse"] == pytest.approx(metrics.mse(data, x_hat), rel=1e-12)
    assert st["max_error"] == metrics.max_abs_error(data, x_hat)
    # a step of 0.004 with 64 codes covers [-0.14, 0.116]: the tails of N(0, 0.05) are clipped
    assert 0 < st["clipped"] < 0.05 * len(data)
    json.dumps(st)  # what the browser writes must be JSON


def test_affine_traits_from_python(weights):
    e = AffineExplorer(weights)
    e.scale = 0.01
    e.zero_point = -7
    q, x_hat = e.quantize()
    expected = affine.quantize(weights.ravel(), 0.01, -7, 8, True)
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(x_hat, affine.dequantize(expected, 0.01, -7))
    # a new integer type refits S and Z to the data's min/max, as the browser does
    e.bits = 3
    assert (e.scale, e.zero_point) == affine.qparams(float(weights.min()),
                                                     float(weights.max()), 3, True)
    e.signed = False
    assert (e.scale, e.zero_point) == affine.qparams(float(weights.min()),
                                                     float(weights.max()), 3, False)
    assert e.state()["qmin"] == 0 and e.state()["qmax"] == 7


def test_affine_seed_example():
    # The seed's X = [-3.0, 0.1, 3.2] at 8 bits: S = 6.2/255, Z = -5, codes -128, -1, 127.
    e = AffineExplorer([-3.0, 0.1, 3.2])
    assert e.zero_point == -5 and e.scale == pytest.approx(6.2 / 255)
    assert e.state()["x"] == f32_list([-3.0, 0.1, 3.2])
    assert e.state()["q"] == [-128, -1, 127]


def test_affine_accepts_torch_and_lists():
    torch = pytest.importorskip("torch")
    t = torch.linspace(-1, 2, 50)
    assert AffineExplorer(t).data == AffineExplorer(t.numpy().tolist()).data


@pytest.mark.parametrize("kwargs, error, match", [
    ({"x": [0.0, float("nan")]}, ValueError, "NaN"),
    ({"x": [1.0, float("inf")]}, ValueError, "infinite"),
    ({"x": []}, ValueError, "empty"),
    ({"x": "abc"}, TypeError, "x must be"),
    ({"x": [1.0], "bits": 9}, ValueError, "bits"),
    ({"x": [1.0], "bits": 4.0}, TypeError, "bits"),
    ({"x": [1.0], "scale": 0.1}, ValueError, "both or neither"),
    ({"x": [1.0], "scale": -0.1, "zero_point": 0}, ValueError, "scale"),
    ({"x": [1.0], "scale": 0.1, "zero_point": 200}, ValueError, "zero_point"),
    ({"x": [1.0], "scale": 0.1, "zero_point": -1, "signed": False}, ValueError, "zero_point"),
    ({"x": [1.0], "signed": "yes"}, TypeError, "signed"),
])
def test_affine_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        AffineExplorer(**kwargs)


def test_affine_bad_trait_is_rolled_back(weights):
    e = AffineExplorer(weights, bits=4)
    with pytest.raises(ValueError, match="zero_point must be in \\[-8, 7\\]"):
        e.zero_point = 8
    with pytest.raises(ValueError, match="scale"):
        e.scale = 0.0
    with pytest.raises(ValueError, match="bits"):
        e.bits = 1
    assert e.bits == 4 and -8 <= e.zero_point <= 7 and e.scale > 0


def test_sample_is_deterministic_and_keeps_extremes():
    a = np.random.default_rng(3).standard_normal(20_000).astype(np.float32)
    s = sample(a, 1000)
    assert s.size == 1000 and s.min() == a.min() and s.max() == a.max()
    np.testing.assert_array_equal(s, sample(a, 1000))
    assert sample(a[:10], 1000).size == 10


# --- bit width --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["symmetric", "affine"])
def test_bitwidth_state_matches_quantbook(weights, scheme):
    e = BitWidthExplorer(weights, bits=3, scheme=scheme)
    st = e.state()
    data = np.asarray(e.data, dtype=np.float32)
    if scheme == "symmetric":
        q, s = symmetric.quantize(data, 3)
        x_hat, z = symmetric.dequantize(q, s), 0
        assert (st["qmin"], st["qmax"]) == (-3, 3)
    else:
        q, s, z = affine.quantize_minmax(data, 3)
        x_hat = affine.dequantize(q, s, z)
        assert (st["qmin"], st["qmax"]) == (-4, 3)
    assert (st["scale"], st["zero_point"]) == (s, z)
    assert st["sqnr_db"] == pytest.approx(metrics.sqnr_db(data, x_hat), rel=1e-12)
    assert st["mse"] == pytest.approx(metrics.mse(data, x_hat), rel=1e-12)
    # the shown points use the data's S and Z; inside [min, max] nothing clips: error <= S/2
    x = np.asarray(st["x"], dtype=np.float32)
    q_x = np.asarray(st["q"])
    assert st["x_hat"] == f32_list(np.float32(s) * (q_x - z).astype(np.float32))
    assert np.all(np.abs(x - np.asarray(st["x_hat"])) <= np.float32(s) / 2 * (1 + 1e-6))
    # about 6 dB per bit: SQNR grows with every bit for both schemes
    for name in ("symmetric", "affine"):
        curve = st["curve"][name]
        assert all(b > a for a, b in zip(curve, curve[1:], strict=False))
        assert 4.0 < (curve[-1] - curve[0]) / 6 < 7.0


def test_bitwidth_traits_and_properties(weights):
    e = BitWidthExplorer(weights)
    assert (e.bits, e.scheme) == (4, "symmetric")
    e.bits = 8
    q, s = symmetric.quantize(weights.ravel(), 8)
    assert e.scale == s and e.zero_point == 0
    np.testing.assert_array_equal(e.quantize()[0], q)
    e.scheme = "affine"
    assert (e.scale, e.zero_point) == affine.quantize_minmax(weights.ravel(), 8)[1:]
    with pytest.raises(ValueError, match="scheme"):
        e.scheme = "asymmetric"
    with pytest.raises(ValueError, match="scheme"):
        BitWidthExplorer(weights, scheme="log")
    with pytest.raises(ValueError, match="bits"):
        BitWidthExplorer(weights, bits=1)


# --- granularity ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["per-tensor", "per-channel", "per-group"])
def test_granularity_state_matches_quantbook(weights, kind):
    e = GranularityExplorer(weights, granularity=kind, group_size=16, outlier=8.0)
    st = e.state()
    block = weights[:32, :128]
    w = block.copy()
    w[16, 0] = np.float32(8.0) * np.abs(block).max()
    np.testing.assert_array_equal(e.weights(), w)
    x_hat = granularity.fake_quantize(w, 4, kind, group_size=16, axis=0)
    assert st["row_mse"] == pytest.approx([metrics.mse(w[i], x_hat[i]) for i in range(32)],
                                          rel=1e-12)
    assert st["x_hat"] == f32_list(x_hat[16, :8])
    assert len(st["scales"]) == {"per-tensor": 1, "per-channel": 32, "per-group": 256}[kind]
    assert st["bits_per_weight"] == {"per-tensor": 4 + 16 / 4096, "per-channel": 4 + 16 / 128,
                                     "per-group": 5.0}[kind]


def test_granularity_outlier_hurts_only_its_row_per_channel(weights):
    e = GranularityExplorer(weights, granularity="per-channel", outlier=20.0)
    rows = np.array(e.state()["row_mse"])
    assert rows.argmax() == 16 and rows[16] > 10 * np.delete(rows, 16).max()
    e.granularity = "per-tensor"
    clean = GranularityExplorer(weights).state()["mse"]
    assert e.state()["mse"] > 20 * clean  # one outlier ruins every row's scale
    e.granularity = "per-group"
    e.group_size = 8
    per_group = np.array(e.state()["row_mse"])
    assert per_group[16] < rows[16]  # only the outlier's group of 8 pays


def test_granularity_bad_input(weights):
    with pytest.raises(ValueError, match="2-D"):
        GranularityExplorer(weights[0])
    with pytest.raises(ValueError, match="group_size"):
        GranularityExplorer(weights, group_size=24)
    with pytest.raises(ValueError, match="granularity"):
        GranularityExplorer(weights, granularity="per-row")
    with pytest.raises(ValueError, match="outlier"):
        GranularityExplorer(weights, outlier=-1.0)
    e = GranularityExplorer(weights)
    assert e.group_sizes == [4, 8, 16, 32, 64, 128]
    with pytest.raises(ValueError, match="group_size"):
        e.group_size = 48
    assert e.group_size == 32


# --- packing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", packing.ORDERS)
def test_packing_state_matches_quantbook(order):
    values = np.random.default_rng(5).integers(-8, 8, 32).tolist()
    e = PackingExplorer(values, order=order)
    st = e.state()
    packed = packing.pack_int4(np.array(values), True, order)
    assert st["bytes"] == packed.tolist()
    assert st["bits"] == packing.byte_bits(packed).tolist()
    assert st["unpacked"] == values and st["error"] is None
    np.testing.assert_array_equal(e.packed(), packed)


def test_packing_known_bytes():
    # 1 and -2: nibbles 0001 and 1110; low-first puts element 0 in the low nibble.
    e = PackingExplorer([1, -2])
    assert e.state()["bytes"] == [0b1110_0001] and e.state()["bits"] == ["1110 0001"]
    e.order = "high-first"
    assert e.state()["bytes"] == [0b0001_1110]


def test_packing_signed_toggle_keeps_the_bits():
    e = PackingExplorer([1, -2, 7, -8, 0])
    before = e.state()["bytes"]
    e.signed = False
    assert e.values == [1, 14, 7, 8, 0] and e.state()["bytes"] == before
    e.signed = True
    assert e.values == [1, -2, 7, -8, 0]


def test_packing_errors():
    with pytest.raises(ValueError, match="multiple of 32"):
        PackingExplorer([1, 2, 3], order="gguf")
    with pytest.raises(ValueError, match="order"):
        PackingExplorer([1, 2], order="middle-out")
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        PackingExplorer([1, 9])
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        PackingExplorer([1, -1], signed=False)
    with pytest.raises(TypeError, match="whole numbers"):
        PackingExplorer([1.5])
    e = PackingExplorer([1, 2, 3])
    with pytest.raises(ValueError, match="values"):
        e.values = [1, 8]
    assert e.values == [1, 2, 3]
    e.order = "gguf"  # allowed as a setting: the explorer shows the error instead of bytes
    assert "multiple of 32" in e.state()["error"] and e.state()["bytes"] is None


# --- embeddings -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    a = rng.standard_normal(384).astype(np.float32)
    b = (0.6 * a + 0.8 * rng.standard_normal(384)).astype(np.float32)
    return a, b


def test_embedding_state_matches_quantbook(pair):
    a, b = pair
    e = EmbeddingExplorer(a, b, labels=("cat", "kitten"))
    st = e.state()
    codes = embeddings.quantize_embeddings(np.stack([a, b]), "ubinary")
    assert st["hamming"] == int(np.asarray(embeddings.hamming_distance(codes[0], codes[1])))
    assert st["bits_a"] == "".join("1" if v > 0 else "0" for v in a)
    assert st["cosine"] == pytest.approx(
        float(a.astype(np.float64) @ b / np.linalg.norm(a.astype(np.float64))
              / np.linalg.norm(b.astype(np.float64))), rel=1e-12)
    assert st["labels"] == ["cat", "kitten"] and st["dims"] == 384
    # correlation 0.6: an angle of ~53 degrees, so ~30 % of the sign bits differ
    assert 0.2 < st["hamming"] / 384 < 0.4


def test_embedding_mix_and_dims(pair):
    a, b = pair
    e = EmbeddingExplorer(a, b)
    e.mix = 1.0
    assert e.state()["hamming"] == 0 and e.state()["cosine"] == pytest.approx(1.0)
    e.mix = 0.5
    np.testing.assert_array_equal(e.mixed(), np.float32(0.5) * b + np.float32(0.5) * a)
    e.dims = 64
    st = e.state()
    assert len(st["bits_a"]) == 64 and st["hamming"] == sum(
        x != y for x, y in zip(st["bits_a"], st["bits_b"], strict=True))
    with pytest.raises(ValueError, match="mix"):
        e.mix = 1.5
    with pytest.raises(ValueError, match="dims"):
        e.dims = 0


def test_embedding_bad_input(pair):
    a, b = pair
    with pytest.raises(ValueError, match="same length"):
        EmbeddingExplorer(a, b[:100])
    with pytest.raises(ValueError, match="1-D"):
        EmbeddingExplorer(np.stack([a, b]), b)
    with pytest.raises(ValueError, match="NaN"):
        EmbeddingExplorer(np.full(4, np.nan), np.ones(4))
    with pytest.raises(TypeError, match="labels"):
        EmbeddingExplorer(a, b, labels="ab")


# --- Colab ------------------------------------------------------------------------------------


def test_colab_custom_widget_manager_enabled_once(monkeypatch):
    import sys
    import types

    from quantbook.explorers import _base

    calls = []
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append(1)
    colab = types.ModuleType("google.colab")
    colab.output = output
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.setattr(_base, "_colab_ready", False)
    AffineExplorer([0.0, 1.0])
    PackingExplorer([1, 2])
    assert _base._colab_ready and 1 <= len(calls) <= 2  # anywidget may ask once too
    n = len(calls)
    AffineExplorer([0.0, 1.0])
    assert len(calls) == n  # never again in this session


# --- float bits (chapter 1) -------------------------------------------------------------------

ml_dtypes = pytest.importorskip("ml_dtypes")
FLOAT_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
                "float8_e4m3fn": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2}


def test_floatbits_known_patterns():
    st = FloatBitsExplorer("1").state()
    f = {r["name"]: r for r in st["formats"]}
    assert f["float16"]["pattern"] == 0x3C00 and f["bfloat16"]["pattern"] == 0x3F80
    assert f["float8_e4m3fn"]["pattern"] == 0x38 and f["float8_e5m2"]["pattern"] == 0x3C
    assert f["float32"]["pattern"] == 0x3F800000
    assert all(r["value"] == 1.0 and r["error"] == 0.0 and r["kind"] == "normal"
               for r in st["formats"])
    # 0.1: float16 stores 0.0999755859375 (error -2.44e-5), e4m3fn 0.1015625
    f = {r["name"]: r for r in FloatBitsExplorer("0.1").state()["formats"]}
    assert f["float16"]["value"] == 0.0999755859375 and f["float8_e4m3fn"]["value"] == 0.1015625
    assert f["float16"]["error"] == 0.0999755859375 - 0.1


@pytest.mark.parametrize("text", ["0.1", "-0", "1e-7", "464", "465", "-1000", "57344", "61440",
                                  "1e39", "-inf", "nan", "6e-8", "1.00390625", "2.98e-8"])
def test_floatbits_state_is_ml_dtypes(text):
    x = float(text)
    x32 = np.array([x], dtype=np.float32) if abs(x) < 3.5e38 or not np.isfinite(x) else \
        np.array([np.copysign(np.inf, x)], dtype=np.float32)
    for row in FloatBitsExplorer(text).state()["formats"]:
        with np.errstate(over="ignore", invalid="ignore"):
            y = x32.astype(FLOAT_DTYPES[row["name"]])
        bits = row["bits"]
        assert row["pattern"] == int(y.view({8: np.uint8, 16: np.uint16, 32: np.uint32}[bits])[0])
        assert row["sign"] + row["exponent"] + row["mantissa"] == format(row["pattern"],
                                                                        f"0{bits}b")
        v = float(y.astype(np.float64)[0])
        if np.isnan(v):
            assert row["value"] == "nan" and row["kind"] == "nan" and row["error"] is None
        elif np.isinf(v):
            assert row["value"] == ("inf" if v > 0 else "-inf") and row["kind"] == "inf"
        else:
            assert row["value"] == v and np.signbit(v) == (row["sign"] == "1")
            if np.isfinite(x):
                assert row["error"] == v - x


def test_floatbits_overflow_rules():
    f = {r["name"]: r for r in FloatBitsExplorer("465").state()["formats"]}
    assert f["float8_e4m3fn"]["kind"] == "nan" and f["float8_e4m3fn"]["overflow"]
    assert f["float8_e4m3fn"]["pattern"] == 0x7F  # S.1111.111: e4m3fn has no inf
    assert f["float8_e5m2"]["value"] == 448.0 and not f["float8_e5m2"]["overflow"]
    f = {r["name"]: r for r in FloatBitsExplorer("464").state()["formats"]}
    assert f["float8_e4m3fn"]["value"] == 448.0  # the tie rounds to even, down to 448
    sat = {r["name"]: r for r in FloatBitsExplorer("-1e39", overflow="saturate").state()["formats"]}
    assert [sat[n]["value"] for n in ("float16", "float8_e4m3fn", "float8_e5m2")] == \
        [-65504.0, -448.0, -57344.0]
    assert all(r["overflow"] for r in sat.values())
    inf = {r["name"]: r for r in FloatBitsExplorer("inf", overflow="saturate").state()["formats"]}
    assert inf["float8_e4m3fn"]["value"] == 448.0 and not inf["float8_e4m3fn"]["overflow"]
    assert FloatBitsExplorer("nan", overflow="saturate").state()["formats"][3]["kind"] == "nan"


def test_floatbits_saturate_label_is_what_torch_does():
    # The explorer labels "saturate" as torch's cast to float8_e4m3fn: torch clamps finite
    # values and inf to +-448 there, and keeps inf for e5m2 and float16 (measured here).
    torch = pytest.importorskip("torch")
    t = torch.tensor([465.0, -1e6, float("inf")])
    assert t.to(torch.float8_e4m3fn).float().tolist() == [448.0, -448.0, 448.0]
    assert t.to(torch.float8_e5m2).float().tolist()[1:] == [-float("inf"), float("inf")]
    assert t.to(torch.float16).float().tolist()[1:] == [-float("inf"), float("inf")]


def test_floatbits_traits_and_bad_input():
    e = FloatBitsExplorer(0.5)
    assert e.text == "0.5" and e.value == 0.5
    e.text = "-0"
    assert e.state()["formats"][1]["pattern"] == 0x8000  # negative zero keeps its sign
    for bad in ("abc", "1,5", "0x10", "", "1e"):
        with pytest.raises(ValueError, match="text"):
            e.text = bad
    assert e.text == "-0"
    with pytest.raises(ValueError, match="overflow"):
        e.overflow = "wrap"
    with pytest.raises(TypeError, match="text"):
        FloatBitsExplorer([1.0])
    assert FloatBitsExplorer("-nan").state()["formats"][0]["pattern"] == 0x7FC00000


# --- microscaling (chapter 8) -----------------------------------------------------------------


def _e2m1(v):
    return np.clip(np.asarray(v, np.float32), -6, 6).astype(ml_dtypes.float4_e2m1fn)


def test_mxfp4_scale_and_codes():
    x = np.zeros(32, np.float32)
    x[:9] = [3.0, -0.75, 0.3, 1.25, 2.5, 3.5, -2.6, 0.05, -0.05]  # amax 3 -> X = 2^(1-2) = 0.5
    st = MicroscalingExplorer(x).state()
    b = st["blocks"][0]
    assert (b["log2_floor"], b["scale_byte"], b["scale"]) == (1, 126, 0.5)
    assert b["scale_bits"] == "01111110"
    assert b["grid"] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
    # x / X = 6, -1.5, 0.6, 2.5 (tie -> 2), 5 (tie -> 4), 7 (-> 6, clamped), -5.2, 0.1, -0.1
    assert b["elements"][:9] == [6.0, -1.5, 0.5, 2.0, 4.0, 6.0, -6.0, 0.0, -0.0]
    assert st["codes"][:9] == [7, 0b1011, 1, 4, 6, 7, 0b1111, 0, 0b1000]
    assert st["x_hat"][:9] == [3.0, -0.75, 0.25, 1.0, 2.0, 3.0, -3.0, 0.0, -0.0]
    assert st["bits_per_weight"] == 4.25 and st["clipped"] == 0
    e8m0 = np.uint8(b["scale_byte"]).view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    assert float(e8m0) == b["scale"]
    # all zeros: byte 0 (X = 2^-127), every code 0
    z = MicroscalingExplorer(np.zeros(32)).state()
    assert z["blocks"][0]["scale_byte"] == 0 and z["codes"] == [0] * 32 and z["sqnr_db"] is None


def test_mxfp4_wastes_the_top_of_the_grid():
    # amax / X is in [4, 8): values above 7 X cannot be reached and clip to 6 X
    x = np.full(32, 0.1, np.float32)
    x[0] = 7.9
    st = MicroscalingExplorer(x).state()
    assert st["blocks"][0]["scale"] == 1.0 and st["x_hat"][0] == 6.0 and st["clipped"] == 1


def test_mxfp4_matches_gguf_away_from_ties():
    gguf = pytest.importorskip("gguf")
    from gguf import GGMLQuantizationType as T

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((20, 32)) * 0.05).astype(np.float32)
    raw = gguf.quants.quantize(x, T.MXFP4)
    ref = gguf.quants.dequantize(raw, T.MXFP4).reshape(20, 32)
    for row, r, back in zip(x, raw.reshape(20, 17), ref, strict=True):
        st = MicroscalingExplorer(row).state()
        assert st["blocks"][0]["scale_byte"] == int(r[0])
        assert st["x_hat"] == back.astype(np.float64).tolist()  # -0 == 0: codes 8 vs 0 only


def test_ggml_mxfp4_rounds_ties_toward_zero():
    # x / X = 0.75, 1.75, 3.5: round-half-even gives 1, 2, 4; ggml's encoder (argmin over its
    # table, first index wins) gives 0.5, 1.5, 3 (as gguf 0.19's quantize does).
    gguf = pytest.importorskip("gguf")
    from gguf import GGMLQuantizationType as T

    x = np.zeros(32, np.float32)
    x[:4] = [4.0, 0.75, 1.75, 3.5]  # amax 4 -> X = 1
    ours = MicroscalingExplorer(x).state()["x_hat"][:4]
    theirs = gguf.quants.dequantize(gguf.quants.quantize(x[None], T.MXFP4), T.MXFP4)[0, :4]
    assert ours == [4.0, 1.0, 2.0, 4.0] and theirs.tolist() == [4.0, 0.5, 1.5, 3.0]


def test_nvfp4_two_level_scales():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(32) * 0.02).astype(np.float32)
    x[20] = 0.3
    e = MicroscalingExplorer(x, format="nvfp4")
    st = e.state()
    s = np.float32(0.3) / np.float32(2688)
    assert st["tensor_scale"] == float(s) and st["bits_per_weight"] == 4.5
    for k, b in enumerate(st["blocks"]):
        chunk = x[16 * k:16 * k + 16]
        target = np.float32(np.abs(chunk).max()) / (np.float32(6) * s)
        d = np.array([min(target, np.float32(448))], np.float32).astype(ml_dtypes.float8_e4m3fn)
        assert b["scale_byte"] == int(d.view(np.uint8)[0]) and b["scale"] == float(d[0])
        total = np.float32(np.float32(b["scale"]) * s)
        p = _e2m1(chunk / total)
        assert b["codes"] == (p.view(np.uint8) & 15).astype(int).tolist()
        assert st["x_hat"][16 * k:16 * k + 16] == (p.astype(np.float32) * total).tolist()
    assert st["blocks"][1]["scale"] == 448.0  # the block holding the tensor's amax
    # a tensor amax below the block's: the E4M3 scale saturates at 448 and values clip
    e.tensor_amax = 0.1
    assert e.state()["blocks"][1]["scale"] == 448.0 and e.state()["clipped"] >= 1


def test_microscaling_blocks_from_weights(weights):
    e = MicroscalingExplorer(weights=weights, seed=1, blocks=5)
    assert len(e.pool) == 5 and e.block == 0 and e.values == e.pool[0]
    rows = weights.reshape(-1, 32)
    assert all(any(np.array_equal(np.float32(p), r) for r in rows) for p in e.pool)
    assert e.tensor_amax == float(np.abs(weights).max())
    assert e.pool == MicroscalingExplorer(weights=weights, seed=1, blocks=5).pool
    e.block = 3
    assert e.values == e.pool[3]
    e.values = [0.0] * 32
    assert e.block == -1


def test_microscaling_bad_input(weights):
    with pytest.raises(ValueError, match="32"):
        MicroscalingExplorer(np.ones(31))
    with pytest.raises(ValueError, match="NaN"):
        MicroscalingExplorer(np.full(32, np.nan))
    with pytest.raises(ValueError, match="format"):
        MicroscalingExplorer(np.ones(32), format="mxfp8")
    with pytest.raises(ValueError, match="values"):
        MicroscalingExplorer()
    with pytest.raises(ValueError, match="tensor_amax"):
        MicroscalingExplorer(np.ones(32), tensor_amax=-1.0)
    e = MicroscalingExplorer(weights=weights, blocks=2)
    with pytest.raises(ValueError, match="block"):
        e.block = 2
    with pytest.raises(ValueError, match="values"):
        e.values = [1.0] * 33
    assert len(e.values) == 32 and e.block == 0


# --- the static fallback, for pages without JavaScript -----------------------------------------


def all_explorers(weights):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    return [AffineExplorer(weights), BitWidthExplorer(weights), GranularityExplorer(weights),
            PackingExplorer([1, -2, 7]), EmbeddingExplorer(a, b), FloatBitsExplorer("465"),
            MicroscalingExplorer(weights=weights, format="nvfp4"),
            KQuantExplorer(weights=np.resize(weights, (4, 512)), weight=150),
            SmoothQuantExplorer(*outlier_layer()[:2], tokens=16, outputs=8)]


def test_fallback_is_published_before_the_widget(weights, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, raw=False, metadata=None: shown.append((obj, raw)))
    for e in all_explorers(weights):
        shown.clear()
        e._ipython_display_()
        (fallback, raw1), (widget, raw2) = shown
        assert raw1 and raw2
        assert "application/vnd.jupyter.widget-view+json" in widget
        assert widget["application/vnd.jupyter.widget-view+json"]["model_id"] == e.model_id
        html, text = fallback["text/html"], fallback["text/plain"]
        assert f'id="{e._fallback_id}"' in html and e._fallback_id.startswith("qb-fallback-")
        assert "<script" not in html and "<style" not in html
        assert "needs JavaScript" in html and "needs JavaScript" in text


def test_fallback_shows_the_state(weights):
    e = AffineExplorer(weights)
    st = e.state()
    assert f"zero point Z = {st['zero_point']}" in e.fallback_text()
    assert all(str(q) in e.fallback_html() for q in st["q"])
    f = FloatBitsExplorer("465")
    assert "0 1111 111" in f.fallback_text() and "nan (overflow)" in f.fallback_text()
    m = MicroscalingExplorer(np.linspace(-3, 3, 32))
    assert m.state()["blocks"][0]["scale_bits"] in m.fallback_html()
    p = PackingExplorer([1, -2])
    assert "0xe1" in p.fallback_html()
    # a change from Python shows in the next display
    e.bits = 4
    assert "4-bit signed codes" in e.fallback_text()
    # every explorer has its own fallback id, synced to the browser
    ids = {x._fallback_id for x in all_explorers(weights)}
    assert len(ids) == 9 and "_fallback_id" in e.keys


def test_js_hides_the_fallback():
    src = resources.files("quantbook.explorers").joinpath("common.js").read_text()
    body = src[src.index("function follow("):src.index("function onResize")]
    assert "hideFallback(model)" in body and 'model.get("_fallback_id")' in body


# --- K-quant super-block ------------------------------------------------------------------------


def kquant_blocks() -> np.ndarray:
    """Q4_K blocks of random bytes (with fp16 infinities, NaNs and subnormals in d and dmin),
    all zeros, all ones, and encoder output."""
    from quantbook import formats

    rng = np.random.default_rng(91)
    blocks = list(rng.integers(0, 256, (6, 144), dtype=np.uint8))
    for d, dmin in ((0x7C00, 0x3C00), (0x7E00, 0xFC00), (0x0001, 0x83FF), (0x3C00, 0x7C00)):
        b = rng.integers(0, 256, 144, dtype=np.uint8)
        b[0:4] = np.array([d, dmin], "<u2").view(np.uint8)
        blocks.append(b)
    blocks += [np.zeros(144, np.uint8), np.full(144, 255, np.uint8),
               formats.encode_q4_k((rng.standard_normal(256) * 0.05).astype(np.float32))]
    return np.stack(blocks)


def same_number(shown, value) -> bool:
    """A state's number (float, or "nan"/"inf"/"-inf") equals a float32 value bit for bit
    (the sign of zero aside: JSON drops it)."""
    if isinstance(shown, str):
        return shown == ("nan" if np.isnan(value) else "inf" if value > 0 else "-inf")
    return np.float32(shown) == value


def test_kquant_state_is_decode_q4_k_for_every_weight():
    import gguf

    from quantbook import formats, kquants

    for raw in kquant_blocks():
        ours = formats.decode_q4_k(raw)
        with np.errstate(invalid="ignore", over="ignore"):
            theirs = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_K)
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)) or np.array_equal(
            ours, theirs, equal_nan=True)
        scales, mins = kquants.unpack_scales_mins_k4(raw[4:16])
        e = KQuantExplorer(raw)
        for i in range(256):
            e.weight = i
            st = e.state()
            j = i // 32
            assert st["sub_block"] == j and st["index_in_sub_block"] == i % 32
            assert same_number(st["steps"]["x"], ours[i]), (i, st["steps"], ours[i])
            assert st["scale"]["value"] == scales[j] and st["min"]["value"] == mins[j]
            for part in ("scale", "min"):  # the drawn bits spell the value
                pieces = st[part]["pieces"]
                assert sum(int(p["bits"], 2) << p["to_bit"] for p in pieces) == st[part]["value"]
                assert sum(p["n_bits"] for p in pieces) == 6
            c = st["code"]
            assert c["value"] == (raw[c["byte"]] >> c["from_bit"]) & 15
        assert all(same_number(s, v) for s, v in zip(st["values"], ours, strict=True))
        assert st["raw"] == raw.tolist()
        assert json.loads(json.dumps(st, allow_nan=False)) == st  # JSON without NaN or inf


def test_kquant_bit_map_is_where_the_decoder_reads():
    """Flip one bit of the 12 scale bytes: the scale (or min) of exactly the sub-blocks whose drawn
    pieces hold that bit changes, by that bit's weight; flip a code bit: only that weight moves."""
    from quantbook import formats, kquants
    from quantbook.explorers.kquant import code_location, scale_min_pieces

    raw = np.random.default_rng(5).integers(0, 256, 144, dtype=np.uint8)
    sc0, mn0 = kquants.unpack_scales_mins_k4(raw[4:16])
    for byte in range(4, 16):
        for bit in range(8):
            flipped = raw.copy()
            flipped[byte] ^= 1 << bit
            sc1, mn1 = kquants.unpack_scales_mins_k4(flipped[4:16])
            for j in range(8):
                for pieces, before, after in zip(scale_min_pieces(j), (sc0, mn0), (sc1, mn1),
                                                 strict=True):
                    held = [p for p in pieces if p["byte"] == byte
                            and p["from_bit"] <= bit < p["from_bit"] + p["n_bits"]]
                    change = abs(int(after[j]) - int(before[j]))
                    if held:
                        assert change == 1 << (held[0]["to_bit"] + bit - held[0]["from_bit"])
                    else:
                        assert change == 0, (byte, bit, j)
    # d = 1, dmin = 0, every scale 1 (sub-blocks 4-7: low nibble of bytes 12-15): x = q
    unit = np.zeros(144, np.uint8)
    unit[0:2] = np.array([0x3C00], "<u2").view(np.uint8)
    unit[4:8] = 1
    unit[12:16] = 1
    unit[16:] = raw[16:]
    base = formats.decode_q4_k(unit)
    for i in range(256):
        loc = code_location(i)
        for k in range(4):
            flipped = unit.copy()
            flipped[loc["byte"]] ^= 1 << (loc["from_bit"] + k)
            diff = np.flatnonzero(formats.decode_q4_k(flipped) != base)
            assert diff.tolist() == [i] and abs(formats.decode_q4_k(flipped)[i] - base[i]) == 2**k


def test_kquant_split_sub_blocks_by_hand():
    """Sub-block 5 of a hand-made block: scale 0b101101 = 45 from byte 13's low nibble (1101)
    and bits 6-7 of byte 5 (10); min 0b011010 = 26 from byte 13's high nibble and byte 9."""
    raw = np.zeros(144, np.uint8)
    raw[13] = 0b1010_1101
    raw[5] = 0b10_000000 | 7  # sub-block 1's scale 7 shares the byte
    raw[9] = 0b01_000000 | 3
    st = KQuantExplorer(raw, weight=5 * 32 + 3).state()
    assert st["scale"]["value"] == 45 and st["min"]["value"] == 26
    assert [p["bits"] for p in st["scale"]["pieces"]] == ["1101", "10"]
    assert [p["byte"] for p in st["min"]["pieces"]] == [13, 9]
    assert st["scales"][1] == 7 and st["mins"][1] == 3
    assert st["code"]["byte"] == 16 + 32 * (5 // 2) + 3 and st["code"]["from_bit"] == 4


def test_kquant_from_weights_encodes_with_formats(weights):
    from quantbook import formats

    w = np.resize(weights, (6, 512))
    e = KQuantExplorer(weights=w, seed=3, blocks=4)
    assert len(e.pool) == 4 and e.block == 0 and e.raw == e.pool[0]
    assert e.pool == KQuantExplorer(weights=w, seed=3, blocks=4).pool
    encoded = formats.encode_q4_k(w).reshape(-1, 144).tolist()
    assert all(b in encoded for b in e.pool)
    e.block = 2
    assert e.raw == e.pool[2]
    e.raw = [0] * 144
    assert e.block == -1
    st = e.state()
    assert st["values"] == [0.0] * 256 and st["steps"]["x"] == 0.0
    assert "sub-block" in e.fallback_text() and "needs JavaScript" in e.fallback_html()


def test_kquant_accepts_bytes_lists_and_torch():
    import torch

    raw = np.random.default_rng(2).integers(0, 256, 144, dtype=np.uint8)
    st = KQuantExplorer(raw).state()
    assert KQuantExplorer(raw.tobytes()).state() == st
    assert KQuantExplorer(raw.tolist()).state() == st
    assert KQuantExplorer(torch.from_numpy(raw.copy())).state() == st


def test_kquant_bad_input(weights):
    raw = np.zeros(144, np.uint8)
    with pytest.raises(ValueError, match="raw must be 144 bytes"):
        KQuantExplorer(np.zeros(143, np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        KQuantExplorer(np.zeros(144, np.float32))
    with pytest.raises(TypeError, match="ints 0-255"):
        KQuantExplorer([256] * 144)
    with pytest.raises(ValueError, match="either raw"):
        KQuantExplorer()
    with pytest.raises(ValueError, match="either raw"):
        KQuantExplorer(raw, weights=weights)
    with pytest.raises(ValueError, match="at least 256"):
        KQuantExplorer(weights=np.ones(100))
    with pytest.raises(ValueError, match="finite"):
        KQuantExplorer(weights=np.full(256, np.nan))
    for bad, error in ((256, ValueError), (-1, ValueError), (True, TypeError), (1.0, TypeError)):
        with pytest.raises(error, match="weight"):
            KQuantExplorer(raw, weight=bad)
    e = KQuantExplorer(raw, weight=7)
    with pytest.raises(ValueError, match="weight"):
        e.weight = 300
    with pytest.raises(ValueError, match="raw"):
        e.raw = [0] * 10
    with pytest.raises(ValueError, match="block"):
        e.block = 0  # no pool: bytes given
    assert e.weight == 7 and e.raw == [0] * 144 and e.block == -1


# --- SmoothQuant on a layer ---------------------------------------------------------------------


def outlier_layer():
    """Activations (200 tokens, 48 channels) with an outlier channel 7, and a (96, 48) weight."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 48)).astype(np.float32)
    x[:, 7] *= 40.0
    w = (rng.standard_normal((96, 48)) * 0.05).astype(np.float32)
    return x, w, sq.activation_absmax(x[:100])  # calibration: the first 100 tokens


@pytest.mark.parametrize("weights", ["per-tensor", "per-channel"])
@pytest.mark.parametrize("alpha", [0.0, 0.35, 0.5, 1.0])
def test_smoothquant_state_is_the_whole_layer_in_w8a8(alpha, weights):
    x, w, xa = outlier_layer()
    e = SmoothQuantExplorer(x[100:], w, x_absmax=xa, alpha=alpha, weights=weights,
                            tokens=40, outputs=24, seed=3)
    st = e.state()
    s = sq.smoothing_factors(xa, sq.weight_absmax(w), alpha)
    assert st["s"] == f32_list(s)
    assert st["x_max"] == f32_list(xa / s) and st["w_max"] == f32_list(sq.weight_absmax(w) * s)
    # the whole layer (all 96 rows) in W8A8, then the sampled tokens and rows of its output:
    # the page's rows use the whole layer's scales
    pc = weights == "per-channel"
    xs = sq.smooth_activations(x[100:], s)
    y_all = sq.w8a8_linear(xs, sq.smooth_weight(w, s), x_scale=float((xa / s).max()) / 127,
                           per_channel=pc)
    rows, outs = np.array(e.token_rows), np.array(e.output_rows)
    assert rows.size == 40 and outs.size == 24 and np.all(np.diff(rows) > 0)
    y_q = y_all[np.ix_(rows, outs)]
    y = x[100:][rows].astype(np.float64) @ w[outs].astype(np.float64).T
    assert st["y_shown"] == f32_list(y_q[0, :8])
    assert st["mse"] == pytest.approx(metrics.mse(y, y_q), rel=1e-12)
    assert st["sqnr_db"] == pytest.approx(metrics.sqnr_db(y, y_q), rel=1e-12)
    assert st["max_error"] == pytest.approx(metrics.max_abs_error(y, y_q), rel=1e-12)
    assert st["curve"][st["alphas"].index(alpha)] == st["sqnr_db"]
    if alpha == 1.0:
        assert np.allclose(st["x_max"], 1.0, rtol=1e-6)  # the activations are flat
    if alpha == 0.0:
        assert np.allclose(st["w_max"], 1.0, rtol=1e-6)  # the weight columns are flat
    if alpha == 0.5:
        np.testing.assert_allclose(st["x_max"], st["w_max"], rtol=1e-5)  # the same maximum
    json.dumps(st)


def test_smoothquant_outlier_channel_and_the_curve():
    x, w, xa = outlier_layer()
    e = SmoothQuantExplorer(x[100:], w, x_absmax=xa, alpha=0.5)
    st = e.state()
    assert st["top_channel"] == 7 and st["table_channels"][0] == 7
    assert (st["tokens"], st["outputs"], st["channels"]) == (64, 64, 48)
    assert st["alphas"] == [round(k * 0.05, 2) for k in range(21)]
    # smoothing helps this layer: the best alpha beats no smoothing by several dB, and so does 0.5
    assert max(st["curve"]) > st["sqnr_none_db"] + 3 and st["sqnr_db"] > st["sqnr_none_db"]
    # held-out tokens beyond the calibration maxima clamp at +-127
    assert st["x_clamped"] > 0
    e.alpha = 0.25
    e.weights = "per-tensor"
    assert e.state()["alpha"] == 0.25 and isinstance(e.state()["w_scale"], float)
    assert "per-tensor weights" in e.fallback_text() and "α = 0.25" in e.fallback_text()


def test_smoothquant_data_travels_exactly_and_is_small():
    x, w, xa = outlier_layer()
    e = SmoothQuantExplorer(x, w, x_absmax=xa, tokens=10, outputs=5, seed=1)
    xd, wd = e.data()
    np.testing.assert_array_equal(xd, x[e.token_rows])
    np.testing.assert_array_equal(wd, w[e.output_rows])
    assert e.token_rows == SmoothQuantExplorer(x, w, tokens=10, outputs=5, seed=1).token_rows
    # w_absmax comes from every row of w, not only the rows sent
    assert e.w_absmax == f32_list(sq.weight_absmax(w))
    # a MiniLM-sized layer (384 inputs) at the default 64 tokens x 64 outputs: under 300 kB
    big = SmoothQuantExplorer(np.ones((100, 384)), np.ones((200, 384)))
    assert len(big.x_data) + len(big.w_data) + 40 * 384 < 300_000


def test_smoothquant_bad_input():
    x, w, xa = outlier_layer()
    with pytest.raises(ValueError, match="input channels"):
        SmoothQuantExplorer(x, w[:, :40])
    with pytest.raises(ValueError, match="2-D"):
        SmoothQuantExplorer(x[0], w)
    with pytest.raises(ValueError, match=r"x_absmax must have shape \(48,\)"):
        SmoothQuantExplorer(x, w, x_absmax=xa[:5])
    with pytest.raises(ValueError, match="non-negative"):
        SmoothQuantExplorer(x, w, x_absmax=-xa)
    with pytest.raises(ValueError, match="w_absmax must be at least"):
        SmoothQuantExplorer(x, w, w_absmax=sq.weight_absmax(w) / 2)
    with pytest.raises(ValueError, match="NaN"):
        SmoothQuantExplorer(np.full((3, 48), np.nan), w)
    with pytest.raises(ValueError, match="alpha must be from 0 to 1"):
        SmoothQuantExplorer(x, w, alpha=1.5)
    with pytest.raises(TypeError, match="alpha"):
        SmoothQuantExplorer(x, w, alpha=True)
    with pytest.raises(ValueError, match="weights"):
        SmoothQuantExplorer(x, w, weights="per-group")
    with pytest.raises(ValueError, match="tokens"):
        SmoothQuantExplorer(x, w, tokens=0)
    with pytest.raises(TypeError, match="outputs"):
        SmoothQuantExplorer(x, w, outputs=2.5)
    e = SmoothQuantExplorer(x, w, alpha=0.4)
    with pytest.raises(ValueError, match="alpha"):
        e.alpha = -0.1
    with pytest.raises(ValueError, match="weights"):
        e.weights = "per-row"
    assert (e.alpha, e.weights) == (0.4, "per-channel")
