"""The explorers' JavaScript arithmetic (common.js), run in Node, against NumPy and quantbook.

common.js holds the pure numeric helpers every explorer computes with: rounding, the affine
parameters and round trip, floor(log2), and the float encoders/decoders behind the float-bits,
microscaling and k-quant explorers. Here each runs in ``node`` on hard inputs (ties, negatives,
signed zeros, subnormals, huge values, infinities, NaN, random bit patterns) and is compared
with NumPy, ml_dtypes or quantbook bit for bit: doubles go across as raw float64 bytes (base64),
so -0.0 and every last bit survive the trip. The browser tests check the same functions only
through the explorers' states, at the settings they drive.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from importlib import resources

import ml_dtypes
import numpy as np
import pytest

from quantbook import affine

COMMON_JS = resources.files("quantbook.explorers").joinpath("common.js").read_text()

# Loads common.js (no exports: its functions are script globals) and applies one function
# expression to every row of the columns it is sent; each result (a number or an array of them)
# goes back as float64 bytes.
RUNNER = r"""
const vm = require("vm");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
vm.runInThisContext(input.source);
const fn = vm.runInThisContext("(" + input.expr + ")");
const columns = input.columns.map(
  (b) => new Float64Array(new Uint8Array(Buffer.from(b, "base64")).buffer));
