"""Tasks the sandbox has accepted, and where each one is in its lifecycle.

A task's state is computed from the clock at read time (no background jobs): the lifecycle
NOT_START -> SUBMITTED -> QUEUED -> IN_PROGRESS -> SUCCESS is laid over ``duration`` seconds.
The store is thread-safe and bounded by count, by bytes and by age; to stay within its bounds
it forgets finished tasks only (oldest first), never one a client may still be polling.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..schema import ImageRequest
from ..task import IMAGES_PER_TASK

# Where each phase begins, as a share of the task's duration.
_SUBMITTED_AT = 0.1
_QUEUED_AT = 0.2
_STARTED_AT = 0.3
#: Progress at which a task that is going to fail does so.
FAIL_PROGRESS = 50
# How often (in adds) the whole store is swept for expired tasks.
_SWEEP_EVERY = 128


class StoreFullError(Exception):
    """No room for another task: every task held is still running."""


def new_task_id() -> str:
    """An id shaped like the API's (``image_`` and hex)."""
    return "image_" + secrets.token_hex(6)


@dataclass(frozen=True)
class TaskState:
    """A task at one instant, as the status endpoint reports it."""

    status: str
    progress: int
    start_time: int  # Unix seconds; 0 until it happens (the API's way)
    finish_time: int
    fail_reason: str

    @property
    def is_terminal(self) -> bool:
        return self.status in ("SUCCESS", "FAILURE")


@dataclass(frozen=True)
class TaskRecord:
    """One accepted task: the request, its fate and its timing."""

    task_id: str
    request: ImageRequest
    #: The seed the images are drawn with (a random one when the request says -1).
    image_seed: int
    submitted: float
    duration: float
    fail_reason: str | None = None
    stall_at: int | None = None

    def _at(self, share: float) -> float:
        return self.submitted + share * self.duration

    def _progress_at(self, now: float) -> int:
        if self.duration <= 0:
            return 100
        share = (now - self._at(_STARTED_AT)) / (self.duration * (1 - _STARTED_AT))
        # Rounded first: Unix times near 1.7e9 carry ~1e-7 s of float noise, which would make
        # a task exactly at 40% read 39%.
        return max(0, min(100, math.floor(round(share * 100, 4))))

    def _time_of_progress(self, progress: int) -> float:
        return self._at(_STARTED_AT + (1 - _STARTED_AT) * progress / 100)

    def state(self, now: float) -> TaskState:
        """Where the task is at ``now`` (Unix seconds)."""
        elapsed = now - self.submitted
        d = self.duration
        if d > 0 and elapsed < _STARTED_AT * d:
            status = (
                "NOT_START"
                if elapsed < _SUBMITTED_AT * d
                else "SUBMITTED"
                if elapsed < _QUEUED_AT * d
                else "QUEUED"
            )
            return TaskState(status, 0, 0, 0, "")
        start = int(self._at(_STARTED_AT))
        progress = self._progress_at(now)
        if self.fail_reason is not None and progress >= FAIL_PROGRESS:
            finish = int(self._time_of_progress(FAIL_PROGRESS))
            return TaskState("FAILURE", FAIL_PROGRESS, start, finish, self.fail_reason)
        if self.stall_at is not None and progress >= self.stall_at:
            return TaskState("IN_PROGRESS", self.stall_at, start, 0, "")
        if progress >= 100:
            return TaskState("SUCCESS", 100, start, int(self._at(1.0)), "")
        return TaskState("IN_PROGRESS", progress, start, 0, "")

    def finished_at(self) -> float | None:
        """When the task reaches a terminal state (None: never, it stalls)."""
        if self.fail_reason is not None:
            return self._time_of_progress(FAIL_PROGRESS)
        if self.stall_at is not None:
            return None
        return self._at(1.0)

    def to_api(self, now: float, base_url: str, *, live: bool = False) -> dict[str, Any]:
        """The ``data`` object of a status response.

        ``live``: with the live service's quirks. SUCCESS comes :func:`outputs_lag` seconds
        before its outputs, the outputs are redirect URLs, and ``fail_reason`` holds the first
        output URL on success.
        """
        state = self.state(now)
        outputs: list[str] = []
        fail_reason = state.fail_reason
        if state.status == "SUCCESS":
            url = redirect_url if live else image_url
            outputs = [url(base_url, self.task_id, n) for n in range(1, IMAGES_PER_TASK + 1)]
            if live:
                if now < self._at(1.0) + outputs_lag(self.duration):
                    outputs = []
                fail_reason = outputs[0] if outputs else ""
        return {
            "task_id": self.task_id,
            "status": state.status,
            "progress": f"{state.progress}%",
            "outputs": outputs,
            "fail_reason": fail_reason,
            "submit_time": int(self.submitted),
            "start_time": state.start_time,
            "finish_time": state.finish_time,
        }

    def weight(self) -> int:
        """Approximate bytes held, for the store's memory bound."""
        return 512 + len(self.request.prompt) + len(self.request.negative_prompt)


