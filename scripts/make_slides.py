"""Build a short reveal.js slide deck of each chapter's key figures and equations.

The decks are made from the *executed* chapter notebooks that the book build leaves in
``_build/jupyter_execute/notebooks/`` (``make book``), so the figures are the book's own. Each
deck is chosen automatically, with no tags in the chapters:

- a title slide (the chapter's ``#`` heading);
- the learning objectives (the "Learning objectives" admonition);
- for each ``##`` section, in order: its display equations (``$$...$$``, ``{math}`` blocks,
  ``\\begin{align}`` environments; at most three per slide) and its figures (one per slide, with
  the figure's caption and alt text from the cell's ``mystnb`` metadata);
- the summary.

Exercises, solutions and references are left out; MyST roles are simplified (glued numbers are
filled in from the executed notebook, citations dropped).

nbconvert's ``SlidesExporter`` writes the decks, with ``reveal_url_prefix`` pointing at a copy
of reveal.js next to them and MathJax 3 (SVG output, one self-contained file) from the same
folder: the decks load nothing from the internet and work offline, also from ``file://``.
reveal.js and MathJax come from ``node_modules/`` (npm packages ``reveal.js`` and ``mathjax``,
pinned in package.json)::

    .venv/bin/python scripts/make_slides.py         # every chapter -> _build/html/slides/
    .venv/bin/python scripts/make_slides.py 02_affine_quantization
    .venv/bin/python scripts/make_slides.py --execute-missing  # run chapters the build has not

Layout written::

    _build/html/slides/index.html                      the list of decks
    _build/html/slides/NN_name.slides.html             one deck per chapter
    _build/html/slides/reveal.js/{dist,plugin/notes}/  reveal.js (theme "white", speaker notes: "s")
    _build/html/slides/mathjax/tex-svg-full.js         MathJax 3, all TeX extensions, SVG output
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell, new_notebook, new_raw_cell

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"
OUTPUT = ROOT / "_build" / "html" / "slides"  # published with the site
NODE_MODULES = Path(os.environ.get("QUANTBOOK_NODE_MODULES", ROOT / "node_modules"))

REVEAL_VERSION = "5.2.1"  # the reveal.js package.json pins (nbconvert's template fits 4.x-5.x)
REVEAL_THEME = "white"  # its fonts are bundled; some other themes import Google Fonts
MATHJAX_FILE = "es5/tex-svg-full.js"  # SVG output needs no font files; "full": no autoloading

MAX_EQUATIONS_PER_SLIDE = 3
GLUE_METADATA = "quantbook_slides_glue"  # where read_executed() keeps the glued values
DENSE_TEXT_CHARS = 800  # objectives or summary longer than this get a smaller font
SKIPPED_SECTIONS = re.compile(r"^(exercises?|references?|summary|further reading)\b", re.I)

#: The deck template: nbconvert's reveal template without its CDN scripts (jQuery, require.js,
#: mermaid), with MathJax 3 and reveal.js loaded from local files.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{#- The figures are raw HTML cells written by this script (nbconvert would escape <figure>). -#}
{%- block rawcell scoped -%}
{%- if cell.metadata.get("raw_mimetype", "") == "text/html" -%}{{ cell.source }}{%- endif -%}
{%- endblock rawcell -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true},
  svg: {fontCache: "global"},
  options: {enableMenu: false},
  startup: {pageReady: function () {
    return MathJax.startup.defaultPageReady().then(function () {
      document.body.dataset.mathReady = "true";
    });
  }}
};
</script>
<script src="{{ resources.mathjax_url }}"></script>
<style>
.reveal .slides section { text-align: left; }
.reveal .slides section h1, .reveal .slides section h2 { text-align: left; }
.reveal .slides section .qb-title { text-align: center; margin-top: 25%; }
.reveal figure.qb-figure { margin: 0; text-align: center; }
.reveal figure.qb-figure img { width: 100%; height: 540px; object-fit: contain; margin: 0 auto; }
.reveal figure.qb-figure figcaption { font-size: 0.55em; color: #444; margin-top: 0.4em; }
.reveal .qb-equations mjx-container { margin: 0.6em 0 !important; }
.reveal .slides section p, .reveal .slides section li { font-size: 26px; line-height: 1.35; }
.reveal .slides section li { margin-bottom: 0.35em; }
.reveal .qb-equations { font-size: 30px; }
.reveal .qb-dense p, .reveal .qb-dense li { font-size: 21px; }
.reveal .qb-source { font-size: 0.5em; color: #555; }
</style>
{%- endblock html_head_js_mathjax -%}
{%- block footer_js -%}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true, progress: true, hash: true, center: false,
  transition: "{{ resources.reveal.transition }}", slideNumber: "c/t",
  width: 1280, height: 800, plugins: [RevealNotes]
}).then(function () { document.body.dataset.deckReady = "true"; });
</script>
{%- endblock footer_js -%}
"""

