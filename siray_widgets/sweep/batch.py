"""Batch runs: one run per line of a prompt list, as a sweep with one prompt axis.

A prompt list is text (one prompt per line), a Python list, or a file: a ``.csv`` file has a
``prompt`` column and, optionally, columns named after request fields that set them per row
(``prompt,aspect_ratio,stylize``); a CSV without a header holds one prompt per row. Any other
file is read as text, one prompt per line. Each prompt may end in a suffix.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

from ..schema import FIELD_NAMES, FIELDS
from ..suffix import FLAG_FIELDS
from .axes import SLOTS, prompt_axis
from .definition import SweepDefinition, define_sweep
from .errors import SweepError

#: Largest prompt-list file read.
MAX_LIST_BYTES = 16 * 1024 * 1024

PromptSource: TypeAlias = "str | os.PathLike[str] | Iterable[str | Mapping[str, Any]]"


def read_prompt_list(source: PromptSource) -> list[str | dict[str, Any]]:
    """The prompts (or CSV rows) in ``source``: text, a path, or a list.

    Text is split into lines (blank lines are skipped); a path (``pathlib.Path``) is read as
    described in this module's documentation.
    """
    if isinstance(source, str):
        return [line.strip() for line in source.splitlines() if line.strip()]
    if isinstance(source, os.PathLike):
        return read_prompt_file(source)
    items: list[str | dict[str, Any]] = []
    for item in source:
        if isinstance(item, str):
            items.append(item)
        elif isinstance(item, Mapping):
            items.append(dict(item))
        else:
            raise SweepError("prompt list", item, "must hold prompts (text) or rows (mappings)")
    return items


def read_prompt_file(path: str | os.PathLike[str]) -> list[str | dict[str, Any]]:
    """The prompts in a ``.csv`` or text file."""
    file = Path(path)
    where = f"prompt list {file.name}"
    try:
        if file.stat().st_size > MAX_LIST_BYTES:
            raise SweepError(where, None, f"is larger than {MAX_LIST_BYTES // 2**20} MB")
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(where, None, f"cannot be read: {exc}") from None
    if file.suffix.lower() == ".csv":
        return read_prompt_csv(text, where=where)
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_prompt_csv(text: str, *, where: str = "prompt list") -> list[str | dict[str, Any]]:
    """Rows of a prompt CSV: dicts with a header naming a ``prompt`` column, else strings."""
    try:
        reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise SweepError(where, None, f"is not valid CSV: {exc}") from None
    if not rows:
        return []
    header = [_column(cell) for cell in rows[0][1]]
    if "prompt" not in header:
        if any(len(row) != 1 for _, row in rows):
            raise SweepError(
                where,
                None,
                "has several columns but no header row naming a 'prompt' column; add one "
                "(prompt, and any request field), or quote prompts that contain commas",
            )
        return [row[0].strip() for _, row in rows]
    for cell, name in zip(rows[0][1], header, strict=True):
        if name is None:
            raise SweepError(
                where,
                cell,
                "is not a column this list can have (prompt, or a field: "
                f"{', '.join(FIELD_NAMES)})",
            )
    if len(set(header)) != len(header):
        raise SweepError(where, None, "names a column twice in its header")
    out: list[str | dict[str, Any]] = []
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise SweepError(where, None, f"line {line} has more cells than the header")
        item = {
            name: cell.strip()
            for name, cell in zip(header, row, strict=False)
            if name is not None and (cell.strip() or name == "prompt")
        }
        if not item.get("prompt"):
            raise SweepError(where, None, f"line {line} has no prompt")
        out.append(item)
    return out


def batch_sweep(prompts: PromptSource, *, slot: str = "y", **options: Any) -> SweepDefinition:
    """A sweep with one run per prompt: the prompts are an axis (rows, by default).

    ``options`` are those of :func:`~siray_widgets.sweep.define_sweep` (other axes, base,
    seed, replicates, presets).
    """
    if slot not in SLOTS:
        raise SweepError("batch", slot, "is not an axis slot (x, y or z)")
    if options.get(slot) is not None:
        raise SweepError(f"{slot.upper()} axis", None, "holds the prompt list in a batch")
    if "prompt" in options:
        raise SweepError("batch", None, "takes its prompts from the list, not prompt=")
    items = read_prompt_list(prompts)
    if not items:
        raise SweepError("prompt list", None, "has no prompts (every line is blank)")
    axis = prompt_axis(items, slot=slot)
    return define_sweep(None, **{**options, slot: axis})


def _column(cell: str) -> str | None:
    """The field a CSV column is named after: a field name or label, or a suffix flag."""
    key = " ".join(cell.replace("_", " ").split()).casefold()
    for f in FIELDS:
        if key in (" ".join(f.name.replace("_", " ").split()), f.label.casefold()):
            return f.name
    return FLAG_FIELDS.get(key.removeprefix("--"))
