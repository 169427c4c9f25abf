"""HTTP client for the Siray image API: an async core, a sync facade and a polling schedule.

:class:`AsyncSirayClient` holds one pooled :class:`httpx.AsyncClient` with explicit timeouts.
:class:`SirayClient` runs the async client on a private event-loop thread, so its blocking
methods work in scripts and also inside a running loop (a Jupyter cell).

Every failure becomes one of the typed errors of :mod:`siray_widgets.errors`. Retries use
stamina (exponential backoff with jitter, capped attempts and total time, ``Retry-After``
honoured) and only where a retry is safe: a status query is read-only, but a create request
is retried only where no second task can result.

Retries are logged by stamina, as a WARNING ``stamina.retry_scheduled`` on the ``stamina``
logger. A program that configured logging (``logging.basicConfig()``, or any handler on
``stamina`` or the root logger) receives those records from this package as usual. A program
that configured nothing would see them printed to stderr by logging's last-resort handler, in
the middle of a script's or a notebook's output; the records of *this package's* retries are
dropped in that case only (a filter on the ``stamina`` logger that looks at a context variable
set during our requests). stamina's global hooks are left alone, so the program's own use of
stamina logs exactly as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
import stamina

from . import __version__
from .config import Secret, Settings, redact, resolve
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SirayError,
    TaskFailedError,
    TransportError,
    UnexpectedResponseError,
    WaitTimeoutError,
)
from .schema import CREATE_PATH, MODEL_ID, TASK_PATH, AnyRequest, ImageRequest, ModelRequest
from .task import Task, TaskStatus

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncSirayClient",
    "PollSchedule",
    "RetryPolicy",
    "SirayClient",
]

logger = logging.getLogger("siray_widgets")

T = TypeVar("T")
#: Called with each new reading of a task; may be a plain function or a coroutine function.
OnUpdate = Callable[[Task], object]

#: Connecting should be quick; reading gets longer because the create call does real work.
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)

_TASK_PREFIX: Final = TASK_PATH.split("{", 1)[0]


# --- quiet retries -----------------------------------------------------------------------

#: True while this package retries a request (set in the task that runs the retry loop).
_retrying: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "siray_widgets_retrying", default=False
)


class _QuietRetries(logging.Filter):
    """Drop stamina's retry records from our requests when no handler would receive them.

    Without any handler on the ``stamina`` logger or its ancestors, logging hands a WARNING
    to its last-resort handler, which prints it to stderr. Records from other code's stamina
    retries, and ours when the program set up logging, pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _retrying.get():
            return True
        return logging.getLogger(record.name).hasHandlers()


_QUIET_RETRIES: Final = _QuietRetries()
logging.getLogger("stamina").addFilter(_QUIET_RETRIES)


# --- schedules and policies --------------------------------------------------------------


@dataclass(frozen=True)
class PollSchedule:
    """When to ask for a task's status again.

    The defaults follow Siray's guidance (every 3 to 5 s): the first gap is ``initial``; while
    nothing changes the gap grows by ``growth`` up to ``maximum``; right after the status or
    progress moves it drops back to ``after_change``. Tests use tiny values.
    """

    initial: float = 3.0
    maximum: float = 5.0
    after_change: float = 3.0
    growth: float = 1.25

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "after_change"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"PollSchedule.{name}={value!r} must be a positive number")
        if self.growth < 1:
            raise ValueError(f"PollSchedule.growth={self.growth!r} must be at least 1")
        if max(self.initial, self.after_change) > self.maximum:
            raise ValueError("PollSchedule.initial and .after_change must not exceed .maximum")

    @classmethod
    def fixed(cls, interval: float) -> PollSchedule:
        """Poll every ``interval`` seconds, whatever happens."""
        return cls(initial=interval, maximum=interval, after_change=interval, growth=1.0)

    @classmethod
    def local(cls) -> PollSchedule:
        """For the embedded sandbox: polling a local server is free, and a workshop should see
        the progress bar move rather than jump from 0 to 100 % after Siray's 3 s gap."""
        return cls(initial=0.25, maximum=0.5, after_change=0.25, growth=1.25)

    def next_delay(self, previous: float | None, changed: bool) -> float:
        """The gap before the next query, given the previous gap and whether the task moved."""
        if previous is None:
            return self.initial
        if changed:
            return self.after_change
        return min(self.maximum, previous * self.growth)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry one request (passed to stamina).

    ``attempts`` counts the first try. ``timeout`` caps the time spent retrying one request.
    A ``Retry-After`` longer than ``max_retry_after`` is not slept through: the
    :class:`~siray_widgets.errors.RateLimitError` reaches the caller at once.
    """

    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 0.5
    wait_max: float = 8.0
    wait_jitter: float = 1.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts={self.attempts!r} must be at least 1")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retry."""
        return cls(attempts=1)


