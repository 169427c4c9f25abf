"""The run store: every run, its images and the spend ledger, in the user's data folder.

- :class:`RunStore` / :func:`open_store`: the database and the files (see :mod:`.runs`).
- :func:`start_recording` -> :class:`Recorder` (or a :class:`NullRecorder` when recording is
  off or impossible): the one way any origin records a run; :class:`RecordingHooks` plugs it
  into the client's ``generate()``.
- :class:`RunQuery` and :class:`Page`: finding runs; compact rows for a gallery.
- :class:`SpendLedger` (``store.ledger``): tasks sent and their estimated cost per day and model.
- :class:`StallWatch` / :func:`default_stall_after`: the stuck-task rule.

The user-facing API is :class:`siray_widgets.History`; this package is what it, the widget,
the command line and sweeps build on. Names load lazily (the client's default hooks come
from here, and wiring them must not import SQLite).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

#: The price of one task of a model for the spend ledger (None: unknown), given to every store
#: opened as its ``price_lookup``. The package root sets it to the model registry's prices;
#: the store itself knows no prices.
default_price_lookup: Callable[[str], float | None] | None = None

_EXPORTS: dict[str, str] = {
    "SCHEMA_VERSION": "db",
    "StoreError": "db",
    "SpendLedger": "ledger",
    "SpendRow": "ledger",
    "ACTIVE_STATES": "model",
    "ORIGINS": "model",
    "RUN_STATES": "model",
    "Run": "model",
    "RunEvent": "model",
    "StoredImage": "model",
    "HOME_ENV": "paths",
    "data_home": "paths",
    "file_stem": "paths",
    "Page": "query",
    "RunQuery": "query",
    "parse_when": "query",
    "Recorder": "recorder",
    "HISTORY_ENV": "hooks",
    "RecordingHooks": "hooks",
    "NullRecorder": "hooks",
    "start_recording": "hooks",
    "recording_enabled": "hooks",
    "DEFAULT_MAX_BYTES": "runs",
    "Limits": "runs",
    "PurgeReport": "runs",
    "RunStore": "runs",
    "open_store": "runs",
    "StallWatch": "watchdog",
    "default_stall_after": "watchdog",
}

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_MAX_BYTES",
    "HISTORY_ENV",
    "HOME_ENV",
    "ORIGINS",
    "RUN_STATES",
    "SCHEMA_VERSION",
    "Limits",
    "NullRecorder",
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
    "start_recording",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siray_widgets.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .db import SCHEMA_VERSION, StoreError
    from .hooks import (
        HISTORY_ENV,
        NullRecorder,
        RecordingHooks,
        recording_enabled,
        start_recording,
    )
    from .ledger import SpendLedger, SpendRow
    from .model import ACTIVE_STATES, ORIGINS, RUN_STATES, Run, RunEvent, StoredImage
    from .paths import HOME_ENV, data_home, file_stem
    from .query import Page, RunQuery, parse_when
    from .recorder import Recorder
    from .runs import DEFAULT_MAX_BYTES, Limits, PurgeReport, RunStore, open_store
    from .watchdog import StallWatch, default_stall_after
