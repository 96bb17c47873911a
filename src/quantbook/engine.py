"""Speed on a real inference engine: ONNX Runtime on the CPU (chapter 14).

Three parts, each small:

* **Models.** all-MiniLM-L6-v2 exported to ONNX with ``torch.onnx.export`` (mean pooling and L2
  normalization included, so the graph outputs the sentence embedding), then quantized with ONNX
  Runtime's own tools: :func:`quantize_int8` (``quantize_dynamic``: int8 weights, uint8
  activations quantized at run time, ``MatMulInteger``) and :func:`quantize_int4` (every MatMul
  with a constant weight becomes a ``com.microsoft.MatMulNBits`` node whose packed weights,
  scales and zero points come from ORT's C++ block quantizer). The files are cached in
  :func:`quantbook.data.cache_dir`, keyed by the model file's hash and the library versions.
* **The layout.** :func:`decode_matmulnbits` reads ``MatMulNBits``' packed weights back into a
  float32 (K, N) matrix; :func:`quantize_matmulnbits` computes the same bytes with the book's
  own block quantization (chapter 4 groups, chapter 5 low-first nibbles), with ORT's arithmetic.
* **Measuring.** :func:`time_call` (warm-up, then the median of repeats), the probes of the
  roofline (:func:`copy_bandwidth`, :func:`matmul_throughput`) and :func:`machine_info` (CPU
  model, capability, threads, versions): every timing depends on them.

``torch``, ``onnx`` and ``onnxruntime`` are imported only by the functions that need them. What
these docstrings say about ONNX Runtime (its layouts, defaults and arithmetic) is that of onnx
1.23 and onnxruntime 1.31, the versions the tests check it against; :func:`machine_info`
records the versions of a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantbook import packing
from quantbook._arrays import to_numpy

__all__ = [
    "OPSET",
    "Timing",
    "machine_info",
    "last_level_cache_bytes",
    "cpu_flags",
    "default_threads",
    "time_call",
    "time_interleaved",
    "copy_bandwidth",
    "matmul_throughput",
    "roofline_time",
    "arithmetic_intensity",
    "matmulnbits_shapes",
    "decode_matmulnbits",
    "quantize_matmulnbits",
    "ort_quantize_matmulnbits",
    "linear_model",
    "quantize_int8",
    "quantize_int4",
    "session",
    "minilm_onnx",
    "minilm_tokenizer",
    "embed_onnx",
    "onnx_weights",
    "file_megabytes",
]

OPSET = 17
_EXPORT_VERSION = "2"  # bump when the export or the quantization recipe changes (new cache key)


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def default_threads() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``), the engine's thread count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not on Linux
        pass
    import platform

    return platform.processor() or "unknown"  # pragma: no cover


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache Linux reports for CPU 0 (``/sys/.../cache``), or None."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text and text[-1] in units and text[:-1].isdigit():
            sizes.append(int(text[:-1]) * units[text[-1]])
        elif text.isdigit():
            sizes.append(int(text))
    return max(sizes) if sizes else None


def cpu_flags() -> set:
    """The instruction-set flags Linux lists for the CPU (``/proc/cpuinfo``), empty elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:  # pragma: no cover - not on Linux
        pass
    return set()  # pragma: no cover


def machine_info() -> dict:
    """What every timing of the chapter depends on: CPU, capability, CPUs, cache, versions.

    ``cpus`` is how many CPUs this process may use; the thread count of a timing is the one
    passed to :func:`session` (the chapter uses one). ``int8_dot`` says whether the CPU lists
    int8 dot-product instructions (x86 ``avx512_vnni`` / ``avx_vnni``, Arm ``asimddp``).
    """
    import onnxruntime
    import torch

    cache = last_level_cache_bytes()
    return {
        "cpu": _cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "cpus": default_threads(),
        "cache_mb": "unknown" if cache is None else f"{cache / 2**20:.0f}",
        "int8_dot": "yes" if cpu_flags() & {"avx512_vnni", "avx_vnni", "asimddp"} else "no",
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
    }


