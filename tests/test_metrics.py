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


# --- shape statistics: crest factor and excess kurtosis -----------------------------------------


def test_crest_factor_known_values():
    assert metrics.crest_factor([1.0, -1.0, 1.0]) == 1.0                  # equal magnitudes
    assert metrics.crest_factor([0.0, 0.0, 0.0, 5.0]) == 2.0              # one spike: sqrt(n)
    assert metrics.crest_factor([3.0, 4.0]) == 4.0 / math.sqrt(12.5)
    uniform = np.linspace(-1.0, 1.0, 200_001)
    assert metrics.crest_factor(uniform) == pytest.approx(math.sqrt(3), rel=1e-4)


def test_crest_factor_predicts_the_sqnr_of_symmetric_quantization():
    """The docstring's rule: SQNR ~ 10 log10(12 (2^(b-1) - 1)^2 / C^2) for values on the grid."""
    x = np.random.default_rng(0).uniform(-1, 1, 100_000)
    for bits in (6, 8):
        q, s = symmetric.quantize(x, bits)
        predicted = 10 * math.log10(12 * (2 ** (bits - 1) - 1) ** 2 / metrics.crest_factor(x) ** 2)
        assert metrics.sqnr_db(x, symmetric.dequantize(q, s)) == pytest.approx(predicted, abs=0.1)


def test_excess_kurtosis_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for x in (rng.standard_normal(5000), rng.uniform(-1, 1, 5000), rng.standard_t(3, 5000),
              np.float32(rng.lognormal(0, 1, 999))):
        ours = metrics.excess_kurtosis(x)
        theirs = scipy_stats.kurtosis(np.asarray(x, np.float64), fisher=True, bias=True)
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)
    assert metrics.excess_kurtosis([1.0, -1.0]) == -2.0                   # two points: the minimum


def test_shape_statistics_do_not_depend_on_the_scale():
    x = np.random.default_rng(2).standard_t(4, 1000)
    for f in (metrics.crest_factor, metrics.excess_kurtosis):
        for factor in (2.0**-600, 2.0**-100, 2.0**100, 2.0**600):   # over/underflow of x^2, x^4
            assert f(x * factor) == pytest.approx(f(x), rel=1e-12), (f.__name__, factor)


def test_shape_statistics_torch_and_errors():
    x = [0.5, -2.0, 1.0, 0.25]
    assert metrics.crest_factor(torch.tensor(x)) == metrics.crest_factor(np.float32(x))
    assert type(metrics.excess_kurtosis(torch.tensor(x))) is float
    with pytest.raises(ValueError, match="all zeros"):
        metrics.crest_factor(np.zeros(4))
    with pytest.raises(ValueError, match="constant"):
        metrics.excess_kurtosis([3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="empty"):
        metrics.crest_factor([])
    with pytest.raises(ValueError, match="x"):
        metrics.excess_kurtosis([1.0, np.nan])
