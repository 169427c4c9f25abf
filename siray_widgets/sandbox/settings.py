"""One sandbox server's configuration: generation speed, auth and fault injection.

Kept free of heavy imports: ``siray_widgets.sandbox`` imports this module eagerly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import SANDBOX_OPEN_KEY, check_key

#: Seconds from submit to SUCCESS for a sandbox a human watches (the widget, the CLI).
DEFAULT_DURATION = 3.0
#: The sets of quirks a sandbox can have: "none" (the documented API) or "live" (what other
#: clients of the live service report; see :class:`SandboxSettings`).
QUIRKS = ("none", "live")
#: The bearer key the sandbox hands out when any key is accepted (it is not a secret, so the
#: client sends it over plain http:// to a sandbox on another machine too).
OPEN_KEY = SANDBOX_OPEN_KEY

_SHARES = (
    "rate_limit_share",
    "server_error_share",
    "failure_share",
    "stall_share",
    "malformed_share",
)


@dataclass(frozen=True)
class SandboxSettings:
    """Everything :func:`siray_widgets.sandbox.start` accepts as ``**config``."""

    #: Seconds from submit to SUCCESS; 0 finishes every task at once (tests).
    duration: float = DEFAULT_DURATION
    #: Extra seconds before every API answer (not image downloads).
    latency: float = 0.0
    #: Share of API requests answered 429 with ``Retry-After``.
    rate_limit_share: float = 0.0
    #: The ``Retry-After`` value of those answers, in whole seconds.
    retry_after: int = 1
    #: Share of API requests answered 500 or 503 (a 500 on create may still create the task).
    server_error_share: float = 0.0
    #: Share of tasks that end in FAILURE with a ``fail_reason``.
    failure_share: float = 0.0
    #: Progress percentage at which stalling tasks stop for good (None: no stalls).
    stall_at: int | None = None
    #: Share of tasks that stall, when ``stall_at`` is set.
    stall_share: float = 1.0
    #: Share of 200 answers whose body is malformed (not JSON, truncated, wrong shape).
    malformed_share: float = 0.0
    #: Seed of the fault dice; the same seed and the same request sequence give the same faults.
    seed: int | None = None
    #: The one bearer key accepted; None accepts any non-empty key.
    api_key: str | None = dataclasses.field(default=None, repr=False)
    #: Binding an interface other than loopback needs this (a workshop on a LAN).
    allow_remote: bool = False
    #: Finished tasks are forgotten this many seconds after they finish.
    task_ttl: float = 3600.0
    #: At most this many tasks are kept; the oldest go first.
    max_tasks: int = 10_000
    #: Largest create-request body accepted, in bytes.
    max_body_bytes: int = 64 * 1024
    #: Bound on the rendered-image cache, in bytes.
    image_cache_bytes: int = 64 * 1024 * 1024
    #: How many raw create bodies :meth:`SandboxHandle.received_bodies` keeps.
    keep_bodies: int = 1000
    #: "live": behave as the live service does, beyond its documentation. A task says SUCCESS
    #: a moment before its ``outputs`` are filled; output URLs are redirects
    #: (``/redirect/<task>/<n>``); on success ``fail_reason`` holds the first output URL;
    #: status answers are flat (the task's fields at the top level, no ``data``); an
    #: unknown model is a 503 with the code ``model_not_found``. "none": as documented.
    quirks: str = "none"
    #: Seconds a client may take to send a request's head (a connection that dribbles it is
    #: closed) and, separately, its body (then the answer is a 408).
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    #: Wall clock in Unix seconds; tests pass a fake one to step through the lifecycle.
    clock: Callable[[], float] = dataclasses.field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        for name in ("duration", "latency", "task_ttl"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds >= 0")
        for name in ("head_timeout", "body_timeout"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds > 0")
        if self.quirks not in QUIRKS:
            raise ValueError(f"quirks={self.quirks!r} must be one of {', '.join(QUIRKS)}")
        for name in _SHARES:
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value!r} must be a share between 0 and 1")
        for name in ("retry_after", "max_tasks", "max_body_bytes", "image_cache_bytes"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be an integer >= 0")
        if self.max_tasks < 1000:
            raise ValueError(f"max_tasks={self.max_tasks} must be at least 1000")
        if self.stall_at is not None and (
            not _is_int(self.stall_at) or not 0 <= self.stall_at <= 100
        ):
            raise ValueError(f"stall_at={self.stall_at!r} must be a percentage 0..100 or None")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed={self.seed!r} must be an integer or None")
        if self.api_key is not None and (
            not isinstance(self.api_key, str) or not self.api_key.strip()
        ):
            # The value itself is never shown: it may be a real key typed by mistake.
            raise ValueError("api_key must be a non-empty string or None")
        if self.api_key is not None:
            # A key no client can send in a header would lock every client out.
            check_key(self.api_key, "given to the sandbox", "choose one without such characters")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SandboxSettings:
        """Build from ``**config`` keywords; unknown keys raise TypeError naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            names = ", ".join(sorted(known))
            raise TypeError(f"unknown sandbox setting {unknown[0]!r}; known settings: {names}")
        return cls(**config)

    @property
    def live(self) -> bool:
        """Whether the live service's quirks are on."""
        return self.quirks == "live"

    @property
    def accepted_key(self) -> str:
        """A bearer key this sandbox accepts."""
        return self.api_key if self.api_key is not None else OPEN_KEY


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse to bind anything but loopback unless ``allow_remote`` is set."""
    if host == "localhost" or allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"binding {host} would expose the sandbox to other machines; pass allow_remote=True "
            "(command line: --allow-remote) if that is what you want"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
