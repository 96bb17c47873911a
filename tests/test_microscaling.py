"""quantbook.microscaling: FP8 variants, E2M1, MXFP4 and NVFP4 against gguf 0.19 and ml_dtypes."""

import gguf
import ml_dtypes
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType

from quantbook import microscaling as mx
from quantbook.formats import decode_mxfp4, decode_nvfp4, encode_mxfp4, encode_nvfp4

MXFP4, NVFP4 = GGMLQuantizationType.MXFP4, GGMLQuantizationType.NVFP4


def same_bits(a, b):
    """Identical float32 bit patterns (NaN payloads and the sign of zero included)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def random_data(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 6, size=shape[:-1] + (1,))
    return x.astype(np.float32)


# ------------------------------------------------------------------ decoders on any bytes

@pytest.mark.parametrize("decode, qtype, nbytes", [(decode_mxfp4, MXFP4, 17),
                                                   (decode_nvfp4, NVFP4, 36)])
def test_decoders_equal_gguf_on_random_bytes(decode, qtype, nbytes):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(300, 4 * nbytes), dtype=np.uint8)
    raw[:8, 0] = [0, 1, 2, 127, 128, 253, 254, 255]  # edge scale bytes
    with np.errstate(over="ignore"):
        expected = gguf.quants.dequantize(raw, qtype)
    assert same_bits(decode(raw), expected)


def test_mxfp4_decode_equals_ml_dtypes_product():
    """Second oracle: E2M1 nibble (float4_e2m1fn) times the E8M0 scale (float8_e8m0fnu)."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=(500, 17), dtype=np.uint8)
    raw[:, 0] = rng.integers(0, 255, size=500)  # 255 is NaN in E8M0, a number in ggml
    nibbles = np.concatenate([raw[:, 1:] & 15, raw[:, 1:] >> 4], axis=1)
    e2m1 = nibbles.view(ml_dtypes.float4_e2m1fn).astype(np.float64)
    scale = raw[:, :1].view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    with np.errstate(over="ignore"):  # e = 254 with 6.0 overflows float32 in both
        expected = (e2m1 * scale).astype(np.float32)
    got = decode_mxfp4(raw)
    np.testing.assert_array_equal(got, expected)  # -0 == +0: ggml drops the sign of zero
    assert not np.signbit(got[got == 0]).any()
    # E8M0 0xFF is NaN in the spec and in ml_dtypes; ggml reads it as 2^127
    assert np.isnan(np.uint8([255]).view(ml_dtypes.float8_e8m0fnu).astype(np.float32))[0]
    halves = np.r_[255, [0x11] * 16].astype(np.uint8)  # code 1 is E2M1 0.5
    assert decode_mxfp4(halves)[0] == np.float32(2.0**127)


def test_ue4m3_table_equals_gguf_and_e4m3fn():
    codes = np.arange(256, dtype=np.uint8)
    assert same_bits(mx.UE4M3_HALF, gguf.quants.NVFP4.ue4m3_to_fp32(codes).astype(np.float32))
    e4m3 = codes[:0x7F].view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    np.testing.assert_array_equal(2 * mx.UE4M3_HALF[:0x7F], e4m3)  # half, by convention
    assert np.isnan(codes[0x7F:0x80].view(ml_dtypes.float8_e4m3fn).astype(np.float32))[0]
    assert mx.UE4M3_HALF[0x7F] == 0  # E4M3's NaN reads as scale 0 in ggml
    assert mx.UE4M3_HALF[0xFF] == 240  # top bit ignored: 0xFF reads like 0x7F would, as 480/2


def test_nvfp4_decode_equals_ml_dtypes_product():
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 256, size=(400, 36), dtype=np.uint8)
    raw[:, :4] = rng.integers(0, 0x7F, size=(400, 4))  # valid, non-NaN scale bytes
    scale = raw[:, :4].view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    groups = raw[:, 4:].reshape(400, 4, 8)
    nibbles = np.concatenate([groups & 15, groups >> 4], axis=-1)
    e2m1 = nibbles.view(ml_dtypes.float4_e2m1fn).astype(np.float64)
    expected = (scale[..., None] * e2m1).reshape(400, 64).astype(np.float32)
    np.testing.assert_array_equal(decode_nvfp4(raw), expected)


