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
import contextlib
import contextvars
import inspect
import json
import logging
import math
import queue
import re
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypeVar, cast
from urllib.parse import quote

import httpx
import stamina

from . import __version__
from .config import MIN_REDACTED_LENGTH, Secret, Settings, mentions, redact, resolve
from .errors import (
    WORKSHOP_ERROR_CODES,
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
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
    UnknownModelError,
    WaitTimeoutError,
)
from .quota import ME_PATH, Quota
from .schema import CREATE_PATH, MODEL_ID, TASK_PATH, AnyRequest, ImageRequest, ModelRequest
from .task import Task, TaskStatus, shown, task_id_problem

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "AsyncSirayClient",
    "PollSchedule",
    "RetryPolicy",
    "RunHooks",
    "RunObserver",
    "SirayClient",
]

logger = logging.getLogger("siray_widgets")

T = TypeVar("T")
#: Called with each new reading of a task; may be a plain function or a coroutine function.
OnUpdate = Callable[[Task], object]


class RunObserver(Protocol):
    """Follows one ``generate()`` run (the run store's recorder is one)."""

    def submitted(self, task_id: str) -> None: ...
    def reading(self, task: Task) -> None: ...
    def finished(self, outcome: Task | BaseException | None) -> None: ...


class RunHooks(Protocol):
    """Gives an observer for each ``generate()`` run, or None to leave it unobserved.

    ``scrub`` masks this client's key in a text (for error messages worth keeping). The client
    knows nothing of where runs are recorded: the layer above passes hooks in (``hooks=``) or
    sets :data:`default_hooks` (``siray_widgets`` sets it to the run store's recorder when the
    client is imported from the package). Observer errors are logged, never raised.
    """

    def start_run(self, request: AnyRequest, scrub: Callable[[str], str]) -> RunObserver | None: ...


#: Hooks of clients made without ``hooks=`` (None: runs are not observed).
default_hooks: RunHooks | None = None

#: Connecting should be quick; reading gets longer because the create call does real work.
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
#: The most one HTTP exchange may take, answer included, however the server paces its bytes
#: (httpx's timeouts are per read: a server sending a byte a second never trips them).
DEFAULT_DEADLINE: Final = 60.0
#: How long :meth:`AsyncSirayClient.wait` waits for a task by default (pass ``timeout=`` or
#: ``wait_timeout=`` to wait longer; ``math.inf`` waits for ever).
DEFAULT_WAIT_TIMEOUT: Final = 900.0

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


# --- keys in log records (httpx and httpcore quote server text) ----------------------------

_live_secrets: weakref.WeakSet[Secret] = weakref.WeakSet()
_live_lock = threading.Lock()
#: The loggers that may quote server text (reason phrases, headers such as a redirect's
#: ``Location``) or request data. A logger's filters do not apply to records of its children,
#: so each of httpcore's loggers is listed.
LOGGERS_FILTERED: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "stamina",
    "siray_widgets",
)


def register_secret(secret: Secret) -> None:
    """Mask ``secret`` in every record of :data:`LOGGERS_FILTERED` while it is alive.

    The client registers its key when it opens a connection pool. Held weakly: a key
    forgotten by every client stops being looked for.
    """
    if len(secret.reveal()) >= MIN_REDACTED_LENGTH:
        with _live_lock:
            _live_secrets.add(secret)
        _install_log_filter()


