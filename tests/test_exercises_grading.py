"""The grading toolkit (quantbook.exercises._grading) and every chapter check built with it."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from quantbook.exercises import _grading as g

CHAPTERS = [importlib.import_module(f"quantbook.exercises.ch{n:02d}") for n in range(1, 15)]
CHECKS = [getattr(m, name) for m in CHAPTERS for name in m.__all__ if name.startswith("check_")]
GARBAGE = [None, ..., "abc", float("nan"), float("inf"), True, [1, 2], [[1, 2, 3]], {},
           np.zeros((3, 5)), lambda *args: 1 / 0, lambda *args: None, -1e300]


def test_every_chapter_lists_its_checks():
    assert len(CHECKS) == len({c.__name__ for c in CHECKS}) >= 14 * 3


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.__module__[-4:]}.{c.__name__}")
def test_every_check_is_built_with_the_toolkit(check):
    assert check.__wrapped__.__module__ == check.__module__  # made by @check
    sig = inspect.signature(check)
    assert list(sig.parameters) in (["answer"], ["my_quantize"]) and sig.return_annotation == "bool"
    assert check.__doc__  # the exercise and its answer, for the maintainers


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.__module__[-4:]}.{c.__name__}")
def test_garbage_gets_a_message_and_false_never_an_exception(check, run):
    for answer in GARBAGE:
        ok, out = run(check, answer)
        assert ok is False, (answer, out)
        assert out.strip() and "Correct!" not in out, (answer, out)
        assert out.endswith("\n") and not out.startswith("\n"), (answer, out)


def test_grade_tries_right_first_then_slips_in_order():
    hints = [(2, "two"), (lambda v: v > 1, "big"), (3, "three, never reached")]
    assert g.grade(1, 1, "one.", hints) == g.Verdict(True, "Correct! one.")
    assert g.grade(2, 1, "one.", hints) == g.Verdict(False, "two")
    assert g.grade(3, 1, "one.", hints) == g.Verdict(False, "big")
    assert g.grade(0, 1, "one.", hints, "no") == g.Verdict(False, "no")
    assert g.grade(2.0004, 1, "", {2: "two"}, same=g.close(rel=1e-3)).message == "two"
    assert g.grade(2.01, 1, "", {2: "two"}, "no", same=g.close(rel=1e-3)).message == "no"


def test_check_prints_the_verdict_or_the_readers_complaint(run):
    @g.check
    def check_half(answer):
        return g.grade(g.read_number(answer), 0.5, "a half.", [(2, "the inverse")], "not yet")

    assert run(check_half, "0.5") == (True, "Correct! a half.\n")
    assert run(check_half, 2) == (False, "the inverse\n")
    assert run(check_half, 3) == (False, "not yet\n")
    assert run(check_half, None) == (False, "Replace the placeholder with your answer (a number), "
                                            "then run the cell again.\n")
    assert run(check_half, "x") == (False, "Your answer should be a single number; got 'x'.\n")


def test_a_bug_in_a_check_is_not_swallowed():
    @g.check
    def check_broken(answer):
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        check_broken(1)


@pytest.mark.parametrize("reader, answer, words", [
    (lambda a: g.read_number(a), float("inf"), "finite number"),
    (lambda a: g.read_integer(a, "a count"), 2.5, "whole number (a count)"),
    (lambda a: g.read_integer(a, "a count"), True, "should be a count"),
    (lambda a: g.read_integers(a, 2), [1, 2, 3], "a list of 2 integers"),
    (lambda a: g.read_codes(a, 3), [1, 2], "one code per value: 3 integers, got 2"),
    (lambda a: g.read_codes(a, 2), [1, np.nan], "NaN"),
    (lambda a: g.read_numbers(a, 2, "two sizes"), [1], "Give 2 numbers (two sizes), got 1"),
    (lambda a: g.read_pair(a, "(a, b)", "a pair", float), (1, 2, 3), "should be a pair"),
    (lambda a: g.read_choice(a, "a name", "a name in quotes"), 4, "a name in quotes"),
    (lambda a: g.read_function(a), 4, "got int"),
    (lambda a: g.call_student(a, 1), lambda x: x / 0, "raised ZeroDivisionError"),
])
def test_readers_raise_answer_error_with_a_clear_message(reader, answer, words):
    with pytest.raises(g.AnswerError, match=words.replace("(", r"\(").replace(")", r"\)")):
        reader(answer)


def test_readers_return_the_answer_in_a_usable_form():
    assert g.read_number(np.float32(0.5)) == 0.5
    assert g.read_integer(3.0, "n") == 3 and type(g.read_integer(3.0, "n")) is int
    assert g.read_integers(np.array([63, -123]), 2) == (63, -123)
    assert g.read_codes([[1], [2]], 2).tolist() == [1.0, 2.0]
    assert g.read_pair(["1", 2], "(a, b)", "a pair", float) == (1.0, 2.0)
    assert g.read_choice(" q4_k ", "a", "b") == "Q4_K"
    a = g.read_array([[1, 2]], (1, 2), "w", "w", shape_hints={(2, 1): "transposed"},
                     wrong_shape="{got}", not_finite="nan")
    assert a.shape == (1, 2) and a.dtype == np.float64
    with pytest.raises(g.AnswerError, match="transposed"):
        g.read_array([[1], [2]], (1, 2), "w", "w", shape_hints={(2, 1): "transposed"},
                     wrong_shape="{got}", not_finite="nan")
