"""How far the reconstruction :math:`\\hat{x}` is from the original :math:`x`.

All three return Python floats and accumulate in float64, so a float32 reconstruction of a
float64 original is measured as precisely as NumPy measures it.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook._arrays import to_real

__all__ = ["mse", "max_abs_error", "sqnr_db"]


def _pair(x, x_hat) -> tuple[np.ndarray, np.ndarray]:
    a = to_real(x, "x")
    b = to_real(x_hat, "x_hat")
    if a.shape != b.shape:
        raise ValueError(f"x_hat must have the shape of x {a.shape}, got {b.shape}")
    if a.size == 0:
        raise ValueError("x is empty: an error metric needs at least one value")
    return a, b


def _error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Promote to float64 before subtracting, as NumPy does for a float64/float32 pair.
    return np.subtract(a, b, dtype=np.float64)


def mse(x, x_hat) -> float:
    """Mean squared error.

    .. math::  \\mathrm{MSE} = \\frac{1}{n} \\sum_i (x_i - \\hat{x}_i)^2
    """
    a, b = _pair(x, x_hat)
    return float(np.mean(_error(a, b) ** 2))


def max_abs_error(x, x_hat) -> float:
    """Largest absolute error.

    .. math::  \\max_i |x_i - \\hat{x}_i|
    """
    a, b = _pair(x, x_hat)
    return float(np.max(np.abs(_error(a, b))))


def sqnr_db(x, x_hat) -> float:
    """Signal-to-quantization-noise ratio in decibels.

    .. math::  \\mathrm{SQNR} = 10 \\log_{10}
               \\frac{\\sum_i x_i^2}{\\sum_i (x_i - \\hat{x}_i)^2}

    ``inf`` for a perfect reconstruction, ``-inf`` for an all-zero signal with some noise.
    Each extra bit adds about 6.02 dB.
    """
    a, b = _pair(x, x_hat)
    signal = float(np.sum(np.square(a, dtype=np.float64)))
    noise = float(np.sum(_error(a, b) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)
