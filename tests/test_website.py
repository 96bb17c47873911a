"""The built website, opened page by page in headless Chromium, fully offline.

Needs the built site in _build/html (``make test`` builds it first; the fixtures in conftest.py
fail, not skip, when it is missing). The pages come from _toc.yml and the repository URL from
_config.yml, so nothing here names a chapter or the URL itself. For every page: no console error,
no request leaving 127.0.0.1, MathJax typeset with no raw TeX left, every image loaded, every saved
widget rendered from the site's own assets. Chapter pages also need an "Open in Colab" link to
their notebook on the repository and a link to download the .ipynb.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))

pytestmark = pytest.mark.browser


def toc_pages(toc: dict) -> list[str]:
    """Every document in a jb-book table of contents, in reading order, without suffix."""
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk([toc])
    return [re.sub(r"\.(md|ipynb)$", "", page) for page in pages]


PAGES = toc_pages(TOC)
NOTEBOOK_PAGES = [page for page in PAGES if (ROOT / f"{page}.ipynb").is_file()]
NOTEBOOKS = sorted(
    {ROOT / f"{page}.ipynb" for page in NOTEBOOK_PAGES} | set((ROOT / "notebooks").glob("*.ipynb"))
)

REPOSITORY_URL = CONFIG["repository"]["url"].rstrip("/")
INSTALL_LINE = re.compile(
    r'^\s*%pip install --quiet "quantbook\[(?P<extras>[\w,]+)\] '
    r'@ git\+(?P<url>[^"@]+)@(?P<release>[^"]+)"\s*$',
    re.MULTILINE,
)


def colab_url(page: str) -> str:
    """The Colab launch URL sphinx-book-theme should give ``page``, from _config.yml alone."""
    owner, repo = urlsplit(REPOSITORY_URL).path.strip("/").split("/")[:2]
    branch = CONFIG["repository"].get("branch", "main")
    path = "/".join(
        p for p in (CONFIG["repository"].get("path_to_book", "").strip("/"), f"{page}.ipynb") if p
    )
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner}/{repo}/blob/{branch}/{path}"


# -- the site, in the browser ---------------------------------------------------------------

# Text of the page's main article without code, where raw TeX delimiters must not survive.
PROSE_TEXT_JS = """
() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main");
  const copy = main.cloneNode(true);
  copy.querySelectorAll("pre, code, script, style, mjx-container, .highlight")
      .forEach((node) => node.remove());
  return copy.textContent;
}
"""
MATH_JS = """
() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main");
  const math = Array.from(main.querySelectorAll(".math"));
  return {
    math: math.length,
    untypeset: math.filter((node) => !node.querySelector("mjx-container")).length,
    containers: main.querySelectorAll("mjx-container").length,
    errors: Array.from(main.querySelectorAll("mjx-merror")).map((node) => node.textContent),
  };
}
"""
IMAGES_JS = """
async () => {
  const images = Array.from(document.images);
  images.forEach((img) => { img.loading = "eager"; });
  await Promise.all(images.map((img) => img.complete ? null : new Promise((done) => {
    img.addEventListener("load", done, { once: true });
    img.addEventListener("error", done, { once: true });
  })));
  return images.map((img) => ({ src: img.currentSrc || img.src, width: img.naturalWidth }));
}
"""


def test_toc_lists_every_page_once():
    assert PAGES[0] == TOC["root"]
    assert len(PAGES) == len(set(PAGES)), f"a page is listed twice in _toc.yml: {PAGES}"
    missing = [p for p in PAGES if not any((ROOT / f"{p}{s}").is_file() for s in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_page_works_offline(browser_page, site_url, page):
    """One visit per page (the browser is the slow part): everything a reader relies on."""
    browser_page.open(f"{page}.html")
    assert browser_page.title(), f"{page}: the page has no title"
    browser_page.assert_clean()

    math = browser_page.evaluate(MATH_JS)
    if math["math"]:
        assert math["containers"] > 0 and math["untypeset"] == 0, f"{page}: math not typeset {math}"
    assert not math["errors"], f"{page}: MathJax could not typeset: {math['errors']}"
    prose = browser_page.evaluate(PROSE_TEXT_JS)
    for raw in ("\\(", "\\)", "\\[", "\\]", "$$"):
        assert raw not in prose, f"{page}: raw TeX {raw!r} left in the text"

    images = browser_page.evaluate(IMAGES_JS)
    broken = [image["src"] for image in images if image["width"] == 0]
    assert not broken, f"{page}: images that did not load: {broken}"

    links = browser_page.eval_on_selector_all("a[href]", "nodes => nodes.map(a => a.href)")
    if page == PAGES[0]:
        targets = {link.split("#")[0] for link in links}
        unreachable = [p for p in PAGES[1:] if f"{site_url}{p}.html" not in targets]
        assert not unreachable, f"pages missing from the navigation: {unreachable}"
    if page in NOTEBOOK_PAGES:
        check_chapter_links(browser_page, site_url, page, links)


# One page of each kind: the landing page, a chapter with explorers, a course page, the
# package reference, the search page; every link on them that stays on the site must resolve.
SUB_PATH_PAGES = ["book/intro", "notebooks/02_affine_quantization", "book/course/syllabus",
                  "book/api/index", "search"]
SITE_LINKS_JS = """
() => Array.from(document.querySelectorAll("a[href], link[href], script[src], img[src]"))
  .map((node) => node.href || node.src)
  .filter((url) => url.startsWith(location.origin))
  .map((url) => url.split("#")[0])
