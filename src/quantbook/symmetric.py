"""Symmetric (absmax) quantization: zero point fixed at 0, the scale set by the largest |x|.

.. math::  S = \\frac{\\max |x|}{2^{b-1} - 1}, \\qquad
           q = \\operatorname{clamp}(\\operatorname{round}(x / S), -(2^{b-1}-1), 2^{b-1}-1),
           \\qquad \\hat{x} = S\\,q

The *restricted* range [-127, 127] (8 bits) is symmetric, so ``-x`` quantizes to ``-q`` exactly,
at the price of never using the code -128. The *full* range [-128, 127]
(:func:`quantize_full_range`) uses every code with a slightly smaller scale,
``S = max|x| / 127.5`` (as PyTorch's symmetric ``MinMaxObserver``).

Granularity: one scale for the whole tensor (default), one per slice along ``axis``
(per-channel), or one per ``group_size`` consecutive values along the last axis (per-group).
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import check_bits, like, to_numpy, to_real, work_dtype

__all__ = [
    "qrange",
    "absmax_scale",
    "quantize",
    "quantize_full_range",
    "dequantize",
    "fake_quantize",
]


def qrange(bits: int = 8, restricted: bool = True) -> tuple[int, int]:
    """The codes symmetric quantization uses.

    .. math::  [-(2^{b-1}-1),\\, 2^{b-1}-1] \\text{ (restricted)}, \\qquad
               [-2^{b-1},\\, 2^{b-1}-1] \\text{ (full)}
    """
    bits = check_bits(bits)
    top = 2 ** (bits - 1) - 1
    return (-top if restricted else -top - 1), top


def _levels(bits: int, restricted: bool) -> float:
    # Largest |x| lands this many steps from zero: 127 (restricted) or 127.5 (full range: a
    # half step past the outermost codes, so no value is more than S/2 from a code).
    return 2.0 ** (bits - 1) - 1 if restricted else (2.0**bits - 1) / 2


def _check_group_size(group_size, n: int) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise TypeError(f"group_size must be a positive integer, got {group_size!r}")
    if group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size}")
    if n % group_size:
        raise ValueError(
            f"group_size={group_size} must divide the last axis length {n} (pad the tensor or "
            "pick another group size)"
        )
    return int(group_size)


def _grouped(a: np.ndarray, group_size: int) -> np.ndarray:
    if a.ndim == 0:
        raise ValueError("group_size needs an array with at least one axis")
    g = _check_group_size(group_size, a.shape[-1])
    return a.reshape(*a.shape[:-1], a.shape[-1] // g, g)


def _check_axis(axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer or None, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an array with {ndim} dimensions")
    return int(axis) % ndim


def _absmax(a: np.ndarray, axis, group_size):
    """max|x| per tensor (scalar), per slice along ``axis`` or per group (keepdims)."""
    if axis is not None and group_size is not None:
        raise ValueError("give axis (per-channel) or group_size (per-group), not both")
    # initial=0 makes empty reductions well defined (|x| >= 0 anyway).
    if group_size is not None:
        return np.max(np.abs(_grouped(a, group_size)), axis=-1, keepdims=True, initial=0)
    if axis is not None:
        k = _check_axis(axis, a.ndim)
        others = tuple(i for i in range(a.ndim) if i != k)
        return np.max(np.abs(a), axis=others, keepdims=True, initial=0)
    return np.max(np.abs(a), initial=0)


def _scale_from_absmax(absmax, bits: int, restricted: bool):
    levels = _levels(bits, restricted)
    if np.ndim(absmax) == 0:
        scale = absmax / absmax.dtype.type(levels)  # in the data's precision, like the seeds
        return float(scale) if absmax > 0 else 1.0
    scale = (absmax / levels).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1.0))


def absmax_scale(x, bits: int = 8, axis=None, group_size=None, restricted: bool = True):
    """The absmax scale.

    .. math::  S = \\frac{\\max |x|}{2^{b-1} - 1} \\text{ (restricted)}, \\qquad
               S = \\frac{\\max |x|}{(2^b - 1)/2} \\text{ (full range)}

    All-zero input (or slice, or group) gets ``S = 1.0``. Returns a Python float per tensor, a
    float32 array with kept dimensions per channel (``axis``), or shape ``(..., n // g, 1)`` per
    group of ``g = group_size`` along the last axis.
    """
    bits = check_bits(bits)
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
    view = _grouped(a, group_size) if group_size is not None else a
    q = np.clip(np.rint(view / np.asarray(scale, a.dtype)), qmin, qmax).astype(np.int8)
    q = q.reshape(a.shape)
    return like(q, x), (scale if isinstance(scale, float) else like(scale, x))


def quantize(x, bits: int = 8, axis=None, group_size=None):
    """Symmetric absmax quantization in the restricted range.

    .. math::  S = \\frac{\\max |x|}{2^{b-1} - 1}, \\qquad
               q = \\operatorname{clamp}(\\operatorname{round}(x / S), -(2^{b-1}-1), 2^{b-1}-1)

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
    """Symmetric quantization that also uses the code :math:`-2^{b-1}`.

    .. math::  S = \\frac{\\max |x|}{(2^b - 1)/2}, \\qquad
               q = \\operatorname{clamp}(\\operatorname{round}(x / S), -2^{b-1}, 2^{b-1}-1)

    ``±max|x|`` sit 127.5 steps from zero (8 bits), half-way between two codes: ``-max|x|``
    rounds to -128 or -127 and ``+max|x|`` to 127 (after the clamp), depending on the last bit
    of the float division. Either way every value lies within ``S / 2`` of its reconstruction,
    with a scale 127/127.5 of the restricted one. Same arguments and results as
    :func:`quantize`.
    """
    return _quantize(x, bits, axis, group_size, restricted=False)


def dequantize(q, scale, group_size=None):
    """Integer codes back to real values (float32).

    .. math::  \\hat{x} = S\\, q

    ``scale`` as returned by :func:`quantize`; pass the same ``group_size`` for per-group scales.
    """
    qa = to_real(q, "q")
    s = to_real(scale, "scale")
    if s.size and not (s > 0).all():
        raise ValueError("scale must be positive (real units per integer step), got a value <= 0")
    s = s.astype(np.float32)
    if group_size is not None:
        x_hat = (_grouped(qa, group_size).astype(np.float32) * s).reshape(qa.shape)
    else:
        x_hat = qa.astype(np.float32) * s
    return like(x_hat.astype(np.float32, copy=False), q, scale)


def fake_quantize(x, bits: int = 8, axis=None, group_size=None, restricted: bool = True):
    """Quantize then dequantize (float32): :math:`\\hat{x} = S\\,q`."""
    quant = quantize if restricted else quantize_full_range
    q, scale = quant(to_numpy(x, "x"), bits, axis, group_size)
    return like(to_numpy(dequantize(q, scale, group_size)), x)
