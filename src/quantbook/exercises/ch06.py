"""Self-checks for chapter 6, *Embedding quantization and dequantization*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool; a wrong
answer (or a function that crashes) never raises.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook.exercises._answers import read_number

__all__ = ["check_uint8_code", "check_sign_unpacker", "check_binary_index_megabytes"]

# the seed's ubinary code of its 18-dimensional embedding, and the signs it encodes
SEED_UBINARY = [51, 99, 128]
SEED_SIGNS = [-1, -1, 1, 1, -1, -1, 1, 1, -1, 1, 1, -1, -1, -1, 1, 1, 1, -1]


def check_uint8_code(answer) -> bool:
    """Exercise: the fixed-range uint8 code of x = 0.25.

    q = rint(127.5 · (0.25 + 1)) = rint(159.375) = 159.
    """
    value = read_number(answer)
    if value is None:
        return False
    hints = {
        159: None,
        160: "160 is the int8 code rint(127·0.25) = 32 shifted by 128. The uint8 scheme is its "
        "own grid: q = rint(127.5·(x + 1)).",
        32: "32 is the int8 code rint(127·0.25). For uint8, shift x into [0, 2] first: "
        "q = rint(127.5·(x + 1)).",
        31: "31 is 127·0.25 truncated, and the int8 scheme. For uint8: q = rint(127.5·(x + 1)).",
        191: "Check the formula: q = rint(127.5·(x + 1)), with x = 0.25.",
    }
    if value in hints:
        hint = hints[value]
        if hint is None:
            print("Correct! 127.5·1.25 = 159.375, which rounds to 159; it comes back as "
                  f"159/127.5 − 1 = {159 / 127.5 - 1:.6f}.")
            return True
        print(hint)
        return False
    if math.isclose(value, 159.375):
        print("That is 127.5·(x + 1) before rounding: a code must be an integer, round it.")
        return False
    print("Not quite. Fixed range [−1, 1] onto 0..255: q = rint(127.5·(x + 1)).")
    return False


def _reference_unpack(codes, dim) -> np.ndarray:
    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=-1)[..., :dim]
    return bits.astype(np.float32) * 2 - 1


def check_sign_unpacker(answer) -> bool:
    """Exercise: a function ``unpack(codes, dim)`` from ubinary bytes to ±1.0 floats.

    It must give the seed's signs for ``unpack([51, 99, 128], 18)`` (no 255!) and work for other
    lengths, e.g. 11 dimensions in 2 bytes.
    """
    if answer is None or answer is Ellipsis:
        print("Replace the placeholder with your function, e.g. answer = unpack, then run again.")
        return False
    if not callable(answer):
        print(f"answer should be a function unpack(codes, dim); got {type(answer).__name__}.")
        return False
    rng = np.random.default_rng(6)
    cases = [
        (SEED_UBINARY, 18),
        (rng.integers(0, 256, 2).tolist(), 11),
        (rng.integers(0, 256, 5).tolist(), 40),
    ]
    for codes, dim in cases:
        expected = _reference_unpack(codes, dim)
        try:
            got = np.asarray(answer(np.array(codes, dtype=np.uint8), dim), dtype=np.float64)
        except Exception as error:  # a student's function may fail in any way
            print(f"Your function raised {type(error).__name__}: {error} "
                  f"(called with codes={codes}, dim={dim}).")
            return False
        if got.shape != expected.shape:
            if got.size == 8 * len(codes):
                print(f"You returned {got.size} values: keep only the first dim = {dim} bits "
                      "(the rest are padding).")
            else:
                print(f"Expected {dim} values, got shape {got.shape}.")
            return False
        if (got == 255).any():
            print("There is a 255: bits * 2 - 1 was computed in uint8, where 0 - 1 wraps around "
                  "to 255. Convert the bits to float (or a signed type) before subtracting.")
            return False
        if set(np.unique(got)) <= {0.0, 1.0}:
            print("Those are the raw bits 0/1. Map them to ±1: 2·b − 1.")
            return False
        little = np.unpackbits(np.array(codes, np.uint8), bitorder="little")[:dim] * 2.0 - 1
        if not np.array_equal(little, expected) and np.array_equal(got, little):
            print("The bit order is reversed: np.packbits puts the first value in the most "
                  "significant bit (bitorder='big').")
            return False
        if not np.array_equal(got, expected):
            print(f"Not quite: for codes={codes}, dim={dim} expected {expected.tolist()}, "
                  f"got {got.tolist()}.")
            return False
    print("Correct! np.unpackbits(codes)[:dim] gives the bits, and 2·b − 1 computed in float "
          "gives ±1 with no wrap-around.")
    return True


def check_binary_index_megabytes(answer) -> bool:
    """Exercise: megabytes (10⁶ bytes) of 1,000,000 binary embeddings of 1,024 dimensions.

    1024 bits = 128 bytes per vector, × 10⁶ vectors = 128 MB (float32 would be 4,096 MB).
    """
    value = read_number(answer)
    if value is None:
        return False
    if math.isclose(value, 128):
        print("Correct! 1,024 bits = 128 bytes per vector, 128 MB for a million: 32x less than "
              "the 4,096 MB of float32.")
        return True
    hints = [
        (4096, "4,096 MB is the float32 index (4 bytes per dimension). Binary keeps 1 bit."),
        (1024, "1,024 MB is int8 (1 byte per dimension). Binary keeps 1 bit per dimension."),
        (128e6 / 2**20, "That is in MiB (2²⁰ bytes). The question asks for MB = 10⁶ bytes."),
        (128e6, "That is in bytes. Divide by 10⁶ for MB."),
        (8192, "1,024 bits make 1,024 / 8 bytes, not 1,024 · 8."),
    ]
    for target, hint in hints:
        if math.isclose(value, target, rel_tol=1e-3):
            print(hint)
            return False
    print("Not quite. One bit per dimension: 1,024 / 8 bytes per vector, times 10⁶ vectors.")
    return False