def _retryable_query(exc: Exception) -> bool:
    """A status query is read-only: retry anything passing."""
    return isinstance(exc, (RateLimitError, ServerError, TransportError))


def _retryable_create(exc: Exception) -> bool:
    """Retry a create request only where the server surely made no task.

    429 and 503 are refusals before any work; a connect error means nothing was sent. A 500,
    502 or read timeout may come after the task was stored, so a retry could make a second one.
    """
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code == 503
    if isinstance(exc, TransportError):
        return exc.sent is False
    return False


def _backoff_hook(
    retryable: Callable[[Exception], bool], policy: RetryPolicy, started: float
) -> Callable[[Exception], bool | float]:
    """stamina's ``on=`` hook: False = give up, True = usual backoff, float = wait this long.

    A ``Retry-After`` is honoured as the wait, unless it is longer than
    ``policy.max_retry_after`` or than what is left of ``policy.timeout`` since ``started``
    (``time.monotonic()``): then the error goes to the caller at once rather than after a
    sleep that could not end in a retry.
    """

    def hook(exc: Exception) -> bool | float:
        if not retryable(exc):
            return False
        if isinstance(exc, APIError) and exc.retry_after is not None:
            left = policy.timeout - (time.monotonic() - started)
            # In stamina's testing mode every wait is zero, so no Retry-After is too long.
            if exc.retry_after > min(policy.max_retry_after, left) and not stamina.is_testing():
                return False
            return float(exc.retry_after)
        return True

    return hook


# --- reading responses -------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_EXCERPT_LIMIT = 200


