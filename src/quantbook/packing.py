"""Packing 4-bit integers two to a byte (chapter 5).

A byte has two nibbles: the *low* nibble (bits 0-3) and the *high* nibble (bits 4-7),

    byte = low + 16 * high.

A signed int4 value q in [-8, 7] is stored as its two's-complement nibble ``q mod 16``; reading
it back, a nibble of 8 or more is negative (sign extension): ``q = nibble - 16 * (nibble >= 8)``.

Which element goes into which nibble is a convention, and real libraries disagree. ``ORDERS``:

``"low-first"``
    element 2i in the low nibble, element 2i+1 in the high nibble of byte i (ONNX ``INT4``/
    ``UINT4``, PyTorch's ``float4_e2m1fn_x2``, and PyTorch's CPU int4 matmul weights within a
    16-row tile).
``"high-first"``
    element 2i in the high nibble, element 2i+1 in the low nibble (bitsandbytes 4-bit, torchao
    ``uint4``).
``"gguf"``
    llama.cpp's Q4_0 blocks of 32 values: byte j of a block holds element j in the low nibble
    and element j+16 in the high nibble (split halves). The last axis must divide by 32.
    PyTorch's CPU int4 matmul pairs rows the same way within a 32-row tile.
``"planar"``
    the first half of the elements in the low nibbles, the second half in the high nibbles:
    byte i holds elements i and i + ceil(n/2). optimum-quanto's ``PackedTensor`` does this
    along the *first* axis (rows) of a weight; here it acts on the last axis like every other
    order, so ``pack_int4(w.T, signed=False, order="planar").T`` gives quanto's layout.

Every order packs along the last axis and pads an odd length with one zero nibble, so n values
take ceil(n/2) bytes; ``unpack_int4`` needs ``n`` to trim the padding.
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import as_real_array, check_choice, check_flag, check_integer, like, to_numpy

ORDERS = ("low-first", "high-first", "gguf", "planar")
GGUF_BLOCK = 32


def int4_range(signed: bool = True) -> tuple[int, int]:
    """The values a nibble can hold: [-8, 7] (two's complement) or [0, 15]."""
    return (-8, 7) if _check_signed(signed) else (0, 15)


def packed_length(n: int) -> int:
    """Bytes needed for ``n`` nibbles: ceil(n / 2)."""
    n = _check_length(n)
    return (n + 1) // 2


def nibble_owners(n: int, order: str = "low-first") -> tuple[np.ndarray, np.ndarray]:
    """Which element lands in each byte's nibbles: (low, high) index arrays of length ceil(n/2).

    -1 marks the padding nibble of an odd length. Example: ``nibble_owners(4, "high-first")``
    gives low = [1, 3] and high = [0, 2].
    """
    _check_order(order)
    n = _check_length(n)
    if order == "gguf" and n % GGUF_BLOCK:
        raise ValueError(f"n must be a multiple of {GGUF_BLOCK} for order='gguf', got {n}")
    index = np.arange(n + n % 2)
    index[n:] = -1
    low, high = _split(index, order)
    return low.reshape(-1), high.reshape(-1)


def to_nibble(q):
    """Two's-complement nibble of a signed int4 value: nibble = q mod 16 (so -1 -> 15, -8 -> 8)."""
    a = _integer_values(to_numpy(q, "q"), "q", signed=True)
    return like((a & 0x0F).astype(np.uint8), q)


def from_nibble(nibble):
    """Sign-extend a 4-bit pattern: q = nibble - 16 if nibble >= 8 else nibble (int8)."""
    a = _integer_values(to_numpy(nibble, "nibble"), "nibble", signed=False)
    return like(_sign_extend(a.astype(np.uint8)), nibble)


def byte_bits(b):
    """Bits of a byte as text, high nibble first: 105 -> "0110 1001".

    A scalar gives a string; an array gives an array of strings of the same shape.
    """
    a = as_real_array(b, "b", finite=False)
    if a.dtype.kind not in "iu" or a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"b must hold bytes (integers 0..255), got {a!r}")
    text = [f"{v >> 4:04b} {v & 15:04b}" for v in a.ravel().tolist()]
    if a.ndim == 0:
        return text[0]
    return np.array(text, dtype="<U9").reshape(a.shape)


