"""Every failure the client can meet, against a real local server; and which ones it retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, TypeVar

import httpx
import pytest
import stamina
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
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from siray_widgets import ImageRequest, Task
from siray_widgets.client import AsyncSirayClient, RetryPolicy, parse_retry_after
from siray_widgets.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SirayError,
    TransportError,
    UnexpectedResponseError,
)

T = TypeVar("T")
REQUEST = ImageRequest(prompt="a lighthouse at dusk", aspect_ratio="16:9", seed=7)


def run(
    url: str,
    action: Callable[[AsyncSirayClient], Awaitable[T]],
    *,
    retry: RetryPolicy | None = None,
    timeout: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> T:
    """Run ``action`` with a fresh client under ``asyncio.run``, closing the client after."""

    async def main() -> T:
        async with AsyncSirayClient(
            TEST_KEY,
            url,
            retry=retry or fast_retry(),
            poll=tiny_poll(),
            timeout=timeout,
            transport=transport,
        ) as client:
            return await action(client)

    return asyncio.run(main())


def get_t1(client: AsyncSirayClient) -> Awaitable[Task]:
    return client.get_task("t1")


def submit(client: AsyncSirayClient) -> Awaitable[str]:
    return client.submit(REQUEST)


@pytest.fixture
def retries() -> Iterator[list[RetryDetails]]:
    """The retries stamina scheduled (with the wait it chose), through its own hook API."""
    scheduled: list[RetryDetails] = []
    set_on_retry_hooks([scheduled.append])
    try:
        yield scheduled
    finally:
        set_on_retry_hooks(None)


# --- status codes -> exception classes ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (408, ServerError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, APIError),
    ],
)
def test_status_codes_map_to_typed_errors(
    fault_server: FaultServer, status: int, error: type[APIError]
) -> None:
    fault_server.on("GET", task_path("t1"), error_reply(status, f"server says {status}"))
    with pytest.raises(error) as info:
        run(fault_server.url, get_t1, retry=RetryPolicy.never())
    assert type(info.value) is error
    assert info.value.status_code == status
    assert info.value.server_message == f"server says {status}"
    assert f"HTTP {status}: server says {status}" in str(info.value)
    assert "\n" not in str(info.value)
    assert fault_server.count() == 1


def test_bad_request_names_the_field_from_error_param(fault_server: FaultServer) -> None:
    fault_server.on(
        "POST",
        CREATE,
        error_reply(400, "must be at most 1000", code="invalid_value", param="stylize"),
    )
    with pytest.raises(BadRequestError) as info:
        run(fault_server.url, submit)
    err = info.value
    assert err.field == "stylize"
    assert err.error_type == "invalid_request_error"
    assert err.code == "invalid_value"
    assert "stylize" in str(err)
    assert "must be at most 1000" in str(err)
    assert "Fix the parameter" in str(err)  # says what to do next


def test_unprocessable_entity_detail_list_names_the_field(fault_server: FaultServer) -> None:
    body = {"detail": [{"loc": ["body", "chaos"], "msg": "Input should be <= 100"}]}
    fault_server.on("POST", CREATE, Reply(422, body))
    with pytest.raises(BadRequestError) as info:
        run(fault_server.url, submit)
    assert info.value.field == "chaos"
    assert info.value.server_message.startswith("Input should be <= 100")


def test_plain_text_error_body(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(500, "upstream worker crashed\nretry later"))
    with pytest.raises(ServerError) as info:
        run(fault_server.url, get_t1, retry=RetryPolicy.never())
    assert info.value.server_message == "upstream worker crashed retry later"


def test_html_error_page_becomes_a_short_line(fault_server: FaultServer) -> None:
    page = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\n<body>"
        + "<p>nginx</p>" * 500
        + "</body></html>"
    )
    fault_server.on("GET", task_path("t1"), Reply(502, page, {"Content-Type": "text/html"}))
    with pytest.raises(ServerError) as info:
        run(fault_server.url, get_t1, retry=RetryPolicy.never())
    assert info.value.server_message == "502 Bad Gateway"


def test_html_without_title_is_stripped_and_truncated(fault_server: FaultServer) -> None:
    page = "<html><body><h1>Forbidden</h1>" + "<p>blocked by policy</p>\n" * 100 + "</body></html>"
    fault_server.on("GET", task_path("t1"), Reply(403, page))
    with pytest.raises(ForbiddenError) as info:
        run(fault_server.url, get_t1)
    message = info.value.server_message
    assert message.startswith("Forbidden blocked by policy")
    assert len(message) <= 200
    assert "\n" not in message
    assert "<" not in message


def test_empty_error_body_uses_the_reason_phrase(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(404, b""))
    with pytest.raises(NotFoundError, match="Not Found") as info:
        run(fault_server.url, get_t1)
    assert "Check the task id" in str(info.value)


def test_siray_style_error_with_top_level_message(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(402, {"code": "no_balance", "message": "top up"}))
    with pytest.raises(PaymentRequiredError) as info:
        run(fault_server.url, get_t1)
    assert info.value.server_message == "top up"
    assert info.value.code == "no_balance"


def test_redirect_is_unexpected(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(301, b"", {"Location": "https://elsewhere/"}))
    with pytest.raises(UnexpectedResponseError, match="redirected to https://elsewhere/"):
        run(fault_server.url, get_t1)


# --- 200 answers that are still wrong ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"code": "error", "message": "quota exceeded", "data": None}, "'error': quota exceeded"),
        ({"code": "success", "message": "", "data": {}}, "no task id"),
        ({"code": "success", "message": "", "data": None}, "no task id"),
        ({"code": "success", "message": "", "data": {"task_id": ""}}, "task id '' is empty"),
        ({"code": "success", "message": "", "data": {"task_id": 12}}, "task id 12 is a int"),
        ({"code": "success", "data": {"task_id": ".."}}, r"task id '\.\.' is a dot segment"),
        ({"task_id": "a\x1b]52;c;ZXZpbA==\x07"}, "whitespace or control characters"),
        ({"task_id": "x" * 5000}, "5000 characters long"),
        (["success"], "not an object"),
        ("<html>maintenance</html>", "not JSON: maintenance"),
        (b"", r"not JSON: \(empty body\)"),
    ],
)
def test_malformed_create_answers(fault_server: FaultServer, body: Any, match: str) -> None:
    fault_server.on("POST", CREATE, Reply(200, body))
    with pytest.raises(UnexpectedResponseError, match=match) as info:
        run(fault_server.url, submit)
    assert "SIRAY_BASE_URL" in str(info.value)  # what to do next
    assert fault_server.count("POST") == 1  # never retried


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "holds no task"),
        ({"status": "SUCCESS"}, "has no task id"),
        ({"task_id": "t1", "status": "DONE"}, "unknown status 'DONE'"),
        ({"task_id": "t1", "status": "SUCCESS", "outputs": "url"}, "malformed 'outputs'"),
        ({"task_id": "t1", "status": "IN_PROGRESS", "progress": "lots"}, "not a percentage"),
        ({"task_id": "t2", "status": "QUEUED"}, "answer is about task t2"),
        ({"task_id": "t1", "status": "IN_PROGRESS", "progress": "nan"}, "not a percentage"),
        ({"task_id": "t1", "status": "QUEUED", "submit_time": "nan"}, "not Unix seconds"),
        ({"task_id": "t1", "status": "QUEUED", "submit_time": "-inf"}, "not Unix seconds"),
    ],
)
def test_malformed_status_answers(fault_server: FaultServer, data: Any, match: str) -> None:
    fault_server.on("GET", task_path("t1"), Reply(200, {"code": "success", "data": data}))
    with pytest.raises(UnexpectedResponseError, match=match):
        run(fault_server.url, get_t1)
    assert fault_server.count() == 1


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("NaN", "not JSON"),
        ("Infinity", "not JSON"),
        ("-Infinity", "not JSON"),
        ("1e400", "not a percentage"),  # valid JSON, but infinite as a float
        ("-1e400", "not a percentage"),
    ],
)
def test_nan_and_infinite_progress_are_unexpected_responses(
    fault_server: FaultServer, value: str, match: str
) -> None:
    # Python's json module reads NaN and Infinity (not JSON) and 1e400 (JSON) as floats;
    # int(nan) is a ValueError and int(inf) an OverflowError, which escaped the typed errors.
    text = (
        '{"code": "success", "message": "", "data": {"task_id": "t1", "status": "IN_PROGRESS", '
        f'"progress": {value}, "outputs": [], "submit_time": 1}}}}'
    )
    fault_server.on("GET", task_path("t1"), Reply(200, text.encode()))
    with pytest.raises(UnexpectedResponseError, match=match):
        run(fault_server.url, get_t1)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400", "-1e400"])
def test_nan_and_infinite_times_are_unexpected_responses(
    fault_server: FaultServer, value: str
) -> None:
    text = (
        '{"code": "success", "message": "", "data": {"task_id": "t1", "status": "QUEUED", '
        f'"progress": "0%", "outputs": [], "submit_time": {value}}}}}'
    )
    fault_server.on("GET", task_path("t1"), Reply(200, text.encode()))
    with pytest.raises(UnexpectedResponseError, match=r"not JSON|not Unix seconds"):
        run(fault_server.url, get_t1)


# --- transport failures ------------------------------------------------------------------


def test_connection_refused_is_a_transport_error_not_sent(refused_url: str) -> None:
    with pytest.raises(TransportError, match="could not connect") as info:
        run(refused_url, get_t1, retry=RetryPolicy.never())
    assert info.value.sent is False
    assert "SIRAY_BASE_URL" in str(info.value)


def test_read_timeout_is_a_transport_error_maybe_sent(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(delay=0.5, body=b"{}"))
    with pytest.raises(TransportError, match="timed out waiting") as info:
        run(fault_server.url, get_t1, retry=RetryPolicy.never(), timeout=0.1)
    assert info.value.sent is True


def test_dropped_connection_is_a_transport_error_maybe_sent(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(drop=True))
    with pytest.raises(TransportError, match="connection broke") as info:
        run(fault_server.url, get_t1, retry=RetryPolicy.never())
    assert info.value.sent is True


class _Raising(httpx.AsyncBaseTransport):
    """A transport that fails the way the socket layer or httpx itself can."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        OSError(24, "Too many open files"),
        httpx.TooManyRedirects("too many"),
        httpx.InvalidURL("bad url"),
    ],
    ids=["oserror", "httpx-error", "invalid-url"],
)
def test_other_failures_below_http_are_transport_errors(error: Exception) -> None:
    with pytest.raises(TransportError) as info:
        run("https://api.example", get_t1, retry=RetryPolicy.never(), transport=_Raising(error))
    assert type(error).__name__ in str(info.value)
    assert info.value.sent is None
    assert info.value.__cause__ is None


