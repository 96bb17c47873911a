r"""Low-precision floats and microscaling: FP8, E2M1, MXFP4 and NVFP4 (chapter 8).

FP8 comes in four variants (``e4m3fn``, ``e4m3fnuz``, ``e5m2``, ``e5m2fnuz``) that differ in
their largest value, their NaN and infinity and their negative zero; :func:`fp8_table` reads
all of it off the 256 codes with ml_dtypes 0.6. A microscaled format stores small floats
(E2M1: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives) with a shared scale per block:

* **MXFP4** (OCP Microscaling v1.0): 32 E2M1 values and one E8M0 byte, a power of two
  :math:`X = 2^{e - 127}`. The GGUF block is 17 bytes: e, then 16 bytes of nibbles in split order
  (byte j holds value j in its low nibble and value j + 16 in its high nibble).
* **NVFP4**: 16 E2M1 values and one unsigned E4M3 (UE4M3) scale. The GGUF block packs four of
  them: 64 values in 36 bytes, the four scale bytes first, then 4 × 8 bytes of nibbles, split
  order inside each group of 16. NVIDIA's format adds a float32 scale per tensor on top; the
  GGUF block has no room for it (see :func:`nvfp4_tensor_scale`).

ggml (and the ``gguf`` package, gguf 0.19) store E2M1 as doubled integers (0, 1, 2, 3, 4, 6, 8, 12)
and the scale halved, so :math:`x = (d/2) \cdot (2v)` with exact products; the decoders here do the
same arithmetic and equal ``gguf.quants.dequantize`` bit for bit on any bytes.
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import like, to_numpy
from quantbook._blocks import float_blocks, in_pieces, raw_blocks, unblock

# ---------------------------------------------------------------------------------- FP8

# The four FP8 variants and their ml_dtypes names (ml_dtypes is imported only when needed:
# the block formats below run on NumPy alone).
FP8_DTYPES = {
    "e4m3fn": "float8_e4m3fn",
    "e4m3fnuz": "float8_e4m3fnuz",
    "e5m2": "float8_e5m2",
    "e5m2fnuz": "float8_e5m2fnuz",
}


def _fp8_dtype(fmt: str):
    if fmt not in FP8_DTYPES:
        raise ValueError(f"fmt must be one of {tuple(FP8_DTYPES)}, got {fmt!r}")
    import ml_dtypes

    return getattr(ml_dtypes, FP8_DTYPES[fmt])


def fp8_values(fmt: str) -> np.ndarray:
    """The 256 codes of an FP8 format decoded to float32, code c at index c (ml_dtypes)."""
    return np.arange(256, dtype=np.uint8).view(_fp8_dtype(fmt)).astype(np.float32)


def fp8_table(fmt: str) -> dict:
    """What the 256 codes of ``fmt`` mean: largest value, smallest normal and subnormal,
    how many codes are NaN or infinite, and whether -0 exists.

    The smallest normal is :math:`2^{1 - \text{bias}}`; "fnuz" formats have bias :math:`2^{E-1}`
    (one more than the usual :math:`2^{E-1} - 1`), no infinity, no -0, and a single NaN code 0x80.
    """
    v = fp8_values(fmt)
    finite = v[np.isfinite(v)]
    positive = finite[finite > 0]
    import ml_dtypes

    info = ml_dtypes.finfo(_fp8_dtype(fmt))
    return {
        "format": fmt,
        "max": float(finite.max()),
        "min_normal": float(info.smallest_normal),
        "min_subnormal": float(positive.min()),
        "nan_codes": int(np.isnan(v).sum()),
        "inf_codes": int(np.isinf(v).sum()),
        "negative_zero": bool(np.any((v == 0) & np.signbit(v))),
        "bias": int(1 - np.log2(float(info.smallest_normal))),
    }


def cast_fp8(x, fmt: str, saturate: bool = False):
    """Round float values to an FP8 format (round half to even) and back to float32.

    Non-saturating (as ml_dtypes 0.6 casts): a value beyond the largest
    finite one becomes NaN (fn, fnuz) or inf (e5m2) once it passes half a step above the
    largest value. Saturating: clip to ±max first, as torch 2.13's ``.to(torch.float8_e4m3fn)``
    does. NaN stays NaN either way.
    """
    a = to_numpy(x, "x")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"x must be an array of real numbers, got dtype {a.dtype}")
    a = a.astype(np.float32)
    dtype = _fp8_dtype(fmt)
    if saturate:
        import ml_dtypes

        top = float(ml_dtypes.finfo(dtype).max)
        a = np.clip(a, -top, top)
    return like(a.astype(dtype).astype(np.float32), x)


def fp8_scaled(x, fmt: str = "e4m3fn", block_size: int | None = None):
    r"""Scaled FP8: one float32 scale per tensor or per block (chapter 8).

    .. math::

        s = \frac{\max |x|}{\text{max}_{\text{fp8}}}, \qquad
        \hat{x} = s \cdot \operatorname{fp8}(x / s)

    with :math:`s` over the whole (flattened) array when ``block_size`` is None, else over each
    block of ``block_size`` values of the last axis. Returns the float32 values after the round
    trip.
    """
    import ml_dtypes

    blocks = float_blocks(x, block_size or np.shape(to_numpy(x, "x"))[-1] or 1)
    top = np.float32(ml_dtypes.finfo(_fp8_dtype(fmt)).max)
    if block_size is None:
        amax = np.abs(blocks).max(initial=0)
    else:
        amax = np.abs(blocks).max(axis=-1, keepdims=True, initial=0)
    s = np.where(amax > 0, amax / top, np.float32(1)).astype(np.float32)
    q = (blocks / s).astype(_fp8_dtype(fmt)).astype(np.float32)
    return like(unblock(q * s), x)


# ---------------------------------------------------------------------------------- E2M1

# The 16 E2M1 codes (sign, 2 exponent bits, 1 mantissa bit), code c at index c.
E2M1_VALUES = np.array(
    [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32
)
# ggml's table: E2M1 doubled, as int8 (kvalues_mxfp4); -0 becomes +0.
KVALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.int8)
E2M1_EMAX = 2  # the largest E2M1 value is 6 = 1.5 · 2^2


def mx_scale_exponent(amax, emax_elem: int = E2M1_EMAX):
    r"""The OCP MX v1.0 shared exponent of a block (chapter 8).

    .. math::

        X = 2^{\lfloor \log_2 \max_i |x_i| \rfloor - e_{\max,\text{elem}}}

    so the largest value of the block lands in the top binade of the element format (for E2M1,
    :math:`\max_i |x_i| / X` lies in [4, 8): values above 6 are stored as 6, and clipped, with more
    than half a step of error, beyond 7). Computed as ggml
    does, with a float32 log2 (so an amax just below a power of two can round up to it).
    """
    a = np.asarray(to_numpy(amax, "amax"), dtype=np.float32)
    with np.errstate(divide="ignore"):
        return np.floor(np.log2(a)) - np.float32(emax_elem)


def e8m0_half(e: np.ndarray) -> np.ndarray:
    r"""ggml's E8M0 decoding, halved, as float32 (``ggml_e8m0_to_fp32_half``; chapter 8).

    .. math::  \tfrac12 X = 2^{e - 128}

    Exact for every byte: :math:`e = 0` and 1 give the float32 subnormals :math:`2^{-128}` and
    :math:`2^{-127}`. The spec's NaN code :math:`e = 255` is not special here: it decodes as
    :math:`2^{127}`, as in ggml.
    """
    return np.ldexp(np.float32(1), e.astype(np.int32) - 128).astype(np.float32)


def _nearest_e2m1(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """ggml's ``best_index_mxfp4``: the code whose value 2v·d is nearest to x.

    On an exact tie the first code in table order wins, which is the one of smaller magnitude:
    ties round toward zero, not to even. Computed on |x| against the 8 magnitudes (the same
    float32 errors as against all 16 codes), then the sign bit is added unless the code is 0.
    """
    mags = KVALUES[:8].astype(np.float32)
    with np.errstate(over="ignore"):  # near float32's max, 12·d is inf: never the nearest
        err = np.abs(d[..., None] * mags - np.abs(x)[..., None])
    idx = err.argmin(axis=-1).astype(np.uint8)
    return np.where((x < 0) & (idx > 0), idx | np.uint8(8), idx)


def _split_nibbles(codes: np.ndarray) -> np.ndarray:
    """Codes (..., 2h) -> bytes (..., h): code j low, code j + h high (GGUF split order)."""
    h = codes.shape[-1] // 2
    return codes[..., :h] | (codes[..., h:] << np.uint8(4))


def _unsplit_nibbles(packed: np.ndarray) -> np.ndarray:
    """Bytes (..., h) -> codes (..., 2h), inverse of :func:`_split_nibbles`."""
    return np.concatenate([packed & np.uint8(15), packed >> np.uint8(4)], axis=-1)


# ---------------------------------------------------------------------------------- MXFP4

MXFP4_BLOCK = 32
MXFP4_BYTES = 17


def encode_mxfp4(x):
    r"""Encode floats as GGUF MXFP4 blocks: 17 bytes per 32 values, byte for byte as ggml
    (chapter 8).

    .. math::

        e = \lfloor \log_2 \max_i |x_i| \rfloor - 2 + 127, \qquad
        c_i = \arg\min_c \left| 2^{e-127} \, v_c - x_i \right|

    with :math:`v_c` the E2M1 values; an all-zero block has :math:`e = 0`. Ties go to the smaller
    magnitude (the OCP spec rounds to nearest even). Values above :math:`6X` become
    :math:`6X`: within half a step up to :math:`7X`, clipped beyond.

    Raises
    ------
    ValueError
        For a block whose largest magnitude is nonzero but below :math:`2^{-125}`: ggml's
        :math:`e` would be negative and wrap around in its uint8 cast.
    """
    blocks = float_blocks(x, MXFP4_BLOCK)
    return like(unblock(in_pieces(_encode_mxfp4_blocks, blocks, MXFP4_BYTES)), x)


def _encode_mxfp4_blocks(blocks: np.ndarray) -> np.ndarray:
    amax = np.abs(blocks).max(axis=-1)
    if np.any((amax > 0) & (amax < np.float32(2.0**-125))):
        raise ValueError("x holds a block whose largest magnitude is below 2^-125: its E8M0 "
                         "exponent would be negative (ggml wraps it around)")
    e = np.where(amax > 0, mx_scale_exponent(amax) + 127, 0).astype(np.uint8)
    codes = _nearest_e2m1(blocks, e8m0_half(e)[:, None])
    return np.concatenate([e[:, None], _split_nibbles(codes)], axis=-1)


def decode_mxfp4(raw):
    r"""Decode GGUF MXFP4 bytes to float32, as ggml and gguf 0.19 do (chapter 8).

    .. math::

        x_i = 2^{e - 127} \, v_{c_i} = 2^{e - 128} \, (2 v_{c_i})

    The product is exact except where it overflows float32 (e ≥ 254 with large codes gives
    inf); e = 255, NaN in the spec, is read as a number, and code 8 (-0) gives +0, as in ggml.
    """
    blocks = raw_blocks(raw, MXFP4_BYTES)
    d = e8m0_half(blocks[..., 0])[..., None]
    codes = _unsplit_nibbles(blocks[..., 1:])
    with np.errstate(over="ignore"):
        return like(unblock(d * KVALUES[codes].astype(np.float32)), raw)


# ---------------------------------------------------------------------------------- NVFP4

NVFP4_BLOCK = 64
NVFP4_SUB = 16
NVFP4_BYTES = 36


def _ue4m3_table() -> np.ndarray:
    """ggml's ``ggml_ue4m3_to_fp32`` for all 256 bytes, halved (E2M1 is stored doubled).

    Byte = [unused bit][4 exponent bits, bias 7][3 mantissa bits]; exponent 0 is subnormal,
    m · 2^-9. Bytes 0x00 and 0x7F (E4M3's NaN) give 0; the top bit is ignored otherwise.
    """
    b = np.arange(256)
    exp, man = (b >> 3) & 15, (b & 7).astype(np.float64)
    raw = np.where(exp == 0, man * 2.0**-9, (1 + man / 8) * 2.0 ** (exp - 7))
    return np.where((b == 0) | (b == 0x7F), 0.0, raw * 0.5).astype(np.float32)


UE4M3_HALF = _ue4m3_table()


def ue4m3_encode(s) -> np.ndarray:
    r"""ggml's ``ggml_fp32_to_ue4m3``: a positive float32 scale to its UE4M3 byte (chapter 8).

    Not round-to-nearest-even: the mantissa is rounded half up (the first dropped bit is
    added), a scale ≥ 256 (fp32 exponent 8) saturates to 0x7E = 448 even where 256…416 exist,
    and ≤ 0 or NaN gives 0. Subnormals (:math:`s < 2^{-6}`) take

    .. math::  u = \min\big(\operatorname{trunc}(512\,s + 0.5),\ 7\big)
    """
    s = np.minimum(np.asarray(s, dtype=np.float32), np.float32(448))
    bits = s.view(np.uint32)
    exp = ((bits >> 23) & 0xFF).astype(np.int32) - 127 + 7
    man = ((bits >> 20) & 7).astype(np.int32) + ((bits >> 19) & 1).astype(np.int32)
    carry = man > 7
    normal = np.where(carry, (exp + 1) << 3, (exp << 3) | man)
    normal = np.where((exp >= 15) | (carry & (exp + 1 >= 15)), 0x7E, normal)
    sub = np.clip(np.trunc(s * np.float32(512) + np.float32(0.5)), 0, 7).astype(np.int32)
    out = np.where(exp <= 0, sub, normal)
    return np.where(s > 0, out, 0).astype(np.uint8)


def nvfp4_tensor_scale(x) -> float:
    r"""NVIDIA's second level: a float32 per-tensor scale (chapter 8).

    .. math::

        s_{\text{tensor}} = \frac{\max |x|}{6 \cdot 448}

    It maps ``max|x|`` onto 6 · 448, the largest E2M1 value times the largest UE4M3 scale.
    Encode :math:`x / s_{\text{tensor}}` with :func:`encode_nvfp4` and multiply the decoded
    values by :math:`s_{\text{tensor}}`. The GGUF NVFP4 block has no field for it.
    """
    a = to_numpy(x, "x")
    amax = float(np.abs(a).max()) if a.size else 0.0
    return amax / (6 * 448) if amax > 0 else 1.0


def encode_nvfp4(x):
    r"""Encode floats as GGUF NVFP4 blocks: 36 bytes per 64 values, as ggml's reference (chapter 8).

    Per group of 16 values:

    .. math::

        u = \text{ue4m3}\!\left(\frac{\max_i |x_i|}{6}\right), \qquad
        c_i = \arg\min_c \left| d(u) \, v_c - x_i \right|

    with :math:`d(u)` the decoded scale. The scale byte is rounded half up and saturates at 448
    (:func:`ue4m3_encode`), so values beyond 6 · 448 = 2688 clip; ties of the elements go
    toward zero, as in MXFP4.
    """
    blocks = float_blocks(x, NVFP4_BLOCK)
    return like(unblock(in_pieces(_encode_nvfp4_blocks, blocks, NVFP4_BYTES)), x)


def _encode_nvfp4_blocks(blocks: np.ndarray) -> np.ndarray:
    sub = blocks.reshape(-1, 4, NVFP4_SUB)
    u = ue4m3_encode(np.abs(sub).max(axis=-1) / np.float32(6))
    codes = _nearest_e2m1(sub, UE4M3_HALF[u][..., None])  # halved scale, doubled values
    packed = _split_nibbles(codes).reshape(-1, 32)
    return np.concatenate([u, packed], axis=-1)


def decode_nvfp4(raw):
    r"""Decode GGUF NVFP4 bytes to float32, as ggml and gguf 0.19 do (chapter 8).

    .. math::

        x_i = \text{ue4m3}(u_s) \, v_{c_i} = \tfrac12 \text{ue4m3}(u_s) \, (2 v_{c_i})

    for value :math:`i` of group :math:`s`.

    Exact in float32 for every byte (bytes 0x00 and 0x7F give scale 0, as in ggml).
    """
    blocks = raw_blocks(raw, NVFP4_BYTES)
    d = UE4M3_HALF[blocks[..., :4]][..., None]
    groups = blocks[..., 4:].reshape(blocks.shape[:-1] + (4, 8))
    codes = _unsplit_nibbles(groups)
    values = d * KVALUES[codes].astype(np.float32)
    return like(unblock(values.reshape(blocks.shape[:-1] + (NVFP4_BLOCK,))), raw)
