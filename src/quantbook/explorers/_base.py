"""What every explorer shares: its JavaScript from package files, Colab set-up, data sampling."""

from __future__ import annotations

import html
import math
import sys
import uuid
from importlib import resources

import anywidget
import numpy as np
import traitlets

from quantbook._arrays import check_bits, check_finite, to_numpy

# Most points an explorer sends to the browser for its histogram and error figures. Enough for
# a smooth histogram, small enough that a notebook with five explorers stays light.
MAX_POINTS = 4096

_colab_ready = False


def _enable_colab_widgets() -> None:
    """In Colab, turn on the custom widget manager (once) so anywidget explorers can display."""
    global _colab_ready
    if _colab_ready or "google.colab" not in sys.modules:
        return
    from google.colab import output  # only importable inside Colab

    output.enable_custom_widget_manager()
    _colab_ready = True


def _asset(name: str) -> str:
    """Text of a file shipped inside this package (never fetched from the network)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _esm(name: str) -> str:
    """One self-contained ES module: the shared helpers followed by the explorer's own code.

    The browser loads ``_esm`` as a single module with no imports, so the helpers are joined in
    as text here rather than imported there.
    """
    return _asset("common.js") + "\n" + _asset(name)


class ExplorerError(traitlets.TraitError, ValueError):
    """A bad setting: a ValueError (as everywhere in quantbook) that traitlets also understands
    (a failed trait change is rolled back)."""


class ExplorerTypeError(traitlets.TraitError, TypeError):
    """A setting of the wrong kind: a TypeError that traitlets also understands."""


class Explorer(anywidget.AnyWidget):
    """Base class: an anywidget whose root element carries ``data-explorer`` and ``data-state``.

    Static fallback
    ---------------
    Displaying an explorer (the last line of a cell, or ``display(explorer)``) shows two outputs:
    first a plain HTML rendering of its starting state (a ``div.qb-fallback`` whose ``id`` is the
    synced trait ``_fallback_id``, with a text/plain twin), then the widget itself. Where
    JavaScript runs, the widget hides the fallback as it renders (common.js, ``follow``); where
    it does not (JavaScript off, a viewer without widget support) the page still shows the
    explorer's settings and values. The fallback is computed by ``state()`` in Python.
    Subclasses describe it with ``_fallback()``: a title, a list of lines, and an optional table
    ``(caption, header, rows)``.
    """

    _css = _asset("explorers.css")
    module = staticmethod(_esm)
    _ready = False  # observers that derive settings wait until the constructor is done
    _fallback_id = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs) -> None:
        _enable_colab_widgets()
        kwargs.setdefault("_fallback_id", f"qb-fallback-{uuid.uuid4().hex[:16]}")
        super().__init__(**kwargs)
        self._ready = True

    # -- the static fallback -------------------------------------------------------------------
    def _fallback(self):
        """(title, lines, table or None) describing the current state; see the class docstring."""
        return type(self).__name__, [], None

    def fallback_html(self) -> str:
        """The explorer's current state as plain HTML (no script, no style sheet needed)."""
        title, lines, table = self._fallback()
        esc = html.escape
        parts = [
            f'<div class="qb-fallback" id="{esc(self._fallback_id)}" '
            f'data-qb-fallback="{esc(type(self).__name__)}">',
            f"<p><strong>{esc(title)}</strong></p>",
            f"<p><em>{esc(FALLBACK_NOTE)}</em></p>",
        ]
        if lines:
            parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>")
        if table is not None:
            caption, header, rows = table
            cell = 'style="padding: 0.1rem 0.6rem; text-align: right"'
            parts.append(f'<table class="table"><caption>{esc(caption)}</caption><thead><tr>')
            parts += [f"<th {cell}>{esc(str(c))}</th>" for c in header]
            parts.append("</tr></thead><tbody>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td {cell}>{esc(str(c))}</td>" for c in row)
                             + "</tr>")
            parts.append("</tbody></table>")
        parts.append("</div>")
        return "".join(parts)

    def fallback_text(self) -> str:
        """The same as plain text."""
        title, lines, table = self._fallback()
        out = [title, FALLBACK_NOTE, *(f"- {line}" for line in lines)]
        if table is not None:
            caption, header, rows = table
            out += [caption, " | ".join(map(str, header))]
            out += [" | ".join(map(str, row)) for row in rows]
        return "\n".join(out)

    def _display_bundles(self) -> list[tuple[dict, dict]]:
        """What displaying the explorer publishes, as (data, metadata): the fallback, then the
        widget."""
        fallback = {"text/html": self.fallback_html(), "text/plain": self.fallback_text()}
        widget = self._repr_mimebundle_()
        if not isinstance(widget, tuple):
            widget = (widget, {})
        return [(fallback, {}), (widget[0], widget[1] or {})]

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for data, metadata in self._display_bundles():
            display(data, metadata=metadata, raw=True)


