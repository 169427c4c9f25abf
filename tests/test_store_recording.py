"""Runs recorded through the real client and sandbox over HTTP: every field, every ending,
images kept with their parameters, the ledger, the key never stored, stalls."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.fault_server import (
    CREATE,
    TEST_KEY,
    FaultServer,
    Reply,
    created,
    error_reply,
    fast_retry,
    task_path,
    task_reply,
    tiny_poll,
)
from fixtures.store_fixtures import ImageServer, make_image, record_run, task
from PIL import Image

import siray_widgets
from siray_widgets import client as client_module
from siray_widgets.client import AsyncSirayClient, PollSchedule, SirayClient
from siray_widgets.errors import PaymentRequiredError, TaskFailedError, WaitTimeoutError
from siray_widgets.metadata import read_image_metadata
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.schema import MODEL_ID, ImageRequest
from siray_widgets.store import RecordingHooks, RunStore, StallWatch, default_stall_after

FAST = PollSchedule(initial=0.02, maximum=0.05, after_change=0.02)


def client_for(sandbox: SandboxHandle, store: RunStore, **hooks: object) -> SirayClient:
    return SirayClient(
        api_key=sandbox.api_key,
        base_url=sandbox.base_url,
        poll=FAST,
        hooks=RecordingHooks(store=store, **hooks),  # type: ignore[arg-type]
    )


def test_a_generate_is_recorded_with_every_field(make_sandbox: object, store: RunStore) -> None:
    box = make_sandbox(duration=1.0)  # type: ignore[operator]
    request = ImageRequest(
        prompt="a fox in the snow",
        negative_prompt="people",
        aspect_ratio="16:9",
        stylize=250,
        seed=1234,
    )
    started = time.time()
    with client_for(box, store, source="my-script.py") as client:
        result = client.generate(request)
    runs = store.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.task_id == result.task_id
    assert run.model == MODEL_ID
    assert run.request_json == request.to_json()  # the exact body sent
    assert run.request == request
    assert run.origin == "script"
    assert run.source == "my-script.py"
    assert run.state == "success"
    assert run.status == "SUCCESS"
    assert run.progress == 100
    assert run.outputs == result.outputs
    assert run.seed_used == 1234
    assert run.fail_reason == run.error == ""
    assert started <= run.created_at.timestamp() <= run.submitted_at.timestamp()  # type: ignore[union-attr]
    assert run.finished_at is not None
    assert run.finished_at >= run.submitted_at  # type: ignore[operator]
    assert run.api_submit_time is not None
    assert run.timings["total"] is not None
    assert run.timings["total"] > 0
    # Every status seen, with its time, in order.
    full = store.get(run.task_id)  # type: ignore[arg-type]
    seen = [e.status for e in full.events if e.status]
    assert seen[0] in ("NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS")
    assert seen[-1] == "SUCCESS"
    assert "IN_PROGRESS" in seen
    assert [e.state for e in full.events][:2] == ["starting", "running"]
    times = [e.at for e in full.events]
    assert times == sorted(times)
    progress = [e.progress for e in full.events if e.status == "IN_PROGRESS"]
    assert progress == sorted(progress)
    # The ledger counts the task.
    assert store.ledger.day().tasks == 1
    assert store.ledger.day().priced_tasks == 0


def test_images_are_kept_with_their_parameters_and_thumbnails(
    sandbox: SandboxHandle, store: RunStore
) -> None:
    with client_for(sandbox, store) as client:
        result = client.generate(prompt="a lighthouse at dusk", aspect_ratio="3:2", seed=-1)
    run = store.runs()[0]
    assert run.images_state in ("pending", "done")
    recorder_run = store.keep_images(run).result(30)  # idempotent: nothing left to fetch
    assert recorder_run.images_state == "done", recorder_run.images_error
    assert [i.index for i in recorder_run.images] == [1, 2, 3, 4]
    # The sandbox's PNGs say which seed it drew for seed=-1: the store records it.
    assert recorder_run.seed_used is not None
    assert recorder_run.seed_used >= 0
    for image in recorder_run.images:
        assert image.path is not None
        assert image.thumb is not None
        path = Path(image.path)
        assert path.parent == store.home / "images"
        assert path.name == f"{result.task_id}-{image.index}.png"
        meta = read_image_metadata(path)
        assert meta.task_id == result.task_id
        assert meta.index == image.index
        assert meta.seed == recorder_run.seed_used
        assert meta.request == recorder_run.request
        with Image.open(path) as full:
            assert full.size == (image.width, image.height)
        with Image.open(image.thumb) as thumb:
            assert thumb.format == "WEBP"
            assert max(thumb.size) <= 256
        assert image.bytes == path.stat().st_size + Path(image.thumb).stat().st_size
    assert recorder_run.bytes == sum(i.bytes for i in recorder_run.images)


def test_a_failed_task_is_recorded_with_its_reason(make_sandbox: object, store: RunStore) -> None:
    box = make_sandbox(failure_share=1.0)  # type: ignore[operator]
    with client_for(box, store) as client, pytest.raises(TaskFailedError) as failure:
        client.generate(prompt="a fox")
    run = store.runs()[0]
    assert run.state == "failure"
    assert run.status == "FAILURE"
    assert run.fail_reason == failure.value.fail_reason
    assert run.fail_reason
    assert run.images_state == "none"
    assert run.finished_at is not None


def test_a_refused_request_is_recorded_and_the_key_never_stored(
    fault_server: FaultServer, store: RunStore
) -> None:
    # The server echoes the key back in its error, as some do.
    fault_server.on("POST", CREATE, error_reply(402, f"balance exhausted for key {TEST_KEY}"))
    with (
        SirayClient(
            api_key=TEST_KEY,
            base_url=fault_server.url,
            retry=fast_retry(),
            hooks=RecordingHooks(store=store),
        ) as client,
        pytest.raises(PaymentRequiredError),
    ):
        client.generate(prompt="a fox")
    run = store.runs()[0]
    assert run.state == "error"
    assert run.task_id is None
    assert "balance exhausted" in run.error
    assert TEST_KEY not in run.error
    assert store.ledger.day().tasks == 0  # no task was created, nothing spent
    store.close()
    for path in store.home.iterdir():
        if path.is_file():
            assert TEST_KEY.encode() not in path.read_bytes(), path


def test_a_failure_reason_echoing_the_key_is_masked(
    fault_server: FaultServer, store: RunStore
) -> None:
    fault_server.on("POST", CREATE, created("t-key"))
    fault_server.always(
        "GET", task_path("t-key"), task_reply("t-key", "FAILURE", fail_reason=f"bad {TEST_KEY}")
    )
    with (
        SirayClient(
            api_key=TEST_KEY,
            base_url=fault_server.url,
            poll=tiny_poll(),
            hooks=RecordingHooks(store=store),
        ) as client,
        pytest.raises(TaskFailedError),
    ):
        client.generate(prompt="a fox")
    run = store.get("t-key")
    assert run.state == "failure"
    assert TEST_KEY not in run.fail_reason
    assert "***" in run.fail_reason


def test_stopping_the_wait_records_interrupted_and_cancel_records_cancelled(
    make_sandbox: object, store: RunStore
) -> None:
    box = make_sandbox(duration=30)  # type: ignore[operator]
    with client_for(box, store) as client, pytest.raises(WaitTimeoutError):
        client.generate(prompt="slow", timeout=0.3)
    run = store.runs()[0]
    assert run.state == "interrupted"
    assert "Stopped waiting after 0.3 s" in run.error

    async def cancel_one() -> None:
        async with AsyncSirayClient(
            api_key=box.api_key,
            base_url=box.base_url,
            poll=FAST,
            hooks=RecordingHooks(store=store),
        ) as aclient:
            running = asyncio.create_task(aclient.generate(prompt="cancel me"))
            await asyncio.sleep(0.3)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running

    asyncio.run(cancel_one())
    cancelled = store.runs()[0]
    assert cancelled.prompt == "cancel me"
    assert cancelled.state == "cancelled"
    assert "may still finish on the server" in cancelled.error


def test_a_download_that_fails_is_recorded_and_can_be_retried(
    image_server: ImageServer, store: RunStore
) -> None:
    good = image_server.serve_image("/ok.png")
    # A CDN answering with an HTML error page where the image should be.
    image_server.on(
        "GET",
        "/later.png",
        Reply(200, b"<!doctype html><p>expired</p>", {"Content-Type": "text/html"}),
    )
    recorder = record_run(store, outputs=[good, image_server.url + "/later.png"], keep_images=True)
    run = recorder.wait_images(30)
    assert run.images_state == "partial"
    assert "1 of 2 image(s) not kept: #2: the download is an HTML page" in run.images_error
    assert run.images[1].path is None
    assert "HTML" in run.images[1].error
    # The URL works now (through a redirect): a retry keeps it.
    image_server.serve_image("/real.png", "jpeg")
    image_server.always("GET", "/later.png", Reply(302, b"", {"Location": "/real.png"}))
    (retried,) = [f.result(30) for f in store.retry_images()]
    assert retried.images_state == "done"
    assert retried.images_error == ""
    assert retried.images[1].path is not None
    assert retried.images[1].path.endswith("-2.jpg")
    assert read_image_metadata(retried.images[1].path).task_id == run.task_id


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(404, b"gone"), "HTTP 404"),
        (
            Reply(
                200, b"<svg xmlns='http://www.w3.org/2000/svg'/>", {"Content-Type": "image/svg+xml"}
            ),
            "SVG",
        ),
        (
            Reply(200, make_image("png", (256, 256))[:-300], {"Content-Type": "image/png"}),
            "damaged or truncated",
        ),
    ],
    ids=["404", "svg", "truncated"],
)
def test_what_is_not_a_whole_image_is_not_kept(
    image_server: ImageServer, store: RunStore, reply: Reply, words: str
) -> None:
    image_server.always("GET", "/x.png", reply)
    run = record_run(store, outputs=[image_server.url + "/x.png"], keep_images=True).wait_images(30)
    assert run.images_state == "failed"
    assert words in run.images_error
    assert list((store.home / "images").iterdir()) == []


def test_a_too_large_image_is_refused(
    image_server: ImageServer, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siray_widgets.store import images

    real_fetch = images.fetch
    monkeypatch.setattr(
        "siray_widgets.store.runs.fetch", lambda url: real_fetch(url, max_bytes=1000)
    )
    noise = Image.frombytes("RGB", (100, 100), os.urandom(30_000))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    url = image_server.serve_image("/big.png", data=buffer.getvalue())
    run = record_run(store, outputs=[url], keep_images=True).wait_images(30)
    assert run.images_state == "failed"
    assert "the limit is 1,000" in run.images_error


def test_hooks_record_into_the_store_they_were_given(
    sandbox: SandboxHandle, store_home: Path, tmp_path: Path
) -> None:
    with RunStore(tmp_path / "project") as project:  # empty: falsy-looking, still the one
        with client_for(sandbox, project) as client:
            client.generate(prompt="into the project")
        assert [r.prompt for r in project.runs()] == ["into the project"]
    assert not (store_home / "runs.sqlite3").exists()


def test_hooks_false_and_the_environment_switch_record_nothing(
    sandbox: SandboxHandle, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SirayClient(
        api_key=sandbox.api_key, base_url=sandbox.base_url, poll=FAST, hooks=False
    ) as client:
        client.generate(prompt="not recorded")
    monkeypatch.setenv("SIRAY_WIDGETS_HISTORY", "off")
    with client_for(sandbox, store) as client:
        client.generate(prompt="not recorded either")
    assert store.count() == 0


def test_the_package_client_records_into_the_data_folder(
    sandbox: SandboxHandle, store_home: Path
) -> None:
    client_class = siray_widgets.SirayClient  # through the package: recording wired in
    assert isinstance(client_module.default_hooks, RecordingHooks)
    with client_class(api_key=sandbox.api_key, base_url=sandbox.base_url, poll=FAST) as client:
        task_ = client.generate(prompt="from a script")
    history = siray_widgets.History()
    assert history.home == store_home.resolve()
    run = history.get(task_.task_id)
    assert (run.origin, run.state, run.prompt) == ("script", "success", "from a script")


def test_a_broken_store_never_breaks_the_run(
    sandbox: SandboxHandle, store: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = RecordingHooks(store=store)
    store.close()  # every write now fails
    with (
        SirayClient(
            api_key=sandbox.api_key, base_url=sandbox.base_url, poll=FAST, hooks=hooks
        ) as client,
        caplog.at_level(logging.WARNING, logger="siray_widgets.store"),
    ):
        result = client.generate(prompt="still works")
    assert result.status.value == "SUCCESS"
    assert "run history" in caplog.text


def test_the_ledger_adds_up_and_survives_a_reopen(store_home: Path) -> None:
    with RunStore(store_home) as store:
        store.ledger.record("m/a", 3, 0.04)
        store.ledger.record("m/a", 2, None)
        store.ledger.record("m/b", 1, 0.5, day="2026-01-02")
        store.price_lookup = lambda model: 0.1
        record_run(store)  # a recorded run counts once, at the looked-up price
    with RunStore(store_home) as again:
        today = again.ledger.day(model="m/a")
        assert (today.tasks, today.priced_tasks) == (5, 3)
        assert today.cost == pytest.approx(0.12)
        assert not today.complete
        assert again.ledger.day(model=MODEL_ID).cost == pytest.approx(0.1)
        assert again.ledger.day("2026-01-02").tasks == 1
        assert again.ledger.total().tasks == 7
        with pytest.raises(ValueError, match="unit price"):
            again.ledger.record("m/a", 1, -1.0)
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            again.ledger.record("m/a", 1, 1.0, day="yesterday-ish")


# --- stalls --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stall_watch_rules() -> None:
    clock = Clock()
    watch = StallWatch(10, clock=clock)
    assert watch.reading("IN_PROGRESS", 10) is None
    clock.now += 9
    assert watch.check() is None
    assert watch.reading("IN_PROGRESS", 10) is None  # the same reading again: no movement
    clock.now += 1.5
    assert watch.check() == "stalled"
    assert watch.check() is None  # said once
    assert watch.reading("IN_PROGRESS", 11) == "resumed"
    clock.now += 10
    assert watch.check() == "stalled"
    assert watch.snooze() == "resumed"  # Keep waiting
    clock.now += 5
    assert watch.check() is None
    assert default_stall_after(PollSchedule()) == 120.0
    assert default_stall_after(PollSchedule.local()) == 12.0  # 24 polls of 0.5 s
    assert default_stall_after(PollSchedule.fixed(0.01)) == 10.0  # the floor
    with pytest.raises(ValueError, match="positive"):
        StallWatch(0)


def test_a_stalled_task_is_marked_in_the_store_and_recovers(
    fault_server: FaultServer, store: RunStore
) -> None:
    fault_server.on("POST", CREATE, created("t-stall"))
    stuck = task_reply("t-stall", "IN_PROGRESS", "40%")
    fault_server.always("GET", task_path("t-stall"), stuck)
    seen: list[str] = []
    hooks = RecordingHooks(store=store, stall_after=0.4, on_change=lambda r: seen.append(r.state))

    async def follow() -> None:
        async with AsyncSirayClient(
            api_key=TEST_KEY, base_url=fault_server.url, poll=tiny_poll(), hooks=hooks
        ) as aclient:
            running = asyncio.create_task(aclient.generate(prompt="stuck"))
            deadline = time.monotonic() + 10
            while [r.state for r in store.runs()] != ["stalled"]:
                assert time.monotonic() < deadline, "never marked stalled"
                await asyncio.sleep(0.1)
            fault_server.always("GET", task_path("t-stall"), task_reply("t-stall", "SUCCESS"))
            await running

    asyncio.run(follow())
    run = store.get("t-stall")
    assert run.state == "success"
    states = [e.state for e in run.events]
    assert "stalled" in states
    assert states.index("stalled") < len(states) - 1
    assert "stalled" in seen


def test_restart_sees_the_same_runs(store_home: Path) -> None:
    with RunStore(store_home) as store:
        ids = [record_run(store).task_id for _ in range(3)]
    with RunStore(store_home) as again:
        assert [r.task_id for r in again.runs(None)] == ids[::-1]


def test_every_write_is_in_the_database_file(store_home: Path) -> None:
    """No state lives only in memory: a plain sqlite3 reader sees a run's every step."""
    with RunStore(store_home) as store:
        recorder = record_run(store, end="running")
        with sqlite3.connect(store.db_path) as raw:
            state, status, progress = raw.execute(
                "SELECT state, status, progress FROM runs WHERE task_id = ?", (recorder.task_id,)
            ).fetchone()
        assert (state, status, progress) == ("running", "IN_PROGRESS", 40)
        recorder.finished(task(recorder.task_id or "", "SUCCESS", 100, []))
        with sqlite3.connect(store.db_path) as raw:
            (state,) = raw.execute("SELECT state FROM runs").fetchone()
            rows = raw.execute("SELECT json_extract(params_json, '$.prompt') FROM runs").fetchall()
        assert state == "success"
        assert rows == [("a fox in the snow",)]
        assert (
            json.loads(store.get(recorder.task_id or "").request_json)["prompt"]
            == "a fox in the snow"
        )