INDEX = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Quantbook slides</title>
<style>body {{ font-family: sans-serif; max-width: 44em; margin: 3em auto; line-height: 1.5; }}
</style></head>
<body>
<h1>Quantbook: slides</h1>
<p>One short deck per chapter: its learning objectives, key equations, figures and summary.
Press <kbd>s</kbd> for the speaker view, <kbd>f</kbd> for full screen, <kbd>Esc</kbd> for the
overview.</p>
<ol>
{items}
</ol>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# Reading a chapter
# --------------------------------------------------------------------------------------------


def glue_values(nb) -> dict[str, str]:
    """Glued values of an executed notebook: name -> its text/plain form.

    They are glue outputs in the notebook (nbclient, Jupyter) or, for the book build's copies,
    in the ``.glue.json`` file next to it, which :func:`read_executed` puts in the metadata.
    """
    values = dict(nb.metadata.get(GLUE_METADATA, {}))
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            data = output.get("data", {})
            text = data.get(meta.get("mime_prefix", "") + "text/plain")
            if text is not None:
                values[meta["name"]] = text
    return values


def read_executed(path: Path) -> nbformat.NotebookNode:
    """An executed chapter, with the glued values myst-nb keeps beside it (``NAME.glue.json``)."""
    nb = nbformat.read(path, as_version=4)
    sidecar = path.with_suffix(".glue.json")
    if sidecar.exists():
        glued = json.loads(sidecar.read_text(encoding="utf-8"))
        nb.metadata[GLUE_METADATA] = {
            name: output["data"]["text/plain"] for name, output in glued.items()
            if "text/plain" in output.get("data", {})}
    return nb


def _glued(name_and_format: str, glue: dict[str, str]) -> str:
    name, _, spec = name_and_format.partition(":")
    text = glue.get(name.strip())
    if text is None:
        return "…"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if spec:
        try:
            number = float(text.removeprefix("np.float64(").removeprefix("np.float32(")
                           .removesuffix(")"))
            return format(int(number) if spec.endswith("d") else number, spec)
        except ValueError:
            return text
    return text


def simplify_myst(text: str, glue: dict[str, str]) -> str:
    """MyST roles to plain Markdown: glued values filled in, citations dropped."""
    text = re.sub(r"\{glue(?::\w*)?\}`([^`]+)`", lambda m: _glued(m.group(1), glue), text)
    text = re.sub(r"\s*\{cite(?::\w+)?\}`[^`]*`", "", text)
    text = re.sub(r"\{math\}`([^`]*)`", r"$\1$", text)
    text = re.sub(r"\{(?:ref|numref|doc|eq)\}`([^`<]*?)\s*<[^`>]*>`", r"\1", text)
    text = re.sub(r"\{(?:ref|numref|doc|eq)\}`([^`]*)`", r"\1", text)
    text = re.sub(r"\{[\w:-]+\}`([^`]*)`", r"\1", text)  # {term}, {abbr}, {sub-ref}, ...
    return text


