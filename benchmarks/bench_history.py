"""The History tab with 5,000 runs, in a real JupyterLab and headless Chromium.

Run: ``.venv/bin/python benchmarks/bench_history.py [--runs 5000] [--keys 60]``. Prints:

* opening the tab: click -> the first cards drawn (the first time, the module comes from the
  kernel too), and -> their thumbnails shown; switching back to it later;
* each keystroke in the search box: the time the page spends handling it, and keystroke -> the
  next frame rendered (style, layout and paint done; goal: within one 16 ms frame, so typing
  never stutters);
* keystroke -> the matching runs shown (a round trip to the kernel: the panel sends one query
  at a time, the latest text first, so results follow typing as fast as the kernel answers),
  one key at a time and typed at 10 keys a second (what the user sees);
* a filter (Failed, an aspect ratio) -> its runs shown;
* scrolling through all 5,000: frame-to-frame times and how many cards exist at once
  (virtualised: only those in view).

The store is filled like ``bench_store.py``'s (5,000 runs over 60 days), each successful run
with four real thumbnails (hard links of one WebP file), in a temp folder that the JupyterLab's
kernels use as ``SIRAY_WIDGETS_HOME``. Times are taken in the page with ``performance.now()``.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_store import fill  # noqa: E402
from fixtures.lab_fixtures import (  # noqa: E402
    NotebookPage,
    launch_browser,
    start_server,
    write_notebook,
)

from siray_widgets.store import RunStore  # noqa: E402

CELL = "from siray_widgets import ImagineWidget\nw = ImagineWidget(prompt='bench')\nw"
FRAME_MS = 16.0


def build_store(home: Path, runs: int) -> None:
    """``runs`` runs (bench_store.fill), each success with four thumbnails on disk."""
    from PIL import Image

    began = time.perf_counter()
    with RunStore(home) as store:
        fill(store, runs)
        buffer = io.BytesIO()
        Image.linear_gradient("L").convert("RGB").resize((256, 256)).save(buffer, "WEBP")
        source = home / "thumbs" / ".bench-source.webp"
        source.write_bytes(buffer.getvalue())
        with store._write() as db:
            rows = db.execute("SELECT run_id, idx, (SELECT task_id FROM runs WHERE id = run_id) "
                              "FROM images").fetchall()  # fmt: skip
            for run_id, idx, task_id in rows:
                ref = f"thumbs/{task_id}-{idx}.webp"
                try:
                    os.link(source, home / ref)
                except OSError:
                    shutil.copyfile(source, home / ref)
                db.execute(
                    "UPDATE images SET thumb = ?, bytes = ? WHERE run_id = ? AND idx = ?",
                    (ref, len(buffer.getvalue()), run_id, idx),
                )
            db.execute("UPDATE runs SET images_state = 'done' WHERE state = 'success'")
        source.unlink()
        print(
            f"store: {store.count():,} runs, {len(rows):,} thumbnails "
            f"(built in {time.perf_counter() - began:.1f} s)"
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def line(name: str, values: list[float], goal: str = "") -> str:
    if not values:
        return f"{name}: no samples"
    return (
        f"{name}: p50 {statistics.median(values):.1f} ms, p95 {pct(values, 95):.1f} ms, "
        f"max {max(values):.1f} ms ({len(values)} samples)" + (f"; goal {goal}" if goal else "")
    )


# -- in the page ------------------------------------------------------------------------------

OPEN_JS = """
async (root) => {
  const tab = root.querySelector('[role=tab][data-tab=history]');
  const t0 = performance.now();
  tab.click();
  const until = (test) => new Promise((resolve) => {
    const check = () => test() ? resolve(performance.now() - t0) : requestAnimationFrame(check);
    check();
  });
  const cards = await until(() => root.querySelectorAll('.siray-hcard[data-run]').length >= 8);
  const thumbs = await until(() => {
    const imgs = [...root.querySelectorAll('.siray-hcard[data-run] img')];
    return imgs.length >= 32 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  return [cards, thumbs];
}
"""

SWITCH_JS = """
async ([root, times]) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const gen = root.querySelector('[role=tab][data-tab=generate]');
  const hist = root.querySelector('[role=tab][data-tab=history]');
  const out = [];
  for (let i = 0; i < times; i++) {
    gen.click();
    await frame(); await frame();
    const t0 = performance.now();
    hist.click();
    await frame();
    out.push(performance.now() - t0);
  }
  return out;
}
"""

# Type `texts` one after another, `gap` ms apart (0: wait for each text's results first).
# Returns, per keystroke: [handler ms, keystroke -> next frame ms, keystroke -> results ms|null]
# (null: a later keystroke's results came first). The gallery's data-query names the search
# whose rows it shows.
TYPE_JS = """
async ([root, texts, gap, timeoutMs]) => {
  const input = root.querySelector('[data-role=history-search]');
  const gallery = root.querySelector('[data-role=history-gallery]');
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  // After the next frame has been rendered (its style, layout and paint), not just begun.
  const painted = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const keys = [];  // {text, t0, handler, painted, shown}
  const watch = new MutationObserver(() => {
    // The rows shown answer the latest keystroke of that text (earlier ones were superseded).
    const text = JSON.parse(gallery.dataset.query ?? '{}').text ?? '';
    const key = keys.findLast((k) => k.text === text);
    if (key && key.shown === null) key.shown = performance.now() - key.t0;
  });
  watch.observe(gallery, { attributes: true, attributeFilter: ['data-query'] });
  await frame();
  for (const text of texts) {
    const key = { text, t0: performance.now(), handler: 0, painted: 0, shown: null };
    keys.push(key);
    input.value = text;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    key.handler = performance.now() - key.t0;
    await painted();
    key.painted = performance.now() - key.t0;
    if (gap) await sleep(Math.max(0, gap - (performance.now() - key.t0)));
    else {
      while (key.shown === null && performance.now() - key.t0 < timeoutMs) await frame();
      await painted();  // the results drawn: the next keystroke's frame is its own
      await sleep(Math.random() * 16);  // and a key comes at any moment of a frame
    }
  }
  await sleep(timeoutMs);  // the last answers
  watch.disconnect();
  return keys.map((k) => [k.handler, k.painted, k.shown]);
}
"""

FILTER_JS = """
async ([root, times, timeoutMs]) => {
  const failed = root.querySelector('[data-filter=failed]');
  const ratio = root.querySelector('[data-filter=aspect_ratio]');
  const gallery = root.querySelector('[data-role=history-gallery]');
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const out = [];
  const options = [...ratio.options].map((o) => o.value).filter(Boolean);
  for (let i = 0; i < times; i++) {
    const before = gallery.dataset.query;
    const t0 = performance.now();
    const [el, change] = i % 2
      ? [ratio, () => { ratio.value = options[(i >> 1) % options.length]; }]
      : [failed, () => { failed.checked = !failed.checked; }];
    change();
    el.dispatchEvent(new Event('change'));
    while (gallery.dataset.query === before && performance.now() - t0 < timeoutMs) await frame();
    out.push(performance.now() - t0);
  }
  failed.checked = false; failed.dispatchEvent(new Event('change'));
  ratio.value = ''; ratio.dispatchEvent(new Event('change'));
  return out;
}
"""

SCROLL_JS = """
async ([root, frames]) => {
  const gallery = root.querySelector('[data-role=history-gallery]');
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const total = gallery.scrollHeight - gallery.clientHeight;
  const deltas = [];
  let most = 0;
  let last = performance.now();
  for (let i = 1; i <= frames; i++) {
    gallery.scrollTop = (total * i) / frames;
    await frame();
    const now = performance.now();
    deltas.push(now - last);
    last = now;
    most = Math.max(most, gallery.querySelectorAll('.siray-hcard').length);
  }
  return [deltas, most, gallery.querySelectorAll('.siray-hcard[data-run]').length];
}
"""

WORDS = ["watercolor fox", "neon city rain", "a dragon and a castle"]


def typed(texts: list[str]) -> list[str]:
    """Every prefix of each text, then back to empty (what typing and clearing send)."""
    out: list[str] = []
    for text in texts:
        out += [text[:i] for i in range(1, len(text) + 1)] + [""]
    return out


def measure(page: Any, root: Any, runs: int, keys: int) -> list[str]:
    """Every figure, measured in the page (``root``: the widget's element handle)."""
    out: list[str] = []
    cards, thumbs = page.evaluate(OPEN_JS, root)
    out.append(
        f"open the History tab (the first time: its module from the kernel, then the first "
        f"page of {runs:,} runs): cards drawn {cards:.0f} ms, their thumbnails {thumbs:.0f} ms"
    )
    switch = page.evaluate(SWITCH_JS, [root, 20])
    out.append(line("show the tab again (switching back)", switch))
    texts = typed(WORDS)
    if keys:
        texts = (texts * (keys // len(texts) + 1))[:keys]
    one = page.evaluate(TYPE_JS, [root, texts, 0, 3000])
    frame = f"<= {FRAME_MS:.0f} ms"
    out.append(line("keystroke: time in the page's handler", [s[0] for s in one], frame))
    out.append(line("keystroke -> next frame painted", [s[1] for s in one], frame))
    shown = [s[2] for s in one if s[2] is not None]
    out.append(line("keystroke -> its results shown (one key at a time)", shown))
    fast = page.evaluate(TYPE_JS, [root, texts, 100, 1500])
    out.append(line("typing at 10 keys/s: keystroke -> next frame", [s[1] for s in fast], frame))
    results = [s[2] for s in fast if s[2] is not None]
    out.append(
        line("typing at 10 keys/s: keystroke -> its results shown", results)
        + f"; {len(results)} of {len(fast)} texts answered before the next key"
    )
    filters = page.evaluate(FILTER_JS, [root, 20, 3000])
    out.append(line("a filter (Failed, an aspect ratio) -> its runs shown", filters))
    deltas, most, drawn = page.evaluate(SCROLL_JS, [root, 240])
    out.append(
        line("fling through every run (1/240 of the list a frame): frame to frame", deltas)
        + f"; at most {most} cards in the DOM ({drawn} at the end)"
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=0, help="keystrokes (default: all prefixes)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="siray-bench-history-") as tmp:
        home = Path(tmp) / "home"
        build_store(home, args.runs)
        server = start_server("lab", Path(tmp) / "lab", env={"SIRAY_WIDGETS_HOME": str(home)})
        try:
            write_notebook(server.root, "bench.ipynb", [CELL], scratch=False)
            with sync_playwright() as pw:
                browser = launch_browser(pw)
                page = browser.new_page(viewport={"width": 1280, "height": 1100})
                nb = NotebookPage(page, server, "bench.ipynb").open()
                nb.run_cell(0)
                root = nb.widget(0)
                root.wait_for(state="visible")
                handle = root.element_handle()
                for text in measure(page, handle, args.runs, args.keys):
                    print(text)
                if nb.page_errors:
                    print(f"page errors: {nb.page_errors}", file=sys.stderr)
                browser.close()
        finally:
            server.stop()
    bundle = REPO / "siray_widgets" / "static"
    sizes = {
        p.relative_to(bundle).as_posix(): p.stat().st_size for p in sorted(bundle.rglob("*.*"))
    }
    print("bundle: " + ", ".join(f"{name} {size / 1024:.1f} KB" for name, size in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
