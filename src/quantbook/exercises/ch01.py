"""Self-checks for chapter 1, *Numbers, bits and why we quantize*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool.
"""

from __future__ import annotations

from quantbook.exercises._grading import check, close, grade, read_number

__all__ = ["check_float16_spacing", "check_e4m3_max", "check_model_memory_gb"]


@check
def check_float16_spacing(answer):
    """Exercise: the gap between 1000.0 and the next larger float16.

    1000 lies in the binade [2^9, 2^10); float16 has 10 mantissa bits, so the spacing there is
    2^(9 - 10) = 0.5.
    """
    return grade(read_number(answer), 0.5, "Between 512 and 1024 float16 can only count in "
                                           "halves.", [
        (2.0**-10, "2^-10 is the spacing at 1.0 (machine epsilon). The spacing grows with the "
                   "exponent: scale it by the power of two at or below 1000."),
        (1000 * 2.0**-10, "Close, but the spacing is the same for every number in a binade "
                          "[2^e, 2^(e+1)): multiply epsilon by 2^e = 512, not by 1000."),
        (1024 * 2.0**-10, "1024 is the power of two above 1000; 1000 lies in [512, 1024), so use "
                          "2^9 = 512."),
        (4.0, "4 is the spacing in bfloat16 (7 mantissa bits); float16 has 10 mantissa bits."),
        (2.0**9 * 2.0**-23, "That is the float32 spacing (23 mantissa bits); float16 has 10."),
        (0.25, "One binade too low: 1000 is in [2^9, 2^10), so the spacing is 2^(9-10)."),
        (1.0, "One binade too high: 1000 is in [2^9, 2^10), so the spacing is 2^(9-10)."),
    ], "Not quite. Write 1000 as 2^e times a mantissa in [1, 2); with m = 10 mantissa bits the "
       "gap to the next float is 2^(e - m).", same=close(rel=1e-3, abs=1e-12))


@check
def check_e4m3_max(answer):
    """Exercise: the largest finite float8 e4m3fn value, from its bit fields.

    e4m3fn has no infinities: only S.1111.111 is NaN, so exponent field 1111 is usable and the
    largest mantissa there is 110. With bias 7: 2^(15 - 7) * (1 + 6/8) = 448.
    """
    return grade(read_number(answer), 448.0, "0.1111.110 = 2^8 x 1.75 = 448.", [
        (480.0, "1.111 x 2^8 = 480 would need the bit pattern S.1111.111, which e4m3fn reserves "
                "for NaN. Take the next mantissa down."),
        (240.0, "That is the IEEE-style answer, where exponent 1111 means inf/NaN. e4m3fn ('fn' = "
                "finite, no inf) keeps exponent 1111 for numbers; only mantissa 111 there is NaN."),
        (464.0, "464 is the rounding boundary (halfway between 448 and the missing 480): "
                "ml_dtypes rounds values up to 464 down to the largest finite value. Which value?"),
        (256.0, "2^8 is right for the exponent, but the mantissa adds 1 + m/8 on top of it."),
        (57344.0, "57344 is the largest float8 e5m2 (5 exponent bits, 2 mantissa bits)."),
        (512.0, "The exponent is 15 - bias = 15 - 7 = 8, and the mantissa is below 2."),
        (896.0, "Check the bias: for 4 exponent bits it is 2^(4-1) - 1 = 7."),
        (224.0, "Check the bias: for 4 exponent bits it is 2^(4-1) - 1 = 7, so 2^(15-7) = 2^8."),
    ], "Not quite. Write the value as 2^(E - 7) x (1 + M/8) with the largest exponent field E "
       "and mantissa field M that are not NaN.", same=close(rel=1e-6, abs=1e-12))


#: The model and format of the memory exercise.
MEMORY_PARAMS = 7_000_000_000
MEMORY_GROUP = 32
MEMORY_SCALE_BITS = 16


@check
def check_model_memory_gb(answer):
    """Exercise: GB (10^9 bytes) for 7e9 int4 weights with one float16 scale per 32 weights.

    Bits per weight: 4 + 16/32 = 4.5; bytes = 7e9 * 4.5 / 8 = 3.9375e9, i.e. 3.9375 GB.
    """
    value = read_number(answer)
    n, g, s = MEMORY_PARAMS, MEMORY_GROUP, MEMORY_SCALE_BITS
    right_bits = 4 + s / g
    right_gb = n * right_bits / 8 / 1e9
    return grade(value, right_gb, f"{right_bits:g} bits per weight: {right_gb:g} GB, against "
                                  f"{n * 4 / 1e9:g} GB in float32.", [
        (n * 4 / 8 / 1e9, "That is the int4 codes alone. Add the scales: one 16-bit scale per 32 "
                          "weights costs 16/32 = 0.5 bit per weight."),
        (n * right_bits / 1e9, "You counted bits, not bytes: divide by 8."),
        (n * 4 / 1e9, f"{n * 4 / 1e9:g} GB is 4 bytes per weight, the float32 size. An "
                      "int4 code is 4 bits, half a byte (and the scales come on top)."),
        (n * right_bits / 8 / 2**30, "You divided by 2^30 (GiB). The exercise asks for GB = 10^9 "
                                     "bytes."),
        (n * right_bits / 8, "That is the number of bytes; give it in GB (divide by 10^9)."),
        (n * (4 + s) / 8 / 1e9, "Each scale is shared by 32 weights: add 16/32 bit per weight, "
                                "not 16."),
        (n * (4 + s / g * 2) / 8 / 1e9, "Only the scale is stored per group here (16 bits), "
                                        "no zero point."),
    ], "Not quite. Count bits per weight (4 for the code + the scale's bits shared by its "
       "group), multiply by the number of weights, divide by 8 for bytes and by 10^9 for GB.",
        same=close(rel=1e-3, abs=1e-12))
