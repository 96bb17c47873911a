"""quantbook.symmetric: absmax quantization per tensor, channel and group."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantbook import symmetric


def test_qrange_restricted_and_full():
    assert symmetric.qrange(8) == (-127, 127)
    assert symmetric.qrange(8, restricted=False) == (-128, 127)
    assert symmetric.qrange(4) == (-7, 7)
    assert symmetric.qrange(2) == (-1, 1)
    with pytest.raises(ValueError, match="bits"):
        symmetric.qrange(9)


def test_quantize_exact():
    q, scale = symmetric.quantize([0.5, -1.0, 2.54])
    assert scale == 2.54 / 127 and isinstance(scale, float)
    np.testing.assert_array_equal(q, [25, -50, 127])
    assert q.dtype == np.int8
    np.testing.assert_array_equal(symmetric.dequantize(q, scale),
                                  np.float32([25, -50, 127]) * np.float32(scale))


def test_restricted_range_never_uses_the_lowest_code():
    q, scale = symmetric.quantize([-2.54, 2.54, -1.0])
    np.testing.assert_array_equal(q, [-127, 127, -50])
    q, _ = symmetric.quantize(np.random.default_rng(0).standard_normal(10_000), bits=4)
    assert q.min() == -7 and q.max() == 6  # the largest |x| is negative here


def test_restricted_range_is_odd_symmetric():
    x = np.random.default_rng(1).standard_normal(1000)
    q, s = symmetric.quantize(x)
    q_neg, s_neg = symmetric.quantize(-x)
    assert s == s_neg
    np.testing.assert_array_equal(q_neg, -q)


def test_full_range_scale_and_codes():
    x = np.array([-127.5, -50.0, 0.0, 50.0, 127.5])
    q, scale = symmetric.quantize_full_range(x)
    assert scale == 1.0
    # -127.5 is a tie: half to even gives -128; +127.5 rounds to 128 and is clamped to 127
    np.testing.assert_array_equal(q, [-128, -50, 0, 50, 127])
    q, scale = symmetric.quantize_full_range([-2.55, 2.55])
    assert scale == 2.55 / 127.5
    assert -2.55 / scale == -127.50000000000001  # float division lands just past the tie
    np.testing.assert_array_equal(q, [-128, 127])
    q4, s4 = symmetric.quantize_full_range([-7.5, 7.5, 1.0], bits=4)
    assert s4 == 1.0
    np.testing.assert_array_equal(q4, [-8, 7, 1])


def test_full_range_step_is_smaller_and_error_still_half_a_step():
    x = np.random.default_rng(2).uniform(-1, 1, 5000)
    _, s_restricted = symmetric.quantize(x)
    q, s_full = symmetric.quantize_full_range(x)
    assert s_full == pytest.approx(s_restricted * 127 / 127.5, rel=1e-15)
    x_hat = symmetric.dequantize(q, s_full)
    assert np.abs(x - x_hat).max() <= s_full / 2 + 1e-7


def test_full_range_matches_torch_minmax_observer():
    """PyTorch's symmetric observers use scale = max|x| / ((qmax - qmin) / 2) = max|x| / 127.5."""
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

    g = torch.Generator().manual_seed(3)
    x = torch.randn(4000, generator=g)
    w = torch.randn(8, 32, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        obs(x)
        scale, zero_point = obs.calculate_qparams()
        per_channel = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8,
                                               qscheme=torch.per_channel_symmetric)
        per_channel(w)
        channel_scales, _ = per_channel.calculate_qparams()
    assert int(zero_point) == 0
    assert symmetric.absmax_scale(x, restricted=False) == float(scale)
    assert torch.equal(symmetric.absmax_scale(w, axis=0, restricted=False)[:, 0], channel_scales)


def test_per_channel_axis_keeps_dims():
    w = np.array([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [10.0, 5.0, -2.5, 1.0]])
    q, scale = symmetric.quantize(w, axis=0)
    assert scale.shape == (3, 1) and scale.dtype == np.float32
    np.testing.assert_array_equal(scale[:, 0], np.float32([2 / 127, 1.0, 10 / 127]))
    np.testing.assert_array_equal(q, [[64, -127, 32, 0], [0, 0, 0, 0], [127, 64, -32, 13]])
    q1, scale1 = symmetric.quantize(w, axis=1)
    assert scale1.shape == (1, 4)
    np.testing.assert_array_equal(scale1[0], np.float32([10, 5, 2.5, 1]) / np.float32(127))
    x_hat = symmetric.dequantize(q, scale)
    assert x_hat.dtype == np.float32 and x_hat.shape == w.shape


