"""Running a sweep: bounded concurrency, one shared back-off, resumable, never a surprise spend.

:class:`SweepRun` is the handle: made from a :class:`~.definition.SweepDefinition`, it first
looks up what earlier runs already did for its cells (:mod:`.resume`) and says what running it
would send (:meth:`SweepRun.plan`): the cells, tasks, images and estimated cost. Nothing is
sent until :meth:`SweepRun.start`, and above the session's threshold (5 tasks by default, see
:mod:`siray_widgets.session`) only with ``confirm=True``. Then:

- cells start in their stable order (page by page, row by row, column by column), at most
  ``concurrency`` at a time (a cell holds its place from its create request until its task
  ends);
- every request passes one :class:`~.gate.BackoffGate`: a 429 or 503 anywhere slows the whole
  sweep down once, until ``Retry-After`` has passed, and one request probes before the others
  follow;
- each cell has its own state (:mod:`.state`), recorded in the run store as a run of origin
  ``"sweep"`` with the sweep's id and the cell's key (the recorder also counts it in the spend
  ledger), and counted in the session budget; a hard cap stops new submissions;
- :meth:`SweepRun.cancel` stops new submissions at once; tasks already created are followed to
  the end (they are paid for) and land in the grid;
- :meth:`SweepRun.retry` runs failed cells again (following a known task again rather than
  paying for it twice).

The handle is message-friendly: :meth:`SweepRun.snapshot` is plain JSON (the whole grid, or
only the cells changed since a version), and :meth:`SweepRun.on_change` calls back on every
change. It can be awaited from any event loop (``await sweep`` gives the handle back when the
sweep has ended) or waited for from a thread (:meth:`SweepRun.wait`). Its methods are
thread-safe: a front end's messages may arrive on another thread than the one running it.

For scripts: ``await run_sweep(definition, client=..., confirm=True)`` runs on the caller's
loop; :func:`run_sweep_sync` blocks until the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SirayError,
    TaskFailedError,
    TransportError,
    WaitTimeoutError,
    WorkshopError,
)
from ..schema import MODEL_ID
from ..session import BudgetExceededError, SessionBudget, session_budget, unit_price
from ..task import Task, TaskStatus
from .connection import is_local_api, is_sandbox, private_copy
from .definition import SweepDefinition
from .gate import BackoffGate, GateClosed
from .plan import ConfirmationRequired, SweepPlan
from .recording import CellRecording, attach_run_id
from .resume import Prior, find_priors, remember, same_kind, sweep_id
from .state import FINAL_STATES, FOLLOWED_STATES, RETRY_STATES, CellRun, Progress

if TYPE_CHECKING:
    import pandas

    from ..client import AsyncSirayClient, PollSchedule, SirayClient
    from ..config import Secret
    from ..store import NullRecorder, Recorder, Run, RunStore

logger = logging.getLogger("siray_widgets.sweep")

#: Tasks in flight at once, by default. Siray publishes no concurrency limit for this model;
#: what it resells is Midjourney, whose plans run 3 (Basic, Standard) to 12 (Pro, Mega) fast
#: jobs at once and queue the rest, and the class proxy (``siray-widgets proxy``) lets each
#: participant have 4 requests in flight and 10 creates in a burst, then 20 a minute. Eight
#: tasks in flight keep a sweep inside all of those in practice (with Siray's 3-5 s polling, 8
#: tasks make about 2 status queries a second, rarely more than one at a time), fill the
#: larger plans' parallel slots, and are twice the smaller plans' concurrency, which the
#: service queues rather than refuses; a 429 anyway slows the whole sweep down once (the
#: gate). ``concurrency=`` (``--concurrency``) changes it.
DEFAULT_CONCURRENCY: Final = 8
#: The most cells in flight a sweep may ask for.
MAX_CONCURRENCY: Final = 64
#: Create attempts refused by 429/503 (or a connection never made) before a cell fails.
MAX_CREATE_ATTEMPTS: Final = 12
#: Status queries failing in a row (5xx, broken answers, network) before a cell fails.
MAX_POLL_ERRORS: Final = 8

SweepState = Literal["planned", "running", "cancelling", "done", "cancelled", "stopped"]
Listener = Callable[[dict[str, Any]], object]

#: Sweeps running now (strong references: a handle nobody holds still finishes).
_ACTIVE: set[SweepRun] = set()
_ACTIVE_LOCK = threading.Lock()


class SweepRun:
    """A sweep's handle: plan, start, progress, cancel, retry, results (see the module doc).

    ``client``: an :class:`~siray_widgets.client.AsyncSirayClient` or
    :class:`~siray_widgets.client.SirayClient` whose connection settings to use (the sweep
    makes its own connection pool with them, with retries left to the shared gate), a function
    that builds one, or None (``SIRAY_API_KEY`` / ``SIRAY_BASE_URL``, else the sandbox).
    ``store``: where cells are recorded and looked up (default: the user's run store; False:
    neither). ``resume=False`` sends every cell again; ``priors`` adds what is known from
    elsewhere (the command line's output folder). Earlier results count only if they come
    from the same kind of server (``local``: whether the API is on this machine, as the
    sandbox is; default: from ``client``), so placeholders never pass for real images.
    ``stall_after`` and ``wait_timeout`` (seconds) default to the store's stall rule and the
    client's wait timeout. ``free``
    (default: the client is the sandbox) shows no cost; ``budget`` is the session budget.
    """

    def __init__(
        self,
        definition: SweepDefinition,
        *,
        client: AsyncSirayClient | SirayClient | Callable[[], AsyncSirayClient] | None = None,
        concurrency: int | None = None,
        store: RunStore | Literal[False] | None = None,
        resume: bool = True,
        keep_images: bool = True,
        poll: PollSchedule | None = None,
        stall_after: float | None = None,
        wait_timeout: float | None = None,
        budget: SessionBudget | None = None,
        free: bool | None = None,
        priors: Mapping[str, Prior] | None = None,
        local: bool | None = None,
    ) -> None:
        if not isinstance(definition, SweepDefinition):
            raise TypeError(f"expected a SweepDefinition, not {type(definition).__name__}")
        self.definition = definition
        #: The id its cells are recorded under (``sweep-`` + 16 hex digits of its key).
        self.id = sweep_id(definition)
        self.concurrency = _check_concurrency(concurrency)
        self.keep_images = keep_images
        self._client_source = client
        self._poll = poll
        self._stall_after = _check_seconds("stall_after", stall_after)
        self._wait_timeout = _check_seconds("wait_timeout", wait_timeout)
        self._budget = budget or session_budget()
        self._free = is_sandbox(client) if free is None else free
        self._price = Decimal(0) if self._free else unit_price(MODEL_ID)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._version = 0
        self._state: SweepState = "planned"
        #: Why new submissions stopped (a cap, Cancel, a refused key), "" while they go on.
        self.stopped_reason = ""
        self._cells = [CellRun(cell) for cell in definition.cells()]
        self._by_key = {run.key: run for run in self._cells}
        self._recording = CellRecording(
            self.id,
            store,
            keep_images=keep_images,
            stall_after=self._stall_after,
            price=self._price,
        )
        self._future: concurrent.futures.Future[SweepRun] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._round_task: asyncio.Task[None] | None = None
        self._next_round: list[CellRun] = []
        self._cell_tasks: set[asyncio.Task[None]] = set()
        # Set on the running loop by each round.
        self._stop_sending = False
        self._stopped_by: Literal["", "cancel", "halt"] = ""
        self._gate: BackoffGate | None = None
        self._wakeup: asyncio.Event | None = None
        self._pending: deque[CellRun] = deque()
        self._secret: Secret | None = None
        self._started_at: float | None = None
        self._finished_at: float | None = None
        # Results are reused only from the same kind of server: the sandbox's placeholders
        # (images on this machine) never stand in for the real API's images, nor the reverse.
        self._local = is_local_api(client) if local is None else local
        found: dict[str, Prior] = {}
        if resume:
            store_ = self._store()
            cells = [run.cell for run in self._cells]
            given = find_priors(store_, cells) if store_ is not None else {}
            for source in (given, priors or {}):  # the store first; a better prior wins
                for key, prior in source.items():
                    if not same_kind(prior, self._local):
                        continue
                    best = found.get(key)
                    if best is None or _RANK[prior.action] > _RANK[best.action]:
                        found[key] = prior
        for key, prior in found.items():
            if key in self._by_key:
                _apply_prior(self._by_key[key], prior)

    # -- describing --

    def __repr__(self) -> str:
        return f"<SweepRun {self.id} {self.state}: {self.progress}>"

    @property
    def state(self) -> SweepState:
        return self._state

    @property
    def cells(self) -> list[CellRun]:
        """Every cell in run order (live objects: read, do not change)."""
        return list(self._cells)

    def cell(self, ref: int | str | tuple[int, ...]) -> CellRun:
        """A cell by run index, key, or ``(x, y)`` / ``(x, y, z)`` position."""
        if isinstance(ref, tuple):
            return self._by_key[self.definition.cell(*ref).key]
        if isinstance(ref, str):
            try:
                return self._by_key[ref]
            except KeyError:
                raise KeyError(f"no cell with key {ref[:16]!r}… in {self.id}") from None
        if isinstance(ref, bool) or not isinstance(ref, int) or not 0 <= ref < len(self._cells):
            raise KeyError(f"no cell {ref!r}: cells are numbered 0..{len(self._cells) - 1}")
        return self._cells[ref]

    @property
    def progress(self) -> Progress:
        with self._lock:
            return Progress.of(self._cells)

    @property
    def done(self) -> bool:
        """Whether the sweep has run and ended (False before :meth:`start` and while running)."""
        return self._state in ("done", "cancelled", "stopped")

    @property
    def running(self) -> bool:
        return self._state in ("running", "cancelling")

    @property
    def version(self) -> int:
        """Counts changes; :meth:`snapshot` with ``since`` gives the cells changed after it."""
        return self._version

    def plan(self, cells: Iterable[CellRun] | None = None) -> SweepPlan:
        """What running (or retrying ``cells``) would send now."""
        with self._lock:
            chosen = list(cells) if cells is not None else self._to_run()
            follow = sum(1 for run in chosen if _follows(run))
            reuse = sum(1 for run in self._cells if run.state == "success") if cells is None else 0
            return SweepPlan(
                total=len(self._cells),
                reuse=reuse,
                follow=follow,
                send=len(chosen) - follow,
                unit_price=self._price,
                free=self._free,
                confirm_above=self._budget.confirm_above,
                remaining=self._budget.remaining,
            )

    def snapshot(self, since: int | None = None) -> dict[str, Any]:
        """The grid as plain JSON: state, progress, plan, session counter, and the cells (all,
        or with ``since`` only those changed after that :attr:`version`; the definition and
        the axes are then left out)."""
        with self._lock:
            cells = [run.to_json() for run in self._cells if since is None or run.version > since]
            data: dict[str, Any] = {
                "kind": "sweep",
                "id": self.id,
                "state": self._state,
                "version": self._version,
                "stopped_reason": self.stopped_reason,
                "progress": Progress.of(self._cells).to_json(),
                "plan": self.plan().to_json(),
                "session": self._budget.to_json(),
                "concurrency": self.concurrency,
                "cells": cells,
            }
            if since is None:
                columns, rows, pages = self.definition.shape
                data["shape"] = {"columns": columns, "rows": rows, "pages": pages}
                data["summary"] = _json_safe(self.definition.summary(self._price))
                data["definition"] = self.definition.to_json()
            return data

    # -- listening --

    def on_change(self, listener: Listener, remove: bool = False) -> None:
        """Call ``listener(event)`` on every change. Events are plain JSON:
        ``{"kind": "cell", "version", "cell": {...}}`` and ``{"kind": "sweep", "version",
        "state", "progress", "stopped_reason"}``. They come from the thread running the sweep
        (or an image download's); a listener must be quick and must not block."""
        with self._lock:
            if remove:
                if listener in self._listeners:
                    self._listeners.remove(listener)
            else:
                self._listeners.append(listener)

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("a sweep listener raised")

    def _changed(self, run: CellRun) -> None:
        with self._lock:
            self._version += 1
            run.version = self._version
            if not self._listeners:
                return
            event = {"kind": "cell", "version": self._version, "cell": run.to_json()}
        self._emit(event)

    def _sweep_changed(self) -> None:
        with self._lock:
            self._version += 1
            if not self._listeners:
                return
            event = {
                "kind": "sweep",
                "version": self._version,
                "state": self._state,
                "progress": Progress.of(self._cells).to_json(),
                "stopped_reason": self.stopped_reason,
                "session": self._budget.to_json(),
            }
        self._emit(event)

    # -- running --

    def _to_run(self) -> list[CellRun]:
        return [run for run in self._cells if run.state in RETRY_STATES]

    def start(
        self, *, confirm: bool = False, loop: asyncio.AbstractEventLoop | None = None
    ) -> SweepRun:
        """Start sending (returns at once; ``await`` the handle or :meth:`wait` for the end).

        Cells already done by an earlier run are not sent again. Above the session's
        threshold this raises :class:`ConfirmationRequired` (nothing sent) unless ``confirm``.
        Runs on ``loop``, by default a private background loop (the kernel stays free, and a
        blocking :meth:`wait` works in a notebook cell).
        """
        with self._lock:
            if self.running:
                raise RuntimeError(f"{self.id} is already running; cancel() it first")
            runs = self._to_run()
            plan = self.plan(runs)
            if plan.needs_confirmation and not confirm:
                raise ConfirmationRequired(plan)
            self._launch(runs, loop)
        return self

    def retry(
        self,
        cells: Iterable[int | str | tuple[int, ...] | CellRun] | None = None,
        *,
        confirm: bool = False,
    ) -> SweepRun:
        """Run cells again: by default every failed, refused or cancelled one (given cells:
        those, whatever their state, except cells running now). A cell whose task is known
        is followed again, not paid for twice. Thread-safe; while the sweep runs, they join
        it; after, a new round starts. Confirmation as for :meth:`start`."""
        with self._lock:
            running = self.running
            refs = (
                [run for run in self._cells if run.state in RETRY_STATES]
                if cells is None
                else [ref if isinstance(ref, CellRun) else self.cell(ref) for ref in cells]
            )
            chosen: list[CellRun] = []
            seen: set[int] = set()
            for run in refs:
                busy = run.state in FOLLOWED_STATES or run.active
                pending = running and run.state == "queued"  # about to be sent anyway
                if busy or pending or run.index in seen:
                    continue
                seen.add(run.index)
                chosen.append(run)
            plan = self.plan(chosen)
            if plan.needs_confirmation and not confirm:
                raise ConfirmationRequired(plan)
            if not chosen:
                return self
            for run in chosen:
                _reset(run)
                self._version += 1
                run.version = self._version
            if running:
                loop = self._loop
                assert loop is not None
                if self._state == "cancelling":
                    self._next_round.extend(chosen)
                else:
                    loop.call_soon_threadsafe(self._enqueue, chosen)
            else:
                self._launch(chosen, None)
        for run in chosen:
            self._changed(run)
        return self

    def cancel(self, *, follow: bool = True) -> SweepRun:
        """Stop sending new tasks now. Tasks already created keep being followed to the end
        (they are paid for) unless ``follow=False``: then following stops too (the tasks may
        still finish on the server; running the sweep again follows them). Thread-safe."""
        with self._lock:
            self._next_round.clear()
            loop = self._loop
            if not self.running or loop is None:
                return self
            self._state = "cancelling"
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._stop, "Cancelled: not sent.", not follow, "cancel")
        self._sweep_changed()
        return self

    def wait(self, timeout: float | None = None) -> SweepRun:
        """Block until the sweep has ended (from a thread that is not running it)."""
        self._check_started()
        loop = self._loop
        if loop is not None and _running_loop() is loop:
            raise RuntimeError(
                "wait() would block the event loop this sweep runs on; use 'await sweep'"
            )
        return self._future.result(timeout)

    def __await__(self) -> Generator[Any, None, SweepRun]:
        self._check_started()
        # The shield keeps an impatient awaiter (a wait_for timing out) from cancelling the
        # shared future every other awaiter reads; cancel() stops the sweep.
        return asyncio.shield(asyncio.wrap_future(self._future)).__await__()

    def _check_started(self) -> None:
        if self._state == "planned":
            raise RuntimeError(
                f"{self.id} has not been started: call start() (confirm=True to send more than "
                f"{self._budget.confirm_above} tasks)"
            )

    def _launch(self, runs: list[CellRun], loop: asyncio.AbstractEventLoop | None) -> None:
        """Start a round on ``loop`` (default: the private background loop). Under the lock."""
        if loop is None:
            from .._widget_tasks import BackgroundLoop

            loop = BackgroundLoop.get()
        if self._future.done():
            self._future = concurrent.futures.Future()
        self._loop = loop
        self._state = "running"
        self.stopped_reason = ""
        self._started_at = self._started_at or time.time()
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        for run in runs:
            if run.state != "queued":
                _reset(run)
        # Set here, not when the round begins: a cancel() or retry() made before its first
        # step (they are queued on the loop behind it) must not be undone by it.
        self._pending = deque(sorted(runs, key=lambda r: r.index))
        self._stop_sending = False
        self._stopped_by = ""

        def go() -> None:
            self._round_task = loop.create_task(self._round(), name=f"siray-widgets {self.id}")

        if _running_loop() is loop:
            go()
        else:
            loop.call_soon_threadsafe(go)

    # -- the round (on the sweep's loop) --

    async def _round(self) -> None:
        """Send and follow the pending cells (and any enqueued meanwhile); settle the handle."""
        self._gate = BackoffGate()
        self._wakeup = asyncio.Event()
        self._sweep_changed()
        store = self._store()
        if store is not None:
            with contextlib.suppress(Exception):
                remember(store, self.definition)
        client: AsyncSirayClient | None = None
        try:
            if self._pending:
                try:
                    client = await self._open_client()
                except Exception as exc:
                    self._halt(f"Not sent: {_reason(exc, None)}")
                else:
                    self._secret = client._key
                    await self._dispatch(client)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
            self._finish_round()

    async def _dispatch(self, client: AsyncSirayClient) -> None:
        """Start the pending cells in order, at most ``concurrency`` at a time; return when
        every started cell has ended and nothing is pending (or sending stopped)."""
        loop = asyncio.get_running_loop()
        while True:
            if self._stop_sending:
                # Nothing new starts (cells with a task to follow again stay for a later run).
                while self._pending:
                    self._settle_unsent(self._pending.popleft())
            elif self._pending and len(self._cell_tasks) < self.concurrency:
                run = self._pending.popleft()
                with self._lock:
                    run.active = True
                task = loop.create_task(self._cell(client, run))
                self._cell_tasks.add(task)
                task.add_done_callback(functools.partial(self._cell_done, run=run))
                continue
            if not self._cell_tasks and not self._pending:
                return
            await self._idle()

    def _cell_done(self, task: asyncio.Task[None], *, run: CellRun) -> None:
        """A cell's task ended (even one cancelled before its first step): free its place."""
        self._cell_tasks.discard(task)
        settled = False
        with self._lock:
            run.active = False
            if run.state not in FINAL_STATES:  # never leave a cell half-way
                if run.task_id:
                    run.follow_on_retry = True
                run.end("cancelled", run.reason or "Stopped before it ended.")
                settled = True
        if settled:
            self._changed(run)
        if self._wakeup is not None:
            self._wakeup.set()

    async def _idle(self) -> None:
        """Until a cell ends, something is enqueued, or sending stops."""
        assert self._wakeup is not None
        self._wakeup.clear()
        await self._wakeup.wait()

    def _enqueue(self, runs: list[CellRun]) -> None:
        """On the loop: add cells to the running round (in index order among the pending)."""
        if self._round_task is None or self._round_task.done():
            with self._lock:
                self._launch(runs, self._loop)
            return
        if self._stop_sending:
            with self._lock:
                self._next_round.extend(runs)
            return
        merged = {run.index: run for run in [*self._pending, *runs]}
        self._pending = deque(merged[i] for i in sorted(merged))
        if self._wakeup is not None:
            self._wakeup.set()

    def _stop(self, reason: str, hard: bool, by: Literal["cancel", "halt"]) -> None:
        """On the loop: stop new submissions (and with ``hard``, following too). ``by``: the
        user's Cancel, or a halt (a cap, a refused key) after which the sweep still follows
        what it created and ends "stopped"."""
        first = not self._stop_sending
        self._stop_sending = True
        with self._lock:
            if first or not self.stopped_reason:
                self.stopped_reason = reason
            if by == "cancel" or self._stopped_by != "cancel":
                self._stopped_by = by
            if by == "cancel":
                self._state = "cancelling"
        if self._gate is not None:
            self._gate.nudge()
        if self._wakeup is not None:
            self._wakeup.set()
        if hard:
            for task in list(self._cell_tasks):
                task.cancel()
        self._sweep_changed()

    def _halt(self, reason: str) -> None:
        """Stop new submissions for a reason that is not the user's Cancel."""
        if not self._stop_sending:
            self._stop(reason, False, "halt")

    def _settle_unsent(self, run: CellRun) -> None:
        with self._lock:
            run.end("cancelled", self.stopped_reason or "Cancelled: not sent.")
            run.active = False
        self._changed(run)

    def _finish_round(self) -> None:
        store = self._store()
        with self._lock:
            for run in self._pending:
                run.end("cancelled", self.stopped_reason or "Cancelled: not sent.")
                self._version += 1
                run.version = self._version
            self._pending.clear()
            if not self._stop_sending:
                self._state = "done"
            elif self._stopped_by == "halt":
                self._state = "stopped"
            else:
                self._state = "cancelled"
            self._stopped_by = ""
            self._finished_at = time.time()
            following = self._next_round
            self._next_round = []
            cells = {
                run.key: {
                    "index": run.index,
                    "state": run.state,
                    "task_id": run.task_id,
                    "run_id": run.run_id,
                    "reason": run.reason,
                }
                for run in self._cells
            }
        if store is not None:
            with contextlib.suppress(Exception):
                remember(store, self.definition, cells)
        self._sweep_changed()
        if following:
            with self._lock:
                self._launch(following, self._loop)
            return
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self)
        if not self._future.done():
            self._future.set_result(self)

    # -- one cell --

    async def _cell(self, client: AsyncSirayClient, run: CellRun) -> None:
        recorder: Recorder | NullRecorder | None = None
        try:
            with self._lock:
                run.begin()
            if _follows(run):
                recorder = self._recording.resume(run)
                if hasattr(recorder, "api_base_url"):
                    recorder.api_base_url = client.base_url
                with self._lock:
                    run.state = "submitted"
                    run.origin = "followed"
                self._changed(run)
            else:
                recorder = await self._send(client, run)
                if recorder is None:
                    return
            await self._follow(client, run, recorder)
        except asyncio.CancelledError:
            with self._lock:
                if run.task_id:
                    run.follow_on_retry = True
                    run.end(
                        "cancelled",
                        f"Stopped following task {run.task_id}; it may still finish on the "
                        "server (running the sweep again follows it).",
                    )
                else:
                    run.end("cancelled", "Stopped before the task was created.")
            if recorder is not None:
                recorder.finished(None)
            raise
        except Exception as exc:  # a bug here must not lose the cell (or the sweep)
            logger.exception("sweep %s: cell %d failed unexpectedly", self.id, run.index)
            with self._lock:
                run.follow_on_retry = bool(run.task_id)
                run.end("failed", f"Internal error: {type(exc).__name__}: {exc}")
            if recorder is not None:
                recorder.finished(exc)
        finally:
            self._changed(run)

    async def _send(self, client: AsyncSirayClient, run: CellRun) -> Recorder | NullRecorder | None:
        """The create request, through the gate and the budget; the cell's recorder, or None
        when it ended without a task (its state says why)."""
        gate = self._gate
        assert gate is not None
        recorder: Recorder | NullRecorder | None = None
        request = run.cell.request
        while True:
            try:
                ticket = await gate.wait(give_up=lambda: self._stop_sending)
            except GateClosed:
                self._end_unsent(run, recorder, self.stopped_reason or "Cancelled: not sent.")
                return None
            try:
                reservation = self._budget.reserve(request.model, self._price)
            except BudgetExceededError as exc:
                gate.done(ticket)
                self._halt(str(exc))
                self._end_unsent(run, recorder, str(exc))
                return None
            if recorder is None:
                recorder = self._recording.start(run, self._secret, client.base_url)
            try:
                task_id = await client.submit(request)
            except asyncio.CancelledError:
                gate.done(ticket)
                raise
            except Exception as exc:
                reservation.settle(exc)
                if _gated(exc):
                    gate.trip(getattr(exc, "retry_after", None))
                    with self._lock:
                        run.attempts += 1
                        attempts = run.attempts
                    if attempts < MAX_CREATE_ATTEMPTS:
                        self._changed(run)
                        continue
                    reason = (
                        f"Not sent after {attempts} attempts, the service kept refusing "
                        f"for now: {_reason(exc, self._secret)}"
                    )
                    self._end_failed(run, recorder, exc, "failed", reason)
                    return None
                gate.done(ticket)
                state: Literal["failed", "refused"] = "failed"
                if isinstance(exc, (BadRequestError, ForbiddenError)):
                    state = "refused"
                elif isinstance(exc, (AuthenticationError, PaymentRequiredError, WorkshopError)):
                    self._halt(f"Not sent: {_reason(exc, self._secret)}")
                self._end_failed(run, recorder, exc, state, _reason(exc, self._secret))
                return None
            gate.ok(ticket)
            # The run store first: whatever reads the cell next (a --out manifest written from
            # another thread) never names a task the store does not have yet.
            recorder.submitted(task_id)
            with self._lock:
                run.task_id = task_id
                run.state = "submitted"
                run.origin = "sent"
            attach_run_id(run, recorder)
            self._changed(run)
            return recorder

    async def _follow(
        self, client: AsyncSirayClient, run: CellRun, recorder: Recorder | NullRecorder
    ) -> None:
        """Poll the cell's task until it ends (through the gate), recording every change."""
        from ..store import StallWatch, default_stall_after

        gate = self._gate
        assert gate is not None
        assert run.task_id is not None
        task_id = run.task_id
        schedule = client.poll
        loop = asyncio.get_running_loop()
        limit = self._wait_timeout if self._wait_timeout is not None else client.wait_timeout
        deadline = None if limit is None else loop.time() + limit
        watch = StallWatch(self._stall_after or default_stall_after(schedule))
        previous: Task | None = None
        delay: float | None = None
        errors = 0
        empty_since: float | None = None
        while True:
            ticket = await gate.wait()
            try:
                task = await client.get_task(task_id)
            except asyncio.CancelledError:
                gate.done(ticket)
                raise
            except Exception as exc:
                if _gated(exc):
                    gate.trip(getattr(exc, "retry_after", None))
                    continue
                gate.done(ticket)
                if isinstance(exc, (ServerError, TransportError)) or (
                    isinstance(exc, SirayError) and not isinstance(exc, _FINAL_POLL_ERRORS)
                ):
                    errors += 1
                    if errors < MAX_POLL_ERRORS:
                        await asyncio.sleep(min(8.0, 0.5 * 2 ** (errors - 1)))
                        continue
                if isinstance(exc, (AuthenticationError, WorkshopError)):
                    self._halt(f"Not sent: {_reason(exc, self._secret)}")
                if isinstance(exc, NotFoundError):
                    reason = (
                        f"The server no longer knows task {task_id} (expired, or another "
                        "server): its result is lost; Retry sends the request again."
                    )
                    follow = False
                else:
                    reason = (
                        f"Following task {task_id} failed: {_reason(exc, self._secret)} "
                        "(Retry follows it again)."
                    )
                    follow = True
                with self._lock:
                    run.follow_on_retry = follow
                    if not follow:
                        run.task_id = None
                    run.end("failed", reason)
                recorder.finished(exc)
                return
            gate.ok(ticket)
            errors = 0
            changed = previous is None or task != previous
            moved = previous is not None and (
                task.status is not previous.status or task.progress != previous.progress
            )
            stall = watch.reading(task.status.value, task.progress)
            if watch.check() == "stalled":
                stall = "stalled"
            if changed or stall is not None:
                recorder.reading(task)
                with self._lock:
                    run.status = task.status.value
                    run.progress = task.progress
                    if stall == "stalled":
                        run.state = "stalled"
                    elif run.state == "submitted" or stall == "resumed":
                        run.state = "running"
                self._changed(run)
            if task.status is TaskStatus.SUCCESS:
                if task.outputs:
                    with self._lock:
                        run.outputs = tuple(task.outputs)
                        run.progress = 100
                        run.end("success")
                    recorder.finished(task)
                    self._recording.watch_images(run, recorder, self._images_kept)
                    return
                now = loop.time()
                empty_since = now if empty_since is None else empty_since
                if now - empty_since >= schedule.outputs_grace:
                    with self._lock:
                        run.follow_on_retry = True
                        run.end(
                            "failed",
                            f"Task {task_id} said SUCCESS but gave no images for "
                            f"{schedule.outputs_grace:g} s (Retry asks again).",
                        )
                    recorder.finished(task)
                    return
            if task.status is TaskStatus.FAILURE:
                reason = task.fail_reason or "the task failed (no reason given)"
                with self._lock:
                    run.end("failed", _masked(reason, self._secret))
                recorder.finished(TaskFailedError(task_id, task.fail_reason))
                return
            if deadline is not None and loop.time() >= deadline:
                with self._lock:
                    run.follow_on_retry = True
                    run.end(
                        "failed",
                        f"Stopped waiting after {limit:g} s (last status {task.status.value}); "
                        "the task may still finish on the server: Retry follows it again.",
                    )
                assert limit is not None
                recorder.finished(WaitTimeoutError(task_id, limit, task.status.value))
                return
            delay = schedule.next_delay(delay, moved)
            previous = task
            sleep = delay if deadline is None else max(0.0, min(delay, deadline - loop.time()))
            await asyncio.sleep(sleep)

    def _end_unsent(
        self, run: CellRun, recorder: Recorder | NullRecorder | None, reason: str
    ) -> None:
        with self._lock:
            run.end("cancelled", reason)
        if recorder is not None:
            recorder.finished(None)

    def _end_failed(
        self,
        run: CellRun,
        recorder: Recorder | NullRecorder,
        exc: BaseException,
        state: Literal["failed", "refused"],
        reason: str,
    ) -> None:
        with self._lock:
            run.follow_on_retry = False
            run.end(state, reason)
        recorder.finished(exc)
        attach_run_id(run, recorder)

    # -- recording --

    def _store(self) -> RunStore | None:
        return self._recording.store()

    def _images_kept(self, run: CellRun, stored: Run) -> None:
        """The store has kept a cell's images (on a download thread): note their files."""
        with self._lock:
            run.files = tuple(i.path for i in stored.images if i.path)
            run.thumbs = tuple(i.thumb for i in stored.images if i.thumb)
            if stored.seed_used is not None:
                run.seed_used = stored.seed_used
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: tell from here
                loop.call_soon_threadsafe(self._changed, run)
                return
        self._changed(run)

    def wait_images(self, timeout: float | None = 60.0) -> int:
        """Block until the store has kept the images of every successful cell (or ``timeout``
        seconds have passed); returns how many cells have them."""
        self._recording.wait_images(timeout)
        with self._lock:
            return sum(1 for run in self._cells if run.state == "success" and run.files)

    # -- the client --

    async def _open_client(self) -> AsyncSirayClient:
        """The sweep's own client (built off the loop: the first one may start the sandbox)."""
        from ..client import AsyncSirayClient, SirayClient

        source = self._client_source
        poll = self._poll
        if isinstance(source, (AsyncSirayClient, SirayClient)):
            return private_copy(source, poll)
        factory = source

        def build() -> AsyncSirayClient:
            made = AsyncSirayClient(poll=poll, hooks=False) if factory is None else factory()
            return private_copy(made, poll)

        return await asyncio.to_thread(build)

    # -- results --

    @property
    def results(self) -> list[dict[str, Any]]:
        """A tidy table, one row per cell (list of dicts): the axes' values as columns named
        after the axes, every request field, the state, task id, reason, image URLs and the
        kept files. :meth:`to_pandas` gives it as a DataFrame."""
        from .results import result_rows

        with self._lock:
            return result_rows(self.definition, self._cells)

    def to_pandas(self) -> pandas.DataFrame:
        """:attr:`results` as a pandas DataFrame (``pip install pandas``)."""
        from .results import to_pandas

        return to_pandas(self.results)

    def images(self, ref: int | str | tuple[int, ...] | CellRun) -> list[bytes]:
        """The bytes of a successful cell's images: the kept copies, else downloaded."""
        from .results import cell_images

        run = ref if isinstance(ref, CellRun) else self.cell(ref)
        return cell_images(run)

    def thumbnails(self, ref: int | str | tuple[int, ...] | CellRun) -> list[bytes]:
        """The kept thumbnails of a cell (WebP, at most 256 px; empty until the store has
        them): small bytes to send to a page as message buffers."""
        run = ref if isinstance(ref, CellRun) else self.cell(ref)
        with self._lock:
            paths = list(run.thumbs)
        found = []
        for path in paths:
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                found.append(handle.read())
        return found

    def contact_sheet(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        page: int | None = None,
        tile: int = 128,
        wait_images: float | None = 30.0,
    ) -> Any:
        """One labelled PNG of the grid (axis names and values as headers, failed cells
        marked with their reason, Z as separate pages one below the other, or only ``page``),
        whose metadata holds the whole sweep definition. Returns the PIL image, or with
        ``path`` saves it there and returns the path."""
        from .contact_sheet import render_contact_sheet, save_contact_sheet

        if wait_images:
            self.wait_images(wait_images)
        with self._lock:
            cells = list(self._cells)
        image = render_contact_sheet(self.definition, cells, page=page, tile=tile)
        if path is None:
            return image
        return save_contact_sheet(image, path, self.definition, cells)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


