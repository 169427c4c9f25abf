"""Regression tests of issue 11's hardening, each against a hostile local server.

Every test here failed on the main branch before the fix (the docstring says how).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
import time
from typing import Any

import httpx
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

from siray_widgets import ImageRequest, Task, TaskStatus
from siray_widgets.client import DEFAULT_WAIT_TIMEOUT, AsyncSirayClient, RetryPolicy, SirayClient
from siray_widgets.config import Secret, redact
from siray_widgets.errors import (
    ClientClosedError,
    ConfigurationError,
    ServerError,
    SirayError,
    TaskFailedError,
    TransportError,
    UnexpectedResponseError,
    UnknownModelError,
    WaitTimeoutError,
)

REQUEST = ImageRequest(prompt="a lighthouse at dusk")


def client_for(server: FaultServer, key: str = TEST_KEY, **kwargs: Any) -> AsyncSirayClient:
    kwargs.setdefault("retry", fast_retry())
    kwargs.setdefault("poll", tiny_poll())
    return AsyncSirayClient(key, server.url, **kwargs)


def fails_with(server: FaultServer, call: Any, key: str = TEST_KEY, **kwargs: Any) -> SirayError:
    async def main() -> None:
        async with client_for(server, key, **kwargs) as client:
            await call(client)

    with pytest.raises(SirayError) as info:
        asyncio.run(main())
    return info.value


def get_t1(client: AsyncSirayClient) -> Any:
    return client.get_task("t1")


# --- 1. quadratic regular expressions -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [">" + "<" * 150_000, "<title>" * 21_500, "<p>" + "<" * 150_000],
    ids=["unmatched-lt", "unclosed-titles", "html-unmatched-lt"],
)
def test_a_150_kb_error_page_is_read_at_once(fault_server: FaultServer, body: str) -> None:
    # main: 28-37 s of regular-expression backtracking on the event loop; now a few ms.
    fault_server.always("GET", task_path("t1"), Reply(500, body))
    started = time.monotonic()
    error = fails_with(fault_server, get_t1, retry=RetryPolicy.never())
    assert time.monotonic() - started < 3.0
    assert isinstance(error, ServerError)
    assert len(error.server_message) <= 200


def test_a_150_kb_progress_does_not_freeze_wait(fault_server: FaultServer) -> None:
    # main: _PERCENT's "\s*%?\s*$" backtracked for 30 s; wait(timeout=5) returned after 32 s.
    progress = "1" + " " * 150_000 + "x"
    data = {"task_id": "t1", "status": "IN_PROGRESS", "progress": progress}
    fault_server.always("GET", task_path("t1"), Reply(200, {"code": "success", "data": data}))
    started = time.monotonic()
    error = fails_with(fault_server, lambda c: c.wait("t1", timeout=5))
    assert time.monotonic() - started < 3.0
    assert isinstance(error, UnexpectedResponseError)
    assert "not a percentage" in str(error)
    assert len(str(error)) < 400  # the 150 KB value is not in the message


# --- 2. echoed secrets ------------------------------------------------------------------------

SPECIAL_KEY = "sk-live<&>'\"-0123456789abcdef"


@pytest.mark.parametrize(
    ("reply_for", "key"),
    [
        (lambda url, key: Reply(401, b"", reason=f"bad key {key}"), TEST_KEY),
        (lambda url, key: Reply(302, b"", {"Location": f"{url}/login?k={key}"}), TEST_KEY),
        (
            lambda url, key: Reply(403, f"<html><title>{html.escape(key)} denied</title></html>"),
            SPECIAL_KEY,
        ),
        (
            lambda url, key: Reply(403, f"<p>{html.escape(key, quote=False)} denied</p>"),
            SPECIAL_KEY,
        ),
        (
            lambda url, key: Reply(
                400,
                '{"error": {"message": "'
                + key.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                + '"}}',
            ),
            "sk-live<&>-0123456789abcdef",
        ),
    ],
    ids=["reason-phrase", "redirect-location", "html-escaped", "html-escaped-noquote", "go-json"],
)
def test_an_echoed_key_is_masked_in_every_form(
    fault_server: FaultServer, reply_for: Any, key: str
) -> None:
    fault_server.always("GET", task_path("t1"), reply_for(fault_server.url, key))
    error = fails_with(fault_server, get_t1, key=key, retry=RetryPolicy.never())
    text = "\n".join([str(error), repr(error), repr(vars(error))])
    for form in (key, html.escape(key), html.escape(key, quote=False)):
        assert form not in text
    assert "***" in text


def test_an_echoed_key_is_masked_in_a_task_its_fail_reason_and_its_outputs(
    fault_server: FaultServer,
) -> None:
    # main: fail_reason reached TaskFailedError (and so the CLI and the widget) unmasked, and
    # outputs and raw reached the Task a notebook shows.
    fault_server.on("GET", task_path("t1"), task_reply("t1", "FAILURE", fail_reason=TEST_KEY))
    fault_server.on(
        "GET", task_path("t2"), task_reply("t2", outputs=[f"https://cdn/x.png?k={TEST_KEY}"])
    )
    error = fails_with(fault_server, lambda c: c.wait("t1"))
    assert isinstance(error, TaskFailedError)
    assert TEST_KEY not in str(error) + error.fail_reason

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.get_task("t2")

    task = asyncio.run(main())
    assert TEST_KEY not in repr(task) + json.dumps(task.to_json()) + json.dumps(dict(task.raw))
    assert task.outputs == ("https://cdn/x.png?k=***",)


def test_httpx_and_httpcore_log_records_never_hold_the_key(
    fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    # main: httpx logs the reason phrase at INFO and httpcore the response headers (a
    # redirect's Location) at DEBUG, with the key the server echoed in them.
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    fault_server.on("GET", task_path("t1"), Reply(401, b"", reason=f"bad key {TEST_KEY}"))
    fault_server.on("GET", task_path("t2"), Reply(302, b"", {"Location": f"/x?k={TEST_KEY}"}))

    async def main() -> None:
        async with client_for(fault_server, retry=RetryPolicy.never()) as client:
            for task_id in ("t1", "t2"):
                with pytest.raises(SirayError):
                    await client.get_task(task_id)

    asyncio.run(main())
    records = [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert any("bad key" in r.getMessage() for r in records)  # not vacuous
    assert any(r.name.startswith("httpcore") for r in records)
    for record in records:
        assert TEST_KEY not in record.getMessage(), record.name
        assert TEST_KEY not in repr(record.args)


def test_redaction_leaves_short_keys_and_package_words_alone() -> None:
    # Issue 7, bug 7: the word "sandbox" (the sandbox's open key) was masked everywhere.
    assert redact("the sandbox answered", Secret("sandbox")) == "the sandbox answered"
    assert redact("key abc123 here", Secret("abc123")) == "key abc123 here"
    assert redact(f"key {TEST_KEY} here", Secret(TEST_KEY)) == "key *** here"


def test_bearer_placeholder_from_a_server_is_kept_and_an_echoed_bearer_key_masked_cleanly(
    fault_server: FaultServer,
) -> None:
    # Issue 7, bug 7: "send the header 'Authorization: Bearer <key>'" became "Bearer '" (the
    # excerpt took <key> for an HTML tag).
    fault_server.on(
        "GET",
        task_path("t1"),
        error_reply(401, "Missing API key: send the header 'Authorization: Bearer <key>'"),
        Reply(401, f"Authorization: Bearer {TEST_KEY} is not valid"),
    )

    async def main() -> list[str]:
        messages = []
        async with client_for(fault_server, retry=RetryPolicy.never()) as client:
            for _ in range(2):
                try:
                    await client.get_task("t1")
                except SirayError as exc:
                    messages.append(str(exc))
        return messages

    placeholder, echoed = asyncio.run(main())
    assert "'Authorization: Bearer <key>'" in placeholder
    assert "Authorization: Bearer *** is not valid" in echoed


# --- 3. user:password@ in a base URL ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2secret@127.0.0.1:9/",
        "https://user:hunter2secret@api.example.com",
        "http://:hunter2secret@example.com",
        "https://hunter2secret@api.siray.ai/v1",
    ],
)
def test_userinfo_in_a_base_url_is_refused_without_showing_it(
    url: str, fault_server: FaultServer
) -> None:
    # main: accepted; the password showed in repr and summary, and httpx sent it as Basic auth
    # (in place of the key; with no key, over plain http to any host).
    for key in (TEST_KEY, None):
        with pytest.raises(ConfigurationError, match="user name or password") as info:
            SirayClient(key, url)
        assert "hunter2secret" not in str(info.value)
    assert fault_server.seen == []


# --- 5. nothing unbounded -----------------------------------------------------------------------


def test_a_dripping_server_cannot_hold_a_request_past_its_deadline(
    fault_server: FaultServer,
) -> None:
    # main: a byte every 2 s kept submit() pending past 45 s (httpx's timeouts are per read).
    fault_server.always("POST", CREATE, Reply(200, {"code": "success", "data": {}}, drip=(1, 0.1)))
    started = time.monotonic()
    error = fails_with(fault_server, lambda c: c.submit(REQUEST), deadline=0.5)
    assert time.monotonic() - started < 2.0
    assert isinstance(error, TransportError)
    assert "no complete answer within 0.5 s" in str(error)
    assert len(fault_server.creates()) == 1  # a create that may have arrived is not retried


@pytest.mark.parametrize("no_length", [False, True])
def test_an_answer_larger_than_the_cap_is_not_read(
    fault_server: FaultServer, no_length: bool
) -> None:
    # main: a 300 MB answer was read whole (1.2 GB RSS).
    body = {"code": "success", "data": {"task_id": "t1"}}
    reply = Reply(200, body, padding=300 * 1024 * 1024, no_length=no_length)
    fault_server.always("POST", CREATE, reply)
    started = time.monotonic()
    error = fails_with(fault_server, lambda c: c.submit(REQUEST))
    assert time.monotonic() - started < 5.0
    assert isinstance(error, UnexpectedResponseError)
    assert "larger than 1024 KB" in str(error)


def test_waiting_has_a_default_limit_that_can_be_raised(fault_server: FaultServer) -> None:
    # main: wait() without a timeout polled a stuck task for ever.
    assert float("inf") > DEFAULT_WAIT_TIMEOUT
    assert AsyncSirayClient(TEST_KEY, fault_server.url).wait_timeout == DEFAULT_WAIT_TIMEOUT
    fault_server.always("GET", task_path("t1"), task_reply("t1", "IN_PROGRESS", "10%"))
    error = fails_with(fault_server, lambda c: c.wait("t1"), wait_timeout=0.3)
    assert isinstance(error, WaitTimeoutError)
    assert error.timeout == 0.3
    fault_server.on("GET", task_path("t2"), task_reply("t2", "QUEUED"), task_reply("t2"))

    async def main() -> Task:  # a longer timeout passed to wait() wins over the default
        async with client_for(fault_server, wait_timeout=0.001) as client:
            return await client.wait("t2", timeout=10)

    assert asyncio.run(main()).status is TaskStatus.SUCCESS


# --- 6. bare exceptions -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"code": ' + b"1" * 4301 + b"}",
        b'{"error": {"message": "x", "code": ' + b"1" * 4301 + b"}}",
        b'{"code":"success","data":{"task_id":"t1","status":"QUEUED","progress":'
        + b"9" * 4400
        + b"}}",
        b'{"code":"success","data":{"task_id":"t1","status":' + b"7" * 5000 + b"}}",
    ],
    ids=["deep", "int-code", "int-error-code", "int-progress", "int-status"],
)
def test_deep_json_and_huge_integers_end_in_the_packages_errors(
    fault_server: FaultServer, body: bytes, status: int
) -> None:
    # main: a bare RecursionError (deep) and a bare ValueError "Exceeds the limit (4300 digits)"
    # (printing an int), naming no field.
    fault_server.always("GET", task_path("t1"), Reply(status, body))
    error = fails_with(fault_server, get_t1, retry=RetryPolicy.never())
    assert isinstance(error, UnexpectedResponseError if status == 200 else ServerError)
    assert len(str(error)) < 600


# --- 8. untrusted task ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id", [".", "..", "", " ", "a\x1bb", "a\nb", "x" * 201, "a b"], ids=repr
)
def test_implausible_task_ids_are_refused_before_sending(
    fault_server: FaultServer, task_id: str
) -> None:
    # main: "." and ".." were sent unencoded; httpx removed them as dot segments and the status
    # query, with the key, went to .../generations/async or .../generations.
    with pytest.raises(ValueError, match="task_id"):
        asyncio.run(client_for(fault_server).get_task(task_id))
    assert fault_server.seen == []


def test_a_task_id_travels_as_one_path_segment(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("a%2F..%2Fb%3F%23"), task_reply("a/../b?#"))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.get_task("a/../b?#")

    assert asyncio.run(main()).task_id == "a/../b?#"
    assert [s.path for s in fault_server.seen] == [task_path("a%2F..%2Fb%3F%23")]


@pytest.mark.parametrize("task_id", ["..", ".", "x\x1b]0;pwned\x07", "y" * 500])
def test_a_server_naming_an_implausible_task_id_is_refused(
    fault_server: FaultServer, task_id: str
) -> None:
    fault_server.on("POST", CREATE, created(task_id))
    error = fails_with(fault_server, lambda c: c.submit(REQUEST))
    assert isinstance(error, UnexpectedResponseError)
    assert "\x1b" not in str(error)
    assert fault_server.count("GET") == 0  # nothing was asked about it


# --- the live service's quirks, in the client ----------------------------------------------------


def test_success_before_outputs_is_polled_through(fault_server: FaultServer) -> None:
    # main: the first SUCCESS reading, with no outputs, was returned as the result.
    empty = task_reply("t1", "SUCCESS", outputs=[])
    fault_server.on("GET", task_path("t1"), empty, empty, task_reply("t1"))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1")

    task = asyncio.run(main())
    assert task.outputs == ("https://img.example/t1/1.png",)
    assert fault_server.count("GET") == 3


def test_success_whose_outputs_never_come_ends_in_a_clear_error(
    fault_server: FaultServer,
) -> None:
    fault_server.always("GET", task_path("t1"), task_reply("t1", "SUCCESS", outputs=[]))
    poll = tiny_poll().__class__(initial=0.01, maximum=0.02, after_change=0.01, outputs_grace=0.2)
    error = fails_with(fault_server, lambda c: c.wait("t1"), poll=poll)
    assert isinstance(error, UnexpectedResponseError)
    assert "reported SUCCESS but no image URLs for 0.2 s" in str(error)


def test_a_url_in_fail_reason_on_success_is_not_a_failure(fault_server: FaultServer) -> None:
    url = "https://api.siray.ai/redirect/abc/1"
    fault_server.on("GET", task_path("t1"), task_reply("t1", outputs=[url], fail_reason=url))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.wait("t1")

    task = asyncio.run(main())
    assert task.status is TaskStatus.SUCCESS
    assert task.fail_reason == ""
    assert task.to_json()["fail_reason"] == ""


@pytest.mark.parametrize(
    "body",
    [
        {"code": "success", "data": {"task_id": "c1"}},
        {"code": "success", "task_id": "c1"},
        {"task_id": "c1"},
        {"code": "success", "data": None, "task_id": "c1"},
    ],
    ids=["nested", "flat", "flat-no-code", "null-data"],
)
def test_create_answers_nested_or_flat_are_read(fault_server: FaultServer, body: Any) -> None:
    fault_server.on("POST", CREATE, Reply(200, body))

    async def main() -> str:
        async with client_for(fault_server) as client:
            return await client.submit(REQUEST)

    assert asyncio.run(main()) == "c1"


@pytest.mark.parametrize("with_code", [True, False])
def test_flat_status_answers_are_read(fault_server: FaultServer, with_code: bool) -> None:
    # main: "the status response has no 'data' object".
    data = task_reply("t1").body["data"]  # type: ignore[index]
    body = {"code": "success", "message": "", **data} if with_code else data
    fault_server.on("GET", task_path("t1"), Reply(200, body))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.get_task("t1")

    assert asyncio.run(main()).outputs == ("https://img.example/t1/1.png",)


def test_unknown_model_is_said_and_not_retried(fault_server: FaultServer) -> None:
    # main: a 503 ServerError, retried (503 is a safe retry for a create) five times.
    fault_server.always(
        "POST",
        CREATE,
        error_reply(503, "no channel for this model", type="new_api_error", code="model_not_found"),
    )
    error = fails_with(fault_server, lambda c: c.submit(REQUEST))
    assert isinstance(error, UnknownModelError)
    assert str(error).startswith("HTTP 503: unknown model: no channel for this model")
    assert error.field == "model"
    assert len(fault_server.creates()) == 1


# --- 9. lifecycle -----------------------------------------------------------------------------


def test_close_from_another_thread_frees_a_thread_blocked_in_generate(
    fault_server: FaultServer,
) -> None:
    # main: the blocked thread waited for ever (the loop it waited on was stopped).
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.always("GET", task_path("t1"), task_reply("t1", "IN_PROGRESS", "5%"))
    client = SirayClient(TEST_KEY, fault_server.url, poll=tiny_poll())
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            client.generate(REQUEST)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    fault_server.wait_for_requests(3)
    client.close()
    worker.join(5)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClientClosedError)
    assert "closed" in str(outcome[0])


def test_unclosed_sync_clients_leave_no_threads(fault_server: FaultServer) -> None:
    # main: 20 unclosed SirayClients left 20 loop threads (and their sockets) for ever.
    import gc

    fault_server.always("GET", task_path("t1"), task_reply("t1"))

    def use_one() -> None:
        SirayClient(TEST_KEY, fault_server.url).get_task("t1")

    before = {t for t in threading.enumerate() if t.name == "siray-widgets-client"}
    for _ in range(20):
        use_one()
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = {t for t in threading.enumerate() if t.name == "siray-widgets-client"} - before
        if not left:
            break
        time.sleep(0.02)
    assert left == set()


def test_an_unclosed_client_in_a_running_loop_closes_its_pool_when_collected(
    fault_server: FaultServer,
) -> None:
    import gc

    fault_server.always("GET", task_path("t1"), task_reply("t1"))

    async def main() -> bool:
        client = client_for(fault_server)
        await client.get_task("t1")
        pool = client._pool
        assert pool is not None
        del client
        gc.collect()
        await asyncio.sleep(0.05)
        return pool.closed and pool.http.is_closed

    assert asyncio.run(main())


def test_a_closed_sync_client_refuses_work_with_its_own_error(
    fault_server: FaultServer,
) -> None:
    with SirayClient(TEST_KEY, fault_server.url) as client:
        client.close()
        with pytest.raises(ClientClosedError):
            client.get_task("t1")


def test_httpx_mock_transport_still_works() -> None:
    # The answer cap and deadline read a streamed response: a custom transport still works.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": "success", "data": {"task_id": "m1"}})

    async def main() -> str:
        async with AsyncSirayClient(
            TEST_KEY, "https://api.example.com", transport=httpx.MockTransport(handler)
        ) as client:
            return await client.submit(REQUEST)

    assert asyncio.run(main()) == "m1"


@pytest.mark.parametrize("field", ["seed", "chaos", "stylize"])
def test_an_integer_too_long_to_print_is_a_validation_error_naming_its_field(field: str) -> None:
    # main: a bare ValueError "Exceeds the limit (4300 digits) for integer string conversion",
    # naming no field (the message printed the value).
    from siray_widgets.errors import ValidationError

    with pytest.raises(ValidationError, match=f"^{field}=<an integer of about 5000 digits>"):
        ImageRequest(prompt="a fox", **{field: 10**5000})


def test_a_key_spelled_in_json_escapes_in_a_task_is_masked(fault_server: FaultServer) -> None:
    # The raw answer does not contain the key's characters at all; only its parsed strings do
    # (the quick "does the answer mention the key" test must not skip this answer).
    spelled = "".join(f"\\u{ord(c):04x}" for c in TEST_KEY)
    body = (
        '{"code": "success", "data": {"task_id": "t1", "status": "FAILURE", '
        f'"progress": "100%", "outputs": [], "fail_reason": "bad key {spelled}"}}}}'
    )
    fault_server.always("GET", task_path("t1"), Reply(200, body))

    async def main() -> Task:
        async with client_for(fault_server) as client:
            return await client.get_task("t1")

    task = asyncio.run(main())
    assert task.fail_reason == "bad key ***"
    assert TEST_KEY not in repr(task) + json.dumps(dict(task.raw))
