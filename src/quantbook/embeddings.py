"""Quantizing and dequantizing embeddings (chapter 6).

An embedding model gives each text a float32 vector; normalized sentence embeddings have every
coordinate in [-1, 1]. Storing millions of them is the cost, so they are stored smaller:

- float32: x, back as x
- float8:  the nearest float8 e4m3fn number (saturated at ±448), back as that number
- int8:    q = rint(127·x) in [-127, 127], back as q / 127
- uint8:   q = rint(127.5·(x + 1)) in [0, 255], back as q / 127.5 − 1
- ubinary: the sign bits [x > 0] packed 8 per byte (uint8), back as ±1 per bit
- binary:  the same bytes minus 128 (int8), back as ±1 per bit

That list is the *fixed-range* scheme of hosted embedding APIs: the range [-1, 1] is known in
advance, so no calibration is needed. With ``ranges`` (per-dimension minimum and maximum from
calibration embeddings) int8/uint8 use the *calibrated* scheme of sentence-transformers instead.

Out-of-range values are clamped, never wrapped around: x beyond [-1, 1] (fixed range) or beyond
``ranges`` (calibrated) gets the end code, as hosted APIs and sentence-transformers 6.2 do; float8
saturates at ±448 as torch does. NaN and infinities are errors.
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import as_real_array, check_finite, check_integer, is_tensor, like, to_numpy

PRECISIONS = ("float32", "float8", "int8", "uint8", "binary", "ubinary")
FLOAT8_MAX = 448.0  # largest finite float8 e4m3fn number
INT8_SCALE = 127.0  # fixed range: int8 code per unit
UINT8_SCALE = 127.5  # fixed range: uint8 code per unit (255 steps over a width of 2)


def check_precision(precision) -> str:
    """Return ``precision`` if it is one of ``PRECISIONS``, else raise naming it."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def _float8_dtype():
    try:
        import ml_dtypes
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("float8 needs the ml_dtypes package: pip install ml-dtypes") from error
    return ml_dtypes.float8_e4m3fn


def _float_input(x, name: str = "x") -> np.ndarray:
    """``x`` as a float array (float32 unless it is float64 or wider), checked finite."""
    a = as_real_array(x, name, finite=False)
    if a.dtype in (np.int8, np.uint8):
        raise TypeError(
            f"{name} must hold float embeddings, got {a.dtype} (already quantized codes?)"
        )
    if a.dtype.kind == "f" and a.dtype.itemsize >= 8:
        a = a.astype(np.float64, copy=False)
    else:
        a = a.astype(np.float32, copy=False)
    check_finite(a, name)
    return a


def check_ranges(ranges, dim: int) -> np.ndarray:
    """``ranges`` as a float32 (2, dim) array [minimum; maximum], or raise naming ``ranges``."""
    return like(_check_ranges(ranges, dim), ranges)


def _check_ranges(ranges, dim: int) -> np.ndarray:
    dim = check_integer(dim, "dim", 0)
    r = as_real_array(ranges, "ranges", finite=False)
    if r.ndim != 2 or r.shape != (2, dim):
        raise ValueError(
            f"ranges must have shape (2, {dim}) (row 0 the minimum, row 1 the maximum of each "
            f"dimension), got shape {r.shape}"
        )
    with np.errstate(over="ignore"):  # beyond float32: inf, reported just below
        r = r.astype(np.float32)  # sentence-transformers computes its steps in float32
    check_finite(r, "ranges")
    if (r[0] > r[1]).any():
        raise ValueError("ranges[0] (minimum) must be <= ranges[1] (maximum) in every dimension")
    with np.errstate(over="ignore"):
        if not np.isfinite(r[1] - r[0]).all():
            raise ValueError("ranges must have widths (maximum - minimum) that float32 can hold")
    return r


