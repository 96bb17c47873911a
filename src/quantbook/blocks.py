r"""Granularity as a block size: which values share one scale (chapters 3, 4 and 7).

Every quantizer of the book stores one scale (and zero point) per *block* of values. The block
is given the way torchao's ``quant_primitives.py`` gives it, as a ``block_size`` tuple with one
entry per axis of ``x``; the public functions of :mod:`quantbook.symmetric`,
:mod:`quantbook.affine`, :mod:`quantbook.granularity` and :mod:`quantbook.model` spell the
choice with two keywords, ``axis=`` (per channel) and ``group_size=`` (per group), and this
module turns them into blocks.

================  ===================  ====================  ===========================
granularity       keywords             block size, x (R, C)  scale shape, x (R, C)
================  ===================  ====================  ===========================
per tensor        (neither)            ``(R, C)``            ``()`` (a Python float)
per channel       ``axis=0``           ``(1, C)``            ``(R, 1)``
per channel       ``axis=1``           ``(R, 1)``            ``(1, C)``
per group         ``group_size=g``     ``(1, g)``            ``(R, C / g, 1)``
================  ===================  ====================  ===========================

For any shape :math:`(n_0, \dots, n_{k-1})` with block size :math:`(b_0, \dots, b_{k-1})`,

.. math::  n_{scales} = \prod_i \frac{n_i}{b_i}, \qquad
           b_{eff} = b + \frac{b_{scale}}{\prod_i b_i} \text{ bits per value.}

Per group, the groups run along the last axis (for an ``nn.Linear`` weight (out, in), the input
dimension the matmul sums over), and ``g`` must divide it. A per-group scale keeps the group
axis (shape ``(..., n / g, 1)``), so it broadcasts against :func:`grouped` ``x``, of shape
``(..., n / g, g)``; per-channel scales keep every axis, so they broadcast against ``x`` itself.
:func:`reduce` computes such a per-block statistic (``max |x|``, ``min x``), :func:`grouped`
and :func:`ungrouped` reshape, :func:`num_scales` counts.

Bad input is a ``ValueError`` or ``TypeError`` naming the argument (``axis`` out of range,
``group_size`` that does not divide the last axis, both given at once), from the checks of
``quantbook._arrays``.
"""

from __future__ import annotations

import math

import numpy as np

from quantbook._arrays import check_axis, check_choice, check_group_size, check_shape

__all__ = [
    "GRANULARITIES",
    "granularity_name",
    "from_granularity",
    "block_size",
    "num_scales",
    "grouped",
    "ungrouped",
    "reduce",
]

GRANULARITIES = ("per-tensor", "per-channel", "per-group")


def _check_one(axis, group_size) -> None:
    if axis is not None and group_size is not None:
        raise ValueError("give axis (per-channel) or group_size (per-group), not both")


def granularity_name(axis=None, group_size=None) -> str:
    """``"per-tensor"``, ``"per-channel"`` or ``"per-group"``: the name of a keyword choice.

    Examples
    --------
    >>> granularity_name(), granularity_name(axis=0), granularity_name(group_size=32)
    ('per-tensor', 'per-channel', 'per-group')
    """
    _check_one(axis, group_size)
    if group_size is not None:
        return "per-group"
    return "per-tensor" if axis is None else "per-channel"


def from_granularity(granularity: str, axis: int = 0, group_size: int = 32):
    """The keywords ``(axis, group_size)`` of a granularity given by name (one of them None).

    ``axis`` is kept per channel and ``group_size`` per group; the other becomes None.

    Examples
    --------
    >>> from_granularity("per-channel"), from_granularity("per-group", group_size=64)
    ((0, None), (None, 64))
    """
    check_choice(granularity, "granularity", GRANULARITIES)
    return (axis if granularity == "per-channel" else None,
            group_size if granularity == "per-group" else None)


def block_size(shape, axis=None, group_size=None) -> tuple[int, ...]:
    r"""The block of values that share one scale, as torchao's ``block_size`` tuple.

    .. math::  \text{per tensor: } (n_0, \dots, n_{k-1}), \quad
               \text{per channel along } a\text{: } n_i \text{ with } n_a \to 1, \quad
               \text{per group: } (1, \dots, 1, g)

    Examples
    --------
    >>> block_size((4, 64)), block_size((4, 64), axis=0), block_size((4, 64), group_size=32)
    ((4, 64), (1, 64), (1, 32))
    """
    shape = check_shape(shape)
    _check_one(axis, group_size)
    if group_size is not None:
        if not shape:
            raise ValueError("group_size needs an array with at least one axis, got a scalar")
        return (1,) * (len(shape) - 1) + (check_group_size(group_size, shape[-1]),)
    if axis is not None:
        k = check_axis(axis, len(shape))
        return tuple(1 if i == k else n for i, n in enumerate(shape))
    return shape


def num_scales(shape, axis=None, group_size=None) -> int:
    r"""How many scales a tensor of ``shape`` stores: one per block.

    .. math::  n_{scales} = \prod_i n_i / b_i \qquad (\text{per tensor: } 1)

    Examples
    --------
    >>> num_scales((64, 256)), num_scales((64, 256), axis=0), num_scales((64, 256), group_size=32)
    (1, 64, 512)
    """
    block = block_size(shape, axis, group_size)
    if axis is None and group_size is None:
        return 1
    return math.prod(n // b for n, b in zip(check_shape(shape), block, strict=True))


def grouped(a: np.ndarray, group_size=None) -> np.ndarray:
    """``a`` reshaped (..., n) -> (..., n / g, g) for per-group work; ``a`` itself otherwise.

    A view, no copy. ``group_size=None`` (per tensor or per channel) returns ``a`` unchanged.
    """
    if group_size is None:
        return a
    g = block_size(a.shape, None, group_size)[-1]  # checks group_size against the last axis
    return a.reshape(a.shape[:-1] + (a.shape[-1] // g, g))


def ungrouped(a: np.ndarray, shape) -> np.ndarray:
    """The inverse of :func:`grouped`: back to the original ``shape``."""
    return a.reshape(shape)


def reduce(a: np.ndarray, function, axis=None, group_size=None, initial=0):
    r"""One statistic per block: ``function`` (e.g. ``np.max``) over each block of ``a``.

    .. math::  s_B = f(\{a_i : i \in B\})

    Returns a NumPy scalar per tensor, an array of the scale shape of the table above per
    channel or per group. ``initial`` makes empty blocks well defined (``0`` for ``max |x|``:
    it is at least 0 anyway).
    """
    _check_one(axis, group_size)
    if group_size is not None:
        return function(grouped(a, group_size), axis=-1, keepdims=True, initial=initial)
    if axis is not None:
        k = check_axis(axis, a.ndim)
        others = tuple(i for i in range(a.ndim) if i != k)
        return function(a, axis=others, keepdims=True, initial=initial)
    return function(a, initial=initial)
