"""Build the instructor edition (never deployed): keys, autograders, bank, rubrics, slide notes.

    make instructor          # = .venv/bin/python course/make_instructor.py

1. ``scripts/make_answer_key.py`` builds the lab's and the homework's keys and autograders from
   their Otter sources into ``_build/course/``;
2. the edition's pages are assembled in ``_build/instructor-src/``: the pages of
   ``course/instructor/``, the question bank rendered from ``bank.yml``, the hidden tests, and
   the two key notebooks (executed for the id ``demo``);
3. Jupyter Book builds them into ``_build/instructor/_build/html/``.

:func:`key_answers` lists every graded answer, read from the instructor sources (the bank, the
rubrics, the solution lines and hidden tests of the Otter sources, the exemplar answers of the
written questions). tests/test_course_editions.py searches the student edition (the website and
the wheel) for each of them, and the instructor edition to prove the search finds them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"lab": ROOT / "course" / "lab" / "lab_source.ipynb",
           "hw3": ROOT / "course" / "homework" / "hw3_source.ipynb"}
# A course that keeps its own bank and rubrics private points this at its private copy of
# course/instructor/ (the same files); the editions test then checks those answers too.
PAGES = Path(os.environ.get("QUANTBOOK_INSTRUCTOR_PAGES", ROOT / "course" / "instructor"))
SRC = ROOT / "_build" / "instructor-src"
OUT = ROOT / "_build" / "instructor"
USES = {"Q1": "Quiz Q1 (chapters 1-4)", "Q2": "Quiz Q2 (chapters 5-7)", "E": "Final exam"}

CONFIG = """\
title: "Quantbook course: instructor edition (not for students)"
author: The Quantbook authors
only_build_toc_files: true
execute:
  execute_notebooks: force
  timeout: 600
  allow_errors: false
parse:
  myst_enable_extensions: [colon_fence, dollarmath, amsmath, deflist]
html:
  use_repository_button: false
sphinx:
  config:
    html_context:
      default_mode: auto
"""

TOC = """\
format: jb-book
root: index
chapters:
  - file: lab_key
  - file: hw3_key
  - file: bank
  - file: rubrics
  - file: hidden-tests
  - file: slide-notes
"""


def bank() -> list[dict]:
    return yaml.safe_load((PAGES / "bank.yml").read_text(encoding="utf-8"))


def render_bank() -> str:
    lines = ["# Question bank", "",
             "Quizzes and the final exam, on paper and without a computer, one point per item. "
             "Each item names the syllabus outcome it assesses and how to vary it for a new "
             "semester. The answers are recomputed by tests/test_course_editions.py.", ""]
    for use, title in USES.items():
        lines += [f"## {title}", ""]
        for number, item in enumerate((i for i in bank() if i["use"] == use), start=1):
            lines += [f"**{use}.{number}** (outcome {item['outcome']}). {item['question']}", "",
                      f"*Answer.* {item['answer']}", "", f"*Vary.* {item['vary']}", ""]
    return "\n".join(lines)


def _questions(source: Path) -> list[tuple[str, list]]:
    """(question name, its cells) for every question of an Otter source notebook."""
    nb = nbformat.read(source, as_version=4)
    found, name, cells = [], None, []
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.startswith("# BEGIN QUESTION"):
            name, cells = re.search(r"^name:\s*(\S+)", cell.source, re.M).group(1), []
        elif cell.cell_type == "raw" and cell.source.startswith("# END QUESTION"):
            found.append((name, cells))
            name = None
        elif name:
            cells.append(cell)
    return found


def solution_lines(source: Path) -> list[str]:
    """The code of every ``# SOLUTION`` line, without the marker."""
    lines = []
    for _, cells in _questions(source):
        for cell in cells:
            if cell.cell_type == "code" and "BEGIN TEST CONFIG" not in cell.source:
                lines += [line.split("# SOLUTION")[0].strip() for line in cell.source.splitlines()
                          if line.rstrip().endswith("# SOLUTION")]
    return lines


