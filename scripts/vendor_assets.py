"""Copy the browser assets the website needs from node_modules/ into vendor/.

Run from the repository root after ``npm ci`` (package.json and package-lock.json pin the
versions)::

    npm ci --no-audit --no-fund && .venv/bin/python scripts/vendor_assets.py

_config.yml lists vendor/ in ``html_static_path``, so Sphinx copies its contents into
``_build/html/_static/`` and every page loads MathJax, require.js, the Jupyter widget manager and
anywidget's front-end from the site itself. Nothing is fetched from a CDN, so the book works
offline. vendor/ is generated (gitignored); this script deletes and rewrites it on every run.

Layout written (paths are relative to vendor/, i.e. to _static/ in the built site)::

    mathjax/tex-mml-chtml.js              MathJax 3 (sphinx ``mathjax_path``)
    mathjax/output/chtml/fonts/woff-v2/   its fonts
    mathjax/input/tex/extensions/         TeX packages MathJax autoloads on demand
    mathjax/a11y/, mathjax/sre/           what the MathJax menu's accessibility options load
    require.js                            require.js (myst-nb ``nb_ipywidgets_js``)
    jupyter-widgets/widgets-config.js     tells require.js where "anywidget" lives (written here)
    jupyter-widgets/embed-amd.js          @jupyter-widgets/html-manager: renders saved widget state
    jupyter-widgets/*.woff2 ...           Font Awesome files the widget CSS refers to
    anywidget/index.js                    anywidget's AMD front-end (module "anywidget")
"""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "vendor"
BUILT_STATIC = ROOT / "_build" / "html" / "_static"

# package name -> the exact version package.json pins (checked against what npm ci installed)
PINNED = {
    "mathjax": "3.2.2",
    "requirejs": "2.3.8",
    "@jupyter-widgets/html-manager": "1.0.6",
    "anywidget": "0.11.0",
}

# The html-manager falls back to a CDN when require() cannot find a widget module, and it looks
# for its fonts next to where require.js thinks its module lives (page-relative by default). This
# file is loaded between require.js and embed-amd.js (see nb_ipywidgets_js in _config.yml) and
# points both at _static/. Its own URL tells where _static/ is, whatever the page's depth.
WIDGETS_CONFIG_JS = """\
// Written by scripts/vendor_assets.py: do not edit.
// Tells require.js where this site keeps the widget modules, so that the Jupyter widget manager
// (embed-amd.js) loads "anywidget" from here instead of falling back to a CDN. The manager finds
// its font files next to its module "@jupyter-widgets/html-manager/dist/libembed-amd".
(function () {
  "use strict";
  var staticRoot = new URL("..", document.currentScript.src).href;
  window.requirejs.config({
    paths: {
      anywidget: staticRoot + "anywidget/index",
      "@jupyter-widgets/html-manager/dist": staticRoot + "jupyter-widgets",
      // the manager's CSS asks for its fonts under "@jupyter-widgets/": without this they were
      // requested page-relative and answered 404 (seen on some pages, not all)
      "@jupyter-widgets": staticRoot + "jupyter-widgets",
    },
  });
})();
"""

FONT_SUFFIXES = (".woff2", ".woff", ".ttf", ".eot", ".svg")


def installed_version(package: str) -> str:
    manifest = NODE_MODULES / package / "package.json"
    if not manifest.is_file():
        sys.exit(
            f"vendor_assets: {manifest.relative_to(ROOT)} is missing. "
            "Run `npm ci --no-audit --no-fund` in the repository root first."
        )
    return json.loads(manifest.read_text(encoding="utf-8"))["version"]


def copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.map"))


def vendor() -> None:
    for package, version in PINNED.items():
        found = installed_version(package)
        if found != version:
            sys.exit(
                f"vendor_assets: node_modules has {package}@{found}, package.json pins "
                f"{version}. Run `npm ci --no-audit --no-fund` again."
            )

    if VENDOR.exists():
        shutil.rmtree(VENDOR)

    mathjax = NODE_MODULES / "mathjax" / "es5"
    copy_file(mathjax / "tex-mml-chtml.js", VENDOR / "mathjax" / "tex-mml-chtml.js")
    for sub in ("output/chtml/fonts/woff-v2", "input/tex/extensions", "a11y", "sre"):
        copy_tree(mathjax / sub, VENDOR / "mathjax" / sub)
    copy_file(NODE_MODULES / "mathjax" / "LICENSE", VENDOR / "mathjax" / "LICENSE")

    copy_file(NODE_MODULES / "requirejs" / "require.js", VENDOR / "require.js")

    html_manager = NODE_MODULES / "@jupyter-widgets" / "html-manager"
    widgets = VENDOR / "jupyter-widgets"
    copy_file(html_manager / "dist" / "embed-amd.js", widgets / "embed-amd.js")
    for font in sorted((html_manager / "dist").iterdir()):
        if font.suffix in FONT_SUFFIXES:
            copy_file(font, widgets / font.name)
    copy_file(html_manager / "LICENSE", widgets / "LICENSE")
    (widgets / "widgets-config.js").write_text(WIDGETS_CONFIG_JS, encoding="utf-8")

    anywidget = NODE_MODULES / "anywidget"
    copy_file(anywidget / "dist" / "index.js", VENDOR / "anywidget" / "index.js")
    copy_file(anywidget / "LICENSE", VENDOR / "anywidget" / "LICENSE")


def refresh_built_site() -> int:
    """Bring an existing build's _static/ copies up to date; return how many files changed.

    Sphinx copies static files only when it writes at least one page, so after a change of
    versions an otherwise up-to-date build would keep serving the old assets.
    """
    if not BUILT_STATIC.is_dir():
        return 0
    changed = 0
    for source in sorted(p for p in VENDOR.rglob("*") if p.is_file()):
        target = BUILT_STATIC / source.relative_to(VENDOR)
        if not target.is_file() or not filecmp.cmp(source, target, shallow=False):
            copy_file(source, target)
            changed += 1
    return changed


def report() -> None:
    files = sorted(p for p in VENDOR.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    print(f"vendor_assets: wrote {len(files)} files, {total / 1e6:.1f} MB, into vendor/")
    for name in (
        "mathjax/tex-mml-chtml.js",
        "require.js",
        "jupyter-widgets/embed-amd.js",
        "jupyter-widgets/widgets-config.js",
        "anywidget/index.js",
    ):
        print(f"  {name:36s} {(VENDOR / name).stat().st_size:>10,d} bytes")
    for folder in ("mathjax/output", "mathjax/input", "mathjax/a11y", "mathjax/sre"):
        sub = [p for p in files if p.is_relative_to(VENDOR / folder)]
        size = sum(p.stat().st_size for p in sub)
        print(f"  {folder + '/':36s} {size:>10,d} bytes in {len(sub)} files")


if __name__ == "__main__":
    vendor()
    report()
    if refreshed := refresh_built_site():
        print(f"vendor_assets: refreshed {refreshed} files in {BUILT_STATIC.relative_to(ROOT)}/")
