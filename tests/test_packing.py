"""quantbook.packing: nibble orders, identity, bad input, and cross-checks with ml_dtypes/torch."""

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantbook.packing import (
    ORDERS,
    byte_bits,
    from_nibble,
    int4_range,
    pack_int4,
    packed_length,
    to_nibble,
    unpack_int4,
)

Q = [1, -2, 3, -8, 7]


# Bytes worked out by hand: 1 -> 0001, -2 -> 1110, 3 -> 0011, -8 -> 1000, 7 -> 0111.
@pytest.mark.parametrize(
    "order, expected",
    [
        ("low-first", [0xE1, 0x83, 0x07]),  # (1, -2), (3, -8), (7, pad)
        ("high-first", [0x1E, 0x38, 0x70]),
        ("planar", [0x81, 0x7E, 0x03]),  # (1, -8), (-2, 7), (3, pad)
    ],
)
def test_known_bytes(order, expected):
    packed = pack_int4(np.array(Q), order=order)
    assert packed.dtype == np.uint8
    assert packed.tolist() == expected
    assert unpack_int4(packed, 5, order=order).tolist() == Q


def test_gguf_order_is_split_halves_of_each_block():
    q = np.arange(64) % 16
    packed = pack_int4(q, signed=False, order="gguf")
    # element j and j + 16 share byte j: with q = j mod 16 that byte is j·17.
    assert packed.tolist() == [17 * j for j in range(16)] * 2
    q = np.r_[np.zeros(16, int), np.full(16, 15)]
    assert (pack_int4(q, signed=False, order="gguf") == 0xF0).all()


def test_planar_matches_optimum_quanto_rows_via_transpose():
    # quanto's PackedTensor: packed row r = row r (low nibble) | row r + ceil(R/2) (high nibble).
    w = np.arange(15).reshape(5, 3) % 16
    packed = pack_int4(w.T, signed=False, order="planar").T
    expected = np.array([w[0] | w[3] << 4, w[1] | w[4] << 4, w[2]], dtype=np.uint8)
    np.testing.assert_array_equal(packed, expected)


def test_padding_nibble_is_zero_and_trimmed():
    assert pack_int4([-1], order="low-first").tolist() == [0x0F]
    assert pack_int4([-1], order="high-first").tolist() == [0xF0]
    assert pack_int4([-1, -1, -1], order="planar").tolist() == [0xFF, 0x0F]
    assert unpack_int4(np.array([0x0F], np.uint8), 1).tolist() == [-1]


def test_nibbles_and_sign_extension_all_sixteen():
    values = np.arange(-8, 8)
    nibbles = to_nibble(values)
    assert nibbles.tolist() == [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]
    assert from_nibble(nibbles).tolist() == values.tolist()
    assert from_nibble(nibbles).dtype == np.int8


def test_to_nibble_equals_ml_dtypes_int4_storage():
    # ml_dtypes keeps one int4 per byte, as the nibble in the low 4 bits: our two's complement.
    values = np.arange(-8, 8)
    stored = values.astype(ml_dtypes.int4).view(np.uint8)
    np.testing.assert_array_equal(to_nibble(values), stored)
    as_int4 = np.arange(16, dtype=np.uint8).view(ml_dtypes.int4).astype(np.int8)
    np.testing.assert_array_equal(from_nibble(np.arange(16)), as_int4)


def test_ml_dtypes_truncates_and_wraps_where_quantbook_refuses():
    x = np.array([7.9, 8.0, 15.2, 16.0, -9.0, -2.5], dtype=np.float32)
    # A fact worth teaching: the float -> int4 cast truncates toward zero, then wraps mod 16.
    assert x.astype(ml_dtypes.int4).astype(np.int8).tolist() == [7, -8, -1, 0, 7, -2]
    with pytest.raises(ValueError, match="q must be in \\[-8, 7\\].*got 8"):
        pack_int4([8])
    with pytest.raises(TypeError, match="q must hold whole numbers.*7.9"):
        pack_int4(np.array([7.9]))


