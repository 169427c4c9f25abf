"""The session budget: tasks sent by this process, their estimated spend, and the limits on both.

One object per process (:func:`session_budget`) that every way of sending a create request
goes through: the widget's Generate and every sweep (``reserve`` before the create request). It
answers three questions, before anything is sent:

- how many tasks has this session sent, and what have they cost (estimated from the model
  registry's price; tasks without a known price are counted apart, never priced at zero);
- does a batch of N tasks need an explicit confirmation (more than :attr:`confirm_above`,
  default 5);
- may one more task be sent at all (an optional hard cap on tasks, :attr:`cap`, and on
  estimated spend, :attr:`spend_cap`): a create that would pass a cap is refused with a
  :class:`BudgetExceededError` that says how to raise it.

A task is *reserved* just before its create request goes out (so two concurrent runs cannot
both take the last allowed task) and *released* if the request surely made no task (a 429,
a 503, a refused parameter, a connection that was never made); otherwise it stays counted,
since an answer lost after the server stored the task still costs. The persistent record of
spend is the run store's ledger (written by the recorder); this is the session's view.

Environment: ``SIRAY_WIDGETS_SESSION_CAP`` (tasks) and ``SIRAY_WIDGETS_CONFIRM_ABOVE`` set the
defaults of a new session, e.g. for a class.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    ServerError,
    SirayError,
    TransportError,
    WorkshopError,
)

__all__ = [
    "CAP_ENV",
    "CONFIRM_ABOVE_ENV",
    "DEFAULT_CONFIRM_ABOVE",
    "BudgetExceededError",
    "Reservation",
    "SessionBudget",
    "nothing_created",
    "session_budget",
    "unit_price",
]

logger = logging.getLogger("siray_widgets")

#: Batches of more tasks than this need an explicit confirmation.
DEFAULT_CONFIRM_ABOVE: Final = 5
CAP_ENV: Final = "SIRAY_WIDGETS_SESSION_CAP"
CONFIRM_ABOVE_ENV: Final = "SIRAY_WIDGETS_CONFIRM_ABOVE"

BudgetListener = Callable[["SessionBudget"], object]


class BudgetExceededError(SirayError):
    """Sending one more task would pass the session's hard cap (tasks or estimated spend)."""


def nothing_created(exc: BaseException) -> bool:
    """Whether a failed create request surely made no task (so it costs nothing).

    429 and 503 are refusals before any work; 400/422 (and the live service's 503
    ``model_not_found``), 401, 402, 403 and a workshop proxy's refusals are answered before a
    task exists; a connection never made sent nothing. A 500, 502, a read timeout or a lost
    answer may come after the task was stored.
    """
    if isinstance(exc, (RateLimitError, BadRequestError, AuthenticationError, WorkshopError)):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code == 503
    if isinstance(exc, APIError):
        return exc.status_code in (401, 402, 403, 404)
    if isinstance(exc, TransportError):
        return exc.sent is False
    # Refused locally before sending: an invalid request, a closed client, a bad setting.
    return isinstance(exc, (ValueError, TypeError, SirayError)) and not isinstance(
        exc, (APIError, TransportError)
    )


def unit_price(model: str) -> Decimal | None:
    """The registry's price of one task of ``model`` (None when unknown). Never raises and
    never touches the network (the registry this process already has)."""
    try:
        from . import registry

        return registry.current().get(model).unit_price
    except Exception:  # an unknown model, an unreadable cache: the price is unknown
        return None


@dataclass(frozen=True)
class _Counts:
    tasks: int = 0
    priced_tasks: int = 0
    spend: Decimal = Decimal(0)


class Reservation:
    """One task counted before its create request goes out: :meth:`release` it if the request
    surely made no task; otherwise leave it (it stays counted). Releasing twice is harmless."""

    def __init__(self, budget: SessionBudget, price: Decimal | None, model: str) -> None:
        self.budget = budget
        self.price = price
        self.model = model
        self._released = False

    def release(self) -> None:
        with self.budget._lock:
            if self._released:
                return
            self._released = True
            self.budget._add(-1, self.price)
        self.budget._changed()

    def settle(self, exc: BaseException | None) -> None:
        """After the create call: ``exc`` None (a task id came back) keeps the task counted;
        an error releases it when :func:`nothing_created` says so."""
        if exc is not None and nothing_created(exc):
            self.release()


