r"""Symmetric (absmax) quantization: zero point fixed at 0, the scale set by the largest ``|x|``
(chapter 3).

.. math::  S = \frac{\max |x|}{2^{b-1} - 1}, \qquad
           q = \operatorname{clamp}(\operatorname{round}(x / S), -(2^{b-1}-1), 2^{b-1}-1),
           \qquad \hat{x} = S\,q

The *restricted* range [-127, 127] (8 bits) is symmetric, so ``-x`` quantizes to ``-q`` exactly,
at the price of never using the code -128. The *full* range [-128, 127]
(:func:`quantize_full_range`) uses every code with a slightly smaller scale,
``S = max|x| / 127.5`` (as PyTorch 2.13's symmetric ``MinMaxObserver``).

Granularity: one scale for the whole tensor (default), one per slice along ``axis``
(per-channel), or one per ``group_size`` consecutive values along the last axis (per-group);
the blocks and the shapes of their scales are the package's one table (``quantbook._blocks``).

A nonzero ``max|x|`` whose scale float32 cannot hold (it would round to 0 or to inf, e.g. for
``max|x| = 1e-45``) is a ``ValueError``, not a zero or infinite scale; a scale
passed to :func:`dequantize` must broadcast against ``q`` without growing it (per-group scales
need ``group_size``).
"""

from __future__ import annotations

import numpy as np

from quantbook import _blocks
from quantbook._arrays import (
    FLOAT32_RANGE_TEXT,
    check_bits,
    check_flag,
    check_param_shape,
    check_scale,
    float32_misfit,
    like,
    to_numpy,
    to_real,
    work_dtype,
)

__all__ = [
    "qrange",
    "absmax_scale",
    "quantize",
    "quantize_full_range",
    "dequantize",
    "fake_quantize",
]


def qrange(bits: int = 8, restricted: bool = True) -> tuple[int, int]:
    r"""The codes symmetric quantization uses (chapter 3).

    .. math::  [-(2^{b-1}-1),\, 2^{b-1}-1] \text{ (restricted)}, \qquad
               [-2^{b-1},\, 2^{b-1}-1] \text{ (full)}
    """
    bits = check_bits(bits)
    top = 2 ** (bits - 1) - 1
    return (-top if check_flag(restricted, "restricted") else -top - 1), top


def _levels(bits: int, restricted: bool) -> float:
    # Largest |x| lands this many steps from zero: 127 (restricted) or 127.5 (full range: a
    # half step past the outermost codes, so no value is more than S/2 from a code).
    return 2.0 ** (bits - 1) - 1 if restricted else (2.0**bits - 1) / 2


def _absmax(a: np.ndarray, axis, group_size):
    """``max|x|`` per block (``_blocks.reduce``): scalar, or the scale's shape."""
    return _blocks.reduce(np.abs(a), np.max, axis, group_size)


def _scale_from_absmax(absmax, bits: int, restricted: bool):
    levels = _levels(bits, restricted)
    if np.ndim(absmax) == 0:
        scale = absmax / absmax.dtype.type(levels)  # data's precision, as seed 004 (ch. 3)
        _check_absmax_scale(np.asarray(scale, np.float64), absmax)
        return float(scale) if absmax > 0 else 1.0
    _check_absmax_scale(absmax.astype(np.float64) / levels, absmax)
    scale = (absmax / levels).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1.0))


def _check_absmax_scale(scale: np.ndarray, absmax) -> None:
    """A nonzero ``max|x|`` must give a scale float32 holds (not rounding to 0, not to inf)."""
    m = np.atleast_1d(np.asarray(absmax, np.float64))
    used = np.atleast_1d(np.asarray(scale, np.float64))[m > 0]
    if used.size and (used.min() == 0 or float32_misfit(used) is not None):
        raise ValueError(
            f"x has max|x| from {m[m > 0].min():g} to {m.max():g}, whose scale max|x| / levels "
            f"float32 cannot hold ({FLOAT32_RANGE_TEXT}; reconstructions are float32): "
            "rescale the data"
        )


def absmax_scale(x, bits: int = 8, axis=None, group_size=None, restricted: bool = True):
    r"""The absmax scale (chapter 3).

    .. math::  S = \frac{\max |x|}{2^{b-1} - 1} \text{ (restricted)}, \qquad
               S = \frac{\max |x|}{(2^b - 1)/2} \text{ (full range)}

    All-zero input (or slice, or group) gets ``S = 1.0``. Returns a Python float per tensor, a
    float32 array with kept dimensions per channel (``axis``), or shape ``(..., n // g, 1)`` per
    group of ``g = group_size`` along the last axis.
    """
    bits = check_bits(bits)
    restricted = check_flag(restricted, "restricted")
    a = to_real(x, "x")
    a = a.astype(work_dtype(a), copy=False)
    scale = _scale_from_absmax(_absmax(a, axis, group_size), bits, restricted)
    return scale if isinstance(scale, float) else like(scale, x)


def _quantize(x, bits, axis, group_size, restricted):
    bits = check_bits(bits)
    qmin, qmax = qrange(bits, restricted)
    a = to_real(x, "x")
    a = a.astype(work_dtype(a), copy=False)
    scale = _scale_from_absmax(_absmax(a, axis, group_size), bits, restricted)
    view = _blocks.grouped(a, group_size)
    q = np.clip(np.rint(view / np.asarray(scale, a.dtype)), qmin, qmax).astype(np.int8)
    q = _blocks.ungrouped(q, a.shape)
    return like(q, x), (scale if isinstance(scale, float) else like(scale, x))


def quantize(x, bits: int = 8, axis=None, group_size=None):
    r"""Symmetric absmax quantization in the restricted range (chapter 3).

    .. math::  S = \frac{\max |x|}{2^{b-1} - 1}, \qquad
               q = \operatorname{clamp}(\operatorname{round}(x / S), -(2^{b-1}-1), 2^{b-1}-1)

    Parameters
    ----------
    x : array or tensor
    bits : int
        2..8; codes are stored in int8.
    axis : int, optional
        Per-channel: one scale per index along ``axis`` (e.g. ``axis=0`` for the output rows of
        a weight matrix); the scale keeps the other dimensions as size 1 so it broadcasts.
    group_size : int, optional
        Per-group: one scale per ``group_size`` consecutive values along the last axis, which
        must divide by it. The scale has shape ``(..., n // group_size, 1)``.

    Returns
    -------
    q : int8 array of ``x``'s shape (tensor if ``x`` was one)
    scale : float (per tensor) or float32 array (per channel / group)

    Examples
    --------
    >>> q, s = quantize([0.5, -1.0, 2.54])
    >>> q, s
    (array([ 25, -50, 127], dtype=int8), 0.02)
    """
    return _quantize(x, bits, axis, group_size, restricted=True)


def quantize_full_range(x, bits: int = 8, axis=None, group_size=None):
    r"""Symmetric quantization that also uses the code :math:`-2^{b-1}` (chapter 3).

    .. math::  S = \frac{\max |x|}{(2^b - 1)/2}, \qquad
               q = \operatorname{clamp}(\operatorname{round}(x / S), -2^{b-1}, 2^{b-1}-1)

    ``±max|x|`` sit 127.5 steps from zero (8 bits), half-way between two codes: ``-max|x|``
    rounds to -128 or -127 and ``+max|x|`` to 127 (after the clamp), depending on the last bit
    of the float division. Either way every value lies within ``S / 2`` of its reconstruction,
    with a scale 127/127.5 of the restricted one. Same arguments and results as
    :func:`quantize`.
    """
    return _quantize(x, bits, axis, group_size, restricted=False)


def dequantize(q, scale, group_size=None):
    r"""Integer codes back to real values (float32, chapter 3).

    .. math::  \hat{x} = S\, q

    ``scale`` as returned by :func:`quantize`; pass the same ``group_size`` for per-group scales.
    """
    qa = to_real(q, "q")
    if qa.dtype.kind == "f" and qa.size and not (qa == np.rint(qa)).all():
        raise ValueError("q must hold integer codes (whole numbers), got non-integer values")
    if qa.itemsize > 1 and qa.size and (qa.min() < -(2**31) or qa.max() > 2**31 - 1):
        raise ValueError("q must hold integer codes within int32's range")
    s = check_scale(scale, "scale").astype(np.float32)
    with np.errstate(over="ignore"):
        grouped = _blocks.grouped(qa, group_size)
        check_param_shape(s.shape, grouped.shape, "scale",
                          "q" if group_size is None else "q grouped by group_size")
        x_hat = _blocks.ungrouped(grouped.astype(np.float32) * s, qa.shape)
    if (qa.itemsize > 1 or (s.size and float(s.max()) > 2.0**110)) and x_hat.size and \
            not np.isfinite(x_hat).all():
        raise ValueError("scale * q exceeds float32's range: q or scale is too large for a "
                         "float32 reconstruction")
    return like(x_hat.astype(np.float32, copy=False), q, scale)


def fake_quantize(x, bits: int = 8, axis=None, group_size=None, restricted: bool = True):
    r"""Quantize then dequantize (float32): :math:`\hat{x} = S\,q`."""
    quant = quantize if check_flag(restricted, "restricted") else quantize_full_range
    q, scale = quant(to_numpy(x, "x"), bits, axis, group_size)
    return like(to_numpy(dequantize(q, scale, group_size)), x)
