"""MicroscalingExplorer: one block of 32 values in MXFP4 or NVFP4, every code shown (chapter 8)."""

from __future__ import annotations

import math
import re

import numpy as np
import traitlets

from quantbook.explorers._base import (
    BlockPoolExplorer,
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    as_list,
    check_choice,
    finite_or_none,
    fmt_number,
    real_floats,
    sample_blocks,
)

N_VALUES = 32
FORMATS = ("mxfp4", "nvfp4")
BLOCK = {"mxfp4": 32, "nvfp4": 16}
E2M1_MAX = 6.0  # the largest E2M1 magnitude (its emax is 2: 6 = 1.5 * 2^2)
E2M1_EMAX = 2
E4M3_MAX = 448.0
# The eight E2M1 magnitudes, code 0..7 (codes 8..15 are their negatives).
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
POOL_BLOCKS = 16  # blocks of real weights sent to the browser to step through
_NUMBER = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")


def _e2m1(ratio: np.ndarray) -> np.ndarray:
    """float32 ratios -> E2M1 (ml_dtypes float4_e2m1fn), round to nearest even, clamped to +-6."""
    import ml_dtypes

    return np.clip(ratio, -E2M1_MAX, E2M1_MAX).astype(ml_dtypes.float4_e2m1fn)


def _elements(x: np.ndarray, scale: np.float32) -> dict:
    """Codes, E2M1 values and decoded values of ``x`` (float32) with one float32 ``scale``."""
    if scale == 0:  # an all-zero block: every code 0 (+0)
        p = _e2m1(np.zeros_like(x))
    else:
        with np.errstate(over="ignore"):  # x / scale beyond float32 is inf, clamped to 6
            p = _e2m1(x / scale)  # float32 division
    codes = (p.view(np.uint8) & 0xF).astype(int)
    values = p.astype(np.float32)
    return {"codes": codes.tolist(), "elements": as_list(values),
            "x_hat": values * np.float32(scale)}


def mxfp4_block(x: np.ndarray) -> dict:
    r"""OCP MX v1.0 MXFP4 of one block of 32 float32 values (chapter 8).

    .. math::

        X = 2^{\lfloor \log_2 \max_i |x_i| \rfloor - 2}, \qquad
        P_i = \mathrm{E2M1}(x_i / X), \qquad \hat x_i = X P_i

    The shared scale X is an E8M0 byte, biased by 127 (``float8_e8m0fnu``), clamped to
    [0, 254]; an all-zero block gets byte 0. E2M1 rounds to nearest, ties to even, and clamps
    to +-6 (the spec's conversion; ggml's encoder breaks ties toward the smaller magnitude).
    """
    import ml_dtypes

    amax = np.float32(np.max(np.abs(x)))
    if amax > 0:
        k = int(np.frexp(amax)[1]) - 1  # floor(log2 amax), exactly
        byte = min(max(k - E2M1_EMAX + 127, 0), 254)
    else:
        k, byte = None, 0
    scale = np.uint8(byte).view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    el = _elements(x, scale)
    return {"amax": float(amax), "log2_floor": k, "scale_byte": byte,
            "scale_bits": format(byte, "08b"), "scale": float(scale),
            "grid": [float(np.float32(g) * scale) for g in E2M1_GRID], **el}


def nvfp4_tensor_scale(tensor_amax: float) -> np.float32:
    r"""The float32 tensor scale of NVFP4 (chapter 8).

    .. math::  s = \frac{\text{amax}}{6 \cdot 448}

    or 1 where that is 0 (an all-zero tensor, or an amax so small that the quotient underflows
    float32).
    """
    s = np.float32(tensor_amax) / np.float32(E2M1_MAX * E4M3_MAX)
    return np.float32(1.0) if s == 0 else s