def image_url(base_url: str, task_id: str, number: int) -> str:
    """Public URL of image ``number`` (1-based) of a task, served by the same sandbox."""
    return f"{base_url.rstrip('/')}/sandbox/images/{task_id}/{number}.png"


def redirect_url(base_url: str, task_id: str, number: int) -> str:
    """The live service's kind of output URL: a redirect to the image (``/redirect/...``)."""
    return f"{base_url.rstrip('/')}/redirect/{task_id}/{number}"


def outputs_lag(duration: float) -> float:
    """With live quirks: seconds between SUCCESS and outputs being filled in."""
    return 0.1 + 0.1 * duration


class TaskStore:
    """Thread-safe, bounded map of task id -> :class:`TaskRecord`.

    Bounds: at most ``max_tasks`` tasks and ``max_bytes`` of request text. To make room the
    oldest *finished* tasks are forgotten (and any task ``ttl`` seconds after it finished);
    a task still running is never dropped: when only running tasks are left, :meth:`add`
    raises :class:`StoreFullError`. A task that stalls for ever counts as finished once it
    is ``ttl`` seconds old.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_tasks: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        ttl: float = 3600.0,
    ) -> None:
        self._clock = clock
        self.max_tasks = max_tasks
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._tasks: OrderedDict[str, TaskRecord] = OrderedDict()
        self._bytes = 0
        self._adds = 0
        self._lock = threading.Lock()

    def add(self, record: TaskRecord) -> None:
        """Keep ``record``; raise :class:`StoreFullError` if only running tasks could go."""
        with self._lock:
            now = self._clock()
            self._adds += 1
            if self._adds % _SWEEP_EVERY == 0:
                self._sweep(now)
            weight = record.weight()
            tasks, size = len(self._tasks) + 1, self._bytes + weight
            victims: list[str] = []
            for task_id, old in self._tasks.items():  # oldest first; stops once there is room
                if tasks <= self.max_tasks and size <= self.max_bytes:
                    break
                if self._evictable(old, now):
                    victims.append(task_id)
                    tasks, size = tasks - 1, size - old.weight()
            if tasks > self.max_tasks or size > self.max_bytes:
                raise StoreFullError(
                    f"the sandbox holds {len(self._tasks)} tasks that are still running"
                )
            for task_id in victims:
                self._remove(task_id)
            self._tasks[record.task_id] = record
            self._bytes += weight

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            record = self._tasks.get(task_id)
            if record is not None and self._expired(record, self._clock()):
                self._remove(task_id)
                return None
            return record

    def ids(self) -> list[str]:
        """Ids of the tasks held, oldest first."""
        with self._lock:
            return list(self._tasks)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    def _evictable(self, record: TaskRecord, now: float) -> bool:
        finished = record.finished_at()
        if finished is None:  # stalls for ever: abandoned once it is ttl seconds old
            return now - record.submitted > self.ttl
        return finished <= now

    def _expired(self, record: TaskRecord, now: float) -> bool:
        finished = record.finished_at()
        return finished is not None and now - finished > self.ttl

    def _remove(self, task_id: str) -> None:
        old = self._tasks.pop(task_id)
        self._bytes -= old.weight()

    def _sweep(self, now: float) -> None:
        for task_id in [t for t, r in self._tasks.items() if self._expired(r, now)]:
            self._remove(task_id)
