r"""Quantization-aware training: fake quantization that a network can be trained through.

The forward pass rounds, exactly as :func:`quantbook.affine.fake_quantize`:

.. math::  \hat{x} = S\,\big(\operatorname{clamp}(\operatorname{round}(x / S) + Z,
           q_{min}, q_{max}) - Z\big)

``round`` is flat between half-integers, so its derivative is 0 almost everywhere and the chain
rule would stop every gradient. The *straight-through estimator* (STE, Bengio et al. 2013)
pretends that rounding is the identity in the backward pass and keeps only the clamp:

.. math::  \frac{\partial \hat{x}}{\partial x} \approx
           \mathbb{1}\big[S(q_{min} - Z) \le x \le S(q_{max} - Z)\big]

*Learned step size quantization* (LSQ, Esser et al. 2020) uses the same estimator for ``x`` and
also trains the step (scale) ``S``, with its gradient scaled by :math:`g = 1/\sqrt{N Q_p}`.
BitNet b1.58's ternary weights (Ma et al. 2024) are at the end (:func:`absmean_ternary`).

torch is needed only for the autograd functions (:func:`fake_quantize_ste`,
:func:`lsq_fake_quantize`); it is imported when they are called.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook import affine
from quantbook._arrays import check_bits, is_tensor, like, to_real, work_dtype

__all__ = [
    "ste_mask",
    "fake_quantize_ste",
    "lsq_grad_scale",
    "lsq_step_init",
    "lsq_gradients",
    "lsq_fake_quantize",
    "absmean_ternary",
]


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is installed wherever the tests run
        raise ImportError(
            "quantbook.qat's autograd functions need PyTorch: pip install torch"
        ) from err
    return torch


def _check_signed(signed) -> bool:
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be True or False, got {signed!r}")
    return bool(signed)


def _check_scale(scale, name: str = "scale") -> np.ndarray:
    s = to_real(scale, name)  # NaN or an infinity: ValueError naming the argument
    if s.size and not (s > 0).all():
        raise ValueError(f"{name} must be positive (real units per integer step), got a value "
                         "<= 0")
    return s


def _check_zero_point(zero_point, qmin: int, qmax: int) -> np.ndarray:
    z = to_real(zero_point, "zero_point")
    if z.size and not (z == np.rint(z)).all():
        raise ValueError("zero_point must be a whole number (an integer code)")
    if z.size and not ((z >= qmin) & (z <= qmax)).all():
        raise ValueError(f"zero_point must lie in the integer range [{qmin}, {qmax}], got "
                         f"{z.min()}..{z.max()}")
    return z.astype(np.int64)


def _check_float_tensor(x, name: str = "x"):
    torch = _torch()
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor (an autograd function needs one), got "
                        f"{type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be a float32 or float64 tensor, got {x.dtype}")
    if x.device.type != "cpu":
        raise TypeError(f"{name} must be a CPU tensor, got one on {x.device}")
    return x


def _check_fits(param_shape: tuple, x_shape: tuple, name: str) -> None:
    """A per-channel parameter may broadcast against x, but never make x larger."""
    try:
        shape = np.broadcast_shapes(param_shape, x_shape)
    except ValueError:
        raise ValueError(f"{name} of shape {param_shape} does not broadcast against x of shape "
                         f"{x_shape}") from None
    if shape != tuple(x_shape):
        raise ValueError(f"{name} of shape {param_shape} would broadcast x of shape {x_shape} "
                         f"up to {shape}; give one {name} per slice of x")


# --- the straight-through estimator ---------------------------------------------------------


def ste_mask(x, scale, zero_point=0, bits: int = 8, signed: bool = True):
    r"""Where the straight-through estimator lets the gradient through.

    .. math::  m = \mathbb{1}\big[S(q_{min} - Z) \le x \le S(q_{max} - Z)\big]

    The ends are the float32 values of :func:`quantbook.affine.representable_range` (the
    values a clamped input reconstructs to), and both ends are inside. Returns a bool array
    (tensor if a tensor came in) of ``x``'s shape.

    Examples
    --------
    >>> ste_mask([-1.01, -1.0, 0.0, 0.75, 0.76], 0.25, 0, bits=3)   # range [-1.0, 0.75]
    array([False,  True,  True,  True, False])
    """
    bits = check_bits(bits)
    signed = _check_signed(signed)
    qmin, qmax = affine.qrange(bits, signed)
    a = to_real(x, "x")
    s = _check_scale(scale)
    z = _check_zero_point(zero_point, qmin, qmax)
    _check_fits(s.shape, a.shape, "scale")
    _check_fits(z.shape, a.shape, "zero_point")
    lo, hi = affine.representable_range(s, z, bits, signed)
    w = work_dtype(a)
    a = a.astype(w, copy=False)
    m = (a >= np.asarray(lo, w)) & (a <= np.asarray(hi, w))
    if a.ndim == 0 and not any(map(is_tensor, (x, scale, zero_point))):
        return m[()]
    return like(np.ascontiguousarray(m), x, scale, zero_point).reshape(a.shape)


_FUNCTIONS: dict = {}


def _functions() -> dict:
    """The torch.autograd.Function classes, built on first use (torch stays optional)."""
    if _FUNCTIONS:
        return _FUNCTIONS
    torch = _torch()

    class FakeQuantizeSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, bits, signed):
            xd = x.detach()
            # reshape: affine's torch path hands a 0-d tensor back with shape (1,)
            x_hat = affine.fake_quantize(xd, scale, zero_point, bits, signed).reshape(x.shape)
            mask = ste_mask(xd, scale, zero_point, bits, signed).reshape(x.shape)
            ctx.save_for_backward(mask)
            return x_hat.to(x.dtype)

        @staticmethod
        def backward(ctx, grad_output):
            (mask,) = ctx.saved_tensors
            return grad_output * mask, None, None, None, None

    class LSQFakeQuantize(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, step, bits, signed, grad_scale):
            x_hat = affine.fake_quantize(x.detach(), step.detach(), 0, bits, signed)
            x_hat = x_hat.reshape(x.shape)
            ctx.save_for_backward(x.detach(), step.detach())
            ctx.settings = (bits, signed, grad_scale)
            return x_hat.to(x.dtype)

        @staticmethod
        def backward(ctx, grad_output):
            x, step = ctx.saved_tensors
            bits, signed, g = ctx.settings
            dx, dstep = lsq_gradients(x, step, grad_output.detach(), bits, signed, g)
            return dx, dstep.to(step.dtype), None, None, None

    _FUNCTIONS.update(ste=FakeQuantizeSTE, lsq=LSQFakeQuantize)
    return _FUNCTIONS


def fake_quantize_ste(x, scale, zero_point=0, bits: int = 8, signed: bool = True):
    r"""Fake quantization with the straight-through estimator (a torch autograd function).

    Forward (bit for bit :func:`quantbook.affine.fake_quantize`, round half to even):

    .. math::  \hat{x} = S\,\big(\operatorname{clamp}(\operatorname{round}(x / S) + Z,
               q_{min}, q_{max}) - Z\big)

    Backward: the incoming gradient where ``x`` lies in the representable range, 0 outside
    (:func:`ste_mask`):

    .. math::  \frac{\partial L}{\partial x} = \frac{\partial L}{\partial \hat{x}}\;
               \mathbb{1}\big[S(q_{min} - Z) \le x \le S(q_{max} - Z)\big]

    ``scale`` and ``zero_point`` are fixed numbers here (scalars, or one per slice of ``x``
    broadcasting against it); they get no gradient. To learn the scale use
    :func:`lsq_fake_quantize`.

    Two conventions of ``torch.fake_quantize_per_tensor_affine`` differ (PyTorch 2.x CPU
    kernel): it rounds ``x * float32(1/S)`` instead of ``x / S``, so a value at or next to a
    tie (``x/S`` a half-integer) can round the other way; and it computes its mask from the
    rounded code, so it also passes the gradient for inputs up to half a step beyond the ends,
    which round onto the end code without being clamped. Everywhere else the two agree.

    Parameters
    ----------
    x : torch.Tensor, float32 or float64 (CPU)
    scale : positive finite float, or array/tensor broadcasting against ``x``
    zero_point : int in the integer range, or array/tensor of them
    bits : int from 2 to 8
    signed : bool, the integer range of :func:`quantbook.affine.qrange`

    Returns
    -------
    torch.Tensor of ``x``'s shape and dtype.
    """
    x = _check_float_tensor(x)
    bits = check_bits(bits)
    signed = _check_signed(signed)
    qmin, qmax = affine.qrange(bits, signed)
    s = _check_scale(scale)
    z = _check_zero_point(zero_point, qmin, qmax)
    _check_fits(s.shape, tuple(x.shape), "scale")
    _check_fits(z.shape, tuple(x.shape), "zero_point")
    return _functions()["ste"].apply(x, s, z, bits, signed)


# --- LSQ: learned step size ------------------------------------------------------------------


def lsq_grad_scale(n: int, bits: int = 8, signed: bool = True) -> float:
    r"""LSQ's gradient scale for a step shared by ``n`` values.

    .. math::  g = \frac{1}{\sqrt{N\,Q_p}}

    with :math:`Q_p = q_{max}` the largest positive code (Esser et al. 2020, section 2.2):
    it keeps the step's update in proportion to the step itself, whatever the layer size.
    ``n`` is the number of weights per step (or of features, for activations).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be a positive integer (values per step), got {n!r}")
    if n < 1:
        raise ValueError(f"n must be a positive integer (values per step), got {n}")
    _, qmax = affine.qrange(bits, _check_signed(signed))
    return 1.0 / math.sqrt(int(n) * qmax)