# --- helpers ------------------------------------------------------------------------------------

_RANK: Final = {"reuse": 2, "follow": 1, "send": 0}

_FINAL_POLL_ERRORS: tuple[type[BaseException], ...] = (
    NotFoundError,
    AuthenticationError,
    WorkshopError,
    BadRequestError,
    ForbiddenError,
    PaymentRequiredError,
)


def _gated(exc: BaseException) -> bool:
    """Errors that slow the whole sweep down: 429, 503, a connection never made."""
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code == 503
    if isinstance(exc, TransportError):
        return exc.sent is False
    return False


def _follows(run: CellRun) -> bool:
    return bool(run.task_id) and run.follow_on_retry


def _reset(run: CellRun) -> None:
    """Back to queued for another round (keeping a task to follow, if any)."""
    run.state = "queued"
    run.reason = ""
    run.status = run.status if _follows(run) else ""
    run.progress = run.progress if _follows(run) else 0
    run.attempts = 0
    run.started_at = None
    run.finished_at = None
    if not _follows(run):
        run.task_id = None
        run.outputs = ()
        run.files = ()
        run.thumbs = ()
        run.origin = "sent"


def _apply_prior(run: CellRun, prior: Prior) -> None:
    run.run_id = prior.run_id
    if prior.action == "reuse":
        run.state = "success"
        run.origin = "earlier"
        run.task_id = prior.task_id
        run.status = prior.status or "SUCCESS"
        run.progress = 100
        run.outputs = prior.outputs
        run.files = prior.files
        run.thumbs = prior.thumbs
        run.seed_used = prior.seed_used
    elif prior.action == "follow":
        run.state = "queued"
        run.origin = "followed"
        run.task_id = prior.task_id
        run.status = prior.status
        run.progress = prior.progress
        run.follow_on_retry = True


