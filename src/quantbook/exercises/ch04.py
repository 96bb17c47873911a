"""Self-checks for chapter 4, *Granularity, outliers and calibration*.

Each check prints ``Correct!`` or a hint aimed at the most likely slip, and returns a bool. A
wrong answer never raises, so the notebook keeps running.
"""

from __future__ import annotations

import numpy as np

from quantbook.exercises._grading import check, close, grade, read_array, read_number

__all__ = [
    "OUTLIER_ROW_INDEX",
    "OUTLIER_ROW_SEED",
    "OUTLIER_ROW_SIZE",
    "OUTLIER_ROW_STD",
    "OUTLIER_ROW_VALUE",
    "PER_CHANNEL_EXERCISE_W",
    "check_outlier_row_group_sqnr",
    "check_per_channel_codes",
    "check_q4_1_bits_per_weight",
    "outlier_row",
]

# The outlier-row exercise, fully specified so that exactly one answer is right:
#   rng = np.random.default_rng(4); row = (0.02 * rng.standard_normal(4096)).astype(np.float32)
#   row[1000] = 2.0
OUTLIER_ROW_SEED = 4
OUTLIER_ROW_SIZE = 4096
OUTLIER_ROW_STD = 0.02
OUTLIER_ROW_INDEX = 1000
OUTLIER_ROW_VALUE = 2.0
# The answer is asked to one decimal; any value that rounds to the right one passes.
_SQNR_TOLERANCE_DB = 0.05

# Two output channels (rows) of very different size: one scale for both crushes the second row.
# No x / S below is a rounding tie, so the answer does not depend on the rounding rule.
PER_CHANNEL_EXERCISE_W = ((0.45, -1.4, 0.8, 0.13), (0.04, -0.06, 0.01, 0.025))
_PER_CHANNEL_CODES = ((2, -7, 4, 1), (5, -7, 1, 3))
_PER_TENSOR_CODES = ((2, -7, 4, 1), (0, 0, 0, 0))
_PER_COLUMN_CODES = ((7, -7, 7, 7), (1, 0, 0, 1))


@check
def check_per_channel_codes(answer):
    """Exercise: int4 symmetric codes of ``PER_CHANNEL_EXERCISE_W``, one scale per row.

    Row scales: 1.4 / 7 = 0.2 and 0.06 / 7; codes [[2, -7, 4, 1], [5, -7, 1, 3]].
    """
    a = read_array(answer, (2, 4), "a 2 x 4 nested list of integer codes",
                   "a 2 x 4 nested list of integers",
                   shape_hints={(4, 2): "Your answer has 4 rows of 2; the matrix has 2 rows "
                                        "(output channels) of 4 weights. Give the codes in the "
                                        "same layout as PER_CHANNEL_EXERCISE_W."},
                   wrong_shape="Give one code per weight: a 2 x 4 nested list, got shape {got}.",
                   not_finite="Your answer contains NaN or an infinity; the codes are small "
                              "integers.")
    w = np.array(PER_CHANNEL_EXERCISE_W)
    return grade(a, _PER_CHANNEL_CODES, "Row 2 gets its own scale 0.06 / 7, so its small "
                                        "weights use the whole grid instead of rounding to "
                                        "zero.", [
        (lambda a: np.allclose(a, w, atol=0.02),
         "These look like the weights themselves (or their reconstructions), not codes. Give "
         "the integers q with w ≈ S·q."),
        (lambda a: not np.array_equal(a, np.round(a)),
         "Codes are whole numbers: round w / S to the nearest integer."),
        (_PER_TENSOR_CODES, "That is the per-tensor result: one scale 1.4 / 7 for both rows, "
                            "which rounds all of row 2 to zero. Per channel, each row gets its "
                            "own scale max|row| / 7."),
        (_PER_COLUMN_CODES, "You used one scale per column. A channel of a weight matrix (out, "
                            "in) is a row: one output feature. Take max|w| along each row."),
        (lambda a: np.array_equal(a[0], _PER_CHANNEL_CODES[0]),
         "Row 1 is right. For row 2 the scale is max|row 2| / 7 = 0.06 / 7; divide each weight "
         "by it and round."),
        (lambda a: np.abs(a).max() > 7,
         "Symmetric int4 codes lie in [-7, 7]: the scale is max|row| / (2^(4-1) - 1) = "
         "max|row| / 7."),
    ], "Not yet. For each row: S = max|w| over that row / 7, then q = round(w / S).",
        same=np.array_equal)


