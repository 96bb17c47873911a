"""Shared plumbing of the block formats: cut values into blocks, check bytes, glue back.

Every block format of :mod:`quantbook.formats` (Q8_0, Q4_0, MXFP4, NVFP4, Q4_K, Q6_K, ...) takes
floats of shape (..., n), n a multiple of its block size, and gives uint8 of shape
(..., n / block_size · block_bytes), like ``gguf.quants.quantize``; decoding goes back to float32.
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import check_finite, to_numpy


def float_blocks(x, block_size: int, name: str = "x") -> np.ndarray:
    """``x`` as float32 blocks of shape (..., n/block_size, block_size), checked.

    Raises TypeError for a non-numeric dtype and ValueError for a last axis that is not a
    multiple of ``block_size``, a scalar, NaN or an infinity.
    """
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if a.ndim == 0 or a.shape[-1] % block_size:
        length = "a scalar" if a.ndim == 0 else f"length {a.shape[-1]}"
        raise ValueError(
            f"{name} must have a last axis that is a multiple of {block_size}, got {length}"
        )
    check_finite(a, name)
    return a.reshape(a.shape[:-1] + (a.shape[-1] // block_size, block_size))


def raw_blocks(raw, block_bytes: int, name: str = "raw") -> np.ndarray:
    """Raw bytes as (..., n_blocks, block_bytes) uint8, checked (dtype and byte count)."""
    a = to_numpy(raw, name)
    if a.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 array of GGUF block bytes, got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] % block_bytes:
        length = "a scalar" if a.ndim == 0 else f"length {a.shape[-1]}"
        raise ValueError(
            f"{name} must have a last axis that is a multiple of {block_bytes} bytes (one block), "
            f"got {length}"
        )
    return a.reshape(a.shape[:-1] + (a.shape[-1] // block_bytes, block_bytes))


def unblock(blocks: np.ndarray) -> np.ndarray:
    """Merge the block axis back into the last axis: (..., b, k) -> (..., b·k)."""
    return blocks.reshape(blocks.shape[:-2] + (blocks.shape[-2] * blocks.shape[-1],))


def in_pieces(function, blocks: np.ndarray, out_width: int, out_dtype=np.uint8,
              per_piece: int = 2048) -> np.ndarray:
    """Run ``function`` on ``per_piece`` blocks at a time and collect its rows.

    ``function`` maps (k, width_in) to (k, out_width). Working on a few thousand blocks at a
    time keeps the float temporaries of an encoder in the CPU cache instead of several
    full-size copies.
    """
    flat = blocks.reshape(-1, blocks.shape[-1])
    out = np.empty((flat.shape[0], out_width), dtype=out_dtype)
    for start in range(0, flat.shape[0], per_piece):
        out[start : start + per_piece] = function(flat[start : start + per_piece])
    return out.reshape(blocks.shape[:-1] + (out_width,))


def float16_bytes(d: np.ndarray, name: str = "x", what: str = "scale") -> np.ndarray:
    """A float32 scale as the two little-endian bytes of its float16, refusing overflow.

    ggml (``GGML_FP32_TO_FP16``) and the ``gguf`` package store a scale above 65504 as inf
    without a word, and every value of the block then decodes to inf or NaN. Here that is a
    ValueError naming the input.
    """
    with np.errstate(over="ignore"):
        half = d.astype("<f2")
    if not np.isfinite(half).all():
        worst = float(np.abs(d[~np.isfinite(half)]).max())
        raise ValueError(
            f"{name} holds a block whose {what} {worst:.6g} does not fit in float16 "
            f"(largest finite 65504): its values are too large for this format"
        )
    return half.view(np.uint8)


def read_float16(two_bytes: np.ndarray) -> np.ndarray:
    """Little-endian float16 bytes (..., 2) -> float32 (..., 1)."""
    return np.ascontiguousarray(two_bytes).view("<f2").astype(np.float32)
