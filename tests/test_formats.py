"""quantbook.formats: GGUF Q8_0/Q4_0 blocks, byte for byte against the gguf package."""

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType

from quantbook import formats
from quantbook.formats import (
    bits_per_weight,
    decode_q4_0,
    decode_q8_0,
    encode_q4_0,
    encode_q8_0,
    round_half_away_from_zero,
    round_half_up_offset,
)
from quantbook.packing import pack_int4

Q8_0, Q4_0 = GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0
CODECS = [(encode_q8_0, decode_q8_0, Q8_0), (encode_q4_0, decode_q4_0, Q4_0)]
SHAPES = [(32,), (3, 64), (2, 3, 96), (1, 256)]


def random_data(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 4, size=shape[:-1] + (1,))
    return x.astype(np.float32)


@pytest.mark.parametrize("encode, decode, qtype", CODECS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bytes_equal_gguf_on_random_data(encode, decode, qtype, shape):
    for seed in range(3):
        x = random_data(shape, seed)
        raw = encode(x)
        expected = gguf.quants.quantize(x, qtype)
        assert raw.dtype == np.uint8 and raw.shape == expected.shape
        np.testing.assert_array_equal(raw, expected)
        np.testing.assert_array_equal(decode(raw), gguf.quants.dequantize(expected, qtype))


def tie_blocks():
    """Blocks whose values sit exactly half-way between two integer steps after scaling."""
    # Q8_0: max|x| = 127 gives d = 1, so x·(1/d) = x and the halves are exact ties.
    q8 = np.r_[127.0, np.arange(-15.5, 15.5, 1.0)].astype(np.float32)
    # Q4_0: the extreme -8 gives d = 1, so x·(1/d) + 8.5 has fraction 0 at the half steps.
    q4 = np.r_[-8.0, np.arange(-7.5, 7.6, 0.5)].astype(np.float32)
    # Scaled copies (powers of two keep the ties exact) and a negative-max variant.
    return q8, q4, np.stack([q8 * 2.0**-6, -q8 * 4.0]), np.stack([q4 * 2.0**-3, -q4 * 2.0])


def test_exact_ties_match_gguf():
    q8, q4, q8s, q4s = tie_blocks()
    for x in (q8, q8s):
        np.testing.assert_array_equal(encode_q8_0(x), gguf.quants.quantize(x, Q8_0))
    for x in (q4, q4s):
        np.testing.assert_array_equal(encode_q4_0(x), gguf.quants.quantize(x, Q4_0))


def test_q8_0_rounds_half_away_from_zero():
    q8 = tie_blocks()[0]
    q = encode_q8_0(q8)[2:].view(np.int8)
    assert q[0] == 127
    halves = q8[1:]
    expected = np.sign(halves) * np.floor(np.abs(halves) + 0.5)  # 2.5 -> 3, -2.5 -> -3
    np.testing.assert_array_equal(q[1:], expected)
    assert (q[1:] != np.rint(halves)).sum() == 16  # half-to-even differs on half the ties


def test_q4_0_rounds_half_up():
    q4 = tie_blocks()[1]
    q = decode_q4_0(encode_q4_0(q4))  # d = 1, so the decoded values are the integers q
    expected = np.minimum(np.floor(q4[1:] + 0.5), 7)  # -7.5 -> -7, 2.5 -> 3, 7.5 -> 8 -> 7
    np.testing.assert_array_equal(q[1:], expected)
    assert q[0] == -8


def test_q4_0_block_layout_by_hand():
    x = np.arange(-16, 16, dtype=np.float32)  # largest magnitude -16: d = 2, q = x / 2
    raw = encode_q4_0(x)
    assert raw.shape == (18,)
    assert raw[:2].tolist() == list(np.float16(2.0).tobytes())  # little-endian float16 scale
    nibbles = np.clip(np.floor(x / 2 + 0.5) + 8, 0, 15).astype(int)  # half up, +8, 16 -> 15
    np.testing.assert_array_equal(raw[2:], pack_int4(nibbles, signed=False, order="gguf"))
    assert raw[2] == nibbles[0] | nibbles[16] << 4


def test_q8_0_block_layout_by_hand():
    x = np.linspace(-1, 1, 32, dtype=np.float32)
    raw = encode_q8_0(x)
    d = np.float32(1) / np.float32(127)
    assert raw[:2].tolist() == list(np.float16(d).tobytes())
    q = raw[2:].view(np.int8)
    assert q[0] == -127 and q[-1] == 127
    np.testing.assert_array_equal(decode_q8_0(raw), np.float32(np.float16(d)) * q)


def test_zero_block_and_large_values():
    x = np.zeros((2, 32), np.float32)
    x[1] = 60000.0
    for encode, decode, qtype in CODECS:
        raw = encode(x)
        if qtype == Q4_0:
            assert (raw[0, 2:] == 0x88).all()  # q = 0 is stored as nibble 8 (value + 8)
        np.testing.assert_array_equal(raw, gguf.quants.quantize(x, qtype))
        assert raw[0, :2].view(np.float16)[0] == 0  # d = 0 (Q4_0: -0.0, as m / -8 gives)
        np.testing.assert_array_equal(decode(raw)[0], 0.0)


@pytest.mark.parametrize("encode, decode, qtype", CODECS)
def test_error_at_most_one_step(encode, decode, qtype):
    x = random_data((4, 128), 11)
    x_hat = decode(encode(x))
    blocks = np.abs(x).reshape(4, -1, 32).max(axis=-1, keepdims=True)
    step = blocks / (127 if qtype == Q8_0 else 8)
    err = np.abs(x - x_hat).reshape(4, -1, 32)
    # half a step from rounding (a whole one where Q4_0 clips +8 to +7), plus float16 scale error
    limit = (0.5 if qtype == Q8_0 else 1.0) * step + 1e-3 * blocks
    assert (err <= limit).all()


def test_rounding_functions():
    v = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997], np.float32)
    assert round_half_away_from_zero(v).tolist() == [1, 2, 3, -1, -3, 0, 0]
    assert np.floor(np.float32(0.49999997) + np.float32(0.5)) == 1  # why not floor(v + 1/2)
    assert round_half_up_offset(np.float32([-0.5, 0.5, -7.5, 7.4])).tolist() == [8, 9, 1, 15]