def directive_blocks(text: str):
    """MyST directives of a Markdown cell: (name, argument, body lines, first, last line)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^\s*(`{3,}|:{3,})\{([\w:-]+)\}\s*(.*)$", lines[i])
        if not opening:
            i += 1
            continue
        fence, name, argument = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = lines[i + 1 : end]
        while body and re.match(r"^\s*:[\w-]+:", body[0]):  # directive options
            body = body[1:]
        yield name, argument.strip(), body, i, end
        i = end + 1


def display_math(text: str) -> list[str]:
    """The display equations of a Markdown cell, as TeX (directive bodies excluded)."""
    lines = text.splitlines()
    kept, equations = [], []
    taken = set()
    for name, _argument, body, first, last in directive_blocks(text):
        taken.update(range(first, last + 1))
        if name == "math":
            equations.append((first, "\n".join(body).strip()))
    for index, line in enumerate(lines):
        kept.append("" if index in taken else line)
    outside = "\n".join(kept)
    for match in re.finditer(r"\$\$(.+?)\$\$(?:\s*\([\w:-]+\))?", outside, re.S):
        equations.append((outside.count("\n", 0, match.start()), match.group(1).strip()))
    for match in re.finditer(r"^\\begin\{(\w+\*?)\}.*?^\\end\{\1\}", outside, re.S | re.M):
        equations.append((outside.count("\n", 0, match.start()), match.group(0).strip()))
    return [tex for _, tex in sorted(equations) if tex]


def outside_directives(text: str) -> str:
    lines = text.splitlines()
    for _name, _argument, _body, first, last in directive_blocks(text):
        for index in range(first, min(last + 1, len(lines))):
            lines[index] = ""
    return "\n".join(lines)


def figures(cell) -> list[dict]:
    """Images a code cell displays: mime type, base64 data, alt text and caption."""
    meta = cell.metadata.get("mystnb", {})
    alt = meta.get("image", {}).get("alt", "")
    caption = meta.get("figure", {}).get("caption", "")
    found = []
    for output in cell.get("outputs", []):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        data = output.get("data", {})
        for mime in ("image/png", "image/jpeg", "image/svg+xml"):
            if mime in data:
                payload = data[mime]
                if mime == "image/svg+xml":
                    payload = base64.b64encode(payload.encode("utf-8")).decode("ascii")
                found.append({"mime": mime, "data": payload.replace("\n", ""), "alt": alt,
                              "caption": caption})
                break
    return found


def chapter_outline(nb) -> dict:
    """Title, objectives, per-section equations and figures, and summary of a chapter."""
    glue = glue_values(nb)
    outline = {"title": "", "objectives": "", "sections": [], "summary": ""}
    section = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = cell.source
            for name, argument, body, _first, _last in directive_blocks(text):
                if name == "admonition" and argument.lower().startswith("learning objectives"):
                    outline["objectives"] = simplify_myst("\n".join(body).strip(), glue)
            plain = outside_directives(text)
            # a cell may hold several headings: walk it in parts, each under its heading
            parts = re.split(r"^(#{1,2} .*)$", plain, flags=re.M)
            for part in parts:
                heading = re.match(r"^(#{1,2}) (.*)$", part)
                if heading:
                    level, title = heading.groups()
                    title = simplify_myst(title.strip(), glue)
                    if level == "#" and not outline["title"]:
                        outline["title"] = title
                        section = None
                    elif level == "##":
                        section = {"title": title, "items": []}
                        outline["sections"].append(section)
                    continue
                if section is None:
                    continue
                if re.match(r"^summary\b", section["title"], re.I):
                    outline["summary"] += simplify_myst(part, glue)
                elif not SKIPPED_SECTIONS.match(section["title"]):
                    section["items"] += [("math", tex) for tex in display_math(part)]
            if section is not None and not SKIPPED_SECTIONS.match(section["title"]):
                for name, _argument, body, _first, _last in directive_blocks(text):
                    if name == "math":
                        section["items"].append(("math", "\n".join(body).strip()))
        elif cell.cell_type == "code" and section is not None:
            if not SKIPPED_SECTIONS.match(section["title"]):
                section["items"] += [("figure", figure) for figure in figures(cell)]
    outline["sections"] = [s for s in outline["sections"] if s["items"]]
    return outline


# --------------------------------------------------------------------------------------------
# Building a deck
# --------------------------------------------------------------------------------------------


def _slide(cell, kind: str = "slide"):
    cell.metadata["slideshow"] = {"slide_type": kind}
    return cell


def _caption_html(caption: str, glue: dict[str, str]) -> str:
    text = html.escape(simplify_myst(caption, glue), quote=False)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _text_block(markdown: str) -> str:
    """Bullets of a text slide; long ones in a smaller font so that they fit."""
    dense = " qb-dense" if len(markdown) > DENSE_TEXT_CHARS else ""
    return f'<div class="qb-text{dense}">\n\n{markdown}\n\n</div>'


def deck_notebook(nb, source_name: str) -> nbformat.NotebookNode:
    """The slides of one executed chapter, as a notebook for nbconvert's SlidesExporter."""
    glue = glue_values(nb)
    outline = chapter_outline(nb)
    title = outline["title"] or source_name
    cells = [_slide(new_markdown_cell(
        f'<div class="qb-title">\n\n# {title}\n\n'
        f'<p class="qb-source">Quantbook · slides from <code>notebooks/{source_name}.ipynb'
        "</code></p>\n\n</div>"))]
    if outline["objectives"]:
        cells.append(_slide(new_markdown_cell(
            "## Learning objectives\n\n" + _text_block(outline["objectives"]))))
    for section in outline["sections"]:
        pending: list[str] = []

        def flush(pending=pending, section=section):
            if pending:
                body = "\n\n".join(f"$$\n{tex}\n$$" for tex in pending)
                cells.append(_slide(new_markdown_cell(
                    f"## {section['title']}\n\n<div class=\"qb-equations\">\n\n{body}\n\n</div>")))
                pending.clear()

        for kind, item in section["items"]:
            if kind == "math":
                pending.append(item)
                if len(pending) == MAX_EQUATIONS_PER_SLIDE:
                    flush()
                continue
            flush()
            alt = html.escape(item["alt"] or f"A figure of the section {section['title']}")
            caption = _caption_html(item["caption"], glue)
            cells.append(_slide(new_markdown_cell(f"## {section['title']}")))
            figure = (f'<figure class="qb-figure"><img src="data:{item["mime"]};base64,'
                      f'{item["data"]}" alt="{alt}">'
                      + (f"<figcaption>{caption}</figcaption>" if caption else "")
                      + "</figure>")
            raw = new_raw_cell(figure)
            raw.metadata["raw_mimetype"] = "text/html"
            cells.append(_slide(raw, "-"))
        flush()
    if outline["summary"].strip():
        cells.append(_slide(new_markdown_cell(
            "## Summary\n\n" + _text_block(outline["summary"].strip()))))
    deck = new_notebook(cells=cells)
    deck.metadata = {"title": title,
                     "kernelspec": nb.metadata.get("kernelspec", {"name": "python3"})}
    return deck


