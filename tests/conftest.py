"""Shared pytest fixtures.

Exercise checks
---------------
``run`` (function)
    ``run(check, answer)`` calls a chapter check (``quantbook.exercises.chNN.check_*``) and returns
    ``(result, printed)``: the bool it returned and what it printed. ::

        def test_scale(run):
            ok, out = run(ch02.check_scale, 180 / 255)
            assert ok is True and out.startswith("Correct!")

Browser fixtures
----------------
For tests marked ``browser`` (tests/test_website.py, tests/test_explorers_browser.py). They open
the BUILT website, ``_build/html`` (``make book`` / ``jupyter-book build .`` makes it; these
fixtures fail loudly when it is missing, they never skip), in Debian's headless Chromium
(``/usr/bin/chromium``) driven by Playwright. Every request that would leave 127.0.0.1 is aborted
and recorded, so a page that needs the internet fails its test instead of hanging.

``site_dir`` (session)
    Path of ``_build/html``.
``site_url`` (session)
    Base URL of the built site, ending in ``/``, served by ``http.server`` on 127.0.0.1 (a free
    port, in a background thread): ``site_url + "notebooks/02_affine_quantization.html"``.
``chromium_browser`` (module)
    One headless Chromium per test module.
``browser_page`` (function)
    A fresh page (its own browser context) with the guards attached. It is a :class:`GuardedPage`:

    - ``browser_page.page``: the Playwright ``Page``; every other attribute is forwarded to it, so
      ``browser_page.goto(url)``, ``browser_page.locator(css)`` work as on a plain page;
    - ``browser_page.external_requests``: URLs the page tried to load from anywhere but
      127.0.0.1 (they were aborted); ``data:`` and ``blob:`` URLs are allowed;
    - ``browser_page.console_errors``: ``console.error`` messages and uncaught page errors;
    - ``browser_page.failed_responses``: local requests that failed or got HTTP status >= 400;
    - ``browser_page.console_messages``: every console message as ``"type: text"``;
    - ``browser_page.widget_errors``: saved widgets that could not be rendered (no saved state,
      or the manager could only show an error box);
    - ``browser_page.open(path)``: go to ``site_url + path``, wait until the page is loaded,
      MathJax has typeset and every saved widget view has rendered;
    - ``browser_page.wait_for_mathjax()`` / ``browser_page.wait_for_widgets()``: those waits alone;
    - ``browser_page.problems()``: all recorded problems as a list of strings (empty if none);
      ``browser_page.assert_clean()`` fails with that list.

Example::

    pytestmark = pytest.mark.browser

    def test_affine_explorer(browser_page):
        browser_page.open("notebooks/02_affine_quantization.html")
        root = browser_page.locator('[data-explorer="affine"]')
        ...
        browser_page.assert_clean()
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run and every machine: a failure in CI is one
# anybody can reproduce, and a green run is not luck. (Per-test @settings keep this.)
settings.register_profile("quantbook", derandomize=True, print_blob=True)
settings.load_profile("quantbook")

ROOT = Path(__file__).resolve().parents[1]

SITE_DIR = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
# How long one page may take to load, typeset its math and render its widgets (milliseconds).
PAGE_TIMEOUT_MS = 30_000

# Saved widget views, split into those not rendered yet and those that cannot be rendered because
# the page holds no saved state for their model (the notebook did not finish executing). See
# @jupyter-widgets/html-manager's libembed: it inserts a div.widget-subarea before each view tag
# whose model it knows and renders the view into it.
WIDGET_VIEWS_JS = """
() => {
  const known = new Set();
  document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')
    .forEach((tag) => Object.keys(JSON.parse(tag.textContent).state || {})
      .forEach((id) => known.add(id)));
  const views = Array.from(
    document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const rendered = (tag) => {
    const area = tag.previousElementSibling;
    return Boolean(area && area.classList.contains("widget-subarea")
                   && area.firstElementChild && area.firstElementChild.childElementCount > 0);
  };
  const ids = views.map((tag) => JSON.parse(tag.textContent).model_id);
  return {
    unrendered: views.filter((tag, i) => known.has(ids[i]) && !rendered(tag)).length,
    stateless: ids.filter((id) => !known.has(id)),
  };
}
"""
# The widget manager shows a view it cannot create as an error box instead.
WIDGET_ERRORS_JS = """
() => Array.from(document.querySelectorAll(".jupyter-widgets-error-widget"))
  .map((box) => box.textContent.trim().slice(0, 200))
"""


def is_local(url: str) -> bool:
    """True for URLs that stay on this machine: 127.0.0.1, data: and blob:."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname == LOCAL_HOST


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        pass


@pytest.fixture(scope="session")
def site_dir() -> Path:
    if not (SITE_DIR / "index.html").is_file():
        pytest.fail(
            f"The website is not built: {SITE_DIR / 'index.html'} is missing. Build it first "
            "(`make book`, or: npm ci --no-audit --no-fund && .venv/bin/python "
            "scripts/vendor_assets.py && .venv/bin/jupyter-book build . --builder html -W -n "
            "--keep-going)."
        )
    return SITE_DIR


@contextlib.contextmanager
def _serve(handler_class, site_dir: Path, prefix: str = "/"):
    """Serve ``site_dir`` on a free port of 127.0.0.1 in a background thread; yield its URL."""
    handler = functools.partial(handler_class, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def site_url(site_dir):
    with _serve(_QuietHandler, site_dir) as url:
        yield url


# GitHub Pages serves a project's site from https://<owner>.github.io/<repo>/, not from the
# root: the site is also served under this prefix, and everything outside it is a 404.
SUB_PATH = "/quantbook/"


class _SubPathHandler(_QuietHandler):
    def translate_path(self, path):
        if not path.startswith(SUB_PATH):
            return str(SITE_DIR / "no such file: outside the sub-path")
        return super().translate_path("/" + path[len(SUB_PATH):])


@pytest.fixture(scope="session")
def sub_path_site_url(site_dir):
    """Base URL of the built site served under ``SUB_PATH``, as GitHub Pages serves it."""
    with _serve(_SubPathHandler, site_dir, SUB_PATH) as url:
        yield url


@pytest.fixture(scope="module")
def chromium_browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class GuardedPage:
    """A Playwright page whose external requests, console errors and failed loads are recorded."""

    def __init__(self, context, base_url: str):
        self.context = context
        self.base_url = base_url
        self.external_requests: list[str] = []
        self.console_errors: list[str] = []
        self.failed_responses: list[str] = []
        self.console_messages: list[str] = []
        self.widget_errors: list[str] = []
        context.route("**/*", self._guard)
        self.page = context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_pageerror)
        self.page.on("response", self._on_response)
        self.page.on("requestfailed", self._on_requestfailed)
        self.page.on("websocket", self._on_websocket)

    def __getattr__(self, name):
        if name == "page":  # not created yet: don't recurse
            raise AttributeError(name)
        return getattr(self.page, name)

    # -- recorders -------------------------------------------------------------------------
    def _guard(self, route):
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.external_requests.append(url)
            route.abort("blockedbyclient")

    def _on_console(self, message):
        self.console_messages.append(f"{message.type}: {message.text}")
        if message.type == "error":
            where = message.location or {}
            self.console_errors.append(
                f"{message.text} ({where.get('url', '?')}:{where.get('lineNumber', '?')})"
            )

    def _on_pageerror(self, error):
        self.console_errors.append(f"uncaught {error.name}: {error.message}")

    def _on_response(self, response):
        if response.status >= 400:
            self.failed_responses.append(f"HTTP {response.status} {response.url}")

    def _on_requestfailed(self, request):
        if is_local(request.url):
            self.failed_responses.append(f"failed ({request.failure}) {request.url}")

    def _on_websocket(self, websocket):
        if not is_local(websocket.url):
            self.external_requests.append(websocket.url)

    # -- helpers ---------------------------------------------------------------------------
    def wait_for_mathjax(self) -> None:
        """Wait until MathJax has typeset the page (no-op on pages without math)."""
        if self.page.locator('script[src*="mathjax/"]').count() == 0:
            return
        self.page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
        )
        self.page.evaluate("() => MathJax.startup.promise.then(() => true)")

    def wait_for_widgets(self) -> None:
        """Wait until every saved widget view on the page has been rendered (or failed to)."""
        stateless = self.page.evaluate(WIDGET_VIEWS_JS)["stateless"]
        self.widget_errors.extend(
            f"no saved widget state for model {model_id} (did the notebook execute fully?)"
            for model_id in stateless
        )
        try:
            self.page.wait_for_function(f"({WIDGET_VIEWS_JS})().unrendered === 0")
        except Exception as error:  # a timeout: say which page and what was recorded
            raise AssertionError(
                f"widgets on {self.page.url} did not render: {self.problems()}"
            ) from error
        self.widget_errors.extend(
            f"shown as an error box: {text}" for text in self.page.evaluate(WIDGET_ERRORS_JS)
        )

    def open(self, path: str = ""):
        """Open ``site_url + path`` and wait for load, math and widgets."""
        self.page.goto(self.base_url + path, wait_until="load")
        self.wait_for_mathjax()
        self.wait_for_widgets()
        return self.page

    def problems(self) -> list[str]:
        found = [f"external request: {url}" for url in self.external_requests]
        found += [f"console error: {text}" for text in self.console_errors]
        found += [f"failed load: {text}" for text in self.failed_responses]
        found += [f"widget not rendered: {text}" for text in self.widget_errors]
        found += [
            f"widget manager fell back to a CDN: {text}"
            for text in self.console_messages
            if "Falling back to" in text
        ]
        return found

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, f"{self.page.url}:\n  " + "\n  ".join(problems)


@pytest.fixture
def browser_page(chromium_browser, site_url):
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    guarded = GuardedPage(context, site_url)
    try:
        yield guarded
    finally:
        context.close()


@pytest.fixture
def run(capsys):
    """``run(check, answer) -> (result, printed)``: a chapter check's bool and what it printed."""
    def run_check(check, answer):
        capsys.readouterr()  # drop what was printed before: the output is this check's alone
        result = check(answer)
        return result, capsys.readouterr().out

    return run_check


@pytest.fixture
def grades(run):
    """``grades(check, right, slips)``: ``right`` passes with "Correct!"; every ``(answer, hint)``
    of ``slips``, the placeholder and a non-number fail, each printing its own hint."""
    def check_grades(check, right, slips):
        ok, out = run(check, right)
        assert ok is True and out.startswith("Correct!"), out
        for answer, hint in [*slips, (None, "placeholder"), (..., "placeholder"), ("x", "single")]:
            ok, out = run(check, answer)
            assert ok is False and hint in out and "Correct" not in out, (answer, out)

    return check_grades


def load_script(path, name: str):
    """A script outside the package (``course/``, ``scripts/``) imported as a module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
