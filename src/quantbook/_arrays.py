"""NumPy in, NumPy out; torch in, torch out; and every check of an argument, in one place.

Every public function converts its array arguments with :func:`as_real_array` (or
:func:`to_numpy`), computes in NumPy and hands the result back with :func:`like`. NumPy and
PyTorch both round half to even, so the arithmetic is the same whichever kind came in; torch is
imported only when a tensor arrives.

The checks below are the package's rules for bad input. Each raises a ``TypeError`` (wrong kind
of thing) or a ``ValueError`` (right kind, wrong value) whose message names the argument and the
expected form. Nothing is wrapped, truncated, broadcast up or NaN-filled silently:

* integers (bit widths, sizes, axes) are ``int`` or NumPy integers, never ``bool``, float or str;
* flags are ``True``/``False`` (or ``numpy.bool_``), never ``"False"``, ``None``, 0 or 1;
* arrays hold real numbers (bool, integer or float; bfloat16 and float8 become float32, exactly);
  complex, string and object arrays are refused; big-endian input computes like native input;
* a scale is a positive number that float32 holds (from 2**-149, about 1.4e-45, to 3.4e38;
  subnormals included), because reconstructions are float32: a scale of 1e39 or 1e-320 would
  become inf or 0 in float32 and give inf, NaN or 0 instead of an error;
* a zero point is a whole number inside the integer range of the codes;
* a parameter (scale, zero point, multiplier) may broadcast against ``x`` but must not make the
  result larger than ``x``.
"""

from __future__ import annotations

import math

import numpy as np

FLOAT32_SMALLEST = 2.0**-149  # smallest (subnormal) positive float32
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_RANGE_TEXT = f"from {FLOAT32_SMALLEST:.3g} to {FLOAT32_MAX:.4g}"
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)


# --- conversion --------------------------------------------------------------------------------


def is_tensor(x) -> bool:
    """True for a torch tensor, without importing torch when it was never loaded."""
    return type(x).__module__.startswith("torch") and hasattr(x, "numpy")


def to_numpy(x, name: str = "x") -> np.ndarray:
    """View ``x`` (array, tensor, list or scalar) as a NumPy array; a CPU tensor is shared.

    Tensors NumPy cannot hold are converted exactly: bfloat16 and float8 to float32, complex32
    to complex64. A quantized tensor, a GPU tensor, a string or ``None`` is a ``TypeError``.
    """
    if is_tensor(x):
        import torch

        if x.device.type != "cpu":
            raise TypeError(f"{name} must be a CPU tensor, got one on {x.device}")
        t = x.detach()
        if t.is_quantized:
            raise TypeError(
                f"{name} must be a plain tensor, got a quantized one ({t.dtype}); "
                "pass t.int_repr() or t.dequantize()"
            )
        if t.dtype == torch.bfloat16 or "float8" in str(t.dtype):
            t = t.float()  # exact: every bfloat16 / float8 number is a float32 number
        elif t.dtype == torch.complex32:
            t = t.to(torch.complex64)
        t = t.resolve_conj().resolve_neg()
        try:
            return t.numpy()
        except (TypeError, RuntimeError) as error:
            raise TypeError(f"{name} has dtype {t.dtype}, which NumPy cannot hold") from error
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    try:
        return np.asarray(x)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of numbers: {error}") from error


def like(result, *inputs):
    """Return ``result`` as a torch tensor if any of ``inputs`` was one, else as NumPy.

    The shape is kept, 0-d included (``np.ascontiguousarray`` would make a 0-d array 1-d).
    """
    if any(is_tensor(i) for i in inputs):
        import torch

        r = np.asarray(result)
        if r.ndim:
            r = np.ascontiguousarray(r)
        elif not r.flags.writeable:
            r = r.copy()
        return torch.from_numpy(r)
    return result


def work_dtype(a: np.ndarray) -> np.dtype:
    """The float type to compute in: float64 for float64 (and integer) input, else float32.

    float32 data stays float32, so a large weight matrix never gets a hidden float64 copy. A float
    of 8 bytes or more in any byte order computes in float64.
    """
    if a.dtype.kind in "iub" or (a.dtype.kind == "f" and a.dtype.itemsize >= 8):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _from_ml_dtypes(a: np.ndarray, name: str) -> np.ndarray:
    """ml_dtypes' bfloat16 / float8 / float4 as float32, its int2 / int4 types as int16."""
    import ml_dtypes

    try:
        ml_dtypes.finfo(a.dtype)
    except (TypeError, ValueError, KeyError):
        try:
            ml_dtypes.iinfo(a.dtype)
        except (TypeError, ValueError, KeyError):
            raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}") from None
        return a.astype(np.int16)
    return a.astype(np.float32)