def exporter(reveal_prefix: str = "reveal.js", mathjax_url: str = "mathjax/tex-svg-full.js"):
    from nbconvert import SlidesExporter

    slides = SlidesExporter()
    slides.raw_template = TEMPLATE
    slides.reveal_url_prefix = reveal_prefix
    slides.reveal_theme = REVEAL_THEME
    slides.reveal_transition = "none"
    slides.mathjax_url = mathjax_url
    # Not used by the template above; set so that nothing points at a CDN anyway.
    slides.require_js_url = ""
    slides.jquery_url = ""
    slides.mermaid_js_url = ""
    slides.font_awesome_url = ""
    slides.exclude_input = True
    return slides


def write_deck(nb, name: str, out_dir: Path) -> Path:
    body, _resources = exporter().from_notebook_node(deck_notebook(nb, name))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.slides.html"
    path.write_text(body, encoding="utf-8")
    return path


def copy_assets(out_dir: Path, node_modules: Path = NODE_MODULES) -> None:
    """reveal.js and MathJax from node_modules/ into the slides folder."""
    reveal = node_modules / "reveal.js"
    mathjax = node_modules / "mathjax"
    missing = [p for p in (reveal / "dist" / "reveal.js", mathjax / MATHJAX_FILE) if not p.exists()]
    if missing:
        raise SystemExit(
            "make_slides: missing " + ", ".join(str(p) for p in missing) + ". The slides need "
            f"the npm packages reveal.js@{REVEAL_VERSION} and mathjax in package.json; run "
            "`npm ci --no-audit --no-fund` (or set QUANTBOOK_NODE_MODULES to a node_modules "
            "folder that has them).")
    version = json.loads((reveal / "package.json").read_text(encoding="utf-8"))["version"]
    if version.split(".")[0] != REVEAL_VERSION.split(".")[0]:
        print(f"make_slides: warning: reveal.js {version} installed, {REVEAL_VERSION} expected",
              file=sys.stderr)
    target = out_dir / "reveal.js"
    if target.exists():
        shutil.rmtree(target)
    theme = reveal / "dist" / "theme"

    def unused(folder, names):
        # Only the theme in use (other themes @import fonts from Google) and its fonts.
        skip = {n for n in names if n.endswith(".map")}
        if Path(folder) == theme:
            skip |= {n for n in names if n.endswith(".css") and n != f"{REVEAL_THEME}.css"}
        if Path(folder) == theme / "fonts":
            skip |= set(names) - {"source-sans-pro"}
        return skip

    shutil.copytree(reveal / "dist", target / "dist", ignore=unused)
    shutil.copytree(reveal / "plugin" / "notes", target / "plugin" / "notes")
    shutil.copy2(reveal / "LICENSE", target / "LICENSE")
    (out_dir / "mathjax").mkdir(parents=True, exist_ok=True)
    shutil.copy2(mathjax / MATHJAX_FILE, out_dir / "mathjax" / Path(MATHJAX_FILE).name)
    shutil.copy2(mathjax / "LICENSE", out_dir / "mathjax" / "LICENSE")


