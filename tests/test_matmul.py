"""quantbook.matmul: integer matmul, fixed-point requantization (Jacob et al. 2018, gemmlowp).

The exact references below are written from the *meaning* of each step with Python integers and
fractions (no int32/int64 tricks), so they check the NumPy bit manipulation independently.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantbook import affine, matmul, symmetric

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def srdhm_reference(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    return math.floor(Fraction(a * b, 2**31) + Fraction(1, 2))


def rdbpot_reference(x: int, exponent: int) -> int:
    magnitude = math.floor(Fraction(abs(x), 2**exponent) + Fraction(1, 2))
    return magnitude if x >= 0 else -magnitude


# --- integer matmul ------------------------------------------------------------------------------


def test_integer_matmul_exact_small():
    qa = np.array([[1, 2], [3, 4]], dtype=np.int8)
    qb = np.array([[5, 6], [7, 8]], dtype=np.int8)
    acc = matmul.integer_matmul(qa, qb)
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, [[19, 22], [43, 50]])
    acc = matmul.integer_matmul(qa, qb, zero_point_a=1, zero_point_b=5)
    np.testing.assert_array_equal(acc, [[0 * 0 + 1 * 2, 0 * 1 + 1 * 3], [2 * 0 + 3 * 2,
                                                                           2 * 1 + 3 * 3]])


def test_integer_matmul_uint8_with_zero_points_does_not_wrap():
    qa = np.array([[255, 0]], dtype=np.uint8)
    qb = np.array([[255], [255]], dtype=np.uint8)
    np.testing.assert_array_equal(matmul.integer_matmul(qa, qb), [[65025]])
    np.testing.assert_array_equal(matmul.integer_matmul(qa, qb, 128, 128),
                                  [[127 * 127 - 128 * 127]])


def test_integer_matmul_random_against_int64_and_torch():
    rng = np.random.default_rng(0)
    qa = rng.integers(0, 256, (17, 300), dtype=np.uint8)
    qb = rng.integers(-128, 128, (300, 9), dtype=np.int8)
    zb = rng.integers(-5, 6, 9)
    acc = matmul.integer_matmul(qa, qb, 131, zb)
    reference = (qa.astype(np.int64) - 131) @ (qb.astype(np.int64) - zb)
    np.testing.assert_array_equal(acc, reference)
    t = matmul.integer_matmul(torch.from_numpy(qa), torch.from_numpy(qb), 131, torch.from_numpy(zb))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int32
    torch_ref = (torch.from_numpy(qa).to(torch.int64) - 131) @ (
        torch.from_numpy(qb).to(torch.int64) - torch.from_numpy(zb))
    assert torch.equal(t.to(torch.int64), torch_ref)


def test_integer_matmul_expanded_equals_direct():
    rng = np.random.default_rng(1)
    qa = rng.integers(0, 256, (6, 50), dtype=np.uint8)
    qb = rng.integers(0, 256, (50, 4), dtype=np.uint8)
    np.testing.assert_array_equal(matmul.integer_matmul_expanded(qa, qb, 120, 135),
                                  matmul.integer_matmul(qa, qb, 120, 135))


def test_integer_matmul_overflow_and_bad_input():
    big = np.full((1, 40_000), 255, dtype=np.uint8)
    with pytest.raises(OverflowError, match="int32"):
        matmul.integer_matmul(big, big.T)
    with pytest.raises(ValueError, match="qa"):
        matmul.integer_matmul(np.ones((2, 3), np.int8), np.ones((2, 3), np.int8))
    with pytest.raises(TypeError, match="qa"):
        matmul.integer_matmul(np.array([[0.5]]), np.ones((1, 1), np.int8))
    assert matmul.integer_matmul(np.zeros((0, 3), np.int8), np.zeros((3, 2), np.int8)).shape == (
        0, 2)


# --- multiplier ----------------------------------------------------------------------------------


def test_requantization_multiplier():
    assert matmul.requantization_multiplier(0.02, 0.005, 0.1) == pytest.approx(0.001, rel=1e-15)
    m = matmul.requantization_multiplier(0.5, np.array([0.25, 0.5]), 1.0)
    np.testing.assert_array_equal(m, [0.125, 0.25])
    with pytest.raises(ValueError, match="scale_out"):
        matmul.requantization_multiplier(0.1, 0.1, 0.0)


@pytest.mark.parametrize(
    ("multiplier", "m0", "shift"),
    [(0.5, 2**30, 0), (0.25, 2**30, 1), (0.75, 3 * 2**29, 0), (0.3, 1288490189, 1),
     (0.001, 1099511628, 9), (2**-32, 2**30, 31), (1 - 2**-40, INT32_MAX, 0)],
)
def test_quantize_multiplier_exact(multiplier, m0, shift):
    assert matmul.quantize_multiplier(multiplier) == (m0, shift)


@settings(max_examples=200, deadline=None)
@given(st.floats(2**-31, 1.0, exclude_max=True))
def test_quantize_multiplier_represents_m(multiplier):
    m0, shift = matmul.quantize_multiplier(multiplier)
    assert 2**30 <= m0 <= INT32_MAX and 0 <= shift <= 31
    assert abs(m0 * 2.0 ** (-31 - shift) - multiplier) <= multiplier * 2**-30


def test_quantize_multiplier_arrays_and_bad_input():
    m0, shift = matmul.quantize_multiplier(np.array([0.5, 0.001]))
    assert m0.dtype == np.int32 and shift.dtype == np.int32
    np.testing.assert_array_equal(m0, [2**30, 1099511628])
    np.testing.assert_array_equal(shift, [0, 9])
    for bad in (0.0, -0.5, 1.0, 2.5):
        with pytest.raises(ValueError, match="multiplier"):
            matmul.quantize_multiplier(bad)
    with pytest.raises(ValueError, match="multiplier"):
        matmul.quantize_multiplier(2**-40)
    with pytest.raises(ValueError, match="multiplier contains"):
        matmul.quantize_multiplier(float("nan"))


# --- gemmlowp fixed-point steps ----------------------------------------------------------------


def test_srdhm_exact_values():
    a = [2**30, INT32_MIN, INT32_MIN, 3, -3, -(2**30), 2**30, INT32_MAX]
    b = [2**30, INT32_MIN, 2**30, 2**30, 2**30, 1, 1, INT32_MAX]
    out = matmul.saturating_rounding_doubling_high_mul(a, b)
    assert out.dtype == np.int32
    # 2**60/2**31 = 2**29; saturation; -2**61/2**31; 1.5 -> 2; -1.5 -> -1 (ties up);
    # -0.5 -> 0, +0.5 -> 1; (2**31-1)**2 / 2**31 = 2**31 - 2 + 2**-31 -> 2**31 - 2
    np.testing.assert_array_equal(out, [2**29, INT32_MAX, -(2**30), 2, -1, 0, 1, 2**31 - 2])


def test_rdbpot_exact_values():
    out = matmul.rounding_divide_by_pot([5, -5, 3, -3, 7, -7, 6, -6, 4, 1, -1], 1)
    np.testing.assert_array_equal(out, [3, -3, 2, -2, 4, -4, 3, -3, 2, 1, -1])
    np.testing.assert_array_equal(matmul.rounding_divide_by_pot([7, -7, 6, -6, 5], 2),
                                  [2, -2, 2, -2, 1])
    np.testing.assert_array_equal(matmul.rounding_divide_by_pot([7, -7], 0), [7, -7])
    with pytest.raises(ValueError, match="exponent"):
        matmul.rounding_divide_by_pot([1], 32)


int32s = st.integers(INT32_MIN, INT32_MAX)


@settings(max_examples=200, deadline=None)
@given(int32s, int32s)
def test_srdhm_against_exact_reference(a, b):
    assert int(matmul.saturating_rounding_doubling_high_mul(a, b)) == srdhm_reference(a, b)


@settings(max_examples=200, deadline=None)
@given(int32s, st.integers(0, 31))
def test_rdbpot_against_exact_reference(x, exponent):
    assert int(matmul.rounding_divide_by_pot(x, exponent)) == rdbpot_reference(x, exponent)


def test_fixed_point_vectorised_against_reference():
    rng = np.random.default_rng(2)
    acc = rng.integers(-(2**24), 2**24, 2000)
    m0 = rng.integers(2**30, 2**31, 2000)
    shift = rng.integers(0, 20, 2000)
    out = matmul.fixed_point_multiply(acc, m0, shift)
    expected = [rdbpot_reference(srdhm_reference(int(a), int(m)), int(s))
                for a, m, s in zip(acc, m0, shift, strict=True)]
    np.testing.assert_array_equal(out, expected)


def test_fixed_point_multiply_close_to_real_product():
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2**20), 2**20, 50_000)
    for multiplier in (0.0123, 0.5, 0.000731, 0.999):
        m0, shift = matmul.quantize_multiplier(multiplier)
        out = matmul.fixed_point_multiply(acc, m0, shift).astype(np.int64)
        exact = np.rint(acc * multiplier)
        assert np.abs(out - exact).max() <= 1
        if multiplier == 0.5:
            # every odd acc is a tie: SRDHM rounds ties up, rint to even
            np.testing.assert_array_equal(out, np.floor(acc / 2 + 0.5))
        else:
            assert (out == exact).mean() > 0.99


# --- requantization and the linear layer -------------------------------------------------------


def test_requantize_matches_float_reference_within_one_step():
    rng = np.random.default_rng(4)
    acc = rng.integers(-(2**18), 2**18, (64, 16)).astype(np.int32)
    multiplier = 0.00037
    q = matmul.requantize(acc, multiplier, 3)
    q_float = matmul.requantize_float(acc, multiplier, 3)
    assert q.dtype == np.int8 and q_float.dtype == np.int8
    diff = np.abs(q.astype(int) - q_float.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    # per-channel multipliers broadcast along the last axis
    per_channel = np.linspace(0.0001, 0.0005, 16)
    q_pc = matmul.requantize(acc, per_channel, 3)
    m0, shift = matmul.quantize_multiplier(per_channel)
    expected = np.clip(
        [[rdbpot_reference(srdhm_reference(int(a), int(m0[k])), int(shift[k])) + 3
          for k, a in enumerate(row)] for row in acc], -128, 127)
    np.testing.assert_array_equal(q_pc, expected)


def test_requantize_unsigned_and_clamps():
    q = matmul.requantize(np.array([-10**6, 0, 1000, 10**6]), 0.01, 128, signed=False)
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [0, 128, 138, 255])


def test_quantize_bias():
    qb = matmul.quantize_bias([0.5, -0.25, 0.0], 0.01, 0.1)
    assert qb.dtype == np.int32
    np.testing.assert_array_equal(qb, [500, -250, 0])


def _layer(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 64))
    w = rng.standard_normal((16, 64)) * 0.2
    b = rng.standard_normal(16) * 0.1
    qx, sx, zx = affine.quantize_minmax(x, signed=False)
    qw, sw = symmetric.quantize(w, axis=0)
    sw = sw[:, 0]
    x_hat = affine.dequantize(qx, sx, zx).astype(np.float64)
    w_hat = symmetric.dequantize(qw, sw[:, None]).astype(np.float64)
    y = x_hat @ w_hat.T + b
    sy, zy = affine.qparams(y.min(), y.max(), signed=False)
    return qx, sx, zx, qw, sw, b, y, sy, zy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantized_linear_against_float(seed):
    qx, sx, zx, qw, sw, b, y, sy, zy = _layer(seed)
    q_y = matmul.quantized_linear(qx, sx, zx, qw, sw, 0, sy, zy, bias=b, signed=False)
    assert q_y.dtype == np.uint8
    q_ref = affine.quantize(y, sy, zy, signed=False)
    diff = np.abs(q_y.astype(int) - q_ref.astype(int))
    assert diff.max() <= 1
    y_hat = affine.dequantize(q_y, sy, zy)
    assert np.abs(y_hat - y).max() <= 1.5 * sy


def test_quantized_linear_exact_integer_reference():
    qx, sx, zx, qw, sw, b, _, sy, zy = _layer(5)
    q_y = matmul.quantized_linear(qx, sx, zx, qw, sw, 0, sy, zy, bias=b, signed=False)
    m0, shift = matmul.quantize_multiplier(sx * sw / sy)
    q_bias = [round(Fraction(float(b[k])) / (Fraction(sx) * Fraction(float(sw[k]))))
              for k in range(16)]
    expected = np.zeros(q_y.shape, dtype=int)
    for i in range(qx.shape[0]):
        for k in range(qw.shape[0]):
            acc = sum((int(qx[i, j]) - zx) * int(qw[k, j]) for j in range(qx.shape[1]))
            acc += q_bias[k]
            out = rdbpot_reference(srdhm_reference(acc, int(m0[k])), int(shift[k])) + zy
            expected[i, k] = min(max(out, 0), 255)
    np.testing.assert_array_equal(q_y, expected)


def test_quantized_linear_torch_in_torch_out():
    qx, sx, zx, qw, sw, b, _, sy, zy = _layer(6)
    out = matmul.quantized_linear(torch.from_numpy(qx), sx, zx, torch.from_numpy(qw), sw, 0, sy,
                                  zy, bias=b, signed=False)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    np.testing.assert_array_equal(
        out.numpy(), matmul.quantized_linear(qx, sx, zx, qw, sw, 0, sy, zy, bias=b, signed=False))
