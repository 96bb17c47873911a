"""Granularity (how many values share a scale) and calibration (which range the scale covers;
chapter 4).

Granularity: ``"per-tensor"`` (one scale), ``"per-channel"`` (one per slice along ``axis``, e.g.
per output row of a weight matrix), ``"per-group"`` (one per ``group_size`` consecutive values
along the last axis): blocks of shape (1, C) per row and (1, g) per group of a (R, C) matrix,
with scales of shape (R, 1) and (R, C / g, 1) (``quantbook._blocks`` holds the whole table).
Finer granularity lowers the error and costs extra bits for the scales: :func:`effective_bits`.

Calibration: the range [lo, hi] fed to :func:`quantbook.affine.qparams` may be the data's
min/max (:func:`minmax_range`), cut at percentiles (:func:`percentile_range`) or searched for the
lowest error (:func:`mse_optimal_range`): clipping a few outliers buys a finer step for all the
other values.
"""

from __future__ import annotations

import numpy as np

from quantbook import _blocks, affine, symmetric
from quantbook._arrays import (
    check_bits,
    check_choice,
    check_flag,
    check_group_size,
    check_integer,
    check_number,
    like,
    to_numpy,
    to_real,
    work_dtype,
)
from quantbook._blocks import GRANULARITIES
from quantbook.metrics import mse

__all__ = [
    "GRANULARITIES",
    "MAPPINGS",
    "fake_quantize",
    "granularity_errors",
    "num_scales",
    "effective_bits",
    "minmax_range",
    "absmax_range",
    "percentile_range",
    "fake_quantize_range",
    "range_errors",
    "mse_optimal_range",
]

# The two ways a scale maps reals to codes (torchao's MappingType): zero point 0, or a zero point.
MAPPINGS = ("symmetric", "affine")


def fake_quantize(x, bits: int = 8, granularity: str = "per-tensor", group_size: int = 32,
                  axis: int = 0, scheme: str = "symmetric"):
    r"""Quantize then dequantize with one scale per tensor, channel or group (float32, chapter 4).

    .. math::  \hat{x} = S_g\,(q - Z_g), \qquad g = \text{the tensor, channel or group of } x

    ``scheme`` is one of ``MAPPINGS``: ``"symmetric"``, absmax scale, zero point 0
    (:func:`quantbook.symmetric.fake_quantize`); ``"affine"``, min/max range with a zero point
    (:func:`quantbook.affine.quantize_minmax`, signed codes).
    ``axis`` is used per channel, ``group_size`` per group (groups along the last axis).
    """
    bits = check_bits(bits)
    axis, group_size = _blocks.from_granularity(granularity, axis, group_size)
    check_choice(scheme, "scheme", MAPPINGS)
    a = to_real(x, "x")
    if scheme == "symmetric":
        x_hat = to_numpy(symmetric.fake_quantize(a, bits, axis=axis, group_size=group_size))
    else:
        a = a.astype(work_dtype(a), copy=False)
        q, scale, zero_point = affine.quantize_minmax(a, bits, True, axis, group_size)
        x_hat = affine.dequantize(q, scale, zero_point, group_size)
    return like(x_hat, x)


def granularity_errors(x, bits: int = 4, group_size: int = 32, axis: int = 0,
                       scheme: str = "symmetric") -> dict:
    r"""Mean squared error of :func:`fake_quantize` at each granularity (chapter 4).

    .. math::  \mathrm{MSE}_g = \frac{1}{n}\sum_i (x_i - \hat{x}_i^{(g)})^2

    Returns ``{"per-tensor": ..., "per-channel": ..., "per-group": ...}`` (Python floats).
    """
    a = to_real(x, "x")
    return {
        g: mse(a, fake_quantize(a, bits, g, group_size=group_size, axis=axis, scheme=scheme))
        for g in GRANULARITIES
    }


def num_scales(shape, granularity: str = "per-tensor", group_size: int = 32,
               axis: int = 0) -> int:
    r"""How many scales a tensor of ``shape`` stores at a granularity (chapter 4).

    .. math::  1, \quad n_{axis}, \quad \frac{n}{g}

    One scale per block of values: the number of blocks, the granularity given by name.
    """
    axis, group_size = _blocks.from_granularity(granularity, axis, group_size)
    return _blocks.num_scales(shape, axis, group_size)


def effective_bits(bits: int, group_size, scale_bits: int = 16,
                   zero_point_bits: int = 0) -> float:
    r"""Storage per weight including the per-group scale (and zero point; chapter 4).

    .. math::  b_{eff} = b + \frac{b_{scale} + b_{zero}}{g}

    ``group_size=None`` means per tensor: the overhead is negligible and ``b`` is returned.
    (For the named block formats of chapters 5, 8 and 9, whose bytes are fixed,
    :func:`quantbook.formats.bits_per_weight` reads the same number off the format's table.)

    Examples
    --------
    >>> effective_bits(4, 32)          # llama.cpp's Q4_0: 32 weights share an fp16 scale
    4.5
    """
    bits = check_bits(bits, 1, 32)
    scale_bits = check_bits(scale_bits, 0, 64, name="scale_bits")
    zero_point_bits = check_bits(zero_point_bits, 0, 64, name="zero_point_bits")
    if group_size is None:
        return float(bits)
    group_size = check_group_size(group_size)
    return bits + (scale_bits + zero_point_bits) / group_size


