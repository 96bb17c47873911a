"""llama.cpp's GGUF block formats Q8_0 and Q4_0, byte for byte (chapter 5).

Both cut the last axis into blocks of 32 values and store one float16 scale d per block,
little-endian, in front of the block's integers:

    Q8_0 block = d (2 bytes) + 32 int8 values           = 34 bytes (8.5 bits per weight)
    Q4_0 block = d (2 bytes) + 16 bytes of 32 nibbles   = 18 bytes (4.5 bits per weight)

and decoding is x = d · q. The encoders follow ggml's reference code (and the ``gguf`` Python
package) exactly, including two choices that differ from the rest of this book:

* the scale is used as its float32 reciprocal, q = round(x · (1/d)), not x / d;
* the rounding is not round-half-to-even: Q8_0 rounds half away from zero
  (:func:`round_half_away_from_zero`), Q4_0 rounds half up with trunc(x/d + 8.5)
  (:func:`round_half_up_offset`).
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import check_finite, like, to_numpy
from quantbook.packing import pack_int4, unpack_int4

BLOCK_SIZE = 32
Q8_0_BLOCK_BYTES = 2 + BLOCK_SIZE
Q4_0_BLOCK_BYTES = 2 + BLOCK_SIZE // 2


def round_half_away_from_zero(v: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C's ``roundf``): 2.5 -> 3, -2.5 -> -3.

    round(v) = sign(v) · (floor|v| + [|v| - floor|v| >= 1/2]). The fraction |v| - floor|v| is
    exact in floating point, so values just below a half (0.49999997) stay below it, which
    floor(|v| + 0.5) would get wrong.
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
    raw = _encode_in_pieces(_encode_q8_0_blocks, _blocks(x), Q8_0_BLOCK_BYTES)
    return like(_unblock(raw), x)


def _encode_q8_0_blocks(blocks: np.ndarray) -> np.ndarray:
    """Q8_0 of float32 blocks (k, 32) -> raw bytes (k, 34)."""
    d = np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(127)
    q = round_half_away_from_zero(blocks * _reciprocal(d)).astype(np.int8)
    return np.concatenate([_scale_bytes(d), q.view(np.uint8)], axis=-1)


def decode_q8_0(raw):
    """Decode Q8_0 bytes: x = d · q, with d the block's float16 scale. Returns float32."""
    blocks = _raw_blocks(raw, Q8_0_BLOCK_BYTES)
    d = blocks[..., :2].copy().view(np.float16).astype(np.float32)
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
    raw = _encode_in_pieces(_encode_q4_0_blocks, _blocks(x), Q4_0_BLOCK_BYTES)
    return like(_unblock(raw), x)


def _encode_q4_0_blocks(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 of float32 blocks (k, 32) -> raw bytes (k, 18)."""
    biggest = np.abs(blocks).argmax(axis=-1)[..., None]
    d = np.take_along_axis(blocks, biggest, axis=-1) / np.float32(-8)
    nibbles = np.clip(round_half_up_offset(blocks * _reciprocal(d)), 0, 15).astype(np.uint8)
    packed = pack_int4(nibbles, signed=False, order="gguf")
    return np.concatenate([_scale_bytes(d), packed], axis=-1)


def decode_q4_0(raw):
    """Decode Q4_0 bytes: x = d · (nibble - 8), with d the block's float16 scale. float32."""
    blocks = _raw_blocks(raw, Q4_0_BLOCK_BYTES)
    d = blocks[..., :2].copy().view(np.float16).astype(np.float32)
    nibbles = unpack_int4(blocks[..., 2:], BLOCK_SIZE, signed=False, order="gguf")
    q = nibbles.astype(np.int8) - np.int8(8)
    return like(_unblock(d * q.astype(np.float32)), raw)


def bits_per_weight(fmt: str) -> float:
    """Storage cost of a format in bits per value, scale included: 8·block_bytes / 32."""
    sizes = {"q8_0": Q8_0_BLOCK_BYTES, "q4_0": Q4_0_BLOCK_BYTES}
    if fmt not in sizes:
        raise ValueError(f"fmt must be one of {tuple(sizes)}, got {fmt!r}")
    return 8 * sizes[fmt] / BLOCK_SIZE


def _encode_in_pieces(encode, blocks: np.ndarray, block_bytes: int, per_piece: int = 2048):
    """Run ``encode`` on ``per_piece`` blocks at a time and collect the raw bytes.

    The encoders make several float temporaries the size of their input; 2048 blocks (256 KB
    of float32) at a time keeps them in the CPU cache instead of several full-size copies.
    """
    flat = blocks.reshape(-1, BLOCK_SIZE)
    raw = np.empty((flat.shape[0], block_bytes), dtype=np.uint8)
    for start in range(0, flat.shape[0], per_piece):
        raw[start : start + per_piece] = encode(flat[start : start + per_piece])
    return raw.reshape(blocks.shape[:-1] + (block_bytes,))


def _reciprocal(d: np.ndarray) -> np.ndarray:
    """1/d in float32, and 0 where d = 0 (an all-zero block encodes as zeros)."""
    safe = np.where(d == 0, np.float32(1), d)
    return np.where(d == 0, np.float32(0), np.float32(1) / safe)


def _scale_bytes(d: np.ndarray) -> np.ndarray:
    """The float16 scale as its two little-endian bytes."""
    return d.astype("<f2").view(np.uint8)


def _blocks(x) -> np.ndarray:
    """``x`` as float32 blocks of shape (..., n/32, 32), checked."""
    a = to_numpy(x, "x")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"x must be an array of real numbers, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if a.ndim == 0 or a.shape[-1] % BLOCK_SIZE:
        length = "a scalar" if a.ndim == 0 else f"length {a.shape[-1]}"
        raise ValueError(
            f"x must have a last axis that is a multiple of {BLOCK_SIZE}, got {length}"
        )
    check_finite(a, "x")
    return a.reshape(a.shape[:-1] + (a.shape[-1] // BLOCK_SIZE, BLOCK_SIZE))


def _raw_blocks(raw, block_bytes: int) -> np.ndarray:
    """Raw bytes as (..., n_blocks, block_bytes) uint8, checked."""
    a = to_numpy(raw, "raw")
    if a.dtype != np.uint8:
        raise TypeError(f"raw must be a uint8 array of GGUF block bytes, got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] % block_bytes:
        length = "a scalar" if a.ndim == 0 else f"length {a.shape[-1]}"
        raise ValueError(
            f"raw must have a last axis that is a multiple of {block_bytes} bytes (one block), "
            f"got {length}"
        )
    return a.reshape(a.shape[:-1] + (a.shape[-1] // block_bytes, block_bytes))


def _unblock(blocks: np.ndarray) -> np.ndarray:
    """Merge the block axis back into the last axis: (..., b, k) -> (..., b·k)."""
    return blocks.reshape(blocks.shape[:-2] + (blocks.shape[-2] * blocks.shape[-1],))
