"""Element-wise kernels: affine quantize/dequantize, int4 packing, GGUF block formats.

References, each on the same seeded data:

* affine: the same formula in torch on plain integer tensors (torch's quantized tensors are
  deprecated in 2.13), ``torch.clamp(torch.round(x / s) + zp, qmin, qmax).to(torch.int8)`` and
  ``(q.float() - zp) * s``; torch uses all its threads, NumPy one.
* int4 packing: the shortest plain NumPy that gives the same bytes, ``(a & 15) | (b << 4)`` on
  strided views (and its inverse).
* GGUF: ``gguf.quants.quantize`` / ``dequantize``, the llama.cpp project's own NumPy reference.
* floor: ``numpy.copy`` of the larger side of the operation (the float32 array, or the int8
  codes for packing): no element-wise kernel that reads and writes memory beats it by much.
"""

from __future__ import annotations

import numpy as np
from common import compare, memory

from quantbook import affine, formats, packing, symmetric


def affine_data(n: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    scale, zero_point = affine.qparams(float(x.min()), float(x.max()))
    return x, scale, zero_point


def int4_data(n: int):
    rng = np.random.default_rng(1)
    return rng.integers(-8, 8, size=n, dtype=np.int8)


def bench_affine(n: int, repeats: int):
    import torch

    x, s, zp = affine_data(n)
    q = affine.quantize(x, s, zp)
    xt, qt = torch.from_numpy(x), torch.from_numpy(q)
    data = f"{n:,} float32"

    def torch_quantize():
        return torch.clamp(torch.round(xt / s) + zp, -128, 127).to(torch.int8)

    def torch_dequantize():
        return (qt.float() - zp) * s

    assert np.array_equal(torch_quantize().numpy(), q), "torch and quantbook disagree"
    return [
        compare("affine", "affine.quantize", data, lambda: affine.quantize(x, s, zp),
                {"torch": torch_quantize}, {"np.copy": x.copy}, repeats),
        compare("affine", "affine.dequantize", data, lambda: affine.dequantize(q, s, zp),
                {"torch": torch_dequantize}, {"np.copy": x.copy}, repeats),
    ]


def numpy_pack_low_first(a):
    return (a[0::2] & 15) | (a[1::2] << 4)


def numpy_unpack_low_first(p):
    # Signed nibbles: shift each into the top of a byte, then an arithmetic shift back down.
    out = np.empty(2 * p.size, dtype=np.int8)
    out[0::2] = (p << 4).view(np.int8) >> 4
    out[1::2] = p.view(np.int8) >> 4
    return out


def bench_packing(n: int, repeats: int):
    a = int4_data(n)
    reference = numpy_pack_low_first(a).view(np.uint8)
    assert np.array_equal(packing.pack_int4(a), reference)
    assert np.array_equal(numpy_unpack_low_first(reference), a)
    data = f"{n:,} int4 in int8"
    rows = []
    for order in packing.ORDERS:
        p = packing.pack_int4(a, order=order)
        rows.append(compare("int4", f"pack_int4 {order}", data,
                            lambda o=order: packing.pack_int4(a, order=o),
                            {"numpy bit ops": lambda: numpy_pack_low_first(a)},
                            {"np.copy": a.copy}, repeats))
        rows.append(compare("int4", f"unpack_int4 {order}", data,
                            lambda p=p, o=order: packing.unpack_int4(p, n, order=o),
                            {"numpy bit ops": lambda: numpy_unpack_low_first(reference)},
                            {"np.copy": a.copy}, repeats))
    return rows


def bench_gguf(n: int, repeats: int):
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    x, _, _ = affine_data(n)
    rows = []
    for name, qtype, encode, decode in [
        ("Q8_0", GGMLQuantizationType.Q8_0, formats.encode_q8_0, formats.decode_q8_0),
        ("Q4_0", GGMLQuantizationType.Q4_0, formats.encode_q4_0, formats.decode_q4_0),
    ]:
        raw = encode(x)
        assert np.array_equal(raw, quantize(x, qtype)), f"{name} bytes differ from gguf"
        data = f"{n:,} float32"
        rows.append(compare("gguf", f"encode_{name.lower()}", data, lambda e=encode: e(x),
                            {"gguf": lambda t=qtype: quantize(x, t)},
                            {"np.copy": x.copy}, repeats))
        rows.append(compare("gguf", f"decode_{name.lower()}", data, lambda d=decode, r=raw: d(r),
                            {"gguf": lambda r=raw, t=qtype: dequantize(r, t)},
                            {"np.copy": x.copy}, repeats))
    return rows


NEW_FORMATS = ["MXFP4", "NVFP4", "Q4_K", "Q6_K"]


def bench_block_formats(n: int, repeats: int):
    """MXFP4, NVFP4, Q4_K, Q6_K against gguf 0.19.

    Decoders: every one against ``gguf.quants.dequantize``. Encoders: MXFP4 against
    ``gguf.quants.quantize``; gguf has no encoder for NVFP4, Q4_K or Q6_K, so those are timed
    against gguf's nearest encoder of the same kind (MXFP4 for NVFP4, the min/max Q4_1 for the
    K-quants, whose reference search tries 21 candidate scales per sub-block): a cost scale, not
    a like-for-like target. Encoders run on at most 2**20 values (the K-quant search is slow).
    """
    from gguf import GGMLQuantizationType as GT
    from gguf.quants import dequantize, quantize

    x, _, _ = affine_data(n)
    small = x[: min(n, 2**20)]
    nearest = {"MXFP4": "MXFP4", "NVFP4": "MXFP4", "Q4_K": "Q4_1", "Q6_K": "Q4_1"}
    rows = []
    for name in NEW_FORMATS:
        qtype, ref = GT[name], GT[nearest[name]]
        fmt = formats.get_format(name)
        raw = fmt.encode(x)
        assert np.array_equal(fmt.decode(raw), dequantize(raw, qtype)), f"{name} decode differs"
        label = "gguf" if name == "MXFP4" else f"gguf quantize {nearest[name]}"
        rows.append(compare("gguf", f"encode_{name.lower()}", f"{small.size:,} float32",
                            lambda e=fmt.encode: e(small),
                            {label: lambda t=ref: quantize(small, t)},
                            {"np.copy": small.copy}, repeats))
        rows.append(compare("gguf", f"decode_{name.lower()}", f"{n:,} float32",
                            lambda d=fmt.decode, r=raw: d(r),
                            {"gguf": lambda r=raw, t=qtype: dequantize(r, t)},
                            {"np.copy": x.copy}, repeats))
    return rows


def run(n: int, repeats: int):
    return (bench_affine(n, repeats) + bench_packing(n, repeats) + bench_gguf(n, repeats)
            + bench_block_formats(n, repeats))


def run_memory(n: int):
    """Peak memory of each kernel (and of the gguf reference) over its input's size."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    x, s, zp = affine_data(n)
    q = affine.quantize(x, s, zp)
    a = int4_data(n)
    p = packing.pack_int4(a)
    q8, q4 = formats.encode_q8_0(x), formats.encode_q4_0(x)
    rows = [
        memory("affine.quantize", lambda: affine.quantize(x, s, zp), x),
        memory("affine.dequantize", lambda: affine.dequantize(q, s, zp), q),
        memory("symmetric.quantize", lambda: symmetric.quantize(x), x),
    ]
    for order in packing.ORDERS:
        rows.append(memory(f"pack_int4 {order}", lambda o=order: packing.pack_int4(a, order=o), a))
    rows.append(memory("unpack_int4 low-first", lambda: packing.unpack_int4(p, n), p))
    rows += [
        memory("encode_q8_0", lambda: formats.encode_q8_0(x), x),
        memory("decode_q8_0", lambda: formats.decode_q8_0(q8), q8),
        memory("encode_q4_0", lambda: formats.encode_q4_0(x), x),
        memory("decode_q4_0", lambda: formats.decode_q4_0(q4), q4),
        memory("(gguf reference) quantize Q4_0",
               lambda: quantize(x, GGMLQuantizationType.Q4_0), x),
    ]
    small = x[: min(n, 2**20)]
    for name in NEW_FORMATS:
        fmt = formats.get_format(name)
        raw = fmt.encode(small)
        rows.append(memory(f"encode_{name.lower()}", lambda f=fmt: f.encode(small), small))
        rows.append(memory(f"decode_{name.lower()}", lambda f=fmt, r=raw: f.decode(r), raw))
    return rows