const out = [];
for (let i = 0; i < (columns.length ? columns[0].length : 0); i++) {
  const r = fn(...columns.map((c) => c[i]));
  if (Array.isArray(r) || ArrayBuffer.isView(r)) out.push(...r); else out.push(r);
}
process.stdout.write(Buffer.from(new Float64Array(out).buffer).toString("base64"));
"""


def js(expr: str, *columns) -> np.ndarray:
    """``expr`` (a JavaScript function of one value per column) on every row, in Node: float64,
    one row per input row."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the explorers' JavaScript cannot be tested "
                    "(install Node.js, which `make book` needs too)")
    cols = [np.ascontiguousarray(c, dtype="<f8") for c in columns]
    payload = json.dumps({"source": COMMON_JS, "expr": expr,
                          "columns": [base64.b64encode(c.tobytes()).decode() for c in cols]})
    done = subprocess.run([node, "-e", RUNNER], input=payload, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = np.frombuffer(base64.b64decode(done.stdout), dtype="<f8")
    return out.reshape(len(cols[0]), -1) if cols and len(cols[0]) else out


def same_bits(a, b) -> bool:
    """Equal as doubles to the last bit, -0.0 apart from 0.0; any NaN equals any NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nan = np.isnan(a)
    return bool((nan == np.isnan(b)).all() and (a.view(np.uint64) == b.view(np.uint64))[~nan].all())


def hard_doubles(n: int = 20_000, seed: int = 0) -> np.ndarray:
    """Ties at every scale, their neighbours, signed zeros, subnormals, huge values, infinities,
    NaN, and random doubles of every magnitude (random bit patterns)."""
    rng = np.random.default_rng(seed)
    ties = np.arange(-40, 40) + 0.5
    big = np.array([2.0**52 - 0.5, 2.0**52 + 0.5, 2.0**52 + 1, 2.0**53 - 1, 2.0**53, 2.0**53 + 2,
                    2.0**63, 1e300, np.finfo(np.float64).max, 2.0**31 - 0.5, 2.0**31 + 0.5])
    tiny = np.array([0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 0.49999999999999994,
                     0.5000000000000001, 1.4999999999999998, 2.5000000000000004])
    special = np.array([np.inf, np.nan])
    random = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)
    scaled = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 8, n)
    halves = rng.integers(-2**40, 2**40, n) + 0.5
    one = np.concatenate([ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf), big, tiny,
                          special, random, scaled, halves])
    return np.concatenate([one, -one])


# --- rounding -----------------------------------------------------------------------------------


def test_round_half_even_equals_numpy_rint():
    x = hard_doubles()
    got = js("roundHalfEven", x)[:, 0]
    with np.errstate(invalid="ignore"):  # rint(NaN)
        assert same_bits(got, np.rint(x))  # ties to even, -0.0 kept, inf and NaN passed through
    # the cases Math.round alone gets wrong: ties that round up to an odd integer
    np.testing.assert_array_equal(js("roundHalfEven", [0.5, 1.5, 2.5, -0.5, -1.5, -2.5])[:, 0],
                                  [0.0, 2.0, 2.0, -0.0, -2.0, -2.0])
    assert not same_bits(js("Math.round", [0.5, 2.5, -1.5])[:, 0], np.rint([0.5, 2.5, -1.5]))


def test_floor_log2_equals_the_exponent_numpy_reads():
    x = np.abs(hard_doubles())
    x = x[np.isfinite(x) & (x > 0)]
    powers = 2.0 ** np.arange(-1074, 1024)  # every binade, subnormal ones included
    x = np.concatenate([x, powers, np.nextafter(powers[1:], 0)])
    np.testing.assert_array_equal(js("floorLog2", x)[:, 0], np.frexp(x)[1] - 1)


# --- the affine parameters and round trip (affine and bit-width explorers) ----------------------


def test_qrange_equals_quantbook():
    bits = np.repeat(np.arange(2, 9), 2)
    signed = np.tile([0, 1], 7)
    got = js("(b, s) => qrange(b, s === 1)", bits, signed)
    np.testing.assert_array_equal(got, [affine.qrange(int(b), bool(s)) for b, s in
                                        zip(bits, signed, strict=True)])


def test_affine_params_equal_quantbook_qparams():
    rng = np.random.default_rng(1)
    ends = np.sort(rng.standard_normal((3000, 2)) * 10.0 ** rng.integers(-6, 6, (3000, 1)), axis=1)
    ends = np.concatenate([ends, [[0.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [2.0, 3.0], [-3.0, -2.0],
                                  [-3.0, 3.2], [-1e30, 1e30], [-1e-30, 1e-30], [-0.0, 0.0]]])
    for bits in (2, 4, 8):
        for signed in (True, False):
            got = js(f"(lo, hi) => affineParams(lo, hi, {bits}, {str(signed).lower()})",
                     ends[:, 0], ends[:, 1])
            want = [affine.qparams(float(lo), float(hi), bits, signed) for lo, hi in ends]
            assert same_bits(got[:, 0], [s for s, _ in want]), (bits, signed)
            assert same_bits(got[:, 1], [z for _, z in want]), (bits, signed)  # never -0


def test_affine_round_trip_equals_quantbook_quantize_and_dequantize():
    rng = np.random.default_rng(2)
    for bits, signed, scale, zero_point in [(8, True, 0.1, 0), (8, False, 0.02431372549019608, 123),
                                            (4, True, 0.37, -2), (2, False, 1.0, 1),
                                            (8, True, 3e-7, 5)]:
        s32 = np.float32(scale)
        steps = np.arange(-300, 300, dtype=np.float32)
        x = np.concatenate([
            (steps + np.float32(0.5)) * s32,  # ties of x / S (where float32 keeps them)
            steps * s32, rng.standard_normal(5000).astype(np.float32) * 50 * s32,
            np.float32([0.0, -0.0, 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, -1e-45])])
        q = affine.quantize(x, scale, zero_point, bits, signed)
        x_hat = affine.dequantize(q, scale, zero_point)
        got = js(f"(v) => {{ const q = new Float64Array(1), xh = new Float64Array(1); "
                 f"affineRoundTrip([v], {scale!r}, {zero_point}, {bits}, {str(signed).lower()}, "
                 f"q, xh); return [q[0], xh[0]]; }}", x)
        np.testing.assert_array_equal(got[:, 0], q, err_msg=f"codes {bits, signed, scale}")
        assert same_bits(got[:, 1] + 0.0, x_hat.astype(np.float64) + 0.0), (bits, signed, scale)


# --- the float formats (float-bits, microscaling and k-quant explorers) -------------------------

FORMATS = {  # common.js's floatFormat(name, e, m, kind) and the dtype that is its oracle
    "float16": (5, 10, "ieee", np.dtype(np.float16)),
    "bfloat16": (8, 7, "ieee", np.dtype(ml_dtypes.bfloat16)),
    "float8_e4m3fn": (4, 3, "fn", np.dtype(ml_dtypes.float8_e4m3fn)),
    "float8_e5m2": (5, 2, "ieee", np.dtype(ml_dtypes.float8_e5m2)),
    "float4_e2m1fn": (2, 1, "finite", np.dtype(ml_dtypes.float4_e2m1fn)),
}


def _patterns(dtype: np.dtype, values: np.ndarray) -> np.ndarray:
    """The bit patterns of ``values`` (float32) cast to ``dtype``, as integers."""
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the format: inf, NaN or max
        cast = values.astype(dtype)
    if dtype.itemsize == 1:
        bits = cast.view(np.uint8).astype(np.int64)
        return bits & 0xF if dtype == FORMATS["float4_e2m1fn"][3] else bits
    return cast.view(np.uint16).astype(np.int64)


def _float32_inputs(largest: float) -> np.ndarray:
    """float32 values around a format: every tie and its neighbours in float32, and more."""
    x = hard_doubles(4000, seed=3)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf
        x32 = x.astype(np.float32)
        grid = np.linspace(-2 * largest, 2 * largest, 20_001, dtype=np.float32)
        fine = np.geomspace(1e-40, 4 * largest, 20_000).astype(np.float32)
    x32 = np.concatenate([x32, grid, fine, -fine])
    return x32[~np.isnan(x32)]


@pytest.mark.parametrize("name", FORMATS)
def test_float_encode_equals_the_ml_dtypes_cast(name):
    e, m, kind, dtype = FORMATS[name]
    largest = float(ml_dtypes.finfo(dtype).max)
    x32 = _float32_inputs(largest)
    if kind == "finite":
        # no inf or NaN in E2M1: ml_dtypes saturates beyond ±6, as common.js does, but gives an
        # unspecified pattern for inf input; the microscaling explorer clamps to ±6 first
        x32 = x32[np.isfinite(x32)]
    # every half-way point between neighbouring codes (ties) and its float32 neighbours
    codes = np.arange(2 ** (1 + e + m))
    values = _decoded(dtype, codes)
    finite = np.sort(values[np.isfinite(values)])
    mid = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)
    x32 = np.concatenate([x32, mid, np.nextafter(mid, np.float32(np.inf)),
                          np.nextafter(mid, np.float32(-np.inf))])
    got = js(f"(v) => floatEncode(v, floatFormat({name!r}, {e}, {m}, {kind!r}))",
             x32.astype(np.float64))[:, 0]
    want = _patterns(dtype, x32)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(float(x32[i]), int(got[i]), int(want[i])) for i in bad[:5]]


def _decoded(dtype: np.dtype, codes: np.ndarray) -> np.ndarray:
    if dtype == FORMATS["float4_e2m1fn"][3]:
        return codes.astype(np.uint8).view(dtype).astype(np.float64)
    raw = codes.astype(np.uint8 if dtype.itemsize == 1 else np.uint16)
    with np.errstate(invalid="ignore"):  # NaN patterns
        return raw.view(dtype).astype(np.float64)


@pytest.mark.parametrize("name", FORMATS)
def test_float_decode_equals_ml_dtypes_for_every_pattern(name):
    e, m, kind, dtype = FORMATS[name]
    codes = np.arange(2 ** (1 + e + m))
    got = js(f"(p) => floatDecode(p, floatFormat({name!r}, {e}, {m}, {kind!r}))", codes)[:, 0]
    assert same_bits(got, _decoded(dtype, codes))  # -0.0, subnormals, inf and NaN included
