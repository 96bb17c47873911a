"""Slides: scripts/make_slides.py turns executed chapters into reveal.js decks that work offline.

A small chapter-like notebook (title, objectives, math, a figure, an exercise, a summary) is
executed with nbclient and made into a deck: the deck must have its slides, the figure as an
embedded image with its alt text, the TeX of the equations, no exercise, and no script, style
sheet or image from anywhere but its own folder. The real chapters are checked too: from the
book build's executed notebooks when they exist (``make book``), else from their sources
(title, objectives and equations need no execution). A browser test opens the deck in headless
Chromium and checks that reveal.js and MathJax start with no request leaving the machine.

reveal.js comes from node_modules (npm package reveal.js, pinned in package.json); set
QUANTBOOK_NODE_MODULES to use another node_modules folder.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import json
import os
import re
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import load_script
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = Path(os.environ.get("QUANTBOOK_NODE_MODULES", ROOT / "node_modules"))
EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"


make_slides = load_script(ROOT / "scripts" / "make_slides.py", "make_slides")

ALT = "A straight line through the origin: the quantized values against the real ones."
CHAPTER = [
    new_code_cell('import importlib.util\nif importlib.util.find_spec("quantbook") is None:\n'
                  '    pass'),
    new_markdown_cell("# 9. A tiny chapter\n\n:::{admonition} Learning objectives\n:class: tip\n\n"
                      "After this chapter you can\n\n- compute the scale, here "
                      "{glue:text}`t-scale:.3f`, of a range {cite}`jacob2018quantization`;\n"
                      "- read equation {eq}`t-eq-zero`.\n:::\n\nSome prose without math."),
    new_code_cell("from quantbook.notebook import glue\n\nglue('t-scale', 180 / 255)"),
    new_markdown_cell("## The math\n\n"
                      "$$\nS = \\frac{\\beta - \\alpha}{q_{\\max} - q_{\\min}}\n$$\n\nand\n\n"
                      "```{math}\n:label: t-eq-zero\n"
                      "Z = \\operatorname{round}(q_{\\min} - \\alpha / S)\n```"),
    new_code_cell("import matplotlib.pyplot as plt\n\n"
                  "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([-1, 1], [-1, 1])\nplt.show()",
                  metadata={"mystnb": {"image": {"alt": ALT},
                                       "figure": {"caption": "The map $x \\mapsto \\hat{x}$."}}}),
    new_markdown_cell("## Exercises\n\n:::{exercise}\n:label: ex-t-secret\n\n"
                      "$$\nSECRET = 42\n$$\n:::"),
    new_markdown_cell("## Summary\n\n- The scale is {glue:text}`t-scale:.3f`.\n- Zero is exact."),
    new_markdown_cell("## References\n\n```{bibliography}\n```"),
]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    for package, needed in [("reveal.js", "dist/reveal.js"), ("mathjax", make_slides.MATHJAX_FILE)]:
        if not (NODE_MODULES / package / needed).exists():
            pytest.fail(f"{NODE_MODULES / package / needed} is missing: the slides need the npm "
                        f"packages reveal.js@{make_slides.REVEAL_VERSION} and mathjax "
                        "(package.json, `npm ci`), or QUANTBOOK_NODE_MODULES set to a "
                        "node_modules folder that has them.")
    return NODE_MODULES


@pytest.fixture(scope="module")
def deck(tmp_path_factory, node_modules) -> Path:
    """The deck of the tiny chapter, executed, in a folder of its own with the assets."""
    nb = new_notebook(cells=[nbformat.from_dict(c) for c in CHAPTER])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    work = tmp_path_factory.mktemp("chapter")
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute()
    out = tmp_path_factory.mktemp("slides")
    make_slides.copy_assets(out, node_modules)
    nbformat.write(nb, out / "09_tiny_chapter.ipynb")
    return make_slides.write_deck(nb, "09_tiny_chapter", out)


class _Resources(html.parser.HTMLParser):
    """Every URL the page loads by itself: scripts, style sheets, images, frames."""

    LOADS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
             "video": "src", "audio": "src", "embed": "src", "object": "data"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        wanted = self.LOADS.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _remote(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url.strip(), re.I))


def assert_offline(page: Path) -> list[str]:
    """No script, style sheet or image from outside the deck's folder; return local URLs."""
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    remote = [u for u in parser.urls if _remote(u)]
    assert not remote, f"{page.name} loads {remote}"
    css = "\n".join(parser.styles)
    assert not re.search(r"(@import|url\()\s*['\"]?(https?:)?//", css), "a style loads a URL"
    local = [u for u in parser.urls if not u.startswith("data:")]
    for url in local:
        assert (page.parent / url.split("?")[0]).is_file(), f"{page.name}: {url} is missing"
    return local


