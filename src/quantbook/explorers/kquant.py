"""KQuantExplorer: one Q4_K super-block as a byte map; click a weight, see its bits (chapter 9)."""

from __future__ import annotations

import math

import numpy as np
import traitlets

from quantbook import formats, kquants
from quantbook._arrays import to_numpy
from quantbook._blocks import read_float16
from quantbook.explorers._base import (
    BlockPoolExplorer,
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    fmt_number,
    sample_blocks,
)

N_WEIGHTS = kquants.QK_K  # 256 weights per super-block
N_BYTES = kquants.Q4_K_BYTES  # 144 bytes: d, dmin (fp16), 12 scale bytes, 128 bytes of nibbles
SCALES_AT = 4  # the 12 packed scale/min bytes are bytes 4..15 of the block
CODES_AT = 16  # the 128 bytes of nibbles are bytes 16..143
POOL_BLOCKS = 8  # super-blocks of real weights sent to the browser to step through


def number(v) -> float | str:
    """A float32 value for JSON: finite as a float, else "nan", "inf" or "-inf" (random bytes
    hold fp16 infinities and NaNs, and JSON has neither)."""
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def code_location(weight: int) -> dict:
    """Where weight i's 4-bit code sits: sub-block j = i // 32, l = i % 32; the byte is
    16 + 32 * (j // 2) + l, low nibble for even j, high nibble for odd j."""
    j, k = divmod(weight, 32)
    return {"byte": CODES_AT + 32 * (j // 2) + k, "from_bit": 4 * (j % 2), "n_bits": 4, "to_bit": 0}


def scale_min_pieces(j: int) -> tuple[list[dict], list[dict]]:
    """Where sub-block j's 6-bit scale and 6-bit min sit in the block (``get_scale_min_k4``).

    Each piece takes ``n_bits`` bits of block byte ``byte`` starting at bit ``from_bit`` and puts
    them at bit ``to_bit`` of the 6-bit value. Sub-blocks 0-3: the low 6 bits of bytes 4+j (scale)
    and 8+j (min). Sub-blocks 4-7 are split: the low 4 bits are the low (scale) and high (min)
    nibble of byte 8+j, the top 2 bits are bits 6-7 of bytes j (scale) and 4+j (min).
    """
    if j < 4:
        return ([{"byte": SCALES_AT + j, "from_bit": 0, "n_bits": 6, "to_bit": 0}],
                [{"byte": SCALES_AT + 4 + j, "from_bit": 0, "n_bits": 6, "to_bit": 0}])
    return ([{"byte": 8 + j, "from_bit": 0, "n_bits": 4, "to_bit": 0},
             {"byte": j, "from_bit": 6, "n_bits": 2, "to_bit": 4}],
            [{"byte": 8 + j, "from_bit": 4, "n_bits": 4, "to_bit": 0},
             {"byte": 4 + j, "from_bit": 6, "n_bits": 2, "to_bit": 4}])


def _with_bits(pieces: list[dict], raw: list[int]) -> list[dict]:
    out = []
    for p in pieces:
        v = (raw[p["byte"]] >> p["from_bit"]) & ((1 << p["n_bits"]) - 1)
        out.append({**p, "bits": format(v, f"0{p['n_bits']}b")})
    return out


def kquant_state(raw, weight: int) -> dict:
    r"""Everything the explorer shows for weight ``weight`` of the Q4_K block ``raw`` (144 bytes).

    .. math::

        x_i = d\, s_j\, q_i - d_{\min}\, m_j, \qquad j = \lfloor i / 32 \rfloor

    computed in float32 step by step: (d · s_j), then (d · s_j) · q_i, then d_min · m_j, then the
    difference (ggml's order). The scales and mins are unpacked with
    :func:`quantbook.kquants.unpack_scales_mins_k4`, every decoded value comes from
    :func:`quantbook.formats.decode_q4_k`.
    """
    block = np.asarray(raw, dtype=np.uint8)
    values = formats.decode_q4_k(block)
    raw_list = [int(b) for b in block]
    d = read_float16(block[0:2])[0]
    dmin = read_float16(block[2:4])[0]
    scales, mins = kquants.unpack_scales_mins_k4(block[SCALES_AT:CODES_AT])
    j, k = divmod(int(weight), 32)
    code = _with_bits([code_location(int(weight))], raw_list)[0]
    q = int(code["bits"], 2)
    sc_pieces, mn_pieces = (_with_bits(p, raw_list) for p in scale_min_pieces(j))
    sc, mn = int(scales[j]), int(mins[j])
    f = np.float32
    with np.errstate(invalid="ignore", over="ignore"):  # random bytes: fp16 inf and NaN
        d_sc = f(d * f(sc))
        d_sc_q = f(d_sc * f(q))
        dmin_m = f(dmin * f(mn))
        x = f(d_sc_q - dmin_m)
    return {
        "format": "q4_k",
        "raw": raw_list,
        "weight": int(weight),
        "sub_block": j,
        "index_in_sub_block": k,
        "d_bits": format(raw_list[0] | raw_list[1] << 8, "016b"),
        "d": number(d),
        "dmin_bits": format(raw_list[2] | raw_list[3] << 8, "016b"),
        "dmin": number(dmin),
        "scales": [int(s) for s in scales],
        "mins": [int(m) for m in mins],
        "code": {**code, "value": q},
        "scale": {"pieces": sc_pieces, "value": sc},
        "min": {"pieces": mn_pieces, "value": mn},
        "steps": {"d_sc": number(d_sc), "d_sc_q": number(d_sc_q), "dmin_m": number(dmin_m),
                  "x": number(x)},
        "values": [number(v) for v in values],
    }


class KQuantExplorer(BlockPoolExplorer):
    """One Q4_K super-block (256 weights in 144 bytes) as a byte map.

    Click a weight (or type its index, or click a byte) to see which bytes and bits hold its
    4-bit code, its sub-block's 6-bit scale and 6-bit min (split across three bytes for
    sub-blocks 4-7), d and dmin, and x = d · sc · q − dmin · m computed step by step in float32.

    Parameters
    ----------
    raw : 144 bytes (uint8 array, ``bytes``, or a list of ints 0-255): one Q4_K block, any bytes
        (a block cut from a GGUF file, or random bytes: it is only decoded)
    weights : keyword only: floats to encode instead, with ``formats.encode_q4_k``. Their last
        axis is cut into aligned super-blocks of 256 (the flattened array when the last axis is
        not a multiple of 256) and ``blocks`` of them are picked with ``seed``.
    weight : the weight shown first (0-255)

    Traits (synced): ``raw`` (144 ints), ``weight``, ``pool`` (the encoded super-blocks) and
    ``block`` (which of them is shown; -1 for bytes given or typed).
    """

    _esm = Explorer.module("kquant.js")

    raw = traitlets.List(traitlets.Int()).tag(sync=True)
    weight = traitlets.Int(0).tag(sync=True)
    pool = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
    _shows = "raw"  # a pool block shown goes into raw

    def __init__(self, raw=None, *, weights=None, seed=0, blocks=POOL_BLOCKS, weight=0):
        if (raw is None) == (weights is None):
            raise ValueError("raw, weights: give either raw (144 bytes of one Q4_K block) or "
                             "weights (floats to encode), not both or neither")
        if weights is not None:
            pool = encoded_blocks(weights, seed, blocks)
            raw, block = pool[0], 0
        else:
            pool, raw, block = [], _check_raw(raw), -1
        super().__init__(raw=raw, weight=_check_weight(weight), pool=pool, block=block)

    @traitlets.validate("raw")
    def _valid_raw(self, proposal):
        return _check_raw(proposal["value"])

    @traitlets.validate("weight")
    def _valid_weight(self, proposal):
        return _check_weight(proposal["value"])

    def state(self) -> dict:
        """The browser's ``data-state``, computed with quantbook.kquants and formats."""
        return kquant_state(self.raw, self.weight)

    def _fallback(self):
        st = self.state()
        s, c = st["steps"], st["code"]
        lines = [
            f"d = fp16 {st['d_bits']} (bytes 0-1) = {fmt_number(st['d'])}; "
            f"dmin = fp16 {st['dmin_bits']} (bytes 2-3) = {fmt_number(st['dmin'])}",
            f"weight {st['weight']}: sub-block {st['sub_block']}, code q = {c['value']} in bits "
            f"{c['from_bit']}-{c['from_bit'] + 3} of byte {c['byte']}",
            f"scale {st['scale']['value']} from {_where(st['scale']['pieces'])}; "
            f"min {st['min']['value']} from {_where(st['min']['pieces'])}",
            f"x = (d·sc)·q − dmin·m = {fmt_number(s['d_sc'])} × {c['value']} − "
            f"{fmt_number(s['dmin_m'])} = {fmt_number(s['x'])}",
        ]
        rows = []
        for j in range(8):
            sp, mp = scale_min_pieces(j)
            rows.append([j, f"{32 * j}-{32 * j + 31}", st["scales"][j], _bytes_of(sp),
                         st["mins"][j], _bytes_of(mp)])
        return ("Q4_K super-block: 256 weights in 144 bytes", lines,
                ("The eight sub-blocks and the bytes that hold their 6-bit scale and min",
                 ["sub-block", "weights", "scale", "scale bytes", "min", "min bytes"], rows))


def _where(pieces) -> str:
    return " + ".join(f"bits {p['from_bit']}-{p['from_bit'] + p['n_bits'] - 1} of byte "
                      f"{p['byte']} ({p['bits']})" for p in pieces)


def _bytes_of(pieces) -> str:
    return ", ".join(str(p["byte"]) for p in pieces)


def encoded_blocks(weights, seed: int, blocks: int) -> list[list[int]]:
    """``blocks`` aligned super-blocks of 256 consecutive weights, picked with ``seed``
    (:func:`~quantbook.explorers._base.sample_blocks`) and encoded with ``formats.encode_q4_k``,
    as lists of 144 ints."""
    picked = sample_blocks(weights, N_WEIGHTS, seed, blocks)
    return [formats.encode_q4_k(b).tolist() for b in picked]


def _check_raw(raw) -> list[int]:
    if isinstance(raw, (bytes, bytearray)):
        raw = np.frombuffer(bytes(raw), dtype=np.uint8)
    if isinstance(raw, str):
        raise ExplorerTypeError("raw must be 144 bytes (uint8), got a string")
    if isinstance(raw, (list, tuple)):
        if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 0 <= b <= 255
                   for b in raw):
            raise ExplorerTypeError("raw must be 144 bytes: a list of ints 0-255, a uint8 array "
                                    "or bytes")
        raw = np.asarray(raw, dtype=np.uint8)
    a = to_numpy(raw, "raw")
    if a.dtype != np.uint8:
        raise ExplorerTypeError(f"raw must be a uint8 array of 144 bytes, got dtype {a.dtype}")
    if a.size != N_BYTES:
        raise ExplorerError(f"raw must be {N_BYTES} bytes (one Q4_K super-block), got {a.size}")
    return [int(b) for b in a.ravel()]


def _check_weight(w) -> int:
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)):
        raise ExplorerTypeError(f"weight must be an int 0-255, got {w!r}")
    if not 0 <= w < N_WEIGHTS:
        raise ExplorerError(f"weight must be in 0-255 (one of the 256 weights), got {w}")
    return int(w)
