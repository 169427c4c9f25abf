"""Workshop proxy benchmark: a class of 30 creating at once, and the latency the proxy adds.

Run: ``.venv/bin/python benchmarks/bench_proxy.py`` (about half a minute).

Three processes, as in a classroom: a sandbox (the upstream; tasks finish at once, it demands a
"real" key), ``siray-widgets proxy`` in front of it (30 participants, quota 20, at most 20
requests at once per participant), and this script as the participants.

(a) 30 participants x 20 creates, all at once (600 requests in flight), then one more each.
    goal: exactly 600 creates reach the upstream, every burst create succeeds, and the 30
    extra ones are refused for quota (0 over quota)
(b) the latency the proxy adds: the same requests sent straight to the sandbox and through
    the proxy, in this run, one at a time (no queueing: what the proxy itself costs) and all
    at once (the burst above: what a class feels). p50 / p95 of each, and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from siray_widgets.schema import CREATE_PATH, MODEL_ID

KEY = "sk-bench-real-key-0123456789abcdefghij"
BODY = {"model": MODEL_ID, "prompt": "a fox in the snow", "aspect_ratio": "16:9"}

#: The upstream: a sandbox in a process of its own that prints how many tasks it has made
#: whenever it reads a line (counted by the upstream itself, not by the proxy).
UPSTREAM = """
import sys
from siray_widgets import sandbox
box = sandbox.start(duration=0, api_key=sys.argv[1], max_tasks=100_000)
print(box.base_url, flush=True)
for _ in sys.stdin:
    print(len(box.task_ids()), flush=True)
box.stop()
"""


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def upstream_task_count(proc: subprocess.Popen[str]) -> int:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("count\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def start_proxy(
    upstream: str, folder: Path, participants: int, quota: int
) -> tuple[subprocess.Popen[str], str, list[str]]:
    cli = str(Path(sys.executable).with_name("siray-widgets"))
    env = {**os.environ, "SIRAY_API_KEY": KEY, "SIRAY_PROXY_ADMIN_TOKEN": "bench-admin-token"}
    tokens_csv = folder / "tokens.csv"
    args = [
        cli, "proxy", "--upstream", upstream, "--port", "0", "--db", str(folder / "class.db"),
        "--participants", str(participants), "--quota", str(quota), "--concurrency", str(quota),
        "--creates-per-minute", "100000", "--tokens-out", str(tokens_csv),
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stdout is not None
    url = ""
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the proxy did not start")
        if line.startswith("Workshop proxy on "):
            url = line.split()[3].rstrip(",")
        if line.startswith("Press Ctrl-C"):
            break
    tokens = [row.split(",")[0] for row in tokens_csv.read_text().splitlines()[1:]]
    return proc, url, tokens


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed_post(http: httpx.AsyncClient, url: str, key: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await http.post(url, json=BODY, headers={"Authorization": f"Bearer {key}"})
    return time.perf_counter() - started, response


async def sequential(base: str, keys: list[str], count: int) -> list[float]:
    """``count`` creates one after another, cycling through ``keys``; seconds each."""
    times: list[float] = []
    async with httpx.AsyncClient(timeout=60) as http:
        await timed_post(http, base + CREATE_PATH, keys[0])  # warm the connection
        for n in range(count):
            elapsed, response = await timed_post(http, base + CREATE_PATH, keys[n % len(keys)])
            assert response.status_code == 200, response.text
            times.append(elapsed)
    return times


async def burst(base: str, keys: list[str], per_key: int) -> tuple[list[float], list[int]]:
    """Every key sends ``per_key`` creates at once, each key on its own connection pool (one
    participant's machine); all keys at the same time."""
    clients = [
        httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=per_key)) for _ in keys
    ]
    try:
        answers = await asyncio.gather(
            *(
                timed_post(http, base + CREATE_PATH, key)
                for http, key in zip(clients, keys, strict=False)
                for _ in range(per_key)
            )
        )
    finally:
        for http in clients:
            await http.aclose()
    return [t for t, _ in answers], [r.status_code for _, r in answers]


