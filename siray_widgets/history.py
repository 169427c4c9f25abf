"""``History``: every run recorded on this machine (or in a project's folder), from Python.

>>> from siray_widgets import History
>>> h = History()                                    # doctest: +SKIP
>>> runs = h.list("fox", status="success", aspect_ratio="16:9", since="7d")  # doctest: +SKIP
>>> h.restore(runs[0], "remix")                      # doctest: +SKIP
ImageRequest(prompt='a fox in the snow', aspect_ratio='16:9', stylize=250)
>>> h.diff(runs[0], runs[1])                         # doctest: +SKIP
{'stylize': (250, 500)}
>>> h.export(runs, "fox-study/")                     # doctest: +SKIP

Runs are recorded by the widget, ``SirayClient.generate()``, ``siray-widgets generate`` and
sweeps (see :mod:`siray_widgets.store`). A run can be named by its :class:`Run`, its task id,
or its row id.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from .errors import ValidationError
from .schema import FIELD_NAMES, FIELDS_BY_NAME, ImageRequest
from .store import (
    DEFAULT_MAX_BYTES,
    Page,
    PurgeReport,
    Run,
    RunQuery,
    RunStore,
    SpendLedger,
    open_store,
)
from .store.export import ExportResult, export_runs
from .store.html_page import write_html
from .store.query import When

if TYPE_CHECKING:
    import pandas

    from .client import SirayClient

RunRef = Run | str | int
#: What a restore brings back, with InvokeAI's meanings.
RestoreWhat = Literal["all", "remix", "prompt", "seed"]
RESTORE_CHOICES: Final[tuple[str, ...]] = ("all", "remix", "prompt", "seed")

_FILTERS: Final = frozenset(
    {
        "status",
        "starred",
        "tag",
        "tags",
        "since",
        "until",
        "origin",
        "model",
        "min_rating",
        "sweep_id",
    }
)


def build_query(
    text: str = "",
    *,
    limit: int | None = None,
    offset: int = 0,
    order: Literal["newest", "oldest"] = "newest",
    where: Mapping[str, Any] | None = None,
    **filters: Any,
) -> RunQuery:
    """A :class:`RunQuery` from keyword filters; request fields may be given by name
    (``aspect_ratio="16:9"``, ``stylize=(100, 500)``, ``quality=["2", "4"]``)."""
    fields: dict[str, Any] = dict(where or {})
    options: dict[str, Any] = {}
    for name, value in filters.items():
        if name in _FILTERS and not (name == "model" and isinstance(value, (list, tuple))):
            options[name] = value
        elif name in FIELDS_BY_NAME:
            fields[name] = value
        else:
            known = ", ".join(sorted(_FILTERS | set(FIELD_NAMES)))
            raise TypeError(f"unknown filter {name!r}; filters: {known}")
    tags = options.pop("tags", ()) or ()
    tag = options.pop("tag", None)
    if tag is not None:
        tags = [tag] if isinstance(tag, str) else [*tag]
    elif isinstance(tags, str):
        tags = [tags]
    return RunQuery(
        text=text,
        tags=tuple(tags),
        fields=fields,
        limit=limit,
        offset=offset,
        order=order,
        **options,
    )


class History:
    """The recorded runs of a data folder (default: the per-user one; ``SIRAY_WIDGETS_HOME``
    overrides; pass a folder for a project-local history)."""

    def __init__(self, path: str | os.PathLike[str] | RunStore | None = None) -> None:
        self.store: RunStore = path if isinstance(path, RunStore) else open_store(path)

    def __repr__(self) -> str:
        return f"History({len(self)} runs in {str(self.store.home)!r})"

    @property
    def home(self) -> Path:
        return self.store.home

    @property
    def ledger(self) -> SpendLedger:
        """Tasks sent and their estimated cost, per day and model."""
        return self.store.ledger

    # -- finding --

    def list(
        self,
        text: str = "",
        *,
        status: str | Sequence[str] | None = None,
        starred: bool | None = None,
        tag: str | Sequence[str] | None = None,
        since: When = None,
        until: When = None,
        limit: int | None = None,
        offset: int = 0,
        order: Literal["newest", "oldest"] = "newest",
        **filters: Any,
    ) -> list[Run]:
        """Runs matching every filter given, newest first.

        ``text``: words (or "quoted phrases") in the prompt, negative prompt, note, tags or
        task id. ``status``: a state (``success``, ``failure``, ``error``, ``cancelled``,
        ``interrupted``, ``stalled``, ``running``), ``failed`` or ``active``. ``since`` /
        ``until``: dates, datetimes or ages (``"7d"``). Other keywords: ``origin``, ``model``,
        ``min_rating``, ``sweep_id``, and any request field by name (a value, a list of
        values, or a ``(low, high)`` range).
        """
        query = build_query(
            text,
            status=status,
            starred=starred,
            tag=tag,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            order=order,
            **filters,
        )
        return self.store.runs(query)

    def query(
        self, text: str = "", *, limit: int | None = 100, offset: int = 0, **filters: Any
    ) -> Page:
        """One page of compact rows (what the history panel shows): JSON-ready dicts with the
        fields that differ from the defaults and thumbnail references (read them with
        :meth:`thumbnail`), plus the number of matches."""
        return self.store.page(build_query(text, limit=limit, offset=offset, **filters))

    def count(self, text: str = "", **filters: Any) -> int:
        return self.store.count(build_query(text, **filters))

    def get(self, run: RunRef) -> Run:
        """One run by task id (or row id), with its events; KeyError if unknown."""
        return self.store.get(run)

    def latest(self) -> Run | None:
        runs = self.store.runs(RunQuery(limit=1))
        return runs[0] if runs else None

    def __len__(self) -> int:
        return self.store.count()

    def __iter__(self) -> Iterator[Run]:
        return iter(self.store.runs())

    def __contains__(self, run: object) -> bool:
        if not isinstance(run, (Run, str, int)):
            return False
        try:
            self.store.get(run)
        except KeyError:
            return False
        return True

    def thumbnail(self, ref: str) -> bytes:
        """The bytes of a thumbnail (or image) reference from :meth:`query`'s rows."""
        return self.store.read_file(ref)

    def tags(self) -> dict[str, int]:
        """Every tag and how many runs carry it."""
        return self.store.tags()

    def to_pandas(self, runs: Iterable[RunRef] | None = None, **filters: Any) -> pandas.DataFrame:
        """One row per run (every request field a column); needs pandas installed."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "History.to_pandas() needs pandas: pip install pandas "
                "(or pip install 'siray-widgets[pandas]')"
            ) from None
        chosen = self._runs(runs) if runs is not None else self.list(**filters)
        records = [_record(run) for run in chosen]
        columns = list(_record_columns())
        frame = pd.DataFrame.from_records(records, columns=columns)
        for name in ("created_at", "submitted_at", "finished_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    # -- restoring and comparing --

    def restore(
        self, run: RunRef, what: RestoreWhat = "all", base: ImageRequest | None = None
    ) -> ImageRequest:
        """The request to use again, with InvokeAI's meanings:

        - ``"all"``: every field as sent, with the seed that was used (the same image again);
        - ``"remix"``: every field but the seed (the seed stays ``base``'s; -1 without one);
        - ``"prompt"``: the prompt and negative prompt, on top of ``base``;
        - ``"seed"``: the seed that was used, on top of ``base``.

        ``base`` is what the other fields come from (the widget passes its current request);
        without it they are the defaults, with the run's prompt.
        """
        if what not in RESTORE_CHOICES:
            raise ValueError(f"what={what!r}: choose one of {', '.join(RESTORE_CHOICES)}")
        found = self._run(run)
        sent = found.request
        seed = found.seed_used if found.seed_used is not None else sent.seed
        start = base if base is not None else ImageRequest(prompt=sent.prompt)
        try:
            if what == "all":
                return sent.replace(seed=seed)
            if what == "remix":
                return sent.replace(seed=base.seed if base is not None else -1)
            if what == "prompt":
                return start.replace(prompt=sent.prompt, negative_prompt=sent.negative_prompt)
            return start.replace(seed=seed)
        except ValidationError as exc:
            raise ValidationError(
                exc.field, exc.value, f"{exc.problem} (restoring {found.task_id})"
            ) from None

    def diff(self, a: RunRef, b: RunRef) -> dict[str, tuple[Any, Any]]:
        """The request fields (and the seed used) in which two runs differ: ``{name: (a, b)}``."""
        first, second = self._run(a), self._run(b)
        names = [
            *FIELD_NAMES,
            *(k for k in {**first.params, **second.params} if k not in FIELDS_BY_NAME),
        ]
        changes = {
            name: (first.params.get(name), second.params.get(name))
            for name in names
            if first.params.get(name) != second.params.get(name)
        }
        if first.seed_used != second.seed_used:
            changes["seed_used"] = (first.seed_used, second.seed_used)
        return changes

    # -- editing --

    def star(self, run: RunRef, starred: bool = True) -> None:
        self.store.star(run, starred)

    def unstar(self, run: RunRef) -> None:
        self.store.star(run, False)

    def rate(self, run: RunRef, rating: int) -> None:
        """0..5 stars of rating (0 clears it)."""
        self.store.rate(run, rating)

    def tag(self, run: RunRef, *tags: str) -> None:
        self.store.add_tags(run, tags)

    def untag(self, run: RunRef, *tags: str) -> None:
        self.store.remove_tags(run, tags)

    def note(self, run: RunRef, text: str) -> None:
        """Replace the run's note ("" clears it)."""
        self.store.set_note(run, text)

    def delete(self, *runs: RunRef) -> int:
        """Forget runs and delete their images; returns how many."""
        return self.store.delete(runs)

    # -- files --

    def export(self, runs: Iterable[RunRef] | None, folder: str | os.PathLike[str]) -> ExportResult:
        """Copy the runs' images into ``folder`` with ``manifest.json`` and ``manifest.csv``
        (one row per image: file, task id, every request field, status, times). ``None``
        exports every run."""
        chosen = self._runs(runs) if runs is not None else self.store.runs()
        return export_runs(self.store, chosen, Path(folder))

    def html(self, path: str | os.PathLike[str], runs: Iterable[RunRef] | None = None) -> Path:
        """A static page of the runs (all by default): searchable, thumbnails inline."""
        chosen = self._runs(runs) if runs is not None else self.store.runs()
        return write_html(self.store, chosen, Path(path))

    def retry_downloads(self, timeout: float | None = 300.0, **filters: Any) -> builtins.list[Run]:
        """Try again to keep the images of runs whose download failed; the runs afterwards."""
        futures = self.store.retry_images(build_query(**filters))
        return [future.result(timeout) for future in futures]

    def purge(
        self,
        *,
        older_than: float | None = None,
        failed: bool = False,
        everything: bool = False,
        include_starred: bool = False,
        dry_run: bool = False,
    ) -> PurgeReport:
        """See :meth:`RunStore.purge`."""
        return self.store.purge(
            older_than=older_than,
            failed=failed,
            everything=everything,
            include_starred=include_starred,
            dry_run=dry_run,
        )

    def set_limits(
        self, max_bytes: int | None = DEFAULT_MAX_BYTES, max_runs: int | None = None
    ) -> int:
        """Bound the history (saved in it): beyond ``max_bytes`` of images or ``max_runs``
        runs, the oldest unstarred runs are forgotten (None = no bound). Returns how many
        were forgotten now."""
        return self.store.set_limits(max_bytes, max_runs)

    def size(self) -> dict[str, int]:
        """Runs, bytes of images and thumbnails, bytes of database."""
        return self.store.size()

    def resume(
        self, run: RunRef, client: SirayClient | None = None, timeout: float | None = 600.0
    ) -> Run:
        """Follow an interrupted or cancelled run's task again until it ends, and record the
        outcome (a task keeps running on the server when the process following it stops)."""
        found = self._run(run)
        if found.task_id is None:
            raise ValueError(f"run {found.id} never got a task id: there is nothing to follow")
        if found.state == "success":
            return found
        recorder = self.store.resume(found)
        from .client import SirayClient

        own = client is None
        http = client if client is not None else SirayClient(hooks=False)
        outcome: Any = None
        try:
            recorder.api_base_url = http.base_url
            outcome = http.wait(found.task_id, on_update=recorder.reading, timeout=timeout)
        except BaseException as exc:
            outcome = exc
            raise
        finally:
            recorder.finished(outcome)
            if own:
                http.close()
        return recorder.wait_images(timeout)

    # -- helpers --

    def _run(self, run: RunRef) -> Run:
        return run if isinstance(run, Run) else self.store.get(run)

    def _runs(self, runs: Iterable[RunRef]) -> builtins.list[Run]:
        if isinstance(runs, (Run, str, int)):
            runs = [runs]
        return [self._run(r) for r in runs]


def _record_columns() -> tuple[str, ...]:
    return (
        "task_id",
        "created_at",
        "submitted_at",
        "finished_at",
        "state",
        "status",
        "progress",
        *FIELD_NAMES,
        "seed_used",
        "origin",
        "source",
        "starred",
        "rating",
        "tags",
        "note",
        "outputs",
        "files",
        "images_state",
        "fail_reason",
        "error",
        "queued_s",
        "generating_s",
        "total_s",
    )


def _record(run: Run) -> dict[str, Any]:
    timings = run.timings
    record: dict[str, Any] = {
        "task_id": run.task_id,
        "created_at": run.created_at,
        "submitted_at": run.submitted_at,
        "finished_at": run.finished_at,
        "state": run.state,
        "status": run.status,
        "progress": run.progress,
        **{name: run.params.get(name) for name in FIELD_NAMES},
        "seed_used": run.seed_used,
        "origin": run.origin,
        "source": run.source,
        "starred": run.starred,
        "rating": run.rating,
        "tags": list(run.tags),
        "note": run.note,
        "outputs": list(run.outputs),
        "files": run.files,
        "images_state": run.images_state,
        "fail_reason": run.fail_reason,
        "error": run.error,
        "queued_s": timings["queued"],
        "generating_s": timings["generating"],
        "total_s": timings["total"],
    }
    return record
