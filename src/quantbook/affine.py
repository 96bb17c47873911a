r"""Affine (zero-point) quantization: a real interval mapped onto the integers (chapter 2).

A real value :math:`x` and its integer code :math:`q` are tied by

.. math::  x \approx S\,(q - Z)

with the scale :math:`S` (real units per integer step) and the zero point :math:`Z` (the integer
that stands for 0.0). Rounding is round half to even, as in NumPy and PyTorch (torch 2.13); the zero
point is an integer, so 0.0 is always exactly representable.

Two conventions from elsewhere are here too, because the book compares them:

* the *inverse scale* ("scale factor" :math:`1/S`, integer steps per real unit) used by many
  tutorials: :func:`quantize_with_scale_factor`, :func:`dequantize_with_scale_factor`;
* the zero point truncated with Python's ``int()`` instead of rounded:
  :func:`zero_point_truncated`.

Bad input is an error, never a silent result (the rules live in ``quantbook._arrays``): a
scale must be a number float32 holds (reconstructions are float32, so a scale of 1e39 or 1e-320,
or a range [x_min, x_max] whose scale would be one, is a ``ValueError``); a zero point is a whole
number in the code range; ``scale`` and ``zero_point`` broadcast against ``x`` but never make the
result larger than ``x``; ``signed`` is ``True`` or ``False``.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook import _blocks
from quantbook._arrays import (
    FLOAT32_RANGE_TEXT,
    INT32_RANGE,
    check_bits,
    check_flag,
    check_one_grows,
    check_param_shape,
    check_scale,
    check_zero_point,
    float32_misfit,
    is_tensor,
    like,
    to_numpy,
    to_real,
    work_dtype,
)

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
    r"""The integer range of a ``bits``-bit integer (chapter 2).

    .. math::  [q_{min}, q_{max}] = [-2^{b-1}, 2^{b-1}-1] \text{ (signed)},\quad
               [0, 2^b - 1] \text{ (unsigned)}

    Examples
    --------
    >>> qrange(8), qrange(8, signed=False), qrange(4)
    ((-128, 127), (0, 255), (-8, 7))
    """
    bits = check_bits(bits)
    if check_flag(signed, "signed"):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _container(signed: bool) -> type:
    # int8/uint8 hold every code for bits <= 8.
    return np.int8 if signed else np.uint8


def _scale_array(scale, name: str = "scale") -> np.ndarray:
    return check_scale(scale, name)


def _zero_point_array(zero_point, qmin: int | None = None, qmax: int | None = None) -> np.ndarray:
    # Without a code range (dequantize), a zero point must still be an int32 number.
    if qmin is None:
        qmin, qmax = INT32_RANGE
    return check_zero_point(zero_point, qmin, qmax)


def _codes(q, name: str = "q") -> np.ndarray:
    """Integer codes (any integer dtype, or floats holding whole numbers) within int32's range,
    unconverted."""
    a = to_real(q, name)
    if a.dtype.kind == "f" and a.size and not (a == np.rint(a)).all():
        raise ValueError(f"{name} must hold integer codes (whole numbers), got non-integer values")
    if a.itemsize > 1 and a.size and (a.min() < INT32_RANGE[0] or a.max() > INT32_RANGE[1]):
        raise ValueError(f"{name} must hold integer codes within int32's range")
    return a


def _range_ends(x_min, x_max) -> tuple[np.ndarray, np.ndarray]:
    """The range ends as float64, checked, widened to contain 0 and broadcast together."""
    lo = to_real(x_min, "x_min").astype(np.float64)
    hi = to_real(x_max, "x_max").astype(np.float64)
    check_one_grows({"x_min": lo.shape, "x_max": hi.shape})
    if np.any(lo > hi):
        raise ValueError("x_min must not exceed x_max")
    return np.broadcast_arrays(np.minimum(lo, 0.0), np.maximum(hi, 0.0))


def _check_range_scale(scale: np.ndarray) -> None:
    """A nonzero range must give a scale float32 can hold (zero-width ranges get 1.0)."""
    bad = float32_misfit(scale)
    if bad is not None:
        raise ValueError(
            f"x_min and x_max span a range whose scale {bad:g} float32 cannot hold "
            f"({FLOAT32_RANGE_TEXT}; reconstructions are float32): rescale the data"
        )


def qparams(x_min, x_max, bits: int = 8, signed: bool = True):
    r"""Scale and zero point that map [x_min, x_max] onto the integer range (chapter 2).

    The range is first widened to contain 0, then

    .. math::  S = \frac{x_{max} - x_{min}}{q_{max} - q_{min}}, \qquad
               Z = \operatorname{clamp}\big(\operatorname{round}(q_{min} - x_{min}/S),
               q_{min}, q_{max}\big)

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
    The range of X = [-3.0, 0.1, 3.2], the worked example of one of the book's starting
    notebooks (seed 001, see chapter 2):

    >>> qparams(-3.0, 3.2)
    (0.02431372549019608, -5)
    """
    qmin, qmax = qrange(bits, signed)
    lo, hi = _range_ends(x_min, x_max)
    with np.errstate(over="ignore"):
        scale = (hi - lo) / (qmax - qmin)  # an overflow to inf is reported just below
    _check_range_scale(scale)
    if lo.ndim == 0 and not any(is_tensor(v) for v in (x_min, x_max)):
        scale = float(scale) if scale > 0 else 1.0
        zero_point = int(np.clip(np.rint(qmin - float(lo) / scale), qmin, qmax))
        return scale, zero_point
    # Arrays store float32 scales; the zero point is computed from the stored scale.
    scale = scale.astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0))
    zero_point = np.clip(np.rint(qmin - lo / scale.astype(np.float64)), qmin, qmax)
    return like(scale, x_min, x_max), like(zero_point.astype(np.int64), x_min, x_max)


def quantize(x, scale, zero_point, bits: int = 8, signed: bool = True, group_size=None):
    r"""Real values to integer codes (chapter 2).

    .. math::  q = \operatorname{clamp}\big(\operatorname{round}(x / S) + Z,
               q_{min}, q_{max}\big)

    ``round`` is round half to even. ``scale`` and ``zero_point`` broadcast against ``x``
    (per-channel parameters), or against ``x`` grouped by ``group_size`` (per-group parameters
    of shape ``(..., n / g, 1)``, as :func:`quantize_minmax` makes them). Values outside the
    representable range are clamped (that is the *clipping error*, see :func:`clipping_error`).

    Returns
    -------
    q : int8 (signed) or uint8 (unsigned) array of ``x``'s shape, or tensor if ``x`` was one.

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
    view = _blocks.grouped(a, group_size)
    x_name = "x" if group_size is None else "x grouped by group_size"
    check_param_shape(s.shape, view.shape, "scale", x_name)
    check_param_shape(z.shape, view.shape, "zero_point", x_name)

    def codes(x, s, z):
        t = x / s
        np.rint(t, out=t)                       # round(x / S), half to even
        t += z                                  # + Z
        return np.clip(t, qmin, qmax, out=t)    # clamp to [q_min, q_max]

    q = _in_cache_sized_pieces(codes, view, s, z, _container(signed))
    return like(_blocks.ungrouped(q, a.shape), x, scale, zero_point)


