"""JupyterLab server settings that ``siray-widgets lab`` uses (and the browser tests reuse).

jupyter_server leaves Nagle's algorithm on for kernel websockets, which holds each small
kernel -> browser message back by about 40 ms: every widget echo (move a slider, Python
observes, the page updates) waits for it. Turning it off brings that round trip from ~50 ms
to ~10 ms (benchmarks/bench_browser.py measures both).

``python -m siray_widgets.jupyter_server [jupyter lab options]`` runs JupyterLab quietly, as
``siray-widgets lab`` does: warnings and errors, and the address to open, but no start-up chatter
and no known-harmless Node noise.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class LowLatencyKernelConnection(ZMQChannelsWebsocketConnection):
    """The standard kernel websocket connection, with TCP_NODELAY on its socket."""

    def connect(self) -> Any:  # whatever this jupyter_server version's connect returns
        self.websocket_handler.set_nodelay(True)
        return super().connect()


#: Options for any Jupyter server (``jupyter lab`` or ``jupyter notebook``).
KERNEL_OPTIONS: tuple[str, ...] = (
    f"--ServerApp.kernel_websocket_connection_class={__name__}.LowLatencyKernelConnection",
)
#: Options for ``jupyter lab``: workshops run offline, so no news feed, update check or
#: extension catalogue calls.
LAB_OPTIONS: tuple[str, ...] = (
    *KERNEL_OPTIONS,
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)


class QuietStartup(logging.Filter):
    """Drops JupyterLab's "Fail to get yarn configuration" record.

    JupyterLab asks its bundled yarn for registry settings at start-up; with Node 20+ that
    yarn fails ("Dynamic require of util is not supported") and JupyterLab logs an 11,000
    character minified line and a Node stack trace. The setting only serves the extension
    manager, which ``siray-widgets lab`` runs read-only, so the failure changes nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Fail to get yarn configuration")


#: Loggers that JupyterLab's start-up writes to.
STARTUP_LOGGERS: tuple[str, ...] = ("jupyterlab", "LabApp", "ServerApp")


def main(argv: list[str] | None = None) -> None:
    """Run ``jupyter lab`` with ``argv`` and a quiet start-up (see :class:`QuietStartup`)."""
    quiet = QuietStartup()
    for name in STARTUP_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    from jupyterlab.labapp import LabApp  # type: ignore[import-untyped]

    LabApp.launch_instance(argv=sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