def test_unknown_host_is_a_transport_error() -> None:
    # ".invalid" never resolves (RFC 2606): a DNS failure, reported as a refused connection.
    with pytest.raises(TransportError, match="could not connect") as info:
        run("https://siray.invalid", get_t1, retry=RetryPolicy.never())
    assert info.value.sent is False


# --- retries: status queries -------------------------------------------------------------


def test_status_query_retries_every_passing_failure(
    fault_server: FaultServer, retries: list[RetryDetails]
) -> None:
    fault_server.on(
        "GET",
        task_path("t1"),
        error_reply(500, "boom"),
        error_reply(502, "bad gateway"),
        error_reply(503, "unavailable"),
        error_reply(408, "request timeout"),
        error_reply(429, "slow down", headers={"Retry-After": "0"}),
        Reply(drop=True),
        Reply(delay=0.4, body=b"{}"),  # read timeout
        task_reply("t1", "QUEUED"),
    )
    task = run(fault_server.url, get_t1, retry=fast_retry(attempts=8), timeout=0.2)
    assert task.status.value == "QUEUED"
    assert fault_server.count("GET") == 8
    assert [type(r.caused_by) for r in retries] == [
        ServerError,
        ServerError,
        ServerError,
        ServerError,
        RateLimitError,
        TransportError,
        TransportError,
    ]