def _in_cache_sized_pieces(formula, a: np.ndarray, s: np.ndarray, z: np.ndarray,
                           container: type) -> np.ndarray:
    """``formula(a, s, z)`` stored in ``container``, computed a few rows of ``a`` at a time.

    The fast path of :func:`quantize`: about 2**16 values at a time make float temporaries of
    256 KB that stay in the CPU cache, instead of four full-size ones (64 MB each for 2**24
    float32 values) and four trips to memory. ``a`` computes in :func:`work_dtype` (float32
    stays float32); ``s`` and ``z`` broadcast against it. A 0-d ``a`` gives a 0-d NumPy scalar.
    """
    w = work_dtype(a)
    shape = a.shape
    # A 0-d input is worked on as one row of one value.
    a, s, z = (np.broadcast_to(v, shape or (1,)) for v in (a, s.astype(w), z.astype(w)))
    out = np.empty(shape or (1,), container)
    for rows in _row_blocks(out.shape):
        with np.errstate(over="ignore"):  # |x/S| beyond float range is clamped anyway
            out[rows] = formula(a[rows].astype(w, copy=False), s[rows], z[rows])
    out = out.reshape(shape)
    return out if shape else out[()]  # scalar in, NumPy scalar out


def _row_blocks(shape: tuple[int, ...], values: int = 1 << 16) -> list[slice]:
    """Slices of the first axis that cover about ``values`` elements each (at least one row)."""
    row = math.prod(shape[1:])
    step = max(1, values // max(row, 1))
    return [slice(start, start + step) for start in range(0, shape[0], step)]


def dequantize(q, scale, zero_point, group_size=None):
    r"""Integer codes back to real values (float32, chapter 2).

    .. math::  \hat{x} = S\,(q - Z)

    Computed as ``float32(S) * float32(q - Z)`` (what PyTorch 2.13 does for a float32 tensor).
    ``q`` holds whole numbers; ``scale`` and ``zero_point`` (an int32 number) broadcast against
    it without growing it (per-group parameters: pass the ``group_size`` they were made with).
    A result beyond float32's range is a ``ValueError``.
    """
    qa = _codes(q)
    s = _scale_array(scale)
    z = _zero_point_array(zero_point)
    view = _blocks.grouped(qa, group_size)
    q_name = "q" if group_size is None else "q grouped by group_size"
    check_param_shape(s.shape, view.shape, "scale", q_name)
    check_param_shape(z.shape, view.shape, "zero_point", q_name)
    steps = np.subtract(view, z, dtype=np.float32)  # exact: codes and zero points are small ints
    with np.errstate(over="ignore"):
        x_hat = (s.astype(np.float32) * steps).astype(np.float32, copy=False)
    _check_no_overflow(x_hat, qa, s)
    return like(_blocks.ungrouped(x_hat, qa.shape), q, scale, zero_point)


def _check_no_overflow(x_hat: np.ndarray, qa: np.ndarray, s: np.ndarray) -> None:
    # 1-byte codes and a zero point within int32 are at most 2**32 steps from it: a scale
    # below 2**95 cannot overflow float32, so the common case needs no pass over the result.
    if qa.itemsize == 1 and (s.size == 0 or float(s.max()) < 2.0**95):
        return
    if x_hat.size and not np.isfinite(x_hat).all():
        raise ValueError(
            "scale * (q - zero_point) exceeds float32's range: q or scale is too large for a "
            "float32 reconstruction"
        )


def quantize_minmax(x, bits: int = 8, signed: bool = True, axis=None, group_size=None):
    r"""Quantize with the data's own minimum and maximum as the range (chapter 2), per tensor,
    per channel (``axis``) or per group (``group_size``), as :func:`quantbook.symmetric.quantize`.

    .. math::  (S_B, Z_B) = \operatorname{qparams}(\min_{i \in B} x_i, \max_{i \in B} x_i),
               \qquad q_i = \operatorname{quantize}(x_i, S_B, Z_B) \quad (i \in B)

    Returns ``(q, scale, zero_point)``: per tensor a Python float and int (an empty ``x`` gives
    ``(1.0, qmin)``), per channel or group arrays of the scale shapes that
    :func:`quantbook.symmetric.quantize` gives (dequantize per-group codes with the same
    ``group_size``).
    """
    a = to_real(x, "x")
    if axis is None and group_size is None:
        lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
    else:
        lo = _blocks.reduce(a, np.min, axis, group_size)
        hi = _blocks.reduce(a, np.max, axis, group_size)
    try:
        scale, zero_point = qparams(lo, hi, bits, signed)
    except ValueError as error:
        if "x_min and x_max" not in str(error):
            raise
        raise ValueError(f"x spans [{np.min(lo):g}, {np.max(hi):g}]: {error}") from None
    q = quantize(x, scale, zero_point, bits, signed, group_size)
    if isinstance(scale, float):
        return q, scale, zero_point
    return q, like(to_numpy(scale), x), like(to_numpy(zero_point), x)


def fake_quantize(x, scale, zero_point, bits: int = 8, signed: bool = True, group_size=None):
    r"""Quantize then dequantize ("fake quantization"): what the network sees after rounding
    (chapter 2).

    .. math::  \hat{x} = S\,(\operatorname{quantize}(x) - Z)
    """
    q = quantize(x, scale, zero_point, bits, signed, group_size)
    return dequantize(q, scale, zero_point, group_size)


def representable_range(scale, zero_point, bits: int = 8, signed: bool = True):
    r"""The smallest and largest real values the codes can stand for (chapter 2).

    .. math::  [S\,(q_{min} - Z),\; S\,(q_{max} - Z)]

    Returned as :func:`dequantize` computes them (float32), so clamped values reconstruct to
    exactly these ends.
    """
    qmin, qmax = qrange(bits, signed)
    z = _zero_point_array(zero_point, qmin, qmax)
    s = _scale_array(scale)
    shape = check_one_grows({"scale": s.shape, "zero_point": z.shape})
    lo = to_numpy(dequantize(np.full(shape, qmin), s, z))
    hi = to_numpy(dequantize(np.full(shape, qmax), s, z))
    if lo.ndim == 0 and not any(is_tensor(v) for v in (scale, zero_point)):
        return float(lo), float(hi)
    return like(lo, scale, zero_point), like(hi, scale, zero_point)


def _clip_to_range(a: np.ndarray, scale, zero_point, bits, signed) -> np.ndarray:
    lo, hi = representable_range(to_numpy(scale, "scale"), to_numpy(zero_point, "zero_point"),
                                 bits, signed)
    check_param_shape(np.shape(lo), a.shape, "scale and zero_point")
    w = work_dtype(a)
    return np.clip(a.astype(w, copy=False), np.asarray(lo, w), np.asarray(hi, w))


def _round_trip(a: np.ndarray, scale, zero_point, bits, signed) -> np.ndarray:
    # NumPy in and out, whatever kind the caller's scale and zero point are.
    s, z = to_numpy(scale, "scale"), to_numpy(zero_point, "zero_point")
    return dequantize(quantize(a, s, z, bits, signed), s, z)


def clipping_error(x, scale, zero_point, bits: int = 8, signed: bool = True):
    r"""The part of the error caused by clamping values outside the representable range (chapter 2).

    .. math::  e_{clip} = x - \operatorname{clip}(x, S(q_{min} - Z), S(q_{max} - Z))

    Zero for every value inside the range. ``clipping_error + rounding_error`` is the total
    error ``x - fake_quantize(x)`` (see :func:`quantization_error`).
    """
    a = to_real(x, "x")
    e = a.astype(work_dtype(a), copy=False) - _clip_to_range(a, scale, zero_point, bits, signed)
    return like(e, x, scale, zero_point)


def rounding_error(x, scale, zero_point, bits: int = 8, signed: bool = True):
    r"""The part of the error caused by rounding to the nearest code (chapter 2).

    .. math::  e_{round} = \operatorname{clip}(x, S(q_{min} - Z), S(q_{max} - Z)) - \hat{x}

    Bounded by ``S / 2`` in absolute value (up to float rounding); zero for clamped values.
    """
    a = to_real(x, "x")
    x_hat = _round_trip(a, scale, zero_point, bits, signed)
    e = _clip_to_range(a, scale, zero_point, bits, signed) - x_hat
    return like(e, x, scale, zero_point)


def quantization_error(x, scale, zero_point, bits: int = 8, signed: bool = True):
    r"""Total error of the round trip (chapter 2).

    .. math::  e = x - \hat{x} = e_{clip} + e_{round}
    """
    a = to_real(x, "x")
    x_hat = _round_trip(a, scale, zero_point, bits, signed)
    return like(a.astype(work_dtype(a), copy=False) - x_hat, x, scale, zero_point)


def quantize_with_scale_factor(x, scale_factor, zero_point, bits: int = 8, signed: bool = True):
    r"""The same map written with the *inverse* scale, as many tutorials do (chapter 2).

    .. math::  q = \operatorname{clamp}\big(\operatorname{round}(s_f\,x) + Z,
               q_{min}, q_{max}\big), \qquad s_f = 1 / S

    ``s_f`` counts integer steps per real unit (the book's starting notebook seed 001, see chapter
    2, prints "Scale factor = 41.129..." for ``255 / 6.2``). Multiplying by ``1/S`` instead of
    dividing by ``S`` can land on the other side of a rounding tie in floating point, so the two
    forms may differ by one step on rare values.
    """
    bits = check_bits(bits)
    qmin, qmax = qrange(bits, signed)
    a = to_real(x, "x")
    sf = _scale_array(scale_factor, "scale_factor")
    z = _zero_point_array(zero_point, qmin, qmax)
    check_param_shape(sf.shape, a.shape, "scale_factor")
    check_param_shape(z.shape, a.shape, "zero_point")
    w = work_dtype(a)
    with np.errstate(over="ignore"):
        t = np.rint(a.astype(w, copy=False) * sf.astype(w))
    q = np.clip(t + z.astype(w), qmin, qmax).astype(_container(signed))
    return like(q, x, scale_factor, zero_point)


def dequantize_with_scale_factor(q, scale_factor, zero_point):
    r"""Inverse of :func:`quantize_with_scale_factor` (float32, chapter 2).

    .. math::  \hat{x} = (q - Z) / s_f
    """
    qa = _codes(q)
    sf = _scale_array(scale_factor, "scale_factor")
    z = _zero_point_array(zero_point)
    check_param_shape(sf.shape, qa.shape, "scale_factor", "q")
    check_param_shape(z.shape, qa.shape, "zero_point", "q")
    steps = np.subtract(qa, z, dtype=np.float32)
    with np.errstate(over="ignore"):
        x_hat = (steps / sf.astype(np.float32)).astype(np.float32, copy=False)
    if x_hat.size and not np.isfinite(x_hat).all():
        raise ValueError("(q - zero_point) / scale_factor exceeds float32's range: q or "
                         "scale_factor is too extreme for a float32 reconstruction")
    return like(x_hat, q, scale_factor, zero_point)


def zero_point_truncated(x_min, x_max, bits: int = 8, signed: bool = True):
    r"""The zero point as some code computes it: truncated with ``int()`` instead of rounded
    (chapter 2).

    .. math::  Z_{trunc} = \operatorname{trunc}\!\left(
               \frac{x_{max}\,q_{min} - x_{min}\,q_{max}}{x_{max} - x_{min}}\right)

    Algebraically the fraction equals :math:`q_{min} - x_{min}/S`; :func:`qparams` rounds it,
    this truncates toward zero, so the two differ by one whenever the fractional part is at
    least one half (e.g. [-100, 80] at 8 bits: 13 here, 14 from :func:`qparams`). The range is
    widened to contain 0 as in :func:`qparams`.
    """
    qmin, qmax = qrange(bits, signed)
    lo, hi = _range_ends(x_min, x_max)
    with np.errstate(over="ignore"):
        width = hi - lo
    _check_range_scale(width / (qmax - qmin))
    safe = np.where(width > 0, width, 1.0)
    z = np.where(width > 0, np.trunc((hi * qmin - lo * qmax) / safe), qmin)
    if z.ndim == 0 and not any(is_tensor(v) for v in (x_min, x_max)):
        return int(z)
    return like(z.astype(np.int64), x_min, x_max)
