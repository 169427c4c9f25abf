"""Several real processes on one store: parallel writers lose nothing, a killed process leaves
runs that say "interrupted" (never half a row), a new process sees every run, migrations run
once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from siray_widgets.store import SCHEMA_VERSION, RunStore

#: A child process: records ``count`` runs the way the client reports them.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from siray_widgets.schema import ImageRequest
    from siray_widgets.store import RunStore
    from siray_widgets.task import Task

    home, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "finish"

    def reading(task_id, status, progress, outputs=()):
        return Task.from_api({"task_id": task_id, "status": status,
                              "progress": f"{progress}%", "outputs": list(outputs)})

    store = RunStore(home)
    print("open", flush=True)
    go = os.environ.get("SIRAY_TEST_GO")
    while go and not os.path.exists(go):  # start together with the other writers
        time.sleep(0.005)
    for i in range(count):
        task_id = f"{name}-{i}"
        rec = store.record(ImageRequest(prompt=f"{name} run {i}", chaos=i % 101),
                           origin="script", keep_images=False)
        rec.submitted(task_id)
        for p in (10, 50, 90):
            rec.reading(reading(task_id, "IN_PROGRESS", p))
        store.add_tags(task_id, [name, "shared"])
        store.ledger.record("other/model", 1, 0.25)
        if mode == "hang" and i == count - 1:
            print("ready", flush=True)
            time.sleep(600)
        rec.finished(reading(task_id, "SUCCESS", 100, [f"https://x.example/{task_id}/1.png"]))
        if mode == "exit" and i == count - 2:
            # the last run is left unfinished, and the script simply ends
            rec = store.record(ImageRequest(prompt="left behind"), keep_images=False)
            rec.submitted(f"{name}-left")
            print("ready", flush=True)
            sys.exit(0)
    print("done", flush=True)
    """
)


def writer(
    home: Path, name: str, count: int, mode: str = "finish", go: Path | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "SIRAY_TEST_GO": str(go)} if go else None
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), name, str(count), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_parallel_writer_processes_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    names, count = ["a", "b", "c", "d"], 40
    go = tmp_path / "go"
    procs = [writer(home, name, count, go=go) for name in names]  # all open a fresh store
    for proc in procs:  # every writer has opened the store: now they all write at once
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
    go.touch()
    for proc in procs:
        assert finish(proc).splitlines()[-1] == "done"
    with RunStore(home) as store:
        runs = store.runs()
        assert len(runs) == len(names) * count
        assert {r.task_id for r in runs} == {f"{n}-{i}" for n in names for i in range(count)}
        for run in runs:
            assert run.state == "success"
            assert run.prompt == f"{run.task_id.split('-')[0]} run {run.task_id.split('-')[1]}"  # type: ignore[union-attr]
            assert set(run.tags) == {run.task_id.split("-")[0], "shared"}  # type: ignore[union-attr]
            assert len(run.outputs) == 1
        full = store.get("c-7")
        assert [e.progress for e in full.events if e.status == "IN_PROGRESS"] == [10, 50, 90]
        assert store.tags() == {"a": count, "b": count, "c": count, "d": count, "shared": 4 * count}
        spent = store.ledger.day(model="other/model")
        assert spent.tasks == 4 * count
        assert spent.cost == pytest.approx(0.25 * 4 * count)
        assert store.ledger.day(model="midjourney/midjourney-niji-7-t2i").tasks == 4 * count
    with sqlite3.connect(home / "runs.sqlite3") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        versions = raw.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each applied once


def test_a_killed_process_leaves_interrupted_runs_never_half_rows(tmp_path: Path) -> None:
    home = tmp_path / "crash"
    proc = writer(home, "k", 3, mode="hang")
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            break
    # While the writer lives, its unfinished run is simply running.
    with RunStore(home) as store:
        assert store.get("k-2").state == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    with RunStore(home) as store:
        run = store.get("k-2")
        assert run.state == "interrupted"
        assert f"pid {proc.pid}" in run.error
        assert run.events[-1].state == "interrupted"
        assert run.progress == 90  # the last reading before the crash is kept
        assert [store.get(f"k-{i}").state for i in range(2)] == ["success", "success"]


def test_a_script_that_ends_mid_run_marks_it_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "exit"
    out = finish(writer(home, "e", 3, mode="exit"))
    assert "ready" in out
    with RunStore(home) as store:
        run = store.get("e-left")
        assert run.state == "interrupted"
        assert "exited before the task finished" in run.error


def test_killing_a_busy_writer_leaves_a_consistent_database(tmp_path: Path) -> None:
    home = tmp_path / "busy"
    proc = writer(home, "z", 10_000)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    time.sleep(1.0)  # mid-stream: hundreds of transactions in
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    with sqlite3.connect(home / "runs.sqlite3") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with RunStore(home) as store:
        runs = store.runs(None, events=True)
        assert len(runs) > 5
        assert {r.state for r in runs} <= {"success", "interrupted"}
        assert sum(r.state == "interrupted" for r in runs) <= 1
        for run in runs:
            assert run.request.prompt.startswith("z run ")
            if run.state == "success":
                assert run.finished_at is not None
                assert run.outputs == (f"https://x.example/{run.task_id}/1.png",)
                assert [i.url for i in run.images] == list(run.outputs)
                assert run.events[-1].state == "success"


def test_a_new_process_sees_every_run(tmp_path: Path) -> None:
    home = tmp_path / "restart"
    finish(writer(home, "r", 5))
    cli = Path(sys.executable).with_name("siray-widgets")
    out = subprocess.run(
        [str(cli), "history", "--store", str(home), "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = json.loads(out.stdout)
    assert [row["task_id"] for row in rows] == [f"r-{i}" for i in range(4, -1, -1)]
    assert all(row["state"] == "success" for row in rows)


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "newer"
    RunStore(home).close()
    with sqlite3.connect(home / "runs.sqlite3") as raw:
        raw.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'x', 0)",
            (SCHEMA_VERSION + 1,),
        )
    from siray_widgets.store import StoreError

    with pytest.raises(StoreError, match="newer siray-widgets"):
        RunStore(home)


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    home = tmp_path / "junk"
    home.mkdir()
    (home / "runs.sqlite3").write_bytes(b"this is not a database" * 100)
    from siray_widgets.store import StoreError

    with pytest.raises(StoreError, match=r"runs\.sqlite3"):
        RunStore(home)
