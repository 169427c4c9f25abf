"""Sweep benchmark: a 200-cell sweep against the sandbox, wall time vs the ideal.

Run: ``.venv/bin/python benchmarks/bench_sweep.py`` (about 40 s: three rounds, the median
is the figure; the machine's other work shows as spread between rounds).

The sandbox runs as ``siray-widgets sandbox`` in its own process (no shared GIL), answers
every API request after 100 ms (``--latency 0.1``) and finishes tasks at once. The sweep is
10 x 20 cells (stylize x chaos), run by :class:`~siray_widgets.sweep.SweepRun` at its default
concurrency (8 tasks in flight), recorded in a run store in a temporary folder (every cell a
run, every change written as it happens; the images are not downloaded, so the sandbox's
placeholder rendering does not compete for the two cores), counted in a session budget, with
a poll schedule whose first gap is tiny, so a cell takes the fewest round trips (create, then
one status query that reads SUCCESS).

    ideal = ceil(cells / concurrency) x round trips per cell x 100 ms     goal: <= 1.2x ideal

In the same run, the same 200 requests through a bare ``AsyncSirayClient`` with an
``asyncio.Semaphore`` of the same size (no store, no states, no gate) give the cost of
everything the sweep adds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from siray_widgets.client import AsyncSirayClient, PollSchedule
from siray_widgets.session import SessionBudget
from siray_widgets.sweep import DEFAULT_CONCURRENCY, SweepRun, define_sweep

KEY = "sandbox"
POLL = PollSchedule(initial=0.001, maximum=0.05, after_change=0.001)


class CountingTransport(httpx.AsyncHTTPTransport):
    """Counts the HTTP requests really sent."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await super().handle_async_request(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_sandbox(latency: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    cli = str(Path(sys.executable).with_name("siray-widgets"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    proc = subprocess.Popen(
        [cli, "sandbox", "--port", str(port), "--duration", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the banner's first line: the server is up
    return proc, f"http://127.0.0.1:{port}"


async def swept(base_url: str, columns: int, rows: int, concurrency: int) -> tuple[float, int]:
    from siray_widgets.store import RunStore

    transport = CountingTransport()
    definition = define_sweep(
        "a lighthouse at dusk --ar 3:2",
        x=("stylize", f"0-1000 [{columns}]"),
        y=("chaos", f"0-100 [{rows}]"),
        seed=1234,
    )
    with tempfile.TemporaryDirectory() as home, RunStore(home) as store:
        client = AsyncSirayClient(KEY, base_url, poll=POLL, transport=transport, hooks=False)
        sweep = SweepRun(
            definition,
            client=client,
            concurrency=concurrency,
            store=store,
            keep_images=False,
            budget=SessionBudget(),
        )
        started = time.perf_counter()
        sweep.start(confirm=True, loop=asyncio.get_running_loop())
        await sweep
        wall = time.perf_counter() - started
        assert sweep.progress.counts["success"] == columns * rows, sweep.progress
        assert len(store.runs()) == columns * rows
        await client.aclose()
    return wall, transport.requests


async def bare(base_url: str, tasks: int, concurrency: int) -> float:
    from siray_widgets.schema import ImageRequest

    limit = asyncio.Semaphore(concurrency)
    request = ImageRequest(prompt="a lighthouse at dusk", aspect_ratio="3:2")
    async with AsyncSirayClient(KEY, base_url, poll=POLL, hooks=False) as client:

        async def one() -> None:
            async with limit:
                task = await client.generate(request, timeout=60)
                assert task.status.value == "SUCCESS"

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(tasks)))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per API answer")
    parser.add_argument("--rounds", type=int, default=3, help="sweep and baseline, alternately")
    args = parser.parse_args(argv)
    cells = args.columns * args.rows

    proc, base_url = start_sandbox(args.latency)
    walls: list[float] = []
    bares: list[float] = []
    trips = 0.0
    try:
        for _ in range(args.rounds):
            bares.append(asyncio.run(bare(base_url, cells, args.concurrency)))
            wall, requests = asyncio.run(swept(base_url, args.columns, args.rows, args.concurrency))
            walls.append(wall)
            trips = requests / cells
    finally:
        proc.terminate()
        proc.wait(10)

    ms = args.latency * 1000
    ideal = math.ceil(cells / args.concurrency) * trips * args.latency
    wall, bare_wall = statistics.median(walls), statistics.median(bares)
    ratio = wall / ideal
    verdict = "met" if ratio <= 1.2 else "MISSED"
    shown = ", ".join(f"{w:.2f}" for w in walls)
    print(f"sandbox: {ms:.0f} ms latency per API answer, instant generation, own process")
    print(
        f"sweep  {args.columns}x{args.rows} = {cells} cells, {args.concurrency} in flight "
        f"(the default), recorded in a run store: {shown} s, {trips:g} round trips per cell"
    )
    print(
        f"       ideal = ceil({cells}/{args.concurrency}) x {trips:g} x {ms:.0f} ms = "
        f"{ideal:.2f} s -> median {ratio:.2f}x ideal, best {min(walls) / ideal:.2f}x "
        f"(goal <= 1.2x: {verdict})"
    )
    print(
        f"bare   AsyncSirayClient + Semaphore({args.concurrency}), same requests: median "
        f"{bare_wall:.2f} s ({bare_wall / ideal:.2f}x ideal) -> the sweep costs "
        f"{wall / bare_wall:.2f}x that ({(wall - bare_wall) / cells * 1000:+.1f} ms per cell)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
