"""The embedded sandbox: a real local HTTP server that speaks the Siray image API.

Without an API key the package runs against it: it accepts the same requests, walks tasks
through the same lifecycle and returns placeholder images, so a workshop or a test needs no
key and no network.

>>> from siray_widgets import sandbox
>>> with sandbox.start(duration=0) as box:          # doctest: +SKIP
...     print(box.base_url)                          # e.g. http://127.0.0.1:54321

Starlette, uvicorn and Pillow are imported only when a server starts.
"""

from __future__ import annotations

import atexit
import os
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .settings import DEFAULT_DURATION, SandboxSettings, check_host

if TYPE_CHECKING:
    from .app import SandboxState
    from .server import BackgroundServer

__all__ = [
    "DEFAULT_DURATION",
    "SandboxHandle",
    "SandboxSettings",
    "shared",
    "start",
]

#: Environment variable that sets the shared sandbox's generation time in seconds.
DURATION_ENV = "SIRAY_SANDBOX_DURATION"
#: Environment variable that turns on the live service's quirks in the shared sandbox
#: (``live``; see :attr:`SandboxSettings.quirks`).
QUIRKS_ENV = "SIRAY_SANDBOX_QUIRKS"


class SandboxHandle:
    """A running sandbox server: where it is, a key it accepts, and how to stop it."""

    def __init__(self, server: BackgroundServer, state: SandboxState) -> None:
        self._server = server
        self._state = state
        host = server.host if ":" not in server.host else f"[{server.host}]"
        #: e.g. ``http://127.0.0.1:54321`` (no trailing slash).
        self.base_url = f"http://{host}:{server.port}"
        #: A bearer key this sandbox accepts.
        self.api_key = state.settings.accepted_key
        self.settings = state.settings

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def running(self) -> bool:
        return self._server.running

    def received_bodies(self) -> list[bytes]:
        """Raw bytes of every create-request body received (newest last, bounded)."""
        return self._state.received_bodies()

    def task_ids(self) -> list[str]:
        """Ids of the tasks the sandbox holds, oldest first."""
        return self._state.store.ids()

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        self._server.stop()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        # No key here: a sandbox started with api_key=... may hold a real-looking one.
        state = "running" if self.running else "stopped"
        return f"<SandboxHandle {self.base_url} {state}>"


def start(*, host: str = "127.0.0.1", port: int = 0, **config: Any) -> SandboxHandle:
    """Start a sandbox server in a background thread and return its handle.

    ``port=0`` picks a free port. ``config`` takes the fields of :class:`SandboxSettings`:
    ``duration``, ``latency``, ``rate_limit_share``, ``retry_after``, ``server_error_share``,
    ``failure_share``, ``stall_at``, ``stall_share``, ``malformed_share``, ``seed``,
    ``api_key`` (None accepts any non-empty bearer key), ``allow_remote``, ``quirks``
    ("live": the live service's undocumented ways), the timeouts and the bounds.
    Hosts other than loopback need ``allow_remote=True``. A port outside 0..65535 is a
    ``ValueError``; a port in use is an ``OSError``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port={port!r} must be an integer 0..65535 (0 picks a free port)")
    settings = SandboxSettings.from_config(config)
    check_host(host, settings.allow_remote)
    from .app import create_app
    from .server import BackgroundServer

    app = create_app(settings)
    server = BackgroundServer(app, host, port)
    server.start()
    return SandboxHandle(server, app.state.sandbox)


_shared: SandboxHandle | None = None
_shared_lock = threading.Lock()


def shared_duration() -> float:
    """The shared sandbox's generation time: ``SIRAY_SANDBOX_DURATION`` or the default."""
    text = os.environ.get(DURATION_ENV, "").strip()
    if not text:
        return DEFAULT_DURATION
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{DURATION_ENV}={text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{DURATION_ENV}={text!r} must be a number of seconds >= 0")
    return value


def shared_quirks() -> str:
    """The shared sandbox's quirks: ``SIRAY_SANDBOX_QUIRKS`` (``live`` or ``none``)."""
    from .settings import QUIRKS

    text = os.environ.get(QUIRKS_ENV, "").strip().lower() or "none"
    if text not in QUIRKS:
        raise ValueError(f"{QUIRKS_ENV}={text!r} must be one of {', '.join(QUIRKS)}")
    return text


def shared() -> SandboxHandle:
    """The process-wide sandbox: started on first use, stopped at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = start(duration=shared_duration(), quirks=shared_quirks())
            atexit.register(_shared.stop)
        return _shared
