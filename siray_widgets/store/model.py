"""What the store gives back: runs, their images and events, as plain frozen objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, Literal

from ..errors import ValidationError
from ..schema import FIELDS_BY_NAME, ImageRequest
from .hooks import ORIGINS as ORIGINS  # where a run can come from (defined with the hooks)

#: Where a run is in its life.
RunState = Literal[
    "starting",  # the create call has not answered yet
    "running",  # a task id is known and the task is followed
    "stalled",  # followed, but its status and progress have not moved for a while
    "success",
    "failure",  # the API reported FAILURE (fail_reason says why)
    "error",  # refused or broken before the task could finish (error says why)
    "cancelled",  # the user stopped following it (the task may still finish on the server)
    "interrupted",  # the process following it went away, or stopped waiting
]
RUN_STATES: Final[tuple[str, ...]] = (
    "starting",
    "running",
    "stalled",
    "success",
    "failure",
    "error",
    "cancelled",
    "interrupted",
)
ACTIVE_STATES: Final = frozenset({"starting", "running", "stalled"})
#: Where a run's images are: none yet, downloading, all kept, some kept, none kept.
ImagesState = Literal["none", "pending", "done", "partial", "failed"]
Origin = Literal["widget", "cli", "script", "sweep"]

#: Words the status filter understands beyond the states themselves.
STATUS_GROUPS: Final[Mapping[str, frozenset[str]]] = {
    "failed": frozenset({"failure", "error"}),
    "active": ACTIVE_STATES,
    "finished": frozenset(RUN_STATES) - ACTIVE_STATES,
}


def utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


@dataclass(frozen=True)
class RunEvent:
    """One change seen while following a run."""

    at: datetime
    state: str
    status: str
    progress: int


@dataclass(frozen=True)
class StoredImage:
    """One output image of a run and where its kept copy is."""

    index: int  # 1-based
    url: str
    #: Absolute paths of the kept image and its thumbnail; None if not (yet) kept.
    path: str | None
    thumb: str | None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int = 0
    sha256: str | None = None
    error: str = ""


@dataclass(frozen=True)
class Run:
    """Everything the store knows about one run."""

    id: int
    run_uid: str
    task_id: str | None
    model: str
    #: The exact body sent, as text.
    request_json: str
    #: Every field of the request (blank ones included).
    params: Mapping[str, Any]
    seed_used: int | None
    origin: str
    source: str
    state: str
    status: str
    progress: int
    fail_reason: str
    error: str
    outputs: tuple[str, ...]
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    api_submit_time: datetime | None
    api_start_time: datetime | None
    api_finish_time: datetime | None
    images_state: str
    images_error: str
    bytes: int
    starred: bool
    rating: int
    note: str
    tags: tuple[str, ...] = ()
    sweep_id: str | None = None
    cell_key: str | None = None
    images: tuple[StoredImage, ...] = ()
    events: tuple[RunEvent, ...] = field(default=(), repr=False)

    @property
    def prompt(self) -> str:
        return str(self.params.get("prompt", ""))

    @property
    def negative_prompt(self) -> str:
        return str(self.params.get("negative_prompt", ""))

    @property
    def request(self) -> ImageRequest:
        """The request as it was sent (seed as requested; see :attr:`seed_used`)."""
        known = {k: v for k, v in self.params.items() if k in FIELDS_BY_NAME}
        try:
            return ImageRequest(**known)
        except ValidationError as exc:
            raise ValidationError(
                exc.field, exc.value, f"{exc.problem} (in the stored run {self.task_id})"
            ) from None

    @property
    def body(self) -> dict[str, Any]:
        """The body sent, as a dict."""
        body: dict[str, Any] = json.loads(self.request_json)
        return body

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def timings(self) -> dict[str, float | None]:
        """Seconds: waiting for the first progress, generating, and in all (None if unknown)."""
        started = (
            next((e.at for e in self.events if e.status == "IN_PROGRESS"), None)
            or self.api_start_time
        )
        begin = self.submitted_at or self.created_at
        end = self.finished_at

        def span(a: datetime | None, b: datetime | None) -> float | None:
            return None if a is None or b is None else round((b - a).total_seconds(), 3)

        return {
            "queued": span(begin, started),
            "generating": span(started, end),
            "total": span(self.created_at, end),
        }

    @property
    def files(self) -> list[str]:
        """Absolute paths of the kept images, in order."""
        return [image.path for image in self.images if image.path]

    def to_json(self) -> dict[str, Any]:
        """The whole run as plain JSON (times ISO 8601, UTC)."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "task_id": self.task_id,
            "run_uid": self.run_uid,
            "model": self.model,
            "request": self.body,
            "params": dict(self.params),
            "seed_used": self.seed_used,
            "origin": self.origin,
            "source": self.source,
            "state": self.state,
            "status": self.status,
            "progress": self.progress,
            "fail_reason": self.fail_reason,
            "error": self.error,
            "outputs": list(self.outputs),
            "created_at": iso(self.created_at),
            "submitted_at": iso(self.submitted_at),
            "finished_at": iso(self.finished_at),
            "api_submit_time": iso(self.api_submit_time),
            "api_start_time": iso(self.api_start_time),
            "api_finish_time": iso(self.api_finish_time),
            "timings": self.timings,
            "images_state": self.images_state,
            "images_error": self.images_error,
            "images": [
                {
                    "index": i.index,
                    "url": i.url,
                    "path": i.path,
                    "thumb": i.thumb,
                    "media_type": i.media_type,
                    "width": i.width,
                    "height": i.height,
                    "bytes": i.bytes,
                    "sha256": i.sha256,
                    "error": i.error,
                }
                for i in self.images
            ],
            "starred": self.starred,
            "rating": self.rating,
            "tags": list(self.tags),
            "note": self.note,
            "sweep_id": self.sweep_id,
            "cell_key": self.cell_key,
            "events": [
                {"at": iso(e.at), "state": e.state, "status": e.status, "progress": e.progress}
                for e in self.events
            ],
        }
