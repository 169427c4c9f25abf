"""Lifecycle under ``python -X dev -W error::ResourceWarning`` (issue 11, item 9): nothing the
client or the widget's image fetches open is left for the garbage collector to find.

Each scenario runs in a fresh interpreter, where dev mode reports every unclosed socket and
transport ("ResourceWarning: unclosed ...", or "Exception ignored in" from a finalizer).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

PRELUDE = """
import asyncio, gc, sys, threading, time
sys.path.insert(0, {tests!r})
from fixtures.fault_server import (
    CREATE, TEST_KEY, FaultServer, Reply, created, task_path, task_reply, tiny_poll
)
from siray_widgets.client import AsyncSirayClient, SirayClient
server = FaultServer()
server.always("GET", task_path("t1"), task_reply("t1"))
"""

SCENARIOS = {
    # main: the first loop's pooled socket stayed open ("unclosed transport"), and a later
    # aclose() could fail with "Event loop is closed".
    "one-async-client-two-asyncio-runs": """
client = AsyncSirayClient(TEST_KEY, server.url, poll=tiny_poll())
asyncio.run(client.get_task("t1"))
asyncio.run(client.get_task("t1"))
asyncio.run(client.aclose())
""",
    # main: 20 threads and 20 pooled sockets, never released.
    "twenty-unclosed-sync-clients": """
for _ in range(20):
    SirayClient(TEST_KEY, server.url).get_task("t1")
gc.collect()
time.sleep(0.2)
names = [t.name for t in threading.enumerate() if t.name == "siray-widgets-client"]
assert names == [], names
""",
    # main: a fetch cut off by the loop's end left its connection open.
    "image-fetch-cut-off-by-the-loop-ending": """
from siray_widgets._widget_tasks import fetch_images
png = b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00" * 4000
server.always("GET", "/img.png", Reply(200, png, {{"Content-Type": "image/png"}}, drip=(500, 0.05)))
async def main():
    # As the widget does after a run: the fetch goes on in the background, and the loop
    # ends (asyncio.run returning cancels it) while connections are being made and read.
    for pause in (0.0, 0.001, 0.003, 0.01, 0.05, 0.15):
        asyncio.ensure_future(fetch_images([server.url + "/img.png"] * 3))
        await asyncio.sleep(pause)
for _ in range(3):
    asyncio.run(main())
time.sleep(1.5)  # the downloads finish on the private loop and close their connections
gc.collect()
""",
    # main: the thread blocked in generate() waited for ever.
    "close-from-another-thread": """
server.on("POST", CREATE, created("t1"))
server.always("GET", task_path("t2"), task_reply("t2", "IN_PROGRESS", "5%"))
client = SirayClient(TEST_KEY, server.url, poll=tiny_poll())
errors = []
def work():
    try:
        client.wait("t2")
    except Exception as exc:
        errors.append(type(exc).__name__)
worker = threading.Thread(target=work)
worker.start()
time.sleep(0.2)
client.close()
worker.join(5)
assert not worker.is_alive() and errors == ["ClientClosedError"], errors
""",
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_nothing_is_left_open_under_dev_mode(name: str) -> None:
    script = PRELUDE.format(tests=str(TESTS)) + textwrap.dedent(SCENARIOS[name]).format()
    script += "\nserver.close()\nprint('done')\n"
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    for sign in ("ResourceWarning", "unclosed", "Exception ignored", "Traceback", "never awaited"):
        assert sign not in out.stderr, out.stderr
