"""The run store: every run, its images and the spend ledger, in one data folder.

:class:`RunStore` is the only code that writes into the data folder (see :mod:`.paths`). Open
one with :func:`open_store` (one shared instance per folder and process) or ``RunStore(path)``
for a project-local store. It is thread-safe: one SQLite connection per instance, used under a
lock; other processes use their own (see :mod:`.db` for what makes that safe).

Recording goes through :meth:`RunStore.record`, which returns a
:class:`~siray_widgets.store.recorder.Recorder` for one run.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..metadata import ImageParams
from . import owner
from .db import StoreError, connect, transaction
from .images import EXTENSIONS, Checked, ImageError, check, fetch, pool
from .ledger import SpendLedger
from .model import ACTIVE_STATES, Run, RunEvent, StoredImage, utc
from .paths import (
    CACHE_DIR,
    DB_NAME,
    IMAGES_DIR,
    THUMBS_DIR,
    atomic_write,
    data_home,
    ensure_home,
    file_stem,
    inside,
)
from .query import ROW_COLUMNS, Page, RunQuery, compact_row, normalise_tag, search_text

if TYPE_CHECKING:
    from ..schema import AnyRequest, ImageRequest
    from .recorder import Recorder, Scrub

logger = logging.getLogger("siray_widgets.store")

#: Default cap on the bytes of kept images and thumbnails.
DEFAULT_MAX_BYTES: Final = 10_000_000_000  # 10 GB
#: A run followed from another host counts as interrupted after this long without news.
FOREIGN_STALE_SECONDS: Final = 24 * 3600
#: How often (at most) listing runs looks for interrupted ones.
INTERRUPT_CHECK_INTERVAL: Final = 2.0
#: Temporary files older than this are leftovers of a crash (purge removes them).
TMP_MAX_AGE: Final = 3600.0

RunRef = Run | str | int

_RUN_COLUMNS: Final = (
    "id, run_uid, task_id, model, request_json, params_json, seed_used, origin, source, "
    "state, status, progress, fail_reason, error, outputs_json, created_at, submitted_at, "
    "finished_at, updated_at, api_submit_time, api_start_time, api_finish_time, images_state, "
    "images_error, bytes, starred, rating, note, sweep_id, cell_key"
)


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove)."""

    runs: int
    bytes: int
    orphan_files: int
    dry_run: bool

    def __str__(self) -> str:
        verb = "would forget" if self.dry_run else "forgot"
        return (
            f"{verb} {self.runs} run(s), {self.bytes / 1e6:.1f} MB of images; "
            f"{self.orphan_files} stray file(s)"
        )


@dataclass(frozen=True)
class Limits:
    """Size bounds of a store: beyond them the oldest unstarred runs are forgotten."""

    max_bytes: int | None = DEFAULT_MAX_BYTES
    max_runs: int | None = None


