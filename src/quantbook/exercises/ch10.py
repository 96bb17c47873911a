"""Self-checks for chapter 10, *Codebooks instead of grids*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import numpy as np

from quantbook.exercises._grading import check, close, grade, read_number, read_numbers

__all__ = [
    "IQ4_NL_EXERCISE_BLOCK",
    "check_nf4_code",
    "check_nf4_byte",
    "check_double_quant_bits",
    "check_iq4_nl_values",
    "check_uniform_kmeans",
    "check_kmeans_bytes",
]

# An IQ4_NL block: fp16 d = 0.5 (bytes 00 38, little-endian), then 16 bytes of nibbles of which
# only the first is not zero: 0x3C.
IQ4_NL_EXERCISE_BLOCK = (0x00, 0x38, 0x3C) + (0x00,) * 15


#: Right or a known slip: within 1e-6 (absolute).
_SAME = close(rel=0, abs=1e-6)


@check
def check_nf4_code(answer):
    """Exercise: the NF4 code (an index 0..15) of the normalised value 0.3.

    0.3 lies between levels 10 (0.2461) and 11 (0.3379); their midpoint is 0.2920 < 0.3: code 11.
    """
    def not_a_code(v):
        return not 0 <= v <= 15 or v != int(v)

    return grade(read_number(answer, "an integer code from 0 to 15"), 11,
                 "0.3 is past the midpoint 0.292 between 0.246 (code 10) and 0.338 (code 11), so "
                 "it is stored as 11 and comes back as 0.338·absmax.", [
        (lambda v: not_a_code(v) and 0 < v <= 1,
         "That looks like a level, not its code. Give the position (0..15) of the nearest level "
         "in the table."),
        (not_a_code, "An NF4 code is a whole number from 0 to 15: the position in the table."),
        (10, "Code 10 is the level just below (0.246). Compare 0.3 with the midpoint "
             "(0.246 + 0.338)/2, not with the level below."),
        (12, "Code 12 is 0.441, further away. Count the levels from code 0 = -1.0."),
        (7, "Code 7 is the level 0.0. Codes are positions in the sorted table, 0 = -1.0 to "
            "15 = 1.0; 0.3 is between codes 10 and 11."),
    ], "Not yet. Find the two levels around 0.3 and the midpoint between them.")


@check
def check_nf4_byte(answer):
    """Exercise: the byte bitsandbytes stores for the pair (-1.0, 0.5) in a block of absmax 1.

    Codes 0 (-1.0) and 12 (0.5 < midpoint 0.5017 of 0.4407 and 0.5626); first value high:
    0x0C = 12.
    """
    return grade(read_number(answer, "a byte value from 0 to 255"), 12,
                 "Codes 0 and 12; bitsandbytes puts the first value in the HIGH nibble: "
                 "0x0C = 12.", {
        192: "0xC0 is the low-first order (first value in the LOW nibble). bitsandbytes "
             "puts the FIRST value in the HIGH nibble.",
        13: "0.5 is just below the midpoint 0.5017 between 0.4407 (code 12) and 0.5626 "
            "(code 13): its code is 12.",
        208: "That is 0xD0: codes 13 and 0 in low-first order. Check both: 0.5 -> 12, and "
             "the first value goes in the high nibble.",
    }, "Not yet. Find each value's code (-1.0 -> 0), then byte = 16·first + second.")


@check
def check_double_quant_bits(answer):
    """Exercise: NF4 bits per weight with double quantization (blocks of 64, 256 absmax per
    second-level fp32 scale): 4 + 8/64 + 32/(64·256) = 4.126953125."""
    target = 4 + 8 / 64 + 32 / (64 * 256)
    return grade(read_number(answer, "bits per weight"), target,
                 f"4 + 8/64 + 32/16384 = {target:.4f} bits, against 4.5 with float32 absmax "
                 "values.", [
        (4.5, "4.5 is NF4 without double quantization (a float32 absmax per 64 weights)."),
        (target - 4, "That is the overhead alone; add the 4 bits of the code itself."),
        (4.125, "Close: you counted the 8-bit absmax codes but not the float32 scale that "
                "every 256 of them share (32 bits per 64·256 weights)."),
        (4 + 8 / 64 + 32 / 256, "The second-level float32 scale covers 256 blocks of 64 "
                                "weights, so divide its 32 bits by 64·256."),
    ], "Not yet. Per weight: 4 bits of code, 8 bits of absmax code per 64 weights, and 32 "
       "bits of second-level scale per 64·256 weights.", same=close(rel=0, abs=5e-4))


@check
def check_iq4_nl_values(answer):
    """Exercise: x[0] and x[16] of ``IQ4_NL_EXERCISE_BLOCK``.

    d = 0.5; byte 0x3C: low nibble 12 -> x[0] = 0.5·v[12] = 0.5·53 = 26.5; high nibble 3 ->
    x[16] = 0.5·v[3] = 0.5·(-65) = -32.5.
    """
    return grade(read_numbers(answer, 2, "two numbers: x[0] and x[16]"), (26.5, -32.5),
                 "The low nibble 12 is x[0] -> 0.5·53, the high nibble 3 is x[16] -> 0.5·(-65): "
                 "split order, and a table lookup instead of (q - 8)·d.", [
        ((-32.5, 26.5), "You swapped the nibbles. In GGUF's split order the LOW nibble of byte j "
                        "holds x[j] and the HIGH nibble x[j+16]."),
        ((2.0, -2.5), "That decodes the nibbles as Q4_0 would, d·(q - 8). IQ4_NL looks the "
                      "nibble up in its table: d·v[q]."),
        ((53, -65), "Those are the table values v[12] and v[3]; multiply by the scale d = 0.5."),
    ], "Not yet. d is the fp16 number in bytes 00 38 (little-endian: 0x3800 = 0.5). Split "
       "0x3C into its low and high nibble and look each up in IQ4_NL_VALUES.",
        same=lambda a, pair: all(_SAME(x, y) for x, y in zip(a, pair, strict=True)))


@check
def check_uniform_kmeans(answer):
    """Exercise: the 4-level k-means codebook of values spread uniformly over [-1, 1].

    Lloyd's conditions (each level the mean of its cell, cells split at midpoints) give the
    uniform grid of cell centres: [-0.75, -0.25, 0.25, 0.75].
    """
    a = np.sort(read_numbers(answer, 4, "four levels"))
    return grade(a, [-0.75, -0.25, 0.25, 0.75],
                 "On uniform data the best codebook IS a uniform grid, with the levels at the "
                 "centres of four equal cells: a codebook only wins when the data is not "
                 "uniform.", [
        ([-1, -1 / 3, 1 / 3, 1], "That grid puts levels on the ends, ±1. A value in [0.67, 1] "
                                 "is then always rounded to 1; the mean of that cell is not 1. "
                                 "Each level must be the mean of its cell."),
        (lambda a: np.allclose(a, [-1.51, -0.4528, 0.4528, 1.51], atol=0.05),
         "Those are the optimal levels for standard normal data (Lloyd-Max). The data here is "
         "uniform on [-1, 1]."),
    ], "Not yet. Split [-1, 1] into 4 cells; for the levels to be optimal each must be the "
       "mean of its cell and the cells must meet halfway between levels.",
        same=lambda a, levels: np.allclose(a, levels, atol=0.02))


@check
def check_kmeans_bytes(answer):
    """Exercise: bytes to store a 384 x 384 matrix with one 16-level float32 codebook.

    384·384·4 bits / 8 = 73,728 bytes of codes + 16·4 = 64 bytes of codebook = 73,792.
    """
    return grade(read_number(answer, "a number of bytes"), 73792,
                 "73,728 bytes of 4-bit codes plus 64 bytes of codebook: 4.0035 bits per "
                 "weight, against 32 for float32.", [
        (73728, "That counts the codes only: the 16 float32 codewords (64 bytes) are stored too."),
        (147456 + 64, "A 4-bit code is half a byte: 384·384 codes take 73,728 bytes."),
        (147456, "A 4-bit code is half a byte, and the codebook (64 bytes) is stored too."),
        (384 * 384 * 4 + 64, "That is bits of codes plus bytes of codebook: divide the code "
                             "bits by 8."),
        (73728 + 16, "Each codeword is a float32: 4 bytes, so 16 of them take 64 bytes."),
    ], "Not yet. Codes: 384·384 values × 4 bits; codebook: 16 float32 numbers.", same=_SAME)