# ------------------------------------------------------------------ MXFP4 encoder

@pytest.mark.parametrize("shape", [(32,), (3, 64), (2, 3, 96), (1, 256)])
def test_mxfp4_encoder_equals_gguf(shape):
    for seed in range(4):
        x = random_data(shape, seed)
        expected = gguf.quants.quantize(x, MXFP4)
        raw = encode_mxfp4(x)
        assert raw.dtype == np.uint8 and raw.shape == expected.shape
        np.testing.assert_array_equal(raw, expected)


def tie_block():
    """amax 4 gives X = 2^(2-2) = 1: values half-way between E2M1 neighbours are exact ties."""
    halves = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], np.float32)
    x = np.zeros(32, np.float32)
    x[0] = 4.0
    x[1:8], x[8:15] = halves, -halves
    x[15:17] = [6.5, -7.0]  # beyond 6: clipped to 6
    return x


def test_mxfp4_ties_go_toward_zero_not_to_even():
    x = tie_block()
    for block in (x, x * 2.0**-20, x * 2.0**30):
        np.testing.assert_array_equal(encode_mxfp4(block), gguf.quants.quantize(block, MXFP4))
    raw = encode_mxfp4(x)
    assert raw[0] == 127  # e = floor(log2 4) - 2 + 127
    got = decode_mxfp4(raw)
    rne = x.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)  # OCP/ml_dtypes: to even
    np.testing.assert_array_equal(got[1:8], [0, 0.5, 1, 1.5, 2, 3, 4])
    np.testing.assert_array_equal(rne[1:8], [0, 1, 1, 2, 2, 4, 4])
    differ = np.flatnonzero(got[1:8] != rne[1:8])
    np.testing.assert_array_equal(x[1:8][differ], [0.75, 1.75, 3.5])
    np.testing.assert_array_equal(got[8:15], -got[1:8])
    np.testing.assert_array_equal(got[15:17], [6, -6])


def test_mxfp4_zeros_subnormals_huge():
    x = np.zeros((4, 32), np.float32)
    x[1] = np.linspace(-1, 1, 32) * np.float32(1e-37)  # amax above 2^-125
    x[2, :3] = [np.finfo(np.float32).max, -1.0, 3e38]
    x[3] = -0.0
    raw = encode_mxfp4(x)
    with np.errstate(over="ignore"):  # gguf computes 12 · 2^125 = inf on the way
        np.testing.assert_array_equal(raw, gguf.quants.quantize(x, MXFP4))
    assert (raw[0] == 0).all() and (raw[3] == 0).all()  # -0 becomes code 0, e = 0
    back = decode_mxfp4(raw)
    assert np.isfinite(back).all() and back[2, 0] == np.float32(1.5 * 2.0**127)
    with pytest.raises(ValueError, match="x holds a block .* below 2\\^-125"):
        encode_mxfp4(np.full(32, 1e-39, np.float32))


def test_mx_scale_exponent_rule_and_its_float32_quirk():
    assert mx.mx_scale_exponent(np.float32(6.0)) == 0  # 6 = 1.5 · 2^2: X = 2^0
    assert mx.mx_scale_exponent(np.float32(8.0)) == 1
    assert mx.mx_scale_exponent(np.float32(7.99)) == 0
    below = np.nextafter(np.float32(8.0), np.float32(0))  # 8 - 2^-21
    assert np.log2(below) == 3.0  # float32 log2 rounds up to the power of two
    assert mx.mx_scale_exponent(below) == 1  # one binade too high: the block loses a bit
    assert np.floor(np.log2(np.float64(below))) - 2 == 0  # the exact rule


