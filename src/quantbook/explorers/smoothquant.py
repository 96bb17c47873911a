"""SmoothQuantExplorer: SmoothQuant's migration strength α on a real layer, W8A8 against float
(chapter 11)."""

from __future__ import annotations

import base64

import numpy as np
import traitlets

from quantbook.explorers._base import (
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    as_list,
    check_choice,
    finite_or_none,
    fmt_number,
)

WEIGHTS = ("per-tensor", "per-channel")
ALPHAS = tuple(round(k / 20, 2) for k in range(21))  # the slider's steps, 0 to 1 by 0.05
TOKENS = 64    # activation rows sent to the browser
OUTPUTS = 64   # weight rows (outputs of the layer) sent to the browser
SHOWN = 8      # outputs of the first token shown exactly
TABLE = 4      # channels in the table: those with the largest activation maxima


def pack(a: np.ndarray) -> str:
    """float32 values as base64 of their little-endian bytes (a quarter of the JSON's size)."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`pack`: float32 of ``shape``."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32).reshape(shape)


def w8a8_smoothed(x, w, x_absmax, w_absmax, s, per_channel: bool, y=None) -> dict:
    r"""Some rows of a layer in W8A8 after smoothing by ``s``, with the whole layer's scales.

    .. math::

        S_x = \frac{\max_j \max_i |X_{ij}| / s_j}{127}, \qquad
        S_w = \frac{\max_j s_j \max_k |W_{kj}|}{127} \text{ (per tensor)}, \qquad
        \hat Y = S_x S_w\, q(X \operatorname{diag}(s)^{-1})\, q(W \operatorname{diag}(s))^\top

    ``x`` (tokens, in) and ``w`` (rows, in) are samples of the layer's activations and weights;
    ``x_absmax`` (calibration) and ``w_absmax`` (every row of the layer) set the static scales,
    which therefore are the whole layer's. Per channel, each row's scale is its own absmax.
    Computed with :mod:`quantbook.smoothquant` (``smooth_activations``, ``smooth_weight``,
    ``w8a8_linear``); the float reference ``y`` is ``x @ w.T`` in float64 (computed when None).
    """
    from quantbook import metrics, symmetric
    from quantbook import smoothquant as sq

    x_max = sq.smooth_activations(x_absmax, s)              # max_i |X_ij| / s_j, float32
    w_max = sq.smooth_weight(w_absmax[None, :], s)[0]       # s_j max_k |W_kj|, float32
    x_scale = float(np.max(x_max)) / 127
    # max|W diag(s)| over the whole layer = max_j of s_j max_k |W_kj| (rounding is monotone)
    w_scale = None if per_channel else symmetric.absmax_scale(w_max)
    xs, ws = sq.smooth_activations(x, s), sq.smooth_weight(w, s)
    y_q = sq.w8a8_linear(xs, ws, x_scale=x_scale, w_scale=w_scale, per_channel=per_channel)
    if per_channel:
        w_scale = as_list(np.ravel(symmetric.absmax_scale(ws, axis=0)))
    if y is None:
        y = x.astype(np.float64) @ w.astype(np.float64).T
    qx = np.rint(xs / np.float32(x_scale))
    return {
        "s": as_list(s), "x_max": as_list(x_max), "w_max": as_list(w_max),
        "x_scale": x_scale, "w_scale": w_scale,
        "x_clamped": int(np.sum(np.abs(qx) > 127)),
        "y_q": y_q, "y": y,
        "mse": metrics.mse(y, y_q),
        "max_error": metrics.max_abs_error(y, y_q),
        "sqnr_db": finite_or_none(metrics.sqnr_db(y, y_q)),
    }


def smoothquant_state(x, w, x_absmax, w_absmax, alpha: float, weights: str) -> dict:
    """The explorer's displayed values, computed with quantbook (see :class:`SmoothQuantExplorer`).

    ``curve`` is the output SQNR at every α of the slider (0 to 1 by 0.05) and ``sqnr_none_db``
    the SQNR without smoothing (every :math:`s_j = 1`), both for the chosen weight scales.
    """
    from quantbook import smoothquant as sq

    per_channel = weights == "per-channel"
    x_absmax = np.asarray(x_absmax, dtype=np.float32)
    w_absmax = np.asarray(w_absmax, dtype=np.float32)

    y = x.astype(np.float64) @ w.astype(np.float64).T

    def run(s):
        return w8a8_smoothed(x, w, x_absmax, w_absmax, s, per_channel, y)

    st = run(sq.smoothing_factors(x_absmax, w_absmax, alpha))
    y_q = st.pop("y_q")
    st.pop("y")
    top = int(np.argmax(x_absmax))
    none = run(np.ones_like(x_absmax))
    curve = [run(sq.smoothing_factors(x_absmax, w_absmax, a))["sqnr_db"] for a in ALPHAS]
    return {
        "alpha": float(alpha), "weights": weights,
        "tokens": int(x.shape[0]), "outputs": int(w.shape[0]), "channels": int(x.shape[1]),
        **st,
        "top_channel": top,
        "table_channels": np.argsort(-x_absmax, kind="stable")[:TABLE].tolist(),
        "y_shown": as_list(y_q[0, :SHOWN]), "y_float_shown": y[0, :SHOWN].tolist(),
        "sqnr_none_db": none["sqnr_db"],
        "alphas": list(ALPHAS), "curve": curve,
    }


class SmoothQuantExplorer(Explorer):
    r"""SmoothQuant's migration strength α on a real linear layer, in W8A8 (chapter 11).

    For every input channel j (``quantbook.smoothquant.smoothing_factors``, with the reference
    code's clamps at :math:`10^{-5}`):

    .. math::  s_j = \frac{\max_i |X_{ij}|^{\alpha}}{\max_k |W_{kj}|^{1-\alpha}}, \qquad
               Y = \big(X \operatorname{diag}(s)^{-1}\big)\big(W \operatorname{diag}(s)\big)^\top

    The smoothed activations are quantized to int8 with one static scale (from the calibration
    maxima), the smoothed weights with one scale per tensor (the whole layer's) or per output
    row, and the integer product is compared with the float product (``w8a8_smoothed``). The
    browser redoes all of it at every move of the slider; the figures show the channel maxima
    of both operands before and after smoothing, and the output SQNR against α.

    Parameters
    ----------
    x : (tokens, in) activations entering the layer (held-out tokens, say)
    w : (out, in) the layer's weight
    x_absmax : (in,) the calibration maxima :math:`\max_i |X_{ij}|`; None takes them from ``x``
    w_absmax : (in,) :math:`\max_k |W_{kj}|`; None takes them from ``w`` (all its rows)
    alpha : float in [0, 1] (the slider moves by 0.05)
    weights : "per-tensor" or "per-channel" (one scale per output row)
    tokens, outputs : rows of ``x`` and of ``w`` sent to the page (seeded samples; default 64
        each, 2 × 98 kB of float32 sent as base64)
    seed : the samples' seed
    layer : a name shown in the title

    Traits (synced): ``alpha``, ``weights``; the data ``x_data`` and ``w_data`` (base64 float32,
    :func:`unpack`), ``shape`` (tokens, outputs, in), ``x_absmax``, ``w_absmax``, ``token_rows``
    and ``output_rows`` (which rows were sampled), ``layer``.
    """

    _esm = Explorer.module("smoothquant.js")

    x_data = traitlets.Unicode("").tag(sync=True)
    w_data = traitlets.Unicode("").tag(sync=True)
    shape = traitlets.List(traitlets.Int()).tag(sync=True)
    x_absmax = traitlets.List(traitlets.Float()).tag(sync=True)
    w_absmax = traitlets.List(traitlets.Float()).tag(sync=True)
    token_rows = traitlets.List(traitlets.Int()).tag(sync=True)
    output_rows = traitlets.List(traitlets.Int()).tag(sync=True)
    layer = traitlets.Unicode("").tag(sync=True)
    alpha = traitlets.Float(0.5).tag(sync=True)
    weights = traitlets.Unicode("per-channel").tag(sync=True)

    def __init__(self, x, w, x_absmax=None, w_absmax=None, alpha=0.5, weights="per-channel", *,
                 tokens=TOKENS, outputs=OUTPUTS, seed=0, layer=""):
        from quantbook import smoothquant as sq

        xa = _matrix(x, "x")
        wa = _matrix(w, "w")
        if xa.shape[1] != wa.shape[1]:
            raise ValueError(f"x has {xa.shape[1]} input channels but w has {wa.shape[1]} columns")
        n = xa.shape[1]
        x_max = sq.activation_absmax(xa) if x_absmax is None else _vector(x_absmax, "x_absmax", n)
        w_max = sq.weight_absmax(wa) if w_absmax is None else _vector(w_absmax, "w_absmax", n)
        if (w_max < sq.weight_absmax(wa)).any():
            raise ValueError("w_absmax must be at least max_k |w_kj| of every column of w")
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(xa.shape[0], _count(tokens, "tokens", xa.shape[0]), False))
        outs = np.sort(rng.choice(wa.shape[0], _count(outputs, "outputs", wa.shape[0]), False))
        if not isinstance(layer, str):
            raise ExplorerTypeError(f"layer must be a string, got {layer!r}")
        super().__init__(
            x_data=pack(xa[rows]), w_data=pack(wa[outs]), shape=[rows.size, outs.size, n],
            x_absmax=as_list(x_max), w_absmax=as_list(w_max),
            token_rows=rows.tolist(), output_rows=outs.tolist(), layer=layer,
            alpha=_check_alpha(alpha), weights=check_choice(weights, WEIGHTS, "weights"))

    @traitlets.validate("alpha")
    def _valid_alpha(self, proposal):
        return _check_alpha(proposal["value"])

    @traitlets.validate("weights")
    def _valid_weights(self, proposal):
        return check_choice(proposal["value"], WEIGHTS, "weights")

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """The activation rows and weight rows the page holds (float32)."""
        t, o, n = self.shape
        return unpack(self.x_data, (t, n)), unpack(self.w_data, (o, n))

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with quantbook."""
        x, w = self.data()
        return smoothquant_state(x, w, self.x_absmax, self.w_absmax, self.alpha, self.weights)

    def _fallback(self):
        st = self.state()
        j = st["top_channel"]
        ws = st["w_scale"]
        w_text = (f"one per output row, {fmt_number(min(ws), 3)} to {fmt_number(max(ws), 3)}"
                  if isinstance(ws, list) else fmt_number(ws, 4))
        lines = [
            f"α = {st['alpha']:g}: s_j from {fmt_number(min(st['s']), 3)} to "
            f"{fmt_number(max(st['s']), 3)}; channel {j} (the largest activations): s = "
            f"{fmt_number(st['s'][j], 4)}, max|X_j| {fmt_number(self.x_absmax[j], 4)} → "
            f"{fmt_number(st['x_max'][j], 4)}, max|W_j| {fmt_number(self.w_absmax[j], 4)} → "
            f"{fmt_number(st['w_max'][j], 4)}",
            f"scales: activations {fmt_number(st['x_scale'], 4)} (static), weights {w_text}",
            f"{st['tokens']} tokens × {st['outputs']} outputs: output SQNR "
            f"{fmt_number(st['sqnr_db'], 4)} dB (no smoothing: {fmt_number(st['sqnr_none_db'], 4)}"
            f" dB), MSE {fmt_number(st['mse'], 4)}, max |error| {fmt_number(st['max_error'], 4)}",
        ]
        # every α the slider offers, two decimals throughout (the prose quotes these values)
        rows = [[f"{a:.2f}", "∞" if v is None else f"{v:.2f}"]
                for a, v in zip(st["alphas"], st["curve"], strict=True)]
        name = f" ({self.layer})" if self.layer else ""
        return (f"SmoothQuant on a real layer{name}: W8A8, {st['weights']} weights", lines,
                ("Output SQNR against α", ["α", "SQNR (dB)"], rows))


def _matrix(a, name: str) -> np.ndarray:
    from quantbook._arrays import to_real

    arr = to_real(a, name)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix (rows, in_features), "
                         f"got shape {arr.shape}")
    return arr.astype(np.float32)


def _vector(a, name: str, n: int) -> np.ndarray:
    from quantbook._arrays import to_real

    arr = to_real(a, name).astype(np.float32)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one maximum per input channel, "
                         f"got {arr.shape}")
    if (arr < 0).any():
        raise ValueError(f"{name} must be non-negative (maxima of magnitudes)")
    return arr


def _count(k, name: str, available: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ExplorerTypeError(f"{name} must be a positive integer, got {k!r}")
    if k < 1:
        raise ExplorerError(f"{name} must be a positive integer, got {k}")
    return min(int(k), available)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise ExplorerTypeError(f"alpha must be a number from 0 to 1, got {alpha!r}")
    alpha = float(alpha)
    if not 0 <= alpha <= 1:
        raise ExplorerError(f"alpha must be from 0 to 1, got {alpha}")
    return alpha
