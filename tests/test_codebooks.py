"""quantbook.codebooks: NF4 bit for bit against bitsandbytes, IQ4_NL against gguf, k-means."""

import logging
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantbook import codebooks as cb


@pytest.fixture(scope="module")
def bnb():
    """bitsandbytes' functional module (skips the test, not the file, when it is missing)."""
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # optional `kernels` package
    import bitsandbytes.functional as F

    return F


@pytest.fixture(scope="module")
def gguf_quants():
    gguf = pytest.importorskip("gguf", reason="gguf is not installed")
    quants = pytest.importorskip("gguf.quants")
    return quants, gguf.GGMLQuantizationType


def bits(a) -> np.ndarray:
    """float32 values as their bit patterns, so NaN payloads and -0.0 compare too."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32)


def bnb_encode(F, x, block_size, double_quant):
    packed, state = F.quantize_4bit(torch.from_numpy(x), blocksize=block_size,
                                    compress_statistics=double_quant, quant_type="nf4")
    return packed, state


def sample(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return (rng.standard_normal(n) * 0.05).astype(np.float32)
    if kind == "zeros-inside":
        x = rng.standard_normal(n).astype(np.float32)
        x[rng.random(n) < 0.3] = 0
        x[64:128] = 0  # a whole zero block
        return x
    if kind == "ties":  # values exactly on the float32 midpoints between NF4 levels
        x = rng.choice(cb.nf4_midpoints(), n).astype(np.float32)
        x[::32] = 1.0  # absmax 1 in every block (also for block size 32)
        return x
    if kind == "huge":
        x = rng.standard_normal(n).astype(np.float32) * np.float32(1e37)
        x[::7] = np.float32(3e38)
        x[1::11] = np.float32(1e-40)  # subnormal
        return x
    if kind == "large":  # large, but their float32 sum does not overflow
        return (rng.standard_normal(n) * 1e30).astype(np.float32)
    if kind == "tiny":
        return (rng.standard_normal(n) * 1e-39).astype(np.float32)  # subnormal absmax
    raise AssertionError(kind)


# --- the tables ---------------------------------------------------------------------------

def test_nf4_table_is_bitsandbytes_table(bnb):
    assert np.array_equal(bits(cb.NF4), bits(bnb.get_4bit_type("nf4", device="cpu").numpy()))


def test_nf4_levels_come_from_normal_quantiles():
    levels = cb.normal_float_levels()
    assert levels.shape == (16,) and levels[0] == -1 and levels[-1] == 1 and levels[7] == 0
    assert (np.diff(levels) > 0).all()
    assert np.abs(levels - cb.NF4).max() < 1e-6  # float32 rounding of QLoRA's construction
    assert np.abs(cb.normal_float_levels(0.99) - cb.NF4).max() > 1e-3  # the offset matters


def test_dynamic_map_is_bitsandbytes_map(bnb):
    ours = cb.dynamic_map()
    theirs = bnb.create_dynamic_map().numpy()
    assert ours.shape == (256,) and (np.diff(ours) > 0).all()
    # bitsandbytes builds the map with torch.linspace, whose vectorized CPU kernel rounds
    # start + step·i once (a fused multiply-add); dynamic_map emulates that. Without vector
    # units (capability "DEFAULT") torch may round twice: then allow one float32 step.
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert np.array_equal(bits(ours), bits(theirs))
    else:
        assert np.all(np.abs(ours - theirs) <= np.spacing(np.abs(theirs)))


def test_dynamic_lut_is_not_always_the_nearest_code():
    code = cb.dynamic_map()
    lut = cb.dynamic_lut()
    i = np.arange(65536, dtype=np.float32)
    centres = np.float32(-1) + np.float32(2) * i / np.float32(65535)
    nearest = np.abs(centres[:, None] - code[None, :]).argmin(axis=1)
    assert np.array_equal(lut, nearest)  # exact at the centre of every bin ...
    u = np.random.default_rng(0).uniform(-1, 1, 200_000).astype(np.float32)
    mids = (code[:-1] + code[1:]) / np.float32(2)
    via_lut = cb.quantize_absmax(u, offset=0.0, block_size=u.size)[0].astype(int)
    true_nearest = np.searchsorted(mids, u * (np.float32(1) / np.abs(u).max()))
    off = via_lut != true_nearest  # ... but a value near a midpoint can land one code away
    assert 0 < off.mean() < 0.01
    assert np.unique(lut).size < 256  # codes closer to 0 than half a bin are never used


# --- NF4 against bitsandbytes --------------------------------------------------------------

@pytest.mark.parametrize("kind", ["normal", "zeros-inside", "ties", "huge", "tiny"])
@pytest.mark.parametrize("block_size", [32, 64, 256])
def test_encode_nf4_equals_bitsandbytes(bnb, kind, block_size):
    x = sample(kind, 64 * 40, seed=block_size)
    packed, state = bnb_encode(bnb, x, block_size, double_quant=False)
    ours = cb.encode_nf4(x, block_size)
    assert np.array_equal(ours.packed, packed.numpy().reshape(-1))
    assert np.array_equal(bits(ours.absmax), bits(state.absmax.numpy()))
    expected = bnb.dequantize_4bit(packed, state).numpy().reshape(-1)
    assert np.array_equal(bits(cb.decode_nf4(ours)), bits(expected))


@pytest.mark.parametrize("kind", ["normal", "zeros-inside", "large"])
@pytest.mark.parametrize("n_blocks", [1, 300, 700])
def test_double_quant_equals_bitsandbytes(bnb, kind, n_blocks):
    x = sample(kind, 64 * n_blocks, seed=n_blocks)
    packed, state = bnb_encode(bnb, x, 64, double_quant=True)
    ours = cb.encode_nf4(x, 64, double_quant=True, offset=state.offset.item())
    assert np.array_equal(ours.packed, packed.numpy().reshape(-1))
    assert np.array_equal(ours.absmax, state.absmax.numpy())
    assert np.array_equal(bits(ours.absmax_scales), bits(state.state2.absmax.numpy()))
    expected = bnb.dequantize_4bit(packed, state).numpy().reshape(-1)
    assert np.array_equal(bits(cb.decode_nf4(ours)), bits(expected))
    # our own offset (the correctly rounded mean) is torch's up to its last bits
    own = cb.encode_nf4(x, 64, double_quant=True).absmax_offset
    assert abs(own - state.offset.item()) <= 4 * np.spacing(np.float32(abs(own)))


def test_double_quant_of_huge_values_overflows_in_bitsandbytes_not_here(bnb):
    x = sample("huge", 64 * 300)
    packed, state = bnb_encode(bnb, x, 64, double_quant=True)
    assert not math.isfinite(state.offset.item())  # torch's float32 mean overflows
    assert not np.isfinite(bnb.dequantize_4bit(packed, state).numpy()).all()
    ours = cb.encode_nf4(x, 64, double_quant=True)  # the mean is summed in float64
    assert math.isfinite(ours.absmax_offset) and np.isfinite(cb.decode_nf4(ours)).all()


def test_double_quant_mean_is_not_torch_mean_to_the_bit_always(bnb):
    # Not an assertion about which is right: the two sums simply round differently, which is
    # why encode_nf4 takes bitsandbytes' offset when the bytes must match.
    rng = np.random.default_rng(3)
    a = (np.abs(rng.standard_normal(5000)) * 40).astype(np.float32)
    _, _, mu = cb.quantize_absmax(a)
    assert abs(float(mu) - torch.from_numpy(a).mean().item()) <= 2 * np.spacing(mu)


def test_odd_length_matches_bitsandbytes(bnb):
    # bitsandbytes accepts any length: a short last block, one zero code padding an odd count
    x = sample("normal", 64 * 3 + 37, seed=5)
    packed, state = bnb_encode(bnb, x, 64, double_quant=False)
    ours = cb.encode_nf4(x, 64)
    assert np.array_equal(ours.packed, packed.numpy().reshape(-1))
    assert ours.packed[-1] & 0x0F == 7  # the padding is the code of 0.0
    assert np.array_equal(bits(ours.absmax), bits(state.absmax.numpy()))
    expected = bnb.dequantize_4bit(packed, state).numpy().reshape(-1)
    assert np.array_equal(bits(cb.decode_nf4(ours)), bits(expected))


def test_decode_nf4_on_random_bytes_equals_bitsandbytes(bnb):
    rng = np.random.default_rng(9)
    n, bs = 64 * 50, 64
    packed = rng.integers(0, 256, n // 2, dtype=np.uint8)
    absmax = (rng.random(n // bs) * 10).astype(np.float32)
    rec = cb.NF4Encoded(packed, absmax, (n,), bs)
    state = bnb.QuantState(absmax=torch.from_numpy(absmax), shape=torch.Size([n]),
                           dtype=torch.float32, blocksize=bs, quant_type="nf4")
    expected = bnb.dequantize_4bit(torch.from_numpy(packed).reshape(-1, 1), state)
    assert np.array_equal(bits(cb.decode_nf4(rec)), bits(expected.numpy().reshape(-1)))


def test_dequantize_absmax_on_random_codes_equals_bitsandbytes(bnb):
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, 600, dtype=np.uint8)
    scales = rng.random(3).astype(np.float32)
    expected = bnb.dequantize_blockwise(torch.from_numpy(codes), absmax=torch.from_numpy(scales),
                                        code=bnb.create_dynamic_map(), blocksize=256).numpy()
    ours = cb.dequantize_absmax(codes, scales, 0.0)
    assert np.array_equal(bits(ours), bits(expected + np.float32(0.0)))


def test_first_value_goes_in_the_high_nibble():
    rec = cb.encode_nf4(np.array([1.0, -1.0] + [0.0] * 62, dtype=np.float32))
    assert rec.packed[0] == 0xF0 and rec.packed[1] == 0x77


def test_a_tie_goes_to_the_lower_level():
    mids = cb.nf4_midpoints()
    assert np.array_equal(cb.nearest_level(mids), np.arange(15))
    assert np.array_equal(cb.nearest_level(np.nextafter(mids, np.float32(2))), np.arange(1, 16))


def test_all_zero_input_decodes_to_zero():
    for dq in (False, True):
        rec = cb.encode_nf4(np.zeros(128, np.float32), double_quant=dq)
        assert (cb.decode_nf4(rec) == 0).all()
        assert (np.asarray(rec.packed) == 0x77).all()


def test_torch_in_torch_out_same_numbers():
    x = sample("normal", 256)
    a = cb.encode_nf4(x, double_quant=True)
    t = cb.encode_nf4(torch.from_numpy(x), double_quant=True)
    assert isinstance(t.packed, torch.Tensor) and isinstance(t.absmax_scales, torch.Tensor)
    assert np.array_equal(a.packed, t.packed.numpy())
    out = cb.decode_nf4(t)
    assert isinstance(out, torch.Tensor) and out.shape == (256,)
    assert np.array_equal(cb.decode_nf4(a), out.numpy())
    bf = cb.encode_nf4(torch.from_numpy(x).to(torch.bfloat16))
    assert np.asarray(bf.packed).shape == (128,)


def test_shape_is_kept_and_blocks_run_across_rows():
    x = sample("normal", 96 * 4).reshape(4, 96)
    rec = cb.encode_nf4(x)
    assert rec.shape == (4, 96) and rec.n == 384 and np.asarray(rec.absmax).shape == (6,)
    assert cb.decode_nf4(rec).shape == (4, 96)
    assert np.array_equal(cb.decode_nf4(rec).reshape(-1), cb.decode_nf4(cb.encode_nf4(x.ravel())))


def test_bits_per_weight():
    assert cb.nf4_bits_per_weight(64) == 4.5
    assert math.isclose(cb.nf4_bits_per_weight(64, double_quant=True), 4 + 8 / 64 + 32 / 16384)
    rec = cb.encode_nf4(sample("normal", 64 * 512), double_quant=True)
    assert rec.nbytes == 64 * 512 // 2 + 512 + 2 * 4 + 4


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300),
                  elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=True)),
       st.sampled_from([32, 64, 128]))
def test_nf4_round_trip_error_is_within_half_the_widest_gap(x, block_size):
    rec = cb.encode_nf4(x, block_size)
    x_hat = cb.decode_nf4(rec)
    absmax = np.repeat(np.asarray(rec.absmax), block_size)[: x.size].astype(np.float64)
    half_gap = np.diff(cb.NF4.astype(np.float64)).max() / 2
    # bitsandbytes multiplies by the float32 reciprocal 1/absmax, which is inf for an absmax
    # below 2^-128: such a block decodes to zeros (bitsandbytes does the same), so its error is
    # the value itself, at most absmax.
    tiny = absmax < 2.0**-128
    bound = np.where(tiny, absmax, absmax * half_gap * (1 + 1e-6) + 1e-45)
    assert (np.abs(x.astype(np.float64) - x_hat) <= bound).all()
    codes = np.empty(2 * rec.packed.size, np.uint8)
    codes[0::2], codes[1::2] = rec.packed >> 4, rec.packed & 15
    assert np.array_equal(x_hat, cb.NF4[codes[: x.size]] * absmax.astype(np.float32))


# --- IQ4_NL against gguf -------------------------------------------------------------------

def test_iq4_nl_sizes_agree_with_gguf(gguf_quants):
    import gguf

    assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.IQ4_NL] == (
        cb.IQ4_NL_BLOCK_SIZE, cb.IQ4_NL_BLOCK_BYTES)
    assert tuple(gguf.quants.IQ4_NL.kvalues) == tuple(cb.IQ4_NL_VALUES.tolist())


@pytest.mark.parametrize("shape", [(18,), (18 * 300,), (3, 18 * 7)])
def test_decode_iq4_nl_equals_gguf_on_random_bytes(gguf_quants, shape):
    quants, qtype = gguf_quants
    raw = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    raw.reshape(-1, 18)[0, :2] = (0x00, 0x7C)  # +inf scale
    with np.errstate(invalid="ignore"):  # gguf multiplies NaN scales by the table
        expected = quants.dequantize(raw, qtype.IQ4_NL)
    ours = cb.decode_iq4_nl(raw)
    assert ours.shape == expected.shape == shape[:-1] + (shape[-1] // 18 * 32,)
    assert np.array_equal(bits(ours), bits(expected))


@pytest.mark.parametrize("ntry", [7, -1])
def test_encode_iq4_nl_decodes_in_gguf(gguf_quants, ntry):
    quants, qtype = gguf_quants
    rng = np.random.default_rng(ntry + 10)
    x = (rng.standard_normal((4, 32 * 20)) * 0.02).astype(np.float32)
    x[0, :32] = 0  # an all-zero block
    raw = cb.encode_iq4_nl(x, ntry=ntry)
    assert raw.shape == (4, 18 * 20) and raw.dtype == np.uint8
    x_hat = quants.dequantize(raw, qtype.IQ4_NL)
    assert np.array_equal(bits(cb.decode_iq4_nl(raw)), bits(x_hat))
    assert (x_hat[0, :32] == 0).all()
    err = np.sum((x - x_hat) ** 2) / np.sum(x**2)
    assert 10 * math.log10(1 / err) > 17  # a 4-bit codebook on normal data: about 20 dB


def test_encode_iq4_nl_search_is_never_worse_than_its_start():
    rng = np.random.default_rng(1)
    x = (rng.standard_t(4, (200, 32))).astype(np.float32)
    w = x.astype(np.float64) ** 2
    def werr(raw):
        return (w * (x - cb.decode_iq4_nl(raw).reshape(200, 32)) ** 2).sum()
    assert werr(cb.encode_iq4_nl(x.reshape(-1), ntry=7)) <= werr(
        cb.encode_iq4_nl(x.reshape(-1), ntry=0)) * 1.001


def test_encode_iq4_nl_golden_block():
    # The value of largest magnitude (the first one, m = -1) sets the start: ntry=-1 takes
    # d = m / -127 > 0, so -1 -> -127 (code 0) and +1 -> +113 (code 15); ntry=7 tries
    # 1/d = (t - 127) / m > 0 for t = -7..7 and ends on the same side.
    x = np.linspace(-1, 1, 32, dtype=np.float32)
    for ntry, first, last, sign in [(-1, 0, 15, 1), (7, 0, 15, 1)]:
        raw = cb.encode_iq4_nl(x, ntry=ntry)
        nib = np.concatenate([raw[2:] & 15, raw[2:] >> 4])
        assert (nib[0], nib[31]) == (first, last)
        assert np.sign(np.frombuffer(raw[:2].tobytes(), "<f2")[0]) == sign


def test_iq4_nl_torch_in_torch_out():
    x = torch.randn(64)
    raw = cb.encode_iq4_nl(x)
    assert isinstance(raw, torch.Tensor) and raw.dtype == torch.uint8 and raw.shape == (36,)
    assert isinstance(cb.decode_iq4_nl(raw), torch.Tensor)
    assert np.array_equal(cb.decode_iq4_nl(raw).numpy(), cb.decode_iq4_nl(raw.numpy()))


# --- k-means -------------------------------------------------------------------------------

def test_kmeans_is_deterministic_sorted_and_beats_a_uniform_grid_on_normal_data():
    x = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    c1, c2 = cb.kmeans_codebook(x, 16, seed=0), cb.kmeans_codebook(x, 16, seed=0)
    assert np.array_equal(c1, c2) and c1.shape == (16,) and (np.diff(c1) > 0).all()
    def mse(c):
        return np.mean((x - c[cb.codebook_quantize(x, c)]) ** 2)
    grid = np.linspace(x.min(), x.max(), 16).astype(np.float32)
    assert mse(c1) < 0.5 * mse(grid)
    assert mse(c1) <= mse(cb.kmeans_codebook(x, 16, iters=1)) + 1e-12


def test_kmeans_lloyd_step_keeps_centres_at_cluster_means():
    x = np.array([0, 0.1, 0.2, 5, 5.1, 9.9, 10, 10.1], dtype=np.float32)
    c = cb.kmeans_codebook(x, 3, iters=50)
    assert np.allclose(c, [0.1, 5.05, 10.0], atol=1e-6)


def test_codebook_bytes():
    assert cb.codebook_bytes(1024, 16) == 1024 / 2 + 16 * 4
    assert cb.codebook_bytes(1024, 16, block_size=64) == 512 + 64 + 16 * 2
    assert cb.codebook_bytes(10, 3) == 10 * 2 / 8 + 12


def test_empty_and_scalar_input():
    for dq in (False, True):
        assert cb.decode_nf4(cb.encode_nf4(np.zeros((0, 64)), double_quant=dq)).shape == (0, 64)
        assert cb.decode_nf4(cb.encode_nf4(np.float32(0.7), double_quant=dq)) == np.float32(0.7)
    assert cb.encode_iq4_nl(np.zeros((0, 32))).shape == (0, 18)
    assert cb.encode_iq4_nl(np.zeros((3, 0))).shape == (3, 0)
    assert cb.decode_iq4_nl(np.zeros((2, 0), np.uint8)).shape == (2, 0)
    assert np.array_equal(cb.kmeans_codebook([1.0, 1.0, 1.0], k=3), [1, 1, 1])


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(bad):
    x = np.zeros(64, np.float32)
    x[5] = bad
    for fn in (cb.encode_nf4, cb.encode_iq4_nl, cb.kmeans_codebook):
        with pytest.raises(ValueError, match="x contains"):
            fn(x)


@pytest.mark.parametrize("x", [np.zeros(64, bool), np.zeros(64, complex), ["a"] * 64])
def test_wrong_dtype_is_rejected(x):
    for fn in (cb.encode_nf4, cb.encode_iq4_nl):
        with pytest.raises(TypeError, match="x must"):
            fn(x)


def test_bad_block_size_and_lengths():
    with pytest.raises(ValueError, match="block_size must be one of"):
        cb.encode_nf4(np.zeros(96), block_size=48)
    with pytest.raises(TypeError, match="block_size"):
        cb.encode_nf4(np.zeros(64), block_size=64.0)
    with pytest.raises(ValueError, match="multiple of 32"):
        cb.encode_iq4_nl(np.zeros(40))
    with pytest.raises(ValueError, match="multiple of 18 bytes"):
        cb.decode_iq4_nl(np.zeros(20, np.uint8))
    with pytest.raises(TypeError, match="raw must be a uint8"):
        cb.decode_iq4_nl(np.zeros(18, np.int16))
    with pytest.raises(ValueError, match="only used with double_quant"):
        cb.encode_nf4(np.zeros(64), offset=1.0)


def test_decode_nf4_checks_its_record():
    rec = cb.encode_nf4(np.ones(128, np.float32))
    with pytest.raises(TypeError, match="NF4Encoded"):
        cb.decode_nf4(rec.packed)
    with pytest.raises(ValueError, match="ceil\\(n/2\\)"):
        cb.decode_nf4(cb.NF4Encoded(rec.packed[:-1], rec.absmax, rec.shape, 64))
    with pytest.raises(ValueError, match="encoded.absmax must hold 2"):
        cb.decode_nf4(cb.NF4Encoded(rec.packed, rec.absmax[:1], rec.shape, 64))
    with pytest.raises(TypeError, match="float32"):
        cb.decode_nf4(cb.NF4Encoded(rec.packed, rec.absmax.astype(np.float64), rec.shape, 64))
