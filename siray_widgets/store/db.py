"""The SQLite database: connection settings, the schema and its migrations.

- WAL journal: readers never block the writer and the writer never blocks readers, so many
  kernels, the command line and scripts can share one database.
- Every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two
  processes never deadlock upgrading a read lock); a crash leaves the last committed state,
  never half a row. ``busy_timeout`` makes a writer wait for another one instead of failing.
- ``schema_version`` has one row per applied migration. Migrations run in order, each in its
  own transaction, under the write lock, so two processes opening a fresh database at once
  apply each migration exactly once. A database written by a newer version of the package is
  refused with a message saying so rather than written with the wrong schema.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from ..errors import SirayError

#: How long a writer waits for another process's write to finish before giving up.
BUSY_TIMEOUT_MS: Final = 30_000


class StoreError(SirayError):
    """The run store cannot be opened or written (named path, plain reason)."""


Migration = Callable[[sqlite3.Connection], None]


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the caller's transaction.

    (``executescript`` would commit first, so a migration could be half applied.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement.strip()[:60]}")


def _v1(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
        CREATE TABLE runs (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            run_uid         TEXT NOT NULL UNIQUE,
            task_id         TEXT UNIQUE,
            model           TEXT NOT NULL,
            request_json    TEXT NOT NULL,   -- the exact body sent
            params_json     TEXT NOT NULL,   -- every field, blank ones included
            prompt          TEXT NOT NULL DEFAULT '',
            negative_prompt TEXT NOT NULL DEFAULT '',
            aspect_ratio    TEXT NOT NULL DEFAULT '',
            seed            INTEGER,         -- as requested (-1 = random)
            seed_used       INTEGER,         -- as used, where known
            search          TEXT NOT NULL DEFAULT '',  -- casefolded text the search box looks in
            origin          TEXT NOT NULL,
            source          TEXT NOT NULL DEFAULT '',
            sweep_id        TEXT,
            cell_key        TEXT,
            state           TEXT NOT NULL,
            status          TEXT NOT NULL DEFAULT '',
            progress        INTEGER NOT NULL DEFAULT 0,
            fail_reason     TEXT NOT NULL DEFAULT '',
            error           TEXT NOT NULL DEFAULT '',
            outputs_json    TEXT NOT NULL DEFAULT '[]',
            created_at      REAL NOT NULL,
            submitted_at    REAL,
            finished_at     REAL,
            updated_at      REAL NOT NULL,
            changed_at      REAL NOT NULL,
            api_submit_time REAL,
            api_start_time  REAL,
            api_finish_time REAL,
            owner           TEXT,            -- the process following the run; NULL once settled
            images_state    TEXT NOT NULL DEFAULT 'none',
            images_error    TEXT NOT NULL DEFAULT '',
            bytes           INTEGER NOT NULL DEFAULT 0,
            starred         INTEGER NOT NULL DEFAULT 0 CHECK (starred IN (0, 1)),
            rating          INTEGER NOT NULL DEFAULT 0 CHECK (rating BETWEEN 0 AND 5),
            note            TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
        CREATE INDEX runs_state ON runs (state);
        CREATE INDEX runs_sweep ON runs (sweep_id, cell_key) WHERE sweep_id IS NOT NULL;

        CREATE TABLE run_events (
            run_id   INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            at       REAL NOT NULL,
            state    TEXT NOT NULL,
            status   TEXT NOT NULL,
            progress INTEGER NOT NULL
        );
        CREATE INDEX run_events_run ON run_events (run_id, at);

        CREATE TABLE run_tags (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            tag    TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX run_tags_tag ON run_tags (tag);

        CREATE TABLE images (
            run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            idx        INTEGER NOT NULL,  -- 1-based, as in the file names
            url        TEXT NOT NULL,
            file       TEXT,              -- relative to the data folder
            thumb      TEXT,
            media_type TEXT,
            width      INTEGER,
            height     INTEGER,
            bytes      INTEGER NOT NULL DEFAULT 0,
            sha256     TEXT,
            error      TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, idx)
        ) WITHOUT ROWID;

        CREATE TABLE spend (
            day          TEXT NOT NULL,     -- local date, YYYY-MM-DD
            model        TEXT NOT NULL,
            tasks        INTEGER NOT NULL,
            priced_tasks INTEGER NOT NULL,  -- tasks whose price was known
            cost         REAL NOT NULL,     -- estimated, from the prices known when sent
            PRIMARY KEY (day, model)
        ) WITHOUT ROWID;

        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE documents (
            kind       TEXT NOT NULL,  -- "sweep", "preset", ...
            key        TEXT NOT NULL,
            value      TEXT NOT NULL,  -- JSON
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID;
        """,
    )


#: Every migration, in order; version n is MIGRATIONS[n - 1]. Append only: never edit one
#: that has shipped.
MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("runs, events, tags, images, ledger, settings, documents", _v1),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    try:
        db = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit; transactions are explicit (see transaction())
            check_same_thread=False,  # shared by the threads of one process, under a lock
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the run store {path}: {exc}") from None
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"the run store {path} cannot use a write-ahead log (journal mode {mode!r}); "
                "is it on a network drive? Set SIRAY_WIDGETS_HOME to a local folder"
            )
        db.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; never corrupt
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db, path)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"the run store {path} is not usable: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: everything inside commits together or not at all."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def current_version(db: sqlite3.Connection) -> int:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations this database lacks, one transaction each."""
    if current_version(db) == SCHEMA_VERSION:  # the common case, without the write lock
        return
    while True:
        with transaction(db):
            version = current_version(db)  # again, under the lock: another process may be here
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the run store {path} was written by a newer siray-widgets (schema "
                    f"{version}; this one knows up to {SCHEMA_VERSION}): upgrade the package, "
                    "or point SIRAY_WIDGETS_HOME at another folder"
                )
            if version == SCHEMA_VERSION:
                return
            if version == 0:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                    " applied_at REAL NOT NULL)"
                )
            description, apply = MIGRATIONS[version]
            apply(db)
            db.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (version + 1, description, time.time()),
            )
