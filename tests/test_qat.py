"""quantbook.qat: the STE and LSQ against affine.fake_quantize, torch's kernels and autograd."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantbook import affine, qat

FLOATS = st.floats(-1e4, 1e4, width=32, allow_subnormal=True)
SCALES = st.floats(2.0**-13, 8.0, width=32)


def torch_oracle(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int):
    """What torch's CPU kernel computes (read in FakeQuantPerTensorAffine / QuantizedOpKernels):
    q = z + nearbyint(x * float32(1/S)); x_hat = (clamp(q) - z) * S; mask = qmin <= q <= qmax."""
    s = np.float32(scale)
    q = np.rint(x.astype(np.float32) * (np.float32(1) / s)) + zero_point
    x_hat = (np.clip(q, qmin, qmax) - zero_point).astype(np.float32) * s
    return x_hat.astype(np.float32), (q >= qmin) & (q <= qmax)


def torch_fake_quantize(x: np.ndarray, scale, zero_point, qmin, qmax):
    t = torch.from_numpy(x.astype(np.float32)).requires_grad_()
    out = torch.fake_quantize_per_tensor_affine(t, float(scale), int(zero_point), qmin, qmax)
    out.sum().backward()
    return out.detach().numpy(), t.grad.numpy()


def ste(x: np.ndarray, scale, zero_point=0, bits=8, signed=True):
    t = torch.from_numpy(np.array(x, dtype=np.float32)).requires_grad_()
    out = qat.fake_quantize_ste(t, scale, zero_point, bits, signed)
    out.sum().backward()
    return out.detach().numpy(), t.grad.numpy()


def ties(scale: float, zero_point: int, bits: int, signed: bool = True) -> np.ndarray:
    """Inputs at (and one float next to) every half step of the grid, and a little beyond."""
    qmin, qmax = affine.qrange(bits, signed)
    k = np.arange(qmin - zero_point - 3, qmax - zero_point + 3, dtype=np.float32) + np.float32(0.5)
    x = np.float32(scale) * k
    return np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                           np.nextafter(x, np.float32(-np.inf))])


# --- the oracle is torch: prove it first ----------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_oracle_is_torch_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        s, z = float(np.exp(rng.uniform(-8, 2))), int(rng.integers(-128, 128))
        x = np.concatenate([ties(s, z, 8), rng.normal(0, 200 * s, 500).astype(np.float32)])
        out, grad = torch_fake_quantize(x, s, z, -128, 127)
        o, m = torch_oracle(x, s, z, -128, 127)
        assert np.array_equal(out, o) and np.array_equal(grad, m.astype(np.float32))


# --- forward: bit for bit affine.fake_quantize ------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(0, 40), elements=FLOATS), scale=SCALES,
       bits=st.integers(2, 8), signed=st.booleans(), data=st.data())
def test_forward_is_affine_fake_quantize(x, scale, bits, signed, data):
    qmin, qmax = affine.qrange(bits, signed)
    z = data.draw(st.integers(qmin, qmax))
    out, _ = ste(x, scale, z, bits, signed)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.array_equal(out.view(np.int32), affine.fake_quantize(x, scale, z, bits, signed)
                          .view(np.int32))


@pytest.mark.parametrize(("scale", "zero_point", "bits"), [(0.0731, 3, 8), (0.1, 0, 4),
                                                           (6.2 / 255, -5, 8), (0.3, 1, 2)])
def test_forward_at_ties_is_affine_and_rounds_half_to_even(scale, zero_point, bits):
    x = ties(scale, zero_point, bits)
    out, _ = ste(x, scale, zero_point, bits)
    assert np.array_equal(out, affine.fake_quantize(x, scale, zero_point, bits))
    # Where x / S is exactly a half-integer, the code is the even neighbour.
    v = x.astype(np.float32) / np.float32(scale)
    exact = (v - np.floor(v) == 0.5) & (np.abs(v) < 100)
    qmin, qmax = affine.qrange(bits)
    inside = exact & (v + zero_point > qmin) & (v + zero_point < qmax)
    q = affine.quantize(x[inside], scale, zero_point, bits).astype(np.int64) - zero_point
    assert inside.any() and (q % 2 == 0).all()


def test_float64_and_shapes():
    x = torch.linspace(-2, 2, 24, dtype=torch.float64).reshape(2, 3, 4).requires_grad_()
    out = qat.fake_quantize_ste(x, 0.1, 0, 4)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert np.array_equal(out.detach().numpy(),
                          affine.fake_quantize(x.detach().numpy(), 0.1, 0, 4).astype(np.float64))
    scalar = torch.tensor(0.26, requires_grad=True)
    y = qat.fake_quantize_ste(scalar, 0.1)
    y.backward()
    assert y.shape == () and y.item() == np.float32(0.3) and scalar.grad.item() == 1.0


def test_per_channel_scale_and_zero_point():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 1, (4, 16)).astype(np.float32)).requires_grad_()
    s = np.array([[0.01], [0.02], [0.05], [0.1]], np.float32)
    z = np.array([[0], [3], [-2], [7]])
    out = qat.fake_quantize_ste(x, s, z, 4)
    (out * 2).sum().backward()
    assert np.array_equal(out.detach().numpy(), affine.fake_quantize(x.detach(), s, z, 4))
    lo, hi = affine.representable_range(s, z, 4)
    inside = (x.detach().numpy() >= lo) & (x.detach().numpy() <= hi)
    assert np.array_equal(x.grad.numpy(), 2 * inside.astype(np.float32))


# --- forward against torch: equal away from ties, the documented difference at ties ----------


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 60), elements=FLOATS), scale=SCALES,
       z=st.integers(-128, 127))
def test_forward_equals_torch_away_from_ties(x, scale, z):
    v = x.astype(np.float64) / np.float64(np.float32(scale))  # x / S, nearly exact
    away = np.abs(v - np.floor(v) - 0.5) > 2.0**-20 * (np.abs(v) + 1)
    out, _ = ste(x, scale, z)
    t_out, _ = torch_fake_quantize(x, scale, z, -128, 127)
    assert np.array_equal(out[away], t_out[away])


def test_forward_differs_from_torch_only_at_ties_by_one_step():
    """torch rounds x * float32(1/S), affine rounds x / S: at a tie they can disagree."""
    n_diff = 0
    for s, z in [(0.0731, 3), (6.2 / 255, -5), (0.017, 0), (1.7e-3, 100)]:
        x = ties(s, z, 8)
        out, _ = ste(x, s, z)
        t_out, _ = torch_fake_quantize(x, s, z, -128, 127)
        diff = out != t_out
        n_diff += int(diff.sum())
        s32 = np.float32(s)
        by_division = np.rint(x / s32)
        by_inverse = np.rint(x * (np.float32(1) / s32))
        assert np.array_equal(diff, (by_division != by_inverse)
                              & (np.clip(by_division + z, -128, 127)
                                 != np.clip(by_inverse + z, -128, 127)))
        assert np.all(np.abs(out[diff] - t_out[diff]) <= s32 * 1.0001)
    assert n_diff > 0  # the difference is real, not hypothetical
    # One case by hand: x = float32(0.0731 * 15.5). x / S is 15.499999 in float32 (rounds to
    # 15), x * float32(1/S) is exactly 15.5 (a tie, to the even 16): one step apart.
    s = np.float32(0.0731)
    x = np.float32(s * np.float32(15.5))
    assert x / s < 15.5 and x * (np.float32(1) / s) == 15.5
    out, _ = ste(np.array([x]), 0.0731)
    t_out, _ = torch_fake_quantize(np.array([x]), 0.0731, 0, -128, 127)
    assert out[0] == np.float32(15) * s and t_out[0] == np.float32(16) * s


# --- the gradient ----------------------------------------------------------------------------


def test_round_alone_has_zero_gradient():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    torch.round(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize(("scale", "zero_point", "bits", "signed"),
                         [(0.1, 0, 8, True), (0.0731, 3, 8, True), (0.25, 0, 3, True),
                          (0.5, 1, 2, True), (0.5, -2, 2, True), (0.02, 17, 8, False),
                          (1 / 3, 0, 4, False)])
def test_mask_at_the_boundaries(scale, zero_point, bits, signed):
    lo, hi = affine.representable_range(scale, zero_point, bits, signed)
    lo, hi = np.float32(lo), np.float32(hi)
    x = np.array([lo, hi, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf),
                  (lo + hi) / 2, lo - 10 * np.float32(scale), hi + 10 * np.float32(scale)],
                 np.float32)
    _, grad = ste(x, scale, zero_point, bits, signed)
    assert grad.tolist() == [1, 1, 0, 0, 1, 0, 0]
    # The ends are what clamped values reconstruct to.
    out, _ = ste(x, scale, zero_point, bits, signed)
    assert out[0] == lo and out[1] == hi and out[5] == lo and out[6] == hi


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 60), elements=FLOATS), scale=SCALES,
       z=st.integers(-128, 127))
def test_gradient_equals_torch_outside_the_half_step_bands(x, scale, z):
    """torch's mask tests the rounded code, ours tests x: they differ only on inputs within
    half a step beyond an end, which round onto the end code (torch passes, we stop)."""
    _, grad = ste(x, scale, z)
    _, t_grad = torch_fake_quantize(x, scale, z, -128, 127)
    lo, hi = affine.representable_range(scale, z)
    half = np.float64(np.float32(scale)) / 2 * (1 + 2.0**-20)
    xd = x.astype(np.float64)
    band = ((xd > hi) & (xd <= hi + half)) | ((xd < lo) & (xd >= lo - half))
    assert np.array_equal(grad[~band], t_grad[~band])
    assert (grad[band] == 0).all()
    clear = band & (np.abs(np.abs(xd - np.where(xd > hi, hi, lo)) - half) > 1e-6 * half)
    assert (t_grad[clear] == 1).all()


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 60), elements=FLOATS), scale=SCALES,
       bits=st.integers(2, 8), signed=st.booleans(), data=st.data())
def test_gradient_is_one_exactly_where_the_clamp_does_nothing(x, scale, bits, signed, data):
    qmin, qmax = affine.qrange(bits, signed)
    z = data.draw(st.integers(qmin, qmax))
    out, grad = ste(x, scale, z, bits, signed)
    lo, hi = affine.representable_range(scale, z, bits, signed)
    inside = np.clip(x, np.float32(lo), np.float32(hi)) == x
    assert np.array_equal(grad, inside.astype(np.float32))
    # Inside, the forward error is a rounding error: at most half a step (and a float32 ulp).
    err = np.abs(out[inside].astype(np.float64) - x[inside])
    assert (err <= np.float32(scale) / 2 * (1 + 2.0**-20) + np.spacing(np.abs(x[inside]))).all()


def test_torch_passes_gradient_half_a_step_beyond_the_end():
    s = 0.1
    _, hi = affine.representable_range(s, 0)
    x = np.array([hi + 0.04, hi + 0.06], np.float32)
    _, grad = ste(x, s)
    _, t_grad = torch_fake_quantize(x, s, 0, -128, 127)
    assert grad.tolist() == [0, 0] and t_grad.tolist() == [1, 0]
    # At the end itself both pass; one float beyond it only torch does (it rounds to the end).
    edge = np.array([np.float32(hi), np.nextafter(np.float32(hi), np.float32(np.inf))])
    assert ste(edge, s)[1].tolist() == [1, 0]
    assert torch_fake_quantize(edge, s, 0, -128, 127)[1].tolist() == [1, 1]


def test_empty_input():
    e = torch.zeros(0, 3, requires_grad=True)
    y = qat.fake_quantize_ste(e, 0.1)
    y.sum().backward()
    assert y.shape == (0, 3) and e.grad.shape == (0, 3)
    step = torch.tensor(0.1, requires_grad=True)
    qat.lsq_fake_quantize(e, step, 4).sum().backward()
    assert step.grad.item() == 0.0


def test_ste_mask_function():
    assert qat.ste_mask([-1.01, -1.0, 0.0, 0.75, 0.76], 0.25, 0, bits=3).tolist() == [
        False, True, True, True, False]
    m = qat.ste_mask(torch.tensor([0.0, 300.0]), 1.0, 0)
    assert isinstance(m, torch.Tensor) and m.tolist() == [True, False]
    assert qat.ste_mask(np.float32(1.0), 1.0).shape == ()


# --- LSQ --------------------------------------------------------------------------------------


def lsq_reference(x, step, g, qmin, qmax):
    """Esser et al.'s formula written with torch ops; autograd differentiates it."""
    s = (step - step * g).detach() + step * g  # the gradient scale trick
    v = torch.clamp(x / s, qmin, qmax)
    v = (v.round() - v).detach() + v  # round in the forward pass, identity in the backward
    return v * s


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (4, True), (3, False), (2, True)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_lsq_gradients_equal_autograd(bits, signed, per_channel):
    gen = torch.Generator().manual_seed(bits)
    x = (torch.randn(16, 32, dtype=torch.float64, generator=gen) * 2)
    if not signed:
        x = x.abs()
    step = (torch.rand(16, 1, dtype=torch.float64, generator=gen) * 0.5 + 0.1
            if per_channel else torch.tensor(0.3, dtype=torch.float64))
    dy = torch.randn(16, 32, dtype=torch.float64, generator=gen)
    qmin, qmax = affine.qrange(bits, signed)
    g = qat.lsq_grad_scale(x.numel() // step.numel(), bits, signed)

    x1, s1 = x.clone().requires_grad_(), step.clone().requires_grad_()
    (qat.lsq_fake_quantize(x1, s1, bits, signed) * dy).sum().backward()
    x2, s2 = x.clone().requires_grad_(), step.clone().requires_grad_()
    (lsq_reference(x2, s2, g, qmin, qmax) * dy).sum().backward()

    assert torch.equal(x1.grad != 0, x2.grad != 0)  # the same mask, exactly
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-9, atol=1e-12)
    assert s1.grad.shape == step.shape