def nvfp4_block(x: np.ndarray, tensor_scale: np.float32) -> dict:
    r"""NVFP4 of one block of 16 float32 values with a float32 tensor scale s (chapter 8).

    .. math::

        d = \mathrm{E4M3}\!\left(\min\!\left(\frac{\max_i |x_i|}{6 s}, 448\right)\right),
        \qquad P_i = \mathrm{E2M1}\!\left(\frac{x_i}{d\,s}\right),
        \qquad \hat x_i = P_i\,(d\,s)

    :math:`d` is an unsigned E4M3 byte (``float8_e4m3fn``, round to nearest even, saturated at 448).
    Every step is one float32 operation: 6s, then amax / (6s), then d s, then x / (d s).
    """
    import ml_dtypes

    amax = np.float32(np.max(np.abs(x)))
    with np.errstate(over="ignore"):  # beyond float32: inf, saturated to 448
        target = np.minimum(amax / (np.float32(E2M1_MAX) * tensor_scale), np.float32(E4M3_MAX))
    d8 = np.array([target], dtype=np.float32).astype(ml_dtypes.float8_e4m3fn)
    byte = int(d8.view(np.uint8)[0])
    d = d8.astype(np.float32)[0]
    total = np.float32(d * tensor_scale)
    el = _elements(x, total)
    return {"amax": float(amax), "target": float(target), "scale_byte": byte,
            "scale_bits": format(byte, "08b"), "scale": float(d), "total_scale": float(total),
            "grid": [float(np.float32(g) * total) for g in E2M1_GRID], **el}


def microscaling_state(values, fmt: str, tensor_amax: float) -> dict:
    """The explorer's displayed values, computed with ml_dtypes (E2M1, E8M0, E4M3 casts)."""
    x = np.asarray(values, dtype=np.float32)
    n = BLOCK[fmt]
    ts = nvfp4_tensor_scale(tensor_amax) if fmt == "nvfp4" else None
    blocks = []
    x_hat = np.empty_like(x)
    for start in range(0, x.size, n):
        chunk = x[start:start + n]
        b = mxfp4_block(chunk) if fmt == "mxfp4" else nvfp4_block(chunk, ts)
        x_hat[start:start + n] = b.pop("x_hat")
        blocks.append(b)
    x64, h64 = x.astype(np.float64), x_hat.astype(np.float64)
    err = h64 - x64
    se = float(np.sum(err * err))
    sx = float(np.sum(x64 * x64))
    clipped = 0
    for b, start in zip(blocks, range(0, x.size, n), strict=True):
        top = b["grid"][-1]
        half = (b["grid"][-1] - b["grid"][-2]) / 2  # beyond 6 X plus half the last step
        clipped += int(np.sum(np.abs(x64[start:start + n]) > top + half))
    # bits per weight: 4-bit codes plus the shared scale (8 bits per block); NVFP4's float32
    # tensor scale is shared by the whole tensor and left out
    return {
        "format": fmt,
        "values": as_list(x),
        "tensor_amax": float(np.float32(tensor_amax)),
        "tensor_scale": None if ts is None else float(ts),
        "block_size": n,
        "blocks": blocks,
        "codes": sum((b["codes"] for b in blocks), []),
        "x_hat": as_list(x_hat),
        "error": err.tolist(),
        "mse": se / x.size,
        "max_error": float(np.max(np.abs(err))),
        "sqnr_db": finite_or_none(10 * math.log10(sx / se)) if se > 0 and sx > 0 else None,
        "clipped": clipped,
        "bits_per_weight": 4 + 8 / n,
    }


