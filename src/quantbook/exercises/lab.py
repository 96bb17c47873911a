"""The graded lab's inputs, one variant per student: no answers, no checks.

The lab (``notebooks/lab_quantization.ipynb``) is graded by Otter-Grader. Its source notebook,
with the solutions and the hidden tests, lives outside the package and the website
(``course/lab/lab_source.ipynb``); ``otter assign`` makes the student notebook from it. This
module only gives every student their own numbers: :func:`inputs` derives each task's input
from a student id, so one shared answer sheet does not solve the class, and the hidden tests
recompute the key for the id that the submitted notebook carries.

What is here is what the student notebook prints anyway. Nothing here computes an answer.

=====  =====================================================  ======  =======
task   skill                                                  points  chapter
=====  =====================================================  ======  =======
1      the gap of float16 and the memory of a model in int4    2       1
2      scale and zero point of a range (signed int8)           2       2
3      quantize to uint8 in NumPy (round, shift, clamp)        2       2
4      dequantize uint8 codes (without uint8 wrap-around)      1       2
5      symmetric int4, one scale per group of 32: the MSE      2       3, 4
6      calibrate an activation range (99.9th percentile)       1       4
7      pack signed int4 values, high-first nibble order        1       5
8      decode a GGUF Q8_0 block from its bytes                 2       5
9      decode a GGUF Q4_0 block from its bytes                 2       5
10     binary embeddings: codes, Hamming distance, signs       3       6
11     integer matmul: int32 accumulators and the rescale      2       7
=====  =====================================================  ======  =======
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from quantbook import formats

__all__ = ["TASKS", "TOTAL_POINTS", "Task", "inputs", "homework3_inputs", "seed_of", "public_tests"]


class Task(NamedTuple):
    title: str
    points: int
    chapters: str


TASKS = MappingProxyType({
    1: Task("Float16 spacing and model memory", 2, "1"),
    2: Task("Scale and zero point of a range", 2, "2"),
    3: Task("Quantize to uint8 in NumPy", 2, "2"),
    4: Task("Dequantize uint8 codes", 1, "2"),
    5: Task("Symmetric int4 per group: the MSE", 2, "3, 4"),
    6: Task("Calibrate an activation range", 1, "4"),
    7: Task("Pack int4, high-first", 1, "5"),
    8: Task("Decode a Q8_0 block", 2, "5"),
    9: Task("Decode a Q4_0 block", 2, "5"),
    10: Task("Binary embeddings and Hamming distance", 3, "6"),
    11: Task("Integer matmul and the rescale", 2, "7"),
})
TOTAL_POINTS = sum(task.points for task in TASKS.values())


def seed_of(student_id) -> int:
    """The seed of a student's variant: the first 8 bytes of SHA-256 of the id, as an integer.

    .. math::  \\text{seed} = \\operatorname{int}(\\operatorname{SHA256}(\\text{id})_{0..7})

    The id is a non-empty string (an email, a student number); surrounding spaces are ignored
    and case matters not, so ``" Ada@uni.edu"`` and ``"ada@uni.edu"`` get the same variant.
    """
    if not isinstance(student_id, str):
        raise TypeError(f"student_id must be a string (your id, in quotes), got {student_id!r}")
    key = student_id.strip().lower()
    if not key:
        raise ValueError("student_id must not be empty: write your id between the quotes")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def _readonly(a, dtype=None) -> np.ndarray:
    # Inputs are shared by the notebook and the tests: an in-place edit must not change them.
    a = np.array(a, dtype=dtype)
    a.flags.writeable = False
    return a


class LabInputs(NamedTuple):
    """Every numeric input of the lab for one student (read-only arrays)."""

    student_id: str
    t1_value: float           # task 1: a real number stored in float16
    t1_params: int            # task 1: parameters of a model (int4, float16 scale per 32)
    t2_range: tuple           # task 2: (alpha, beta) mapped onto signed int8
    t3_scale: float           # tasks 3, 4: scale and zero point of uint8 codes
    t3_zero_point: int
    t3_x: np.ndarray          # task 3: values to quantize
    t4_codes: np.ndarray      # task 4: uint8 codes to dequantize
    t5_weights: np.ndarray    # task 5: 8 x 64 weights with one outlier
    t6_calibration: np.ndarray  # task 6: ReLU activations, calibration batch
    t6_test: np.ndarray       # task 6: ReLU activations, test batch
    t7_values: tuple          # task 7: signed int4 values to pack
    t8_block: np.ndarray      # task 8: 34 bytes of a Q8_0 block
    t9_block: np.ndarray      # task 9: 18 bytes of a Q4_0 block
    t10_a: np.ndarray         # task 10: two 20-dimensional embeddings
    t10_b: np.ndarray
    t11_qa: np.ndarray        # task 11: int8 codes of activations (2 x 16), zero point 0
    t11_qw: np.ndarray        # task 11: int8 codes of weights (16 x 3), zero point 0
    t11_scales: tuple         # task 11: (S_a, S_w, S_out), output zero point 0


def _t2_range(rng) -> tuple[float, float]:
    # A range whose exact zero point is more than 1/2 away from its truncation toward zero:
    # int() and round() differ.
    while True:
        alpha = -round(float(rng.uniform(1.0, 6.0)), 1)
        beta = round(float(rng.uniform(0.5, 6.0)), 1)
        exact = -128 - alpha / ((beta - alpha) / 255)
        if 0.6 < abs(exact - np.trunc(exact)) < 0.95:
            return alpha, beta


def _relu_batch(rng, n: int, spikes) -> np.ndarray:
    x = np.maximum(rng.normal(0.5, 1.0, size=n), 0.0)
    x[rng.choice(n, size=len(spikes), replace=False)] = spikes  # rare, huge activations
    return x.astype(np.float32)


def inputs(student_id) -> LabInputs:
    """Every numeric input of the lab for ``student_id`` (see :func:`seed_of`).

    Two ids give different inputs (with overwhelming probability); one id always gives the
    same. Each input keeps the traps of the original lab: ties, a code below the zero point,
    an outlier, rare spikes, an odd count of nibbles, an exact zero in an embedding.
    """
    rng = np.random.default_rng(seed_of(student_id))

    t1_value = round(float(rng.uniform(300.0, 3000.0)), 1)
    t1_params = int(rng.integers(2, 40)) * 250_000_000

    t2_range = _t2_range(rng)

    scale = float(rng.choice([0.125, 0.25, 0.5]))
    zero_point = int(rng.integers(12, 40))
    # x / scale has ties of both parities, fractions of both signs, a value whose code is -1
    # (wraps to 255 in uint8), values far outside the range.
    steps = np.array([0.0, 1.2, -1.2, 1.8, -1.8, 2.5, -2.5, 7.5, -(zero_point + 1),
                      -2 * zero_point, 4 * 255, 255 - zero_point - 0.5])
    t3_x = _readonly(rng.permutation(steps) * scale)
    codes = [0, int(rng.integers(1, zero_point - 1)), zero_point - 1, zero_point,
             zero_point + 1, int(rng.integers(100, 200)), 255]
    t4_codes = _readonly(codes, np.uint8)

    w = rng.normal(0.0, 0.05, size=(8, 64)).astype(np.float32)
    w[rng.integers(8), rng.integers(64)] = np.float32(rng.uniform(0.7, 1.1))
    t5_weights = _readonly(w)

    spikes = rng.uniform(35.0, 45.0, size=5).round(1)
    t6_calibration = _readonly(_relu_batch(rng, 20_000, spikes))
    t6_test = _readonly(_relu_batch(rng, 5_000, []))

    values = rng.integers(-8, 8, size=7)
    values[rng.integers(7)] = -int(rng.integers(1, 9))  # at least one negative value
    t7_values = tuple(int(v) for v in values)

    t8_block = _readonly(formats.encode_q8_0(rng.normal(0.0, 0.02, size=32).astype(np.float32)))
    t9_block = _readonly(formats.encode_q4_0(rng.normal(0.0, 0.02, size=32).astype(np.float32)))

    a, b = rng.normal(size=(2, 20))
    zero_at = int(rng.integers(20))
    a[zero_at] = 0.0  # "x > 0" and "x >= 0" differ here
    b[zero_at] = -abs(b[zero_at]) - 0.1
    t10_a = _readonly((a / np.linalg.norm(a)).astype(np.float32))
    t10_b = _readonly((b / np.linalg.norm(b)).astype(np.float32))

    t11_qa = _readonly(rng.integers(-127, 128, size=(2, 16)), np.int8)
    t11_qw = _readonly(rng.integers(-127, 128, size=(16, 3)), np.int8)
    s_a = round(float(rng.uniform(0.01, 0.05)), 4)
    s_w = round(float(rng.uniform(0.002, 0.01)), 5)
    s_out = round(float(rng.uniform(0.03, 0.09)), 3)
    return LabInputs(student_id, t1_value, t1_params, t2_range, scale, zero_point, t3_x,
                     t4_codes, t5_weights, t6_calibration, t6_test, t7_values, t8_block,
                     t9_block, t10_a, t10_b, t11_qa, t11_qw, (s_a, s_w, s_out))


class Homework3Inputs(NamedTuple):
    """Every numeric input of the week-3 homework (Parts II and III) for one student."""

    student_id: str
    h1_scale_byte: int        # task 1: the E8M0 shared scale of an MXFP4 block (a byte)
    h1_nibbles: tuple         # task 1: eight FP4 (E2M1) codes of the block, 0..15
    h2_x: np.ndarray          # task 2: one NF4 block of 16 weights
    h3_x: np.ndarray          # task 3: activations, 16 tokens x 8 channels (one outlier channel)
    h3_w: np.ndarray          # task 3: weights, 8 input channels x 4 outputs
    h4_x: np.ndarray          # task 4: inputs of a fake-quantizer (int4, signed, zero point 0)
    h4_scale: float           # task 4: its scale


def homework3_inputs(student_id) -> Homework3Inputs:
    """Every numeric input of the week-3 homework for ``student_id`` (see :func:`seed_of`)."""
    rng = np.random.default_rng(seed_of(student_id) ^ 0x5EED_0003)
    h1_scale_byte = int(rng.integers(118, 131))
    nibbles = rng.integers(0, 16, size=8)
    nibbles[rng.integers(8)] = int(rng.integers(9, 16))  # at least one negative value
    h2_x = rng.normal(0.0, 0.02, size=16).astype(np.float32)
    x = rng.normal(0.0, 1.0, size=(16, 8))
    x[:, rng.integers(8)] *= rng.uniform(20.0, 60.0)  # the outlier channel
    w = rng.normal(0.0, 0.05, size=(8, 4))
    scale = round(float(rng.uniform(0.05, 0.2)), 3)
    # Inputs inside, outside and exactly at the ends of the range [-8 S, 7 S].
    h4 = np.concatenate([rng.uniform(-10, 9, size=8) * scale, [-8 * scale, 7 * scale]])
    return Homework3Inputs(student_id, h1_scale_byte, tuple(int(n) for n in nibbles),
                           _readonly(h2_x), _readonly(x.astype(np.float32)),
                           _readonly(w.astype(np.float32)),
                           _readonly(rng.permutation(h4).astype(np.float32)), scale)


def public_tests(assignment: str = "lab") -> Path:
    """The folder of an assignment's public tests (shape and type checks only, no answers).

    ``assignment`` is ``"lab"`` or ``"hw3"`` (the week-3 homework). ``otter assign`` writes the
    tests; they ship with the package so that ``grader.check`` works in Colab, where a notebook
    cannot find files next to itself.
    """
    if assignment not in ("lab", "hw3"):
        raise ValueError(f"assignment must be 'lab' or 'hw3', got {assignment!r}")
    return Path(str(resources.files("quantbook.exercises") / f"{assignment}_tests"))
