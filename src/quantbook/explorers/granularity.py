"""GranularityExplorer: per-tensor, per-channel or per-group scales and one outlier (chapter 4)."""

from __future__ import annotations

import math

import numpy as np
import traitlets

from quantbook._blocks import GRANULARITIES
from quantbook.explorers._base import (
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    as_list,
    check_choice,
    check_int_bits,
    finite_or_none,
    float_data,
    fmt_number,
)

GROUP_SIZES = (4, 8, 16, 32, 64, 128)
MAX_ROWS = 32
MAX_COLS = 128
SHOWN = 8  # values of the outlier's row shown exactly


class GranularityExplorer(Explorer):
    """Symmetric quantization of a weight matrix with one scale per tensor, row or group
    (chapter 4).

    An *outlier* multiplies one weight (row ``rows // 2``, column 0) to ``outlier * max|w|``
    (``with_outlier`` in this module); watch which rows' errors it ruins at each granularity.

    Parameters
    ----------
    w : 2-D array-like (rows = output channels). At most the top-left 32 × 128 block is shown.
    granularity : "per-tensor", "per-channel" (one scale per row) or "per-group"
    group_size : int, a divisor of the shown column count (groups along each row)
    outlier : float >= 0; 0 leaves the matrix as it is
    bits : int, 2..8 (keyword; default 4)

    Traits (synced): ``granularity``, ``group_size``, ``outlier``, ``bits``; ``w`` (the shown
    block, a list of rows), ``group_sizes`` (the group sizes offered).
    """

    _esm = Explorer.module("granularity.js")

    w = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    group_sizes = traitlets.List(traitlets.Int()).tag(sync=True)
    granularity = traitlets.Unicode("per-tensor").tag(sync=True)
    group_size = traitlets.Int(32).tag(sync=True)
    outlier = traitlets.Float(0.0).tag(sync=True)
    bits = traitlets.Int(4).tag(sync=True)

    def __init__(self, w, granularity="per-tensor", group_size=32, outlier=0.0, *, bits=4):
        from quantbook._arrays import to_numpy

        a = to_numpy(w, "w")
        if a.ndim != 2:
            raise ValueError(f"w must be a 2-D weight matrix (rows, columns), got shape {a.shape}")
        block = float_data(a[:MAX_ROWS, :MAX_COLS], "w").reshape(min(a.shape[0], MAX_ROWS), -1)
        cols = block.shape[1]
        self._cols = cols
        super().__init__(
            w=[as_list(row) for row in block],
            group_sizes=[g for g in GROUP_SIZES if cols % g == 0] or [cols],
            granularity=check_choice(granularity, GRANULARITIES, "granularity"),
            group_size=_check_group_size(group_size, cols),
            outlier=_check_outlier(outlier),
            bits=check_int_bits(bits),
        )

    @traitlets.validate("granularity")
    def _valid_granularity(self, proposal):
        return check_choice(proposal["value"], GRANULARITIES, "granularity")

    @traitlets.validate("group_size")
    def _valid_group_size(self, proposal):
        return _check_group_size(proposal["value"], self._cols)

    @traitlets.validate("outlier")
    def _valid_outlier(self, proposal):
        return _check_outlier(proposal["value"])

    @traitlets.validate("bits")
    def _valid_bits(self, proposal):
        return check_int_bits(proposal["value"])

    def weights(self) -> np.ndarray:
        """The shown block with the outlier put in (float32), as the explorer quantizes it."""
        return with_outlier(self.w, self.outlier)

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with quantbook."""
        return granularity_state(self.w, self.granularity, self.group_size, self.outlier,
                                 self.bits)

    def _fallback(self):
        st = self.state()
        table = (f"Row {st['outlier_row']} (the outlier's row), first values",
                 ["x", "q", "x̂", "x̂ − x"],
                 [[fmt_number(x), q, fmt_number(xh), fmt_number(xh - x, 3)]
                  for x, q, xh in zip(st["x"], st["q"], st["x_hat"], strict=True)])
        return (f"Granularity: {st['granularity']}, {st['bits']} bits", [
            f"group size {st['group_size']}, outlier {fmt_number(st['outlier'])} × max |w|, "
            f"{len(st['scales'])} scale(s), {fmt_number(st['bits_per_weight'], 5)} bits per weight",
            f"MSE {fmt_number(st['mse'], 4)} · max |error| {fmt_number(st['max_error'], 4)} · "
            f"SQNR {fmt_number(st['sqnr_db'], 3)} dB",
        ], table)


def with_outlier(w, outlier) -> np.ndarray:
    r"""``w`` (float32) with one weight made an outlier when ``outlier > 0`` (chapter 4).

    .. math::  w_{\lfloor r/2 \rfloor,\,0} \leftarrow \text{outlier} \cdot \max_{ij} |w_{ij}|

    computed in float32, for a matrix of :math:`r` rows.
    """
    a = np.array(w, dtype=np.float32)
    if outlier > 0:
        a[a.shape[0] // 2, 0] = np.float32(outlier) * np.max(np.abs(a))
    return a


def granularity_state(w, granularity, group_size, outlier, bits) -> dict:
    """The granularity explorer's displayed values, computed with quantbook."""
    from quantbook import _blocks, metrics, symmetric
    from quantbook import granularity as gran

    a = with_outlier(w, outlier)
    rows, cols = a.shape
    axis, group = _blocks.from_granularity(granularity, 0, group_size)   # rows are channels
    q, scale = symmetric.quantize(a, bits, axis=axis, group_size=group)
    x_hat = gran.fake_quantize(a, bits, granularity, group_size=group_size, axis=0)
    r = rows // 2
    return {
        "granularity": granularity,
        "group_size": int(group_size),
        "outlier": float(outlier),
        "bits": int(bits),
        "rows": rows,
        "cols": cols,
        "outlier_row": r,
        "scales": as_list(np.ravel(scale)),
        "row_mse": [metrics.mse(a[i], x_hat[i]) for i in range(rows)],
        "mse": metrics.mse(a, x_hat),
        "max_error": metrics.max_abs_error(a, x_hat),
        "sqnr_db": finite_or_none(metrics.sqnr_db(a, x_hat)),
        "bits_per_weight": gran.effective_bits(
            bits, math.prod(_blocks.block_size(a.shape, axis, group))  # values per scale
        ),
        "x": as_list(a[r, :SHOWN]),
        "q": np.asarray(q)[r, :SHOWN].astype(int).tolist(),
        "x_hat": as_list(x_hat[r, :SHOWN]),
    }


def _check_group_size(group_size, cols) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise ExplorerTypeError(f"group_size must be a positive integer, got {group_size!r}")
    if group_size < 1 or cols % group_size:
        raise ExplorerError(
            f"group_size must be a positive divisor of the {cols} columns shown, got {group_size}"
        )
    return int(group_size)


def _check_outlier(outlier) -> float:
    if isinstance(outlier, bool) or not isinstance(outlier, (int, float, np.integer, np.floating)):
        raise ExplorerTypeError(f"outlier must be a number >= 0, got {outlier!r}")
    outlier = float(outlier)
    if not (np.isfinite(outlier) and outlier >= 0):
        raise ExplorerError(f"outlier must be a finite number >= 0 (times max|w|), got {outlier}")
    return outlier
