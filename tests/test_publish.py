"""The book as a published work: one version everywhere, licences, citation, workflows.

The package version (``quantbook.__version__``) is the one number; pyproject.toml, CITATION.cff,
the changelog's newest entry and the site's footer must all say the same. The GitHub workflows
run only the README's two commands and are valid against GitHub's workflow schema (the schema
ships inside check-jsonschema, so this runs offline).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

import quantbook

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def test_one_version_everywhere():
    version = quantbook.__version__
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    footer = CONFIG["html"]["extra_footer"]
    assert pyproject["project"]["version"] == version
    assert str(citation["version"]) == version
    assert newest and newest.group(1) == version
    assert f"Quantbook {version}" in footer


def test_licences_are_stated():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert "CC BY 4.0" in (ROOT / "LICENSE-TEXT.md").read_text(encoding="utf-8")
    footer = CONFIG["html"]["extra_footer"]
    assert "CC BY 4.0" in footer and "MIT" in footer
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))["license"] == "MIT"


def test_favicon_is_configured_and_exists():
    assert (ROOT / CONFIG["html"]["favicon"]).is_file()


def test_workflows_run_only_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = set()
    for path in WORKFLOWS:
        flow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for job in flow["jobs"].values():
            commands |= {s["run"] for s in job.get("steps", []) if "run" in s
                         and s["run"].startswith("make")}
    assert commands == {"make test", "make book"}
    assert all(command in readme for command in commands)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid(path):
    result = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows",
                             str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows",
                             str(broken)], capture_output=True, text=True)
    assert result.returncode != 0
