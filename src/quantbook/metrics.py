r"""How far the reconstruction :math:`\hat{x}` is from the original :math:`x` (chapters 2-7).

Two more describe the original alone, the shape that decides how well a per-tensor grid fits it
(chapters 3 and 4): :func:`crest_factor` and :func:`excess_kurtosis`.

All of them return Python floats and accumulate in float64, so a float32 reconstruction of a
float64 original is measured as precisely as NumPy measures it.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook._arrays import check_same_shape, to_real

__all__ = ["mse", "max_abs_error", "sqnr_db", "crest_factor", "excess_kurtosis"]


def _pair(x, x_hat) -> tuple[np.ndarray, np.ndarray]:
    a = to_real(x, "x")
    b = to_real(x_hat, "x_hat")
    check_same_shape(a, b, "x", "x_hat")
    if a.size == 0:
        raise ValueError("x is empty: an error metric needs at least one value")
    return a, b


def _error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Promote to float64 before subtracting, as NumPy does for a float64/float32 pair.
    return np.subtract(a, b, dtype=np.float64)


def mse(x, x_hat) -> float:
    r"""Mean squared error (chapter 2).

    .. math::  \mathrm{MSE} = \frac{1}{n} \sum_i (x_i - \hat{x}_i)^2

    In float64: ``inf`` when the mean square exceeds float64's range (errors beyond ~1e154).
    """
    a, b = _pair(x, x_hat)
    with np.errstate(over="ignore"):
        return float(np.mean(_error(a, b) ** 2))


def max_abs_error(x, x_hat) -> float:
    r"""Largest absolute error (chapter 2).

    .. math::  \max_i |x_i - \hat{x}_i|
    """
    a, b = _pair(x, x_hat)
    return float(np.max(np.abs(_error(a, b))))


def sqnr_db(x, x_hat) -> float:
    r"""Signal-to-quantization-noise ratio in decibels (chapter 3).

    .. math::  \mathrm{SQNR} = 10 \log_{10}
               \frac{\sum_i x_i^2}{\sum_i (x_i - \hat{x}_i)^2}

    ``inf`` for a perfect reconstruction (every error exactly zero, an all-zero ``x`` included),
    ``-inf`` for an all-zero signal with some noise. Each extra bit adds about 6.02 dB.

    Computed in float64. When a sum of squares would overflow or underflow float64 (values
    beyond about :math:`2^{\pm 460}`), each sum is taken of values scaled by a power of two and
    the scale is added back in the logarithm,

    .. math::  10 \log_{10} \sum_i v_i^2 = 20 \log_{10} 2^k
               + 10 \log_{10} \sum_i (v_i / 2^k)^2,

    so huge and tiny finite inputs give a finite answer instead of NaN or inf.
    """
    a, b = _pair(x, x_hat)
    with np.errstate(over="ignore"):
        e = _error(a, b)
    if not np.isfinite(e).all():  # x - x_hat overflowed: subtract halves (exact powers of 2)
        e = np.subtract(np.ldexp(a.astype(np.float64), -1), np.ldexp(b.astype(np.float64), -1))
        e_log2_offset = 1
    else:
        e_log2_offset = 0
    peak_x = float(np.max(np.abs(a)))
    peak_e = float(np.max(np.abs(e)))
    if peak_e == 0.0:
        return math.inf
    if peak_x == 0.0:
        return -math.inf
    if e_log2_offset == 0 and all(2.0**-460 <= p <= 2.0**460 for p in (peak_x, peak_e)):
        signal = float(np.sum(np.square(a, dtype=np.float64)))
        noise = float(np.sum(e**2))
        return 10.0 * math.log10(signal / noise)
    # e holds (x - x_hat) / 2**e_log2_offset: add the offset back to the noise
    noise_log10 = _log10_sum_squares(e) + 2.0 * e_log2_offset * math.log10(2.0)
    return 10.0 * (_log10_sum_squares(a) - noise_log10)


def _log10_sum_squares(v: np.ndarray) -> float:
    """log10 of the sum of squares, from values scaled by a power of two (no over/underflow)."""
    k = int(np.frexp(float(np.max(np.abs(v))))[1])  # max|v| = f * 2**k, f in [0.5, 1)
    scaled = np.ldexp(v.astype(np.float64), -k)
    return 2.0 * k * math.log10(2.0) + math.log10(float(np.sum(scaled**2)))


def _values(x) -> np.ndarray:
    a = to_real(x, "x")
    if a.size == 0:
        raise ValueError("x is empty: a shape statistic needs at least one value")
    return a.astype(np.float64)


def crest_factor(x) -> float:
    r"""Peak over root mean square: how far the largest value stands out (chapter 3).

    .. math::  C = \frac{\max_i |x_i|}{\sqrt{\frac{1}{n} \sum_i x_i^2}}

    :math:`C = 1` for values of equal magnitude, :math:`\sqrt{3}` for a uniform spread, and
    :math:`\sqrt{n}` for one spike among zeros. Symmetric :math:`b`-bit quantization with the
    scale set by the peak has :math:`\mathrm{SQNR} \approx 10 \log_{10}
    \big(12\, (2^{b-1} - 1)^2 / C^2\big)`, so every doubling of :math:`C` costs about 6 dB.

    In float64. ValueError for an all-zero ``x`` (no RMS to divide by). When the squares would
    overflow or underflow float64, the values are divided by the peak first (:math:`C` does
    not change).
    """
    a = _values(x)
    peak = float(np.max(np.abs(a)))
    if peak == 0.0:
        raise ValueError("x is all zeros: its crest factor (peak / RMS) is undefined")
    if 2.0**-460 <= peak <= 2.0**460:
        return float(peak / np.sqrt(np.mean(a**2)))
    return float(1.0 / np.sqrt(np.mean((a / peak) ** 2)))


def excess_kurtosis(x) -> float:
    r"""How heavy the tails are, against a normal distribution's (chapter 3).

    .. math::  \kappa = \frac{\frac{1}{n} \sum_i (x_i - \bar{x})^4}
               {\Big(\frac{1}{n} \sum_i (x_i - \bar{x})^2\Big)^2} - 3

    0 for a normal distribution, :math:`-1.2` for a uniform one, large for a few outliers among
    many small values. The moments are the population ones (divided by :math:`n`), as
    ``scipy.stats.kurtosis(x, fisher=True, bias=True)`` computes them.

    In float64. ValueError for a constant ``x`` (no spread to divide by). When the fourth powers
    would overflow or underflow float64, the deviations are divided by their largest magnitude
    first (:math:`\kappa` does not change).
    """
    a = _values(x)
    peak = float(np.max(np.abs(a)))
    if 2.0**-230 <= peak <= 2.0**230:
        d = a - a.mean()
        spread = float(np.max(np.abs(d)))
        if spread >= 2.0**-230:
            return float(np.mean(d**4) / a.var() ** 2 - 3)
    else:
        d = a / peak
        d = d - d.mean()
        spread = float(np.max(np.abs(d)))
    if spread == 0.0:
        raise ValueError("x is constant: its excess kurtosis is undefined (variance 0)")
    e = d / spread
    return float(np.mean(e**4) / np.mean(e**2) ** 2 - 3)
