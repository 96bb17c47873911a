"""Self-checks for chapter 13, *Training with quantization*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook.exercises._answers import read_codes, read_number

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


def check_ste_gradient(answer) -> bool:
    """Exercise: the STE gradient of sum(x_hat) with respect to each x of ``STE_EXERCISE``.

    The range is [S * -4, S * 3] = [-1.0, 0.75], both ends inside: [0, 1, 1, 1, 1, 0, 0].
    """
    if answer is None or answer is Ellipsis:
        print(f"Replace the placeholder with your answer (a list of {len(_STE_MASK)} gradients, "
              "each 0 or 1), then run the cell again.")
        return False
    a = read_codes(answer, len(_STE_MASK))
    if a is None:
        return False
    if np.array_equal(a, _STE_MASK):
        print("Correct! The range is [-4 x 0.25, 3 x 0.25] = [-1.0, 0.75]; both ends belong to "
              "it, everything beyond is clamped and gets no gradient.")
        return True
    if np.array_equal(a, _STE_TORCH):
        print("That is torch.fake_quantize_per_tensor_affine's convention: it tests the rounded "
              "code, and 0.8 / 0.25 = 3.2 rounds to 3, inside. The STE of this chapter tests x "
              "itself against the range [-1.0, 0.75].")
    elif (a == 1).all():
        print("That is the gradient of the identity. The STE ignores the rounding, not the "
              "clamp: values outside the representable range get 0.")
    elif (a == 0).all():
        print("That is the true derivative of round(), 0 almost everywhere. The STE replaces "
              "it by 1 inside the range.")
    elif a[1] == 0 or a[4] == 0:
        print("The ends -1.0 and 0.75 are representable (codes -4 and 3): they are inside.")
    else:
        print("Not quite. Compute the range [S (q_min - Z), S (q_max - Z)] for 3-bit signed "
              "codes, then mark 1 for every x inside it.")
    return False


def check_tie_codes(answer) -> bool:
    """Exercise: x = float32(S * 15.5), S = float32(0.0731). The code from x / S (affine) and
    from x * float32(1/S) (torch's kernel): x / S = 15.499999 -> 15, x * (1/S) = 15.5 -> 16.
    """
    s = np.float32(TIE_EXERCISE["scale"])
    x = np.float32(s * np.float32(TIE_EXERCISE["steps"]))
    expected = (int(np.rint(x / s)), int(np.rint(x * (np.float32(1) / s))))
    a = read_codes(answer, 2)
    if a is None:
        return False
    if tuple(a) == expected:
        by_div = np.format_float_positional(x / s)
        by_inv = np.format_float_positional(x * (np.float32(1) / s))
        print(f"Correct! x / S = {by_div} rounds to {expected[0]}, x * (1/S) = "
              f"{by_inv} is an exact tie and rounds to the even "
              f"{expected[1]}: one step apart.")
        return True
    if tuple(a) == expected[::-1]:
        print("Swapped: the first number is the code from x / S (affine.quantize).")
    elif tuple(a) in ((16, 16), (15, 15)):
        print("In exact arithmetic both are 15.5; in float32 they are not. Compute both with "
              "np.float32 values and look at the digits.")
    else:
        print("Not quite. Compute x = np.float32(np.float32(0.0731) * np.float32(15.5)), then "
              "np.rint(x / s) and np.rint(x * (np.float32(1) / s)).")
    return False


def _lsq_expected() -> float:
    e = LSQ_EXERCISE
    v = np.array(e["x"]) / e["step"]
    qmin, qmax = -(2 ** (e["bits"] - 1)), 2 ** (e["bits"] - 1) - 1
    return float(np.sum(np.where(v < qmin, qmin, np.where(v > qmax, qmax, np.rint(v) - v))))


def check_lsq_step_gradient(answer) -> bool:
    """Exercise: LSQ's dL/dS for ``LSQ_EXERCISE`` with g = 1 and dL/dx_hat = 1.

    v = x: -3 -> Q_n = -2; -1.25 -> -1 + 1.25 = 0.25; 0.4 -> -0.4; -0.5 -> (round half to
    even: -0) + 0.5 = 0.5; 0.75 -> 0.25; 2 -> Q_p = 1. Sum: -0.4.
    """
    value = read_number(answer, "a number")
    if value is None:
        return False
    expected = _lsq_expected()
    if math.isclose(value, expected, abs_tol=1e-9):
        print(f"Correct! -2 + 0.25 - 0.4 + 0.5 + 0.25 + 1 = {expected:g}: the clamped values "
              "pull with Q_n and Q_p, the others with round(v) - v.")
        return True
    hints = [
        (-expected, "The sign is flipped: inside the range the term is round(v) - v, not "
                    "v - round(v)."),
        (0.6, "The clamped values count too: below the range the term is Q_n = -2, above it "
              "Q_p = 1."),
        (-1.4, "round(-0.5) is -0 (round half to even), not -1."),
        (0.0, "Even inside the range the step's gradient is not zero: round(v) - v."),
    ]
    for wrong, hint in hints:
        if math.isclose(value, wrong, abs_tol=1e-9):
            print(hint)
            return False
    print("Not quite. For each x compute v = x / S, then Q_n if v < Q_n, Q_p if v > Q_p, "
          "round(v) - v otherwise, and add them up (Q_n = -2, Q_p = 1 at 2 bits).")
    return False


def check_lsq_grad_scale(answer) -> bool:
    """Exercise: g = 1 / sqrt(N Q_p) for a 64 x 64 weight at 4 bits: 1 / sqrt(4096 * 7)."""
    value = read_number(answer, "a number")
    if value is None:
        return False
    e = GRAD_SCALE_EXERCISE
    n = e["rows"] * e["cols"]
    qp = 2 ** (e["bits"] - 1) - 1
    expected = 1 / math.sqrt(n * qp)
    if math.isclose(value, expected, rel_tol=1e-3):
        print(f"Correct! g = 1 / sqrt({n} x {qp}) = {expected:.6f}.")
        return True
    hints = {
        1 / math.sqrt(n): "Q_p is missing: g = 1 / sqrt(N Q_p).",
        1 / math.sqrt(n * 8): "Q_p is the largest positive code, 2^(b-1) - 1 = 7, not 8.",
        1 / math.sqrt(n * 15): "The weights are signed: Q_p = 2^(b-1) - 1 = 7, not 2^b - 1.",
        1 / math.sqrt(e["cols"] * qp): "One step for the whole tensor: N is all 4,096 "
                                       "weights, not one row.",
        math.sqrt(n * qp): "That is the inverse: g = 1 / sqrt(N Q_p).",
        1 / (n * qp): "Take the square root: g = 1 / sqrt(N Q_p).",
    }
    for wrong, hint in hints.items():
        if math.isclose(value, wrong, rel_tol=1e-3):
            print(hint)
            return False
    print("Not quite. N = 64 x 64 values share the step, Q_p = 2^(4-1) - 1; g = 1 / sqrt(N Q_p).")
    return False


def check_ternary_codes(answer) -> bool:
    """Exercise: BitNet b1.58's absmean codes of ``TERNARY_EXERCISE``.

    gamma = mean|w| = 2.2 / 6 = 0.3667; w / gamma = [2.45, -0.14, 0.55, -1.64, 0, 1.23];
    round and clip to [-1, 1]: [1, 0, 1, -1, 0, 1].
    """
    from quantbook.qat import absmean_ternary

    a = read_codes(answer, len(TERNARY_EXERCISE))
    if a is None:
        return False
    w = np.array(TERNARY_EXERCISE)
    codes, gamma = absmean_ternary(w)
    if np.array_equal(a, codes):
        print(f"Correct! gamma = mean|w| = {gamma:.4f}; w / gamma rounds and clips to "
              f"{codes.tolist()}.")
        return True
    absmax = np.clip(np.rint(w / np.abs(w).max()), -1, 1)
    if np.array_equal(a, absmax):
        print("That uses the absmax scale (0.9): only the largest weights survive. BitNet "
              "b1.58 divides by the mean |w| instead, so more weights become +-1.")
    elif np.abs(a).max() > 1:
        print("Ternary codes are -1, 0 or +1: clip after rounding.")
    else:
        print("Not quite. gamma = mean of |w|; divide, round half to even, clip to [-1, 1].")
    return False


def check_ternary_bits(answer) -> bool:
    """Exercise: the information in one ternary weight, log2(3) = 1.585 bits (the 1.58)."""
    value = read_number(answer, "a number of bits")
    if value is None:
        return False
    expected = math.log2(3)
    if abs(value - expected) <= 0.006:
        print(f"Correct! log2(3) = {expected:.4f}: the '1.58' of BitNet b1.58. Packing five "
              "ternary weights in a byte (3^5 = 243 <= 256) reaches 1.6 bits per weight.")
        return True
    if math.isclose(value, 1.6):
        print("1.6 bits is what a packing of five weights per byte achieves (3^5 = 243 <= "
              "256). The question asks for the information content of one weight.")
    elif math.isclose(value, 2.0):
        print("Two bits store a ternary weight easily but waste a code; the information is "
              "log2 of the number of values.")
    else:
        print("Not quite. A weight that takes one of 3 values carries log2(3) bits.")
    return False
