r"""Blocks: which values share one scale (granularity), and the byte plumbing of block formats.

Every quantizer of the book stores one scale (and zero point) per *block* of values. A block is
given the way torchao's ``quant_primitives.py`` gives it, as a ``block_size`` tuple with one
entry per axis of ``x``. The public functions (:mod:`quantbook.symmetric`,
:mod:`quantbook.affine`, :mod:`quantbook.granularity`, :mod:`quantbook.model`,
:mod:`quantbook.gptq`, :mod:`quantbook.awq` and the explorers) spell the choice with two
keywords, ``axis=`` (per channel) and ``group_size=`` (per group), and this module turns them
into blocks:

================  ===================  ====================  ===========================
granularity       keywords             block size, x (R, C)  scale shape, x (R, C)
================  ===================  ====================  ===========================
per tensor        (neither)            ``(R, C)``            ``()`` (a Python float)
per channel       ``axis=0``           ``(1, C)``            ``(R, 1)``
per channel       ``axis=1``           ``(R, 1)``            ``(1, C)``
per group         ``group_size=g``     ``(1, g)``            ``(R, C / g, 1)``
================  ===================  ====================  ===========================

For any shape :math:`(n_0, \dots, n_{k-1})` with block size :math:`(b_0, \dots, b_{k-1})`,

.. math::  n_{scales} = \prod_i \frac{n_i}{b_i}, \qquad
           b_{eff} = b + \frac{b_{scale}}{\prod_i b_i} \text{ bits per value.}

Per group, the groups run along the last axis (for an ``nn.Linear`` weight (out, in), the input
dimension the matmul sums over), and ``g`` must divide it. A per-group scale keeps the group
axis (shape ``(..., n / g, 1)``), so it broadcasts against :func:`grouped` ``x``, of shape
``(..., n / g, g)``; per-channel scales keep every axis, so they broadcast against ``x`` itself.
:func:`reduce` computes a statistic per block (``max |x|``, ``min x``), :func:`grouped` and
:func:`ungrouped` reshape, :func:`num_scales` counts. Bad input is a ``ValueError`` or
``TypeError`` naming the argument (``axis`` out of range, ``group_size`` that does not divide
the last axis, both given at once), from the checks of ``quantbook._arrays``.

The block formats of :mod:`quantbook.formats` (Q8_0, Q4_0, MXFP4, NVFP4, Q4_K, Q6_K, ...) are
per-group quantizers with a fixed byte layout: they take floats of shape (..., n), n a multiple
of their block size, and give uint8 of shape (..., n / block_size · block_bytes), like
``gguf.quants.quantize``; decoding goes back to float32. :func:`float_blocks`,
:func:`raw_blocks`, :func:`unblock`, :func:`in_pieces` and the float16 helpers serve them.
"""


from __future__ import annotations

import math

import numpy as np

from quantbook._arrays import (
    check_axis,
    check_choice,
    check_finite,
    check_group_size,
    check_shape,
    to_numpy,
)

# --- granularity: blocks that share a scale ----------------------------------------------------

GRANULARITIES = ("per-tensor", "per-channel", "per-group")


def _check_one(axis, group_size) -> None:
    if axis is not None and group_size is not None:
        raise ValueError("give axis (per-channel) or group_size (per-group), not both")


def granularity_name(axis=None, group_size=None) -> str:
    """``"per-tensor"``, ``"per-channel"`` or ``"per-group"``: the name of a keyword choice.

    Examples
    --------
    >>> granularity_name(), granularity_name(axis=0), granularity_name(group_size=32)
    ('per-tensor', 'per-channel', 'per-group')
    """
    _check_one(axis, group_size)
    if group_size is not None:
        return "per-group"
    return "per-tensor" if axis is None else "per-channel"


def from_granularity(granularity: str, axis: int = 0, group_size: int = 32):
    """The keywords ``(axis, group_size)`` of a granularity given by name (one of them None).

    ``axis`` is kept per channel and ``group_size`` per group; the other becomes None.

    Examples
    --------
    >>> from_granularity("per-channel"), from_granularity("per-group", group_size=64)
    ((0, None), (None, 64))
    """
    check_choice(granularity, "granularity", GRANULARITIES)
    return (axis if granularity == "per-channel" else None,
            group_size if granularity == "per-group" else None)


def block_size(shape, axis=None, group_size=None) -> tuple[int, ...]:
    r"""The block of values that share one scale, as torchao's ``block_size`` tuple.

    .. math::  \text{per tensor: } (n_0, \dots, n_{k-1}), \quad
               \text{per channel along } a\text{: } n_i \text{ with } n_a \to 1, \quad
               \text{per group: } (1, \dots, 1, g)

    Examples
    --------
    >>> block_size((4, 64)), block_size((4, 64), axis=0), block_size((4, 64), group_size=32)
    ((4, 64), (1, 64), (1, 32))
    """
    shape = check_shape(shape)
    _check_one(axis, group_size)
    if group_size is not None:
        if not shape:
            raise ValueError("group_size needs an array with at least one axis, got a scalar")
        return (1,) * (len(shape) - 1) + (check_group_size(group_size, shape[-1]),)
    if axis is not None:
        k = check_axis(axis, len(shape))
        return tuple(1 if i == k else n for i, n in enumerate(shape))
    return shape


def num_scales(shape, axis=None, group_size=None) -> int:
    r"""How many scales a tensor of ``shape`` stores: one per block.

    .. math::  n_{scales} = \prod_i n_i / b_i \qquad (\text{per tensor: } 1)

    Examples
    --------
    >>> num_scales((64, 256)), num_scales((64, 256), axis=0), num_scales((64, 256), group_size=32)
    (1, 64, 512)
    """
    block = block_size(shape, axis, group_size)
    if axis is None and group_size is None:
        return 1
    return math.prod(n // b for n, b in zip(check_shape(shape), block, strict=True))


def grouped(a: np.ndarray, group_size=None) -> np.ndarray:
    """``a`` reshaped (..., n) -> (..., n / g, g) for per-group work; ``a`` itself otherwise.

    A view, no copy. ``group_size=None`` (per tensor or per channel) returns ``a`` unchanged.
    """
    if group_size is None:
        return a
    g = block_size(a.shape, None, group_size)[-1]  # checks group_size against the last axis
    return a.reshape(a.shape[:-1] + (a.shape[-1] // g, g))


def ungrouped(a: np.ndarray, shape) -> np.ndarray:
    """The inverse of :func:`grouped`: back to the original ``shape`` (a NumPy scalar stays one)."""
    return a if np.shape(a) == tuple(shape) else a.reshape(shape)


def reduce(a: np.ndarray, function, axis=None, group_size=None, initial=0):
    r"""One statistic per block: ``function`` (e.g. ``np.max``) over each block of ``a``.

    .. math::  s_B = f(\{a_i : i \in B\})

    Returns a NumPy scalar per tensor, an array of the scale shape of the table above per
    channel or per group. ``initial`` makes empty blocks well defined (``0`` for ``max |x|``:
    it is at least 0 anyway).
    """
    _check_one(axis, group_size)
    if group_size is not None:
        return function(grouped(a, group_size), axis=-1, keepdims=True, initial=initial)
    if axis is not None:
        k = check_axis(axis, a.ndim)
        others = tuple(i for i in range(a.ndim) if i != k)
        return function(a, axis=others, keepdims=True, initial=initial)
    return function(a, initial=initial)


# --- block formats: bytes ----------------------------------------------------------------------


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
    return grouped(a, block_size)


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
