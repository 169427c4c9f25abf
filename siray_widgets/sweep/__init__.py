"""Sweeps: a base request, up to three axes of values, expanded into labelled cells.

This package holds the pure logic (nothing here sends a request):

- :mod:`.values`: value syntaxes (``0-1000 (+250)``, ``0-1000 [5]``, ``0, 250, .., 1000``,
  enums by name), validated against the schema;
- :mod:`.axes`: the kinds of axis (field, prompt variants, presets, prompt S/R, replicates);
- :mod:`.definition`: :class:`SweepDefinition`, its cells, counts, keys and JSON;
- :mod:`.batch`: prompt lists (text, Python lists, CSV or text files) as a sweep.
"""

from __future__ import annotations

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

__all__ = [
    "IMAGES_PER_TASK",
    "MAX_AXIS_VALUES",
    "MAX_CELLS",
    "Axis",
    "Cell",
    "Coordinate",
    "SweepCounts",
    "SweepDefinition",
    "SweepError",
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
    "read_prompt_csv",
    "read_prompt_file",
    "read_prompt_list",
    "replicate_axis",
    "request_key",
    "search_replace_axis",
]
