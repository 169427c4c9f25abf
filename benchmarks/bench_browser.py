"""Front-end benchmarks of ImagineWidget in a real JupyterLab and headless Chromium.

Run: ``.venv/bin/python benchmarks/bench_browser.py [--samples 100]``. Prints:

* slider ``input`` event -> request panel text updated (goal: same frame, <= 16 ms);
* slider ``input`` event -> Python observer fired and its echo back in the DOM
  (goal: p95 <= 50 ms with an idle kernel);
* bundle size of ``siray_widgets/static/widget.js`` (goal: <= 30 KB minified) and gzipped.

Both are measured twice in one run: on a stock JupyterLab server (the baseline) and on one
with the settings ``siray-widgets lab`` uses (``siray_widgets/jupyter_server.py``: TCP_NODELAY
on kernel websockets; jupyter_server leaves Nagle's algorithm on, so a kernel -> browser
message can wait for the browser's delayed ACK, about 40 ms on Linux).

Times are taken in the page with ``performance.now()``: just before dispatching the event,
and in a MutationObserver callback on the request panel once it shows the new value. The
JupyterLab server and Chromium come from the browser-test fixtures (``tests/fixtures``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.lab_fixtures import (  # noqa: E402
    NotebookPage,
    launch_browser,
    start_server,
    write_notebook,
)

BUNDLE = REPO / "siray_widgets" / "static" / "widget.js"
CSS = REPO / "siray_widgets" / "static" / "widget.css"
WIDGET_CELL = 'from siray_widgets import ImagineWidget\nw = ImagineWidget(prompt="bench")\nw'
# The Python observer: every chaos change is echoed into the prompt, which the request panel
# shows; the browser sees the echo when the panel's prompt reads "echo <value>".
ECHO_CELL = (
    "def _echo(change):\n"
    "    w.prompt = f\"echo {change['new']}\"\n"
    'w.observe(_echo, names=["chaos"])'
)


# Runs in the page. For each sample: pick a new slider value, take t0, dispatch `input`,
# and resolve when the request panel (a MutationObserver on it) satisfies `done(body, v)`.
MEASURE_JS = """
async ([root, fieldName, samples, mode, timeoutMs]) => {
  const range = root.querySelector(`[data-field="${fieldName}"] input[type=range]`);
  const pre = root.querySelector('[data-role="request-json"]');
  if (!range || !pre) throw new Error('slider or request panel not found');
  const min = Number(range.min), max = Number(range.max);
  const parse = () => { try { return JSON.parse(pre.textContent); } catch { return null; } };
  const done = (body, v) => body && (mode === 'panel'
      ? body[fieldName] === v : body.prompt === `echo ${v}`);
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const out = [];
  let v = Number(range.value);
  for (let i = 0; i < samples; i++) {
    v = v >= max ? min + 1 : v + 1;
    await frame(); await frame();
    const ms = await new Promise((resolve) => {
      let t0 = 0;
      const finish = (value) => { obs.disconnect(); clearTimeout(timer); resolve(value); };
      const obs = new MutationObserver(() => {
        if (done(parse(), v)) finish(performance.now() - t0);
      });
      const timer = setTimeout(() => finish(null), timeoutMs);
      obs.observe(pre, {subtree: true, childList: true, characterData: true});
      range.value = String(v);
      t0 = performance.now();
      range.dispatchEvent(new Event('input', {bubbles: true}));
      if (done(parse(), v)) finish(performance.now() - t0);  // updated synchronously
    });
    out.push(ms);
  }
  return out;
}
"""


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(name: str, samples: list[Any], goal: str) -> str:
    """One printed line: p50/p95/max of the samples in ms, and how many timed out."""
    ok = [float(s) for s in samples if s is not None]
    lost = len(samples) - len(ok)
    if not ok:
        return f"{name}: no sample completed ({lost} timed out); goal {goal}"
    return (
        f"{name}: p50 {statistics.median(ok):.1f} ms, p95 {percentile(ok, 95):.1f} ms, "
        f"max {max(ok):.1f} ms over {len(ok)} inputs"
        + (f" ({lost} timed out)" if lost else "")
        + f"; goal {goal}"
    )


def bundle_sizes() -> str:
    """Bundle and stylesheet sizes, raw and gzipped."""
    js = BUNDLE.read_bytes()
    css = CSS.read_bytes() if CSS.exists() else b""
    total = len(js) + len(css)
    return (
        f"bundle widget.js: {len(js)} bytes minified ({len(js) / 1024:.1f} KB), "
        f"{len(gzip.compress(js, 9))} bytes gzipped; widget.css: {len(css)} bytes, "
        f"{len(gzip.compress(css, 9))} gzipped; together {total / 1024:.1f} KB; "
        "goal: widget.js <= 30 KB minified, widget.css <= 8 KB"
    )


def measure(server_kind: str, product_options: bool, samples: int, field: str) -> float:
    """Print both latencies on one JupyterLab server; return the echo's p95 (ms)."""
    from playwright.sync_api import sync_playwright

    print(f"-- {server_kind}")
    with tempfile.TemporaryDirectory(prefix="siray-bench-") as tmp:
        server = start_server("lab", Path(tmp), product_options=product_options)
        try:
            echo_cell = ECHO_CELL.replace("chaos", field)
            write_notebook(server.root, "bench.ipynb", [WIDGET_CELL, echo_cell], scratch=False)
            with sync_playwright() as pw:
                browser = launch_browser(pw)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                nb = NotebookPage(page, server, "bench.ipynb").open()
                nb.run_cell(0)
                root = nb.widget(0)
                root.wait_for(state="visible")
                handle = root.element_handle()
                panel = page.evaluate(MEASURE_JS, [handle, field, samples, "panel", 2000])
                print(summarize("slider input -> request panel", panel, "<= 16 ms (same frame)"))
                nb.run_cell(1)  # only now the Python observer starts echoing
                nb.wait_for_kernel_idle()
                echo = page.evaluate(MEASURE_JS, [handle, field, samples, "echo", 5000])
                print(
                    summarize("slider input -> Python observer -> DOM echo", echo, "p95 <= 50 ms")
                )
                if nb.page_errors:
                    print(f"page errors: {nb.page_errors}", file=sys.stderr)
                browser.close()
        finally:
            server.stop()
    return percentile([float(s) for s in echo if s is not None] or [float("nan")], 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="inputs per measurement")
    parser.add_argument("--field", default="chaos", help="slider field to move")
    args = parser.parse_args()
    if not BUNDLE.exists():
        print(f"{BUNDLE} is missing: run `npm run build` first", file=sys.stderr)
        return 1
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    stock = measure("stock JupyterLab server (baseline)", False, args.samples, args.field)
    ours = measure("as `siray-widgets lab` serves it", True, args.samples, args.field)
    print(f"echo p95, ours / stock: {ours / stock:.2f}x")
    print(bundle_sizes())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
