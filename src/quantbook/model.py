r"""Quantize every linear layer of a torch model, and count the bytes it would take (chapter 7).

This is **weight-only fake quantization**: each ``nn.Linear`` weight :math:`W` is quantized with
:mod:`quantbook.symmetric` and immediately dequantized,

.. math::  \hat{W} = \tilde{S}\, q, \qquad
           q = \operatorname{clamp}(\operatorname{round}(W / S), -(2^{b-1}-1), 2^{b-1}-1),
           \qquad \tilde{S} = \operatorname{fp16}(S),

and :math:`\hat{W}` (float32) replaces :math:`W`. The model then computes in float32 exactly
what a weight-only kernel (int8 or int4 weights, float activations, e.g. W4A16) computes after it
dequantizes its weights on the fly: the *accuracy* is that of the quantized model. The memory is
not saved here (the weights are still float32); :func:`model_size_bytes` counts what the
quantized storage would take: packed codes plus one float16 scale per tensor, row or group.
Biases, LayerNorms and embedding tables stay float32.

Layout: ``nn.Linear.weight`` is (out_features, in_features). Per channel means one scale per
output row (``axis=0``, blocks of shape (1, in)); per group means ``g`` consecutive weights of a
row share a scale (``group_size=g``, blocks of shape (1, g): groups run along the input
dimension, the dimension the matmul sums over). The blocks are those of the
granularity table in ``quantbook._blocks``.

``torch`` is imported only inside the functions that need it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from quantbook import _blocks, symmetric
from quantbook._arrays import (
    as_real_array,
    check_flag,
    check_group_size,
    check_integer,
    check_shape,
    is_tensor,
    like,
)

__all__ = [
    "SCALE_BYTES",
    "Scheme",
    "SCHEMES",
    "get_scheme",
    "linear_layers",
    "quantize_weight",
    "fake_quantize_weight",
    "quantize_model",
    "weight_storage_bytes",
    "linear_weight_bytes",
    "model_size_bytes",
]

# Scales are stored as float16, as llama.cpp (Q4_0, Q8_0), GPTQ and AWQ store them.
SCALE_BYTES = 2


@dataclass(frozen=True)
class Scheme:
    """How a weight matrix is quantized: bit width and granularity.

    ``bits=32`` means "keep float32" (the reference). ``axis=0``: one scale per output row.
    ``group_size=g``: one scale per ``g`` consecutive weights along each row.
    """

    name: str
    bits: int
    axis: int | None = None
    group_size: int | None = None

    @property
    def is_float(self) -> bool:
        return self.bits == 32

    @property
    def granularity(self) -> str:
        if self.is_float:
            return "none"
        name = _blocks.granularity_name(self.axis, self.group_size)
        return f"{name} ({self.group_size})" if self.group_size is not None else name


SCHEMES = {
    s.name: s
    for s in (
        Scheme("float32", 32),
        Scheme("int8-per-tensor", 8),
        Scheme("int8-per-channel", 8, axis=0),
        Scheme("int4-per-channel", 4, axis=0),
        Scheme("int4-group-128", 4, group_size=128),
        Scheme("int4-group-32", 4, group_size=32),
    )
}


def get_scheme(scheme) -> Scheme:
    """A :class:`Scheme` from its name in ``SCHEMES`` (or a Scheme, returned as is)."""
    if isinstance(scheme, Scheme):
        bits = check_integer(scheme.bits, "scheme.bits", what="32 (float) or from 2 to 8")
        if bits != 32 and not 2 <= bits <= 8:
            raise ValueError(f"scheme.bits must be 32 (float) or from 2 to 8, got {scheme.bits}")
        if scheme.axis is not None:
            check_integer(scheme.axis, "scheme.axis", what="None or an integer axis")
        if scheme.group_size is not None:
            check_group_size(scheme.group_size, name="scheme.group_size")
        return scheme
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)} or a Scheme, got {scheme!r}")
    return SCHEMES[scheme]


def linear_layers(model) -> list:
    """Every ``torch.nn.Linear`` in ``model`` as ``(name, module)`` pairs, in model order."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def _weight_array(weight, name: str = "weight") -> np.ndarray:
    if is_tensor(weight):
        weight = weight.detach().cpu()
    w = as_real_array(weight, name, finite=False)
    if w.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (out_features, in_features) matrix, got {w.shape}")
    if w.dtype.kind != "f":
        raise TypeError(f"{name} must hold floats, got dtype {w.dtype}")
    w = w.astype(np.float32, copy=False)
    if w.size and not np.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or an infinite value (or values beyond float32)")
    return w