def _excerpt(text: str, limit: int = _EXCERPT_LIMIT) -> str:
    """A short single line from a plain-text or HTML error page."""
    if "<" in text and ">" in text:
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAG.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT by definition
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _error_details(
    response: httpx.Response, secret: Secret | None = None
) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, code, param) from an error body: OpenAI-style JSON, plain text or HTML.

    The message has the key masked (see :func:`config.redact`) before it is shortened, so that a
    cut cannot leave half of an echoed key.
    """
    content = response.content
    message: str | None = None
    error_type = code = param = None
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
        message = _excerpt(redact(content.decode("utf-8", "replace"), secret))
    if isinstance(body, dict):
        error = body.get("error")
        detail = body.get("detail")
        if isinstance(error, dict):
            message = _text(error.get("message"))
            error_type = _text(error.get("type"))
            code = _text(error.get("code"))
            param = _text(error.get("param"))
        elif isinstance(error, str):
            message = error
        elif isinstance(detail, str):
            message = detail
        elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
            # Validation errors as FastAPI and Pydantic write them: [{"loc": [...], "msg": ...}]
            message = _text(detail[0].get("msg"))
            loc = detail[0].get("loc")
            if isinstance(loc, list) and loc:
                param = _text(loc[-1])
        if message is None:
            message = _text(body.get("message"))
            code = code or _text(body.get("code"))
    elif body is not None and message is None:
        message = _excerpt(redact(json.dumps(body), secret))
    if message:
        message = _excerpt(redact(message, secret))
    return (message or response.reason_phrase or "no error message", error_type, code, param)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


# --- the async client --------------------------------------------------------------------


class AsyncSirayClient:
    """Async client for the Siray niji 7 image API.

    ``api_key`` and ``base_url`` fall back to ``SIRAY_API_KEY`` and ``SIRAY_BASE_URL``; with
    neither anywhere, requests go to the embedded offline sandbox (see :attr:`sandbox`).

    >>> async with AsyncSirayClient() as client:  # doctest: +SKIP
    ...     task = await client.generate(prompt="a fox in the snow", aspect_ratio="16:9")
    ...     task.outputs
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        poll: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        settings = resolve(api_key, base_url)  # checks the key and the base URL
        try:
            httpx.URL(settings.base_url + CREATE_PATH)
        except httpx.InvalidURL as exc:  # what urlsplit lets through and httpx does not
            raise ConfigurationError(
                f"base URL {settings.base_url!r} is not a valid URL ({exc})"
            ) from None
        self._settings: Settings = settings
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.poll: PollSchedule = poll or (
            PollSchedule.local() if settings.sandbox else PollSchedule()
        )
        self.retry: RetryPolicy = retry or RetryPolicy()
        self._transport = transport
        self._create_url = settings.base_url + CREATE_PATH
        self._task_url = settings.base_url + _TASK_PREFIX
        # Created on first use, inside the loop that uses it: httpx's pool belongs to one loop.
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- description --

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def sandbox(self) -> bool:
        """True when requests go to the embedded offline sandbox."""
        return self._settings.sandbox

    @property
    def has_key(self) -> bool:
        """Whether an ``Authorization`` header is sent (the key itself is never shown)."""
        return self._settings.api_key is not None

    @property
    def summary(self) -> str:
        """One human line: where requests go and whether a key is used."""
        return self._settings.describe()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, sandbox={self.sandbox}, "
            f"key={self._settings.key_source})"
        )

    # -- lifecycle --

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is not None and self._loop is loop:
            return self._http
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")
        # First use, or use from a new loop (a second asyncio.run): the old pool's
        # connections belong to the old loop and cannot be reused, so start a fresh pool.
        headers = {"Accept": "application/json", "User-Agent": f"siray-widgets/{__version__}"}
        if self._settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self._settings.api_key.reveal()}"
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=self._timeout,
            transport=self._transport,
            # Proxies from the environment are for the internet, not for the local sandbox.
            trust_env=not self._settings.sandbox,
        )
        self._loop = loop
        return self._http

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call twice."""
        self._closed = True
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> AsyncSirayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the two endpoints --

    async def submit(self, request: AnyRequest | None = None, /, **fields: Any) -> str:
        """Create a task; return its id.

        Pass an :class:`ImageRequest` (niji 7) or a
        :class:`~siray_widgets.schema.ModelRequest` (any other model, see
        :func:`siray_widgets.registry.request_for`), or the fields as keywords
        (``submit(prompt=...)``; ``model=`` picks another model of the registry), or both (the
        keywords override). The body sent is exactly ``request.to_json()``.
        """
        request = _build_request(request, fields)
        body = await self._call(
            "POST", self._create_url, request.to_json().encode("utf-8"), _retryable_create
        )
        data = body.get("data")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise UnexpectedResponseError(
                "the create response has no 'data.task_id'", status_code=200
            )
        logger.debug("created task %s", task_id)
        return task_id

    async def get_task(self, task_id: str) -> Task:
        """One reading of a task's state."""
        if not isinstance(task_id, str) or not task_id.strip():
            raise ValueError(f"task_id must be a non-empty string, not {task_id!r}")
        body = await self._call(
            "GET", self._task_url + quote(task_id, safe=""), None, _retryable_query
        )
        task = Task.from_api(body.get("data"))
        if task.task_id != task_id:
            raise UnexpectedResponseError(
                f"asked for task {task_id} but the answer is about task {task.task_id}",
                status_code=200,
            )
        return task

    # -- waiting --

    async def wait(
        self,
        task_id: str,
        *,
        on_update: OnUpdate | None = None,
        timeout: float | None = None,
        poll: PollSchedule | None = None,
    ) -> Task:
        """Poll until the task ends; return the SUCCESS reading.

        ``on_update`` gets every reading that differs from the previous one (the first one
        included), FAILURE too. Raises :class:`TaskFailedError` on FAILURE and
        :class:`WaitTimeoutError` after ``timeout`` seconds (the task keeps running on the
        server). Cancelling the awaiting task stops polling at once.
        """
        seen: list[Task] = []
        polling = self._poll(task_id, on_update, poll or self.poll, seen)
        if timeout is None:
            return await polling
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            return await asyncio.wait_for(polling, timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError on Python 3.10
            # Only our own deadline becomes a WaitTimeoutError; a TimeoutError raised by
            # the on_update callback passes through unchanged.
            if loop.time() < deadline:
                raise
            last = seen[-1].status.value if seen else None
            raise WaitTimeoutError(task_id, timeout, last) from None

    async def _poll(
        self,
        task_id: str,
        on_update: OnUpdate | None,
        schedule: PollSchedule,
        seen: list[Task],
    ) -> Task:
        previous: Task | None = None
        delay: float | None = None
        while True:
            task = await self.get_task(task_id)
            changed = previous is None or task != previous
            if changed:
                seen.append(task)
                logger.debug("task %s: %s %d%%", task_id, task.status.value, task.progress)
                if on_update is not None:
                    result = on_update(task)
                    if inspect.isawaitable(result):
                        await result
            if task.status is TaskStatus.SUCCESS:
                return task
            if task.status is TaskStatus.FAILURE:
                raise TaskFailedError(task_id, task.fail_reason)
            moved = previous is not None and (
                task.status is not previous.status or task.progress != previous.progress
            )
            delay = schedule.next_delay(delay, moved)
            previous = task
            await asyncio.sleep(delay)

    async def generate(
        self,
        request: AnyRequest | None = None,
        /,
        *,
        on_update: OnUpdate | None = None,
        timeout: float | None = None,
        poll: PollSchedule | None = None,
        **fields: Any,
    ) -> Task:
        """Submit and wait: the finished task (``task.outputs`` holds the image URLs)."""
        task_id = await self.submit(request, **fields)
        return await self.wait(task_id, on_update=on_update, timeout=timeout, poll=poll)

    # -- one request, with retries --

    async def _call(
        self,
        method: str,
        url: str,
        content: bytes | None,
        retryable: Callable[[Exception], bool],
    ) -> dict[str, Any]:
        # The first attempt runs outside stamina: setting up a retry context costs more than
        # a pooled request to a local server, and most requests never need it.
        started = time.monotonic()
        try:
            return await self._send(method, url, content)
        except SirayError as exc:
            policy = self.retry
            hook = _backoff_hook(retryable, policy, started)
            if policy.attempts < 2 or hook(exc) is False:
                raise
            first: SirayError | None = exc
        # Marks stamina's retry log records as ours (see _QuietRetries).
        token = _retrying.set(True)
        try:
            async for attempt in stamina.retry_context(
                on=hook,
                attempts=policy.attempts,
                timeout=policy.timeout,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
            ):
                with attempt:
                    if first is not None:
                        # Hand stamina the first attempt's failure, so that it computes the
                        # first backoff (or honours Retry-After) and counts the attempt.
                        replay, first = first, None
                        raise replay
                    return await self._send(method, url, content)
        finally:
            _retrying.reset(token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, url: str, content: bytes | None) -> dict[str, Any]:
        """One HTTP exchange, mapped to a JSON body or a typed error."""
        http = self._client()
        try:
            if content is None:
                response = await http.request(method, url)
            else:
                response = await http.request(
                    method, url, content=content, headers={"Content-Type": "application/json"}
                )
        except httpx.TransportError as exc:
            raise _transport_error(exc, method, url, self._key) from None
        except httpx.DecodingError:
            raise UnexpectedResponseError(
                "the response body could not be decoded", status_code=None
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            # Anything else httpx or the socket layer raises: still no HTTP answer.
            detail = _excerpt(redact(str(exc), self._key)) or "no details"
            raise TransportError(
                f"{method} {url}: {type(exc).__name__} ({detail})", sent=None
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                body = json.loads(response.content, parse_constant=_reject_constant)
            except ValueError:
                text = _excerpt(redact(response.text, self._key))
                raise UnexpectedResponseError(
                    f"the response is not JSON: {text or '(empty body)'}", status_code=status
                ) from None
            if not isinstance(body, dict):
                raise UnexpectedResponseError(
                    "the response is JSON but not an object", status_code=status
                )
            code = body.get("code")
            if code != "success":
                message = _text(body.get("message")) or "no message"
                code_text = _text(code)
                raise UnexpectedResponseError(
                    f"the API answered code {redact(repr(code), self._key)}: "
                    f"{_excerpt(redact(message, self._key))}",
                    status_code=status,
                    code=None if code_text is None else redact(code_text, self._key),
                )
            return body
        raise self._status_error(response)

    @property
    def _key(self) -> Secret | None:
        return self._settings.api_key

    def _status_error(self, response: httpx.Response) -> APIError:
        status = response.status_code
        message, *fields = _error_details(response, self._key)
        # The server's type, code and param end up in the error's attributes: mask them too.
        error_type, code, param = (None if f is None else redact(f, self._key) for f in fields)
        common: dict[str, Any] = {"status_code": status, "error_type": error_type, "code": code}
        if status in (400, 422):
            return BadRequestError(message, field=param, **common)
        if status == 401:
            if self._key is None:
                message += " (no API key was sent)"
            return AuthenticationError(message, **common)
        if status == 402:
            return PaymentRequiredError(message, **common)
        if status == 403:
            return ForbiddenError(message, **common)
        if status == 404:
            return NotFoundError(message, **common)
        if status in (429, 503):
            common["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return RateLimitError(message, **common)
        if status == 408 or status >= 500:
            return ServerError(message, **common)
        if 300 <= status < 400:
            where = response.headers.get("Location", "elsewhere")
            return UnexpectedResponseError(f"redirected to {_excerpt(where)}", **common)
        return APIError(message, **common)


def _reject_constant(name: str) -> float:
    """``json.loads`` hook: NaN and Infinity are not JSON, and no API field may hold one."""
    raise ValueError(f"{name} is not a JSON value")


def _transport_error(
    exc: httpx.TransportError, method: str, url: str, secret: Secret | None = None
) -> TransportError:
    """Map an httpx failure, recording whether the request can have reached the server.

    httpx's text can quote the request's headers (``Illegal header value b'Bearer ...'``),
    so it is redacted before it is shortened (shortening first could cut the key in half).
    """
    target = f"{method} {url}"
    detail = _excerpt(redact(str(exc), secret))
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportError(f"{target}: timed out while connecting", sent=False)
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"{target}: could not connect ({detail})", sent=False)
    if isinstance(exc, httpx.PoolTimeout):
        return TransportError(f"{target}: no free connection in the pool", sent=False)
    if isinstance(exc, httpx.ReadTimeout):
        return TransportError(f"{target}: timed out waiting for the answer", sent=True)
    if isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError)):
        return TransportError(
            f"{target}: the connection broke before the answer ({detail})", sent=True
        )
    # Write errors, proxy failures and headers h11 refuses: part of the request may have
    # gone out.
    return TransportError(f"{target}: {type(exc).__name__} ({detail})", sent=None)


def _build_request(request: AnyRequest | None, fields: dict[str, Any]) -> AnyRequest:
    if request is None:
        model = fields.get("model", MODEL_ID)
        if model == MODEL_ID or not isinstance(model, str):
            return ImageRequest(**fields)
        # Another model: its fields come from the registry this process knows (no network).
        from .registry import request_for

        return request_for(model, **{k: v for k, v in fields.items() if k != "model"})
    if not isinstance(request, (ImageRequest, ModelRequest)):
        raise TypeError(f"expected an ImageRequest or a ModelRequest, not {type(request).__name__}")
    return request.replace(**fields) if fields else request


# --- the sync facade ---------------------------------------------------------------------


class _LoopThread:
    """A private event loop on a daemon thread; runs coroutines for blocking callers."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="siray-widgets-client", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a SirayClient method was called from its own callback; use AsyncSirayClient "
                "with an async on_update instead"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C or an error while blocked: stop the coroutine too
            raise

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


_DONE: Final = object()


class SirayClient:
    """Blocking facade over :class:`AsyncSirayClient`, for scripts and notebook cells.

    Its coroutines run on a private event-loop thread, so it also works where a loop is
    already running (Jupyter). ``on_update`` callbacks run in the caller's thread.
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        poll: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._async = AsyncSirayClient(
            api_key, base_url, timeout=timeout, poll=poll, retry=retry, transport=transport
        )
        self._runner: _LoopThread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def base_url(self) -> str:
        return self._async.base_url

    @property
    def sandbox(self) -> bool:
        """True when requests go to the embedded offline sandbox."""
        return self._async.sandbox

    @property
    def has_key(self) -> bool:
        return self._async.has_key

    @property
    def summary(self) -> str:
        """One human line: where requests go and whether a key is used."""
        return self._async.summary

    @property
    def poll(self) -> PollSchedule:
        return self._async.poll

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncSirayClient", "SirayClient", 1)

    def _thread(self) -> _LoopThread:
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("this client is closed; create a new one")
                if self._runner is None:
                    self._runner = _LoopThread()
                runner = self._runner
        return runner

    def submit(self, request: AnyRequest | None = None, /, **fields: Any) -> str:
        """Create a task; return its id. See :meth:`AsyncSirayClient.submit`."""
        request = _build_request(request, fields)  # validate here, in the caller's thread
        return self._thread().run(self._async.submit(request))

    def get_task(self, task_id: str) -> Task:
        """One reading of a task's state."""
        return self._thread().run(self._async.get_task(task_id))

    def wait(
        self,
        task_id: str,
        *,
        on_update: OnUpdate | None = None,
        timeout: float | None = None,
        poll: PollSchedule | None = None,
    ) -> Task:
        """Poll until the task ends. See :meth:`AsyncSirayClient.wait`."""
        runner = self._thread()
        if on_update is None:
            return runner.run(self._async.wait(task_id, timeout=timeout, poll=poll))
        # Readings travel through a queue so that the callback runs here, in the caller's
        # thread (where widgets and prints belong), not on the private loop.
        updates: queue.SimpleQueue[object] = queue.SimpleQueue()
        future = runner.submit(
            self._async.wait(task_id, on_update=updates.put, timeout=timeout, poll=poll)
        )
        future.add_done_callback(lambda _: updates.put(_DONE))
        try:
            while (item := updates.get()) is not _DONE:
                assert isinstance(item, Task)
                result = on_update(item)
                if inspect.isawaitable(result):
                    runner.run(_await(result))
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def generate(
        self,
        request: AnyRequest | None = None,
        /,
        *,
        on_update: OnUpdate | None = None,
        timeout: float | None = None,
        poll: PollSchedule | None = None,
        **fields: Any,
    ) -> Task:
        """Submit and wait: the finished task."""
        task_id = self.submit(request, **fields)
        return self.wait(task_id, on_update=on_update, timeout=timeout, poll=poll)

    def close(self) -> None:
        """Close the connection pool and stop the private loop. Safe to call twice."""
        with self._lock:
            runner, self._runner = self._runner, None
            self._closed = True
        if runner is not None:
            try:
                runner.run(self._async.aclose())
            finally:
                runner.stop()

    def __enter__(self) -> SirayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable
