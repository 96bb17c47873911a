"""FloatBitsExplorer: type a number, see its bits in five float formats (chapter 1)."""

from __future__ import annotations

import math
import re

import numpy as np
import traitlets

from quantbook.explorers._base import Explorer, ExplorerError, ExplorerTypeError, check_choice

# The formats shown, widest first: name -> (exponent bits, mantissa bits, has infinities).
FORMATS = {
    "float32": (8, 23, True),
    "float16": (5, 10, True),
    "bfloat16": (8, 7, True),
    "float8_e4m3fn": (4, 3, False),
    "float8_e5m2": (5, 2, True),
}
OVERFLOW = ("ieee", "saturate")
OVERFLOW_LABELS = {
    "ieee": "IEEE, as ml_dtypes: ±inf (NaN in float8_e4m3fn, which has no inf)",
    "saturate": "saturate to ±max (as torch casts to float8_e4m3fn)",
}

# What the explorer accepts as a number (the browser uses the same rule): a decimal number
# with an optional exponent, or inf / infinity / nan, with an optional sign.
NUMBER = re.compile(
    r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\s*$", re.IGNORECASE
)
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def parse_number(text) -> float:
    """The typed text as a Python float (a double), by the explorer's rule; NaN is positive."""
    if not isinstance(text, str):
        raise ExplorerTypeError(f"text must be a string holding a number, got {text!r}")
    if not NUMBER.match(text):
        raise ExplorerError(
            f"text must be a decimal number such as -0.1, 3e-5, inf or nan, got {text!r}"
        )
    x = float(text.strip())
    return math.nan if math.isnan(x) else x  # JavaScript has one NaN, without a sign


def _dtype(name: str) -> np.dtype:
    if name in ("float32", "float16"):
        return np.dtype(name)
    import ml_dtypes

    return np.dtype(getattr(ml_dtypes, name))


def largest(name: str) -> float:
    import ml_dtypes

    return float(ml_dtypes.finfo(_dtype(name)).max)


