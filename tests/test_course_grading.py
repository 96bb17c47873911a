"""The autograder grades sample submissions with the expected scores (Otter-Grader, no Docker).

course/lab/samples and course/homework/samples hold a correct submission, a blank one, one with
the typical slips, one that copies a friend's answers under its own id, one with cells appended
after the last task and one whose cell raises. ``course/grade.py`` re-executes each in a fresh
kernel with ``otter run`` and the hidden tests; ``expected.json`` beside them gives the scores.
Slow (each notebook is executed): about ten seconds per submission on two cores.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


grade = load_script(ROOT / "course" / "grade.py", "course_grade")
FOLDERS = {"lab": ROOT / "course" / "lab" / "samples",
           "hw3": ROOT / "course" / "homework" / "samples"}


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def graded(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"grades-{request.param}")
    rows = grade.grade_folder(FOLDERS[request.param], request.param, out)
    expected = json.loads((FOLDERS[request.param] / "expected.json").read_text())
    return request.param, rows, expected, out


def test_every_sample_gets_its_expected_score(graded):
    name, rows, expected, _ = graded
    by_file = {row["file"]: row for row in rows}
    expected = {k: v for k, v in expected.items() if not k.startswith("_")}
    assert set(by_file) == set(expected)
    for file, want in expected.items():
        row = by_file[file]
        assert row["error"] == "", f"{file}: otter run failed: {row['error']}"
        assert row["student_id"] == want["student_id"], file
        assert row["total"] == want["total"], f"{file}: {row}"
        for question, points in want.items():
            if question not in ("total", "student_id"):
                assert row[question] == points, f"{file} {question}: {row}"


def test_full_marks_equal_the_points_of_the_tasks(graded):
    name, rows, _, _ = graded
    if name == "lab":
        from quantbook.exercises import lab

        assert {row["possible"] for row in rows} == {lab.TOTAL_POINTS}


def test_a_csv_and_a_gradescope_result_per_submission(graded):
    _, rows, _, out = graded
    with open(out / "grades.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["file"] for r in table] == [r["file"] for r in rows]
    for row in rows:
        result = json.loads((out / "gradescope" / f"{Path(row['file']).stem}.json").read_text())
        assert sum(t["score"] for t in result["tests"] if t.get("name") != "Public Tests") == \
            row["total"]


def test_a_key_per_student():
    """The friend's answers under another id earn only the points of id-independent code."""
    expected = json.loads((FOLDERS["lab"] / "expected.json").read_text())
    assert expected["correct.ipynb"]["total"] > 5 * expected["friends_answers.ipynb"]["total"]
