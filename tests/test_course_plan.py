"""The course plan holds together: timing, outcomes, assigned exercises, bank, release, sources.

- no session of the instructor guide runs over its length (its minute table ends by then);
- every outcome of the syllabus is assessed by something graded, and the quiz, the exam, the
  lab tasks and the homework tasks all appear in the mapping;
- every exercise the outcome table maps is assigned in a weekly exercise set;
- every answer of the question bank is recomputed (its ``check`` holds);
- the course pages quote the release of ``_config.yml`` and link the published slides;
- the published student notebooks and public tests are what ``otter assign`` makes of the
  sources (``scripts/make_answer_key.py --check``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes  # noqa: F401  (used by the bank's checks)
import numpy as np  # noqa: F401
import pytest
import yaml

import quantbook
from quantbook import (  # noqa: F401  (used by the bank's checks)
    affine,
    embeddings,
    floats,
    formats,
    granularity,
    matmul,
    packing,
    qat,
    symmetric,
)
from quantbook.exercises import lab

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "book" / "course"
SYLLABUS = (COURSE / "syllabus.md").read_text(encoding="utf-8")
GUIDE = (COURSE / "instructor-guide.md").read_text(encoding="utf-8")
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
SESSION_MINUTES = 80


def sessions(text: str) -> dict[str, list[tuple[int, int]]]:
    """Session heading -> the (start, end) minutes of its table rows."""
    found = {}
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        title = block.splitlines()[0]
        rows = re.findall(r"^\|\s*(\d+)\s*[–-]\s*(\d+)\s*\|", block, re.M)
        if rows:
            found[title] = [(int(a), int(b)) for a, b in rows]
    return found


def test_there_are_six_sessions_and_none_runs_over():
    plan = sessions(GUIDE)
    assert len(plan) == 6, list(plan)
    for title, rows in plan.items():
        assert rows[0][0] == 0, title
        for (_, end), (start, _) in zip(rows, rows[1:], strict=False):
            assert start == end, f"{title}: a gap or an overlap at minute {end}"
        assert all(a < b for a, b in rows), title
        assert rows[-1][1] <= SESSION_MINUTES, f"{title} runs {rows[-1][1]} minutes"
    assert f"${SESSION_MINUTES}$ minutes" in SYLLABUS and f"${SESSION_MINUTES}$ minutes" in GUIDE


def outcome_rows() -> list[list[str]]:
    table = SYLLABUS.split("## Learning outcomes")[1].split("## Schedule")[0]
    rows = re.split(r"^\* - ", table, flags=re.M)[2:]  # after the header row
    return [re.split(r"^  - ", row, flags=re.M) for row in rows]


GRADED = re.compile(r"Lab Task \d+|Task \d+|Homework H\d|\bW\d\b|\bQ\d\b|\bE\b|\bP\b")


def test_every_outcome_is_assessed_by_something_graded():
    rows = outcome_rows()
    assert len(rows) >= 13
    for row in rows:
        assert GRADED.search(row[-1]), f"outcome {row[0].strip()} is not graded: {row[-1]!r}"
    graded = " ".join(row[-1] for row in rows)
    for task in lab.TASKS:
        assert re.search(rf"Task {task}\b", graded), f"lab Task {task} assesses no outcome"
    for item in ("H1", "H2", "H3", "H4", "W1", "W2", "W3", "Q1", "Q2", "E", "P"):
        assert re.search(rf"\b{item}\b", graded), f"{item} is in no outcome's row"
    assert "W1" in rows[2][-1] and "W1" not in rows[0][-1], "outcome 1 is not about wrap-around"
    assert "Task 9" in rows[5][-1], "Q4_0 decoding (lab Task 9) assesses outcome 6"
    assert "Task 11" in rows[7][-1], "outcome 8 (integer matmul) is assessed by lab Task 11"


def test_every_mapped_exercise_is_assigned():
    mapped = set(re.findall(r"\{ref\}`(ex-[\w-]+)`", "".join(r[3] for r in outcome_rows())))
    schedule = SYLLABUS.split("## Schedule")[1].split("## Assessment")[0]
    assigned = set(re.findall(r"\{ref\}`(ex-[\w-]+)`", schedule))
    assert mapped and mapped <= assigned, sorted(mapped - assigned)
    # Chapters 8-14 are assigned whole (their pages are linked once they are in the book).
    assert "The exercises of chapters 8, 9 and 10" in schedule
    assert "The exercises of chapters 11, 12, 13 and 14" in schedule


BANK = yaml.safe_load((ROOT / "course" / "instructor" / "bank.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("item", BANK, ids=[item["id"] for item in BANK])
def test_every_bank_answer_is_recomputed(item):
    assert set(item) >= {"id", "use", "outcome", "question", "answer", "check", "vary"}
    assert item["use"] in ("Q1", "Q2", "E")
    with np.errstate(all="ignore"):
        assert bool(eval(item["check"])), item["id"]


def test_the_bank_covers_every_outcome():
    outcomes = {int(row[0].strip()) for row in outcome_rows()}
    missing = outcomes - {item["outcome"] for item in BANK}
    assert not missing, f"outcomes with no quiz or exam question: {sorted(missing)}"
    assert {item["use"] for item in BANK} == {"Q1", "Q2", "E"}


def test_the_pages_quote_the_release_of_config():
    release = CONFIG["repository"]["release"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", release)
    for text in (SYLLABUS, GUIDE):
        quoted = set(re.findall(r"(?:@|--branch |/blob/|`)(v\d+\.\d+\.\d+)", text))
        assert quoted == {release}, quoted


def test_the_release_is_the_package_version():
    release = CONFIG["repository"]["release"]
    if release != f"v{quantbook.__version__}":
        pytest.xfail(f"_config.yml pins {release}; quantbook is {quantbook.__version__}: the "
                     "coordinator bumps pyproject.toml and quantbook.__version__ with the tag")
    assert release == f"v{quantbook.__version__}"


def test_the_course_pages_link_the_published_slides():
    assert '<a href="../../slides/index.html">' in SYLLABUS
    assert '<a href="../../slides/index.html">' in GUIDE


def test_published_student_notebooks_are_generated_from_their_sources():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_answer_key.py"), "--check",
                          "--no-run-tests"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
