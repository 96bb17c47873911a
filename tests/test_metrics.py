"""quantbook.metrics: mse, max_abs_error, sqnr_db."""

import math

import numpy as np
import pytest
import torch

from quantbook import metrics, symmetric


def test_exact_values():
    x, x_hat = [1.0, 2.0, 3.0], [1.0, 2.0, 5.0]
    assert metrics.mse(x, x_hat) == 4 / 3
    assert metrics.max_abs_error(x, x_hat) == 2.0
    assert metrics.sqnr_db(x, x_hat) == 10 * math.log10(14 / 4)
    assert metrics.sqnr_db([3.0, 4.0], [3.0, 3.0]) == pytest.approx(13.979400086720377, rel=1e-15)


def test_return_python_floats():
    for f in (metrics.mse, metrics.max_abs_error, metrics.sqnr_db):
        assert type(f(np.float32([1, 2]), np.float32([1, 3]))) is float


def test_perfect_and_silent():
    assert metrics.mse([1.0, -2.0], [1.0, -2.0]) == 0.0
    assert metrics.sqnr_db([1.0, -2.0], [1.0, -2.0]) == math.inf
    assert metrics.sqnr_db([0.0, 0.0], [0.0, 1.0]) == -math.inf


def test_float32_inputs_accumulate_in_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_001).astype(np.float32)
    x_hat = x + np.float32(1e-3) * rng.standard_normal(100_001).astype(np.float32)
    expected = np.mean((x.astype(np.float64) - x_hat.astype(np.float64)) ** 2)
    assert metrics.mse(x, x_hat) == expected


def test_mixed_float64_and_float32_like_numpy():
    x = np.random.default_rng(1).uniform(-1, 1, 1000)
    x_hat = x.astype(np.float32)
    assert metrics.mse(x, x_hat) == np.mean((x - x_hat) ** 2)


def test_torch_tensors():
    x = torch.tensor([1.0, 2.0, 3.0])
    x_hat = torch.tensor([1.0, 2.0, 5.0])
    assert metrics.mse(x, x_hat) == pytest.approx(4 / 3, rel=1e-15)
    assert metrics.max_abs_error(x, x_hat) == 2.0
    assert metrics.sqnr_db(x, x_hat) == pytest.approx(10 * math.log10(3.5), rel=1e-15)


def test_six_db_per_bit():
    x = np.random.default_rng(2).uniform(-1, 1, 200_000)
    sqnr = {b: metrics.sqnr_db(x, symmetric.fake_quantize(x, b)) for b in (6, 7, 8)}
    for b in (7, 8):
        # about 20 log10(2) = 6.02 dB; exactly the ratio of the restricted step counts
        levels_ratio = (2 ** (b - 1) - 1) / (2 ** (b - 2) - 1)
        assert sqnr[b] - sqnr[b - 1] == pytest.approx(20 * math.log10(levels_ratio), abs=0.03)
        assert sqnr[b] - sqnr[b - 1] == pytest.approx(6.02, abs=0.2)


@pytest.mark.parametrize("f", [metrics.mse, metrics.max_abs_error, metrics.sqnr_db])
def test_bad_input(f):
    with pytest.raises(ValueError, match="x_hat"):
        f([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="x contains NaN"):
        f([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="x_hat contains"):
        f([1.0, 2.0], [1.0, np.inf])
    with pytest.raises(ValueError, match="empty"):
        f([], [])
    with pytest.raises(TypeError, match="x_hat"):
        f([1.0], ["a"])
