"""The slow parts, each behind a flag of run_all.py: notebooks, book builds, explorer latency.

* notebooks: ``pytest --nbmake notebooks``, one after another, with a fresh, empty embedding
  cache (as on Colab or a new machine); per-notebook times from pytest's JUnit XML report.
* book: the repository is copied (without .venv, node_modules, _build, .git, vendor) to a
  scratch folder, its browser assets vendored (``npm ci`` + scripts/vendor_assets.py), and
  ``jupyter-book build . --builder html`` is timed twice: from clean (no _build, every notebook
  executed) and again from cache (nothing changed).
* explorers: benchmarks/explorer_latency.py (input event to redraw in headless Chromium).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from common import Duration

NOTEBOOK_LIMIT = 60.0  # seconds per notebook
BOOK_LIMIT = 300.0  # seconds for a build from clean
REDRAW_LIMIT = 0.016  # seconds: one frame at 60 Hz


def offline_env(cache: Path) -> dict[str, str]:
    """The environment the Makefile gives the book: offline, one embedding cache, the venv."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", QUANTBOOK_CACHE=str(cache),
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def time_notebooks(repo: Path, cache: Path | None = None) -> list[Duration]:
    """Execute every notebook with nbmake; ``cache`` None means a fresh, empty one."""
    bin_dir = Path(sys.executable).parent
    group = f"Notebooks (nbmake, one at a time, embedding cache {cache or 'empty'})"
    with tempfile.TemporaryDirectory(prefix="qb-nb-") as tmp:
        report, log = Path(tmp) / "junit.xml", Path(tmp) / "pytest.log"
        wall, cpu, code = run(
            [str(bin_dir / "pytest"), "--nbmake", "--nbmake-timeout=600", "notebooks",
             "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
            repo, offline_env(cache or Path(tmp) / "cache"), log,
        )
        if code:
            print(log.read_text()[-5000:])
        rows = [Duration(group, "all notebooks", wall, None,
                         f"exit code {code}, {cpu:.0f} s of CPU")]
        for case in ET.parse(report).iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            name = Path(case.get("file") or case.get("name")).name
            rows.append(Duration(group, name, float(case.get("time")), NOTEBOOK_LIMIT,
                                 "FAILED (see pytest output)" if failed else ""))
    return rows


def run(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, float, int]:
    """Run ``cmd`` with its output in ``log``: (wall seconds, CPU seconds, exit code).

    The CPU time (user + system of the command and everything it waited for, notebook kernels
    included) does not grow with the machine's load the way the wall time does.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, code


def executed_notebooks(log: Path, group: str) -> list[Duration]:
    """myst-nb's own per-notebook execution times (and failures) from a build log."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    rows = [Duration(group, f"executed in the build: {Path(path).name}", float(secs),
                     NOTEBOOK_LIMIT)
            for path, secs in re.findall(r"(\S+\.ipynb): Executed notebook in ([\d.]+) seconds",
                                         text)]
    for path, error in re.findall(r"(\S+\.ipynb): WARNING: Executing notebook failed: (\w+)",
                                  text):
        rows.append(Duration(group, f"executed in the build: {Path(path).name}", float("nan"),
                             NOTEBOOK_LIMIT, f"FAILED: {error}"))
    return rows


def time_book_builds(repo: Path, scratch: Path) -> list[Duration]:
    repo, scratch = repo.resolve(), scratch.resolve()
    if scratch == repo or scratch in repo.parents or repo in scratch.parents:
        raise SystemExit(f"--scratch must be a folder outside the repository, got {scratch}")
    skipped = {".venv", "node_modules", "_build", ".git", "vendor"}
    shutil.rmtree(scratch, ignore_errors=True)  # it is rebuilt from the repository
    shutil.copytree(repo, scratch, symlinks=True, ignore=lambda folder, names: [
        name for name in names if Path(folder) == repo and name in skipped])
    env = offline_env(scratch / "_build" / "quantbook-cache")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=scratch,
                   env=env, check=True)
    subprocess.run([sys.executable, "scripts/vendor_assets.py"], cwd=scratch, env=env, check=True)
    shutil.rmtree(scratch / "_build", ignore_errors=True)
    build = [str(Path(sys.executable).parent / "jupyter-book"), "build", ".", "--builder", "html"]
    group = "Book build (jupyter-book build . --builder html)"
    logs = scratch / "build-clean.log", scratch / "build-cached.log"
    clean, clean_cpu, clean_code = run(build, scratch, env, logs[0])
    cached, cached_cpu, cached_code = run(build, scratch, env, logs[1])
    return [
        Duration(group, "from clean (every notebook executed)", clean, BOOK_LIMIT,
                 f"exit code {clean_code}, {clean_cpu:.0f} s of CPU; log {logs[0]}"),
        Duration(group, "from cache (nothing changed)", cached, None,
                 f"exit code {cached_code}, {cached_cpu:.0f} s of CPU; log {logs[1]}"),
        *executed_notebooks(logs[0], group),
    ]


def explorer_latency(repo: Path) -> list[Duration]:
    script = repo / "benchmarks" / "explorer_latency.py"
    group = "Explorer latency (headless Chromium)"
    if not script.exists():
        return [Duration(group, "explorer_latency.py", float("nan"), None, "not written yet")]
    out = subprocess.run([sys.executable, str(script)], cwd=repo, capture_output=True,
                         text=True, check=False)
    print(out.stdout, out.stderr, sep="\n")
    title = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "explorer"
    rows = []
    for label in ("redraw done", "next frame"):
        found = re.search(rf"{label}\s*:\s*median\s+([\d.]+) ms\s+p95\s+([\d.]+) ms", out.stdout)
        if found:
            median, p95 = (float(v) / 1e3 for v in found.groups())
            rows.append(Duration(group, f"input -> {label}, median", median, REDRAW_LIMIT,
                                 f"p95 {p95 * 1e3:.1f} ms; {title}"))
    if not rows:
        rows.append(Duration(group, "explorer_latency.py", float("nan"), None,
                             f"exit code {out.returncode}, output not understood"))
    return rows
