"""The grading toolkit of the chapter self-checks: readers, a check decorator, hints as data.

A chapter check is a function decorated with :func:`check`. Its body reads the student's
answer with a reader (:func:`read_number`, :func:`read_integer`, :func:`read_codes`, ...) and
returns a verdict: :func:`correct` with the message for a right answer, or a hint (a plain
string) for a wrong one. :func:`grade` builds that verdict from data, a list (or dict) of the
likely slips and their hints. A reader that cannot read the answer raises :class:`AnswerError`
with a message saying why (the placeholder is still there, the answer is not a number, ...).

The decorator makes every check behave alike: it prints the message (``Correct! ...``, the
hint, or the reader's complaint) and returns ``True`` or ``False``. A wrong or malformed answer
never raises, so a notebook keeps running::

    @check
    def check_scale(answer):
        return grade(read_number(answer), 180 / 255, "S = 180/255.",
                     [(255 / 180, "That is the inverse.")],
                     otherwise="Not quite: S = (beta - alpha) / (q_max - q_min).",
                     same=close(rel=1e-4))
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import numpy as np

__all__ = [
    "AnswerError", "Verdict", "check", "correct", "grade", "close", "NEARLY", "call_student",
    "read_number", "read_integer", "read_integers", "read_codes", "read_numbers", "read_array",
    "read_pair", "read_choice", "read_function",
]


class AnswerError(ValueError):
    """A student's answer cannot be read; the message says what to change."""


class Verdict(NamedTuple):
    """What a check concludes: passed or not, and the message the student sees."""

    passed: bool
    message: str


def correct(message: str) -> Verdict:
    """The verdict for a right answer: ``Correct!`` followed by ``message``."""
    return Verdict(True, f"Correct! {message}")


def check(body: Callable) -> Callable:
    """Turn ``body(answer) -> Verdict | str`` into a chapter check.

    The check prints the verdict's message (a plain string is a hint for a wrong answer) or the
    complaint of a reader that raised :class:`AnswerError`, and returns ``True`` or ``False``.
    Its name, docstring and signature are the body's; it returns a bool.
    """
    @functools.wraps(body)
    def a_check(answer) -> bool:
        try:
            verdict = body(answer)
        except AnswerError as why:
            print(why)
            return False
        if not isinstance(verdict, Verdict):
            verdict = Verdict(False, verdict)
        print(verdict.message)
        return verdict.passed

    a_check.__signature__ = inspect.signature(body).replace(return_annotation="bool")
    return a_check


def close(rel: float = 1e-9, abs: float = 0.0) -> Callable[[float, float], bool]:  # noqa: A002
    """A comparison for :func:`grade`: ``math.isclose`` with these tolerances."""
    return lambda value, target: math.isclose(value, target, rel_tol=rel, abs_tol=abs)


#: Equal up to floating-point rounding, for answers that are exact numbers.
NEARLY = close(rel=1e-9, abs=1e-9)


def grade(value, right, message: str, hints: Mapping | Iterable = (), otherwise: str = "Not quite.",
          *, same: Callable = operator.eq) -> Verdict:
    """The verdict on ``value``: right, the hint of the first slip it matches, or ``otherwise``.

    ``hints`` is a list of ``(slip, hint)`` pairs or a dict ``{slip: hint}``, in the order they
    are tried. A slip is a wrong answer (matched with ``same(value, slip)``, equality unless
    told) or a condition (a function of ``value`` that returns True when the hint applies).
    """
    if same(value, right):
        return correct(message)
    for slip, hint in hints.items() if isinstance(hints, Mapping) else hints:
        if slip(value) if callable(slip) else same(value, slip):
            return Verdict(False, hint)
    return Verdict(False, otherwise)


def call_student(function: Callable, *args, context: str = ""):
    """``function(*args)``; if the student's function fails in any way, an AnswerError saying
    what it raised (``context`` is added to the message)."""
    try:
        return function(*args)
    except Exception as error:  # the student's code may fail in any way; report, never raise
        why = f"Your function raised {type(error).__name__}: {error}{context}"
        raise AnswerError(why) from None


# -- readers --------------------------------------------------------------------------------------

def _placeholder(answer, message: str) -> None:
    if answer is None or answer is Ellipsis:
        raise AnswerError(message)


def read_number(answer, what: str = "a number", *, single: str = "a single number",
                sep: str = ";", rerun: str = "then run the cell again") -> float:
    """The answer as a finite float (a bool is not accepted).

    ``what`` describes the expected answer in the placeholder message; ``single``, ``sep`` and
    ``rerun`` only change the wording of the messages.
    """
    _placeholder(answer, f"Replace the placeholder with your answer ({what}), {rerun}.")
    try:
        if isinstance(answer, bool):  # True is 1 to Python, but it is no answer to "how many?"
            raise TypeError
        value = float(answer)
    except (TypeError, ValueError):
        raise AnswerError(f"Your answer should be {single}{sep} got {answer!r}.") from None
    if not math.isfinite(value):
        raise AnswerError(f"Your answer should be a finite number{sep} got {value}.")
    return value