def lsq_step_init(x, bits: int = 8, signed: bool = True) -> float:
    r"""LSQ's initial step size.

    .. math::  S_0 = \frac{2\,\overline{|x|}}{\sqrt{Q_p}}
    """
    _, qmax = affine.qrange(bits, _check_signed(signed))
    a = to_real(x, "x")
    if a.size == 0:
        raise ValueError("x must not be empty: the step is set from its mean |x|")
    s0 = 2.0 * float(np.mean(np.abs(a), dtype=np.float64)) / math.sqrt(qmax)
    if not s0 > 0:
        raise ValueError("x is all zeros: LSQ's initial step 2 mean|x| / sqrt(Qp) would be 0")
    return s0


def _sum_to_shape(a: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``a`` over the axes that ``shape`` broadcasts along (the reverse of broadcasting)."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def lsq_gradients(x, step, grad_output, bits: int = 8, signed: bool = True,
                  grad_scale: float | None = None):
    r"""LSQ's backward pass: the gradients of the loss with respect to ``x`` and the step.

    With :math:`v = x / S` (computed as the forward pass does), :math:`Q_n = q_{min}`,
    :math:`Q_p = q_{max}` and the incoming gradient :math:`\delta = \partial L /
    \partial \hat{x}`:

    .. math::  \frac{\partial L}{\partial x} = \delta\;\mathbb{1}[Q_n \le v \le Q_p],
               \qquad
               \frac{\partial L}{\partial S} = g \sum \delta \cdot
               \begin{cases} Q_n & v < Q_n \\
                              \operatorname{round}(v) - v & Q_n \le v \le Q_p \\
                              Q_p & v > Q_p \end{cases}

    (Esser et al. 2020, eq. 3). The sum runs over the values that share a step (all of them
    for a scalar step; the broadcast axes for one step per channel). ``grad_scale`` is
    :math:`g`; ``None`` means :func:`lsq_grad_scale` with :math:`N` = values per step. The
    step's gradient is summed in float64 and returned in the step's dtype.

    Returns ``(dx, dstep)``: ``dx`` of ``x``'s shape and dtype, ``dstep`` of the step's shape.
    """
    bits = check_bits(bits)
    signed = _check_signed(signed)
    qmin, qmax = affine.qrange(bits, signed)
    a = to_real(x, "x")
    s = _check_scale(step, "step")
    d = to_real(grad_output, "grad_output")
    if d.shape != a.shape:
        raise ValueError(f"grad_output must have x's shape {a.shape}, got {d.shape}")
    _check_fits(s.shape, a.shape, "step")
    per_step = a.size // max(s.size, 1)
    g = lsq_grad_scale(max(per_step, 1), bits, signed) if grad_scale is None else grad_scale
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating, np.integer)):
        raise TypeError(f"grad_scale must be a positive number or None, got {grad_scale!r}")
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"grad_scale must be a positive finite number, got {g}")
    w = work_dtype(a)
    v = np.divide(a, s.astype(w), dtype=w)  # as affine.quantize computes x / S
    inside = (v >= qmin) & (v <= qmax)
    dx = (d * inside).astype(a.dtype if a.dtype.kind == "f" else w, copy=False)
    local = np.where(v < qmin, qmin, np.where(v > qmax, qmax, np.rint(v) - v))
    ds = _sum_to_shape(d.astype(np.float64) * local.astype(np.float64), s.shape) * g
    ds = np.asarray(ds).reshape(s.shape).astype(s.dtype if s.dtype.kind == "f" else w)
    if any(map(is_tensor, (x, step, grad_output))):
        return (like(np.ascontiguousarray(dx), x).reshape(a.shape),
                like(np.ascontiguousarray(ds), step).reshape(s.shape))
    return dx if dx.ndim else dx[()], ds if ds.ndim else ds[()]