def test_per_channel_equals_quantizing_each_row():
    w = np.random.default_rng(4).standard_normal((6, 40)).astype(np.float32)
    q, scale = symmetric.quantize(w, bits=4, axis=0)
    for i in range(6):
        q_row, s_row = symmetric.quantize(w[i], bits=4)
        assert scale[i, 0] == np.float32(s_row)
        np.testing.assert_array_equal(q[i], q_row)


def test_per_channel_negative_axis_on_3d():
    x = np.random.default_rng(5).standard_normal((2, 3, 4))
    q, scale = symmetric.quantize(x, axis=-1)
    assert scale.shape == (1, 1, 4)
    np.testing.assert_allclose(scale[0, 0], np.abs(x).max(axis=(0, 1)) / 127, rtol=1e-7)


def test_per_group_shapes_and_values():
    x = np.arange(24.0).reshape(2, 12) - 7
    q, scale = symmetric.quantize(x, bits=4, group_size=4)
    assert q.shape == (2, 12) and scale.shape == (2, 3, 1)
    np.testing.assert_array_equal(scale[..., 0], np.float32([[7, 3, 4], [8, 12, 16]]) / 7)
    np.testing.assert_array_equal(q[0], [-7, -6, -5, -4, -7, -5, -2, 0, 2, 3, 5, 7])
    x_hat = symmetric.dequantize(q, scale, group_size=4)
    assert x_hat.shape == (2, 12) and x_hat.dtype == np.float32
    np.testing.assert_allclose(x_hat[0, :4], [-7, -6, -5, -4], rtol=1e-6)


def test_per_group_equals_quantizing_each_group():
    x = np.random.default_rng(6).standard_normal((3, 64)).astype(np.float32)
    q, scale = symmetric.quantize(x, bits=4, group_size=16)
    for r in range(3):
        for g in range(4):
            q_g, s_g = symmetric.quantize(x[r, 16 * g:16 * (g + 1)], bits=4)
            np.testing.assert_array_equal(q[r, 16 * g:16 * (g + 1)], q_g)
            assert scale[r, g, 0] == np.float32(s_g)


def test_group_size_must_divide():
    with pytest.raises(ValueError, match="group_size"):
        symmetric.quantize(np.ones((2, 10)), group_size=4)
    with pytest.raises(ValueError, match="group_size"):
        symmetric.quantize(np.ones(8), group_size=0)
    with pytest.raises(TypeError, match="group_size"):
        symmetric.quantize(np.ones(8), group_size=2.0)
    with pytest.raises(ValueError, match="group_size"):
        symmetric.dequantize(np.ones((2, 10), dtype=np.int8), np.ones((2, 2, 1)), group_size=4)
    with pytest.raises(ValueError, match="axis"):
        symmetric.quantize(np.ones((2, 8)), axis=0, group_size=4)
    with pytest.raises(ValueError, match="axis"):
        symmetric.quantize(np.ones((2, 8)), axis=2)


def test_all_zero_input():
    q, scale = symmetric.quantize(np.zeros(5))
    assert scale == 1.0
    assert (q == 0).all()
    q, scale = symmetric.quantize(np.zeros((2, 8)), group_size=4)
    assert (scale == 1.0).all()


