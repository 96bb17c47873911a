"""llama.cpp's K-quants Q4_K and Q6_K, byte for byte, and the Q4_K_M / Q4_K_S mixes (chapter 9).

A K-quant works on super-blocks of 256 values with two levels of scales::

    Q4_K = d (fp16) + dmin (fp16) + 12 bytes of eight 6-bit scales and eight 6-bit mins
           + 128 bytes of 256 nibbles                                   = 144 bytes (4.5 bpw)
           x = d · sc_j · q - dmin · m_j   for sub-block j (32 values), q in 0..15
    Q6_K = 128 bytes ql (low 4 bits) + 64 bytes qh (high 2 bits) + 16 int8 scales + d (fp16)
                                                                        = 210 bytes (6.5625 bpw)
           x = d · sc_j · (q - 32)          for sub-block j (16 values), q in 0..63

The encoders follow llama.cpp's reference quantizers (``quantize_row_q4_K_ref`` with
``make_qkx2_quants``, ``quantize_row_q6_K_ref`` with ``make_qx_quants``, in ggml-quants.c),
written over all blocks at once. ``nearest_int`` in ggml rounds half to even, like ``np.rint``;
all arithmetic is float32 as in C, and the sums run left to right (``_sum``) because one
last bit can flip a comparison of the searches. The bytes are proved in the tests through
gguf's decoder and by error bounds (llama.cpp has no installable Python binding here); a
one-off comparison with a local C build of the reference functions gave identical bytes on
every one of 45,448 super-blocks per format (MiniLM's weights and random data).
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import like
from quantbook._blocks import (
    float16_bytes,
    float_blocks,
    in_pieces,
    raw_blocks,
    read_float16,
    unblock,
)

QK_K = 256
Q4_K_BYTES = 144
Q6_K_BYTES = 210
GROUP_MAX_EPS = np.float32(1e-15)

_f = np.float32


def _sum(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis left to right, in float32, as a C loop adds.

    ``a.sum(axis=-1)`` adds pairwise, which is more accurate but can differ in the last bit,
    and a last bit is enough to flip one of the searches' comparisons.
    """
    # Reducing over the first axis of a C-contiguous array adds whole rows one after the other:
    # left to right for every group, and faster than np.cumsum.
    return np.ascontiguousarray(np.moveaxis(a, -1, 0)).sum(axis=0, dtype=_f)


# ------------------------------------------------------------------ the weighted searches

def make_qkx2_quants(x: np.ndarray, weights: np.ndarray, nmax: int, rmin: float, rdelta: float,
                     nstep: int):
    r"""llama.cpp's scale-and-min search for one group of values (rows of ``x``), vectorised.

    For each candidate inverse scale i_s = (nmax + rmin + rdelta · s) / (max - min),
    s = 0..nstep, round l = clip(round(i_s (x - min)), 0, nmax) and fit scale a and offset b
    by weighted least squares (min is the best offset found so far, as in ggml: it moves
    whenever a candidate wins),

    .. math::

        (a, b) = \arg\min_{a, b} \sum_i w_i (a\, l_i + b - x_i)^2, \qquad b \le 0,

    keeping the candidate with the smallest weighted squared error (start: i_s = nmax / (max -
    min) with b = min). Returns (scale a, the_min = -b >= 0, levels l as uint8).
    """
    x = x.astype(_f, copy=False)
    w = weights.astype(_f, copy=False)
    lo = np.minimum(x.min(axis=-1), _f(0))
    hi = x.max(axis=-1)
    flat = hi == lo
    span = np.where(flat, _f(1), hi - lo)
    sum_w = _sum(w)
    sum_x = _sum(w * x)

    def levels(iscale, offset):
        v = np.rint(iscale[:, None] * (x - offset[:, None]))
        return np.clip(np.nan_to_num(v, nan=0.0), 0, nmax).astype(_f)

    iscale = _f(nmax) / span
    scale = _f(1) / iscale
    best_l = levels(iscale, lo)
    best_err = _sum(w * (scale[:, None] * best_l + lo[:, None] - x) ** 2)
    best_min = lo.copy()
    for step in range(nstep + 1):
        # as in ggml, the candidates are measured from the best min found so far
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            iscale = (_f(rmin) + _f(rdelta) * _f(step) + _f(nmax)) / np.where(flat, _f(1),
                                                                                hi - best_min)
            lv = levels(iscale, best_min)
        sum_l = _sum(w * lv)
        sum_l2 = _sum(w * lv * lv)
        sum_xl = _sum(w * lv * x)
        det = sum_w * sum_l2 - sum_l * sum_l
        with np.errstate(divide="ignore", invalid="ignore"):
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
            clipped = this_min > 0
            this_scale = np.where(clipped, sum_xl / sum_l2, this_scale)
            this_min = np.where(clipped, _f(0), this_min)
            err = _sum(w * (this_scale[:, None] * lv + this_min[:, None] - x) ** 2)
        better = (det > 0) & (err < best_err) & ~flat  # ggml returns early on a flat group
        best_l = np.where(better[:, None], lv, best_l)
        best_err = np.where(better, err, best_err)
        scale = np.where(better, this_scale, scale)
        best_min = np.where(better, this_min, best_min)
    scale = np.where(flat, _f(0), scale)
    best_l = np.where(flat[:, None], _f(0), best_l)
    return scale, -best_min, best_l.astype(np.uint8)


