"""The worked examples of the seeds 001-004, reproduced by the package.

The seeds' inputs and printed outputs are copied here; nothing is read from outside the repository.
"""

import numpy as np
import pytest
import torch

from quantbook import affine, metrics, symmetric

# --- 001: zero-point 8-bit quantization of X = [-3.0, 0.1, 3.2] -------------------------------


def test_seed_001_qparams_are_the_seed_scale_factor_and_zero_point():
    """The seed uses the inverse scale ``255 / (max - min)`` ("Scale factor = 41.129...") and
    ``zeropoint = round(-scale_factor * min - 128)``: qparams(-3.0, 3.2) at signed 8 bits."""
    scale, zero_point = affine.qparams(-3.0, 3.2, bits=8, signed=True)
    assert zero_point == -5
    assert isinstance(zero_point, int) and isinstance(scale, float)
    assert scale == 6.2 / 255
    assert 1 / scale == 41.12903225806451  # printed by the seed


def test_seed_001_quantized_and_dequantized_values():
    x = np.array([[-3.0, 0.1, 3.2]])
    scale, zero_point = affine.qparams(x.min(), x.max())
    q = affine.quantize(x, scale, zero_point)
    np.testing.assert_array_equal(q, [[-128, -1, 127]])
    assert q.dtype == np.int8
    printed = np.array([[-2.99058824, 0.0972549, 3.20941176]])
    x_hat = affine.dequantize(q, scale, zero_point)
    assert x_hat.dtype == np.float32
    np.testing.assert_allclose(x_hat, printed, rtol=2e-7)
    # The seed computes in float64; the same map in float64 gives its printed digits exactly.
    np.testing.assert_array_equal(np.round((q.astype(np.int64) - zero_point) * scale, 8), printed)


def test_seed_001_inverse_scale_convention_is_the_same_map():
    x = np.array([-3.0, 0.1, 3.2])
    scale_factor = 255 / 6.2
    q = affine.quantize_with_scale_factor(x, scale_factor, -5)
    np.testing.assert_array_equal(q, [-128, -1, 127])
    np.testing.assert_array_equal(
        affine.dequantize_with_scale_factor(q, scale_factor, -5),
        np.array([-123, 4, 132], dtype=np.float32) / np.float32(scale_factor),
    )
    np.testing.assert_allclose(
        affine.dequantize_with_scale_factor(q, scale_factor, -5),
        affine.dequantize(q, 1 / scale_factor, -5),
        rtol=1e-6,
    )


# --- 002: LLMBook's alpha=-100, beta=80 at 8 bits ----------------------------------------------

FLOAT_X = [[-1.2136, 28.7341, 8.4974], [-1.9210, -23.7421, 16.2609]]


def test_seed_002_scale_and_truncated_vs_rounded_zero_point():
    alpha, beta = -100.0, 80.0
    assert affine.qrange(8) == (-128, 127)
    scale, zero_point = affine.qparams(alpha, beta)
    assert scale == 180 / 255
    assert zero_point == 14  # round(13.67)
    assert affine.zero_point_truncated(alpha, beta) == 13  # the seed's int(...)
    # The seed's formula, literally:
    assert int((beta * -128 - alpha * 127) / (beta - alpha)) == 13


def test_seed_002_quantize_float_x_with_both_zero_points():
    """The seed's quantize_func computes clamp(round(x / S + Z)); with an integer Z and no ties
    that equals round(x / S) + Z. Both zero points reconstruct the same values (no clipping here);
    they differ in the representable range."""
    x = torch.tensor(FLOAT_X)
    scale = 180 / 255
    q13 = affine.quantize(x, scale, 13)
    q14 = affine.quantize(x, scale, 14)
    assert isinstance(q13, torch.Tensor) and q13.dtype == torch.int8
    assert q13.tolist() == [[11, 54, 25], [10, -21, 36]]
    assert q14.tolist() == [[12, 55, 26], [11, -20, 37]]
    seed_way = torch.clamp(torch.round(x / scale + 13), -128, 127)
    assert seed_way.tolist() == q13.tolist()
    expected = np.array([[-2, 41, 12], [-3, -34, 23]], dtype=np.float32) * np.float32(scale)
    np.testing.assert_array_equal(affine.dequantize(q13, scale, 13).numpy(), expected)
    np.testing.assert_array_equal(affine.dequantize(q14, scale, 14).numpy(), expected)


def test_seed_002_truncated_zero_point_clips_alpha():
    scale = 180 / 255
    lo13, hi13 = affine.representable_range(scale, 13)
    lo14, hi14 = affine.representable_range(scale, 14)
    assert lo13 > -100.0 > lo14  # int() loses the bottom of the range: -100 gets clipped
    assert hi13 > 80.0 and hi14 > 79.5
    assert affine.quantize([-100.0], scale, 13)[0] == -128
    assert affine.clipping_error([-100.0], scale, 13)[0] == pytest.approx(-100 + 141 * scale,
                                                                          abs=1e-5)
    assert affine.clipping_error([-100.0], scale, 14)[0] == 0.0


# --- 003: int4 minmax vs absmax ----------------------------------------------------------------

VALUES_003 = np.array([0.1, 0.5, -1.3, 2.7, 3.9, -0.8, 5.2, -4.7])


