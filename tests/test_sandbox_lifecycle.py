"""Task lifecycle (each status path, stepped with a fake clock) and the bounded task store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fixtures.sandbox_fixtures import FakeClock

from siray_widgets.sandbox import SandboxHandle
from siray_widgets.sandbox.faults import FAIL_REASONS
from siray_widgets.sandbox.store import TaskRecord, TaskStore, new_task_id
from siray_widgets.schema import CREATE_PATH, MODEL_ID, TASK_STATUSES, ImageRequest

BODY = {"model": MODEL_ID, "prompt": "a fox", "aspect_ratio": "1:1"}


class Api:
    def __init__(self, box: SandboxHandle) -> None:
        self.http = httpx.Client(
            base_url=box.base_url, headers={"Authorization": f"Bearer {box.api_key}"}
        )

    def create(self) -> str:
        response = self.http.post(CREATE_PATH, json=BODY)
        assert response.status_code == 200, response.text
        task_id: str = response.json()["data"]["task_id"]
        return task_id

    def close(self) -> None:
        self.http.close()

    def status(self, task_id: str) -> dict[str, Any]:
        response = self.http.get(f"{CREATE_PATH}/{task_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture
def connect() -> Iterator[Callable[[SandboxHandle], Api]]:
    """``connect(box)`` -> an API client for ``box``, closed after the test."""
    made: list[Api] = []

    def make(box: SandboxHandle) -> Api:
        made.append(Api(box))
        return made[-1]

    yield make
    for api in made:
        api.close()


@pytest.fixture
def slow(
    make_sandbox: Callable[..., SandboxHandle],
    sandbox_clock: FakeClock,
    connect: Callable[[SandboxHandle], Api],
) -> Callable[..., tuple[Api, FakeClock]]:
    """A 10 s sandbox on the fake clock, with any extra settings."""

    def make(**config: Any) -> tuple[Api, FakeClock]:
        return connect(make_sandbox(duration=10, clock=sandbox_clock, **config)), sandbox_clock

    return make


def test_success_path_step_by_step(slow: Callable[..., tuple[Api, FakeClock]]) -> None:
    api, clock = slow()
    submitted = int(clock.now)
    task_id = api.create()
    expected = [
        # seconds after submit, status, progress, start_time set, finish_time set
        (0.0, "NOT_START", "0%", False, False),
        (1.5, "SUBMITTED", "0%", False, False),
        (2.5, "QUEUED", "0%", False, False),
        (3.0, "IN_PROGRESS", "0%", True, False),
        (6.5, "IN_PROGRESS", "50%", True, False),
        (9.99, "IN_PROGRESS", "99%", True, False),
        (10.0, "SUCCESS", "100%", True, True),
        (500.0, "SUCCESS", "100%", True, True),
    ]
    start = clock.now
    for offset, status, progress, started, finished in expected:
        clock.now = start + offset
        data = api.status(task_id)
        assert (data["status"], data["progress"]) == (status, progress), offset
        assert data["submit_time"] == submitted
        assert data["start_time"] == (submitted + 3 if started else 0)
        assert data["finish_time"] == (submitted + 10 if finished else 0)
        assert len(data["outputs"]) == (4 if status == "SUCCESS" else 0)
        assert data["fail_reason"] == ""


def test_progress_only_rises_and_statuses_come_in_order(
    slow: Callable[..., tuple[Api, FakeClock]],
) -> None:
    api, clock = slow()
    task_id = api.create()
    readings = []
    for _ in range(60):
        data = api.status(task_id)
        readings.append((TASK_STATUSES.index(data["status"]), int(data["progress"][:-1])))
        clock.advance(0.2)
    assert readings == sorted(readings)
    assert {r[0] for r in readings} == {0, 1, 2, 3, 4}  # every state but FAILURE
    assert len({r[1] for r in readings}) > 20  # a human sees the percentage move


def test_failure_path(slow: Callable[..., tuple[Api, FakeClock]]) -> None:
    api, clock = slow(failure_share=1.0)
    submitted = int(clock.now)
    task_id = api.create()
    clock.advance(6.0)
    assert api.status(task_id)["status"] == "IN_PROGRESS"
    clock.advance(0.5)
    data = api.status(task_id)
    assert (data["status"], data["progress"], data["outputs"]) == ("FAILURE", "50%", [])
    assert data["fail_reason"] in FAIL_REASONS
    assert data["finish_time"] == submitted + 6
    clock.advance(100)
    assert api.status(task_id)["status"] == "FAILURE"


def test_stall_path(slow: Callable[..., tuple[Api, FakeClock]]) -> None:
    api, clock = slow(stall_at=40)
    task_id = api.create()
    clock.advance(5.8)
    assert api.status(task_id)["progress"] == "40%"
    for _ in range(3):
        clock.advance(1000)
        data = api.status(task_id)
        assert (data["status"], data["progress"], data["finish_time"]) == ("IN_PROGRESS", "40%", 0)


def test_instant_generation(
    sandbox: SandboxHandle, connect: Callable[[SandboxHandle], Api]
) -> None:
    api = connect(sandbox)
    data = api.status(api.create())
    assert data["status"] == "SUCCESS"
    assert data["submit_time"] == data["start_time"] == data["finish_time"]


def test_instant_failure_and_stall(
    make_sandbox: Callable[..., SandboxHandle], connect: Callable[[SandboxHandle], Api]
) -> None:
    failing = connect(make_sandbox(failure_share=1.0))
    assert failing.status(failing.create())["status"] == "FAILURE"
    stalling = connect(make_sandbox(stall_at=0))
    assert stalling.status(stalling.create())["progress"] == "0%"


def test_finished_tasks_expire(slow: Callable[..., tuple[Api, FakeClock]]) -> None:
    api, clock = slow(task_ttl=60)
    task_id = api.create()
    clock.advance(10 + 60)
    assert api.status(task_id)["status"] == "SUCCESS"
    clock.advance(1)
    response = api.http.get(f"{CREATE_PATH}/{task_id}")
    assert response.status_code == 404


def test_a_thousand_tasks_are_all_kept(
    sandbox: SandboxHandle, connect: Callable[[SandboxHandle], Api]
) -> None:
    api = connect(sandbox)
    ids = [api.create() for _ in range(1000)]
    assert sandbox.task_ids() == ids
    assert api.status(ids[0])["status"] == "SUCCESS"
    assert api.status(ids[-1])["status"] == "SUCCESS"


# --- the store on its own ------------------------------------------------------------------


def record(clock: FakeClock, prompt: str = "p", duration: float = 0.0) -> TaskRecord:
    return TaskRecord(new_task_id(), ImageRequest(prompt), 1, clock(), duration)


def test_store_is_bounded_by_count_oldest_first() -> None:
    clock = FakeClock()
    store = TaskStore(clock=clock, max_tasks=1000)
    records = [record(clock) for _ in range(1500)]
    for r in records:
        store.add(r)
    assert len(store) == 1000
    assert store.ids() == [r.task_id for r in records[500:]]
    assert store.get(records[0].task_id) is None


def test_store_is_bounded_by_bytes() -> None:
    clock = FakeClock()
    store = TaskStore(clock=clock, max_bytes=1_000_000)
    for _ in range(100):
        store.add(record(clock, prompt="x" * 50_000))
    assert sum(r.weight() for r in map(store.get, store.ids()) if r) <= 1_000_000
    assert 0 < len(store) < 100


def test_store_sweeps_expired_tasks_without_being_asked() -> None:
    clock = FakeClock()
    store = TaskStore(clock=clock, ttl=10)
    for _ in range(100):
        store.add(record(clock))
    clock.advance(11)
    stalled = TaskRecord(new_task_id(), ImageRequest("p"), 1, clock(), 1.0, stall_at=5)
    store.add(stalled)
    for _ in range(200):
        store.add(record(clock))
    ids = store.ids()
    assert len(ids) == 201  # the first 100 were swept during the adds
    assert stalled.task_id in ids  # a task that never finishes never expires (count bounds it)


def test_store_is_thread_safe() -> None:
    clock = FakeClock()
    store = TaskStore(clock=clock, max_tasks=1000)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(300):
                r = record(clock)
                store.add(r)
                store.get(r.task_id)
                store.ids()
        except BaseException as exc:  # report, do not lose it in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store) == 1000
    assert len(set(store.ids())) == 1000


def test_concurrent_creates_over_http(sandbox: SandboxHandle) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        api = Api(sandbox)
        ids = [api.create() for _ in range(25)]
        api.close()
        with lock:
            results.extend(ids)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 200
    assert sorted(sandbox.task_ids()) == sorted(results)
