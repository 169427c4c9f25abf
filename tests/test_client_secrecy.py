"""The API key appears in no repr, str, exception text or log record, even at DEBUG."""

from __future__ import annotations

import asyncio
import logging
import traceback

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

from siray_widgets.client import AsyncSirayClient, RetryPolicy, SirayClient
from siray_widgets.errors import AuthenticationError, SirayError, UnexpectedResponseError

LOGGERS = ("", "siray_widgets", "httpx", "httpcore", "stamina", "asyncio")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def everything_in(record: logging.LogRecord) -> str:
    """All text a handler could print from ``record``: message, args, extras, exception."""
    parts = [record.getMessage(), repr(record.args), repr(vars(record))]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


def error_texts(error: BaseException) -> str:
    """Every way an exception can be shown, its cause chain and attributes included."""
    parts = [str(error), repr(error), repr(vars(error)), "".join(traceback.format_exception(error))]
    return "\n".join(parts)


def test_client_reprs_hide_the_key(fault_server: FaultServer) -> None:
    client = AsyncSirayClient(TEST_KEY, fault_server.url)
    sync = SirayClient(TEST_KEY, fault_server.url)
    for text in (repr(client), str(client), repr(sync), str(sync), client.summary):
        assert TEST_KEY not in text
    assert repr(client) == (
        f"AsyncSirayClient(base_url='{fault_server.url}', sandbox=False, key=argument)"
    )
    sync.close()


def test_key_stays_out_of_logs_and_errors_through_a_full_run(
    fault_server: FaultServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    fault_server.on(
        "POST",
        CREATE,
        error_reply(429, "slow down", headers={"Retry-After": "0"}),
        created("t1"),
    )
    fault_server.on(
        "GET",
        task_path("t1"),
        error_reply(500, "hiccup"),
        task_reply("t1", "IN_PROGRESS", "40%"),
        task_reply("t1"),
    )
    # A server that echoes the rejected key back in its error message.
    fault_server.on(
        "GET", task_path("t2"), error_reply(401, f"Incorrect API key provided: {TEST_KEY}")
    )
    fault_server.on("GET", task_path("t3"), Reply(200, {"code": "denied", "message": TEST_KEY}))

    async def main() -> list[SirayError]:
        errors: list[SirayError] = []
        async with AsyncSirayClient(
            TEST_KEY, fault_server.url, retry=fast_retry(), poll=tiny_poll()
        ) as client:
            await client.generate(prompt="a quiet harbour")
            for task_id in ("t2", "t3"):
                try:
                    await client.get_task(task_id)
                except SirayError as exc:
                    errors.append(exc)
        return errors

    errors = asyncio.run(main())

    # Not vacuous: the key did travel, and the logs did capture the exchange.
    assert all(s.headers["authorization"] == f"Bearer {TEST_KEY}" for s in fault_server.seen)
    assert any(r.name.startswith("httpcore") for r in debug_logs.records)
    assert any(r.name == "httpx" for r in debug_logs.records)
    assert any(r.name == "stamina" for r in debug_logs.records)  # the retries were logged
    assert [type(e) for e in errors] == [AuthenticationError, UnexpectedResponseError]

    for record in debug_logs.records:
        assert TEST_KEY not in everything_in(record), record.name
    for error in errors:
        assert TEST_KEY not in error_texts(error)
        assert "***" in str(error)


def test_sync_facade_errors_hide_the_key(refused_url: str) -> None:
    with (
        SirayClient(TEST_KEY, refused_url, retry=RetryPolicy.never()) as client,
        pytest.raises(SirayError) as info,
    ):
        client.get_task("t1")
    assert TEST_KEY not in error_texts(info.value)