def test_lsq_forward_is_affine_and_float32_reference_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, generator=gen) * 3
    x[:9] = torch.tensor([-4.5, -3.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 100.0]) * 0.25
    step = torch.tensor(0.25, requires_grad=True)
    out = qat.lsq_fake_quantize(x, step, 4)
    ref = lsq_reference(x, step.detach(), 0.0, -8, 7)
    assert torch.equal(out.detach(), affine.fake_quantize(x, 0.25, 0, 4))
    assert torch.equal(out.detach(), ref)
    assert out[:8].tolist() == [-1.0, -1.0, -0.5, -0.0, 0.0, 0.5, 0.5, 1.0]


def test_lsq_step_gradient_by_hand():
    # S = 1, 2 bits signed: codes -2..1, g = 1 given. v = x.
    x = torch.tensor([-3.0, -1.25, 0.4, 0.5, 0.75, 2.0])
    step = torch.tensor(1.0, requires_grad=True)
    x.requires_grad_()
    qat.lsq_fake_quantize(x, step, 2, grad_scale=1.0).sum().backward()
    # -3 < Qn: Qn = -2; -1.25: round -1 -(-1.25) = 0.25; 0.4: -0.4; 0.5: 0 - 0.5;
    # 0.75: 1 - 0.75; 2 > Qp = 1: 1.
    assert step.grad.item() == pytest.approx(-2 + 0.25 - 0.4 - 0.5 + 0.25 + 1)
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 0]