def read_integer(answer, what: str) -> int:
    """The answer as an int (a float with a whole value is accepted, a bool is not)."""
    _placeholder(answer, f"Replace the placeholder with your answer ({what}), then run the cell "
                         "again.")
    if isinstance(answer, bool):
        raise AnswerError(f"Your answer should be {what}; got {answer!r}.")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise AnswerError(f"Your answer should be {what}; got {answer!r}.") from None
    if not math.isfinite(value) or value != round(value):
        raise AnswerError(f"Your answer should be a whole number ({what}); got {answer!r}.")
    return int(round(value))


def _is_whole(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()


def read_integers(answer, n: int) -> tuple[int, ...]:
    """The answer as a tuple of ``n`` Python ints (a list, tuple or array of whole numbers)."""
    _placeholder(answer, "Replace the placeholder with your answer, then run the cell again.")
    try:
        values = np.asarray(answer).ravel().tolist()
    except (TypeError, ValueError):
        values = None
    if not values or len(values) != n or not all(_is_whole(v) for v in values):
        raise AnswerError(f"Your answer should be a list of {n} integers, got {answer!r}.")
    return tuple(int(v) for v in values)


def read_array(answer, shape: tuple[int, ...], what: str, form: str, *, ravel: bool = False,
               wrong_shape: str, not_finite: str, shape_hints: Mapping | None = None,
               ) -> np.ndarray:
    """The answer as a finite float64 array of ``shape`` (flattened first if ``ravel``).

    ``what`` fills the placeholder message, ``form`` the message for an answer that is not an
    array of numbers; ``wrong_shape`` (formatted with ``shape``, ``got`` and ``size``) and
    ``not_finite`` are the other two messages. ``shape_hints`` maps a likely wrong shape (the
    transpose, say) to its own message.
    """
    _placeholder(answer, f"Replace the placeholder with your answer ({what}), then run the cell "
                         "again.")
    try:
        a = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnswerError(f"Your answer should be {form}; got {answer!r}.") from None
    if ravel:
        a = a.ravel()
    if shape_hints and a.shape in shape_hints:
        raise AnswerError(shape_hints[a.shape])
    if a.shape != tuple(shape):
        raise AnswerError(wrong_shape.format(shape=shape, got=a.shape, size=a.size))
    if not np.isfinite(a).all():
        raise AnswerError(not_finite)
    return a


def read_codes(answer, n: int) -> np.ndarray:
    """The answer as a finite 1-D float array of ``n`` codes."""
    return read_array(answer, (n,), f"a list of {n} integer codes",
                      f"a list of {n} integers", ravel=True,
                      wrong_shape=f"Give one code per value: {n} integers, got {{size}}.",
                      not_finite="Your answer contains NaN or an infinity; the codes are small "
                                 "integers.")


def read_numbers(answer, n: int, what: str) -> np.ndarray:
    """The answer as a finite 1-D float array of ``n`` numbers (``what`` describes them)."""
    return read_array(answer, (n,), what, what, ravel=True,
                      wrong_shape=f"Give {n} numbers ({what}), got {{size}}.",
                      not_finite="Your answer contains NaN or an infinity.")


def read_pair(answer, names: str, form: str, convert: Callable = lambda v: v) -> tuple:
    """The answer as a pair ``(convert(a), convert(b))``; ``names`` (such as ``"(m0, shift)"``)
    and ``form`` describe it in the messages."""
    _placeholder(answer, f"Replace the placeholder with your answer, a pair {names}, then run the "
                         "cell again.")
    try:
        first, second = (convert(v) for v in answer)
    except (TypeError, ValueError):
        raise AnswerError(f"Your answer should be {form}; got {answer!r}.") from None
    return first, second


def read_choice(answer, what: str, form: str) -> str:
    """The answer as a name, stripped and upper-case (``" q4_k"`` reads as ``"Q4_K"``)."""
    _placeholder(answer, f"Replace the placeholder with your answer ({what}), then run the cell "
                         "again.")
    if not isinstance(answer, str):
        raise AnswerError(f"Your answer should be {form}; got {answer!r}.")
    return answer.strip().upper()


def read_function(answer, *, placeholder: str = "Replace the placeholder with your function, "
                                                "then run the cell again.",
                  not_callable: str = "Pass the function itself (without parentheses); got "
                                      "{type}.") -> Callable:
    """The answer as a function (the student passes the function itself, not its result).

    ``placeholder`` and ``not_callable`` (formatted with the answer's ``type``) are the messages.
    """
    _placeholder(answer, placeholder)
    if not callable(answer):
        raise AnswerError(not_callable.format(type=type(answer).__name__))
    return answer