# torch's (private) CPU int4 weight packer, `_convert_weight_to_int4pack_for_cpu`, lays out a
# tile of rows by the CPU capability torch dispatches to (aten/src/ATen/native/cpu/
# int4mm_kernel.cpp, `weight_to_int4pack_kernel`, torch 2.13): the rows are cut into tiles of
# TILE rows; a full tile pairs row j with row j + TILE/2 (quantbook's "planar" order over the
# tile: GGUF's split halves for 32 rows), a partial tile (and every tile of the scalar DEFAULT
# kernel) pairs neighbouring rows low-first. Measured: an AMD EPYC that reports "AVX2" packs a
# 32-row tile as split halves; AVX512 machines (Intel Xeon, AMD EPYC Zen 4) pair its neighbours.
INT4PACK_LAYOUT = {  # capability -> (rows per tile, order of a full tile)
    "DEFAULT": (32, "low-first"),
    "AVX2": (32, "planar"),
    "AVX512": (64, "planar"),
}


def expected_int4pack(w, capability):
    """The bytes torch's CPU int4 packer gives for the (N, K) uint4 matrix w, as quantbook packs."""
    tile, full_order = INT4PACK_LAYOUT[capability]
    out = []
    for start in range(0, w.shape[0], tile):
        rows = w[start : start + tile]
        order = full_order if rows.shape[0] == tile else "low-first"
        out.append(pack_int4(rows.T, signed=False, order=order).reshape(-1))  # (K, rows/2)
    return np.concatenate(out)


def _int4pack_op():
    op = getattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu", None)
    if op is None:
        pytest.skip("this torch build has no CPU int4pack op")
    return op


@pytest.mark.parametrize("rows", [16, 32, 48, 64, 96, 128])
def test_torch_cpu_int4pack_layout_of_this_cpu_capability(rows):
    op = _int4pack_op()
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in INT4PACK_LAYOUT:
        pytest.skip(f"int4pack layout not known for CPU capability {capability!r}")
    w = np.random.default_rng(5).integers(0, 16, size=(rows, 64))
    packed = op(torch.from_numpy(w).to(torch.int32), 1).numpy()
    assert packed.shape == (rows, 32)  # K/2 bytes per row, whatever the layout
    np.testing.assert_array_equal(packed.reshape(-1), expected_int4pack(w, capability))


def test_int4pack_layouts_differ_where_the_capabilities_do():
    # The 32-row tile is where AMD AVX2 and Intel AVX-512 machines disagree (issue 10).
    w = np.random.default_rng(5).integers(0, 16, size=(32, 64))
    split = pack_int4(w.T, signed=False, order="gguf").reshape(-1)
    assert np.array_equal(expected_int4pack(w, "AVX2"), split)
    assert not np.array_equal(expected_int4pack(w, "AVX512"), split)
    assert np.array_equal(expected_int4pack(w, "AVX512"), expected_int4pack(w, "DEFAULT"))


_PROBE = """
import numpy as np, torch
w = np.random.default_rng(5).integers(0, 16, size=(128, 64))
p = torch.ops.aten._convert_weight_to_int4pack_for_cpu(torch.from_numpy(w).to(torch.int32), 1)
np.save({path!r}, p.numpy())
print(torch.backends.cpu.get_cpu_capability())
"""