def lsq_fake_quantize(x, step, bits: int = 8, signed: bool = True,
                      grad_scale: float | None = None):
    r"""Fake quantization with a learned step size (LSQ), as a torch autograd function.

    Forward, bit for bit :func:`quantbook.affine.fake_quantize` with zero point 0:

    .. math::  \hat{x} = S\,\operatorname{clamp}(\operatorname{round}(x / S), Q_n, Q_p)

    Backward: :func:`lsq_gradients` (the STE for ``x``, LSQ's formula for ``S``). ``step`` is
    a positive tensor of ``x``'s dtype, a scalar or one per slice of ``x``; make it a
    ``torch.nn.Parameter`` to train it. ``signed=False`` (codes 0 ... 2^b - 1) suits
    activations after a ReLU.
    """
    torch = _torch()
    x = _check_float_tensor(x)
    if not isinstance(step, torch.Tensor):
        raise TypeError(f"step must be a torch tensor (to be trained), got {type(step).__name__}")
    if step.dtype != x.dtype:
        raise TypeError(f"step must have x's dtype {x.dtype}, got {step.dtype}")
    bits = check_bits(bits)
    signed = _check_signed(signed)
    _check_scale(step, "step")
    _check_fits(tuple(step.shape), tuple(x.shape), "step")
    if grad_scale is None:
        grad_scale = lsq_grad_scale(max(x.numel() // max(step.numel(), 1), 1), bits, signed)
    return _functions()["lsq"].apply(x, step, bits, signed, float(grad_scale))


# --- BitNet b1.58: ternary weights -----------------------------------------------------------


def absmean_ternary(w, eps: float = 1e-5):
    r"""BitNet b1.58's weight quantizer: codes in {-1, 0, +1} and one scale per tensor.

    .. math::  \gamma = \frac{1}{nm}\sum_{ij} |W_{ij}|, \qquad
               \widetilde{W} = \operatorname{clamp}\big(\operatorname{round}(W / (\gamma
               + \epsilon)), -1, 1\big), \qquad W \approx \gamma\,\widetilde{W}

    (Ma et al. 2024, eq. 1-3; round half to even). Returns ``(codes, gamma)``: int8 codes of
    ``w``'s shape and the float scale.
    """
    a = to_real(w, "w")
    if a.size == 0:
        raise ValueError("w must not be empty: gamma is its mean |w|")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not (
            math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    gamma = float(np.mean(np.abs(a), dtype=np.float64))
    if gamma + eps == 0:
        raise ValueError("w is all zeros and eps is 0: the scale gamma + eps would be 0")
    w_ = work_dtype(a)
    codes = np.clip(np.rint(np.divide(a, gamma + eps, dtype=w_)), -1, 1).astype(np.int8)
    return like(codes, w), gamma