def test_thumbnail_bytes_are_served_by_reference(
    image_server: ImageServer, store: RunStore
) -> None:
    url = image_server.serve_image("/a.png")
    run = record_run(store, outputs=[url], keep_images=True).wait_images(30)
    row = store.page().rows[0]
    (ref,) = row["thumbs"]
    assert ref == f"thumbs/{run.task_id}-1.webp"
    with Image.open(io.BytesIO(store.read_file(ref))) as thumb:
        assert thumb.format == "WEBP"
    with pytest.raises(ValueError, match="outside the data folder"):
        store.read_file("thumbs/../../etc/passwd")
    with pytest.raises(ValueError, match="not an image or thumbnail"):
        store.read_file("runs.sqlite3")


def test_start_recording_never_raises_for_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from siray_widgets.store import NullRecorder, Recorder, hooks, start_recording

    request = ImageRequest(prompt="a fox")
    monkeypatch.setenv("SIRAY_WIDGETS_HISTORY", "0")
    off = start_recording(request, origin="widget")
    assert isinstance(off, NullRecorder)
    assert off.problem is None
    monkeypatch.delenv("SIRAY_WIDGETS_HISTORY")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(blocker))
    monkeypatch.setattr(hooks, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="siray_widgets.store"):
        broken = start_recording(request, origin="widget")
        start_recording(request, origin="widget")
    assert isinstance(broken, NullRecorder)
    assert "cannot create the data folder" in (broken.problem or "")
    assert caplog.text.count("run history is off") == 1  # once per process
    broken.submitted("t")  # every call of the protocol is accepted
    broken.reading(task("t", "IN_PROGRESS", 5))
    broken.finished(None)
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(tmp_path / "ok"))
    working = start_recording(request, origin="sweep", sweep_id="s1", cell_key="c1")
    assert isinstance(working, Recorder)
    run = working.run()
    assert (run.origin, run.sweep_id, run.cell_key, run.state) == ("sweep", "s1", "c1", "starting")
    with pytest.raises(ValueError, match="unknown origin"):
        start_recording(request, origin="phone")