class MicroscalingExplorer(BlockPoolExplorer):
    r"""32 values in MXFP4 or NVFP4: the shared scale, the E2M1 grid it implies, every code
    (chapter 8).

    MXFP4 (OCP Microscaling v1.0): one E8M0 scale for the 32 values (``mxfp4_block`` in this
    module); NVFP4: one unsigned E4M3 scale per 16 values, in units of a float32 tensor scale
    (``nvfp4_block``):

    .. math::  X_{\text{MX}} = 2^{\lfloor \log_2 \text{amax} \rfloor - 2}, \qquad
               d_{\text{NV}} = \mathrm{E4M3}\!\left(\frac{\text{amax}}{6\,s}\right), \quad
               s = \frac{\text{amax}_{\text{tensor}}}{6 \cdot 448}.

    Elements are E2M1, round to nearest, ties to even.
    The values can be typed, dragged in the figure, or stepped through seeded blocks of real
    weights.

    Parameters
    ----------
    values : 32 real numbers, or None to take them from ``weights``
    weights : array-like, keyword only: a weight tensor to draw blocks from. Its last axis is
        cut into aligned blocks of 32 (as a block format stores it; the flattened tensor when
        the last axis is not a multiple of 32) and ``blocks`` of them are picked with ``seed``.
    format : "mxfp4" or "nvfp4"
    tensor_amax : float or None: the amax NVFP4's tensor scale is computed from; None takes the
        largest ``|w|`` of ``weights`` (or of ``values``).
    seed, blocks : the sample of blocks (default 0 and 16)

    Traits (synced): ``values`` (32 floats, float32), ``format``, ``tensor_amax``, ``pool``
    (the sampled blocks, a list of 32-value lists) and ``block`` (which of them is shown;
    -1 once values were edited).

    The state is computed here with ml_dtypes 0.6; at merge it should call
    ``quantbook.formats.encode_mxfp4`` / ``encode_nvfp4``.
    """

    _esm = Explorer.module("microscaling.js")

    values = traitlets.List(traitlets.Float()).tag(sync=True)
    format = traitlets.Unicode("mxfp4").tag(sync=True)
    tensor_amax = traitlets.Float(1.0).tag(sync=True)
    pool = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    _shows = "values"  # a pool block shown goes into values

    def __init__(self, values=None, *, weights=None, format="mxfp4", tensor_amax=None,  # noqa: A002
                 seed=0, blocks=POOL_BLOCKS):
        pool = []
        if weights is not None:
            pool = [as_list(b) for b in sample_blocks(weights, N_VALUES, seed, blocks)]
            amax = max(float(np.max(np.abs(real_floats(weights, "weights")))), 0.0)
        if values is None:
            if not pool:
                raise ValueError("values: give 32 values, or weights to draw them from")
            values, block = pool[0], 0
        else:
            values, block = _check_values(values), -1
            if weights is None:
                amax = float(np.max(np.abs(np.asarray(values, dtype=np.float32))))
        if tensor_amax is not None:
            amax = _check_amax(tensor_amax)
        super().__init__(values=values, format=check_choice(format, FORMATS, "format"),
                         tensor_amax=amax, pool=pool, block=block)

    @traitlets.validate("values")
    def _valid_values(self, proposal):
        return _check_values(proposal["value"])

    @traitlets.validate("format")
    def _valid_format(self, proposal):
        return check_choice(proposal["value"], FORMATS, "format")

    @traitlets.validate("tensor_amax")
    def _valid_amax(self, proposal):
        return _check_amax(proposal["value"])

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with ml_dtypes."""
        return microscaling_state(self.values, self.format, self.tensor_amax)

    def _fallback(self):
        st = self.state()
        name = st["format"].upper()
        lines = []
        for i, b in enumerate(st["blocks"]):
            lines.append(
                f"block {i}: amax {fmt_number(b['amax'])}, scale byte {b['scale_bits']} = "
                f"{fmt_number(b['scale'])}; grid 0, ±{fmt_number(b['grid'][1])} … "
                f"±{fmt_number(b['grid'][-1])}")
        lines.append(f"{st['bits_per_weight']} bits per weight · MSE {fmt_number(st['mse'], 4)} "
                     f"· SQNR {fmt_number(st['sqnr_db'], 3)} dB · clipped (beyond 6 × scale "
                     f"+ half a step) {st['clipped']} of {len(st['values'])}")
        rows = [[i, fmt_number(x), format(c, "04b"), fmt_number(h), fmt_number(e, 3)]
                for i, (x, c, h, e) in enumerate(zip(st["values"], st["codes"], st["x_hat"],
                                                     st["error"], strict=True))]
        return (f"{name}: 32 values, their shared scale and 4-bit codes", lines,
                ("Every element", ["i", "x", "code", "x̂", "x̂ − x"], rows))


def _check_values(values) -> list[float]:
    if isinstance(values, str):
        raise ExplorerTypeError("values must be 32 numbers, got a string")
    a = real_floats(values, "values").ravel()
    if a.size != N_VALUES:
        raise ExplorerError(f"values must be {N_VALUES} numbers (one MXFP4 block), got {a.size}")
    return as_list(a + np.float32(0))  # -0 as 0, as in the browser: JSON has no -0


def _check_amax(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ExplorerTypeError(f"tensor_amax must be a non-negative number, got {v!r}")
    f = float(np.float32(v))
    if not (math.isfinite(f) and f >= 0):
        raise ExplorerError(f"tensor_amax must be a non-negative finite float32, got {v!r}")
    return f