# ---------------------------------------------------------------------------------------------
# Timing and the roofline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """The result of :func:`time_call`: the median and every timed run, in seconds."""

    median: float
    times: tuple
    warmup: int

    @property
    def best(self) -> float:
        return min(self.times)


def _positive_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def time_call(fn, repeats: int = 7, warmup: int = 2) -> Timing:
    r"""Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeats`` timed calls
    (chapter 14).

    .. math::  t = \operatorname{median}(t_1, \dots, t_r)

    ``time.perf_counter`` around each call. The median, not the mean: on a shared machine one
    run may be stalled by another process, and the median ignores it. Nothing is asserted about
    the result: a timing depends on the CPU, its load and the thread count.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    repeats = _positive_int(repeats, "repeats")
    warmup = _positive_int(warmup, "warmup", low=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), tuple(times), warmup)


def time_interleaved(fns: dict, repeats: int = 7, warmup: int = 1) -> dict:
    r"""Time several calls in turns (A, B, C, A, B, C, ...): name -> :class:`Timing` (chapter 14).

    .. math::  t_f = \operatorname{median}(t_{f,1}, \dots, t_{f,r})

    Each function gets ``warmup`` untimed calls, then the rounds run every function once, in
    order. A burst of load from another process then hits every contender alike, so the
    *ratios* of the medians move less than separate runs' would on a busy machine.
    """
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise TypeError("fns must be a non-empty dict of name -> callable")
    repeats = _positive_int(repeats, "repeats")
    warmup = _positive_int(warmup, "warmup", low=0)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(statistics.median(t), tuple(t), warmup) for name, t in times.items()}


def copy_bandwidth(nbytes: int = 1 << 27, repeats: int = 5) -> float:
    r"""Memory bandwidth in bytes per second, measured with one large ``np.copyto`` (chapter 14).

    .. math::  B = \frac{2 \cdot \text{nbytes}}{t_{copy}}

    A copy reads ``nbytes`` and writes ``nbytes``, so it moves twice that. The arrays (128 MB
    each by default) are far larger than any CPU cache: this is the DRAM bandwidth one thread
    of NumPy gets, the slope of the roofline.
    """
    nbytes = _positive_int(nbytes, "nbytes", low=1 << 20)
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t = time_call(lambda: np.copyto(dst, src), repeats=repeats, warmup=1).median
    return 2 * src.nbytes / t


def matmul_throughput(precision: str = "float32", size: int = 1024, repeats: int = 5,
                      threads: int | None = None) -> float:
    r"""Arithmetic throughput of ONNX Runtime's matrix product, in operations per second
    (chapter 14).

    .. math::  P = \frac{2 n^3}{t}

    One multiply and one add per term of an (n x n) by (n x n) product. ``"float32"`` times a
    ``MatMul``; ``"int8"`` times a ``MatMulInteger`` of uint8 activations and int8 weights (the
    kernel ``quantize_dynamic`` uses), int32 accumulators. The roof of the roofline.
    """
    if precision not in ("float32", "int8"):
        raise ValueError(f"precision must be 'float32' or 'int8', got {precision!r}")
    size = _positive_int(size, "size", low=16)
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if precision == "float32":
        w = rng.standard_normal((size, size)).astype(np.float32)
        x = rng.standard_normal((size, size)).astype(np.float32)
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        x_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    else:
        w = rng.integers(-127, 128, (size, size), dtype=np.int8)
        x = rng.integers(0, 256, (size, size), dtype=np.uint8)
        node = helper.make_node("MatMulInteger", ["x", "w"], ["y"])
        x_type, y_type = TensorProto.UINT8, TensorProto.INT32
    graph = helper.make_graph(
        [node], "throughput",
        [helper.make_tensor_value_info("x", x_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])],
        [numpy_helper.from_array(w, "w")],
    )
    sess = session(_as_model(graph).SerializeToString(), threads=threads)
    t = time_call(lambda: sess.run(None, {"x": x}), repeats=repeats, warmup=1).median
    return 2.0 * size**3 / t


def arithmetic_intensity(batch, k, n, weight_bytes_per_value=4.0, activation_bytes=4):
    r"""Operations per byte of a linear layer: a (batch x k) input times a (k x n) weight
    (chapter 14).

    .. math::  I = \frac{2\,b\,k\,n}{w\,k\,n + a\,(b\,k + b\,n)}

    ``w`` bytes per weight (4 for float32, 1 for int8, about 0.5 for int4 plus its scales),
    ``a`` bytes per activation value read and written. At batch 1 (a matrix-vector product) it
    is about ``2 / w``: every weight is used once. At batch ``b`` every weight is reused ``b``
    times and the intensity grows with ``b``.
    """
    b = np.asarray(batch, dtype=np.float64)
    ops = 2.0 * b * k * n
    moved = weight_bytes_per_value * k * n + activation_bytes * (b * k + b * n)
    out = ops / moved
    return float(out) if out.ndim == 0 else out


def roofline_time(ops, nbytes, peak_ops, bandwidth):
    r"""The roofline's time for a kernel: limited by arithmetic or by memory, whichever is slower
    (chapter 14).

    .. math::  t = \max\!\left(\frac{\text{ops}}{P}, \frac{\text{bytes}}{B}\right)

    :math:`P` operations per second (:func:`matmul_throughput`), :math:`B` bytes per second
    (:func:`copy_bandwidth`). A lower bound: a real kernel also pays for launching, threads and
    caches.
    """
    for value, name in ((peak_ops, "peak_ops"), (bandwidth, "bandwidth")):
        if not np.all(np.asarray(value, dtype=np.float64) > 0):
            raise ValueError(f"{name} must be positive, got {value!r}")
    out = np.maximum(np.asarray(ops, np.float64) / peak_ops, np.asarray(nbytes, np.float64)
                     / bandwidth)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# MatMulNBits: the layout
# ---------------------------------------------------------------------------------------------


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or bits not in (2, 4, 8):
        raise ValueError(f"bits must be 2, 4 or 8 (MatMulNBits' widths), got {bits!r}")
    return int(bits)


def matmulnbits_shapes(k: int, n: int, block_size: int, bits: int = 4) -> dict:
    r"""The shapes of ``MatMulNBits``' inputs for a (K, N) weight (ORT's contrib op spec)
    (chapter 14).

    .. math::  n_{blocks} = \lceil K / \text{block} \rceil, \quad
               \text{blob} = \text{block} \cdot b / 8

    ``B``: uint8 (N, n_blocks, blob); ``scales``: N * n_blocks values (one per block of K
    consecutive weights of one output column); ``zero_points`` (optional): uint8,
    N * ceil(n_blocks * b / 8) bytes, packed like ``B``. A block is one column of the (K, N)
    weight, so it runs along K (the input features).
    """
    bits = _check_bits(bits)
    k = _positive_int(k, "k")
    n = _positive_int(n, "n")
    block_size = _positive_int(block_size, "block_size", low=16)
    if block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of 2 and >= 16, got {block_size}")
    k_blocks = -(-k // block_size)
    return {
        "B": (n, k_blocks, block_size * bits // 8),
        "scales": (n, k_blocks),
        "zero_points": (n, -(-k_blocks * bits // 8)),
        "k_blocks": k_blocks,
    }


def _unpack_low_first(packed: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Unsigned ``bits``-wide values, low bits first in each byte, along the last axis."""
    if bits == 4:  # the chapter 5 unpacker, ONNX's nibble order
        return packing.unpack_int4(packed, count, signed=False, order="low-first")
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    parts = [(packed >> (bits * i)) & mask for i in range(per_byte)]
    values = np.stack(parts, axis=-1).reshape(*packed.shape[:-1], -1)
    return values[..., :count].astype(np.uint8)


