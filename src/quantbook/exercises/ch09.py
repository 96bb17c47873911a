"""Self-checks for chapter 9, *K-quants and the GGUF mixes*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool; a
wrong or malformed answer never raises.
"""

from __future__ import annotations

from quantbook.exercises._grading import NEARLY, check, grade, read_choice, read_number

__all__ = [
    "GOLDEN_SCALE_BYTES",
    "check_q6_k_bits",
    "check_sub_block_5_scale",
    "check_q4_k_value",
    "check_mix_type",
    "check_more_bits_count",
]

# The 12 scale bytes of the chapter's golden Q4_K block (scales 1 2 3 4 17 33 50 63,
# mins 0 1 2 3 20 40 63 5).
GOLDEN_SCALE_BYTES = [0x41, 0x82, 0xC3, 0xC4, 0x40, 0x81, 0xC2, 0x03, 0x41, 0x81, 0xF2, 0x5F]


@check
def check_q6_k_bits(answer):
    """Exercise: bits per weight of Q6_K: 210 bytes for 256 values, 6.5625."""
    return grade(
        read_number(answer, "bits per weight"), 6.5625,
        "128 + 64 bytes of 6-bit codes, 16 int8 scales and a 2-byte d: 210 bytes, "
        "8 · 210 / 256 = 6.5625.",
        {6.0: "The codes alone take 6 bits; add 16 scales of 8 bits and the float16 d.",
         6.5: "Close: 6 + 16·8/256 = 6.5 counts the sub-block scales but not the float16 d "
              "(16 bits per 256 values).",
         6.0625: "Each of the 16 sub-blocks has its own 8-bit scale: 128 bits, not 16."},
        "Not quite. Count the bytes of one super-block (ql, qh, scales, d) and divide by 256.",
        same=NEARLY)


@check
def check_sub_block_5_scale(answer):
    """Exercise: the 6-bit scale of sub-block 5 in the golden bytes: 33.

    Low 4 bits: byte 9 & 15 = 1; top 2 bits: byte 1 >> 6 = 2, shifted up by 4: 32 + 1 = 33.
    """
    return grade(
        read_number(answer, "an integer from 0 to 63"), 33,
        "Low nibble of byte 8 + 1 = 0x81: 1; top two bits of byte 5 - 4 = 1 (0x82 >> 6 = 2), "
        "worth 16 each: 2 · 16 + 1 = 33.",
        {1: "That is only half the story (or the naive reading byte 5 & 63 = 1): sub-blocks 4-7 "
            "keep their top two bits in bits 6-7 of bytes 0-3.",
         32: "That is the top two bits alone; add the low nibble from byte 9.",
         2: "Those are the top two bits; they are worth 16 each (shift left by 4).",
         18: "You took the high nibble of byte 9; the scale's low 4 bits are its low nibble (the "
             "high nibble belongs to the min)."},
        "Not quite. For j >= 4: scale = (byte[j+4] & 15) | ((byte[j-4] >> 6) << 4).",
        same=NEARLY)


@check
def check_q4_k_value(answer):
    """Exercise: decode q = 15 in sub-block 4 of the golden block (d = 1, dmin = 0.5, s = 17,
    m = 20): 17 · 15 - 0.5 · 20 = 245."""
    return grade(
        read_number(answer, "a number"), 245,
        "x = d · s · q - dmin · m = 1 · 17 · 15 - 0.5 · 20 = 245.",
        {255: "You left out the min: Q4_K subtracts dmin · m_j.",
         265: "The min is subtracted, not added: x = d·s·q - dmin·m.",
         235: "dmin = 0.5 multiplies m = 20: subtract 10, not 20.",
         15: "q = 15 is the code; multiply by d · s_4 and subtract dmin · m_4."},
        "Not quite. Use x = d · s_j · q - dmin · m_j with sub-block 4's scale and min.",
        same=NEARLY)


@check
def check_mix_type(answer):
    """Exercise: the GGUF type of MiniLM's attn_v in layer 2 under Q4_K_M: Q8_0."""
    value = read_choice(answer, "a type name such as 'Q4_K'",
                        "a type name in quotes, such as 'Q4_K'")
    return grade(value, "Q8_0", "Layer 2 of 6 gets more bits ((2 - 0) % 3 == 2): Q6_K. But its "
                                "rows have 384 values, not a multiple of 256, so Q6_K falls back "
                                "to Q8_0.", {
        "Q6_K": "The rule picks Q6_K, but can a row of 384 values be cut into super-blocks of 256?",
        "Q4_K": "Layer 2 is one of the layers use_more_bits selects: (2 - 6//8) % 3 == 2.",
        "Q5_0": "Q5_0 is Q4_K's fallback; this layer was promoted first.",
    }, "Not quite. Apply use_more_bits(2, 6), then the fallback for rows that are not a "
       "multiple of 256.")


@check
def check_more_bits_count(answer):
    """Exercise: how many of 32 layers get more bits (use_more_bits): 16."""
    return grade(
        read_number(answer, "a count"), 16,
        "Layers 0-3 and 28-31 (the first and last eighth) and every third layer in between "
        "(6, 9, ..., 27): 8 + 8 = 16, half of the layers.",
        {8: "Those are the first and last eighth only; add (i - 4) % 3 == 2 in between.",
         15: "Count the middle ones again: i = 6, 9, 12, 15, 18, 21, 24, 27 is eight layers.",
         12: "The last eighth is i >= 28: four layers, 28 to 31."},
        "Not quite. use_more_bits(i, n): i < n/8, or i >= 7n/8, or (i - n/8) % 3 == 2.",
        same=NEARLY)