def line(name: str, times: list[float]) -> str:
    p50, p95 = percentile(times, 0.5) * 1000, percentile(times, 0.95) * 1000
    return f"{name:<28} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   (n={len(times)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--quota", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=200, help="unloaded creates per side")
    args = parser.parse_args(argv)
    n, q = args.participants, args.quota

    upstream_proc, upstream = start_upstream()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proxy_proc, proxy_url, tokens = start_proxy(upstream, Path(tmp), n, q)
            try:
                # (a) the class at once, then one more each
                before = upstream_task_count(upstream_proc)
                cpu_before = cpu_seconds(proxy_proc.pid)
                started = time.perf_counter()
                via_burst, codes = asyncio.run(burst(proxy_url, tokens, q))
                wall = time.perf_counter() - started
                cpu_after = cpu_seconds(proxy_proc.pid)
                extra = asyncio.run(burst(proxy_url, tokens, 1))[1]
                class_upstream = upstream_task_count(upstream_proc) - before
                usage = httpx.get(
                    proxy_url + "/admin/api/participants",
                    headers={"Authorization": "Bearer bench-admin-token"},
                ).json()["participants"]
            finally:
                proxy_proc.terminate()
                proxy_proc.wait(timeout=20)
            # (b) the same burst straight to the upstream; then both sides one at a time
            # (a fresh proxy: the burst spent every quota)
            direct_burst, _ = asyncio.run(burst(upstream, [KEY] * n, q))
            direct_seq = asyncio.run(sequential(upstream, [KEY], args.sequential))
            proxy_proc, proxy_url, tokens = start_proxy(
                upstream, Path(tmp) / "again", 10, args.sequential
            )
            try:
                proxy_seq = asyncio.run(sequential(proxy_url, tokens, args.sequential))
            finally:
                proxy_proc.terminate()
                proxy_proc.wait(timeout=20)
    finally:
        upstream_proc.terminate()
        upstream_proc.wait(timeout=20)

    through = sum(1 for c in codes if c == 200)
    over = sum(1 for u in usage if u["used"] > u["quota"])
    quota_refusals = sum(1 for c in extra if c == 429)
    print(f"class: {n} participants x {q} creates at once, then 1 more each")
    print(f"  through the proxy: {through} of {len(codes)} created in {wall:.2f} s; "
          f"other answers: {sorted(set(codes) - {200}) or 'none'}")  # fmt: skip
    print(f"  extra creates refused for quota: {quota_refusals} of {len(extra)}")
    print(f"  participants over quota: {over}; tasks charged: {sum(u['used'] for u in usage)}")
    print(f"  creates that reached the upstream: {class_upstream} (goal exactly {n * q})")
    if cpu_before is not None and cpu_after is not None:
        per_create = (cpu_after - cpu_before) / max(1, len(codes)) * 1000
        print(f"  proxy CPU per create in the burst: {per_create:.2f} ms")
    ok = through == n * q and class_upstream == n * q and over == 0 and quota_refusals == n
    print(f"  verdict: {'met' if ok else 'MISSED'}")
    print()
    print("latency of a create (same sandbox, same run)")
    print("  " + line("direct, one at a time", direct_seq))
    print("  " + line("proxy, one at a time", proxy_seq))
    added50 = (percentile(proxy_seq, 0.5) - percentile(direct_seq, 0.5)) * 1000
    added95 = (percentile(proxy_seq, 0.95) - percentile(direct_seq, 0.95)) * 1000
    print(f"  added by the proxy:          p50 {added50:+7.2f} ms   p95 {added95:+7.2f} ms")
    print("  " + line(f"direct, {n * q} at once", direct_burst))
    print("  " + line(f"proxy, {n * q} at once", via_burst))
    added50 = (percentile(via_burst, 0.5) - percentile(direct_burst, 0.5)) * 1000
    added95 = (percentile(via_burst, 0.95) - percentile(direct_burst, 0.95)) * 1000
    print(f"  added by the proxy:          p50 {added50:+7.2f} ms   p95 {added95:+7.2f} ms")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  (load average during the run: {load:.1f} on {os.cpu_count()} cores)")
    print(f"  (mean unloaded: direct {statistics.mean(direct_seq) * 1000:.2f} ms, "
          f"proxy {statistics.mean(proxy_seq) * 1000:.2f} ms)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