@pytest.mark.parametrize("requested", ["default", "avx2", "avx512"])
def test_torch_cpu_int4pack_layout_under_each_capability(requested, tmp_path):
    # ATEN_CPU_CAPABILITY makes torch dispatch to a lower kernel than the CPU allows, so one
    # machine checks every layout it can run. torch reports the capability it actually uses.
    _int4pack_op()
    path = str(tmp_path / "packed.npy")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": requested}
    run = subprocess.run([sys.executable, "-c", _PROBE.format(path=path)], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    capability = run.stdout.split()[-1]
    if capability not in INT4PACK_LAYOUT:
        pytest.skip(f"int4pack layout not known for CPU capability {capability!r}")
    w = np.random.default_rng(5).integers(0, 16, size=(128, 64))
    np.testing.assert_array_equal(np.load(path).reshape(-1), expected_int4pack(w, capability))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("signed", [True, False])
def test_torch_in_torch_out(order, signed):
    low, high = int4_range(signed)
    q = torch.arange(64).remainder(high - low + 1).add(low).to(torch.int8).reshape(2, 32)
    packed = pack_int4(q, signed=signed, order=order)
    assert isinstance(packed, torch.Tensor) and packed.dtype == torch.uint8
    assert packed.shape == (2, 16)
    back = unpack_int4(packed, 32, signed=signed, order=order)
    assert isinstance(back, torch.Tensor)
    assert back.dtype == (torch.int8 if signed else torch.uint8)
    assert torch.equal(back.to(torch.int8), q)


@st.composite
def int4_arrays(draw):
    order = draw(st.sampled_from(ORDERS))
    signed = draw(st.booleans())
    lead = draw(st.lists(st.integers(0, 3), max_size=2))
    n = 32 * draw(st.integers(0, 3)) if order == "gguf" else draw(st.integers(0, 41))
    low, high = int4_range(signed)
    seed = draw(st.integers(0, 2**32 - 1))
    q = np.random.default_rng(seed).integers(low, high + 1, size=(*lead, n))
    return q, signed, order


@settings(max_examples=100, deadline=None)
@given(int4_arrays())
def test_pack_unpack_identity(case):
    q, signed, order = case
    n = q.shape[-1]
    packed = pack_int4(q, signed=signed, order=order)
    assert packed.dtype == np.uint8
    assert packed.shape == q.shape[:-1] + (packed_length(n),)
    back = unpack_int4(packed, n, signed=signed, order=order)
    assert back.dtype == (np.int8 if signed else np.uint8)
    np.testing.assert_array_equal(back, q)


def test_every_order_round_trips_each_byte():
    for order in ("low-first", "high-first", "planar"):
        everything = np.arange(256, dtype=np.uint8)
        q = unpack_int4(everything, 512, signed=False, order=order)
        np.testing.assert_array_equal(pack_int4(q, signed=False, order=order), everything)


def test_float_and_bool_inputs_with_whole_values_are_accepted():
    assert pack_int4(np.array([1.0, -2.0])).tolist() == [0xE1]
    assert pack_int4(np.array([True, False]), signed=False).tolist() == [0x01]


def test_empty_input_gives_empty_output():
    assert pack_int4([]).shape == (0,)
    assert pack_int4(np.zeros((3, 0), np.int8)).shape == (3, 0)
    assert unpack_int4(np.zeros((3, 0), np.uint8), 0).shape == (3, 0)
    assert pack_int4(np.zeros((2, 0)), order="gguf").shape == (2, 0)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: pack_int4([0, 9]), ValueError, "q must be in \\[-8, 7\\].*got 9 at index 1"),
        (lambda: pack_int4([[0, -9]]), ValueError, "got -9 at index \\(0, 1\\)"),
        (lambda: pack_int4([16], signed=False), ValueError, "q must be in \\[0, 15\\].*16"),
        (lambda: pack_int4([-1], signed=False), ValueError, "q must be in \\[0, 15\\]"),
        (lambda: pack_int4([0.5]), TypeError, "q must hold whole numbers"),
        (lambda: pack_int4([np.nan]), ValueError, "q contains NaN"),
        (lambda: pack_int4(["a"]), TypeError, "q must be an integer array"),
        (lambda: pack_int4(3), ValueError, "q must have at least one axis"),
        (lambda: pack_int4([1], order="middle"), ValueError, "order must be one of"),
        (lambda: pack_int4([1], signed="yes"), TypeError, "signed must be True or False"),
        (lambda: pack_int4(np.zeros(30, int), order="gguf"), ValueError, "multiple of 32"),
        (lambda: unpack_int4(np.zeros(3, np.uint8), 7), ValueError, "n=7 .* 4 bytes"),
        (lambda: unpack_int4(np.zeros(3, np.uint8), 3), ValueError, "n=3 .* packed has 3"),
        (lambda: unpack_int4(np.zeros(3, np.uint8), -1), ValueError, "n must be a non-negative"),
        (lambda: unpack_int4(np.array([256]), 2), ValueError, "packed must hold bytes"),
        (lambda: unpack_int4(np.zeros(3), 6), ValueError, "packed must hold bytes"),
        (lambda: unpack_int4(np.zeros(8, np.uint8), 16, order="gguf"), ValueError, "n must be"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_byte_bits():
    assert byte_bits(105) == "0110 1001"
    assert byte_bits(np.uint8(0xF0)) == "1111 0000"
    assert byte_bits(np.array([[0, 255]], np.uint8)).tolist() == [["0000 0000", "1111 1111"]]
    with pytest.raises(ValueError, match="b must hold bytes"):
        byte_bits(256)
