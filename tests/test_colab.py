"""Every notebook runs on its own, as in Colab: alone in an empty folder, quantbook from a wheel.

The test builds quantbook's wheel, makes a fresh virtual environment holding what Colab ships for
this book (numpy, matplotlib, ipywidgets, torch, transformers, sentence-transformers, ipykernel)
plus that wheel with its extras, copies each notebook alone into an empty folder and executes it
there with nbmake. Versions follow requirements.txt (used as pip constraints). A notebook that reads
a file from the repository, or imports something the wheel does not declare, fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What a Colab runtime already has, for this book's needs, and what runs the notebooks.
COLAB_PACKAGES = [
    "numpy",
    "matplotlib",
    "ipywidgets",
    "torch",
    "transformers",
    "sentence-transformers",
    "scikit-learn",  # Colab ships it; chapter 13 trains on its bundled digits
    "otter-grader",  # the lab's and homework's autograder (course pages say to install it)
    "ipykernel",
    "pytest",
    "nbmake",
    "pytest-xdist",
]

pytestmark = pytest.mark.slow


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


@pytest.fixture(scope="module")
def colab_env(tmp_path_factory):
    """A fresh venv with Colab's packages and quantbook's wheel (not the source tree)."""
    base = tmp_path_factory.mktemp("colab")
    wheels = base / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(ROOT)])
    (wheel,) = wheels.glob("quantbook-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "-c", str(ROOT / "requirements.txt")]
    run([*pip, *COLAB_PACKAGES])
    run([*pip, f"quantbook[book,models] @ {wheel.as_uri()}"])
    return venv


def test_wheel_holds_the_explorer_assets(colab_env):
    """The explorers' JavaScript ships inside the wheel, so Colab never fetches it."""
    code = (
        "import importlib.resources as r, quantbook;"
        "print(sorted(p.name for p in r.files('quantbook.explorers').iterdir()))"
    )
    out = run([str(colab_env / "bin" / "python"), "-c", code], cwd="/").stdout
    assert ".js" in out, out


def test_quantbook_comes_from_the_wheel(colab_env):
    code = "import quantbook; print(quantbook.__file__)"
    out = run([str(colab_env / "bin" / "python"), "-c", code], cwd="/").stdout
    assert str(colab_env) in out and str(ROOT / "src") not in out


def test_every_notebook_runs_alone(colab_env, tmp_path):
    """Each notebook alone in its own empty folder, run by nbmake inside the Colab-like venv."""
    copies = []
    for notebook in NOTEBOOKS:
        folder = tmp_path / notebook.stem
        folder.mkdir()
        copies.append(shutil.copy(notebook, folder))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{colab_env / 'bin'}:{env['PATH']}"
    result = subprocess.run(
        [str(colab_env / "bin" / "pytest"), "-p", "no:cacheprovider", "-n", "2", "--nbmake",
         "--nbmake-timeout=1200", *copies],
        cwd=tmp_path, env=env, text=True, capture_output=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert len(NOTEBOOKS) >= 7
    for notebook in NOTEBOOKS:
        written = {p.name for p in (tmp_path / notebook.stem).iterdir()} - {notebook.name}
        # Otter-Grader's check() logs each attempt in .OTTER_LOG next to the graded notebook
        # (the lab): that is the autograder's record, not litter.
        expected = {"__pycache__", ".OTTER_LOG"}
        assert not written - expected, f"{notebook.name} left files: {sorted(written)}"
