"""PackingExplorer: int4 values in, bytes out, every bit drawn, for each nibble order (chapter 5).
"""

from __future__ import annotations

import numpy as np
import traitlets

from quantbook.explorers._base import (
    Explorer,
    ExplorerError,
    ExplorerTypeError,
    check_choice,
    check_flag,
)


class PackingExplorer(Explorer):
    """Pack 4-bit integers two per byte and see which nibble of which byte each one lands in.

    Parameters
    ----------
    values : sequence of ints, in [-8, 7] (signed) or [0, 15] (unsigned); at most 64
    order : one of quantbook.packing.ORDERS ("gguf" needs a multiple of 32 values)
    signed : bool

    Traits (synced): ``values`` (list of int), ``order``, ``signed``. Switching ``signed``
    keeps every nibble's bits and reads them the other way (-1 <-> 15), so the bytes stay the
    same. The values can be typed into the explorer (comma separated).
    """

    _esm = Explorer.module("packing.js")

    values = traitlets.List(traitlets.Int()).tag(sync=True)
    order = traitlets.Unicode("low-first").tag(sync=True)
    signed = traitlets.Bool(True).tag(sync=True)
    orders = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(self, values, order="low-first", signed=True):
        from quantbook import packing

        values = _check_values(values)
        order = check_choice(order, packing.ORDERS, "order")
        signed = check_flag(signed, "signed")
        packing.pack_int4(np.asarray(values, dtype=np.int16).reshape(-1), signed, order)  # checks
        super().__init__(values=values, order=order, signed=signed, orders=list(packing.ORDERS))

    @traitlets.validate("order")
    def _valid_order(self, proposal):
        from quantbook import packing

        return check_choice(proposal["value"], packing.ORDERS, "order")

    @traitlets.validate("values")
    def _valid_values(self, proposal):
        values = _check_values(proposal["value"])
        low, high = (-8, 7) if self.signed else (0, 15)
        bad = [v for v in values if not low <= v <= high]
        if bad:
            kind = "signed" if self.signed else "unsigned"
            raise ExplorerError(f"values must be in [{low}, {high}] for {kind} int4, got {bad[0]}")
        return values

    @traitlets.observe("signed")
    def _reinterpret(self, change):
        # Same bits, other reading: values out of range for the new type keep their nibble.
        if self._ready:
            self.values = reinterpret(self.values, self.signed)

    def packed(self) -> np.ndarray:
        """The bytes (uint8), by quantbook.packing.pack_int4."""
        from quantbook import packing

        return packing.pack_int4(np.asarray(self.values, dtype=np.int16), self.signed, self.order)

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with quantbook."""
        return packing_state(self.values, self.order, self.signed)

    def _fallback(self):
        st = self.state()
        lines = [f"values: {', '.join(map(str, st['values']))}",
                 f"nibble order {st['order']}, {'signed' if st['signed'] else 'unsigned'} int4"]
        if st["error"]:
            return ("Packing int4: two values per byte", [*lines, st["error"]], None)
        rows = [[i, b, f"0x{b:02x}", bits] for i, (b, bits) in
                enumerate(zip(st["bytes"], st["bits"], strict=True))]
        return ("Packing int4: two values per byte", lines,
                ("The bytes (high nibble | low nibble)", ["byte", "value", "hex", "bits"], rows))


def reinterpret(values, signed) -> list[int]:
    """Each value's nibble read as signed (two's complement) or unsigned int4."""
    from quantbook import packing

    nibbles = [v & 15 for v in values]
    if signed:
        return np.asarray(packing.from_nibble(np.asarray(nibbles, dtype=np.uint8))).tolist()
    return nibbles


def packing_state(values, order, signed) -> dict:
    """The packing explorer's displayed values, computed with quantbook (error text if any)."""
    from quantbook import packing

    state = {"values": list(values), "order": order, "signed": bool(signed), "n": len(values)}
    q = np.asarray(values, dtype=np.int16).reshape(-1)
    try:
        packed = packing.pack_int4(q, signed, order)
    except ValueError as err:
        state.update(bytes=None, bits=None, unpacked=None, error=str(err))
        return state
    state.update(
        nibbles=[format(v & 15, "04b") for v in values],
        bytes=packed.astype(int).tolist(),
        bits=np.asarray(packing.byte_bits(packed)).tolist(),
        unpacked=packing.unpack_int4(packed, len(values), signed, order).astype(int).tolist(),
        error=None,
    )
    return state


def _check_values(values) -> list[int]:
    from quantbook._arrays import to_numpy

    a = to_numpy(values, "values")
    if a.ndim != 1:
        raise ExplorerError(f"values must be a flat sequence of integers, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a != np.rint(a)):
            raise ExplorerTypeError(f"values must be whole numbers (int4 values), got {a.dtype}")
    if a.size > 64:
        raise ExplorerError(f"values: at most 64 values fit on the screen, got {a.size}")
    if a.size and (a.min() < -8 or a.max() > 15):
        raise ExplorerError(
            f"values must be int4 values in [-8, 7] (signed) or [0, 15] (unsigned), "
            f"got {a.min()}..{a.max()}"
        )
    return [int(v) for v in a]
