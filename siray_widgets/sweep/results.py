"""A sweep's results as a tidy table, and a cell's image bytes.

One row per cell (one task, four images): the axes' values under the axes' names, every
request field, and what happened (state, task id, reason, image URLs, kept files). Rows are
plain dicts, so they serialize to JSON and CSV as they are; :func:`to_pandas` makes a
DataFrame of them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from .definition import SweepDefinition
from .state import CellRun

if TYPE_CHECKING:
    import pandas

_KIND_COLUMNS: Final = {
    "prompt": "variant",
    "preset": "preset",
    "prompt_sr": "replacement",
    "replicate": "replicate",
}


def axis_columns(definition: SweepDefinition) -> list[str | None]:
    """The column each axis adds, in X, Y, Z order: None for a field axis (the field's own
    column holds its value), else ``variant`` (prompt variants), ``preset``, ``replacement``
    (prompt S/R) or ``replicate``."""
    return [
        None if axis.kind == "field" else _KIND_COLUMNS[axis.kind] for _, axis in definition.axes
    ]


def result_rows(definition: SweepDefinition, cells: Sequence[CellRun]) -> list[dict[str, Any]]:
    """One dict per cell: position, the axes' labels, the request fields, the outcome."""
    columns = axis_columns(definition)
    rows = []
    for run in cells:
        cell = run.cell
        row: dict[str, Any] = {"index": cell.index, "key": cell.key, "x": cell.x, "y": cell.y}
        row["z"] = cell.z
        for column, coordinate in zip(columns, cell.coordinates, strict=True):
            if column is not None:
                row[column] = coordinate.label
        row.update(cell.request.to_dict())
        row["replicate"] = cell.replicate
        row.update(
            {
                "state": run.state,
                "status": run.status,
                "progress": run.progress,
                "task_id": run.task_id,
                "reason": run.reason,
                "origin": run.origin,
                "seed_used": run.seed_used,
                "seconds": run.seconds,
                "run_id": run.run_id,
                "outputs": list(run.outputs),
                "files": list(run.files),
            }
        )
        rows.append(row)
    return rows


def to_pandas(rows: Sequence[dict[str, Any]]) -> pandas.DataFrame:
    """The rows as a DataFrame; a clear ImportError without pandas."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "to_pandas() needs pandas: pip install pandas (or siray-widgets[pandas]); "
            "sweep.results is the same table as a list of dicts"
        ) from None
    return pandas.DataFrame(list(rows))


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV text (lists joined with spaces)."""
    if not rows:
        return ""
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: " ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                for k, v in row.items()
            }
        )
    return buffer.getvalue()


def cell_images(run: CellRun) -> list[bytes]:
    """The bytes of a successful cell's images: the run store's kept copies when it has all
    of them, else downloaded from the output URLs (checked as the store checks them)."""
    if run.state != "success":
        raise ValueError(f"cell {run.index} has no images: it is {run.state}")
    if run.files and len(run.files) == len(run.outputs):
        try:
            return [_read(path) for path in run.files]
        except OSError:
            pass  # removed since: download them
    from ..store.images import fetch

    return [fetch(url) for url in run.outputs]


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
