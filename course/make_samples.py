"""Write the sample submissions that tests/test_course_grading.py grades (maintainers only).

    .venv/bin/python scripts/make_answer_key.py     # the keys and student notebooks first
    .venv/bin/python course/make_samples.py         # course/lab/samples, course/homework/samples

Each sample is the key or the student notebook of ``_build/course/<name>/`` with a student id and
typical changes. Their expected scores are in ``expected.json`` beside them; after changing a
source notebook, regenerate the samples, grade them (``course/grade.py``) and check each score
by hand before updating ``expected.json``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parent.parent


def with_id(nb, sid):
    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if c.cell_type == "code" and c.source.startswith("STUDENT_ID ="):
            c.source = f'STUDENT_ID = "{sid}"  # your student id, between the quotes'
    return nb


def replace(nb, old, new):
    for c in nb.cells:
        if c.cell_type == "code" and old in c.source:
            c.source = c.source.replace(old, new)
            return nb
    raise KeyError(old)


def write(samples: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, nb in samples.items():
        for c in nb.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
        nbf.write(nb, out / f"{name}.ipynb")


def lab_samples() -> dict:
    key = nbf.read(ROOT / "_build/course/lab/key.ipynb", as_version=4)
    student = nbf.read(ROOT / "_build/course/lab/student.ipynb", as_version=4)
    samples = {"correct": with_id(key, "ada@example.edu")}
    samples["blank"] = with_id(student, "blank@example.edu")
    nb = with_id(key, "cy@example.edu")
    for old, new in [
        ("zero_point = int(np.round(-128 - alpha / scale))", "zero_point = int(-128 - alpha / scale)  # truncates"),
        ("return np.clip(np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point, 0, 255).astype(np.uint8)",
         "return (np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point).astype(np.int64).astype(np.uint8)  # no clip: wraps"),
        ("x_hat = L.t3_scale * (L.t4_codes.astype(np.int32) - L.t3_zero_point)", "x_hat = L.t3_scale * (L.t4_codes - L.t3_zero_point)  # uint8 wraps"),
        ("x_min = float(np.percentile(calibration, 0.1))", "x_min = float(np.percentile(test, 0.1))  # the test batch"),
        ("x_max = float(np.percentile(calibration, 99.9))", "x_max = float(np.percentile(test, 99.9))"),
        ("packed = [(nibbles[i] << 4) | nibbles[i + 1]", "packed = [nibbles[i] | (nibbles[i + 1] << 4)"),
        ("codes_a = np.packbits(a > 0)", "codes_a = np.packbits(a >= 0)  # zero counted as positive"),
        ("acc = qa.astype(np.int32) @ qw.astype(np.int32)", "acc = (qa @ qw).astype(np.int32)  # int8 products wrap"),
    ]:
        replace(nb, old, new)
    samples["typical_slips"] = nb
    nb = with_id(key, "bob@example.edu")
    replace(nb, 'L = lab.inputs(STUDENT_ID)', 'L = lab.inputs("ada@example.edu")  # a friend\'s inputs and answers')
    samples["friends_answers"] = nb
    nb = with_id(key, "dee@example.edu")
    nb.cells.append(nbf.v4.new_markdown_cell("Some notes of mine after the last task."))
    nb.cells.append(nbf.v4.new_code_cell('grader = None\nprint("Total: 20 / 20")'))
    samples["cells_appended"] = nb
    nb = with_id(key, "eve@example.edu")
    replace(nb, "groups = w.astype(np.float64).reshape(8, 2, 32)", "groups = w.astype(np.float64).reshape(8, 3, 32)  # raises")
    samples["error_in_task5"] = nb
    return samples


def hw3_samples() -> dict:
    key = nbf.read(ROOT / "_build/course/hw3/key.ipynb", as_version=4)
    student = nbf.read(ROOT / "_build/course/hw3/student.ipynb", as_version=4)
    s = {"correct": with_id(key, "ada@example.edu"), "blank": with_id(student, "blank@example.edu")}
    nb = with_id(key, "cy@example.edu")
    replace(nb, "2.0 ** (H.h1_scale_byte - 127)  # SOLUTION", "2.0 ** H.h1_scale_byte  # the bias forgotten")
    replace(nb, "s = np.sqrt(np.abs(X).max(axis=0) / np.abs(W).max(axis=1))", "s = np.sqrt(np.abs(X).max(axis=1)[:8] / np.abs(W).max(axis=1))  # max over channels")
    replace(nb, "mask = (x4 >= np.float32(-8 * s4)) & (x4 <= np.float32(7 * s4))", "mask = (x4 > np.float32(-8 * s4)) & (x4 < np.float32(7 * s4))  # ends excluded")
    s["typical_slips"] = nb
    return s


if __name__ == "__main__":
    write(lab_samples(), ROOT / "course" / "lab" / "samples")
    write(hw3_samples(), ROOT / "course" / "homework" / "samples")