class RedactingFilter(logging.Filter):
    """A logging filter that masks every registered key in a record's text (never drops one).

    The record's message is formatted once, masked, and stored without arguments, so that no
    handler can format the key back in from ``record.args``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        with _live_lock:
            secrets = list(_live_secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format: leave it to the handler's error path
            return True
        masked = message
        for secret in secrets:
            masked = redact(masked, secret)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER: Final = RedactingFilter()
_installed = False


def _install_log_filter() -> None:
    global _installed
    if _installed:
        return
    with _live_lock:
        if not _installed:
            for name in LOGGERS_FILTERED:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True


# --- schedules and policies --------------------------------------------------------------


@dataclass(frozen=True)
class PollSchedule:
    """When to ask for a task's status again.

    The defaults follow Siray's guidance (every 3 to 5 s): the first gap is ``initial``; while
    nothing changes the gap grows by ``growth`` up to ``maximum``; right after the status or
    progress moves it drops back to ``after_change``. Tests use tiny values.

    The live service can say SUCCESS a moment before it fills ``outputs``: such readings are
    polled through for at most ``outputs_grace`` seconds, then the wait ends in an error.
    """

    initial: float = 3.0
    maximum: float = 5.0
    after_change: float = 3.0
    growth: float = 1.25
    outputs_grace: float = 30.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "after_change", "outputs_grace"):
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

#: Longest server text looked at when making an excerpt (the rest is never parsed).
_EXCERPT_INPUT = 32 * 1024
_EXCERPT_LIMIT = 200
# Linear: a tag cannot run past the next "<", so a page of unmatched "<" costs one pass
# (``<[^>]*>`` rescanned to the end from every "<": 28 s for a 150 KB page).
_TAG = re.compile(r"<[^<>]*>")
_SPACE = re.compile(r"\s+")
# C0 and C1 controls and DEL: server text never needs them, a terminal obeys them.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _excerpt(text: str, limit: int = _EXCERPT_LIMIT, *, markup: bool | None = None) -> str:
    """A short single line from a plain-text or HTML error page.

    Only the first :data:`_EXCERPT_INPUT` characters are read. ``markup``: whether the text is
    an HTML page (its ``<title>`` is the excerpt, tags are dropped); None guesses from the
    first character, so that a plain message such as ``Bearer <key>`` keeps its brackets.
    """
    text = text[:_EXCERPT_INPUT]
    if markup is None:
        markup = text.lstrip()[:1] == "<"
    if markup:
        lower = text.lower()
        start = lower.find("<title")
        end = lower.find(">", start) if start >= 0 else -1
        stop = lower.find("</title", end) if end >= 0 else -1
        text = text[end + 1 : stop] if stop >= 0 else _TAG.sub(" ", text)
    text = _SPACE.sub(" ", _CONTROLS.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: The largest answer body read from the API (a status answer is well under 10 KB).
MAX_ANSWER_BYTES = 1024 * 1024
#: JSON deeper than this is refused (the API's answers are three levels deep).
_MAX_DEPTH = 32
#: Integers longer than this are refused (Python refuses to print more than 4,300 digits).
_MAX_INT_DIGITS = 40


class _BadJSON(ValueError):
    """The body is not JSON this client will read; the message says why."""


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise _BadJSON(f"it holds an integer of {digits} digits")
    return int(text)


def _load_json(content: bytes) -> Any:
    """Parse a body as JSON, refusing what no API answer holds; raises :class:`_BadJSON`.

    NaN and Infinity, integers of absurd length, and nesting deeper than :data:`_MAX_DEPTH`
    are refused, so that nothing later (``repr``, recursion) can fail on them.
    """
    if not content:
        raise _BadJSON("(empty body)")
    try:
        value = json.loads(content, parse_constant=_reject_constant, parse_int=_parse_int)
    except _BadJSON:
        raise
    except RecursionError:
        raise _BadJSON("it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8
        raise _BadJSON(str(exc).splitlines()[0][:100] if str(exc) else "invalid") from None
    if content.count(b"[") + content.count(b"{") <= _MAX_DEPTH:
        return value  # cannot be nested deeper than that: no need to walk it
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth >= _MAX_DEPTH:
            raise _BadJSON(f"it is nested more than {_MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)
    return value


def _redact_json(value: Any, secret: Secret | None) -> Any:
    """``value`` (parsed JSON, at most :data:`_MAX_DEPTH` deep) with the key masked in every
    string, keys of objects included: what reaches a Task, a trait or a notebook is clean."""
    if secret is None:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [_redact_json(item, secret) for item in value]
    if isinstance(value, dict):
        return {redact(k, secret): _redact_json(v, secret) for k, v in value.items()}
    return value


def _may_hold_key(content: bytes, secret: Secret | None) -> bool:
    """Whether a JSON answer's strings might hold the key: the common answer, which does
    not, skips the walk through every string (a fifth of ``get_task``'s own time)."""
    if secret is None:
        return False
    if b"\\" in content:
        return True  # a JSON escape can spell the key in characters the raw text lacks
    return mentions(content.decode("utf-8", "replace"), secret)


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, read whole (within :data:`MAX_ANSWER_BYTES`)."""

    status_code: int
    reason: str
    headers: httpx.Headers
    content: bytes


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
    answer: _Answer, secret: Secret | None = None
) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, code, param) from an error body: OpenAI-style JSON, plain text or HTML.

    The message has the key masked (see :func:`config.redact`) before it is shortened, so that a
    cut cannot leave half of an echoed key.
    """
    message: str | None = None
    error_type = code = param = None
    try:
        body = _redact_json(_load_json(answer.content), secret)
    except _BadJSON:
        body = None
        if answer.content:
            text = redact(answer.content.decode("utf-8", "replace"), secret)
            message = _excerpt(text)
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
        message = json.dumps(body)[:_EXCERPT_INPUT]
    if message:
        message = _excerpt(redact(message, secret), markup=False)
    error_type, code, param = (
        None if f is None else _excerpt(f, 100, markup=False) for f in (error_type, code, param)
    )
    reason = _excerpt(redact(answer.reason, secret), markup=False)
    return (message or reason or "no error message", error_type, code, param)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else shown(value, 100)


# --- the async client --------------------------------------------------------------------


class AsyncSirayClient:
    """Async client for the Siray niji 7 image API.

    ``api_key`` and ``base_url`` fall back to ``SIRAY_API_KEY`` and ``SIRAY_BASE_URL``; with
    neither anywhere, requests go to the embedded offline sandbox (see :attr:`sandbox`).

    Every exchange is bounded: ``timeout`` per network step (httpx's), ``deadline`` seconds
    for a whole exchange however slowly the server sends, :data:`MAX_ANSWER_BYTES` of answer,
    and :meth:`wait` gives up after ``wait_timeout`` seconds unless told otherwise.

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
        deadline: float | None = DEFAULT_DEADLINE,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        poll: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        hooks: RunHooks | Literal[False] | None = None,
    ) -> None:
        settings = resolve(api_key, base_url)  # checks the key and the base URL
        try:
            httpx.URL(settings.base_url + CREATE_PATH)
        except httpx.InvalidURL as exc:  # what urlsplit lets through and httpx does not
            raise ConfigurationError(
                f"base URL {settings.base_url!r} is not a valid URL ({exc})"
            ) from None
        for name, value in (("deadline", deadline), ("wait_timeout", wait_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value!r} must be a positive number of seconds or None")
        self._settings: Settings = settings
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        #: Seconds one HTTP exchange may take in all (None: no limit beyond ``timeout``).
        self.deadline: float | None = deadline
        #: Seconds :meth:`wait` waits when not given a ``timeout`` (None: no limit).
        self.wait_timeout: float | None = wait_timeout
        self.poll: PollSchedule = poll or (
            PollSchedule.local() if settings.sandbox else PollSchedule()
        )
        self.retry: RetryPolicy = retry or RetryPolicy()
        self._transport = transport
        #: Observes each generate() run: None = :data:`default_hooks`, False = nothing.
        self.hooks = hooks
        self._create_url = settings.base_url + CREATE_PATH
        self._task_url = settings.base_url + _TASK_PREFIX
        # Created on first use, inside the loop that uses it: httpx's pool belongs to one loop.
        self._pool: _Pool | None = None
        self._closed = False
        if settings.api_key is not None:
            register_secret(settings.api_key)  # masked in httpx's and httpcore's log records
        # An unclosed client's pool is closed when the client is collected (on its loop).
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._quota: Quota | None = None

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

    @property
    def quota(self) -> Quota | None:
        """What a workshop proxy last said this participant has left (None: not a proxy, or
        nothing asked yet; :meth:`refresh_quota` asks). ``quota.describe()`` is one line."""
        return self._quota

    async def refresh_quota(self) -> Quota | None:
        """Ask the server for this participant's quota; None when it is not a workshop proxy."""
        try:
            body = await self._call("GET", self.base_url + ME_PATH, None, _retryable_query)
        except (NotFoundError, UnexpectedResponseError):
            return None
        quota = Quota.from_json(body.get("data"))
        self._quota = quota or self._quota
        return quota

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, sandbox={self.sandbox}, "
            f"key={self._settings.key_source})"
        )

    # -- lifecycle --

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and pool.loop is loop and not pool.closed:
            return pool.http
        if self._closed:
            raise ClientClosedError()
        # First use, or use from a new loop (a second asyncio.run): the old pool's
        # connections belong to the old loop and cannot be reused. Its loop closed it when
        # that loop shut down (see _Pool); if that loop still runs, it is closed there.
        if pool is not None:
            pool.close_soon()
        headers = {"Accept": "application/json", "User-Agent": f"siray-widgets/{__version__}"}
        if self._settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self._settings.api_key.reveal()}"
        http = httpx.AsyncClient(
            headers=headers,
            timeout=self._timeout,
            transport=self._transport,
            # Proxies from the environment are for the internet, not for the local sandbox.
            trust_env=not self._settings.sandbox,
        )
        self._pool = _Pool(http, loop)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _Pool.close_soon, self._pool)
        return http

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call twice."""
        self._closed = True
        pool, self._pool = self._pool, None
        if self._finalizer is not None:
            self._finalizer.detach()
        if pool is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - aclose is a coroutine
            running = None
        if pool.loop is running:
            await pool.aclose()
        else:
            pool.close_soon()  # its own loop closes it (or closed it when it shut down)

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
        The answer may hold the id under ``data`` (as documented) or at the top level (as
        some of the live service's answers do); anything else is an
        :class:`UnexpectedResponseError`.
        """
        request = _build_request(request, fields)
        body = await self._call(
            "POST", self._create_url, request.to_json().encode("utf-8"), _retryable_create
        )
        data = body.get("data")
        if isinstance(data, dict) and "task_id" in data:
            task_id = data["task_id"]
        elif "task_id" in body:
            task_id = body["task_id"]
        else:
            raise UnexpectedResponseError(
                "the create response has no task id (neither 'data.task_id' nor a top-level "
                "'task_id')",
                status_code=200,
            )
        problem = task_id_problem(task_id)
        if problem is not None:
            raise UnexpectedResponseError(
                f"the create response's task id {shown(task_id)} {problem}", status_code=200
            )
        logger.debug("created task %s", task_id)
        return str(task_id)

    async def get_task(self, task_id: str) -> Task:
        """One reading of a task's state.

        The id travels as one URL path segment, percent-encoded; an id that cannot be one
        (empty, ``.`` or ``..``, whitespace or control characters, absurdly long) is a
        ``ValueError`` before anything is sent.
        """
        problem = task_id_problem(task_id)
        if problem is not None:
            raise ValueError(f"task_id {shown(task_id)} {problem}")
        body = await self._call(
            "GET", self._task_url + quote(task_id, safe=""), None, _retryable_query
        )
        data = body.get("data")
        if isinstance(data, dict):
            found: Any = data
        elif "task_id" in body or "status" in body:
            found = body  # flat: the task's fields at the top level
        else:
            raise UnexpectedResponseError(
                "the status response holds no task (neither a 'data' object nor top-level "
                "'task_id' and 'status')",
                status_code=200,
            )
        task = Task.from_api(found)
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
        """Poll until the task ends; return the SUCCESS reading (with its outputs).

        ``on_update`` gets every reading that differs from the previous one (the first one
        included), FAILURE too. Raises :class:`TaskFailedError` on FAILURE and
        :class:`WaitTimeoutError` after ``timeout`` seconds (default: the client's
        ``wait_timeout``; ``math.inf`` waits for ever; the task keeps running on the
        server). Cancelling the awaiting task stops polling at once.
        """
        if timeout is None:
            timeout = self.wait_timeout
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout={timeout!r} must be a positive number of seconds")
        seen: list[Task] = []
        polling = self._poll(task_id, on_update, poll or self.poll, seen)
        if timeout is None or math.isinf(timeout):
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
        empty_since: float | None = None  # first SUCCESS reading without outputs
        loop = asyncio.get_running_loop()
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
                if task.outputs:
                    return task
                # The live service can say SUCCESS before it fills outputs: poll on, a while.
                now = loop.time()
                empty_since = now if empty_since is None else empty_since
                if now - empty_since >= schedule.outputs_grace:
                    raise UnexpectedResponseError(
                        f"task {task_id} reported SUCCESS but no image URLs for "
                        f"{schedule.outputs_grace:g} s",
                        status_code=200,
                    )
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
        """Submit and wait: the finished task (``task.outputs`` holds the image URLs).

        The run is shown to the client's hooks (see :class:`RunHooks`).
        """
        request = _build_request(request, fields)
        observer = _observer(self.hooks, request, self._key, self.base_url)
        if observer is None:
            task_id = await self.submit(request)
            return await self.wait(task_id, on_update=on_update, timeout=timeout, poll=poll)
        try:
            task_id = await self.submit(request)
            _notify(observer.submitted, task_id)
            task = await self.wait(
                task_id, on_update=_observed(observer, on_update), timeout=timeout, poll=poll
            )
        except BaseException as exc:
            _notify(observer.finished, None if isinstance(exc, asyncio.CancelledError) else exc)
            raise
        _notify(observer.finished, task)
        return task

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
        """One HTTP exchange, within the deadline, mapped to a JSON object or a typed error."""
        answer = await _within(self.deadline, self._exchange(method, url, content), method, url)
        self._quota = Quota.from_headers(answer.headers) or self._quota  # workshop proxies
        status = answer.status_code
        if not 200 <= status < 300:
            raise self._status_error(answer)
        try:
            body = _load_json(answer.content)
            if _may_hold_key(answer.content, self._key):
                body = _redact_json(body, self._key)
        except _BadJSON as exc:
            detail = str(exc)
            if detail.startswith("Expecting") or detail.startswith("(empty"):
                text = _excerpt(redact(answer.content.decode("utf-8", "replace"), self._key))
                detail = text or "(empty body)"
            raise UnexpectedResponseError(
                f"the response is not JSON: {detail}", status_code=status
            ) from None
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                "the response is JSON but not an object", status_code=status
            )
        # A missing code is read as success: the live service's flat answers may have none.
        code = body.get("code", "success")
        if code != "success":
            message = _text(body.get("message")) or "no message"
            code_text = _text(code)
            raise UnexpectedResponseError(
                f"the API answered code {shown(code)}: {_excerpt(message, markup=False)}",
                status_code=status,
                code=None if code_text is None else _excerpt(code_text, 100, markup=False),
            )
        return body

    async def _exchange(self, method: str, url: str, content: bytes | None) -> _Answer:
        """Send one request and read the whole answer, at most :data:`MAX_ANSWER_BYTES`."""
        http = self._client()
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            request = http.build_request(method, url, content=content, headers=headers)
            response = await http.send(request, stream=True)
            try:
                declared = response.headers.get("Content-Length", "")
                if len(declared) > 12 or (declared.isdigit() and int(declared) > MAX_ANSWER_BYTES):
                    raise _too_big(response.status_code)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise _too_big(response.status_code)
                    chunks.append(chunk)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise _transport_error(exc, method, url, self._key) from None
        except httpx.DecodingError:
            raise UnexpectedResponseError(
                "the response body could not be decoded", status_code=None
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            # Anything else httpx, h11 or the socket layer raises: still no usable answer.
            detail = _excerpt(redact(str(exc), self._key), markup=False) or "no details"
            raise TransportError(
                f"{method} {url}: {type(exc).__name__} ({detail})", sent=None
            ) from None
        return _Answer(
            response.status_code, response.reason_phrase, response.headers, b"".join(chunks)
        )

    @property
    def _key(self) -> Secret | None:
        return self._settings.api_key

    def _status_error(self, answer: _Answer) -> APIError:
        status = answer.status_code
        message, error_type, code, param = _error_details(answer, self._key)
        common: dict[str, Any] = {"status_code": status, "error_type": error_type, "code": code}
        if code == "model_not_found":
            # The live service says 503 for an unknown model: not passing, never retried.
            return UnknownModelError(message, **common)
        workshop = WORKSHOP_ERROR_CODES.get(code or "")
        if workshop is not None and status in (402, 403, 429):  # a workshop proxy's refusal
            return workshop(message, **common)
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
            common["retry_after"] = parse_retry_after(answer.headers.get("Retry-After"))
        if status == 429:
            return RateLimitError(message, **common)
        if status == 408 or status >= 500:
            return ServerError(message, **common)
        if 300 <= status < 400:
            where = answer.headers.get("Location", "elsewhere")
            shown_where = _excerpt(redact(where, self._key), markup=False)
            return UnexpectedResponseError(f"redirected to {shown_where}", **common)
        return APIError(message, **common)


def _too_big(status: int) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"the answer is larger than {MAX_ANSWER_BYTES // 1024} KB; it was not read",
        status_code=status,
    )


