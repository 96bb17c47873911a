"""quantbook.embeddings: the seed 000 example, sentence-transformers, torch and ml_dtypes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantbook.embeddings import (
    PRECISIONS,
    calibration_ranges,
    dequantize_embeddings,
    hamming_distance,
    popcount,
    popcount_table,
    quantize_embeddings,
)

# --- seed 000_dc78cf72d173619a: one 18-dimensional embedding in five precisions ---------------
SEED_FLOAT = [
    -0.11944580078125, -0.2734375, 0.040771484375, 0.3056640625, -0.1470947265625,
    -0.11749267578125, 0.0799560546875, 0.08282470703125, -0.04205322265625, 0.220947265625,
    0.0015048980712890625, -0.00397491455078125, -0.01099395751953125, -0.052642822265625,
    0.0504150390625, 0.01605224609375, 0.029693603515625, -0.024078369140625,
]  # fmt: skip
SEED_INT8 = [-15, -35, 5, 39, -19, -15, 10, 11, -5, 28, 0, 0, -2, -7, 6, 2, 4, -3]
SEED_UINT8 = [
    112, 93, 133, 166, 109, 112, 138, 138, 122, 156, 128, 127, 126, 121, 134, 130, 131, 124,
]  # fmt: skip
SEED_BINARY = [-77, -29, 0]
SEED_UBINARY = [51, 99, 128]
# the seed's printed tensors (4 decimals)
SEED_PRINTED_INT8 = [
    -0.1181, -0.2756, 0.0394, 0.3071, -0.1496, -0.1181, 0.0787, 0.0866, -0.0394, 0.2205,
    0.0000, 0.0000, -0.0157, -0.0551, 0.0472, 0.0157, 0.0315, -0.0236,
]  # fmt: skip
SEED_PRINTED_UINT8 = [
    -0.1216, -0.2706, 0.0431, 0.3020, -0.1451, -0.1216, 0.0824, 0.0824, -0.0431, 0.2235,
    0.0039, -0.0039, -0.0118, -0.0510, 0.0510, 0.0196, 0.0275, -0.0275,
]  # fmt: skip
SEED_PRINTED_BITS = [255, 255, 1, 1, 255, 255, 1, 1, 255, 1, 1, 255, 255, 255, 1, 1, 1, 255]


def test_seed_int8_dequantized_as_printed():
    x_hat = dequantize_embeddings(SEED_INT8, "int8")
    assert x_hat.dtype == np.float32
    np.testing.assert_array_equal(np.round(x_hat, 4), np.array(SEED_PRINTED_INT8, np.float32))
    # full precision: the seed's torch computation q.float() / 127.0, bit for bit
    torch_values = (torch.tensor(SEED_INT8).float() / 127.0).numpy()
    np.testing.assert_array_equal(x_hat, torch_values)
    assert x_hat[0] == np.float32(-15) / np.float32(127)


def test_seed_uint8_dequantized_as_printed():
    x_hat = dequantize_embeddings(SEED_UINT8, "uint8")
    np.testing.assert_array_equal(np.round(x_hat, 4), np.array(SEED_PRINTED_UINT8, np.float32))
    torch_values = (torch.tensor(SEED_UINT8).float() / 127.5 - 1.0).numpy()
    np.testing.assert_array_equal(x_hat, torch_values)


def test_seed_binary_codes_reproduced():
    x = np.array(SEED_FLOAT, np.float32)
    np.testing.assert_array_equal(quantize_embeddings(x, "binary"), SEED_BINARY)
    np.testing.assert_array_equal(quantize_embeddings(x, "ubinary"), SEED_UBINARY)
    assert quantize_embeddings(x, "binary").dtype == np.int8
    assert quantize_embeddings(x, "ubinary").dtype == np.uint8


def test_seed_255_is_the_uint8_wrap_of_minus_one():
    # The seed's computation: unpack in uint8, then bits * 2 - 1 still in uint8.
    for codes, signed in ((SEED_BINARY, True), (SEED_UBINARY, False)):
        arr = (np.array(codes) + (128 if signed else 0)).astype(np.uint8)
        bits = np.unpackbits(arr, axis=-1)[..., :18]
        buggy = bits * 2 - 1
        assert buggy.dtype == np.uint8
        np.testing.assert_array_equal(buggy, SEED_PRINTED_BITS)
    expected = np.where(np.array(SEED_PRINTED_BITS) == 255, -1.0, 1.0)
    for codes, precision in ((SEED_BINARY, "binary"), (SEED_UBINARY, "ubinary")):
        fixed = dequantize_embeddings(codes, precision, dim=18)
        assert fixed.dtype == np.float32
        np.testing.assert_array_equal(fixed, expected)
        np.testing.assert_array_equal(fixed, np.where(np.array(SEED_FLOAT) > 0, 1.0, -1.0))


def test_seed_api_rounding_differs_from_rint_at_two_positions():
    x = np.array(SEED_FLOAT, np.float32)
    ours = quantize_embeddings(x, "int8").astype(int)
    diff = np.array(SEED_INT8) - ours
    np.testing.assert_array_equal(np.flatnonzero(diff), [11, 12])
    np.testing.assert_array_equal(diff[[11, 12]], [1, -1])
    # 127·x there: -0.505 (rint: -1, the API: 0) and -1.396 (rint: -1, the API: -2)
    np.testing.assert_allclose(127 * x[[11, 12]], [-0.50481, -1.39623], atol=1e-5)
    # uint8: one position differs (127.5·(x+1) = 112.52, rint 113, the API 112)
    diff_u = np.array(SEED_UINT8) - quantize_embeddings(x, "uint8").astype(int)
    np.testing.assert_array_equal(np.flatnonzero(diff_u), [5])
    assert diff_u[5] == -1


def test_seed_dequantized_within_061_step_ours_within_half_step():
    x = np.array(SEED_FLOAT, np.float32)
    for codes, precision, step in ((SEED_INT8, "int8", 1 / 127), (SEED_UINT8, "uint8", 1 / 127.5)):
        api_error = np.abs(dequantize_embeddings(codes, precision) - x) / step
        assert api_error.max() <= 0.61
        assert api_error.max() > 0.5  # the API's own rounding: not round-to-nearest everywhere
        ours = dequantize_embeddings(quantize_embeddings(x, precision), precision)
        assert (np.abs(ours - x) / step).max() <= 0.5 + 1e-5
    assert np.abs(dequantize_embeddings(SEED_INT8, "int8") - x).max() * 127 == pytest.approx(
        0.6038, abs=1e-4
    )


# --- cross-check with sentence-transformers 6.2 ------------------------------------------------
# Only these cross-checks need sentence-transformers: without it they skip, the rest still runs.
@pytest.fixture
def st_quantize():
    return pytest.importorskip("sentence_transformers").quantize_embeddings


def _random_embeddings(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
@pytest.mark.parametrize("d", [384, 18, 7])
def test_binary_equals_sentence_transformers(precision, d, st_quantize):
    x = _random_embeddings(50, d, seed=d)
    x[0, :3] = 0.0  # x = 0 is not > 0 in both
    ours = quantize_embeddings(x, precision)
    theirs = st_quantize(x, precision)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("precision", ["int8", "uint8"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_calibrated_equals_sentence_transformers_bit_for_bit(precision, dtype, st_quantize):
    calibration = _random_embeddings(500, 64, seed=1)
    ranges = calibration_ranges(calibration)
    np.testing.assert_array_equal(
        ranges, np.vstack([calibration.min(axis=0), calibration.max(axis=0)])
    )
    x = _random_embeddings(300, 64, seed=2).astype(dtype)
    inside = np.clip(x, ranges[0], ranges[1])
    # the range edges and the midpoints
    edges = np.vstack([ranges[0], ranges[1], (ranges[0] + ranges[1]) / 2]).astype(dtype)
    for values in (inside, edges, calibration.astype(dtype)):
        ours = quantize_embeddings(values, precision, ranges=ranges)
        theirs = st_quantize(values, precision, ranges=ranges)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    # x = max lands in the top bucket only when (max − min) / step is not rounded below 255:
    # floor(254.99998) = 254 happens in some dimensions (in both libraries, same dimensions)
    top = 255 if precision == "uint8" else 127
    at_max = quantize_embeddings(edges, precision, ranges=ranges)[1].astype(int)
    assert set(at_max) <= {top - 1, top}
    assert (at_max == top - 1).sum() == (6 if dtype == np.float32 else 33)


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_calibrated_outside_range_clamps_like_sentence_transformers(precision, st_quantize):
    ranges = np.array([[-0.2, -0.1, 0.0], [0.2, 0.1, 0.0]], np.float32)  # last: zero width
    x = np.array([[-0.9, 0.15, -0.5], [0.9, -0.4, 0.5], [0.25, 5.0, 0.0]], np.float32)
    ours = quantize_embeddings(x, precision, ranges=ranges)
    np.testing.assert_array_equal(ours, st_quantize(x, precision, ranges=ranges))
    low, high = (-128, 127) if precision == "int8" else (0, 255)
    assert ours[0, 0] == low and ours[1, 0] == high and ours[1, 1] == low and ours[2, 1] == high


def test_calibrated_dequantize_is_bucket_centre_within_half_step():
    calibration = _random_embeddings(400, 32, seed=3)
    ranges = calibration_ranges(calibration)
    step = (ranges[1] - ranges[0]) / 255
    x = np.clip(_random_embeddings(200, 32, seed=4), ranges[0], ranges[1])
    for precision in ("int8", "uint8"):
        q = quantize_embeddings(x, precision, ranges=ranges)
        x_hat = dequantize_embeddings(q, precision, ranges=ranges)
        assert x_hat.dtype == np.float32
        assert (np.abs(x_hat - x) <= step / 2 * (1 + 1e-4)).all()
        # sentence-transformers' rescoring dequantizes to the lower edge of the bucket instead
        u = q.astype(np.float64) + (128 if precision == "int8" else 0)
        lower = u * step + ranges[0]
        np.testing.assert_allclose(x_hat, lower + step / 2, atol=1e-6)
    zero_width = np.array([[0.3], [0.3]], np.float32)
    assert dequantize_embeddings(np.array([[0]], np.uint8), "uint8", ranges=zero_width)[0, 0] == (
        np.float32(0.3)
    )


# --- float8 against torch and ml_dtypes ------------------------------------------------------
def test_float8_matches_torch_and_saturates_at_448():
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.standard_normal(1000),
            rng.uniform(-1, 1, 1000) * 1e-3,
            [448, 449, 463, 465, 1e4, -600],
        ]
    ).astype(np.float32)
    ours = quantize_embeddings(x, "float8")
    assert ours.dtype == ml_dtypes.float8_e4m3fn
    theirs = torch.from_numpy(x).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    np.testing.assert_array_equal(ours.view(np.uint8), theirs)
    back = dequantize_embeddings(ours, "float8")
    np.testing.assert_array_equal(back[-6:], [448, 448, 448, 448, 448, -448])
    # ml_dtypes alone would give NaN above 464: we clamp first
    assert np.isnan(np.float32(465).astype(ml_dtypes.float8_e4m3fn).astype(np.float32))
    # relative error of e4m3 inside the normal range: at most 2^-4 (3 mantissa bits)
    normal = np.abs(x[:1000]) > 2.0**-6
    rel = np.abs(back[:1000][normal] - x[:1000][normal]) / np.abs(x[:1000][normal])
    assert rel.max() <= 2.0**-4


def test_float8_torch_round_trip_and_strict_dequantize():
    x = torch.tensor([[0.1, -0.25, 0.3]])
    q = quantize_embeddings(x, "float8")
    assert q.dtype == torch.float8_e4m3fn
    back = dequantize_embeddings(q, "float8")
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    np.testing.assert_array_equal(back.numpy(), [[0.1015625, -0.25, 0.3125]])
    exact = [0.1015625, -0.25]
    np.testing.assert_array_equal(dequantize_embeddings(exact, "float8"), exact)
    with pytest.raises(ValueError, match="q holds values that are not float8"):
        dequantize_embeddings([0.1], "float8")


# --- fixed range ------------------------------------------------------------------------------
def test_fixed_range_clamps_out_of_range_values():
    x = np.array([-3.0, -1.0, -0.999, 0.0, 1.0, 1.5], np.float32)
    np.testing.assert_array_equal(quantize_embeddings(x, "int8"), [-127, -127, -127, 0, 127, 127])
    np.testing.assert_array_equal(quantize_embeddings(x, "uint8"), [0, 0, 0, 128, 255, 255])
    # without clamping, astype(int8) would wrap 127·1.5 = 190.5 to -66
    assert np.array([np.rint(127 * 1.5)]).astype(np.int8)[0] == -66


def test_uint8_zero_is_not_exact_int8_zero_is():
    # 127.5·(0 + 1) = 127.5 rounds (half to even) to 128, which dequantizes to 0.5/127.5
    assert dequantize_embeddings(quantize_embeddings([0.0], "int8"), "int8")[0] == 0.0
    zero_back = dequantize_embeddings(quantize_embeddings([0.0], "uint8"), "uint8")[0]
    assert zero_back == pytest.approx(1 / 255, abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 40)),
        elements=st.floats(-1, 1, width=32),
    )
)
def test_fixed_range_round_trip_within_half_step(x):
    for precision, step in (("int8", 1 / 127), ("uint8", 1 / 127.5)):
        x_hat = dequantize_embeddings(quantize_embeddings(x, precision), precision)
        assert (np.abs(x_hat - x) <= step / 2 + 1e-6).all()
    bits = dequantize_embeddings(quantize_embeddings(x, "ubinary"), "ubinary", dim=x.shape[1])
    np.testing.assert_array_equal(bits, np.where(x > 0, 1.0, -1.0))


# --- binary: dims not divisible by 8, the zero threshold --------------------------------------
def test_dims_not_divisible_by_8_and_zero_threshold():
    x = np.array([0.5, -0.5, 0.0, 0.1, -0.0, 0.2, 0.3, -0.1, 0.7, -0.9, 0.4], np.float32)  # 11
    packed = quantize_embeddings(x, "ubinary")
    assert packed.shape == (2,)
    # bits 1 0 0 1 0 1 1 0 | 1 0 1 + five padding zeros
    np.testing.assert_array_equal(packed, [0b10010110, 0b10100000])
    back = dequantize_embeddings(packed, "ubinary", dim=11)
    np.testing.assert_array_equal(back, [1, -1, -1, 1, -1, 1, 1, -1, 1, -1, 1])
    assert dequantize_embeddings(packed, "ubinary").shape == (16,)  # default: every bit
    # x >= 0 would set the bits of the two zeros (positions 2 and 4): a different code
    assert np.packbits(x >= 0)[0] == 0b10111110


# --- kinds, shapes, empty -----------------------------------------------------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_torch_in_torch_out_and_list_in_numpy_out(precision):
    x = _random_embeddings(4, 16, seed=6)
    q_np = quantize_embeddings(x, precision)
    q_t = quantize_embeddings(torch.from_numpy(x), precision)
    assert isinstance(q_t, torch.Tensor)
    q_t_np = q_t.view(torch.uint8).numpy() if precision == "float8" else q_t.numpy()
    q_np_view = q_np.view(np.uint8) if precision == "float8" else q_np
    np.testing.assert_array_equal(q_t_np, q_np_view)
    np.testing.assert_array_equal(quantize_embeddings(x.tolist(), precision), q_np)
    dim = 16 if precision.endswith("binary") else None
    back_t = dequantize_embeddings(q_t, precision, dim=dim)
    assert isinstance(back_t, torch.Tensor) and back_t.dtype == torch.float32
    np.testing.assert_array_equal(back_t.numpy(), dequantize_embeddings(q_np, precision, dim=dim))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_empty_in_empty_out(precision):
    q = quantize_embeddings(np.zeros((0, 16), np.float32), precision)
    assert q.shape == ((0, 2) if precision.endswith("binary") else (0, 16))
    assert dequantize_embeddings(q, precision).shape == (0, 16)


# --- bad input ----------------------------------------------------------------------------------
def test_bad_input_errors_name_the_argument():
    x = np.array([[0.1, -0.2, 0.3]], np.float32)
    with pytest.raises(ValueError, match="precision must be one of"):
        quantize_embeddings(x, "int4")
    with pytest.raises(ValueError, match="precision must be one of"):
        dequantize_embeddings([1, 2], "fp8")
    with pytest.raises(ValueError, match="x contains NaN"):
        quantize_embeddings([0.1, np.nan], "int8")
    with pytest.raises(ValueError, match="x contains an infinite"):
        quantize_embeddings([0.1, np.inf], "float8")
    with pytest.raises(ValueError, match=r"ranges must have shape \(2, 3\)"):
        quantize_embeddings(x, "int8", ranges=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"ranges\[0\] \(minimum\) must be <="):
        quantize_embeddings(x, "uint8", ranges=[[0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="ranges contains NaN"):
        quantize_embeddings(x, "uint8", ranges=[[0, 0, np.nan], [1, 1, 1]])
    with pytest.raises(ValueError, match="ranges only apply"):
        quantize_embeddings(x, "binary", ranges=[[0, 0, 0], [1, 1, 1]])
    with pytest.raises(TypeError, match="x must hold float embeddings"):
        quantize_embeddings(np.array([1, 2], np.int8), "int8")
    with pytest.raises(ValueError, match="dim must be at most 24"):
        dequantize_embeddings(SEED_BINARY, "binary", dim=25)
    with pytest.raises(ValueError, match="dim=8 packs into 1 bytes"):
        dequantize_embeddings(SEED_BINARY, "binary", dim=8)
    with pytest.raises(ValueError, match="dim must be None or 18"):
        dequantize_embeddings(SEED_INT8, "int8", dim=20)
    with pytest.raises(ValueError, match=r"q must hold int8 codes in \[-128, 127\]"):
        dequantize_embeddings([200], "int8")
    with pytest.raises(TypeError, match="q must hold integer uint8 codes"):
        dequantize_embeddings([0.5], "uint8")


# --- Hamming distance -------------------------------------------------------------------------
def test_hamming_distance_counts_differing_bits():
    x = _random_embeddings(6, 50, seed=7)
    y = _random_embeddings(9, 50, seed=8)
    a, b = quantize_embeddings(x, "ubinary"), quantize_embeddings(y, "ubinary")
    expected = ((x[:, None, :] > 0) != (y[None, :, :] > 0)).sum(axis=-1)
    d = hamming_distance(a, b)
    assert d.shape == (6, 9) and d.dtype == np.int32
    np.testing.assert_array_equal(d, expected)
    # binary (int8) codes give the same distances: both sides have their top bit flipped
    signed = hamming_distance(quantize_embeddings(x, "binary"), quantize_embeddings(y, "binary"))
    np.testing.assert_array_equal(signed, expected)
    np.testing.assert_array_equal(hamming_distance(a[0], b), expected[0])
    np.testing.assert_array_equal(hamming_distance(a, b[0]), expected[:, 0])
    assert hamming_distance(a[0], b[0]) == expected[0, 0]
    assert hamming_distance(SEED_UBINARY, SEED_UBINARY) == 0
    assert hamming_distance(torch.from_numpy(a), torch.from_numpy(b)).shape == (6, 9)
    np.testing.assert_array_equal(popcount(np.array([0, 1, 255, 0b1011], np.uint8)), [0, 1, 8, 3])
    # the NumPy 1.x fallback (a table of 256 counts) agrees with np.bitwise_count
    words = np.random.default_rng(9).integers(0, 2**63, 1000, dtype=np.uint64)
    np.testing.assert_array_equal(popcount_table(words), popcount(words))
    assert popcount_table(np.array([2**64 - 1], np.uint64))[0] == 64


def test_hamming_distance_bad_input():
    with pytest.raises(TypeError, match="same precision"):
        hamming_distance(np.zeros(3, np.int8), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="same number of bytes"):
        hamming_distance(np.zeros(3, np.uint8), np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="a must hold packed bytes"):
        hamming_distance([300], [1])
