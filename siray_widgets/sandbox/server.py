"""Running the sandbox app under uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

#: How long :meth:`BackgroundServer.start` waits for uvicorn to come up.
START_TIMEOUT = 10.0


def _head_timeout(app: Starlette) -> float:
    state = getattr(app.state, "sandbox", None)
    return float(state.settings.head_timeout) if state is not None else 10.0


class _QuickStopServer(uvicorn.Server):
    """uvicorn, minus its fixed 0.1 s sleeps when stopping.

    uvicorn polls ``should_exit`` every 0.1 s and sleeps another 0.1 s while shutting down;
    a test suite that starts a sandbox per test would spend most of its time there. Here
    the main loop waits on an event that :meth:`request_exit` sets, and shutdown polls for
    open connections in small steps (same order of steps as uvicorn's own shutdown).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000  # one wait here is ten of uvicorn's ticks
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def request_exit(self) -> None:
        """Thread-safe: make the server stop now."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 1)
        busy = self.server_state
        # uvicorn's server state has no event to wait on; poll in small steps.
        while (busy.connections or busy.tasks) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel(msg="the sandbox is stopping")
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()  # as uvicorn's own shutdown does (no-op when "off")


def _head_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head takes over ``seconds``.

    uvicorn times out idle keep-alive connections, but the first byte of a request stops that
    clock: a client that then sends its head a byte at a time holds the connection for ever.
    Here a timer runs from the connection's start, and from the end of each answer, until a
    whole head has arrived.
    """

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _head_timed_out(self) -> None:
            self._head_timer = None
            # IDLE: no complete head yet (a head in progress, or a quiet keep-alive).
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol


class BackgroundServer:
    """uvicorn serving ``app`` on its own thread and event loop.

    The socket is bound (and listening) before the thread starts, so the port is known at
    once and connections made before uvicorn is ready wait in the backlog rather than fail.
    The thread owns its own loop, so starting from a thread that is not main, or from inside
    a running asyncio loop (Jupyter), works; uvicorn installs no signal handlers off the main
    thread.
    """

    def __init__(
        self, app: Starlette, host: str, port: int, *, name: str = "siray-sandbox", **options: Any
    ) -> None:
        """``options`` go to ``uvicorn.Config`` over the defaults below (the workshop proxy
        passes ``ssl_certfile``, ``ssl_keyfile`` and ``lifespan``)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when
        # it is set, and without TCP_NODELAY every answer waits ~40 ms for a delayed ACK.
        self.socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(2048)
        except OSError:
            self.socket.close()
            raise
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        settings: dict[str, Any] = {
            "log_config": None,  # leave the host program's logging alone
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "loop": "asyncio",
            "http": _head_timeout_protocol(_head_timeout(app)),
            "ws": "none",
            "proxy_headers": False,
            "timeout_graceful_shutdown": 1,
        }
        config = uvicorn.Config(app, **{**settings, **options})
        self.server = _QuickStopServer(config)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}:{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        except BaseException as exc:  # reported by start(); a thread has nowhere else to raise
            self._error = exc
        finally:
            self.socket.close()

    def start(self) -> None:
        """Start serving; return once uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox server did not start: {self._error!r}")
            time.sleep(0.002)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.server.should_exit

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to shut down and wait for its thread (idempotent)."""
        self.server.request_exit()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.socket.close()
