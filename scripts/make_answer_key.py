"""Write the instructor's answer key of the graded lab.

The student notebook, ``notebooks/lab_quantization.ipynb``, is the only source of the lab's
text; it holds no answers. The solutions live here, in :data:`SOLUTIONS`: one code cell per task.
This script copies the student notebook, replaces each task's answer cell (the cell that calls
``lab.check_taskN(...)``) by its solution, adds a banner, and writes the key outside the
repository's ``notebooks/`` folder::

    .venv/bin/python scripts/make_answer_key.py           # _build/course/lab_quantization_key.ipynb
    .venv/bin/python scripts/make_answer_key.py --execute # the same, run: every check prints
                                                          # "Correct!", the score is 15 / 15

An instructor distributes only the student notebook (or the website's lab page); the key stays
with the instructor. The solutions are in this public repository, so a graded lab should be
re-seeded or re-worded by a course that needs secrecy (see book/course/instructor-guide.md).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
STUDENT = ROOT / "notebooks" / "lab_quantization.ipynb"
KEY = ROOT / "_build" / "course" / "lab_quantization_key.ipynb"

BANNER = """\
```{admonition} Answer key: for instructors only
:class: warning
This is the answer key of the graded lab, written by `scripts/make_answer_key.py` from the
student notebook and the solutions kept in that script. Do not hand it out: students get
`notebooks/lab_quantization.ipynb`.
```"""

#: Task number -> the code that replaces the student's answer cell. Each solution ends with the
#: same check call as the student's cell, so running the key prints every check's verdict.
SOLUTIONS: dict[int, str] = {
    1: """\
qmin, qmax = -128, 127
scale = (beta - alpha) / (qmax - qmin)             # real units per integer step
zero_point = int(np.rint(qmin - alpha / scale))    # round, never truncate with int()
answer = (scale, zero_point)
lab.check_task1(answer)""",
    2: '''\
def quantize_uint8(x, scale, zero_point):
    """The uint8 codes of the NumPy array x."""
    q = np.rint(x / scale) + zero_point           # round half to even, then shift
    return np.clip(q, 0, 255).astype(np.uint8)    # clamp before the cast: astype wraps


lab.check_task2(quantize_uint8)''',
    3: """\
# Subtract in a signed type: in uint8, 0 - 20 would wrap around to 236.
answer = scale * (codes.astype(np.int32) - zero_point)
lab.check_task3(answer)""",
    4: """\
groups = w.reshape(w.shape[0], -1, group_size)            # (8, 2, 32): one group per last axis
qmax = 2 ** (bits - 1) - 1                                # 7: the restricted range [-7, 7]
group_scales = np.abs(groups).max(axis=-1, keepdims=True) / qmax
q = np.clip(np.rint(groups / group_scales), -qmax, qmax)
w_hat = (q * group_scales).reshape(w.shape)
answer = float(np.mean((w - w_hat) ** 2))
lab.check_task4(answer)""",
    5: """\
# The calibration batch chooses the range; the test batch only measures it.
x_min, x_max = np.percentile(calibration, [0.1, 99.9])
answer = (x_min, x_max)
lab.check_task5(answer)""",
    6: """\
nibbles = [v & 0xF for v in values]                # two's complement: -2 -> 14 (1110)
if len(nibbles) % 2:
    nibbles.append(0)                              # pad after the last value
answer = [(nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2)]
lab.check_task6(answer)""",
    7: """\
d = block[:2].view("<f2")[0]                       # float16 scale, little-endian
q = block[2:].view(np.int8)                        # 32 signed codes
answer = np.float32(d) * q.astype(np.float32)
lab.check_task7(answer)""",
    8: """\
codes_a = np.packbits(a > 0)                       # zero is negative; first value in the top bit
codes_b = np.packbits(b > 0)
distance = int(np.unpackbits(codes_a ^ codes_b).sum())
bits_a = np.unpackbits(codes_a)[: a.size]          # drop the 4 padding bits
signs_a = bits_a.astype(np.float32) * 2 - 1        # float first: in uint8, 0*2 - 1 is 255
answer = (codes_a, distance, signs_a)
lab.check_task8(answer)""",
}


def task_of(cell) -> int | None:
    """The task whose answer cell this is (it calls ``lab.check_taskN``), else None."""
    if cell.cell_type != "code":
        return None
    found = set(re.findall(r"\blab\.check_task(\d+)\(", cell.source))
    if len(found) > 1:
        raise ValueError(f"a cell calls several checks {sorted(found)}: split it")
    return int(found.pop()) if found else None


def make_key(student: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The answer key: the student notebook with every answer cell replaced by its solution."""
    key = copy.deepcopy(student)
    replaced = []
    for cell in key.cells:
        task = task_of(cell)
        if task is None:
            continue
        if task not in SOLUTIONS:
            raise KeyError(f"no solution for task {task}: add it to SOLUTIONS")
        cell.source = SOLUTIONS[task]
        cell.outputs, cell.execution_count = [], None
        replaced.append(task)
    if sorted(replaced) != sorted(SOLUTIONS):
        raise ValueError(f"answer cells found for tasks {sorted(replaced)}, solutions exist for "
                         f"{sorted(SOLUTIONS)}: each task needs exactly one answer cell")
    title = next(i for i, c in enumerate(key.cells) if c.cell_type == "markdown")
    key.cells[title].source = key.cells[title].source.replace(
        "# Lab: quantization by hand", "# Lab: quantization by hand (answer key)", 1)
    banner = nbformat.v4.new_markdown_cell(BANNER)
    banner.id = "answer-key-banner"
    key.cells.insert(title + 1, banner)
    return key


def execute(nb: nbformat.NotebookNode, timeout: int = 300) -> nbformat.NotebookNode:
    """Run ``nb`` in a fresh kernel inside an empty temporary folder."""
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as folder:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": folder}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, default=STUDENT, help="the student notebook")
    parser.add_argument("--output", type=Path, default=KEY, help="where to write the key")
    parser.add_argument("--execute", action="store_true",
                        help="run the key, so it shows each check's verdict and the score")
    args = parser.parse_args(argv)
    if args.output.resolve().parent == STUDENT.parent.resolve():
        parser.error("write the key outside notebooks/: students must not get it")
    key = make_key(nbformat.read(args.student, as_version=4))
    if args.execute:
        execute(key)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(key, args.output)
    print(f"Answer key written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
