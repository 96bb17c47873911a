"""Number formats as bits: floats, small integers and 1-bit signs (chapter 1).

A binary floating-point number with e exponent bits and m mantissa bits is stored as a sign bit
s, a biased exponent E and a mantissa M and means

    x = (-1)^s · 2^(E - bias) · (1 + M / 2^m)      (normal numbers, E >= 1)
    x = (-1)^s · 2^(1 - bias) · (M / 2^m)          (subnormal numbers, E = 0)

with bias = 2^(e-1) - 1. ``FORMATS`` lists the formats the book compares. The float formats are
NumPy's and ml_dtypes' (``bfloat16``, ``float8_e4m3fn``, ``float8_e5m2``); the numbers in
:func:`format_info` come from the formulas above, and the tests check them against
``ml_dtypes.finfo`` and ``torch.finfo``.

The 1-bit format keeps only a sign: +1 or -1 (x > 0 gives +1, as binary embeddings do; its
sign bit is 1 for -1, the opposite of the stored bit of a binary embedding code).
"""

from __future__ import annotations

import math

import numpy as np

from quantbook._arrays import as_real_array, check_flag, check_integer, like

# name: (kind, exponent bits, mantissa bits, has infinities)
_SPECS = {
    "float32": ("float", 8, 23, True),
    "float16": ("float", 5, 10, True),
    "bfloat16": ("float", 8, 7, True),
    "float8_e4m3fn": ("float", 4, 3, False),
    "float8_e5m2": ("float", 5, 2, True),
    "int8": ("integer", 0, 7, False),
    "int4": ("integer", 0, 3, False),
    "1-bit": ("sign", 0, 0, False),
}
FORMATS = tuple(_SPECS)
_ALIASES = {
    "fp32": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "fp8_e4m3": "float8_e4m3fn",
    "e4m3": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "e5m2": "float8_e5m2",
    "binary": "1-bit",
    "1bit": "1-bit",
}
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def _dtype(name: str):
    """The NumPy dtype of a float format; ml_dtypes is imported only when it is needed."""
    if name in ("float32", "float16"):
        return np.dtype(name)
    import ml_dtypes

    return np.dtype(getattr(ml_dtypes, name))


def format_name(name: str) -> str:
    """The canonical name of a format (accepts aliases such as "fp16", "bf16", "e4m3")."""
    if not isinstance(name, str):
        raise TypeError(f"name must be one of {FORMATS} (or an alias), got {name!r}")
    key = _ALIASES.get(name, name)
    if key not in _SPECS:
        raise ValueError(f"name must be one of {FORMATS} (or an alias), got {name!r}")
    return key


def exponent_bias(exponent_bits: int) -> int:
    """bias = 2^(e-1) - 1: the stored exponent that means 2^0.

    ``exponent_bits`` is an integer from 1 to 11 (float64 has 11).
    """
    exponent_bits = check_integer(exponent_bits, "exponent_bits", 1, 11)
    return 2 ** (exponent_bits - 1) - 1


def largest_finite(exponent_bits: int, mantissa_bits: int, has_inf: bool = True) -> float:
    """The largest finite value.

    IEEE style (all-ones exponent reserved for inf/NaN): (2 - 2^-m) · 2^(2^e - 2 - bias).
    "fn" style (no inf; only all-ones exponent *and* mantissa is NaN, as float8_e4m3fn):
    (2 - 2^-(m-1)) · 2^(2^e - 1 - bias).
    """
    bias = exponent_bias(exponent_bits)
    has_inf = check_flag(has_inf, "has_inf")
    mantissa_bits = check_integer(mantissa_bits, "mantissa_bits", 0 if has_inf else 1, 52)
    top = 2**exponent_bits - (2 if has_inf else 1) - bias  # exponent of the largest binade
    if top > 1023:
        raise ValueError(
            f"exponent_bits={exponent_bits} with has_inf={has_inf} has a largest value beyond "
            "float64's range"
        )
    if has_inf:
        return (2.0 - 2.0**-mantissa_bits) * 2.0**top
    return (2.0 - 2.0 ** -(mantissa_bits - 1)) * 2.0**top


