"""Affine (zero-point) quantization: a real interval mapped onto the integers.

A real value x and its integer code q are tied by

.. math::  x \\approx S\\,(q - Z)

with the scale :math:`S` (real units per integer step) and the zero point :math:`Z` (the integer
that stands for 0.0). Rounding is round half to even, as in NumPy and PyTorch; the zero point is an
integer, so 0.0 is always exactly representable.

Two conventions from elsewhere are here too, because the book compares them:

* the *inverse scale* ("scale factor" :math:`1/S`, integer steps per real unit) used by many
  tutorials: :func:`quantize_with_scale_factor`, :func:`dequantize_with_scale_factor`;
* the zero point truncated with Python's ``int()`` instead of rounded:
  :func:`zero_point_truncated`.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook._arrays import check_bits, like, to_numpy, to_real, work_dtype

__all__ = [
    "qrange",
    "qparams",
    "quantize",
    "dequantize",
    "quantize_minmax",
    "fake_quantize",
    "representable_range",
    "clipping_error",
    "rounding_error",
    "quantization_error",
    "quantize_with_scale_factor",
    "dequantize_with_scale_factor",
    "zero_point_truncated",
]


def qrange(bits: int = 8, signed: bool = True) -> tuple[int, int]:
    """The integer range of a ``bits``-bit integer.

    .. math::  [q_{min}, q_{max}] = [-2^{b-1}, 2^{b-1}-1] \\text{ (signed)},\\quad
               [0, 2^b - 1] \\text{ (unsigned)}

    Examples
    --------
    >>> qrange(8), qrange(8, signed=False), qrange(4)
    ((-128, 127), (0, 255), (-8, 7))
    """
    bits = check_bits(bits)
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _container(signed: bool) -> type:
    # int8/uint8 hold every code for bits <= 8.
    return np.int8 if signed else np.uint8


def _scale_array(scale) -> np.ndarray:
    s = to_real(scale, "scale")
    if s.size and not (s > 0).all():
        raise ValueError("scale must be positive (real units per integer step), got a value <= 0")
    return s


def _zero_point_array(zero_point, qmin: int | None = None, qmax: int | None = None) -> np.ndarray:
    z = to_real(zero_point, "zero_point")
    if z.dtype.kind == "f":
        if z.size and not (z == np.rint(z)).all():
            raise ValueError("zero_point must be a whole number (an integer code)")
        z = z.astype(np.int64)
    z = z.astype(np.int64, copy=False)
    if qmin is not None and z.size and not ((z >= qmin) & (z <= qmax)).all():
        raise ValueError(
            f"zero_point must lie in the integer range [{qmin}, {qmax}] so that 0.0 is "
            f"representable, got {z.min()}..{z.max()}"
        )
    return z


def qparams(x_min, x_max, bits: int = 8, signed: bool = True):
    """Scale and zero point that map [x_min, x_max] onto the integer range.

    The range is first widened to contain 0, then

    .. math::  S = \\frac{x_{max} - x_{min}}{q_{max} - q_{min}}, \\qquad
               Z = \\operatorname{clamp}\\big(\\operatorname{round}(q_{min} - x_{min}/S),
               q_{min}, q_{max}\\big)

    A zero-width range (all zeros) gets ``S = 1.0`` instead of a division by zero.

    Parameters
    ----------
    x_min, x_max : float or array
        Range ends; arrays give one (scale, zero point) per element (per channel / per group).
    bits, signed : int, bool
        The integer type, see :func:`qrange`.

    Returns
    -------
    scale, zero_point
        ``(float, int)`` for scalars; for arrays a float32 scale array and an int64 zero-point
        array of the broadcast shape (torch tensors if a tensor came in).

    Examples
    --------
    >>> qparams(-3.0, 3.2)            # the seed's X = [-3.0, 0.1, 3.2]
    (0.02431372549019608, -5)
    """
    qmin, qmax = qrange(bits, signed)
    lo = to_real(x_min, "x_min").astype(np.float64)
    hi = to_real(x_max, "x_max").astype(np.float64)
    if np.any(lo > hi):
        raise ValueError("x_min must not exceed x_max")
    lo, hi = np.broadcast_arrays(np.minimum(lo, 0.0), np.maximum(hi, 0.0))
    scale = (hi - lo) / (qmax - qmin)
    if lo.ndim == 0:
        scale = float(scale) if scale > 0 else 1.0
        zero_point = int(np.clip(np.rint(qmin - float(lo) / scale), qmin, qmax))
        return scale, zero_point
    # Arrays store float32 scales; the zero point is computed from the stored scale.
    scale = scale.astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0))
    zero_point = np.clip(np.rint(qmin - lo / scale.astype(np.float64)), qmin, qmax)
    return like(scale, x_min, x_max), like(zero_point.astype(np.int64), x_min, x_max)


def quantize(x, scale, zero_point, bits: int = 8, signed: bool = True):
    """Real values to integer codes.

    .. math::  q = \\operatorname{clamp}\\big(\\operatorname{round}(x / S) + Z,
               q_{min}, q_{max}\\big)

    ``round`` is round half to even. ``scale`` and ``zero_point`` broadcast against ``x``
    (per-channel or per-group parameters). Values outside the representable range are clamped
    (that is the *clipping error*, see :func:`clipping_error`).

    Returns
    -------
    q : int8 (signed) or uint8 (unsigned) array, or tensor if ``x`` was one.

    Examples
    --------
    >>> quantize([-3.0, 0.1, 3.2], 6.2 / 255, -5)
    array([-128,   -1,  127], dtype=int8)
    """
    bits = check_bits(bits)
    qmin, qmax = qrange(bits, signed)
    a = to_real(x, "x")
    s = _scale_array(scale)
    z = _zero_point_array(zero_point, qmin, qmax)
    w = work_dtype(a)
    shape = np.broadcast_shapes(a.shape, s.shape, z.shape)
    # A 0-d input is worked on as one row of one value.
    a, s, z = (np.broadcast_to(v, shape or (1,)) for v in (a, s.astype(w), z.astype(w)))
    q = np.empty(shape or (1,), _container(signed))
    # Block by block: a 256 KB float buffer that stays in the CPU cache, instead of four
    # full-size float temporaries (64 MB each for 2**24 float32 values) and four trips to memory.
    for rows in _row_blocks(q.shape):
        with np.errstate(over="ignore"):  # |x/S| beyond float range is clamped anyway
            t = np.divide(a[rows], s[rows], dtype=w)
        np.rint(t, out=t)
        t += z[rows]
        np.clip(t, qmin, qmax, out=t)
        q[rows] = t  # whole numbers in [qmin, qmax]: exact in int8/uint8
    q = q.reshape(shape)
    return like(q if shape else q[()], x, scale, zero_point)  # scalar in, NumPy scalar out


def _row_blocks(shape: tuple[int, ...], values: int = 1 << 16) -> list[slice]:
    """Slices of the first axis that cover about ``values`` elements each (at least one row)."""
    row = math.prod(shape[1:])
    step = max(1, values // max(row, 1))
    return [slice(start, start + step) for start in range(0, shape[0], step)]


def dequantize(q, scale, zero_point):
    """Integer codes back to real values (float32).

    .. math::  \\hat{x} = S\\,(q - Z)

    Computed as ``float32(S) * float32(q - Z)`` (what PyTorch does for a float32 tensor).
    """
    qa = to_real(q, "q")
    s = _scale_array(scale)
    z = _zero_point_array(zero_point)
    steps = np.subtract(qa, z, dtype=np.float32)  # exact: codes and zero points are small ints
    x_hat = (s.astype(np.float32) * steps).astype(np.float32, copy=False)
    return like(x_hat, q, scale, zero_point)


def quantize_minmax(x, bits: int = 8, signed: bool = True):
    """Quantize with the tensor's own minimum and maximum as the range.

    .. math::  (S, Z) = \\operatorname{qparams}(\\min x, \\max x), \\qquad
               q = \\operatorname{quantize}(x, S, Z)

    Returns ``(q, scale, zero_point)``; an empty ``x`` gives an empty ``q`` with ``(1.0, qmin)``.
    """
    a = to_real(x, "x")
    lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
    scale, zero_point = qparams(lo, hi, bits, signed)
    return quantize(x, scale, zero_point, bits, signed), scale, zero_point


def fake_quantize(x, scale, zero_point, bits: int = 8, signed: bool = True):
    """Quantize then dequantize ("fake quantization"): what the network sees after rounding.

    .. math::  \\hat{x} = S\\,(\\operatorname{quantize}(x) - Z)
    """
    return dequantize(quantize(x, scale, zero_point, bits, signed), scale, zero_point)


def representable_range(scale, zero_point, bits: int = 8, signed: bool = True):
    """The smallest and largest real values the codes can stand for.

    .. math::  [S\\,(q_{min} - Z),\\; S\\,(q_{max} - Z)]

    Returned as :func:`dequantize` computes them (float32), so clamped values reconstruct to
    exactly these ends.
    """
    qmin, qmax = qrange(bits, signed)
    z = _zero_point_array(zero_point, qmin, qmax)
    lo = to_numpy(dequantize(np.full(z.shape, qmin), scale, z))
    hi = to_numpy(dequantize(np.full(z.shape, qmax), scale, z))
    if lo.ndim == 0:
        return float(lo), float(hi)
    return like(lo, scale, zero_point), like(hi, scale, zero_point)


def _clip_to_range(a: np.ndarray, scale, zero_point, bits, signed) -> np.ndarray:
    lo, hi = representable_range(to_numpy(scale, "scale"), to_numpy(zero_point, "zero_point"),
                                 bits, signed)
    w = work_dtype(a)
    return np.clip(a.astype(w, copy=False), np.asarray(lo, w), np.asarray(hi, w))


def _round_trip(a: np.ndarray, scale, zero_point, bits, signed) -> np.ndarray:
    # NumPy in and out, whatever kind the caller's scale and zero point are.
    s, z = to_numpy(scale, "scale"), to_numpy(zero_point, "zero_point")
    return dequantize(quantize(a, s, z, bits, signed), s, z)


def clipping_error(x, scale, zero_point, bits: int = 8, signed: bool = True):
    """The part of the error caused by clamping values outside the representable range.

    .. math::  e_{clip} = x - \\operatorname{clip}(x, S(q_{min} - Z), S(q_{max} - Z))

    Zero for every value inside the range. ``clipping_error + rounding_error`` is the total
    error ``x - fake_quantize(x)`` (see :func:`quantization_error`).
    """
    a = to_real(x, "x")
    e = a.astype(work_dtype(a), copy=False) - _clip_to_range(a, scale, zero_point, bits, signed)
    return like(e, x, scale, zero_point)


def rounding_error(x, scale, zero_point, bits: int = 8, signed: bool = True):
    """The part of the error caused by rounding to the nearest code.

    .. math::  e_{round} = \\operatorname{clip}(x, S(q_{min} - Z), S(q_{max} - Z)) - \\hat{x}

    Bounded by ``S / 2`` in absolute value (up to float rounding); zero for clamped values.
    """
    a = to_real(x, "x")
    x_hat = _round_trip(a, scale, zero_point, bits, signed)
    e = _clip_to_range(a, scale, zero_point, bits, signed) - x_hat
    return like(e, x, scale, zero_point)


def quantization_error(x, scale, zero_point, bits: int = 8, signed: bool = True):
    """Total error of the round trip.

    .. math::  e = x - \\hat{x} = e_{clip} + e_{round}
    """
    a = to_real(x, "x")
    x_hat = _round_trip(a, scale, zero_point, bits, signed)
    return like(a.astype(work_dtype(a), copy=False) - x_hat, x, scale, zero_point)


def quantize_with_scale_factor(x, scale_factor, zero_point, bits: int = 8, signed: bool = True):
    """The same map written with the *inverse* scale, as many tutorials do.

    .. math::  q = \\operatorname{clamp}\\big(\\operatorname{round}(s_f\\,x) + Z,
               q_{min}, q_{max}\\big), \\qquad s_f = 1 / S

    ``s_f`` counts integer steps per real unit (the seed prints "Scale factor = 41.129..." for
    ``255 / 6.2``). Multiplying by ``1/S`` instead of dividing by ``S`` can land on the other
    side of a rounding tie in floating point, so the two forms may differ by one step on rare
    values.
    """
    bits = check_bits(bits)
    qmin, qmax = qrange(bits, signed)
    a = to_real(x, "x")
    sf = _scale_array(scale_factor)
    z = _zero_point_array(zero_point, qmin, qmax)
    w = work_dtype(a)
    with np.errstate(over="ignore"):
        t = np.rint(a.astype(w, copy=False) * sf.astype(w))
    q = np.clip(t + z.astype(w), qmin, qmax).astype(_container(signed))
    return like(q, x, scale_factor, zero_point)


def dequantize_with_scale_factor(q, scale_factor, zero_point):
    """Inverse of :func:`quantize_with_scale_factor` (float32).

    .. math::  \\hat{x} = (q - Z) / s_f
    """
    qa = to_real(q, "q")
    sf = _scale_array(scale_factor)
    z = _zero_point_array(zero_point)
    steps = np.subtract(qa, z, dtype=np.float32)
    x_hat = (steps / sf.astype(np.float32)).astype(np.float32, copy=False)
    return like(x_hat, q, scale_factor, zero_point)


def zero_point_truncated(x_min, x_max, bits: int = 8, signed: bool = True):
    """The zero point as some code computes it: truncated with ``int()`` instead of rounded.

    .. math::  Z_{trunc} = \\operatorname{trunc}\\!\\left(
               \\frac{x_{max}\\,q_{min} - x_{min}\\,q_{max}}{x_{max} - x_{min}}\\right)

    Algebraically the fraction equals :math:`q_{min} - x_{min}/S`; :func:`qparams` rounds it,
    this truncates toward zero, so the two differ by one whenever the fractional part is at
    least one half (e.g. [-100, 80] at 8 bits: 13 here, 14 from :func:`qparams`). The range is
    widened to contain 0 as in :func:`qparams`.
    """
    qmin, qmax = qrange(bits, signed)
    lo = to_real(x_min, "x_min").astype(np.float64)
    hi = to_real(x_max, "x_max").astype(np.float64)
    if np.any(lo > hi):
        raise ValueError("x_min must not exceed x_max")
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    width = hi - lo
    safe = np.where(width > 0, width, 1.0)
    z = np.where(width > 0, np.trunc((hi * qmin - lo * qmax) / safe), qmin)
    if z.ndim == 0:
        return int(z)
    return like(z.astype(np.int64), x_min, x_max)
