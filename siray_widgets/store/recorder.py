"""Recording one run: the one way every origin (widget, command line, scripts, sweeps) records.

A :class:`Recorder` is made by :meth:`RunStore.record` when a run starts (before the create
call, so a refused request is in the history too) and is told what happens:

==========================  ====================================================================
``submitted(task_id)``      the create call answered; the task counts in the spend ledger
``reading(task)``           a new reading of the task (status, progress, outputs, times)
``finished(outcome)``       the end: the final :class:`~siray_widgets.task.Task` (success),
                            an exception (TaskFailedError = failure; WaitTimeoutError =
                            interrupted; CancelledError / KeyboardInterrupt = cancelled; any
                            other = error), or None (cancelled)
``keep_waiting()``          the user chose "Keep waiting" on a stalled run
==========================  ====================================================================

Those three first names are also the client's observer protocol
(:class:`siray_widgets.client.RunObserver`), so a recorder can observe ``generate()`` directly;
:class:`~siray_widgets.store.hooks.RecordingHooks` is the client-side factory that makes one
per run.

Recording never breaks a run: if the store cannot be written, the recorder logs one warning
(``siray_widgets.store`` logger), says so in :attr:`Recorder.problem`, and does nothing more.
Each call is one short transaction (well under a millisecond on a local disk). Image
downloads happen on background threads after success (:attr:`Recorder.images`).

Error texts are passed through ``scrub`` (the client's key redaction) before being stored:
the key never reaches the database.

How an origin records (the widget, for example)::

    recorder = start_recording(request, origin="widget", scrub=lambda t: redact(t, secret),
                               stall_after=default_stall_after(poll), on_change=refresh)
    task_id = await client.submit(request); recorder.submitted(task_id)
    task = await client.wait(task_id, on_update=recorder.reading)   # or call it in yours
    recorder.finished(task)          # or the exception, or None when cancelled
    recorder.keep_waiting()          # the user's "Keep waiting" on a stalled run

``on_change(recorder)`` runs after every change (``recorder.state``), on whichever thread made
it (the caller's, the watchdog's, an image download's).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SirayError, TaskFailedError, WaitTimeoutError
from ..schema import MODEL_ID, AnyRequest, ImageRequest, ModelRequest
from ..task import Task, TaskStatus
from . import ledger, owner
from .db import StoreError
from .model import ACTIVE_STATES, ORIGINS, Run
from .query import search_text
from .watchdog import WATCHDOG, StallWatch, default_stall_after

if TYPE_CHECKING:
    from .runs import RunStore

logger = logging.getLogger("siray_widgets.store")

Scrub = Callable[[str], str]


def guess_source() -> str:
    """The notebook or script a run comes from, where it can be known ("" otherwise)."""
    session = os.environ.get("JPY_SESSION_NAME", "").strip()  # set by jupyter_server
    if session:
        return session
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is not None:
        namespace = getattr(shell, "user_ns", {})
        for name in ("__vsc_ipynb_file__", "__session__"):
            value = namespace.get(name)
            if isinstance(value, str) and value:
                return value
        return ""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.basename(path) if isinstance(path, str) else ""


def _no_scrub(text: str) -> str:
    return text


class Recorder:
    """Records one run in a :class:`RunStore` (see the module docstring)."""

    def __init__(
        self,
        store: RunStore,
        request: AnyRequest | Mapping[str, Any],
        *,
        origin: str = "script",
        source: str | None = None,
        sweep_id: str | None = None,
        cell_key: str | None = None,
        unit_price: float | None = None,
        keep_images: bool = True,
        stall_after: float | None = None,
        scrub: Scrub | None = None,
        on_change: Callable[[Recorder], object] | None = None,
        resume: Run | None = None,
        api_base_url: str | None = None,
    ) -> None:
        if origin not in ORIGINS:
            raise ValueError(f"unknown origin {origin!r}; known: {', '.join(ORIGINS)}")
        if isinstance(request, (ImageRequest, ModelRequest)):
            body = request.to_body()
            params = request.to_dict()
            self.request_json = request.to_json()
        elif isinstance(request, Mapping):  # another model's body (the registry's models)
            body = dict(request)
            params = dict(request)
            self.request_json = json.dumps(body, indent=2, ensure_ascii=False)
        else:
            raise TypeError(f"expected an ImageRequest or a body, not {type(request).__name__}")
        self.store = store
        self.origin = origin
        self.model = str(body.get("model") or MODEL_ID)
        self.unit_price = ledger.check_price(unit_price)
        self.keep = keep_images
        #: The run's API (the client sets it): which image URLs the store may download.
        self.api_base_url = api_base_url
        #: Why the images were not downloaded (see :func:`~.images.download_refusal`).
        self.not_kept = ""
        self._scrub = scrub or _no_scrub
        self._on_change = on_change
        self._lock = threading.RLock()
        self.run_uid = uuid.uuid4().hex
        self.task_id: str | None = None
        self.state = "starting"
        #: Why recording stopped working (None while it works).
        self.problem: str | None = None
        #: The background download of the images, once the run has succeeded.
        self.images: concurrent.futures.Future[Run] | None = None
        self._last: tuple[str, int] | None = None
        self._watch = StallWatch(stall_after) if stall_after else None
        self._stall_after = stall_after
        now = time.time()
        prompt = str(params.get("prompt", ""))
        negative = str(params.get("negative_prompt", ""))
        seed = params.get("seed")
        self.run_id: int | None = None
        if resume is not None:  # follow an existing run again (History.resume)
            self.run_id, self.task_id, self.run_uid = resume.id, resume.task_id, resume.run_uid
            self.state = "running"
            self._last = (resume.status, resume.progress)
            self._guard("take the run over", lambda: self._write_state("running", own=True))
            self._watch = StallWatch(stall_after or default_stall_after())
            WATCHDOG.add(self)
            return
        self._guard(
            "record the run",
            lambda: self._insert(
                now, body, params, prompt, negative, seed, source, sweep_id, cell_key
            ),
        )

    def __repr__(self) -> str:
        return f"Recorder(run_id={self.run_id}, task_id={self.task_id!r}, state={self.state!r})"

    # -- the protocol --

    def submitted(self, task_id: str) -> None:
        """The create call answered with ``task_id``: the task now runs (and costs)."""
        with self._lock:
            self.task_id = task_id
            self.state = "running"
            self._guard("record the task id", lambda: self._submitted(task_id))
            if self._watch is None:
                self._watch = StallWatch(self._stall_after or default_stall_after())
            self._watch.reading("SUBMITTED", 0)
            WATCHDOG.add(self)
        self._changed()

    def reading(self, task: Task) -> None:
        """A reading of the task (only changes are written)."""
        with self._lock:
            if self.state not in ACTIVE_STATES:
                return
            if self.task_id is None:
                self.task_id = task.task_id
            moved = self._watch.reading(task.status.value, task.progress) if self._watch else None
            key = (task.status.value, task.progress)
            if key == self._last and moved is None:
                return
            self._last = key
            if self.state == "stalled" and moved == "resumed":
                self.state = "running"
            self._guard("record a reading", lambda: self._write_reading(task))
        self._changed()

    def finished(self, outcome: Task | BaseException | None) -> None:
        """The run ended: see the module docstring for what each outcome means."""
        if isinstance(outcome, Task):
            if outcome.status is TaskStatus.SUCCESS:
                self.succeeded(outcome)
            elif outcome.status is TaskStatus.FAILURE:
                self.failed(outcome.fail_reason or "the task failed", task=outcome)
            else:  # not over on the server: only the following stopped
                self.reading(outcome)
                self.interrupted(f"Stopped following the task at {outcome.status.value}.")
        elif outcome is None or isinstance(outcome, (_cancelled(), KeyboardInterrupt)):
            self.cancelled()
        elif isinstance(outcome, TaskFailedError):
            self.failed(outcome.fail_reason or str(outcome))
        elif isinstance(outcome, WaitTimeoutError):
            self.interrupted(
                f"Stopped waiting after {outcome.timeout:g} s (last status "
                f"{outcome.last_status or 'unknown'}); the task may still finish on the server."
            )
        else:
            self.errored(outcome)

    # -- endings --

    def succeeded(self, task: Task) -> None:
        with self._lock:
            if not self._settle("success"):
                return
            if self.keep and task.outputs:
                from .images import download_refusal

                why = download_refusal(task.outputs, self.api_base_url)
                if why is not None:  # listed with the reason, never fetched
                    self.keep, self.not_kept = False, "not downloaded: " + self._scrub(why)
            self._guard("record the success", lambda: self._write_end("success", task=task))
            if self.keep and task.outputs and self.problem is None and self.run_id is not None:
                try:
                    self.images = self.store.keep_images(self.run_id)
                    self.images.add_done_callback(lambda _: self._changed())
                except (StoreError, KeyError, RuntimeError) as exc:
                    self._fail("keep the images", exc)
        self._changed()

    def failed(self, reason: str, *, task: Task | None = None) -> None:
        """The API reported FAILURE with ``reason``."""
        with self._lock:
            if not self._settle("failure"):
                return
            text = self._scrub(reason)
            self._guard(
                "record the failure", lambda: self._write_end("failure", task=task, reason=text)
            )
        self._changed()

    def errored(self, error: BaseException | str) -> None:
        """The run could not go on (refused, broken connection, bad answer)."""
        if isinstance(error, BaseException):
            text = str(error) or type(error).__name__
            if not isinstance(error, SirayError):
                text = f"{type(error).__name__}: {text}"
        else:
            text = error
        with self._lock:
            if not self._settle("error"):
                return
            scrubbed = self._scrub(text)
            self._guard("record the error", lambda: self._write_end("error", error=scrubbed))
        self._changed()

    def cancelled(self, note: str = "") -> None:
        """The user stopped following the run."""
        with self._lock:
            if not self._settle("cancelled"):
                return
            text = self._scrub(note) or (
                "Stopped following the task; it may still finish on the server."
                if self.task_id
                else "Stopped before the task was created."
            )
            self._guard("record the cancel", lambda: self._write_end("cancelled", error=text))
        self._changed()

    def interrupted(self, note: str) -> None:
        """Following stopped without the user asking (a timeout, the process ending)."""
        with self._lock:
            if not self._settle("interrupted"):
                return
            text = self._scrub(note)
            self._guard(
                "record the interruption", lambda: self._write_end("interrupted", error=text)
            )
        self._changed()

    # -- the watchdog --

    @property
    def stalled(self) -> bool:
        return self.state == "stalled"

    def check_stall(self) -> None:
        """Called by the watchdog thread (or a widget's timer): mark a stall in the store."""
        with self._lock:
            if self._watch is None or self.state != "running":
                if self.state not in ACTIVE_STATES:
                    WATCHDOG.discard(self)
                return
            if self._watch.check() != "stalled":
                return
            self.state = "stalled"
            self._guard("record the stall", lambda: self._write_state("stalled"))
        self._changed()

    def keep_waiting(self) -> None:
        """The user chose to keep waiting for a stalled run: it counts as running again."""
        with self._lock:
            if self._watch is None:
                return
            if self._watch.snooze() == "resumed" and self.state == "stalled":
                self.state = "running"
                self._guard("record keep-waiting", lambda: self._write_state("running"))
        self._changed()

    # -- results --

    def run(self) -> Run:
        """The run as stored now."""
        if self.run_id is None:
            raise StoreError(f"the run was not recorded: {self.problem}")
        return self.store.get(self.run_id)

    def wait_images(self, timeout: float | None = None) -> Run:
        """Block until the images are kept (or their download failed); the run afterwards."""
        if self.images is not None:
            return self.images.result(timeout)
        return self.run()

    # -- internals --

    def _settle(self, state: str) -> bool:
        """Move to a final state once; False if already final."""
        if self.state not in ACTIVE_STATES:
            return False
        self.state = state
        WATCHDOG.discard(self)
        return True

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(self)
        except Exception:
            logger.exception("the on_change callback of a run recorder raised")

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        if self.problem is not None:
            return
        try:
            action()
        except (StoreError, OSError) as exc:
            self._fail(what, exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        self.problem = f"could not {what}: {exc}"
        logger.warning("run history: %s (this run is not fully recorded)", self.problem)

    def _insert(
        self,
        now: float,
        body: Mapping[str, Any],
        params: Mapping[str, Any],
        prompt: str,
        negative: str,
        seed: Any,
        source: str | None,
        sweep_id: str | None,
        cell_key: str | None,
    ) -> None:
        with self.store._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (run_uid, model, request_json, params_json, prompt, "
                "negative_prompt, aspect_ratio, seed, search, origin, source, sweep_id, "
                "cell_key, state, created_at, updated_at, changed_at, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?, ?)",
                (
                    self.run_uid,
                    self.model,
                    self.request_json,
                    json.dumps(params, ensure_ascii=False),
                    prompt,
                    negative,
                    str(params.get("aspect_ratio", "")),
                    seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                    search_text(prompt, negative, "", (), None),
                    self.origin,
                    guess_source() if source is None else source,
                    sweep_id,
                    cell_key,
                    now,
                    now,
                    now,
                    owner.current(),
                ),
            )
            self.run_id = cursor.lastrowid
            self._event(db, now, "starting", "", 0)

    def _event(self, db: Any, at: float, state: str, status: str, progress: int) -> None:
        db.execute(
            "INSERT INTO run_events (run_id, at, state, status, progress) VALUES (?, ?, ?, ?, ?)",
            (self.run_id, at, state, status, progress),
        )

    def _submitted(self, task_id: str) -> None:
        now = time.time()
        price = self.unit_price
        if price is None and self.store.price_lookup is not None:
            try:
                price = ledger.check_price(self.store.price_lookup(self.model))
            except Exception:  # a price lookup must not cost the run its record
                logger.exception("the store's price lookup raised for %s", self.model)
        with self.store._write() as db:
            existing = db.execute(
                "SELECT id FROM runs WHERE task_id = ? AND id != ?", (task_id, self.run_id)
            ).fetchone()
            if existing is not None:
                # The same task recorded twice (two recorders for one run): keep one row.
                db.execute("DELETE FROM runs WHERE id = ?", (self.run_id,))
                self.run_id = int(existing[0])
                db.execute(
                    "UPDATE runs SET owner = ?, updated_at = ? WHERE id = ?",
                    (owner.current(), now, self.run_id),
                )
                return
            db.execute(
                "UPDATE runs SET task_id = ?, state = 'running', submitted_at = ?, "
                "updated_at = ?, changed_at = ?, search = search || ? WHERE id = ?",
                (task_id, now, now, now, task_id.casefold(), self.run_id),
            )
            self._event(db, now, "running", "", 0)
            ledger.write(db, self.model, 1, price, ledger.today())

    def _write_reading(self, task: Task) -> None:
        now = time.time()
        with self.store._write() as db:
            db.execute(
                "UPDATE runs SET state = ?, status = ?, progress = ?, fail_reason = ?, "
                "outputs_json = ?, api_submit_time = ?, api_start_time = ?, api_finish_time = ?, "
                "task_id = coalesce(task_id, ?), updated_at = ?, changed_at = ? WHERE id = ?",
                (
                    self.state,
                    task.status.value,
                    task.progress,
                    self._scrub(task.fail_reason),
                    json.dumps(list(task.outputs)),
                    _ts(task.submit_time),
                    _ts(task.start_time),
                    _ts(task.finish_time),
                    task.task_id,
                    now,
                    now,
                    self.run_id,
                ),
            )
            self._event(db, now, self.state, task.status.value, task.progress)

    def _write_state(self, state: str, *, own: bool = False) -> None:
        now = time.time()
        with self.store._write() as db:
            db.execute(
                "UPDATE runs SET state = ?, updated_at = ?, owner = CASE WHEN ? THEN ? ELSE owner "
                "END, finished_at = CASE WHEN ? THEN NULL ELSE finished_at END WHERE id = ?",
                (state, now, own, owner.current(), own, self.run_id),
            )
            status, progress = self._last or ("", 0)
            self._event(db, now, state, status, progress)

    def _write_end(
        self, state: str, *, task: Task | None = None, reason: str = "", error: str = ""
    ) -> None:
        now = time.time()
        with self.store._write() as db:
            if task is not None:
                seed = _seed_of(task)
                db.execute(
                    "UPDATE runs SET status = ?, progress = ?, outputs_json = ?, "
                    "api_submit_time = ?, api_start_time = ?, api_finish_time = ?, "
                    "seed_used = coalesce(?, seed_used) WHERE id = ?",
                    (
                        task.status.value,
                        task.progress,
                        json.dumps(list(task.outputs)),
                        _ts(task.submit_time),
                        _ts(task.start_time),
                        _ts(task.finish_time),
                        seed,
                        self.run_id,
                    ),
                )
                if state == "success" and task.outputs:
                    db.executemany(
                        "INSERT OR IGNORE INTO images (run_id, idx, url, error) "
                        "VALUES (?, ?, ?, ?)",
                        [
                            (self.run_id, i, url, self.not_kept)
                            for i, url in enumerate(task.outputs, start=1)
                        ],
                    )
            images_state = (
                "pending" if state == "success" and task and task.outputs and self.keep else "none"
            )
            db.execute(
                "UPDATE runs SET state = ?, fail_reason = CASE WHEN ? != '' THEN ? ELSE "
                "fail_reason END, error = ?, finished_at = ?, updated_at = ?, owner = NULL, "
                "images_state = ?, status = CASE WHEN ? = 'failure' THEN 'FAILURE' ELSE status "
                "END, seed_used = coalesce(seed_used, CASE WHEN seed >= 0 THEN seed END) "
                "WHERE id = ?",
                (state, reason, reason, error, now, now, images_state, state, self.run_id),
            )
            row = db.execute(
                "SELECT status, progress FROM runs WHERE id = ?", (self.run_id,)
            ).fetchone()
            self._event(db, now, state, row[0], row[1])


def _cancelled() -> type[BaseException]:
    import asyncio  # already loaded wherever a run can be cancelled

    return asyncio.CancelledError


def _ts(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _seed_of(task: Task) -> int | None:
    """The seed the API says it used, if its answer has one."""
    for key in ("seed", "seed_used"):
        value = task.raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    return None
