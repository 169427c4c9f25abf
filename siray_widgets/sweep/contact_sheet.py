"""The contact sheet: one labelled PNG of a sweep's grid, with the sweep inside its metadata.

The sheet shows, for each page (Z value) one below the other, the X values as column headers,
the Y values as row headers, and each cell's four images as a 2x2 block; a failed or refused
cell shows its reason instead, a cell not run says so. A title names the prompt, the shared
seed and the axes.

The PNG carries the whole sweep definition as an ``iTXt`` chunk named ``siray-sweep``
(compressed JSON: :meth:`SweepDefinition.to_json`), and the cells' outcomes (state, task id,
reason) as ``siray-sweep-cells``. :func:`read_contact_sheet` reads the definition back (from a
path, bytes, or a file object): ``siray-widgets sweep --from sheet.png`` and the widget use
it to restore the sweep, and running it again resumes it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import textwrap
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from .. import __version__
from .definition import MAX_JSON_CHARS, SweepDefinition
from .errors import SweepError
from .state import CellRun

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "CELLS_KEY",
    "SHEET_KEY",
    "contact_sheet_png",
    "read_contact_sheet",
    "read_contact_sheet_cells",
    "render_contact_sheet",
    "save_contact_sheet",
]

#: The PNG text chunk holding the sweep definition.
SHEET_KEY: Final = "siray-sweep"
#: The PNG text chunk holding the cells' outcomes.
CELLS_KEY: Final = "siray-sweep-cells"
#: Largest sheet drawn, in pixels (tiles shrink to fit, down to :data:`MIN_TILE`).
MAX_SHEET_PIXELS: Final = 60_000_000
MIN_TILE: Final = 24
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

# Colours (RGB): light, readable in print and on screen.
_PAPER = (255, 255, 255)
_INK = (33, 33, 33)
_MUTED = (110, 110, 110)
_RULE = (210, 210, 210)
_FILL = {
    "failed": (253, 228, 228),
    "refused": (255, 236, 214),
    "cancelled": (238, 238, 238),
    "queued": (244, 244, 244),
    "submitted": (228, 238, 252),
    "running": (228, 238, 252),
    "stalled": (255, 246, 214),
    "success": (248, 248, 248),
}
_EDGE = {"failed": (200, 40, 40), "refused": (205, 110, 20), "stalled": (190, 150, 20)}

ImageLoader = Callable[[CellRun], "list[Image.Image]"]


# --- drawing -----------------------------------------------------------------------------------


class _Fonts:
    def __init__(self, tile: int) -> None:
        from PIL import ImageFont

        def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
            try:
                return ImageFont.load_default(size=size)
            except TypeError:  # Pillow < 10.1: the small bitmap font
                return ImageFont.load_default()

        scale = max(0.75, min(1.5, tile / 128))
        self.title = font(round(18 * scale))
        self.header = font(round(14 * scale))
        self.small = font(round(12 * scale))


def _width(font: Any, text: str) -> float:
    return float(font.getlength(text))


def _line_height(font: Any) -> int:
    _left, top, _right, bottom = font.getbbox("Ag|")
    return int(bottom - top) + 4


def _fit(font: Any, text: str, width: float) -> str:
    """``text`` cut (with …) to fit ``width`` pixels."""
    text = " ".join(text.split())
    if _width(font, text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _width(font, text[:middle] + "…") <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"


def _wrap(font: Any, text: str, width: float, lines: int) -> list[str]:
    """``text`` wrapped to ``width`` pixels, at most ``lines`` lines (the last cut with …)."""
    words = " ".join(text.split())
    if not words:
        return []
    average = max(1.0, _width(font, "abcdefghij") / 10)
    chars = max(4, int(width / average))
    out = textwrap.wrap(words, chars, break_long_words=True) or [words]
    while any(_width(font, line) > width for line in out) and chars > 4:
        chars -= 1
        out = textwrap.wrap(words, chars, break_long_words=True)
    if len(out) > lines:
        out = [*out[: lines - 1], _fit(font, " ".join(out[lines - 1 :]), width)]
    return out


def _open_images(run: CellRun) -> list[Image.Image]:
    """The cell's pictures: kept thumbnails, else kept files, else downloaded."""
    from PIL import Image

    sources: list[bytes] = []
    if run.thumbs and len(run.thumbs) == len(run.outputs):
        try:
            for path in run.thumbs:
                with open(path, "rb") as handle:
                    sources.append(handle.read())
        except OSError:
            sources = []
    if not sources:
        from .results import cell_images

        sources = cell_images(run)
    pictures = []
    for data in sources:
        picture = Image.open(io.BytesIO(data))
        picture.draft("RGB", (512, 512))  # JPEG: decode small
        pictures.append(picture.convert("RGB"))
    return pictures