def as_real_array(x, name: str = "x", *, finite: bool = True) -> np.ndarray:
    """``x`` as a NumPy array of real numbers (bool, integer or float) in native byte order.

    bfloat16 and float8 (torch or ml_dtypes) become float32, exactly. Complex, string, object
    and other dtypes are a ``TypeError`` naming ``name``. With ``finite=True`` NaN and infinities
    are a ``ValueError``.
    """
    a = to_numpy(x, name)
    if a.dtype.kind == "V" and getattr(a.dtype.type, "__module__", "") == "ml_dtypes":
        a = _from_ml_dtypes(a, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if finite:
        check_finite(a, name)
    return a


def to_real(x, name: str = "x") -> np.ndarray:
    """:func:`as_real_array` with finiteness checked: finite real numbers (bools and ints too)."""
    return as_real_array(x, name)


# --- checks of arrays --------------------------------------------------------------------------


def check_finite(a: np.ndarray, name: str = "x") -> None:
    """Raise ValueError naming ``name`` if ``a`` holds NaN or an infinity."""
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        bad = "NaN" if np.isnan(a).any() else "an infinite value"
        raise ValueError(f"{name} contains {bad}; quantization needs finite numbers")


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise ValueError naming both arguments and shapes unless ``a`` and ``b`` match."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the shape of {name_a} {a.shape}, got {b.shape}"
        )


def check_param_shape(param_shape: tuple, x_shape: tuple, name: str, x_name: str = "x") -> None:
    """A parameter may broadcast against ``x`` but never make the result larger than ``x``.

    A scale of shape (n, 1) against x of shape (n,) would give an (n, n) result: that is a
    ``ValueError`` naming the parameter and both shapes, not a silent outer product.
    """
    try:
        shape = np.broadcast_shapes(tuple(x_shape), tuple(param_shape))
    except ValueError:
        raise ValueError(
            f"{name} of shape {tuple(param_shape)} does not broadcast against {x_name} of shape "
            f"{tuple(x_shape)}"
        ) from None
    if shape != tuple(x_shape):
        raise ValueError(
            f"{name} of shape {tuple(param_shape)} would broadcast {x_name} of shape "
            f"{tuple(x_shape)} up to {shape}; give {name} a shape that broadcasts to "
            f"{x_name}'s (one value, or one per channel / group with size-1 axes)"
        )


def check_one_grows(shapes: dict) -> tuple:
    """Shapes of parameters that broadcast together: the result must be one of the shapes."""
    try:
        shape = np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ValueError(
            "shapes do not broadcast together: "
            + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        ) from None
    if shape not in [tuple(v) for v in shapes.values()]:
        raise ValueError(
            "broadcasting these against each other would grow all of them to "
            f"{shape}: " + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        )
    return shape


def check_scale(scale, name: str = "scale") -> np.ndarray:
    r"""A scale (real units per integer step): positive and a float32 number.

    .. math::  2^{-149} \le S \le (2 - 2^{-23})\,2^{127}

    Reconstructions are float32, so a scale float32 cannot hold (it would round to 0 or to inf)
    would silently give inf, NaN or 0: it is a ``ValueError`` instead. Subnormal scales are
    kept: the bound :math:`|x - \hat{x}| \le S/2` still holds for them.
    """
    s = as_real_array(scale, name)
    if s.dtype.kind == "b":
        raise TypeError(f"{name} must hold positive numbers, got booleans")
    if s.size:
        if not (s > 0).all():
            raise ValueError(
                f"{name} must be positive (real units per integer step), got a value <= 0"
            )
        bad = float32_misfit(s)
        if bad is not None:
            raise ValueError(
                f"{name} must be a number float32 holds, {FLOAT32_RANGE_TEXT} "
                f"(reconstructions are float32), got {bad:g}"
            )
    return s


def float32_misfit(values) -> float | None:
    """The first nonzero value that float32 would round to 0 or to inf, or None if there is none."""
    v = np.asarray(values, np.float64).ravel()
    v = v[v != 0]
    if v.size == 0:
        return None
    lo, hi = float(np.abs(v).min()), float(np.abs(v).max())
    with np.errstate(over="ignore", under="ignore"):
        if np.float32(lo) == 0:
            return lo
        if not np.isfinite(np.float32(hi)):
            return hi
    return None


