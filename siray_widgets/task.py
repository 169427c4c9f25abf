"""A task's state as the status endpoint reports it, in Python types."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import UnexpectedResponseError


class TaskStatus(str, enum.Enum):
    """The exact lifecycle states of a task, in order."""

    NOT_START = "NOT_START"
    SUBMITTED = "SUBMITTED"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILURE)

    def __str__(self) -> str:
        return self.value


_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%?\s*$")


def parse_progress(value: Any) -> int:
    """``"45%"`` -> 45. Also takes numbers; clamps to 0..100; NaN and infinities are errors."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise UnexpectedResponseError(f"progress {value!r} is not a percentage")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _PERCENT.match(str(value))
        if not match:
            raise UnexpectedResponseError(f"progress {value!r} is not a percentage")
        number = float(match.group(1))
    if not math.isfinite(number):
        raise UnexpectedResponseError(f"progress {value!r} is not a percentage")
    return max(0, min(100, int(number)))


def parse_time(value: Any) -> datetime | None:
    """Unix seconds -> aware UTC datetime; 0 or missing -> None (not happened yet)."""
    if value in (None, "", 0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnexpectedResponseError(f"time {value!r} is not Unix seconds")
    try:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(value)
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise UnexpectedResponseError(f"time {value!r} is not Unix seconds") from None


@dataclass(frozen=True)
class Task:
    """One reading of a task's state."""

    task_id: str
    status: TaskStatus
    progress: int = 0
    outputs: tuple[str, ...] = ()
    fail_reason: str = ""
    submit_time: datetime | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @classmethod
    def from_api(cls, data: Any) -> Task:
        """Build from the ``data`` object of a status response; raise on a malformed one."""
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError("the status response has no 'data' object")
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise UnexpectedResponseError("the status response has no 'data.task_id'")
        raw_status = data.get("status")
        try:
            status = TaskStatus(raw_status)
        except ValueError:
            raise UnexpectedResponseError(
                f"task {task_id} has an unknown status {raw_status!r}"
            ) from None
        outputs = data.get("outputs") or []
        if not isinstance(outputs, list) or not all(isinstance(u, str) for u in outputs):
            raise UnexpectedResponseError(f"task {task_id} has malformed 'outputs'")
        fail_reason = data.get("fail_reason") or ""
        return cls(
            task_id=task_id,
            status=status,
            progress=100 if status is TaskStatus.SUCCESS else parse_progress(data.get("progress")),
            outputs=tuple(outputs),
            fail_reason=str(fail_reason),
            submit_time=parse_time(data.get("submit_time")),
            start_time=parse_time(data.get("start_time")),
            finish_time=parse_time(data.get("finish_time")),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for traits and logs): times as ISO 8601 strings."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "progress": self.progress,
            "outputs": list(self.outputs),
            "fail_reason": self.fail_reason,
            "submit_time": iso(self.submit_time),
            "start_time": iso(self.start_time),
            "finish_time": iso(self.finish_time),
        }
