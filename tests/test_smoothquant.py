"""SmoothQuant, W8A8 and LLM.int8()'s decomposition (quantbook.smoothquant)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantbook import matmul, symmetric
from quantbook import smoothquant as sq


def reference_factors(act_scales, weight, alpha):
    """mit-han-lab/smoothquant smooth.py (smooth_ln_fcs), line by line, in torch."""

    weight_scales = weight.abs().max(dim=0, keepdim=True)[0].max(dim=0)[0].clamp(min=1e-5)
    return (act_scales.pow(alpha) / weight_scales.pow(1 - alpha)).clamp(min=1e-5)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]))
def test_factors_match_the_reference_code(seed, alpha):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x_absmax = np.abs(rng.standard_normal(32) * 10 ** rng.uniform(-8, 2, 32)).astype(np.float32)
    w = (rng.standard_normal((16, 32)) * 10 ** rng.uniform(-8, 1, 32)).astype(np.float32)
    w[:, 3] = 0.0                                   # a dead column: the clamp at 1e-5 matters
    x_absmax[5] = 0.0
    ours = sq.smoothing_factors(x_absmax, sq.weight_absmax(w), alpha)
    ref = reference_factors(torch.from_numpy(x_absmax), torch.from_numpy(w), alpha).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=2e-6)
    assert (ours >= 1e-5).all()


def test_identity_in_float32_on_real_minilm_activations():
    from quantbook import activations, data

    model = data.load_minilm()
    name = "encoder.layer.1.intermediate.dense"
    sentences, _ = data.load_bbc_sentences(8, seed=3)
    x = activations.capture_linear_inputs(model, sentences, [name])[name]
    w = dict(activations.bert_of(model).named_modules())[name].weight.detach().numpy()
    s = sq.smoothing_factors(sq.activation_absmax(x), sq.weight_absmax(w), 0.5)
    y = x @ w.T
    y_smooth = sq.smooth_activations(x, s) @ sq.smooth_weight(w, s).T
    # float32: each product picks up one rounding per factor; the sums agree to float32 precision
    scale = np.abs(x) @ np.abs(w).T
    assert (np.abs(y_smooth - y) <= 8 * np.finfo(np.float32).eps * scale).all()
    # the smoothed activations have a flatter channel profile: their max/median ratio falls
    ratio = lambda a: a.max() / np.median(a)  # noqa: E731
    assert ratio(sq.activation_absmax(sq.smooth_activations(x, s))) < ratio(sq.activation_absmax(x))
    # the hidden dimension 99 is the activation outlier of this layer's input (chapter 4's dim)
    assert int(np.argmax(sq.activation_absmax(x))) == 99


def test_identity_exact_with_powers_of_two():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 8))
    w = rng.standard_normal((3, 8))
    s = 2.0 ** rng.integers(-4, 5, 8)
    np.testing.assert_array_equal(sq.smooth_activations(x, s) @ sq.smooth_weight(w, s).T, x @ w.T)


def test_integer_product_equals_integer_matmul():
    rng = np.random.default_rng(2)
    qa = rng.integers(-127, 128, (20, 1536)).astype(np.int8)
    qb = rng.integers(-127, 128, (7, 1536)).astype(np.int8)
    qa[0] = 127
    qb[0] = 127                                 # the worst case, 1536 * 127**2 > 2**24
    exact = matmul.integer_matmul(qa, qb.T).astype(np.float64)
    np.testing.assert_array_equal(sq.integer_product(qa, qb), exact)
    assert sq.integer_product(qa, qb)[0, 0] == 1536 * 127**2


def test_w8a8_linear_is_the_integer_layer():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 64)).astype(np.float32)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    qx, sx = symmetric.quantize(x, 8)
    qw, sw = symmetric.quantize(w, 8)
    acc = matmul.integer_matmul(qx, qw.T).astype(np.float64)
    expected = (acc * (sx * sw) + b).astype(np.float32)
    np.testing.assert_array_equal(sq.w8a8_linear(x, w, b), expected)
    # static scale: values beyond it are clamped
    clamped = sq.w8a8_linear(x, w, x_scale=0.001)
    assert np.isfinite(clamped).all()
    per_channel = sq.w8a8_linear(x, w, per_channel=True)
    assert np.abs(per_channel - x @ w.T).max() < np.abs(x).max() * np.abs(w).sum(1).max() / 127


def test_int8_decomposition_keeps_outliers_exact():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 32)).astype(np.float32)
    x[:, 7] *= 60.0                              # an outlier channel
    w = rng.standard_normal((8, 32)).astype(np.float32)
    assert list(sq.outlier_columns(x)) == [7]
    y = x.astype(np.float64) @ w.T.astype(np.float64)
    err_dec = np.abs(sq.int8_decomposition_linear(x, w) - y).max()
    err_w8a8 = np.abs(sq.w8a8_linear(x, w) - y).max()
    assert err_dec < err_w8a8 / 5
    # with every column an outlier the layer is computed in float
    np.testing.assert_allclose(sq.int8_decomposition_linear(x, w, threshold=1e-9), y, rtol=1e-6)


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    x = torch.randn(6, 8)
    w = torch.randn(4, 8)
    s = sq.smoothing_factors(sq.activation_absmax(x), sq.weight_absmax(w))
    assert isinstance(s, torch.Tensor)
    assert isinstance(sq.smooth_weight(w, s), torch.Tensor)
    assert isinstance(sq.w8a8_linear(x, w), torch.Tensor)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        sq.smoothing_factors(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="alpha"):
        sq.smoothing_factors(np.ones(4), np.ones(4), alpha=1.5)
    with pytest.raises(TypeError, match="alpha"):
        sq.smoothing_factors(np.ones(4), np.ones(4), alpha="half")
    with pytest.raises(ValueError, match="x_absmax contains NaN"):
        sq.smoothing_factors(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        sq.smoothing_factors(-np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="x_absmax must be 1-D"):
        sq.smoothing_factors(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="s must have shape"):
        sq.smooth_weight(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        sq.smooth_activations(np.ones((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="features"):
        sq.w8a8_linear(np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="bits"):
        sq.w8a8_linear(np.ones((3, 4)), np.ones((2, 4)), bits=1)
    with pytest.raises(ValueError, match="x contains an infinite"):
        sq.w8a8_linear(np.full((3, 4), np.inf), np.ones((2, 4)))
    with pytest.raises(ValueError, match="bias"):
        sq.int8_decomposition_linear(np.ones((3, 4)), np.ones((2, 4)), bias=np.ones(3))
    with pytest.raises(ValueError, match="codes"):
        sq.integer_product(np.full((2, 2), 200), np.ones((2, 2)))


def test_w8a8_linear_with_a_given_weight_scale():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((12, 48)).astype(np.float32)
    w = rng.standard_normal((20, 48)).astype(np.float32)
    # the scale w would get itself: the same layer, bit for bit
    _, sw = symmetric.quantize(w, 8)
    np.testing.assert_array_equal(sq.w8a8_linear(x, w, w_scale=sw), sq.w8a8_linear(x, w))
    _, rows = symmetric.quantize(w, 8, axis=0)
    np.testing.assert_array_equal(sq.w8a8_linear(x, w, per_channel=True, w_scale=rows.ravel()),
                                  sq.w8a8_linear(x, w, per_channel=True))
    # some rows of a layer with the whole layer's scale: the rows of the whole layer's output
    part = sq.w8a8_linear(x, w[:5], w_scale=sw)
    np.testing.assert_array_equal(part, sq.w8a8_linear(x, w)[:, :5])
    assert not np.array_equal(part, sq.w8a8_linear(x, w[:5]))  # its own scale differs
    # a smaller scale than max|W| / 127 clamps the largest weights at +-127 codes
    small = sq.w8a8_linear(np.eye(48, dtype=np.float32), w, w_scale=sw / 2, x_scale=1 / 127)
    assert np.abs(small).max() == pytest.approx(127 * sw / 2, rel=1e-6)  # the clamped ones
    with pytest.raises(ValueError, match="w_scale must be one number"):
        sq.w8a8_linear(x, w, w_scale=[sw, sw])
    with pytest.raises(ValueError, match=r"one scale per output row, shape \(20,\)"):
        sq.w8a8_linear(x, w, per_channel=True, w_scale=np.ones(19))
    with pytest.raises(ValueError, match="w_scale must be positive"):
        sq.w8a8_linear(x, w, w_scale=0.0)
    with pytest.raises(ValueError, match="w_scale"):
        sq.w8a8_linear(x, w, w_scale=float("nan"))
