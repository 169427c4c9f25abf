"""Export runs: their images, ``manifest.json`` and ``manifest.csv``, into a folder.

Each image is copied from the store (its parameters are already embedded, see
:mod:`siray_widgets.metadata`); an image the store could not keep is downloaded again if its
URL still works, else listed with an empty ``file`` and the reason.

``manifest.csv`` has one row per image: ``file``, ``task_id``, ``index``, ``url``, every
request field in a column named as the field, then ``seed_used``, ``state``, ``status``,
times (ISO 8601, UTC) and the user's marks (``tags`` as a JSON array). ``manifest.json``
holds the same rows (``"images"``) and every exported run in full (``"runs"``). Text cells
a spreadsheet would run as a formula (starting ``=``, ``+``, ``-``, ``@``) are written with a
leading ``'`` in the CSV only (:func:`csv_value` / :func:`csv_unescape`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .. import __version__
from ..metadata import ImageParams
from ..schema import FIELD_NAMES
from .images import EXTENSIONS, ImageError, check, fetch
from .model import Run, StoredImage
from .paths import atomic_write, file_stem

if TYPE_CHECKING:
    from .runs import RunStore

MANIFEST_JSON: Final = "manifest.json"
MANIFEST_CSV: Final = "manifest.csv"
#: Columns of manifest.csv, in order.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "file",
    "task_id",
    "index",
    "url",
    *FIELD_NAMES,
    "seed_used",
    "state",
    "status",
    "fail_reason",
    "created_at",
    "submitted_at",
    "finished_at",
    "origin",
    "source",
    "starred",
    "rating",
    "tags",
    "note",
    "width",
    "height",
    "sha256",
    "error",
)
_TEXT_COLUMNS: Final = frozenset(
    {"prompt", "negative_prompt", "fail_reason", "source", "tags", "note", "error", "task_id"}
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    files: list[Path]
    manifest_json: Path
    manifest_csv: Path
    runs: int
    #: Images that could not be exported (listed in the manifest with the reason).
    missing: int

    def __str__(self) -> str:
        text = f"exported {len(self.files)} image(s) of {self.runs} run(s) to {self.folder}"
        return text + (f"; {self.missing} image(s) unavailable" if self.missing else "")


def csv_value(column: str, value: Any) -> str:
    """A value as manifest.csv writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
    if column in _TEXT_COLUMNS and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_unescape(column: str, text: str) -> str:
    """Undo :func:`csv_value`'s formula guard."""
    if column in _TEXT_COLUMNS and text.startswith("'") and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _image_bytes(run: Run, image: StoredImage) -> tuple[bytes, str]:
    """The image with its parameters embedded: the kept copy, or downloaded again."""
    if image.path:
        try:
            data = Path(image.path).read_bytes()
            return data, image.media_type or "image/png"
        except OSError:
            pass  # deleted behind the store's back: try the URL
    params = ImageParams(run.request, run.task_id, run.seed_used, image.index)
    checked = check(fetch(image.url, timeout=30.0), params)
    return checked.data, checked.media_type


def export_runs(store: RunStore, runs: Sequence[Run], folder: Path) -> ExportResult:
    """Write the runs' images and the manifests into ``folder`` (created if needed)."""
    folder = folder.expanduser()
    target = folder.resolve()
    if target == store.home or store.home in target.parents:
        raise ValueError(f"export into a folder outside the data folder {store.home}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create {folder}: {exc.strerror or exc}") from None
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    missing = 0
    for run in runs:
        stem = file_stem(run.task_id or f"run-{run.id}")
        images = run.images or tuple(
            StoredImage(i, url, None, None) for i, url in enumerate(run.outputs, start=1)
        )
        for image in images:
            name, error = "", ""
            width, height, sha = image.width, image.height, image.sha256
            try:
                data, media_type = _image_bytes(run, image)
                name = f"{stem}-{image.index}{EXTENSIONS.get(media_type, '.png')}"
                atomic_write(target / name, data)
                files.append(target / name)
            except (ImageError, OSError) as exc:
                error = f"not exported: {exc}"
                missing += 1
            rows.append(_row(run, image, name, error, width, height, sha))
    manifest = {
        "format": 1,
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "package_version": __version__,
        "columns": list(CSV_COLUMNS),
        "images": rows,
        "runs": [run.to_json() for run in runs],
    }
    manifest_json = target / MANIFEST_JSON
    manifest_csv = target / MANIFEST_CSV
    atomic_write(manifest_json, json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # CRLF rows: a lone \r or \n inside a value is then quoted
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([csv_value(column, row.get(column)) for column in CSV_COLUMNS])
    # UTF-8 with a byte order mark: spreadsheet programs then read non-ASCII text correctly.
    atomic_write(manifest_csv, buffer.getvalue().encode("utf-8-sig"))
    return ExportResult(target, files, manifest_json, manifest_csv, len(runs), missing)


def _row(
    run: Run,
    image: StoredImage,
    name: str,
    error: str,
    width: int | None,
    height: int | None,
    sha: str | None,
) -> dict[str, Any]:
    return {
        "file": name,
        "task_id": run.task_id,
        "index": image.index,
        "url": image.url,
        **{field: run.params.get(field) for field in FIELD_NAMES},
        "seed_used": run.seed_used,
        "state": run.state,
        "status": run.status,
        "fail_reason": run.fail_reason,
        "created_at": _iso(run.created_at),
        "submitted_at": _iso(run.submitted_at),
        "finished_at": _iso(run.finished_at),
        "origin": run.origin,
        "source": run.source,
        "starred": run.starred,
        "rating": run.rating,
        "tags": list(run.tags),
        "note": run.note,
        "width": width,
        "height": height,
        "sha256": sha,
        "error": error or image.error,
    }
