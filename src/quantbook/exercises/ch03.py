"""Self-checks for chapter 3, *Symmetric quantization and bit width*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook.exercises._grading import check, grade, read_codes, read_number
from quantbook.formats import round_half_away_from_zero

__all__ = [
    "INT4_EXERCISE_VALUES",
    "check_int4_codes",
    "check_relu_gain_db",
]

# max|x| = 3.5, so the int4 scale is 3.5 / 7 = 0.5, a power of two: every x / S below is exact
# in floating point, and two of them (-2.5 and 0.5) are ties that show round half to even.
INT4_EXERCISE_VALUES = (3.5, -1.25, 0.25, 1.6, -3.3, 0.75)
_INT4_CODES = (7, -2, 0, 3, -7, 2)


@check
def check_int4_codes(answer):
    """Exercise: the int4 codes of ``INT4_EXERCISE_VALUES`` under symmetric absmax.

    S = max|x| / (2**3 - 1) = 3.5 / 7 = 0.5 and q = round(x / S) with round half to even:
    x / S = [7, -2.5, 0.5, 3.2, -6.6, 1.5] -> [7, -2, 0, 3, -7, 2].
    """
    a = read_codes(answer, len(_INT4_CODES))
    x = np.array(INT4_EXERCISE_VALUES)
    full = np.clip(np.rint(x / (3.5 / 8)), -8, 7)
    return grade(a, _INT4_CODES, "S = 3.5 / 7 = 0.5, and the two ties (-2.5 and 0.5) round to "
                                 "the even neighbour.", [
        (lambda a: np.allclose(a, 0.5 * np.array(_INT4_CODES)) or np.allclose(a, x),
         "These look like real values, not codes. The answer is the integers q with x ≈ S·q, "
         "not S·q itself."),
        (lambda a: not np.array_equal(a, np.round(a)),
         "Codes are whole numbers: round x / S to the nearest integer."),
        (round_half_away_from_zero(x / 0.5),
         "Almost: two values are exact ties (-1.25 / 0.5 = -2.5 and 0.25 / 0.5 = 0.5). NumPy and "
         "PyTorch round half to even, not away from zero."),
        (np.trunc(x / 0.5), "You truncated toward zero (as int() does). Round to the nearest "
                            "integer instead: -3.3 / 0.5 = -6.6 becomes -7."),
        (lambda a: np.array_equal(a, full)
         or np.array_equal(a, np.clip(np.rint(x / (3.5 / 7.5)), -8, 7)),
         "That is the full range [-8, 7] with a smaller scale. Symmetric absmax in this chapter "
         "uses the restricted range: S = max|x| / 7, codes in [-7, 7]."),
        (lambda a: np.abs(a).max() > 7,
         "Symmetric int4 codes lie in [-7, 7]. Did you divide max|x| by 2^4 - 1 = 15? The scale "
         "is max|x| / (2^(b-1) - 1) = max|x| / 7."),
    ], "Not yet. First S = max|x| / 7 (max|x| is the largest absolute value), then "
       "q = round(x / S), rounding ties to even.", same=np.array_equal)


@check
def check_relu_gain_db(answer):
    """Exercise: SQNR gained by storing ReLU outputs as unsigned instead of signed int8.

    Signed symmetric int8 has step a/127, unsigned int8 with zero point 0 has step a/255. The
    rounding noise power goes with the square of the step, so the gain is
    20·log10(255/127) ≈ 6.05 dB (one bit, minus a hair).
    """
    gain = 20 * math.log10(255 / 127)
    return grade(read_number(answer, "a number of decibels"), gain,
                 f"20·log10(255/127) = {gain:.3f} dB: the unsigned grid is one bit finer.", [
        (255 / 127, "That is the ratio of the two steps. SQNR is a ratio of powers in decibels: "
                    "convert with 20·log10 of the step ratio."),
        ((255 / 127) ** 2, "That is the ratio of the two MSEs (noise powers). Convert it to "
                           "decibels with 10·log10."),
        (10 * math.log10(255 / 127), "Noise power goes with the square of the step, so use "
                                     "20·log10 of the step ratio, not 10·log10."),
        (20 * math.log10(2), "Close: 6.02 dB is exactly one bit (a step ratio of 2). Here the "
                             "steps are a/127 and a/255; compute 20·log10(255/127)."),
        (-gain, "Right size, wrong sign: the unsigned grid has the smaller step, so its SQNR is "
                "higher. Give the gain as a positive number."),
    ], "Not yet. Find the step of each grid for data in [0, a] (signed symmetric: a/127, "
       "unsigned: a/255); noise power is step²/12, so the SQNR gain is 20·log10 of the "
       "step ratio.", same=lambda value, target: abs(value - target) < 0.01)
