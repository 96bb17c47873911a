"""Chapter 13 self-checks: right answers pass, typical slips get their own hint, nothing raises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quantbook import affine, qat
from quantbook.exercises import ch13


def test_ste_gradient_matches_the_package(run):
    e = ch13.STE_EXERCISE
    x = torch.tensor(e["x"], dtype=torch.float32, requires_grad=True)
    qat.fake_quantize_ste(x, e["scale"], e["zero_point"], e["bits"]).sum().backward()
    expected = x.grad.tolist()
    ok, out = run(ch13.check_ste_gradient, expected)
    assert ok is True and out.startswith("Correct!")
    t = x.detach().clone().requires_grad_()
    torch.fake_quantize_per_tensor_affine(t, e["scale"], 0, -4, 3).sum().backward()
    ok, out = run(ch13.check_ste_gradient, t.grad.tolist())  # torch's convention
    assert ok is False and "torch" in out


@pytest.mark.parametrize(("answer", "hint"), [
    ([1] * 7, "identity"), ([0] * 7, "round()"), ([0, 0, 1, 1, 1, 0, 0], "ends"),
    ([1, 1, 0, 0, 1, 1, 0], "Not quite"),
    (None, "Replace the placeholder with your answer (7 gradients"),
    ([1, 0], "Give 7 numbers (7 gradients"), ("x", "should be 7 gradients, each 0 or 1"),
])
def test_ste_gradient_hints(answer, hint, run):
    ok, out = run(ch13.check_ste_gradient, answer)
    assert ok is False and hint in out and "Correct" not in out


def test_tie_codes(run):
    s = np.float32(ch13.TIE_EXERCISE["scale"])
    x = np.float32(s * np.float32(15.5))
    code = int(affine.quantize(np.array([x]), float(s), 0)[0])
    t_code = round(torch.fake_quantize_per_tensor_affine(torch.tensor([x]), float(s), 0, -128,
                                                         127).item() / s)
    assert (code, t_code) == (15, 16)
    ok, out = run(ch13.check_tie_codes, (code, t_code))
    assert ok is True and "15.499999" in out
    for answer, hint in [((16, 15), "Swapped"), ((16, 16), "float32"), ((15, 15), "float32"),
                         ((3, 4), "Not quite"), (None, "placeholder")]:
        ok, out = run(ch13.check_tie_codes, answer)
        assert ok is False and hint in out, (answer, out)


def test_lsq_step_gradient_matches_the_package(run):
    e = ch13.LSQ_EXERCISE
    x = torch.tensor(e["x"], dtype=torch.float64)
    step = torch.tensor(e["step"], dtype=torch.float64, requires_grad=True)
    qat.lsq_fake_quantize(x, step, e["bits"], grad_scale=1.0).sum().backward()
    assert step.grad.item() == pytest.approx(-0.4)
    ok, out = run(ch13.check_lsq_step_gradient, step.grad.item())
    assert ok is True and out.startswith("Correct!")
    for answer, hint in [(0.4, "sign"), (0.6, "clamped"), (-1.4, "half to even"),
                         (0, "not zero"), (7, "Not quite"), ("a", "single number")]:
        ok, out = run(ch13.check_lsq_step_gradient, answer)
        assert ok is False and hint in out, (answer, out)


def test_lsq_grad_scale(run):
    expected = qat.lsq_grad_scale(64 * 64, 4)
    ok, out = run(ch13.check_lsq_grad_scale, expected)
    assert ok is True and "0.005906" in out
    for answer, hint in [(1 / 64, "Q_p is missing"), (1 / math.sqrt(4096 * 8), "not 8"),
                         (1 / math.sqrt(4096 * 15), "signed"), (1 / math.sqrt(64 * 7), "4,096"),
                         (math.sqrt(4096 * 7), "inverse"), (1 / (4096 * 7), "square root"),
                         (0.5, "Not quite")]:
        ok, out = run(ch13.check_lsq_grad_scale, answer)
        assert ok is False and hint in out, (answer, out)


def test_ternary_codes(run):
    codes, gamma = qat.absmean_ternary(np.array(ch13.TERNARY_EXERCISE))
    assert codes.tolist() == [1, 0, 1, -1, 0, 1] and gamma == pytest.approx(2.2 / 6)
    ok, out = run(ch13.check_ternary_codes, codes.tolist())
    assert ok is True and out.startswith("Correct!")
    for answer, hint in [([1, 0, 0, -1, 0, 0], "absmax"), ([2, 0, 1, -2, 0, 1], "clip"),
                         ([0, 0, 0, 0, 0, 0], "Not quite"), (None, "placeholder")]:
        ok, out = run(ch13.check_ternary_codes, answer)
        assert ok is False and hint in out, (answer, out)


def test_ternary_bits(run):
    for right in (math.log2(3), 1.58, 1.585):
        assert run(ch13.check_ternary_bits, right)[0] is True
    for answer, hint in [(1.6, "five weights per byte"), (2, "waste"), (3, "Not quite"),
                         (None, "placeholder")]:
        ok, out = run(ch13.check_ternary_bits, answer)
        assert ok is False and hint in out, (answer, out)
