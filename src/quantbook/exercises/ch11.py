"""Self-checks for chapter 11, *Outliers in activations (W8A8)*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import math

from quantbook.exercises._grading import check, close, grade, read_number

__all__ = [
    "SMOOTHING_EXERCISE",
    "CODES_EXERCISE",
    "OUTLIER_EXERCISE",
    "check_smoothing_factor",
    "check_balanced_range",
    "check_codes_used",
    "check_float_fraction",
    "check_alpha_one",
]

# One input channel j of a linear layer: max|X_j| = 16 over the calibration tokens, and the
# largest weight that multiplies it max|W_j| = 0.25; migration strength alpha = 0.5.
SMOOTHING_EXERCISE = {"x_absmax": 16.0, "w_absmax": 0.25, "alpha": 0.5}
# A per-tensor int8 activation scale set by an outlier of 30.0; a normal channel spans +-0.6.
CODES_EXERCISE = {"outlier": 30.0, "channel_absmax": 0.6, "bits": 8}
# LLM.int8(): a 384-wide input, two outlier columns kept in float.
OUTLIER_EXERCISE = {"in_features": 384, "outliers": 2}


#: Right or a known slip: within 0.1% (relative).
_SAME = close(rel=1e-3, abs=1e-12)


@check
def check_smoothing_factor(answer):
    """s = 16**0.5 / 0.25**0.5 = 4 / 0.5 = 8."""
    e = SMOOTHING_EXERCISE
    s = e["x_absmax"] ** e["alpha"] / e["w_absmax"] ** (1 - e["alpha"])
    return grade(read_number(answer, "the factor s_j"), s,
                 f"s = 16^0.5 / 0.25^0.5 = 4 / 0.5 = {s:g}: the activation channel is divided by "
                 "8, the weight column multiplied by 8.", [
        (1 / s, "That is 1/s: the numerator is the activation maximum, the denominator the "
                "weight maximum."),
        (e["x_absmax"] / e["w_absmax"], "You left out the exponents: s = max|X|^alpha / "
                                        "max|W|^(1 - alpha)."),
        (math.sqrt(e["x_absmax"] * e["w_absmax"]), "That is the balanced range both sides end up "
                                                   "with (next exercise), not s."),
    ], "Not quite. Compute max|X_j|^alpha and max|W_j|^(1-alpha) separately, then divide.",
        same=_SAME)


@check
def check_balanced_range(answer):
    """After smoothing with alpha = 0.5 both sides have max sqrt(16 * 0.25) = 2."""
    e = SMOOTHING_EXERCISE
    balanced = math.sqrt(e["x_absmax"] * e["w_absmax"])
    before = ("That is a maximum before smoothing. Divide the activations by s, multiply the "
              "weights by s.")
    swapped = "The activations are divided by s and the weights multiplied, not the other way."
    return grade(read_number(answer, "the largest magnitude after smoothing"), balanced,
                 f"16 / 8 = 0.25 * 8 = {balanced:g}: with alpha = 0.5 both sides end up at the "
                 "geometric mean sqrt(max|X_j| max|W_j|).", [
        (e["x_absmax"], before),
        (e["w_absmax"], before),
        (e["x_absmax"] * 8, swapped),
        (e["w_absmax"] / 8, swapped),
    ], "Not quite. Use s = 8 from the previous exercise: 16 / s and 0.25 * s.", same=_SAME)


@check
def check_codes_used(answer):
    """Step 30/127; the channel reaches round(0.6 / step) = 3 steps: codes -3..3, 7 codes."""
    e = CODES_EXERCISE
    step = e["outlier"] / (2 ** (e["bits"] - 1) - 1)
    top = round(e["channel_absmax"] / step)
    expected = 2 * top + 1
    ends = "The channel does not reach the ends of the grid: the outlier set the scale."
    return grade(read_number(answer, "a number of codes"), expected,
                 f"One step is 30/127 = {step:.4f}, so +-0.6 reaches code +-{top}: the channel "
                 f"uses {expected} of the 255 codes, about {math.log2(expected):.1f} bits.", {
        top: "That is the largest code on one side. Count the negative codes and zero too.",
        2 * top: "Count zero as well: codes from -3 to 3.",
        255: ends,
        256: ends,
    }, "Not quite. One step is max|X| / 127 = 30 / 127; how many steps is 0.6?")


@check
def check_float_fraction(answer):
    """2 of 384 columns in float: 2/384 = 0.52% of the multiply-adds."""
    e = OUTLIER_EXERCISE
    frac = e["outliers"] / e["in_features"]
    return grade(read_number(answer, "a fraction between 0 and 1"), frac,
                 f"{e['outliers']}/{e['in_features']} = {frac:.4f}: each output sums over the "
                 "input features, and only 2 of them are multiplied in float.", [
        (100 * frac, "That is a percentage; give the fraction (between 0 and 1)."),
        (1 - frac, "That is the int8 part. The question asks for the float part."),
    ], "Not quite. Every output is a sum over the input columns; how many of the columns are "
       "computed in float?", same=close(rel=0.02, abs=1e-12))


@check
def check_alpha_one(answer):
    """alpha = 1: s_j = max|X_j|, so every smoothed activation channel has max 1."""
    return grade(read_number(answer, "max|X_j / s_j|"), 1.0,
                 "With alpha = 1, s_j = max|X_j| (the weight term is raised to 0): every "
                 "activation channel is scaled to max 1, and all of its range now sits in the "
                 "weights.", [(lambda v: v == 0, "The channels are divided by s_j, not zeroed.")],
                 "Not quite. Put alpha = 1 in s_j = max|X_j|^alpha / max|W_j|^(1-alpha): what is "
                 "max|W_j|^0?", same=_SAME)
