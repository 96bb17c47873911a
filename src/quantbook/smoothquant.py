"""Activation outliers in a linear layer: W8A8, LLM.int8()'s decomposition, SmoothQuant.

A linear layer ``y = x W^T + b`` has weights ``W`` (out, in) and inputs ``X`` (tokens, in).
Transformer activations have a few *outlier channels* (input features j whose values are many
times larger than the rest), so one int8 scale for all of ``X`` wastes its grid on them.

- **W8A8** (:func:`w8a8_linear`): activations and weights both int8 (symmetric absmax), the
  product summed exactly in integers and rescaled once: :math:`y \\approx S_x S_w\\, q_x q_w^T + b`.
- **LLM.int8()** (Dettmers et al., 2022; :func:`int8_decomposition_linear`): the input columns
  whose magnitude reaches a threshold (6.0 in the paper and in bitsandbytes) are multiplied in
  float, the rest in int8 with one scale per token (row of X) and one per output (row of W).
- **SmoothQuant** (Xiao et al., 2023; :func:`smoothing_factors`, :func:`smooth_weight`,
  :func:`smooth_activations`): divide input channel j by :math:`s_j` and multiply column j of W
  by it, which changes nothing in exact arithmetic and moves the difficulty from the
  activations to the weights.

``smoothing_factors`` follows mit-han-lab/smoothquant ``smoothquant/smooth.py``
(``smooth_ln_fcs``): the weight maxima are clamped to at least 1e-5, and so are the factors.
"""

from __future__ import annotations

import numpy as np

from quantbook import symmetric
from quantbook._arrays import check_bits, like, to_real

__all__ = [
    "CLAMP",
    "LLM_INT8_THRESHOLD",
    "activation_absmax",
    "weight_absmax",
    "smoothing_factors",
    "smooth_weight",
    "smooth_activations",
    "integer_product",
    "w8a8_linear",
    "outlier_columns",
    "int8_decomposition_linear",
]

CLAMP = 1e-5             # smooth.py: weight_scales.clamp(min=1e-5), scales.clamp(min=1e-5)
LLM_INT8_THRESHOLD = 6.0  # LLM.int8()'s outlier threshold (bitsandbytes' llm_int8_threshold)


def _real(a, name: str, ndim: int, what: str) -> np.ndarray:
    arr = to_real(a, name)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {what}, got shape {arr.shape}")
    return arr


def _plus_bias(y: np.ndarray, bias, out_features: int) -> np.ndarray:
    """``y + b`` for a bias of shape (out_features,), or ``y`` when there is none."""
    if bias is None:
        return y
    b = _real(bias, "bias", 1, "1-D, one bias per output")
    if b.shape != (out_features,):
        raise ValueError(f"bias must have shape ({out_features},), got {b.shape}")
    return y + b


def activation_absmax(x):
    """Largest magnitude of every input channel over all tokens (SmoothQuant's ``act_scales``).

    .. math::  \\max_i |X_{ij}|

    ``x`` is (..., in): every axis but the last counts as tokens. Returns shape (in,).
    """
    a = to_real(x, "x")
    if a.ndim < 1 or a.shape[-1] == 0:
        raise ValueError(f"x must be (..., in_features) with in_features > 0, got {a.shape}")
    flat = np.abs(a.reshape(-1, a.shape[-1]))
    if flat.shape[0] == 0:
        raise ValueError("x must hold at least one token")
    return like(flat.max(axis=0), x)


def weight_absmax(w):
    """Largest magnitude of every input column of a weight (out, in): ``w.abs().max(dim=0)``.

    .. math::  \\max_k |W_{kj}|
    """
    a = _real(w, "w", 2, "a 2-D (out_features, in_features) weight")
    return like(np.abs(a).max(axis=0), w)


def smoothing_factors(x_absmax, w_absmax, alpha: float = 0.5):
    """SmoothQuant's migration strength per input channel.

    .. math::  s_j = \\max\\!\\left(\\frac{\\max_i |X_{ij}|^{\\alpha}}
               {\\max(\\max_k |W_{kj}|,\\, 10^{-5})^{1-\\alpha}},\\; 10^{-5}\\right)

    ``x_absmax`` and ``w_absmax`` have one non-negative entry per input channel (shape (in,)).
    ``alpha`` in [0, 1]: 0 scales every weight column to maximum 1 (all the range stays in the
    activations), 1 scales every activation channel to maximum 1 (all of it moves into the
    weights); 0.5 gives both sides the same maximum. Computed in the inputs' float type
    (float32 stays float32, as in the reference).
    """
    xa = _real(x_absmax, "x_absmax", 1, "1-D, one absmax per input channel")
    wa = _real(w_absmax, "w_absmax", 1, "1-D, one absmax per input channel")
    if xa.shape != wa.shape:
        raise ValueError(f"x_absmax {xa.shape} and w_absmax {wa.shape} must have the same shape")
    if (xa < 0).any() or (wa < 0).any():
        raise ValueError("x_absmax and w_absmax must be non-negative (maxima of magnitudes)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a number from 0 to 1, got {alpha!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be from 0 to 1, got {alpha}")
    dtype = np.result_type(xa.dtype, wa.dtype, np.float32)
    xa, wa = xa.astype(dtype), wa.astype(dtype)
    a = dtype.type(alpha)
    w_clamped = np.maximum(wa, dtype.type(CLAMP))
    s = np.maximum(xa**a / w_clamped ** (dtype.type(1) - a), dtype.type(CLAMP))
    return like(s, x_absmax, w_absmax)