def test_status_query_gives_up_after_the_attempt_cap(fault_server: FaultServer) -> None:
    fault_server.always("GET", task_path("t1"), error_reply(500, "down"))
    with pytest.raises(ServerError, match="down"):
        run(fault_server.url, get_t1, retry=fast_retry(attempts=3))
    assert fault_server.count("GET") == 3


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404])
def test_client_errors_are_never_retried(fault_server: FaultServer, status: int) -> None:
    fault_server.always("GET", task_path("t1"), error_reply(status, "no"))
    with pytest.raises(APIError):
        run(fault_server.url, get_t1)
    assert fault_server.count() == 1


def test_retry_after_seconds_is_the_wait(
    fault_server: FaultServer, retries: list[RetryDetails]
) -> None:
    fault_server.on(
        "GET",
        task_path("t1"),
        error_reply(429, "slow down", headers={"Retry-After": "0.05"}),
        error_reply(429, "slow down", headers={"Retry-After": "0"}),
        task_reply("t1", "QUEUED"),
    )
    run(fault_server.url, get_t1)
    assert [r.wait_for for r in retries] == [0.05, 0.0]


def test_retry_after_on_a_503_is_honoured_too(
    fault_server: FaultServer, retries: list[RetryDetails]
) -> None:
    fault_server.on(
        "POST",
        CREATE,
        error_reply(503, "maintenance", headers={"Retry-After": "0.04"}),
        created("t1"),
    )
    assert run(fault_server.url, submit) == "t1"
    assert [r.wait_for for r in retries] == [0.04]
    assert fault_server.count("POST") == 2


