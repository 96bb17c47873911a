"""Live explorers for the book: sliders whose arithmetic runs in the browser (chapters 1-11).

Each explorer is an `anywidget <https://anywidget.dev>`_ widget. Its JavaScript ships inside
this package (``*.js`` next to this file) and is sent to the page with the widget, never fetched,
so the explorers respond in JupyterLab, Jupyter Notebook, VS Code, Colab and on the book's
static website, where there is no kernel at all.

- :class:`FloatBitsExplorer` (chapter 1): a typed number's bits in five float formats.
- :class:`AffineExplorer` (chapter 2): scale, zero point and bit width over a histogram.
- :class:`BitWidthExplorer` (chapter 3): 2 to 8 bits, symmetric or affine, MSE and SQNR.
- :class:`GranularityExplorer` (chapter 4): per-tensor / per-channel / per-group, an outlier.
- :class:`PackingExplorer` (chapter 5): int4 values into bytes, for every nibble order.
- :class:`EmbeddingExplorer` (chapter 6): sign bits, Hamming distance against cosine.
- :class:`MicroscalingExplorer` (chapter 8): 32 values in MXFP4 or NVFP4, every code shown.
- :class:`KQuantExplorer` (chapter 9): a Q4_K super-block's bytes; click a weight, see its bits.
- :class:`SmoothQuantExplorer` (chapter 11): SmoothQuant's α on a real MiniLM layer, W8A8
  against float.

The browser computes exactly what ``quantbook`` computes (round half to even, the same
clamping, float32 where quantbook uses float32). The explorer's root element carries
``data-explorer="NAME"`` and ``data-state``, the JSON of its settings and displayed values,
updated on every change; ``explorer.state()`` computes the same dictionary in Python.
The settings are traits that sync both ways: move a slider, then read ``explorer.scale`` in the
next cell (with a running kernel), or set ``explorer.bits = 4`` and watch the explorer follow.

Without JavaScript
------------------
Displaying an explorer shows two outputs: a plain HTML rendering of its starting state (settings,
key figures and a small table, computed by ``state()``), then the widget. The widget hides the
HTML as it renders, so readers with JavaScript see the live explorer only, and readers without it
(or a viewer without widget support) still see what the explorer would show at first.

Colab
-----
Colab shows third-party widgets only through its *custom widget manager*. The first explorer
created in a Colab session turns it on (``google.colab.output.enable_custom_widget_manager()``),
so a student simply runs the cell: the explorer appears under it, a second or two later on the
first run while Colab loads its widget manager, and responds at once to every slider. No setup
cell, no restart. Colab prints no message about this. If the output area stays empty (an old
Colab tab, or the manager blocked by the browser), re-running the cell shows it; the Python
side (``explorer.state()``, ``explorer.scale``) works either way.
"""

from quantbook.explorers.affine import AffineExplorer
from quantbook.explorers.bitwidth import BitWidthExplorer
from quantbook.explorers.embedding import EmbeddingExplorer
from quantbook.explorers.floatbits import FloatBitsExplorer
from quantbook.explorers.granularity import GranularityExplorer
from quantbook.explorers.kquant import KQuantExplorer
from quantbook.explorers.microscaling import MicroscalingExplorer
from quantbook.explorers.packing import PackingExplorer
from quantbook.explorers.smoothquant import SmoothQuantExplorer

__all__ = [
    "FloatBitsExplorer",
    "AffineExplorer",
    "BitWidthExplorer",
    "GranularityExplorer",
    "PackingExplorer",
    "EmbeddingExplorer",
    "MicroscalingExplorer",
    "KQuantExplorer",
    "SmoothQuantExplorer",
]
