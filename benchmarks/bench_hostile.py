"""The hostile-server sweep as a table: how the client ends against every answer shape the
tests' fault server can make (tests/fixtures/fault_server.py), with time and peak memory.

Also the figure behind hardening item 1: the time to make an error excerpt from a 150 KB HTML
page, with the previous regular expressions (measured here, in the same run, as the
baseline) and with the current linear code.

Run: ``.venv/bin/python benchmarks/bench_hostile.py`` (about a minute; ``--no-baseline``
skips the slow old-regex measurement).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import contextlib

from fixtures.fault_server import (
    TEST_KEY,
    FaultServer,
    hostile_replies,
    sweep_cases,
    sweep_one,
)

from siray_widgets.client import _excerpt
from siray_widgets.errors import SirayError

# The expressions _excerpt used before (quadratic on pages of unmatched "<").
_OLD_TAG = re.compile(r"<[^>]*>")
_OLD_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_OLD_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%?\s*$")


def old_excerpt(text: str) -> str:
    if "<" in text and ">" in text:
        title = _OLD_TITLE.search(text)
        text = title.group(1) if title else _OLD_TAG.sub(" ", text)
    return text[:200]


def timed(function: object, *args: object) -> float:
    started = time.perf_counter()
    function(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def excerpt_figures(baseline: bool) -> None:
    from siray_widgets.errors import UnexpectedResponseError
    from siray_widgets.task import parse_progress

    def new_progress(text: str) -> None:
        with contextlib.suppress(UnexpectedResponseError):
            parse_progress(text)

    pages = {
        "'>' then unmatched '<'": lambda n: ">" + "<" * n,
        "'<title>' repeated, never closed": lambda n: "<title>" * (n // 7),
    }
    print("\n## Item 1: server text that made the old regular expressions backtrack")
    print("| text | size | previous code | now | ratio |\n| --- | --- | --- | --- | --- |")
    for label, make in pages.items():
        for size in (37_500, 75_000, 150_000):
            page = make(size)
            new = timed(_excerpt, page)
            old = timed(old_excerpt, page) if baseline else float("nan")
            print(
                f"| {label} | {size / 1000:g} KB | {old:.2f} s | {new * 1000:.2f} ms | "
                f"{old / new:,.0f}x |"
            )
    for size in (18_750, 37_500):  # the old progress pattern is slower still: 150 KB ~ minutes
        text = "1" + " " * size + "x"
        new = timed(new_progress, text)
        old = timed(_OLD_PERCENT.match, text) if baseline else float("nan")
        print(
            f"| progress '1', spaces, 'x' | {size / 1000:g} KB | {old:.2f} s | "
            f"{new * 1000:.3f} ms | {old / new:,.0f}x |"
        )


def sweep_table() -> bool:
    print("\n## The sweep: every hostile answer, on both endpoints")
    print("| answer | endpoint | ends in | time | peak Python memory |")
    print("| --- | --- | --- | --- | --- |")
    server = FaultServer()
    all_ours = True
    try:
        replies = hostile_replies(server.url, TEST_KEY)
        for name, endpoint in sweep_cases(server.url):
            result = sweep_one(server, name, replies[name], endpoint, measure_memory=True)
            outcome = result.outcome.__name__ if result.outcome else "returned (!)"
            ours = result.outcome is not None and issubclass(result.outcome, SirayError)
            all_ours &= ours
            mark = "" if ours else " **not ours**"
            print(
                f"| {name} | {endpoint} | {outcome}{mark} | {result.seconds:.2f} s | "
                f"{result.peak_bytes / 1e6:.1f} MB |"
            )
    finally:
        server.close()
    return all_ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-baseline", action="store_true", help="skip the old regexes")
    args = parser.parse_args()
    excerpt_figures(not args.no_baseline)
    ok = sweep_table()
    print("\nevery answer ended in a siray_widgets error:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
