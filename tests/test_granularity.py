"""quantbook.granularity: per-tensor/channel/group error, bits per weight, calibration ranges."""

import numpy as np
import pytest
import torch

from quantbook import affine, granularity, metrics, symmetric


@pytest.fixture(scope="module")
def weights():
    """A weight matrix whose rows have very different magnitudes, plus one outlier."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((32, 128)) * np.linspace(0.05, 1.0, 32)[:, None]).astype(np.float32)
    w[3, 5] = 8.0
    return w


# --- bits per weight -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [((4, 32), 4.5), ((8, 32), 8.5), ((4, 128), 4.125), ((4, 64, 16, 16), 4.5),
     ((4, 32, 32), 5.0), ((3, 16, 16, 4), 4.25), ((4, None), 4.0)],
)
def test_effective_bits(args, expected):
    assert granularity.effective_bits(*args) == expected


def test_effective_bits_bad_input():
    with pytest.raises(ValueError, match="group_size"):
        granularity.effective_bits(4, 0)
    with pytest.raises(TypeError, match="group_size"):
        granularity.effective_bits(4, 32.0)
    with pytest.raises(ValueError, match="scale_bits"):
        granularity.effective_bits(4, 32, scale_bits=-1)
    with pytest.raises(TypeError, match="bits"):
        granularity.effective_bits(4.5, 32)


def test_num_scales():
    assert granularity.num_scales((64, 256), "per-tensor") == 1
    assert granularity.num_scales((64, 256), "per-channel") == 64
    assert granularity.num_scales((64, 256), "per-channel", axis=1) == 256
    assert granularity.num_scales((64, 256), "per-group", group_size=32) == 512
    with pytest.raises(ValueError, match="group_size"):
        granularity.num_scales((64, 100), "per-group", group_size=32)
    with pytest.raises(ValueError, match="granularity"):
        granularity.num_scales((64, 256), "per-row")


# --- fake quantization per granularity ---------------------------------------------------------


def test_fake_quantize_symmetric_matches_symmetric_module(weights):
    g = granularity
    np.testing.assert_array_equal(g.fake_quantize(weights, 4, "per-tensor"),
                                  symmetric.fake_quantize(weights, 4))
    np.testing.assert_array_equal(g.fake_quantize(weights, 4, "per-channel"),
                                  symmetric.fake_quantize(weights, 4, axis=0))
    np.testing.assert_array_equal(g.fake_quantize(weights, 4, "per-group", group_size=32),
                                  symmetric.fake_quantize(weights, 4, group_size=32))


def test_fake_quantize_affine_per_tensor_and_per_channel(weights):
    x_hat = granularity.fake_quantize(weights, 4, "per-tensor", scheme="affine")
    q, s, z = affine.quantize_minmax(weights, 4)
    np.testing.assert_array_equal(x_hat, affine.dequantize(q, s, z))
    x_hat = granularity.fake_quantize(weights, 4, "per-channel", scheme="affine")
    for i in (0, 3, 31):
        q, s, z = affine.quantize_minmax(weights[i], 4)
        np.testing.assert_allclose(x_hat[i], affine.dequantize(q, s, z), rtol=1e-6, atol=1e-7)


def test_fake_quantize_affine_per_group_small_exact():
    x = np.array([[0.0, 1.0, 2.0, 3.0, -3.0, 0.0, 0.0, 12.0]])
    x_hat = granularity.fake_quantize(x, 2, "per-group", group_size=4, scheme="affine")
    # group 1: range [0, 3], scale 1, zero point -2: exact. group 2: [-3, 12], scale 5, zp -1.
    np.testing.assert_allclose(x_hat, [[0, 1, 2, 3, -5, 0, 0, 10]], rtol=1e-6)
    assert x_hat.dtype == np.float32


def test_granularity_errors_order(weights):
    for scheme in granularity.MAPPINGS:
        errors = granularity.granularity_errors(weights, bits=4, group_size=32, scheme=scheme)
        assert list(errors) == list(granularity.GRANULARITIES)
        assert errors["per-tensor"] > 2 * errors["per-channel"] > 2 * errors["per-group"]


def test_granularity_errors_exact_small():
    x = np.array([[1.0, -2.0, 4.0, 0.5], [0.1, 0.2, -0.3, 0.4]])
    errors = granularity.granularity_errors(x, bits=2, group_size=2)
    # 2-bit restricted codes {-1, 0, 1}: q = round(x / absmax)
    expected_tensor = np.array([[0, 0, 4, 0], [0, 0, 0, 0]])
    expected_channel = np.array([[0, 0, 4, 0], [0, 0, -0.4, 0.4]])  # 0.2 / 0.4 ties to 0
    expected_group = np.array([[0, -2, 4, 0], [0, 0.2, -0.4, 0.4]])
    for name, exp in [("per-tensor", expected_tensor), ("per-channel", expected_channel),
                      ("per-group", expected_group)]:
        assert errors[name] == pytest.approx(metrics.mse(x, exp), rel=1e-6)


def test_fake_quantize_torch_and_bad_input(weights):
    t = torch.from_numpy(weights)
    out = granularity.fake_quantize(t, 4, "per-group", group_size=32)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="granularity"):
        granularity.fake_quantize(weights, 4, "per-block")
    with pytest.raises(ValueError, match="scheme"):
        granularity.fake_quantize(weights, 4, scheme="asymmetric")
    with pytest.raises(ValueError, match="group_size"):
        granularity.fake_quantize(weights, 4, "per-group", group_size=48)
    with pytest.raises(ValueError, match="bits"):
        granularity.fake_quantize(weights, 9)


# --- calibration ranges ------------------------------------------------------------------------


def test_minmax_absmax_percentile_ranges():
    x = np.arange(101.0) - 30  # -30 .. 70
    assert granularity.minmax_range(x) == (-30.0, 70.0)
    assert granularity.absmax_range(x) == (-70.0, 70.0)
    assert granularity.percentile_range(x, 99) == (-29.0, 69.0)
    assert granularity.percentile_range(x, 100) == granularity.minmax_range(x)
    assert granularity.percentile_range(x, 99.5) == (-29.5, 69.5)
    assert granularity.minmax_range([]) == (0.0, 0.0)
    assert all(type(v) is float for v in granularity.percentile_range(x, 90))


def test_percentile_range_bad_input():
    with pytest.raises(ValueError, match="p must"):
        granularity.percentile_range([1.0, 2.0], 40)
    with pytest.raises(ValueError, match="p must"):
        granularity.percentile_range([1.0, 2.0], 101)
    with pytest.raises(TypeError, match="p must"):
        granularity.percentile_range([1.0, 2.0], "99")
    with pytest.raises(ValueError, match="x contains"):
        granularity.percentile_range([1.0, np.nan], 99)


def test_range_errors_split(weights):
    lo, hi = granularity.percentile_range(weights, 99.0)
    parts = granularity.range_errors(weights, lo, hi, bits=4)
    assert parts["clipping_mse"] > 0 and parts["rounding_mse"] > 0
    assert parts["mse"] == pytest.approx(parts["clipping_mse"] + parts["rounding_mse"], rel=1e-9)
    x_hat = granularity.fake_quantize_range(weights, lo, hi, bits=4)
    assert parts["mse"] == pytest.approx(metrics.mse(weights, x_hat), rel=1e-6)  # float32 sums
    # the min/max range clips (almost) nothing
    full = granularity.range_errors(weights, *granularity.minmax_range(weights), bits=4)
    assert full["clipping_mse"] < 1e-3 * full["rounding_mse"]


def _brute_force_alpha(x, bits, n_grid, symmetric_):
    best, best_err = None, np.inf
    for i in range(n_grid, 0, -1):
        alpha = i / n_grid
        if symmetric_:
            m = np.abs(x).max() * alpha
            lo, hi = -m, m
            top = 2 ** (bits - 1) - 1
            s = x.dtype.type(m / top)
            x_hat = np.clip(np.rint(x / s), -top, top) * s
        else:
            lo, hi = alpha * x.min(), alpha * x.max()
            x_hat = granularity.fake_quantize_range(x, lo, hi, bits)
        err = metrics.mse(x, x_hat)
        if err < best_err:
            best, best_err = (float(lo), float(hi)), err
    return best


@pytest.mark.parametrize("symmetric_", [False, True])
def test_mse_optimal_range_is_the_grid_minimum(weights, symmetric_):
    lo, hi = granularity.mse_optimal_range(weights, bits=4, n_grid=50, symmetric=symmetric_)
    expected = _brute_force_alpha(weights, 4, 50, symmetric_)
    assert (lo, hi) == pytest.approx(expected, rel=1e-6)
    # the outlier makes clipping worth it
    assert hi < 0.5 * weights.max()
    # deterministic
    assert granularity.mse_optimal_range(weights, 4, n_grid=50, symmetric=symmetric_) == (lo, hi)


def test_mse_optimal_range_beats_minmax(weights):
    lo, hi = granularity.mse_optimal_range(weights, bits=4)
    best = metrics.mse(weights, granularity.fake_quantize_range(weights, lo, hi, 4))
    minmax = metrics.mse(weights, granularity.fake_quantize_range(
        weights, *granularity.minmax_range(weights), 4))
    assert best < 0.5 * minmax


def test_mse_optimal_range_uniform_keeps_full_range():
    x = np.linspace(-1, 1, 4001)
    lo, hi = granularity.mse_optimal_range(x, bits=8, n_grid=20)
    assert (lo, hi) == (-1.0, 1.0)


def test_mse_optimal_range_edge_cases():
    assert granularity.mse_optimal_range(np.zeros(5), 4) == (0.0, 0.0)
    with pytest.raises(ValueError, match="n_grid"):
        granularity.mse_optimal_range(np.ones(5), 4, n_grid=0)
    with pytest.raises(ValueError, match="bits"):
        granularity.mse_optimal_range(np.ones(5), 1)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(granularity, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
