"""Chapter 7 self-checks: right answers pass, typical slips get their own hint, nothing raises."""

from __future__ import annotations

import pytest

from quantbook.exercises import ch07
from quantbook.matmul import quantize_multiplier


def test_group_bytes_right(run):
    ok, out = run(ch07.check_group_bytes, 313_344)
    assert ok is True and out.startswith("Correct!") and "4.25 bits" in out
    assert run(ch07.check_group_bytes, 313344.0)[0] is True


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (294_912, "codes alone"),
        (294_912 + 9_216, "2 bytes, not 1"),
        (294_912 + 4 * 9_216, "not float32"),
        (589_824 + 18_432, "two per byte"),
        (313_344 * 8, "in bits"),
        (4 * 589_824, "float32 size"),
        (294_912 + 2 * 1536, "per channel"),
        (123, "Not quite"),
        (None, "Replace the placeholder"),
        (..., "Replace the placeholder"),
        ("many", "number of bytes"),
        (3.5, "whole number"),
        (True, "number of bytes"),
    ],
)
def test_group_bytes_hints(answer, hint, run):
    ok, out = run(ch07.check_group_bytes, answer)
    assert ok is False and hint in out and "Correct" not in out


def test_int16_overflow_terms(run):
    ok, out = run(ch07.check_int16_overflow_terms, 3)
    assert ok is True and "48,387" in out
    for answer, hint in [(2, "still fits"), (1, "fits in int16"), (133_144, "int32"),
                         (259, "product of two codes"), (7, "Not quite"), (None, "placeholder")]:
        ok, out = run(ch07.check_int16_overflow_terms, answer)
        assert ok is False and hint in out, (answer, out)


def test_fixed_point(run):
    m0, shift = quantize_multiplier(ch07.MULTIPLIER_EXERCISE)
    assert (m0, shift) == (1_288_490_189, 1)
    ok, out = run(ch07.check_fixed_point, (m0, shift))
    assert ok is True and out.startswith("Correct!")
    assert run(ch07.check_fixed_point, [1288490189.0, 1.0])[0] is True
    for answer, hint in [
        ((m0, -1), "sign of the shift"),
        ((round(0.3 * 2**31), 0), "normalised"),
        ((5, 1), "[2^30, 2^31)"),
        ((m0, 2), "shift is off"),
        ((m0 + 1, 1), "Off by one"),
        ((m0 - 1000, 1), "m0 is not"),
        (None, "placeholder"),
        (42, "pair"),
        (("a", 1), "integer m0"),
    ]:
        ok, out = run(ch07.check_fixed_point, answer)
        assert ok is False and hint in out, (answer, out)