def test_error_bounds_mxfp4():
    x = random_data((8, 256), 5)
    err = np.abs(decode_mxfp4(encode_mxfp4(x)) - x).reshape(-1, 32)
    amax = np.abs(x).reshape(-1, 32).max(axis=-1, keepdims=True)
    scale = 2.0 ** np.floor(np.log2(amax.astype(np.float64)) - 2)
    # largest gap of E2M1 below 6 is 2 (between 4 and 6): half of it, and clipping above 6 X
    assert (err <= np.maximum(scale, amax - 6 * scale) * (1 + 1e-6)).all()


# ------------------------------------------------------------------ NVFP4 encoder

def test_ue4m3_encode_equals_gguf_and_where_it_differs_from_rne():
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.uniform(0, 500, 20000), 2.0 ** rng.uniform(-12, 10, 20000),
                        [0, -1, 448, 449, 1e-9, 2**-6, 2**-7, 2**-9, 2**-10, 240, 256]])
    s = s.astype(np.float32)
    np.testing.assert_array_equal(mx.ue4m3_encode(s), gguf.quants.NVFP4.fp32_to_ue4m3(s))
    # 256 exists in E4M3 but ggml saturates every scale >= 256 to 0x7E = 448
    assert mx.ue4m3_encode(np.float32(256)) == 0x7E
    assert np.float32(256).astype(ml_dtypes.float8_e4m3fn).view(np.uint8) == 0x78
    # a tie between 1.0 and 1.125 rounds up here, to even in ml_dtypes
    tie = np.float32(1.0625)
    assert mx.UE4M3_HALF[mx.ue4m3_encode(tie)] * 2 == 1.125
    assert tie.astype(ml_dtypes.float8_e4m3fn).astype(np.float32) == 1.0


@pytest.mark.parametrize("shape", [(64,), (3, 128), (2, 2, 192)])
def test_nvfp4_round_trip_through_gguf_and_bounds(shape):
    for seed in range(3):
        x = random_data(shape, seed) * 1e-4
        raw = encode_nvfp4(x)
        assert raw.shape == shape[:-1] + (shape[-1] // 64 * 36,)
        back = gguf.quants.dequantize(raw, NVFP4)
        assert same_bits(decode_nvfp4(raw), back)
        groups = raw.reshape(-1, 36)[:, :4].reshape(-1)
        d = 2 * mx.UE4M3_HALF[groups].astype(np.float64)[:, None]
        xs = x.reshape(-1, 16).astype(np.float64)
        amax = np.abs(xs).max(axis=-1, keepdims=True)
        err = np.abs(back.reshape(-1, 16) - xs)
        assert (err <= np.maximum(d, amax - 6 * d) + 1e-12).all()


def test_nvfp4_ties_and_layout_by_hand():
    x = np.zeros(64, np.float32)
    x[:16] = np.r_[6.0, 0.25, 0.75, 1.75, 3.5, 5.0, -0.75, np.zeros(9)]  # amax 6: scale 1
    x[16] = 3.0  # group 1: scale 0.5
    raw = encode_nvfp4(x)
    assert raw[:4].tolist() == [0x38, 0x30, 0, 0]  # UE4M3 1.0 and 0.5; empty groups 0
    back = decode_nvfp4(raw)
    np.testing.assert_array_equal(back[:7], [6, 0, 0.5, 1.5, 3, 4, -0.5])  # toward zero
    assert back[16] == 3.0
    assert raw[4] == 7 | (0 << 4)  # value 0 (code 7 = 6) low, value 8 (0) high
    assert raw[12] == 7  # group 1 starts at byte 4 + 8; scale 0.5, so 3 = 6 · 0.5 is code 7


def test_nvfp4_tensor_scale_second_level():
    x = (np.random.default_rng(9).standard_normal((1, 256)) * 1e4).astype(np.float32)
    ts = mx.nvfp4_tensor_scale(x)
    two_level = decode_nvfp4(encode_nvfp4(x / ts)) * ts
    one_level = decode_nvfp4(encode_nvfp4(x))  # saturates at 6 · 448
    assert np.abs(two_level - x).max() < np.abs(one_level - x).max()


# ------------------------------------------------------------------ FP8

def test_fp8_table():
    rows = {f: mx.fp8_table(f) for f in mx.FP8_DTYPES}
    assert [rows[f]["max"] for f in mx.FP8_DTYPES] == [448, 240, 57344, 57344]
    assert [rows[f]["nan_codes"] for f in mx.FP8_DTYPES] == [2, 1, 6, 1]
    assert [rows[f]["inf_codes"] for f in mx.FP8_DTYPES] == [0, 0, 2, 0]
    assert [rows[f]["negative_zero"] for f in mx.FP8_DTYPES] == [True, False, True, False]
    assert [rows[f]["bias"] for f in mx.FP8_DTYPES] == [7, 8, 15, 16]
    assert rows["e4m3fn"]["min_subnormal"] == 2.0**-9
    assert rows["e4m3fnuz"]["min_subnormal"] == 2.0**-10
    for f, dtype in zip(mx.FP8_DTYPES, [torch.float8_e4m3fn, torch.float8_e4m3fnuz,
                                        torch.float8_e5m2, torch.float8_e5m2fnuz], strict=True):
        assert rows[f]["max"] == torch.finfo(dtype).max


def test_cast_fp8_saturating_and_not():
    x = np.array([400.0, 460.0, 470.0, 1000.0, -1000.0], np.float32)
    plain = mx.cast_fp8(x, "e4m3fn")
    np.testing.assert_array_equal(plain[:2], [384, 448])
    assert np.isnan(plain[2:]).all()  # beyond 464 (half a step above 448): NaN
    saturated = mx.cast_fp8(x, "e4m3fn", saturate=True)
    np.testing.assert_array_equal(saturated, [384, 448, 448, 448, -448])
    assert np.isinf(mx.cast_fp8(np.float32([1e6]), "e5m2"))[0]
    t = torch.from_numpy(x)
    assert isinstance(mx.cast_fp8(t, "e5m2"), torch.Tensor)


def test_fp8_per_block_beats_per_tensor_with_an_outlier():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((4, 128)) * 1e-3).astype(np.float32)
    x[0, 0] = 1e4
    tensor = mx.fp8_scaled(x, "e4m3fn")
    block = mx.fp8_scaled(x, "e4m3fn", block_size=32)
    assert np.abs(block - x)[1:].max() < np.abs(tensor - x)[1:].max()


