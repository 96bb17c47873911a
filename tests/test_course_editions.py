"""Two editions: the student edition (website and wheel) reveals no graded answer.

The list of graded answers is read from the instructor sources by
``course/make_instructor.py:key_answers`` (the question bank, the rubrics, the solution lines,
hidden tests and exemplar answers of the Otter sources), never typed twice. Each is searched

- in the instructor edition, ``_build/instructor/_build/html`` (``make instructor``): it must be
  found there, which proves the search finds an answer when it is present;
- in the student edition, the website ``_build/html`` (``make book``; or the folder named by
  ``QUANTBOOK_STUDENT_HTML``), every page, its sources and its search index: it must not be;
- in the wheel of ``quantbook`` (``pip wheel --no-deps``): it must not be either.

``make test`` builds both editions before it runs the tests; run alone, this test builds the
instructor edition when it is missing and skips the website's search when the site is not built.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
STUDENT_HTML = Path(os.environ.get("QUANTBOOK_STUDENT_HTML", ROOT / "_build" / "html"))
INSTRUCTOR_HTML = ROOT / "_build" / "instructor" / "_build" / "html"
TEXT_SUFFIXES = {".html", ".txt", ".md", ".ipynb", ".js", ".json", ".py", ".yml", ".csv", ""}


instructor = load_script(ROOT / "course" / "make_instructor.py", "make_instructor")
KEYS = instructor.key_answers()


def normalize(text: str) -> str:
    """What a reader sees: no tags, entities decoded, straight quotes and dashes, no emphasis
    marks, one space for any run of whitespace."""
    text = re.sub(r"</?(?:span|em|strong|code|a|b|i|sub|sup)\b[^>]*>", "", text)  # inline
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(text)
    for curly, plain in (("‘", "'"), ("’", "'"), ("“", '"'), ("”", '"'), ("–", "-"),
                         ("—", "-"), ("…", "..."), ("\\n", " "), ('\\"', '"')):
        text = text.replace(curly, plain)
    text = text.replace("*", "").replace("`", "")
    text = re.sub(r"\s+", " ", text)
    return re.sub(r" ([,.;:)\]])", r"\1", re.sub(r"([(\[]) ", r"\1", text)).strip()


def corpus(folder: Path) -> dict[str, str]:
    texts = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "_static" not in path.parts:
            texts[str(path.relative_to(folder))] = normalize(path.read_text(errors="ignore"))
    return texts


def leaks(texts: dict[str, str]) -> list[tuple[str, str, str]]:
    found = []
    for origin, key in KEYS:
        needle = normalize(key)
        for name, text in texts.items():
            if needle in text:
                found.append((origin, key, name))
    return found


def _built(folder: Path, command: str) -> Path:
    if not (folder / "index.html").is_file():
        if folder == INSTRUCTOR_HTML:
            instructor.build()  # small: the keys, the bank, the rubrics
        else:
            pytest.skip(f"{folder} is not built: run `{command}` first (make test does)")
    return folder


def test_every_source_of_answers_gives_keys():
    for source in ("bank ", "rubrics.md", "lab solution", "lab hidden test", "lab exemplar",
                   "hw3 solution", "hw3 hidden test", "hw3 exemplar"):
        assert any(origin.startswith(source) for origin, _ in KEYS), source
    assert all(len(normalize(key)) >= 12 for _, key in KEYS), "a key too short to search for"


def test_the_instructor_edition_holds_every_key():
    texts = corpus(_built(INSTRUCTOR_HTML, "make instructor"))
    found = {(origin, key) for origin, key, _ in leaks(texts)}
    missing = [(origin, key) for origin, key in KEYS if (origin, key) not in found]
    assert not missing, f"keys the search does not find in the instructor edition: {missing}"


def test_the_student_website_reveals_no_key():
    texts = corpus(_built(STUDENT_HTML, "make book"))
    assert any("lab_quantization" in name for name in texts), "the lab page is not in the site"
    found = leaks(texts)
    assert not found, f"graded answers on the public website: {found}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(ROOT)], check=True)
    (path,) = out.glob("quantbook-*.whl")
    return path


def test_the_wheel_reveals_no_key(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        texts = {name: normalize(archive.read(name).decode(errors="ignore")) for name in names}
    assert "quantbook/exercises/lab.py" in names
    for folder in ("lab_tests", "hw3_tests"):
        assert any(name.startswith(f"quantbook/exercises/{folder}/t") or
                   name.startswith(f"quantbook/exercises/{folder}/h") for name in names), \
            f"the public tests ({folder}) must ship with the package (grader.check in Colab)"
    found = leaks(texts)
    assert not found, f"graded answers in the wheel: {found}"


def test_the_student_notebooks_hold_no_solution():
    for path in (ROOT / "notebooks" / "lab_quantization.ipynb",
                 ROOT / "book" / "course" / "homework_week3.ipynb"):
        text = normalize(path.read_text())
        assert "# SOLUTION" not in path.read_text() and "hidden: true" not in text
        assert not [key for _, key in KEYS if normalize(key) in text], path.name
