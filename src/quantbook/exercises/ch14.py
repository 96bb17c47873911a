"""Self-checks for chapter 14, *Does it get faster?*

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running. Every input an exercise needs is
stated on the page and here (the machine numbers are fixed, not measured, so the answers do not
depend on the reader's CPU).
"""

from __future__ import annotations

import math

from quantbook.exercises._grading import check, close, grade, read_number, read_pair

__all__ = [
    "LAYER",
    "MACHINE",
    "check_intensity",
    "check_roofline_time",
    "check_ridge_batch",
    "check_matmulnbits_bytes",
    "check_decode_byte",
]

# MiniLM's intermediate.dense: K = 384 inputs, N = 1536 outputs.
LAYER = {"k": 384, "n": 1536}
# The made-up machine of the roofline exercises: 20 GB/s, 200 G operations per second.
MACHINE = {"bandwidth": 20e9, "peak": 200e9}
# The MatMulNBits exercise: blocks of 32, float32 scales, packed 4-bit zero points.
NBITS = {"block_size": 32, "scale_bytes": 4}
# The decode exercise: one byte, its block's scale and zero point.
DECODE = {"byte": 0xB4, "scale": 0.1, "zero_point": 8}


#: Right or a known slip: within 1% (relative).
_SAME = close(rel=0.01)


@check
def check_intensity(answer):
    """Exercise: operations per byte of a float32 384 x 1536 layer at batch 1, weights only.

    2KN operations over 4KN bytes = 0.5.
    """
    return grade(read_number(answer, "operations per byte"), 0.5,
                 "2KN operations over 4KN bytes: 0.5 operation per byte, whatever the shape. "
                 "Every weight is read once for one multiply and one add.", {
        2.0: "That is the intensity of int8 weights (1 byte each). float32 takes 4 bytes.",
        0.25: "Count two operations per weight (a multiply and an add), not one.",
        4.0: "Operations per byte: divide the operations (2KN) by the bytes (4KN).",
        1.0: "That would be 2 bytes per weight (float16). float32 takes 4.",
    }, "Not quite. Operations: 2 * K * N (a multiply and an add per weight). Bytes: 4 * K * N "
       "(float32). Divide.", same=_SAME)


@check
def check_roofline_time(answer):
    """Exercise: roofline time in µs of the int8 layer at batch 1 on 20 GB/s and 200 Gop/s.

    Bytes 384 * 1536 = 589,824: 29.49 µs of memory; 2 * 589,824 operations: 5.90 µs of
    arithmetic. The maximum: 29.49 µs.
    """
    nbytes = LAYER["k"] * LAYER["n"]
    memory = nbytes / MACHINE["bandwidth"] * 1e6
    compute = 2 * nbytes / MACHINE["peak"] * 1e6
    units = "Give the answer in microseconds (1 s = 1,000,000 µs)."
    return grade(read_number(answer, "a time in microseconds"), memory,
                 f"Memory: {memory:.2f} µs, arithmetic: {compute:.2f} µs; the slower one sets the "
                 "time, so the layer is memory-bound.", [
        (compute, "That is the arithmetic time. The roofline takes the larger of the arithmetic "
                  "and the memory time."),
        (memory * 4, "That is the float32 layer (4 bytes per weight). int8 weights take 1 byte."),
        (memory / 1e6, units),
        (memory * 1e-3, units),
        (memory + compute, "The roofline takes the maximum of the two times, not their sum."),
    ], "Not quite. Memory time = bytes / B with 384 * 1536 bytes; arithmetic time = "
       "2 * 384 * 1536 / P. The larger one is the roofline's time.", same=_SAME)


@check
def check_ridge_batch(answer):
    """Exercise: smallest batch at which a float32 layer is compute-bound; P/B = 10, I = 2b/4.

    2b / 4 >= 10 gives b = 20.
    """
    ridge = MACHINE["peak"] / MACHINE["bandwidth"]
    expected = math.ceil(ridge * 4 / 2)
    return grade(read_number(answer, "a batch size"), expected,
                 f"The ridge point is P/B = {ridge:.0f} operations per byte, and 2b/4 >= "
                 f"{ridge:.0f} from b = {expected}. int8 weights would get there at b = 5.", {
        10: "10 is the ridge point in operations per byte. Solve 2b/4 >= 10 for b.",
        5: "That is the batch for int8 weights (I = 2b). float32 weights take 4 bytes: I = 2b/4.",
        40: "Two operations per weight and batch element: I = 2b/4, not b/4.",
    }, "Not quite. The ridge point is P/B; find the smallest b with 2b/4 >= P/B.")


@check
def check_matmulnbits_bytes(answer):
    """Exercise: bytes of MatMulNBits for K = 384, N = 1536, blocks of 32.

    B: 1536 * 12 * 16 = 294,912; scales: 1536 * 12 * 4 = 73,728; zero points: 1536 * 6 = 9,216.
    Total 377,856 bytes, 5.125 bits per weight.
    """
    k, n, g = LAYER["k"], LAYER["n"], NBITS["block_size"]
    blocks = n * (k // g)
    codes = k * n // 2
    scales = blocks * NBITS["scale_bytes"]
    zps = n * math.ceil(k // g / 2)
    expected = codes + scales + zps
    return grade(read_number(answer, "a number of bytes"), expected,
                 f"{codes:,} + {scales:,} + {zps:,} = {expected:,} bytes, "
                 f"{expected * 8 / (k * n)} bits per weight.", {
        codes: "That is B alone. Add one float32 scale per block and the packed zero points.",
        codes + scales: "Add the zero points: one 4-bit code per block, two per byte.",
        codes + scales + blocks: "The zero points are 4-bit codes packed two per byte, not one "
                                 "byte each.",
        codes + blocks * 2 + zps: "MatMulNBits stores float32 scales here (4 bytes), not float16.",
        k * n + scales + zps: "int4 codes are packed two per byte.",
    }, "Not quite. Count B (two codes per byte), the scales (one float32 per block of 32) and "
       "the zero points (one 4-bit code per block, two per byte).")


@check
def check_decode_byte(answer):
    """Exercise: the byte 0xB4 with S = 0.1, Z = 8: low nibble first gives (-0.4, 0.3)."""
    pair = read_pair(answer, "(w0, w1)", "a pair of two numbers (w0, w1)", float)
    byte, s, z = DECODE["byte"], DECODE["scale"], DECODE["zero_point"]
    low, high = byte & 15, byte >> 4
    expected = (s * (low - z), s * (high - z))
    return grade(pair, expected, f"0x{byte:X}: low nibble {low}, high nibble {high}; "
                                 f"{s} * ({low} - {z}) = {expected[0]:.1f} and "
                                 f"{s} * ({high} - {z}) = {expected[1]:.1f}.", [
        (expected[::-1], "Right values, wrong order: MatMulNBits puts the first value in the LOW "
                         "nibble (bits 0-3)."),
        ((s * low, s * high), "Subtract the zero point before scaling: w = S * (q - Z)."),
        ((low, high), "Those are the codes. Decode them: w = S * (q - Z)."),
    ], "Not quite. Split the byte into its low nibble (byte & 15) and high nibble (byte >> 4); "
       "the low one is the first value; then w = S * (q - Z).",
        same=lambda a, b: all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True)))
