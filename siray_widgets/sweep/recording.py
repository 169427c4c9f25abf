"""Recording a sweep's cells in the run store: one recorder per cell, and their kept images.

Every cell is a run of origin ``"sweep"``, recorded with the sweep's id and the cell's key
through the store's one recording function (:func:`~siray_widgets.store.start_recording`),
which also enters the task in the spend ledger when it is created. A cell whose task an
earlier run created is followed again through the store's :meth:`~RunStore.resume` (its run
is taken over, not recorded twice). With recording off (``SIRAY_WIDGETS_HISTORY=0``,
``store=False``) or a store that cannot be opened, nothing is recorded and nothing is
resumed from the store; the sweep runs all the same.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..errors import SirayError
from .state import CellRun

if TYPE_CHECKING:
    from ..config import Secret
    from ..store import NullRecorder, Recorder, Run, RunStore

logger = logging.getLogger("siray_widgets.sweep")


class CellRecording:
    """Where one sweep's cells are recorded (see the module docstring)."""

    def __init__(
        self,
        sweep_id: str,
        store: RunStore | Literal[False] | None,
        *,
        keep_images: bool = True,
        stall_after: float | None = None,
        price: Decimal | None = None,
    ) -> None:
        self.sweep_id = sweep_id
        self.keep_images = keep_images
        self._option = store
        self._stall_after = stall_after
        #: Price of one task for the ledger (None: unknown, or free: the store decides).
        self._price = None if price is None or price == 0 else float(price)
        self._store: RunStore | Literal[False] | None = None
        self._images: dict[str, concurrent.futures.Future[Run]] = {}

    def store(self) -> RunStore | None:
        """The run store (None: recording is off or impossible), opened on first use."""
        if self._store is None:
            self._store = self._open()
        return self._store or None

    def _open(self) -> RunStore | Literal[False]:
        from ..store import StoreError, open_store, recording_enabled

        if self._option is False or not recording_enabled():
            return False
        if self._option is not None:
            return self._option
        try:
            return open_store()
        except StoreError as exc:
            logger.warning("sweep %s is not recorded (no resume): %s", self.sweep_id, exc)
            return False

    def start(
        self, run: CellRun, secret: Secret | None, api_base_url: str | None = None
    ) -> Recorder | NullRecorder:
        """A recorder for a cell about to be sent (before its create request) to the API at
        ``api_base_url`` (which image URLs the store may download)."""
        from ..config import redact
        from ..store import NullRecorder, start_recording

        store = self.store()
        if store is None:
            return NullRecorder()
        recorder = start_recording(
            run.cell.request,
            origin="sweep",
            store=store,
            sweep_id=self.sweep_id,
            cell_key=run.key,
            unit_price=self._price,
            keep_images=self.keep_images,
            stall_after=self._stall_after,
            scrub=lambda text: redact(text, secret),
            api_base_url=api_base_url,
        )
        attach_run_id(run, recorder)
        return recorder

    def resume(self, run: CellRun) -> Recorder | NullRecorder:
        """A recorder that takes over the earlier run of a cell whose task is followed again."""
        from ..store import NullRecorder

        store = self.store()
        recorder: Recorder | NullRecorder = NullRecorder()
        if store is not None and run.run_id is not None:
            try:
                recorder = store.resume(run.run_id)
            except (KeyError, ValueError, SirayError) as exc:
                logger.info("sweep %s: run %s not taken over: %s", self.sweep_id, run.run_id, exc)
        recorder.task_id = run.task_id
        return recorder

    def watch_images(
        self,
        run: CellRun,
        recorder: Recorder | NullRecorder,
        kept: Callable[[CellRun, Run], None],
    ) -> None:
        """Call ``kept(run, stored_run)`` once the store has kept the cell's images."""
        future = getattr(recorder, "images", None)
        if not isinstance(future, concurrent.futures.Future):
            return
        self._images[run.key] = future

        def done(finished: concurrent.futures.Future[Any]) -> None:
            try:
                stored = finished.result()
            except Exception:  # a failed download says so in the store; nothing to show
                return
            kept(run, stored)

        future.add_done_callback(done)

    def wait_images(self, timeout: float | None) -> None:
        """Block until every image download started so far has ended (or ``timeout``)."""
        futures = list(self._images.values())
        if futures:
            concurrent.futures.wait(futures, timeout)


def attach_run_id(run: CellRun, recorder: Recorder | NullRecorder) -> None:
    """Note the store's row id of the cell's run (a no-op without one)."""
    run_id = getattr(recorder, "run_id", None)
    if isinstance(run_id, int):
        run.run_id = run_id
