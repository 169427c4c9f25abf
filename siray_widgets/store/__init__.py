"""The run store: every run, its images and the spend ledger, in the user's data folder.

- :class:`RunStore` / :func:`open_store`: the database and the files (see :mod:`.runs`).
- :class:`Recorder` (from :meth:`RunStore.record`): the one way any origin records a run;
  :class:`RecordingHooks` plugs it into the client's ``generate()``.
- :class:`RunQuery` and :class:`Page`: finding runs; compact rows for a gallery.
- :class:`SpendLedger` (``store.ledger``): tasks sent and their estimated cost per day and model.
- :class:`StallWatch` / :func:`default_stall_after`: the stuck-task rule.

The user-facing API is :class:`siray_widgets.History`; this package is what it, the widget,
the command line and sweeps build on.
"""

from __future__ import annotations

from .db import SCHEMA_VERSION, StoreError
from .ledger import SpendLedger, SpendRow
from .model import ACTIVE_STATES, ORIGINS, RUN_STATES, Run, RunEvent, StoredImage
from .paths import HOME_ENV, data_home, file_stem
from .query import Page, RunQuery, parse_when
from .recorder import HISTORY_ENV, Recorder, RecordingHooks, recording_enabled
from .runs import DEFAULT_MAX_BYTES, Limits, PurgeReport, RunStore, open_store
from .watchdog import StallWatch, default_stall_after

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_MAX_BYTES",
    "HISTORY_ENV",
    "HOME_ENV",
    "ORIGINS",
    "RUN_STATES",
    "SCHEMA_VERSION",
    "Limits",
    "Page",
    "PurgeReport",
    "Recorder",
    "RecordingHooks",
    "Run",
    "RunEvent",
    "RunQuery",
    "RunStore",
    "SpendLedger",
    "SpendRow",
    "StallWatch",
    "StoreError",
    "StoredImage",
    "data_home",
    "default_stall_after",
    "file_stem",
    "open_store",
    "parse_when",
    "recording_enabled",
]
