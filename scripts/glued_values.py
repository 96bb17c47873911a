"""Print every value the book glues, as JSON: {"notebook:name": text}, from a built book.

A refactor that must not change the book (issue "one house") compares two builds::

    .venv/bin/python scripts/glued_values.py > before.json    # after `make book`
    ... change ...
    .venv/bin/python scripts/glued_values.py > after.json
    diff before.json after.json                                 # timings aside: nothing

myst-nb writes each executed notebook's glued values beside it as ``NAME.glue.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def glued_values(executed: Path) -> dict[str, str]:
    """Every glued value under ``executed`` (a build's jupyter_execute folder), as plain text."""
    values = {}
    for path in sorted(executed.rglob("*.glue.json")):
        notebook = path.name.removesuffix(".glue.json")
        for name, output in json.loads(path.read_text(encoding="utf-8")).items():
            data = output.get("data", output) if isinstance(output, dict) else output
            text = data.get("text/plain") if isinstance(data, dict) else data
            values[f"{notebook}:{name}"] = text
    return values


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "jupyter_execute"
    json.dump(glued_values(folder), sys.stdout, indent=1, sort_keys=True)
    print()
