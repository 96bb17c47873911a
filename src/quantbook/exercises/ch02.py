"""Self-checks for chapter 2, *Affine (zero-point) quantization*.

The exercises use the configuration of the chapter's second worked example: the real range
[alpha, beta] = [-100, 80] mapped onto signed 8-bit codes [-128, 127].
Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook.exercises._grading import (
    call_student,
    check,
    close,
    grade,
    read_function,
    read_number,
)
from quantbook.formats import round_half_away_from_zero

__all__ = ["check_scale", "check_zero_point", "check_quantize"]

ALPHA, BETA = -100.0, 80.0
QMIN, QMAX = -128, 127


@check
def check_scale(answer):
    """Exercise: the scale S for [-100, 80] on int8.

    S = (beta - alpha) / (q_max - q_min) = 180 / 255 = 0.70588...
    """
    value = read_number(answer)
    width, steps = BETA - ALPHA, QMAX - QMIN
    return grade(value, width / steps, f"S = 180/255 = {width / steps:.6f}: each integer step is "
                                       f"worth about {width / steps:.3f} real units.", [
        (steps / width, "That is the inverse, the 'scale factor' 255/(beta - alpha) of worked "
                        "example 1 (Labonne's tutorial and seed notebook 001). In this book the "
                        "scale is real units per integer step: (beta - alpha)/(q_max - q_min)."),
        (width / (steps + 1), "256 codes have 255 steps between them: divide by "
                              "q_max - q_min = 255, not 256."),
        (BETA / QMAX, "That is a symmetric (absmax) scale from beta alone. Affine quantization "
                      "maps the whole width beta - alpha onto the codes."),
        (-ALPHA / -QMIN, "That is a symmetric (absmax) scale from alpha alone. Affine "
                         "quantization maps the whole width beta - alpha onto the codes."),
        (max(abs(ALPHA), abs(BETA)) / QMAX, "That is the symmetric absmax scale of chapter 3. "
                                            "Here use the width beta - alpha."),
        ((BETA + ALPHA) / steps, "Check the sign: the width is beta - alpha = 80 - (-100)."),
    ], "Not quite. The scale is the real width divided by the number of integer steps: "
       "S = (beta - alpha) / (q_max - q_min).", same=close(rel=1e-4))


@check
def check_zero_point(answer):
    """Exercise: the zero point Z for [-100, 80] on int8.

    Z = round(q_min - alpha / S) = round(-128 + 141.67) = round(13.67) = 14.
    """
    value = read_number(answer)
    scale = (BETA - ALPHA) / (QMAX - QMIN)
    exact = QMIN - ALPHA / scale  # 13.666...
    right = round(exact)
    unsigned_exact = 0 - ALPHA / scale  # the same range on uint8 [0, 255]
    near = close(rel=1e-4)
    return grade(value, right, f"Z = round({exact:.4f}) = {right}: the code {right} stands for "
                               "0.0 exactly.", [
        (lambda v: near(v, exact), "The zero point must be an integer code (so that 0.0 is "
                                   "exactly representable): round it."),
        (math.trunc(exact), "You used int(), which truncates toward zero; round instead "
                            f"({exact:.4f} is nearer to {right})."),
        (lambda v: v in (math.floor(exact), math.ceil(exact)),
         f"Close: {exact:.4f} rounds to the nearest integer, not down or up by habit."),
        (lambda v: v == -right or near(v, -exact),
         "Check the sign: Z = q_min - alpha/S, and alpha is negative here."),
        (lambda v: v in (round(unsigned_exact), math.trunc(unsigned_exact)),
         "That is the zero point for unsigned codes [0, 255]. This exercise uses signed int8, "
         "q_min = -128."),
        (lambda v: v in (QMIN, 0), "The zero point is the code that stands for 0.0. Zero is not "
                                   "at an end of [-100, 80], so Z is neither q_min nor 0."),
        (lambda v: v != int(v), "The zero point is an integer code: Z = round(q_min - alpha/S)."),
    ], "Not quite. Solve alpha = S (q_min - Z) for Z, then round: Z = round(q_min - alpha/S).")


#: Inputs of the quantize exercise, chosen so that each usual slip gives a different answer:
#: x/S has ties (2.5, -2.5), fractions of either sign, and values far outside the range.
QUANTIZE_X = np.array([0.0, 1.25, -1.25, 1.4, -1.4, 0.9, -0.9, 100.0, -100.0, 63.0, -61.5])
QUANTIZE_SCALE = 0.5
QUANTIZE_ZERO_POINT = -3


def _expected(x, scale, zero_point, to_int=np.rint, clamp=True, sign=1) -> np.ndarray:
    q = to_int(x / scale) + sign * zero_point
    return np.clip(q, QMIN, QMAX) if clamp else q


def _wrap_int8(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.int64) + 128) % 256 - 128


@check
def check_quantize(my_quantize):
    """Exercise: write ``my_quantize(x, scale, zero_point)`` for signed 8-bit codes.

    q = clamp(round(x / S) + Z, -128, 127) with round half to even (``np.rint``). Tested on
    ``QUANTIZE_X`` with S = 0.5, Z = -3.
    """
    my_quantize = read_function(my_quantize, not_callable="Pass the function itself "
                                "(my_quantize, without parentheses); got {type}.")
    x, s, z = QUANTIZE_X.copy(), QUANTIZE_SCALE, QUANTIZE_ZERO_POINT
    got = call_student(my_quantize, x.copy(), s, z)
    if got is None or got is Ellipsis:
        return "Your function returned nothing yet: compute the codes and return them."
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return "Return an array of integer codes (for example a NumPy array of dtype int8)."
    if got.shape != x.shape:
        return f"Return one code per input value: expected shape {x.shape}, got {got.shape}."
    right = _expected(x, s, z)
    wrapped = _wrap_int8(_expected(x, s, z, clamp=False))
    return grade(got, right, "round, shift by the zero point, clamp: "
                             f"{QUANTIZE_X.tolist()} -> {right.astype(int).tolist()}", [
        (_expected(x, s, z, to_int=np.trunc), "You used int() or astype(int), which truncates "
         "toward zero (-1.4/0.5 = -2.8 becomes -2); round instead with np.rint."),
        (_expected(x, s, z, to_int=np.floor), "You used floor, which rounds down (1.4/0.5 = 2.8 "
         "becomes 2); round to the nearest integer with np.rint."),
        (_expected(x, s, z, to_int=np.ceil), "You used ceil, which rounds up; round to nearest "
         "with np.rint."),
        (_expected(x, s, z, to_int=lambda v: np.floor(v + 0.5)), "You round halves up "
         "(floor(v + 0.5)): 2.5 becomes 3. This book, NumPy and PyTorch round half to even "
         "(np.rint: 2.5 -> 2)."),
        (_expected(x, s, z, to_int=round_half_away_from_zero), "You round halves away from zero "
         "(like llama.cpp's Q8_0): 2.5 becomes 3. This book rounds half to even (np.rint)."),
        (_expected(x, s, z, clamp=False), "Values outside the range must be clamped: 100/0.5 - 3 "
         "= 197 does not fit in int8. Use np.clip(q, -128, 127)."),
        (wrapped, "Your codes wrapped around (197 became -59): astype(np.int8) wraps. Clip to "
         "[-128, 127] before you cast."),
        (_expected(x, s, z, sign=-1), "Add the zero point, do not subtract it: q = round(x/S) "
         "+ Z."),
        (np.clip(np.rint(x * s) + z, QMIN, QMAX), "You multiplied by the scale; quantizing "
         "divides by it (x/S counts steps)."),
    ], f"Not quite: for x = {QUANTIZE_X.tolist()} with S = {s}, Z = {z} the codes should be "
       f"{right.astype(int).tolist()}, yours are {got.tolist()}. "
       "Use q = clip(rint(x / S) + Z, -128, 127).", same=np.array_equal)
