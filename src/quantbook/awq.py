"""AWQ: scale up the input channels that carry large activations before rounding the weights.

A linear layer ``y = x W^T`` is unchanged if input channel :math:`j` of ``x`` is divided by
:math:`s_j` and column :math:`j` of ``W`` multiplied by it. Rounding ``W diag(s)`` instead of
``W`` makes the rounding error of column :math:`j` (relative to the column) :math:`s_j` times
smaller once it is divided back, which protects the inputs that matter. AWQ (Lin et al., 2024)
takes the scales from the mean activation magnitude and searches one exponent:

.. math::  s_j(\\alpha) = \\frac{\\bar x_j^{\\alpha}}{\\sqrt{\\max_k \\bar x_k^{\\alpha}\\,
           \\min_k \\bar x_k^{\\alpha}}}, \\qquad \\bar x_j = \\operatorname{mean}_i |X_{ij}|,
           \\qquad \\hat W(\\alpha) = Q(W \\operatorname{diag}(s))\\, \\operatorname{diag}(s)^{-1},

    \\alpha^* = \\arg\\min_{\\alpha \\in \\{0, \\frac1{20}, \\dots, \\frac{19}{20}\\}}
               \\lVert X W^\\top - X \\hat W(\\alpha)^\\top \\rVert_F^2 .

This follows ``auto_scale.py`` of mit-han-lab/llm-awq (``get_act_scale``: mean of ``|x|``;
``_search_module_scale``: ``n_grid = 20``, ``x_max.pow(ratio).clamp(min=1e-4)``, normalized by
``sqrt(max * min)``, strictly better loss wins). Two differences, on purpose: the loss is the
output of this one layer (llm-awq measures the output of the block the layer sits in, and
scales the layers that share an input together), and the quantizer :math:`Q` is the grid of
:mod:`quantbook.gptq` (per output row, or per group), so RTN, GPTQ and AWQ are compared on the
same grid (llm-awq's ``pseudo_quantize_tensor`` is also asymmetric min/max per group, but does not
force 0 into the range). llm-awq's second step, clipping the weight range (``auto_clip``), is
not done here. No Hessian is needed: only a mean per channel, and forward passes.

:math:`\\alpha = 0` gives :math:`s = 1`, that is round-to-nearest, so the search is never worse
than RTN on the calibration set.
"""

from __future__ import annotations

import numpy as np

from quantbook import gptq
from quantbook._arrays import check_bits, like, to_numpy, to_real

__all__ = ["N_GRID", "activation_scale", "scales", "scaled_round", "search", "search_from_stats"]

N_GRID = 20


def activation_scale(x):
    """Mean magnitude of every input channel over the calibration samples (llm-awq's
    ``get_act_scale``).

    .. math::  \\bar x_j = \\frac{1}{n} \\sum_{i=1}^{n} |X_{ij}|

    ``x`` is (samples, in); returns float64 of shape (in,) (a tensor if a tensor came in).
    """
    a = gptq._matrix(x, "x", "(samples, in_features) calibration")
    if a.shape[0] == 0:
        raise ValueError("x must hold at least one calibration sample")
    return like(np.mean(np.abs(a), axis=0), x)


def scales(x_mean, alpha: float):
    """AWQ's per-input-channel scales for one exponent.

    .. math::  s_j = \\frac{t_j}{\\sqrt{\\max_k t_k \\min_k t_k}}, \\qquad
               t_j = \\max(\\bar x_j^{\\alpha}, 10^{-4})

    ``x_mean`` from :func:`activation_scale` (non-negative, shape (in,)). ``alpha = 0`` gives all
    ones.
    """
    m = to_real(x_mean, "x_mean").astype(np.float64)
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"x_mean must be 1-D, one mean magnitude per input, got shape {m.shape}")
    if (m < 0).any():
        raise ValueError("x_mean must be non-negative (mean magnitudes)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a number, got {alpha!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be from 0 to 1, got {alpha}")
    t = np.maximum(m ** float(alpha), 1e-4)
    return like(t / np.sqrt(t.max() * t.min()), x_mean)


def scaled_round(w, s, bits: int = 4, group_size=None):
    """Round ``W diag(s)`` on the grid and divide the scales back out.

    .. math::  \\hat W = Q(W \\operatorname{diag}(s))\\, \\operatorname{diag}(s)^{-1}

    ``w`` (out, in), ``s`` (in,) positive. Returns float64.
    """
    a = gptq._matrix(w, "w", "(out_features, in_features) weight")
    sv = np.asarray(to_numpy(s, "s"), dtype=np.float64)
    if sv.shape != (a.shape[1],):
        raise ValueError(f"s must have shape ({a.shape[1]},), one scale per input, got {sv.shape}")
    if not (np.isfinite(sv).all() and (sv > 0).all()):
        raise ValueError("s must hold finite positive scales")
    q = gptq.round_to_nearest(a * sv[None, :], bits, group_size).astype(np.float64)
    return q / sv[None, :]