# ------------------------------------------------------------------ input checks

@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: encode_mxfp4(np.zeros(31)), ValueError, "x must .* multiple of 32"),
        (lambda: encode_nvfp4(np.zeros(32)), ValueError, "x must .* multiple of 64, got length 32"),
        (lambda: encode_mxfp4(np.full(32, np.nan)), ValueError, "x contains NaN"),
        (lambda: encode_nvfp4(np.full(64, -np.inf)), ValueError, "x contains an infinite"),
        (lambda: encode_mxfp4(np.array(["a"] * 32)), TypeError, "x must be an array of real"),
        (lambda: decode_mxfp4(np.zeros(18, np.uint8)), ValueError, "raw must .* multiple of 17"),
        (lambda: decode_nvfp4(np.zeros(35, np.uint8)), ValueError, "raw must .* multiple of 36"),
        (lambda: decode_nvfp4(np.zeros(36, np.int8)), TypeError, "raw must be a uint8 array"),
        (lambda: mx.cast_fp8(np.ones(3), "e4m3"), ValueError, "fmt must be one of"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_torch_in_torch_out_and_empty():
    x = torch.from_numpy(random_data((2, 128), 3))
    for encode, decode in [(encode_mxfp4, decode_mxfp4), (encode_nvfp4, decode_nvfp4)]:
        raw = encode(x)
        assert isinstance(raw, torch.Tensor) and raw.dtype == torch.uint8
        back = decode(raw)
        assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
        np.testing.assert_array_equal(back.numpy(), decode(raw.numpy()))
    assert encode_mxfp4(np.zeros((3, 0), np.float32)).shape == (3, 0)
    assert decode_nvfp4(np.zeros((3, 0), np.uint8)).shape == (3, 0)
