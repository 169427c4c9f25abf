"""The Sweep tab's messages: a live preview of a sweep, Run, Cancel, Retry, and the grid's news.

The page sends the form (axes as the user typed them, batch prompts, seed mode, presets,
concurrency) and Python does everything else with the sweep engine
(:mod:`siray_widgets.sweep`): it parses the values (one source of truth), expands the cells,
says what Run would send (tasks, images, estimated cost, cells an earlier run already
finished), refuses above the session's confirmation threshold unless confirmed, runs the
sweep on the widget's connection, and tells the page what changed, at most every
:data:`UPDATE_EVERY` seconds (``sweep-update``). docs/widget-contract.md § Sweep.

One :class:`SweepPanel` per widget (made on the first sweep message); it holds the widget's
current sweep (one at a time). "Use these" goes through the History tab's restore, so the
History tab's one undo (``history-undo``) undoes it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from . import _download
from ._widget_lazy import MODULE_CONFIG
from .config import redact
from .errors import SirayError
from .schema import FIELD_NAMES, ImageRequest

if TYPE_CHECKING:
    from .sweep import SweepDefinition, SweepRun
    from .sweep.state import CellRun
    from .widget import ImagineWidget

#: The messages handled here (each answered ``<kind>-response``).
#: Seconds between two ``sweep-update`` messages while a sweep changes (a 200-cell sweep
#: changes hundreds of times a second at its busiest; the page needs a frame's worth).
UPDATE_EVERY: Final = 0.1
#: Most cells whose thumbnails one ``sweep-thumbs`` answer carries.
MAX_THUMB_CELLS: Final = 48
#: Longest text taken from a value box.
MAX_TEXT: Final = 200_000
#: Largest prompt file (or batch text) read, in characters: the page refuses bigger files
#: before sending them, and the kernel refuses longer text (never cuts it short).
MAX_BATCH_CHARS: Final = 1_048_576
#: The largest image file read for a sweep (a contact sheet): the History tab's bound.
MAX_SHEET_BYTES: Final = _download.MAX_IMAGE_BYTES
#: The special axes a sweep can vary besides the request fields (names the engine reads:
#: siray_widgets/sweep/axes.py), with what the page says about them.
SPECIAL_AXES: Final = (
    {
        "name": "prompt",
        "label": "Prompt variants",
        "hint": "one prompt per line; each may end in --flags; {a, b} expands",
        "multiline": True,
    },
    {
        "name": "prompt_sr",
        "label": "Prompt S/R",
        "hint": "the first value is searched for in the prompt and replaced by each value",
        "multiline": False,
    },
    {
        "name": "preset",
        "label": "Presets",
        "hint": "preset names, separated by commas",
        "multiline": False,
    },
    {
        "name": "replicate",
        "label": "Replicates",
        "hint": "how many times (new seeds each time)",
        "multiline": False,
    },
)
#: The request fields an axis may vary (the model is the widget's).
SWEEPABLE: Final = tuple(name for name in FIELD_NAMES if name != "model")


def _module_config() -> dict[str, Any]:
    from .sweep.runner import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
    from .task import IMAGES_PER_TASK

    return {
        "fields": list(SWEEPABLE),
        "special": [dict(s) for s in SPECIAL_AXES],
        "concurrency": DEFAULT_CONCURRENCY,
        "max_concurrency": MAX_CONCURRENCY,
        "images_per_task": IMAGES_PER_TASK,
        "max_batch_chars": MAX_BATCH_CHARS,
        "max_sheet_bytes": MAX_SHEET_BYTES,
    }


MODULE_CONFIG["sweep"] = _module_config


class SweepPanelError(ValueError):
    """A sweep message that cannot be done, in plain words (the reply's ``error``)."""


class SweepPanel:
    """The Sweep tab's messages for one widget (see the module docstring)."""

    def __init__(self, widget: ImagineWidget) -> None:
        self._widget = widget
        self._lock = threading.RLock()
        #: The sweep shown in the grid (the last one run), or None.
        self._sweep: SweepRun | None = None
        #: The seed a sweep of a "random" seed box shares, drawn once per panel so that the
        #: preview (and the definition's key) stays the same while the user types.
        self._drawn = secrets.randbelow(2**32)
        self._sent_version = 0
        self._timer: threading.Timer | None = None
        #: The sweep of the last contact sheet opened (its id, the sheet's name, the
        #: definition), used as saved while the page's form says ``sheet: id``.
        self._sheet: tuple[str, str, SweepDefinition] | None = None

    # -- dispatch --

    def handle(
        self, kind: str, content: Mapping[str, Any], buffers: Sequence[Any]
    ) -> tuple[dict[str, Any], list[bytes]]:
        """The reply's fields (``ok`` and ``error`` included) and its binary buffers."""
        from .sweep import SweepError

        try:
            if kind == "sweep-thumbs":
                return self.thumbs(content)
            if kind == "sweep-images":
                return self.images(content)
            if kind == "sweep-sheet":
                return self.open_sheet(content, buffers), []
            handler: Callable[[Mapping[str, Any]], dict[str, Any]] = {
                "sweep-preview": self.preview,
                "sweep-run": self.run,
                "sweep-state": self.state,
                "sweep-cancel": self.cancel,
                "sweep-retry": self.retry,
                "sweep-cell": self.cell,
                "sweep-use": self.use,
                "sweep-diff": self.diff,
                "sweep-presets": self.presets,
            }[kind]
            return handler(content), []
        except SweepError as exc:
            return {
                "ok": False,
                "error": redact(str(exc), self._widget.api_key),
                "axis": _slot_of(exc.axis),
            }, []
        except KeyError as exc:
            return {"ok": False, "error": str(exc.args[0]) if exc.args else "unknown cell"}, []
        except (SirayError, ValueError, TypeError) as exc:
            return {"ok": False, "error": redact(str(exc), self._widget.api_key)}, []

    # -- the form --

    def _definition(self, form: Any) -> SweepDefinition:
        """The sweep the form describes, over the widget's current request."""
        from .sweep import SweepError, batch_sweep, define_sweep

        if not self._widget._spec.builtin:
            raise SweepPanelError(
                f"sweeps are made of niji 7 requests; this widget sends {self._widget._spec.model}"
            )
        if not isinstance(form, Mapping):
            raise SweepPanelError("the sweep form must be an object")
        sheet = self._sheet
        if form.get("sheet") is not None:
            if sheet is None or form.get("sheet") != sheet[0]:
                raise SweepPanelError("that contact sheet is no longer open here: open it again")
            return sheet[2]  # the sweep as saved: the same cells, so the done ones are reused
        axes: dict[str, Any] = {}
        for slot in ("x", "y", "z"):
            axes[slot] = _axis(form.get(slot), slot)
        request = self._widget.request
        base = request.to_dict()
        prompt = str(base.pop("prompt"))
        seed_mode = form.get("seed", "shared")
        if seed_mode not in ("shared", "random"):
            raise SweepPanelError("seed must be 'shared' or 'random'")
        # A fixed seed box is the shared seed; "random" shares the one drawn for this panel.
        seed: int | str | None = None if request.seed != -1 else self._drawn
        if seed_mode == "random":
            seed = "random"
        presets = form.get("presets") or []
        if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
            raise SweepPanelError("presets must be a list of preset names")
        batch = form.get("batch")
        if batch is not None:
            if not isinstance(batch, str):
                raise SweepPanelError("the batch prompts must be text")
            if axes["y"] is not None:
                raise SweepError("Y axis", None, "holds the prompt list in a batch")
            definition = batch_sweep(
                _batch_prompts(batch, form.get("batch_format"), form.get("batch_name")),
                slot="y",
                x=axes["x"],
                z=axes["z"],
                base=base,
                seed=seed,
                presets=presets,
            )
        else:
            definition = define_sweep(prompt, base=base, seed=seed, presets=presets, **axes)
        if seed_mode == "shared" and request.seed == -1:
            from .store import open_store, recording_enabled
            from .sweep.resume import with_family_seed

            if recording_enabled():
                try:
                    store = open_store()
                except Exception:  # no store: no resume, never a failure
                    return definition
                definition, _ = with_family_seed(definition, store)
        return definition

    def _planned(self, form: Any, concurrency: Any) -> SweepRun:
        from .sweep.for_widget import widget_sweep

        definition = self._definition(form)
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int)
        ):
            raise SweepPanelError(f"concurrency must be a whole number, not {concurrency!r}")
        return widget_sweep(
            self._widget, definition=definition, start=False, concurrency=concurrency
        )

    def preview(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """What Run would do with this form: the axes' values, cells, tasks, images, cost
        (and, for a batch, the rows and columns its prompt list was read as)."""
        form = content.get("form")
        sweep = self._planned(form, content.get("concurrency"))
        shown = _preview(sweep)
        if (
            isinstance(form, Mapping)
            and isinstance(form.get("batch"), str)
            and not form.get("sheet")
        ):
            shown["batch"] = _batch_info(
                _batch_prompts(form["batch"], form.get("batch_format"), form.get("batch_name"))
            )
        return {"preview": shown}

    # -- running --

    def run(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Start the sweep of the form (``confirm``: above the threshold); the grid follows
        through ``sweep-update`` messages."""
        from .sweep import ConfirmationRequired

        with self._lock:
            current = self._sweep
            if current is not None and current.running:
                raise SweepPanelError(
                    "a sweep is running in this widget: cancel it (or wait for it) first"
                )
            sweep = self._planned(content.get("form"), content.get("concurrency"))
            key = content.get("key")
            if key is not None and key != sweep.definition.key:
                raise SweepPanelError(
                    "the sweep changed since its preview (the controls moved?): check the "
                    "preview and press Run again"
                )
            try:
                sweep.start(confirm=content.get("confirm") is True)
            except ConfirmationRequired as exc:
                return {
                    "ok": False,
                    "needs_confirmation": True,
                    "error": str(exc),
                    "preview": _preview(sweep),
                }
            if current is not None:
                current.on_change(self._changed, remove=True)
            self._sweep = sweep
            self._sent_version = sweep.version
            sweep.on_change(self._changed)
            return {"sweep": _full(sweep)}

    def _current(self, content: Mapping[str, Any]) -> SweepRun:
        sweep = self._sweep
        wanted = content.get("sweep")
        if sweep is None or (wanted is not None and wanted != sweep.id):
            raise SweepPanelError("that sweep is no longer this widget's: run it again")
        return sweep

    def state(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """The current sweep in full (a view made after it started), or None."""
        sweep = self._sweep
        return {"sweep": None if sweep is None else _full(sweep)}

    def cancel(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Stop new submissions; tasks already created are followed to the end."""
        sweep = self._current(content)
        sweep.cancel()
        return {"state": sweep.state}

    def retry(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Run one cell again (a failed, refused or cancelled one): the user asked for it."""
        sweep = self._current(content)
        run = sweep.cell(_index(content.get("cell")))
        sweep.retry([run], confirm=True)
        return {"cell": _cell(run), "state": sweep.state}

    # -- cells --

    def cell(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """A cell's parameters, against the controls now (``rows`` as in ``history-diff``)."""
        from ._widget_history import diff_rows
        from ._widget_snippets import midjourney_prompt

        sweep = self._current(content)
        run = sweep.cell(_index(content.get("cell")))
        request = run.cell.request
        return {
            "cell": _cell(run),
            "body": request.to_body(),
            "prompt_text": midjourney_prompt(request),
            "rows": diff_rows(self._widget.request.to_dict(), request.to_dict()),
        }

    def use(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Put a cell's request into the controls, with the History tab's one undo."""
        sweep = self._current(content)
        run = sweep.cell(_index(content.get("cell")))
        return self._widget._history_panel().use(
            run.cell.request, f"Used the parameters of cell {run.cell.describe()}"
        )

    def diff(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Two cells side by side: every field, the differing ones marked."""
        from ._widget_history import diff_rows

        sweep = self._current(content)
        a = sweep.cell(_index(content.get("a")))
        b = sweep.cell(_index(content.get("b")))
        return {
            "rows": diff_rows(a.cell.request.to_dict(), b.cell.request.to_dict()),
            "a": _cell(a),
            "b": _cell(b),
        }

    def thumbs(self, content: Mapping[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """Kept thumbnails (WebP) of cells: the first of each, or with ``all`` every one;
        ``items`` says which cell (and image) each buffer is."""
        from .metadata import sniff

        sweep = self._current(content)
        cells = content.get("cells")
        if not isinstance(cells, list) or len(cells) > MAX_THUMB_CELLS:
            raise SweepPanelError(f"sweep-thumbs needs a list of at most {MAX_THUMB_CELLS} cells")
        every = content.get("all") is True
        items: list[dict[str, Any]] = []
        data: list[bytes] = []
        missing: list[int] = []
        for ref in dict.fromkeys(_index(c) for c in cells):
            found = sweep.thumbnails(ref)
            if not found:
                missing.append(ref)
            for i, blob in enumerate(found if every else found[:1]):
                kind = sniff(blob)
                if kind is None:
                    continue
                items.append({"cell": ref, "image": i + 1, "type": kind})
                data.append(blob)
        return {"items": items, "missing": missing}, data

    def images(self, content: Mapping[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """A successful cell's images at full size (the kept copies, else downloaded), one
        buffer each: the page shows them in the image viewer (never a path of this machine)."""
        from .metadata import sniff

        sweep = self._current(content)
        run = sweep.cell(_index(content.get("cell")))
        if run.state != "success":
            raise SweepPanelError(f"cell {run.cell.describe()} has no images: it is {run.state}")
        items: list[dict[str, Any]] = []
        data: list[bytes] = []
        for i, blob in enumerate(sweep.images(run)):
            kind = sniff(blob)
            if kind is None:
                continue
            items.append({"image": i + 1, "type": kind})
            data.append(blob)
        return {"items": items, "task_id": run.task_id, "describe": run.cell.describe()}, data

    def open_sheet(self, content: Mapping[str, Any], buffers: Sequence[Any]) -> dict[str, Any]:
        """What a dropped (or chosen) PNG holds: a contact sheet's sweep is opened here (the
        controls take its base request, with the History tab's one undo, and the page fills
        its form and shows the preview); else ``sheet: false`` and whether it carries an
        image's parameters (the History tab reads those), or an error saying it holds
        neither."""
        from ._widget_history import dropped_image
        from .metadata import MetadataError, read_image_metadata
        from .sweep import SweepError
        from .sweep.contact_sheet import SHEET_KEY, read_contact_sheet

        shown, data = dropped_image(content.get("name"), buffers, SweepPanelError)
        try:
            definition = read_contact_sheet(data)
        except SweepError as exc:
            if SHEET_KEY not in str(exc) and "not a PNG" not in str(exc):
                raise SweepPanelError(
                    f"{shown}: the sweep it holds cannot be read ({exc})"
                ) from None
            try:
                read_image_metadata(data)
            except MetadataError as why:
                raise SweepPanelError(
                    f"{shown} holds neither a sweep (it is not a contact sheet saved by "
                    f"siray-widgets) nor an image's parameters: {why}"
                ) from None
            return {"sheet": False, "image": True, "name": shown}
        applied = self._controls_from(definition, shown)
        sheet_id = secrets.token_hex(6)
        with self._lock:
            self._sheet = (sheet_id, shown, definition)
        sweep = self._planned({"sheet": sheet_id}, None)
        return {
            "sheet": sheet_id,
            "name": shown,
            "form": _form_of(definition),
            "preview": _preview(sweep),
            **applied,
        }

    def _controls_from(self, definition: SweepDefinition, shown: str) -> dict[str, Any]:
        """Put a sheet's base request into the controls (the prompt too, unless an axis
        supplies it), with the History tab's one undo."""
        widget = self._widget
        if not widget._spec.builtin:
            raise SweepPanelError(
                f"sweeps are made of niji 7 requests; this widget sends {widget._spec.model}"
            )
        values = dict(definition.base)
        with widget._lock:
            if not str(values.get("prompt", "")).strip():
                values["prompt"] = widget.request.prompt
            return widget._history_panel().use(
                ImageRequest(**values),
                f"Opened the sweep of {shown}; the controls hold its request",
            )

    def presets(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """The presets (built in and the user's) and, for ``names``, what stacking them on
        the controls now would change (nothing is applied)."""
        from .presets import PresetLibrary, preview_presets

        library = PresetLibrary()
        names = content.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SweepPanelError("names must be a list of preset names")
        reply: dict[str, Any] = {
            "presets": [
                {"name": p.name, "summary": p.summary(), "builtin": p.builtin}
                for p in library.all()
            ],
        }
        request = self._widget.request
        if names and isinstance(request, ImageRequest):
            reply["changes"] = preview_presets(request, names, library=library).to_json()["changes"]
        return reply

    # -- news for the page --

    def _changed(self, event: dict[str, Any]) -> None:
        """A cell or the sweep changed (the sweep's thread): send an update soon."""
        with self._lock:
            if self._timer is not None:
                return
            final = event.get("kind") == "sweep" and event.get("state") in (
                "done",
                "cancelled",
                "stopped",
            )
            self._timer = threading.Timer(0 if final else UPDATE_EVERY, self._flush)
            self._timer.daemon = True
            self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            sweep = self._sweep
            if sweep is None:
                return
            since = self._sent_version
            snapshot = sweep.snapshot(since=since)
            self._sent_version = snapshot["version"]
        update = {
            "kind": "sweep-update",
            "sweep": snapshot["id"],
            "state": snapshot["state"],
            "version": snapshot["version"],
            "stopped_reason": snapshot["stopped_reason"],
            "progress": snapshot["progress"],
            "session": snapshot["session"],
            "cells": [_compact(c) for c in snapshot["cells"]],
        }
        widget = self._widget
        with widget._lock:
            if widget.comm is None:
                return
            widget.send(update)

    def close(self) -> None:
        """The widget closed: stop telling it (the sweep itself runs on)."""
        with self._lock:
            if self._sweep is not None:
                self._sweep.on_change(self._changed, remove=True)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


# --- what the page gets -------------------------------------------------------------------------


def _axis(value: Any, slot: str) -> tuple[str, str] | None:
    """An axis of the form: ``{"axis": name, "values": text}`` (blank: no axis)."""
    from .sweep import SweepError

    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SweepPanelError(f"the {slot.upper()} axis must be an object")
    name, text = value.get("axis"), value.get("values", "")
    if not name:
        return None
    if not isinstance(name, str) or not isinstance(text, str):
        raise SweepPanelError(f"the {slot.upper()} axis needs a name and values as text")
    if not text.strip():
        raise SweepError(f"{slot.upper()} axis ({name})", None, "has no values yet")
    return (name, text[:MAX_TEXT])


def _batch_prompts(text: Any, kind: Any, name: Any) -> list[str | dict[str, Any]]:
    """The prompts of the batch box (or of a prompt file the page read): one per line, or
    for ``kind="csv"`` the rows of a CSV with a prompt column (batch.py's rules, one
    source of truth)."""
    from .sweep.batch import read_prompt_csv, read_prompt_list

    if not isinstance(text, str):
        raise SweepPanelError("the batch prompts must be text")
    where = f"prompt list {name[:120]}" if isinstance(name, str) and name else "prompt list"
    if len(text) > MAX_BATCH_CHARS:
        raise SweepPanelError(
            f"{where} is {len(text):,} characters long: at most {MAX_BATCH_CHARS:,} are read"
        )
    if kind == "csv":
        return read_prompt_csv(text, where=where)
    if kind not in (None, "text"):
        raise SweepPanelError(f"batch_format must be 'text' or 'csv', not {kind!r}")
    return read_prompt_list(text)


def _batch_info(items: Sequence[str | Mapping[str, Any]]) -> dict[str, Any]:
    """How a prompt list was read: its rows, and the columns a CSV gave them."""
    columns: dict[str, None] = {}
    for item in items:
        if isinstance(item, Mapping):
            columns.update(dict.fromkeys(item))
    return {"rows": len(items), "columns": list(columns)}


def _form_of(definition: SweepDefinition) -> dict[str, Any]:
    """The Sweep tab's form that shows ``definition`` (axes as written where they were; else
    their labels), for a contact sheet opened in the page."""
    form: dict[str, Any] = {
        "seed": "random" if definition.seed == -1 else "shared",
        "presets": [p.name for p in definition.presets],
    }
    for slot, axis in definition.axes:
        name = axis.field if axis.field is not None else axis.kind
        if axis.spec is not None:
            values = axis.spec
        elif axis.kind in ("prompt", "prompt_sr"):
            values = "\n".join(axis.labels)
        else:
            values = ", ".join(axis.labels)
        form[slot] = {"axis": name, "values": values}
    return form


def _slot_of(axis: str) -> str | None:
    """``"x"`` for ``"X axis (stylize)"``; None when the error is not an axis'."""
    head = axis[:2]
    return head[0].lower() if head in ("X ", "Y ", "Z ") else None


def _index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SweepPanelError(f"{value!r} does not name a cell")
    return value


def _preview(sweep: SweepRun) -> dict[str, Any]:
    from .session import session_budget

    summary = sweep.definition.summary()
    columns, rows, pages = sweep.definition.shape
    return {
        "key": sweep.definition.key,
        "axes": summary["axes"],
        "seed": summary["seed"],
        "presets": summary["presets"],
        "shape": {"columns": columns, "rows": rows, "pages": pages},
        "tasks": summary["tasks"],
        "images": summary["images"],
        "plan": sweep.plan().to_json(),
        "session": session_budget().to_json(),
        "concurrency": sweep.concurrency,
    }


def _full(sweep: SweepRun) -> dict[str, Any]:
    snapshot = sweep.snapshot()
    summary = snapshot["summary"]
    return {
        "id": snapshot["id"],
        "state": snapshot["state"],
        "version": snapshot["version"],
        "stopped_reason": snapshot["stopped_reason"],
        "progress": snapshot["progress"],
        "plan": snapshot["plan"],
        "session": snapshot["session"],
        "concurrency": snapshot["concurrency"],
        "shape": snapshot["shape"],
        "axes": summary["axes"],
        "seed": summary["seed"],
        "cells": [_compact(c) for c in snapshot["cells"]],
    }


def _cell(run: CellRun) -> dict[str, Any]:
    return _compact(run.to_json())


def _compact(cell: Mapping[str, Any]) -> dict[str, Any]:
    """A cell as the grid shows it: never a path of the kernel's machine."""
    return {
        "index": cell["index"],
        "x": cell["x"],
        "y": cell["y"],
        "z": cell["z"],
        "describe": cell["describe"],
        "state": cell["state"],
        "status": cell["status"],
        "progress": cell["progress"],
        "task_id": cell["task_id"],
        "reason": cell["reason"],
        "thumbs": len(cell["thumbs"]),
        "run_id": cell["run_id"],
        "origin": cell["origin"],
        "seed": cell["seed"],
        "seed_used": cell["seed_used"],
        "version": cell["version"],
    }