def minmax_range(x) -> tuple[float, float]:
    r"""The data's own range: :math:`[\min x, \max x]` (``(0.0, 0.0)`` when empty)."""
    a = to_real(x, "x")
    if a.size == 0:
        return 0.0, 0.0
    return float(a.min()), float(a.max())


def absmax_range(x) -> tuple[float, float]:
    r"""The symmetric range :math:`[-\max|x|, \max|x|]`."""
    a = to_real(x, "x")
    m = float(np.max(np.abs(a), initial=0))
    return -m, m


def percentile_range(x, p: float = 99.9) -> tuple[float, float]:
    """Cut the tails: :math:`[P_{100-p}(x), P_{p}(x)]`, ``p`` from 50 to 100.

    ``p=100`` is :func:`minmax_range`. NumPy's default (linear) percentile interpolation.
    """
    a = to_real(x, "x")
    p = check_number(p, "p", 50, 100)
    if a.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(a, [100 - p, p])
    return float(lo), float(hi)


def fake_quantize_range(x, x_min: float, x_max: float, bits: int = 8, signed: bool = True):
    r"""Affine round trip with a calibrated range; values outside it are clamped (float32)
    (chapter 4).

    .. math::  (S, Z) = \operatorname{qparams}(x_{min}, x_{max}), \qquad
               \hat{x} = S\,(\operatorname{quantize}(x, S, Z) - Z)
    """
    scale, zero_point = affine.qparams(x_min, x_max, bits, signed)
    return affine.fake_quantize(x, scale, zero_point, bits, signed)


def range_errors(x, x_min: float, x_max: float, bits: int = 8, signed: bool = True) -> dict:
    r"""Split the mean squared error of a calibrated range into clipping and rounding parts
    (chapter 4).

    .. math::  \mathrm{MSE} = \frac{1}{n}\sum_i (e_{clip,i} + e_{round,i})^2

    Returns ``{"mse", "clipping_mse", "rounding_mse"}`` (the parts never overlap: a value is
    either clamped or rounded, so the two part-MSEs add up to the total).
    """
    a = to_real(x, "x")
    scale, zero_point = affine.qparams(x_min, x_max, bits, signed)
    e_clip = affine.clipping_error(a, scale, zero_point, bits, signed)
    e_round = affine.rounding_error(a, scale, zero_point, bits, signed)
    zeros = np.zeros(a.shape)
    return {
        "mse": mse(e_clip + e_round, zeros),
        "clipping_mse": mse(e_clip, zeros),
        "rounding_mse": mse(e_round, zeros),
    }


def mse_optimal_range(x, bits: int = 8, signed: bool = True, n_grid: int = 100,
                      symmetric: bool = False) -> tuple[float, float]:
    r"""The clipping range with the lowest round-trip error, by grid search (chapter 4).

    .. math::  \alpha^* = \arg\min_{\alpha \in \{1, \frac{n-1}{n}, \dots, \frac{1}{n}\}}
               \mathrm{MSE}\big(x, \hat{x}(\alpha\,x_{min}, \alpha\,x_{max})\big)

    The min/max range (or, with ``symmetric=True``, :math:`\pm\max|x|` with the restricted
    symmetric codes) is shrunk by each factor :math:`\alpha` on an even grid of ``n_grid``
    values; ties go to the widest range. Deterministic. Returns ``(lo, hi)``.
    """
    bits = check_bits(bits)
    n_grid = check_integer(n_grid, "n_grid", 1, 10**6)  # finer grids are below float precision
    symmetric = check_flag(symmetric, "symmetric")
    signed = check_flag(signed, "signed")
    a = to_real(x, "x")
    a = a.astype(work_dtype(a), copy=False)
    lo0, hi0 = absmax_range(a) if symmetric else minmax_range(a)
    if lo0 == hi0:
        return lo0, hi0
    top = 2 ** (bits - 1) - 1
    errors = []
    alphas = np.arange(n_grid, 0, -1) / n_grid  # widest first, so argmin prefers it on ties
    for alpha in alphas:
        if symmetric:
            scale = a.dtype.type(alpha * hi0 / top)
            x_hat = np.clip(np.rint(a / scale), -top, top) * scale
        else:
            x_hat = to_numpy(fake_quantize_range(a, alpha * lo0, alpha * hi0, bits, signed))
        errors.append(mse(a, x_hat))
    best = float(alphas[int(np.argmin(errors))])
    return best * lo0, best * hi0