def quantize_weight(weight, scheme):
    r"""Integer codes and float16 scales of one (out, in) weight matrix (chapter 7).

    .. math::  S = \frac{\max |W|}{2^{b-1}-1} \text{ (per tensor, row or group)}, \qquad
               q = \operatorname{clamp}(\operatorname{round}(W / S), -(2^{b-1}-1), 2^{b-1}-1)

    The codes are rounded with the float32 scale (as llama.cpp does), the scale is then stored as
    float16. Returns ``(q, scale)``: int8 codes of the weight's shape and a float16 array (shape
    ``()``, ``(out, 1)`` or ``(out, in // g, 1)``), as torch tensors if ``weight`` was one. A
    float32 scheme is an error.
    """
    s = get_scheme(scheme)
    if s.is_float:
        raise ValueError("scheme 'float32' stores no codes; pick an integer scheme")
    w = _weight_array(weight)
    q, scale = symmetric.quantize(w, bits=s.bits, axis=s.axis, group_size=s.group_size)
    scale16 = np.asarray(np.asarray(scale, dtype=np.float32).astype(np.float16))
    return like(np.asarray(q), weight), like(scale16, weight)


def fake_quantize_weight(weight, scheme):
    r"""Quantize and dequantize one weight matrix: :math:`\hat{W} = \operatorname{fp16}(S)\,q`.

    Returns float32, of the kind that came in (NumPy array or torch tensor). A float32 scheme
    returns a float32 copy.
    """
    s = get_scheme(scheme)
    w = _weight_array(weight)
    if s.is_float:
        w_hat = w.copy()
    else:
        q, scale = quantize_weight(w, s)
        w_hat = np.asarray(symmetric.dequantize(q, scale.astype(np.float32), s.group_size))
    return like(w_hat, weight)


def quantize_model(model, scheme, inplace: bool = False):
    """Fake-quantize the weight of every ``nn.Linear`` in ``model``.

    By default the model is deep-copied first, so the original stays untouched; ``inplace=True``
    overwrites the weights of ``model`` itself (and returns it). Only ``Linear`` weights change:
    biases, embeddings and LayerNorms keep their float32 values.

    If ``model`` carries the name :mod:`quantbook.data` caches its embeddings under, the copy
    gets a new name made of that name and the scheme's (the cache key also holds
    :func:`quantbook.data.model_fingerprint` of the weights), so the embeddings of a quantized
    model are never mistaken for those of the float one.
    """
    import torch

    s = get_scheme(scheme)
    inplace = check_flag(inplace, "inplace")
    layers = linear_layers(model)
    target = model if inplace else copy.deepcopy(model)
    if not s.is_float:
        with torch.no_grad():
            for _, module in linear_layers(target):
                w_hat = fake_quantize_weight(module.weight.detach().float().cpu(), s)
                module.weight.copy_(w_hat.to(module.weight.dtype))
    base = getattr(model, "_quantbook_name", None)
    if base and not s.is_float and layers:
        target._quantbook_name = f"{base}|{s.name}"
    return target


def weight_storage_bytes(shape, scheme) -> int:
    r"""Bytes to store one (out, in) weight matrix: packed codes plus float16 scales (chapter 7).

    .. math::  \text{bytes} = \text{out} \cdot \lceil \text{in} \cdot b / 8 \rceil
               + 2\,n_{scales}

    Codes are packed along each row (two int4 codes per byte; an odd row is padded with one
    nibble), :math:`n_{scales}` is the number of blocks: 1 (per tensor), out (per
    output row) or out·in/g (per group). The float32 scheme gives 4·out·in.
    """
    s = get_scheme(scheme)
    shape = check_shape(shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be (out_features, in_features), got {tuple(shape)}")
    out, inp = shape
    if s.is_float:
        return 4 * out * inp
    codes = out * math.ceil(inp * s.bits / 8)
    return codes + SCALE_BYTES * _blocks.num_scales(shape, s.axis, s.group_size)


def linear_weight_bytes(model, scheme) -> int:
    """Bytes of every ``nn.Linear`` weight of ``model`` under ``scheme`` (codes + scales)."""
    weights = {id(m.weight): m.weight for _, m in linear_layers(model)}  # tied weights count once
    return sum(weight_storage_bytes(w.shape, scheme) for w in weights.values())


def model_size_bytes(model, scheme) -> int:
    r"""Bytes of the whole model with its ``nn.Linear`` weights stored under ``scheme`` (chapter 7).

    .. math::  \text{bytes} = \sum_{\text{Linear } W} \text{storage}(W)
               + \sum_{\text{other parameters } p} |p| \cdot \text{itemsize}(p)

    Every parameter counts once (shared parameters too); buffers (e.g. position ids) do not.
    Biases, embeddings and LayerNorms stay at their own dtype.
    """
    linear_weights = {id(m.weight) for _, m in linear_layers(model)}
    seen: set[int] = set()
    other = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) not in linear_weights:
            other += p.numel() * p.element_size()
    return other + linear_weight_bytes(model, scheme)
