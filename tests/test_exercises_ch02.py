"""Chapter 2 self-checks: the right answer passes, typical slips get the right hint."""

import numpy as np
import pytest

from quantbook.exercises import ch02

# ---- scale -------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [180 / 255, np.float32(180 / 255), 0.70588])
def test_scale_accepts_right_answer(answer, run):
    ok, out = run(ch02.check_scale, answer)
    assert ok is True
    assert out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (255 / 180, "inverse"),
        (180 / 256, "255 steps"),
        (80 / 127, "symmetric"),
        (100 / 127, "absmax scale of chapter 3"),
        (-20 / 255, "Check the sign"),
        (1.0, "Not quite"),
    ],
)
def test_scale_hints(answer, hint, run):
    ok, out = run(ch02.check_scale, answer)
    assert ok is False
    assert hint in out


# ---- zero point --------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [14, 14.0, np.int64(14), np.int8(14)])
def test_zero_point_accepts_14(answer, run):
    ok, out = run(ch02.check_zero_point, answer)
    assert ok is True
    assert out.startswith("Correct!")


def test_zero_point_matches_the_seed_formula():
    # Seed 002 computes Z = int((beta*alpha_q - alpha*beta_q) / (beta - alpha)) = int(13.67) = 13;
    # rounding the same fraction gives 14, the answer the check expects.
    fraction = (80.0 * -128 - (-100.0) * 127) / (80.0 - (-100.0))
    assert int(fraction) == 13
    assert round(fraction) == 14


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (13, "you used int(), which truncates toward zero; round instead"),
        (13.6667, "must be an integer code"),
        (-14, "Check the sign"),
        (142, "unsigned"),
        (-128, "neither q_min nor 0"),
        (0, "neither q_min nor 0"),
        (13.5, "integer code"),
        (20, "Not quite"),
    ],
)
def test_zero_point_hints(answer, hint, run):
    ok, out = run(ch02.check_zero_point, answer)
    assert ok is False
    assert hint.lower() in out.lower()


@pytest.mark.parametrize("answer", [None, ..., "fourteen", float("inf")])
def test_number_checks_never_raise(answer, run):
    for check in (ch02.check_scale, ch02.check_zero_point):
        ok, out = run(check, answer)
        assert ok is False
        assert out.strip()


# ---- quantize ----------------------------------------------------------------------------------

def right(x, s, z):
    return np.clip(np.rint(x / s) + z, -128, 127).astype(np.int8)


def test_quantize_accepts_reference_and_agrees_with_quantbook(run):
    ok, out = run(ch02.check_quantize, right)
    assert ok is True
    assert "[-3, -1, -5, 0, -6, -1, -5, 127, -128, 123, -126]" in out


def test_expected_codes_are_quantbooks():
    affine = pytest.importorskip("quantbook.affine")
    got = affine.quantize(ch02.QUANTIZE_X, ch02.QUANTIZE_SCALE, ch02.QUANTIZE_ZERO_POINT)
    assert np.asarray(got).tolist() == [-3, -1, -5, 0, -6, -1, -5, 127, -128, 123, -126]


def test_quantize_accepts_python_round_and_lists(run):
    def with_lists(x, s, z):
        return [max(-128, min(127, round(v / s) + z)) for v in x]  # round() is half to even

    ok, _ = run(ch02.check_quantize, with_lists)
    assert ok is True


@pytest.mark.parametrize(
    ("func", "hint"),
    [
        (lambda x, s, z: np.clip((x / s).astype(int) + z, -128, 127),
         "you used int() or astype(int), which truncates toward zero"),
        (lambda x, s, z: np.clip(np.floor(x / s) + z, -128, 127), "floor"),
        (lambda x, s, z: np.clip(np.ceil(x / s) + z, -128, 127), "ceil"),
        (lambda x, s, z: np.clip(np.floor(x / s + 0.5) + z, -128, 127), "halves up"),
        (lambda x, s, z: np.clip(np.sign(x) * np.floor(np.abs(x / s) + 0.5) + z, -128, 127),
         "away from zero"),
        (lambda x, s, z: np.rint(x / s) + z, "clamped"),
        (lambda x, s, z: (np.rint(x / s) + z).astype(np.int64).astype(np.int8), "wrapped"),
        (lambda x, s, z: np.clip(np.rint(x / s) - z, -128, 127), "Add the zero point"),
        (lambda x, s, z: np.clip(np.rint(x * s) + z, -128, 127), "multiplied by the scale"),
        (lambda x, s, z: np.zeros_like(x), "Not quite"),
        (lambda x, s, z: 0, "one code per input value"),
        (lambda x, s, z: x[5], "one code per input value"),
        (lambda x, s, z: 1 / 0, "raised ZeroDivisionError"),
        (lambda x, s, z: "codes", "Return an array"),
        (lambda x, s, z: None, "returned nothing yet"),
    ],
)
def test_quantize_hints(func, hint, run):
    ok, out = run(ch02.check_quantize, func)
    assert ok is False
    assert hint.lower() in out.lower()


@pytest.mark.parametrize("answer", [None, ..., 3, [1, 2]])
def test_quantize_placeholders(answer, run):
    ok, out = run(ch02.check_quantize, answer)
    assert ok is False
    assert out.strip()


def test_quantize_check_does_not_modify_its_inputs(run):
    def mutating(x, s, z):
        x *= 0
        return right(x, s, z)

    run(ch02.check_quantize, mutating)
    assert ch02.QUANTIZE_X[1] == 1.25
