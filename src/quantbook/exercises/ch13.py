"""Self-checks for chapter 13, *Training with quantization*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook.exercises._grading import check, close, grade, read_codes, read_number, read_numbers

__all__ = [
    "STE_EXERCISE",
    "TIE_EXERCISE",
    "LSQ_EXERCISE",
    "GRAD_SCALE_EXERCISE",
    "TERNARY_EXERCISE",
    "check_ste_gradient",
    "check_tie_codes",
    "check_lsq_step_gradient",
    "check_lsq_grad_scale",
    "check_ternary_codes",
    "check_ternary_bits",
]

# 3-bit signed codes -4 ... 3, S = 0.25, Z = 0: the representable range is [-1.0, 0.75].
STE_EXERCISE = {"x": (-1.2, -1.0, -0.4, 0.6, 0.75, 0.8, 1.1), "scale": 0.25, "zero_point": 0,
                "bits": 3}
_STE_MASK = (0, 1, 1, 1, 1, 0, 0)
_STE_TORCH = (0, 1, 1, 1, 1, 1, 0)  # torch tests the rounded code: 0.8 / 0.25 = 3.2 -> 3

# x = float32(S * 15.5) with S = float32(0.0731), 8-bit signed, Z = 0.
TIE_EXERCISE = {"scale": 0.0731, "steps": 15.5}

# S = 1, 2-bit signed codes -2 ... 1, g = 1, dL/dx_hat = 1 for every value.
LSQ_EXERCISE = {"x": (-3.0, -1.25, 0.4, -0.5, 0.75, 2.0), "step": 1.0, "bits": 2}

# LSQ's gradient scale for one step shared by a 64 x 64 weight at 4 bits.
GRAD_SCALE_EXERCISE = {"rows": 64, "cols": 64, "bits": 4}

TERNARY_EXERCISE = (0.9, -0.05, 0.2, -0.6, 0.0, 0.45)


@check
def check_ste_gradient(answer):
    """Exercise: the STE gradient of sum(x_hat) with respect to each x of ``STE_EXERCISE``.

    The range is [S * -4, S * 3] = [-1.0, 0.75], both ends inside: [0, 1, 1, 1, 1, 0, 0].
    """
    return grade(read_numbers(answer, len(_STE_MASK), f"{len(_STE_MASK)} gradients, each 0 or 1"),
                 _STE_MASK,
                 "The range is [-4 x 0.25, 3 x 0.25] = [-1.0, 0.75]; both ends belong to it, "
                 "everything beyond is clamped and gets no gradient.", [
        (_STE_TORCH, "That is torch.fake_quantize_per_tensor_affine's convention: it tests the "
                     "rounded code, and 0.8 / 0.25 = 3.2 rounds to 3, inside. The STE of this "
                     "chapter tests x itself against the range [-1.0, 0.75]."),
        (lambda a: (a == 1).all(), "That is the gradient of the identity. The STE ignores the "
                                   "rounding, not the clamp: values outside the representable "
                                   "range get 0."),
        (lambda a: (a == 0).all(), "That is the true derivative of round(), 0 almost everywhere. "
                                   "The STE replaces it by 1 inside the range."),
        (lambda a: a[1] == 0 or a[4] == 0, "The ends -1.0 and 0.75 are representable (codes -4 "
                                           "and 3): they are inside."),
    ], "Not quite. Compute the range [S (q_min - Z), S (q_max - Z)] for 3-bit signed codes, then "
       "mark 1 for every x inside it.", same=np.array_equal)


@check
def check_tie_codes(answer):
    """Exercise: x = float32(S * 15.5), S = float32(0.0731). The code from x / S (affine) and
    from x * float32(1/S) (torch's kernel): x / S = 15.499999 -> 15, x * (1/S) = 15.5 -> 16.
    """
    s = np.float32(TIE_EXERCISE["scale"])
    x = np.float32(s * np.float32(TIE_EXERCISE["steps"]))
    expected = (int(np.rint(x / s)), int(np.rint(x * (np.float32(1) / s))))
    a = tuple(read_codes(answer, 2))
    by_div = np.format_float_positional(x / s)
    by_inv = np.format_float_positional(x * (np.float32(1) / s))
    exact = ("In exact arithmetic both are 15.5; in float32 they are not. Compute both with "
             "np.float32 values and look at the digits.")
    return grade(a, expected, f"x / S = {by_div} rounds to {expected[0]}, x * (1/S) = {by_inv} "
                              f"is an exact tie and rounds to the even {expected[1]}: one step "
                              "apart.", {
        expected[::-1]: "Swapped: the first number is the code from x / S (affine.quantize).",
        (16, 16): exact,
        (15, 15): exact,
    }, "Not quite. Compute x = np.float32(np.float32(0.0731) * np.float32(15.5)), then "
       "np.rint(x / s) and np.rint(x * (np.float32(1) / s)).")


def _lsq_expected() -> float:
    e = LSQ_EXERCISE
    v = np.array(e["x"]) / e["step"]
    qmin, qmax = -(2 ** (e["bits"] - 1)), 2 ** (e["bits"] - 1) - 1
    return float(np.sum(np.where(v < qmin, qmin, np.where(v > qmax, qmax, np.rint(v) - v))))


@check
def check_lsq_step_gradient(answer):
    """Exercise: LSQ's dL/dS for ``LSQ_EXERCISE`` with g = 1 and dL/dx_hat = 1.

    v = x: -3 -> Q_n = -2; -1.25 -> -1 + 1.25 = 0.25; 0.4 -> -0.4; -0.5 -> (round half to
    even: -0) + 0.5 = 0.5; 0.75 -> 0.25; 2 -> Q_p = 1. Sum: -0.4.
    """
    expected = _lsq_expected()
    return grade(read_number(answer, "a number"), expected,
                 f"-2 + 0.25 - 0.4 + 0.5 + 0.25 + 1 = {expected:g}: the clamped values pull with "
                 "Q_n and Q_p, the others with round(v) - v.", [
        (-expected, "The sign is flipped: inside the range the term is round(v) - v, not "
                    "v - round(v)."),
        (0.6, "The clamped values count too: below the range the term is Q_n = -2, above it "
              "Q_p = 1."),
        (-1.4, "round(-0.5) is -0 (round half to even), not -1."),
        (0.0, "Even inside the range the step's gradient is not zero: round(v) - v."),
    ], "Not quite. For each x compute v = x / S, then Q_n if v < Q_n, Q_p if v > Q_p, "
       "round(v) - v otherwise, and add them up (Q_n = -2, Q_p = 1 at 2 bits).",
        same=close(abs=1e-9))


@check
def check_lsq_grad_scale(answer):
    """Exercise: g = 1 / sqrt(N Q_p) for a 64 x 64 weight at 4 bits: 1 / sqrt(4096 * 7)."""
    e = GRAD_SCALE_EXERCISE
    n = e["rows"] * e["cols"]
    qp = 2 ** (e["bits"] - 1) - 1
    expected = 1 / math.sqrt(n * qp)
    return grade(read_number(answer, "a number"), expected,
                 f"g = 1 / sqrt({n} x {qp}) = {expected:.6f}.", {
        1 / math.sqrt(n): "Q_p is missing: g = 1 / sqrt(N Q_p).",
        1 / math.sqrt(n * 8): "Q_p is the largest positive code, 2^(b-1) - 1 = 7, not 8.",
        1 / math.sqrt(n * 15): "The weights are signed: Q_p = 2^(b-1) - 1 = 7, not 2^b - 1.",
        1 / math.sqrt(e["cols"] * qp): "One step for the whole tensor: N is all 4,096 "
                                       "weights, not one row.",
        math.sqrt(n * qp): "That is the inverse: g = 1 / sqrt(N Q_p).",
        1 / (n * qp): "Take the square root: g = 1 / sqrt(N Q_p).",
    }, "Not quite. N = 64 x 64 values share the step, Q_p = 2^(4-1) - 1; g = 1 / sqrt(N Q_p).",
        same=close(rel=1e-3))


@check
def check_ternary_codes(answer):
    """Exercise: BitNet b1.58's absmean codes of ``TERNARY_EXERCISE``.

    gamma = mean|w| = 2.2 / 6 = 0.3667; w / gamma = [2.45, -0.14, 0.55, -1.64, 0, 1.23];
    round and clip to [-1, 1]: [1, 0, 1, -1, 0, 1].
    """
    from quantbook.qat import absmean_ternary

    a = read_codes(answer, len(TERNARY_EXERCISE))
    w = np.array(TERNARY_EXERCISE)
    codes, gamma = absmean_ternary(w)
    return grade(a, codes, f"gamma = mean|w| = {gamma:.4f}; w / gamma rounds and clips to "
                           f"{codes.tolist()}.", [
        (np.clip(np.rint(w / np.abs(w).max()), -1, 1),
         "That uses the absmax scale (0.9): only the largest weights survive. BitNet b1.58 "
         "divides by the mean |w| instead, so more weights become +-1."),
        (lambda a: np.abs(a).max() > 1, "Ternary codes are -1, 0 or +1: clip after rounding."),
    ], "Not quite. gamma = mean of |w|; divide, round half to even, clip to [-1, 1].",
        same=np.array_equal)


@check
def check_ternary_bits(answer):
    """Exercise: the information in one ternary weight, log2(3) = 1.585 bits (the 1.58)."""
    expected = math.log2(3)
    return grade(read_number(answer, "a number of bits"), expected,
                 f"log2(3) = {expected:.4f}: the '1.58' of BitNet b1.58. Packing five ternary "
                 "weights in a byte (3^5 = 243 <= 256) reaches 1.6 bits per weight.", [
        (lambda v: math.isclose(v, 1.6),
         "1.6 bits is what a packing of five weights per byte achieves (3^5 = 243 <= 256). The "
         "question asks for the information content of one weight."),
        (lambda v: math.isclose(v, 2.0),
         "Two bits store a ternary weight easily but waste a code; the information is log2 of "
         "the number of values."),
    ], "Not quite. A weight that takes one of 3 values carries log2(3) bits.",
        same=lambda value, target: abs(value - target) <= 0.006)
