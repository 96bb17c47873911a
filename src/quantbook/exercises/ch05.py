"""Self-checks for chapter 5, *Packing int4*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool; a
wrong or malformed answer never raises.
"""

from __future__ import annotations

from quantbook.exercises._grading import check, close, grade, read_integers, read_number

__all__ = [
    "UNPACK_BYTE",
    "PACK_VALUES",
    "check_unpack_byte",
    "check_pack_high_first",
    "check_bits_per_weight",
]

UNPACK_BYTE = 0x9C  # 1001 1100: read it low-first, signed
PACK_VALUES = [3, -1, -8, 5]  # pack these high-first, signed


@check
def check_unpack_byte(answer):
    """Exercise: the two signed int4 values in byte 0x9C, low-first.

    Low nibble 1100 = -8 + 4 = -4 is element 0; high nibble 1001 = -8 + 1 = -7 is element 1.
    """
    return grade(read_integers(answer, 2), (-4, -7),
                 "0x9C = 1001 1100: the low nibble 1100 is element 0 and means -8 + 4 = -4; the "
                 "high nibble 1001 is element 1 and means -8 + 1 = -7.", {
        (-7, -4): "You have both values, in the wrong order: low-first puts element 0 in the "
                  "low nibble (bits 0-3), which is the right-hand digit 1100.",
        (12, 9): "Those are the nibbles read as unsigned numbers. A signed nibble with its top "
                 "bit set is negative: subtract 16 (sign extension).",
        (9, 12): "Those are the nibbles read as unsigned numbers, and in the wrong order. "
                 "Subtract 16 from a nibble of 8 or more, and start with the low nibble.",
        (-4, -1): "That reads 1001 as sign and magnitude (-1). int4 is two's complement: the top "
                  "bit is worth -8, so 1001 = -8 + 1.",
        (-1, -4): "Two slips: 1001 is two's complement (-8 + 1), not sign and magnitude, and "
                  "element 0 is the low nibble.",
    }, "Not quite. Split 0x9C into its nibbles 1001 (high) and 1100 (low); read each as two's "
       "complement (top bit worth -8); the low nibble is element 0.")


@check
def check_pack_high_first(answer):
    """Exercise: pack [3, -1, -8, 5] (signed) high-first into two bytes.

    Nibbles 0011, 1111, 1000, 0101; high-first gives 0011 1111 = 63 and 1000 0101 = 133.
    """
    return grade(read_integers(answer, 2), (63, 133),
                 "The nibbles are 0011, 1111, 1000, 0101; high-first makes the bytes "
                 "0011 1111 = 0x3F = 63 and 1000 0101 = 0x85 = 133.", {
        (243, 88): "That is the low-first layout (element 0 in bits 0-3). High-first puts "
                   "element 0 in the high nibble: byte = 16 * nibble(a) + nibble(b).",
        (63, -123): "Right bits, but a packed byte is unsigned: 1000 0101 is 133. Reading it as "
                    "int8 (-123) is what a signed container such as the seed's int8 shows.",
        (57, 133): "That writes -1 as sign and magnitude (1001). int4 is two's complement: "
                   "-1 is 1111 (15), so the first byte is 16 * 3 + 15 = 63.",
        (49, 133): "-1 becomes the nibble 1111 (15), not 0001: two's complement, not a sign bit.",
        (63, 5): "-8 becomes the nibble 1000 (8); 16 * 8 + 5 = 133.",
    }, "Not quite. Write each value as a 4-bit two's-complement nibble (q mod 16), then "
       "byte = 16 * first + second for each pair.")


@check
def check_bits_per_weight(answer):
    """Exercise: 4-bit values in blocks of 128, each block with an fp16 scale and fp16 offset.

    bits per weight = 4 + (16 + 16) / 128 = 4.25.
    """
    value = read_number(answer, "a number of bits", single="a single number of bits", sep=",",
                        rerun="then run the cell")
    return grade(value, 4.25, "Each block of 128 values carries 4 * 128 + 16 + 16 = 544 bits: "
                              "544 / 128 = 4.25 bits per weight.", [
        (4.125, "That counts only the scale. The offset is another 16 bits per block."),
        (4.0, "The 4-bit values are only part of the cost: add the block's metadata."),
        (4.5, "4.5 is Q4_0's number (one fp16 scale per 32 values). Here a block has 128 "
              "values and two 16-bit numbers."),
        (5.0, "That is Q4_1's number (scale and minimum per 32 values). Here blocks hold 128."),
        (0.53125, "That is bytes, not bits, per weight: multiply by 8."),
        (68.0, "That is the block's size in bytes (4 * 128 / 8 + 2 + 2); divide its bits by "
               "the 128 values."),
    ], "Not quite. Add up the bits of one block (values and metadata) and divide by the "
       "number of values in it.", same=close(rel=1e-6))