def _factors(s, n: int) -> np.ndarray:
    sv = _real(s, "s", 1, "1-D, one factor per input channel")
    if sv.shape != (n,):
        raise ValueError(f"s must have shape ({n},), one factor per input channel, got {sv.shape}")
    if not (sv > 0).all():
        raise ValueError("s must hold positive factors")
    return sv


def smooth_weight(w, s):
    """The weight after smoothing: column j of W (out, in) multiplied by :math:`s_j`.

    .. math::  W' = W \\operatorname{diag}(s)

    (In ``torch.nn.Linear``'s layout y = x Wᵀ, this is ``diag(s) Wᵀ`` of the paper's
    ``(X diag(s)^-1)(diag(s) W)`` with W (in, out).)
    """
    a = _real(w, "w", 2, "a 2-D (out_features, in_features) weight")
    sv = _factors(s, a.shape[1])
    return like((a * sv[None, :]).astype(np.result_type(a.dtype, np.float32)), w, s)


def smooth_activations(x, s):
    """The activations after smoothing: input channel j divided by :math:`s_j`.

    .. math::  X' = X \\operatorname{diag}(s)^{-1}, \\qquad X' W'^\\top = X W^\\top

    ``x`` is (..., in). In a model the division is folded into the LayerNorm before the layer.
    """
    a = to_real(x, "x")
    if a.ndim < 1:
        raise ValueError("x must be (..., in_features)")
    sv = _factors(s, a.shape[-1])
    return like((a / sv).astype(np.result_type(a.dtype, np.float32)), x, s)


EXACT_CHUNK = 1024  # 1024 * 127**2 < 2**24: a float32 sum of that many int8 products is exact


def integer_product(qa, qb):
    """The exact integer product of int8 codes, ``qa`` (m, k) times ``qb`` (n, k) transposed.

    .. math::  \\mathrm{acc}_{ik} = \\sum_j q_{a,ij}\\, q_{b,kj}

    The same numbers as :func:`quantbook.matmul.integer_matmul` (``qa @ qb.T``), computed with
    float32 BLAS: every partial sum of at most 1024 products of codes in [-127, 127] is an integer
    below 1024 * 127**2 < 2**24, which float32 holds exactly, whatever the summation order; the
    chunks of 1024 are added in float64. Returns float64 holding integers.
    """
    a = np.asarray(qa)
    b = np.asarray(qb)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"qa {a.shape} and qb {b.shape} must be (m, k) and (n, k)")
    if a.size and np.abs(a).max() > 127 or b.size and np.abs(b).max() > 127:
        raise ValueError("qa and qb must hold codes in [-127, 127]")
    acc = np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    for start in range(0, a.shape[1], EXACT_CHUNK):
        cols = slice(start, start + EXACT_CHUNK)
        acc += a[:, cols].astype(np.float32) @ b[:, cols].astype(np.float32).T
    return acc


