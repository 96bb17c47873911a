"""Self-checks for chapter 12, *Rounding that compensates its errors (GPTQ, AWQ)*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import numpy as np

from quantbook.exercises._grading import check, close, grade, read_number

__all__ = [
    "TWO_WEIGHTS",
    "check_rtn_objective",
    "check_best_objective",
    "check_obq_update",
    "check_hessian_entries",
    "check_awq_alpha_zero",
]

# One row of two weights on the integer grid (step 1), inputs with Gram matrix G = X^T X.
# Not the chapter's worked example (0.6, 0.6; 0.9), so that the text does not give the answers.
TWO_WEIGHTS = {"w": (0.7, 0.6), "gram": ((1.0, 0.8), (0.8, 1.0))}


def _objective(q) -> float:
    d = np.asarray(TWO_WEIGHTS["w"]) - np.asarray(q, dtype=float)
    return float(d @ np.asarray(TWO_WEIGHTS["gram"]) @ d)


#: Right or a known slip: within 0.1% (relative).
_SAME = close(rel=1e-3, abs=1e-9)


@check
def check_rtn_objective(answer):
    """RTN rounds both to 1: d = (-0.3, -0.4), d^T G d = 0.09 + 0.16 + 2 * 0.8 * 0.12 = 0.442."""
    expected = _objective((1, 1))
    return grade(read_number(answer, "the layer objective"), expected,
                 f"d = (-0.3, -0.4) and d^T G d = {expected:.3f}: the two errors have the same "
                 "sign and the inputs are correlated, so they add up in the output.", [
        (0.25, "That is ||d||^2, the error of the weights. The objective weighs it with G: add "
               "the cross term 2 * 0.8 * d1 * d2."),
        (_objective((0, 0)), "Round to nearest: 0.7 and 0.6 both round to 1, not 0."),
    ], "Not quite. Compute d = w - round(w), then d^T G d = G11 d1^2 + 2 G12 d1 d2 + G22 d2^2.",
        same=_SAME)


@check
def check_best_objective(answer):
    """Best of the four neighbours: (1, 0), objective 0.09 + 0.36 - 2*0.8*0.18 = 0.162."""
    values = {q: _objective(q) for q in ((0, 0), (0, 1), (1, 0), (1, 1))}
    best = min(values.values())
    return grade(read_number(answer, "the smallest objective"), best,
                 f"(1, 0) gives {best:.3f}, {values[(1, 1)] / best:.1f} times less than RTN's "
                 f"{values[(1, 1)]:.3f}: one weight rounded up, one down, and the errors cancel.", [
        (values[(0, 1)], "That is (0, 1). Round the other weight down: the one further from 1."),
        (values[(1, 1)], "That is RTN's objective. Try rounding one weight up and the other down."),
        (values[(0, 0)], "That is (0, 0): both rounded down, the errors still add up."),
    ], "Not quite. Evaluate d^T G d for the four grid points (0,0), (1,0), (0,1), (1,1).",
        same=_SAME)


@check
def check_obq_update(answer):
    """w2 <- w2 - (w1 - q1) [H^-1]_12 / [H^-1]_11 = 0.6 - (-0.3)(-0.8) = 0.36, then rounds to 0."""
    g = np.asarray(TWO_WEIGHTS["gram"])
    h_inv = np.linalg.inv(2 * g)
    w1, w2 = TWO_WEIGHTS["w"]
    expected = w2 - (w1 - 1.0) * h_inv[0, 1] / h_inv[0, 0]
    rounded = ("That is the rounded value. The question asks for w2 after the update, before it "
               "is rounded.")
    return grade(read_number(answer, "the updated second weight"), expected,
                 f"w2 becomes {expected:.2f} and rounds to 0: GPTQ lands on (1, 0), the best "
                 "grid point.", [
        (w2 + (w1 - 1.0) * h_inv[0, 1] / h_inv[0, 0],
         "Check the sign: the update subtracts (w1 - q1) [H^-1]_12 / [H^-1]_11, and [H^-1]_12 is "
         "negative here."),
        (0.0, rounded),
        (1.0, rounded),
    ], "Not quite. H^-1 is proportional to [[1, -0.8], [-0.8, 1]], so "
       "[H^-1]_12 / [H^-1]_11 = -0.8.", same=_SAME)


@check
def check_hessian_entries(answer):
    """H is in x in: 1536 * 1536 = 2,359,296 entries for the FFN-down layer."""
    return grade(read_number(answer, "a number of entries"), 1536**2,
                 "H is (in, in) = 1536 x 1536 = 2,359,296 entries, whatever the number of output "
                 "rows: all 384 rows share it.", {
        384**2: "H = 2 X^T X is indexed by the layer's *inputs*, and this layer has 1536.",
        384 * 1536: "That is the size of the weight matrix. H is (in, in).",
    }, "Not quite. X is (samples, in), so X^T X is (in, in).")


@check
def check_awq_alpha_zero(answer):
    """alpha = 0: every s_j = 1 (after normalization), so AWQ is RTN."""
    return grade(read_number(answer, "the scale s_j"), 1.0,
                 "x^0 = 1 for every channel and sqrt(1 * 1) = 1: W diag(s) = W, which is "
                 "round-to-nearest. The search starts from RTN, so it can only improve on it (on "
                 "the calibration data).", [
        (lambda v: v == 0, "Anything to the power 0 is 1, not 0."),
    ], "Not quite. Put alpha = 0 in s_j = x_j^alpha / sqrt(max x^alpha * min x^alpha).",
        same=_SAME)