def check_int_array(x, name: str, low: int = INT64_RANGE[0], high: int = INT64_RANGE[1],
                    error: type = ValueError) -> np.ndarray:
    """``x`` as an int64 array of whole numbers in [low, high] (whole floats are accepted).

    The range is checked before the conversion, so 1e30 or a uint64 above 2**63 is an error,
    never wrapped.
    """
    a = as_real_array(x, name)
    if a.dtype.kind == "f":
        if a.size and not (a == np.rint(a)).all():
            raise TypeError(f"{name} must hold integers, got non-integer floats")
    elif a.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.size:
        # Python scalars compare exactly (a float32 2**63 must not pass as int64's maximum)
        lo, hi = a.min().item(), a.max().item()
        if lo < low or hi > high:
            bad = lo if lo < low else hi
            raise error(f"{name} must hold integers from {low} to {high}, got {bad}")
    return a.astype(np.int64)


def check_zero_point(zero_point, low: int = INT32_RANGE[0], high: int = INT32_RANGE[1],
                     name: str = "zero_point") -> np.ndarray:
    """The zero point as int64: whole numbers in the code range [low, high]."""
    z = as_real_array(zero_point, name)
    if z.dtype.kind == "b":
        raise TypeError(f"{name} must hold integers, got booleans")
    if z.dtype.kind == "f" and z.size and not (z == np.rint(z)).all():
        raise ValueError(f"{name} must be a whole number (an integer code)")
    if z.size and not ((z >= low) & (z <= high)).all():
        raise ValueError(
            f"{name} must lie in the integer range [{low}, {high}] so that 0.0 is "
            f"representable, got {z.min()}..{z.max()}"
        )
    return z.astype(np.int64)


# --- checks of scalars -------------------------------------------------------------------------


def _describe(low, high) -> str:
    if low is not None and high is not None:
        return f"an integer from {low} to {high}"
    if low == 1:
        return "a positive integer"
    if low == 0:
        return "a non-negative integer"
    if low is not None:
        return f"an integer >= {low}"
    return "an integer"


def check_integer(value, name: str, low: int | None = None, high: int | None = None,
                  what: str | None = None) -> int:
    """``value`` as an int: an ``int`` or NumPy integer (never a bool, float or string).

    Raises ``TypeError`` for the wrong kind and ``ValueError`` outside [low, high].
    """
    what = what or _describe(low, high)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_bits(bits, low: int = 2, high: int = 8, name: str = "bits") -> int:
    """Return ``bits`` as an int, or raise if it is not a whole number in [low, high]."""
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an integer from {low} to {high}, got {bits!r}")
    if not low <= bits <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {bits}")
    return int(bits)


def check_flag(value, name: str) -> bool:
    """``True`` or ``False`` (a ``bool`` or ``numpy.bool_``); ``"False"``, None, 0 or 1 are not."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite real number (int or float, not bool) in [low, high], as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a number from {low} to {high}, got {value!r}")
    if not math.isfinite(value) or (low is not None and value < low) or (
        high is not None and value > high
    ):
        raise ValueError(f"{name} must be a number from {low} to {high}, got {value}")
    return float(value)


def check_choice(value, name: str, choices: tuple) -> str:
    """``value`` if it is one of the strings ``choices``, else an error naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    """A valid axis of an ``ndim``-dimensional array, as a non-negative int."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an integer or None, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array with {ndim} dimensions")
    return int(axis) % ndim


def check_group_size(group_size, n: int | None = None, name: str = "group_size") -> int:
    """A positive integer group size that divides ``n`` (the last axis), if ``n`` is given.

    Only the numbers are checked: no array is made, whatever the size.
    """
    group_size = check_integer(group_size, name, 1)
    if n is not None and n % group_size:
        raise ValueError(
            f"{name}={group_size} must divide the last axis length {n} (pad the tensor or "
            "pick another group size)"
        )
    return group_size


def check_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """A shape: a sequence of non-negative integers (not floats, not negative)."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of non-negative integers, got {shape!r}"
        ) from None
    for d in dims:
        check_integer(d, name, 0, what="a sequence of non-negative integers")
    return tuple(int(d) for d in dims)
