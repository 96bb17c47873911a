"""Hostile input for every public function of the package's array modules (issue 10).

Each public function has one row in ``TABLE``: how to call it with valid arguments built around
one *hostile* array (the argument named in the row), which names its errors may mention, the
shape its result must have and, where one is simple, a NumPy float64 reference. Three property
tests drive every row:

* an array of any kind (NumPy, torch, list), dtype (bfloat16, float16, big-endian float64, bool,
  complex, strings, objects, small and wide integers), shape (0-d, empty, odd) and values (NaN,
  inf, huge, subnormal) must give a ``ValueError``/``TypeError`` whose message names an argument,
  or a result whose kind and shape follow the input, with no NaN, equal to the reference;
* every scalar argument (bit widths, flags, sizes, names) replaced by a hostile scalar must give
  the same kind of error naming that argument, or a valid result; flags accept only booleans;
* a public function missing from ``TABLE`` fails :func:`test_every_public_function_is_driven`.

To cover a new public function, add its row. Then one regression test per reproducer of issue 10.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantbook import (
    affine,
    embeddings,
    floats,
    granularity,
    matmul,
    metrics,
    model,
    packing,
    retrieval,
    symmetric,
)
from quantbook._arrays import like

MODULES = (affine, symmetric, granularity, metrics, matmul, packing, floats, embeddings,
           retrieval, model)
# QB_HOSTILE_EXAMPLES=500 pytest tests/test_hostile.py hunts harder (minutes); 12 keep it quick.
SETTINGS = settings(max_examples=int(os.environ.get("QB_HOSTILE_EXAMPLES", "12")),
                    deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _shape(x) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(np.asarray(x, dtype=object))


def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def _last(x) -> int:
    s = _shape(x)
    return s[-1] if s else 1


def _same(x):  # the result has the hostile argument's shape
    return _shape(x)


@dataclasses.dataclass
class Row:
    """How to drive one public function.

    ``args(x)`` gives the keyword arguments with ``x`` (the hostile value) in place of ``arg``;
    ``names`` are what an error message may name; ``shape(x)`` the result's shape (None: not
    checked); ``ref(x64, result, x)`` asserts the result against a float64 computation; ``nan_ok``
    for functions whose documented result may hold NaN (float formats keep NaN).
    """

    args: Callable
    arg: str | None
    names: tuple = ()
    shape: Callable | None = None
    ref: Callable | None = None
    nan_ok: bool = False
    errors: tuple = (ValueError, TypeError)
    valid: object = None  # a valid value for ``arg`` (default: floats in [-1, 1], shape (2, 32))
    tensor_out: bool = True  # False where a result cannot be a tensor (strings)


FLOATS = np.linspace(-1.0, 1.0, 64).reshape(2, 32).astype(np.float32)
CODES = (np.arange(64).reshape(2, 32) % 16 - 8).astype(np.int8)  # int4 values, as int8
BYTES = (CODES + 8).astype(np.uint8)
POSITIVE = np.abs(FLOATS) / 4 + 0.125  # scales and multipliers in (0, 1)
RANGES = np.stack([-np.ones(32), np.ones(32)])


def _ref_affine(x64, q, x=None):
    s = 0.1
    lo, hi = -128 * s, 127 * s
    err = np.abs(np.asarray(q, np.float64) * s - np.clip(x64, lo, hi))
    assert (err <= s / 2 * (1 + 1e-5)).all()


def _ref_symmetric(x64, out, x=None):
    q, scale = out
    err = np.abs(np.asarray(q, np.float64) * np.asarray(scale, np.float64) - x64)
    assert (err <= np.asarray(scale, np.float64) / 2 * (1 + 1e-5) + 1e-300).all()


def _ref_sign(x64, bits, x=None):
    np.testing.assert_array_equal(np.asarray(bits), x64 > 0)


def _ref_to_float16(x64, y, x=None):
    np.testing.assert_array_equal(np.asarray(y), x64.astype(np.float16).astype(np.float64))


def _ref_mse(x64, v, x=None):
    with np.errstate(over="ignore"):
        assert v == pytest.approx(float(np.mean(x64**2)), rel=1e-12) or v == np.mean(x64**2)


def _ref_max_abs(x64, v, x=None):
    assert v == float(np.max(np.abs(x64)))


def _ref_crest(x64, v, x=None):  # peak / RMS, from values divided by the peak
    m = np.max(np.abs(x64))
    assert v == pytest.approx(1 / np.sqrt(np.mean((x64 / m) ** 2)), rel=1e-12)


def _ref_kurtosis(x64, v, x=None):  # from deviations divided by their largest magnitude
    m = np.max(np.abs(x64))
    d = x64 / m - np.mean(x64 / m)
    e = d / np.max(np.abs(d))
    assert v == pytest.approx(np.mean(e**4) / np.mean(e**2) ** 2 - 3, rel=1e-9, abs=1e-12)


def _ref_sqnr(x64, v, x=None):  # x_hat = 0: signal and noise are equal
    assert v == (math.inf if not x64.any() else 0.0)


def _ref_popcount(x64, counts, x):  # the bits of each value's two's-complement pattern
    a = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype.kind not in "iu":
        return
    mask = (1 << (8 * a.itemsize)) - 1
    expected = [bin(int(v) & mask).count("1") for v in a.reshape(-1).tolist()]
    np.testing.assert_array_equal(np.asarray(counts).reshape(-1), expected)


def _ref_top_k(x64, out, x=None):
    ids, _ = out
    for row, got in zip(x64, np.asarray(ids), strict=True):
        expected = sorted(range(len(row)), key=lambda i: (-row[i], i))[: len(got)]
        assert list(got) == expected


TABLE: dict[Callable, Row] = {
    # --- affine --------------------------------------------------------------------------------
    affine.qrange: Row(lambda x: {"bits": 8, "signed": True}, None),
    affine.qparams: Row(lambda x: {"x_min": x, "x_max": 1.0}, "x_min", ("x_min", "x_max")),
    affine.quantize: Row(lambda x: {"x": x, "scale": 0.1, "zero_point": 0}, "x", shape=_same,
                         ref=_ref_affine),
    affine.dequantize: Row(lambda x: {"q": x, "scale": 0.1, "zero_point": 0}, "q", shape=_same,
        valid=CODES),
    affine.quantize_minmax: Row(lambda x: {"x": x}, "x", ("x", "scale"), shape=_same),
    affine.fake_quantize: Row(lambda x: {"x": x, "scale": 0.1, "zero_point": 0}, "x",
                              shape=_same),
    affine.representable_range: Row(lambda x: {"scale": x, "zero_point": 0}, "scale",
        valid=POSITIVE),
    affine.clipping_error: Row(lambda x: {"x": x, "scale": 0.1, "zero_point": 0}, "x",
                               shape=_same),
    affine.rounding_error: Row(lambda x: {"x": x, "scale": 0.1, "zero_point": 0}, "x",
                               shape=_same),
    affine.quantization_error: Row(lambda x: {"x": x, "scale": 0.1, "zero_point": 0}, "x",
                                   shape=_same),
    affine.quantize_with_scale_factor: Row(
        lambda x: {"x": x, "scale_factor": 10.0, "zero_point": 0}, "x", shape=_same),
    affine.dequantize_with_scale_factor: Row(
        lambda x: {"q": x, "scale_factor": 10.0, "zero_point": 0}, "q", shape=_same, valid=CODES),
    affine.zero_point_truncated: Row(lambda x: {"x_min": -1.0, "x_max": x}, "x_max",
                                     ("x_min", "x_max")),
    # --- symmetric -----------------------------------------------------------------------------
    symmetric.qrange: Row(lambda x: {"bits": 8, "restricted": True}, None),
    symmetric.absmax_scale: Row(lambda x: {"x": x}, "x"),
    symmetric.quantize: Row(lambda x: {"x": x}, "x", shape=_same, ref=_ref_symmetric),
    symmetric.quantize_full_range: Row(lambda x: {"x": x}, "x", shape=_same),
    symmetric.dequantize: Row(lambda x: {"q": x, "scale": 0.5}, "q", shape=_same, valid=CODES),
    symmetric.fake_quantize: Row(lambda x: {"x": x, "bits": 4}, "x", shape=_same),
    # --- granularity ---------------------------------------------------------------------------
    granularity.fake_quantize: Row(
        lambda x: {"x": x, "bits": 4, "granularity": "per-group", "group_size": 1}, "x",
        ("x", "group_size", "axis"), shape=_same),
    granularity.granularity_errors: Row(lambda x: {"x": x, "group_size": 1}, "x",
                                        ("x", "group_size", "axis")),
    granularity.num_scales: Row(lambda x: {"shape": (4, 64), "granularity": "per-group",
                                           "group_size": 32, "axis": 0}, None),
    granularity.effective_bits: Row(lambda x: {"bits": 4, "group_size": 32}, None),
    granularity.minmax_range: Row(lambda x: {"x": x}, "x"),
    granularity.absmax_range: Row(lambda x: {"x": x}, "x"),
    granularity.percentile_range: Row(lambda x: {"x": x, "p": 99.0}, "x"),
    granularity.fake_quantize_range: Row(lambda x: {"x": x, "x_min": -1.0, "x_max": 1.0}, "x",
                                         shape=_same),
    granularity.range_errors: Row(lambda x: {"x": x, "x_min": -1.0, "x_max": 1.0}, "x"),
    granularity.mse_optimal_range: Row(lambda x: {"x": x, "n_grid": 5}, "x"),
    # --- metrics -------------------------------------------------------------------------------
    metrics.mse: Row(lambda x: {"x": x, "x_hat": np.zeros(_shape(x))}, "x", ref=_ref_mse,
                     nan_ok=True),
    metrics.max_abs_error: Row(lambda x: {"x": x, "x_hat": np.zeros(_shape(x))}, "x",
                               ref=_ref_max_abs),
    metrics.sqnr_db: Row(lambda x: {"x": x, "x_hat": np.zeros(_shape(x))}, "x",
                         ref=_ref_sqnr),
    metrics.crest_factor: Row(lambda x: {"x": x}, "x", ref=_ref_crest),
    metrics.excess_kurtosis: Row(lambda x: {"x": x}, "x", ref=_ref_kurtosis),
    # --- matmul --------------------------------------------------------------------------------
    matmul.integer_matmul: Row(lambda x: {"qa": x, "qb": np.ones((_last(x), 2), np.int8)}, "qa",
                               ("qa", "qb", "int32"), errors=(ValueError, TypeError,
                                                              OverflowError), valid=CODES),
    matmul.integer_matmul_expanded: Row(
        lambda x: {"qa": x, "qb": np.ones((_last(x), 2), np.int8)}, "qa", ("qa", "qb", "int32"),
        errors=(ValueError, TypeError, OverflowError), valid=CODES),
    matmul.requantization_multiplier: Row(
        lambda x: {"scale_a": x, "scale_b": 0.5, "scale_out": 2.0}, "scale_a", valid=POSITIVE),
    matmul.quantize_multiplier: Row(lambda x: {"multiplier": x}, "multiplier", valid=POSITIVE),
    matmul.saturating_rounding_doubling_high_mul: Row(lambda x: {"a": x, "b": 2**30}, "a",
                                                      shape=_same, valid=CODES),
    matmul.rounding_divide_by_pot: Row(lambda x: {"x": x, "exponent": 3}, "x", shape=_same,
        valid=CODES),
    matmul.fixed_point_multiply: Row(lambda x: {"acc": x, "m0": 2**30, "shift": 2}, "acc",
                                     ("acc", " a "), shape=_same, valid=CODES),
    matmul.requantize: Row(lambda x: {"acc": x, "multiplier": 0.25, "zero_point_out": 0}, "acc",
                           shape=_same, valid=CODES),
    matmul.requantize_float: Row(
        lambda x: {"acc": x, "multiplier": 0.25, "zero_point_out": 0}, "acc", shape=_same,
        valid=CODES),
    matmul.quantize_bias: Row(lambda x: {"bias": x, "scale_a": 0.1, "scale_b": 0.1}, "bias",
                              ("bias", "int32"), shape=_same,
                              errors=(ValueError, TypeError, OverflowError)),
    matmul.quantized_linear: Row(
        lambda x: {"qx": x, "scale_x": 0.1, "zero_point_x": 0,
                   "qw": np.ones((3, _last(x)), np.int8), "scale_w": 0.1, "zero_point_w": 0,
                   "scale_out": 0.5, "zero_point_out": 0}, "qx", ("qx", "qa", "qb", "int32"),
        errors=(ValueError, TypeError, OverflowError), valid=CODES),
    # --- packing -------------------------------------------------------------------------------
    packing.int4_range: Row(lambda x: {"signed": True}, None),
    packing.packed_length: Row(lambda x: {"n": 5}, None),
    packing.nibble_owners: Row(lambda x: {"n": 6, "order": "high-first"}, None),
    packing.to_nibble: Row(lambda x: {"q": x}, "q", shape=_same, valid=CODES),
    packing.from_nibble: Row(lambda x: {"nibble": x}, "nibble", shape=_same, valid=BYTES),
    packing.byte_bits: Row(lambda x: {"b": x}, "b", valid=BYTES, tensor_out=False),
    packing.pack_int4: Row(lambda x: {"q": x, "signed": True, "order": "low-first"}, "q",
                           shape=lambda x: _shape(x)[:-1] + ((_last(x) + 1) // 2,),
        valid=CODES),
    packing.unpack_int4: Row(lambda x: {"packed": x, "n": 2 * _last(x)}, "packed",
                             ("packed", "n="), valid=BYTES,
                             shape=lambda x: _shape(x)[:-1] + (2 * _last(x),)),
    # --- floats --------------------------------------------------------------------------------
    floats.format_name: Row(lambda x: {"name": "bf16"}, None),
    floats.exponent_bias: Row(lambda x: {"exponent_bits": 5}, None),
    floats.largest_finite: Row(lambda x: {"exponent_bits": 4, "mantissa_bits": 3,
                                          "has_inf": False}, None),
    floats.format_info: Row(lambda x: {"name": "e4m3"}, None),
    floats.to_format: Row(lambda x: {"values": x, "name": "float16"}, "values", shape=_same,
                          ref=_ref_to_float16, nan_ok=True),
    floats.bit_fields: Row(lambda x: {"value": x, "name": "bfloat16"}, "value"),
    floats.value_from_fields: Row(lambda x: {"sign": "0", "exponent": "0111",
                                             "mantissa": "000", "name": "e4m3"}, None),
    floats.representable_values: Row(lambda x: {"name": "e5m2"}, None),
    floats.spacing: Row(lambda x: {"values": x, "name": "float16"}, "values", shape=_same),
    floats.model_memory_bytes: Row(lambda x: {"n_params": 7_000_000, "name": "int4"}, None),
    # --- embeddings ----------------------------------------------------------------------------
    embeddings.check_precision: Row(lambda x: {"precision": "int8"}, None),
    embeddings.check_ranges: Row(lambda x: {"ranges": x, "dim": _last(x)}, "ranges", valid=RANGES),
    embeddings.calibration_ranges: Row(lambda x: {"embeddings": x}, "embeddings"),
    embeddings.calibrated_steps: Row(lambda x: {"ranges": x}, "ranges", valid=RANGES),
    embeddings.quantize_int8_fixed: Row(lambda x: {"x": x}, "x", shape=_same),
    embeddings.quantize_uint8_fixed: Row(lambda x: {"x": x}, "x", shape=_same),
    embeddings.bucket_calibrated: Row(
        lambda x: {"x": x, "ranges": np.stack([-np.ones(_last(x)), np.ones(_last(x))])}, "x",
        ("x", "ranges"), shape=_same),
    embeddings.sign_bits: Row(lambda x: {"x": x}, "x", shape=_same, ref=_ref_sign),
    embeddings.pack_sign_bits: Row(lambda x: {"x": x}, "x",
                                   shape=lambda x: _shape(x)[:-1] + ((_last(x) + 7) // 8,)),
    embeddings.quantize_embeddings: Row(lambda x: {"x": x, "precision": "int8"}, "x",
                                        shape=_same),
    embeddings.unpack_sign_bits: Row(lambda x: {"packed": x}, "packed", ("packed", "dim"),
        valid=BYTES),
    embeddings.dequantize_embeddings: Row(lambda x: {"q": x, "precision": "int8"}, "q",
                                          shape=_same, valid=CODES),
    embeddings.popcount_table: Row(lambda x: {"a": x}, "a", shape=_same, valid=CODES),
    embeddings.popcount: Row(lambda x: {"a": x}, "a", shape=_same, ref=_ref_popcount, valid=CODES),
    embeddings.as_packed_bytes: Row(lambda x: {"codes": x, "name": "codes"}, "codes",
                                    shape=_same, valid=BYTES),
    embeddings.as_words: Row(lambda x: {"packed": x}, "packed", valid=BYTES),
    embeddings.hamming_distance: Row(lambda x: {"a": x, "b": np.zeros((3, _last(x)), np.uint8)},
                                     "a", ("a", "b"), valid=BYTES),
    # --- retrieval -----------------------------------------------------------------------------
    retrieval.top_k: Row(lambda x: {"scores": x, "k": 2}, "scores", ref=_ref_top_k),
    retrieval.integer_dot: Row(lambda x: {"a": x, "b": np.ones((2, _last(x)), np.int8)}, "a",
                               ("a", "b", "int32"), valid=CODES),
    retrieval.dot_scores: Row(lambda x: {"queries": x, "corpus": np.ones((3, _last(x)))},
                              "queries", ("queries", "corpus")),
    retrieval.search_dot: Row(lambda x: {"queries": x, "corpus": np.ones((3, _last(x))),
                                         "k": 2}, "queries", ("queries", "corpus")),
    retrieval.search_hamming: Row(
        lambda x: {"query_codes": x, "corpus_codes": np.zeros((3, _last(x)), np.uint8),
                   "k": 2}, "query_codes", ("query_codes", " a ", "a must", "a and b"),
        valid=BYTES),
    retrieval.search_binary_rescore: Row(
        lambda x: {"queries": x, "corpus_codes": np.zeros((3, (_last(x) + 7) // 8), np.uint8),
                   "k": 2, "multiplier": 2}, "queries", ("queries", "corpus_codes")),
    retrieval.recall_at_k: Row(lambda x: {"found_ids": x, "true_ids": np.arange(
        2 * max(1, _last(x))).reshape(2, -1)}, "found_ids", ("found_ids", "true_ids"),
        valid=CODES.astype(np.int64) + 8),
    retrieval.recall_standard_error: Row(lambda x: {"found_ids": x, "true_ids": np.arange(
        2 * max(1, _last(x))).reshape(2, -1), "n_boot": 50}, "found_ids",
        ("found_ids", "true_ids"), valid=CODES.astype(np.int64) + 8),
    # --- model ---------------------------------------------------------------------------------
    model.get_scheme: Row(lambda x: {"scheme": "int4-group-32"}, None),
    model.linear_layers: Row(lambda x: {"model": _tiny_model()}, None),
    model.quantize_weight: Row(lambda x: {"weight": x, "scheme": "int8-per-channel"}, "weight",
                               ("weight", "x has")),
    model.fake_quantize_weight: Row(lambda x: {"weight": x, "scheme": "int8-per-tensor"},
                                    "weight", ("weight", "x has"), shape=_same),
    model.quantize_model: Row(lambda x: {"model": _tiny_model(), "scheme": "int4-group-32"},
                              None),
    model.weight_storage_bytes: Row(lambda x: {"shape": (4, 64), "scheme": "int4-group-32"},
                                    None),
    model.linear_weight_bytes: Row(lambda x: {"model": _tiny_model(), "scheme": "int8-per-tensor"},
                                   None),
    model.model_size_bytes: Row(lambda x: {"model": _tiny_model(), "scheme": "int8-per-tensor"},
                                None),
}

IDS = {f: f"{f.__module__.rsplit('.', 1)[1]}.{f.__name__}" for f in TABLE}


def _public_functions() -> set:
    found = set()
    for module in MODULES:
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and \
                    not name.startswith("_"):
                found.add(obj)
    return found


def test_every_public_function_is_driven():
    missing = sorted(f"{f.__module__}.{f.__name__}" for f in _public_functions() - set(TABLE))
    assert not missing, f"add a row to TABLE in tests/test_hostile.py for: {missing}"


# --- hostile arrays ----------------------------------------------------------------------------

DTYPES = ("float64", ">f8", "float32", "float16", "bfloat16", "int8", "uint8", "int64",
          "uint64", "bool", "complex128", "str", "object")
SHAPES = ((), (0,), (1,), (3,), (2, 3), (2, 8), (2, 0), (1, 1, 5))
SPECIALS = ("plain", "nan", "inf", "-inf", "huge", "subnormal", "zeros", "ties")
KINDS = ("numpy", "torch", "list")
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16, "int8": torch.int8, "uint8": torch.uint8,
                "int64": torch.int64, "bool": torch.bool, "complex128": torch.complex128}


def _values(shape, special, seed, magnitude) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(shape) * magnitude
    flat = v.reshape(-1)
    if flat.size:
        fill = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300, "subnormal": 5e-324}
        if special in fill:
            flat[0] = fill[special]
        elif special == "zeros":
            flat[:] = 0
        elif special == "ties":
            flat[:] = np.round(flat * 10) / 10 + 0.05  # x / 0.1 lands on a half
    return v


def _cast(v: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        if dtype == "bfloat16":
            return v.astype(ml_dtypes.bfloat16)
        if dtype == "complex128":
            return v + 1j
        if dtype == "str":
            return v.astype(str)
        if dtype == "object":
            return v.astype(object)
        if dtype == "bool":
            return v > 0
        if np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            w = np.where(np.isfinite(v), v, 0)
            low, high = max(info.min, -(2.0**62)), min(info.max, 2.0**62)
            return np.clip(np.rint(w), low, high).astype(dtype)
        return v.astype(dtype)


@st.composite
def hostile_arrays(draw):
    dtype, shape = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(SHAPES))
    special, kind = draw(st.sampled_from(SPECIALS)), draw(st.sampled_from(KINDS))
    seed, magnitude = draw(st.integers(0, 2**16)), draw(st.sampled_from((1.0, 3.0, 100.0)))
    a = np.array(_cast(_values(shape, special, seed, magnitude), dtype))  # 0-d stays an array
    if kind == "torch" and dtype in TORCH_DTYPES:
        if dtype == "bfloat16":
            return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
        return torch.from_numpy(a).to(TORCH_DTYPES[dtype])
    if kind == "list" and dtype not in ("bfloat16", "object"):
        return a.tolist()
    return a


def _float64(x) -> np.ndarray | None:
    """The hostile value as float64, when that is exact (else None: no reference)."""
    if isinstance(x, torch.Tensor):
        x = x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
    a = np.asarray(x)
    if a.dtype.kind == "V":
        a = a.astype(np.float32)
    if a.dtype.kind not in "biuf" or (a.dtype.kind in "iu" and a.dtype.itemsize > 4):
        return None
    return a.astype(np.float64)


def _arrays_in(result):
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (tuple, list)):
        for r in result:
            yield from _arrays_in(r)
    elif isinstance(result, (np.ndarray, torch.Tensor)):
        yield result


def _check_error(error: Exception, row: Row, name: str):
    assert isinstance(error, row.errors), f"{type(error).__name__}: {error}"
    message = str(error)
    names = row.names or (row.arg,)
    assert any(n in message for n in names), f"{message!r} names none of {names} ({name})"
    for raw in ("unsupported ScalarType", "cannot convert float NaN", "broadcast together"):
        assert raw not in message, f"a raw error leaked out: {message!r}"


@pytest.mark.parametrize("function", [f for f in TABLE if TABLE[f].arg], ids=IDS.get)
@SETTINGS
@given(x=hostile_arrays())
def test_hostile_array_gives_a_named_error_or_a_right_result(function, x):
    row = TABLE[function]
    try:
        result = function(**row.args(x))
    except Exception as error:  # noqa: BLE001 - any other kind fails in _check_error
        _check_error(error, row, IDS[function])
        return
    tensor_in = isinstance(x, torch.Tensor)
    for out in _arrays_in(result):
        assert isinstance(out, torch.Tensor) == (tensor_in and row.tensor_out), (
            f"{type(out)} for {type(x)} input")
        values = out.float().numpy() if isinstance(out, torch.Tensor) and out.dtype in (
            torch.bfloat16, torch.float16) else np.asarray(out)
        if values.dtype.kind == "f" and not row.nan_ok:
            assert not np.isnan(values).any(), "NaN in the result"
    if row.shape is not None:
        first = result[0] if isinstance(result, tuple) else result
        assert tuple(np.shape(first) if not isinstance(first, torch.Tensor)
                     else first.shape) == row.shape(x)
    x64 = _float64(x)
    if row.ref is not None and x64 is not None:
        row.ref(x64, result, x)


# --- hostile scalars ---------------------------------------------------------------------------

FLAGS = {"signed", "restricted", "largest", "symmetric", "has_inf", "inplace"}
HOSTILE_SCALARS = (True, False, 2.5, "8", None, -1, 0, 1 + 2j, [1], float("nan"), float("inf"),
                   np.int64(3), np.float64(4.0), "False")


def _valid_args(function) -> dict:
    row = TABLE[function]
    return row.args(FLOATS if row.valid is None else row.valid)


def _scalar_params(function) -> list[str]:
    row = TABLE[function]
    args = _valid_args(function)
    skip = {"name"} if function is embeddings.as_packed_bytes else set()
    return [k for k, v in args.items()
            if k != row.arg and k not in skip and (v is None or isinstance(v, (bool, int, float,
                                                                              str)))]


SCALAR_CASES = [(f, p) for f in TABLE for p in _scalar_params(f)]


@pytest.mark.parametrize(("function", "param"), SCALAR_CASES,
                         ids=[f"{IDS[f]}-{p}" for f, p in SCALAR_CASES])
def test_hostile_scalar_gives_a_named_error_or_a_result(function, param):
    row = TABLE[function]
    for value in HOSTILE_SCALARS:
        args = _valid_args(function)
        args[param] = value
        try:
            function(**args)
        except (ValueError, TypeError) as error:
            assert param.split(".")[-1] in str(error) or (
                param in ("x_min", "x_max") and "x_min" in str(error)
            ), f"{param}={value!r}: {error}"
            continue
        except OverflowError as error:
            assert row.errors and OverflowError in row.errors, f"{param}={value!r}: {error}"
            continue
        if param in FLAGS:
            assert isinstance(value, bool), f"{param}={value!r} was accepted as a flag"


def test_every_flag_is_checked():
    flagged = {(f, p) for f, p in SCALAR_CASES if p in FLAGS}
    for function in TABLE:
        for p in inspect.signature(function).parameters:
            if p in FLAGS:
                assert (function, p) in flagged or p not in _valid_args(function), (
                    f"{IDS[function]}: give {p} a value in its TABLE row")


# --- like(): 0-d in, 0-d out -------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.float32(0.5), np.array(3, np.int8), np.zeros((2, 0))])
def test_like_keeps_the_shape(value):
    out = like(np.asarray(value), torch.tensor(1.0))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == np.shape(value)
    assert out.dtype == torch.from_numpy(np.ascontiguousarray(np.asarray(value))).dtype
    assert like(np.asarray(value), np.ones(3)) is not None


# --- regressions: the reproducers of issue 10, section 3 --------------------------------------


def test_0d_tensor_in_0d_tensor_out():
    assert affine.quantize(torch.tensor(0.3), 0.1, 0).shape == ()
    lo, hi = affine.representable_range(torch.tensor(0.1), torch.tensor(0))
    assert lo.shape == () and hi.shape == () and float(hi) == pytest.approx(12.7)


def test_big_endian_float64_computes_in_float64():
    x = np.array([0.30000000000000004, 1e-9], ">f8")
    np.testing.assert_array_equal(affine.clipping_error(x, 0.1, 0), [0.0, 0.0])
    assert affine.quantization_error(x, 0.1, 0).dtype == np.float64
    np.testing.assert_array_equal(affine.quantize(x, 1e-9, 0, bits=8),
                                  affine.quantize(x.astype("<f8"), 1e-9, 0, bits=8))


@pytest.mark.parametrize("scale", [1e39, 1e-320, 1e-46, np.inf, np.nan, 0.0, -1.0, True])
def test_scale_float32_cannot_hold_is_an_error(scale):
    with pytest.raises((ValueError, TypeError), match="scale"):
        affine.quantize(np.ones(3), scale, 0)
    with pytest.raises((ValueError, TypeError), match="scale"):
        affine.dequantize(np.ones(3, np.int8), scale, 0)


def test_range_with_a_scale_float32_cannot_hold_is_an_error():
    with pytest.raises(ValueError, match="x_min and x_max"):
        affine.qparams(-1e308, 1e308)
    with pytest.raises(ValueError, match="x_min and x_max"):
        affine.qparams(np.array([-1e308]), np.array([1e308]))
    with pytest.raises(ValueError, match="x_min and x_max"):
        affine.zero_point_truncated(-1e308, 1e308)
    with pytest.raises(ValueError, match="max"):
        symmetric.quantize(np.float32([1e-45]))
    with pytest.raises(ValueError, match="max"):
        symmetric.quantize(np.array([1e300]))


@pytest.mark.parametrize("zero_point", [1e30, 300, -129, 2.5, np.nan])
def test_zero_point_outside_the_code_range_is_an_error(zero_point):
    with pytest.raises(ValueError, match="zero_point"):
        affine.quantize(np.ones(3), 0.1, zero_point)


def test_parameters_never_broadcast_x_up():
    with pytest.raises(ValueError, match=r"scale of shape \(2000, 1\).*x of shape \(2000,\)"):
        affine.quantize(np.ones(2000), np.ones((2000, 1)), 0)
    with pytest.raises(ValueError, match="zero_point"):
        affine.dequantize(np.ones(3, np.int8), 0.1, np.zeros((2, 1), int))
    q, s = symmetric.quantize(np.ones((2, 64)), group_size=32)
    assert symmetric.dequantize(q, s, group_size=32).shape == (2, 64)
    with pytest.raises(ValueError, match=r"scale of shape \(2, 2, 1\).*q of shape \(2, 64\)"):
        symmetric.dequantize(q, s)


@pytest.mark.parametrize("flag", ["False", None, 0, 1])
def test_flags_are_booleans(flag):
    with pytest.raises(TypeError, match="signed"):
        affine.quantize([1.0], 0.1, 0, signed=flag)
    with pytest.raises(TypeError, match="restricted"):
        symmetric.fake_quantize([1.0], restricted=flag)


def test_matmul_overflow_saturation_and_zero_points():
    with pytest.raises(OverflowError, match="int32"):
        matmul.integer_matmul([[2**32]], [[2**32]])
    big = [2**40, -(2**40)]
    np.testing.assert_array_equal(matmul.requantize(big, 0.5, 0), [127, -128])
    np.testing.assert_array_equal(matmul.requantize(big, 0.5, 0),
                                  matmul.requantize_float(big, 0.5, 0))
    assert int(matmul.requantize([2**33], 2.0**-32, 0)[0]) == 2  # exact, not just clamped
    for z in (300, 1000, -129):
        with pytest.raises(ValueError, match="zero_point_out"):
            matmul.requantize([1], 0.5, z)
        with pytest.raises(ValueError, match="zero_point_out"):
            matmul.requantize_float([1], 0.5, z)


@pytest.mark.parametrize(("x", "expected"), [([1e200], 0.0), ([1e-200], 0.0),
                                             ([1e308, -1e308], 0.0)])
def test_sqnr_db_of_huge_and_tiny_values(x, expected):
    assert metrics.sqnr_db(x, np.zeros(len(x))) == pytest.approx(expected, abs=1e-9)
    x = np.array(x)
    assert metrics.sqnr_db(x, x / 2) == pytest.approx(10 * math.log10(4), abs=1e-9)


def test_floats_reject_what_has_no_answer():
    with pytest.raises(ValueError, match="values"):
        floats.to_format(float("nan"), "1-bit")
    with pytest.raises(TypeError, match="values"):
        floats.to_format(1 + 2j, "float16")
    with pytest.raises(ValueError, match="exponent_bits"):
        floats.exponent_bias(0)


def test_embedding_codes_must_match_the_precision():
    with pytest.raises(TypeError, match="precision 'int8'"):
        embeddings.dequantize_embeddings(np.array([200], np.uint8), "int8")
    with pytest.raises(TypeError, match="precision 'binary'"):
        embeddings.dequantize_embeddings(np.array([[100]], np.uint8), "binary")
    with pytest.raises(TypeError, match="precision 'ubinary'"):
        embeddings.dequantize_embeddings(np.array([[100]], np.int8), "ubinary")
    with pytest.raises(ValueError, match="x contains NaN"):
        embeddings.quantize_int8_fixed(np.array([np.nan]))
    with pytest.raises(TypeError, match="x must hold float"):
        embeddings.quantize_uint8_fixed(np.array([1, 2], np.uint8))
    assert int(embeddings.popcount(np.int8(-1))) == 8
    np.testing.assert_array_equal(embeddings.popcount(np.array([-1, -128], np.int8)),
                                  embeddings.popcount_table(np.array([-1, -128], np.int8)))


def test_search_binary_rescore_binary_equals_ubinary():
    rng = np.random.default_rng(9)
    q = rng.standard_normal((2, 16)).astype(np.float32)
    c = rng.standard_normal((7, 16)).astype(np.float32)
    ids_u, scores_u = retrieval.search_binary_rescore(
        q, embeddings.quantize_embeddings(c, "ubinary"), 3)
    ids_b, scores_b = retrieval.search_binary_rescore(
        q, embeddings.quantize_embeddings(c, "binary"), 3)
    np.testing.assert_array_equal(ids_u, [[1, 6, 2], [4, 6, 1]])
    np.testing.assert_array_equal(ids_b, ids_u)
    np.testing.assert_array_equal(scores_b, scores_u)
    codes = embeddings.quantize_embeddings(c, "binary")
    c[0, 0] = np.nan
    with pytest.raises(ValueError, match="corpus"):
        retrieval.search_binary_rescore(q, codes, 3, corpus=c)
    with pytest.raises(ValueError, match="multiplier"):
        retrieval.search_binary_rescore(q, codes, 3, multiplier=0)


def test_recall_counts_distinct_ids_and_top_k_orders_extreme_integers():
    assert retrieval.recall_at_k([[1, 1]], [[1, 2]]) == 0.5
    with pytest.raises(ValueError, match="true_ids"):
        retrieval.recall_at_k([[1, 2]], [[1, 1]])
    lo = np.iinfo(np.int64).min
    ids, _ = retrieval.top_k(np.array([[lo, 0, 5, lo + 1]]), 4)
    np.testing.assert_array_equal(ids, [[2, 1, 3, 0]])
    ids, _ = retrieval.top_k(np.array([[2**63, 1, 2**64 - 1]], np.uint64), 3)
    np.testing.assert_array_equal(ids, [[2, 0, 1]])
    with pytest.raises(TypeError, match="a must hold integer codes"):
        retrieval.integer_dot(np.array([[1.7, 2.0]]), np.array([[1, 2]], np.int8))


def test_num_scales_checks_the_shape_without_allocating():
    with pytest.raises(TypeError, match="shape"):
        granularity.num_scales((4.5, 64))
    with pytest.raises(ValueError, match="shape"):
        granularity.num_scales((-4, 64), "per-channel")
    assert granularity.num_scales((10**6, 10**6), "per-group", group_size=1000) == 10**9
    with pytest.raises(ValueError, match="group_size"):
        granularity.num_scales((10**6, 10**6), "per-group", group_size=999)


def test_unclear_errors_are_clear():
    t = torch.linspace(-1, 1, 8, dtype=torch.bfloat16)
    q = affine.quantize(t, 0.01, 0)
    assert isinstance(q, torch.Tensor)
    np.testing.assert_array_equal(q.numpy(), affine.quantize(t.float().numpy(), 0.01, 0))
    with pytest.raises(ValueError, match="x_hat must have the shape of x"):
        metrics.mse(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="multiplier must be a positive integer"):
        retrieval.search_binary_rescore(np.ones((1, 8)), np.zeros((2, 1), np.uint8), 1,
                                        multiplier=-2)
    with pytest.raises(ValueError, match="scale of shape"):
        affine.quantize(np.ones((2, 3)), np.ones(4), 0)
