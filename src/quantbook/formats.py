"""GGUF block formats, byte for byte: one table of records (chapters 5, 8, 9).

Every format cuts the last axis into blocks and stores each block in a fixed number of bytes;
``FORMATS`` holds one :class:`BlockFormat` per format (name, values per block, bytes per
block, encoder, decoder), and everything else (bits per weight, the chapters' tables) is read
off it::

    Q8_0   = d (fp16) + 32 int8                               34 bytes / 32 values (8.5 bpw)
    Q4_0   = d (fp16) + 16 bytes of 32 nibbles                18 bytes / 32 values (4.5 bpw)
    MXFP4  = E8M0 exponent + 16 bytes of E2M1 nibbles         17 bytes / 32 values (4.25 bpw)
    NVFP4  = 4 UE4M3 scales + 32 bytes of E2M1 nibbles        36 bytes / 64 values (4.5 bpw)
    Q4_K   = d, dmin (fp16) + 12 bytes 6-bit scales/mins + 128   144 bytes / 256 (4.5 bpw)
    Q6_K   = 128 ql + 64 qh + 16 int8 scales + d (fp16)      210 bytes / 256 (6.5625 bpw)

MXFP4 and NVFP4 live in :mod:`quantbook.microscaling`, Q4_K and Q6_K in
:mod:`quantbook.kquants`, IQ4_NL (a codebook, chapter 10) in :mod:`quantbook.codebooks`; their
functions are re-exported here. :func:`register` adds a format to the table.

Q8_0 and Q4_0 follow ggml's reference code (and the ``gguf`` Python package) exactly, including
two choices that differ from the rest of this book:

* the scale is used as its float32 reciprocal, q = round(x · (1/d)), not x / d;
* the rounding is not round-half-to-even: Q8_0 rounds half away from zero
  (:func:`round_half_away_from_zero`), Q4_0 rounds half up with trunc(x/d + 8.5)
  (:func:`round_half_up_offset`).

One departure: where a block's scale does not fit in float16 (Q8_0: ``max|x|`` above about
8.3 million; Q4_0: above about 524,000), ggml and gguf store inf and the block decodes to inf
and NaN; the encoders here raise ValueError instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quantbook._arrays import like
from quantbook._blocks import float16_bytes, float_blocks, in_pieces, raw_blocks, read_float16
from quantbook._blocks import unblock as _unblock
from quantbook.codebooks import decode_iq4_nl, encode_iq4_nl
from quantbook.kquants import decode_q4_k, decode_q6_k, encode_q4_k, encode_q6_k
from quantbook.microscaling import decode_mxfp4, decode_nvfp4, encode_mxfp4, encode_nvfp4
from quantbook.packing import pack_int4, unpack_int4

BLOCK_SIZE = 32
Q8_0_BLOCK_BYTES = 2 + BLOCK_SIZE
Q4_0_BLOCK_BYTES = 2 + BLOCK_SIZE // 2


def round_half_away_from_zero(v: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C's ``roundf``): 2.5 -> 3, -2.5 -> -3.

    ``round(v) = sign(v) · (floor|v| + [|v| - floor|v| >= 1/2])``. The fraction
    ``|v| - floor|v|`` is
    exact in floating point, so values just below a half (0.49999997) stay below it, which
    ``floor(|v| + 0.5)`` would get wrong.
    """
    a = np.abs(v)
    whole = np.floor(a)
    return np.sign(v) * (whole + (a - whole >= 0.5))


def round_half_up_offset(v: np.ndarray, offset: float = 8.0) -> np.ndarray:
    """Q4_0's rounding and shift in one step: trunc(v + offset + 0.5), in float32.

    For v + offset >= 0 this is round-half-up of v, moved into the unsigned range [0, 15] of a
    nibble (offset 8). ggml writes it as ``(int8_t)(x*id + 8.5f)``.
    """
    return np.trunc(v + np.float32(offset + 0.5))