def decode_matmulnbits(packed, scales, zero_points, k: int, n: int, block_size: int,
                       bits: int = 4) -> np.ndarray:
    r"""The float32 (K, N) weight that ``com.microsoft.MatMulNBits`` multiplies by (chapter 14).

    .. math::  W_{kn} = S_{n,b}\,(q_{nk} - Z_{n,b}), \quad b = \lfloor k/g \rfloor

    with :math:`g` the block size. ORT's layout (contrib op spec): ``packed`` is uint8
    (N, n_blocks, blob): output column n, its K weights in blocks of ``block_size``, each block
    packed ``8 / bits`` values per byte, **low bits first** (value 2i in the low nibble of byte i
    at 4 bits). ``scales`` holds N * n_blocks floats in (N, n_blocks) order (1-D or 2-D).
    ``zero_points`` is None (then every zero point is :math:`2^{b-1}`, 8 at 4 bits: symmetric
    quantization), uint8 packed like ``packed`` (N * ceil(n_blocks * b / 8) bytes, low first),
    or floats of the scales' size. The product is computed as float32(S) * float32(q - Z), which
    is what ORT's own dequantization computes; a K that does not fill its last block is padded,
    and the padding is dropped.
    """
    bits = _check_bits(bits)
    shapes = matmulnbits_shapes(k, n, block_size, bits)
    k_blocks = shapes["k_blocks"]
    b = to_numpy(packed, "packed")
    if b.dtype != np.uint8:
        raise TypeError(f"packed must be uint8 bytes, got dtype {b.dtype}")
    if b.shape != shapes["B"]:
        raise ValueError(
            f"packed must have shape (N, n_blocks, blob) = {shapes['B']} for K={k}, N={n}, "
            f"block_size={block_size}, bits={bits}; got {b.shape}"
        )
    s = to_numpy(scales, "scales")
    if s.dtype.kind != "f":
        raise TypeError(f"scales must be floating point, got dtype {s.dtype}")
    if s.size != n * k_blocks:
        raise ValueError(f"scales must hold N * n_blocks = {n * k_blocks} values, got {s.size} "
                         f"(shape {s.shape})")
    s = s.reshape(n, k_blocks, 1).astype(np.float32)
    if not np.isfinite(s).all():
        raise ValueError("scales contains NaN or an infinite value")
    if zero_points is None:
        z = np.full((n, k_blocks, 1), 2 ** (bits - 1), dtype=np.float32)
    else:
        zp = to_numpy(zero_points, "zero_points")
        if zp.dtype == np.uint8:
            want = n * shapes["zero_points"][1]
            if zp.size != want:
                raise ValueError(
                    f"packed uint8 zero_points must hold N * ceil(n_blocks * bits / 8) = {want} "
                    f"bytes, got {zp.size} (shape {zp.shape})"
                )
            zp = _unpack_low_first(zp.reshape(n, -1), k_blocks, bits)
        elif zp.dtype.kind == "f":
            if zp.size != n * k_blocks:
                raise ValueError(f"float zero_points must hold N * n_blocks = {n * k_blocks} "
                                 f"values, got {zp.size}")
        else:
            raise TypeError(f"zero_points must be None, packed uint8 or float, got {zp.dtype}")
        z = zp.reshape(n, k_blocks, 1).astype(np.float32)
    q = _unpack_low_first(b, shapes["B"][2] * 8 // bits, bits).astype(np.float32)
    w = s * (q - z)  # (N, n_blocks, block): float32(S) * float32(q - Z), as ORT computes
    return np.ascontiguousarray(w.reshape(n, -1)[:, :k].T)


def _roundf(t: np.ndarray) -> np.ndarray:
    """C's ``roundf``: round half away from zero (float32 in; exact in float64)."""
    t64 = t.astype(np.float64)
    return np.trunc(t64 + np.copysign(0.5, t64))


def quantize_matmulnbits(w, block_size: int = 32, bits: int = 4, symmetric: bool = False):
    r"""Block quantization of a (K, N) weight into ``MatMulNBits``' bytes, the book's way.

    Groups (chapter 4): each output column's K weights in blocks of ``block_size``. Affine
    (``symmetric=False``, ORT's default), with the range widened to contain 0 (chapter 2):

    .. math::  S = \frac{\max(x_{max}, 0) - \min(x_{min}, 0)}{2^b - 1}, \quad
               Z = \operatorname{clamp}(\operatorname{round}(-\min(x_{min},0) / S), 0, 2^b-1),
               \quad q = \operatorname{clamp}(\operatorname{round}(x \cdot (1/S) + Z), 0, 2^b-1)

    Symmetric: :math:`S = m / (-2^{b-1})` with :math:`m` the block's value of largest
    magnitude, sign kept (so S is negative when that value is positive), and :math:`Z = 2^{b-1}`.
    The codes are packed low bits first (chapter 5, ONNX's order).

    The arithmetic is ORT's (MLAS ``BlockwiseQuantizer``), not the book's chapter 2 convention,
    and the difference is visible: ORT computes the range in float32 (``max - min`` rounded to
    float32 before the division), multiplies by the float32 reciprocal of S instead of dividing,
    and rounds half **away** from zero (C's ``roundf``), where the book rounds half to even. A
    block of zeros gets S = 0 and codes Z.

    Returns
    -------
    packed : uint8 (N, n_blocks, blob)
    scales : float32 (N, n_blocks)
    zero_points : uint8 (N, ceil(n_blocks * b / 8)) packed, or None when symmetric
    """
    bits = _check_bits(bits)
    a = to_numpy(w, "w")
    if a.ndim != 2:
        raise ValueError(f"w must be a 2-D (K, N) weight, got shape {a.shape}")
    if a.dtype.kind != "f":
        raise TypeError(f"w must be floating point, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError("w contains NaN or an infinite value")
    k, n = a.shape
    shapes = matmulnbits_shapes(k, n, block_size, bits)
    k_blocks = shapes["k_blocks"]
    qmax = 2**bits - 1
    padded = np.zeros((k_blocks * block_size, n), np.float32)
    padded[:k] = a
    blocks = padded.T.reshape(n, k_blocks, block_size)
    # the min and max of the real values only (the zero padding is not part of the block)
    real = (np.arange(k_blocks * block_size) < k).reshape(k_blocks, block_size)
    lo = np.where(real, blocks, np.inf).min(axis=-1, keepdims=True)
    hi = np.where(real, blocks, -np.inf).max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        if symmetric:
            m = np.where(np.abs(hi) > np.abs(lo), hi, lo)
            scale = (m / np.float32(-(2 ** (bits - 1)))).astype(np.float32)
            zero = np.full_like(scale, 2 ** (bits - 1))
        else:
            lo, hi = np.minimum(lo, np.float32(0)), np.maximum(hi, np.float32(0))
            scale = ((hi - lo) / np.float32(qmax)).astype(np.float32)  # float32 throughout
            zf = np.where(scale != 0, np.float32(0) - lo / scale, lo).astype(np.float32)
            zero = np.clip(_roundf(zf), 0, qmax).astype(np.float32)
        reciprocal = np.where(scale != 0, np.float32(1) / scale, np.float32(0)).astype(np.float32)
    t = (blocks * reciprocal).astype(np.float32) + zero
    q = np.clip(_roundf(t), 0, qmax).astype(np.uint8)
    # ORT fills the unused slots of the last zero-point byte with 2^(b-1), not with 0
    per_byte = 8 // bits
    zp = np.full((n, -(-k_blocks // per_byte) * per_byte), 2 ** (bits - 1), np.uint8)
    zp[:, :k_blocks] = zero[..., 0]
    if bits == 4:
        codes = packing.pack_int4(q, signed=False, order="low-first")
        zps = packing.pack_int4(zp, signed=False, order="low-first")
    else:
        codes, zps = _pack_low_first(q, bits), _pack_low_first(zp, bits)
    return codes, scale[..., 0], (None if symmetric else zps)


def _pack_low_first(values: np.ndarray, bits: int) -> np.ndarray:
    per_byte = 8 // bits
    pad = (-values.shape[-1]) % per_byte
    v = np.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, pad)]).astype(np.uint8)
    v = v.reshape(*v.shape[:-1], -1, per_byte)
    out = np.zeros(v.shape[:-1], np.uint8)
    for i in range(per_byte):
        out |= v[..., i] << (bits * i)
    return out


def ort_quantize_matmulnbits(w, block_size: int = 32, bits: int = 4, symmetric: bool = False):
    """ONNX Runtime's own block quantizer (its C++ ``quantize_matmul_{2,4,8}bits``).

    The kernel behind ``MatMulNBitsQuantizer``; the same three arrays as
    :func:`quantize_matmulnbits`, computed by ORT.
    """
    bits = _check_bits(bits)
    a = to_numpy(w, "w")
    if a.ndim != 2 or a.dtype.kind != "f":
        raise ValueError(f"w must be a 2-D floating-point (K, N) weight, got {a.dtype} {a.shape}")
    from onnxruntime.capi import _pybind_state as C

    a = np.ascontiguousarray(a, dtype=np.float32)
    k, n = a.shape
    shapes = matmulnbits_shapes(k, n, block_size, bits)
    if shapes["k_blocks"] * block_size != k:
        a = np.pad(a, ((0, shapes["k_blocks"] * block_size - k), (0, 0)))
    packed = np.zeros(shapes["B"], np.uint8)
    scales = np.zeros(shapes["scales"], np.float32)
    zero_points = np.zeros(shapes["zero_points"], np.uint8)
    kernel = getattr(C, f"quantize_matmul_{bits}bits")
    kernel(packed, a, scales, zero_points, block_size, n, a.shape[0], bool(symmetric))
    return packed, scales, (None if symmetric else zero_points)


# ---------------------------------------------------------------------------------------------
# ONNX models
# ---------------------------------------------------------------------------------------------


def _as_model(graph):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def linear_model(w, bias=None, copies: int = 1):
    r"""An ONNX model of one linear layer, ``y = x @ W (+ b)``, W a (K, N) float32 initializer.

    The input ``x`` is (batch, K) with a free batch size. (A torch ``nn.Linear`` stores
    :math:`W^\top`: pass ``linear.weight.T``.) With ``copies`` > 1 the model holds that many
    different weights of the same shape (``W`` with its columns rolled by 0, 1, 2, ... places) and
    applies each to ``x``, outputs ``y0, y1, ...``: their bytes together exceed the CPU caches,
    so a run reads its weights from memory, as a large model does.
    """
    from onnx import TensorProto, helper, numpy_helper

    a = to_numpy(w, "w")
    if a.ndim != 2 or a.dtype.kind != "f":
        raise ValueError(f"w must be a 2-D floating-point (K, N) weight, got {a.dtype} {a.shape}")
    copies = _positive_int(copies, "copies")
    k, n = a.shape
    if bias is not None:
        bb = to_numpy(bias, "bias")
        if bb.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {bb.shape}")
    inits, nodes, outputs = [], [], []
    for i in range(copies):
        wi = np.ascontiguousarray(np.roll(a, i, axis=1), np.float32)
        y = "y" if copies == 1 else f"y{i}"
        inits.append(numpy_helper.from_array(wi, f"W{i}" if copies > 1 else "W"))
        nodes.append(helper.make_node("MatMul", ["x", inits[-1].name],
                                      [f"xw{i}" if bias is not None else y]))
        if bias is not None:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(np.roll(bb, i), np.float32),
                                                 f"b{i}"))
            nodes.append(helper.make_node("Add", [f"xw{i}", f"b{i}"], [y]))
        outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", n]))
    graph = helper.make_graph(
        nodes, "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        outputs,
        inits,
    )
    return _as_model(graph)


