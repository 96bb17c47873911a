"""GPTQ: round one weight column at a time and push its error onto the columns not yet rounded.

A linear layer ``y = x W^T`` with weights ``W`` (out, in) sees calibration inputs ``X``
(samples, in). Quantizing ``W`` to ``Ŵ`` changes the outputs by ``(W - Ŵ) X^T``; GPTQ
(Frantar et al., 2023) minimizes that *layer objective* row by row,

.. math::  \\min_{\\hat W} \\lVert W X^\\top - \\hat W X^\\top \\rVert_F^2
           = \\min_{\\hat W} \\sum_r (w_r - \\hat w_r)^\\top \\tfrac12 H\\, (w_r - \\hat w_r),
           \\qquad H = 2 X^\\top X ,

greedily, as OBQ (Frantar & Alistarh, 2022) does, but in a fixed column order for all rows:
round column :math:`j`, then correct the columns :math:`k > j` with the inverse Hessian of the
columns left,

.. math::  \\delta_r = \\frac{w_{rj} - \\hat w_{rj}}{[H^{-1}]_{jj}}, \\qquad
           w_{r,k} \\leftarrow w_{r,k} - \\delta_r [H^{-1}]_{jk} \\quad (k > j),

where the rows of the upper Cholesky factor :math:`U` of :math:`H^{-1}` (:math:`H^{-1} = U^\\top U`)
hold exactly these successive inverses. This module follows the reference implementation
(IST-DASLab/gptq, ``gptq.py`` ``fasterquant`` and ``quant.py`` ``Quantizer``) step by step:
dampening ``damp * mean(diag H)`` on the diagonal, dead inputs (``diag H = 0``) zeroed, lazy
batches of 128 columns, a fresh grid at each group start, act-order. Like the reference, it
updates the weights in float32 (``W.float()``); the factor of the inverse Hessian is computed in
float64 and rounded to float32, and each grid in float64. Results agree with the reference up
to float rounding, not bit for bit (nor across BLAS builds and thread counts: a last bit moved
by a product can flip a later rounding).

The grid (shared with :func:`round_to_nearest` and :mod:`quantbook.awq`) is the reference's
asymmetric min/max grid per output row (or per group of a row): the range always contains 0,

.. math::  x_{min} = \\min(0, \\min_j w_j), \\quad x_{max} = \\max(0, \\max_j w_j), \\quad
           S = \\frac{x_{max} - x_{min}}{2^b - 1}, \\quad Z = \\operatorname{round}(-x_{min}/S),

    \\hat w = S\\,(\\operatorname{clamp}(\\operatorname{round}(w/S) + Z, 0, 2^b - 1) - Z);

a row that is all zero gets the range [-1, 1], as in the reference, so its scale is never 0.
Rounding is half to even (``torch.round``, ``np.rint``).
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from quantbook import _blocks
from quantbook._arrays import check_bits, check_finite, like, to_numpy

__all__ = [
    "BLOCK_SIZE",
    "grid",
    "quantize_to_grid",
    "round_to_nearest",
    "hessian",
    "layer_error",
    "quantize",
    "quantize_with_hessian",
]

BLOCK_SIZE = 128  # columns per lazy batch, as the reference's default ``blocksize``


def _matrix(a, name: str, what: str) -> np.ndarray:
    arr = to_numpy(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D {what} matrix, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    check_finite(arr, name)
    return arr.astype(np.float64)


def _check_group_size(group_size, n_in: int) -> int | None:
    """None (one grid per row) or a group size that divides ``n_in`` (blocks of (1, g))."""
    if group_size is None:
        return None
    return _blocks.block_size((1, n_in), group_size=group_size)[-1]


def grid(w, bits: int = 4):
    """Scale and zero point of the reference's asymmetric min/max grid, one per row of ``w``.

    .. math::  S = \\frac{\\max(0, \\max_j w_j) - \\min(0, \\min_j w_j)}{2^b - 1}, \\qquad
               Z = \\operatorname{round}\\!\\left(\\frac{-\\min(0, \\min_j w_j)}{S}\\right)

    ``w`` is (rows, columns); returns ``(scale, zero)``, float64 arrays of shape (rows, 1). A row
    that is all zero gets ``x_min = -1``, ``x_max = 1`` (the reference's guard against S = 0).
    """
    bits = check_bits(bits)
    a = np.asarray(w, dtype=np.float64)
    maxq = 2**bits - 1
    xmin = np.minimum(a.min(axis=1), 0.0)
    xmax = np.maximum(a.max(axis=1), 0.0)
    both_zero = (xmin == 0) & (xmax == 0)
    xmin = np.where(both_zero, -1.0, xmin)
    xmax = np.where(both_zero, 1.0, xmax)
    scale = (xmax - xmin) / maxq
    zero = np.rint(-xmin / scale)
    return scale[:, None], zero[:, None]


def quantize_to_grid(w, scale, zero, bits: int = 4):
    """Round onto a grid and map back (the reference's ``quantize``).

    .. math::  \\hat w = S\\,(\\operatorname{clamp}(\\operatorname{round}(w/S) + Z, 0, 2^b-1) - Z)
    """
    bits = check_bits(bits)
    q = np.clip(np.rint(np.asarray(w, dtype=np.float64) / scale) + zero, 0, 2**bits - 1)
    return scale * (q - zero)


def round_to_nearest(w, bits: int = 4, group_size=None):
    """The baseline: every weight to its nearest point of the grid GPTQ uses (RTN).

    .. math::  \\hat W_{r, G} = \\operatorname{quantize\\_to\\_grid}(W_{r,G}; S_{r,G}, Z_{r,G})

    One grid (:func:`grid`) per output row, or per ``group_size`` consecutive inputs of a row
    (blocks of shape (1, g), as everywhere in the package; ``g`` must divide in_features, where the
    reference would also accept a shorter last group). ``w`` is (out, in); returns float32 of
    ``w``'s shape (a tensor if a tensor came in).
    """
    bits = check_bits(bits)
    a = _matrix(w, "w", "(out_features, in_features) weight")
    groups = _blocks.grouped(a, _check_group_size(group_size, a.shape[1]))
    if a.size == 0:
        return like(a.astype(np.float32), w)
    rows = groups.reshape(-1, groups.shape[-1])   # one row per grid: a weight row or a group
    scale, zero = grid(rows, bits)
    w_hat = quantize_to_grid(rows, scale, zero, bits)
    return like(_blocks.ungrouped(w_hat, a.shape).astype(np.float32), w)


def hessian(x):
    """The Hessian of the layer objective with respect to one row of weights.

    .. math::  H = 2 X^\\top X \\qquad (X \\text{ is (samples, in)}, H \\text{ is (in, in)})

    (The reference averages over its calibration samples, ``2/n X^T X``; the factor changes
    nothing, since the dampening is relative to ``mean(diag H)``.) float64.
    """
    a = _matrix(x, "x", "(samples, in_features) calibration")
    return 2.0 * (a.T @ a)


def layer_error(w, w_hat, x) -> float:
    """The layer objective: squared change of the layer's outputs on the calibration inputs.

    .. math::  \\lVert W X^\\top - \\hat W X^\\top \\rVert_F^2
    """
    a, b = _matrix(w, "w", "weight"), _matrix(w_hat, "w_hat", "weight")
    xx = _matrix(x, "x", "(samples, in_features) calibration")
    if a.shape != b.shape:
        raise ValueError(f"w {a.shape} and w_hat {b.shape} must have the same shape")
    if xx.shape[1] != a.shape[1]:
        raise ValueError(f"x has {xx.shape[1]} features but w has in_features={a.shape[1]}")
    return float(np.sum(np.square((a - b) @ xx.T)))


_FACTORS: dict = {}     # recent factors by (hash of H, damp): shared inputs, repeated settings
_FACTORS_MAX_BYTES = 256 * 2**20
_FACTORS_LOCK = threading.Lock()    # layers may be quantized on several threads


def _inverse_hessian_factor(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor U of the dampened H^-1 (H^-1 = U^T U), as the reference computes it.

    The result depends on H and damp only; recent ones are kept (keyed by a hash of H's bytes,
    at most 256 MB), so quantizing several weights that read the same input, or one weight at
    several bit widths, factors H once.
    """
    key = (hashlib.sha256(np.ascontiguousarray(h).tobytes()).hexdigest(), h.shape, float(damp))
    with _FACTORS_LOCK:
        if key in _FACTORS:
            return _FACTORS[key]
    u = _factor(h, damp)
    u.flags.writeable = False
    with _FACTORS_LOCK:
        while _FACTORS and sum(v.nbytes for v in _FACTORS.values()) + u.nbytes > _FACTORS_MAX_BYTES:
            _FACTORS.pop(next(iter(_FACTORS)))
        _FACTORS[key] = u
    return u


def _factor(h: np.ndarray, damp: float) -> np.ndarray:
    """U upper with U^T U = (H + damp * mean(diag H) I)^-1, from one Cholesky factorization.

    The reference computes cholesky(H), cholesky_inverse, then cholesky(upper=True). The same
    factor (Cholesky factors are unique) comes cheaper: with J the reversal permutation and
    J H J = L L^T, H = R R^T where R = J L J is upper triangular, so H^-1 = (R^-1)^T R^-1 and
    U = R^-1 = J L^-1 J.
    """
    h = h.copy()
    h[np.diag_indices_from(h)] += damp * np.mean(np.diag(h))
    with _one_blas_thread():
        try:
            lower = np.linalg.cholesky(h[::-1, ::-1])
        except np.linalg.LinAlgError:
            raise ValueError(
                "H = 2 X^T X of the calibration inputs x is singular (not positive definite); "
                "give x more samples than features that are linearly independent, or use damp > 0"
            ) from None
        return np.ascontiguousarray(_lower_inverse(lower)[::-1, ::-1])


def _one_blas_thread():
    """The factorization on one BLAS thread: at these sizes OpenBLAS's threaded Cholesky spends
    more CPU time waiting than computing (several times more on a loaded machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _lower_inverse(lower: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix: LAPACK's trtri through SciPy when it is installed
    (a third of the work of a general inverse), else NumPy's general inverse."""
    try:
        from scipy.linalg.lapack import dtrtri
    except ImportError:  # pragma: no cover - SciPy is optional
        return np.tril(np.linalg.inv(lower))
    inv, info = dtrtri(lower, lower=1)
    if info != 0:  # pragma: no cover - a Cholesky factor has a positive diagonal
        raise ValueError("the Cholesky factor of H is singular")
    return np.tril(inv)


def quantize(w, x, bits: int = 4, group_size=None, damp: float = 0.01, act_order: bool = False):
    """GPTQ: quantize the weights ``w`` (out, in) of a linear layer for the inputs ``x``.

    .. math::  \\hat w_{:,j} = \\operatorname{quantize\\_to\\_grid}(w_{:,j}), \\quad
               \\delta = \\frac{w_{:,j} - \\hat w_{:,j}}{U_{jj}}, \\quad
               w_{:,k} \\leftarrow w_{:,k} - \\delta\\, U_{jk} \\;\\; (k > j),
               \\qquad U^\\top U = (H + \\lambda I)^{-1}

    with :math:`\\lambda` = ``damp`` times the mean of diag H. Steps, as the reference:

    1. the per-row grid is computed once on the original ``w`` (without groups);
    2. inputs that never fire (diag H = 0, "dead") get H_jj = 1 and weight 0;
    3. ``act_order``: columns are processed in order of decreasing diag H (the inputs with the
       most energy first), and put back in place at the end;
    4. the columns run in lazy batches of ``BLOCK_SIZE``: the error is pushed inside the
       batch at once and onto the later columns once per batch (the same result, fewer passes
       over memory);
    5. with ``group_size``, a new grid is computed at every ``group_size``-th column *in
       processing order*, from the weights as they stand at the start of the current batch
       (the reference reads them from ``W``, which is updated once per batch: with the default
       128 and ``group_size=128`` that is exactly the current weights; smaller groups inside a
       batch see weights without the corrections of the batch's earlier columns). With
       ``act_order`` a group is therefore a set of columns of similar energy, not a contiguous
       range of inputs (the reference's default; its later ``static_groups`` option differs).

    ``x`` is (samples, in). Returns the dequantized weights Ŵ, float32, ``w``'s shape (a torch
    tensor if ``w`` was one). ``damp=0`` with a singular H raises ValueError.
    """
    bits = check_bits(bits)
    w_arr = _matrix(w, "w", "(out_features, in_features) weight")
    x_arr = _matrix(x, "x", "(samples, in_features) calibration")
    if x_arr.shape[1] != w_arr.shape[1]:
        raise ValueError(f"x must be (samples, {w_arr.shape[1]}) to match w's in_features, "
                         f"got shape {x_arr.shape}")
    if x_arr.shape[0] == 0:
        raise ValueError("x must hold at least one calibration sample")
    q = _gptq(w_arr, 2.0 * (x_arr.T @ x_arr), bits, group_size, damp, act_order)
    return like(q, w)


def quantize_with_hessian(w, h, bits: int = 4, group_size=None, damp: float = 0.01,
                          act_order: bool = False):
    """:func:`quantize` from a Hessian ``h`` = 2 XᵀX (in, in) instead of the inputs themselves.

    .. math::  H = 2 X^\\top X = 2 \\sum_{\\text{batches}} X_b^\\top X_b

    Useful when H is accumulated batch by batch, or shared by layers that read the same input
    (a model's query, key and value projections). ``h`` must be symmetric.
    """
    bits = check_bits(bits)
    w_arr = _matrix(w, "w", "(out_features, in_features) weight")
    h_arr = _matrix(h, "h", "(in_features, in_features) Hessian")
    if h_arr.shape != (w_arr.shape[1], w_arr.shape[1]):
        raise ValueError(f"h must be ({w_arr.shape[1]}, {w_arr.shape[1]}) to match w, "
                         f"got shape {h_arr.shape}")
    if not np.allclose(h_arr, h_arr.T, rtol=1e-6, atol=0):
        raise ValueError("h must be symmetric (H = 2 X^T X)")
    return like(_gptq(w_arr, h_arr.copy(), bits, group_size, damp, act_order), w)


def _gptq(w_arr: np.ndarray, H: np.ndarray, bits: int, group_size, damp, act_order) -> np.ndarray:
    n_out, n_in = w_arr.shape
    group_size = _check_group_size(group_size, n_in)
    if isinstance(damp, bool) or not isinstance(damp, (int, float, np.floating, np.integer)):
        raise TypeError(f"damp must be a non-negative number, got {damp!r}")
    if not (np.isfinite(damp) and damp >= 0):
        raise ValueError(f"damp must be a finite non-negative number, got {damp}")
    if not isinstance(act_order, (bool, np.bool_)):
        raise TypeError(f"act_order must be True or False, got {act_order!r}")

    W = w_arr.astype(np.float32)                  # float32, as the reference's W.float()
    scale, zero = grid(W, bits)                    # 1. per-row grid, original weights
    dead = np.diag(H) == 0                         # 2. dead inputs
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(n_in)
    W = W[:, perm]                                 # 3. act-order
    H = H[np.ix_(perm, perm)]
    U = _inverse_hessian_factor(H, float(damp)).astype(np.float32)

    Q = np.zeros_like(W)
    for i1 in range(0, n_in, BLOCK_SIZE):          # 4. lazy batches
        i2 = min(i1 + BLOCK_SIZE, n_in)
        W1 = W[:, i1:i2].copy()
        err = np.zeros_like(W1)
        for i in range(i2 - i1):
            if group_size is not None and (i1 + i) % group_size == 0:   # 5. groups
                scale, zero = grid(W[:, i1 + i:i1 + i + group_size], bits)
            col = W1[:, i]
            q = quantize_to_grid(col[:, None], scale, zero, bits)[:, 0].astype(np.float32)
            Q[:, i1 + i] = q
            e = (col - q) / U[i1 + i, i1 + i]
            W1[:, i:] -= np.outer(e, U[i1 + i, i1 + i:i2])
            err[:, i] = e
        W[:, i2:] -= err @ U[i1:i2, i2:]
    return Q[:, np.argsort(perm)].astype(np.float32)
