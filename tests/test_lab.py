"""The graded lab's inputs per student, and the course pages' numbers.

The lab itself (its solutions, public and hidden tests) is an Otter-Grader source notebook,
``course/lab/lab_source.ipynb``; tests/test_course_grading.py grades sample submissions with it.
Here:

- every student id gets its own inputs, the same ones every time, read-only;
- the package exposes inputs only: no check, no solution, no expected value;
- the numbers the public instructor guide quotes are what NumPy and quantbook compute;
- the course pages cite exercises and lab tasks that exist.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from quantbook import affine, embeddings
from quantbook.exercises import lab

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "book" / "course" / "instructor-guide.md"
SYLLABUS = ROOT / "book" / "course" / "syllabus.md"
IDS = ["ada@example.edu", "bob@example.edu", "demo"]


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("make", [lab.inputs, lab.homework3_inputs])
def test_an_id_always_gets_the_same_inputs(make):
    first, again = make("ada@example.edu"), make(" Ada@Example.edu ")
    assert all(_equal(x, y) for x, y in zip(first[1:], again[1:], strict=True))


@pytest.mark.parametrize("make", [lab.inputs, lab.homework3_inputs])
def test_two_ids_get_different_values_in_every_numeric_input(make):
    a, b = make("ada@example.edu"), make("bob@example.edu")
    for name, x, y in zip(a._fields, a, b, strict=True):
        if name == "student_id":
            continue
        assert not _equal(x, y), f"{name} is the same for two students"


@pytest.mark.parametrize("make", [lab.inputs, lab.homework3_inputs])
def test_inputs_are_read_only(make):
    for name, value in zip(make("demo")._fields, make("demo"), strict=True):
        if isinstance(value, np.ndarray):
            with pytest.raises(ValueError):
                value.flat[0] = 1
            assert not value.flags.writeable, name


@pytest.mark.parametrize("bad, error", [(None, TypeError), (12345, TypeError), ("  ", ValueError)])
def test_a_bad_student_id_is_refused(bad, error):
    with pytest.raises(error, match="student_id"):
        lab.inputs(bad)


@pytest.mark.parametrize("student", IDS)
def test_inputs_keep_their_traps(student):
    """Each variant keeps what makes the usual slips visible."""
    inp = lab.inputs(student)
    alpha, beta = inp.t2_range
    exact = -128 - alpha / ((beta - alpha) / 255)
    assert np.round(exact) != np.trunc(exact)  # int() and round() differ
    steps = inp.t3_x / inp.t3_scale
    assert np.any(np.abs(steps - np.trunc(steps)) == 0.5)  # ties
    assert np.any(steps + inp.t3_zero_point < 0) and np.any(steps + inp.t3_zero_point > 255)
    assert np.any(inp.t4_codes < inp.t3_zero_point)  # uint8 subtraction would wrap
    assert np.percentile(inp.t6_calibration, 99.9) < inp.t6_calibration.max() / 2  # spikes
    assert len(inp.t7_values) % 2 == 1 and min(inp.t7_values) < 0
    assert np.any(inp.t10_a == 0)  # x > 0 and x >= 0 differ
    acc = inp.t11_qa.astype(np.int64) @ inp.t11_qw.astype(np.int64)
    assert np.abs(acc).max() > 127  # an int8 accumulator would wrap


def test_the_package_holds_inputs_only():
    """No check, no solution, no key: the hidden tests and the solutions are not shipped."""
    public = {name for name in dir(lab) if not name.startswith("_")}
    assert not {n for n in public if n.startswith(("check", "score", "solution", "key"))}
    for tests in (lab.public_tests("lab"), lab.public_tests("hw3")):
        files = sorted(tests.glob("*.py"))
        assert len(files) > 1
        for path in files:
            text = path.read_text()
            assert "'hidden': True" not in text and "# SOLUTION" not in text, path
    with pytest.raises(ValueError, match="assignment"):
        lab.public_tests("hw9")


def test_tasks_add_up():
    assert lab.TOTAL_POINTS == sum(task.points for task in lab.TASKS.values())
    source = nbformat.read(ROOT / "course" / "lab" / "lab_source.ipynb", as_version=4)
    names = re.findall(r"^name: (t\d+)$", "\n".join(c.source for c in source.cells
                                                     if c.cell_type == "raw"), re.M)
    assert names == [f"t{task}" for task in lab.TASKS]


# -- the course pages ----------------------------------------------------------------------------


def test_instructor_guide_numbers_are_computed_ones():
    """The misconceptions the guide quotes, recomputed."""
    text = GUIDE.read_text(encoding="utf-8")
    assert affine.zero_point_truncated(-100.0, 80.0) == 13
    assert affine.qparams(-100.0, 80.0)[1] == 14
    assert "13" in text and "14" in text
    assert "200.7" in text and "-55" in text and "-56" in text
    bits = np.unpackbits(embeddings.quantize_embeddings(np.array([-0.5, 0.5]), "ubinary"))[:2]
    assert (bits * 2 - 1).tolist() == [255, 1]  # uint8 arithmetic: the seed's 255 for -1
    assert "255" in text
    # int() slides the window: -100 comes back 0.47 away, more than S/2 = 0.35
    scale = affine.qparams(-100.0, 80.0)[0]
    x_hat = affine.dequantize(affine.quantize(-100.0, scale, 13), scale, 13)
    assert round(abs(float(x_hat) + 100), 2) == 0.47 and round(scale / 2, 2) == 0.35
    assert "0.47" in text and "0.35" in text and "-99.53" in text
    assert round(255 / 6.2, 2) == 41.13 and round(6.2 / 255, 5) == 0.02431
    assert "41.13" in text and "0.02431" in text


X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def test_instructor_guide_states_cast_results_as_x86_behaviour():
    """Out-of-range float-to-int casts are undefined in C: the guide says so, and names x86."""
    text = GUIDE.read_text(encoding="utf-8")
    assert "undefined" in text and "on x86" in text and "ARM" in text
    for quoted in ("-55", "-56"):
        assert quoted in text


@pytest.mark.skipif(not X86, reason="out-of-range casts are CPU-dependent; the guide quotes x86")
def test_instructor_guide_cast_results_hold_on_x86():
    with np.errstate(all="ignore"):
        assert int(np.array([200.7]).astype(np.int8)[0]) == -56  # truncates, then wraps
        assert int(np.round(np.array([200.7])).astype(np.int8)[0]) == -55
        assert int(np.round(np.array([130.2])).astype(np.int8)[0]) == -126
        assert int(np.array([-1.0]).astype(np.uint8)[0]) == 255


def test_course_pages_cite_existing_exercises_and_tasks():
    labels = set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(notebook, as_version=4).cells:
            labels.update(re.findall(r":label:\s*(ex-[\w-]+)", cell.source))
    for page in (SYLLABUS, GUIDE):
        text = page.read_text(encoding="utf-8")
        cited = set(re.findall(r"\{ref\}`(?:[^`<]*<)?(ex-[\w-]+)>?`", text))
        assert cited <= labels, f"{page.name} cites missing exercises {sorted(cited - labels)}"
        for doc in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", text):
            target = (page.parent / doc).resolve()
            assert target.with_suffix(".ipynb").exists() or target.with_suffix(".md").exists(), doc
    syllabus = SYLLABUS.read_text(encoding="utf-8")
    for task in lab.TASKS:
        assert f"Task {task}" in syllabus, f"the syllabus does not map lab task {task}"
