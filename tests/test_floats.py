"""quantbook.floats: format limits from the formulas, checked against ml_dtypes, NumPy and torch."""

import ml_dtypes
import numpy as np
import pytest
import torch

from quantbook.floats import (
    FORMATS,
    bit_fields,
    format_info,
    model_memory_bytes,
    representable_values,
    spacing,
    to_format,
    value_from_fields,
)

FLOATS = ["float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"]
NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
}


@pytest.mark.parametrize("name", FLOATS)
def test_float_limits_match_ml_dtypes_and_torch_finfo(name):
    info = format_info(name)
    ref = ml_dtypes.finfo(NUMPY_DTYPES[name])
    assert info["bits"] == ref.bits
    assert (info["exponent_bits"], info["mantissa_bits"]) == (ref.nexp, ref.nmant)
    assert info["max"] == float(ref.max)
    assert info["min"] == float(ref.min)
    assert info["smallest_normal"] == float(ref.smallest_normal)
    assert info["smallest_subnormal"] == float(ref.smallest_subnormal)
    assert info["eps"] == float(ref.eps)
    t = torch.finfo(getattr(torch, name))
    assert (info["bits"], info["max"], info["eps"]) == (t.bits, t.max, t.eps)
    assert info["smallest_normal"] == t.smallest_normal


def test_known_limits():
    assert format_info("float8_e4m3fn")["max"] == 448.0
    assert format_info("float8_e5m2")["max"] == 57344.0
    assert format_info("float16")["max"] == 65504.0
    assert format_info("bf16")["bias"] == 127
    assert not format_info("float8_e4m3fn")["has_inf"]


@pytest.mark.parametrize("name, dtype", [("int8", np.int8), ("int4", ml_dtypes.int4)])
def test_integer_limits_match_iinfo(name, dtype):
    info = format_info(name)
    ref = ml_dtypes.iinfo(dtype)
    assert (info["min"], info["max"], info["bits"]) == (ref.min, ref.max, ref.bits)
    np.testing.assert_array_equal(representable_values(name), np.arange(ref.min, ref.max + 1))


def test_one_bit_format():
    info = format_info("1-bit")
    assert (info["bits"], info["min"], info["max"]) == (1, -1.0, 1.0)
    assert representable_values("binary").tolist() == [-1.0, 1.0]
    assert to_format([0.3, 0.0, -2.0], "1-bit").tolist() == [1.0, -1.0, -1.0]
    assert bit_fields(-0.1, "1-bit") == ("1", "", "")


@pytest.mark.parametrize(
    "name, count", [("float8_e4m3fn", 253), ("float8_e5m2", 247), ("float16", 63487)]
)
def test_representable_values_equal_torch_table(name, count):
    values = representable_values(name)
    assert values.size == count  # 2^bits patterns less NaN/inf patterns, -0 merged with +0
    assert (np.diff(values) > 0).all()
    bits = 8 if name.startswith("float8") else 16
    patterns = np.arange(2**bits, dtype=np.uint8 if bits == 8 else np.uint16)
    patterns = torch.from_numpy(patterns if bits == 8 else patterns.view(np.int16))
    table = patterns.view(getattr(torch, name)).to(torch.float64).numpy()
    np.testing.assert_array_equal(values, np.unique(table[np.isfinite(table)]))


def test_representable_values_refuses_float32():
    with pytest.raises(ValueError, match="name must be a format of at most 16 bits"):
        representable_values("float32")


