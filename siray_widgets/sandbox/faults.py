"""Fault injection: which requests and tasks go wrong, decided by seeded dice.

One :class:`Faults` per server. Every decision draws from a single ``random.Random`` under a
lock, so the same seed and the same sequence of requests give the same faults (concurrent
requests arrive in an order the sandbox cannot control; sequential clients are exact).
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass

from .settings import SandboxSettings

#: What a failing task says, as real services tend to phrase it.
FAIL_REASONS: tuple[str, ...] = (
    "moderation: the prompt was flagged by the content filter (sandbox fault injection)",
    "worker lost: the GPU worker stopped responding (sandbox fault injection)",
    "upstream timeout: generation took too long (sandbox fault injection)",
)


class Malformed(str, enum.Enum):
    """The ways a 200 answer's body can be broken."""

    NOT_JSON = "not_json"  # text/plain prose, as an error page of a proxy
    TRUNCATED = "truncated"  # JSON cut off mid-way
    NOT_SUCCESS = "not_success"  # valid JSON whose code is not "success"
    NO_DATA = "no_data"  # code "success" but the data object is empty


@dataclass(frozen=True)
class RequestFault:
    """An HTTP error to answer instead of the real response."""

    status: int  # 429, 500 or 503
    retry_after: int | None


@dataclass(frozen=True)
class TaskFate:
    """How a task ends, decided when it is submitted."""

    fail_reason: str | None = None
    stall_at: int | None = None


class Faults:
    """Seeded dice for one server."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()

    def _roll(self, share: float) -> bool:
        # No draw at all for a share of 0: adding one fault kind to a seeded sandbox does not
        # reshuffle the dice of the others.
        if share <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < share

    def _choice(self, options: tuple[str, ...]) -> str:
        with self._lock:
            return self._rng.choice(options)

    def request_fault(self) -> RequestFault | None:
        """Decide whether this API request is answered 429 or 5xx."""
        s = self.settings
        if self._roll(s.rate_limit_share):
            return RequestFault(429, s.retry_after)
        if self._roll(s.server_error_share):
            status = int(self._choice(("500", "503")))
            return RequestFault(status, s.retry_after if status == 503 else None)
        return None

    def task_fate(self) -> TaskFate:
        """Decide at submit time whether a task fails, stalls or succeeds."""
        s = self.settings
        if self._roll(s.failure_share):
            return TaskFate(fail_reason=self._choice(FAIL_REASONS))
        if s.stall_at is not None and self._roll(s.stall_share):
            return TaskFate(stall_at=s.stall_at)
        return TaskFate()

    def malformed(self) -> Malformed | None:
        """Decide whether this 200 answer gets a broken body, and how."""
        if not self._roll(self.settings.malformed_share):
            return None
        return Malformed(self._choice(tuple(m.value for m in Malformed)))