def test_empty_in_empty_out():
    q, scale = symmetric.quantize(np.array([]))
    assert q.shape == (0,) and scale == 1.0
    q, scale = symmetric.quantize(np.zeros((0, 3)), axis=0)
    assert q.shape == (0, 3) and scale.shape == (0, 1)
    assert symmetric.dequantize(q, scale).shape == (0, 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_input(bad):
    with pytest.raises(ValueError, match="x contains"):
        symmetric.quantize([1.0, bad])
    with pytest.raises(ValueError, match="bits"):
        symmetric.quantize([1.0], bits=1)
    with pytest.raises(ValueError, match="scale"):
        symmetric.dequantize([1, 2], -0.5)
    with pytest.raises(ValueError, match="scale"):
        symmetric.dequantize([1, 2], bad)


def test_fake_quantize():
    x = np.array([0.5, -1.0, 2.54])
    np.testing.assert_array_equal(symmetric.fake_quantize(x),
                                  symmetric.dequantize(*symmetric.quantize(x)))
    q, s = symmetric.quantize_full_range(x, bits=4)
    np.testing.assert_array_equal(symmetric.fake_quantize(x, 4, restricted=False),
                                  symmetric.dequantize(q, s))


# --- properties -------------------------------------------------------------------------------

# Millesimal values up to 1e4: dequantize returns float32, which cannot hold 1e-300.
arrays = hnp.arrays(np.float64, st.integers(1, 64),
                    elements=st.integers(-10**7, 10**7).map(lambda i: i / 1000))


@settings(max_examples=100, deadline=None)
@given(arrays, st.integers(2, 8), st.booleans())
def test_error_at_most_half_a_step(x, bits, restricted):
    quant = symmetric.quantize if restricted else symmetric.quantize_full_range
    q, scale = quant(x, bits)
    x_hat = symmetric.dequantize(q, scale)
    assert np.abs(x - x_hat).max() <= scale / 2 + 4e-7 * max(np.abs(x).max(), scale)


@settings(max_examples=100, deadline=None)
@given(arrays, st.integers(2, 8))
def test_zero_exact_monotonic_idempotent(x, bits):
    x = np.sort(np.append(x, 0.0))
    q, scale = symmetric.quantize(x, bits)
    assert symmetric.dequantize(q, scale)[np.searchsorted(x, 0.0)] == 0.0
    assert (np.diff(q.astype(int)) >= 0).all()
    x_hat = symmetric.dequantize(q, scale)
    q2, scale2 = symmetric.quantize(x_hat, bits)
    np.testing.assert_array_equal(q2, q)
    assert scale2 == pytest.approx(scale, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, (4, 32), elements=st.floats(-100, 100, width=32)),
       st.integers(2, 8), st.sampled_from([4, 8, 16, 32]))
def test_per_group_error_bound(x, bits, group_size):
    group_max = np.abs(x).reshape(4, -1, group_size).max(axis=-1)
    if ((group_max > 0) & (group_max / np.float32(2 ** (bits - 1) - 1) == 0)).any():
        # a group of tiny subnormals: its scale rounds to 0 in float32, which is an error
        with pytest.raises(ValueError, match="float32 cannot hold"):
            symmetric.quantize(x, bits, group_size=group_size)
        return
    q, scale = symmetric.quantize(x, bits, group_size=group_size)
    x_hat = symmetric.dequantize(q, scale, group_size=group_size)
    bound = np.repeat(scale[..., 0], group_size, axis=-1) / 2 + 1e-5
    assert (np.abs(x - x_hat) <= bound).all()


# --- torch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 4])
def test_torch_in_torch_out_and_integer_arithmetic(bits):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(64, 128, generator=g)
    top = 2 ** (bits - 1) - 1
    q, scale = symmetric.quantize(x, bits)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.int8
    expected_scale = x.abs().max() / top
    assert scale == float(expected_scale)
    assert torch.equal(q.to(torch.float32), torch.clamp(torch.round(x / scale), -top, top))
    x_hat = symmetric.dequantize(q, scale)
    assert isinstance(x_hat, torch.Tensor) and x_hat.dtype == torch.float32
    assert torch.equal(x_hat, q.to(torch.float32) * scale)

    qc, sc = symmetric.quantize(x, bits, axis=0)
    assert isinstance(sc, torch.Tensor) and sc.shape == (64, 1)
    ref_scale = x.abs().amax(dim=1, keepdim=True) / top
    assert torch.equal(sc, ref_scale)
    assert torch.equal(qc.to(torch.float32), torch.clamp(torch.round(x / ref_scale), -top, top))

    qg, sg = symmetric.quantize(x, bits, group_size=32)
    groups = x.reshape(64, 4, 32)
    ref_scale = groups.abs().amax(dim=-1, keepdim=True) / top
    assert torch.equal(sg, ref_scale)
    assert torch.equal(qg.reshape(64, 4, 32).to(torch.float32),
                       torch.clamp(torch.round(groups / ref_scale), -top, top))
    assert torch.equal(symmetric.dequantize(qg, sg, group_size=32),
                       (qg.reshape(64, 4, 32).to(torch.float32) * sg).reshape(64, 128))


def test_docstring_examples():
    import doctest

    result = doctest.testmod(symmetric, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