def pack_int4(q, signed: bool = True, order: str = "low-first"):
    """Pack int4 values two per byte along the last axis.

    byte = nibble(a) + 16 * nibble(b), where (a, b) is the pair that ``order`` puts in the low
    and high nibble (see the module docstring) and nibble(q) = q mod 16.

    Parameters
    ----------
    q : array of integers, shape (..., n)
        In [-8, 7] if ``signed`` else in [0, 15]; anything else is an error, never wrapped.
    signed : bool
        Two's-complement int4 (True) or unsigned uint4 (False).
    order : str
        One of ``ORDERS``. ``"gguf"`` needs n to be a multiple of 32.

    Returns
    -------
    uint8 array of shape (..., ceil(n / 2)); an odd n is padded with a zero nibble.
    """
    _check_order(order)
    a = _integer_values(to_numpy(q, "q"), "q", signed)
    if a.ndim == 0:
        raise ValueError("q must have at least one axis to pack along, got a scalar")
    n = a.shape[-1]
    if order == "gguf" and n % GGUF_BLOCK:
        raise ValueError(
            f"q must have a last axis that is a multiple of {GGUF_BLOCK} for order='gguf', "
            f"got length {n}"
        )
    codes = _as_bytes(a)
    if n % 2:
        pad = np.zeros(a.shape[:-1] + (1,), dtype=np.uint8)
        codes = np.concatenate([codes, pad], axis=-1)
    low, high = _split(codes, order)
    # A value's nibble is the low 4 bits of its two's-complement byte (-1 = 0b1111_1111);
    # shifting the high one left by 4 drops the upper bits on its own.
    packed = (low & np.uint8(0x0F)) | (high << np.uint8(4))
    return like(packed.reshape(a.shape[:-1] + (packed_length(n),)), q)