def write_index(out_dir: Path, decks: list[tuple[str, str]]) -> Path:
    items = "\n".join(f'<li><a href="{html.escape(name)}.slides.html">{html.escape(title)}</a>'
                      "</li>" for name, title in decks)
    path = out_dir / "index.html"
    path.write_text(INDEX.format(items=items), encoding="utf-8")
    return path


def execute(nb, timeout: int = 600):
    """Run a chapter in a fresh kernel, in an empty folder (as the book build does)."""
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as folder:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": folder}}).execute()
    return nb


def chapter_names() -> list[str]:
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def build(names: list[str], executed: Path = EXECUTED, out_dir: Path = OUTPUT,
          node_modules: Path = NODE_MODULES, execute_missing: bool = False) -> list[Path]:
    """Write one deck per chapter in ``names`` plus the assets and the index."""
    copy_assets(out_dir, node_modules)
    written, listed = [], []
    for name in names:
        path = executed / f"{name}.ipynb"
        if path.exists():
            nb = read_executed(path)
        elif execute_missing:
            print(f"make_slides: executing {name} (not in {executed})")
            nb = execute(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4))
        else:
            raise SystemExit(
                f"make_slides: {path} is missing. Build the book first (`make book`), or pass "
                "--execute-missing to run the chapter here.")
        deck = write_deck(nb, name, out_dir)
        written.append(deck)
        listed.append((name, chapter_outline(nb)["title"] or name))
        print(f"make_slides: {deck}")
    write_index(out_dir, listed)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names, e.g. 02_affine_quantization "
                                                    "(default: every chapter)")
    parser.add_argument("--executed", type=Path, default=EXECUTED,
                        help="folder of executed chapter notebooks (default: the book build's)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the decks go")
    parser.add_argument("--node-modules", type=Path, default=NODE_MODULES,
                        help="node_modules folder holding reveal.js and mathjax")
    parser.add_argument("--execute-missing", action="store_true",
                        help="execute chapters that have no executed copy")
    args = parser.parse_args(argv)
    names = args.chapters or chapter_names()
    unknown = sorted(set(names) - set(chapter_names()))
    if unknown:
        parser.error(f"unknown chapters {unknown}; chapters are {chapter_names()}")
    decks = build(names, args.executed, args.output, args.node_modules, args.execute_missing)
    print(f"make_slides: {len(decks)} decks; open {args.output / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
