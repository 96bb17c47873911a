"""How fast does the affine explorer answer a slider move? (issue 5: target median < 16 ms)

Builds a page with one AffineExplorer on 10,000 data points, rendered the way the book's
website renders its saved widgets (require.js, the Jupyter widget manager embed-amd.js and
anywidget from the site's own ``_static/``, no kernel), opens it in headless Chromium
(Debian's /usr/bin/chromium via Playwright) and moves the scale slider 200 times with the
keyboard (100 steps right, 100 left). For every move it records, from the ``input`` event's
time stamp:

- ``redraw``: to the end of the explorer's redraw (its ``performance.mark("qb-redraw-end")``,
  set after the histogram, the error plot, the table and ``data-state`` are all updated);
- ``frame``: to the next animation frame (``requestAnimationFrame`` after the redraw), i.e. when
  the browser can paint the result.

Prints median and 95th percentile of both, in milliseconds.

Run from the repository root after the site's assets exist (``make book``, or
``npm ci && .venv/bin/python scripts/vendor_assets.py``)::

    .venv/bin/python benchmarks/explorer_latency.py [--points 10000] [--moves 200]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>explorer latency</title>
<script src="_static/require.js"></script>
<script src="_static/jupyter-widgets/widgets-config.js"></script>
<script src="_static/jupyter-widgets/embed-amd.js"></script>
<script type="application/vnd.jupyter.widget-state+json">{state}</script>
</head><body style="max-width: 820px; margin: 1rem auto">
<div class="cell_output">
<script type="application/vnd.jupyter.widget-view+json">{view}</script>
</div>
</body></html>
"""

# Installed in the page before the moves. The slider's own handler redraws synchronously when
# the input event reaches the slider; this listener on the explorer's root hears the same event
# afterwards, as it bubbles up, and reads the redraw's closing mark.
PROBE = """() => {
  const root = document.querySelector('[data-explorer="affine"]');
  window.__latency = [];
  root.addEventListener("input", (event) => {
    const start = event.timeStamp;
    const marks = performance.getEntriesByName("qb-redraw-end", "mark");
    const end = marks.length ? marks[marks.length - 1].startTime : -1;
    if (end < start) throw new Error("the input event did not redraw the explorer");
    performance.clearMarks("qb-redraw-end");
    requestAnimationFrame(() => {
      window.__latency.push({ redraw: end - start, frame: performance.now() - start });
    });
  });
  root.querySelector('[data-control="scale"]').focus();
  return JSON.parse(root.dataset.state).n;
}"""


def static_dir() -> Path:
    for candidate in (ROOT / "_build" / "html" / "_static", ROOT / "vendor"):
        if (candidate / "jupyter-widgets" / "embed-amd.js").is_file():
            return candidate
    raise SystemExit(
        "explorer_latency: no site assets found. Build the book (`make book`) or run "
        "`npm ci && .venv/bin/python scripts/vendor_assets.py` first."
    )


def write_page(folder: Path, points: int, seed: int = 0) -> None:
    from ipywidgets.embed import embed_data

    from quantbook.explorers import AffineExplorer

    x = np.random.default_rng(seed).standard_normal(points).astype(np.float32)
    explorer = AffineExplorer(x, max_points=points)
    data = embed_data(views=[explorer], drop_defaults=False)  # keep _esm, _css, ...
    page = PAGE.format(
        state=json.dumps(data["manager_state"]).replace("</", "<\\/"),
        view=json.dumps(data["view_specs"][0]),
    )
    (folder / "index.html").write_text(page, encoding="utf-8")
    shutil.copytree(static_dir(), folder / "_static")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        pass


def serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure(url: str, moves: int) -> tuple[int, list[dict]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1024, "height": 900})
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith("http://127.0.0.1") else route.abort())
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(url, wait_until="load")
        try:
            page.wait_for_selector('[data-explorer="affine"]', timeout=30_000)
        except Exception:
            raise SystemExit(f"explorer_latency: the explorer did not render: {errors}") from None
        n = page.evaluate(PROBE)
        for i in range(moves):
            page.keyboard.press("ArrowRight" if i < moves // 2 else "ArrowLeft")
            page.wait_for_function(f"window.__latency.length >= {i + 1}")
        samples = page.evaluate("window.__latency")
        browser.close()
    return n, samples


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered):6.2f} ms   p95 {p95:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--moves", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qb-latency-") as tmp:
        folder = Path(tmp)
        write_page(folder, args.points)
        server = serve(folder)
        try:
            n, samples = measure(f"http://127.0.0.1:{server.server_address[1]}/", args.moves)
        finally:
            server.shutdown()
    print(f"AffineExplorer, {n} data points, {len(samples)} scale-slider moves (headless Chromium)")
    print(f"  input -> redraw done : {summary([s['redraw'] for s in samples])}")
    print(f"  input -> next frame  : {summary([s['frame'] for s in samples])}")
    print("  target: median under 16 ms (one frame at 60 Hz)")


if __name__ == "__main__":
    main()