def unpack_int4(packed, n: int, signed: bool = True, order: str = "low-first"):
    """Unpack ``n`` int4 values per row from bytes made by :func:`pack_int4`.

    low = byte & 15, high = byte >> 4; the nibbles are put back in the element order of
    ``order``, trimmed to n, and (if ``signed``) sign-extended: q = nibble - 16·[nibble >= 8].

    Returns
    -------
    int8 array (signed) or uint8 array (unsigned) of shape (..., n).
    """
    _check_order(order)
    signed = _check_signed(signed)
    n = _check_length(n)
    p = as_real_array(packed, "packed", finite=False)
    if p.dtype.kind not in "iu" or p.size and (p.min() < 0 or p.max() > 255):
        raise ValueError(f"packed must hold bytes (integers 0..255), got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError("packed must have at least one axis, got a scalar")
    if p.shape[-1] != packed_length(n):
        raise ValueError(
            f"n={n} values need {packed_length(n)} bytes along the last axis of packed, "
            f"but packed has {p.shape[-1]}"
        )
    if order == "gguf" and n % GGUF_BLOCK:
        raise ValueError(f"n must be a multiple of {GGUF_BLOCK} for order='gguf', got {n}")
    p = p.astype(np.uint8, copy=False)
    if signed:
        # Sign extension by arithmetic shifts: move the nibble's top bit (worth -8) onto the
        # byte's sign bit, then shift back down, which copies the sign: 0b1111 -> -1.
        low = (p << np.uint8(4)).view(np.int8) >> np.int8(4)
        high = p.view(np.int8) >> np.int8(4)
    else:
        low, high = p & np.uint8(0x0F), p >> np.uint8(4)
    return like(_join(low, high, order)[..., :n], packed)


def _split(nibbles: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) nibble planes of an even-length row, as ``order`` lays them out.

    Views, not copies; for "gguf" they keep a block axis, (..., n/32, 16), so reshape the
    packed result to (..., n/2).
    """
    if order == "low-first":
        return nibbles[..., 0::2], nibbles[..., 1::2]
    if order == "high-first":
        return nibbles[..., 1::2], nibbles[..., 0::2]
    if order == "planar":
        half = nibbles.shape[-1] // 2
        return nibbles[..., :half], nibbles[..., half:]
    # gguf: within each block of 32, the first 16 go low and the last 16 go high.
    n = nibbles.shape[-1]
    blocks = nibbles.reshape(nibbles.shape[:-1] + (n // GGUF_BLOCK, 2, GGUF_BLOCK // 2))
    return blocks[..., 0, :], blocks[..., 1, :]


def _join(low: np.ndarray, high: np.ndarray, order: str) -> np.ndarray:
    """Inverse of :func:`_split`: the nibbles back in element order (padding included)."""
    if order == "planar":
        return np.concatenate([low, high], axis=-1)
    if order == "gguf":
        half = GGUF_BLOCK // 2
        shape = low.shape[:-1] + (low.shape[-1] // half, 1, half)
        blocks = np.concatenate([low.reshape(shape), high.reshape(shape)], axis=-2)
        return blocks.reshape(low.shape[:-1] + (2 * low.shape[-1],))
    first, second = (low, high) if order == "low-first" else (high, low)
    return np.stack([first, second], axis=-1).reshape(low.shape[:-1] + (2 * low.shape[-1],))


def _as_bytes(a: np.ndarray) -> np.ndarray:
    """Each value's two's-complement low byte as uint8 (a view for int8 and uint8 input)."""
    if a.itemsize == 1:
        return a.view(np.uint8)
    return (a & 0xFF).astype(np.uint8)


def _sign_extend(nibbles: np.ndarray) -> np.ndarray:
    """Two's complement of 4-bit patterns: bit 3 is the sign, worth -8."""
    values = nibbles.astype(np.int8)
    return values - np.int8(16) * (values >= 8).astype(np.int8)


def _integer_values(a: np.ndarray, name: str, signed: bool) -> np.ndarray:
    """``a`` as an integer array, checked to lie in the int4 (or uint4) range."""
    low, high = int4_range(signed)
    try:
        a = as_real_array(a, name, finite=False)
    except TypeError:
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}") from None
    if a.dtype.kind == "f":
        if a.size and not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or an infinite value; int4 needs integers")
        if a.size and (a != np.round(a)).any():
            bad = a[a != np.round(a)].ravel()[0]
            raise TypeError(f"{name} must hold whole numbers (int4 values), got {bad}")
        if a.size and (a.min() < low or a.max() > high):  # before the cast, which would wrap
            bad = a[(a < low) | (a > high)].ravel()[0]
            raise ValueError(
                f"{name} must be in [{low}, {high}] for {'signed' if signed else 'unsigned'} "
                f"int4; got {bad} (values are never wrapped)"
            )
        a = a.astype(np.int16)
    elif a.dtype.kind == "b":
        a = a.astype(np.int16)
    elif a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
    # min and max read the array without writing a full-size mask; the mask is made only to
    # name the first bad value.
    if a.size and (a.min() < low or a.max() > high):
        where = tuple(int(i) for i in np.argwhere((a < low) | (a > high))[0])
        kind = "signed int4" if signed else "unsigned int4"
        raise ValueError(
            f"{name} must be in [{low}, {high}] for {kind}; got {a[where]} at index "
            f"{where if len(where) != 1 else where[0]} (values are never wrapped)"
        )
    return a if a.dtype in (np.int8, np.uint8) else a.astype(np.int16)


def _check_order(order) -> None:
    check_choice(order, "order", ORDERS)


def _check_signed(signed) -> bool:
    return check_flag(signed, "signed")


def _check_length(n) -> int:
    return check_integer(n, "n", 0, what="a non-negative integer (number of values)")
