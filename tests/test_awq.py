"""AWQ's scale search (quantbook.awq): alpha = 0 is round-to-nearest, so the search never loses."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook import awq, gptq

LAYER = "encoder.layer.2.intermediate.dense"


@pytest.fixture(scope="module")
def minilm_layer():
    from quantbook import activations, data

    model = data.load_minilm()
    sentences, _ = data.load_bbc_sentences(48, seed=2)
    x = activations.capture_linear_inputs(model, sentences[:32], [LAYER])[LAYER]
    held = activations.capture_linear_inputs(model, sentences[32:], [LAYER])[LAYER]
    w = dict(activations.bert_of(model).named_modules())[LAYER].weight.detach().numpy().copy()
    return w, x, held


@pytest.mark.parametrize(("bits", "group_size"), [(4, None), (3, None), (4, 128), (3, 128)])
def test_awq_never_loses_to_rtn_on_real_activations(minilm_layer, bits, group_size):
    w, x, held = minilm_layer
    result = awq.search(w, x, bits, group_size)
    rtn = gptq.round_to_nearest(w, bits, group_size)
    # alpha = 0 is RTN exactly: its loss is the first of the search
    assert result["alphas"][0] == 0
    np.testing.assert_allclose(result["losses"][0], gptq.layer_error(w, rtn, x), rtol=1e-9)
    assert gptq.layer_error(w, result["w_hat"], x) <= gptq.layer_error(w, rtn, x)
    assert result["alpha"] > 0          # on MiniLM the search finds a strictly better alpha
    assert gptq.layer_error(w, result["w_hat"], held) < gptq.layer_error(w, rtn, held)
    np.testing.assert_allclose(gptq.layer_error(w, result["w_hat"], x), result["losses"].min(),
                               rtol=1e-6)   # the search scores float64, returns float32


def test_alpha_zero_is_rtn_bit_for_bit():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    s = awq.scales(np.abs(rng.standard_normal(64)), 0.0)
    np.testing.assert_array_equal(s, 1.0)
    np.testing.assert_array_equal(awq.scaled_round(w, s, 3, 16).astype(np.float32),
                                  gptq.round_to_nearest(w, 3, 16))
    # when every alpha ties (a constant activation scale), the search keeps alpha = 0: RTN
    x = np.ones((10, 64))
    result = awq.search(w, x, 3, 16)
    assert result["alpha"] == 0.0
    np.testing.assert_array_equal(result["w_hat"], gptq.round_to_nearest(w, 3, 16))


def test_scales_follow_llm_awq():
    x_mean = np.array([0.5, 2.0, 8.0, 0.0])
    s = awq.scales(x_mean, 0.5)
    t = np.maximum(x_mean**0.5, 1e-4)          # x_max.pow(ratio).clamp(min=1e-4)
    np.testing.assert_allclose(s, t / np.sqrt(t.max() * t.min()))
    np.testing.assert_allclose(s.max() * s.min(), 1.0)      # normalized around 1 geometrically
    np.testing.assert_allclose(awq.activation_scale([[1.0, -2.0], [-3.0, 4.0]]), [2.0, 3.0])


def test_scaling_columns_protects_them():
    """A column scaled up by s before rounding has its rounding error divided by s."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 8))
    s = np.ones(8)
    s[2] = 4.0
    err = np.abs(awq.scaled_round(w, s, 4) - w)
    base = np.abs(gptq.round_to_nearest(w, 4).astype(np.float64) - w)
    assert err[:, 2].mean() < base[:, 2].mean()


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    x = rng.standard_normal((40, 16))
    out = awq.search(torch.from_numpy(w), x, 4)["w_hat"]
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def test_bad_input():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    x = rng.standard_normal((20, 8))
    with pytest.raises(ValueError, match="x must be"):
        awq.search(w, x[:, :5])
    with pytest.raises(ValueError, match="bits"):
        awq.search(w, x, bits=9)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        awq.search(w, bad)
    with pytest.raises(ValueError, match="alpha"):
        awq.scales(np.ones(8), 1.5)
    with pytest.raises(ValueError, match="x_mean"):
        awq.scales(-np.ones(8), 0.5)
    with pytest.raises(ValueError, match="s must have shape"):
        awq.scaled_round(w, np.ones(3))
    with pytest.raises(ValueError, match="s must hold finite positive"):
        awq.scaled_round(w, np.zeros(8))
    with pytest.raises(ValueError, match="n_grid"):
        awq.search(w, x, n_grid=0)
    with pytest.raises(ValueError, match="group_size"):
        awq.search(w, x, group_size=99)
