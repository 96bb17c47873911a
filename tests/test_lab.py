"""The graded lab: its checks, its student notebook and its answer key.

- the answer key (scripts/make_answer_key.py) executes and scores full marks, every check
  printing "Correct!";
- the blank student notebook executes as it is and scores 0, each check printing a message;
- typical wrong answers get the hint aimed at them, and no check ever raises;
- the student notebook holds no solution code;
- the numbers the instructor guide quotes are what NumPy and quantbook compute.
"""

from __future__ import annotations

import importlib.util
import platform
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from quantbook import affine, embeddings, floats, granularity, symmetric
from quantbook.exercises import lab

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "notebooks" / "lab_quantization.ipynb"
GUIDE = ROOT / "book" / "course" / "instructor-guide.md"
SYLLABUS = ROOT / "book" / "course" / "syllabus.md"


def _load_key_script():
    spec = importlib.util.spec_from_file_location("make_answer_key",
                                                  ROOT / "scripts" / "make_answer_key.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


answer_key = _load_key_script()


def _run(nb, folder: Path) -> list[str]:
    """Execute ``nb`` in ``folder``; return each cell's printed and displayed text."""
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    texts = []
    for cell in nb.cells:
        parts = []
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
        texts.append("".join(parts))
    return texts


def _check_cells(nb) -> dict[int, int]:
    """Task number -> index of the cell that calls its check."""
    found = {}
    for index, cell in enumerate(nb.cells):
        task = answer_key.task_of(cell)
        if task is not None:
            assert task not in found, f"task {task} is checked in two cells"
            found[task] = index
    return found


@pytest.fixture(autouse=True)
def fresh_score():
    lab.reset()
    yield
    lab.reset()


# -- the notebooks -------------------------------------------------------------------------------


def test_answer_key_scores_full_marks(tmp_path):
    key = answer_key.make_key(nbformat.read(STUDENT, as_version=4))
    texts = _run(key, tmp_path)
    cells = _check_cells(key)
    assert sorted(cells) == sorted(lab.TASKS)
    for task, index in cells.items():
        out = texts[index]
        assert "Correct!" in out, f"task {task}: {out}"
        assert "not quite" not in out.lower() and "not answered" not in out.lower(), out
        points = lab.TASKS[task].points
        assert f"{points} / {points} point" in out, f"task {task}: {out}"
    assert f"Total: {lab.MAX_POINTS} / {lab.MAX_POINTS}" in texts[-1]
    assert lab.MAX_POINTS == 15
    assert list(tmp_path.iterdir()) == [], "the key left files behind"


def test_blank_student_notebook_runs_and_scores_zero(tmp_path):
    nb = nbformat.read(STUDENT, as_version=4)
    texts = _run(nb, tmp_path)
    for task, index in _check_cells(nb).items():
        out = texts[index]
        assert "Correct!" not in out
        assert re.search(r"not answered yet|returns None", out, re.I), f"task {task}: {out}"
        assert f"0 / {lab.TASKS[task].points} point" in out
    assert f"Total: 0 / {lab.MAX_POINTS}" in texts[-1]


def test_student_notebook_is_clean_and_holds_no_solutions():
    nb = nbformat.read(STUDENT, as_version=4)
    source = "\n".join(cell.source for cell in nb.cells)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "outputs not stripped"
    for task, index in _check_cells(nb).items():
        assert re.search(r"None\s+# TODO", nb.cells[index].source), f"task {task}: no placeholder"
    first = nb.cells[0]
    assert first.cell_type == "code" and "find_spec(\"quantbook\")" in first.source
    cells = _check_cells(nb)
    for task, solution in answer_key.SOLUTIONS.items():
        # Lines the solution shares with the student's stub (the check call, the function's
        # signature and docstring) are there on purpose; every other line must be absent.
        stub = {line.strip() for line in nb.cells[cells[task]].source.splitlines()}
        for line in solution.splitlines():
            code = line.split("  #")[0].strip()
            if line.strip() in stub or len(code) < 8:
                continue
            assert code not in source, f"task {task}: solution line {code!r} is in the notebook"


def test_key_goes_outside_notebooks(tmp_path):
    out = tmp_path / "key.ipynb"
    assert answer_key.main(["--output", str(out)]) == 0
    key = nbformat.read(out, as_version=4)
    assert "answer key" in key.cells[1].source.lower()
    assert any("Answer key: for instructors only" in c.source for c in key.cells)
    with pytest.raises(SystemExit):
        answer_key.main(["--output", str(STUDENT.parent / "lab_key.ipynb")])
    assert not (STUDENT.parent / "lab_key.ipynb").exists()


# -- the checks, in process ------------------------------------------------------------------------


def _check(task, answer, capsys):
    points = getattr(lab, f"check_task{task}")(answer)
    return int(points), capsys.readouterr().out


def _quantize_uint8_wrapping(x, scale, zero_point):
    return (np.rint(x / scale) + zero_point).astype(np.int64).astype(np.uint8)


def _quantize_uint8_float_cast(x, scale, zero_point):
    with np.errstate(all="ignore"):
        return (np.rint(x / scale) + zero_point).astype(np.uint8)


def _quantize_uint8_truncating(x, scale, zero_point):
    return np.clip(np.trunc(x / scale) + zero_point, 0, 255).astype(np.uint8)


def _per_tensor_mse():
    w = lab.TASK4_WEIGHTS
    return float(np.mean((w - symmetric.fake_quantize(w, bits=4)) ** 2))


A, B = lab.TASK8_A, lab.TASK8_B
CODES_A = np.packbits(A > 0)
DISTANCE = int(np.unpackbits(CODES_A ^ np.packbits(B > 0)).sum())
SIGNS_A = np.unpackbits(CODES_A)[:20].astype(np.float32) * 2 - 1
BLOCK = lab.TASK7_BLOCK

WRONG = [
    # task, answer, points, hint (a regular expression)
    (1, (255 / 4.5, 48), 1, r"inverse.*scale factor"),
    (1, (4.5 / 256, 48), 1, r"255 steps"),
    (1, (4.5 / 255, 47), 1, r"truncated \(int\(\)"),
    (1, (4.5 / 255, 47.67), 1, r"must be an integer"),
    (1, (4.5 / 255, 176), 1, r"unsigned codes"),
    (2, _quantize_uint8_wrapping, 0, r"wrapped around.*-1 became 255"),
    # a float -> uint8 cast of out-of-range codes: what it gives depends on the CPU, the hint not
    (2, _quantize_uint8_float_cast, 0, r"[Cc]lip to \[0, 255\] before you cast"),
    (2, _quantize_uint8_truncating, 0, r"truncated"),
    (2, lambda x, s, z: np.clip(np.floor(x / s + 0.5) + z, 0, 255), 0, r"halves up"),
    (2, lambda x, s, z: np.rint(x / s) + z, 0, r"clamped"),
    (2, lambda x, s, z: np.clip(np.rint(x / s) + z, -128, 127), 0, r"not to the int8 range"),
    (3, 0.25 * (lab.TASK3_CODES - 20), 0, r"0 - 20 is 236"),
    (3, 0.25 * lab.TASK3_CODES.astype(int), 0, r"zero point is missing"),
    (3, (lab.TASK3_CODES.astype(int) - 20) / 0.25, 0, r"divided by the scale"),
    (4, _per_tensor_mse(), 0, r"per-tensor"),
    (4, np.sqrt(_per_tensor_mse()) * 0 + 0.0, 0, r"nothing was rounded"),
    (5, tuple(np.percentile(lab.TASK5_TEST, [0.1, 99.9])), 0, r"wrong data"),
    (5, (float(lab.TASK5_CALIBRATION.min()), float(lab.TASK5_CALIBRATION.max())), 0, r"min-max"),
    (5, (-3.693428560495438, 3.693428560495438), 0, r"wastes half\s+the grid"),
    (6, [227, 135, 80, 15], 0, r"low-first"),
    (6, [62, 120, 5], 0, r"pad the last byte"),
    (6, [62, 120, 5, -16], 0, r"unsigned numbers 0..255"),
    (6, [62, 120, 5, 15], 0, r"padding goes after the last value"),
    (7, float(BLOCK[:2].view(">f2")[0]) * BLOCK[2:].view(np.int8), 0, r"little-endian"),
    (7, float(BLOCK[:2].view("<f2")[0]) * BLOCK[2:].astype(float), 0, r"signed.*int8"),
    (7, BLOCK[2:].view(np.int8), 0, r"Multiply the codes"),
    (8, (np.packbits(A >= 0), DISTANCE, SIGNS_A), 2, r"codes_a: zero counts as negative"),
    (8, (np.packbits(A > 0, bitorder="little"), DISTANCE, SIGNS_A), 2, r"most\s+significant"),
    (8, (CODES_A, 20 - DISTANCE, SIGNS_A), 2, r"bits that agree"),
    (8, (CODES_A, DISTANCE, np.unpackbits(CODES_A)[:20] * 2 - 1), 2, r"255 instead of -1"),
    (8, (CODES_A, DISTANCE, np.unpackbits(CODES_A).astype(float) * 2 - 1), 2, r"padding"),
]


@pytest.mark.parametrize(("task", "answer", "points", "hint"), WRONG)
def test_wrong_answers_get_their_hint(task, answer, points, hint, capsys):
    earned, out = _check(task, answer, capsys)
    assert earned == points, out
    assert re.search(hint, out, re.DOTALL), out


@pytest.mark.parametrize("task", sorted(lab.TASKS))
@pytest.mark.parametrize("answer", [None, ..., "42", object(), [], (None, None), float("nan"),
                                    [1.0, 2.0, 3.0], (1, 2, 3, 4)])
def test_checks_never_raise(task, answer, capsys):
    earned, out = _check(task, answer, capsys)
    assert earned == 0 and out.strip(), out


def test_a_function_that_raises_is_reported(capsys):
    def broken(x, scale, zero_point):
        raise RuntimeError("boom")

    earned, out = _check(2, broken, capsys)
    assert earned == 0 and "RuntimeError: boom" in out


def test_wrong_answer_candidates_differ_from_the_answer():
    """Each hint is for a wrong answer only: no candidate coincides with the right one."""
    groups = [lab._task4_candidates(), lab._task5_candidates(), lab._task6_candidates(),
              lab._task7_candidates()]
    for right, candidates in groups:
        right = np.asarray(right, dtype=float).ravel()
        for candidate, hint in candidates:
            candidate = np.asarray(candidate, dtype=float).ravel()
            assert candidate.shape != right.shape or not np.allclose(candidate, right,
                                                                     rtol=1e-3), hint


def test_score_adds_the_last_attempts(capsys):
    lab.check_task1((4.5 / 255, 48))
    lab.check_task1((4.5 / 255, 47))  # the last attempt counts
    lab.check_task6([62, 120, 5, 240])
    capsys.readouterr()
    assert lab.score() == 3
    out = capsys.readouterr().out
    assert "Total: 3 / 15" in out and "not checked yet" in out
    assert repr(lab.check_task3(None)) == "0 / 1 point"


def test_inputs_are_read_only():
    with pytest.raises(ValueError):
        lab.TASK4_WEIGHTS[0, 0] = 1.0


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
    # the quiz's answers
    assert round(7e9 * granularity.bits_per_weight(4, 32) / 8 / 1e9, 2) == 3.94
    scale, zero_point = affine.qparams(-2.0, 6.0, bits=8, signed=False)
    assert round(scale, 5) == 0.03137 and zero_point == 64
    q, s = symmetric.quantize(np.array([3.5, -1.2, 0.25]), bits=4)
    assert q.tolist() == [7, -2, 0] and s == 0.5
    assert floats.spacing(np.array([1000.0]), "float16")[0] == 0.5
    assert floats.format_info("float8_e4m3fn")["max"] == 448
    for number in ("3.94", "0.03137", "63.75", "[7, -2, 0]", "448", "-126"):
        assert number in text, number



X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def test_instructor_guide_states_cast_results_as_x86_behaviour():
    """Out-of-range float-to-int casts are undefined in C: the guide says so, and names x86."""
    text = GUIDE.read_text(encoding="utf-8")
    assert "undefined" in text and "on x86" in text and "ARM" in text
    for quoted in ("-55", "-56", "-126"):
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