def format_info(name: str) -> dict:
    """Bits and limits of a format.

    Returns a dict with ``name``, ``kind`` ("float", "integer" or "sign"), ``bits``,
    ``sign_bits``, ``exponent_bits``, ``mantissa_bits``, ``bias`` (floats), ``max``, ``min``,
    ``smallest_normal`` = 2^(1 - bias), ``smallest_subnormal`` = 2^(1 - bias - m), ``eps`` =
    2^-m (the gap above 1), ``has_inf`` and ``has_nan``. Integers have a step of 1 everywhere,
    so their smallest normal, smallest subnormal and eps are all 1; the 1-bit format has the
    values ±1, and its eps is the gap 2 between them.
    """
    name = format_name(name)
    kind, e, m, has_inf = _SPECS[name]
    info = {"name": name, "kind": kind, "sign_bits": 1, "exponent_bits": e, "mantissa_bits": m}
    if kind == "float":
        bias = exponent_bias(e)
        info.update(
            bits=1 + e + m,
            bias=bias,
            max=largest_finite(e, m, has_inf),
            smallest_normal=2.0 ** (1 - bias),
            smallest_subnormal=2.0 ** (1 - bias - m),
            eps=2.0**-m,
            has_inf=has_inf,
            has_nan=True,
        )
        info["min"] = -info["max"]
    elif kind == "integer":
        info.update(bits=1 + m, bias=None, max=2.0**m - 1, min=-(2.0**m))
        info.update(smallest_normal=1.0, smallest_subnormal=1.0, eps=1.0)
        info.update(has_inf=False, has_nan=False)
    else:
        info.update(bits=1, bias=None, max=1.0, min=-1.0, smallest_normal=1.0)
        info.update(smallest_subnormal=1.0, eps=2.0, has_inf=False, has_nan=False)
    return info


def to_format(values, name: str):
    """Round ``values`` to the nearest value of the format, returned as float64 numbers.

    Floats round to nearest, ties to even (a cast with ml_dtypes/NumPy; overflow gives inf,
    or NaN for float8_e4m3fn, which has no inf); NaN stays NaN. Integers round half to even and
    must fit; the 1-bit format gives +1 where x > 0 and -1 elsewhere (NaN has no sign to keep:
    an error). ``values`` must be real: complex numbers are a ``TypeError``.
    """
    name = format_name(name)
    a = as_real_array(values, "values", finite=False).astype(np.float64)
    kind = _SPECS[name][0]
    if kind == "float":
        with np.errstate(over="ignore"):  # overflow gives inf (NaN in e4m3fn), as documented
            return like(a.astype(_dtype(name)).astype(np.float64), values)
    if kind == "sign":
        if np.isnan(a).any():
            raise ValueError("values must not be NaN for the 1-bit format (NaN has no sign)")
        return like(np.where(a > 0, 1.0, -1.0), values)
    rounded = np.rint(a)
    info = format_info(name)
    outside = ~((rounded >= info["min"]) & (rounded <= info["max"]))
    if outside.any():
        bad = a[outside].ravel()[0]
        raise ValueError(
            f"values must round into [{info['min']:.0f}, {info['max']:.0f}] for {name}, got {bad}"
        )
    return like(rounded, values)


def bit_fields(value, name: str) -> tuple[str, str, str]:
    """The stored bits of one value, as strings: (sign, exponent, mantissa).

    The value is first rounded to the format (see :func:`to_format`). Integers are two's
    complement: the top bit is the sign bit (worth -2^(bits-1)) and the rest go in the third
    string; their exponent string is empty. Example: ``bit_fields(1.0, "float16")`` gives
    ("0", "01111", "0000000000").
    """
    name = format_name(name)
    kind, e, m, _ = _SPECS[name]
    a = as_real_array(value, "value", finite=False)
    if a.size != 1:
        raise ValueError(f"value must be a single number, got an array of shape {a.shape}")
    x = float(a.ravel()[0])
    if kind != "float" and not np.isfinite(x):
        raise ValueError(f"value must be finite for {name}, got {x}")
    if kind == "sign":
        return ("1" if to_format(x, name) < 0 else "0", "", "")
    if kind == "integer":
        q = int(to_format(x, name))
        word = format(q % 2 ** (1 + m), f"0{1 + m}b")
        return word[0], "", word[1:]
    bits = 1 + e + m
    pattern = int(np.array(x).astype(_dtype(name)).view(_UINT[bits]))
    word = format(pattern, f"0{bits}b")
    return word[0], word[1 : 1 + e], word[1 + e :]


