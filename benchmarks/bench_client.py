"""Client benchmarks: overhead against raw httpx, speed against the official SDK, import cost.

Run: ``.venv/bin/python benchmarks/bench_client.py`` (about a minute; ``--quick`` for less).

All figures compare against baselines measured in the same run, against the same local
server, and are medians over many repetitions (the machine is noisy):

(a) per-request time of ``AsyncSirayClient.get_task`` vs a raw pooled ``httpx.AsyncClient``
    GET + ``.json()``                                   goal: ratio <= 1.10
(b) 50 sequential status queries: ours (sync facade, async) vs the official ``siray`` SDK's
    ``Siray(...).image.query_task(id)``                 goal: ours >= 15x faster
(c) cold ``import siray_widgets`` vs ``import anywidget`` in fresh interpreters
                                                        goal: <= +50 ms

The server is uvicorn with a tiny Starlette app, in its own process (so that the client's
measurements do not share a GIL with it), on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

TASK_ID = "image_a8813a4b4c9"
KEY = "sk-bench-not-a-real-key"

SERVER = textwrap.dedent(
    """
    import sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    BODY = (
        b'{"code": "success", "message": "", "data": {"task_id": "image_a8813a4b4c9", '
        b'"status": "SUCCESS", "progress": "100%", "outputs": ["https://cdn.example/output-1"], '
        b'"fail_reason": "", "submit_time": 1763274672, "start_time": 1763274702, '
        b'"finish_time": 1763274838}}'
    )

    async def task(request):
        return Response(BODY, media_type="application/json")

    app = Starlette(routes=[Route("/v1/images/generations/async/{task_id}", task)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
    """
)


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def median(values: list[float]) -> float:
    return statistics.median(values)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


# --- (a) per-request overhead ------------------------------------------------------------


async def bench_overhead(base_url: str, rounds: int, batch: int) -> None:
    import httpx

    from siray_widgets.client import AsyncSirayClient

    url = f"{base_url}/v1/images/generations/async/{TASK_ID}"
    raw = httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"})
    ours = AsyncSirayClient(KEY, base_url)

    async def raw_batch() -> float:
        start = time.perf_counter()
        for _ in range(batch):
            response = await raw.get(url)
            response.json()
        return (time.perf_counter() - start) / batch

    async def ours_batch() -> float:
        start = time.perf_counter()
        for _ in range(batch):
            await ours.get_task(TASK_ID)
        return (time.perf_counter() - start) / batch

    for warm in (raw_batch, ours_batch):  # connections open, code paths warm
        await warm()
    raw_times: list[float] = []
    our_times: list[float] = []
    ratios: list[float] = []
    for i in range(rounds):
        # Alternate the order, so that drift in the machine's speed hits both sides alike.
        if i % 2:
            r, o = await raw_batch(), await ours_batch()
        else:
            o, r = await ours_batch(), await raw_batch()
        raw_times.append(r)
        our_times.append(o)
        ratios.append(o / r)
    await raw.aclose()
    await ours.aclose()

    print(f"(a) per-request time, {rounds} rounds x {batch} requests, medians")
    print(f"    raw httpx.AsyncClient GET + .json()   {us(median(raw_times))}")
    print(f"    AsyncSirayClient.get_task             {us(median(our_times))}")
    print(
        f"    overhead: {us(median(our_times) - median(raw_times)).strip()} per request; "
        f"ratio ours/raw = {median(ratios):.3f}  (goal <= 1.10)"
    )


# --- (b) 50 sequential status queries vs the official SDK --------------------------------


def time_it(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_sdk(base_url: str, sdk_rounds: int, per_round: int, queries: int) -> None:
    from siray import Siray

    from siray_widgets.client import AsyncSirayClient, SirayClient

    sdk = Siray(api_key=KEY, base_url=base_url)
    sync = SirayClient(KEY, base_url)
    aio = AsyncSirayClient(KEY, base_url)
    loop = asyncio.new_event_loop()

    def run_sdk() -> None:
        for _ in range(queries):
            status = sdk.image.query_task(TASK_ID)
        assert status.status == "SUCCESS"

    def run_sync() -> None:
        for _ in range(queries):
            task = sync.get_task(TASK_ID)
        assert task.status.value == "SUCCESS"

    async def queries_async() -> None:
        for _ in range(queries):
            task = await aio.get_task(TASK_ID)
        assert task.status.value == "SUCCESS"

    def run_async() -> None:
        loop.run_until_complete(queries_async())

    for warm in (run_sdk, run_sync, run_async):
        warm()
    # Each round times all three back to back, so that a busy spell on the machine hits
    # them alike; the figures are medians over rounds, the speed-ups medians of per-round
    # ratios. Our clients run several times per SDK run (they are that much quicker).
    sdk_times: list[float] = []
    sync_times: list[float] = []
    async_times: list[float] = []
    sync_ratios: list[float] = []
    async_ratios: list[float] = []
    for _ in range(sdk_rounds):
        sdk_time = time_it(run_sdk)
        sync_time = median([time_it(run_sync) for _ in range(per_round)])
        async_time = median([time_it(run_async) for _ in range(per_round)])
        sdk_times.append(sdk_time)
        sync_times.append(sync_time)
        async_times.append(async_time)
        sync_ratios.append(sdk_time / sync_time)
        async_ratios.append(sdk_time / async_time)
    sync.close()
    loop.run_until_complete(aio.aclose())
    loop.close()

    print(f"(b) {queries} sequential status queries, medians of {sdk_rounds} rounds")
    print(f"    official siray SDK 0.3.0 query_task   {ms(median(sdk_times))}")
    print(
        f"    SirayClient.get_task (sync facade)    {ms(median(sync_times))}   "
        f"{median(sync_ratios):6.1f}x faster"
    )
    print(
        f"    AsyncSirayClient.get_task             {ms(median(async_times))}   "
        f"{median(async_ratios):6.1f}x faster"
    )
    print("    (goal: >= 15x)")


# --- (c) cold import ---------------------------------------------------------------------

IMPORT_PROBE = "import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
#: The same, in a process that has what a notebook kernel has loaded before any cell runs.
KERNEL_PROBE = "import ipykernel.kernelapp, anywidget; " + IMPORT_PROBE

#: label -> statement. The widget class is measured too: it is what a notebook user imports.
IMPORTS = {
    "siray_widgets": "import siray_widgets",
    "anywidget": "import anywidget",
    "ImagineWidget": "from siray_widgets import ImagineWidget",
}


def cold_import(statement: str, probe: str = IMPORT_PROBE) -> tuple[float, float]:
    """(time of the import statement, wall time of the whole interpreter run)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", probe.format(statement=statement)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return float(out), time.perf_counter() - start


def bench_import(runs: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in IMPORTS}
    for statement in IMPORTS.values():  # warm the OS file cache once
        cold_import(statement)
    for _ in range(runs):
        for label, statement in IMPORTS.items():
            results[label].append(cold_import(statement))
    stmt = {m: median([r[0] for r in results[m]]) for m in IMPORTS}
    wall = {m: median([r[1] for r in results[m]]) for m in IMPORTS}
    print(f"(c) cold import in fresh interpreters, medians of {runs}")
    for label, statement in IMPORTS.items():
        print(f"    {statement:<40} statement {ms(stmt[label])}   process {ms(wall[label])}")
    diff = stmt["siray_widgets"] - stmt["anywidget"]
    print(f"    import siray_widgets - import anywidget = {diff * 1e3:+.2f} ms  (goal <= +50 ms)")
    diff = stmt["ImagineWidget"] - stmt["anywidget"]
    print(f"    ImagineWidget - import anywidget        = {diff * 1e3:+.2f} ms")
    statement = IMPORTS["ImagineWidget"]
    in_kernel = median([cold_import(statement, KERNEL_PROBE)[0] for _ in range(runs)])
    print(f"    {statement} after ipykernel + anywidget (a kernel's state): {ms(in_kernel)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rounds, batch, sdk_rounds, imports = (9, 100, 3, 5) if args.quick else (31, 200, 11, 11)

    import httpx
    import siray

    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}, siray {siray.__version__}")
    with local_server() as base_url:
        print(f"server: uvicorn + Starlette in a subprocess at {base_url}\n")
        asyncio.run(bench_overhead(base_url, rounds, batch))
        print()
        bench_sdk(base_url, sdk_rounds, 5, 50)
    print()
    bench_import(imports)


if __name__ == "__main__":
    main()