def calibration_ranges(embeddings) -> np.ndarray:
    """Per-dimension minimum and maximum of calibration ``embeddings``: shape (2, dim), float32."""
    a = _float_input(embeddings, "embeddings")
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (n, dim) array, got shape {a.shape}")
    return like(np.stack([a.min(axis=0), a.max(axis=0)]).astype(np.float32), embeddings)


def _ranges_of(ranges) -> np.ndarray:
    """A (2, dim) ``ranges`` argument of a helper, checked, as float32."""
    r = as_real_array(ranges, "ranges", finite=False)
    if r.ndim != 2 or r.shape[0] != 2:
        raise ValueError(f"ranges must have shape (2, dim), got shape {r.shape}")
    return _check_ranges(r, r.shape[1])


def calibrated_steps(ranges) -> np.ndarray:
    r"""Bucket width per dimension, step = (max − min) / 255 in float32; a zero width becomes 1.

    .. math::  \Delta_j = \frac{\max_j - \min_j}{255}
    """
    return like(_calibrated_steps(_ranges_of(ranges)), ranges)


def _calibrated_steps(ranges: np.ndarray) -> np.ndarray:
    steps = (ranges[1] - ranges[0]) / np.float32(255)
    return np.where(steps == 0, np.float32(1), steps).astype(np.float32)


def quantize_int8_fixed(x) -> np.ndarray:
    r"""q = rint(127 · clip(x, −1, 1)), an int8 in [−127, 127] (values beyond ±1 are clamped).

    .. math::  q = \operatorname{round}(127 \cdot \operatorname{clip}(x, -1, 1))
    """
    return like(_quantize_int8_fixed(_float_input(x)), x)


def _quantize_int8_fixed(x: np.ndarray) -> np.ndarray:
    one = x.dtype.type(1)
    return np.rint(x.dtype.type(INT8_SCALE) * np.clip(x, -one, one)).astype(np.int8)


def quantize_uint8_fixed(x) -> np.ndarray:
    r"""q = rint(127.5 · (clip(x, −1, 1) + 1)), a uint8 in [0, 255] (beyond ±1 clamped).

    .. math::  q = \operatorname{round}(127.5 \cdot (\operatorname{clip}(x, -1, 1) + 1))
    """
    return like(_quantize_uint8_fixed(_float_input(x)), x)


def _quantize_uint8_fixed(x: np.ndarray) -> np.ndarray:
    one = x.dtype.type(1)
    return np.rint(x.dtype.type(UINT8_SCALE) * (np.clip(x, -one, one) + one)).astype(np.uint8)


def bucket_calibrated(x, ranges) -> np.ndarray:
    r"""b = clip(floor((x − min) / step), 0, 255) with step = (max − min) / 255: an int in [0, 255].

    This is sentence-transformers' formula: ``floor`` (not rounding), so bucket b holds
    [min + b·step, min + (b+1)·step) and only x = max itself reaches 255 (or, when the float32
    quotient (max − min) / step rounds to 254.99998, not even that: it lands in 254). Values
    outside the range are clamped to bucket 0 or 255.

    .. math::  b = \operatorname{clip}\left(\left\lfloor \frac{x - \min}{\Delta}
               \right\rfloor, 0, 255\right)
    """
    a = _float_input(x)
    if a.ndim == 0:
        raise ValueError("x must have a last axis of length dim to use ranges, got a scalar")
    return like(_bucket_calibrated(a, _check_ranges(ranges, a.shape[-1])), x)


