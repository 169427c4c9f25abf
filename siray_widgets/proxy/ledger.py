"""The workshop's accounting: participants, their tokens, and one row per task charged.

SQLite in its own file, one connection on one thread (:class:`LedgerThread`): every operation
is one short transaction, run one at a time, and the ones that decide money use
``BEGIN IMMEDIATE``, so a quota holds however many requests arrive at once. A lock file keeps a
second proxy off the same database. WAL with ``synchronous=NORMAL``: every commit survives the
proxy's process dying; a power cut may lose the last few, which can only give a participant a
task back, never charge one twice.

A create is charged in two steps: :meth:`Ledger.reserve` counts the task as used before the
request goes upstream (refusing when nothing is left), then :meth:`Ledger.commit` records the
upstream's task id, :meth:`Ledger.release` gives the reservation back (the upstream refused
before any task existed) or :meth:`Ledger.charge_uncertain` keeps it (the upstream may have
made the task: a 500, a broken connection). A reservation found when the ledger opens was cut
off by a crash: it stays charged as ``interrupted``. Nothing is ever charged twice: a charge is
one row, and a task id is unique.

Participant tokens are stored only as SHA-256 hashes (they are long random strings, so a plain
hash cannot be reversed); the real API key is never given to this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from ..config import WORKSHOP_TOKEN_ALPHABET, WORKSHOP_TOKEN_GROUPS, WORKSHOP_TOKEN_PREFIX
from ..quota import Quota
from .settings import dollars

try:  # POSIX; elsewhere the one-proxy-per-database rule is only documented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE participants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT UNIQUE,          -- SHA-256 of the token, NULL for JupyterHub users
    hub_user INTEGER NOT NULL DEFAULT 0,
    quota INTEGER NOT NULL CHECK (quota >= 0),
    budget_micros INTEGER CHECK (budget_micros >= 0),   -- NULL: no spend budget
    expires_at REAL,                 -- Unix seconds, NULL: never
    paused INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_active REAL
);
CREATE TABLE charges (
    id INTEGER PRIMARY KEY,
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    state TEXT NOT NULL CHECK (state IN ('reserved', 'charged', 'released', 'refunded')),
    outcome TEXT,                    -- created, uncertain, interrupted, refused, failed
    task_id TEXT UNIQUE,
    model TEXT NOT NULL,
    price_micros INTEGER,            -- NULL: price unknown
    status TEXT,                     -- the last terminal status seen (SUCCESS, FAILURE)
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX charges_by_participant ON charges (participant_id, state);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    participant_id INTEGER REFERENCES participants(id),
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""

_USAGE_SELECT: Final = """
SELECT p.id, p.name, p.quota, p.budget_micros, p.paused, p.expires_at, p.created_at,
       p.last_active, p.hub_user,
       COALESCE(SUM(c.state IN ('reserved', 'charged')), 0),
       COALESCE(SUM(c.state = 'reserved'), 0),
       COALESCE(SUM(CASE WHEN c.state = 'charged' THEN c.price_micros END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'reserved' THEN c.price_micros END), 0),
       COALESCE(SUM(c.status = 'FAILURE'), 0),
       COALESCE(SUM(c.state = 'refunded'), 0),
       COALESCE(SUM(c.outcome IN ('uncertain', 'interrupted') AND c.state = 'charged'), 0)