def make_qx_quants(x: np.ndarray, nmax: int):
    r"""llama.cpp's symmetric scale search (``make_qx_quants``, rmse_type 1), vectorised.

    Start from i_s = -nmax / m, m the value of largest magnitude (sign kept), and try
    i_s = -(nmax + 0.1 s) / m for s = -9..9; for each, l = clip(round(i_s x), -nmax, nmax - 1)
    and the weighted least-squares scale with weights w = x²:

    .. math::

        a = \frac{\sum_i w_i x_i l_i}{\sum_i w_i l_i^2}, \qquad
        \text{keep the } s \text{ that maximises } \frac{(\sum w x l)^2}{\sum w l^2}.

    Returns (scale a, levels l + nmax as uint8). An all-zero group gives (0, zeros).
    """
    x = x.astype(_f, copy=False)
    biggest = np.abs(x).argmax(axis=-1)[:, None]
    m = np.take_along_axis(x, biggest, axis=-1)[:, 0]
    zero = np.abs(m) < GROUP_MAX_EPS
    m = np.where(zero, _f(1), m)
    w = x * x

    def fit(iscale):
        lv = np.clip(np.rint(iscale[:, None] * x), -nmax, nmax - 1).astype(_f)
        with np.errstate(over="ignore"):
            return lv, _sum(w * x * lv), _sum(w * lv * lv)

    lv, sumlx, suml2 = fit(_f(-nmax) / m)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(suml2 != 0, sumlx / suml2, _f(0))
    with np.errstate(over="ignore"):
        best = scale * sumlx
    best_l = lv
    for s in [*range(-9, 0), *range(1, 10)]:
        lv, sumlx, suml2 = fit(-(_f(nmax) + _f(0.1) * _f(s)) / m)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            better = (suml2 > 0) & (sumlx * sumlx > best * suml2)  # inf for huge x, as in C
            scale = np.where(better, sumlx / suml2, scale)
        with np.errstate(over="ignore"):
            best = np.where(better, scale * sumlx, best)
        best_l = np.where(better[:, None], lv, best_l)
    scale = np.where(zero, _f(0), scale)
    levels = np.where(zero[:, None], 0, best_l + nmax).astype(np.uint8)
    return scale, levels


# ------------------------------------------------------------------ Q4_K

