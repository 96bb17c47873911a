"""quantbook.affine: exact values, bad input, properties (hypothesis) and torch cross-checks."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantbook import affine

# --- qrange ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "signed", "expected"),
    [(8, True, (-128, 127)), (8, False, (0, 255)), (4, True, (-8, 7)), (4, False, (0, 15)),
     (2, True, (-2, 1)), (3, False, (0, 7))],
)
def test_qrange(bits, signed, expected):
    assert affine.qrange(bits, signed) == expected
    assert all(type(v) is int for v in affine.qrange(bits, signed))


@pytest.mark.parametrize("bits", [1, 9, 16, 0, -4])
def test_qrange_rejects_bits_outside_2_to_8(bits):
    with pytest.raises(ValueError, match="bits"):
        affine.qrange(bits)


@pytest.mark.parametrize("bits", [8.0, True, "8", None])
def test_qrange_rejects_non_integer_bits(bits):
    with pytest.raises(TypeError, match="bits"):
        affine.qrange(bits)


# --- qparams -----------------------------------------------------------------------------------


def test_qparams_exact():
    assert affine.qparams(-3.0, 3.2) == (6.2 / 255, -5)
    assert affine.qparams(-100.0, 80.0) == (180 / 255, 14)
    # unsigned: 127.5 is a tie and rounds to even
    assert affine.qparams(-1.0, 1.0, signed=False) == (2 / 255, 128)
    assert affine.qparams(-1.0, 1.0, bits=4, signed=True) == (2 / 15, 0)  # round(-0.5) = -0


def test_qparams_widens_to_include_zero():
    scale, zp = affine.qparams(2.0, 5.0)
    assert (scale, zp) == (5.0 / 255, -128)  # range [0, 5]: 0.0 is the lowest code
    scale, zp = affine.qparams(-5.0, -2.0, signed=False)
    assert (scale, zp) == (5.0 / 255, 255)


def test_qparams_zero_width_range_has_unit_scale():
    assert affine.qparams(0.0, 0.0) == (1.0, -128)
    assert affine.qparams(0.0, 0.0, signed=False) == (1.0, 0)


def test_qparams_arrays_per_channel():
    scale, zp = affine.qparams(np.array([-1.0, 0.0, -2.0]), np.array([1.0, 0.0, 3.0]))
    assert scale.dtype == np.float32 and scale.shape == (3,)
    assert zp.dtype == np.int64
    np.testing.assert_array_equal(scale, np.float32([2 / 255, 1.0, 5 / 255]))
    # zero points are computed from the stored float32 scales
    np.testing.assert_array_equal(zp, np.rint(-128 - np.array([-1.0, 0.0, -2.0]) / scale.astype(
        np.float64)))
    np.testing.assert_array_equal(zp, [-1, -128, -26])


def test_qparams_torch_in_torch_out():
    scale, zp = affine.qparams(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0]))
    assert isinstance(scale, torch.Tensor) and isinstance(zp, torch.Tensor)
    assert scale.dtype == torch.float32 and zp.dtype == torch.int64


@pytest.mark.parametrize(
    ("x_min", "x_max", "name"),
    [(float("nan"), 1.0, "x_min"), (0.0, float("inf"), "x_max"), (2.0, 1.0, "x_min"),
     ("a", 1.0, "x_min")],
)
def test_qparams_bad_input(x_min, x_max, name):
    with pytest.raises((ValueError, TypeError), match=name):
        affine.qparams(x_min, x_max)


# --- quantize / dequantize ---------------------------------------------------------------------


def test_quantize_rounds_half_to_even_and_clamps():
    q = affine.quantize([0.5, 1.5, 2.5, -0.5, -1.5, 200.7, -300.0], 1.0, 0)
    np.testing.assert_array_equal(q, [0, 2, 2, 0, -2, 127, -128])  # 200.7 clamps, never wraps
    assert q.dtype == np.int8
    q = affine.quantize([0.5, 1.5, 300.0, -1.0], 1.0, 10, signed=False)
    np.testing.assert_array_equal(q, [10, 12, 255, 9])
    assert q.dtype == np.uint8


def test_quantize_int4_range():
    q = affine.quantize(np.linspace(-20, 20, 9), 1.0, 0, bits=4)
    np.testing.assert_array_equal(q, [-8, -8, -8, -5, 0, 5, 7, 7, 7])
    q = affine.quantize(np.linspace(-20, 20, 9), 1.0, 3, bits=4, signed=False)
    np.testing.assert_array_equal(q, [0, 0, 0, 0, 3, 8, 13, 15, 15])


def test_quantize_broadcasts_per_channel_parameters():
    x = np.array([[1.0, -1.0, 0.25], [10.0, -10.0, 2.5]])
    scale = np.array([[0.01], [0.1]], dtype=np.float32)
    zp = np.array([[0], [5]])
    q = affine.quantize(x, scale, zp)
    np.testing.assert_array_equal(q, [[100, -100, 25], [105, -95, 30]])
    np.testing.assert_allclose(affine.dequantize(q, scale, zp), x, rtol=1e-6)


def test_dequantize_is_float32_and_exact_formula():
    q = np.array([-128, -1, 0, 127], dtype=np.int8)
    x_hat = affine.dequantize(q, 0.5, -5)
    assert x_hat.dtype == np.float32
    np.testing.assert_array_equal(x_hat, [-61.5, 2.0, 2.5, 66.0])
    # uint8 codes and a zero point above 127 do not wrap
    x_hat = affine.dequantize(np.array([0, 255], dtype=np.uint8), 1.0, 200)
    np.testing.assert_array_equal(x_hat, [-200.0, 55.0])


def test_quantize_minmax():
    q, scale, zp = affine.quantize_minmax(np.array([-1.0, 0.0, 2.0]), bits=8, signed=False)
    assert (scale, zp) == (3 / 255, 85)
    np.testing.assert_array_equal(q, [0, 85, 255])
    q, scale, zp = affine.quantize_minmax(np.array([], dtype=np.float32))
    assert q.shape == (0,) and q.dtype == np.int8 and (scale, zp) == (1.0, -128)


def test_empty_in_empty_out():
    q = affine.quantize(np.zeros((0, 3)), 0.1, 0)
    assert q.shape == (0, 3) and q.dtype == np.int8
    assert affine.dequantize(q, 0.1, 0).shape == (0, 3)
    assert affine.rounding_error(np.zeros(0), 0.1, 0).shape == (0,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite_x(bad):
    with pytest.raises(ValueError, match="x contains"):
        affine.quantize([1.0, bad], 0.1, 0)


@pytest.mark.parametrize("scale", [0.0, -0.1, np.nan, np.array([0.1, 0.0])])
def test_quantize_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        affine.quantize([1.0, 2.0], scale, 0)
    with pytest.raises(ValueError, match="scale"):
        affine.dequantize([1, 2], scale, 0)


@pytest.mark.parametrize(("zp", "signed"), [(128, True), (-129, True), (-1, False), (256, False),
                                            (1.5, True)])
def test_quantize_rejects_bad_zero_point(zp, signed):
    with pytest.raises(ValueError, match="zero_point"):
        affine.quantize([1.0], 0.1, zp, signed=signed)


def test_zero_point_may_be_a_whole_float():
    # the seed prints "Zero-point = -5.0"
    np.testing.assert_array_equal(affine.quantize([0.1], 6.2 / 255, -5.0), [-1])


def test_quantize_rejects_bad_types():
    with pytest.raises(TypeError, match="x"):
        affine.quantize("abc", 0.1, 0)
    with pytest.raises(TypeError, match="x"):
        affine.quantize(None, 0.1, 0)
    with pytest.raises(ValueError, match="bits"):
        affine.quantize([1.0], 0.1, 0, bits=9)


def test_float32_input_stays_float32_inside():
    # 0.35 / 0.1 is 3.4999999999999996 in float64 but 3.5 in float32 -> half-even 4.
    x32 = np.array([0.35], dtype=np.float32)
    assert affine.quantize(x32, 0.1, 0)[0] == np.rint(np.float32(0.35) / np.float32(0.1))
    assert affine.quantize(np.array([0.35]), 0.1, 0)[0] == 3


# --- error decomposition ---------------------------------------------------------------------


def test_clipping_and_rounding_errors_add_up():
    x = np.linspace(-5, 5, 101)
    scale, zp = 0.02, 0  # representable [-2.56, 2.54]
    e_clip = affine.clipping_error(x, scale, zp)
    e_round = affine.rounding_error(x, scale, zp)
    total = affine.quantization_error(x, scale, zp)
    np.testing.assert_allclose(e_clip + e_round, total, atol=1e-12)
    lo, hi = affine.representable_range(scale, zp)
    assert (lo, hi) == (float(np.float32(0.02) * np.float32(-128)),
                        float(np.float32(0.02) * np.float32(127)))
    inside = (x >= lo) & (x <= hi)
    assert (e_clip[inside] == 0).all() and (e_clip[~inside] != 0).all()
    assert (e_round[~inside] == 0).all()
    assert np.abs(e_round).max() <= scale / 2 + 1e-7
    assert e_clip[-1] == pytest.approx(5 - hi) and e_clip[0] == pytest.approx(-5 - lo)


def test_fake_quantize_is_dequantize_of_quantize():
    x = np.array([0.013, -0.5, 0.77])
    np.testing.assert_array_equal(affine.fake_quantize(x, 0.01, 3),
                                  affine.dequantize(affine.quantize(x, 0.01, 3), 0.01, 3))


# --- conventions from elsewhere ------------------------------------------------------------------


def test_scale_factor_convention_matches_except_near_ties():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 100_000)
    scale = 6.0 / 255
    q = affine.quantize(x, scale, 0)
    q_sf = affine.quantize_with_scale_factor(x, 1 / scale, 0)
    diff = q.astype(int) - q_sf.astype(int)
    assert np.abs(diff).max() <= 1
    assert (diff == 0).mean() > 0.999
    exact_tie = np.array([0.5 * scale * 3])  # 1.5 steps
    assert affine.quantize(exact_tie, scale, 0)[0] == 2


def test_scale_factor_convention_float_tie_example():
    # 0.3 / 0.1 = 2.9999999999999996 but 0.3 * (1 / 0.1) = 3.0000000000000004 (both round to 3);
    # at a half step the two can fall on either side of the tie:
    x, scale = np.array([0.15]), 0.1
    assert x[0] / scale == 1.4999999999999998
    assert x[0] * (1 / scale) == 1.5
    assert affine.quantize(x, scale, 0)[0] == 1
    assert affine.quantize_with_scale_factor(x, 1 / scale, 0)[0] == 2


def test_zero_point_truncated():
    assert affine.zero_point_truncated(-100.0, 80.0) == 13
    assert affine.qparams(-100.0, 80.0)[1] == 14
    # Negative fractions truncate toward zero (up), rounding goes down.
    zt = affine.zero_point_truncated(-0.2, 0.1, bits=8)  # exact value -128 + 170 = 42.0 ...
    assert zt == affine.qparams(-0.2, 0.1)[1] == 42
    lo, hi = -1.0, 10.0  # qmin - lo/S = -128 + 255/11 = -104.818...
    assert affine.zero_point_truncated(lo, hi) == -104
    assert affine.qparams(lo, hi)[1] == -105
    np.testing.assert_array_equal(
        affine.zero_point_truncated(np.array([-100.0, -1.0]), np.array([80.0, 10.0])), [13, -104])
    assert affine.zero_point_truncated(0.0, 0.0) == -128


# --- properties (hypothesis) -------------------------------------------------------------------

bit_widths = st.integers(2, 8)
ranges = st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)).map(sorted).filter(
    lambda r: r[1] - r[0] > 1e-3)
fractions = hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(0, 1))


@settings(max_examples=100, deadline=None)
@given(ranges, fractions, bit_widths, st.booleans())
def test_error_at_most_half_a_step_inside_the_range(r, t, bits, signed):
    lo, hi = r
    x = np.clip(lo + t * (hi - lo), lo, hi)
    scale, zp = affine.qparams(lo, hi, bits, signed)
    x_hat = affine.fake_quantize(x, scale, zp, bits, signed)
    # half a step, plus float32 rounding of the scale and of the reconstruction
    tolerance = scale / 2 + 4e-7 * max(abs(lo), abs(hi), scale)
    assert np.abs(x - x_hat).max() <= tolerance


@settings(max_examples=100, deadline=None)
@given(ranges, bit_widths, st.booleans())
def test_zero_is_exactly_representable(r, bits, signed):
    scale, zp = affine.qparams(r[0], r[1], bits, signed)
    q = affine.quantize([0.0, -0.0], scale, zp, bits, signed)
    assert (q == zp).all()
    assert (affine.dequantize(q, scale, zp) == 0.0).all()


@settings(max_examples=100, deadline=None)
@given(ranges, fractions, bit_widths, st.booleans())
def test_quantize_is_monotonic(r, t, bits, signed):
    lo, hi = r
    x = np.sort(lo - 0.2 * (hi - lo) + t * 1.4 * (hi - lo))  # also past both ends
    scale, zp = affine.qparams(lo, hi, bits, signed)
    q = affine.quantize(x, scale, zp, bits, signed).astype(int)
    assert (np.diff(q) >= 0).all()


@settings(max_examples=100, deadline=None)
@given(ranges, fractions, bit_widths, st.booleans())
def test_requantizing_the_reconstruction_is_idempotent(r, t, bits, signed):
    lo, hi = r
    x = lo - 0.2 * (hi - lo) + t * 1.4 * (hi - lo)
    scale, zp = affine.qparams(lo, hi, bits, signed)
    q = affine.quantize(x, scale, zp, bits, signed)
    x_hat = affine.dequantize(q, scale, zp)
    np.testing.assert_array_equal(affine.quantize(x_hat, scale, zp, bits, signed), q)


@settings(max_examples=100, deadline=None)
@given(ranges, fractions, bit_widths, st.booleans())
def test_error_split_adds_up(r, t, bits, signed):
    lo, hi = r
    x = lo - 0.5 * (hi - lo) + t * 2 * (hi - lo)
    scale, zp = affine.qparams(lo, hi, bits, signed)
    e_clip = affine.clipping_error(x, scale, zp, bits, signed)
    e_round = affine.rounding_error(x, scale, zp, bits, signed)
    total = x - affine.fake_quantize(x, scale, zp, bits, signed)
    np.testing.assert_allclose(e_clip + e_round, total, rtol=0, atol=1e-9 * max(hi - lo, 1))
    assert np.abs(e_round).max() <= scale / 2 + 4e-7 * max(abs(lo), abs(hi), scale)


# --- torch cross-checks ------------------------------------------------------------------------


def _torch_reference(x, scale, zp, qmin, qmax):
    return torch.clamp(torch.round(x / scale) + zp, qmin, qmax)


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (4, True), (4, False)])
def test_torch_per_tensor_integer_arithmetic(bits, signed):
    g = torch.Generator().manual_seed(bits + 10 * signed)
    x = torch.randn(20_000, generator=g) * 3
    scale, zp = affine.qparams(float(x.min()), float(x.max()), bits, signed)
    q = affine.quantize(x, scale, zp, bits, signed)
    assert isinstance(q, torch.Tensor)
    assert q.dtype == (torch.int8 if signed else torch.uint8)
    qmin, qmax = affine.qrange(bits, signed)
    expected = _torch_reference(x, scale, zp, qmin, qmax)
    assert torch.equal(q.to(torch.float32), expected)
    x_hat = affine.dequantize(q, scale, zp)
    assert isinstance(x_hat, torch.Tensor) and x_hat.dtype == torch.float32
    assert torch.equal(x_hat, (q.to(torch.float32) - zp) * scale)
    # numpy in, numpy out, same numbers
    np.testing.assert_array_equal(affine.quantize(x.numpy(), scale, zp, bits, signed), q.numpy())


def test_torch_per_channel_integer_arithmetic():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 64, generator=g) * torch.linspace(0.1, 4, 16)[:, None]
    scale, zp = affine.qparams(w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True))
    assert scale.shape == (16, 1) and isinstance(scale, torch.Tensor)
    q = affine.quantize(w, scale, zp)
    assert torch.equal(q.to(torch.float32), _torch_reference(w, scale, zp, -128, 127))
    assert torch.equal(affine.dequantize(q, scale, zp), (q.to(torch.float32) - zp) * scale)


def test_torch_quantize_per_tensor_agrees_up_to_one_step():
    """torch.quantize_per_tensor (deprecated in 2.13) computes fma(x, 1/scale, zp) in float32 and
    rounds after adding the zero point, so near a tie it may land one step away from
    round(x / scale) + zp. We only check that bound."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(50_000, generator=g) * 2
    scale, zp = affine.qparams(float(x.min()), float(x.max()))
    q = affine.quantize(x, scale, zp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = torch.quantize_per_tensor(x, scale, zp, torch.qint8).int_repr()
    diff = (tq.to(torch.int32) - q.to(torch.int32)).abs()
    assert int(diff.max()) <= 1
    assert float((diff == 0).float().mean()) > 0.999


def test_docstring_examples():
    import doctest

    result = doctest.testmod(affine, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("axis", "group_size"), [(0, None), (1, None), (None, 4)])
def test_quantize_minmax_per_channel_and_group_is_per_block_minmax(axis, group_size):
    """Per channel or per group, quantize_minmax is quantize_minmax of each block on its own."""
    x = np.random.default_rng(3).standard_normal((3, 8)).astype(np.float32) * [[1], [10], [0]]
    q, s, z = affine.quantize_minmax(x, 4, True, axis, group_size)
    x_hat = affine.dequantize(q, s, z, group_size)
    if group_size:
        pieces = [(r, slice(c, c + 4)) for r in range(3) for c in (0, 4)]
    else:
        pieces = [(r, slice(None)) for r in range(3)] if axis == 0 else \
            [(slice(None), c) for c in range(8)]
    for piece in pieces:
        q_b, s_b, z_b = affine.quantize_minmax(x[piece], 4, True)
        np.testing.assert_array_equal(q[piece], q_b)
        np.testing.assert_allclose(x_hat[piece], affine.dequantize(q_b, s_b, z_b), rtol=1e-6)
    xt = torch.from_numpy(x)
    qt, st_, zt = affine.quantize_minmax(xt, 4, True, axis, group_size)
    assert all(isinstance(v, torch.Tensor) for v in (qt, st_, zt))
    assert torch.equal(affine.fake_quantize(xt, st_, zt, 4, True, group_size),
                       torch.from_numpy(affine.fake_quantize(x, s, z, 4, True, group_size)))
    with pytest.raises(ValueError, match="scale|group_size"):
        affine.dequantize(q, s, z) if group_size else affine.quantize(x, s, z, group_size=3)