def _load(model):
    import onnx

    if isinstance(model, (str, os.PathLike)):
        return onnx.load(str(model))
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    return model


class _DropPreprocessingAdvice(logging.Filter):
    """Drop ORT's "Please consider to run pre-processing before quantization" root-logger line.

    ``quantize_dynamic`` logs it for every model that lacks the metadata of ORT's
    ``quant_pre_process`` (symbolic shape inference and graph optimization, aimed at static
    quantization of vision models). The models here are plain exports whose MatMul weights are
    quantized as they are; ORT optimizes the graph when it loads the session anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice():
    """Silence only that one message, only while ``quantize_dynamic`` runs."""
    root = logging.getLogger()
    advice = _DropPreprocessingAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def quantize_int8(model, path=None):
    """int8 weights with ONNX Runtime's ``quantize_dynamic`` (its integer MatMul kernels).

    Weights: int8, symmetric, one scale per output column (``QuantType.QInt8``,
    ``per_channel=True``: ORT's default is one scale per tensor, which chapter 7 showed is not
    free on MiniLM); activations: uint8 with one scale and zero point per tensor computed at run
    time from each input (``DynamicQuantizeLinear``), then ``MatMulInteger`` with int32
    accumulators. Only MatMul nodes are quantized (the embedding tables stay float32, as for
    :func:`quantize_int4`).
    Returns the quantized ``onnx.ModelProto``; with ``path`` it is also written there.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, _without_preprocessing_advice():
        src, dst = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(_load(model), str(src))
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], per_channel=True)
        out = onnx.load(str(dst))
    if path is not None:
        _save_atomic(out, path)
    return out


