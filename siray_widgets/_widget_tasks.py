"""The widget's runs: an awaitable handle per Generate press, a private loop, error wording.

Kept apart from :mod:`siray_widgets.widget` so that the handle can be read (and tested) without
the widget's traits around it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import itertools
import sys
import threading
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._download import origin
from ._widget_snippets import is_local_url, midjourney_prompt
from .config import API_KEY_ENV, Secret, check_key, redact
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ParticipantPausedError,
    QuotaExceededError,
    SirayError,
    TaskFailedError,
    TokenExpiredError,
    ValidationError,
    WorkshopError,
)
from .schema import AnyRequest, ImageRequest
from .task import IMAGES_PER_TASK, Task, TaskStatus

if TYPE_CHECKING:
    from .session import Reservation

#: Where a run is in its life. "starting": the create call has not answered yet.
RunState = Literal["starting", "running", "success", "failure", "cancelled", "error"]
FINISHED_STATES: frozenset[str] = frozenset({"success", "failure", "cancelled", "error"})

_run_ids = itertools.count(1)


class Generation:
    """One Generate press: its request, its task as last seen, and an awaitable result.

    ``await generation`` gives the final :class:`~siray_widgets.task.Task` (or raises what
    stopped it: :class:`~siray_widgets.errors.TaskFailedError`, an API error, or
    :class:`asyncio.CancelledError` after :meth:`cancel`). It can be awaited from any event
    loop, or waited for with :meth:`result` from a thread that is not running it (there a
    cancelled run raises :class:`concurrent.futures.CancelledError`). Leaving it unawaited is
    fine: the run goes on in the background and reports to the widget. Giving up on an await
    (``asyncio.wait_for(generation, 5)`` timing out) does not stop the run: :meth:`cancel`
    does.
    """

    def __init__(self, request: AnyRequest, *, seed_random: bool = False) -> None:
        #: A short id, unique in this process (the front end names runs by it).
        self.id: str = f"run-{next(_run_ids)}"
        #: The request as sent (a snapshot: later changes to the widget do not touch it).
        #: Its seed is always concrete: the widget draws one when the seed box says random.
        self.request: AnyRequest = request
        #: Whether :attr:`seed` was drawn for this run (the seed box said "random").
        self.seed_random: bool = seed_random
        #: The exact body text sent.
        self.request_json: str = request.to_json()
        self.task_id: str | None = None
        #: The latest reading of the task, or None before the first one.
        self.task: Task | None = None
        self.state: RunState = "starting"
        #: Plain words about what went wrong and what to do; "" when nothing did.
        self.error: str = ""
        #: Plain words about a normal but notable end (cancelled); "" otherwise.
        self.note: str = ""
        self.started_at: float = time.time()
        self.finished_at: float | None = None
        # A concurrent future, not an asyncio one: it can be awaited from any loop and
        # waited for from any thread, and an unread exception in it logs nothing.
        self._future: concurrent.futures.Future[Task] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancel_requested = False
        #: Where the run's API is (set once its client exists): which images the kernel
        #: may fetch for the page depends on it (see :meth:`local_images`).
        self.api_base_url: str | None = None
        #: The run's estimated cost, held in the session until its task exists or not.
        self._charge: Reservation | None = None
        #: Whether its create request was started (a reservation is then settled by its
        #: outcome, not simply given back).
        self._submitted = False
        #: Records the run in the run store (set when its client exists; None when recording
        #: is off or failed). Its ``state`` says "stalled" when the run stopped moving.
        self.recorder: Any = None
        #: The request as a Midjourney prompt (defaults left out): what the run's button says.
        self.summary: str = midjourney_prompt(request) if isinstance(request, ImageRequest) else ""

    # -- reading --

    @property
    def done(self) -> bool:
        """Whether the run has ended, in any way."""
        return self.state in FINISHED_STATES

    @property
    def status(self) -> str:
        """The API status last seen ("" before the first reading)."""
        if self.task is not None:
            return self.task.status.value
        return TaskStatus.FAILURE.value if self.state == "failure" else ""

    @property
    def seed(self) -> int | None:
        """The seed this run sent (-1 only for a request made with an explicit -1; None for a
        model without a seed field, or with its seed left unset)."""
        seed = self.request.to_dict().get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    @property
    def progress(self) -> int:
        return self.task.progress if self.task is not None else 0

    @property
    def images(self) -> list[str]:
        """Output image URLs (empty until the task succeeds)."""
        if self.task is None or self.task.status is not TaskStatus.SUCCESS:
            return []
        return list(self.task.outputs)

    @property
    def stalled(self) -> bool:
        """Still followed, but its status and progress have not moved for a while (the run
        store's watchdog says so; "Keep waiting" or any movement ends it)."""
        return not self.done and getattr(self.recorder, "state", "") == "stalled"

    @property
    def history_id(self) -> int | None:
        """The run's row in the run store (None if it is not recorded)."""
        run_id = getattr(self.recorder, "run_id", None)
        return run_id if isinstance(run_id, int) else None

    @property
    def awaits_task_id(self) -> bool:
        """Still waiting for its task id, and not asked to stop: a Generate now would be a
        double click (a run being cancelled does not hold up the next one)."""
        return self.state == "starting" and not self._cancel_requested

    def local_images(self) -> list[str]:
        """The output URLs the kernel may fetch for the page (bytes for a remote browser).

        Only when the run's API is itself on this machine (the sandbox), only URLs of that
        same origin (scheme, host and port), and at most as many as a task makes: a remote
        API that names ``http://127.0.0.1:<port>/...`` gets nothing fetched.
        """
        base = self.api_base_url
        if base is None or not is_local_url(base):
            return []
        own = origin(base)
        return [url for url in dict.fromkeys(self.images) if origin(url) == own][:IMAGES_PER_TASK]

    def to_json(self) -> dict[str, Any]:
        """The run as the widget's ``tasks`` trait holds it (times in epoch milliseconds)."""
        run: dict[str, Any] = {
            "id": self.id,
            "task_id": self.task_id or "",
            "state": self.state,
            "status": self.status,
            "progress": self.progress,
            "outputs": self.images,
            "error": self.error,
            "note": self.note,
            "started_at": round(self.started_at * 1000),
            "finished_at": None if self.finished_at is None else round(self.finished_at * 1000),
            "request_json": self.request_json,
            "seed": self.seed,
            "seed_random": self.seed_random,
            "stalled": self.stalled,
            "history_id": self.history_id,
            "summary": self.summary,
        }
        if run["seed"] is None:  # nothing to show or reuse
            del run["seed"], run["seed_random"]
        return run

    def __repr__(self) -> str:
        parts = [f"id={self.id!r}", f"state={self.state!r}"]
        if self.task_id:
            parts.append(f"task_id={self.task_id!r}")
        if self.status:
            parts.append(f"status={self.status!r}")
        if self.error:
            parts.append(f"error={self.error!r}")
        return f"Generation({', '.join(parts)})"

    # -- waiting --

    def __await__(self) -> Generator[Any, None, Task]:
        # Each awaiter gets its own asyncio future fed from the shared one, and the shield
        # keeps an impatient awaiter (``asyncio.wait_for(g, 1)`` timing out) from cancelling
        # the shared result that every later ``await g`` and ``result()`` reads.
        return asyncio.shield(asyncio.wrap_future(self._future)).__await__()

    def result(self, timeout: float | None = None) -> Task:
        """Block until the run ends and return its final task (for scripts).

        Inside the event loop that runs it this would wait forever: use ``await`` there.
        """
        with contextlib.suppress(RuntimeError):
            if self._loop is not None and asyncio.get_running_loop() is self._loop:
                raise RuntimeError(
                    "Generation.result() would block the event loop that runs this task; "
                    "use `await generation` instead"
                )
        return self._future.result(timeout)

    def cancel(self) -> bool:
        """Stop polling (the task may still finish on the server). False if already over."""
        if self.done:
            return False
        self._cancel_requested = True
        loop = self._loop
        if loop is None:  # not launched yet: the launcher sees the flag
            return True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._cancel_now()
        else:
            try:
                loop.call_soon_threadsafe(self._cancel_now)
            except RuntimeError:  # that loop is closed: nothing runs the task any more
                return False
        return True

    def _cancel_now(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- used by the widget --

    def _bind(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
        self._loop = loop
        self._task = task
        if self._cancel_requested:
            task.cancel()

    def _settle(self, outcome: Task | BaseException | None) -> None:
        """Resolve the future once: a Task, an exception, or None for cancelled."""
        if self._future.done():
            return
        if outcome is None:
            self._future.cancel()
        elif isinstance(outcome, Task):
            self._future.set_result(outcome)
        else:
            self._future.set_exception(outcome)


class BackgroundLoop:
    """A private event loop on a daemon thread, for runs started where no loop is running.

    One per process, started on first use: plain scripts and synchronous tests get working
    background runs without the widget owning a thread each.
    """

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="siray-widgets-loop", daemon=True
                )
                thread.start()
                cls._loop = loop
            return cls._loop


def describe_error(
    exc: BaseException, secret: Secret | None = None, *, base_url: str | None = None
) -> str:
    """Plain words for what went wrong and what to do next; the key is never in them.

    ``secret`` is the key the request carried (None: none was sent), ``base_url`` where it
    went (None: the public API or the sandbox). Only the text that comes from the error (the
    server's words, the library's) is masked: the package's own words stay whole, even when
    the key is one of them.
    """

    def said(text: str) -> str:
        return redact(text, secret)

    if isinstance(exc, WorkshopError):
        text = _workshop_words(exc, said(exc.server_message))
    elif isinstance(exc, AuthenticationError):
        detail = f"HTTP {exc.status_code or 401}: {said(exc.server_message)}"
        if secret is None:
            where = f"The server at {base_url}" if base_url else "The API"
            text = (
                f"{where} asked for an API key ({detail}), and none was sent. Set "
                f"{API_KEY_ENV} or w.api_key to a key from your Siray dashboard (or paste one "
                "in the API key field)"
                + (", or set w.base_url = None to use the offline sandbox." if base_url else ".")
            )
        else:
            text = (
                f"The API refused the key ({detail}). Set {API_KEY_ENV} or w.api_key to a key "
                "from your Siray dashboard (or paste one in the API key field), or remove the "
                "key to use the offline sandbox."
            )
    elif isinstance(exc, TaskFailedError):
        text = describe_failure(exc.task_id, said(exc.fail_reason))
    elif isinstance(exc, ValidationError):
        text = f"{said(str(exc))} — change that value and press Generate again."
    elif isinstance(exc, (ValueError, TypeError)):
        # A setting the client refused (a base URL without http(s), a key with a line
        # break: a ConfigurationError, which is a SirayError too): the user can fix it.
        text = f"{said(str(exc))} — fix that setting and press Generate again."
    elif isinstance(exc, SirayError):
        text = said(str(exc))
    else:
        detail = said(str(exc)) or "no details"
        text = (
            f"Unexpected {type(exc).__name__}: {detail}. This is a bug in siray-widgets; "
            "please report it with the steps that led here."
        )
    return text


def _workshop_words(exc: WorkshopError, server: str) -> str:
    """What a workshop participant reads when the class proxy refuses a run."""
    said = server.rstrip(". ")
    if isinstance(exc, QuotaExceededError):
        return (
            f"Your workshop allowance is used up ({said}): ask the instructor to top it up. "
            "Nothing was sent."
        )
    if isinstance(exc, ParticipantPausedError):
        return (
            "The instructor has paused new tasks for you (runs already going finish). Wait "
            "until the class resumes, then press Generate again."
        )
    if isinstance(exc, TokenExpiredError):
        return (
            "Your workshop token has expired: ask the instructor for a new one and paste it in "
            "the API key field."
        )
    return f"The workshop proxy refused the run ({said}). {exc.hint}"


# Words in a fail_reason that say the request itself was the problem (moderation), or that
# the service was (the same request may well work when tried again).
_REQUEST_FAULT = ("moderat", "flagged", "content filter", "policy", "nsfw", "banned", "blocked")
_SERVICE_FAULT = (
    "timeout",
    "timed out",
    "too long",
    "worker",
    "gpu",
    "upstream",
    "overload",
    "capacity",
    "unavailable",
    "internal",
    "busy",
)


def describe_failure(task_id: str, fail_reason: str) -> str:
    """A FAILURE in plain words, with advice that fits its reason."""
    reason = fail_reason.strip() or "no reason given"
    low = reason.lower()
    if any(word in low for word in _REQUEST_FAULT):
        advice = "Rephrase the prompt (the service refused it), then generate again."
    elif any(word in low for word in _SERVICE_FAULT):
        advice = "The service had a problem, not your request: press Retry to send it again."
    else:
        advice = "Press Retry to send the same request again, or change the request."
    return f"Task {task_id} failed: {reason}. {advice}"


def key_problem(key: str) -> str | None:
    """Why ``key`` (already stripped) cannot be an API key, in plain words; None if it can.

    The rule is :func:`config.check_key`'s (printable ASCII, no whitespace): anything else
    cannot travel in an HTTP header, and the HTTP library would echo the key in its error.
    """
    try:
        check_key(key, hint="copy the key again from your Siray dashboard and paste just the key")
    except ConfigurationError as exc:
        return f"That API key was not used: {exc}."
    return None


#: Image types shown from bytes; never SVG (a downloaded SVG can run script).
IMAGE_TYPES: frozenset[str] = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: The largest image sent to the front end as bytes.
MAX_IMAGE_BYTES = 16 * 1024 * 1024
#: How many images the kernel downloads at once for the page.
FETCHES_AT_ONCE = 2


async def fetch_images(
    urls: Sequence[str], timeout: float = 15.0
) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Download images for the front end: ``([(url, type, bytes)], [urls that failed])``.

    For loopback URLs only (the sandbox's; :meth:`Generation.local_images` picks them), which
    a browser on another machine (JupyterHub, Binder, an SSH tunnel) cannot load: no key is
    sent and no proxy is used. At most :data:`FETCHES_AT_ONCE` at a time, each within
    ``timeout`` seconds in all. Redirects are followed only within the URL's own origin, and
    only bytes that are really a raster image, within :data:`MAX_IMAGE_BYTES`, are kept.

    The downloads run on the private :class:`BackgroundLoop`: a loop that ends while they
    are under way (``asyncio.run`` returning in a script) cancels this await, not the
    downloads, which finish (within ``timeout``) and close their connections there, instead
    of being cut off mid-connection with sockets left open.
    """
    work = asyncio.run_coroutine_threadsafe(_fetch_all(list(urls), timeout), BackgroundLoop.get())
    return await asyncio.shield(asyncio.wrap_future(work))


async def _fetch_all(
    urls: list[str], timeout: float
) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    if "httpx" not in sys.modules:  # ~70 ms the first time: not on an event loop
        await asyncio.to_thread(importlib.import_module, "httpx")
    import httpx

    from ._download import DownloadError, aread_capped, checked_image

    gate = asyncio.Semaphore(FETCHES_AT_ONCE)

    async def get(http: httpx.AsyncClient, url: str) -> tuple[str, str, bytes] | None:
        own = origin(url)
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            async with http.stream("GET", target) as response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    target = str(response.url.join(location))
                    if origin(target) != own:  # a redirect elsewhere: not for the kernel
                        return None
                    continue
                declared = response.headers.get("content-type", "").split(";")[0]
                if response.status_code != 200 or declared.strip().lower() not in IMAGE_TYPES:
                    return None
                data = await aread_capped(response, MAX_IMAGE_BYTES)
                return url, checked_image(url, data), data
        return None

    async def one(http: httpx.AsyncClient, url: str) -> tuple[str, str, bytes] | None:
        async with gate:
            try:
                return await asyncio.wait_for(get(http, url), timeout)
            except (httpx.HTTPError, httpx.InvalidURL, DownloadError, asyncio.TimeoutError):
                return None

    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
        results = await asyncio.gather(*(one(http, url) for url in urls))
    found = [r for r in results if r is not None]
    failed = [url for url, r in zip(urls, results, strict=True) if r is None]
    return found, failed


#: Redirects an image URL may take (the live service's outputs take one).
MAX_REDIRECTS = 3
