"""Self-checks for chapter 7, *A quantized model, end to end*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

from quantbook.exercises._grading import check, correct, grade, read_integer, read_pair

__all__ = [
    "GROUP_EXERCISE",
    "MULTIPLIER_EXERCISE",
    "check_group_bytes",
    "check_int16_overflow_terms",
    "check_fixed_point",
]

# The weight of a MiniLM feed-forward layer (intermediate.dense): 1536 rows (out), 384 columns
# (in), int4 codes in groups of 64 along each row, one float16 scale per group.
GROUP_EXERCISE = {"out_features": 1536, "in_features": 384, "bits": 4, "group_size": 64,
                  "scale_bytes": 2}
MULTIPLIER_EXERCISE = 0.3


@check
def check_group_bytes(answer):
    """Exercise: bytes of a 1536 x 384 weight at int4, groups of 64, float16 scales.

    codes: 1536 * 384 / 2 = 294,912 bytes; scales: 1536 * 384 / 64 = 9,216 of 2 bytes = 18,432;
    total 313,344 bytes (4.25 bits per weight).
    """
    value = read_integer(answer, "a number of bytes")
    e = GROUP_EXERCISE
    n = e["out_features"] * e["in_features"]
    codes = n * e["bits"] // 8
    n_scales = n // e["group_size"]
    expected = codes + e["scale_bytes"] * n_scales
    return grade(value, expected, f"{codes:,} bytes of packed codes + {n_scales:,} scales x 2 "
                                  f"bytes = {expected:,} bytes, {expected * 8 / n} bits per "
                                  "weight.", {
        codes: "That is the codes alone. Each group of 64 weights also stores its float16 "
               "scale: add 2 bytes per group.",
        codes + n_scales: "A float16 scale takes 2 bytes, not 1.",
        codes + 4 * n_scales: "The scales are float16 (2 bytes each), not float32.",
        n + e["scale_bytes"] * n_scales: "int4 codes are packed two per byte: the codes take "
                                         "half a byte per weight, not a whole one.",
        n: "That is one byte per weight (int8 without scales). int4 packs two codes per byte, "
           "and every group of 64 adds a 2-byte scale.",
        expected * 8: "That is the size in bits. Divide by 8 for bytes.",
        4 * n: "That is the float32 size of the matrix (4 bytes per weight).",
        codes + e["scale_bytes"] * e["out_features"]: "That is one scale per row (per channel). "
                                                      "With groups of 64 every row has "
                                                      "384 / 64 = 6 scales.",
    }, f"Not quite. Count the packed codes (4 bits per weight, {n:,} weights) and the scales "
       "(one per 64 weights, 2 bytes each) separately, then add.")


@check
def check_int16_overflow_terms(answer):
    """Exercise: how many worst-case products of restricted int8 codes (|q| <= 127) does it
    take before an int16 accumulator (max 32,767) can overflow? 2 * 127**2 = 32,258 still fits,
    3 * 127**2 = 48,387 does not: the answer is 3.
    """
    value = read_integer(answer, "a number of products")
    product = 127 * 127
    expected = 32767 // product + 1
    return grade(value, expected, f"One product can be 127 x 127 = {product:,}; two sum to "
                                  f"{2 * product:,} (fits under 32,767), three to "
                                  f"{3 * product:,} (does not).", {
        2: f"Two products sum to at most 2 x {product:,} = {2 * product:,}, which still fits "
           "under 32,767. With -128 codes allowed it would be 2 (128 x 128 = 16,384), but "
           "restricted codes stop at -127.",
        1: f"A single product is at most 127 x 127 = {product:,}: it fits in int16.",
        (2**31 - 1) // product + 1: "That is the limit of an int32 accumulator. The question "
                                    "asks about int16 (largest value 32,767).",
        (2**31 - 1) // product: "That is (nearly) the limit of an int32 accumulator. The "
                                "question asks about int16 (largest value 32,767).",
        32767 // 127 + 1: "Each term is a product of two codes, up to 127 x 127, not 127.",
    }, f"Not quite. The largest product is 127 x 127 = {product:,}. How many of those can you "
       "add before passing 32,767?")


@check
def check_fixed_point(answer):
    """Exercise: write M = 0.3 as (m0, shift) with M = m0 * 2**-31 * 2**-shift and
    2**30 <= m0 < 2**31. 0.3 = 0.6 * 2**-1, so shift = 1 and m0 = round(0.6 * 2**31)
    = 1,288,490,189.
    """
    from quantbook.matmul import quantize_multiplier

    m0, shift = read_pair(answer, "(m0, shift)", "a pair (m0, shift) of two integers")
    m0 = read_integer(m0, "an integer m0")
    shift = read_integer(shift, "an integer shift")
    m0_true, shift_true = quantize_multiplier(MULTIPLIER_EXERCISE)
    if (m0, shift) == (m0_true, shift_true):
        value = m0 * 2.0**-31 * 2.0**-shift
        return correct(f"{m0:,} x 2^-31 x 2^-{shift} = {value!r} (relative error "
                       f"{abs(value - MULTIPLIER_EXERCISE) / MULTIPLIER_EXERCISE:.1e}).")
    outside = not 2**30 <= m0 < 2**31
    hints = [
        (shift == -shift_true, "Check the sign of the shift: M < 1, so M = m0 * 2^-31 * "
                               "2^-shift needs a right shift (a positive number)."),
        (outside and m0 == round(MULTIPLIER_EXERCISE * 2**31),
         "m0 must be normalised into [2^30, 2^31): first write M = f * 2^-shift with f in "
         "[0.5, 1), then m0 = round(f * 2^31)."),
        (outside, "m0 must lie in [2^30, 2^31) = [1,073,741,824, 2,147,483,648): it holds the "
                  "mantissa f in [0.5, 1) scaled by 2^31."),
        (shift != shift_true, "The shift is off. Double M until it lands in [0.5, 1) and count "
                              "the doublings: that count is the shift, and the result f gives "
                              "m0 = round(f * 2^31)."),
        (abs(m0 - m0_true) == 1, f"Off by one in m0: 0.6 x 2^31 = {0.6 * 2**31!r}; round it to "
                                 "the nearest integer."),
    ]
    return next((hint for applies, hint in hints if applies),
                f"The shift ({shift}) is right, m0 is not: m0 = round(0.6 x 2^31).")