@check
def check_q4_1_bits_per_weight(answer):
    """Exercise: storage of llama.cpp's Q4_1 block, in bits per weight.

    A block of 32 weights holds 32 four-bit codes, an fp16 scale d and an fp16 minimum m:
    (32·4 + 16 + 16) / 32 = 5.0 bits per weight (20 bytes per block).
    """
    return grade(read_number(answer, "bits per weight"), 5.0,
                 "(32·4 + 16 + 16) / 32 = 5.0 bits: the two fp16 numbers add a full bit per "
                 "weight.", [
        (4.5, "4.5 is Q4_0, with only an fp16 scale. Q4_1 also stores an fp16 minimum per "
              "block: add its 16 bits too."),
        (4.0, "That counts only the 4-bit codes. Every block of 32 also stores its metadata "
              "(an fp16 scale and an fp16 minimum): spread those bits over the 32 weights."),
        (20 / 32, "That is bytes per weight (20 bytes per block of 32). The question asks for "
                  "bits: multiply by 8."),
        (20.0, "20 is the size of a block in bytes. Divide the block's bits by its 32 weights."),
        (160.0, "160 is the size of a block in bits. Divide by the 32 weights it holds."),
        (6.0, "The scale and the minimum are fp16, 16 bits each, not 32."),
        (4.625, "The minimum of Q4_1 is a 16-bit float, not a 4-bit integer zero point."),
        (4.25, "Q4_1 blocks hold 32 weights, not 64: the 32 metadata bits are spread over 32."),
    ], "Not yet. Count the bits of one block (the 32 codes plus the metadata) and divide by "
       "the number of weights in the block.",
        same=close(abs=1e-6))


def outlier_row() -> np.ndarray:
    """The row of the outlier exercise: Gaussian float32 weights and one large weight.

    ``rng = np.random.default_rng(OUTLIER_ROW_SEED)``, ``row = (OUTLIER_ROW_STD *
    rng.standard_normal(OUTLIER_ROW_SIZE)).astype(np.float32)``, then
    ``row[OUTLIER_ROW_INDEX] = OUTLIER_ROW_VALUE``.
    """
    rng = np.random.default_rng(OUTLIER_ROW_SEED)
    row = (OUTLIER_ROW_STD * rng.standard_normal(OUTLIER_ROW_SIZE)).astype(np.float32)
    row[OUTLIER_ROW_INDEX] = OUTLIER_ROW_VALUE
    return row


def _others_sqnr(group_size: int | None, include_outlier: bool = False) -> float:
    """int8 symmetric SQNR (dB) of the row's weights other than the outlier (or of all)."""
    from quantbook import metrics, symmetric

    row = outlier_row()
    kwargs = {} if group_size is None else {"group_size": group_size}
    q, s = symmetric.quantize(row, 8, **kwargs)
    row_hat = symmetric.dequantize(q, s, group_size)
    if include_outlier:
        return float(metrics.sqnr_db(row, row_hat))
    keep = np.arange(row.size) != OUTLIER_ROW_INDEX
    return float(metrics.sqnr_db(row[keep], row_hat[keep]))


@check
def check_outlier_row_group_sqnr(answer):
    """Exercise: SQNR of the non-outlier weights of :func:`outlier_row`, int8, groups of 32.

    ``q, s = symmetric.quantize(row, 8, group_size=32)``, ``row_hat =
    symmetric.dequantize(q, s, 32)``, then ``metrics.sqnr_db`` over every weight but the one at
    ``OUTLIER_ROW_INDEX``. Accepted within 0.05 dB (the answer is asked to one decimal).
    """
    value = read_number(answer, "a number of decibels")
    expected = _others_sqnr(32)
    return grade(value, expected, f"{expected:.1f} dB: only the outlier's own group of 32 keeps "
                                  "the coarse step; the other groups get scales from their own "
                                  "largest weights.", [
        (_others_sqnr(None), "That is the per-tensor SQNR: one scale 2.0 / 127 for the whole "
                             "row. Quantize with group_size=32 instead."),
        (_others_sqnr(32, include_outlier=True),
         "That SQNR includes the outlier itself. Leave out the weight at index 1000: the "
         "question is about the other weights."),
        (_others_sqnr(None, include_outlier=True),
         "That is per tensor and includes the outlier. Use group_size=32 and leave out the "
         "weight at index 1000."),
    ], "Not yet. Build the row exactly as stated (seed 4, float32, the outlier at index "
       "1000), quantize with symmetric.quantize(row, 8, group_size=32), dequantize with "
       "group size 32, and take metrics.sqnr_db over the other 4095 weights.",
        same=lambda value, target: abs(value - target) <= _SQNR_TOLERANCE_DB)