def test_seed_003_int4_minmax():
    q, scale, zero_point = affine.quantize_minmax(VALUES_003, bits=4, signed=True)
    assert scale == pytest.approx(9.9 / 15, rel=1e-15)
    assert zero_point == -1  # round(-8 + 4.7 / 0.66) = round(-0.879)
    np.testing.assert_array_equal(q, [-1, 0, -3, 3, 5, -2, 7, -8])
    assert q.min() >= -8 and q.max() <= 7
    x_hat = affine.dequantize(q, scale, zero_point)
    assert metrics.mse(VALUES_003, x_hat) == pytest.approx(0.00945, rel=1e-6)
    assert metrics.max_abs_error(VALUES_003, x_hat) == pytest.approx(0.16, rel=1e-6)


def test_seed_003_int4_absmax():
    q, scale = symmetric.quantize(VALUES_003, bits=4)
    assert scale == 5.2 / 7
    np.testing.assert_array_equal(q, [0, 1, -2, 4, 5, -1, 7, -6])
    x_hat = symmetric.dequantize(q, scale)
    assert metrics.mse(VALUES_003, x_hat) == pytest.approx(0.0342347, rel=1e-5)
    assert metrics.max_abs_error(VALUES_003, x_hat) == pytest.approx(0.2714286, rel=1e-6)


def test_seed_003_minmax_beats_absmax_on_skewed_data():
    q_mm, s_mm, z_mm = affine.quantize_minmax(VALUES_003, bits=4)
    q_am, s_am = symmetric.quantize(VALUES_003, bits=4)
    assert s_mm < s_am  # 15 steps over [-4.7, 5.2] vs 14 steps over [-5.2, 5.2]
    assert metrics.mse(VALUES_003, affine.dequantize(q_mm, s_mm, z_mm)) < metrics.mse(
        VALUES_003, symmetric.dequantize(q_am, s_am))


# --- 004: int8 / int4 MSE on a seeded 100x100 matrix -------------------------------------------

MSE_INT8 = 5.1724704854865734e-06
MSE_INT4 = 0.0017039919225166954


@pytest.fixture(scope="module")
def matrix_004():
    # The seed uses the legacy global generator; a local RandomState gives the same stream.
    return np.random.RandomState(42).uniform(-1, 1, (100, 100))


def test_seed_004_matrix_is_the_seeds(matrix_004):
    np.testing.assert_allclose(matrix_004[0, :3], [-0.25091976, 0.90142861, 0.46398788], atol=5e-9)
    np.testing.assert_allclose(matrix_004[-1, -1], -0.56571919, atol=5e-9)


def test_seed_004_int8_mse(matrix_004):
    """The seed: ``scale = np.max(np.abs(m)) / 127`` (float64), ``np.round(m / scale)`` cast to
    int8, dequantized as ``q.astype(np.float32) * scale``. Under NumPy 2 (NEP 50) a float32 array
    times a float64 *NumPy scalar* is float64, so the reconstruction is exact float64 products;
    that path gives the printed digits. A float32 reconstruction (NumPy 1's value-based casting,
    or our float32 ``dequantize``) gives 5.17247195e-06 instead."""
    q, scale = symmetric.quantize(matrix_004, bits=8)
    assert scale == np.max(np.abs(matrix_004)) / 127
    np.testing.assert_array_equal(q[0, :3], [-32, 114, 59])
    np.testing.assert_array_equal(q[-1, -3:], [113, -26, -72])
    seed_path = q.astype(np.float32) * np.float64(scale)
    assert seed_path.dtype == np.float64
    assert metrics.mse(matrix_004, seed_path) == pytest.approx(MSE_INT8, rel=1e-12)
    ours = symmetric.dequantize(q, scale)
    assert ours.dtype == np.float32
    assert metrics.mse(matrix_004, ours) == pytest.approx(5.1724719548082445e-06, rel=1e-12)
    assert metrics.mse(matrix_004, ours) != pytest.approx(MSE_INT8, rel=1e-9)
    assert metrics.mse(matrix_004, ours) == pytest.approx(MSE_INT8, rel=1e-6)


def test_seed_004_int4_mse(matrix_004):
    """The seed's int4: ``scale = max|m| / 7``, ``np.clip(np.round(m / scale), -8, 7)``: the clip
    to -8 never acts (|m / scale| <= 7), so it is our restricted range [-7, 7]."""
    q, scale = symmetric.quantize(matrix_004, bits=4)
    assert scale == np.max(np.abs(matrix_004)) / 7
    assert q.min() == -7 and q.max() == 7
    seed_q = np.clip(np.round(matrix_004 / scale), -8, 7).astype(np.int8)
    np.testing.assert_array_equal(q, seed_q)
    seed_path = q.astype(np.float32) * np.float64(scale)
    assert metrics.mse(matrix_004, seed_path) == pytest.approx(MSE_INT4, rel=1e-12)
    assert metrics.mse(matrix_004, symmetric.dequantize(q, scale)) == pytest.approx(
        MSE_INT4, rel=1e-6)


def test_seed_004_float32_path_differs(matrix_004):
    """Casting the scale to float32 too (as NumPy 1 did) moves the 8th significant digit."""
    q, scale = symmetric.quantize(matrix_004, bits=8)
    legacy = q.astype(np.float32) * np.float32(scale)
    assert metrics.mse(matrix_004, legacy) == pytest.approx(5.1724719548082445e-06, rel=1e-12)