def test_lsq_against_torch_learnable_kernel():
    """torch's _fake_quantize_learnable_per_tensor_affine computes LSQ with grad_factor = g;
    its rounding (x * 1/S) and mask (on the rounded code) differ only near ties and ends."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4096, generator=gen)
    s, g = 0.11, 0.05
    x1 = x.clone().requires_grad_()
    s1 = torch.tensor(s, requires_grad=True)
    qat.lsq_fake_quantize(x1, s1, 4, grad_scale=g).sum().backward()
    x2 = x.clone().requires_grad_()
    s2 = torch.tensor([s], requires_grad=True)
    z2 = torch.tensor([0.0], requires_grad=True)
    torch._fake_quantize_learnable_per_tensor_affine(x2, s2, z2, -8, 7, g).sum().backward()
    v = x.double() / np.float32(s)
    clear = ((v - v.floor() - 0.5).abs() > 1e-4) & (v > -8.5) & (v < 7.5) | (v < -9) | (v > 8)
    ends = (v >= -8.5) & (v < -8) | (v > 7) & (v <= 7.5)
    assert torch.equal(x1.grad[clear & ~ends], x2.grad[clear & ~ends])
    assert s1.grad.item() == pytest.approx(s2.grad.item(), abs=g * ends.sum().item() * 8 + 1e-3)


def test_lsq_init_and_grad_scale():
    assert qat.lsq_grad_scale(64 * 32, 4) == 1 / math.sqrt(64 * 32 * 7)
    assert qat.lsq_grad_scale(10, 8, signed=False) == 1 / math.sqrt(10 * 255)
    assert qat.lsq_step_init([-1.0, 1.0, -3.0, 3.0], 4) == 2 * 2.0 / math.sqrt(7)
    with pytest.raises(ValueError, match="x"):
        qat.lsq_step_init(np.zeros(3), 4)
    with pytest.raises(ValueError, match="n"):
        qat.lsq_grad_scale(0, 4)


# --- BitNet b1.58 ------------------------------------------------------------------------------


def test_absmean_ternary():
    w = np.array([[0.9, -0.05, 0.2], [-0.6, 0.0, 0.45]], np.float32)
    codes, gamma = qat.absmean_ternary(w)
    assert gamma == pytest.approx(np.mean(np.abs(w)))
    assert codes.dtype == np.int8 and set(np.unique(codes)) <= {-1, 0, 1}
    assert codes.tolist() == [[1, 0, 1], [-1, 0, 1]]  # 0.2/0.3667 = 0.55 rounds to 1
    t_codes, _ = qat.absmean_ternary(torch.from_numpy(w))
    assert isinstance(t_codes, torch.Tensor)
    with pytest.raises(ValueError, match="w"):
        qat.absmean_ternary(np.zeros((2, 2)), eps=0.0)


# --- bad input ---------------------------------------------------------------------------------


X = torch.zeros(4, requires_grad=True)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"bits": 1}, ValueError, "bits"), ({"bits": 9}, ValueError, "bits"),
    ({"bits": 4.0}, TypeError, "bits"), ({"scale": 0.0}, ValueError, "scale"),
    ({"scale": -1.0}, ValueError, "scale"), ({"scale": float("nan")}, ValueError, "scale"),
    ({"scale": float("inf")}, ValueError, "scale"), ({"scale": "1"}, TypeError, "scale"),
    ({"zero_point": 128}, ValueError, "zero_point"), ({"zero_point": 0.5}, ValueError,
                                                      "zero_point"),
    ({"zero_point": -1, "signed": False}, ValueError, "zero_point"),
    ({"signed": 1}, TypeError, "signed"),
    ({"scale": np.ones(3)}, ValueError, "scale"), ({"scale": np.ones((2, 4))}, ValueError,
                                                   "scale"),
])
def test_bad_input_names_the_argument(kwargs, error, name):
    args = {"scale": 0.1, "zero_point": 0, "bits": 8, "signed": True} | kwargs
    with pytest.raises(error, match=name):
        qat.fake_quantize_ste(X, **args)


@pytest.mark.parametrize("x", [torch.zeros(3, dtype=torch.int32),
                               torch.zeros(3, dtype=torch.float16), np.zeros(3, np.float32),
                               [0.0, 1.0]])
def test_bad_x(x):
    with pytest.raises(TypeError, match="x"):
        qat.fake_quantize_ste(x, 0.1)
    with pytest.raises(TypeError, match="x"):
        qat.lsq_fake_quantize(x, torch.tensor(0.1))


def test_bad_x_values_and_lsq_step():
    with pytest.raises(ValueError, match="x"):
        qat.fake_quantize_ste(torch.tensor([float("nan")]), 0.1)
    with pytest.raises(TypeError, match="step"):
        qat.lsq_fake_quantize(X, 0.1)
    with pytest.raises(TypeError, match="step"):
        qat.lsq_fake_quantize(X, torch.tensor(0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="step"):
        qat.lsq_fake_quantize(X, torch.tensor(-0.1))
    with pytest.raises(ValueError, match="step"):
        qat.lsq_fake_quantize(X, torch.ones(3))
    with pytest.raises(ValueError, match="bits"):
        qat.lsq_fake_quantize(X, torch.tensor(0.1), bits=16)
    with pytest.raises(ValueError, match="grad_output"):
        qat.lsq_gradients(np.zeros(3), 0.1, np.zeros(4))
    with pytest.raises(ValueError, match="grad_scale"):
        qat.lsq_gradients(np.zeros(3), 0.1, np.zeros(3), grad_scale=0.0)
