"""The graded lab (``notebooks/lab_quantization.ipynb``): task inputs, checks and the score.

Each task has its inputs here (``TASKn_...`` constants, read-only NumPy arrays) and a check,
``check_taskn(answer)``, that

- computes the expected answer with quantbook from those inputs (the student notebook holds no
  answers),
- prints ``Correct!`` or a hint aimed at the most likely slip (a hint never gives the answer),
- records the points earned and returns them as :class:`Points` (an ``int`` shown as
  ``"2 / 2 points"``),
- never raises: a blank (``None``) or malformed answer scores 0 with a message.

:func:`score` prints a table of the points per task and the total; :func:`reset` forgets them.

========  =====================================================  ======  =======
task      skill                                                  points  chapter
========  =====================================================  ======  =======
1         scale and zero point of a range (signed int8)          2       2
2         quantize to uint8 in NumPy (round, shift, clamp)       2       2
3         dequantize uint8 codes (without uint8 wrap-around)     1       2
4         symmetric int4, one scale per group of 32: the MSE     2       3, 4
5         calibrate an activation range (99.9th percentile)      1       4
6         pack signed int4 values, high-first nibble order       2       5
7         decode a GGUF Q8_0 block from its bytes                2       5
8         binary embeddings: codes, Hamming distance, signs      3       6
========  =====================================================  ======  =======
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from typing import NamedTuple

import numpy as np

from quantbook import affine, embeddings, formats, granularity, metrics, packing, symmetric

__all__ = [
    "TASKS",
    "MAX_POINTS",
    "Points",
    "check_task1",
    "check_task2",
    "check_task3",
    "check_task4",
    "check_task5",
    "check_task6",
    "check_task7",
    "check_task8",
    "score",
    "reset",
]


class Task(NamedTuple):
    title: str
    points: int
    chapters: str


TASKS = {
    1: Task("Scale and zero point of a range", 2, "2"),
    2: Task("Quantize to uint8 in NumPy", 2, "2"),
    3: Task("Dequantize uint8 codes", 1, "2"),
    4: Task("Symmetric int4 per group: the MSE", 2, "3, 4"),
    5: Task("Calibrate an activation range", 1, "4"),
    6: Task("Pack int4, high-first", 2, "5"),
    7: Task("Decode a Q8_0 block", 2, "5"),
    8: Task("Binary embeddings and Hamming distance", 3, "6"),
}
MAX_POINTS = sum(task.points for task in TASKS.values())

_earned: dict[int, int] = {}


class Points(int):
    """Points earned on one task: an ``int`` that a notebook shows as ``2 / 2 points``."""

    out_of: int

    def __new__(cls, earned: int, out_of: int):
        obj = super().__new__(cls, earned)
        obj.out_of = out_of
        return obj

    def __repr__(self) -> str:
        return f"{int(self)} / {self.out_of} point{'' if self.out_of == 1 else 's'}"


def _say(text: str) -> None:
    # One write per message: a notebook then shows it as one block of output, not two.
    sys.stdout.write(f"{text}\n")


def _readonly(a) -> np.ndarray:
    # Inputs are shared by the notebook and the checks: an in-place edit in the notebook must
    # not change what the check expects.
    a = np.array(a)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# Task inputs. Seeded, small, chosen so that each usual slip gives a different answer.
# --------------------------------------------------------------------------------------------

#: Task 1: the real range [alpha, beta] mapped onto signed int8. Its exact zero point has a
#: fractional part above 1/2, so truncating with int() and rounding disagree.
TASK1_RANGE = (-3.1, 1.4)

#: Tasks 2 and 3: uint8 codes with this scale and zero point.
TASK2_SCALE = 0.25
TASK2_ZERO_POINT = 20
#: x/S has ties (+-2.5, 7.5), fractions of both signs, a value whose code is -1 (wraps to 255
#: under astype(np.uint8) on x86; the cast is undefined in C) and values far outside the range.
TASK2_X = _readonly([0.0, 0.3, -0.3, 0.45, -0.45, 0.625, -0.625, 1.875, -5.25, -10.0, 100.0,
                     58.75])
TASK3_SCALE = TASK2_SCALE
TASK3_ZERO_POINT = TASK2_ZERO_POINT
#: Codes below the zero point make ``codes - zero_point`` wrap around in uint8 arithmetic.
TASK3_CODES = _readonly(np.array([0, 7, 19, 20, 21, 128, 255], dtype=np.uint8))


def _task4_weights() -> np.ndarray:
    rng = np.random.default_rng(2024)
    w = rng.normal(0.0, 0.05, size=(8, 64)).astype(np.float32)
    w[2, 37] = 0.9  # one outlier: it should spoil one group, not the whole tensor
    return w


#: Task 4: an 8 x 64 weight matrix with one outlier; int4 symmetric, groups of 32 per row.
TASK4_WEIGHTS = _readonly(_task4_weights())
TASK4_BITS = 4
TASK4_GROUP_SIZE = 32


def _relu_batch(seed: int, n: int, spikes: list[float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(0.5, 1.0, size=n), 0.0)
    x[rng.choice(n, size=len(spikes), replace=False)] = spikes  # rare, huge activations
    return x.astype(np.float32)


#: Task 5: ReLU activations of one layer on a calibration batch (with a few rare spikes), and
#: on the evaluation (test) batch, which must not be used to choose the range.
TASK5_CALIBRATION = _readonly(_relu_batch(5, 20_000, [40.0, 38.5, 41.0, 39.2, 40.3]))
TASK5_TEST = _readonly(_relu_batch(55, 5_000, []))
TASK5_PERCENTILE = 99.9

#: Task 6: signed int4 values (odd count: the last byte is padded) and the nibble order.
TASK6_VALUES = (3, -2, 7, -8, 0, 5, -1)
TASK6_ORDER = "high-first"


def _task7_block() -> np.ndarray:
    rng = np.random.default_rng(10)
    x = rng.normal(0.0, 0.02, size=32).astype(np.float32)
    return formats.encode_q8_0(x)


#: Task 7: the 34 bytes of one GGUF Q8_0 block (float16 scale, then 32 int8 codes).
TASK7_BLOCK = _readonly(_task7_block())


def _task8_embeddings() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(2, 20))
    b[7] = -abs(b[7]) - 0.1  # a[7] is exactly 0 (below): "x > 0" and "x >= 0" differ here
    a[7] = 0.0
    a /= np.linalg.norm(a)
    b /= np.linalg.norm(b)
    return a.astype(np.float32), b.astype(np.float32)


#: Task 8: two 20-dimensional sentence embeddings (20 is not a multiple of 8; a[7] is 0.0).
TASK8_A, TASK8_B = (_readonly(v) for v in _task8_embeddings())


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class _Unanswered(Exception):
    """The answer is still the placeholder (or malformed): the message says what to do."""


def _is_blank(value) -> bool:
    return value is None or value is Ellipsis


def _check(task: int):
    """Turn ``fn(answer) -> points`` into a check that records points and never raises."""

    def decorate(fn):
        @functools.wraps(fn)
        def check(answer=None):
            try:
                earned = int(fn(answer))
            except _Unanswered as message:
                _say(message)
                earned = 0
            except Exception as error:  # the answer may be anything; report, never raise
                _say(f"Your answer could not be checked ({type(error).__name__}: {error}). "
                      "Look at the form the task asks for and try again.")
                earned = 0
            _earned[task] = earned
            return Points(earned, TASKS[task].points)

        return check

    return decorate


def _number(value, what: str) -> float:
    if _is_blank(value):
        raise _Unanswered(f"{what} is not answered yet: replace None with your answer and run "
                          "the cell again.")
    if isinstance(value, (str, bytes)):
        raise _Unanswered(f"{what} should be a number, not text ({value!r}).")
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise _Unanswered(f"{what} should be a single number; got {value!r}.") from None
    if not math.isfinite(number):
        raise _Unanswered(f"{what} should be a finite number; got {number}.")
    return number


def _numbers(value, what: str) -> np.ndarray:
    """The answer as a 1-D float64 array (any array-like of numbers)."""
    if _is_blank(value):
        raise _Unanswered(f"{what} is not answered yet: replace None with your answer and run "
                          "the cell again.")
    if isinstance(value, (str, bytes)):
        raise _Unanswered(f"{what} should be numbers (a list or a NumPy array), not text.")
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Unanswered(f"{what} should be a list or array of numbers; got {value!r}.") from None
    if not np.isfinite(array).all():
        raise _Unanswered(f"{what} holds NaN or infinite values.")
    return array.ravel()


def _parts(answer, names: tuple[str, ...]) -> tuple:
    """Split a tuple answer, e.g. ``(scale, zero_point)``."""
    if _is_blank(answer) or (isinstance(answer, (tuple, list))
                             and all(_is_blank(part) for part in answer)):
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise _Unanswered(f"Not answered yet: fill in {listed}, then run the cell again.")
    if not isinstance(answer, (tuple, list)) or len(answer) != len(names):
        raise _Unanswered(f"Give the answer as a tuple ({', '.join(names)}); "
                          f"got {type(answer).__name__}.")
    return tuple(answer)


def _close(a, b, rel: float = 1e-4, abs_: float = 0.0) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rel, atol=abs_))


def _first_hint(got, candidates, rel: float = 1e-4, abs_: float = 0.0) -> str | None:
    """The hint of the first wrong-answer candidate equal to ``got``."""
    for candidate, hint in candidates:
        try:
            if candidate is not None and _close(got, candidate, rel, abs_):
                return hint
        except (TypeError, ValueError):
            continue
    return None


# --------------------------------------------------------------------------------------------
# Task 1: scale and zero point of [alpha, beta] on signed int8 (chapter 2)
# --------------------------------------------------------------------------------------------


@_check(1)
def check_task1(answer) -> int:
    """``answer = (scale, zero_point)`` for ``TASK1_RANGE`` on signed int8 (1 point each).

    S = (beta - alpha) / (q_max - q_min), Z = round(q_min - alpha / S).
    """
    scale, zero_point = _parts(answer, ("scale", "zero_point"))
    alpha, beta = TASK1_RANGE
    qmin, qmax = affine.qrange(8, signed=True)
    right_scale, right_zero_point = affine.qparams(alpha, beta, bits=8, signed=True)
    width, steps = beta - alpha, qmax - qmin
    earned = 0

    if _is_blank(scale):
        _say("Scale: not answered yet.")
    else:
        s = _number(scale, "The scale")
        if _close(s, right_scale):
            _say("Scale: Correct! One integer step is worth (beta - alpha)/255 real units.")
            earned += 1
        else:
            _say("Scale: " + (_first_hint(s, [
                (steps / width, "that is the inverse, the 'scale factor' 255/(beta - alpha) of "
                                "some tutorials. In this book the scale is real units per "
                                "integer step."),
                (width / (steps + 1), "256 codes have 255 steps between them: divide by "
                                      "q_max - q_min."),
                (max(abs(alpha), abs(beta)) / qmax, "that is the symmetric absmax scale of "
                                                    "chapter 3; affine quantization maps the "
                                                    "whole width beta - alpha onto the codes."),
                ((beta + alpha) / steps, "check the sign: the width is beta - alpha."),
            ]) or "not quite. Two conditions fix it: alpha maps to q_min and beta to q_max."))

    if _is_blank(zero_point):
        _say("Zero point: not answered yet.")
    else:
        z = _number(zero_point, "The zero point")
        exact = qmin - alpha / right_scale
        if z == right_zero_point:
            _say("Zero point: Correct! It is the integer code that stands for 0.0.")
            earned += 1
        elif z != int(z):
            _say("Zero point: it must be an integer code, so that 0.0 is exactly "
                  "representable.")
        elif z == math.trunc(exact):
            _say("Zero point: you truncated (int() or astype(int)) instead of rounding to the "
                  "nearest integer.")
        elif z in (math.floor(exact), math.ceil(exact)):
            _say("Zero point: round to the nearest integer, not always down or up.")
        elif z in (round(-alpha / right_scale), math.trunc(-alpha / right_scale)):
            _say("Zero point: that would be right for unsigned codes [0, 255]; this task uses "
                  "signed int8, q_min = -128.")
        elif z == -right_zero_point or z in (round(-exact), math.trunc(-exact)):
            _say("Zero point: check the sign: alpha = S (q_min - Z), and alpha is negative.")
        else:
            _say("Zero point: not quite. Solve alpha = S (q_min - Z) for Z, then make it an "
                  "integer.")
    return earned


# --------------------------------------------------------------------------------------------
# Task 2: quantize to uint8 in NumPy (chapter 2)
# --------------------------------------------------------------------------------------------


def _uint8_codes(x, scale, zero_point, to_int=np.rint, clamp=(0, 255), sign=1) -> np.ndarray:
    q = to_int(np.asarray(x, dtype=np.float64) / scale) + sign * zero_point
    return np.clip(q, *clamp) if clamp else q


def _round_half_up(v):
    return np.floor(v + 0.5)


def _round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


@_check(2)
def check_task2(quantize_uint8) -> int:
    """``quantize_uint8(x, scale, zero_point)`` returns uint8 codes (2 points).

    q = clamp(round(x / S) + Z, 0, 255), round half to even. Tested on ``TASK2_X`` with
    S = ``TASK2_SCALE``, Z = ``TASK2_ZERO_POINT``.
    """
    if _is_blank(quantize_uint8):
        raise _Unanswered("Task 2 is not answered yet: write the function, then run the cell "
                          "again.")
    if not callable(quantize_uint8):
        raise _Unanswered("Pass the function itself: lab.check_task2(quantize_uint8), without "
                          "parentheses after its name.")
    x, s, z = TASK2_X.copy(), TASK2_SCALE, TASK2_ZERO_POINT
    try:
        result = quantize_uint8(x.copy(), s, z)
    except Exception as error:  # the student's function may fail in any way
        raise _Unanswered(f"Your function raised {type(error).__name__}: {error}") from None
    if _is_blank(result):
        raise _Unanswered("Your function returns None: compute the codes and return them.")
    got = _numbers(result, "The codes")
    if got.shape != x.shape:
        raise _Unanswered(f"Return one code per input value: {x.size} codes, got {got.size}.")
    right = _uint8_codes(x, s, z)
    if np.array_equal(got, right):
        dtype = getattr(result, "dtype", None)
        note = "" if dtype == np.uint8 else " (store them as np.uint8, one byte each)"
        _say(f"Correct! Round, shift by the zero point, clamp to [0, 255]{note}.")
        return 2
    unclamped = _uint8_codes(x, s, z, clamp=None)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cast_here = unclamped.astype(np.uint8).astype(np.float64)  # what this CPU does
    cast_hint = ("Some codes are outside [0, 255] and the cast changed them: you cast without "
                 "clipping. The result of such a cast is undefined in C and differs between "
                 "CPUs; on x86 astype(np.uint8) wraps modulo 256 (-1 becomes 255, 420 becomes "
                 "164). Clip to [0, 255] before you cast.")
    hint = _first_hint(got, [
        (unclamped % 256, "Some codes wrapped around: the code -1 became 255 and 420 became "
                          "164. On x86, astype(np.uint8) wraps modulo 256 (a cast of an "
                          "out-of-range value is undefined in C; other CPUs do other things); "
                          "clip to [0, 255] before you cast."),
        *([(cast_here, cast_hint)] if not np.array_equal(cast_here, right) else []),
        (_uint8_codes(x, s, z, to_int=np.trunc), "You truncated (int() or astype(int)) instead "
                                                 "of rounding: 0.45/0.25 = 1.8 became 1."),
        (_uint8_codes(x, s, z, to_int=np.floor), "You rounded down: floor, or int() / "
                                                 "astype(int) after adding the zero point, "
                                                 "which truncates 18.8 to 18. Round to the "
                                                 "nearest integer first (np.rint)."),
        (_uint8_codes(x, s, z, to_int=np.ceil), "You rounded up (ceil); round to the nearest "
                                                "integer."),
        (_uint8_codes(x, s, z, to_int=_round_half_up), "You round halves up (floor(v + 0.5)): "
                                                       "2.5 became 3. This book, NumPy and "
                                                       "PyTorch round half to even (np.rint)."),
        (_uint8_codes(x, s, z, to_int=_round_half_away), "You round halves away from zero (like "
                                                         "llama.cpp's Q8_0, or Python 2). Use "
                                                         "np.rint: half to even."),
        (unclamped, "Values outside the range must be clamped: 100/0.25 + 20 = 420 does not "
                    "fit in a byte."),
        (_uint8_codes(x, s, z, clamp=(-128, 127)), "These are uint8 codes: clamp to [0, 255], "
                                                   "not to the int8 range."),
        (_uint8_codes(x, s, z, sign=-1), "Add the zero point, do not subtract it."),
        (np.clip(np.rint(x * s) + z, 0, 255), "You multiplied by the scale; quantizing divides "
                                              "by it (x/S counts steps)."),
    ])
    _say(hint or "Not quite. Count steps (x/S), round half to even, add the zero point, and "
                  "clamp to [0, 255] before casting to uint8.")
    return 0


# --------------------------------------------------------------------------------------------
# Task 3: dequantize uint8 codes (chapter 2)
# --------------------------------------------------------------------------------------------


@_check(3)
def check_task3(answer) -> int:
    """``answer`` = the dequantized values of ``TASK3_CODES`` (1 point): S (q - Z)."""
    got = _numbers(answer, "Task 3")
    q = TASK3_CODES.astype(np.int64)
    s, z = TASK3_SCALE, TASK3_ZERO_POINT
    right = affine.dequantize(TASK3_CODES, s, z)
    if got.shape != right.shape:
        raise _Unanswered(f"Give one value per code: {right.size} values, got {got.size}.")
    if _close(got, right, rel=1e-6, abs_=1e-6):
        _say("Correct! x_hat = S (q - Z), computed in a signed type.")
        return 1
    hint = _first_hint(got, [
        (s * ((q - z) % 256), "Your codes minus the zero point wrapped around: in uint8 "
                              "arithmetic 0 - 20 is 236, not -20 (the same wrap-around that "
                              "printed 255 for -1 in chapter 6's seed). Convert the codes to a "
                              "signed type or float first, e.g. codes.astype(np.int32)."),
        (s * (q + z), "Subtract the zero point: x_hat = S (q - Z)."),
        ((q - z) / s, "You divided by the scale; dequantizing multiplies by it."),
        (s * q, "The zero point is missing: x_hat = S (q - Z)."),
        (s * q - z, "Subtract the zero point before scaling: S (q - Z), not S q - Z."),
    ], rel=1e-6, abs_=1e-6)
    _say(hint or "Not quite. Dequantize with x_hat = S (q - Z), in a type that can hold "
                  "negative numbers.")
    return 0


# --------------------------------------------------------------------------------------------
# Task 4: symmetric int4, one scale per group of 32 (chapters 3 and 4)
# --------------------------------------------------------------------------------------------


def _symmetric_mse(w, groups: int | None, levels: float, qmin: float, qmax: float,
                   to_int=np.rint, per_row: bool = False) -> float:
    w = np.asarray(w, dtype=np.float64)
    if per_row:
        blocks = w.reshape(w.shape[0], 1, -1)
    elif groups is None:
        blocks = w.reshape(1, 1, -1)
    else:
        blocks = w.reshape(w.shape[0], -1, groups)
    scale = np.abs(blocks).max(axis=-1, keepdims=True) / levels
    w_hat = np.clip(to_int(blocks / scale), qmin, qmax) * scale
    return float(np.mean((blocks - w_hat) ** 2))


def _task4_candidates():
    w, g = TASK4_WEIGHTS, TASK4_GROUP_SIZE
    right = metrics.mse(w, symmetric.fake_quantize(w, bits=TASK4_BITS, group_size=g))
    return right, [
        (_symmetric_mse(w, None, 7, -7, 7), "That is the per-tensor MSE (one scale for the "
                                            "whole matrix): the outlier sets everybody's step. "
                                            "Use one scale per group of 32 consecutive values "
                                            "in a row."),
        (_symmetric_mse(w, None, 7, -7, 7, per_row=True), "That is the per-row (per-channel) "
                                                          "MSE. Split each row of 64 into two "
                                                          "groups of 32, each with its own "
                                                          "scale."),
        (_symmetric_mse(w, g, 8, -8, 7), "Symmetric int4 uses the restricted range [-7, 7]: "
                                         "scale = max|x| / 7, not / 8."),
        (_symmetric_mse(w, g, 8, -8, 8), "Symmetric int4 uses the restricted range [-7, 7]: "
                                         "scale = max|x| / 7, not / 8."),
        (_symmetric_mse(w, g, 15, -15, 15), "2**bits - 1 = 15 is the number of steps of "
                                            "unsigned codes; symmetric int4 has "
                                            "2**(bits-1) - 1 = 7 on each side."),
        (_symmetric_mse(w, g, 127, -127, 127), "That is int8 (127 levels); this task uses "
                                               "int4."),
        (_symmetric_mse(w, g, 7, -7, 7, to_int=np.trunc), "You truncated; round to the "
                                                          "nearest code (np.rint)."),
        (math.sqrt(right), "That is the root of the MSE (RMSE); give the mean of the squared "
                           "errors."),
        (right * w.size, "That is the sum of the squared errors; give their mean."),
        (0.0, "An MSE of 0 means nothing was rounded: quantize (round to codes) and dequantize "
              "before you compare."),
    ]


@_check(4)
def check_task4(answer) -> int:
    """``answer`` = MSE of ``TASK4_WEIGHTS`` after symmetric int4 with groups of 32 (2 pt)."""
    got = _number(answer, "Task 4")
    right, candidates = _task4_candidates()
    if _close(got, right, rel=1e-3):
        _say("Correct! With one scale per group, the outlier only coarsens its own group.")
        return 2
    _say(_first_hint(got, candidates, rel=1e-3) or
          "Not quite. Reshape each row into groups of 32, take scale = max|x|/7 per group, "
          "round x/scale to [-7, 7], multiply back, and average the squared errors.")
    return 0


# --------------------------------------------------------------------------------------------
# Task 5: calibrate an activation range with the 99.9th percentile (chapter 4)
# --------------------------------------------------------------------------------------------


def _task5_candidates():
    calib, test, p = TASK5_CALIBRATION, TASK5_TEST, TASK5_PERCENTILE
    both = np.concatenate([calib, test])
    lo, hi = granularity.percentile_range(calib, p)
    return (lo, hi), [
        (granularity.percentile_range(test, p), "You calibrated on the wrong data: that is the "
                                                "range of the test batch. Choose the range on "
                                                "the calibration batch only, then measure on "
                                                "the test batch."),
        (granularity.percentile_range(both, p), "Calibrate on the calibration batch only; the "
                                                "test batch is for measuring."),
        (granularity.minmax_range(calib), "That is the min-max range: five rare spikes near 40 "
                                          "set the step for everybody. Cut the tails at the "
                                          "99.9th percentile."),
        ((-hi, hi), "ReLU outputs are never negative: a symmetric range around 0 wastes half "
                    "the grid. The range runs from the 0.1th to the 99.9th percentile."),
        (granularity.percentile_range(calib, 99.0), "Use the 99.9th percentile, not the 99th."),
        (granularity.percentile_range(calib, 99.99), "Use the 99.9th percentile, not the "
                                                     "99.99th."),
        (tuple(np.percentile(calib, [0.001, 0.999])), "np.percentile takes percents (99.9); "
                                                      "np.quantile takes fractions (0.999)."),
    ]


@_check(5)
def check_task5(answer) -> int:
    """``answer = (x_min, x_max)``: the 0.1th and 99.9th percentiles of the calibration batch."""
    x_min, x_max = _parts(answer, ("x_min", "x_max"))
    got = np.array([_number(x_min, "x_min"), _number(x_max, "x_max")])
    right, candidates = _task5_candidates()
    if _close(got, right, rel=1e-4, abs_=1e-6):
        _say("Correct! The spikes are clipped, and the grid covers the activations that "
              "matter.")
        return 1
    _say(_first_hint(got, [(np.array(c), h) for c, h in candidates], rel=1e-4, abs_=1e-6)
          or "Not quite. Take the 0.1th and 99.9th percentiles (np.percentile) of the "
             "calibration batch.")
    return 0


# --------------------------------------------------------------------------------------------
# Task 6: pack signed int4 values, high-first (chapter 5)
# --------------------------------------------------------------------------------------------


def _pack_high_first(nibbles: list[int], pad_first: bool = False) -> list[int]:
    nibbles = list(nibbles)
    if len(nibbles) % 2:
        nibbles = nibbles[:-1] + [0, nibbles[-1]] if pad_first else nibbles + [0]
    return [(nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2)]


def _task6_candidates():
    values = list(TASK6_VALUES)
    twos = [v & 0xF for v in values]
    right = packing.pack_int4(values, signed=True, order=TASK6_ORDER).astype(np.int64)
    sign_magnitude = [(8 | -v) if v < 0 else v for v in values]
    sign_magnitude = [n & 0xF for n in sign_magnitude]
    return right, [
        (packing.pack_int4(values, order="low-first"), "Those bytes are low-first: the first "
                                                       "value in the low nibble (bits 0-3). "
                                                       "High-first puts it in the high nibble "
                                                       "(bits 4-7)."),
        (right[:-1], "7 values need 4 bytes: pad the last byte with a zero nibble."),
        (_pack_high_first(twos, pad_first=True), "The padding goes after the last value: in "
                                                 "high-first order the last value takes the "
                                                 "high nibble of the last byte, the pad the "
                                                 "low one."),
        (_pack_high_first(sign_magnitude), "Negative values are stored in two's complement: "
                                           "the nibble of q is q mod 16 (-2 is 1110), not a "
                                           "sign bit plus a magnitude."),
        (_pack_high_first([v + 8 for v in values]), "This task packs signed two's-complement "
                                                    "nibbles (q mod 16), not q + 8 (that is "
                                                    "Q4_0's unsigned form)."),
        (right.astype(np.uint8).view(np.int8), "Give the bytes as unsigned numbers 0..255: a "
                                               "packed byte is two numbers, and reading it as "
                                               "a signed int8 invites confusion."),
        (twos, "Those are the nibbles, one per value: now put two of them in each byte."),
    ]


@_check(6)
def check_task6(answer) -> int:
    """``answer`` = the bytes of ``TASK6_VALUES`` packed high-first (2 points)."""
    got = _numbers(answer, "Task 6")
    right, candidates = _task6_candidates()
    if got.shape == right.shape and np.array_equal(got, right):
        _say("Correct! Two's-complement nibbles, first value high, and a zero pad at the end.")
        return 2
    for candidate, hint in candidates:
        candidate = np.asarray(candidate, dtype=np.float64).ravel()
        if candidate.shape == got.shape and np.array_equal(candidate, got):
            _say(hint)
            return 0
    _say("Not quite. Each value becomes a nibble q mod 16; byte i holds value 2i in its high "
          "nibble and value 2i+1 in its low nibble; an odd count is padded with 0.")
    return 0


# --------------------------------------------------------------------------------------------
# Task 7: decode a GGUF Q8_0 block (chapter 5)
# --------------------------------------------------------------------------------------------


def _task7_candidates():
    raw = TASK7_BLOCK
    right = formats.decode_q8_0(raw).astype(np.float64).ravel()
    d = float(raw[:2].view("<f2")[0])
    d_big = float(raw[:2].view(">f2")[0])
    q_signed = raw[2:].view(np.int8).astype(np.float64)
    q_unsigned = raw[2:].astype(np.float64)
    candidates = [
        (d * q_unsigned, "The 32 codes are signed: view them as int8 "
                         "(block[2:].view(np.int8)), not uint8."),
        (q_signed, "Multiply the codes by the block's scale d (the float16 in the first two "
                   "bytes)."),
        (q_signed / d, "Dequantize by multiplying by d, not dividing: x = d * q."),
        (d / 127 * q_signed, "d is stored as it is: x = d * q, no extra division by 127."),
    ]
    if math.isfinite(d_big) and d_big != 0:
        candidates.insert(0, (d_big * q_signed, "The float16 scale is stored little-endian "
                                                "(low byte first): block[:2].view('<f2')."))
    return right, candidates


@_check(7)
def check_task7(answer) -> int:
    """``answer`` = the 32 values of ``TASK7_BLOCK``, decoded (2 points): x = d q."""
    got = _numbers(answer, "Task 7")
    right, candidates = _task7_candidates()
    if got.size == 34:
        _say("A Q8_0 block holds 32 values: the first two of its 34 bytes are the scale, not "
              "values.")
        return 0
    if got.shape != right.shape:
        raise _Unanswered(f"A Q8_0 block decodes to 32 values; got {got.size}.")
    if _close(got, right, rel=1e-5, abs_=1e-8):
        _say("Correct! A float16 scale (little-endian) times 32 signed int8 codes.")
        return 2
    _say(_first_hint(got, candidates, rel=1e-5, abs_=1e-8) or
          "Not quite. Bytes 0-1: the scale d, a little-endian float16; bytes 2-33: 32 int8 "
          "codes q; the values are d * q.")
    return 0


# --------------------------------------------------------------------------------------------
# Task 8: binary embeddings, Hamming distance, dequantized signs (chapter 6)
# --------------------------------------------------------------------------------------------


def _hamming(bits_a, bits_b) -> int:
    return int(np.count_nonzero(np.asarray(bits_a) != np.asarray(bits_b)))


@_check(8)
def check_task8(answer) -> int:
    """``answer = (codes_a, distance, signs_a)`` for ``TASK8_A``, ``TASK8_B`` (3 pt).

    ``codes_a``: ubinary codes of a (bit 1 where x > 0, first value in the top bit, 3 bytes);
    ``distance``: Hamming distance of the codes of a and b; ``signs_a``: codes_a dequantized to
    +-1.0, 20 values.
    """
    codes_a, distance, signs_a = _parts(answer, ("codes_a", "distance", "signs_a"))
    a, b, dim = TASK8_A, TASK8_B, TASK8_A.size
    right_codes = embeddings.quantize_embeddings(a, "ubinary").astype(np.int64)
    right_distance = int(embeddings.hamming_distance(
        embeddings.quantize_embeddings(a, "ubinary"), embeddings.quantize_embeddings(b, "ubinary")))
    right_signs = embeddings.dequantize_embeddings(
        embeddings.quantize_embeddings(a, "ubinary"), "ubinary", dim=dim).astype(np.float64)
    earned = 0

    # codes
    if _is_blank(codes_a):
        _say("codes_a: not answered yet.")
    else:
        got = _numbers(codes_a, "codes_a")
        if got.shape == right_codes.shape and np.array_equal(got, right_codes):
            _say("codes_a: Correct! 20 sign bits, first value in the most significant bit, "
                  "padded to 3 bytes.")
            earned += 1
        else:
            candidates = [
                (np.packbits(a >= 0), "zero counts as negative: the bit is 1 only where "
                                      "x > 0 (a[7] is exactly 0.0)."),
                (np.packbits(a > 0, bitorder="little"), "the first value goes in the most "
                                                        "significant bit of its byte "
                                                        "(np.packbits' default order)."),
                (embeddings.quantize_embeddings(a, "binary"), "those are the 'binary' codes "
                                                              "(the byte minus 128, as int8); "
                                                              "this task asks for ubinary, the "
                                                              "plain bytes."),
                ((a > 0).astype(np.int64), "pack the bits, 8 per byte: 20 bits make 3 bytes."),
                (np.where(a > 0, 1, -1), "pack the sign bits, 8 per byte: 20 bits make 3 "
                                         "bytes."),
            ]
            hint = None
            for candidate, text in candidates:
                candidate = np.asarray(candidate, dtype=np.float64).ravel()
                if candidate.shape == got.shape and np.array_equal(candidate, got):
                    hint = text
                    break
            _say("codes_a: " + (hint or "not quite. Set a bit where x > 0 and pack the bits 8 "
                                         "per byte, first value in the top bit (np.packbits)."))

    # distance
    if _is_blank(distance):
        _say("distance: not answered yet.")
    else:
        d = _number(distance, "distance")
        bits_a, bits_b = a > 0, b > 0
        packed_a = np.packbits(bits_a)
        packed_b = np.packbits(bits_b)
        if d == right_distance:
            _say("distance: Correct! popcount(a XOR b): the number of sign bits that differ.")
            earned += 1
        else:
            hint = _first_hint(d, [
                (_hamming(a >= 0, b >= 0), "zero counts as negative (bit = x > 0): a[7] is "
                                           "exactly 0.0."),
                (dim - right_distance, "that counts the bits that agree; the distance counts "
                                       "those that differ."),
                (int(np.count_nonzero(packed_a != packed_b)), "count differing bits, not "
                                                              "differing bytes."),
                (int((packed_a ^ packed_b).sum()), "add up the 1 bits of the XOR (popcount), "
                                                   "not the XOR's byte values."),
                (right_distance / dim, "give the number of differing bits, not a fraction."),
            ])
            _say("distance: " + (hint or "not quite. XOR the codes and count the 1 bits."))

    # signs
    if _is_blank(signs_a):
        _say("signs_a: not answered yet.")
    else:
        got = _numbers(signs_a, "signs_a")
        if got.shape == right_signs.shape and np.array_equal(got, right_signs):
            _say("signs_a: Correct! Each bit back to +1.0 or -1.0, padding dropped.")
            earned += 1
        elif np.any(got == 255):
            _say("signs_a: 255 instead of -1: 2*bit - 1 was computed in uint8 and wrapped "
                  "around, exactly the bug of chapter 6's seed. Convert the bits to float "
                  "(or int) first.")
        elif got.size == 8 * right_codes.size and got.size != dim:
            _say(f"signs_a: the last {got.size - dim} bits are padding: keep the first {dim}.")
        elif got.shape == right_signs.shape and np.array_equal(got, (right_signs + 1) / 2):
            _say("signs_a: those are the bits (0/1); dequantize them to -1.0/+1.0: 2*bit - 1.")
        else:
            _say("signs_a: not quite. Unpack the bits of codes_a (np.unpackbits), keep the first "
                  "20, and map 1 to +1.0 and 0 to -1.0.")
    return earned


# --------------------------------------------------------------------------------------------
# Score
# --------------------------------------------------------------------------------------------


def score() -> int:
    """Print the points of every task and the total; return the total."""
    width = max(len(task.title) for task in TASKS.values())
    for number, task in TASKS.items():
        if number in _earned:
            points = f"{_earned[number]} / {task.points}"
        else:
            points = f"- / {task.points}  (not checked yet)"
        _say(f"Task {number}  {task.title:<{width}}  {points}")
    total = sum(_earned.values())
    _say(f"Total: {total} / {MAX_POINTS}")
    return total


def reset() -> None:
    """Forget every recorded point (a fresh attempt)."""
    _earned.clear()