class BlockPoolExplorer(Explorer):
    """An explorer that steps through a pool of sample blocks of real weights.

    ``pool`` (synced) holds the blocks (from :func:`sample_blocks`), ``block`` (synced) which of
    them is shown. Setting ``block`` copies that block into the trait named by ``_shows`` (the
    shown values or bytes); editing that trait away from the block sets ``block`` to -1 (typed
    or dragged). Subclasses declare ``pool`` with their element type and name ``_shows``.
    """

    _shows = "values"
    block = traitlets.Int(-1).tag(sync=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.observe(self._edited, names=self._shows)

    @traitlets.validate("block")
    def _valid_block(self, proposal):
        b = proposal["value"]
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not (
                -1 <= b < len(self.pool)):
            raise ExplorerError(f"block must be -1 or an index into pool, got {b!r}")
        return int(b)

    @traitlets.observe("block")
    def _show_block(self, change):
        if self._ready and change["new"] >= 0:
            setattr(self, self._shows, self.pool[change["new"]])

    def _edited(self, change):
        if self._ready and self.block >= 0 and change["new"] != self.pool[self.block]:
            self.block = -1


FALLBACK_NOTE = (
    "The live explorer needs JavaScript and shows here when it runs. Without it, this is its "
    "starting state, computed by quantbook."
)


def fmt_number(v, digits: int = 6) -> str:
    """A number for the fallback text: None (an infinite SQNR) as "∞"."""
    if v is None:
        return "∞"
    if isinstance(v, (bool, str)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}g}"


def check_int_bits(bits) -> int:
    """``bits`` as an int in 2..8 (quantbook's check, raised as an ExplorerError)."""
    try:
        return check_bits(bits)
    except TypeError as err:
        raise ExplorerTypeError(str(err)) from None
    except ValueError as err:
        raise ExplorerError(str(err)) from None


def check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ExplorerTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value, choices, name: str) -> str:
    if value not in choices:
        raise ExplorerError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def float_data(x, name: str) -> np.ndarray:
    """``x`` as a flat float32 array, checked: finite, at least one value."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32).ravel()
    check_finite(a, name)
    if a.size == 0:
        raise ValueError(f"{name} must hold at least one value to explore, got an empty array")
    return a


def sample(a: np.ndarray, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` values of ``a`` (flat), always keeping its smallest and largest.

    Deterministic (seeded) and in the original order, so the histogram and every range computed
    from the sample (min, max, ``max |x|``) equal those of the full data.
    """
    if a.size <= max_points:
        return a
    keep = {int(np.argmin(a)), int(np.argmax(a))}
    rng = np.random.default_rng(seed)
    rest = rng.choice(a.size, size=max_points, replace=False)
    for i in rest.tolist():
        if len(keep) == max_points:
            break
        keep.add(i)
    return a[np.sort(np.fromiter(keep, dtype=np.int64))]


def points(a: np.ndarray, k: int = 9) -> np.ndarray:
    """``k`` data values spread over the data (its quantiles), shown exactly in a table."""
    order = np.sort(a)
    idx = np.unique(np.round(np.linspace(0, order.size - 1, min(k, order.size))).astype(int))
    return order[idx]


def finite_or_none(v):
    """A float for JSON: +-inf (no noise, no signal) becomes None, as JSON has no infinity."""
    v = float(v)
    return v if math.isfinite(v) else None


def as_list(a: np.ndarray) -> list:
    """float32 values as Python floats: JSON carries them exactly (each is a float64 too)."""
    return np.asarray(a, dtype=np.float64).tolist()


def real_floats(x, name: str) -> np.ndarray:
    """``x`` as float32, its shape kept, checked: real numbers (bool, int, float), finite."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiub":
        raise ExplorerTypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = np.asarray(a, dtype=np.float32)
    check_finite(a, name)
    return a


def sample_blocks(weights, size: int, seed: int, blocks: int) -> np.ndarray:
    """``blocks`` aligned blocks of ``size`` consecutive weights, picked with ``seed``: (k, size)
    float32, k = min(blocks, blocks available).

    The last axis of ``weights`` is cut into aligned blocks of ``size``, as a block format stores
    it (the flattened array when the last axis is not a multiple of ``size``).
    """
    w = real_floats(weights, "weights")
    rows = w.reshape(-1, w.shape[-1]) if w.ndim and w.shape[-1] % size == 0 else w.reshape(1, -1)
    per_row = rows.shape[1] // size
    if per_row == 0:
        raise ExplorerError(f"weights must hold at least {size} values, got {w.size}")
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 1:
        raise ExplorerError(f"blocks must be a positive integer, got {blocks!r}")
    cut = rows[:, :per_row * size].reshape(-1, size)
    rng = np.random.default_rng(seed)
    return cut[rng.choice(cut.shape[0], size=min(int(blocks), cut.shape[0]), replace=False)]