def pack_scales_mins_k4(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and eight 6-bit mins -> the 12 ``scales`` bytes of Q4_K/Q5_K.

    Sub-blocks 0-3 sit whole in the low 6 bits of bytes 0-3 (scale) and 4-7 (min).
    Sub-blocks 4-7 are split: low 4 bits in byte 8+j-4 (scale low nibble, min high nibble),
    top 2 bits in bits 6-7 of bytes j-4 (scale) and j (min)::

        byte 0..3   [s4..s7 hi2][s0..s3]      byte 8..11  [m4..m7 lo4][s4..s7 lo4]
        byte 4..7   [m4..m7 hi2][m0..m3]
    """
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    out = np.zeros(sc.shape[:-1] + (12,), np.uint8)
    out[..., 0:4] = sc[..., :4] | ((sc[..., 4:] >> 4) << 6)
    out[..., 4:8] = mn[..., :4] | ((mn[..., 4:] >> 4) << 6)
    out[..., 8:12] = (sc[..., 4:] & 15) | ((mn[..., 4:] & 15) << 4)
    return out


def unpack_scales_mins_k4(packed: np.ndarray):
    r"""The 12 ``scales`` bytes -> (scales, mins), eight 6-bit integers each (``get_scale_min_k4``).

    .. math::

        s_j = b_j \,\&\, 63,\; m_j = b_{j+4} \,\&\, 63 \quad (j < 4); \qquad
        s_j = (b_{j+4} \,\&\, 15) \,|\, (b_{j-4} \gg 6) \ll 4,\;
        m_j = (b_{j+4} \gg 4) \,|\, (b_j \gg 6) \ll 4 \quad (j \ge 4)
    """
    b = packed
    sc = np.concatenate([b[..., 0:4] & 63, (b[..., 8:12] & 15) | ((b[..., 0:4] >> 6) << 4)], -1)
    mn = np.concatenate([b[..., 4:8] & 63, (b[..., 8:12] >> 4) | ((b[..., 4:8] >> 6) << 4)], -1)
    return sc, mn


def encode_q4_k(x):
    r"""Encode floats as Q4_K super-blocks: 144 bytes per 256 values (llama.cpp's reference).

    Per sub-block j of 32: weights ``w = rms(x_j) + |x|``, (a_j, b_j) = make_qkx2_quants(x_j, w, 15,
    -1, 0.1, 20). Per super-block:

    .. math::

        d = \frac{\max_j a_j}{63}, \quad d_{\min} = \frac{\max_j b_j}{63}, \quad
        s_j = \mathrm{round}(a_j / d), \quad m_j = \mathrm{round}(b_j / d_{\min}),

        q_i = \mathrm{clip}\left(\mathrm{round}\frac{x_i + d_{\min} m_j}{d s_j}, 0, 15\right)

    with d and dmin rounded to float16 before q is computed. ValueError if d or dmin overflows
    float16 (ggml would store inf).
    """
    blocks = float_blocks(x, QK_K)
    return like(unblock(in_pieces(_encode_q4_k_blocks, blocks, Q4_K_BYTES, per_piece=512)), x)


def _encode_q4_k_blocks(blocks: np.ndarray) -> np.ndarray:
    n = blocks.shape[0]
    sub = blocks.reshape(n * 8, 32)
    av_x = np.sqrt(_sum(sub * sub) / _f(32))
    weights = av_x[:, None] + np.abs(sub)
    with np.errstate(over="ignore", invalid="ignore"):  # huge x: inf sums, as in C; d raises
        scales, mins, levels = make_qkx2_quants(sub, weights, 15, -1.0, 0.1, 20)
    scales, mins, levels = scales.reshape(n, 8), mins.reshape(n, 8), levels.reshape(n, 8, 32)
    max_scale = np.maximum(scales.max(axis=-1), _f(0))
    max_min = np.maximum(mins.max(axis=-1), _f(0))
    inv_scale = np.where(max_scale > 0, _f(63) / np.where(max_scale > 0, max_scale, 1), _f(0))
    inv_min = np.where(max_min > 0, _f(63) / np.where(max_min > 0, max_min, 1), _f(0))
    ls = np.minimum(np.rint(inv_scale[:, None] * scales).astype(np.int64) & 255, 63)
    lm = np.minimum(np.rint(inv_min[:, None] * mins).astype(np.int64) & 255, 63)
    d_bytes = float16_bytes((max_scale / _f(63))[:, None], "x", "Q4_K super-scale d")
    dmin_bytes = float16_bytes((max_min / _f(63))[:, None], "x", "Q4_K super-min dmin")
    d = read_float16(d_bytes) * ls.astype(_f)
    dm = read_float16(dmin_bytes) * lm.astype(_f)
    x = blocks.reshape(n, 8, 32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.rint((x + dm[..., None]) / d[..., None]), 0, 15)
    levels = np.where(d[..., None] != 0, q, levels).astype(np.uint8).reshape(n, 4, 64)
    qs = levels[..., :32] | (levels[..., 32:] << 4)
    return np.concatenate(
        [d_bytes, dmin_bytes, pack_scales_mins_k4(ls, lm), qs.reshape(n, 128)], axis=-1
    )


def decode_q4_k(raw):
    r"""Decode Q4_K bytes: x = (d · s_j) · q - dmin · m_j, float32, as ggml and gguf.

    .. math::

        x_i = d\, s_j\, q_i - d_{\min}\, m_j
    """
    b = raw_blocks(raw, Q4_K_BYTES)
    d, dmin = read_float16(b[..., 0:2]), read_float16(b[..., 2:4])
    sc, mn = unpack_scales_mins_k4(b[..., 4:16])
    qs = b[..., 16:].reshape(b.shape[:-1] + (4, 32))
    values = np.stack([qs & 15, qs >> 4], axis=-2).reshape(b.shape[:-1] + (8, 32)).astype(_f)
    with np.errstate(invalid="ignore", over="ignore"):  # in place: (d·s)·q, then - dmin·m
        np.multiply(values, (d * sc.astype(_f))[..., None], out=values)
        np.subtract(values, (dmin * mn.astype(_f))[..., None], out=values)
    return like(unblock(values.reshape(b.shape[:-1] + (QK_K,))), raw)


# ------------------------------------------------------------------ Q6_K

def encode_q6_k(x):
    r"""Encode floats as Q6_K super-blocks: 210 bytes per 256 values (llama.cpp's reference).

    Per sub-block j of 16: a_j = make_qx_quants(x_j, 32). Per super-block, with a* the a_j
    of largest magnitude (sign kept):

    .. math::

        i_s = -128 / a^*, \quad d = 1 / i_s, \quad s_j = \min(127, \mathrm{round}(i_s a_j)),
        \quad q_i = \mathrm{clip}\left(\mathrm{round}\frac{x_i}{d\, s_j}, -32, 31\right) + 32

    so the largest sub-block gets s = -128 and a negative d. Layout: ql (low nibbles), qh (high
    2 bits), the 16 int8 scales, d as float16. An all-zero super-block is 210 zero bytes.
    """
    blocks = float_blocks(x, QK_K)
    return like(unblock(in_pieces(_encode_q6_k_blocks, blocks, Q6_K_BYTES, per_piece=512)), x)


def _encode_q6_k_blocks(blocks: np.ndarray) -> np.ndarray:
    n = blocks.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):  # huge x: inf sums, as in C; d raises
        scales, levels = make_qx_quants(blocks.reshape(n * 16, 16), 32)
    scales, levels = scales.reshape(n, 16), levels.reshape(n, 16, 16)
    biggest = np.abs(scales).argmax(axis=-1)[:, None]
    max_scale = np.take_along_axis(scales, biggest, axis=-1)[:, 0]
    zero = np.abs(max_scale) < GROUP_MAX_EPS
    iscale = _f(-128) / np.where(zero, _f(1), max_scale)
    d_bytes = float16_bytes(np.where(zero, _f(0), _f(1) / iscale)[:, None], "x", "Q6_K scale d")
    sc = np.minimum(127, np.rint(iscale[:, None] * scales)).astype(np.int8)
    sc = np.where(zero[:, None], np.int8(0), sc)
    d = read_float16(d_bytes) * sc.astype(_f)
    x = blocks.reshape(n, 16, 16)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.rint(x / d[..., None]), -32, 31) + 32
    levels = np.where(d[..., None] != 0, q, levels).astype(np.uint8)
    levels = np.where(zero[:, None, None], np.uint8(0), levels).reshape(n, 2, 4, 32)
    ql = np.concatenate(
        [levels[:, :, 0] & 15 | (levels[:, :, 2] & 15) << 4,
         levels[:, :, 1] & 15 | (levels[:, :, 3] & 15) << 4], axis=-1)
    qh = ((levels[:, :, 0] >> 4) | (levels[:, :, 1] >> 4) << 2
          | (levels[:, :, 2] >> 4) << 4 | (levels[:, :, 3] >> 4) << 6)
    return np.concatenate(
        [ql.reshape(n, 128), qh.reshape(n, 64), sc.view(np.uint8), d_bytes], axis=-1
    )


def decode_q6_k(raw):
    r"""Decode Q6_K bytes: x = (d · s_j) · (q - 32), float32, as ggml and gguf.

    .. math::

        x_i = d\, s_j\, (q_i - 32), \qquad q_i = \text{ql} \,|\, (\text{qh} \ll 4)
    """
    b = raw_blocks(raw, Q6_K_BYTES)
    lead = b.shape[:-1]
    ql = b[..., :128].reshape(lead + (2, 2, 32))  # [half][first or second 32 bytes][l]
    qh = b[..., 128:192].reshape(lead + (2, 1, 32))
    low = np.stack([ql[..., 0, :] & 15, ql[..., 1, :] & 15, ql[..., 0, :] >> 4, ql[..., 1, :] >> 4],
                   axis=-2)
    high = (qh >> np.array([0, 2, 4, 6], np.uint8)[:, None]) & 3
    q = (low | (high << 4)).astype(np.int8) - np.int8(32)
    sc = np.ascontiguousarray(b[..., 192:208]).view(np.int8).astype(_f)
    d = read_float16(b[..., 208:210])
    values = q.reshape(lead + (16, 16)).astype(_f)
    with np.errstate(invalid="ignore", over="ignore"):  # in place: (d·s)·(q - 32)
        np.multiply(values, (d * sc).reshape(lead + (16, 1)), out=values)
    return like(unblock(values.reshape(lead + (QK_K,))), raw)


# ------------------------------------------------------------------ the mixes

def use_more_bits(i_layer: int, n_layers: int) -> bool:
    r"""llama.cpp's choice of layers that get more bits: the first and last eighth, and every
    third layer in between.

    .. math::

        i < n/8 \;\lor\; i \ge 7n/8 \;\lor\; (i - n/8) \bmod 3 = 2 \quad
        (\text{integer division})
    """
    eighth = n_layers // 8
    return i_layer < eighth or i_layer >= 7 * n_layers // 8 or (i_layer - eighth) % 3 == 2


FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def mix_type(category: str, i_layer: int, n_layers: int, ncols: int, ftype: str = "Q4_K_M") -> str:
    """The GGUF type llama.cpp's ``llama_tensor_get_type`` picks for one tensor (dense model).

    ``category`` is one of "output" (also a token embedding tied to the output), "attn_v",
    "ffn_down", "attn_qkv", or anything else (stays at the base type Q4_K). Rules for Q4_K_M:
    output -> Q6_K; attn_v and ffn_down -> Q6_K where :func:`use_more_bits`; attn_qkv -> Q5_K.
    Q4_K_S: attn_v of the first 4 layers and ffn_down of the first n/8 layers -> Q5_K. Then a
    tensor whose rows (``ncols``) are not a multiple of 256 falls back: Q4_K -> Q5_0, Q5_K ->
    Q5_1, Q6_K -> Q8_0 (the output tensor goes straight to Q8_0).
    """
    if ftype not in ("Q4_K_M", "Q4_K_S"):
        raise ValueError(f"ftype must be 'Q4_K_M' or 'Q4_K_S', got {ftype!r}")
    if category == "output":
        return "Q6_K" if ncols % QK_K == 0 else "Q8_0"
    new = "Q4_K"
    more = use_more_bits(i_layer, n_layers)
    if category == "attn_v":
        if ftype == "Q4_K_M" and more:
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i_layer < 4:
            new = "Q5_K"
    elif category == "ffn_down":
        if ftype == "Q4_K_M" and more:
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i_layer < n_layers // 8:
            new = "Q5_K"
    elif category == "attn_qkv" and ftype == "Q4_K_M":
        new = "Q5_K"
    if ncols % QK_K:
        new = FALLBACK[new]
    return new
