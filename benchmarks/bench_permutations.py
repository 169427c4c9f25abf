"""Prompt and sweep parsing on hostile and large inputs: linear, bounded, fast.

Run: ``.venv/bin/python benchmarks/bench_permutations.py`` (about 30 s; ``--quick`` for less).

(a) ``parse_prompt`` on ``"{" + "," * n`` (issue 11, item 1) for growing n: ours against the
    regular expression the suffix parser used before (``\\{[^{}]*,[^{}]*\\}``, quadratic),
    measured in the same run. Goal: ours grows linearly (time ratio for 4x the input about
    4x), and stays under 50 ms at n = 32,000 where the old one took seconds.
(b) other hostile prompts of 200,000 characters through ``parse_prompt`` and
    ``parse_prompts``: goal < 1 s each.
(c) expanding a 100 x 100 sweep (10,000 cells, the cap) into validated cells with keys:
    goal < 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import statistics
import time
from collections.abc import Callable

from siray_widgets.errors import SuffixError
from siray_widgets.suffix import parse_prompt, parse_prompts
from siray_widgets.sweep import SweepError, define_sweep

OLD_PERMUTATION = re.compile(r"\{[^{}]*,[^{}]*\}")


def seconds(call: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(SuffixError, SweepError):
            call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    args = parser.parse_args()
    sizes = [2_000, 8_000, 32_000] if args.quick else [2_000, 8_000, 32_000, 128_000]
    old_cap = 8_000 if args.quick else 32_000  # the old regex takes too long beyond this
    repeat = 1 if args.quick else 3

    print("(a) parse_prompt('{' + ',' * n): ours vs the old permutation regex, same run")
    print(f"{'n':>9} {'ours ms':>9} {'old regex ms':>13} {'old/ours':>9}")
    ours_times: list[float] = []
    for n in sizes:
        text = "{" + "," * n
        ours = seconds(lambda text=text: parse_prompt(text), repeat)  # type: ignore[misc]
        ours_times.append(ours)
        if n <= old_cap:
            old = seconds(lambda text=text: OLD_PERMUTATION.search(text), 1)  # type: ignore[misc]
            print(f"{n:>9,} {ours * 1e3:>9.2f} {old * 1e3:>13.1f} {old / ours:>8.0f}x")
        else:
            print(f"{n:>9,} {ours * 1e3:>9.2f} {'(skipped)':>13}")
    growth = [b / a for a, b in itertools.pairwise(ours_times)]
    print("    ours, time ratio per 4x input:", ", ".join(f"{g:.1f}x" for g in growth))

    print("\n(b) hostile prompts of about 200,000 characters (goal < 1 s each)")
    hostile = {
        "open commas": "{" + "," * 200_000,
        "many groups {a,b}": "{a,b}" * 40_000,
        "single options {a}": "{a}" * 66_000,
        "deep braces": "{" * 200_000,
        "backslashes": "\\" * 200_000,
        "em dashes": "\u2014" * 200_000 + "x",
        "flags": " --" * 66_000,
    }
    for name, text in hostile.items():
        one = seconds(lambda text=text: parse_prompt(text), repeat)  # type: ignore[misc]
        many = seconds(lambda text=text: parse_prompts(text), repeat)  # type: ignore[misc]
        print(
            f"    {name:<20} parse_prompt {one * 1e3:7.1f} ms   parse_prompts {many * 1e3:7.1f} ms"
        )

    print("\n(c) a 100 x 100 sweep (10,000 cells) into validated cells with keys (goal < 2 s)")
    sweep = define_sweep("a fox", x="stylize=0-990 (+10)", y="seed=1-100", z=None)
    elapsed = seconds(lambda: sweep.cells(), repeat)
    print(
        f"    {sweep.counts()}: {elapsed:.2f} s ({elapsed / sweep.task_count * 1e6:.0f} µs a cell)"
    )


if __name__ == "__main__":
    main()
