"""A task's state as the status endpoint reports it, in Python types."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import UnexpectedResponseError, _short


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


#: Applied to text already stripped and at most :data:`_PROGRESS_CHARS` long: no two
#: repeats can trade characters, so matching is linear (``\s*%?\s*$`` was quadratic).
_PERCENT = re.compile(r"(\d{1,3})(?:\.\d{1,12})?[ \t]?%?")
_PROGRESS_CHARS = 24

#: Images one task makes (a Midjourney grid of four).
IMAGES_PER_TASK = 4
#: The longest task id taken from a server or a caller (ids are short tokens in practice).
MAX_TASK_ID_CHARS = 200
#: At most this many output URLs are read from one task (a niji grid has four), each at most
#: :data:`MAX_URL_CHARS` long.
MAX_OUTPUTS = 16
MAX_URL_CHARS = 4096
#: Server text kept in a :class:`Task` (``fail_reason``) is cut to this many characters.
MAX_TEXT_CHARS = 2000


def shown(value: Any, limit: int = 60) -> str:
    """A short, safe ``repr`` of a value from a server, for messages (see ``errors._short``).

    Never raises (an int of more than 4,300 digits cannot be turned into text), never long,
    and control characters come out escaped, as ``repr`` writes them.
    """
    return _short(value, limit)


def parse_progress(value: Any) -> int:
    """``"45%"`` -> 45. Also takes numbers; clamps to 0..100; NaN and infinities are errors."""
    if value is None or value == "":
        return 0
    problem = UnexpectedResponseError(f"progress {shown(value)} is not a percentage")
    if isinstance(value, bool):
        raise problem
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or value.bit_length() < 64 else 1e99
    elif isinstance(value, str) and len(value) <= _PROGRESS_CHARS:
        match = _PERCENT.fullmatch(value.strip())
        if not match:
            raise problem
        number = float(match.group(1))
    else:
        raise problem
    if not math.isfinite(number):
        raise problem
    return max(0, min(100, int(number)))


def _plausible_url(value: Any) -> bool:
    """A string of sane length with no whitespace or control characters (a URL has none)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_URL_CHARS
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )


def task_id_problem(task_id: Any) -> str | None:
    """Why ``task_id`` cannot be a task id, in words; None if it can.

    It goes into a URL path as one segment: ``.`` and ``..`` would be removed as dot
    segments (sending the query, with the key, to another endpoint), and control
    characters, whitespace or an absurd length have no place in an id.
    """
    if not isinstance(task_id, str):
        return f"is a {type(task_id).__name__}, not a string"
    if not task_id:
        return "is empty"
    if len(task_id) > MAX_TASK_ID_CHARS:
        return f"is {len(task_id)} characters long (at most {MAX_TASK_ID_CHARS})"
    if task_id in (".", ".."):
        return "is a dot segment"
    if not task_id.isprintable() or any(c.isspace() for c in task_id):
        return "holds whitespace or control characters"
    return None


def parse_time(value: Any) -> datetime | None:
    """Unix seconds -> aware UTC datetime; 0 or missing -> None (not happened yet)."""
    if value in (None, "", 0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnexpectedResponseError(f"time {shown(value)} is not Unix seconds")
    try:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(value)
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise UnexpectedResponseError(f"time {shown(value)} is not Unix seconds") from None


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
        """FAILURE, or SUCCESS *with* outputs.

        The live service can report SUCCESS a moment before ``outputs`` is filled: such a
        reading is not the end yet (:meth:`AsyncSirayClient.wait` keeps polling).
        """
        if self.status is TaskStatus.SUCCESS:
            return bool(self.outputs)
        return self.status.is_terminal

    @classmethod
    def from_api(cls, data: Any) -> Task:
        """Build from the task object of a status response; raise on a malformed one.

        ``fail_reason`` is kept for FAILURE only: on SUCCESS the live service may put an
        output URL there, which is not a reason for anything.
        """
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError("the status response holds no task object")
        task_id = data.get("task_id")
        if task_id is None:
            raise UnexpectedResponseError("the status response has no task id ('task_id')")
        problem = task_id_problem(task_id)
        if problem is not None or not isinstance(task_id, str):
            raise UnexpectedResponseError(
                f"the status response's task id {shown(task_id)} {problem}"
            )
        raw_status = data.get("status")
        try:
            status = TaskStatus(raw_status)
        except (ValueError, TypeError):
            raise UnexpectedResponseError(
                f"task {task_id} has an unknown status {shown(raw_status)}"
            ) from None
        outputs = data.get("outputs") or []
        if (
            not isinstance(outputs, list)
            or not all(_plausible_url(u) for u in outputs)
            or len(outputs) > MAX_OUTPUTS
        ):
            raise UnexpectedResponseError(
                f"task {task_id} has malformed 'outputs' (a list of at most {MAX_OUTPUTS} URLs "
                "was expected)"
            )
        fail_reason = data.get("fail_reason") if status is TaskStatus.FAILURE else ""
        fail_text = fail_reason if isinstance(fail_reason, str) else shown(fail_reason, 200)
        return cls(
            task_id=task_id,
            status=status,
            progress=100 if status is TaskStatus.SUCCESS else parse_progress(data.get("progress")),
            outputs=tuple(outputs),
            fail_reason=(fail_text or "")[:MAX_TEXT_CHARS],
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
