"""Behaviours of other libraries that the book states (book/libraries.md), computed here.

Each test recomputes one row of the page with the installed library and first checks that the
installed version lies in the range the row was verified for. An upgrade of a pinned library
outside that range fails here, so the page (and the chapters that link to it) are re-checked
before the new version is accepted. Facts that depend on the CPU are asserted per platform or
skipped with a reason.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch
from packaging.version import Version

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def require(package: str, low: str, below: str) -> Version:
    """The installed version of package, asserted to be in [low, below) (the row's range)."""
    try:
        installed = Version(importlib.metadata.version(package))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{package} is not installed")
    assert Version(low) <= Version(installed.base_version) < Version(below), (
        f"{package} {installed} is outside [{low}, {below}), the range book/libraries.md states "
        "for this behaviour: re-check it with the new version, then update the page and this test"
    )
    return installed


# -- rounding ------------------------------------------------------------------------------------


def test_numpy_rounds_half_to_even():
    require("numpy", "1.0", "2.5")
    ties = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert np.rint(ties).tolist() == [-2, -2, -0, 0, 2, 2]
    assert np.round(ties).tolist() == [-2, -2, -0, 0, 2, 2]


def test_torch_rounds_half_to_even():
    require("torch", "1.0", "2.14")
    ties = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert torch.round(ties).tolist() == [-2, -2, -0, 0, 2, 2]


# -- sentence-transformers -------------------------------------------------------------------------


def test_sentence_transformers_floors_and_clips_calibrated_codes():
    require("sentence-transformers", "5.7.0", "6.3")
    from sentence_transformers.util.quantization import quantize_embeddings

    # The example of PR #3847: values outside the calibration range clip (they wrapped before).
    calibration = np.array([[1, 20, -3], [4, 5, -60]], dtype=np.float32)
    data = np.array([[-1, 15, 1]], dtype=np.float32)
    out = quantize_embeddings(data, "int8", calibration_embeddings=calibration)
    assert out.tolist() == [[-128, 42, 127]]
    # floor, not round and not truncation toward zero: int8 is uint8 - 128 in the lower half too
    ranges = np.array([[0.0], [255.0]], dtype=np.float32)
    x = np.array([[0.7], [1.99], [127.5], [254.9]], dtype=np.float32)
    assert quantize_embeddings(x, "uint8", ranges=ranges).ravel().tolist() == [0, 1, 127, 254]
    assert quantize_embeddings(x, "int8", ranges=ranges).ravel().tolist() == [-128, -127, -1, 126]


def test_sentence_transformers_binary_threshold_is_strictly_positive():
    require("sentence-transformers", "2.6.0", "6.3")
    from sentence_transformers.util.quantization import quantize_embeddings

    x = np.array([[0.0, 0.5, -0.5, 0.0, 1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert quantize_embeddings(x, "ubinary").tolist() == [[0b01001000]]  # zero counts negative


def test_sentence_transformers_rescoring_dequantizes_to_the_lower_edge():
    require("sentence-transformers", "6.2.0", "6.3")
    from sentence_transformers.util import quantization

    dequantize = getattr(quantization, "_dequantize_embeddings", None)
    assert dequantize is not None, "6.2 rescores calibrated candidates after dequantizing them"
    ranges = np.array([[-1.0], [1.0]], dtype=np.float32)
    step = np.float32(2.0) / 255
    codes = np.array([[-128], [0], [127]])
    out = dequantize(codes, "int8", ranges).ravel()
    np.testing.assert_allclose(out, [-1.0, -1.0 + 128 * step, -1.0 + 255 * step], rtol=1e-6)


def test_sentence_transformers_rescores_binary_against_zero_one_bits():
    # semantic_search_faiss/usearch unpack the candidates' bits and score the float query
    # against those 0/1 vectors: same ranking as ±1, other scores.
    require("sentence-transformers", "2.6.0", "6.3")
    from sentence_transformers.util import quantization

    source = open(quantization.__file__, encoding="utf-8").read()
    assert "np.unpackbits(top_k_embeddings" in source
    assert "* 2 - 1" not in source and "2 * top_k_embeddings" not in source


# -- float8 and int4 casts -------------------------------------------------------------------------


def test_torch_float8_e4m3fn_saturates_finite_and_infinite_values():
    require("torch", "2.13", "2.14")  # finite saturation since 2.12; ±inf -> ±448 seen in 2.13
    x = torch.tensor([448.0, 465.0, 1e6, -1e6, float("inf"), -float("inf")])
    assert x.to(torch.float8_e4m3fn).float().tolist() == [448, 448, 448, -448, 448, -448]


def test_ml_dtypes_float8_e4m3fn_overflows_to_nan_above_464():
    require("ml_dtypes", "0.5", "0.7")
    x = np.array([448.0, 464.0, 464.1, -500.0, np.inf], np.float32)
    back = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert back[:2].tolist() == [448.0, 448.0] and np.isnan(back[2:]).all()


def test_ml_dtypes_int4_truncates_then_wraps():
    require("ml_dtypes", "0.5", "0.7")
    x = np.array([7.9, 8.0, 15.2, -9.0, -2.5], np.float32)
    assert x.astype(ml_dtypes.int4).astype(np.int8).tolist() == [7, -8, -1, 7, -2]


# -- nibble orders ---------------------------------------------------------------------------------


def test_onnx_int4_packs_low_first():
    require("onnx", "1.16", "1.24")
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("t", TensorProto.INT4, [5], [1, -2, 3, -8, 7])
    # (1, -2) -> 0xE1, (3, -8) -> 0x83, (7, pad) -> 0x07: the first value in the low nibble
    assert list(tensor.int32_data) == [0xE1, 0x83, 0x07]


def test_bitsandbytes_packs_high_first():
    require("bitsandbytes", "0.43", "0.51")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from bitsandbytes import functional

    x = torch.tensor([1.0, -1.0] * 32)
    packed, _ = functional.quantize_4bit(x, blocksize=64, quant_type="nf4")
    # nf4 codes: 1.0 -> 15, -1.0 -> 0; the FIRST value sits in the HIGH nibble
    assert packed.flatten().tolist() == [0xF0] * 32


def test_torch_float4_x2_has_no_cast_yet():
    # PyTorch documents float4_e2m1fn_x2 as two values per byte, the first in the low nibble,
    # but 2.13 cannot convert to it: the page cites the layout. When this fails, test the bytes.
    require("torch", "2.8", "2.14")
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.tensor([[0.5, 1.0]]).to(torch.float4_e2m1fn_x2)


# -- platform-dependent casts --------------------------------------------------------------------


@pytest.mark.skipif(not X86, reason="out-of-range float-to-int casts are CPU-dependent (x86 here)")
def test_numpy_out_of_range_casts_wrap_on_x86():
    require("numpy", "1.24", "2.5")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array([-1.0]).astype(np.uint8).tolist() == [255]
        assert np.array([190.0, 200.7]).astype(np.int8).tolist() == [-66, -56]
        assert np.round(np.array([130.2])).astype(np.int8).tolist() == [-126]


# -- deprecations ----------------------------------------------------------------------------------


def test_torch_ao_quantization_still_ships_and_announces_removal_in_2_10():
    require("torch", "2.13", "2.14")
    tiny = torch.nn.Sequential(torch.nn.Linear(8, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.ao.quantization.quantize_dynamic(tiny, {torch.nn.Linear}, dtype=torch.qint8)
    announced = {v for w in caught for v in re.findall(r"removed in (\d+\.\d+)", str(w.message))}
    assert announced == {"2.10"}


def test_every_test_the_page_names_exists():
    """book/libraries.md cites tests by name: a renamed or removed test must not leave the page
    pointing at nothing."""
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    page = (tests.parent / "book" / "libraries.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_\w+\.py)::(\w+)`", page))
    assert len(named) > 40
    missing = [f"{f}::{t}" for f, t in sorted(named)
               if not (tests / f).is_file() or f"def {t}(" not in (tests / f).read_text()]
    assert not missing, f"book/libraries.md names tests that do not exist: {missing}"