FROM participants p LEFT JOIN charges c ON c.participant_id = p.id
"""


# --- tokens --------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh participant token: ``workshop-`` and four groups of five easy characters."""
    groups, size = WORKSHOP_TOKEN_GROUPS
    return WORKSHOP_TOKEN_PREFIX + "-".join(
        "".join(secrets.choice(WORKSHOP_TOKEN_ALPHABET) for _ in range(size)) for _ in range(groups)
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def numbered_names(count: int, existing: Sequence[str] = ()) -> list[str]:
    """``participant-01`` ... ``participant-NN`` (``count`` of them), less those in ``existing``.

    So asking for 30 twice gives the same 30 names (the second time, none are new) and asking
    for 35 adds five.
    """
    taken = set(existing)
    return [name for n in range(1, count + 1) if (name := _numbered(n)) not in taken]


def next_names(count: int, existing: Sequence[str]) -> list[str]:
    """``count`` numbered names after those in ``existing`` (the admin page's "add 5")."""
    taken = set(existing)
    names: list[str] = []
    n = 1
    while len(names) < count:
        if (name := _numbered(n)) not in taken:
            names.append(name)
        n += 1
    return names


def _numbered(n: int) -> str:
    return f"participant-{n:02d}"


#: Longest participant name accepted.
MAX_NAME = 100


def clean_name(name: object) -> str:
    """A participant name, stripped; ValueError unless it is 1..100 printable characters."""
    if not isinstance(name, str):
        raise ValueError(f"a participant name must be text, not {type(name).__name__}")
    text = name.strip()
    if not text:
        raise ValueError("a participant name cannot be empty")
    if len(text) > MAX_NAME:
        raise ValueError(f"participant name {text[:40]!r}... is longer than {MAX_NAME} characters")
    if not text.isprintable():
        raise ValueError(f"participant name {text!r} holds control or invisible characters")
    return text


# --- values --------------------------------------------------------------------------------


class Refusal(Exception):
    """A participant's create is refused by the ledger (quota, budget, pause, expiry)."""

    def __init__(self, status: int, code: str, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.usage = usage


@dataclass(frozen=True)
class Usage:
    """One participant's standing: allowance, use, spend, state."""

    participant_id: int
    name: str
    quota: int
    budget_micros: int | None
    paused: bool
    expires_at: float | None
    created_at: float
    last_active: float | None
    hub_user: bool
    #: Tasks counted against the quota: charged, and reserved (in flight).
    used: int
    in_flight: int
    spent_micros: int
    reserved_micros: int
    failed: int
    refunded: int
    #: Charged although the upstream's answer never said whether the task exists.
    uncertain: int

    @property
    def left(self) -> int:
        return max(0, self.quota - self.used)

    @property
    def budget_left_micros(self) -> int | None:
        if self.budget_micros is None:
            return None
        return max(0, self.budget_micros - self.spent_micros - self.reserved_micros)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def quota_view(self) -> Quota:
        """What the participant is told (headers and ``/proxy/me``)."""
        budget_left = self.budget_left_micros
        return Quota(
            limit=self.quota,
            remaining=self.left,
            budget_limit=None if self.budget_micros is None else dollars(self.budget_micros),
            budget_remaining=None if budget_left is None else dollars(budget_left),
            expires_at=(
                None
                if self.expires_at is None
                else datetime.fromtimestamp(self.expires_at, tz=timezone.utc)
            ),
            paused=self.paused,
        )

    def to_json(self, now: float) -> dict[str, Any]:
        """The admin endpoints' view (no token: only its hash is kept)."""
        return {
            "id": self.participant_id,
            "name": self.name,
            "quota": self.quota,
            "used": self.used,
            "left": self.left,
            "in_flight": self.in_flight,
            "failed": self.failed,
            "refunded": self.refunded,
            "uncertain": self.uncertain,
            "spent_usd": str(dollars(self.spent_micros)),
            "budget_usd": None if self.budget_micros is None else str(dollars(self.budget_micros)),
            "paused": self.paused,
            "expired": self.expired(now),
            "expires_at": self.expires_at,
            "last_active": self.last_active,
            "created_at": self.created_at,
            "hub_user": self.hub_user,
        }


@dataclass(frozen=True)
class Issued:
    """A participant made (or given a new token) just now; the only time the token is seen."""

    name: str
    token: str
    quota: int
    budget: Decimal | None
    expires_at: float | None


@dataclass(frozen=True)
class Reservation:
    charge_id: int
    usage: Usage


@dataclass(frozen=True)
class TaskOwner:
    participant_id: int
    status: str | None


def _usage(row: Sequence[Any]) -> Usage:
    return Usage(
        participant_id=row[0],
        name=row[1],
        quota=row[2],
        budget_micros=row[3],
        paused=bool(row[4]),
        expires_at=row[5],
        created_at=row[6],
        last_active=row[7],
        hub_user=bool(row[8]),
        used=row[9],
        in_flight=row[10],
        spent_micros=row[11],
        reserved_micros=row[12],
        failed=row[13],
        refunded=row[14],
        uncertain=row[15],
    )


# --- the ledger ----------------------------------------------------------------------------


class LedgerLockedError(RuntimeError):
    """Another proxy process has this database open."""


class Ledger:
    """The accounting database. Not thread-safe: use it through :class:`LedgerThread`."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            #: Reservations cut off by a crash, now charged as interrupted.
            self.recovered = self._recover()
        except BaseException:
            self._unlock()
            raise
        with contextlib.suppress(OSError):
            path.chmod(0o600)  # tokens' hashes and names: the instructor's eyes only

    # -- plumbing --

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise RuntimeError(
                f"{self.path} was written by a newer siray-widgets (schema {version}, this one "
                f"knows {SCHEMA_VERSION}); upgrade siray-widgets or use another --db"
            )
        with self._write() as db:
            # One statement at a time: executescript() would commit the open transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _recover(self) -> int:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE charges SET state = 'charged', outcome = 'interrupted', updated_at = ? "
                "WHERE state = 'reserved'",
                (self.clock(),),
            )
            return cursor.rowcount

    def _event(self, participant_id: int | None, kind: str, detail: str = "") -> None:
        self._db.execute(
            "INSERT INTO events (at, participant_id, kind, detail) VALUES (?, ?, ?, ?)",
            (self.clock(), participant_id, kind, detail),
        )

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._unlock()

    # -- reading --

    def usage(self, participant_id: int) -> Usage | None:
        row = self._db.execute(
            _USAGE_SELECT + " WHERE p.id = ? GROUP BY p.id", (participant_id,)
        ).fetchone()
        return None if row is None else _usage(row)

    def current(self, participant_id: int) -> Usage:
        """Like :meth:`usage`, for a participant known to exist."""
        usage = self.usage(participant_id)
        if usage is None:
            raise LookupError(f"no participant with id {participant_id}")
        return usage

    def all_usage(self) -> list[Usage]:
        rows = self._db.execute(_USAGE_SELECT + " GROUP BY p.id ORDER BY p.id").fetchall()
        return [_usage(row) for row in rows]

    def authenticate(self, hashed: str) -> Usage | None:
        row = self._db.execute("SELECT id FROM participants WHERE token_hash = ?", (hashed,))
        found = row.fetchone()
        return None if found is None else self.usage(found[0])

    def by_name(self, name: str) -> Usage | None:
        found = self._db.execute("SELECT id FROM participants WHERE name = ?", (name,)).fetchone()
        return None if found is None else self.usage(found[0])

    def names(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM participants ORDER BY id")]

    def owner(self, task_id: str) -> TaskOwner | None:
        row = self._db.execute(
            "SELECT participant_id, status FROM charges WHERE task_id = ?", (task_id,)
        ).fetchone()
        return None if row is None else TaskOwner(row[0], row[1])

    def events(self, limit: int = 200) -> list[tuple[float, str | None, str, str]]:
        rows = self._db.execute(
            "SELECT e.at, p.name, e.kind, e.detail FROM events e "
            "LEFT JOIN participants p ON p.id = e.participant_id ORDER BY e.id DESC LIMIT ?",
            (limit,),
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    # -- participants --

    def add(
        self,
        names: Sequence[str],
        *,
        quota: int,
        budget: Decimal | None = None,
        expires_at: float | None = None,
        hub_user: bool = False,
    ) -> list[Issued]:
        """Make participants (with tokens, unless they are hub users); a name already
        there is a ValueError naming it, and nothing is added."""
        _check_quota(quota)
        now = self.clock()
        issued: list[Issued] = []
        budget_micros = None if budget is None else int(budget * 1_000_000)
        cleaned = [clean_name(name) for name in names]
        with self._write() as db:
            for name in cleaned:
                token = "" if hub_user else new_token()
                try:
                    cursor = db.execute(
                        "INSERT INTO participants (name, token_hash, hub_user, quota, "
                        "budget_micros, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            name,
                            None if hub_user else token_hash(token),
                            int(hub_user),
                            quota,
                            budget_micros,
                            expires_at,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError:
                    raise ValueError(f"a participant named {name!r} is already there") from None
                self._event(cursor.lastrowid, "added", f"quota {quota}")
                issued.append(Issued(name, token, quota, budget, expires_at))
        return issued

    def reissue(self, participant_id: int) -> Issued:
        """A new token for a participant (the old one stops working at once)."""
        token = new_token()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE participants SET token_hash = ?, hub_user = 0 WHERE id = ?",
                (token_hash(token), participant_id),
            )
            if cursor.rowcount != 1:
                raise LookupError(f"no participant with id {participant_id}")
            self._event(participant_id, "new token")
        usage = self.usage(participant_id)
        assert usage is not None
        budget = None if usage.budget_micros is None else dollars(usage.budget_micros)
        return Issued(usage.name, token, usage.quota, budget, usage.expires_at)

    def set_paused(self, participant_id: int | None, paused: bool) -> int:
        """Pause or resume one participant, or everyone (None); returns how many changed."""
        with self._write() as db:
            if participant_id is None:
                cursor = db.execute("UPDATE participants SET paused = ?", (int(paused),))
            else:
                cursor = db.execute(
                    "UPDATE participants SET paused = ? WHERE id = ?", (int(paused), participant_id)
                )
                if cursor.rowcount != 1:
                    raise LookupError(f"no participant with id {participant_id}")
            self._event(participant_id, "paused" if paused else "resumed")
            return cursor.rowcount

    def top_up(self, participant_id: int, *, tasks: int = 0, budget: Decimal | None = None) -> None:
        """Add ``tasks`` to the quota and ``budget`` dollars to the spend budget."""
        if isinstance(tasks, bool) or not isinstance(tasks, int) or not -(10**6) < tasks < 10**6:
            raise ValueError(f"tasks={tasks!r} must be a whole number")
        with self._write() as db:
            row = db.execute(
                "SELECT quota, budget_micros FROM participants WHERE id = ?", (participant_id,)
            ).fetchone()
            if row is None:
                raise LookupError(f"no participant with id {participant_id}")
            quota, budget_micros = row
            if quota + tasks < 0:
                raise ValueError(f"a quota of {quota} cannot go down by {-tasks}")
            extra = 0 if budget is None else int(budget * 1_000_000)
            if extra and budget_micros is None:
                raise ValueError("this participant has no spend budget to top up")
            db.execute(
                "UPDATE participants SET quota = quota + ?, "
                "budget_micros = CASE WHEN budget_micros IS NULL THEN NULL "
                "ELSE budget_micros + ? END WHERE id = ?",
                (tasks, extra, participant_id),
            )
            detail = f"{tasks:+d} tasks" + (f", +${dollars(extra)}" if extra else "")
            self._event(participant_id, "top-up", detail)

    def set_expiry(self, participant_id: int | None, expires_at: float | None) -> int:
        """Set when a token (or every token: None) stops working; None never."""
        with self._write() as db:
            if participant_id is None:
                cursor = db.execute("UPDATE participants SET expires_at = ?", (expires_at,))
            else:
                cursor = db.execute(
                    "UPDATE participants SET expires_at = ? WHERE id = ?",
                    (expires_at, participant_id),
                )
                if cursor.rowcount != 1:
                    raise LookupError(f"no participant with id {participant_id}")
            self._event(
                participant_id, "expiry", "never" if expires_at is None else str(expires_at)
            )
            return cursor.rowcount

    def touch(self, participant_id: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE participants SET last_active = ? WHERE id = ?",
                (self.clock(), participant_id),
            )

    # -- money --

    def reserve(self, participant_id: int, model: str, price: Decimal | None) -> Reservation:
        """Count one task as used before it is sent; :class:`Refusal` when not allowed."""
        now = self.clock()
        price_micros = None if price is None else int(price * 1_000_000)
        with self._write() as db:
            usage = self.usage(participant_id)
            if usage is None:
                raise LookupError(f"no participant with id {participant_id}")
            if usage.expired(now):
                raise Refusal(
                    403, "workshop_token_expired", "this workshop token has expired", usage
                )
            if usage.paused:
                raise Refusal(
                    403,
                    "workshop_paused",
                    "the instructor has paused new tasks for you; tasks already running finish",
                    usage,
                )
            if usage.used >= usage.quota:
                raise Refusal(
                    429,
                    "workshop_quota_exceeded",
                    f"workshop quota used up: {usage.used} of the {usage.quota} tasks allowed "
                    "to this token are used",
                    usage,
                )
            budget_left = usage.budget_left_micros
            if budget_left is not None:
                if price_micros is None:
                    raise Refusal(
                        403,
                        "workshop_price_unknown",
                        f"no price is known for {model}, so your spend budget cannot be kept; "
                        "ask the instructor",
                        usage,
                    )
                if price_micros > budget_left:
                    assert usage.budget_micros is not None
                    raise Refusal(
                        429,
                        "workshop_budget_exceeded",
                        f"workshop budget used up: ${dollars(budget_left)} of the "
                        f"${dollars(usage.budget_micros)} allowed is left, and a task costs "
                        f"${dollars(price_micros)} (quota: {usage.used} of {usage.quota} tasks "
                        "used)",
                        usage,
                    )
            cursor = db.execute(
                "INSERT INTO charges (participant_id, state, model, price_micros, created_at, "
                "updated_at) VALUES (?, 'reserved', ?, ?, ?, ?)",
                (participant_id, model, price_micros, now, now),
            )
            db.execute(
                "UPDATE participants SET last_active = ? WHERE id = ?", (now, participant_id)
            )
            charge_id = cursor.lastrowid
            assert charge_id is not None
            after = self.usage(participant_id)
            assert after is not None
        return Reservation(charge_id, after)

    def commit(self, charge_id: int, task_id: str) -> Usage:
        """The upstream made task ``task_id``: the reservation becomes a charge (idempotent)."""
        with self._write() as db:
            db.execute(
                "UPDATE charges SET state = 'charged', outcome = 'created', task_id = ?, "
                "updated_at = ? WHERE id = ? AND state IN ('reserved', 'charged') "
                "AND task_id IS NULL",
                (task_id, self.clock(), charge_id),
            )
            return self._usage_of_charge(charge_id)

    def release(self, charge_id: int) -> Usage:
        """The upstream refused before any task existed: give the reservation back."""
        with self._write() as db:
            db.execute(
                "UPDATE charges SET state = 'released', outcome = 'refused', updated_at = ? "
                "WHERE id = ? AND (state = 'reserved' OR "
                "(state = 'charged' AND outcome = 'interrupted' AND task_id IS NULL))",
                (self.clock(), charge_id),
            )
            return self._usage_of_charge(charge_id)

    def charge_uncertain(self, charge_id: int) -> Usage:
        """No clear answer (a task may exist upstream): keep the charge."""
        with self._write() as db:
            db.execute(
                "UPDATE charges SET state = 'charged', outcome = 'uncertain', updated_at = ? "
                "WHERE id = ? AND state = 'reserved'",
                (self.clock(), charge_id),
            )
            return self._usage_of_charge(charge_id)

    def record_status(self, task_id: str, status: str, *, refund_failure: bool) -> bool:
        """Note a task's terminal status; refund a FAILURE if asked. True if refunded now."""
        with self._write() as db:
            db.execute(
                "UPDATE charges SET status = ?, updated_at = ? WHERE task_id = ? "
                "AND status IS NOT ?",
                (status, self.clock(), task_id, status),
            )
            if status != "FAILURE" or not refund_failure:
                return False
            cursor = db.execute(
                "UPDATE charges SET state = 'refunded', outcome = 'failed', updated_at = ? "
                "WHERE task_id = ? AND state = 'charged'",
                (self.clock(), task_id),
            )
            if cursor.rowcount:
                row = db.execute(
                    "SELECT participant_id FROM charges WHERE task_id = ?", (task_id,)
                ).fetchone()
                self._event(row[0], "refund", f"task {task_id} failed")
            return cursor.rowcount == 1

    def _usage_of_charge(self, charge_id: int) -> Usage:
        row = self._db.execute(
            "SELECT participant_id FROM charges WHERE id = ?", (charge_id,)
        ).fetchone()
        usage = self.usage(row[0])
        assert usage is not None
        return usage


def _check_quota(quota: int) -> None:
    if isinstance(quota, bool) or not isinstance(quota, int) or not 0 <= quota < 10**6:
        raise ValueError(f"quota={quota!r} must be a whole number of tasks, 0 or more")


def _lock(path: Path) -> Any:
    """Hold ``<db>.lock`` while open, so two proxies never count on one database."""
    if fcntl is None:  # pragma: no cover
        return None  # type: ignore[unreachable]
    handle = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held open
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise LedgerLockedError(
            f"another workshop proxy is using {path}; stop it first, or pass another --db"
        ) from None
    return handle


class LedgerThread:
    """The ledger on one thread of its own: every call runs there, one after another.

    Coroutines ``await ledger.run(Ledger.reserve, ...)``; other threads call
    ``ledger.call(...)``. The event loop never waits on SQLite.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="siray-proxy-ledger")
        try:
            self._ledger = self._executor.submit(Ledger, path, clock=clock).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self.path = path
        self.recovered = self._ledger.recovered
        self._closed = threading.Event()

    def call(self, fn: Callable[Concatenate[Ledger, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed.is_set():
            raise RuntimeError("the ledger is closed")
        return self._executor.submit(fn, self._ledger, *args, **kwargs).result()

    async def run(
        self, fn: Callable[Concatenate[Ledger, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self._closed.is_set():
            raise RuntimeError("the ledger is closed")
        future = self._executor.submit(fn, self._ledger, *args, **kwargs)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._executor.submit(self._ledger.close).result()
        self._executor.shutdown(wait=True)