def _bucket_calibrated(x: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    steps = _calibrated_steps(ranges)
    return np.clip(np.floor((x - ranges[0]) / steps), 0, 255)


def sign_bits(x) -> np.ndarray:
    """b_i = 1 where x_i > 0, else 0 (zero counts as negative, as in sentence-transformers).

    .. math::  b_i = [x_i > 0]
    """
    return like(_float_input(x) > 0, x)


def pack_sign_bits(x) -> np.ndarray:
    """Sign bits packed 8 per byte along the last axis, first value in the most significant bit.

    A length that is not a multiple of 8 is padded with 0 bits: ceil(dim / 8) bytes per vector.
    """
    a = _float_input(x)
    if a.ndim == 0:
        raise ValueError("x must have a last axis to pack along, got a scalar")
    return like(_pack_sign_bits(a), x)


def _pack_sign_bits(x: np.ndarray) -> np.ndarray:
    return np.packbits(x > 0, axis=-1, bitorder="big")


def quantize_embeddings(x, precision: str, ranges=None):
    """Quantize embeddings ``x`` (shape (..., dim)) to ``precision``.

    Parameters
    ----------
    x : array, list or CPU tensor of floats, shape (..., dim)
    precision : one of "float32", "float8", "int8", "uint8", "binary", "ubinary"
    ranges : optional (2, dim) array, [minimum; maximum] per dimension (int8/uint8 only)

    Returns
    -------
    float32 / float8_e4m3fn (ml_dtypes) / int8 / uint8 codes of shape (..., dim), or for
    binary/ubinary int8/uint8 bytes of shape (..., ceil(dim / 8)). The kind of ``x`` comes back
    (a torch tensor for a torch tensor).

    Notes
    -----
    Without ``ranges`` (fixed range [−1, 1], as hosted embedding APIs):

    - int8:  q = rint(127·x), q in [−127, 127]
    - uint8: q = rint(127.5·(x + 1)), q in [0, 255]

    With ``ranges`` (calibrated, equal bit for bit to sentence-transformers'
    ``quantize_embeddings(x, precision, ranges=ranges)``):

    - b = clip(floor((x − min) / step), 0, 255), step = (max − min) / 255
    - uint8: q = b; int8: q = b − 128

    binary/ubinary: bit i is 1 where x_i > 0, packed most significant bit first;
    ubinary is the byte, binary = ubinary − 128 stored as int8 (the same bits with the top
    one flipped). float8: the nearest float8 e4m3fn (round half to even).

    Values outside the range are clamped to the end codes (never wrapped): beyond ±1 for the
    fixed range, beyond ``ranges`` for the calibrated one, beyond ±448 for float8.
    NaN or infinite values raise ValueError.
    """
    check_precision(precision)
    a = _float_input(x, "x")
    if ranges is not None and precision not in ("int8", "uint8"):
        raise ValueError(f"ranges only apply to int8 and uint8, not to precision {precision!r}")

    if precision == "float32":
        return like(a.astype(np.float32), x)
    if precision == "float8":
        f8 = _float8_dtype()
        q = np.clip(a, -FLOAT8_MAX, FLOAT8_MAX).astype(f8)
        if is_tensor(x):
            import torch

            return torch.from_numpy(q.view(np.uint8)).view(torch.float8_e4m3fn)
        return q
    if precision in ("binary", "ubinary"):
        if a.ndim == 0:
            raise ValueError("x must have a last axis to pack along, got a scalar")
        packed = _pack_sign_bits(a)
        if precision == "binary":
            packed = (packed ^ np.uint8(0x80)).view(np.int8)  # == ubinary − 128, no overflow
        return like(packed, x)

    if ranges is None:
        q = _quantize_int8_fixed(a) if precision == "int8" else _quantize_uint8_fixed(a)
        return like(q, x)
    if a.ndim == 0:
        raise ValueError("x must have a last axis of length dim to use ranges, got a scalar")
    r = _check_ranges(ranges, a.shape[-1])
    buckets = _bucket_calibrated(a, r)
    if precision == "uint8":
        return like(buckets.astype(np.uint8), x)
    return like((buckets - 128).astype(np.int8), x)


_CODE_DTYPES = {"int8": np.int8, "binary": np.int8, "uint8": np.uint8, "ubinary": np.uint8}


def _integer_codes(q, precision: str) -> np.ndarray:
    a = as_real_array(q, "q")
    low, high = (-128, 127) if precision in ("int8", "binary") else (0, 255)
    if a.dtype.kind not in "iu":
        raise TypeError(f"q must hold integer {precision} codes, got dtype {a.dtype}")
    expected = np.dtype(_CODE_DTYPES[precision])
    if a.itemsize == 1 and a.dtype != expected:
        raise TypeError(
            f"q has dtype {a.dtype}, but precision {precision!r} codes are {expected}: "
            "pass the precision the codes were made with"
        )
    if a.size and (a.min() < low or a.max() > high):
        raise ValueError(f"q must hold {precision} codes in [{low}, {high}]")
    return a


def _float8_codes(q) -> np.ndarray:
    f8 = _float8_dtype()
    if is_tensor(q) and "float8" in str(q.dtype):
        import torch

        return q.detach().view(torch.uint8).numpy().view(f8)
    a = to_numpy(q, "q")
    if a.dtype == f8:
        return a
    if a.dtype.kind not in "fiu":
        raise TypeError(f"q must hold float8 e4m3fn values, got dtype {a.dtype}")
    a = a.astype(np.float32)
    check_finite(a, "q")
    if not np.array_equal(a.astype(f8).astype(np.float32), a):
        raise ValueError("q holds values that are not float8 e4m3fn numbers")
    return a.astype(f8)


def _check_dim_matches(dim, length: int, precision: str) -> None:
    if dim is not None:
        check_integer(dim, "dim", 0, what="None or a non-negative integer")
    if dim is not None and dim != length:
        raise ValueError(
            f"dim must be None or {length} (the last axis of q) for {precision}, got {dim}"
        )


def unpack_sign_bits(packed, dim: int | None = None) -> np.ndarray:
    r"""±1.0 float32 per bit of ``packed`` (uint8, most significant bit first), trimmed to ``dim``.

    x̂_i = 2·b_i − 1, computed in float32. (Computed in uint8 instead, 0·2 − 1 wraps to 255:
    the bug behind the 255s of the seed notebook.)

    .. math::  \hat{x}_i = 2 b_i - 1
    """
    p = as_real_array(packed, "packed")
    if p.dtype != np.uint8:
        raise TypeError(
            f"packed must hold ubinary bytes (uint8), got dtype {p.dtype} (for binary int8 "
            "codes use dequantize_embeddings(q, 'binary'))"
        )
    if p.ndim == 0:
        raise ValueError("packed must have a last axis of bytes, got a scalar")
    return like(_unpack_sign_bits(p, dim), packed)


def _unpack_sign_bits(packed: np.ndarray, dim: int | None = None) -> np.ndarray:
    n_bytes = packed.shape[-1] if packed.ndim else 0
    if dim is None:
        dim = 8 * n_bytes
    dim = check_integer(dim, "dim", 0)
    if dim > 8 * n_bytes:
        raise ValueError(f"dim must be at most {8 * n_bytes} (8 bits x {n_bytes} bytes), got {dim}")
    if (dim + 7) // 8 != n_bytes:
        raise ValueError(
            f"dim={dim} packs into {(dim + 7) // 8} bytes per vector, but q has {n_bytes}"
        )
    bits = np.unpackbits(packed, axis=-1, count=dim, bitorder="big")
    return bits.astype(np.float32) * np.float32(2) - np.float32(1)


def dequantize_embeddings(q, precision: str, dim: int | None = None, ranges=None):
    """Turn codes ``q`` back into float32 embeddings: the inverse of :func:`quantize_embeddings`.

    - float32: x̂ = q;  float8: x̂ = the float8 value as float32
    - int8:  x̂ = q / 127;  uint8: x̂ = q / 127.5 − 1        (fixed range [−1, 1])
    - with ``ranges``: x̂ = min + (b + ½)·step, b = q (uint8) or q + 128 (int8): the centre of
      the bucket, so ``|x − x̂| ≤ step/2`` inside the range (sentence-transformers' own rescoring
      uses the bucket's lower edge, min + b·step, which can be a whole step off)
    - binary/ubinary: x̂_i = +1.0 where bit i is set, −1.0 where not, the first ``dim`` bits of
      each row (``dim`` defaults to all 8·bytes bits; pass the original dimension when it was not
      a multiple of 8)

    ``dim`` is needed only for binary/ubinary; for the others it must be None or the last axis.
    The kind of ``q`` comes back (a torch tensor for a torch tensor).
    """
    check_precision(precision)
    if ranges is not None and precision not in ("int8", "uint8"):
        raise ValueError(f"ranges only apply to int8 and uint8, not to precision {precision!r}")

    if precision == "float8":
        codes = _float8_codes(q)
        _check_dim_matches(dim, codes.shape[-1] if codes.ndim else 1, precision)
        return like(codes.astype(np.float32), q)
    if precision == "float32":
        a = as_real_array(q, "q", finite=False).astype(np.float32)
        check_finite(a, "q")
        _check_dim_matches(dim, a.shape[-1] if a.ndim else 1, precision)
        return like(a, q)
    if precision in ("binary", "ubinary"):
        codes = _integer_codes(q, precision)
        if codes.ndim == 0:
            raise ValueError("q must have a last axis of packed bytes, got a scalar")
        if precision == "binary":
            codes = codes.astype(np.int8).view(np.uint8) ^ np.uint8(0x80)  # undo the − 128
        return like(_unpack_sign_bits(codes.astype(np.uint8, copy=False), dim), q)

    codes = _integer_codes(q, precision)
    _check_dim_matches(dim, codes.shape[-1] if codes.ndim else 1, precision)
    if ranges is None:
        if precision == "int8":
            return like(codes.astype(np.float32) / np.float32(INT8_SCALE), q)
        return like(codes.astype(np.float32) / np.float32(UINT8_SCALE) - np.float32(1), q)
    if codes.ndim == 0:
        raise ValueError("q must have a last axis of length dim to use ranges, got a scalar")
    r = _check_ranges(ranges, codes.shape[-1])
    buckets = codes.astype(np.float32) + (np.float32(128) if precision == "int8" else 0)
    steps = _calibrated_steps(r)
    centre = r[0] + (buckets + np.float32(0.5)) * steps
    # a zero-width dimension held one value only: give it back exactly
    return like(np.where(r[1] == r[0], r[0], centre).astype(np.float32), q)


# --- Hamming distance ------------------------------------------------------------------------

_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _integer_bits(a, name: str = "a") -> np.ndarray:
    """An integer array viewed as the unsigned integers of the same width (same bits)."""
    x = as_real_array(a, name)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")
    return x.view(np.dtype(f"u{x.itemsize}")) if x.dtype.kind == "i" else x


def popcount_table(a) -> np.ndarray:
    """Number of 1 bits in each element of an integer array, by a 256-entry table.

    Each byte of the element is looked up and the counts are added: what ``popcount`` falls back
    to on NumPy 1.x, which has no ``np.bitwise_count``. Signed integers count the bits of their
    two's-complement pattern (int8 −1 is 0xFF: 8 bits).
    """
    bits = _integer_bits(a)
    x = np.ascontiguousarray(bits).reshape(bits.shape)  # (0-d stays 0-d)
    per_byte = _BYTE_POPCOUNT[x.view(np.uint8)].reshape(*x.shape, x.itemsize)
    return like(per_byte.sum(axis=-1, dtype=np.uint8), a)


def popcount(a) -> np.ndarray:
    r"""Number of 1 bits in each element of an integer array.

    .. math::  \operatorname{popcount}(a) = \sum_j \text{bit}_j(a)

    ``np.bitwise_count`` (NumPy >= 2.0, a hardware instruction where the CPU has one), else
    :func:`popcount_table`. Signed integers count the bits of their two's-complement pattern
    (int8 −1 is 0xFF: 8 bits; ``np.bitwise_count`` alone would count ``|−1|``: 1 bit).
    """
    return like(_popcount_unsigned(_integer_bits(a)), a)


def _popcount_unsigned(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return popcount_table(x)  # pragma: no cover - NumPy 1.x


def as_packed_bytes(codes, name: str = "a") -> np.ndarray:
    """Packed binary (int8) or ubinary (uint8) codes as uint8 bytes with the same bits.

    binary = ubinary − 128 flips the top bit of every byte in both codes, so XOR, and hence the
    Hamming distance, is the same for both as long as the two sides use the same precision.
    Integer lists are accepted when every value fits a byte (−128..255).
    """
    return like(_as_packed_bytes(codes, name), codes)


def _as_packed_bytes(codes, name: str) -> np.ndarray:
    a = to_numpy(codes, name)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.int8:
        return a.view(np.uint8)
    if a.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold packed binary (int8) or ubinary (uint8) codes, got {a.dtype}"
        )
    if a.size and (a.min() < -128 or a.max() > 255):
        raise ValueError(f"{name} must hold packed bytes, values from -128 to 255")
    return (a.astype(np.int64) & 0xFF).astype(np.uint8)


def as_words(packed) -> np.ndarray:
    """Bytes (..., B) viewed as uint64 words (..., ceil(B / 8)), zero-padded: 8x fewer popcounts."""
    p = as_real_array(packed, "packed")
    if p.dtype != np.uint8 or p.ndim == 0:
        raise TypeError(
            f"packed must be uint8 bytes with a last axis, got dtype {p.dtype} and shape {p.shape}"
        )
    return like(_as_words(p), packed)


def _as_words(packed: np.ndarray) -> np.ndarray:
    n_bytes = packed.shape[-1]
    pad = (-n_bytes) % 8
    if pad:
        packed = np.concatenate(
            [packed, np.zeros((*packed.shape[:-1], pad), dtype=np.uint8)], axis=-1
        )
    return np.ascontiguousarray(packed).view(np.uint64)


def hamming_distance(a, b):
    """Hamming distance between packed sign-bit codes: d(a, b) = popcount(a XOR b).

    Parameters
    ----------
    a : (n, B) or (B,) packed codes (binary int8 or ubinary uint8)
    b : (m, B) or (B,) packed codes of the same precision

    Returns
    -------
    int32 distances of shape (n, m), (n,), (m,) or () (the 1-D inputs drop their axis).
    """
    ta, tb = to_numpy(a, "a"), to_numpy(b, "b")
    if {ta.dtype, tb.dtype} == {np.dtype(np.int8), np.dtype(np.uint8)}:
        raise TypeError("a and b must use the same precision: both binary (int8) or both ubinary")
    pa, pb = _as_packed_bytes(ta, "a"), _as_packed_bytes(tb, "b")
    if pa.ndim not in (1, 2) or pb.ndim not in (1, 2):
        raise ValueError(f"a and b must be 1-D or 2-D packed codes, got {pa.shape} and {pb.shape}")
    if pa.shape[-1] != pb.shape[-1]:
        raise ValueError(
            f"a and b must have the same number of bytes per code, got {pa.shape[-1]} and "
            f"{pb.shape[-1]}"
        )
    wa, wb = _as_words(np.atleast_2d(pa)), _as_words(np.atleast_2d(pb))
    # d = sum over 64-bit words w of popcount(a_w XOR b_w), added up one word at a time: each
    # step is one long, flat loop (fast in NumPy), where summing over the short words axis
    # (6 words for 384 bits) is not. Columns of b go in blocks so the XOR stays small (~8 MB).
    columns = np.ascontiguousarray(wb.T)  # (words, m): word w of every code of b, side by side
    out = np.zeros((wa.shape[0], wb.shape[0]), dtype=np.int32)
    block = max(1, (1 << 20) // max(1, wa.shape[0]))
    for start in range(0, wb.shape[0], block):
        part = out[:, start : start + block]
        for w in range(wa.shape[1]):
            part += _popcount_unsigned(wa[:, w, None] ^ columns[w, start : start + block])
    if pa.ndim == 1:
        out = out[0]
    if pb.ndim == 1:
        out = out[..., 0]
    return like(out, a, b)
