"""This process's session: tasks sent and their estimated spend, with an optional hard cap.

One :class:`Session` per process (:func:`current`), shared by every widget and sweep, safe to
use from any thread. A run reserves its estimated cost before its create request goes out
(:meth:`Session.reserve`), which refuses when a cap is set and the run would pass it; the
reservation is committed once the task exists, and released when no task was made (refused,
cancelled before it was sent), so a refused create costs nothing here, as it costs nothing at
Siray.

Costs are estimates from the model registry (``out_price`` per task); a task whose price is
unknown is counted but adds nothing, and with a cap set it is refused (the cap could not be
kept). Tasks sent to the offline sandbox are free: record them with a price of ``0``.

The persistent, per-day record of spend is the run store's ledger; this is the live total of
one Python process.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import SirayError

__all__ = ["Reservation", "Session", "SessionBudgetError", "SessionTotals", "current"]


class SessionBudgetError(SirayError):
    """A run would pass the session's spending cap (or has no price while a cap is set)."""


@dataclass(frozen=True)
class SessionTotals:
    """What this session has sent so far (reserved: runs whose task is not created yet)."""

    tasks: int
    #: Tasks of ``tasks`` whose price was known (``spend`` covers only those).
    priced_tasks: int
    spend: Decimal
    reserved: Decimal
    cap: Decimal | None

    @property
    def unpriced_tasks(self) -> int:
        return self.tasks - self.priced_tasks

    def describe(self) -> str:
        """``this session: 3 tasks, $0.0375 estimated`` (with the cap and unpriced tasks)."""
        from .registry import format_money  # money is written one way, the registry's

        if not self.tasks:
            text = "this session: no tasks yet"
        else:
            noun = "task" if self.tasks == 1 else "tasks"
            text = f"this session: {self.tasks} {noun}, {format_money(self.spend)} estimated"
            if self.unpriced_tasks:
                text += f" (+{self.unpriced_tasks} without a price)"
        if self.cap is not None:
            text += f"; cap {format_money(self.cap)}"
        return text


class Reservation:
    """A run's estimated cost, held until its task exists (:meth:`commit`) or not
    (:meth:`release`). Both are idempotent, and the first one called wins."""

    def __init__(self, session: Session, model: str, tasks: int, cost: Decimal | None) -> None:
        self.session = session
        self.model = model
        self.tasks = tasks
        #: The estimated cost of these tasks; None when their price is unknown.
        self.cost = cost
        self._settled = False

    def commit(self) -> None:
        """The tasks exist: count them and their cost."""
        self.session._settle(self, sent=True)

    def release(self) -> None:
        """No task was made: give the reservation back."""
        self.session._settle(self, sent=False)


class Session:
    """Tasks sent and estimated spend of one process; see the module docstring."""

    def __init__(self, cap: Decimal | float | str | None = None) -> None:
        self._lock = threading.Lock()
        self._tasks = 0
        self._priced = 0
        self._spend = Decimal(0)
        self._reserved = Decimal(0)
        self._cap = _money(cap, "cap")
        self._listeners: list[weakref.ref[Any] | Callable[[], Callable[[], None] | None]] = []

    @property
    def cap(self) -> Decimal | None:
        """The most this session may spend (estimated, in dollars); None: no cap."""
        return self._cap

    @cap.setter
    def cap(self, value: Decimal | float | str | None) -> None:
        with self._lock:
            self._cap = _money(value, "cap")
        self._notify()

    def totals(self) -> SessionTotals:
        with self._lock:
            return SessionTotals(self._tasks, self._priced, self._spend, self._reserved, self._cap)

    def describe(self) -> str:
        return self.totals().describe()

    def reserve(
        self, model: str, tasks: int = 1, unit_price: Decimal | float | str | None = None
    ) -> Reservation:
        """Hold the estimated cost of ``tasks`` tasks of ``model`` at ``unit_price`` each.

        Raises :class:`SessionBudgetError` when a cap is set and the tasks would pass it, or
        when a cap is set and the price is unknown.
        """
        if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
            raise ValueError(f"tasks must be a positive integer, not {tasks!r}")
        price = _money(unit_price, "unit_price")
        cost = None if price is None else price * tasks
        from .registry import format_money

        with self._lock:
            cap = self._cap
            if cap is not None:
                if cost is None:
                    raise SessionBudgetError(
                        f"no price is known for {model}, so this session's cap of "
                        f"{format_money(cap)} cannot be kept; raise the cap "
                        "(siray_widgets.session.current().cap = None removes it)"
                    )
                committed = self._spend + self._reserved
                if committed + cost > cap:
                    raise SessionBudgetError(
                        f"this session's cap of {format_money(cap)} would be passed: "
                        f"{format_money(committed)} is spent or on its way, and "
                        f"{tasks} task{'s' if tasks != 1 else ''} of {model} cost "
                        f"{format_money(cost)}; raise the cap "
                        "(siray_widgets.session.current().cap = ...) to go on"
                    )
            if cost is not None:
                self._reserved += cost
        return Reservation(self, model, tasks, cost)

    def record(
        self, model: str, tasks: int = 1, unit_price: Decimal | float | str | None = None
    ) -> None:
        """Count tasks already sent (reserve and commit at once; the cap still applies)."""
        self.reserve(model, tasks, unit_price).commit()

    def reset(self) -> None:
        """Start counting again (the cap stays)."""
        with self._lock:
            self._tasks = self._priced = 0
            self._spend = self._reserved = Decimal(0)
        self._notify()

    def subscribe(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` after every change. A bound method is held weakly (a closed
        widget is not kept alive by the session)."""
        ref: Any = (
            weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        )
        with self._lock:
            self._listeners.append(ref)

    def _settle(self, reservation: Reservation, *, sent: bool) -> None:
        with self._lock:
            if reservation._settled:
                return
            reservation._settled = True
            if reservation.cost is not None:
                self._reserved -= reservation.cost
            if sent:
                self._tasks += reservation.tasks
                if reservation.cost is not None:
                    self._priced += reservation.tasks
                    self._spend += reservation.cost
        if sent:
            self._notify()

    def _notify(self) -> None:
        with self._lock:
            live = []
            callbacks = []
            for ref in self._listeners:
                callback = ref()
                if callback is not None:
                    live.append(ref)
                    callbacks.append(callback)
            self._listeners = live
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a listener's trouble is not the session's
                continue

    def __repr__(self) -> str:
        return f"<Session {self.describe()}>"


def _money(value: Decimal | float | str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise TypeError(f"{name} must be a number of dollars or None, not {type(value).__name__}")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{name}={value!r} is not a number of dollars") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name}={value!r} must be a finite number of dollars >= 0")
    return amount


_current = Session()


def current() -> Session:
    """This process's session (one per process, shared by widgets and sweeps)."""
    return _current