def test_the_notebook_is_named_where_jupyter_says(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/study/foxes.ipynb")
    recorder = store.record(ImageRequest(prompt="a fox"), origin="widget", keep_images=False)
    assert recorder.run().source == "/home/me/study/foxes.ipynb"


def test_documents_are_kept_by_kind_and_key(store_home: Path) -> None:
    with RunStore(store_home) as store:
        store.put_document("sweep", "s1", {"x": ["stylize", [0, 250]], "cells": 2})
        store.put_document("sweep", "s1", {"x": ["stylize", [0, 250, 500]], "cells": 3})
        store.put_document("preset", "stylize high", {"stylize": 750})
        with pytest.raises(ValueError, match="Out of range float values"):
            store.put_document("preset", "bad", float("nan"))
        with pytest.raises(ValueError, match="non-empty text"):
            store.put_document("", "k", 1)
    with RunStore(store_home) as again:
        assert again.get_document("sweep", "s1") == {"x": ["stylize", [0, 250, 500]], "cells": 3}
        assert again.documents("preset") == {"stylize high": {"stylize": 750}}
        assert again.get_document("sweep", "missing") is None
        assert again.delete_document("preset", "stylize high")
        assert again.documents("preset") == {}


def test_keep_waiting_and_a_moving_task_clear_a_stall(store: RunStore) -> None:
    changes: list[str] = []
    recorder = store.record(
        ImageRequest(prompt="slow"),
        keep_images=False,
        stall_after=0.05,
        on_change=lambda r: changes.append(r.state),
    )
    recorder.submitted("t-slow")
    recorder.reading(task("t-slow", "IN_PROGRESS", 10))
    time.sleep(0.1)
    recorder.check_stall()  # what the watchdog thread (or a widget's timer) calls
    assert store.get("t-slow").state == "stalled"
    recorder.keep_waiting()  # "Keep waiting"
    assert store.get("t-slow").state == "running"
    time.sleep(0.1)
    recorder.check_stall()
    assert recorder.stalled
    recorder.reading(task("t-slow", "IN_PROGRESS", 20))  # it moves again
    assert store.get("t-slow").state == "running"
    recorder.finished(task("t-slow", "IN_PROGRESS", 20))  # following stopped mid-way
    run = store.get("t-slow")
    assert run.state == "interrupted"
    assert "at IN_PROGRESS" in run.error
    assert [e.state for e in run.events].count("stalled") == 2
    assert changes[-1] == "interrupted"
    assert "stalled" in changes


def test_a_script_run_downloads_only_from_the_apis_own_server_and_no_more_than_a_task_makes(
    fault_server: FaultServer, image_server: ImageServer, store: RunStore
) -> None:
    """A hostile API names another local service (an admin URL on another port of this
    machine), or more images than a task makes: the store fetches nothing, and every image
    of the run says why. Images on the API's own server are kept."""
    elsewhere = image_server.serve_image("/admin/reset")  # another local service
    own = []
    for n in range(5):
        fault_server.always(
            "GET", f"/own/{n}.png", Reply(200, make_image(), {"Content-Type": "image/png"})
        )
        own.append(f"{fault_server.url}/own/{n}.png")
    cases = {
        "t-other": [own[0], elsewhere],
        "t-many": own,  # five: a task makes four
        "t-own": own[:4],
    }
    for task_id, outputs in cases.items():
        fault_server.on("POST", CREATE, created(task_id))
        fault_server.always(
            "GET", task_path(task_id), task_reply(task_id, "SUCCESS", outputs=outputs)
        )
    hooks = RecordingHooks(store=store)
    with SirayClient(
        api_key=TEST_KEY, base_url=fault_server.url, poll=tiny_poll(), hooks=hooks
    ) as client:
        for _ in cases:
            client.generate(prompt="a lighthouse")
    other = store.get("t-other")
    assert other.state == "success"
    assert other.images_state == "none"
    assert {image.error for image in other.images} == {
        "not downloaded: an image URL points at 127.0.0.1, a local or private address that is "
        "not the API's own server"
    }
    many = store.get("t-many")
    assert many.images_state == "none"
    assert "the API named 5 images; a task makes at most 4" in many.images[0].error
    kept = record_wait(store, "t-own")
    assert kept.images_state == "done"
    assert all(image.path for image in kept.images)
    assert image_server.count("GET", "/admin/reset") == 0  # never touched
    assert fault_server.count("GET", "/own/4.png") == 0


def record_wait(store: RunStore, task_id: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while (run := store.get(task_id)).images_state == "pending":
        assert time.monotonic() < deadline, "the images were not kept in time"
        time.sleep(0.05)
    return run