"""


@pytest.mark.parametrize("page", SUB_PATH_PAGES)
def test_page_works_from_a_sub_path(chromium_browser, sub_path_site_url, page):
    from conftest import SUB_PATH, GuardedPage

    context = chromium_browser.new_context()
    try:
        guarded = GuardedPage(context, sub_path_site_url)
        guarded.open(f"{page}.html")
        guarded.assert_clean()
        links = sorted(set(guarded.page.evaluate(SITE_LINKS_JS)))
        outside = [url for url in links if not urlsplit(url).path.startswith(SUB_PATH)]
        assert not outside, f"{page}: links that leave the sub-path {SUB_PATH}: {outside}"
        for url in links:
            response = context.request.get(url)
            assert response.ok, f"{page}: {url} answers HTTP {response.status}"
    finally:
        context.close()


def test_favicon_is_served(browser_page, site_url):
    page = browser_page.open("book/intro.html")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon, "no <link rel=icon>: browsers then ask for /favicon.ico and get a 404"
    response = page.request.get(page.url.rsplit("/", 1)[0] + "/" + icon)
    assert response.ok


def test_search_works_offline(browser_page, site_url):
    """The search page finds book pages from its own index, without a network."""
    browser_page.open("search.html?q=quantization")
    results = browser_page.locator("#search-results li a")
    results.first.wait_for()
    hits = {href.split("#")[0] for href in results.evaluate_all("nodes => nodes.map(a => a.href)")}
    assert hits & {f"{site_url}{page}.html" for page in PAGES}, f"search found no book page: {hits}"
    browser_page.assert_clean()


def check_chapter_links(browser_page, site_url: str, page: str, links: list[str]) -> None:
    """A chapter opens in Colab from the repository and offers its .ipynb for download."""
    expected = colab_url(page)
    colab = {link for link in links if link.startswith("https://colab.research.google.com/")}
    assert colab == {expected}, f"{page}: Colab links {sorted(colab)}, expected {expected!r}"

    download = f"{site_url}_sources/{page}.ipynb"
    assert download in links, f"{page}: no link to download {download}"
    response = browser_page.request.get(download)
    assert response.status == 200, f"{download}: HTTP {response.status}"
    assert "cells" in json.loads(response.body()), f"{download} is not a notebook"


# -- one repository URL --------------------------------------------------------------------


class _FakeShell:
    """Stands in for IPython: records the magics a cell runs instead of running them."""

    def __init__(self):
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name, line, *args, **kwargs):
        self.magics.append((name, line))


def first_code_cell(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code, f"{notebook.name} has no code cell"
    source = code[0]["source"]
    return source if isinstance(source, str) else "".join(source)


def run_install_cell(source: str, quantbook_installed: bool, monkeypatch) -> list:
    """Execute the install cell as IPython would, with or without quantbook importable."""
    import importlib.util

    from IPython.core.inputtransformer2 import TransformerManager

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "quantbook" and not quantbook_installed:
            return None
        return real_find_spec(name, *args, **kwargs)

    shell = _FakeShell()
    with monkeypatch.context() as patch:
        patch.setattr(importlib.util, "find_spec", find_spec)
        exec(TransformerManager().transform_cell(source), {"get_ipython": lambda: shell})
    return shell.magics


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found (notebooks/*.ipynb and _toc.yml are empty)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_install_cell_follows_config(notebook, monkeypatch):
    source = first_code_cell(notebook)
    match = INSTALL_LINE.search(source)
    assert match, f"{notebook.name}: the first code cell has no quantbook %pip install line"
    assert match["url"] == REPOSITORY_URL, (
        f"{notebook.name} installs from {match['url']}, _config.yml says {REPOSITORY_URL}"
    )
    assert set(match["extras"].split(",")) <= {"book", "models"}, match["extras"]
    # A semester's notebooks install one fixed release, the one _config.yml names.
    assert match["release"] == CONFIG["repository"]["release"], (
        f"{notebook.name} installs {match['release']}, _config.yml says "
        f"{CONFIG['repository']['release']}"
    )

    assert run_install_cell(source, True, monkeypatch) == [], (
        f"{notebook.name}: the install cell runs a magic although quantbook is installed"
    )
    expected = ("pip", match.group(0).strip().removeprefix("%pip "))
    assert run_install_cell(source, False, monkeypatch) == [expected], (
        f"{notebook.name}: the install cell does not install quantbook when it is missing"
    )


def test_repository_links_agree():
    """Colab links/badges, git+ installs and quantbook repository links follow _config.yml."""
    owner_repo = urlsplit(REPOSITORY_URL).path.strip("/")
    patterns = [
        re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)"),
        re.compile(r"git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?[\"'@#\s]"),
        re.compile(r"github\.com/([\w.-]+/quantbook)\b"),
    ]
    sources = [ROOT / "README.md", *sorted((ROOT / "book").rglob("*.md")), *NOTEBOOKS]
    wrong = []
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            for found in pattern.findall(text):
                if found != owner_repo:
                    wrong.append(f"{path.relative_to(ROOT)}: {found}")
    assert not wrong, f"links to another repository than {REPOSITORY_URL}: {wrong}"


def test_slides_are_published_with_the_site(site_dir):
    """`make book` puts one reveal.js deck per chapter into the site, listed on slides/index."""
    index = (site_dir / "slides" / "index.html").read_text(encoding="utf-8")
    chapters = [page for page in NOTEBOOK_PAGES if re.search(r"/\d\d_", page)]
    for page in chapters:
        deck = f"{Path(page).name}.slides.html"
        assert (site_dir / "slides" / deck).is_file(), f"no deck for {page}"
        assert deck in index, f"slides/index.html does not list {deck}"