@pytest.mark.parametrize(
    "value, name, fields",
    [
        (1.0, "float16", ("0", "01111", "0000000000")),
        (-2.5, "float8_e4m3fn", ("1", "1000", "010")),
        (448.0, "float8_e4m3fn", ("0", "1111", "110")),
        (0.1, "float32", ("0", "01111011", "10011001100110011001101")),
        (1.0, "bfloat16", ("0", "01111111", "0000000")),
        (2.0**-16, "float8_e5m2", ("0", "00000", "01")),  # a subnormal: 1/4 · 2^-14
        (-1, "int8", ("1", "", "1111111")),
        (-8, "int4", ("1", "", "000")),
        (5, "int4", ("0", "", "101")),
    ],
)
def test_bit_fields(value, name, fields):
    assert bit_fields(value, name) == fields
    assert value_from_fields(*fields, name) == float(to_format(value, name))


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2"])
def test_value_from_fields_matches_the_formula_for_every_pattern(name):
    info = format_info(name)
    e, m, bias = info["exponent_bits"], info["mantissa_bits"], info["bias"]
    for pattern in range(256):
        word = format(pattern, "08b")
        s, big_e, big_m = int(word[0]), int(word[1 : 1 + e], 2), int(word[1 + e :], 2)
        value = value_from_fields(word[0], word[1 : 1 + e], word[1 + e :], name)
        if not np.isfinite(value):
            continue
        if big_e == 0:
            formula = (-1) ** s * 2.0 ** (1 - bias) * big_m / 2**m
        else:
            formula = (-1) ** s * 2.0 ** (big_e - bias) * (1 + big_m / 2**m)
        assert value == formula, word


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float16", "bfloat16"])
def test_spacing_is_the_gap_to_the_next_value(name):
    values = representable_values(name)
    positive = values[values >= 0]
    np.testing.assert_array_equal(spacing(positive[:-1], name), np.diff(positive))


def test_spacing_matches_numpy_spacing():
    rng = np.random.default_rng(0)
    for dtype, name in [(np.float32, "float32"), (np.float16, "float16")]:
        x = np.abs(rng.standard_normal(1000) * 10.0 ** rng.integers(-3, 4, 1000)).astype(dtype)
        np.testing.assert_array_equal(spacing(x, name), np.spacing(x).astype(np.float64))
    assert spacing([1.0, 0.0, 3.0], "e4m3").tolist() == [0.125, 2.0**-9, 0.25]
    assert spacing([3, -100], "int8").tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="values must be finite in float8_e4m3fn"):
        spacing([1000.0], "float8_e4m3fn")


def test_model_memory_bytes():
    assert model_memory_bytes(7_000_000_000, "float32") == 28_000_000_000
    assert model_memory_bytes(7e9, "bfloat16") == 14_000_000_000
    assert model_memory_bytes(7e9, "int4") == 3_500_000_000
    assert model_memory_bytes(7, "int4") == 4  # half a byte is still a byte
    assert model_memory_bytes(9, "1-bit") == 2
    assert model_memory_bytes(0, "float8_e4m3fn") == 0
    with pytest.raises(ValueError, match="n_params must be a non-negative whole number"):
        model_memory_bytes(-1, "int8")
    with pytest.raises(TypeError, match="n_params must be a number"):
        model_memory_bytes("7B", "int8")


def test_unknown_name_and_bad_values():
    with pytest.raises(ValueError, match="name must be one of"):
        format_info("float64")
    with pytest.raises(ValueError, match="value must be a single number"):
        bit_fields([1.0, 2.0], "float16")
    with pytest.raises(ValueError, match="values must round into \\[-8, 7\\] for int4"):
        bit_fields(8, "int4")
    with pytest.raises(ValueError, match="must be 8 bits"):
        value_from_fields("0", "111", "1", "float8_e4m3fn")
    assert set(FORMATS) == {*FLOATS, "int8", "int4", "1-bit"}


def test_float8_e4m3fn_overflow_torch_saturates_ml_dtypes_gives_nan():
    x = np.array([448.0, 464.0, 465.0, 500.0, -500.0, 1e6], np.float32)
    # torch 2.13 saturates every finite overflow to ±448 ...
    t = torch.from_numpy(x).to(torch.float8_e4m3fn).to(torch.float32).numpy()
    assert t.tolist() == [448.0, 448.0, 448.0, 448.0, -448.0, 448.0]
    # ... ml_dtypes rounds to nearest: up to 464 (half-way to the missing 480) gives 448, then NaN.
    m = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert m[:2].tolist() == [448.0, 448.0] and np.isnan(m[2:]).all()
    # quantbook's to_format follows ml_dtypes (a plain cast), documented in its docstring.
    assert np.isnan(to_format(465.0, "float8_e4m3fn"))


def test_torch_in_torch_out():
    out = spacing(torch.tensor([1.0, 2.0]), "float16")
    assert isinstance(out, torch.Tensor)
    assert out.tolist() == [2.0**-10, 2.0**-9]