def test_bits_per_weight():
    assert bits_per_weight("q8_0") == 8.5
    assert bits_per_weight("q4_0") == 4.5
    x = np.zeros(4096, np.float32)
    assert encode_q4_0(x).nbytes * 8 / x.size == 4.5
    assert encode_q8_0(x).nbytes * 8 / x.size == 8.5
    with pytest.raises(ValueError, match="fmt must be one of"):
        bits_per_weight("q5_0")


def test_the_table_matches_gguf_sizes_and_round_trips():
    expected = {"Q8_0": 8.5, "Q4_0": 4.5, "MXFP4": 4.25, "NVFP4": 4.5, "Q4_K": 4.5, "Q6_K": 6.5625,
                "IQ4_NL": 4.5}
    rows = {f.name: f for f in formats.table()}
    for name, bpw in expected.items():
        record = rows[name]
        qtype = GGMLQuantizationType[name]
        assert (record.block_size, record.block_bytes) == gguf.GGML_QUANT_SIZES[qtype]
        assert record.bits_per_weight == bpw == bits_per_weight(name.lower())
        x = random_data((2, 512), 1)
        raw = formats.encode(x, name)
        assert raw.shape == (2, 512 // record.block_size * record.block_bytes)
        back = gguf.quants.dequantize(raw, qtype)
        np.testing.assert_array_equal(formats.round_trip(x, name), back)


def test_register_a_format():
    record = formats.BlockFormat("TEST_F16", 1, 2, None, lambda raw: raw, "float16")
    try:
        assert formats.register(record) is record
        assert formats.get_format("test_f16").bits_per_weight == 16
        with pytest.raises(ValueError, match="has no encoder"):
            formats.encode(np.zeros(4), "TEST_F16")
    finally:
        formats.FORMATS.pop("test_f16")
    with pytest.raises(TypeError, match="fmt must be a BlockFormat"):
        formats.register("Q4_0")


@pytest.mark.parametrize("encode, limit", [(encode_q8_0, 1e7), (encode_q4_0, 6e5)])
def test_scale_overflowing_float16_raises(encode, limit):
    x = np.zeros((2, 32), np.float32)
    x[1, 3] = limit  # gguf stores an inf scale here and decodes the block to inf/NaN
    with pytest.raises(ValueError, match="x holds a block whose Q._0 scale .* float16"):
        encode(x)
    encode(x / 20)  # a twentieth fits


def test_torch_in_torch_out_and_empty():
    x = torch.from_numpy(random_data((2, 64), 3))
    raw = encode_q4_0(x)
    assert isinstance(raw, torch.Tensor) and raw.dtype == torch.uint8
    assert isinstance(decode_q4_0(raw), torch.Tensor)
    assert encode_q8_0(np.zeros((3, 0), np.float32)).shape == (3, 0)
    assert decode_q8_0(np.zeros((3, 0), np.uint8)).shape == (3, 0)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: encode_q8_0(np.zeros(31)), ValueError, "x must have a last axis.*multiple of 32"),
        (lambda: encode_q4_0(np.ones((2, 40))), ValueError, "x must .* got length 40"),
        (lambda: encode_q4_0(1.0), ValueError, "x must .* got a scalar"),
        (lambda: encode_q8_0(np.full(32, np.nan)), ValueError, "x contains NaN"),
        (lambda: encode_q4_0(np.full(32, np.inf)), ValueError, "x contains an infinite"),
        (lambda: encode_q8_0(np.array(["a"] * 32)), TypeError, "x must be an array of real"),
        (lambda: decode_q8_0(np.zeros(33, np.uint8)), ValueError, "raw must .* multiple of 34"),
        (lambda: decode_q4_0(np.zeros(17, np.uint8)), ValueError, "raw must .* multiple of 18"),
        (lambda: decode_q4_0(np.zeros(18)), TypeError, "raw must be a uint8 array"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize("decode, qtype, nbytes",
                         [(decode_q8_0, Q8_0, 34), (decode_q4_0, Q4_0, 18)])
def test_decoders_equal_gguf_on_random_bytes(decode, qtype, nbytes):
    raw = np.random.default_rng(7).integers(0, 256, size=(300, 4 * nbytes), dtype=np.uint8)
    with np.errstate(all="ignore"):
        expected = gguf.quants.dequantize(raw, qtype)
        got = decode(raw)
    assert np.isnan(expected).any()  # float16 NaN and inf scales are among the random bytes
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
