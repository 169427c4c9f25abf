"""Running the sandbox app under uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

#: How long :meth:`BackgroundServer.start` waits for uvicorn to come up.
START_TIMEOUT = 10.0


class BackgroundServer:
    """uvicorn serving ``app`` on its own thread and event loop.

    The socket is bound (and listening) before the thread starts, so the port is known at
    once and connections made before uvicorn is ready wait in the backlog rather than fail.
    The thread owns its own loop, so starting from a thread that is not main, or from inside
    a running asyncio loop (Jupyter), works; uvicorn installs no signal handlers off the main
    thread.
    """

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(2048)
        except OSError:
            self.socket.close()
            raise
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,  # leave the host program's logging alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"siray-sandbox:{self.port}", daemon=True
        )

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
        self.server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.socket.close()
