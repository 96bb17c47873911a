"""Self-checks for chapter 8, *Low-precision floats and microscaling*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool; a
wrong or malformed answer never raises.
"""

from __future__ import annotations

from quantbook.exercises._grading import NEARLY, check, grade, read_number

__all__ = [
    "check_mx_exponent_byte",
    "check_mxfp4_tie",
    "check_fp8_max",
    "check_nvfp4_bits",
    "check_ue4m3_saturation",
]


@check
def check_mx_exponent_byte(answer):
    """Exercise: the E8M0 byte of an MXFP4 block whose largest magnitude is 5.0.

    floor(log2 5) = 2, minus emax(E2M1) = 2, plus the bias 127: 127, the scale X = 2^0 = 1.
    """
    return grade(
        read_number(answer, "an integer from 0 to 255"), 127,
        "floor(log2 5) - 2 = 0, stored with bias 127: byte 127, scale X = 1, and 5 lies between "
        "the E2M1 values 4 and 6.",
        {129: "You forgot to subtract emax = 2 of E2M1: the largest value must land in E2M1's "
              "top binade [4, 8), not in [1, 2).",
         0: "That is the exponent itself; E8M0 stores it with a bias of 127.",
         2: "That is floor(log2 5); subtract emax = 2 and add the bias 127.",
         130: "log2 5 is about 2.32: round it down (floor), then subtract 2 and add 127."},
        "Not quite. e = floor(log2 amax) - emax + 127, with emax = 2 for E2M1.", same=NEARLY)


@check
def check_mxfp4_tie(answer):
    """Exercise: the value ggml's MXFP4 encoder gives 1.75 in a block with scale X = 1.

    1.75 is half-way between the E2M1 values 1.5 and 2; ggml keeps the first of equal errors in
    its table, the smaller magnitude: 1.5.
    """
    return grade(
        read_number(answer, "the decoded value"), 1.5,
        "1.75 is exactly half-way between 1.5 and 2; ggml's search keeps the first of two equal "
        "errors, the smaller magnitude, so ties go toward zero.",
        {2.0: "That is round-half-to-even (OCP's rule, and ml_dtypes'): 2 = 1.0 · 2^1 has an even "
              "mantissa. ggml's encoder does not round to even on ties.",
         1.75: "1.75 is not an E2M1 value: the grid above 1 is 1, 1.5, 2, 3, 4, 6."},
        "Not quite. List the E2M1 values near 1.75 (1.5 and 2), then ask which one ggml picks "
        "when both are equally far.", same=NEARLY)


@check
def check_fp8_max(answer):
    """Exercise: the largest finite value of float8_e4m3fnuz: 240 (bias 8, 0x7F is finite)."""
    return grade(
        read_number(answer, "a number"), 240,
        "e4m3fnuz has bias 8, one more than e4m3fn, so its largest value 1.875 · 2^7 = 240 is "
        "half of e4m3fn's 448 (and its only NaN is 0x80).",
        {448: "448 is e4m3fn (bias 7). The fnuz variant has bias 8: every value is halved.",
         480: "1.875 · 2^8 = 480 would need the top exponent with bias 7 and no NaN there; "
              "e4m3fnuz has bias 8.",
         57344: "57344 is e5m2's largest value (5 exponent bits).",
         224: "224 = 1.75 · 2^7 would drop the top mantissa code; in fnuz only 0x80 is NaN, so "
              "0x7F = 1.875 · 2^7 is finite."},
        "Not quite. Find the bias of e4m3fnuz (see the FP8 table) and the largest code that is "
        "not NaN.", same=NEARLY)


@check
def check_nvfp4_bits(answer):
    """Exercise: bits per weight of NVFP4 (GGUF block, no tensor scale): 4 + 8/16 = 4.5."""
    return grade(
        read_number(answer, "bits per weight"), 4.5,
        "4 bits per E2M1 value plus one 8-bit UE4M3 scale per 16 values: 4 + 8/16 = 4.5 "
        "(36 bytes for 64 values); the float32 tensor scale adds next to nothing.",
        {4.25: "4.25 is MXFP4: one 8-bit scale per 32 values. NVFP4 has one per 16.",
         4.0: "The scales take space too: one byte per 16 values.",
         5.0: "One byte per 16 values is 8/16 = 0.5 bit per value, not 1."},
        "Not quite. Add the 4 bits of each value and the scale bits shared by 16 values.",
        same=NEARLY)


@check
def check_ue4m3_saturation(answer):
    """Exercise: the NVFP4 scale ggml writes for a group of 16 whose largest magnitude is 2400.

    amax / 6 = 400; ggml's ggml_fp32_to_ue4m3 saturates every scale of 256 and more to 0x7E,
    which decodes to 448.
    """
    return grade(
        read_number(answer, "the decoded scale"), 448,
        "amax/6 = 400 has float32 exponent 8, and ggml's conversion returns 0x7E (448) for "
        "every scale from 256 up, although E4M3 has 288, 320, ..., 416 in between.",
        {384: "384 is what round-half-to-even gives (400 is a tie between 384 and 416, and "
              "384 = 1.5 · 2^8 has the even mantissa). ggml's conversion does something else "
              "above 256.",
         416: "416 rounds the tie up, as ggml does below 256. Look at what its conversion does "
              "when the exponent reaches 8.",
         400: "400 = amax/6 is not an E4M3 value: between 256 and 448 the step is 32.",
         2400: "The scale is amax / 6, so that the largest value lands on E2M1's 6."},
        "Not quite. Compute amax / 6, then apply ggml's UE4M3 conversion (ue4m3_encode).",
        same=NEARLY)