def _reason(exc: BaseException, secret: Secret | None) -> str:
    from ..config import redact

    text = str(exc) or type(exc).__name__
    if not isinstance(exc, SirayError):
        text = f"{type(exc).__name__}: {text}"
    return redact(text, secret)


def _masked(text: str, secret: Secret | None) -> str:
    from ..config import redact

    return redact(text, secret)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _check_concurrency(value: int | None) -> int:
    if value is None:
        return DEFAULT_CONCURRENCY
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(
            f"concurrency must be a whole number 1..{MAX_CONCURRENCY} (tasks in flight at "
            f"once), not {value!r}"
        )
    return value


def _check_seconds(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _json_safe(value: Any) -> Any:
    """Decimals and tuples as JSON takes them."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


# --- entry points -------------------------------------------------------------------------------


def start_sweep(definition: SweepDefinition, *, confirm: bool = False, **options: Any) -> SweepRun:
    """Make a :class:`SweepRun` (``options`` as its constructor's) and start it on the private
    background loop; raises :class:`ConfirmationRequired` above the threshold unless
    ``confirm``."""
    return SweepRun(definition, **options).start(confirm=confirm)


async def run_sweep(
    definition: SweepDefinition, *, confirm: bool = False, **options: Any
) -> SweepRun:
    """Run a sweep on the caller's event loop and return the finished handle.

    ``options`` are :class:`SweepRun`'s (``client``, ``concurrency``, ``store`` ...). If the
    awaiting task is cancelled, the sweep stops at once (following too)."""
    sweep = SweepRun(definition, **options)
    sweep.start(confirm=confirm, loop=asyncio.get_running_loop())
    try:
        return await sweep
    except asyncio.CancelledError:
        sweep.cancel(follow=False)
        raise


def run_sweep_sync(
    definition: SweepDefinition,
    *,
    confirm: bool = False,
    timeout: float | None = None,
    **options: Any,
) -> SweepRun:
    """Run a sweep and block until it ends (scripts; works inside a running loop too: the
    sweep runs on a private background loop). Ctrl-C cancels it (following too)."""
    sweep = start_sweep(definition, confirm=confirm, **options)
    try:
        return sweep.wait(timeout)
    except BaseException:
        sweep.cancel(follow=False)
        raise


def active_sweeps() -> list[SweepRun]:
    """The sweeps running in this process now."""
    with _ACTIVE_LOCK:
        return list(_ACTIVE)
