"""Chapter 3 self-checks: the right answer passes, typical slips get the right hint."""

import math

import numpy as np
import pytest

from quantbook import symmetric
from quantbook.exercises import ch03

# --- int4 codes of INT4_EXERCISE_VALUES ------------------------------------------------------

def test_expected_codes_are_what_the_package_computes():
    q, scale = symmetric.quantize(np.array(ch03.INT4_EXERCISE_VALUES), bits=4)
    assert scale == 0.5
    assert q.tolist() == [7, -2, 0, 3, -7, 2]


@pytest.mark.parametrize(
    "answer",
    [[7, -2, 0, 3, -7, 2], (7, -2, 0, 3, -7, 2), np.array([7, -2, 0, 3, -7, 2], dtype=np.int8),
     [7.0, -2.0, 0.0, 3.0, -7.0, 2.0]],
)
def test_int4_codes_accepts_right_answer(answer, run):
    ok, out = run(ch03.check_int4_codes, answer)
    assert ok is True
    assert out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ([7, -3, 1, 3, -7, 2], "round half to even"),  # half away from zero
        ([7, -2, 0, 3, -6, 1], "truncated toward zero"),  # int()
        ([7, -3, 1, 4, -8, 2], "full range"),  # S = 3.5 / 8, clamp to [-8, 7]
        ([15, -5, 1, 7, -14, 3], "2^4 - 1 = 15"),  # S = 3.5 / 15
        ([3.5, -1.0, 0.0, 1.5, -3.5, 1.0], "not codes"),  # S·q instead of q
        ([7, -2.5, 0.5, 3.2, -6.6, 1.5], "whole numbers"),  # x / S, not rounded
        ([7, -2, 0, 3, -7, 3], "Not yet"),
        ([1, 2, 3], "6 integers"),
    ],
)
def test_int4_codes_hints(answer, hint, run):
    ok, out = run(ch03.check_int4_codes, answer)
    assert ok is False
    assert hint in out
    assert "Correct" not in out


# --- SQNR gain of unsigned over signed int8 for ReLU outputs ----------------------------------

@pytest.mark.parametrize("answer", [20 * math.log10(255 / 127), 6.05, "6.054", np.float32(6.0538)])
def test_relu_gain_accepts_right_answer(answer, run):
    ok, out = run(ch03.check_relu_gain_db, answer)
    assert ok is True
    assert out.startswith("Correct!")


def test_relu_gain_matches_measurement():
    # The closed form is what a measurement on uniform data in [0, 1] gives, to 0.05 dB.
    from quantbook import affine, metrics

    x = np.random.default_rng(0).uniform(0, 1, 200_000)
    q, s = symmetric.quantize(x, 8)
    signed_db = metrics.sqnr_db(x, symmetric.dequantize(q, s))
    scale = float(x.max()) / 255
    unsigned_db = metrics.sqnr_db(x, affine.fake_quantize(x, scale, 0, 8, signed=False))
    assert abs((unsigned_db - signed_db) - 20 * math.log10(255 / 127)) < 0.05


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (255 / 127, "ratio of the two steps"),
        ((255 / 127) ** 2, "ratio of the two MSEs"),
        (10 * math.log10(255 / 127), "not 10·log10"),
        (6.02, "exactly one bit"),
        (-6.05, "wrong sign"),
        (3.0, "Not yet"),
    ],
)
def test_relu_gain_hints(answer, hint, run):
    ok, out = run(ch03.check_relu_gain_db, answer)
    assert ok is False
    assert hint in out
    assert "Correct" not in out


@pytest.mark.parametrize("answer", [None, ..., "abc", [1, 2], float("nan"), {"a": 1}])
def test_placeholders_and_garbage_never_raise(answer, run):
    for check in (ch03.check_int4_codes, ch03.check_relu_gain_db):
        ok, out = run(check, answer)
        assert ok is False
        assert out.strip()
