"""EmbeddingExplorer: two embeddings' sign bits, Hamming distance against cosine (chapter 6)."""

from __future__ import annotations

import numpy as np
import traitlets

from quantbook.explorers._base import (
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    as_list,
    float_data,
    fmt_number,
)


class EmbeddingExplorer(Explorer):
    r"""Binary quantization keeps one bit per dimension: is the value above zero? (chapter 6)

    Two embeddings' sign bits are drawn side by side; the bits that differ are counted (the
    Hamming distance :math:`h`) and set against the cosine similarity of the float vectors. For
    random hyperplanes (SimHash, Charikar 2002) a fraction :math:`h/d` of differing bits means an
    angle of about :math:`\pi h / d`, so

    .. math::  \cos\theta \approx \cos\left(\frac{\pi h}{d}\right).

    Parameters
    ----------
    a, b : 1-D array-likes of the same length (e.g. two sentence embeddings)
    labels : (str, str), names for a and b

    Traits (synced): ``mix`` in [0, 1] turns b toward a (``mix_toward`` in this module, in float32);
    ``dims``: how many leading dimensions are compared; ``a``, ``b``, ``labels``.
    """

    _esm = Explorer.module("embedding.js")

    a = traitlets.List(traitlets.Float()).tag(sync=True)
    b = traitlets.List(traitlets.Float()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    mix = traitlets.Float(0.0).tag(sync=True)
    dims = traitlets.Int(0).tag(sync=True)

    def __init__(self, a, b, labels=("a", "b")):
        va = _vector(a, "a")
        vb = _vector(b, "b")
        if va.size != vb.size:
            raise ValueError(f"a and b must have the same length, got {va.size} and {vb.size}")
        if isinstance(labels, str) or len(labels) != 2:
            raise ExplorerTypeError(f"labels must be two strings, got {labels!r}")
        self._size = va.size
        super().__init__(a=as_list(va), b=as_list(vb), labels=[str(t) for t in labels],
                         dims=int(va.size))

    @traitlets.validate("mix")
    def _valid_mix(self, proposal):
        mix = proposal["value"]
        if not 0.0 <= mix <= 1.0:
            raise ExplorerError(f"mix must be in [0, 1], got {mix}")
        return float(mix)

    @traitlets.validate("dims")
    def _valid_dims(self, proposal):
        dims = proposal["value"]
        if not 1 <= dims <= self._size:
            raise ExplorerError(f"dims must be from 1 to {self._size}, got {dims}")
        return int(dims)

    def mixed(self) -> np.ndarray:
        """b turned toward a by ``mix`` (float32), as the explorer draws it."""
        return mix_toward(self.a, self.b, self.mix)

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with quantbook."""
        return embedding_state(self.a, self.b, self.mix, self.dims, self.labels)

    def _fallback(self):
        st = self.state()
        a, b = st["labels"]
        return (f"Sign bits of {a} and {b}", [
            f"{st['dims']} dimensions, {b} turned toward {a} by {fmt_number(st['mix'], 3)}",
            f"Hamming distance {st['hamming']} of {st['dims']} · cosine "
            f"{fmt_number(st['cosine'], 4)} · cos(π · Hamming / dims) = "
            f"{fmt_number(st['cosine_from_hamming'], 4)}",
            f"{a}: {st['bits_a'][:64]}{'…' if st['dims'] > 64 else ''}",
            f"{b}: {st['bits_b'][:64]}{'…' if st['dims'] > 64 else ''}",
        ], None)


def mix_toward(a, b, mix) -> np.ndarray:
    r"""``b`` turned toward ``a``, computed in float32 (chapter 6).

    .. math::  b' = (1 - \text{mix})\,b + \text{mix}\,a
    """
    va = np.asarray(a, dtype=np.float32)
    vb = np.asarray(b, dtype=np.float32)
    return np.float32(1.0 - mix) * vb + np.float32(mix) * va


def embedding_state(a, b, mix, dims, labels=("a", "b")) -> dict:
    """The embedding explorer's displayed values, computed with quantbook.embeddings."""
    from quantbook import embeddings

    va = np.asarray(a, dtype=np.float32)[:dims]
    vb = mix_toward(a, b, mix)[:dims]
    code_a = embeddings.quantize_embeddings(va[None, :], "ubinary")
    code_b = embeddings.quantize_embeddings(vb[None, :], "ubinary")
    hamming = int(np.asarray(embeddings.hamming_distance(code_a[0], code_b[0])))
    # dequantized sign codes are +1 (bit 1) and -1 (bit 0)
    bits_a = (embeddings.dequantize_embeddings(code_a[0], "ubinary", dim=dims) > 0).astype(int)
    bits_b = (embeddings.dequantize_embeddings(code_b[0], "ubinary", dim=dims) > 0).astype(int)
    a64, b64 = va.astype(np.float64), vb.astype(np.float64)
    norm = np.linalg.norm(a64) * np.linalg.norm(b64)
    return {
        "mix": float(mix),
        "dims": int(dims),
        "labels": list(labels),
        "bits_a": "".join(map(str, bits_a.tolist())),
        "bits_b": "".join(map(str, bits_b.tolist())),
        "hamming": hamming,
        "cosine": float(a64 @ b64 / norm) if norm > 0 else 0.0,
        "cosine_from_hamming": float(np.cos(np.pi * hamming / dims)),
    }


def _vector(v, name) -> np.ndarray:
    from quantbook._arrays import to_numpy

    arr = to_numpy(v, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one embedding (a 1-D vector), got shape {arr.shape}")
    return float_data(arr, name)