def quantize_int4(model, path=None, block_size: int = 32, symmetric: bool = False,
                  accuracy_level: int | None = None):
    """int4 weights in ``com.microsoft.MatMulNBits`` nodes, quantized by ONNX Runtime.

    Every MatMul whose second input is a constant 2-D (K, N) weight becomes
    ``MatMulNBits(x, B, scales[, zero_points])`` with attributes K, N, bits=4, block_size (what
    ORT's ``MatMulNBitsQuantizer`` writes); the arrays come from ORT's C++ block quantizer
    (:func:`ort_quantize_matmulnbits`). Written here rather than with ``MatMulNBitsQuantizer``
    because that class needs the ``onnx_ir`` package. ``accuracy_level`` (ORT's attribute:
    unset or 0 computes in float32; 4 quantizes the activations to int8) is left unset by
    default, like the quantizer.
    """
    from onnx import helper, numpy_helper

    m = _load(model)
    m = m.__class__.FromString(m.SerializeToString())  # a copy: the input stays as it was
    graph = m.graph
    inits = {t.name: t for t in graph.initializer}
    used = {}
    for node in graph.node:
        for name in node.input:
            used[name] = used.get(name, 0) + 1
    new_nodes, drop = [], set()
    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or used[node.input[1]] != 1:
            new_nodes.append(node)
            continue
        arr = numpy_helper.to_array(w).astype(np.float32)
        k, n = arr.shape
        packed, scales, zps = ort_quantize_matmulnbits(arr, block_size, 4, symmetric)
        base = w.name
        new_inits = [numpy_helper.from_array(packed, f"{base}_Q4"),
                     numpy_helper.from_array(scales, f"{base}_scales")]
        inputs = [node.input[0], f"{base}_Q4", f"{base}_scales"]
        if zps is not None:
            new_inits.append(numpy_helper.from_array(zps, f"{base}_zero_points"))
            inputs.append(f"{base}_zero_points")
        attrs = {"K": k, "N": n, "bits": 4, "block_size": block_size}
        if accuracy_level:
            attrs["accuracy_level"] = accuracy_level
        new_nodes.append(helper.make_node("MatMulNBits", inputs, list(node.output),
                                          name=(node.name or base) + "_Q4",
                                          domain="com.microsoft", **attrs))
        graph.initializer.extend(new_inits)
        drop.add(base)
    del graph.node[:]
    graph.node.extend(new_nodes)
    kept = [t for t in graph.initializer if t.name not in drop]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    if path is not None:
        _save_atomic(m, path)
    return m


