"""Chapter 11 self-checks: right answers pass, typical slips get their own hint, nothing raises."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook import smoothquant as sq
from quantbook.exercises import ch11


def test_answers_agree_with_the_package():
    e = ch11.SMOOTHING_EXERCISE
    s = float(sq.smoothing_factors(np.array([e["x_absmax"]]), np.array([e["w_absmax"]]),
                                   e["alpha"])[0])
    assert s == 8.0
    assert e["x_absmax"] / s == e["w_absmax"] * s == 2.0
    s1 = sq.smoothing_factors(np.array([16.0, 3.0]), np.array([0.25, 7.0]), 1.0)
    np.testing.assert_allclose(np.array([16.0, 3.0]) / s1, 1.0)


@pytest.mark.parametrize(
    ("check", "right", "slips"),
    [
        (ch11.check_smoothing_factor, 8, [(0.125, "1/s"), (64, "exponents"), (2, "balanced"),
                                          (5, "Not quite")]),
        (ch11.check_balanced_range, 2, [(16, "before smoothing"), (128, "not the other way"),
                                        (3, "Not quite")]),
        (ch11.check_codes_used, 7, [(3, "one side"), (6, "zero"), (255, "outlier"),
                                    (10, "Not quite")]),
        (ch11.check_float_fraction, 2 / 384, [(100 * 2 / 384, "percentage"),
                                              (382 / 384, "int8 part"), (0.5, "Not quite")]),
        (ch11.check_alpha_one, 1.0, [(0, "not zeroed"), (16, "Not quite")]),
    ],
)
def test_checks(check, right, slips, grades):
    grades(check, right, slips)
