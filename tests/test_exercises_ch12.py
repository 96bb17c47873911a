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
    assert np.isclose(values[(1, 1)], 0.442) and np.isclose(min(values.values()), 0.162)
    assert min(values, key=values.get) == (1, 0)            # one best point, no tie
    np.testing.assert_allclose(awq.scales(np.array([0.3, 2.0, 9.0]), 0.0), 1.0)


@pytest.mark.parametrize(
    ("check", "right", "slips"),
    [
        (ch12.check_rtn_objective, 0.442, [(0.25, "cross term"), (1.522, "round to 1"),
                                           (1.0, "Not quite")]),
        (ch12.check_best_objective, 0.162, [(0.442, "RTN"), (1.522, "both rounded down"),
                                            (0.202, "That is (0, 1)"), (0.5, "Not quite")]),
        (ch12.check_obq_update, 0.36, [(0.84, "sign"), (0.0, "rounded value"),
                                       (0.5, "Not quite")]),
        (ch12.check_hessian_entries, 1536**2, [(384**2, "inputs"), (384 * 1536, "weight matrix"),
                                               (7, "Not quite")]),
        (ch12.check_awq_alpha_zero, 1.0, [(0, "power 0"), (2.0, "Not quite")]),
    ],
)
def test_checks(check, right, slips, grades):
    grades(check, right, slips)