class SessionBudget:
    """Tasks sent in this session, their estimated spend, the confirmation threshold and caps.

    Thread-safe: runs on any thread or event loop reserve through one lock.
    """

    def __init__(
        self,
        *,
        confirm_above: int = DEFAULT_CONFIRM_ABOVE,
        cap: int | None = None,
        spend_cap: Decimal | float | str | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._counts = _Counts()
        self._listeners: list[Callable[[], BudgetListener | None]] = []
        self._confirm_above = _check_count("confirm_above", confirm_above, allow_none=False)
        self._cap: int | None = _check_count("cap", cap, allow_none=True)
        self._spend_cap: Decimal | None = _check_money(spend_cap)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SessionBudget:
        """A budget with the defaults ``SIRAY_WIDGETS_SESSION_CAP`` and
        ``SIRAY_WIDGETS_CONFIRM_ABOVE`` set (a bad value is logged and ignored)."""
        env = os.environ if environ is None else environ
        options: dict[str, Any] = {}
        for name, key in ((CAP_ENV, "cap"), (CONFIRM_ABOVE_ENV, "confirm_above")):
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                options[key] = _check_count(key, int(text), allow_none=False)
            except ValueError:
                logger.warning("%s=%r is not a whole number >= 0; ignored", name, text)
        return cls(**options)

    def __repr__(self) -> str:
        return f"SessionBudget({self.describe()})"

    # -- settings --

    @property
    def confirm_above(self) -> int:
        """Batches of more tasks than this need an explicit confirmation (default 5)."""
        return int(self._confirm_above)

    @confirm_above.setter
    def confirm_above(self, value: int) -> None:
        self._confirm_above = _check_count("confirm_above", value, allow_none=False)
        self._changed()

    @property
    def cap(self) -> int | None:
        """The most tasks this session may send (None: no cap)."""
        return self._cap

    @cap.setter
    def cap(self, value: int | None) -> None:
        self._cap = _check_count("cap", value, allow_none=True)
        self._changed()

    @property
    def spend_cap(self) -> Decimal | None:
        """The most estimated spend (dollars) this session may reach (None: no cap). Tasks
        whose price is unknown cannot be checked against it and are refused while it is set."""
        return self._spend_cap

    @spend_cap.setter
    def spend_cap(self, value: Decimal | float | str | None) -> None:
        self._spend_cap = _check_money(value)
        self._changed()

    # -- counts --

    @property
    def tasks(self) -> int:
        """Tasks sent (or being sent) in this session."""
        return self._counts.tasks

    @property
    def spend(self) -> Decimal:
        """Estimated spend of the tasks whose price is known."""
        return self._counts.spend

    @property
    def unpriced_tasks(self) -> int:
        """Tasks sent whose price is unknown (not in :attr:`spend`)."""
        return self._counts.tasks - self._counts.priced_tasks

    @property
    def remaining(self) -> int | None:
        """Tasks the cap still allows (None: no cap)."""
        cap = self._cap
        return None if cap is None else max(0, cap - self._counts.tasks)

    def needs_confirmation(self, tasks: int) -> bool:
        return tasks > int(self._confirm_above)

    def describe(self) -> str:
        """``3 tasks sent this session, estimated $0.15 (cap 20)``."""
        from .registry import format_money

        counts = self._counts
        text = f"{counts.tasks} task{'s' * (counts.tasks != 1)} sent this session"
        if counts.priced_tasks:
            text += f", estimated {format_money(counts.spend)}"
            if self.unpriced_tasks:
                text += f" + {self.unpriced_tasks} of unknown price"
        elif counts.tasks:
            text += ", price unknown"
        limits = []
        if self._cap is not None:
            limits.append(f"cap {self._cap} tasks")
        if self._spend_cap is not None:
            limits.append(f"cap {format_money(self._spend_cap)}")
        return text + (f" ({', '.join(limits)})" if limits else "")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for a counter in the page (money as decimal text)."""
        from .registry import format_money

        counts = self._counts
        return {
            "tasks": counts.tasks,
            "priced_tasks": counts.priced_tasks,
            "spend": str(counts.spend),
            "spend_text": format_money(counts.spend) if counts.priced_tasks else "",
            "unpriced_tasks": self.unpriced_tasks,
            "confirm_above": self._confirm_above,
            "cap": self._cap,
            "spend_cap": None if self._spend_cap is None else str(self._spend_cap),
            "remaining": self.remaining,
            "text": self.describe(),
        }

    # -- sending --

    def reserve(self, model: str, price: Decimal | None = None) -> Reservation:
        """Count one task of ``model`` at ``price`` (None: unknown) before its create request
        goes out; raises :class:`BudgetExceededError` if a cap does not allow it."""
        with self._lock:
            counts = self._counts
            if self._cap is not None and counts.tasks + 1 > self._cap:
                raise BudgetExceededError(
                    f"The session cap of {self._cap} task{'s' * (self._cap != 1)} is reached "
                    f"({counts.tasks} sent); nothing more is sent. Raise it with "
                    f"session_budget().cap = {self._cap + 10} (or None for no cap)."
                )
            if self._spend_cap is not None:
                from .registry import format_money

                if price is None:
                    raise BudgetExceededError(
                        f"The price of {model} is unknown, so it cannot be checked against the "
                        f"session's spend cap of {format_money(self._spend_cap)}; set "
                        "session_budget().spend_cap = None to send it anyway."
                    )
                if counts.spend + price > self._spend_cap:
                    raise BudgetExceededError(
                        f"One more task ({format_money(price)}) would pass the session's spend "
                        f"cap of {format_money(self._spend_cap)} ({format_money(counts.spend)} "
                        "spent); raise session_budget().spend_cap to send more."
                    )
            self._add(1, price)
        self._changed()
        return Reservation(self, price, model)

    def _add(self, tasks: int, price: Decimal | None) -> None:
        counts = self._counts
        if price is None:
            self._counts = _Counts(counts.tasks + tasks, counts.priced_tasks, counts.spend)
        else:
            self._counts = _Counts(
                counts.tasks + tasks, counts.priced_tasks + tasks, counts.spend + tasks * price
            )

    def reset(self) -> None:
        """Forget the counts (not the settings): a new session."""
        with self._lock:
            self._counts = _Counts()
        self._changed()

    # -- listeners --

    def on_change(self, listener: BudgetListener, remove: bool = False) -> None:
        """Call ``listener(budget)`` after every change (on the thread that made it). A bound
        method is held weakly: a closed widget is not kept alive by the session."""
        with self._lock:
            if remove:
                self._listeners = [r for r in self._listeners if r() not in (listener, None)]
            else:
                ref: Callable[[], BudgetListener | None] = (
                    weakref.WeakMethod(listener)
                    if hasattr(listener, "__self__")
                    else (lambda: listener)
                )
                self._listeners.append(ref)

    def _changed(self) -> None:
        with self._lock:
            pairs = [(ref, ref()) for ref in self._listeners]
            self._listeners = [ref for ref, listener in pairs if listener is not None]
        for _, listener in pairs:
            if listener is None:
                continue
            try:
                listener(self)
            except Exception:
                logger.exception("a session budget listener raised")


_budget: SessionBudget | None = None
_budget_lock = threading.Lock()


def session_budget() -> SessionBudget:
    """This process's session budget (made on first use, from the environment's defaults)."""
    global _budget
    with _budget_lock:
        if _budget is None:
            _budget = SessionBudget.from_environment()
        return _budget


def _check_count(name: str, value: Any, *, allow_none: bool) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{name} must be a whole number >= 0{' or None' if allow_none else ''}, not {value!r}"
        )
    return value


def _check_money(value: Decimal | float | str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except Exception:
        raise ValueError(f"spend_cap {value!r} is not an amount of dollars") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"spend_cap {value!r} must be an amount of dollars >= 0")
    return amount