def search(w, x, bits: int = 4, group_size=None, n_grid: int = N_GRID):
    """AWQ's grid search over the exponent, on one linear layer.

    .. math::  \\alpha^* = \\arg\\min_{\\alpha = k / n_{grid}}
               \\lVert X W^\\top - X \\hat W(\\alpha)^\\top \\rVert_F^2, \\quad
               k = 0, \\dots, n_{grid} - 1

    ``x`` (samples, in). Computes :func:`activation_scale` and :math:`G = X^\\top X`, then
    :func:`search_from_stats`. Returns a dict: ``w_hat`` (float32, ``w``'s shape, a tensor if
    ``w`` was one), ``alpha``, ``scales`` (float64, (in,)), ``losses`` (one per α) and ``alphas``.
    """
    a = gptq._matrix(w, "w", "(out_features, in_features) weight")
    xx = gptq._matrix(x, "x", "(samples, in_features) calibration")
    if xx.shape[1] != a.shape[1]:
        raise ValueError(f"x must be (samples, {a.shape[1]}) to match w's in_features, "
                         f"got shape {xx.shape}")
    result = search_from_stats(a, activation_scale(xx), xx.T @ xx, bits, group_size, n_grid)
    result["w_hat"] = like(result["w_hat"], w)
    return result


def search_from_stats(w, x_mean, gram, bits: int = 4, group_size=None, n_grid: int = N_GRID):
    """:func:`search` from the two statistics it needs: the mean magnitude per input channel and
    the Gram matrix of the inputs.

    .. math::  \\lVert X W^\\top - X \\hat W^\\top \\rVert_F^2
               = \\operatorname{tr}\\big((W - \\hat W)\\, G\\, (W - \\hat W)^\\top\\big)
               = \\sum_{jk} \\big[(W - \\hat W)^\\top (W - \\hat W)\\big]_{jk} G_{jk},
               \\qquad G = X^\\top X

    (the statistics :mod:`quantbook.activations` caches). Ties keep the smaller α, so α = 0
    (RTN) wins unless another α is strictly better. α = 0 is rounded and scored in float64; the
    other candidates are rounded and scored in float32, as llm-awq works in half or single
    precision (it halves the time; float32 rounding, about 1e-6 of the loss, can only reorder
    near ties); when W has at least as many rows as columns they are scored by the last form of
    the trace (a symmetric product, half the work of the first). The winner is rounded and
    scored again in float64 (:func:`scaled_round`) and kept only if it beats α = 0 there. So
    ``losses[0]`` and the winner's loss are float64, and the result is never worse than RTN on
    the calibration statistics.
    """
    bits = check_bits(bits)
    a = gptq._matrix(w, "w", "(out_features, in_features) weight")
    g = gptq._matrix(gram, "gram", "(in_features, in_features) Gram")
    m = to_real(x_mean, "x_mean")
    if g.shape != (a.shape[1], a.shape[1]) or m.shape != (a.shape[1],):
        raise ValueError(f"gram must be ({a.shape[1]}, {a.shape[1]}) and x_mean ({a.shape[1]},) "
                         f"to match w, got {g.shape} and {m.shape}")
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 1:
        raise ValueError(f"n_grid must be a positive integer, got {n_grid!r}")
    gptq._check_group_size(group_size, a.shape[1])
    alphas = np.arange(n_grid) / n_grid
    losses = np.empty(n_grid)
    g32, a32 = g.astype(np.float32), a.astype(np.float32)
    w_hat = scaled_round(a, scales(m, 0.0), bits, group_size)      # alpha = 0: RTN, float64
    losses[0] = _loss(a - w_hat, g)
    rtn = best = (0, scales(m, 0.0), w_hat)
    for k in range(1, n_grid):
        s = scales(m, float(alphas[k]))
        losses[k] = _loss32(a32 - _scaled_round32(a32, s.astype(np.float32), bits, group_size),
                            g32)
        if losses[k] < losses[best[0]]:
            best = (k, s, None)
    k, s, w_hat = best
    if k != 0:   # the winner, rounded and scored again in float64, must beat alpha = 0 (RTN)
        w_hat = scaled_round(a, s, bits, group_size)
        losses[k] = _loss(a - w_hat, g)
        if not losses[k] < losses[0]:
            k, s, w_hat = rtn
    return {"w_hat": like(w_hat.astype(np.float32), w), "alpha": float(alphas[k]), "scales": s,
            "losses": losses, "alphas": alphas}


def _scaled_round32(a: np.ndarray, s: np.ndarray, bits: int, group_size) -> np.ndarray:
    """:func:`scaled_round` in float32, in place where it can be (the search's candidates)."""
    ws = a * s[None, :]
    rows = ws.reshape(a.shape[0], -1, group_size or a.shape[1])
    maxq = np.float32(2**bits - 1)
    xmin = np.minimum(rows.min(axis=2, keepdims=True), 0)
    xmax = np.maximum(rows.max(axis=2, keepdims=True), 0)
    both_zero = (xmin == 0) & (xmax == 0)
    xmin[both_zero], xmax[both_zero] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = np.rint(-xmin / scale)
    np.divide(rows, scale, out=rows)
    np.rint(rows, out=rows)
    rows += zero
    np.clip(rows, 0, maxq, out=rows)
    rows -= zero
    rows *= scale
    ws /= s[None, :]
    return ws


def _loss32(d: np.ndarray, gram: np.ndarray) -> float:
    """tr(Δ G Δᵀ) in float32; as the sum of (ΔᵀΔ) ∘ G when Δ is tall (ΔᵀΔ is a symmetric
    product, half the work of Δ G)."""
    if d.shape[0] >= d.shape[1]:
        return float(np.sum((d.T @ d) * gram, dtype=np.float64))
    return float(np.sum((d @ gram) * d, dtype=np.float64))


def _loss(delta: np.ndarray, gram: np.ndarray) -> float:
    """tr(Δ G Δᵀ), in the precision of ``gram`` (float32 halves the cost of the product)."""
    d = delta.astype(gram.dtype, copy=False)
    return float(np.sum((d @ gram) * d, dtype=np.float64))
