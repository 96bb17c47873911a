"""Chapter 1 self-checks: the right answer passes, typical slips get the right hint."""

import numpy as np
import pytest

from quantbook.exercises import ch01


@pytest.mark.parametrize("answer", [0.5, np.float16(0.5), "0.5", 2.0**-1])
def test_float16_spacing_accepts_right_answer(answer, run):
    ok, out = run(ch01.check_float16_spacing, answer)
    assert ok is True
    assert out.startswith("Correct!")


def test_float16_spacing_matches_numpy():
    # The expected answer is what NumPy itself says about float16.
    assert float(np.spacing(np.float16(1000))) == 0.5


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (2.0**-10, "machine epsilon"),
        (1000 * 2.0**-10, "multiply epsilon by 2^e = 512"),
        (1.0, "2^9 = 512"),  # 1024 * 2^-10
        (4.0, "bfloat16"),
        (2.0**-14, "float32"),
        (0.25, "One binade too low"),
        (3.0, "Not quite"),
    ],
)
def test_float16_spacing_hints(answer, hint, run):
    ok, out = run(ch01.check_float16_spacing, answer)
    assert ok is False
    assert hint in out
    assert "Correct" not in out


@pytest.mark.parametrize("answer", [None, ..., "abc", [1, 2], float("nan")])
def test_placeholders_and_garbage_never_raise(answer, run):
    for check in (ch01.check_float16_spacing, ch01.check_e4m3_max, ch01.check_model_memory_gb):
        ok, out = run(check, answer)
        assert ok is False
        assert out.strip()


def test_e4m3_max_accepts_448_and_matches_ml_dtypes(run):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max) == 448.0
    ok, out = run(ch01.check_e4m3_max, 448)
    assert ok is True and out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (480, "reserves for NaN"),
        (240, "IEEE-style"),
        (464, "rounding boundary"),
        (256, "mantissa adds"),
        (57344, "e5m2"),
        (896, "bias"),
        (100, "Not quite"),
    ],
)
def test_e4m3_max_hints(answer, hint, run):
    ok, out = run(ch01.check_e4m3_max, answer)
    assert ok is False
    assert hint in out


def test_model_memory_accepts_right_answer(run):
    ok, out = run(ch01.check_model_memory_gb, 3.9375)
    assert ok is True
    assert "4.5 bits per weight" in out


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (3.5, "codes alone"),
        (31.5, "bits, not bytes"),
        (28.0, "float32 size"),
        (3.9375e9 / 2**30, "GiB"),
        (3.9375e9, "number of bytes"),
        (17.5, "16/32 bit per weight, not 16"),
        (4.375, "no zero point"),
        (5.0, "Not quite"),
    ],
)
def test_model_memory_hints(answer, hint, run):
    ok, out = run(ch01.check_model_memory_gb, answer)
    assert ok is False
    assert hint in out