def render_contact_sheet(
    definition: SweepDefinition,
    cells: Sequence[CellRun],
    *,
    page: int | None = None,
    tile: int = 128,
    load: ImageLoader | None = None,
) -> Image.Image:
    """The sheet as a PIL image (RGB). ``page``: only that Z page (0-based); ``tile``: the
    edge of one image in pixels (a cell is 2x2 of them); ``load`` gives a cell's images (by
    default: kept thumbnails, else the kept files, else downloaded)."""
    from PIL import Image, ImageDraw

    columns, rows, pages = definition.shape
    if page is not None and not (isinstance(page, int) and 0 <= page < pages):
        raise SweepError("contact sheet", page, f"is not a page of this sweep (0..{pages - 1})")
    shown_pages = [page] if page is not None else list(range(pages))
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < MIN_TILE:
        raise SweepError("contact sheet", tile, f"tile must be a whole number >= {MIN_TILE}")
    load = load or _open_images
    by_position = {(run.cell.x or 0, run.cell.y or 0, run.cell.z or 0): run for run in cells}
    while True:
        layout = _Layout(definition, len(shown_pages), tile)
        if layout.width * layout.height <= MAX_SHEET_PIXELS or tile <= MIN_TILE:
            break
        tile = max(MIN_TILE, tile * 3 // 4)
    if layout.width * layout.height > MAX_SHEET_PIXELS:
        raise SweepError(
            "contact sheet",
            None,
            f"would be {layout.width}x{layout.height} pixels; draw one page at a time "
            "(page=...) or a smaller sweep",
        )
    sheet = Image.new("RGB", (layout.width, layout.height), _PAPER)
    draw = ImageDraw.Draw(sheet)
    fonts = layout.fonts
    y = layout.margin
    for line, font, colour in _title_lines(definition, cells, layout):
        draw.text((layout.margin, y), line, font=font, fill=colour)
        y += _line_height(font)
    y = layout.title_height
    for number, z in enumerate(shown_pages):
        if definition.z is not None:
            label = definition.z.labels[z]
            text = f"Z  {definition.z.name} = {label}   (page {z + 1} of {pages})"
            draw.text(
                (layout.margin, y + 4),
                _fit(fonts.header, text, layout.width - 2 * layout.margin),
                font=fonts.header,
                fill=_INK,
            )
            y += layout.page_header
        # The axes' names in the corner, then the column headers.
        corner = [f"{s.upper()}: {a.name}" for s, a in definition.axes if s in ("x", "y")]
        if layout.row_header:
            for i, text in enumerate(corner):
                draw.text(
                    (layout.margin, y + i * _line_height(fonts.small)),
                    _fit(fonts.small, text, layout.row_header - 8),
                    font=fonts.small,
                    fill=_MUTED,
                )
        for x in range(columns):
            left = layout.grid_left + x * (layout.box_w + layout.gap)
            label = definition.x.labels[x] if definition.x is not None else ""
            lines = _wrap(fonts.header, label, layout.box_w, 2)
            for i, text in enumerate(lines):
                draw.text(
                    (left, y + i * _line_height(fonts.header)), text, font=fonts.header, fill=_INK
                )
        y += layout.column_header
        for row in range(rows):
            top = y + row * (layout.box_h + layout.gap)
            if definition.y is not None:
                lines = _wrap(fonts.header, definition.y.labels[row], layout.row_header - 8, 6)
                for i, text in enumerate(lines):
                    draw.text(
                        (layout.margin, top + i * _line_height(fonts.header)),
                        text,
                        font=fonts.header,
                        fill=_INK,
                    )
            for x in range(columns):
                left = layout.grid_left + x * (layout.box_w + layout.gap)
                run = by_position.get((x, row, z))
                _draw_cell(sheet, draw, run, (left, top), layout, load)
        y += rows * (layout.box_h + layout.gap)
        if number != len(shown_pages) - 1:
            draw.line(
                (layout.margin, y + layout.gap, layout.width - layout.margin, y + layout.gap),
                fill=_RULE,
                width=2,
            )
            y += layout.page_gap
    return sheet


class _Layout:
    """Sizes of the parts of a sheet."""

    def __init__(self, definition: SweepDefinition, pages: int, tile: int) -> None:
        self.fonts = _Fonts(tile)
        self.tile = tile
        # One image's place: ``tile`` on its longer side, in the sweep's aspect ratio when
        # every cell has the same one (square otherwise).
        self.tile_w, self.tile_h = _tile_size(definition, tile)
        self.inner_gap = max(2, tile // 32)
        self.box_w = 2 * self.tile_w + self.inner_gap
        self.box_h = 2 * self.tile_h + self.inner_gap
        self.gap = max(6, tile // 10)
        self.margin = max(12, tile // 8)
        columns, rows, _ = definition.shape
        header = _line_height(self.fonts.header)
        self.row_header = 0 if definition.y is None else max(120, tile + tile // 4)
        self.column_header = 0 if definition.x is None else 2 * header + 6
        self.page_header = 0 if definition.z is None else header + 12
        self.page_gap = 3 * self.gap
        self.title_height = self.margin + 3 * _line_height(self.fonts.title) + self.gap
        self.grid_left = self.margin + self.row_header
        self.width = self.grid_left + columns * (self.box_w + self.gap) + self.margin
        self.width = max(self.width, 480)
        page_height = self.page_header + self.column_header + rows * (self.box_h + self.gap)
        self.height = (
            self.title_height + pages * page_height + (pages - 1) * self.page_gap + self.margin
        )


def _tile_size(definition: SweepDefinition, tile: int) -> tuple[int, int]:
    """An image's place: the sweep's one aspect ratio (``tile`` on the longer side), or a
    square when cells differ in it."""
    if any("aspect_ratio" in axis.varies for _, axis in definition.axes):
        return tile, tile
    width, _, height = definition.cell().request.aspect_ratio.partition(":")
    try:
        w, h = int(width), int(height)
    except ValueError:
        return tile, tile
    if w >= h:
        return tile, max(MIN_TILE // 2, round(tile * h / w))
    return max(MIN_TILE // 2, round(tile * w / h)), tile


def _title_lines(
    definition: SweepDefinition, cells: Sequence[CellRun], layout: _Layout
) -> list[tuple[str, Any, tuple[int, int, int]]]:
    width = layout.width - 2 * layout.margin
    fonts = layout.fonts
    prompt = str(definition.base["prompt"]).strip()
    if not prompt:
        specs = [a.spec for _, a in definition.axes if a.kind == "prompt" and a.spec]
        prompt = specs[0] if specs else "(prompt variants)"
    seed = "random per cell" if definition.seed == -1 else str(definition.seed)
    done = sum(1 for run in cells if run.state == "success")
    failed = sum(1 for run in cells if run.state in ("failed", "refused"))
    counts = f"{len(cells)} cells: {done} done" + (f", {failed} failed" if failed else "")
    fixed = definition.summary()["fixed"]
    shown = [
        f"{name} {_shown(value)}"
        for name, value in fixed.items()
        if name not in ("prompt", "model", "negative_prompt") and value not in ("", None)
    ]
    if definition.presets:
        shown.append("presets " + ", ".join(p.name for p in definition.presets))
    where = {"x": "columns", "y": "rows", "z": "pages"}
    axes = "    ".join(
        f"{slot.upper()}: {axis.name} ({len(axis)} {where[slot]})" for slot, axis in definition.axes
    )
    return [
        (_fit(fonts.title, prompt, width), fonts.title, _INK),
        (
            _fit(fonts.small, f"seed {seed} · {counts} · " + ", ".join(shown), width),
            fonts.small,
            _MUTED,
        ),
        (_fit(fonts.header, axes or "one cell", width), fonts.header, _INK),
    ]


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _draw_cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    run: CellRun | None,
    corner: tuple[int, int],
    layout: _Layout,
    load: ImageLoader,
) -> None:
    left, top = corner
    state = run.state if run is not None else "queued"
    if run is not None and state == "success":
        try:
            pictures = load(run)
        except Exception as exc:  # an image gone: say so in the cell, keep the sheet
            _draw_note(draw, corner, layout, "images unavailable", str(exc), "cancelled")
            return
        for i, picture in enumerate(pictures[:4]):
            fitted = picture.copy()
            fitted.thumbnail((layout.tile_w, layout.tile_h))
            x = left + (i % 2) * (layout.tile_w + layout.inner_gap)
            y = top + (i // 2) * (layout.tile_h + layout.inner_gap)
            offset = ((layout.tile_w - fitted.width) // 2, (layout.tile_h - fitted.height) // 2)
            sheet.paste(fitted, (x + offset[0], y + offset[1]))
        return
    if run is None:
        _draw_note(draw, corner, layout, "no cell", "", "queued")
        return
    titles = {
        "failed": "FAILED",
        "refused": "REFUSED",
        "cancelled": "not run",
        "queued": "not run yet",
        "submitted": "submitted",
        "running": f"running {run.progress}%",
        "stalled": f"stalled at {run.progress}%",
    }
    _draw_note(draw, corner, layout, titles.get(state, state), run.reason, state)


def _draw_note(
    draw: ImageDraw.ImageDraw,
    corner: tuple[int, int],
    layout: _Layout,
    title: str,
    detail: str,
    state: str,
) -> None:
    left, top = corner
    width, height = layout.box_w, layout.box_h
    edge = _EDGE.get(state, _RULE)
    draw.rectangle(
        (left, top, left + width - 1, top + height - 1),
        fill=_FILL.get(state),
        outline=edge,
        width=2 if state in _EDGE else 1,
    )
    pad = max(6, layout.tile // 16)
    fonts = layout.fonts
    draw.text(
        (left + pad, top + pad), title, font=fonts.header, fill=edge if state in _EDGE else _INK
    )
    step = _line_height(fonts.small)
    room = max(1, (height - 2 * pad - _line_height(fonts.header)) // step)
    for i, line in enumerate(_wrap(fonts.small, detail, width - 2 * pad, room)):
        draw.text(
            (left + pad, top + pad + _line_height(fonts.header) + i * step),
            line,
            font=fonts.small,
            fill=_INK,
        )


# --- saving and reading ------------------------------------------------------------------------


def _cells_json(cells: Sequence[CellRun] | None) -> str | None:
    if cells is None:
        return None
    data = {
        run.key: {
            "index": run.index,
            "state": run.state,
            "task_id": run.task_id,
            "reason": run.reason,
        }
        for run in cells
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def contact_sheet_png(
    image: Image.Image,
    definition: SweepDefinition,
    cells: Sequence[CellRun] | None = None,
) -> bytes:
    """The sheet as PNG bytes with the definition (and the cells' outcomes) in its metadata."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt(SHEET_KEY, definition.dumps(), zip=True)
    cells_text = _cells_json(cells)
    if cells_text is not None:
        info.add_itxt(CELLS_KEY, cells_text, zip=True)
    info.add_text("Software", f"siray-widgets {__version__}")
    info.add_itxt("Description", str(definition), zip=False)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info, optimize=False)
    return buffer.getvalue()


def save_contact_sheet(
    image: Image.Image,
    path: str | os.PathLike[str],
    definition: SweepDefinition,
    cells: Sequence[CellRun] | None = None,
) -> Path:
    """Write the sheet to ``path`` (a temporary file renamed into place); returns the path."""
    target = Path(path)
    data = contact_sheet_png(image, definition, cells)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _texts(source: str | os.PathLike[str] | bytes | IO[bytes], keys: set[str]) -> dict[str, str]:
    """The PNG text chunks named ``keys``, read without decoding the pixels."""
    if isinstance(source, (bytes, bytearray)):
        handle: IO[bytes] = io.BytesIO(bytes(source))
        return _read_texts(handle, keys)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as opened:
                return _read_texts(opened, keys)
        except OSError as exc:
            raise SweepError(
                "contact sheet", str(source), f"cannot be read: {exc.strerror or exc}"
            ) from None
    return _read_texts(source, keys)


def _read_texts(handle: IO[bytes], keys: set[str]) -> dict[str, str]:
    if handle.read(8) != _PNG_SIGNATURE:
        raise SweepError("contact sheet", None, "is not a PNG file")
    found: dict[str, str] = {}
    limit = MAX_JSON_CHARS
    while True:
        head = handle.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"tEXt", b"zTXt", b"iTXt") and length <= 4 * limit:
            body = handle.read(length)
            handle.read(4)  # CRC
            key, _, rest = body.partition(b"\x00")
            name = key.decode("latin-1")
            if name in keys and name not in found:
                found[name] = _chunk_text(kind, rest, limit)
        elif kind == b"IEND":
            break
        else:
            handle.seek(length + 4, io.SEEK_CUR)
    return found


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise SweepError("contact sheet", None, f"has a damaged text chunk ({exc})") from None
    if len(out) > limit:
        raise SweepError("contact sheet", None, "holds a sweep definition too large to read")
    return out


def _chunk_text(kind: bytes, rest: bytes, limit: int) -> str:
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":
        return _inflate(rest[1:], limit).decode("latin-1")
    compressed = rest[:1] == b"\x01"
    _language, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    raw = _inflate(text, limit) if compressed else text
    return raw.decode("utf-8", "replace")


def read_contact_sheet(source: str | os.PathLike[str] | bytes | IO[bytes]) -> SweepDefinition:
    """The sweep definition a contact sheet holds (a path, PNG bytes, or a binary file);
    :class:`~siray_widgets.sweep.SweepError` if it holds none or it is not valid."""
    texts = _texts(source, {SHEET_KEY})
    if SHEET_KEY not in texts:
        raise SweepError(
            "contact sheet",
            None,
            f"holds no sweep definition (no '{SHEET_KEY}' metadata): is it a contact sheet "
            "saved by siray-widgets?",
        )
    return SweepDefinition.from_json(texts[SHEET_KEY])


def read_contact_sheet_cells(
    source: str | os.PathLike[str] | bytes | IO[bytes],
) -> dict[str, dict[str, Any]]:
    """The cells' outcomes a contact sheet recorded, by cell key (empty if none)."""
    text = _texts(source, {CELLS_KEY}).get(CELLS_KEY)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return (
        {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
        if isinstance(data, dict)
        else {}
    )
