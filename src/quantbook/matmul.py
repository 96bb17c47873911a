r"""Integer-only matrix multiplication (Jacob et al., 2018).

With :math:`x \approx S(q - Z)` for the two inputs and the output,

.. math::  q_3 = Z_3 + M \sum_j (q_{1,ij} - Z_1)(q_{2,jk} - Z_2), \qquad
           M = \frac{S_1 S_2}{S_3}

The sum is computed exactly with int32 accumulators. The only real number left, :math:`M`
(between 0 and 1 in practice), is stored as an int32 :math:`m_0` and a right shift :math:`n`:
:math:`M = m_0 \cdot 2^{-31} \cdot 2^{-n}` with :math:`2^{30} \le m_0 < 2^{31}`, so requantizing
is an integer multiply and a shift (gemmlowp's ``SaturatingRoundingDoublingHighMul`` and
``RoundingDivideByPOT``).
"""

from __future__ import annotations

import numpy as np

from quantbook import affine
from quantbook._arrays import (
    INT32_RANGE,
    INT64_RANGE,
    check_bits,
    check_int_array,
    check_one_grows,
    check_param_shape,
    check_scale,
    like,
    to_real,
)

__all__ = [
    "integer_matmul",
    "integer_matmul_expanded",
    "requantization_multiplier",
    "quantize_multiplier",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "fixed_point_multiply",
    "requantize",
    "requantize_float",
    "quantize_bias",
    "quantized_linear",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _int_array(x, name: str, low: int = INT64_RANGE[0], high: int = INT64_RANGE[1]) -> np.ndarray:
    """Whole numbers (integer dtype or integral floats; not bool) in [low, high], as int64."""
    a = to_real(x, name)
    if a.dtype.kind == "b":
        raise TypeError(f"{name} must be an integer array, got dtype bool")
    return check_int_array(a, name, low, high)


def _int32_array(x, name: str) -> np.ndarray:
    return _int_array(x, name, *INT32_RANGE)


def _exact_sub(a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """a - z without wrapping (Python integers when int64 could overflow)."""
    if a.size and int(np.abs(a).max()) >= 2**62:
        return a.astype(object) - z.astype(object)
    return a - z


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for int64 operands, exact: int64 when no partial sum can reach 2**63, else with
    Python integers (object arrays), so nothing wraps before the int32 check."""
    if a.size == 0 or b.size == 0:
        return a @ b
    k = a.shape[-1]
    bound = int(np.max(np.abs(a))) * int(np.max(np.abs(b))) * k
    if bound < 2**63:
        return a @ b
    return a.astype(object) @ b.astype(object)


def _to_int32(acc: np.ndarray, what: str) -> np.ndarray:
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"{what} does not fit in int32 (the accumulator would wrap around)")
    return np.asarray(acc).astype(np.int32)


def integer_matmul(qa, qb, zero_point_a=0, zero_point_b=0):
    r"""Matrix product of integer codes with int32 accumulation.

    .. math::  \mathrm{acc}_{ik} = \sum_j (q_{a,ij} - Z_a)(q_{b,jk} - Z_b)

    ``qa`` is (m, k), ``qb`` is (k, n) (int8 or uint8 codes). ``zero_point_b`` may be a length-n
    array (one zero point per output column). The sum is exact; if it would not fit in int32 an
    ``OverflowError`` is raised instead of wrapping (int8 products fit for k up to about 2**17).

    Returns an int32 array (tensor if a tensor came in).
    """
    a, za = _int_array(qa, "qa"), _int32_array(zero_point_a, "zero_point_a")
    b, zb = _int_array(qb, "qb"), _int32_array(zero_point_b, "zero_point_b")
    if a.ndim < 1 or b.ndim < 1 or a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
        raise ValueError(f"qa {a.shape} and qb {b.shape} do not chain: need (m, k) @ (k, n)")
    check_param_shape(za.shape, a.shape, "zero_point_a", "qa")
    check_param_shape(zb.shape, b.shape, "zero_point_b", "qb")
    acc = _to_int32(_exact_matmul(_exact_sub(a, za), _exact_sub(b, zb)), "the integer matmul")
    return like(acc, qa, qb, zero_point_a, zero_point_b)


def integer_matmul_expanded(qa, qb, zero_point_a: int = 0, zero_point_b: int = 0):
    r"""The same product, expanded so the inner loop multiplies raw codes only (eq. 7 of Jacob
    et al.): the zero-point terms need just row and column sums.

    .. math::  \mathrm{acc}_{ik} = N Z_a Z_b - Z_a \sum_j q_{b,jk} - Z_b \sum_j q_{a,ij}
               + \sum_j q_{a,ij}\, q_{b,jk}

    Per-tensor (scalar) zero points; equal to :func:`integer_matmul`.
    """
    a = _int_array(qa, "qa")
    b = _int_array(qb, "qb")
    za, zb = (_int32_array(z, n) for z, n in ((zero_point_a, "zero_point_a"),
                                               (zero_point_b, "zero_point_b")))
    for z, n in ((za, "zero_point_a"), (zb, "zero_point_b")):
        if z.ndim:
            raise ValueError(f"{n} must be a single (per-tensor) zero point, got shape {z.shape}")
    za, zb = int(za), int(zb)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"qa {a.shape} and qb {b.shape} do not chain: need (m, k) @ (k, n)")
    if max(abs(za), abs(zb), *(int(np.abs(v).max()) for v in (a, b) if v.size)) >= 2**20:
        a, b = a.astype(object), b.astype(object)  # Python integers: no term can wrap
    n = a.shape[1]
    acc = (n * za * zb - za * b.sum(axis=0)[None, :] - zb * a.sum(axis=1)[:, None] + a @ b)
    return like(_to_int32(acc, "the integer matmul"), qa, qb)


def requantization_multiplier(scale_a, scale_b, scale_out):
    r"""The one real factor left in an integer matmul.

    .. math::  M = \frac{S_a S_b}{S_{out}}
    """
    sa, sb, so = (check_scale(s, n) for s, n in
                  ((scale_a, "scale_a"), (scale_b, "scale_b"), (scale_out, "scale_out")))
    check_one_grows({"scale_a": sa.shape, "scale_b": sb.shape, "scale_out": so.shape})
    m = sa.astype(np.float64) * sb / so
    return float(m) if m.ndim == 0 else like(m, scale_a, scale_b, scale_out)


def quantize_multiplier(multiplier):
    r"""Write ``0 < M < 1`` as an int32 multiplier and a right shift.

    .. math::  M \approx m_0 \cdot 2^{-31} \cdot 2^{-n}, \qquad
               2^{30} \le m_0 < 2^{31}, \quad 0 \le n \le 31

    :math:`m_0 = \operatorname{round}(2^{31} f)` where :math:`M = f\,2^{-n}`,
    :math:`f \in [\tfrac12, 1)` (the normalised mantissa). Returns ``(m0, shift)`` as Python
    ints, or int32 arrays for an array of multipliers (per channel).
    """
    m = to_real(multiplier, "multiplier").astype(np.float64)
    if m.size and not ((m > 0) & (m < 1)).all():
        raise ValueError("multiplier must lie strictly between 0 and 1 (M = S_a * S_b / S_out)")
    frac, exp = np.frexp(m)  # m = frac * 2**exp, frac in [0.5, 1)
    m0 = np.floor(frac * 2.0**31 + 0.5).astype(np.int64)  # round half away, as TFLite
    carry = m0 == 2**31  # frac rounded up to 1.0
    m0 = np.where(carry, np.where(exp < 0, 2**30, INT32_MAX), m0)
    exp = np.where(carry & (exp < 0), exp + 1, exp)
    shift = -exp.astype(np.int64)
    if shift.size and shift.max() > 31:
        raise ValueError("multiplier is below 2**-32: too small for a 31-bit right shift")
    if m.ndim == 0:
        return int(m0), int(shift)
    return like(m0.astype(np.int32), multiplier), like(shift.astype(np.int32), multiplier)


def _div_trunc(v: np.ndarray, d: int) -> np.ndarray:
    # C++ integer division truncates toward zero; NumPy's // floors.
    return np.where(v >= 0, v // d, -((-v) // d))


def saturating_rounding_doubling_high_mul(a, b):
    r"""gemmlowp's ``SaturatingRoundingDoublingHighMul``: the high 32 bits of ``2ab``, rounded.

    .. math::  \operatorname{SRDHM}(a, b) = \operatorname{trunc}\!\left(
               \frac{ab + \nu}{2^{31}}\right), \quad
               \nu = 2^{30} \text{ if } ab \ge 0 \text{ else } 1 - 2^{30}

    (C++ division truncates toward zero.) That is :math:`\lfloor ab / 2^{31} + 1/2 \rfloor`:
    round to nearest, ties toward :math:`+\infty`. The only overflow,
    :math:`a = b = -2^{31}`, saturates to :math:`2^{31} - 1`. int32 in/out.
    """
    x = _int32_array(a, "a")
    y = _int32_array(b, "b")
    check_one_grows({"a": x.shape, "b": y.shape})
    ab = x * y
    nudge = np.where(ab >= 0, 2**30, 1 - 2**30)
    high = _div_trunc(ab + nudge, 2**31)
    high = np.where((x == INT32_MIN) & (y == INT32_MIN), INT32_MAX, high)
    return like(np.asarray(high).astype(np.int32), a, b)


def rounding_divide_by_pot(x, exponent):
    r"""gemmlowp's ``RoundingDivideByPOT``: :math:`x / 2^{e}` rounded half away from zero.

    .. math::  \operatorname{RDBPOT}(x, e) = (x \gg e) + [\,r > t\,], \quad
               r = x \mathbin{\&} (2^e - 1), \quad t = \lfloor (2^e - 1)/2 \rfloor + [x < 0]
    """
    v = _int32_array(x, "x")
    e = _int_array(exponent, "exponent")
    if e.size and (e.min() < 0 or e.max() > 31):
        raise ValueError("exponent must be from 0 to 31 (a right shift)")
    check_param_shape(e.shape, v.shape, "exponent")
    mask = (np.int64(1) << e) - 1
    remainder = v & mask
    threshold = (mask >> 1) + (v < 0)
    out = (v >> e) + (remainder > threshold)
    return like(np.asarray(out).astype(np.int32), x, exponent)


def fixed_point_multiply(acc, m0, shift):
    r"""Multiply int32 values by :math:`M = m_0 2^{-31} 2^{-n}` in integer arithmetic only.

    .. math::  \operatorname{RDBPOT}(\operatorname{SRDHM}(\mathrm{acc}, m_0), n)

    ``m0`` and ``shift`` from :func:`quantize_multiplier` (arrays broadcast: per channel).
    """
    a, m, n = _int32_array(acc, "acc"), _int32_array(m0, "m0"), _int_array(shift, "shift")
    check_param_shape(m.shape, a.shape, "m0", "acc")
    check_param_shape(n.shape, a.shape, "shift", "acc")
    high = saturating_rounding_doubling_high_mul(a, m)
    out = rounding_divide_by_pot(high, n)
    return like(out, acc, m0, shift)


def requantize(acc, multiplier, zero_point_out, bits: int = 8, signed: bool = True):
    r"""int32 accumulators to output codes, integer arithmetic only.

    .. math::  q_{out} = \operatorname{clamp}\big(Z_{out} +
               \operatorname{RDBPOT}(\operatorname{SRDHM}(\mathrm{acc}, m_0), n),
               q_{min}, q_{max}\big)

    ``multiplier`` is the real :math:`M` (scalar, or one per output column); it is converted by
    :func:`quantize_multiplier`. Clamps to the output range, as the hardware does.

    ``acc`` beyond int32 (which no int32 accumulator holds) is requantized exactly with Python
    integers and then clamped, so it saturates as :func:`requantize_float` does.
    ``zero_point_out`` must lie in the output range.
    """
    bits = check_bits(bits)
    qmin, qmax = affine.qrange(bits, signed)
    m0, shift = quantize_multiplier(to_real(multiplier, "multiplier"))
    z = _zero_point_out(zero_point_out, qmin, qmax)
    a = _int_array(acc, "acc")
    m0, shift = np.asarray(m0), np.asarray(shift)
    for v, n in ((m0, "multiplier"), (z, "zero_point_out")):
        check_param_shape(v.shape, a.shape, n, "acc")
    if a.size == 0 or (a.min() >= INT32_MIN and a.max() <= INT32_MAX):
        scaled = fixed_point_multiply(a, m0, shift).astype(np.int64)
    else:
        scaled = _fixed_point_multiply_exact(a, m0, shift)
    q = np.clip(scaled + z, qmin, qmax).astype(np.int8 if signed else np.uint8)
    return like(q, acc, multiplier, zero_point_out)


def requantize_float(acc, multiplier, zero_point_out, bits: int = 8, signed: bool = True):
    r"""The float reference for :func:`requantize` (float64, round half to even).

    .. math::  q_{out} = \operatorname{clamp}(Z_{out} + \operatorname{round}(M\,\mathrm{acc}),
               q_{min}, q_{max})

    The fixed-point version rounds half away from zero (twice), so the two can differ by one
    step near ties and when :math:`m_0` is rounded.
    """
    bits = check_bits(bits)
    qmin, qmax = affine.qrange(bits, signed)
    m = to_real(multiplier, "multiplier").astype(np.float64)
    z = _zero_point_out(zero_point_out, qmin, qmax)
    a = _int_array(acc, "acc")
    for v, n in ((m, "multiplier"), (z, "zero_point_out")):
        check_param_shape(v.shape, a.shape, n, "acc")
    q = np.clip(np.rint(m * a) + z, qmin, qmax)
    return like(q.astype(np.int8 if signed else np.uint8), acc, multiplier, zero_point_out)


def _zero_point_out(zero_point_out, qmin: int, qmax: int) -> np.ndarray:
    z = _int_array(zero_point_out, "zero_point_out")
    if z.size and (z.min() < qmin or z.max() > qmax):
        raise ValueError(
            f"zero_point_out must lie in the output range [{qmin}, {qmax}], "
            f"got {z.min()}..{z.max()}"
        )
    return z


def _fixed_point_multiply_exact(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """RDBPOT(SRDHM(acc, m0), shift) with Python integers, for accumulators beyond int32."""
    def one(a: int, m: int, n: int) -> int:
        ab = a * m
        nudge = 2**30 if ab >= 0 else 1 - 2**30
        high = abs(ab + nudge) // 2**31 * (1 if ab + nudge >= 0 else -1)  # C++ truncation
        mask = (1 << n) - 1
        return (high >> n) + ((high & mask) > (mask >> 1) + (high < 0))

    a, m, n = np.broadcast_arrays(acc, m0, shift)
    out = [one(int(x), int(y), int(z)) for x, y, z in zip(a.ravel(), m.ravel(), n.ravel(),
                                                           strict=True)]
    return np.array(out, dtype=object).reshape(a.shape)


def quantize_bias(bias, scale_a, scale_b):
    r"""Bias as int32 with scale :math:`S_a S_b` and zero point 0, so it adds to the accumulator.

    .. math::  q_{bias} = \operatorname{round}\!\left(\frac{b}{S_a S_b}\right)
    """
    b = to_real(bias, "bias").astype(np.float64)
    sa, sb = check_scale(scale_a, "scale_a"), check_scale(scale_b, "scale_b")
    check_param_shape(sa.shape, b.shape, "scale_a", "bias")
    check_param_shape(sb.shape, b.shape, "scale_b", "bias")
    s = sa.astype(np.float64) * sb
    qb = _to_int32(np.rint(b / s), "the quantized bias")
    return like(qb, bias, scale_a, scale_b)


def quantized_linear(qx, scale_x, zero_point_x, qw, scale_w, zero_point_w, scale_out,
                     zero_point_out, bias=None, bits: int = 8, signed: bool = True):
    r"""A linear layer ``y = x W^T + b`` computed on integer codes only.

    .. math::  q_y = \operatorname{clamp}\Big(Z_y + M\big(\textstyle\sum_j
               (q_{x,ij} - Z_x)(q_{w,kj} - Z_w) + q_{b,k}\big)\Big), \qquad
               M = \frac{S_x S_w}{S_y}

    ``qx`` is (m, in), ``qw`` is (out, in) as in ``torch.nn.Linear``; ``scale_w`` and
    ``zero_point_w`` may hold one value per output row. ``bias`` is real (length out) and is
    quantized with :func:`quantize_bias`. Returns the output codes (``bits``, ``signed``).
    """
    x, w = _int_array(qx, "qx"), _int_array(qw, "qw")
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"qx {x.shape} and qw {w.shape} must be (m, in) and (out, in)")
    zx, zw = _int32_array(zero_point_x, "zero_point_x"), _int32_array(zero_point_w, "zero_point_w")
    sx, sw = check_scale(scale_x, "scale_x"), check_scale(scale_w, "scale_w")
    so = check_scale(scale_out, "scale_out")
    check_param_shape(zx.shape, x.shape[:1] + (1,), "zero_point_x", "qx's rows")
    for v, n in ((zw, "zero_point_w"), (sw, "scale_w")):
        if v.size != 1 and v.shape != (w.shape[0],):
            raise ValueError(f"{n} must be one value or one per output row {(w.shape[0],)}, "
                             f"got shape {v.shape}")
    for v, n in ((sx, "scale_x"), (so, "scale_out")):
        if v.size != 1:
            raise ValueError(f"{n} must be a single (per-tensor) scale, got shape {v.shape}")
    acc = integer_matmul(x, w.T, zx, zw.reshape(-1) if zw.size > 1 else zw).astype(np.int64)
    if bias is not None:
        b = to_real(bias, "bias")
        if b.shape not in ((), (w.shape[0],)):
            raise ValueError(f"bias must have one value per output row {(w.shape[0],)}, "
                             f"got shape {b.shape}")
        acc = acc + quantize_bias(b, sx.reshape(()), sw.reshape(-1) if sw.size > 1 else sw)
    m = requantization_multiplier(sx, sw.reshape(-1) if sw.size > 1 else sw, so)
    q = requantize(_to_int32(acc, "the accumulator plus bias"), m, zero_point_out, bits, signed)
    return like(q, qx, qw)
