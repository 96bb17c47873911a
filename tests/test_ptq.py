"""Input statistics by forward hooks (quantbook.activations) and whole-model PTQ (quantbook.ptq)."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook import activations, gptq, ptq
from quantbook import smoothquant as sq


@pytest.fixture(scope="module")
def minilm():
    from quantbook import data

    return data.load_minilm()


SENTENCES = ["The bank raised interest rates again this year.",
             "A short one.",
             "Shares in the company fell sharply after the results were published on Monday."]


def test_stats_match_captured_inputs_without_padding(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOOK_CACHE", str(tmp_path))
    name = "encoder.layer.2.intermediate.dense"
    x = activations.capture_linear_inputs(minilm, SENTENCES, [name], batch_size=2)[name]
    lengths = activations.tokenize(minilm, SENTENCES)["attention_mask"].sum().item()
    assert x.shape == (lengths, 384)                       # padding tokens dropped
    stats = activations.linear_input_stats(minilm, SENTENCES, batch_size=2)
    assert stats["tokens"] == lengths
    np.testing.assert_allclose(stats["absmax"][name], np.abs(x).max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["mean_abs"][name], np.abs(x).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["gram"][name], x.astype(np.float64).T @ x, rtol=1e-4,
                               atol=1e-3)
    # query, key and value read one tensor; the other layers their own
    src = stats["source"]
    assert src["encoder.layer.0.attention.self.key"] == "encoder.layer.0.attention.self.query"
    assert src["encoder.layer.0.attention.self.value"] == "encoder.layer.0.attention.self.query"
    assert src["encoder.layer.0.output.dense"] == "encoder.layer.0.output.dense"
    # cached: a second call reads the file, with the same numbers
    assert len(list(tmp_path.glob("linear-stats-*.npz"))) == 1
    again = activations.linear_input_stats(minilm, SENTENCES, batch_size=2)
    np.testing.assert_array_equal(again["gram"][name], stats["gram"][name])


def test_linear_outputs_replaced_and_restored(minilm):
    name = "encoder.layer.1.attention.output.dense"
    calls = []

    def fn(layer, x, w, b):
        calls.append(layer)
        return x @ w.T + b

    features = activations.tokenize(minilm, SENTENCES[:1])
    bert = activations.bert_of(minilm)
    import torch

    with torch.inference_mode():
        ref = bert(**features).last_hidden_state
        with activations.linear_outputs_replaced(minilm, fn, names=[name]):
            out = bert(**features).last_hidden_state
        after = bert(**features).last_hidden_state
    assert calls == [name]
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-4)
    np.testing.assert_array_equal(after.numpy(), ref.numpy())


def test_w8a8_hook_changes_the_output(minilm):
    features = activations.tokenize(minilm, SENTENCES[:1])
    bert = activations.bert_of(minilm)
    import torch

    with torch.inference_mode():
        ref = bert(**features).last_hidden_state.numpy()
        def w8a8(name, x, w, b):
            return sq.w8a8_linear(x, w, b)

        with activations.linear_outputs_replaced(minilm, w8a8):
            out = bert(**features).last_hidden_state.numpy()
    assert not np.array_equal(out, ref)
    cos = np.sum(out * ref) / np.linalg.norm(out) / np.linalg.norm(ref)
    assert cos > 0.9


def test_ptq_rtn_and_fused_gptq(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOOK_CACHE", str(tmp_path))
    stats = activations.linear_input_stats(minilm, SENTENCES * 4)
    bert = activations.bert_of(minilm)
    modules = dict(bert.named_modules())
    rtn = ptq.quantize_linear_weights(minilm, stats, "rtn", 4, 128)
    assert set(rtn) == set(stats["names"])
    name = "encoder.layer.4.output.dense"
    w = modules[name].weight.detach().numpy()
    np.testing.assert_array_equal(rtn[name], gptq.round_to_nearest(w, 4, 128))
    key = activations.stats_cache_key(minilm, SENTENCES * 4)
    q = "encoder.layer.0.attention.self.key"
    fused = ptq.quantize_linear_weights(minilm, stats, "gptq", 3, None, stats_key=key, names=[q])
    assert sorted(fused) == [f"encoder.layer.0.attention.self.{p}" for p in ("key", "query",
                                                                              "value")]
    h = 2 * stats["gram"]["encoder.layer.0.attention.self.query"]
    alone = gptq.quantize_with_hessian(modules[q].weight.detach().numpy(), h, 3)
    assert np.mean(fused[q] == alone) > 0.999        # rows are independent in GPTQ
    cached = ptq.quantize_linear_weights(minilm, stats, "gptq", 3, None, stats_key=key, names=[q])
    np.testing.assert_array_equal(cached[q], fused[q])
    copy = ptq.with_weights(minilm, rtn, "rtn-test")
    assert copy._quantbook_name.endswith("|rtn-test")
    np.testing.assert_array_equal(
        dict(activations.bert_of(copy).named_modules())[name].weight.detach().numpy(), rtn[name])
    assert not np.array_equal(modules[name].weight.detach().numpy(), rtn[name])   # original kept
    with pytest.raises(ValueError, match="method"):
        ptq.quantize_linear_weights(minilm, stats, "nearest", 4)