def value_from_fields(sign: str, exponent: str, mantissa: str, name: str) -> float:
    """Decode bit strings: (-1)^s · 2^(E - bias) · (1 + M/2^m), or 2^(1 - bias) · M/2^m if E = 0.

    Reads the bits with the format's own decoder (inf and NaN patterns included), so the
    formula in this docstring can be checked against it.
    """
    name = format_name(name)
    kind, e, m, _ = _SPECS[name]
    for field, arg in (("sign", sign), ("exponent", exponent), ("mantissa", mantissa)):
        if not isinstance(arg, str):
            raise TypeError(f"{field} must be a string of 0s and 1s, got {arg!r}")
    text = f"{sign}{exponent}{mantissa}"
    if len(text) != format_info(name)["bits"] or set(text) - {"0", "1"}:
        raise ValueError(
            f"sign, exponent and mantissa must be {format_info(name)['bits']} bits of 0/1 "
            f"for {name}, got {text!r}"
        )
    if kind == "sign":
        return -1.0 if sign == "1" else 1.0
    if kind == "integer":
        return float(int(text, 2) - (int(sign) << (1 + m)))
    return float(np.array(int(text, 2), dtype=_UINT[len(text)]).view(_dtype(name)))


def representable_values(name: str) -> np.ndarray:
    """Every finite value of a format of at most 16 bits, sorted, as float64 (one zero).

    Made by reading all 2^bits bit patterns, so it is the format's own list, not a formula.
    """
    name = format_name(name)
    kind = _SPECS[name][0]
    info = format_info(name)
    if info["bits"] > 16:
        raise ValueError(
            f"name must be a format of at most 16 bits for representable_values "
            f"({name} has {info['bits']}: too many values to list)"
        )
    if kind == "sign":
        return np.array([-1.0, 1.0])
    if kind == "integer":
        return np.arange(info["min"], info["max"] + 1, dtype=np.float64)
    patterns = np.arange(2 ** info["bits"], dtype=_UINT[info["bits"]])
    with np.errstate(invalid="ignore"):  # the NaN patterns
        values = patterns.view(_dtype(name)).astype(np.float64)
    return np.unique(values[np.isfinite(values)])


def spacing(values, name: str):
    """Gap between each value (rounded to the format) and the next larger-magnitude value.

    For floats it is one unit in the last place: 2^(max(floor(log2|x|), 1 - bias) - m), so the
    gap doubles at every power of two and is constant (the smallest subnormal) below the
    smallest normal. At the largest finite value it gives the gap of that binade. Integers
    have spacing 1 and the 1-bit format spacing 2. Returns float64 numbers.
    """
    name = format_name(name)
    info = format_info(name)
    a = as_real_array(values, "values", finite=False)
    x = np.abs(np.asarray(to_format(a, name), dtype=np.float64))
    if info["kind"] != "float":
        return like(np.full(x.shape, info["eps"]), values)
    if not np.isfinite(x).all():
        bad = a.ravel()[~np.isfinite(x).ravel()][0]
        raise ValueError(f"values must be finite in {name} (max {info['max']:g}), got {bad}")
    min_exponent = 1 - info["bias"]
    # frexp gives x = f · 2^k with f in [0.5, 1), so floor(log2 x) = k - 1 exactly.
    exponent = np.where(x > 0, np.frexp(x)[1] - 1, min_exponent)
    exponent = np.maximum(exponent, min_exponent)
    return like(np.ldexp(1.0, exponent - info["mantissa_bits"]), values)


def model_memory_bytes(n_params, name: str) -> int:
    """Bytes to store ``n_params`` numbers in a format: ceil(n_params · bits / 8).

    Only the numbers: scales, zero-points and other metadata are extra (see chapter 4).
    """
    bits = format_info(name)["bits"]
    number = (int, float, np.integer, np.floating)
    if isinstance(n_params, bool) or not isinstance(n_params, number):
        raise TypeError(f"n_params must be a number of parameters, got {n_params!r}")
    if not (math.isfinite(n_params) and n_params >= 0 and float(n_params).is_integer()):
        raise ValueError(f"n_params must be a non-negative whole number, got {n_params!r}")
    return -(-int(n_params) * bits // 8)
