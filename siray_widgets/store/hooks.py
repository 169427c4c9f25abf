"""The client's run hooks that record into the run store, and the switch that turns recording off.

Kept apart from the store itself so that wiring them into the client (``siray_widgets`` does
it when the client is imported from the package) costs nothing: the store is imported and
opened on the first run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..schema import AnyRequest
    from .recorder import Recorder
    from .runs import RunStore

logger = logging.getLogger("siray_widgets.store")

#: Environment variable: ``0``, ``off``, ``false`` or ``no`` turns recording off.
HISTORY_ENV: Final = "SIRAY_WIDGETS_HISTORY"
#: Where a run can come from.
ORIGINS: Final[tuple[str, ...]] = ("widget", "cli", "script", "sweep")


def recording_enabled() -> bool:
    """False when ``SIRAY_WIDGETS_HISTORY`` says off."""
    value = os.environ.get(HISTORY_ENV, "").strip().lower()
    return value not in ("0", "off", "false", "no")


class NullRecorder:
    """Takes a recorder's calls and does nothing: what :func:`start_recording` gives when
    recording is off or the store cannot be opened (:attr:`problem` says why, or None)."""

    state = "starting"
    run_id = None
    task_id: str | None = None
    images = None

    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem

    def submitted(self, task_id: str) -> None:
        self.task_id = task_id

    def reading(self, task: Any) -> None:
        pass

    def finished(self, outcome: Any) -> None:
        pass

    def keep_waiting(self) -> None:
        pass

    def check_stall(self) -> None:
        pass

    def wait_images(self, timeout: float | None = None) -> None:
        return None


def start_recording(
    request: AnyRequest | Mapping[str, Any],
    *,
    origin: str,
    store: RunStore | None = None,
    warn: bool = True,
    **record: Any,
) -> Recorder | NullRecorder:
    """Start recording a run: the one call every origin makes (widget, command line, client
    hooks, sweeps). Never raises for the store's sake: with recording off
    (``SIRAY_WIDGETS_HISTORY=0``) or a store that cannot be opened, it returns a
    :class:`NullRecorder` (and, with ``warn``, logs one warning per process for the latter;
    :attr:`NullRecorder.problem` says why). ``record`` goes
    to :meth:`RunStore.record` (``source``, ``sweep_id``, ``cell_key``, ``unit_price``,
    ``keep_images``, ``stall_after``, ``scrub``, ``on_change``, ``api_base_url``)."""
    if not recording_enabled():
        return NullRecorder()
    from .db import StoreError
    from .runs import open_store

    try:
        chosen = store if store is not None else open_store()
        return chosen.record(request, origin=origin, **record)
    except StoreError as exc:
        global _warned
        if warn and not _warned:
            _warned = True
            logger.warning("run history is off: %s", exc)
        return NullRecorder(str(exc))


_warned = False


class RecordingHooks:
    """The client's run hooks (``SirayClient(hooks=...)``): each ``generate()`` is recorded.

    ``siray_widgets`` installs one (origin "script") as the client's default when the client
    is imported from the package; pass ``hooks=False`` to a client to record nothing, or
    ``RecordingHooks(origin="sweep", sweep_id=...)`` to record as something else. The store
    opens on the first run (``store`` or the shared one of the data folder).
    """

    def __init__(
        self,
        origin: str = "script",
        *,
        store: RunStore | None = None,
        **record: Any,
    ) -> None:
        if origin not in ORIGINS:
            raise ValueError(f"unknown origin {origin!r}; known: {', '.join(ORIGINS)}")
        self.origin = origin
        self._store = store
        self._record = record

    def start_run(
        self, request: AnyRequest, scrub: Callable[[str], str]
    ) -> Recorder | NullRecorder | None:
        recorder = start_recording(
            request, origin=self.origin, store=self._store, scrub=scrub, **self._record
        )
        return None if isinstance(recorder, NullRecorder) else recorder
