"""The stuck-task watchdog: a run whose status and progress stop moving is "stalled".

:class:`StallWatch` is the rule, with no threads and no I/O (a clock is passed in), so the
widget, the command line and the store share it:

- every reading goes to :meth:`StallWatch.reading`; one whose status or progress differs from
  the last resets the timer, and if the run was stalled it says ``"resumed"``;
- :meth:`StallWatch.check` says ``"stalled"`` once, when nothing has moved for ``after``
  seconds;
- :meth:`StallWatch.snooze` is "Keep waiting": the timer starts again (and the run counts as
  not stalled until it passes once more).

The default threshold comes from the poll schedule (:func:`default_stall_after`): so many
polls' worth of nothing changing.

:class:`Watchdog` checks a set of watches on one daemon thread per process, for code that has
no event loop of its own to run a timer on (the command line, scripts). The store's recorder
uses it, so a stalled run says "stalled" in the store whoever follows it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Final, Literal, Protocol

logger = logging.getLogger("siray_widgets.store")

#: Polls without any change before a run counts as stalled.
STALL_POLLS: Final = 24
#: Never less than this, whatever the schedule (a local sandbox polls every 0.25 s).
MIN_STALL_AFTER: Final = 10.0

StallChange = Literal["stalled", "resumed"]


class _Schedule(Protocol):
    @property
    def maximum(self) -> float: ...


def default_stall_after(poll: _Schedule | None = None) -> float:
    """Seconds without change before "stalled": :data:`STALL_POLLS` of the longest poll gap
    (Siray's schedule, 5 s: two minutes; the local sandbox's: :data:`MIN_STALL_AFTER`)."""
    maximum = poll.maximum if poll is not None else 5.0
    return max(MIN_STALL_AFTER, STALL_POLLS * maximum)


class StallWatch:
    """Whether one run has stalled. Not thread-safe by itself: one owner calls it (the
    :class:`Watchdog` holds a lock around its calls)."""

    def __init__(self, after: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not after > 0:
            raise ValueError(
                f"a stall threshold must be a positive number of seconds, not {after!r}"
            )
        self.after = after
        self._clock = clock
        self._last: tuple[str, int] | None = None
        self._since = clock()
        self.stalled = False

    @property
    def idle_for(self) -> float:
        """Seconds since the status or progress last moved (or since the watch began)."""
        return self._clock() - self._since

    def reading(self, status: str, progress: int) -> StallChange | None:
        """Feed one reading; ``"resumed"`` if a stalled run moved again."""
        key = (status, progress)
        if key == self._last:
            return None
        self._last = key
        self._since = self._clock()
        if self.stalled:
            self.stalled = False
            return "resumed"
        return None

    def check(self) -> StallChange | None:
        """``"stalled"`` the first time nothing has moved for :attr:`after` seconds."""
        if not self.stalled and self.idle_for >= self.after:
            self.stalled = True
            return "stalled"
        return None

    def snooze(self) -> StallChange | None:
        """Keep waiting: restart the timer. ``"resumed"`` if the run was stalled."""
        self._since = self._clock()
        if self.stalled:
            self.stalled = False
            return "resumed"
        return None


class Watched(Protocol):
    """What the watchdog checks: something with a watch that acts on a stall."""

    def check_stall(self) -> None: ...


class Watchdog:
    """Calls ``check_stall()`` on every watched object every ``tick`` seconds, on one daemon
    thread that runs only while something is watched. Objects are held weakly."""

    def __init__(self, tick: float = 1.0) -> None:
        self.tick = tick
        self._items: weakref.WeakSet[Watched] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, item: Watched) -> None:
        with self._lock:
            self._items.add(item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="siray-widgets-watchdog", daemon=True
                )
                self._thread.start()

    def discard(self, item: Watched) -> None:
        with self._lock:
            self._items.discard(item)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.tick)
            with self._lock:
                items = list(self._items)
                if not items:
                    self._thread = None
                    return
            for item in items:
                try:
                    item.check_stall()
                except Exception:  # a broken item must not stop the others' checks
                    logger.exception("the stall check of %r failed; it is no longer watched", item)
                    self.discard(item)


#: The process's watchdog (the recorder registers its runs here).
WATCHDOG: Final = Watchdog()
