"""Chapter 12's experiment driver (quantbook.ptq_experiment): the same weights as quantbook.ptq,
its layer errors, the knob's shape, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook import activations, ptq
from quantbook import ptq_experiment as pe

SENTENCES = ["The bank raised interest rates again this year.",
             "A short one.",
             "Shares in the company fell sharply after the results were published on Monday."]


@pytest.fixture(scope="module")
def minilm():
    from quantbook import data

    return data.load_minilm()


def test_quantize_setting_is_ptq_with_its_errors(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOOK_CACHE", str(tmp_path))
    stats = activations.linear_input_stats(minilm, SENTENCES * 4)
    got = pe.quantize_setting(minilm, stats, 3, 128)
    for method in ptq.METHODS:
        ref = ptq.quantize_linear_weights(minilm, stats, method, 3, 128)
        assert set(got["weights"][method]) == set(ref) == set(stats["names"])
        same = np.mean([np.mean(got["weights"][method][n] == ref[n]) for n in ref])
        # the same arithmetic; BLAS threads may move a last bit, and GPTQ (float32, as the
        # reference) pushes such a bit on to later columns, where it can flip a rounding
        assert same > 0.995
        total = pe.total_layer_error(minilm, stats, got["weights"][method])
        np.testing.assert_allclose(got["error"][method], total, rtol=1e-5)
    rtn_weights = ptq.quantize_linear_weights(minilm, stats, "rtn", 3, 128)
    rtn = pe.total_layer_error(minilm, stats, rtn_weights)
    assert got["error"]["rtn"] == pytest.approx(rtn, rel=1e-9)
    assert got["error"]["gptq"] < got["error"]["rtn"]
    assert got["error"]["awq"] <= got["error"]["rtn"]


def test_knob_and_labels(minilm):
    texts = SENTENCES * 3
    knob = pe.calibration_knob(minilm, "encoder.layer.0.attention.output.dense", texts, (3, 6), 3)
    assert knob["in_features"] == 384 and set(knob["rows"]) == {3, 6}
    assert knob["rows"][3]["tokens"] < knob["rows"][6]["tokens"]
    assert all(v["gptq"] > 0 and v["awq"] > 0 for v in knob["rows"].values())
    with pytest.raises(ValueError, match="sizes"):
        pe.calibration_knob(minilm, "encoder.layer.0.attention.output.dense", texts, (7,), 3)
    assert pe.setting_label(4, None) == "int4, per channel"
    assert pe.setting_label(3, 128) == "int3, g128"
