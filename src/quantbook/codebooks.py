r"""Codebooks instead of grids: NF4 (QLoRA), IQ4_NL (llama.cpp) and k-means (chapter 10).

A uniform grid puts its levels at equal steps, :math:`\hat{x} = S\,q`. A *codebook* stores any
16 numbers :math:`c_0 < \dots < c_{15}` and a 4-bit code is an index into it:

.. math::  \hat{x} = s \cdot c_{q}, \qquad q = \arg\min_k |x / s - c_k|

with one scale :math:`s` per block. Three codebooks are here:

* **NF4** (NormalFloat4, QLoRA): the levels are quantiles of the standard normal distribution,
  normalised to [-1, 1] (``NF4``, :func:`normal_float_levels`); the scale is the block's
  absmax (blocks of 64); two codes per byte, the FIRST value in the HIGH nibble. With *double
  quantization* the float32 absmax values are themselves stored as 8-bit codes of bitsandbytes'
  dynamic map, in blocks of 256, after subtracting their mean. :func:`encode_nf4` and
  :func:`decode_nf4` equal bitsandbytes' ``quantize_4bit`` / ``dequantize_4bit`` (CPU,
  ``quant_type="nf4"``) bit for bit.
* **IQ4_NL** (llama.cpp): a fixed int8 codebook ``IQ4_NL_VALUES`` with an fp16 scale per block
  of 32, 18 bytes a block, nibbles in GGUF's split order. :func:`decode_iq4_nl` equals gguf's
  ``dequantize`` on any bytes; :func:`encode_iq4_nl` follows llama.cpp's ``quantize_iq4_nl``.
* **k-means** (Lloyd's algorithm): the codebook fitted to the data, :func:`kmeans_codebook`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from quantbook._arrays import check_finite, is_tensor, like, to_numpy

__all__ = [
    "NF4",
    "NF4_OFFSET",
    "IQ4_NL_VALUES",
    "IQ4_NL_BLOCK_SIZE",
    "IQ4_NL_BLOCK_BYTES",
    "NF4_BLOCK_SIZES",
    "NF4Encoded",
    "normal_float_levels",
    "nearest_level",
    "dynamic_map",
    "nf4_midpoints",
    "encode_nf4",
    "decode_nf4",
    "dynamic_lut",
    "quantize_absmax",
    "dequantize_absmax",
    "nf4_bits_per_weight",
    "decode_iq4_nl",
    "encode_iq4_nl",
    "kmeans_codebook",
    "codebook_quantize",
    "codebook_bytes",
]

# bitsandbytes' NF4 table (bitsandbytes/functional.py, get_4bit_type("nf4")), as float32.
NF4 = np.array(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ],
    dtype=np.float32,
)
NF4.flags.writeable = False

#: QLoRA's ``offset``: the outermost probability used for the normal quantiles.
NF4_OFFSET = 0.9677083

#: llama.cpp's ``kvalues_iq4nl`` (ggml-common.h), the IQ4_NL codebook.
IQ4_NL_VALUES = np.array(
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.int8
)
IQ4_NL_VALUES.flags.writeable = False
IQ4_NL_BLOCK_SIZE = 32
IQ4_NL_BLOCK_BYTES = 2 + IQ4_NL_BLOCK_SIZE // 2

#: The block sizes bitsandbytes' ``quantize_4bit`` accepts.
NF4_BLOCK_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
_ABSMAX_BLOCK = 256  # bitsandbytes' block of absmax values for double quantization
_TINY = np.float32(1e-38)  # bitsandbytes clamps the absmax to this before taking 1/absmax


# --------------------------------------------------------------------------------------------
# NF4 levels
# --------------------------------------------------------------------------------------------

def normal_float_levels(offset: float = NF4_OFFSET) -> np.ndarray:
    r"""The NF4 levels built from normal quantiles, QLoRA's construction (float32, sorted).

    .. math::  c^{+}_i = \Phi^{-1}(p_i),\; p_i = \delta + \tfrac{i}{8}(\tfrac12 - \delta)
               \;(i = 0..7), \qquad
               c^{-}_j = -\Phi^{-1}(p'_j),\; p'_j = \delta + \tfrac{j}{7}(\tfrac12 - \delta)
               \;(j = 0..6)

    with :math:`\delta` = ``offset`` and :math:`\Phi^{-1}` the standard normal quantile
    function; the 8 positive levels, the 7 negative ones and an exact 0 are sorted and divided
    by the largest, so the levels run from -1 to 1. The asymmetry (8 positive, 7 negative) buys
    an exact zero with 16 codes. Computed in float64 with ``statistics.NormalDist``.
    """
    if not 0.5 < float(offset) < 1.0:
        raise ValueError(f"offset must be a probability between 0.5 and 1, got {offset!r}")
    inv = statistics.NormalDist().inv_cdf
    positive = [inv(p) for p in np.linspace(offset, 0.5, 9)[:-1]]
    negative = [-inv(p) for p in np.linspace(offset, 0.5, 8)[:-1]]
    levels = np.sort(np.array(positive + [0.0] + negative))
    return (levels / levels.max()).astype(np.float32)


def nf4_midpoints() -> np.ndarray:
    """The 15 decision boundaries between neighbouring NF4 levels, in float32.

    .. math::  m_k = (c_k + c_{k+1}) / 2
    """
    return (NF4[:-1] + NF4[1:]) / np.float32(2)


def nearest_level(u, levels=NF4):
    r"""Index of the level nearest to each normalised value u, as bitsandbytes picks it.

    .. math::  q = \#\{k : m_k < u\}, \qquad m_k = (c_k + c_{k+1})/2

    A value exactly on a midpoint goes to the LOWER level (``torch.bucketize`` with
    ``right=False``, as bitsandbytes' quantize_4bit on CPU). ``levels`` must be sorted.
    """
    lv = np.asarray(to_numpy(levels, "levels"), dtype=np.float32)
    if lv.ndim != 1 or lv.size < 2 or not (np.diff(lv) > 0).all():
        raise ValueError("levels must be a 1-D increasing array of at least two values")
    u_ = to_numpy(u, "u")
    if u_.dtype.kind not in "fiu":
        raise TypeError(f"u must hold real numbers, got dtype {u_.dtype}")
    check_finite(u_, "u")
    bounds = (lv[:-1] + lv[1:]) / np.float32(2)
    q = np.searchsorted(bounds, u_.astype(np.float32), side="left").astype(np.uint8)
    return like(q, u)


# --------------------------------------------------------------------------------------------
# bitsandbytes' dynamic 8-bit map (used for the double quantization of the absmax values)
# --------------------------------------------------------------------------------------------

def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    # torch.linspace in float32 on CPU: the first half counts up from start, the second down
    # from end, each as one fused multiply-add (start + step*i rounded once; float64 is exact
    # enough to emulate it for these small i)
    s, e = np.float32(start), np.float32(end)
    step = np.float64((e - s) / np.float32(steps - 1))
    i = np.arange(steps)
    up = (np.float64(s) + step * i).astype(np.float32)
    down = (np.float64(e) - step * (steps - 1 - i)).astype(np.float32)
    return np.where(i < steps // 2, up, down)


def dynamic_map(signed: bool = True, max_exponent_bits: int = 7, total_bits: int = 8) -> np.ndarray:
    r"""bitsandbytes' dynamic 8-bit data type (``create_dynamic_map``), 256 sorted float32 values.

    .. math::  v = \pm 10^{\,i - (E-1)} \cdot \frac{b_j + b_{j+1}}{2}, \quad
               b = \operatorname{linspace}(0.1, 1, 2^{i}+1),\; i = 0..E-1

    plus 0 and 1 (E = ``max_exponent_bits``). A decimal exponent picks the decade, the rest of
    the bits a linear fraction inside it: fine steps near 0, coarse near 1, a range of 10^-7..1.
    """
    data: list[float] = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits + (0 if signed else 1)) + 1
        b = _torch_linspace_f32(0.1, 1, items)
        means = (b[:-1] + b[1:]) / np.float32(2)
        decade = np.float32(10.0 ** (-(max_exponent_bits - 1) + i))  # torch: float32 product
        data += (decade * means).tolist()
        if signed:
            data += (-decade * means).tolist()
    if additional_items > 0:
        b = _torch_linspace_f32(0.1, 1, additional_items + 1)
        means = (b[:-1] + b[1:]) / np.float32(2)
        data += (decade * means).tolist()
        if signed:
            data += (-decade * means).tolist()
    data += [0.0, 1.0]
    data += [0.0] * (256 - len(data))
    return np.array(sorted(data), dtype=np.float32)


_DYNAMIC = dynamic_map()
_DYNAMIC.flags.writeable = False


_LUT_SIZE = 65536


def dynamic_lut(code=None) -> np.ndarray:
    r"""bitsandbytes' CPU lookup table from a normalised value's bin to its 8-bit code.

    .. math::  v_i = -1 + \frac{2i}{65535}, \qquad
               \mathrm{lut}_i = \#\{k : (d_k + d_{k+1})/2 < v_i\} \quad (i = 0..65535)

    bitsandbytes 0.50's CPU kernel (``quantize_cpu`` in ``csrc/cpu_ops.cpp``) does not search the
    code for the nearest value: it rounds u to one of 65,536 bins,
    :math:`i = \lfloor (u + 1)/2 \cdot 65535 + 1/2 \rfloor`, and reads the code of the bin's
    centre. A value near a midpoint can so get the code one step away from the nearest.
    """
    c = _DYNAMIC if code is None else np.asarray(to_numpy(code, "code"), dtype=np.float32)
    mids = np.float32(0.5) * (c[:-1] + c[1:])
    i = np.arange(_LUT_SIZE).astype(np.float32)
    centres = np.float32(-1) + (np.float32(2) * i) / np.float32(_LUT_SIZE - 1)
    return np.searchsorted(mids, centres, side="left").astype(np.uint8)


def _lut_index(u: np.ndarray) -> np.ndarray:
    t = (np.clip(u, -1, 1).astype(np.float32) + np.float32(1)) * np.float32(0.5)
    return np.trunc(t * np.float32(_LUT_SIZE - 1) + np.float32(0.5)).astype(np.int64)


def quantize_absmax(absmax, offset=None, block_size: int = _ABSMAX_BLOCK):
    r"""Double quantization: the float32 absmax values as 8-bit codes (bitsandbytes' way).

    .. math::  \mu = \overline{a}, \quad s_j = \max_{i \in B_j} |a_i - \mu|, \quad
               k_i = \mathrm{lut}\big[\lfloor ((a_i - \mu)\,(1/s_j) + 1)/2 \cdot 65535
               + 1/2 \rfloor\big]

    with blocks :math:`B_j` of 256 absmax values (the last one may be shorter), the code
    :func:`dynamic_map` and the table :func:`dynamic_lut`, as bitsandbytes 0.50's CPU kernel;
    a block whose values all equal the mean (:math:`s_j = 0`) gets code 0.

    ``offset`` defaults to the float32 mean of ``absmax``, computed in float64 and rounded once.
    bitsandbytes takes ``torch.mean``, whose float32 summation order depends on the CPU's
    vector width: it can differ in the last bit. Pass bitsandbytes' ``state.offset`` to
    reproduce its bytes exactly.

    Returns ``(codes uint8 (n,), scales float32 (ceil(n/256),), offset float32)``.
    """
    a = np.asarray(to_numpy(absmax, "absmax"))
    if a.dtype != np.float32 or a.ndim != 1:
        raise TypeError(f"absmax must be a 1-D float32 array, got {a.dtype} of shape {a.shape}")
    check_finite(a, "absmax")
    if offset is None:
        mu = np.float32(np.sum(a, dtype=np.float64) / a.size) if a.size else np.float32(0)
    else:
        mu = np.float32(offset)
        if not np.isfinite(mu):
            raise ValueError(f"offset must be a finite number, got {offset!r}")
    centred = a - mu
    n_blocks = -(-centred.size // block_size)
    pad = n_blocks * block_size - centred.size
    blocks = np.concatenate([centred, np.zeros(pad, np.float32)]).reshape(n_blocks, block_size)
    scales = np.abs(blocks).max(axis=1) if n_blocks else np.zeros(0, np.float32)
    inv = np.float32(1) / np.where(scales > 0, scales, np.float32(1))
    normed = (blocks * inv[:, None]).reshape(-1)[: centred.size]
    codes = _LUT[_lut_index(normed)]
    codes[np.repeat(scales == 0, block_size)[: centred.size]] = 0
    return codes, scales.astype(np.float32), mu


_LUT = dynamic_lut()
_LUT.flags.writeable = False


def dequantize_absmax(codes, scales, offset, block_size: int = _ABSMAX_BLOCK) -> np.ndarray:
    r"""The absmax values back from their 8-bit codes (float32).

    .. math::  \hat{a}_i = d_{k_i} \cdot s_{j(i)} + \mu
    """
    k = np.asarray(to_numpy(codes, "codes"))
    s = np.asarray(to_numpy(scales, "scales"), dtype=np.float32)
    if k.dtype != np.uint8:
        raise TypeError(f"codes must be uint8, got {k.dtype}")
    if s.size != -(-k.size // block_size):
        raise ValueError(f"scales must hold one value per {block_size} codes, "
                         f"{-(-k.size // block_size)} in all, got {s.size}")
    per_value = np.repeat(s, block_size)[: k.size]
    return _DYNAMIC[k] * per_value + np.float32(offset)


# --------------------------------------------------------------------------------------------
# NF4 blocks
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NF4Encoded:
    """What :func:`encode_nf4` stores (bitsandbytes' ``QuantState`` fields in brackets).

    packed : uint8, ceil(n/2) bytes: two codes per byte, the first value in the HIGH nibble.
    absmax : float32 per block [``absmax``]; with double quantization uint8 codes of it.
    absmax_scales : float32 per 256 absmax values [``state2.absmax``], or None.
    absmax_offset : float32 mean subtracted before the double quantization [``offset``], or None.
    shape, block_size : the input's shape and the number of values per block.
    """

    packed: object
    absmax: object
    shape: tuple
    block_size: int
    absmax_scales: object = None
    absmax_offset: float | None = None

    @property
    def n(self) -> int:
        """Number of values encoded."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def double_quant(self) -> bool:
        """True when the absmax values are stored as 8-bit codes."""
        return self.absmax_scales is not None

    @property
    def nbytes(self) -> int:
        """The number of bytes stored, counting the codes, the absmax (float32 or uint8) and the
        second-level scales."""
        total = np.asarray(to_numpy(self.packed, "packed")).nbytes
        total += np.asarray(to_numpy(self.absmax, "absmax")).nbytes
        if self.double_quant:
            total += np.asarray(to_numpy(self.absmax_scales, "absmax_scales")).nbytes + 4
        return int(total)


def nf4_bits_per_weight(block_size: int = 64, double_quant: bool = False,
                        absmax_block: int = _ABSMAX_BLOCK) -> float:
    r"""Storage of NF4 per weight, ignoring the single offset.

    .. math::  b = 4 + \frac{32}{B} \quad\text{or, double-quantized,}\quad
               b = 4 + \frac{8}{B} + \frac{32}{B \cdot 256}
    """
    _check_block_size(block_size)
    if double_quant:
        return 4 + 8 / block_size + 32 / (block_size * absmax_block)
    return 4 + 32 / block_size


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be an integer in {NF4_BLOCK_SIZES}, got {block_size!r}")
    if int(block_size) not in NF4_BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {NF4_BLOCK_SIZES} (as bitsandbytes), "
                         f"got {block_size}")
    return int(block_size)


def _float_input(x, name: str = "x") -> np.ndarray:
    if is_tensor(x) and str(x.dtype) == "torch.bfloat16":
        x = x.float()  # bfloat16 -> float32 is exact
    a = np.asarray(to_numpy(x, name))
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    check_finite(a, name)
    return a.astype(np.float32, copy=False)


def encode_nf4(x, block_size: int = 64, double_quant: bool = False, offset=None) -> NF4Encoded:
    r"""NF4 with an absmax scale per block, as bitsandbytes' ``quantize_4bit(quant_type="nf4")``.

    .. math::  a_b = \max_{i \in b} |x_i|, \qquad
               q_i = \#\{k : m_k < \operatorname{clip}(x_i \cdot (1/a_b), -1, 1)\}

    with :math:`m_k` the midpoints of ``NF4`` (:func:`nearest_level`: a tie goes to the
    lower level). ``x`` is flattened in C order and cut into blocks of ``block_size``; as in
    bitsandbytes the last block may be shorter (it is scaled by ``x / a`` instead of
    ``x · (1/a)``) and an odd count is padded with one zero code (7) in the last low nibble.
    An all-zero block stores ``a = 0`` and code 7 (the level 0.0).
    Input is taken as float32 (float64 is rounded to float32 first; bitsandbytes rejects it).

    ``double_quant=True`` (bitsandbytes' ``compress_statistics``) stores the absmax values as
    8-bit codes (:func:`quantize_absmax`); ``offset`` is passed on to it.
    """
    bs = _check_block_size(block_size)
    a = _float_input(x)
    shape = tuple(int(s) for s in a.shape)
    a = a.reshape(-1)
    n = a.size
    full = n - n % bs
    body = a[:full].reshape(-1, bs)
    absmax = np.abs(body).max(axis=1) if full else np.zeros(0, np.float32)
    scaled = np.clip(body * (np.float32(1) / np.maximum(absmax, _TINY))[:, None], -1, 1)
    parts = [scaled.reshape(-1)]
    if n > full:
        tail_max = np.abs(a[full:]).max()
        absmax = np.append(absmax, tail_max).astype(np.float32)
        parts.append(np.clip(a[full:] / np.maximum(tail_max, _TINY), -1, 1))
    if n % 2:
        parts.append(np.zeros(1, np.float32))
    codes = np.searchsorted(nf4_midpoints(), np.concatenate(parts), side="left").astype(np.uint8)
    packed = (codes[0::2] << 4) | codes[1::2]
    if double_quant:
        qcodes, scales, mu = quantize_absmax(absmax, offset)
        return NF4Encoded(like(packed, x), like(qcodes, x), shape, bs, like(scales, x), float(mu))
    if offset is not None:
        raise ValueError("offset is only used with double_quant=True")
    return NF4Encoded(like(packed, x), like(absmax.astype(np.float32), x), shape, bs)


def decode_nf4(encoded: NF4Encoded):
    r"""NF4 codes back to float32, as bitsandbytes' ``dequantize_4bit``.

    .. math::  \hat{x}_i = c_{q_i} \cdot a_{b(i)}, \qquad
               a_b = d_{k_b} \cdot s_{j(b)} + \mu \text{ (double-quantized)}

    Returns an array of ``encoded.shape`` (a tensor if the codes are one).
    """
    if not isinstance(encoded, NF4Encoded):
        raise TypeError(f"encoded must be an NF4Encoded record from encode_nf4, got "
                        f"{type(encoded).__name__}")
    packed = np.asarray(to_numpy(encoded.packed, "encoded.packed"))
    if packed.dtype != np.uint8:
        raise TypeError(f"encoded.packed must be uint8, got {packed.dtype}")
    n, bs = encoded.n, _check_block_size(encoded.block_size)
    if packed.size != -(-n // 2):
        raise ValueError(f"encoded.packed must hold ceil(n/2) = {-(-n // 2)} bytes for "
                         f"{n} values, got {packed.size}")
    n_blocks = -(-n // bs)
    if encoded.double_quant:
        absmax = dequantize_absmax(to_numpy(encoded.absmax, "encoded.absmax").reshape(-1),
                                   to_numpy(encoded.absmax_scales, "encoded.absmax_scales"),
                                   encoded.absmax_offset)
    else:
        absmax = np.asarray(to_numpy(encoded.absmax, "encoded.absmax")).reshape(-1)
        if absmax.dtype != np.float32:
            raise TypeError(f"encoded.absmax must be float32, got {absmax.dtype}")
    if absmax.size != n_blocks:
        raise ValueError(f"encoded.absmax must hold {n_blocks} values (one per block of {bs}), "
                         f"got {absmax.size}")
    flat = packed.reshape(-1)
    codes = np.empty(2 * flat.size, np.uint8)
    codes[0::2], codes[1::2] = flat >> 4, flat & 0x0F
    values = NF4[codes[:n]] * np.repeat(absmax, bs)[:n]
    return like(values.reshape(encoded.shape), encoded.packed)


# --------------------------------------------------------------------------------------------
# IQ4_NL (GGUF)
# --------------------------------------------------------------------------------------------

def _raw_blocks(raw, block_bytes: int) -> np.ndarray:
    a = to_numpy(raw, "raw")
    if a.dtype != np.uint8:
        raise TypeError(f"raw must be a uint8 array of GGUF block bytes, got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] % block_bytes:
        length = "a scalar" if a.ndim == 0 else f"length {a.shape[-1]}"
        raise ValueError(f"raw must have a last axis that is a multiple of {block_bytes} bytes "
                         f"(one block), got {length}")
    return a.reshape(a.shape[:-1] + (a.shape[-1] // block_bytes, block_bytes))


def decode_iq4_nl(raw):
    r"""Decode GGUF IQ4_NL blocks: 18 bytes -> 32 float32 values.

    .. math::  \hat{x}_j = d \cdot v_{q_j}, \qquad q_j = \text{low nibble of byte } j,\;
               q_{j+16} = \text{high nibble of byte } j \quad (j = 0..15)

    with d the block's little-endian fp16 scale (first 2 bytes) and :math:`v` =
    ``IQ4_NL_VALUES``. Shape (..., 18·k) -> (..., 32·k), like ``gguf.quants.dequantize``.
    """
    blocks = _raw_blocks(raw, IQ4_NL_BLOCK_BYTES)
    d = blocks[..., :2].copy().view("<f2").astype(np.float32)
    qs = blocks[..., 2:]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):  # an fp16 NaN/inf scale stays NaN/inf
        values = d * IQ4_NL_VALUES[nibbles].astype(np.float32)
    n_values = values.shape[-2] * IQ4_NL_BLOCK_SIZE
    return like(values.reshape(values.shape[:-2] + (n_values,)), raw)


# How many IQ4_NL values are <= i, for every integer i from -128 to 127: with integer values,
# v_k <= x exactly when v_k <= floor(x), so a table replaces the binary search.
_IQ4_COUNT_LE = np.searchsorted(IQ4_NL_VALUES.astype(np.int64), np.arange(-128, 128), side="right")


def _best_index(values_f32: np.ndarray, x: np.ndarray) -> np.ndarray:
    # llama.cpp's best_index_int8: binary search, then the nearer neighbour; a tie goes UP.
    n = values_f32.size
    fl = np.clip(np.floor(x), -128, 127).astype(np.int64)
    mu = np.clip(_IQ4_COUNT_LE[fl + 128], 1, n - 1)
    lower = values_f32[mu - 1]
    upper = values_f32[mu]
    idx = np.where(x - lower < upper - x, mu - 1, mu)
    idx = np.where(x <= values_f32[0], 0, idx)
    return np.where(x >= values_f32[-1], n - 1, idx)


def _weighted_sums(blocks, w, q):
    # sum_j w*q*x and sum_j w*q*q, accumulated in float32 left to right as the C loop does
    sumqx = np.zeros(blocks.shape[0], np.float32)
    sumq2 = np.zeros(blocks.shape[0], np.float32)
    wq = w * q
    wq_t, x_t, q_t = wq.T.copy(), blocks.T.copy(), q.T.copy()  # contiguous columns
    for j in range(blocks.shape[1]):
        sumqx += wq_t[j] * x_t[j]
        sumq2 += wq_t[j] * q_t[j]
    return sumqx, sumq2


def encode_iq4_nl(x, ntry: int = 7):
    r"""Encode float values as GGUF IQ4_NL blocks, following llama.cpp's ``quantize_iq4_nl``.

    For each block of 32 with weights :math:`w_j = x_j^2` (no importance matrix):

    .. math::  L_j(d) = \arg\min_k |x_j/d - v_k|, \qquad
               d^* = \frac{\sum_j w_j v_{L_j} x_j}{\sum_j w_j v_{L_j}^2}

    tried for the starting scale :math:`d = m / v_0` (m = the block's value of largest magnitude,
    sign kept) and, with ``ntry`` > 0, for :math:`1/d = (t + v_0)/m`, t = -ntry..ntry; the
    trial with the largest :math:`(\sum w v x)^2 / \sum w v^2` wins, the codes are then chosen
    again for the winner, and d is stored as fp16. ``ntry=7`` is ``quantize_iq4_nl`` (what
    llama-quantize writes without an imatrix); ``ntry=-1`` is ``quantize_row_iq4_nl_ref``
    (one trial, the first codes kept). Ties between codes go to the upper one
    (``best_index_int8``). Sums are accumulated in float32 in index order, without fused
    multiply-add (a compiler may fuse them in llama.cpp, so the last bit of d can differ).

    Returns uint8 (..., n/32·18).
    """
    if isinstance(ntry, bool) or not isinstance(ntry, (int, np.integer)) or ntry < -1:
        raise TypeError(f"ntry must be an integer >= -1, got {ntry!r}")
    a = _float_input(x)
    if a.ndim == 0 or a.shape[-1] % IQ4_NL_BLOCK_SIZE:
        length = "a scalar" if a.ndim == 0 else f"length {a.shape[-1]}"
        raise ValueError(f"x must have a last axis that is a multiple of {IQ4_NL_BLOCK_SIZE}, "
                         f"got {length}")
    lead = a.shape[:-1] + (a.shape[-1] // IQ4_NL_BLOCK_SIZE,)
    blocks = a.reshape(-1, IQ4_NL_BLOCK_SIZE)
    v = IQ4_NL_VALUES.astype(np.float32)
    w = blocks * blocks
    rows = np.arange(blocks.shape[0])
    biggest = np.abs(blocks).argmax(axis=1)
    m = blocks[rows, biggest]
    zero = np.abs(m) < np.float32(1e-15)
    m_safe = np.where(zero, np.float32(1), m)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d0 = (-m_safe / v[0]) if ntry > 0 else (m_safe / v[0])
        inv = np.float32(1) / d0
        L = _best_index(v, inv[:, None] * blocks)
        sumqx, sumq2 = _weighted_sums(blocks, w, v[L])
        d = np.where(sumq2 > 0, sumqx / np.where(sumq2 > 0, sumq2, 1), np.float32(0))
        best = d * sumqx
        for t in range(-ntry, ntry + 1):
            inv_t = np.float32(t + int(IQ4_NL_VALUES[0])) / m_safe
            sqx, sq2 = _weighted_sums(blocks, w, v[_best_index(v, inv_t[:, None] * blocks)])
            better = (sq2 > 0) & (sqx * sqx > best * sq2)
            d_t = sqx / np.where(sq2 > 0, sq2, 1)
            d = np.where(better, d_t, d)
            best = np.where(better, d_t * sqx, best)
        if ntry > 0:
            inv_d = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), np.float32(0))
            L = _best_index(v, inv_d[:, None] * blocks)
    d = np.where(zero, np.float32(0), d).astype(np.float32)
    L = np.where(zero[:, None], 0, L).astype(np.uint8)
    packed = L[:, :16] | (L[:, 16:] << 4)
    raw = np.concatenate([d.astype("<f2").view(np.uint8).reshape(-1, 2), packed], axis=1)
    return like(raw.reshape(lead[:-1] + (lead[-1] * IQ4_NL_BLOCK_BYTES,)), x)


# --------------------------------------------------------------------------------------------
# k-means codebooks
# --------------------------------------------------------------------------------------------

def codebook_quantize(x, codebook):
    r"""Index of the nearest codeword for each value (ties to the lower codeword).

    .. math::  q_i = \arg\min_k |x_i - c_k|
    """
    c = np.sort(np.asarray(to_numpy(codebook, "codebook"), dtype=np.float64).reshape(-1))
    if c.size < 1:
        raise ValueError("codebook must hold at least one value")
    check_finite(c, "codebook")
    a = _float_input(x).astype(np.float64)
    if c.size == 1:
        return like(np.zeros(a.shape, np.int64), x)
    q = np.searchsorted((c[:-1] + c[1:]) / 2, a, side="left")
    return like(q, x)


def kmeans_codebook(x, k: int = 16, iters: int = 25, seed: int = 0):
    r"""A k-level scalar codebook fitted by Lloyd's algorithm (float32, sorted).

    .. math::  q_i = \arg\min_k |x_i - c_k|, \qquad
               c_k \leftarrow \frac{1}{|\{i: q_i = k\}|} \sum_{q_i = k} x_i

    Starts from k quantiles of the data (``seed`` only breaks empty clusters: such a centre
    jumps to a random data value drawn with ``numpy.random.default_rng(seed)``), then alternates
    the two steps ``iters`` times or until nothing changes. Deterministic for a given input.
    With fewer than k distinct values some levels repeat.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise TypeError(f"k must be a positive integer, got {k!r}")
    if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 0:
        raise TypeError(f"iters must be a non-negative integer, got {iters!r}")
    a = _float_input(x).astype(np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("x is empty: a codebook needs at least one value")
    rng = np.random.default_rng(seed)
    centres = np.quantile(a, (np.arange(k) + 0.5) / k)
    for _ in range(int(iters)):
        q = np.searchsorted((centres[:-1] + centres[1:]) / 2, a, side="left")
        sums = np.bincount(q, weights=a, minlength=k)
        counts = np.bincount(q, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), rng.choice(a, size=k))
        new = np.sort(new)
        if np.array_equal(new, centres):
            break
        centres = new
    return like(centres.astype(np.float32), x)


def codebook_bytes(n: int, k: int = 16, block_size: int | None = None, scale_bytes: int = 2,
                   codeword_bytes: int = 4) -> float:
    r"""Bytes to store n values with a k-level codebook.

    .. math::  \text{bytes} = \frac{n \lceil \log_2 k \rceil}{8} + k \cdot b_c
               + \frac{n}{B}\, b_s

    the codes, the codebook itself (k codewords of ``codeword_bytes``) and, with blocks of
    ``block_size`` sharing a scale, one scale of ``scale_bytes`` per block.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise TypeError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise TypeError(f"k must be an integer >= 2, got {k!r}")
    bits = int(np.ceil(np.log2(k)))
    total = n * bits / 8 + k * codeword_bytes
    if block_size is not None:
        total += -(-n // block_size) * scale_bytes
    return float(total)