class RunStore:
    """Runs, images and the ledger in a data folder (default: the per-user one)."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | None = None,
        max_runs: int | None = None,
    ) -> None:
        try:
            self.home: Path = ensure_home(data_home(home))
        except OSError as exc:
            raise StoreError(
                f"cannot create the data folder {data_home(home)}: {exc.strerror or exc}"
            ) from None
        self.db_path: Path = self.home / DB_NAME
        self._db = connect(self.db_path)
        self._lock = threading.RLock()
        self._closed = False
        self._pid = os.getpid()
        self._override = Limits(max_bytes, max_runs) if (max_bytes or max_runs) else None
        self._last_interrupt_check = 0.0
        #: Price per task of a model, where the caller knows it (the package root wires the
        #: model registry's prices in: ``siray_widgets.store.default_price_lookup``).
        from . import default_price_lookup

        self.price_lookup: Callable[[str], float | None] | None = default_price_lookup
        self.ledger = SpendLedger(self._db, self._lock, self._write)
        _OPEN.add(self)
        self.mark_interrupted()

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r})"

    # -- connection --

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the lock; SQLite errors become StoreError."""
        with self._lock:
            self._check_open()
            try:
                with transaction(self._db) as db:
                    yield db
            except sqlite3.Error as exc:
                raise StoreError(f"writing the run store {self.db_path} failed: {exc}") from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_open()
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StoreError(f"reading the run store {self.db_path} failed: {exc}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the run store {self.home} is closed")
        if os.getpid() != self._pid:
            raise StoreError(
                "a run store cannot be used in a process forked from the one that opened it; "
                "open it again there (open_store() does)"
            )

    def close(self) -> None:
        """Close the database (safe to call twice). Downloads under way finish first."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _OPEN.discard(self)
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recording --

    def record(
        self,
        request: AnyRequest | Mapping[str, Any],
        *,
        origin: str = "script",
        source: str | None = None,
        sweep_id: str | None = None,
        cell_key: str | None = None,
        unit_price: float | None = None,
        keep_images: bool = True,
        stall_after: float | None = None,
        scrub: Scrub | None = None,
        on_change: Callable[[Recorder], object] | None = None,
        api_base_url: str | None = None,
    ) -> Recorder:
        """Start recording a run now (state "starting"); see :class:`Recorder`.
        ``api_base_url``: the run's API (which image URLs may be downloaded)."""
        from .recorder import Recorder

        return Recorder(
            self,
            request,
            origin=origin,
            source=source,
            sweep_id=sweep_id,
            cell_key=cell_key,
            unit_price=unit_price,
            keep_images=keep_images,
            stall_after=stall_after,
            scrub=scrub,
            on_change=on_change,
            api_base_url=api_base_url,
        )

    def resume(self, ref: RunRef) -> Recorder:
        """A recorder that follows an existing run again (its task id must be known)."""
        from .recorder import Recorder

        run = self.get(ref)
        if run.task_id is None:
            raise ValueError(f"run {run.id} never got a task id: there is nothing to follow")
        try:
            request: ImageRequest | Mapping[str, Any] = run.request
        except ValidationError:
            request = run.body
        return Recorder(self, request, origin=run.origin, source=run.source, resume=run)

    # -- reading --

    def _run_id(self, ref: RunRef) -> int:
        if isinstance(ref, Run):
            return ref.id
        if isinstance(ref, bool):
            raise TypeError("a run is a Run, a task id or a run id, not a boolean")
        if isinstance(ref, int):
            with self._read() as db:
                found = db.execute("SELECT id FROM runs WHERE id = ?", (ref,)).fetchone()
        elif isinstance(ref, str):
            with self._read() as db:
                found = db.execute(
                    "SELECT id FROM runs WHERE task_id = ? OR run_uid = ?", (ref, ref)
                ).fetchone()
        else:
            raise TypeError(f"a run is a Run, a task id or a run id, not {type(ref).__name__}")
        if found is None:
            raise KeyError(f"no run {ref!r} in the history at {self.home}")
        return int(found[0])

    def get(self, ref: RunRef) -> Run:
        """One run with everything about it (its events included); KeyError if unknown."""
        run_id = self._run_id(ref)
        runs = self._load(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [run_id], events=True)
        if not runs:
            raise KeyError(f"no run {ref!r} in the history at {self.home}")
        return runs[0]

    def runs(self, query: RunQuery | None = None, *, events: bool = False) -> list[Run]:
        """The runs matching ``query`` (all of them by default), newest first."""
        query = query or RunQuery()
        self._maybe_mark_interrupted()
        where, args = query.where()
        page, page_args = query.page_clause()
        return self._load(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} {query.order_by()} {page}",
            [*args, *page_args],
            events=events,
        )

    def count(self, query: RunQuery | None = None) -> int:
        where, args = (query or RunQuery()).where()
        with self._read() as db:
            return int(db.execute(f"SELECT count(*) FROM runs WHERE {where}", args).fetchone()[0])

    def page(self, query: RunQuery | None = None) -> Page:
        """Compact rows for a gallery: one page of matches and the number of matches."""
        query = query or RunQuery(limit=100)
        self._maybe_mark_interrupted()
        where, args = query.where()
        page, page_args = query.page_clause()
        with self._read() as db:
            total = int(db.execute(f"SELECT count(*) FROM runs WHERE {where}", args).fetchone()[0])
            rows = db.execute(
                f"SELECT {ROW_COLUMNS} FROM runs WHERE {where} {query.order_by()} {page}",
                [*args, *page_args],
            ).fetchall()
        return Page([compact_row(r) for r in rows], total, query.offset, query.limit)

    def change_stamp(self) -> tuple[int, int]:
        """Changes nothing; differs from an earlier stamp when the database has changed since
        (written through this store, or by any other connection: another process). Cheap:
        for a history view that asks every second."""
        with self._read() as db:
            version = int(db.execute("PRAGMA data_version").fetchone()[0])
            return db.total_changes, version

    def tags(self) -> dict[str, int]:
        """Every tag in use and how many runs carry it."""
        with self._read() as db:
            rows = db.execute("SELECT tag, count(*) FROM run_tags GROUP BY tag ORDER BY tag")
            return {str(tag): int(n) for tag, n in rows}

    def _load(self, sql: str, args: Sequence[Any], *, events: bool) -> list[Run]:
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
            ids = [row[0] for row in rows]
            tags: dict[int, list[str]] = {i: [] for i in ids}
            images: dict[int, list[StoredImage]] = {i: [] for i in ids}
            seen: dict[int, list[RunEvent]] = {i: [] for i in ids}
            for chunk in _chunks(ids, 500):
                marks = ", ".join("?" * len(chunk))
                for run_id, tag in db.execute(
                    f"SELECT run_id, tag FROM run_tags WHERE run_id IN ({marks}) ORDER BY tag",
                    chunk,
                ):
                    tags[run_id].append(tag)
                for row in db.execute(
                    "SELECT run_id, idx, url, file, thumb, media_type, width, height, bytes, "
                    f"sha256, error FROM images WHERE run_id IN ({marks}) ORDER BY run_id, idx",
                    chunk,
                ):
                    images[row[0]].append(
                        StoredImage(
                            index=row[1],
                            url=row[2],
                            path=str(self.home / row[3]) if row[3] else None,
                            thumb=str(self.home / row[4]) if row[4] else None,
                            media_type=row[5],
                            width=row[6],
                            height=row[7],
                            bytes=row[8],
                            sha256=row[9],
                            error=row[10],
                        )
                    )
                if events:
                    for run_id, at, state, status, progress in db.execute(
                        "SELECT run_id, at, state, status, progress FROM run_events "
                        f"WHERE run_id IN ({marks}) ORDER BY run_id, at, rowid",
                        chunk,
                    ):
                        seen[run_id].append(RunEvent(utc(at), state, status, progress))  # type: ignore[arg-type]
        return [_run_from_row(row, tags[row[0]], images[row[0]], seen[row[0]]) for row in rows]

    # -- files --

    def path(self, ref: str) -> Path:
        """The absolute path of a file reference from a compact row (``thumbs/...``)."""
        return inside(self.home, ref)

    def read_file(self, ref: str) -> bytes:
        """The bytes of an image or thumbnail reference (``images/x-1.png``, ``thumbs/...``)."""
        if not ref.startswith((IMAGES_DIR + "/", THUMBS_DIR + "/")):
            raise ValueError(f"{ref!r} is not an image or thumbnail of this store")
        return self.path(ref).read_bytes()

    def write_cache(self, name: str, data: bytes) -> Path:
        """Keep ``data`` as ``cache/<name>`` in the data folder (atomically); for other parts
        of the package (the model registry) that keep files here through the store."""
        path = inside(self.home / CACHE_DIR, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return path

    def read_cache(self, name: str) -> bytes | None:
        """The bytes kept as ``cache/<name>``, or None."""
        try:
            return inside(self.home / CACHE_DIR, name).read_bytes()
        except FileNotFoundError:
            return None

    # -- documents (sweep definitions, presets: small JSON kept with the runs) --

    def put_document(self, kind: str, key: str, value: Any) -> None:
        """Keep a JSON-able ``value`` under (``kind``, ``key``), replacing what was there."""
        for name, text in (("kind", kind), ("key", key)):
            if not isinstance(text, str) or not text:
                raise ValueError(f"a document's {name} is non-empty text, not {text!r}")
        data = json.dumps(value, ensure_ascii=False, allow_nan=False)
        with self._write() as db:
            db.execute(
                "INSERT INTO documents (kind, key, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (kind, key, data, time.time()),
            )

    def get_document(self, kind: str, key: str) -> Any:
        """The value kept under (``kind``, ``key``), or None."""
        with self._read() as db:
            row = db.execute(
                "SELECT value FROM documents WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def documents(self, kind: str) -> dict[str, Any]:
        """Every document of a kind, by key."""
        with self._read() as db:
            rows = db.execute(
                "SELECT key, value FROM documents WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def delete_document(self, kind: str, key: str) -> bool:
        with self._write() as db:
            return bool(
                db.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key)).rowcount
            )

    # -- editing --

    def star(self, ref: RunRef, starred: bool = True) -> None:
        self._set(ref, "starred", int(bool(starred)))

    def rate(self, ref: RunRef, rating: int) -> None:
        """Rate a run 0..5 (0 = not rated)."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise ValueError(f"a rating is an integer 0..5, not {rating!r}")
        self._set(ref, "rating", rating)

    def set_note(self, ref: RunRef, note: str) -> None:
        if not isinstance(note, str):
            raise TypeError(f"a note is text, not {type(note).__name__}")
        run_id = self._run_id(ref)
        with self._write() as db:
            db.execute("UPDATE runs SET note = ? WHERE id = ?", (note, run_id))
            self._refresh_search(db, run_id)

    def add_tags(self, ref: RunRef, tags: Iterable[str]) -> None:
        clean = [normalise_tag(t) for t in tags]
        run_id = self._run_id(ref)
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
                [(run_id, t) for t in clean],
            )
            self._refresh_search(db, run_id)

    def remove_tags(self, ref: RunRef, tags: Iterable[str]) -> None:
        clean = [normalise_tag(t) for t in tags]
        run_id = self._run_id(ref)
        with self._write() as db:
            db.executemany(
                "DELETE FROM run_tags WHERE run_id = ? AND tag = ?", [(run_id, t) for t in clean]
            )
            self._refresh_search(db, run_id)

    def _set(self, ref: RunRef, column: str, value: object) -> None:
        run_id = self._run_id(ref)
        with self._write() as db:
            db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))

    def _refresh_search(self, db: sqlite3.Connection, run_id: int) -> None:
        row = db.execute(
            "SELECT prompt, negative_prompt, note, task_id FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return
        tags = [t for (t,) in db.execute("SELECT tag FROM run_tags WHERE run_id = ?", (run_id,))]
        db.execute(
            "UPDATE runs SET search = ? WHERE id = ?",
            (search_text(row[0], row[1], row[2], tags, row[3]), run_id),
        )

    def delete(self, refs: RunRef | Iterable[RunRef]) -> int:
        """Forget runs and delete their files; returns how many were forgotten."""
        items = [refs] if isinstance(refs, (Run, str, int)) else list(refs)
        ids = [self._run_id(r) for r in items]
        return self._forget(ids)

    def _forget(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        files: list[str] = []
        removed = 0
        with self._write() as db:
            for chunk in _chunks(list(ids), 500):
                marks = ", ".join("?" * len(chunk))
                for file, thumb in db.execute(
                    f"SELECT file, thumb FROM images WHERE run_id IN ({marks})", chunk
                ):
                    files.extend(f for f in (file, thumb) if f)
                removed += db.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk).rowcount
        # After the commit: a crash in between leaves stray files (purge removes them), never
        # a row pointing at a missing file.
        for ref in files:
            with contextlib.suppress(OSError, ValueError):
                self.path(ref).unlink(missing_ok=True)
        return removed

    # -- images --

    def keep_images(self, ref: RunRef) -> concurrent.futures.Future[Run]:
        """Download the run's images that are not kept yet, in the background.

        The future gives the run afterwards (its ``images_state`` says how it went).
        """
        run_id = self._run_id(ref)
        return pool().submit(self._keep, run_id)

    def retry_images(self, query: RunQuery | None = None) -> list[concurrent.futures.Future[Run]]:
        """Try again to keep the images of finished runs whose download failed or never ran."""
        where, args = (query or RunQuery()).where()
        active = ", ".join("?" * len(ACTIVE_STATES))
        with self._read() as db:
            ids = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM runs WHERE {where} AND images_state IN "
                    f"('pending', 'failed', 'partial') AND state NOT IN ({active})",
                    [*args, *sorted(ACTIVE_STATES)],
                )
            ]
        return [pool().submit(self._keep, run_id) for run_id in ids]

    def _keep(self, run_id: int) -> Run:
        with self._read() as db:
            found = db.execute(
                "SELECT task_id, params_json, seed_used FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            wanted = db.execute(
                "SELECT idx, url FROM images WHERE run_id = ? AND file IS NULL ORDER BY idx",
                (run_id,),
            ).fetchall()
        if found is None:
            raise KeyError(f"run {run_id} was deleted before its images were kept")
        task_id, params_json, seed_used = found
        from ..schema import FIELDS_BY_NAME, MODEL_ID, ImageRequest

        params = json.loads(params_json)
        request = (
            ImageRequest(**{k: v for k, v in params.items() if k in FIELDS_BY_NAME})
            if params.get("model", MODEL_ID) == MODEL_ID
            else None  # another model: kept without niji 7's metadata chunks
        )
        stem = file_stem(task_id or f"run-{run_id}")
        kept: list[tuple[int, Checked, str, str]] = []
        errors: dict[int, str] = {}
        for idx, url in wanted:
            try:
                meta = None if request is None else ImageParams(request, task_id, seed_used, idx)
                checked = check(fetch(url), meta)
                ext = EXTENSIONS[checked.media_type]
                file_ref = f"{IMAGES_DIR}/{stem}-{idx}{ext}"
                thumb_ref = f"{THUMBS_DIR}/{stem}-{idx}.webp"
                atomic_write(self.path(file_ref), checked.data)
                atomic_write(self.path(thumb_ref), checked.thumbnail)
                kept.append((idx, checked, file_ref, thumb_ref))
            except (ImageError, OSError) as exc:
                errors[idx] = str(exc) if isinstance(exc, ImageError) else f"cannot save: {exc}"
        seeds = {c.seed for _, c, _, _ in kept if c.seed is not None}
        orphaned = False
        with self._write() as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                orphaned = True
            else:
                for idx, checked, file_ref, thumb_ref in kept:
                    db.execute(
                        "UPDATE images SET file = ?, thumb = ?, media_type = ?, width = ?, "
                        "height = ?, bytes = ?, sha256 = ?, error = '' "
                        "WHERE run_id = ? AND idx = ?",
                        (
                            file_ref,
                            thumb_ref,
                            checked.media_type,
                            checked.width,
                            checked.height,
                            len(checked.data) + len(checked.thumbnail),
                            checked.sha256,
                            run_id,
                            idx,
                        ),
                    )
                for idx, message in errors.items():
                    db.execute(
                        "UPDATE images SET error = ? WHERE run_id = ? AND idx = ?",
                        (message, run_id, idx),
                    )
                total, done = db.execute(
                    "SELECT count(*), count(file) FROM images WHERE run_id = ?", (run_id,)
                ).fetchone()
                state = "done" if done == total else ("partial" if done else "failed")
                summary = ""
                if errors:
                    first = min(errors)
                    summary = (
                        f"{len(errors)} of {total} image(s) not kept: #{first}: {errors[first]}"
                    )
                db.execute(
                    "UPDATE runs SET images_state = ?, images_error = ?, bytes = "
                    "(SELECT coalesce(sum(bytes), 0) FROM images WHERE run_id = ?), "
                    "seed_used = coalesce(seed_used, ?), updated_at = ? WHERE id = ?",
                    (
                        state,
                        summary,
                        run_id,
                        seeds.pop() if len(seeds) == 1 else None,
                        time.time(),
                        run_id,
                    ),
                )
        if orphaned:  # deleted while downloading: do not leave its files behind
            for _, _, file_ref, thumb_ref in kept:
                for ref in (file_ref, thumb_ref):
                    self.path(ref).unlink(missing_ok=True)
            raise KeyError(f"run {run_id} was deleted while its images were downloading")
        if kept:
            self.enforce_limits(protect=run_id)
        return self.get(run_id)

    # -- interrupted runs --

    def _maybe_mark_interrupted(self) -> None:
        now = time.monotonic()
        if now - self._last_interrupt_check >= INTERRUPT_CHECK_INTERVAL:
            self.mark_interrupted()

    def mark_interrupted(self) -> int:
        """Mark "interrupted" every active run whose process is gone; returns how many."""
        self._last_interrupt_check = time.monotonic()
        active = ", ".join("?" * len(ACTIVE_STATES))
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, owner, updated_at FROM runs WHERE state IN ({active})",
                sorted(ACTIVE_STATES),
            ).fetchall()
        now = time.time()
        gone: list[tuple[int, str | None]] = []
        for run_id, run_owner, updated_at in rows:
            if run_owner is None:
                gone.append((run_id, run_owner))
                continue
            living = owner.alive(run_owner)
            if living is False or (living is None and now - updated_at > FOREIGN_STALE_SECONDS):
                gone.append((run_id, run_owner))
        marked = 0
        for run_id, run_owner in gone:
            pid = run_owner.split("|")[1] if run_owner else "?"
            with self._write() as db:
                changed = db.execute(
                    "UPDATE runs SET state = 'interrupted', owner = NULL, updated_at = ?, "
                    "error = ? WHERE id = ? AND owner IS ? AND state IN ('starting', 'running', "
                    "'stalled')",
                    (
                        now,
                        f"The process following this run (pid {pid}) ended before the task "
                        "finished; the task may still have finished on the server.",
                        run_id,
                        run_owner,
                    ),
                ).rowcount
                if changed:
                    db.execute(
                        "INSERT INTO run_events (run_id, at, state, status, progress) "
                        "SELECT id, ?, 'interrupted', status, progress FROM runs WHERE id = ?",
                        (now, run_id),
                    )
                    marked += 1
        return marked

    def _interrupt_own(self, reason: str) -> None:
        """At exit: this process's runs that are still followed become interrupted."""
        if self._closed:
            return
        now = time.time()
        with contextlib.suppress(StoreError), self._write() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM runs WHERE owner = ? AND state IN "
                    "('starting', 'running', 'stalled')",
                    (owner.current(),),
                )
            ]
            for run_id in ids:
                db.execute(
                    "UPDATE runs SET state = 'interrupted', owner = NULL, updated_at = ?, "
                    "error = ? WHERE id = ?",
                    (now, reason, run_id),
                )
                db.execute(
                    "INSERT INTO run_events (run_id, at, state, status, progress) "
                    "SELECT id, ?, 'interrupted', status, progress FROM runs WHERE id = ?",
                    (now, run_id),
                )

    # -- size --

    def limits(self) -> Limits:
        """The size bounds in force (this instance's, else the ones saved in the store)."""
        if self._override is not None:
            return self._override
        with self._read() as db:
            saved = dict(db.execute("SELECT key, value FROM settings WHERE key LIKE 'max_%'"))
        max_bytes = json.loads(saved["max_bytes"]) if "max_bytes" in saved else DEFAULT_MAX_BYTES
        max_runs = json.loads(saved["max_runs"]) if "max_runs" in saved else None
        return Limits(max_bytes, max_runs)

    def set_limits(
        self,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_runs: int | None = None,
        *,
        apply: bool = True,
    ) -> int:
        """Save the size bounds in the store (None = no bound); with ``apply``, forget what
        lies beyond them now. Returns how many runs were forgotten."""
        for name, value in (("max_bytes", max_bytes), ("max_runs", max_runs)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
        with self._write() as db:
            for key, value in (("max_bytes", max_bytes), ("max_runs", max_runs)):
                db.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )
        return self.enforce_limits() if apply else 0

    def size(self) -> dict[str, int]:
        """Bytes used: kept images and thumbnails, the database, and the number of runs."""
        with self._read() as db:
            runs, files = db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM runs"
            ).fetchone()
        database = sum(
            p.stat().st_size
            for p in (self.db_path, self.db_path.with_name(DB_NAME + "-wal"))
            if p.exists()
        )
        return {"runs": int(runs), "image_bytes": int(files), "database_bytes": database}

    def enforce_limits(self, *, protect: int | None = None) -> int:
        """Forget the oldest unstarred finished runs beyond the bounds; returns how many."""
        limits = self.limits()
        doomed: list[int] = []
        active = ", ".join("?" * len(ACTIVE_STATES))
        with self._read() as db:
            count, used = db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM runs"
            ).fetchone()
            over_runs = count - limits.max_runs if limits.max_runs is not None else 0
            over_bytes = used - limits.max_bytes if limits.max_bytes is not None else 0
            if over_runs <= 0 and over_bytes <= 0:
                return 0
            for run_id, size in db.execute(
                f"SELECT id, bytes FROM runs WHERE starred = 0 AND state NOT IN ({active}) "
                "AND id IS NOT ? ORDER BY created_at, id",
                [*sorted(ACTIVE_STATES), protect],
            ):
                if over_runs <= 0 and over_bytes <= 0:
                    break
                doomed.append(run_id)
                over_runs -= 1
                over_bytes -= size
        if doomed:
            logger.info("forgetting %d old run(s) to stay within %s", len(doomed), limits)
        return self._forget(doomed)

    def purge(
        self,
        *,
        older_than: float | None = None,
        failed: bool = False,
        everything: bool = False,
        include_starred: bool = False,
        dry_run: bool = False,
    ) -> PurgeReport:
        """Forget runs and tidy the folder.

        Always: applies the size bounds, removes files no run refers to (leftovers of a crash)
        and compacts the database. Also forgets, among unstarred runs (all runs with
        ``include_starred``): those older than ``older_than`` seconds, the failed, errored,
        cancelled and interrupted ones with ``failed``, or all of them with ``everything``.
        Runs still being followed are never forgotten.
        """
        clauses: list[str] = []
        args: list[Any] = []
        if everything:
            clauses.append("1")
        if older_than is not None:
            clauses.append("created_at < ?")
            args.append(time.time() - older_than)
        if failed:
            clauses.append("state IN ('failure', 'error', 'cancelled', 'interrupted')")
        active = ", ".join("?" * len(ACTIVE_STATES))
        ids: list[int] = []
        size = 0
        if clauses:
            starred = "" if include_starred else "AND starred = 0"
            with self._read() as db:
                rows = db.execute(
                    f"SELECT id, bytes FROM runs WHERE ({' OR '.join(clauses)}) {starred} "
                    f"AND state NOT IN ({active})",
                    [*args, *sorted(ACTIVE_STATES)],
                ).fetchall()
            ids = [r[0] for r in rows]
            size = sum(r[1] for r in rows)
        orphans = self._orphans()
        if dry_run:
            return PurgeReport(len(ids), size, len(orphans), True)
        removed = self._forget(ids)
        capped_before = self.size()["image_bytes"]
        capped = self.enforce_limits()
        size += capped_before - self.size()["image_bytes"]
        for path in orphans:
            with contextlib.suppress(OSError):
                path.unlink()
        with self._lock:
            try:  # compacting needs a moment when no other process writes: best effort
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                logger.info("the database was not compacted this time: %s", exc)
        return PurgeReport(removed + capped, size, len(orphans), False)

    def _orphans(self) -> list[Path]:
        """Files in images/ and thumbs/ that no run refers to, and stale temporary files."""
        with self._read() as db:
            known = {
                ref for row in db.execute("SELECT file, thumb FROM images") for ref in row if ref
            }
        now = time.time()
        found: list[Path] = []
        for folder in (IMAGES_DIR, THUMBS_DIR):
            for path in (self.home / folder).iterdir():
                ref = f"{folder}/{path.name}"
                if path.name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        if now - path.stat().st_mtime > TMP_MAX_AGE:
                            found.append(path)
                elif path.is_file() and ref not in known:
                    found.append(path)
        return found


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run_from_row(
    row: Sequence[Any], tags: list[str], images: list[StoredImage], events: list[RunEvent]
) -> Run:
    (
        run_id,
        run_uid,
        task_id,
        model,
        request_json,
        params_json,
        seed_used,
        origin_,
        source,
        state,
        status,
        progress,
        fail_reason,
        error,
        outputs_json,
        created_at,
        submitted_at,
        finished_at,
        updated_at,
        api_submit_time,
        api_start_time,
        api_finish_time,
        images_state,
        images_error,
        size,
        starred,
        rating,
        note,
        sweep_id,
        cell_key,
    ) = row
    created = utc(created_at)
    updated = utc(updated_at)
    assert created is not None
    assert updated is not None
    return Run(
        id=run_id,
        run_uid=run_uid,
        task_id=task_id,
        model=model,
        request_json=request_json,
        params=json.loads(params_json),
        seed_used=seed_used,
        origin=origin_,
        source=source,
        state=state,
        status=status,
        progress=progress,
        fail_reason=fail_reason,
        error=error,
        outputs=tuple(json.loads(outputs_json)),
        created_at=created,
        submitted_at=utc(submitted_at),
        finished_at=utc(finished_at),
        updated_at=updated,
        api_submit_time=utc(api_submit_time),
        api_start_time=utc(api_start_time),
        api_finish_time=utc(api_finish_time),
        images_state=images_state,
        images_error=images_error,
        bytes=size,
        starred=bool(starred),
        rating=rating,
        note=note,
        tags=tuple(tags),
        sweep_id=sweep_id,
        cell_key=cell_key,
        images=tuple(images),
        events=tuple(events),
    )


# --- one store per folder and process ------------------------------------------------------

_OPEN: weakref.WeakSet[RunStore] = weakref.WeakSet()
_shared: dict[tuple[int, Path], RunStore] = {}
_shared_lock = threading.Lock()


def open_store(home: str | os.PathLike[str] | None = None) -> RunStore:
    """The shared store of a data folder (default: ``$SIRAY_WIDGETS_HOME`` or the per-user
    folder), opened once per process and folder."""
    key = (os.getpid(), data_home(home).resolve())
    with _shared_lock:
        store = _shared.get(key)
        if store is None or store._closed:
            store = RunStore(key[1])
            _shared[key] = store
        return store


@atexit.register
def _at_exit() -> None:
    for store in list(_OPEN):
        store._interrupt_own(
            "The process following this run exited before the task finished; the task may "
            "still have finished on the server."
        )
