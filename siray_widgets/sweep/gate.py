"""One shared slow-down for every request of a sweep: the back-off gate.

When the API answers 429 (or 503) to any request of a sweep, each cell backing off on its own
would make N slow-downs and, when they all end at the same moment, N requests at once: a
second storm. A sweep has one :class:`BackoffGate` instead. Every request (creates and status
queries alike) passes :meth:`BackoffGate.wait` first:

- :meth:`trip` closes the gate until ``Retry-After`` has passed (or, without one, for an
  exponential back-off: 1, 2, 4 ... up to :data:`MAX_BACKOFF` seconds, while trips follow
  one another without a success in between);
- when it reopens, one request goes first (the *probe*); the others wait until it succeeds
  (:meth:`ok`: the gate is open again for all) or is refused again (:meth:`trip`: closed
  again, longer). A probe that ends any other way hands the turn to the next request.

:meth:`wait` returns a ticket (the gate's epoch, which each trip advances): a success reported
with a ticket from before the latest trip (a request already on its way when the 429 came)
does not count as the probe's answer.

The gate lives on one event loop and is not thread-safe (the runner calls it from its loop).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

#: Longest wait without a ``Retry-After`` (and the longest ``Retry-After`` honoured as is).
MAX_BACKOFF: Final = 60.0
#: First wait without a ``Retry-After``.
FIRST_BACKOFF: Final = 1.0


class GateClosed(Exception):
    """Raised by :meth:`BackoffGate.wait` when its caller gave up waiting (the sweep stops)."""


class BackoffGate:
    """The shared 429/503 back-off of one sweep (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        first: float = FIRST_BACKOFF,
        maximum: float = MAX_BACKOFF,
    ) -> None:
        self._clock = clock or asyncio.get_running_loop().time
        self._first = first
        self._maximum = maximum
        self._until = 0.0  # closed until this time
        self._probing = False  # after a trip: one request must succeed before the rest go
        self._probe_out = False  # that request is on its way
        self._backoff = 0.0  # the next wait without Retry-After (0: none yet)
        self._epoch = 0  # advanced by each trip
        self._changed = asyncio.Event()
        #: How many times the gate was closed, and the seconds it stayed closed in all.
        self.trips = 0
        self.closed_seconds = 0.0

    @property
    def closed_for(self) -> float:
        """Seconds until the gate reopens (0 when open)."""
        return max(0.0, self._until - self._clock())

    @property
    def is_open(self) -> bool:
        return not self._probing and self.closed_for == 0

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def trip(self, retry_after: float | None = None) -> float:
        """A 429/503 arrived: close the gate; returns how long it stays closed."""
        if retry_after is not None and retry_after >= 0:
            wait = min(float(retry_after), self._maximum)
        else:
            self._backoff = min(self._maximum, self._backoff * 2 if self._backoff else self._first)
            wait = self._backoff
        now = self._clock()
        until = now + wait
        if until > self._until:
            self.closed_seconds += until - max(now, self._until)
            self._until = until
        self.trips += 1
        self._epoch += 1
        self._probing = True
        self._probe_out = False
        self._wake()
        return wait

    def ok(self, ticket: int) -> None:
        """A request that passed the gate with ``ticket`` succeeded: after a trip, this opens
        the gate for everyone (a ticket from before the latest trip changes nothing)."""
        if ticket != self._epoch:
            return
        if self._probing or self._backoff:
            self._probing = False
            self._probe_out = False
            self._backoff = 0.0
            self._wake()

    def done(self, ticket: int) -> None:
        """A request that went through the gate ended neither with :meth:`ok` nor with
        :meth:`trip` (an error of another kind): if it was the probe, let another go."""
        if ticket == self._epoch and self._probe_out:
            self._probe_out = False
            self._wake()

    def nudge(self) -> None:
        """Wake every waiter to look again at its ``give_up`` condition."""
        self._wake()

    async def wait(self, give_up: Callable[[], bool] | None = None) -> int:
        """Return (a ticket) when this request may go; raises :class:`GateClosed` if
        ``give_up()`` says so meanwhile (checked on every change, see :meth:`nudge`)."""
        while True:
            if give_up is not None and give_up():
                raise GateClosed()
            changed = self._changed
            left = self.closed_for
            if left <= 0:
                if not self._probing:
                    return self._epoch
                if not self._probe_out:
                    self._probe_out = True  # this request is the probe
                    return self._epoch
                await changed.wait()  # the probe's answer decides
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