def onnx_weights(model) -> dict[str, np.ndarray]:
    """Every initializer of an ONNX model: name -> NumPy array."""
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in _load(model).graph.initializer}


def session(model, threads: int | None = None):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (default: all usable CPUs).

    ``model`` is a path, serialized bytes or an ``onnx.ModelProto``. One inter-op thread,
    sequential execution, default graph optimizations.
    """
    import onnxruntime as ort

    threads = default_threads() if threads is None else _positive_int(threads, "threads")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not isinstance(model, (str, os.PathLike, bytes)):
        model = model.SerializeToString()
    return ort.InferenceSession(str(model) if isinstance(model, os.PathLike) else model, opts,
                                providers=["CPUExecutionProvider"])


def _save_atomic(model, path) -> None:
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)  # a reader never sees half a file


def file_megabytes(path) -> float:
    """Size of a file in MB (10**6 bytes)."""
    return Path(path).stat().st_size / 1e6


# ---------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 in ONNX
# ---------------------------------------------------------------------------------------------


def _minilm_key() -> str:
    """SHA-256 of the model file and the versions of every tool that touches the export."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    from quantbook.data import minilm_path

    digest = hashlib.sha256()
    with open(minilm_path() / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    for part in (torch.__version__, transformers.__version__, onnx.__version__,
                 onnxruntime.__version__, str(OPSET), _EXPORT_VERSION):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _export_minilm(path: Path) -> None:
    import torch

    from quantbook.data import load_minilm

    minilm = load_minilm()
    bert = minilm[0].auto_model

    class SentenceEncoder(torch.nn.Module):
        """BERT, mean pooling over the real tokens, L2 normalization: the sentence embedding."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            # keywords: transformers 5's forward takes other arguments in those positions
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            hidden = hidden.last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    example = minilm.tokenizer(["a short example", "a second, longer example sentence"],
                               padding=True, return_tensors="pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceEncoder(bert).eval(),
            (example["input_ids"], example["attention_mask"]),
            str(tmp),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                          "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
            opset_version=OPSET,
        )
    os.replace(tmp, path)


def minilm_onnx(precision: str = "float32", block_size: int = 32, cache: bool = True) -> Path:
    """Path of all-MiniLM-L6-v2 in ONNX: ``"float32"``, ``"int8"`` or ``"int4"``.

    Exported once (``torch.onnx.export``, TorchScript exporter, opset 17) and quantized once
    (:func:`quantize_int8`, :func:`quantize_int4` with ``block_size``), then read from
    ``<cache_dir>/onnx-minilm-<key>/``, where the key hashes the model file and the versions of
    torch, transformers, onnx and onnxruntime. Files are written atomically. Outputs the
    L2-normalized, mean-pooled 384-dim embedding, like ``SentenceTransformer.encode``.
    """
    if precision not in ("float32", "int8", "int4"):
        raise ValueError(f"precision must be 'float32', 'int8' or 'int4', got {precision!r}")
    from quantbook.data import _go_offline, cache_dir

    _go_offline()
    folder = (cache_dir() if cache else Path(tempfile.mkdtemp())) / f"onnx-minilm-{_minilm_key()}"
    base = folder / "float32.onnx"
    if not base.exists():
        _export_minilm(base)
    if precision == "float32":
        return base
    path = folder / ("int8.onnx" if precision == "int8" else f"int4-block{block_size}.onnx")
    if not path.exists():
        if precision == "int8":
            quantize_int8(base, path)
        else:
            quantize_int4(base, path, block_size=block_size)
    return path


def minilm_tokenizer():
    """all-MiniLM-L6-v2's tokenizer, offline, without loading the model (truncates at 256)."""
    from quantbook.data import _go_offline, minilm_path

    _go_offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)


def embed_onnx(texts, sess, tokenizer=None, batch_size: int = 32) -> np.ndarray:
    """Embed ``texts`` with an ONNX Runtime session of :func:`minilm_onnx`: float32 (n, 384).

    Texts are run longest first in batches (less padding) and put back in their order.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    batch_size = _positive_int(batch_size, "batch_size")
    tokenizer = tokenizer or minilm_tokenizer()
    out = np.zeros((len(texts), 384), np.float32)
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    for start in range(0, len(order), batch_size):
        ids = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in ids], padding=True, truncation=True, max_length=256,
                        return_tensors="np")
        out[ids] = sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                   "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
    return out