def encode_q8_0(x):
    """Encode float values as Q8_0 blocks: raw bytes, 34 per block of 32.

    d = max|x_block| / 127 (float32, stored as float16);
    q = round_half_away_from_zero(x · (1/d)), int8 in [-127, 127]; an all-zero block has d = 0.

    Parameters
    ----------
    x : float array, shape (..., n) with n a multiple of 32 (cast to float32).

    Returns
    -------
    uint8 array of shape (..., n/32 · 34), the bytes a GGUF file stores.
    """
    raw = in_pieces(_encode_q8_0_blocks, float_blocks(x, BLOCK_SIZE), Q8_0_BLOCK_BYTES)
    return like(_unblock(raw), x)


def _encode_q8_0_blocks(blocks: np.ndarray) -> np.ndarray:
    """Q8_0 of float32 blocks (k, 32) -> raw bytes (k, 34)."""
    d = np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(127)
    q = round_half_away_from_zero(blocks * _reciprocal(d)).astype(np.int8)
    return np.concatenate([float16_bytes(d, "x", "Q8_0 scale"), q.view(np.uint8)], axis=-1)


def decode_q8_0(raw):
    """Decode Q8_0 bytes: x = d · q, with d the block's float16 scale. Returns float32."""
    blocks = raw_blocks(raw, Q8_0_BLOCK_BYTES)
    d = read_float16(blocks[..., :2])
    q = blocks[..., 2:].copy().view(np.int8)
    return like(_unblock(d * q.astype(np.float32)), raw)


def encode_q4_0(x):
    """Encode float values as Q4_0 blocks: raw bytes, 18 per block of 32.

    m = the block's value of largest magnitude, sign kept (the first one on a tie);
    d = m / -8, so m itself lands on q = -8 exactly and the other side reaches +7 at most;
    q = clip(trunc(x · (1/d) + 8.5), 0, 15), an unsigned nibble storing (value + 8);
    the nibbles are packed in llama.cpp's split-halves order (``order="gguf"``).

    Returns
    -------
    uint8 array of shape (..., n/32 · 18).
    """
    raw = in_pieces(_encode_q4_0_blocks, float_blocks(x, BLOCK_SIZE), Q4_0_BLOCK_BYTES)
    return like(_unblock(raw), x)