def test_deck_has_slides_math_figure_and_no_exercise(deck):
    text = deck.read_text(encoding="utf-8")
    slides = re.findall(r"<section\b", text)
    assert len(slides) >= 5, f"{len(slides)} sections"  # title, objectives, math, figure, summary
    assert "A tiny chapter" in text and "Learning objectives" in text and "Summary" in text
    assert r"\frac{\beta - \alpha}{q_{\max} - q_{\min}}" in text
    assert r"\operatorname{round}" in text  # the {math} directive, label dropped
    assert "t-eq-zero" not in text.replace("read equation t-eq-zero", "")
    assert re.search(r'<img\b[^>]*\bsrc="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', text)
    assert f'alt="{ALT}"' in text
    assert "SECRET" not in text, "an exercise leaked into the slides"
    assert "0.706" in text, "the glued value was not filled in"
    assert "{cite}" not in text and "{glue" not in text and "jacob2018" not in text


def test_glued_values_from_the_book_builds_sidecar(tmp_path, deck):
    """The book build moves glue outputs into NAME.glue.json; the slides read them there."""
    nb = nbformat.read(deck.with_name("09_tiny_chapter.ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if "scrapbook" not in o.get("metadata", {})]
    path = tmp_path / "09_tiny_chapter.ipynb"
    nbformat.write(nb, path)
    assert make_slides.glue_values(make_slides.read_executed(path)) == {}
    path.with_suffix(".glue.json").write_text(json.dumps({"t-scale": {
        "data": {"text/plain": "0.7058823529411765"}, "output_type": "display_data",
        "metadata": {"scrapbook": {"name": "t-scale", "mime_prefix": ""}}}}), encoding="utf-8")
    summary = make_slides.chapter_outline(make_slides.read_executed(path))["summary"]
    assert "The scale is 0.706." in summary


def test_deck_loads_nothing_from_the_internet(deck):
    local = assert_offline(deck)
    assert "reveal.js/dist/reveal.js" in local and "mathjax/tex-svg-full.js" in local
    for css in (deck.parent / "reveal.js").rglob("*.css"):
        assert not re.search(r"(@import|url\()\s*['\"]?(https?:)?//",
                             css.read_text(encoding="utf-8")), css


def test_every_chapter_makes_a_deck(tmp_path, node_modules):
    """Real chapters: executed ones (after `make book`) in full, the others from source."""
    names = make_slides.chapter_names()
    assert len(names) >= 5
    executed = [n for n in names if (EXECUTED / f"{n}.ipynb").exists()]
    for name in names:
        source = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        outline = make_slides.chapter_outline(source)
        assert re.match(r"^\d+\. ", outline["title"]), name
        assert outline["objectives"] and outline["summary"].strip(), name
        assert any(kind == "math" for s in outline["sections"] for kind, _ in s["items"]), name
    if executed:
        make_slides.build(executed, EXECUTED, tmp_path, node_modules)
        for name in executed:
            page = tmp_path / f"{name}.slides.html"
            text = page.read_text(encoding="utf-8")
            assert len(re.findall(r"<section\b", text)) >= 5, name
            assert "data:image/png;base64," in text, f"{name}: no figure"
            assert "$$" in text, f"{name}: no display math"
            assert_offline(page)
        index = (tmp_path / "index.html").read_text(encoding="utf-8")
        assert all(f"{name}.slides.html" in index for name in executed)


def test_missing_executed_chapter_is_reported(tmp_path, node_modules):
    with pytest.raises(SystemExit, match="make book"):
        make_slides.build(["02_affine_quantization"], tmp_path / "nothing", tmp_path / "out",
                          node_modules)


@pytest.mark.browser
def test_deck_runs_offline_in_chromium(deck, chromium_browser):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(deck.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    outside, errors = [], []

    def guard(route):
        url = route.request.url
        if url.startswith((base, "data:", "file:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        context.route("**/*", guard)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400
                else None)
        for url in (base + deck.name, deck.as_uri()):  # served, and straight from the disk
            page.goto(url, wait_until="load")
            page.wait_for_function("document.body.dataset.deckReady === 'true' && "
                                   "document.body.dataset.mathReady === 'true'", timeout=30_000)
            assert page.evaluate("Reveal.getTotalSlides()") == 5
            assert page.evaluate("document.querySelectorAll('mjx-container').length") >= 3
            assert page.evaluate("document.querySelectorAll('[data-mjx-error], mjx-merror')"
                                 ".length") == 0
            page.evaluate("Reveal.slide(3)")
            assert page.evaluate("document.querySelector('section.present img').naturalWidth") > 0
        assert not outside, outside
        assert not errors, errors
    finally:
        context.close()
        server.shutdown()
        server.server_close()
