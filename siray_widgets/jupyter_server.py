"""JupyterLab server settings that ``siray-widgets lab`` uses (and the browser tests reuse).

jupyter_server leaves Nagle's algorithm on for kernel websockets, which holds each small
kernel -> browser message back by about 40 ms: every widget echo (move a slider, Python
observes, the page updates) waits for it. Turning it off brings that round trip from ~50 ms
to ~10 ms (benchmarks/bench_browser.py measures both).
"""

from __future__ import annotations

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
