"""quantbook._blocks: granularity as a block size (the table of CONTRIBUTING.md), one per-block
statistic, and the counts every module uses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantbook import _blocks as blocks
from quantbook import affine, granularity, model, symmetric


def test_the_table():
    shape = (4, 64)
    assert blocks.block_size(shape) == (4, 64)
    assert blocks.block_size(shape, axis=0) == (1, 64)
    assert blocks.block_size(shape, axis=1) == (4, 1)
    assert blocks.block_size(shape, axis=-1) == (4, 1)
    assert blocks.block_size(shape, group_size=16) == (1, 16)
    assert [blocks.num_scales(shape, *kw) for kw in ((None, None), (0, None), (1, None),
                                                     (None, 16))] == [1, 4, 64, 16]
    x = np.random.default_rng(0).standard_normal(shape)
    for axis, group_size, scale_shape in ((None, None, ()), (0, None, (4, 1)), (1, None, (1, 64)),
                                          (None, 16, (4, 4, 1))):
        assert np.shape(blocks.reduce(np.abs(x), np.max, axis, group_size)) == scale_shape
        assert np.shape(symmetric.quantize(x, 4, axis, group_size)[1]) == scale_shape
        assert np.shape(affine.quantize_minmax(x, 4, True, axis, group_size)[1]) == scale_shape


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(0, 2),
       st.sampled_from(["per-tensor", "per-channel", "per-group"]), st.integers(0, 2**16))
def test_one_scale_per_block(dims, axis_pick, name, seed):
    """num_scales = prod(n / b) = the number of scales a quantizer makes, and every block holds
    prod(block_size) values that share one scale."""
    shape = (*dims[:-1], dims[-1] * 2)
    axis, group_size = blocks.from_granularity(name, axis_pick % len(shape), 2)
    x = np.random.default_rng(seed).standard_normal(shape)
    _, scale = symmetric.quantize(x, 8, axis, group_size)
    assert np.size(scale) == blocks.num_scales(shape, axis, group_size)
    assert granularity.num_scales(shape, name, 2, axis_pick % len(shape)) == np.size(scale)
    block = blocks.block_size(shape, axis, group_size)
    assert np.prod(block) * blocks.num_scales(shape, axis, group_size) == x.size
    assert blocks.granularity_name(axis, group_size) == name
    g = blocks.grouped(x, group_size)
    assert np.shares_memory(g, x) and np.array_equal(blocks.ungrouped(g, shape), x)


def test_reduce_matches_numpy():
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    assert blocks.reduce(x, np.max) == x.max()
    np.testing.assert_array_equal(blocks.reduce(x, np.min, axis=0)[:, 0], x.min(axis=1))
    np.testing.assert_array_equal(blocks.reduce(x, np.max, group_size=4)[..., 0],
                                  x.reshape(3, 2, 4).max(axis=-1))
    assert blocks.reduce(np.zeros((0, 4)), np.max) == 0      # empty: the initial value


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="group_size"):
        blocks.block_size((4, 10), group_size=4)
    with pytest.raises(ValueError, match="group_size"):
        blocks.block_size((), group_size=4)
    with pytest.raises(TypeError, match="group_size"):
        blocks.num_scales((4, 8), group_size=2.0)
    with pytest.raises(ValueError, match="axis"):
        blocks.block_size((4, 8), axis=2)
    with pytest.raises(TypeError, match="axis"):
        blocks.reduce(np.ones((2, 2)), np.max, axis=1.0)
    with pytest.raises(ValueError, match="not both"):
        blocks.block_size((4, 8), axis=0, group_size=4)
    with pytest.raises(ValueError, match="granularity"):
        blocks.from_granularity("per-row")
    with pytest.raises(ValueError, match="shape"):
        blocks.num_scales((4, -8), axis=0)


def test_storage_counts_the_blocks():
    """model.weight_storage_bytes: packed codes plus two bytes per block of the scheme."""
    for name, s in model.SCHEMES.items():
        if s.is_float:
            continue
        n = blocks.num_scales((1536, 384), s.axis, s.group_size)
        assert model.weight_storage_bytes((1536, 384), name) == 1536 * 384 * s.bits // 8 + 2 * n
    column_scheme = model.Scheme("int8-per-column", 8, axis=1)
    assert model.weight_storage_bytes((6, 10), column_scheme) == 60 + 2 * 10
