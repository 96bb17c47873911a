"""Grade a folder of submitted notebooks with Otter-Grader, without Docker: CSV and Gradescope.

    make grade SUBMISSIONS=path/to/folder [ASSIGNMENT=lab|hw3]
    .venv/bin/python course/grade.py path/to/folder --assignment lab --out _build/grades

Each ``*.ipynb`` in the folder is re-executed from the top in a fresh kernel, in a temporary
folder, by ``otter run`` with the assignment's autograder (its hidden tests recompute the key for
the ``STUDENT_ID`` the notebook holds). Nothing the student's notebook printed is trusted: cells
appended after the last task, saved outputs and a redefined ``grader`` change nothing.

Written to ``--out``:

- ``grades.csv``: one row per notebook: file, student id, the points of every question, total,
  possible (import it into an LMS gradebook);
- ``gradescope/<file>.json``: Otter's results in Gradescope's autograder format (the same
  ``results.json`` the autograder writes when the zip ``_build/course/<name>/autograder.zip`` is
  uploaded to Gradescope as a programming assignment);
- ``log/<file>.txt``: what ``otter run`` printed, for a student who asks.

Why ``otter run`` and not ``otter grade``: in Otter 7, ``otter grade`` needs a Docker daemon;
``otter run`` grades one notebook in the current environment, which is what a JupyterHub, a
laptop or a CI runner has.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDENT_ID = re.compile(r"""^STUDENT_ID\s*=\s*(['"])(.*?)\1""", re.M)


def autograder(assignment: str) -> Path:
    """The assignment's autograder zip, built by scripts/make_answer_key.py when missing."""
    path = ROOT / "_build" / "course" / assignment / "autograder.zip"
    if not path.is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_answer_key.py"), assignment,
                        "--no-run-tests"], check=True)
    return path


def student_id(notebook: Path) -> str:
    """The STUDENT_ID the notebook sets (the last assignment wins, as when it runs)."""
    nb = json.loads(notebook.read_text())
    found = ""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            for match in STUDENT_ID.finditer("".join(cell.get("source", ""))):
                found = match.group(2)
    return found


def grade_one(notebook: Path, zip_path: Path, timeout: int = 600) -> tuple[dict, str]:
    """Otter's results for one notebook (Gradescope format) and what otter run printed."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "submission.ipynb"
        shutil.copy(notebook, copy)
        run = subprocess.run(
            [str(Path(sys.executable).parent / "otter"), "run", "--no-logo", "-a", str(zip_path),
             "-o", tmp, str(copy)],
            cwd=tmp, capture_output=True, text=True, timeout=timeout)
        results = Path(tmp) / "results.json"
        if run.returncode != 0 or not results.is_file():
            return {"tests": [], "error": run.stderr[-2000:]}, run.stdout + run.stderr
        return json.loads(results.read_text()), run.stdout + run.stderr


def scores(results: dict) -> dict[str, tuple[float, float]]:
    """question -> (points, possible) from Otter's results (its "Public Tests" summary left out)."""
    return {test["name"]: (float(test.get("score") or 0), float(test.get("max_score") or 0))
            for test in results.get("tests", []) if test.get("name") != "Public Tests"}


def grade_folder(folder: Path, assignment: str = "lab", out: Path | None = None,
                 jobs: int = 2) -> list[dict]:
    """Grade every notebook of ``folder``; write grades.csv, gradescope/ and log/ in ``out``."""
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"SUBMISSIONS folder {folder} holds no .ipynb file")
    out = out or ROOT / "_build" / "grades" / assignment
    for sub in ("gradescope", "log"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    zip_path = autograder(assignment)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        graded = list(pool.map(lambda nb: grade_one(nb, zip_path), notebooks))

    rows, questions = [], []
    for notebook, (results, log) in zip(notebooks, graded, strict=True):
        (out / "gradescope" / f"{notebook.stem}.json").write_text(json.dumps(results, indent=1))
        (out / "log" / f"{notebook.stem}.txt").write_text(log)
        points = scores(results)
        questions = questions or list(points)
        row = {"file": notebook.name, "student_id": student_id(notebook)}
        row.update({q: points.get(q, (0.0, 0.0))[0] for q in questions})
        row["total"] = sum(p for p, _ in points.values())
        row["possible"] = sum(m for _, m in points.values())
        row["error"] = results.get("error", "")[:200].replace("\n", " ")
        rows.append(row)
    fields = ["file", "student_id", *questions, "total", "possible", "error"]
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", restval=0.0)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, help="folder of submitted .ipynb files")
    parser.add_argument("--assignment", default="lab", choices=["lab", "hw3"])
    parser.add_argument("--out", type=Path, default=None, help="default _build/grades/<name>")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once")
    args = parser.parse_args(argv)
    rows = grade_folder(args.submissions, args.assignment, args.out, args.jobs)
    for row in rows:
        print(f"{row['file']:<32} {row['student_id']:<24} {row['total']:g} / {row['possible']:g}")
    out = args.out or ROOT / "_build" / "grades" / args.assignment
    print(f"Written: {out / 'grades.csv'} and {out / 'gradescope'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
