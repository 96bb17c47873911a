"""Chapter 4 self-checks: the right answer passes, typical slips get the right hint."""

import numpy as np
import pytest

from quantbook import granularity, metrics, symmetric
from quantbook.exercises import ch04

# --- per-channel codes ------------------------------------------------------------------------

def test_expected_codes_are_what_the_package_computes():
    w = np.array(ch04.PER_CHANNEL_EXERCISE_W)
    per_row, _ = symmetric.quantize(w, bits=4, axis=0)
    per_tensor, _ = symmetric.quantize(w, bits=4)
    per_column, _ = symmetric.quantize(w, bits=4, axis=1)
    assert per_row.tolist() == [[2, -7, 4, 1], [5, -7, 1, 3]]
    assert per_tensor.tolist() == [[2, -7, 4, 1], [0, 0, 0, 0]]
    assert per_column.tolist() == [[7, -7, 7, 7], [1, 0, 0, 1]]


@pytest.mark.parametrize(
    "answer",
    [[[2, -7, 4, 1], [5, -7, 1, 3]], ((2, -7, 4, 1), (5, -7, 1, 3)),
     np.array([[2, -7, 4, 1], [5, -7, 1, 3]], dtype=np.int8)],
)
def test_per_channel_codes_accepts_right_answer(answer, run):
    ok, out = run(ch04.check_per_channel_codes, answer)
    assert ok is True
    assert out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ([[2, -7, 4, 1], [0, 0, 0, 0]], "per-tensor result"),
        ([[7, -7, 7, 7], [1, 0, 0, 1]], "one scale per column"),
        ([[2, 5], [-7, -7], [4, 1], [1, 3]], "4 rows of 2"),
        ([[2, -7, 4, 1], [5, -7, 1, 2]], "Row 1 is right"),
        ([[2, -7, 4, 1], [5, -7, 1.2, 3]], "whole numbers"),
        ([[0.45, -1.4, 0.8, 0.13], [0.04, -0.06, 0.01, 0.025]], "not codes"),
        ([[5, -15, 9, 1], [10, -15, 2, 6]], "[-7, 7]"),  # divided by 15
        ([[1, -7, 4, 1], [5, -7, 1, 3]], "Not yet"),
        ([2, -7, 4, 1], "2 x 4"),
    ],
)
def test_per_channel_codes_hints(answer, hint, run):
    ok, out = run(ch04.check_per_channel_codes, answer)
    assert ok is False
    assert hint in out
    assert "Correct" not in out


# --- Q4_1 bits per weight ---------------------------------------------------------------------

def test_q4_1_answer_matches_the_package():
    assert granularity.effective_bits(4, 32, scale_bits=16, zero_point_bits=16) == 5.0


@pytest.mark.parametrize("answer", [5, 5.0, "5", np.float32(5.0)])
def test_q4_1_accepts_right_answer(answer, run):
    ok, out = run(ch04.check_q4_1_bits_per_weight, answer)
    assert ok is True
    assert out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (4.5, "Q4_0"),
        (4, "only the 4-bit codes"),
        (0.625, "bytes per weight"),
        (20, "size of a block in bytes"),
        (160, "size of a block in bits"),
        (6, "16 bits each"),
        (4.625, "not a 4-bit integer"),
        (4.25, "not 64"),
        (7, "Not yet"),
    ],
)
def test_q4_1_hints(answer, hint, run):
    ok, out = run(ch04.check_q4_1_bits_per_weight, answer)
    assert ok is False
    assert hint in out
    assert "Correct" not in out


@pytest.mark.parametrize("answer", [None, ..., "abc", float("nan"), {"a": 1}, [[1, 2], [3]]])
def test_placeholders_and_garbage_never_raise(answer, run):
    for check in (ch04.check_per_channel_codes, ch04.check_q4_1_bits_per_weight):
        ok, out = run(check, answer)
        assert ok is False
        assert out.strip()


# --- outlier row, groups of 32 ----------------------------------------------------------------

def test_outlier_row_is_built_as_the_exercise_states():
    rng = np.random.default_rng(4)
    row = (0.02 * rng.standard_normal(4096)).astype(np.float32)
    row[1000] = 2.0
    assert np.array_equal(ch04.outlier_row(), row)
    assert ch04.outlier_row().dtype == np.float32


def outlier_sqnr(group_size, include_outlier=False):
    row = ch04.outlier_row()
    kwargs = {} if group_size is None else {"group_size": group_size}
    q, s = symmetric.quantize(row, 8, **kwargs)
    row_hat = symmetric.dequantize(q, s, group_size)
    if include_outlier:
        return metrics.sqnr_db(row, row_hat)
    return metrics.sqnr_db(np.delete(row, 1000), np.delete(row_hat, 1000))


@pytest.mark.parametrize("digits", [1, 2, 6])
def test_outlier_row_sqnr_accepts_the_value_to_one_decimal(digits, run):
    ok, out = run(ch04.check_outlier_row_group_sqnr, round(outlier_sqnr(32), digits))
    assert ok is True
    assert out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda: outlier_sqnr(None), "per-tensor"),
        (lambda: outlier_sqnr(32, include_outlier=True), "includes the outlier"),
        (lambda: outlier_sqnr(None, include_outlier=True), "per tensor and includes"),
        (lambda: outlier_sqnr(32) + 0.2, "Not yet"),
        (lambda: outlier_sqnr(32) - 0.1, "Not yet"),
    ],
)
def test_outlier_row_sqnr_rejects_slips_with_a_hint(answer, hint, run):
    ok, out = run(ch04.check_outlier_row_group_sqnr, answer())
    assert ok is False
    assert hint in out


def test_outlier_row_sqnr_placeholder():
    assert ch04.check_outlier_row_group_sqnr(None) is False
