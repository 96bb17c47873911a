"""AffineExplorer: scale, zero point and bit width over a histogram of the data (chapter 2)."""

from __future__ import annotations

import math

import numpy as np
import traitlets

from quantbook.explorers._base import (
    MAX_POINTS,
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    as_list,
    check_flag,
    check_int_bits,
    finite_or_none,
    float_data,
    fmt_number,
    points,
    sample,
)


class AffineExplorer(Explorer):
    """Move the scale S, the zero point Z and the bit width; see every value's code and error.

    Parameters
    ----------
    x : array-like of real numbers (NumPy, list or CPU torch tensor; any shape, flattened)
        The data, e.g. a weight matrix, taken as float32 (the browser computes in float32,
        as quantbook does for float32 data). At most ``max_points`` values (a seeded sample
        that keeps the minimum and maximum) go to the browser for the histogram and errors.
    scale, zero_point : float, int or None
        Starting S and Z; ``None`` fits them to the data's min/max with
        :func:`quantbook.affine.qparams`. Give both or neither.
    bits : int, 2..8
    signed : bool
    max_points : int, keyword only (default 4096)

    Traits (synced with the browser; read them in the next cell)
    ------------------------------------------------------------
    scale : float, zero_point : int, bits : int, signed : bool
        Changing ``bits`` or ``signed`` (from Python or a control) refits ``scale`` and
        ``zero_point`` to the data's min/max, as the explorer's "Fit" button does.
    data : list of float (the sample), x : list of float (the points shown exactly).
    """

    _esm = Explorer.module("affine.js")

    data = traitlets.List(traitlets.Float()).tag(sync=True)
    x = traitlets.List(traitlets.Float()).tag(sync=True)
    scale = traitlets.Float(1.0).tag(sync=True)
    zero_point = traitlets.Int(0).tag(sync=True)
    bits = traitlets.Int(8).tag(sync=True)
    signed = traitlets.Bool(True).tag(sync=True)

    def __init__(self, x, scale=None, zero_point=None, bits=8, signed=True, *,
                 max_points=MAX_POINTS):
        from quantbook import affine

        bits = check_int_bits(bits)
        signed = check_flag(signed, "signed")
        full = float_data(x, "x")
        shown = sample(full, max_points)
        fit_scale, fit_zero = affine.qparams(float(full.min()), float(full.max()), bits, signed)
        if (scale is None) != (zero_point is None):
            raise ValueError("scale and zero_point: give both or neither (None fits both)")
        if scale is None:
            scale, zero_point = fit_scale, fit_zero
        self._full = full
        super().__init__(
            data=as_list(shown),
            x=as_list(points(full)),
            bits=bits,
            signed=signed,
            scale=_check_scale(scale),
            zero_point=_check_zero_point(zero_point, bits, signed),
        )

    @traitlets.validate("bits")
    def _valid_bits(self, proposal):
        return check_int_bits(proposal["value"])

    @traitlets.validate("scale")
    def _valid_scale(self, proposal):
        return _check_scale(proposal["value"])

    @traitlets.validate("zero_point")
    def _valid_zero_point(self, proposal):
        return _check_zero_point(proposal["value"], self.bits, self.signed)

    @traitlets.observe("bits", "signed")
    def _refit(self, change):
        if not self._ready:
            return
        # The same rule as the browser: a new integer type refits S and Z to min/max.
        from quantbook import affine

        s, z = affine.qparams(float(self._full.min()), float(self._full.max()), self.bits,
                              self.signed)
        with self.hold_trait_notifications():
            self.set_trait("scale", s)
            self.set_trait("zero_point", z)

    def quantize(self):
        """``(q, x_hat)`` of the whole data (flattened) at the current settings, by quantbook."""
        from quantbook import affine

        q = affine.quantize(self._full, self.scale, self.zero_point, self.bits, self.signed)
        return q, affine.dequantize(q, self.scale, self.zero_point)

    def state(self) -> dict:
        """What the explorer displays, computed in Python with quantbook (same keys as the
        browser's ``data-state``; error figures over the sample in ``data``)."""
        return affine_state(self.data, self.x, self.scale, self.zero_point, self.bits,
                            self.signed)

    def _fallback(self):
        st = self.state()
        table = ("A few data points, exactly", ["x", "q", "x̂", "x̂ − x"],
                 [[fmt_number(x), q, fmt_number(xh), fmt_number(xh - x, 3)]
                  for x, q, xh in zip(st["x"], st["q"], st["x_hat"], strict=True)])
        return ("Affine quantization: x ≈ S · (q − Z)", [
            f"scale S = {fmt_number(st['scale'])}, zero point Z = {st['zero_point']}, "
            f"{st['bits']}-bit {'signed' if st['signed'] else 'unsigned'} codes "
            f"{st['qmin']}…{st['qmax']}",
            f"MSE {fmt_number(st['mse'], 4)} · max |error| {fmt_number(st['max_error'], 4)} · "
            f"SQNR {fmt_number(st['sqnr_db'], 3)} dB · clipped {st['clipped']} of {st['n']}",
        ], table)


def affine_state(data, x, scale, zero_point, bits, signed) -> dict:
    """The affine explorer's displayed values for these settings, computed with quantbook."""
    from quantbook import affine, metrics

    data = np.asarray(data, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    q_data = affine.quantize(data, scale, zero_point, bits, signed)
    x_hat_data = affine.dequantize(q_data, scale, zero_point)
    q = affine.quantize(x, scale, zero_point, bits, signed)
    lo, hi = affine.representable_range(scale, zero_point, bits, signed)
    qmin, qmax = affine.qrange(bits, signed)
    # clipped: more than half a step (float32 S / 2) beyond the first or last code
    half = float(np.float32(scale)) / 2
    d64 = data.astype(np.float64)
    return {
        "scale": float(scale),
        "zero_point": int(zero_point),
        "bits": int(bits),
        "signed": bool(signed),
        "qmin": qmin,
        "qmax": qmax,
        "x": as_list(x),
        "q": q.astype(int).tolist(),
        "x_hat": as_list(affine.dequantize(q, scale, zero_point)),
        "mse": metrics.mse(data, x_hat_data),
        "max_error": metrics.max_abs_error(data, x_hat_data),
        "sqnr_db": finite_or_none(metrics.sqnr_db(data, x_hat_data)),
        "clipped": int(((d64 < lo - half) | (d64 > hi + half)).sum()),
        "n": int(data.size),
        "range": [lo, hi],
    }


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ExplorerTypeError(f"scale must be a positive number, got {scale!r}")
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ExplorerError(f"scale must be a positive finite number, got {scale}")
    return scale


def _check_zero_point(zero_point, bits, signed) -> int:
    from quantbook import affine

    if isinstance(zero_point, bool) or not isinstance(zero_point, (int, np.integer)):
        raise ExplorerTypeError(f"zero_point must be an integer code, got {zero_point!r}")
    qmin, qmax = affine.qrange(bits, signed)
    if not qmin <= zero_point <= qmax:
        raise ExplorerError(
            f"zero_point must be in [{qmin}, {qmax}] for {bits}-bit "
            f"{'signed' if signed else 'unsigned'} integers, got {zero_point}"
        )
    return int(zero_point)
