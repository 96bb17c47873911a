"""BitWidthExplorer: 2 to 8 bits, symmetric or affine, MSE and SQNR live (chapter 3)."""

from __future__ import annotations

import numpy as np
import traitlets

from quantbook.explorers._base import (
    MAX_POINTS,
    Explorer,
    as_list,
    check_choice,
    check_int_bits,
    finite_or_none,
    float_data,
    fmt_number,
    points,
    sample,
)
from quantbook.granularity import MAPPINGS


class BitWidthExplorer(Explorer):
    r"""Change the bit width (2..8) and the scheme; watch the grid, the error and the SQNR
    (chapter 3).

    ``"symmetric"``: absmax scale, zero point 0 (:func:`quantbook.symmetric.quantize`),

    .. math::  S = \frac{\max_i |x_i|}{2^{b-1} - 1}, \qquad
               q \in [-(2^{b-1} - 1),\ 2^{b-1} - 1].

    ``"affine"``: the data's min/max with a zero point, signed codes
    (:func:`quantbook.affine.quantize_minmax`).

    Parameters
    ----------
    x : array-like of real numbers (flattened, as float32; the browser gets a seeded sample of
        at most ``max_points``, keyword only, default 4096, keeping the minimum and maximum)
    bits : int, 2..8
    scheme : "symmetric" or "affine" (``quantbook.granularity.MAPPINGS``)

    Traits: ``bits``, ``scheme`` (synced); ``data``, ``x``. Properties ``scale`` and
    ``zero_point`` give the current parameters, computed with quantbook.
    """

    _esm = Explorer.module("bitwidth.js")

    data = traitlets.List(traitlets.Float()).tag(sync=True)
    x = traitlets.List(traitlets.Float()).tag(sync=True)
    bits = traitlets.Int(4).tag(sync=True)
    scheme = traitlets.Unicode("symmetric").tag(sync=True)

    def __init__(self, x, bits=4, scheme="symmetric", *, max_points=MAX_POINTS):
        full = float_data(x, "x")
        self._full = full
        super().__init__(
            data=as_list(sample(full, max_points)),
            x=as_list(points(full)),
            bits=check_int_bits(bits),
            scheme=check_choice(scheme, MAPPINGS, "scheme"),
        )

    @traitlets.validate("bits")
    def _valid_bits(self, proposal):
        return check_int_bits(proposal["value"])

    @traitlets.validate("scheme")
    def _valid_scheme(self, proposal):
        return check_choice(proposal["value"], MAPPINGS, "scheme")

    @property
    def scale(self) -> float:
        return quantize_scheme(self._full, self.bits, self.scheme)[1]

    @property
    def zero_point(self) -> int:
        return quantize_scheme(self._full, self.bits, self.scheme)[2]

    def quantize(self):
        """``(q, x_hat)`` of the whole data at the current settings, by quantbook."""
        q, scale, zero_point = quantize_scheme(self._full, self.bits, self.scheme)
        return q, dequantize_scheme(q, scale, zero_point, self.scheme)

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with quantbook."""
        return bitwidth_state(self.data, self.x, self.bits, self.scheme)

    def _fallback(self):
        st = self.state()
        table = ("A few data points, exactly", ["x", "q", "x̂", "x̂ − x"],
                 [[fmt_number(x), q, fmt_number(xh), fmt_number(xh - x, 3)]
                  for x, q, xh in zip(st["x"], st["q"], st["x_hat"], strict=True)])
        return (f"Bit width: {st['bits']} bits, {st['scheme']}", [
            f"scale S = {fmt_number(st['scale'])}, zero point Z = {st['zero_point']}, "
            f"codes {st['qmin']}…{st['qmax']}",
            f"MSE {fmt_number(st['mse'], 4)} · SQNR {fmt_number(st['sqnr_db'], 3)} dB",
            "SQNR (dB) for 2…8 bits: "
            + ", ".join(fmt_number(v, 3) for v in st["curve"][st["scheme"]]),
        ], table)


def quantize_scheme(data, bits, scheme):
    """``(q, scale, zero_point)`` of ``data`` with one scale for all of it."""
    from quantbook import affine, symmetric

    if scheme == "symmetric":
        q, scale = symmetric.quantize(data, bits)
        return q, scale, 0
    return affine.quantize_minmax(data, bits, signed=True)


def dequantize_scheme(q, scale, zero_point, scheme):
    from quantbook import affine, symmetric

    if scheme == "symmetric":
        return symmetric.dequantize(q, scale)
    return affine.dequantize(q, scale, zero_point)


def bitwidth_state(data, x, bits, scheme) -> dict:
    """The bit-width explorer's displayed values, computed with quantbook."""
    from quantbook import affine, metrics, symmetric

    data = np.asarray(data, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    curve = {"bits": list(range(2, 9))}
    for name in MAPPINGS:
        sqnr = []
        for b in curve["bits"]:
            q_b, s_b, z_b = quantize_scheme(data, b, name)
            sqnr.append(finite_or_none(metrics.sqnr_db(data, dequantize_scheme(q_b, s_b, z_b,
                                                                              name))))
        curve[name] = sqnr
    # The shown points are data values, inside [min, max] of the sample (which keeps the
    # data's extremes), so quantizing them together with the sample leaves the scale unchanged.
    both = np.concatenate([data, x])
    q_both, scale, zero_point = quantize_scheme(both, bits, scheme)
    x_hat_both = dequantize_scheme(q_both, scale, zero_point, scheme)
    x_hat_data, q, x_hat = x_hat_both[: data.size], q_both[data.size :], x_hat_both[data.size :]
    qmin, qmax = symmetric.qrange(bits) if scheme == "symmetric" else affine.qrange(bits)
    return {
        "bits": int(bits),
        "scheme": scheme,
        "scale": float(scale),
        "zero_point": int(zero_point),
        "qmin": qmin,
        "qmax": qmax,
        "x": as_list(x),
        "q": q.astype(int).tolist(),
        "x_hat": as_list(x_hat),
        "mse": metrics.mse(data, x_hat_data),
        "max_error": metrics.max_abs_error(data, x_hat_data),
        "sqnr_db": finite_or_none(metrics.sqnr_db(data, x_hat_data)),
        "n": int(data.size),
        "curve": curve,
    }