def hidden_tests(source: Path) -> list[tuple[str, str]]:
    """(question, code) of every hidden test, the configuration header removed."""
    tests = []
    for name, cells in _questions(source):
        for cell in cells:
            if cell.cell_type == "code" and re.search(r"^hidden:\s*true", cell.source, re.M):
                tests.append((name, cell.source.split('""" # END TEST CONFIG')[1].strip()))
    return tests


def exemplars(source: Path) -> list[str]:
    """The exemplar answers of the written (manual) questions."""
    return [cell.source.strip() for _, cells in _questions(source) for cell in cells
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("*Exemplar")]


def render_hidden_tests() -> str:
    lines = ["# Hidden tests", "",
             "What the autograders run on a submission, besides the public tests the students "
             "see. Each test recomputes the key from the `STUDENT_ID` of the submitted notebook.",
             ""]
    for assignment, source in SOURCES.items():
        lines += [f"## {assignment}", ""]
        for name, code in hidden_tests(source):
            lines += [f"**{name}**", "", "```python", code, "```", ""]
    return "\n".join(lines)


def rubric_rows() -> list[str]:
    """The text of every rubric level and exemplar in rubrics.md (long table cells, exemplars)."""
    text = (PAGES / "rubrics.md").read_text(encoding="utf-8")
    rows = [cell.strip() for line in text.splitlines() if line.startswith("|")
            for cell in line.strip("|").split("|") if len(cell.strip()) > 60]
    rows += [m.strip() for m in re.findall(r'^Exemplar[^"]*"(.+?)"', text, re.S | re.M)]
    return rows


def key_answers() -> list[tuple[str, str]]:
    """(where it comes from, text) of every graded answer in the instructor sources."""
    keys = [(f"bank {item['id']}", item["answer"]) for item in bank()]
    keys += [("rubrics.md", row) for row in rubric_rows()]
    for assignment, source in SOURCES.items():
        keys += [(f"{assignment} solution", line) for line in solution_lines(source)]
        keys += [(f"{assignment} hidden test {name}", line.strip())
                 for name, code in hidden_tests(source) for line in code.splitlines()
                 if line.strip().startswith("assert")]
        keys += [(f"{assignment} exemplar", text) for text in exemplars(source)]
    return keys


def assemble() -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_answer_key.py")], check=True)
    shutil.rmtree(SRC, ignore_errors=True)
    SRC.mkdir(parents=True)
    for page in PAGES.glob("*.md"):
        shutil.copy(page, SRC / page.name)
    (SRC / "bank.md").write_text(render_bank(), encoding="utf-8")
    (SRC / "hidden-tests.md").write_text(render_hidden_tests(), encoding="utf-8")
    for assignment in SOURCES:
        key = nbformat.read(ROOT / "_build" / "course" / assignment / "key.ipynb", as_version=4)
        for cell in key.cells:  # the chapters are on the public website, not in this edition
            if cell.cell_type == "markdown":
                cell.source = re.sub(r"\[([^\]]+)\]\(\d\d_\w+\.ipynb\)", r"\1", cell.source)
        key.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"```{{warning}}\nThe key of `{assignment}`, for instructors only. Set `STUDENT_ID` "
            "to a student's id and run all cells to see that student's answers.\n```"))
        nbformat.write(key, SRC / f"{assignment}_key.ipynb")
    (SRC / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (SRC / "_toc.yml").write_text(TOC, encoding="utf-8")


def build() -> Path:
    assemble()
    shutil.rmtree(OUT, ignore_errors=True)
    subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(SRC),
                    "--path-output", str(OUT), "--builder", "html", "-W", "-n", "--keep-going"],
                   check=True)
    return OUT / "_build" / "html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", action="store_true", help="print the key answers as JSON")
    args = parser.parse_args(argv)
    if args.keys:
        print(json.dumps(key_answers(), indent=1))
        return 0
    html = build()
    print(f"The instructor edition is built: {html / 'index.html'} (do not deploy it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
