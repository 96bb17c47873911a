"""Readers for a student's answer, shared by the chapter self-checks (ch01 ... ch07).

Each reader returns the answer in a usable form, or prints why it cannot (the placeholder is
still there, the answer is not a number, ...) and returns None; it never raises.
"""

from __future__ import annotations

import math

import numpy as np


def read_number(answer, what: str = "a number", *, single: str = "a single number",
                sep: str = ";", rerun: str = "then run the cell again") -> float | None:
    """The answer as a finite float, or None (after printing why).

    ``what`` describes the expected answer in the placeholder message; ``single``, ``sep`` and
    ``rerun`` only change the wording of the messages.
    """
    if answer is None or answer is Ellipsis:
        print(f"Replace the placeholder with your answer ({what}), {rerun}.")
        return None
    try:
        value = float(answer)
    except (TypeError, ValueError):
        print(f"Your answer should be {single}{sep} got {answer!r}.")
        return None
    if not math.isfinite(value):
        print(f"Your answer should be a finite number{sep} got {value}.")
        return None
    return value


def read_codes(answer, n: int) -> np.ndarray | None:
    """The answer as a finite 1-D float array of ``n`` codes, or None (after printing why)."""
    if answer is None or answer is Ellipsis:
        print(f"Replace the placeholder with your answer (a list of {n} integer codes), then run "
              "the cell again.")
        return None
    try:
        a = np.asarray(answer, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        print(f"Your answer should be a list of {n} integers; got {answer!r}.")
        return None
    if a.size != n:
        print(f"Give one code per value: {n} integers, got {a.size}.")
        return None
    if not np.isfinite(a).all():
        print("Your answer contains NaN or an infinity; the codes are small integers.")
        return None
    return a
