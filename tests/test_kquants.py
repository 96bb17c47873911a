"""quantbook.kquants: Q4_K and Q6_K bytes, through gguf 0.19's decoder, golden values, mixes."""

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType

from quantbook import kquants as kq
from quantbook.formats import (
    decode_q4_0,
    decode_q4_k,
    decode_q6_k,
    encode_q4_0,
    encode_q4_k,
    encode_q6_k,
)

Q4_K, Q6_K = GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K
CODECS = [(encode_q4_k, decode_q4_k, Q4_K, 144), (encode_q6_k, decode_q6_k, Q6_K, 210)]


def same_bits(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def random_data(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 3, size=shape[:-1] + (1,))
    return x.astype(np.float32)


@pytest.mark.parametrize("encode, decode, qtype, nbytes", CODECS)
def test_decoders_equal_gguf_on_random_bytes(encode, decode, qtype, nbytes):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(200, 2 * nbytes), dtype=np.uint8)  # NaN and inf scales too
    with np.errstate(all="ignore"):
        expected = gguf.quants.dequantize(raw, qtype)
        got = decode(raw)
    assert np.isnan(expected).any()  # the random scales include float16 NaN and inf
    assert same_bits(got, expected)


@pytest.mark.parametrize("encode, decode, qtype, nbytes", CODECS)
@pytest.mark.parametrize("shape", [(256,), (3, 512), (2, 2, 768)])
def test_encoded_bytes_decode_identically_in_gguf(encode, decode, qtype, nbytes, shape):
    for seed in range(2):
        x = random_data(shape, seed)
        raw = encode(x)
        assert raw.dtype == np.uint8 and raw.shape == shape[:-1] + (shape[-1] // 256 * nbytes,)
        assert same_bits(decode(raw), gguf.quants.dequantize(raw, qtype))


def test_q4_k_each_value_takes_the_nearest_level_of_its_sub_block():
    """The last step of the reference: q = clip(round((x + dmin·m)/(d·s)), 0, 15)."""
    x = random_data((16, 256), 3)
    raw = encode_q4_k(x).reshape(-1, 144)
    d = raw[:, 0:2].copy().view(np.float16).astype(np.float64)
    dmin = raw[:, 2:4].copy().view(np.float16).astype(np.float64)
    sc, mn = kq.unpack_scales_mins_k4(raw[:, 4:16])
    grid = (d * sc)[..., None] * np.arange(16) - (dmin * mn)[..., None]  # (blocks, 8, 16)
    xs = x.reshape(-1, 8, 32).astype(np.float64)
    best = np.abs(xs[..., None] - grid[:, :, None, :]).min(axis=-1)
    err = np.abs(decode_q4_k(raw).reshape(-1, 8, 32) - xs)
    assert (err <= best + 1e-6 * np.abs(xs).max()).all()


def test_q6_k_scale_rule_and_nearest_levels():
    x = random_data((16, 256), 4)
    raw = encode_q6_k(x).reshape(-1, 210)
    sc = raw[:, 192:208].view(np.int8).astype(np.float64)
    d = raw[:, 208:210].copy().view(np.float16).astype(np.float64)
    assert (sc.min(axis=-1) == -128).all()  # the largest sub-block scale maps onto -128
    grid = (d * sc)[..., None] * (np.arange(64) - 32)
    xs = x.reshape(-1, 16, 16).astype(np.float64)
    best = np.abs(xs[..., None] - grid[:, :, None, :]).min(axis=-1)
    err = np.abs(decode_q6_k(raw).reshape(-1, 16, 16) - xs)
    assert (err <= best + 1e-6 * np.abs(xs).max()).all()


def test_k_quants_beat_q4_0_on_gaussian_weights():
    x = (np.random.default_rng(5).standard_normal((64, 1024)) * 0.02).astype(np.float32)

    def sqnr(x_hat):
        return 10 * np.log10((x.astype(np.float64) ** 2).sum() / ((x - x_hat) ** 2).sum())

    q40, q4k, q6k = (sqnr(decode_q4_0(encode_q4_0(x))), sqnr(decode_q4_k(encode_q4_k(x))),
                     sqnr(decode_q6_k(encode_q6_k(x))))
    assert q4k > q40 + 1 and q6k > q4k + 10


# ------------------------------------------------------------------ golden values

GOLDEN_SCALES = [1, 2, 3, 4, 17, 33, 50, 63]
GOLDEN_MINS = [0, 1, 2, 3, 20, 40, 63, 5]
# Packed by hand (see pack_scales_mins_k4's docstring): bytes 0-3 hold s0..s3 and the top two
# bits of s4..s7; bytes 4-7 m0..m3 and the top bits of m4..m7; bytes 8-11 the low nibbles.
GOLDEN_SCALE_BYTES = [0x41, 0x82, 0xC3, 0xC4, 0x40, 0x81, 0xC2, 0x03, 0x41, 0x81, 0xF2, 0x5F]


def golden_q4_k_block():
    """d = 1, dmin = 0.5, q = l mod 16 for every sub-block: x = s_j · (l mod 16) - 0.5 · m_j."""
    q = np.arange(32) % 16
    qs = np.tile(q | (q << 4), 4).astype(np.uint8)
    head = np.r_[[0x00, 0x3C], [0x00, 0x38]].astype(np.uint8)  # float16 1.0 and 0.5
    raw = np.concatenate([head, np.array(GOLDEN_SCALE_BYTES, np.uint8), qs])
    expected = np.array([s * q - 0.5 * m for s, m in zip(GOLDEN_SCALES, GOLDEN_MINS, strict=True)])
    return raw, expected.reshape(256).astype(np.float32)


def test_golden_q4_k_block_sub_blocks_4_to_7():
    raw, expected = golden_q4_k_block()
    assert raw.shape == (144,)
    np.testing.assert_array_equal(kq.pack_scales_mins_k4(np.array(GOLDEN_SCALES),
                                                         np.array(GOLDEN_MINS)), raw[4:16])
    np.testing.assert_array_equal(decode_q4_k(raw), expected)
    np.testing.assert_array_equal(gguf.quants.dequantize(raw, Q4_K), expected)
    assert expected[4 * 32 + 15] == 17 * 15 - 0.5 * 20  # sub-block 4, its largest level
    assert expected[7 * 32 + 1] == 63 - 2.5


def naive_scales_mins(packed):
    """A broken reading: every scale in the low 6 bits of bytes 0-7 (right for 0-3 only)."""
    return packed[..., 0:8] & 63, packed[..., 4:12] & 63


def test_an_all_zero_block_cannot_tell_a_broken_decoder():
    zero = encode_q4_k(np.zeros(256, np.float32))
    assert (zero == 0).all()
    naive, right = naive_scales_mins(zero[4:16]), kq.unpack_scales_mins_k4(zero[4:16])
    assert (np.array(naive) == np.array(right)).all()
    raw = golden_q4_k_block()[0]
    good, bad = kq.unpack_scales_mins_k4(raw[4:16]), naive_scales_mins(raw[4:16])
    np.testing.assert_array_equal(good[0][:4], bad[0][:4])
    assert (good[0][4:] != bad[0][4:]).all()  # sub-blocks 4-7 are where it breaks


def test_zeros_constant_blocks_and_huge_values():
    x = np.zeros((4, 256), np.float32)
    x[1] = 0.75  # constant positive block: min clipped to 0
    x[2, ::7] = -1e-30
    x[3, ::5] = np.float32(3e-40)  # float32 subnormals: the float16 scales underflow to 0
    for encode, decode, qtype, _ in CODECS:
        raw = encode(x)
        back = decode(raw)
        assert same_bits(back, gguf.quants.dequantize(raw, qtype))
        np.testing.assert_array_equal(back[0], 0)
        np.testing.assert_allclose(back[1], 0.75, rtol=2e-3)
    assert (encode_q6_k(np.zeros(256, np.float32)) == 0).all()
    for encode, what in [(encode_q4_k, "Q4_K super-scale d"), (encode_q6_k, "Q6_K scale d")]:
        with pytest.raises(ValueError, match=f"x holds a block whose {what} .* float16"):
            encode(np.linspace(-1e9, 1e9, 256, dtype=np.float32))


def test_gguf_itself_stores_inf_where_we_raise():
    x = np.linspace(-1e7, 1e7, 32, dtype=np.float32)
    with np.errstate(all="ignore"):
        raw = gguf.quants.quantize(x, GGMLQuantizationType.Q8_0)
        assert np.isinf(raw[:2].view(np.float16))[0]
        assert not np.isfinite(gguf.quants.dequantize(raw, GGMLQuantizationType.Q8_0)).all()


# ------------------------------------------------------------------ searches and mixes

def test_make_qkx2_quants_finds_an_exact_affine_grid():
    x = (np.arange(32) % 16 * 0.25 - 1.0).astype(np.float32)[None]  # levels of scale 0.25, min -1
    scale, the_min, levels = kq.make_qkx2_quants(x, np.ones_like(x), 15, -1.0, 0.1, 20)
    np.testing.assert_allclose([scale[0], the_min[0]], [0.25, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(levels[0], np.arange(32) % 16)


def test_make_qx_quants_zero_group_and_sign():
    x = np.zeros((2, 16), np.float32)
    x[1] = np.linspace(-3, 1, 16)
    scale, levels = kq.make_qx_quants(x, 32)
    assert scale[0] == 0 and (levels[0] == 0).all()
    assert scale[1] > 0 and levels[1][0] == 0  # -3 = most negative level -32, stored as 0


def test_use_more_bits_and_minilm_mix():
    assert [kq.use_more_bits(i, 6) for i in range(6)] == [False, False, True, False, False, True]
    assert [i for i in range(32) if kq.use_more_bits(i, 32)] == [
        0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert kq.mix_type("attn_v", 2, 6, 384, "Q4_K_M") == "Q8_0"  # Q6_K, 384 % 256 -> fallback
    assert kq.mix_type("attn_v", 0, 6, 384, "Q4_K_M") == "Q5_0"
    assert kq.mix_type("ffn_down", 5, 6, 1536, "Q4_K_M") == "Q6_K"
    assert kq.mix_type("ffn_down", 0, 6, 1536, "Q4_K_M") == "Q4_K"
    assert kq.mix_type("attn_v", 3, 6, 384, "Q4_K_S") == "Q5_1"  # Q5_K -> fallback
    assert kq.mix_type("attn_q", 3, 32, 4096, "Q4_K_S") == "Q4_K"
    assert kq.mix_type("output", 0, 6, 384) == "Q8_0"
    with pytest.raises(ValueError, match="ftype must be"):
        kq.mix_type("attn_v", 0, 6, 384, "Q5_K_M")


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: encode_q4_k(np.zeros(128)), ValueError, "x must .* 256, got length 128"),
        (lambda: encode_q6_k(np.full(256, np.nan)), ValueError, "x contains NaN"),
        (lambda: encode_q4_k(np.array(["a"] * 256)), TypeError, "x must be an array of real"),
        (lambda: decode_q4_k(np.zeros(143, np.uint8)), ValueError, "raw must .* multiple of 144"),
        (lambda: decode_q6_k(np.zeros(211, np.uint8)), ValueError, "raw must .* multiple of 210"),
        (lambda: decode_q6_k(np.zeros(210, np.float32)), TypeError, "raw must be a uint8 array"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_torch_in_torch_out_and_empty():
    x = torch.from_numpy(random_data((2, 256), 7))
    for encode, decode, _, _ in CODECS:
        raw = encode(x)
        assert isinstance(raw, torch.Tensor) and raw.dtype == torch.uint8
        assert isinstance(decode(raw), torch.Tensor)
        assert encode(np.zeros((2, 0), np.float32)).shape == (2, 0)


def test_sums_run_left_to_right_as_in_c():
    a = np.random.default_rng(8).standard_normal((500, 32)).astype(np.float32) * 1e3
    expected = a[:, 0].copy()
    for i in range(1, 32):
        expected = (expected + a[:, i]).astype(np.float32)  # one float32 add at a time
    assert np.array_equal(kq._sum(a), expected)
    assert not np.array_equal(a.sum(axis=-1), expected)  # NumPy's pairwise sum differs