async def _within(seconds: float | None, work: Coroutine[Any, Any, T], method: str, url: str) -> T:
    """Await ``work``, giving up after ``seconds`` with a :class:`TransportError`."""
    if seconds is None:
        return await work
    if sys.version_info >= (3, 11):
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await work
        except TimeoutError:
            if not scope.expired():
                raise
    else:  # pragma: no cover - Python 3.10
        try:
            return await asyncio.wait_for(work, seconds)
        except asyncio.TimeoutError:
            pass
    raise TransportError(
        f"{method} {url}: no complete answer within {seconds:g} s", sent=True
    ) from None


class _Pool:
    """One httpx pool and the loop it belongs to.

    A loop that shuts down the usual way (``asyncio.run`` ending) closes the pool first: a
    guard async generator, started on that loop, is finalized by the loop's
    ``shutdown_asyncgens`` and closes the pool there, while the loop still runs. Without it
    the pool's sockets would stay open until collected ("unclosed transport"), and a later
    ``aclose()`` could only fail with "Event loop is closed".
    """

    def __init__(self, http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.http = http
        self.loop = loop
        self.closed = False
        self._guard = self._watch()
        # The first step registers the generator with the running loop and runs it to its
        # yield at once (nothing in it awaits before that).
        step = cast("Coroutine[Any, Any, None]", self._guard.__anext__())
        with contextlib.suppress(StopIteration):
            step.send(None)

    async def _watch(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self.http.aclose()

    def close_soon(self) -> None:
        """Close from anywhere: on the pool's loop if it still runs (else it already did)."""
        if self.closed:
            return
        loop = self.loop
        if loop.is_closed():
            self.closed = True  # shut down without shutdown_asyncgens: nothing left to do
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(self.aclose())
        else:
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(lambda: loop.create_task(self.aclose()))


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


def _observer(
    hooks: RunHooks | Literal[False] | None,
    request: AnyRequest,
    key: Secret | None,
    base_url: str,
) -> RunObserver | None:
    chosen = default_hooks if hooks is None else hooks
    if not chosen:
        return None
    try:
        observer = chosen.start_run(request, lambda text: redact(text, key))
        if observer is not None and hasattr(observer, "api_base_url"):
            observer.api_base_url = base_url  # which image URLs a run store may download
        return observer
    except Exception:
        logger.exception("run hooks failed to start observing a run")
        return None


def _notify(method: Callable[[Any], object], value: Any) -> None:
    """Tell an observer something; its failure is logged, never the run's."""
    try:
        method(value)
    except Exception:
        logger.exception("a run observer raised")


def _observed(observer: RunObserver, on_update: OnUpdate | None) -> OnUpdate:
    """``on_update`` that shows each reading to ``observer`` first."""

    def update(task: Task) -> object:
        _notify(observer.reading, task)
        return on_update(task) if on_update is not None else None

    return update


# --- the sync facade ---------------------------------------------------------------------


class _LoopThread:
    """A private event loop on a daemon thread; runs coroutines for blocking callers."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="siray-widgets-client", daemon=True
        )
        self._stopping = False
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a SirayClient method was called from its own callback; use AsyncSirayClient "
                "with an async on_update instead"
            )
        if self._stopping:
            coro.close()
            raise ClientClosedError()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def result(self, future: Future[T]) -> T:
        """``future.result()``, saying so plainly when :meth:`stop` cancelled the call."""
        try:
            return future.result()
        except CancelledError:
            if self._stopping:
                raise ClientClosedError(
                    "the client was closed (from another thread) while this call was waiting"
                ) from None
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = self.submit(coro)
        try:
            return self.result(future)
        except BaseException:
            future.cancel()  # Ctrl-C or an error while blocked: stop the coroutine too
            raise

    def stop(self, before: Coroutine[Any, Any, None] | None = None) -> None:
        """Cancel every call still running, await ``before`` (closing the pool), stop the loop.

        Callers blocked in :meth:`run` get a :class:`ClientClosedError` instead of waiting
        for ever. Safe from any thread, the loop's own included (then it does not wait).
        """
        self._stopping = True
        loop = self._loop

        async def shut_down() -> None:
            current = asyncio.current_task()
            calls = [t for t in asyncio.all_tasks() if t is not current]
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            if before is not None:
                with contextlib.suppress(Exception):
                    await before
            await loop.shutdown_asyncgens()

        if loop.is_closed():
            if before is not None:
                before.close()
            return
        if threading.current_thread() is self._thread:  # a finalizer run on this thread
            task = loop.create_task(shut_down())
            task.add_done_callback(lambda _: loop.stop())
            return
        done = asyncio.run_coroutine_threadsafe(shut_down(), loop)
        with contextlib.suppress(Exception):
            done.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            loop.close()


def _stop_unclosed(runner: _LoopThread, client: AsyncSirayClient) -> None:
    """Finalizer of a :class:`SirayClient` never closed: free its thread, loop and sockets."""
    with contextlib.suppress(Exception):
        runner.stop(client.aclose())


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
        deadline: float | None = DEFAULT_DEADLINE,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        poll: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        hooks: RunHooks | Literal[False] | None = None,
    ) -> None:
        self._async = AsyncSirayClient(
            api_key,
            base_url,
            timeout=timeout,
            deadline=deadline,
            wait_timeout=wait_timeout,
            poll=poll,
            retry=retry,
            transport=transport,
            hooks=hooks,
        )
        self._runner: _LoopThread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

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

    @property
    def quota(self) -> Quota | None:
        """What a workshop proxy last said this participant has left. See
        :attr:`AsyncSirayClient.quota`."""
        return self._async.quota

    def refresh_quota(self) -> Quota | None:
        """Ask the server for this participant's quota; None when it is not a workshop proxy."""
        return self._thread().run(self._async.refresh_quota())

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncSirayClient", "SirayClient", 1)

    def _thread(self) -> _LoopThread:
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._closed:
                    raise ClientClosedError()
                if self._runner is None:
                    self._runner = _LoopThread()
                    # Not closed by its user: the thread and the pool go when it is collected.
                    self._finalizer = weakref.finalize(
                        self, _stop_unclosed, self._runner, self._async
                    )
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
            return runner.result(future)
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
        """Submit and wait: the finished task (shown to the client's hooks, see
        :class:`RunHooks`; observers are called in this thread)."""
        request = _build_request(request, fields)
        observer = _observer(self._async.hooks, request, self._async._key, self._async.base_url)
        if observer is None:
            task_id = self.submit(request)
            return self.wait(task_id, on_update=on_update, timeout=timeout, poll=poll)
        try:
            task_id = self.submit(request)
            _notify(observer.submitted, task_id)
            task = self.wait(
                task_id, on_update=_observed(observer, on_update), timeout=timeout, poll=poll
            )
        except BaseException as exc:
            _notify(observer.finished, None if isinstance(exc, KeyboardInterrupt) else exc)
            raise
        _notify(observer.finished, task)
        return task

    def close(self) -> None:
        """Close the connection pool and stop the private loop. Safe to call twice."""
        with self._lock:
            runner, self._runner = self._runner, None
            self._closed = True
            finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        if runner is not None:
            # Calls still waiting in other threads end with a ClientClosedError.
            runner.stop(self._async.aclose())

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
