"""Run store benchmarks: what recording adds to a run, and how fast 5,000 runs are searched.

Run: ``.venv/bin/python benchmarks/bench_store.py`` (about a minute; ``--quick`` for less).

(a) The same ``SirayClient.generate()`` against a sandbox in its own process (generation time
    0, polls 2 ms apart), alternately without recording and with it (the run store's
    recorder as the client's hooks, images not kept). Printed: medians of both, their
    difference, and the time spent inside the recorder's calls per run, measured directly
    (p50/p95).                                                   goal: recording < 2 ms a run
(b) Keeping a run's four images (download, checks, parameters embedded, thumbnails): done on
    background threads after the run, so not part of (a); printed for scale.
(c) A store of 5,000 runs: the queries the history panel makes (a page of 100 compact rows,
    with the total), unfiltered and with each kind of filter, and search-as-you-type
    prefixes. Printed: p50/p95 per query.                       goal: p95 well inside 16 ms
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from siray_widgets.client import PollSchedule, SirayClient
from siray_widgets.schema import ASPECT_RATIOS, ImageRequest
from siray_widgets.store import Recorder, RecordingHooks, RunQuery, RunStore
from siray_widgets.task import Task


@contextlib.contextmanager
def sandbox_process() -> Iterator[str]:
    """A sandbox in its own process (its work does not share our GIL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siray_widgets.cli",
            "sandbox",
            "--port",
            str(port),
            "--duration",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class TimedHooks(RecordingHooks):
    """The real recording hooks, with the time spent inside the recorder added up per run."""

    def __init__(self, store: RunStore) -> None:
        super().__init__(store=store, keep_images=False, source="bench")
        self.spent: list[float] = []

    def start_run(self, request: ImageRequest, scrub: Callable[[str], str]) -> Any:
        began = time.perf_counter()
        recorder = super().start_run(request, scrub)
        assert recorder is not None
        spent = [time.perf_counter() - began]
        hooks = self

        class Timed:
            def submitted(self, task_id: str) -> None:
                t = time.perf_counter()
                recorder.submitted(task_id)
                spent[0] += time.perf_counter() - t

            def reading(self, task: Task) -> None:
                t = time.perf_counter()
                recorder.reading(task)
                spent[0] += time.perf_counter() - t

            def finished(self, outcome: Any) -> None:
                t = time.perf_counter()
                recorder.finished(outcome)
                spent[0] += time.perf_counter() - t
                hooks.spent.append(spent[0])

        return Timed()


def bench_recording(url: str, runs: int, home: Path) -> None:
    print(f"(a) recording a run: {runs} runs each way, alternating, sandbox in its own process")
    poll = PollSchedule.fixed(0.002)
    request = ImageRequest(prompt="a fox in the snow", aspect_ratio="16:9", stylize=250)
    with RunStore(home / "a") as store:
        hooks = TimedHooks(store)
        plain = SirayClient(api_key="sandbox", base_url=url, poll=poll, hooks=False)
        recorded = SirayClient(api_key="sandbox", base_url=url, poll=poll, hooks=hooks)
        with plain, recorded:
            for client in (plain, recorded):  # warm up: pools, imports, the database file
                for _ in range(10):
                    client.generate(request)
            hooks.spent.clear()
            without: list[float] = []
            with_: list[float] = []
            for _ in range(runs):
                for client, times in ((plain, without), (recorded, with_)):
                    began = time.perf_counter()
                    client.generate(request)
                    times.append(time.perf_counter() - began)
        base, rec = statistics.median(without), statistics.median(with_)
        inside = [s * 1000 for s in hooks.spent]
        print(f"    generate() without recording   median {base * 1000:7.2f} ms")
        print(
            f"    generate() with recording      median {rec * 1000:7.2f} ms"
            f"   ({rec / base:.2f}x; difference of medians {1000 * (rec - base):+.2f} ms)"
        )
        print(
            f"    inside the recorder, per run   p50 {pct(inside, 50):.2f} ms  "
            f"p95 {pct(inside, 95):.2f} ms   (goal < 2 ms: "
            f"{'met' if pct(inside, 95) < 2 else 'MISSED'})"
        )
        print(f"    runs in the store: {store.count()}")


def bench_images(url: str, runs: int, home: Path) -> None:
    print(f"(b) keeping a run's 4 images (background, after the run): {runs} runs")
    with (
        RunStore(home / "b") as store,
        SirayClient(
            api_key="sandbox", base_url=url, poll=PollSchedule.fixed(0.002), hooks=False
        ) as client,
    ):
        times: list[float] = []
        for i in range(runs):
            task = client.generate(prompt=f"a lighthouse {i}", aspect_ratio="3:2")
            recorder = store.record(
                ImageRequest(prompt=f"a lighthouse {i}"), source="bench", api_base_url=url
            )
            recorder.submitted(task.task_id)
            began = time.perf_counter()
            recorder.finished(task)
            run = recorder.wait_images(60)
            times.append(time.perf_counter() - began)
            assert run.images_state == "done", run.images_error
        per = [t * 1000 for t in times]
        print(
            f"    per run (4 images, sandbox renders them on request)  "
            f"p50 {pct(per, 50):.0f} ms  p95 {pct(per, 95):.0f} ms"
        )


WORDS = [
    *("fox", "owl", "city", "rain", "snow", "forest", "castle", "dragon", "girl", "robot"),
    *("tea", "garden", "sea", "ship", "moon", "sun", "neon", "portrait", "watercolor", "ink"),
    *("sketch", "cat", "dog", "mountain", "river", "night", "dawn", "lantern", "festival"),
]


def fill(store: RunStore, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = time.time()
    for i in range(n):
        words = rng.sample(WORDS, 5)
        request = ImageRequest(
            prompt=f"a {words[0]} and a {words[1]} in the {words[2]}, {words[3]} style #{i}",
            negative_prompt=rng.choice(["", "text", "people, blur"]),
            aspect_ratio=rng.choice(ASPECT_RATIOS),
            chaos=rng.choice([0, 0, 10, 50]),
            stylize=rng.choice([50, 100, 250, 750]),
            quality=rng.choice(["1", "2"]),
            seed=rng.randrange(-1, 10_000),
            raw=rng.random() < 0.2,
        )
        recorder: Recorder = store.record(
            request,
            origin=rng.choice(["widget", "cli", "script"]),
            keep_images=False,
            source="bench",
        )
        task_id = f"bench-{i:05d}"
        recorder.submitted(task_id)
        recorder.reading(_task(task_id, "IN_PROGRESS", 50))
        if rng.random() < 0.9:
            recorder.finished(
                _task(
                    task_id,
                    "SUCCESS",
                    100,
                    [f"https://cdn.example/{task_id}/{k}.png" for k in range(1, 5)],
                )
            )
        else:
            recorder.finished(_task(task_id, "FAILURE", 50))
        if rng.random() < 0.1:
            store.star(task_id)
        if rng.random() < 0.2:
            store.add_tags(task_id, [rng.choice(["keep", "poster", "class-3", "study"])])
    # Spread the runs over the last 60 days.
    with store._write() as db:
        db.execute("UPDATE runs SET created_at = ? - (5000 - id) * 1036.8", (now,))


def _task(task_id: str, status: str, progress: int, outputs: list[str] | None = None) -> Task:
    return Task.from_api(
        {
            "task_id": task_id,
            "status": status,
            "progress": f"{progress}%",
            "outputs": outputs or [],
            "fail_reason": "" if status != "FAILURE" else "x",
        }
    )


def bench_queries(n: int, reps: int, home: Path) -> None:
    print(f"(c) {n:,} runs: one page of 100 compact rows plus the total, {reps} times each")
    with RunStore(home / "c") as store:
        began = time.perf_counter()
        fill(store, n)
        print(
            f"    (filled in {time.perf_counter() - began:.1f} s: "
            f"{1000 * (time.perf_counter() - began) / n:.2f} ms a run, 4-5 transactions each)"
        )
        queries: dict[str, RunQuery] = {
            "newest first, no filter": RunQuery(limit=100),
            "page 20 (offset 1,900)": RunQuery(limit=100, offset=1900),
            'text "fox"': RunQuery(text="fox", limit=100),
            'text "fox rain watercolor"': RunQuery(text="fox rain watercolor", limit=100),
            "text that matches nothing": RunQuery(text="zebra", limit=100),
            "status failed": RunQuery(status="failed", limit=100),
            "starred": RunQuery(starred=True, limit=100),
            "aspect_ratio 16:9": RunQuery(fields={"aspect_ratio": "16:9"}, limit=100),
            "stylize 100..500, raw": RunQuery(
                fields={"stylize": (100, 500), "raw": True}, limit=100
            ),
            "tag poster": RunQuery(tags=("poster",), limit=100),
            "last 7 days": RunQuery(since="7d", limit=100),
            'all of them: "owl", 16:9, success, 30d': RunQuery(
                text="owl",
                status="success",
                fields={"aspect_ratio": "16:9"},
                since="30d",
                limit=100,
            ),
        }
        for name, query in queries.items():
            times = []
            for _ in range(reps):
                began = time.perf_counter()
                page = store.page(query)
                times.append((time.perf_counter() - began) * 1000)
            print(
                f"    {name:<42} p50 {pct(times, 50):5.2f} ms  p95 {pct(times, 95):5.2f} ms"
                f"   ({page.total:,} match)"
            )
        typing = []
        for _ in range(max(1, reps // 10)):
            for prefix in ("w", "wa", "wat", "wate", "water", "waterc", "watercolor"):
                began = time.perf_counter()
                store.page(RunQuery(text=prefix, limit=100))
                typing.append((time.perf_counter() - began) * 1000)
        print(
            f"    {'search as you type (7 prefixes)':<42} p50 {pct(typing, 50):5.2f} ms  "
            f"p95 {pct(typing, 95):5.2f} ms"
        )
        for name, action in (
            ("every run as Run objects (to_pandas input)", lambda: store.runs()),
            ("one run with its events (details drawer)", lambda: store.get("bench-02500")),
        ):
            times = []
            for _ in range(max(3, reps // 20)):
                began = time.perf_counter()
                action()
                times.append((time.perf_counter() - began) * 1000)
            print(f"    {name:<42} p50 {pct(times, 50):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    runs, images, reps = (60, 5, 40) if args.quick else (300, 15, 200)
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as url:
        home = Path(scratch)
        os.environ["SIRAY_WIDGETS_HOME"] = str(home / "default")  # never the user's folder
        bench_recording(url, runs, home)
        bench_images(url, images, home)
        bench_queries(5000, reps, home)


if __name__ == "__main__":
    main()
