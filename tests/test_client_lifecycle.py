"""The client against a real local HTTP server: submit, status readings, waiting, cancelling."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import warnings
from datetime import datetime, timezone

import pytest
from fixtures.fault_server import (
    CREATE,
    TEST_KEY,
    FaultServer,
    Reply,
    created,
    fast_retry,
    task_path,
    task_reply,
    tiny_poll,
)

from siray_widgets import ImageRequest, Task, TaskStatus
from siray_widgets.client import AsyncSirayClient, PollSchedule, SirayClient
from siray_widgets.errors import TaskFailedError, ValidationError, WaitTimeoutError


def client_for(server: FaultServer, **kwargs: object) -> AsyncSirayClient:
    return AsyncSirayClient(
        TEST_KEY,
        server.url,
        retry=fast_retry(),
        poll=tiny_poll(),
        **kwargs,  # type: ignore[arg-type]
    )


# --- submit ------------------------------------------------------------------------------


def test_submit_sends_exactly_the_request_json(fault_server: FaultServer) -> None:
    request = ImageRequest(
        prompt="雪の中の狐, «fox» — in snow",
        negative_prompt="text",
        aspect_ratio="16:9",
        chaos=20,
        stylize=250,
        quality="2",
        seed=42,
        raw=True,
    )
    fault_server.on("POST", CREATE, created("abc"))

    async def main() -> str:
        async with client_for(fault_server) as client:
            return await client.submit(request)

    assert asyncio.run(main()) == "abc"
    (seen,) = fault_server.creates()
    assert seen.body == request.to_json().encode("utf-8")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert seen.headers["accept"] == "application/json"


def test_submit_accepts_keyword_fields(fault_server: FaultServer) -> None:
    fault_server.on("POST", CREATE, created("k1"), created("k2"))

    async def main() -> tuple[str, str]:
        async with client_for(fault_server) as client:
            first = await client.submit(prompt="a cat", chaos=5)
            base = ImageRequest(prompt="a dog", weird=10)
            second = await client.submit(base, aspect_ratio="3:2")  # keywords override
            return first, second

    assert asyncio.run(main()) == ("k1", "k2")
    bodies = [json.loads(s.body) for s in fault_server.creates()]
    assert bodies[0]["prompt"] == "a cat"
    assert bodies[0]["chaos"] == 5
    assert bodies[1]["prompt"] == "a dog"
    assert bodies[1]["weird"] == 10
    assert bodies[1]["aspect_ratio"] == "3:2"


def test_invalid_fields_are_rejected_before_sending(fault_server: FaultServer) -> None:
    async def main() -> None:
        async with client_for(fault_server) as client:
            await client.submit(prompt="a cat", chaos=150)

    with pytest.raises(ValidationError, match=r"chaos=150 is out of range 0\.\.100"):
        asyncio.run(main())
    assert fault_server.seen == []


# --- one reading of each status ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "progress", "expected_progress"),
    [
        ("NOT_START", "0%", 0),
        ("SUBMITTED", "0%", 0),
        ("QUEUED", "0%", 0),
        ("IN_PROGRESS", "45%", 45),
        ("SUCCESS", "100%", 100),
        ("FAILURE", "30%", 30),
    ],
)
def test_get_task_reads_every_status(
    fault_server: FaultServer, status: str, progress: str, expected_progress: int
) -> None:
    reason = "moderation: blocked" if status == "FAILURE" else ""
    fault_server.on("GET", task_path("t1"), task_reply("t1", status, progress, fail_reason=reason))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.get_task("t1")

    task = asyncio.run(main())
    assert task.status is TaskStatus(status)
    assert task.progress == expected_progress
    assert task.fail_reason == reason
    assert task.submit_time == datetime.fromtimestamp(1763274672, tz=timezone.utc)
    if status == "SUCCESS":
        assert task.outputs == ("https://img.example/t1/1.png",)
        assert task.finish_time is not None
    else:
        assert task.outputs == ()
    assert fault_server.seen[0].path == "/v1/images/generations/async/t1"


def test_task_id_is_quoted_into_one_path_segment(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("a%2F..%2Fb"), task_reply("a/../b", "QUEUED"))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.get_task("a/../b")

    assert asyncio.run(main()).status is TaskStatus.QUEUED


# --- waiting -----------------------------------------------------------------------------

LIFECYCLE = [
    task_reply("t1", "NOT_START"),
    task_reply("t1", "SUBMITTED"),
    task_reply("t1", "SUBMITTED"),  # unchanged: no second on_update
    task_reply("t1", "QUEUED"),
    task_reply("t1", "IN_PROGRESS", "10%"),
    task_reply("t1", "IN_PROGRESS", "55%"),
    task_reply("t1", "SUCCESS"),
]


def test_wait_walks_the_whole_lifecycle_with_sync_on_update(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), *LIFECYCLE)
    readings: list[tuple[TaskStatus, int]] = []

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait(
                "t1", on_update=lambda t: readings.append((t.status, t.progress))
            )

    task = asyncio.run(main())
    assert task.status is TaskStatus.SUCCESS
    assert task.outputs == ("https://img.example/t1/1.png",)
    assert readings == [
        (TaskStatus.NOT_START, 0),
        (TaskStatus.SUBMITTED, 0),
        (TaskStatus.QUEUED, 0),
        (TaskStatus.IN_PROGRESS, 10),
        (TaskStatus.IN_PROGRESS, 55),
        (TaskStatus.SUCCESS, 100),
    ]
    assert fault_server.count("GET") == len(LIFECYCLE)
    assert fault_server.unscripted == []


def test_wait_awaits_async_on_update(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), *LIFECYCLE)
    statuses: list[str] = []

    async def record(task: Task) -> None:
        await asyncio.sleep(0)
        statuses.append(task.status.value)

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1", on_update=record)

    asyncio.run(main())
    assert statuses == ["NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS", "IN_PROGRESS", "SUCCESS"]


def test_wait_raises_task_failed_with_reason(fault_server: FaultServer) -> None:
    fault_server.on(
        "GET",
        task_path("t1"),
        task_reply("t1", "QUEUED"),
        task_reply("t1", "IN_PROGRESS", "20%"),
        task_reply("t1", "FAILURE", "20%", fail_reason="content policy violation"),
    )
    seen: list[TaskStatus] = []

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1", on_update=lambda t: seen.append(t.status))

    with pytest.raises(TaskFailedError, match="content policy violation") as info:
        asyncio.run(main())
    assert info.value.task_id == "t1"
    assert info.value.fail_reason == "content policy violation"
    assert seen[-1] is TaskStatus.FAILURE  # the callback saw the failure before the raise


def test_generate_is_submit_then_wait(fault_server: FaultServer) -> None:
    fault_server.on("POST", CREATE, created("g1"))
    fault_server.on(
        "GET", task_path("g1"), task_reply("g1", "IN_PROGRESS", "50%"), task_reply("g1")
    )

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.generate(prompt="a fox", aspect_ratio="16:9")

    task = asyncio.run(main())
    assert task.task_id == "g1"
    assert task.status is TaskStatus.SUCCESS
    assert [s.method for s in fault_server.seen] == ["POST", "GET", "GET"]


def test_wait_timeout_raises_with_last_status(fault_server: FaultServer) -> None:
    fault_server.always("GET", task_path("t1"), task_reply("t1", "QUEUED"))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1", timeout=0.1)

    with pytest.raises(WaitTimeoutError, match="last status: QUEUED") as info:
        asyncio.run(main())
    assert info.value.task_id == "t1"
    assert info.value.timeout == 0.1
    assert isinstance(info.value, TimeoutError)


def test_wait_timeout_while_a_request_hangs(fault_server: FaultServer) -> None:
    # The overall timeout bounds the wait even when the server stops answering.
    fault_server.on("GET", task_path("t1"), task_reply("t1", "QUEUED"))
    fault_server.always("GET", task_path("t1"), Reply(delay=1.0, body=b"{}"))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1", timeout=0.2)

    with pytest.raises(WaitTimeoutError):
        asyncio.run(main())


class _Py310TimeoutError(Exception):
    """What ``asyncio.wait_for`` raises on Python 3.10: not the builtin TimeoutError."""


def test_wait_timeout_with_python_310_asyncio_timeout_error(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On 3.10, asyncio.TimeoutError is its own class, and `except TimeoutError` let the
    # deadline escape as a bare asyncio.TimeoutError. This stands the 3.10 class in for it
    # (the suite also runs under a real 3.10; see the report of that run).
    fault_server.always("GET", task_path("t1"), task_reply("t1", "QUEUED"))
    real_wait_for, real_timeout_error = asyncio.wait_for, asyncio.TimeoutError

    async def wait_for_310(awaitable: object, timeout: float) -> object:
        try:
            return await real_wait_for(awaitable, timeout)  # type: ignore[arg-type]
        except real_timeout_error:
            raise _Py310TimeoutError from None

    monkeypatch.setattr(asyncio, "TimeoutError", _Py310TimeoutError)
    monkeypatch.setattr(asyncio, "wait_for", wait_for_310)

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1", timeout=0.1)

    with pytest.raises(WaitTimeoutError, match="last status: QUEUED"):
        asyncio.run(main())


def test_timeout_error_from_callback_is_not_a_wait_timeout(fault_server: FaultServer) -> None:
    fault_server.always("GET", task_path("t1"), task_reply("t1", "QUEUED"))

    def callback(task: Task) -> None:
        raise TimeoutError("the callback's own timeout")

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1", on_update=callback, timeout=30)

    with pytest.raises(TimeoutError, match="the callback's own timeout") as info:
        asyncio.run(main())
    assert not isinstance(info.value, WaitTimeoutError)


def test_cancelling_wait_stops_polling_and_leaves_no_task(fault_server: FaultServer) -> None:
    fault_server.always("GET", task_path("t1"), task_reply("t1", "QUEUED"))

    async def main() -> tuple[set[asyncio.Task[object]], int, int]:
        async with client_for(fault_server) as client:
            waiting = asyncio.create_task(client.wait("t1", timeout=30))
            await asyncio.to_thread(fault_server.wait_for_requests, 3)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            others = asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]
            await asyncio.sleep(0.02)  # let a request sent just before the cancel land
            count = fault_server.count("GET")
            await asyncio.sleep(0.1)  # five poll intervals or more: nothing more may arrive
            return others, count, fault_server.count("GET")

    others, at_cancel, later = asyncio.run(main())
    assert others == set()
    assert later == at_cancel


def test_cancelling_during_an_inflight_request(fault_server: FaultServer) -> None:
    fault_server.always("GET", task_path("t1"), Reply(delay=0.5, body=b"{}"))

    async def main() -> set[asyncio.Task[object]]:
        async with client_for(fault_server) as client:
            waiting = asyncio.create_task(client.wait("t1"))
            await asyncio.to_thread(fault_server.wait_for_requests, 1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    assert asyncio.run(main()) == set()


# --- poll schedule -----------------------------------------------------------------------


def test_default_schedule_follows_siray_guidance() -> None:
    schedule = PollSchedule()
    delays = [schedule.next_delay(None, False)]
    for _ in range(6):
        delays.append(schedule.next_delay(delays[-1], False))
    assert delays[0] == 3.0
    assert delays == sorted(delays)  # stretches while nothing moves
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert delays[-1] == 5.0
    assert schedule.next_delay(5.0, True) == 3.0  # shorter right after progress moves


def test_fixed_schedule_and_validation() -> None:
    fixed = PollSchedule.fixed(0.5)
    assert fixed.next_delay(None, False) == fixed.next_delay(0.5, False) == 0.5
    with pytest.raises(ValueError, match="positive"):
        PollSchedule(initial=0)
    with pytest.raises(ValueError, match="must not exceed"):
        PollSchedule(initial=6.0, maximum=5.0)


def test_wait_uses_the_given_schedule(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), task_reply("t1", "QUEUED"), task_reply("t1"))
    slow = AsyncSirayClient(TEST_KEY, fault_server.url)  # default 3-5 s schedule

    async def main() -> Task:
        async with slow:
            return await slow.wait("t1", poll=PollSchedule.fixed(0.01))

    assert asyncio.run(main()).status is TaskStatus.SUCCESS


# --- event loops: asyncio.run, running loops, the sync facade ----------------------------


def test_async_client_survives_a_second_asyncio_run(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), task_reply("t1", "QUEUED"), task_reply("t1"))
    client = client_for(fault_server)
    first = asyncio.run(client.get_task("t1"))

    async def second() -> Task:
        try:
            return await client.get_task("t1")
        finally:
            await client.aclose()
            gc.collect()

    # The first loop closed its pool as it shut down (before: the old socket stayed open
    # until the garbage collector found it, with an "unclosed transport" ResourceWarning);
    # the second loop gets a fresh pool.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.run(second())
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert first.status is TaskStatus.QUEUED
    assert task.status is TaskStatus.SUCCESS


def test_sync_client_generate(fault_server: FaultServer) -> None:
    fault_server.on("POST", CREATE, created("s1"))
    fault_server.on("GET", task_path("s1"), *[task_reply("s1", "QUEUED"), task_reply("s1")])
    callback_threads: list[threading.Thread] = []
    with SirayClient(TEST_KEY, fault_server.url, retry=fast_retry(), poll=tiny_poll()) as client:
        task = client.generate(
            ImageRequest(prompt="a fox"),
            on_update=lambda t: callback_threads.append(threading.current_thread()),
        )
    assert task.status is TaskStatus.SUCCESS
    # on_update ran in the caller's thread, not on the private loop.
    assert callback_threads == [threading.current_thread()] * 2
    assert fault_server.creates()[0].body == ImageRequest(prompt="a fox").to_json().encode()


def test_sync_client_works_inside_a_running_loop(fault_server: FaultServer) -> None:
    # As in a Jupyter cell: a loop is running in this thread while the blocking call runs.
    fault_server.on("GET", task_path("t1"), task_reply("t1", "IN_PROGRESS", "5%"))
    fault_server.on("GET", task_path("t1"), *LIFECYCLE)

    async def cell() -> tuple[Task, Task]:
        with SirayClient(TEST_KEY, fault_server.url, poll=tiny_poll()) as client:
            one = client.get_task("t1")
            return one, client.wait("t1")

    one, done = asyncio.run(cell())
    assert one.progress == 5
    assert done.status is TaskStatus.SUCCESS


def test_sync_client_async_on_update_and_errors(fault_server: FaultServer) -> None:
    fault_server.on(
        "GET",
        task_path("t1"),
        task_reply("t1", "QUEUED"),
        task_reply("t1", "FAILURE", fail_reason="out of GPUs"),
    )
    statuses: list[str] = []

    async def record(task: Task) -> None:
        statuses.append(task.status.value)

    with (
        SirayClient(TEST_KEY, fault_server.url, poll=tiny_poll()) as client,
        pytest.raises(TaskFailedError, match="out of GPUs"),
    ):
        client.wait("t1", on_update=record)
    assert statuses == ["QUEUED", "FAILURE"]


def test_sync_client_callback_error_stops_polling(fault_server: FaultServer) -> None:
    fault_server.always("GET", task_path("t1"), task_reply("t1", "QUEUED"))

    def explode(task: Task) -> None:
        raise RuntimeError("callback broke")

    with (
        SirayClient(TEST_KEY, fault_server.url, poll=tiny_poll()) as client,
        pytest.raises(RuntimeError, match="callback broke"),
    ):
        client.wait("t1", on_update=explode)
    assert fault_server.count("GET") < 5


def test_closed_clients_refuse_work(fault_server: FaultServer) -> None:
    sync = SirayClient(TEST_KEY, fault_server.url)
    sync.close()
    sync.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        sync.get_task("t1")

    async def main() -> None:
        client = client_for(fault_server)
        await client.aclose()
        await client.get_task("t1")

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(main())
    assert fault_server.seen == []


def test_get_task_rejects_a_blank_id(fault_server: FaultServer) -> None:
    with pytest.raises(ValueError, match="task_id"):
        asyncio.run(client_for(fault_server).get_task("  "))
