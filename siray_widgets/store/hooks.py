"""The client's run hooks that record into the run store, and the switch that turns recording off.

Kept apart from the store itself so that wiring them into the client (``siray_widgets`` does
it when the client is imported from the package) costs nothing: the store is imported and
opened on the first run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..schema import ImageRequest
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
        self._warned = False

    def start_run(self, request: ImageRequest, scrub: Callable[[str], str]) -> Recorder | None:
        if not recording_enabled():
            return None
        from .db import StoreError
        from .runs import open_store

        try:
            store = self._store if self._store is not None else open_store()
            return store.record(request, origin=self.origin, scrub=scrub, **self._record)
        except StoreError as exc:
            if not self._warned:
                self._warned = True
                logger.warning("run history is off for this client: %s", exc)
            return None