def test_retry_after_beyond_the_cap_is_not_slept_through(
    fault_server: FaultServer, retries: list[RetryDetails]
) -> None:
    fault_server.always(
        "GET", task_path("t1"), error_reply(429, "come back later", headers={"Retry-After": "120"})
    )
    with pytest.raises(RateLimitError, match=r"retry after 120 s") as info:
        run(fault_server.url, get_t1)
    assert info.value.retry_after == 120
    assert retries == []
    assert fault_server.count() == 1


def test_retry_after_http_date_is_parsed(fault_server: FaultServer) -> None:
    past = format_datetime(datetime.now(timezone.utc) - timedelta(minutes=1), usegmt=True)
    fault_server.on("GET", task_path("t1"), error_reply(429, "slow", headers={"Retry-After": past}))
    with pytest.raises(RateLimitError) as info:
        run(fault_server.url, get_t1, retry=RetryPolicy.never())
    assert info.value.retry_after == 0.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 11, 16, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Sun, 16 Nov 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 16 Nov 2025 11:59:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_is_capped_by_stamina_in_testing_mode(fault_server: FaultServer) -> None:
    # stamina's own test switch caps attempts and removes waits, even a long Retry-After.
    fault_server.always(
        "GET", task_path("t1"), error_reply(429, "slow", headers={"Retry-After": "30"})
    )
    with stamina.set_testing(True, attempts=2), pytest.raises(RateLimitError):
        run(fault_server.url, get_t1)
    assert fault_server.count() == 2


# --- retries: create requests (never a second task) --------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        error_reply(500, "internal error"),
        error_reply(502, "bad gateway"),
        error_reply(504, "gateway timeout"),
        error_reply(408, "request timeout"),
        Reply(delay=0.5, body=b"{}"),  # read timeout: the server may have stored the task
        Reply(drop=True),  # connection dropped after sending
    ],
    ids=["500", "502", "504", "408", "read-timeout", "dropped"],
)
def test_create_is_not_retried_where_a_task_may_exist(
    fault_server: FaultServer, failure: Reply
) -> None:
    fault_server.on("POST", CREATE, failure, created("second-task"))
    with pytest.raises((ServerError, TransportError)):
        run(fault_server.url, submit, timeout=0.15)
    assert fault_server.count("POST") == 1


def test_create_is_retried_on_429_and_503_with_the_same_bytes(
    fault_server: FaultServer, retries: list[RetryDetails]
) -> None:
    fault_server.on(
        "POST",
        CREATE,
        error_reply(429, "rate limited", headers={"Retry-After": "0"}),
        error_reply(503, "overloaded"),
        created("only-task"),
    )
    assert run(fault_server.url, submit) == "only-task"
    bodies = [s.body for s in fault_server.creates()]
    assert bodies == [REQUEST.to_json().encode()] * 3
    assert len(retries) == 2


def test_create_gives_up_after_the_attempt_cap_on_503(fault_server: FaultServer) -> None:
    fault_server.always("POST", CREATE, error_reply(503, "overloaded"))
    with pytest.raises(ServerError, match="overloaded"):
        run(fault_server.url, submit, retry=fast_retry(attempts=3))
    assert fault_server.count("POST") == 3


class CountingTransport(httpx.AsyncHTTPTransport):
    """A real HTTP transport that counts the requests it was asked to send."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await super().handle_async_request(request)


def test_create_is_retried_when_the_connection_is_refused(
    refused_url: str, retries: list[RetryDetails]
) -> None:
    transport = CountingTransport()
    with pytest.raises(TransportError) as info:
        run(refused_url, submit, retry=fast_retry(attempts=3), transport=transport)
    assert info.value.sent is False
    assert transport.calls == 3
    assert len(retries) == 2


def test_refused_then_reachable(fault_server: FaultServer) -> None:
    """A create that first meets a refused connection reaches the server on a later try."""
    fault_server.on("POST", CREATE, created("late"))

    class FlakyTransport(CountingTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.calls += 1
            if self.calls == 1:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return await super(CountingTransport, self).handle_async_request(request)

    transport = FlakyTransport()
    assert run(fault_server.url, submit, transport=transport) == "late"
    assert transport.calls == 2
    assert fault_server.count("POST") == 1


def test_every_error_is_a_siray_error(fault_server: FaultServer) -> None:
    fault_server.on("GET", task_path("t1"), Reply(200, "not json"))
    with pytest.raises(SirayError):
        run(fault_server.url, get_t1)


def test_json_body_with_unicode_error_text(fault_server: FaultServer) -> None:
    body = json.dumps({"error": {"message": "提示词被拦截", "type": "moderation"}}).encode()
    fault_server.on("POST", CREATE, Reply(403, body, {"Content-Type": "application/json"}))
    with pytest.raises(ForbiddenError, match="提示词被拦截") as info:
        run(fault_server.url, submit)
    assert info.value.error_type == "moderation"
