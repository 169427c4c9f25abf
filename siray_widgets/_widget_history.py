"""The widget's memory: each run recorded in the run store, and the History panel's messages.

- :func:`record_run`: how the widget records a run (origin ``widget``, exactly once: its
  client is made with ``hooks=False``, and the widget tells the recorder what happens).
- :class:`HistoryPanel`: the handlers of the History tab's messages (docs/widget-contract.md
  § History): pages of runs, a run in full, thumbnails as bytes, restore (InvokeAI's "Use
  all", "Remix", "Use prompt", "Use seed") with one undo, rerun, star, rate, delete, diff, and
  parameters read from a dropped PNG. Python decides everything; the page only shows it.
- :class:`HistoryWatch`: one daemon thread per process that tells open History panels when the
  store changed (this kernel's runs, and those of other kernels and the command line).

The store loads on the first history message or the first run, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from . import _download
from ._widget_lazy import MODULE_CONFIG
from ._widget_snippets import midjourney_prompt
from .config import Secret, redact
from .errors import SirayError, ValidationError
from .schema import FIELD_NAMES, FIELDS_BY_NAME, AnyRequest, ImageRequest

if TYPE_CHECKING:
    from .history import History
    from .store import NullRecorder, Recorder, Run
    from .widget import ImagineWidget

logger = logging.getLogger("siray_widgets.widget")

#: The messages handled here (each answered ``<kind>-response``).
#: Most rows in one page of the gallery.
MAX_PAGE: Final = 200
#: Most thumbnails in one ``history-thumbs`` answer, and most full images.
MAX_THUMBS: Final = 64
MAX_FULL_IMAGES: Final = 4
#: The largest image file read for its parameters (``read-image``).
MAX_IMAGE_BYTES: Final = _download.MAX_IMAGE_BYTES
#: Longest search text taken.
MAX_SEARCH: Final = 500
#: Events listed in a run's details (the newest).
MAX_EVENTS: Final = 200
#: How often the watch looks for changes in the store (seconds).
WATCH_TICK: Final = 1.0

MODULE_CONFIG["history"] = lambda: {"max_image_bytes": MAX_IMAGE_BYTES, "page": 100}


_warm = False


async def warm_store() -> None:
    """Open the run store off the event loop the first time (about 50 ms of imports and
    SQLite): :func:`record_run` then takes well under a millisecond."""
    global _warm
    if _warm:
        return
    from .store import StoreError, open_store, recording_enabled

    def open_it() -> None:
        if recording_enabled():
            with contextlib.suppress(StoreError):  # record_run says why, once
                open_store()

    await asyncio.to_thread(open_it)
    _warm = True


def record_run(
    request: AnyRequest,
    *,
    secret: Secret | None,
    poll: Any,
    stall_after: float | None,
    on_change: Callable[[Any], object],
    api_base_url: str,
) -> Recorder | NullRecorder | None:
    """Start recording one widget run (before its create call); None if that failed.

    ``api_base_url`` is the run's API: the store downloads the run's images only where it is
    safe unattended (:func:`~siray_widgets.store.images.download_refusal`, issue 11).

    ``poll`` is the run's poll schedule: a run whose status and progress stay the same for
    :func:`~siray_widgets.store.default_stall_after` of it (or ``stall_after`` seconds) is
    marked stalled, and ``on_change(recorder)`` runs (on the watchdog's thread, too).
    """
    from .store import default_stall_after, start_recording

    try:
        return start_recording(
            request,
            origin="widget",
            scrub=lambda text: redact(text, secret),
            stall_after=stall_after or default_stall_after(poll),
            on_change=on_change,
            api_base_url=api_base_url,
        )
    except Exception:  # recording never costs a run
        logger.exception("recording a widget run failed")
        return None


def tell(recorder: Recorder | NullRecorder | None, what: str, *args: Any) -> None:
    """Call ``recorder.<what>(*args)``; a failure is logged, never the run's."""
    if recorder is None:
        return
    try:
        getattr(recorder, what)(*args)
    except Exception:
        logger.exception("the run recorder failed in %s", what)


# --- the History panel --------------------------------------------------------------------


class HistoryError(ValueError):
    """A history message that cannot be done, in plain words (the reply's ``error``)."""


class HistoryPanel:
    """The History tab's messages for one widget (see the module docstring)."""

    def __init__(self, widget: ImagineWidget) -> None:
        self._widget = widget
        #: The request before the last restore (one undo), or None.
        self._undo: AnyRequest | None = None
        #: The request read from the last image file, until applied.
        self._image: ImageRequest | None = None

    # -- dispatch --

    def handle(
        self, kind: str, content: Mapping[str, Any], buffers: Sequence[Any]
    ) -> tuple[dict[str, Any], list[bytes]]:
        """The reply's fields (``ok`` and ``error`` included) and its binary buffers."""
        try:
            if kind == "history-thumbs":
                return self.thumbs(content.get("refs"))
            if kind == "read-image":
                return self.read_image(content.get("name"), buffers), []
            handler: Callable[[Mapping[str, Any]], dict[str, Any]] = {
                "history-query": self.query,
                "history-get": self.get,
                "history-restore": self.restore,
                "history-undo": self.undo,
                "history-rerun": self.rerun,
                "history-star": self.star,
                "history-rate": self.rate,
                "history-delete": self.delete,
                "history-diff": self.diff,
                "apply-image": self.apply_image,
            }[kind]
            return handler(content), []
        except KeyError as exc:  # an unknown run: the store's words
            return {"ok": False, "error": str(exc.args[0]) if exc.args else "unknown run"}, []
        except (SirayError, ValueError, TypeError) as exc:
            return {"ok": False, "error": redact(str(exc), self._widget.api_key)}, []

    def _history(self) -> History:
        from .history import History

        return History()  # the shared store of the data folder (opened once per process)

    # -- reading --

    def query(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """One page of compact rows, newest first (``history-query``)."""
        from .store import recording_enabled

        text = content.get("text") or ""
        if not isinstance(text, str):
            raise HistoryError("the search text must be text")
        filters: dict[str, Any] = {}
        if content.get("starred") is True:
            filters["starred"] = True
        if content.get("failed") is True:
            filters["status"] = "failed"
        ratio = content.get("aspect_ratio")
        if ratio:
            filters["aspect_ratio"] = ratio  # validated by the schema
        offset = _whole(content.get("offset", 0), "offset", 0, 10**9)
        limit = _whole(content.get("limit", 100), "limit", 1, MAX_PAGE)
        page = self._history().query(text[:MAX_SEARCH], limit=limit, offset=offset, **filters)
        WATCH.add(self)
        return {**page.to_json(), "recording": recording_enabled()}

    def get(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Everything about one run (``history-get``)."""
        history = self._history()
        return {"run": run_details(history.get(_ref(content.get("run"))), history.home)}

    def thumbs(self, refs: Any) -> tuple[dict[str, Any], list[bytes]]:
        """Thumbnail (or image) bytes of the store, one buffer per ref in ``refs``."""
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise HistoryError("history-thumbs needs a list of references")
        wanted = list(dict.fromkeys(refs))
        full = [r for r in wanted if not r.startswith("thumbs/")]
        if len(wanted) > MAX_THUMBS or len(full) > MAX_FULL_IMAGES:
            raise HistoryError(
                f"at most {MAX_THUMBS} thumbnails and {MAX_FULL_IMAGES} images a message"
            )
        from .metadata import sniff

        store = self._history().store
        found: list[str] = []
        types: list[str] = []
        data: list[bytes] = []
        failed: list[str] = []
        for ref in wanted:
            try:
                content = store.read_file(ref)
            except (OSError, ValueError):
                failed.append(ref)
                continue
            kind = sniff(content)
            if kind is None:
                failed.append(ref)
                continue
            found.append(ref)
            types.append(kind)
            data.append(content)
        return {"refs": found, "types": types, "failed": failed}, data

    def diff(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Two runs side by side: every field, the differing ones marked (``history-diff``)."""
        history = self._history()
        a = history.get(_ref(content.get("a")))
        b = history.get(_ref(content.get("b")))
        return {
            "rows": diff_rows(a.params, b.params, (a.seed_used, b.seed_used)),
            "a": run_brief(a, history.home),
            "b": run_brief(b, history.home),
        }

    # -- using a run again --

    def restore(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Put (part of) a run's request into the controls (``history-restore``)."""
        from .history import RESTORE_CHOICES

        what = content.get("what")
        if what not in RESTORE_CHOICES:
            raise HistoryError(f"what={what!r}: choose one of {', '.join(RESTORE_CHOICES)}")
        history = self._history()
        run = history.get(_ref(content.get("run")))
        with self._widget._lock:
            before = self._current()
            if self._widget._spec.builtin:
                self._same_model(run)
                assert isinstance(before, ImageRequest)  # niji 7's own widget
                restored: AnyRequest = history.restore(run, what, base=before)
            else:
                restored = self._restore_other(run, what, before)
            title = {
                "all": "Used all of",
                "remix": "Remixed (all but the seed)",
                "prompt": "Used the prompt of",
                "seed": "Used the seed of",
            }[what]
            return self._apply(restored, before, f"{title} run {run.task_id or run.id}")

    def _same_model(self, run: Run) -> None:
        """A run of another model cannot go into these controls: say which widget takes it."""
        model = self._widget._spec.model
        if run.model != model:
            raise HistoryError(
                f"run {run.task_id or run.id} was made with {run.model}; this widget sends "
                f"{model} (restore it in ImagineWidget(model={run.model!r}))"
            )

    def _run_request(self, run: Run) -> AnyRequest:
        """The request ``run`` sent, as this widget's model reads it."""
        self._same_model(run)
        spec = self._widget._spec
        if spec.builtin:
            return run.request
        body = {k: v for k, v in run.body.items() if k != "model" and k in spec}
        try:
            return spec.request(**body)
        except ValidationError as exc:
            raise HistoryError(f"run {run.task_id or run.id} cannot be restored: {exc}") from None

    def _restore_other(self, run: Run, what: str, base: AnyRequest) -> AnyRequest:
        """Restore for a model built from its published schema (the meanings of
        :meth:`History.restore`; "seed" and "remix" only where the model has a seed)."""
        sent = self._run_request(run)
        names = self._widget._spec
        has_seed = "seed" in names
        seed = run.seed_used if run.seed_used is not None else (sent.seed if has_seed else None)
        if what == "all":
            return sent.replace(seed=seed) if has_seed and seed is not None else sent
        if what == "remix":
            return sent.replace(seed=base.seed) if has_seed else sent
        if what == "prompt":
            keep = {n: getattr(sent, n) for n in ("prompt", "negative_prompt") if n in names}
            return base.replace(**keep)
        if not has_seed:
            raise HistoryError(f"{self._widget._spec.model} has no seed to restore")
        return base.replace(seed=seed)

    def undo(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Put back the request from before the last restore (``history-undo``)."""
        with self._widget._lock:
            if self._undo is None:
                raise HistoryError("there is no restore to undo")
            before, target = self._current(), self._undo
            reply = self._apply(target, before, "Undid the restore")
            self._undo = None
            return {**reply, "undo": False}

    def rerun(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Send a run's request again as a new run, controls untouched (``history-rerun``)."""
        run = self._history().get(_ref(content.get("run")))
        request = self._run_request(run)
        seed_random = False
        has_seed = "seed" in self._widget._spec
        if has_seed and run.seed_used is not None and run.seed_used != request.seed:
            request = request.replace(seed=run.seed_used)
        if has_seed and request.seed == -1:  # the run's seed is unknown: a random one, as it was
            from .widget import _draw_seed

            request, seed_random = request.replace(seed=_draw_seed()), True
        generation = self._widget._start(request, seed_random=seed_random)
        return {"run": generation.id}

    def read_image(self, name: Any, buffers: Sequence[Any]) -> dict[str, Any]:
        """The parameters an image file carries, against the controls (``read-image``)."""
        from .metadata import read_image_metadata

        shown, data = dropped_image(name, buffers, HistoryError)
        params = read_image_metadata(data)  # MetadataError says what is missing
        restored = params.restored
        with self._widget._lock:
            self._image = restored
            current = self._current()
        known = None
        if params.task_id:
            with contextlib.suppress(KeyError, SirayError):
                known = self._history().get(params.task_id).id
        return {
            "name": shown,
            "task_id": params.task_id,
            "known": known,
            "size": list(params.size) if params.size else None,
            "prompt_text": midjourney_prompt(restored),
            "rows": diff_rows(current.to_dict(), restored.to_dict()),
        }

    def apply_image(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Put the parameters read by ``read-image`` into the controls (``apply-image``)."""
        with self._widget._lock:
            if self._image is None:
                raise HistoryError("no image was read: drop or choose the PNG again")
            restored, self._image = self._image, None
            if not self._widget._spec.builtin:
                raise HistoryError(
                    f"the image's parameters are {restored.model}'s; this widget sends "
                    f"{self._widget._spec.model}"
                )
            return self._apply(restored, self._current(), "Used the image's parameters")

    def use(self, new: AnyRequest, title: str) -> dict[str, Any]:
        """Put ``new`` into the controls now, with the one undo (the Sweep tab's "Use these"
        and opened contact sheets share it)."""
        with self._widget._lock:
            return self._apply(new, self._current(), title)

    def _current(self) -> AnyRequest:
        return self._widget.request.replace()

    def _apply(self, new: AnyRequest, before: AnyRequest, title: str) -> dict[str, Any]:
        """Set the controls to ``new`` (one undo back to ``before``); the reply says what."""
        self._widget.request = new
        self._undo = before
        names = self._widget._spec.field_names
        changed = [n for n in names if getattr(before, n) != getattr(new, n)]
        if changed:
            what = ", ".join(_field_text(n, getattr(new, n)) for n in changed)
            applied = f"{title}: {what}."
        else:
            applied = f"{title}: the controls already held these values."
        return {"applied": applied, "changed": changed, "undo": True}

    # -- marks --

    def star(self, content: Mapping[str, Any]) -> dict[str, Any]:
        history = self._history()
        ref = _ref(content.get("run"))
        history.star(ref, content.get("starred") is True)
        run = history.get(ref)
        return {"run": run.id, "starred": run.starred}

    def rate(self, content: Mapping[str, Any]) -> dict[str, Any]:
        history = self._history()
        ref = _ref(content.get("run"))
        history.rate(ref, content.get("rating"))  # type: ignore[arg-type]  # the store checks
        run = history.get(ref)
        return {"run": run.id, "rating": run.rating}

    def delete(self, content: Mapping[str, Any]) -> dict[str, Any]:
        history = self._history()
        run = history.get(_ref(content.get("run")))
        if run.active:
            raise HistoryError(
                f"run {run.task_id or run.id} is still going: cancel it first, then delete it"
            )
        history.delete(run)
        return {"run": run.id, "deleted": True}

    # -- changes --

    def notify(self) -> bool:
        """Tell the page that the store changed; False once the widget is closed."""
        widget = self._widget
        with widget._lock:
            if widget.comm is None:
                return False
            widget.send({"kind": "history-changed"})
        return True


# --- what the page gets -------------------------------------------------------------------


def dropped_image(name: Any, buffers: Sequence[Any], error: type[Exception]) -> tuple[str, bytes]:
    """The name to show and the bytes of an image file the page sent (its one buffer), or
    ``error`` saying what is wrong (nothing arrived, too large)."""
    shown = name[:200] if isinstance(name, str) and name else "the image"
    if not buffers:
        raise error(f"no bytes of {shown} arrived: drop or choose it again")
    data = bytes(buffers[0])
    if len(data) > MAX_IMAGE_BYTES:
        raise error(
            f"{shown} is {len(data) / 1e6:.1f} MB: images up to "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB are read"
        )
    return shown, data


def _ref(value: Any) -> int | str:
    """A run named by the page: its row id (or task id)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise HistoryError(f"{value!r} does not name a run")
    return value


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HistoryError(f"{name} must be a whole number, not {value!r}")
    return max(low, min(high, value))


def _ms(moment: Any) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def _field_text(name: str, value: Any) -> str:
    spec = FIELDS_BY_NAME.get(name)
    label = spec.label.lower() if spec else name
    if isinstance(value, bool):
        return f"{label} {'on' if value else 'off'}"
    if isinstance(value, str) and not (spec and spec.enum):
        short = value if len(value) <= 60 else value[:57] + "…"
        return f"{label} “{short}”"
    return f"{label} {value}"


def diff_rows(
    a: Mapping[str, Any], b: Mapping[str, Any], seeds_used: tuple[Any, Any] | None = None
) -> list[dict[str, Any]]:
    """Every field of two requests (schema order, then unknown ones), the differing marked."""
    names = [*FIELD_NAMES, *sorted({*a, *b} - set(FIELD_NAMES))]
    rows = []
    for name in names:
        spec = FIELDS_BY_NAME.get(name)
        left, right = a.get(name), b.get(name)
        rows.append(
            {
                "name": name,
                "label": spec.label if spec else name,
                "a": left,
                "b": right,
                "differs": left != right,
            }
        )
    if seeds_used is not None and seeds_used != (None, None):
        left, right = seeds_used
        row = {"name": "seed_used", "label": "Seed used", "a": left, "b": right}
        rows.append({**row, "differs": left != right})
    return rows


def _image_refs(run: Run, home: Path) -> list[dict[str, Any]]:
    def ref(path: str | None) -> str | None:
        if not path:
            return None
        with contextlib.suppress(ValueError):
            return Path(path).relative_to(home).as_posix()
        return None

    return [
        {
            "index": image.index,
            "url": image.url,
            "file": ref(image.path),
            "thumb": ref(image.thumb),
            "media_type": image.media_type,
            "width": image.width,
            "height": image.height,
            "bytes": image.bytes,
            "error": image.error,
        }
        for image in run.images
    ]


def _prompt_text(run: Run) -> str:
    try:
        return midjourney_prompt(run.request)
    except SirayError:  # another model's fields
        return run.prompt


def run_brief(run: Run, home: Path) -> dict[str, Any]:
    """A run as the diff view heads its column."""
    return {
        "id": run.id,
        "task_id": run.task_id,
        "created_at": _ms(run.created_at),
        "state": run.state,
        "prompt_text": _prompt_text(run),
        "thumbs": [image["thumb"] for image in _image_refs(run, home)],
    }


def run_details(run: Run, home: Path) -> dict[str, Any]:
    """Everything the details drawer shows about ``run`` (files as store references)."""
    return {
        "id": run.id,
        "task_id": run.task_id,
        "state": run.state,
        "status": run.status,
        "progress": run.progress,
        "active": run.active,
        "model": run.model,
        "request_json": run.request_json,
        "params": dict(run.params),
        "changed": [
            name
            for name, value in run.params.items()
            if name in FIELDS_BY_NAME and FIELDS_BY_NAME[name].default != value
        ],
        "prompt_text": _prompt_text(run),
        "seed_used": run.seed_used,
        "origin": run.origin,
        "source": run.source,
        "created_at": _ms(run.created_at),
        "submitted_at": _ms(run.submitted_at),
        "finished_at": _ms(run.finished_at),
        "timings": run.timings,
        "fail_reason": run.fail_reason,
        "error": run.error,
        "images_state": run.images_state,
        "images_error": run.images_error,
        "starred": run.starred,
        "rating": run.rating,
        "tags": list(run.tags),
        "note": run.note,
        "outputs": list(run.outputs),
        "images": _image_refs(run, home),
        "events": [
            {"at": _ms(e.at), "state": e.state, "status": e.status, "progress": e.progress}
            for e in run.events[-MAX_EVENTS:]
        ],
    }


# --- telling panels that the store changed ------------------------------------------------


class HistoryWatch:
    """Looks at the store's change stamp every ``tick`` seconds, on one daemon thread that
    runs while some History panel is open, and tells the panels when it moved: a run of this
    kernel, of another kernel or of the command line, a star, a deletion."""

    def __init__(self, tick: float = WATCH_TICK) -> None:
        self.tick = tick
        self._panels: weakref.WeakSet[HistoryPanel] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stamp: Any = None

    def add(self, panel: HistoryPanel) -> None:
        with self._lock:
            self._panels.add(panel)
            if self._stamp is None:
                self._stamp = _stamp()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="siray-widgets-history", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        event = threading.Event()
        while True:
            event.wait(self.tick)
            with self._lock:
                panels = list(self._panels)
                if not panels:
                    self._thread = None
                    self._stamp = None
                    return
            stamp = _stamp()
            if stamp == self._stamp:
                continue
            self._stamp = stamp
            for panel in panels:
                try:
                    alive = panel.notify()
                except Exception:  # a broken comm must not stop the others' news
                    logger.exception("telling a History panel about a change failed")
                    alive = False
                if not alive:
                    with self._lock:
                        self._panels.discard(panel)


def _stamp() -> Any:
    from .store import StoreError, open_store

    try:
        store = open_store()
        return (str(store.home), id(store), *store.change_stamp())
    except StoreError:
        return None


#: The process's watch.
WATCH: Final = HistoryWatch()