def _json_number(v: float):
    """A float for JSON: finite numbers as numbers, the others as "inf", "-inf", "nan"."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def float_bits_state(text: str, overflow: str = "ieee") -> dict:
    """The explorer's displayed values, computed with NumPy and ml_dtypes.

    The typed number x (a double) is rounded to float32 first, as a weight stored in float32
    would be; every narrower format is then a cast of that float32 value, round to nearest,
    ties to even (NumPy for float16, ml_dtypes for the others; ml_dtypes also casts a float64
    through float32). Overflow: ``"ieee"`` keeps the libraries' rule (+-inf; NaN for
    float8_e4m3fn, which has no infinity), ``"saturate"`` makes anything beyond +-max,
    infinity included, +-max first. NaN stays NaN. Errors are ``value - x`` in float64.
    """
    x = parse_number(text)
    check_choice(overflow, OVERFLOW, "overflow")
    with np.errstate(over="ignore"):
        x32 = np.array([x], dtype=np.float32)
    rows = []
    for name, (e, m, has_inf) in FORMATS.items():
        bits = 1 + e + m
        top = largest(name)
        v = x32
        if overflow == "saturate" and not math.isnan(x):
            v = np.clip(x32, -np.float32(top), np.float32(top))
        with np.errstate(over="ignore", invalid="ignore"):
            y = v.astype(_dtype(name))
            plain = x32.astype(_dtype(name))  # without saturation, to flag overflow
        pattern = int(y.view(_UINT[bits])[0])
        word = format(pattern, f"0{bits}b")
        sign, exp, man = word[0], word[1 : 1 + e], word[1 + e :]
        value = float(y.astype(np.float64)[0])
        E, M = int(exp, 2), int(man, 2)
        if math.isnan(value):
            kind = "nan"
        elif math.isinf(value):
            kind = "inf"
        elif E == 0:
            kind = "zero" if M == 0 else "subnormal"
        else:
            kind = "normal"
        error = value - x if math.isfinite(value) and math.isfinite(x) else None
        rows.append({
            "name": name,
            "bits": bits,
            "exponent_bits": e,
            "mantissa_bits": m,
            "bias": 2 ** (e - 1) - 1,
            "max": top,
            "has_inf": has_inf,
            "pattern": pattern,
            "sign": sign,
            "exponent": exp,
            "mantissa": man,
            "E": E,
            "M": M,
            "value": _json_number(value),
            "kind": kind,
            "error": error,
            "rel_error": abs(error) / abs(x) if error is not None and x != 0 else None,
            "overflow": bool(math.isfinite(x) and not np.isfinite(plain.astype(np.float64)[0])),
        })
    return {"text": text, "x": _json_number(x), "overflow": overflow, "formats": rows}


class FloatBitsExplorer(Explorer):
    """Type a number and see its bits in float32, float16, bfloat16, float8 e4m3fn and e5m2.

    Each format's sign, exponent and mantissa fields are drawn in colour, with the stored value,
    the rounding error against the typed number and what kind of value it is (normal, subnormal,
    zero, inf, NaN). The typed number is read as float32 first; the narrower formats are casts of
    that float32, round to nearest, ties to even, as NumPy (float16) and ml_dtypes compute them.

    Overflow is shown as the libraries do it (``overflow="ieee"``): float32, float16, bfloat16
    and e5m2 become +-inf, float8_e4m3fn, which has no infinity, becomes NaN (ml_dtypes 0.6's rule;
    values up to 464 still round down to 448). ``overflow="saturate"`` instead clamps anything
    beyond +-max, infinity included, to +-max: what torch 2.13's cast to float8_e4m3fn does (torch
    keeps inf for the other formats). Both are labelled in the explorer.

    Parameters
    ----------
    text : str, a number such as "0.1", "-0", "1e-7", "465", "inf" or "nan"
    overflow : "ieee" or "saturate"

    Traits (synced): ``text``, ``overflow``. ``value`` is the typed number as a float.
    """

    _esm = Explorer.module("floatbits.js")

    text = traitlets.Unicode("0.1").tag(sync=True)
    overflow = traitlets.Unicode("ieee").tag(sync=True)

    def __init__(self, text="0.1", overflow="ieee"):
        if not isinstance(text, str):  # a number is welcome too: its shortest repr
            if isinstance(text, bool) or not isinstance(text, (int, float, np.integer,
                                                               np.floating)):
                raise ExplorerTypeError(f"text must be a number or a string, got {text!r}")
            text = repr(float(text))
        parse_number(text)
        super().__init__(text=text, overflow=check_choice(overflow, OVERFLOW, "overflow"))

    @traitlets.validate("text")
    def _valid_text(self, proposal):
        parse_number(proposal["value"])
        return proposal["value"]

    @traitlets.validate("overflow")
    def _valid_overflow(self, proposal):
        return check_choice(proposal["value"], OVERFLOW, "overflow")

    @property
    def value(self) -> float:
        return parse_number(self.text)

    def state(self) -> dict:
        """The browser's ``data-state``, computed in Python with NumPy and ml_dtypes."""
        return float_bits_state(self.text, self.overflow)

    def _fallback(self):
        st = self.state()
        rows = []
        for f in st["formats"]:
            err = "" if f["error"] is None else f"{f['error']:.3g}"
            label = f["kind"] + (" (overflow)" if f["overflow"] else "")
            rows.append([f["name"], f"{f['sign']} {f['exponent']} {f['mantissa']}",
                         _short(f["value"]), err, label])
        return (
            f"Float bits of x = {self.text}",
            [f"overflow: {OVERFLOW_LABELS[self.overflow]}"],
            ("The stored bits (sign exponent mantissa)",
             ["format", "bits", "stored value", "error", "kind"], rows),
        )


def _short(v) -> str:
    return v if isinstance(v, str) else f"{v:.10g}"
