"""The API key appears in no repr, str, exception text or log record, even at DEBUG."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import traceback
import urllib.parse

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
from siray_widgets.config import Secret, redact
from siray_widgets.errors import (
    AuthenticationError,
    ConfigurationError,
    SirayError,
    TransportError,
    UnexpectedResponseError,
)

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


# --- keys that cannot travel in a header -----------------------------------------------------

PASTED_KEYS = [
    "my key:\nsk-SECRET-123",
    "sk-SECRET-\x01456",
    "sk-SECRET-789\u2019",
    "sk-\x00SECRET",
]


@pytest.mark.parametrize("key", PASTED_KEYS, ids=["newline", "control", "non-ascii", "nul"])
def test_a_mangled_key_is_refused_before_sending_and_never_shown(
    fault_server: FaultServer, key: str
) -> None:
    # Before the check, httpx refused the header with "Illegal header value b'Bearer ...'"
    # (the key, escaped) and that text became the error; a non-ASCII key raised a
    # UnicodeEncodeError traceback.
    with pytest.raises(ConfigurationError) as info:
        SirayClient(key, fault_server.url).submit(prompt="x")
    assert "copy it again from the Siray dashboard" in str(info.value)
    assert "SECRET" not in error_texts(info.value)
    assert fault_server.seen == []


def test_transport_errors_are_redacted_even_for_a_key_that_slipped_through(
    fault_server: FaultServer,
) -> None:
    # Defence in depth: force a key resolve() would refuse past it, so that httpx itself
    # rejects the header and quotes it, escaped, in its error text.
    key = "sk-SECRET-123\nPART2-SECRET"
    client = AsyncSirayClient(TEST_KEY, fault_server.url, retry=RetryPolicy.never())
    client._settings = dataclasses.replace(client._settings, api_key=Secret(key))

    async def main() -> None:
        async with client:
            await client.get_task("t1")

    with pytest.raises(TransportError) as info:
        asyncio.run(main())
    text = error_texts(info.value)
    assert "Illegal header value" in text  # not vacuous: httpx did quote the header
    assert "***" in text
    assert "SECRET" not in text
    assert fault_server.seen == []


def test_redact_masks_the_key_in_its_escaped_forms() -> None:
    key = "sk-SECRET-\u2019\x01\nx"
    secret = Secret(key)
    for form in (
        key,
        repr(key)[1:-1],
        repr(key.encode("utf-8"))[2:-1],  # how h11 quotes a header value
        key.encode("unicode_escape").decode("ascii"),
        json.dumps(key)[1:-1],
        urllib.parse.quote(key, safe=""),
    ):
        assert redact(f"before {form} after", secret) == "before *** after", form
    assert redact("nothing here", secret) == "nothing here"
    assert redact(f"plain {key}", None) == f"plain {key}"


@pytest.mark.parametrize(
    "reply",
    [
        # The key straddles the 200-character cut of a long error message.
        error_reply(401, "x" * 170 + f" rejected key {TEST_KEY} " + "y" * 100),
        Reply(401, "z" * 165 + f" Authorization: Bearer {TEST_KEY}\n" + "w" * 100),
        Reply(200, "<html><body>" + "v" * 180 + f" your key {TEST_KEY} </body></html>"),
        Reply(200, {"code": TEST_KEY, "message": "q" * 190 + TEST_KEY}),
        error_reply(403, "denied", type=TEST_KEY, code=TEST_KEY, param=TEST_KEY),
    ],
    ids=["json-message", "plain-text", "non-json-200", "code-200", "type-code-param"],
)
def test_an_echoed_key_is_masked_before_the_message_is_shortened(
    fault_server: FaultServer, reply: Reply
) -> None:
    fault_server.on("GET", task_path("t1"), reply)

    async def main() -> None:
        async with AsyncSirayClient(TEST_KEY, fault_server.url, retry=RetryPolicy.never()) as c:
            await c.get_task("t1")

    with pytest.raises(SirayError) as info:
        asyncio.run(main())
    text = error_texts(info.value)
    for start in range(0, len(TEST_KEY) - 8):
        assert TEST_KEY[start : start + 9] not in text  # no piece of it, cut or whole
