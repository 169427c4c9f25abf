"""What a running sweep knows about each cell: its state, its task, its result or its reason.

A cell's states::

    queued ──> submitted ──> running ──> success
       │           │            │ ╰────> failed (the task ended in FAILURE, or following it
       │           │            │         stopped: the reason says which)
       │           │            ╰──────> stalled ──> running (it moved again) / as above
       │           ╰───────────────────> failed / refused
       ├─> refused    the API (or a workshop proxy) refused the request as invalid
       ├─> failed     the create request failed (the reason says how)
       ╰─> cancelled  never sent: Cancel, a budget cap, or an error that stops the sweep

``submitted`` means the create request answered with a task id (the task is paid for);
``running`` follows the first status reading. A failed or refused cell keeps its reason and
can be retried; a cell whose task id is known and whose *following* failed is retried by
following the same task again, never by paying for it twice.

:class:`CellRun` is mutable and owned by the runner (changed on its event loop under its
lock); :meth:`CellRun.to_json` is the plain JSON a front end receives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .definition import Cell

CellState = Literal[
    "queued", "submitted", "running", "stalled", "success", "failed", "refused", "cancelled"
]
CELL_STATES: Final[tuple[str, ...]] = (
    "queued",
    "submitted",
    "running",
    "stalled",
    "success",
    "failed",
    "refused",
    "cancelled",
)
#: States a cell does not leave unless it is run again.
FINAL_STATES: Final = frozenset({"success", "failed", "refused", "cancelled"})
#: States of a cell whose task exists and is being followed.
FOLLOWED_STATES: Final = frozenset({"submitted", "running", "stalled"})
#: States a "run again" sends (or follows) again.
RETRY_STATES: Final = frozenset({"failed", "refused", "cancelled", "queued"})

#: Where a cell's result came from: sent by this run, or found from an earlier one.
Origin = Literal["sent", "earlier", "followed"]


@dataclass
class CellRun:
    """One cell of a running (or finished) sweep."""

    cell: Cell
    state: CellState = "queued"
    #: The API status last read ("" before any).
    status: str = ""
    progress: int = 0
    task_id: str | None = None
    #: Why the cell failed, was refused or cancelled, in plain words ("" otherwise).
    reason: str = ""
    outputs: tuple[str, ...] = ()
    #: Kept copies of the images (absolute paths), once the run store has them.
    files: tuple[str, ...] = ()
    thumbs: tuple[str, ...] = ()
    #: The run store's record of this cell (None when recording is off).
    run_id: int | None = None
    #: "sent" by this run, found finished by an "earlier" run, or an earlier task "followed".
    origin: Origin = "sent"
    #: Create attempts refused by a 429/503 before one went through.
    attempts: int = 0
    #: Whether a retry should follow ``task_id`` again rather than send the request again.
    follow_on_retry: bool = False
    #: The seed the server says it used, where known.
    seed_used: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    #: The runner's change counter when this cell last changed.
    version: int = 0
    #: Only for the runner: whether the cell is being worked on now.
    active: bool = field(default=False, repr=False)

    @property
    def key(self) -> str:
        return self.cell.key

    @property
    def index(self) -> int:
        return self.cell.index

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    def begin(self) -> None:
        self.started_at = time.time()
        self.finished_at = None

    def end(self, state: CellState, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self.finished_at = time.time()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: where the cell is, its state, task, result or reason."""
        return {
            "index": self.cell.index,
            "key": self.cell.key,
            "x": self.cell.x,
            "y": self.cell.y,
            "z": self.cell.z,
            "labels": {c.slot: c.label for c in self.cell.coordinates},
            "describe": self.cell.describe(),
            "state": self.state,
            "status": self.status,
            "progress": self.progress,
            "task_id": self.task_id,
            "reason": self.reason,
            "outputs": list(self.outputs),
            "files": list(self.files),
            "thumbs": list(self.thumbs),
            "run_id": self.run_id,
            "origin": self.origin,
            "attempts": self.attempts,
            "seed": self.cell.request.seed,
            "seed_used": self.seed_used,
            "seconds": self.seconds,
            "version": self.version,
        }


@dataclass(frozen=True)
class Progress:
    """How many cells are in each state, and how far the sweep is."""

    total: int
    counts: dict[str, int]

    @classmethod
    def of(cls, cells: Iterable[CellRun]) -> Progress:
        counts = dict.fromkeys(CELL_STATES, 0)
        total = 0
        for run in cells:
            counts[run.state] += 1
            total += 1
        return cls(total, counts)

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINAL_STATES)

    @property
    def fraction(self) -> float:
        return self.finished / self.total if self.total else 1.0

    def __str__(self) -> str:
        parts = [f"{self.finished}/{self.total} done"]
        parts += [f"{n} {s}" for s, n in self.counts.items() if n and s != "queued"]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "finished": self.finished,
            "fraction": round(self.fraction, 4),
            **self.counts,
        }
