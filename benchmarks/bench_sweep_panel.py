"""The Sweep tab's cost to the rest of the widget, in a real JupyterLab and headless Chromium.

Run: ``.venv/bin/python benchmarks/bench_sweep_panel.py [--samples 100] [--cells 200]``. Prints:

* slider ``input`` event -> request panel text updated, with the Sweep tab loaded and no
  sweep running (the baseline), then the same while a 200-cell sweep runs against a sandbox
  at 100 ms latency (each cell a few seconds), its grid filling through ``sweep-update``
  messages (goal: same frame, <= 16 ms; the ratio against the baseline of the same run);
* how many ``sweep-update`` messages the page received meanwhile, and how many cells
  changed.

The sweep is built and started in the page, as a user does (axes typed, Run, Send), so the
page handles every update the kernel sends. Times are taken in the page with
``performance.now()`` (see bench_browser.py, whose measuring code this reuses).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_browser import MEASURE_JS, percentile, summarize  # noqa: E402
from fixtures.lab_fixtures import (  # noqa: E402
    NotebookPage,
    launch_browser,
    start_server,
    write_notebook,
)

LAZY = REPO / "siray_widgets" / "static" / "lazy" / "sweep.js"
CELL = (
    "import os, tempfile\n"
    "os.environ['SIRAY_WIDGETS_HOME'] = tempfile.mkdtemp(prefix='siray-bench-home-')\n"
    "from siray_widgets import ImagineWidget, PollSchedule, sandbox\n"
    "from siray_widgets.session import session_budget\n"
    "session_budget().confirm_above = 1000\n"
    "box = sandbox.start(duration={duration}, latency=0.1)\n"
    'w = ImagineWidget(prompt="bench")\n'
    "w.base_url, w.api_key = box.base_url, box.api_key\n"
    "w.poll = PollSchedule.fixed(0.5)\n"
    "w"
)
# In the page: count sweep-update messages (the widget's model gets them as msg:custom).
COUNT_JS = """
root => {
  window.__sweepUpdates = 0; window.__sweepCells = 0;
  const seen = new MutationObserver((records) => {
    for (const r of records) if (r.attributeName === 'data-state') window.__sweepCells++;
  });
  seen.observe(root, {subtree: true, attributes: true, attributeFilter: ['data-state']});
  window.__stopCount = () => seen.disconnect();
}
"""


def measure_panel(page: Any, root: Any, field: str, samples: int) -> list[float | None]:
    return list(page.evaluate(MEASURE_JS, [root, field, samples, "panel", 2000]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="inputs per measurement")
    parser.add_argument("--cells", type=int, default=200, help="cells of the sweep (x * 10)")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per sandbox task")
    parser.add_argument("--field", default="chaos", help="slider field to move")
    args = parser.parse_args()
    if not LAZY.exists():
        print(f"{LAZY} is missing: run `npm run build` first", file=sys.stderr)
        return 1
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    from playwright.sync_api import sync_playwright

    columns = max(1, args.cells // 10)
    with tempfile.TemporaryDirectory(prefix="siray-bench-") as tmp:
        server = start_server("lab", Path(tmp), product_options=True)
        try:
            write_notebook(
                server.root, "bench.ipynb", [CELL.format(duration=args.duration)], scratch=False
            )
            with sync_playwright() as pw:
                browser = launch_browser(pw)
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                nb = NotebookPage(page, server, "bench.ipynb").open()
                nb.run_cell(0)
                widget = nb.widget(0)
                widget.wait_for(state="visible")
                handle = widget.element_handle()
                # The Sweep tab loaded, a sweep typed in (not run): the baseline.
                widget.locator("[role=tab][data-tab=sweep]").click()
                panel = widget.locator('[data-role="sweep"]')
                panel.wait_for()
                panel.locator('select[data-axis="x"]').select_option("weird")
                panel.locator('textarea[data-values="x"]').fill(f"1-{columns} [{columns}]")
                panel.locator('select[data-axis="y"]').select_option("stylize")
                panel.locator('textarea[data-values="y"]').fill("10-100 [10]")
                summary = panel.locator('[data-role="sweep-summary"]')
                summary.filter(has_text=f"{columns * 10} tasks to send").wait_for()
                widget.locator("[role=tab][data-tab=generate]").click()
                base = measure_panel(page, handle, args.field, args.samples)
                print(summarize("idle: slider input -> request panel", base, "<= 16 ms"))

                # Now the sweep runs: started in the page, its grid filling meanwhile.
                widget.locator("[role=tab][data-tab=sweep]").click()
                panel.locator('[data-role="sweep-run"]').click()
                panel.locator('td[data-role="sweep-cell"]').first.wait_for()
                page.evaluate(COUNT_JS, handle)
                page.wait_for_function(
                    """el => el.querySelectorAll('td[data-state="running"]').length >= 4""",
                    arg=panel.element_handle(),
                    timeout=60_000,
                )
                started = time.monotonic()
                widget.locator("[role=tab][data-tab=generate]").click()
                busy = measure_panel(page, handle, args.field, args.samples)
                seconds = time.monotonic() - started
                cells = page.evaluate("() => { window.__stopCount(); return window.__sweepCells; }")
                going = nb.run("print(w._sweeps._sweep.progress)").strip()
                print(summarize(f"{args.cells}-cell sweep running: same", busy, "<= 16 ms"))
                print(
                    f"meanwhile ({seconds:.1f} s): {cells} cell tiles redrawn in the grid; "
                    f"sweep: {going}"
                )
                ok_base = [float(s) for s in base if s is not None]
                ok_busy = [float(s) for s in busy if s is not None]
                if ok_base and ok_busy:
                    ratio = percentile(ok_busy, 95) / max(percentile(ok_base, 95), 0.1)
                    print(f"p95 while the sweep runs / idle: {ratio:.2f}x")
                nb.run("w._sweeps._sweep.cancel(follow=False)")
                if nb.page_errors:
                    print(f"page errors: {nb.page_errors}", file=sys.stderr)
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
