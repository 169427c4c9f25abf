"""The spend ledger: tasks sent and their estimated cost, per day and model, kept for good.

Prices are not known here: whoever records passes the unit price it knows (the model
registry supplies them), or None when it knows none; such tasks are counted, and the day's
cost says how many of them had no price. Days are local calendar days (``YYYY-MM-DD``).

Runs recorded through the store (:meth:`RunStore.record`) are entered here when their task is
created; call :meth:`SpendLedger.record` yourself only for tasks sent without a recorder.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class SpendRow:
    """Tasks sent on one day for one model (or a sum of such rows)."""

    day: str
    model: str
    tasks: int
    #: How many of ``tasks`` had a known price; ``cost`` covers only those.
    priced_tasks: int
    cost: float

    @property
    def unpriced_tasks(self) -> int:
        return self.tasks - self.priced_tasks

    @property
    def complete(self) -> bool:
        """Whether every task's price was known (so ``cost`` is the whole estimate)."""
        return self.priced_tasks == self.tasks

    def to_json(self) -> dict[str, object]:
        return {
            "day": self.day,
            "model": self.model,
            "tasks": self.tasks,
            "priced_tasks": self.priced_tasks,
            "cost": self.cost,
        }


def check_price(unit_price: float | None) -> float | None:
    if unit_price is None:
        return None
    if isinstance(unit_price, bool) or not isinstance(unit_price, (int, float)):
        raise TypeError(f"a unit price is a number or None, not {type(unit_price).__name__}")
    if not math.isfinite(unit_price) or unit_price < 0:
        raise ValueError(f"a unit price must be a finite number >= 0, not {unit_price!r}")
    return float(unit_price)


def today() -> str:
    return dt.date.today().isoformat()


def write(
    db: sqlite3.Connection, model: str, tasks: int, unit_price: float | None, day: str
) -> None:
    """Add to the ledger inside the caller's transaction."""
    priced = tasks if unit_price is not None else 0
    cost = tasks * unit_price if unit_price is not None else 0.0
    db.execute(
        "INSERT INTO spend (day, model, tasks, priced_tasks, cost) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (day, model) DO UPDATE SET tasks = tasks + excluded.tasks, "
        "priced_tasks = priced_tasks + excluded.priced_tasks, cost = cost + excluded.cost",
        (day, model, tasks, priced, cost),
    )


class SpendLedger:
    """The ledger of one store. Thread-safe; several processes may write at once."""

    def __init__(
        self,
        db: sqlite3.Connection,
        lock: threading.RLock,
        transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._db = db
        self._lock = lock
        self._transaction = transaction

    def record(
        self,
        model: str,
        tasks: int = 1,
        unit_price: float | None = None,
        *,
        day: str | dt.date | None = None,
    ) -> None:
        """Count ``tasks`` sent for ``model`` today (or on ``day``), at ``unit_price`` each."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, not {model!r}")
        if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
            raise ValueError(f"tasks must be a positive integer, not {tasks!r}")
        price = check_price(unit_price)
        when = _day(day) or today()  # a ValueError names a malformed day
        with self._transaction() as db:
            write(db, model, tasks, price, when)

    def rows(
        self,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        model: str | None = None,
    ) -> list[SpendRow]:
        """Every (day, model) row, oldest day first; ``since``/``until`` are inclusive days."""
        where, args = self._where(since, until, model)
        with self._lock:
            found = self._db.execute(
                f"SELECT day, model, tasks, priced_tasks, cost FROM spend {where} "
                "ORDER BY day, model",
                args,
            ).fetchall()
        return [SpendRow(*row) for row in found]

    def total(
        self,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        model: str | None = None,
    ) -> SpendRow:
        """The sum over a span of days (``day`` and ``model`` say what was summed)."""
        where, args = self._where(since, until, model)
        with self._lock:
            tasks, priced, cost = self._db.execute(
                "SELECT coalesce(sum(tasks), 0), coalesce(sum(priced_tasks), 0), "
                f"coalesce(sum(cost), 0.0) FROM spend {where}",
                args,
            ).fetchone()
        span = f"{_day(since) or '…'}..{_day(until) or '…'}"
        return SpendRow(span, model or "*", int(tasks), int(priced), float(cost))

    def day(self, day: str | dt.date | None = None, model: str | None = None) -> SpendRow:
        """Today's (or ``day``'s) total."""
        when = _day(day) or today()
        total = self.total(when, when, model)
        return SpendRow(when, total.model, total.tasks, total.priced_tasks, total.cost)

    def __iter__(self) -> Iterator[SpendRow]:
        return iter(self.rows())

    @staticmethod
    def _where(
        since: str | dt.date | None, until: str | dt.date | None, model: str | None
    ) -> tuple[str, list[str]]:
        clauses: list[str] = []
        args: list[str] = []
        for op, value in ((">=", since), ("<=", until)):
            text = _day(value)
            if text is not None:
                clauses.append(f"day {op} ?")
                args.append(text)
        if model is not None:
            clauses.append("model = ?")
            args.append(model)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _day(value: str | dt.date | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if isinstance(value, dt.date) else value
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a day (write it as YYYY-MM-DD)") from None
