"""Every run settles, whoever stops it and whenever; awaiters and threads cannot undo a run.

Each test here is a way a run used to be left hanging, lost, or rolled back: cancelled before
its asyncio task took a first step, awaited with a timeout, written to from two threads, or
cancelled while its client was still being built in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fixtures.widget_fixtures import WAIT, MakeWidget, send, until

from siray_widgets import widget as widget_module
from siray_widgets._widget_tasks import BackgroundLoop
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.schema import ImageRequest
from siray_widgets.task import Task, TaskStatus
from siray_widgets.widget import Generation, ImagineWidget

pytestmark = pytest.mark.usefixtures("no_siray_env")


def assert_cancelled_and_published(w: ImagineWidget, g: Generation) -> None:
    """The run ended as cancelled, and the traits say so."""
    assert g.state == "cancelled"
    assert g.done
    assert g.finished_at is not None
    entry = next(t for t in w.tasks if t["id"] == g.id)
    assert entry["state"] == "cancelled"
    assert entry["finished_at"] is not None


# -- cancelled before the first step ----------------------------------------------------------


def test_a_run_cancelled_in_the_cell_that_started_it_settles(make_widget: MakeWidget) -> None:
    w = make_widget()
    finished: list[Generation] = []
    w.on_finish(finished.append)

    async def main() -> None:
        g = w.generate()
        assert g.cancel()  # same cell: its asyncio task has not taken a step yet
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(g, WAIT)  # settles instead of hanging
        assert_cancelled_and_published(w, g)
        assert g.note == "Stopped before the request was sent."
        assert finished == [g]
        # The next Generate press is a new run, not "ignored" behind a stuck one.
        reply = send(w, "generate", body=w.request_json)
        assert reply["ok"]
        assert not reply["ignored"]
        assert reply["run"] != g.id
        w.cancel()

    asyncio.run(main())


def test_close_right_after_generate_settles_the_run(make_widget: MakeWidget) -> None:
    w = make_widget()
    finished: list[Generation] = []
    w.on_finish(finished.append)

    async def main() -> Generation:
        g = w.generate()
        w.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(g, WAIT)
        return g

    g = asyncio.run(main())
    assert_cancelled_and_published(w, g)
    assert finished == [g]


def test_a_background_run_cancelled_at_once_settles(make_widget: MakeWidget) -> None:
    """No running loop (a script): the run goes to the background loop, cancelled on its way."""
    w = make_widget()
    loop = BackgroundLoop.get()
    busy, release = threading.Event(), threading.Event()

    def hold_the_loop() -> None:
        busy.set()
        release.wait(WAIT)

    loop.call_soon_threadsafe(hold_the_loop)
    assert busy.wait(WAIT)  # the loop is busy: the run is queued, not yet launched
    g = w.generate()
    assert g.cancel()
    release.set()
    with pytest.raises(concurrent.futures.CancelledError):
        g.result(timeout=WAIT)
    assert_cancelled_and_published(w, g)
    assert not send(w, "generate", body=w.request_json)["ignored"]
    w.cancel()


# -- awaiting ---------------------------------------------------------------------------------


def test_an_impatient_awaiter_does_not_cancel_the_result(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(duration=0.5)
    w = make_widget(box=box)

    async def main() -> tuple[Generation, Task]:
        g = w.generate()
        with pytest.raises((TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)):
            await asyncio.wait_for(g, 0.01)  # gives up long before the 0.5 s task ends
        task = await g  # the run went on; its result is still there
        return g, task

    g, task = asyncio.run(main())
    assert task.status is TaskStatus.SUCCESS
    assert g.state == "success"
    assert g.result(timeout=WAIT) == task


# -- two threads writing ----------------------------------------------------------------------


def test_a_refused_front_end_write_does_not_roll_back_a_run_on_another_thread(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """traitlets holds notifications per object, across threads: without the widget's lock,
    a run's progress written while a front-end update is being applied is rolled back with
    that update when one of its values is refused."""
    w = make_widget()
    run = Generation(w.request)
    run.state = "running"
    run.task_id = "task-1"
    w._runs.append(run)
    w._current = run
    reading = Task(task_id="task-1", status=TaskStatus.IN_PROGRESS, progress=40)
    blocked: list[bool] = []

    def run_thread_reports() -> None:
        # What the run's loop thread does on each reading; it waits for the widget's lock,
        # so it goes ahead here only if nobody holds the widget.
        if w._lock.acquire(blocking=False):
            try:
                w._on_reading(run, reading)
            finally:
                w._lock.release()
        else:
            blocked.append(True)

    chaos = type(w).class_traits()["chaos"]
    validate = chaos.validate

    def validate_while_a_run_reports(obj: Any, value: Any) -> Any:
        if value == 500:  # the refused value: stylize=7 is already applied, and held
            thread = threading.Thread(target=run_thread_reports)
            thread.start()
            thread.join()
        return validate(obj, value)

    monkeypatch.setattr(chaos, "validate", validate_while_a_run_reports)
    w.set_state({"stylize": 7, "chaos": 500})
    if blocked:  # the run thread now gets the lock it was waiting for
        w._on_reading(run, reading)
    assert blocked, "the run's update went through while a front-end update was held"
    assert (w.status, w.progress) == ("IN_PROGRESS", 40)
    assert w.tasks[-1]["progress"] == 40
    assert (w.chaos, w.stylize) == (0, 100)  # the refused update itself is undone


def test_assigning_a_whole_request_holds_the_widget(make_widget: MakeWidget) -> None:
    """``w.request = ...`` sets every field in one hold: no other thread may write meanwhile."""
    w = make_widget()
    free: list[bool] = []

    def another_thread_could_write() -> None:
        got = w._lock.acquire(blocking=False)
        if got:
            w._lock.release()
        free.append(got)

    class Probe(ImageRequest):
        __slots__ = ()

        def __getattribute__(self, name: str) -> Any:
            if name == "chaos":  # read between two trait writes of the setter's hold
                thread = threading.Thread(target=another_thread_could_write)
                thread.start()
                thread.join()
            return super().__getattribute__(name)

    w.request = Probe(prompt="a harbour at night", chaos=5)
    assert w.chaos == 5
    assert free == [False]


# -- the client of a cancelled run ------------------------------------------------------------


class FakeClient:
    """Stands in for AsyncSirayClient; records being closed."""

    sandbox = True

    def __init__(self) -> None:
        self.closed = threading.Event()

    async def aclose(self) -> None:
        self.closed.set()


def test_a_client_built_for_a_cancelled_run_is_closed(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    building = threading.Event()
    release = threading.Event()
    client = FakeClient()

    def slow_new_client(*_: Any) -> FakeClient:
        building.set()
        assert release.wait(WAIT)  # the first client without a key starts the sandbox: slow
        return client

    monkeypatch.setattr(widget_module, "_new_client", slow_new_client)
    w = make_widget()

    async def main() -> Generation:
        g = w.generate()
        assert await asyncio.to_thread(building.wait, WAIT)
        g.cancel()
        with pytest.raises(asyncio.CancelledError):
            await g
        assert not client.closed.is_set()  # the worker thread is still building it
        release.set()
        await until(client.closed.is_set)
        return g

    g = asyncio.run(main())
    assert g.state == "cancelled"
