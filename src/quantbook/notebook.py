"""Small helpers for the chapter notebooks, so they run the same in the book, Jupyter and Colab."""

from __future__ import annotations


def glue(name: str, value, display: bool = False) -> None:
    """Hand ``value`` to myst-nb's ``glue`` so the book's prose can quote it.

    Outside a Jupyter Book build (Colab, plain Jupyter) myst-nb may be missing; the value is then
    shown when ``display`` is true and otherwise dropped, so a notebook runs everywhere.
    NumPy scalars become Python numbers first: NumPy 2 would print ``np.float64(0.5)``, which
    breaks the book's format specs such as ``{glue:text}`name:.2f```.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)



def glue_all(values: dict, prefix: str = "") -> None:
    """Glue every ``name: value`` pair of ``values`` under ``prefix + name``, as :func:`glue` does.

    One call replaces a column of ``glue`` lines at the end of a cell::

        glue_all({"step": step, "error": error}, prefix="ch02_")   # ch02_step, ch02_error
    """
    if not isinstance(values, dict):
        raise TypeError(f"values must be a dict of name -> value, got {type(values).__name__}")
    for name, value in values.items():
        glue(f"{prefix}{name}", value)


def timed(function, repeats: int = 3, per: int = 1):
    """Call ``function()`` ``repeats`` times; return the last result and the best ms per item.

    The best of a few runs is the least disturbed by whatever else the machine is doing; ``per``
    divides the time among the items one call handles (the queries of a batch search, say), so
    ``ms`` below is milliseconds per query::

        (ids, scores), ms = timed(lambda: search_dot(queries, corpus, 10), per=len(queries))

    The times depend on the machine, so a chapter prints and glues them, and never asserts them.
    """
    import time

    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not isinstance(per, int) or isinstance(per, bool) or per < 1:
        raise ValueError(f"per must be a positive integer (items per call), got {per!r}")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, 1000 * best / per


def cpu_capability() -> str:
    """The vector instructions torch detects on this CPU (e.g. AVX2, AVX512), as a phrase.

    The best one-word summary of a CPU for the book's timings and for behaviour that depends on
    the CPU; chapters glue it beside such facts. Without torch: a phrase that says so.
    """
    try:
        import torch
    except ImportError:
        return "CPU capability unknown (torch not installed)"
    return f"{torch.backends.cpu.get_cpu_capability()} vector instructions"


def blas_threads():
    """How many threads NumPy's BLAS library uses (an int), or a phrase when unknown.

    Read with threadpoolctl; a float32 matrix product's time depends on it.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "an unknown number of"
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"),
               default="an unknown number of")


# Okabe & Ito (2008): eight colours distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
COLORS = list(OKABE_ITO.values())[1:] + ["#000000"]


def use_book_style() -> None:
    """Set matplotlib defaults for the book: colour-blind-safe cycle, readable sizes."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(
        {
            "axes.prop_cycle": cycler(color=COLORS),
            "figure.figsize": (7.0, 3.6),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
        }
    )