def _encode_q4_0_blocks(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 of float32 blocks (k, 32) -> raw bytes (k, 18)."""
    biggest = np.abs(blocks).argmax(axis=-1)[..., None]
    d = np.take_along_axis(blocks, biggest, axis=-1) / np.float32(-8)
    nibbles = np.clip(round_half_up_offset(blocks * _reciprocal(d)), 0, 15).astype(np.uint8)
    packed = pack_int4(nibbles, signed=False, order="gguf")
    return np.concatenate([float16_bytes(d, "x", "Q4_0 scale"), packed], axis=-1)


def decode_q4_0(raw):
    """Decode Q4_0 bytes: x = d · (nibble - 8), with d the block's float16 scale. float32."""
    blocks = raw_blocks(raw, Q4_0_BLOCK_BYTES)
    d = read_float16(blocks[..., :2])
    nibbles = unpack_int4(blocks[..., 2:], BLOCK_SIZE, signed=False, order="gguf")
    q = nibbles.astype(np.int8) - np.int8(8)
    return like(_unblock(d * q.astype(np.float32)), raw)


def _reciprocal(d: np.ndarray) -> np.ndarray:
    """1/d in float32, and 0 where d = 0 (an all-zero block encodes as zeros)."""
    safe = np.where(d == 0, np.float32(1), d)
    return np.where(d == 0, np.float32(0), np.float32(1) / safe)


# ------------------------------------------------------------------ the table

@dataclass(frozen=True)
class BlockFormat:
    """One GGUF block format: how many values a block holds and how many bytes it takes.

    ``encode`` maps floats (..., n) to uint8 (..., n / block_size · block_bytes) and ``decode``
    maps them back to float32; ``encode`` is None for a decode-only format.
    """

    name: str
    block_size: int
    block_bytes: int
    encode: Callable | None
    decode: Callable
    summary: str = ""

    @property
    def bits_per_weight(self) -> float:
        """Storage in bits per value, 8 · block_bytes / block_size, every scale and min included."""
        return 8 * self.block_bytes / self.block_size


FORMATS: dict[str, BlockFormat] = {}


def register(fmt: BlockFormat) -> BlockFormat:
    """Add a format to ``FORMATS`` under its lower-case name (replacing one of that name)."""
    if not isinstance(fmt, BlockFormat):
        raise TypeError(f"fmt must be a BlockFormat, got {type(fmt).__name__}")
    FORMATS[fmt.name.lower()] = fmt
    return fmt


for _record in (
    BlockFormat("Q8_0", 32, Q8_0_BLOCK_BYTES, encode_q8_0, decode_q8_0, "fp16 d, 32 int8"),
    BlockFormat("Q4_0", 32, Q4_0_BLOCK_BYTES, encode_q4_0, decode_q4_0, "fp16 d, 32 nibbles"),
    BlockFormat("MXFP4", 32, 17, encode_mxfp4, decode_mxfp4, "E8M0 exponent, 32 E2M1"),
    BlockFormat("NVFP4", 64, 36, encode_nvfp4, decode_nvfp4, "4 UE4M3 scales per 16, 64 E2M1"),
    BlockFormat("Q4_K", 256, 144, encode_q4_k, decode_q4_k, "fp16 d, dmin; 8 x (6-bit scale,"
                " 6-bit min); 256 nibbles"),
    BlockFormat("Q6_K", 256, 210, encode_q6_k, decode_q6_k, "fp16 d; 16 int8 scales; 256 x 6 bits"),
    BlockFormat("IQ4_NL", 32, 18, encode_iq4_nl, decode_iq4_nl,
                "fp16 d, 32 nibbles indexing a fixed int8 codebook"),
):
    register(_record)


def get_format(name: str) -> BlockFormat:
    """The :class:`BlockFormat` called ``name`` (case does not matter)."""
    if not isinstance(name, str) or name.lower() not in FORMATS:
        raise ValueError(f"fmt must be one of {tuple(f.name for f in FORMATS.values())}, "
                         f"got {name!r}")
    return FORMATS[name.lower()]


def table() -> list[BlockFormat]:
    """Every registered format, in registration order."""
    return list(FORMATS.values())


def bits_per_weight(fmt: str) -> float:
    """Storage cost of a format in bits per value, scales included: 8·block_bytes / block_size."""
    return get_format(fmt).bits_per_weight


def encode(x, fmt: str):
    """Encode ``x`` in the format called ``fmt`` (see ``FORMATS``)."""
    record = get_format(fmt)
    if record.encode is None:
        raise ValueError(f"fmt {record.name!r} has no encoder here (decode only)")
    return record.encode(x)


def decode(raw, fmt: str):
    """Decode the bytes ``raw`` of the format called ``fmt`` to float32."""
    return get_format(fmt).decode(raw)


def round_trip(x, fmt: str):
    """decode(encode(x)): the values a reader of the file gets back."""
    return decode(encode(x, fmt), fmt)


__all__ = [
    "BLOCK_SIZE", "BlockFormat", "FORMATS", "bits_per_weight", "decode", "decode_iq4_nl",
    "decode_mxfp4", "encode_iq4_nl",
    "decode_nvfp4", "decode_q4_0", "decode_q4_k", "decode_q6_k", "decode_q8_0", "encode",
    "encode_mxfp4", "encode_nvfp4", "encode_q4_0", "encode_q4_k", "encode_q6_k", "encode_q8_0",
    "get_format", "register", "round_half_away_from_zero", "round_half_up_offset", "round_trip",
    "table",
]