def w8a8_linear(x, w, bias=None, x_scale=None, per_channel: bool = False, bits: int = 8,
                w_scale=None):
    """A linear layer with int8 activations and int8 weights (symmetric absmax scales).

    .. math::  y = S_x S_w \\sum_j q_{x,ij}\\, q_{w,kj} + b_k, \\qquad
               q_x = \\operatorname{clamp}(\\operatorname{round}(X / S_x), -127, 127)

    ``x`` (tokens, in), ``w`` (out, in). ``x_scale``: a calibrated activation scale (static
    quantization; values beyond it are clamped); None means ``max|X| / 127`` of this very ``x``
    (dynamic). Weights: one scale per tensor, or per output row with ``per_channel``; ``w_scale``
    gives it when it was computed elsewhere (a number, or one per row with ``per_channel``), for
    instance over the whole layer when ``w`` holds some of its rows; None means absmax of this
    ``w``, ``max|W| / 127`` (per row: ``max_j |W_kj| / 127``). The integer
    sum is exact (:func:`integer_product`: the same numbers as
    :func:`quantbook.matmul.integer_matmul`, computed much faster).
    Returns float32 (tokens, out).
    """
    bits = check_bits(bits)
    xa = _real(x, "x", 2, "a 2-D (tokens, in_features) matrix")
    wa = _real(w, "w", 2, "a 2-D (out_features, in_features) weight")
    if xa.shape[1] != wa.shape[1]:
        raise ValueError(f"x has {xa.shape[1]} features but w has in_features={wa.shape[1]}")
    top = 2 ** (bits - 1) - 1
    if x_scale is None:
        sx = float(symmetric.absmax_scale(xa, bits))
    else:
        sx = float(to_real(x_scale, "x_scale"))
        if not sx > 0:
            raise ValueError(f"x_scale must be positive, got {sx}")
    qx = np.clip(np.rint(xa.astype(np.float32) / np.float32(sx)), -top, top)
    if w_scale is None:
        qw, sw = symmetric.quantize(wa.astype(np.float32), bits, axis=0 if per_channel else None)
    else:
        sw = _weight_scale(w_scale, wa.shape[0], per_channel)
        divisor = sw.astype(np.float32).reshape(-1, 1) if per_channel else np.float32(sw)
        qw = np.clip(np.rint(wa.astype(np.float32) / divisor), -top, top)
    acc = integer_product(qx, qw)                                  # exact integers
    sw = np.asarray(sw, dtype=np.float64).reshape(1, -1) if per_channel else float(sw)
    y = acc * (sx * sw)
    return like(_plus_bias(y, bias, wa.shape[0]).astype(np.float32), x, w)


def _weight_scale(w_scale, rows: int, per_channel: bool) -> np.ndarray:
    """``w_scale`` checked: positive and finite, a number (per tensor) or one per row."""
    sw = np.asarray(to_real(w_scale, "w_scale"), dtype=np.float64)
    want = (rows,) if per_channel else ()
    if sw.shape != want and not (per_channel and sw.shape == (rows, 1)):
        what = f"one scale per output row, shape ({rows},)" if per_channel else "one number"
        raise ValueError(f"w_scale must be {what}, got shape {sw.shape}")
    if not (sw > 0).all():
        raise ValueError("w_scale must be positive")
    return sw.reshape(want)


def outlier_columns(x, threshold: float = LLM_INT8_THRESHOLD):
    """Input channels LLM.int8() keeps in float: those where some ``|X_ij|`` reaches the threshold.

    .. math::  O = \\{\\, j : \\max_i |X_{ij}| \\ge \\tau \\,\\}

    Returns the sorted indices (int64).
    """
    a = to_real(x, "x")
    if a.ndim < 1:
        raise ValueError("x must be (..., in_features)")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    return np.flatnonzero(np.abs(a.reshape(-1, a.shape[-1])).max(axis=0) >= threshold)


def int8_decomposition_linear(x, w, bias=None, threshold: float = LLM_INT8_THRESHOLD):
    """LLM.int8()'s mixed-precision decomposition of ``y = x W^T + b``.

    .. math::  y = X_{:,O} W_{:,O}^\\top + \\operatorname{diag}(S_x)\\,
               (q_{x} q_{w}^\\top)\\, \\operatorname{diag}(S_w) + b, \\qquad
               S_{x,i} = \\frac{\\max_{j \\notin O} |X_{ij}|}{127}, \\quad
               S_{w,k} = \\frac{\\max_{j \\notin O} |W_{kj}|}{127}

    The outlier columns O (:func:`outlier_columns`) are multiplied in float; the others in int8
    with vector-wise scales (one per token, one per output row), the integer sum exact.
    Returns float32 (tokens, out).
    """
    xa = _real(x, "x", 2, "a 2-D (tokens, in_features) matrix")
    wa = _real(w, "w", 2, "a 2-D (out_features, in_features) weight")
    if xa.shape[1] != wa.shape[1]:
        raise ValueError(f"x has {xa.shape[1]} features but w has in_features={wa.shape[1]}")
    outliers = outlier_columns(xa, threshold)
    keep = np.ones(xa.shape[1], dtype=bool)
    keep[outliers] = False
    x_f, w_f = xa.astype(np.float32), wa.astype(np.float32)
    y = x_f[:, outliers].astype(np.float64) @ w_f[:, outliers].astype(np.float64).T
    if keep.any():
        qx, sx = symmetric.quantize(x_f[:, keep], 8, axis=0)     # one scale per token
        qw, sw = symmetric.quantize(w_f[:, keep], 8, axis=0)     # one scale per output row
        acc = integer_product(qx, qw)
        sx64 = np.asarray(sx, np.float64).reshape(-1, 1)
        y = y + acc * sx64 * np.asarray(sw, np.float64).reshape(1, -1)
    return like(_plus_bias(y, bias, wa.shape[0]).astype(np.float32), x, w)
