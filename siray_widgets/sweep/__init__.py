"""Sweeps: a base request, up to three axes of values, expanded into labelled cells.

This package holds the pure logic (nothing here sends a request):

- :mod:`.values`: value syntaxes (``0-1000 (+250)``, ``0-1000 [5]``, ``0, 250, .., 1000``,
  enums by name), validated against the schema;
- :mod:`.axes`: the kinds of axis (field, prompt variants, presets, prompt S/R, replicates);
- :mod:`.definition`: :class:`SweepDefinition`, its cells, counts, keys and JSON;
- :mod:`.batch`: prompt lists (text, Python lists, CSV or text files) as a sweep.

and, loaded on first use, what runs one:

- :mod:`.runner`: :class:`SweepRun` (plan, start, progress, cancel, retry, results),
  :func:`run_sweep` and :func:`run_sweep_sync`; with :mod:`.gate` (the shared back-off),
  :mod:`.state` (cell states), :mod:`.resume` (what earlier runs did) and :mod:`.results`;
- :mod:`.contact_sheet`: the labelled PNG of a sweep, with the definition in its metadata.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .axes import (
    Axis,
    as_axis,
    field_axis,
    make_axis,
    parse_axis,
    preset_axis,
    prompt_axis,
    replicate_axis,
    search_replace_axis,
)
from .batch import batch_sweep, read_prompt_csv, read_prompt_file, read_prompt_list
from .definition import (
    IMAGES_PER_TASK,
    MAX_CELLS,
    Cell,
    Coordinate,
    SweepCounts,
    SweepDefinition,
    define_sweep,
    request_key,
)
from .errors import SweepError
from .values import MAX_AXIS_VALUES, format_values, parse_value, parse_values

#: Names loaded on first use (the runner pulls in asyncio machinery, the sheet Pillow).
_LAZY: dict[str, str] = {
    "DEFAULT_CONCURRENCY": "runner",
    "ConfirmationRequired": "plan",
    "SweepPlan": "plan",
    "SweepRun": "runner",
    "active_sweeps": "runner",
    "run_sweep": "runner",
    "run_sweep_sync": "runner",
    "start_sweep": "runner",
    "CellRun": "state",
    "Progress": "state",
    "read_contact_sheet": "contact_sheet",
    "render_contact_sheet": "contact_sheet",
    "save_contact_sheet": "contact_sheet",
    "with_family_seed": "resume",
}

__all__ = [
    "DEFAULT_CONCURRENCY",
    "IMAGES_PER_TASK",
    "MAX_AXIS_VALUES",
    "MAX_CELLS",
    "Axis",
    "Cell",
    "CellRun",
    "ConfirmationRequired",
    "Coordinate",
    "Progress",
    "SweepCounts",
    "SweepDefinition",
    "SweepError",
    "SweepPlan",
    "SweepRun",
    "active_sweeps",
    "as_axis",
    "batch_sweep",
    "define_sweep",
    "field_axis",
    "format_values",
    "make_axis",
    "parse_axis",
    "parse_value",
    "parse_values",
    "preset_axis",
    "prompt_axis",
    "read_contact_sheet",
    "read_prompt_csv",
    "read_prompt_file",
    "read_prompt_list",
    "render_contact_sheet",
    "replicate_axis",
    "request_key",
    "run_sweep",
    "run_sweep_sync",
    "save_contact_sheet",
    "search_replace_axis",
    "start_sweep",
    "with_family_seed",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'siray_widgets.sweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .contact_sheet import read_contact_sheet, render_contact_sheet, save_contact_sheet
    from .plan import ConfirmationRequired, SweepPlan
    from .resume import with_family_seed
    from .runner import (
        DEFAULT_CONCURRENCY,
        SweepRun,
        active_sweeps,
        run_sweep,
        run_sweep_sync,
        start_sweep,
    )
    from .state import CellRun, Progress
