"""Self-checks for chapter 6, *Embedding quantization and dequantization*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool; a wrong
answer (or a function that crashes) never raises.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook.exercises._grading import (
    Verdict,
    call_student,
    check,
    correct,
    grade,
    read_function,
    read_number,
)

__all__ = ["check_uint8_code", "check_sign_unpacker", "check_binary_index_megabytes"]

# the seed's ubinary code of its 18-dimensional embedding, and the signs it encodes
SEED_UBINARY = [51, 99, 128]
SEED_SIGNS = [-1, -1, 1, 1, -1, -1, 1, 1, -1, 1, 1, -1, -1, -1, 1, 1, 1, -1]


@check
def check_uint8_code(answer):
    """Exercise: the fixed-range uint8 code of x = 0.25.

    q = rint(127.5 · (0.25 + 1)) = rint(159.375) = 159.
    """
    return grade(read_number(answer), 159, "127.5·1.25 = 159.375, which rounds to 159; it comes "
                                           f"back as 159/127.5 − 1 = {159 / 127.5 - 1:.6f}.", {
        160: "160 is the int8 code rint(127·0.25) = 32 shifted by 128. The uint8 scheme is its "
        "own grid: q = rint(127.5·(x + 1)).",
        32: "32 is the int8 code rint(127·0.25). For uint8, shift x into [0, 2] first: "
        "q = rint(127.5·(x + 1)).",
        31: "31 is 127·0.25 truncated, and the int8 scheme. For uint8: q = rint(127.5·(x + 1)).",
        191: "Check the formula: q = rint(127.5·(x + 1)), with x = 0.25.",
        (lambda v: math.isclose(v, 159.375)): "That is 127.5·(x + 1) before rounding: a code "
                                              "must be an integer, round it.",
    }, "Not quite. Fixed range [−1, 1] onto 0..255: q = rint(127.5·(x + 1)).")


def _reference_unpack(codes, dim) -> np.ndarray:
    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=-1)[..., :dim]
    return bits.astype(np.float32) * 2 - 1


def _grade_unpack(unpack, codes, dim) -> Verdict:
    """The verdict on ``unpack(codes, dim)`` for one case of :func:`check_sign_unpacker`."""
    expected = _reference_unpack(codes, dim)
    got = call_student(lambda: np.asarray(unpack(np.array(codes, dtype=np.uint8), dim),
                                          dtype=np.float64),
                       context=f" (called with codes={codes}, dim={dim}).")
    little = np.unpackbits(np.array(codes, np.uint8), bitorder="little")[:dim] * 2.0 - 1
    return grade(got, expected, "", [
        (lambda g: g.shape != expected.shape and g.size == 8 * len(codes),
         f"You returned {got.size} values: keep only the first dim = {dim} bits (the rest are "
         "padding)."),
        (lambda g: g.shape != expected.shape, f"Expected {dim} values, got shape {got.shape}."),
        (lambda g: (g == 255).any(), "There is a 255: bits * 2 - 1 was computed in uint8, where "
                                     "0 - 1 wraps around to 255. Convert the bits to float (or a "
                                     "signed type) before subtracting."),
        (lambda g: set(np.unique(g)) <= {0.0, 1.0},
         "Those are the raw bits 0/1. Map them to ±1: 2·b − 1."),
        (lambda g: not np.array_equal(little, expected) and np.array_equal(g, little),
         "The bit order is reversed: np.packbits puts the first value in the most significant "
         "bit (bitorder='big')."),
    ], f"Not quite: for codes={codes}, dim={dim} expected {expected.tolist()}, got "
       f"{got.tolist()}.", same=np.array_equal)


@check
def check_sign_unpacker(answer):
    """Exercise: a function ``unpack(codes, dim)`` from ubinary bytes to ±1.0 floats.

    It must give the seed's signs for ``unpack([51, 99, 128], 18)`` (no 255!) and work for other
    lengths, e.g. 11 dimensions in 2 bytes.
    """
    unpack = read_function(answer, placeholder="Replace the placeholder with your function, e.g. "
                                               "answer = unpack, then run again.",
                           not_callable="answer should be a function unpack(codes, dim); got "
                                        "{type}.")
    rng = np.random.default_rng(6)
    cases = [
        (SEED_UBINARY, 18),
        (rng.integers(0, 256, 2).tolist(), 11),
        (rng.integers(0, 256, 5).tolist(), 40),
    ]
    for codes, dim in cases:
        verdict = _grade_unpack(unpack, codes, dim)
        if not verdict.passed:
            return verdict
    return correct("np.unpackbits(codes)[:dim] gives the bits, and 2·b − 1 computed in float "
                   "gives ±1 with no wrap-around.")


@check
def check_binary_index_megabytes(answer):
    """Exercise: megabytes (10⁶ bytes) of 1,000,000 binary embeddings of 1,024 dimensions.

    1024 bits = 128 bytes per vector, × 10⁶ vectors = 128 MB (float32 would be 4,096 MB).
    """
    return grade(read_number(answer), 128, "1,024 bits = 128 bytes per vector, 128 MB for a "
                                           "million: 32x less than the 4,096 MB of float32.", [
        (4096, "4,096 MB is the float32 index (4 bytes per dimension). Binary keeps 1 bit."),
        (1024, "1,024 MB is int8 (1 byte per dimension). Binary keeps 1 bit per dimension."),
        (128e6 / 2**20, "That is in MiB (2²⁰ bytes). The question asks for MB = 10⁶ bytes."),
        (128e6, "That is in bytes. Divide by 10⁶ for MB."),
        (8192, "1,024 bits make 1,024 / 8 bytes, not 1,024 · 8."),
    ], "Not quite. One bit per dimension: 1,024 / 8 bytes per vector, times 10⁶ vectors.",
        same=lambda value, target: math.isclose(value, target, rel_tol=1e-9 if target == 128
                                                else 1e-3))
