"""Chapter 13's experiment: seeded runs repeat exactly; PTQ is the STE model before training."""

import numpy as np
import pytest
import torch

from quantbook import affine
from quantbook import qat_experiment as qe


@pytest.fixture(scope="module")
def digits():
    qe.set_deterministic(1)
    return qe.load_digits_split()


def float_model(digits, seed=0, epochs=2):
    X, _, y, _ = digits
    torch.manual_seed(seed)
    model = qe.QuantMLP(16)
    qe.train(model, X, y, epochs, 1e-2, seed=seed)
    return model


def test_split(digits):
    X, X_test, y, y_test = digits
    assert X.shape == (1257, 64) and X_test.shape == (540, 64)
    assert X.dtype == torch.float32 and y.dtype == torch.int64
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0


def test_runs_repeat_exactly(digits):
    a, b = float_model(digits), float_model(digits)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    X, X_test, y, y_test = digits
    for mode in ("ste", "lsq"):
        runs = []
        for _ in range(2):
            m = qe.quantized_copy(a, mode, 2, X)
            runs.append(qe.train(m, X, y, 1, 1e-3, seed=5, X_test=X_test, y_test=y_test))
        assert runs[0] == runs[1] and len(runs[0]) == 1


def test_ptq_forward_is_fake_quantized_float(digits):
    model = float_model(digits)
    X = digits[0]
    for bits in (8, 4, 2):
        q = qe.quantized_copy(model, "ste", bits, X)
        w1, w2 = (m.weight.detach().numpy() for m in (q.fc1, q.fc2))
        s1, s2 = qe.weight_scales(q.fc1.weight, bits), qe.weight_scales(q.fc2.weight, bits)
        assert s1.shape == (16, 1) and np.array_equal(s1[:, 0], np.abs(w1).max(axis=1) /
                                                      np.float32(2 ** (bits - 1) - 1))
        with torch.no_grad():
            h = torch.relu(model.fc1(X))
        assert q.act_scale == float(h.max()) / (2**bits - 1)
        x = X[:50].numpy()
        h = np.maximum(x @ affine.fake_quantize(w1, s1, 0, bits).T + q.fc1.bias.detach().numpy(), 0)
        h = affine.fake_quantize(h, q.act_scale, 0, bits, signed=False)
        logits = h @ affine.fake_quantize(w2, s2, 0, bits).T + q.fc2.bias.detach().numpy()
        with torch.no_grad():
            np.testing.assert_allclose(q(X[:50]).numpy(), logits, rtol=1e-5, atol=1e-5)
    lsq = qe.quantized_copy(model, "lsq", 4, X)
    assert lsq.step1.shape == (16, 1) and lsq.step2.shape == (10, 1) and lsq.step_act.shape == ()
    with pytest.raises(ValueError, match="mode"):
        qe.quantized_copy(model, "float", 4, X)
