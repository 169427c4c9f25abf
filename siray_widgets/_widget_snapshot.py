"""The widget's static snapshot: what a notebook shows where the widget cannot run.

nbconvert's HTML, GitHub and a notebook reopened without its kernel cannot run the widget.
Next to each view the widget displays this snapshot (``text/html`` and ``text/plain``, under a
display id) and replaces it after every finished run: the request, the latest run's task id,
status and seed, and small inline thumbnails (``data:`` URLs made here, never the sandbox's
loopback URLs, which nobody else can load). The widget's own CSS hides the snapshot wherever
the live widget is drawn (see docs/widget-contract.md, "Static snapshot").

Everything here is escaped: it is shown as HTML by viewers that trust the notebook.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._widget_snippets import is_local_url, is_safe_image_url
from .schema import AnyRequest

if TYPE_CHECKING:
    from ._widget_tasks import Generation

#: The class that marks the snapshot's root (the widget's CSS hides it next to a live view).
SNAPSHOT_CLASS = "siray-snapshot"
#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 160
#: Thumbnails bigger than this (as base64) are left out: saved notebooks stay small.
MAX_THUMBNAIL_CHARS = 40_000


def thumbnail(data: bytes, size: int = THUMBNAIL_SIZE) -> str | None:
    """A small JPEG ``data:`` URL of the image in ``data``; None if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.thumbnail((size, size))
            rgb = picture.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=72, optimize=True)
    text = "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    return text if len(text) <= MAX_THUMBNAIL_CHARS else None


def image_sources(urls: list[str], thumbnails: Mapping[str, str]) -> list[str | None]:
    """What the snapshot shows for each output URL: its thumbnail, else the URL itself when
    others can load it (public http(s)), else None (a loopback image without a thumbnail)."""
    shown: list[str | None] = []
    for url in urls:
        thumb = thumbnails.get(url)
        if thumb is not None:
            shown.append(thumb)
        elif is_safe_image_url(url) and not is_local_url(url):
            shown.append(url.strip())
        else:
            shown.append(None)
    return shown


def snapshot_html(
    request: AnyRequest,
    *,
    sandbox: bool,
    run: Generation | None,
    pictured: Generation | None,
    thumbnails: Mapping[str, str],
) -> str:
    """The snapshot as HTML: ``run`` is the latest run, ``pictured`` the latest that succeeded
    (its images are shown, also beside a later failure)."""
    esc = html.escape
    cell = "padding:1px 10px 1px 0;vertical-align:top;text-align:left"
    values = request.to_dict()
    rows = "".join(
        f"<tr><th style='{cell}'>{esc(f.label)}</th>"
        f"<td style='{cell}'><code>{esc(_shown(values[f.name]))}</code></td></tr>"
        for f in request.model_schema.fields
    )
    parts = [
        f"<div class='{SNAPSHOT_CLASS}' data-siray-snapshot='1' style='border:1px solid "
        "rgba(128,128,128,.5);border-radius:6px;padding:8px 12px;max-width:820px'>",
        "<p style='margin:0 0 6px'><b>Siray image widget</b>"
        f"{' (offline sandbox)' if sandbox else ''} — a static snapshot of the last run; "
        "run the cell to use the controls.</p>",
        f"<table style='border-collapse:collapse;margin:0 0 6px'>{rows}</table>",
    ]
    if run is not None:
        parts.append(f"<p style='margin:4px 0'>{_run_line(run)}</p>")
        message = run.error or run.note
        if message:
            colour = "#c62828" if run.error else "inherit"
            parts.append(f"<p style='margin:4px 0;color:{colour}'>{esc(message)}</p>")
    if pictured is not None and pictured.images:
        if pictured is not run:
            parts.append(
                "<p style='margin:4px 0'>Images of the last run that succeeded, task "
                f"<code>{esc(pictured.task_id or '')}</code>:</p>"
            )
        pictures = []
        sources = image_sources(pictured.images, thumbnails)
        for i, src in enumerate(sources, 1):
            label = f"Image {i} of {len(sources)}, task {pictured.task_id or ''}"
            if src is None:
                pictures.append(
                    f"<span style='display:inline-block;margin:2px;padding:4px'>{esc(label)}: "
                    "not saved in the notebook</span>"
                )
            else:
                pictures.append(
                    f"<img src='{esc(src, quote=True)}' alt='{esc(label, quote=True)}' "
                    f"style='max-width:{THUMBNAIL_SIZE}px;max-height:{THUMBNAIL_SIZE}px;"
                    "margin:2px;border-radius:4px'>"
                )
        parts.append(f"<div>{''.join(pictures)}</div>")
    parts.append("</div>")
    return "".join(parts)


def snapshot_text(run: Generation | None) -> str:
    """The snapshot as one line of plain text."""
    if run is None:
        return "Siray image widget (static snapshot): no run yet."
    return f"Siray image widget (static snapshot): {_run_line(run, plain=True)}"


def _run_line(run: Generation, *, plain: bool = False) -> str:
    esc = html.escape
    word = run.state if run.state in ("cancelled", "error") or not run.status else run.status
    bits = [
        f"task <code>{esc(run.task_id)}</code>" if run.task_id and not plain else "",
        f"task {run.task_id}" if run.task_id and plain else "",
        f"status <b>{esc(word)}</b>" if not plain else f"status {word}",
        f"seed {run.seed}" + (" (drawn at random)" if run.seed_random else "")
        if run.seed is not None
        else "",
    ]
    if run.images:
        bits.append(f"{len(run.images)} images")
    return "Last run: " + " · ".join(b for b in bits if b)


def _shown(value: object) -> str:
    return "not set" if value is None else str(value)
