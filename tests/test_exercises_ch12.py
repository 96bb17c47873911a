"""Chapter 12 self-checks: right answers pass, typical slips get their own hint, nothing raises."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook import awq
from quantbook.exercises import ch12


def test_two_weight_example_numbers():
    w = np.array(ch12.TWO_WEIGHTS["w"])
    g = np.array(ch12.TWO_WEIGHTS["gram"])
    values = {q: float((w - q) @ g @ (w - q)) for q in ((0, 0), (0, 1), (1, 0), (1, 1))}
    assert np.isclose(values[(1, 1)], 0.608) and np.isclose(min(values.values()), 0.088)
    np.testing.assert_allclose(awq.scales(np.array([0.3, 2.0, 9.0]), 0.0), 1.0)


@pytest.mark.parametrize(
    ("check", "right", "slips"),
    [
        (ch12.check_rtn_objective, 0.608, [(0.32, "cross term"), (1.368, "rounds to 1"),
                                           (1.0, "Not quite")]),
        (ch12.check_best_objective, 0.088, [(0.608, "RTN"), (1.368, "both rounded down"),
                                            (0.5, "Not quite")]),
        (ch12.check_obq_update, 0.24, [(0.96, "sign"), (0.0, "rounded value"),
                                       (0.5, "Not quite")]),
        (ch12.check_hessian_entries, 1536**2, [(384**2, "inputs"), (384 * 1536, "weight matrix"),
                                               (7, "Not quite")]),
        (ch12.check_awq_alpha_zero, 1.0, [(0, "power 0"), (2.0, "Not quite")]),
    ],
)
def test_checks(check, right, slips, run):
    ok, out = run(check, right)
    assert ok is True and out.startswith("Correct!")
    for answer, hint in slips + [(None, "placeholder"), (..., "placeholder"), ("x", "single")]:
        ok, out = run(check, answer)
        assert ok is False and hint in out and "Correct" not in out, (answer, out)
