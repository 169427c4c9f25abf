"""The package's retries print nothing on stderr unless the program set up logging.

stamina logs each scheduled retry as a WARNING on the ``stamina`` logger. With no handler
configured anywhere, logging's last-resort handler printed those lines to stderr in the
middle of a script's output (and in a notebook's). Each case runs in a fresh interpreter,
because what is at stake is the process-wide logging state.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
import stamina
from stamina.instrumentation import LoggingOnRetryHook, set_on_retry_hooks
from siray_widgets.client import RetryPolicy, SirayClient
from siray_widgets.errors import TransportError

if sys.argv[2] == "configured":
    logging.basicConfig(format="%(name)s %(levelname)s %(message)s")

# stamina's default logging hook, plus a counter, so that the retries are seen to happen.
scheduled = []
set_on_retry_hooks([LoggingOnRetryHook, scheduled.append])

policy = RetryPolicy(attempts=3, timeout=10, wait_initial=0.001, wait_max=0.001, wait_jitter=0)
with SirayClient("sk-k", sys.argv[1], retry=policy) as client:
    try:
        client.get_task("t1")
    except TransportError:
        pass
print("ours", len(scheduled))

# The program's own use of stamina, outside this package's requests.
for attempt in stamina.retry_context(on=ValueError, attempts=2, wait_initial=0, wait_jitter=0):
    with attempt:
        if attempt.num == 1:
            raise ValueError("once")
print("all", len(scheduled))
"""


def run_script(url: str, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, url, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_logging_set_up_our_retries_print_nothing(refused_url: str) -> None:
    out = run_script(refused_url, "unconfigured")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ours", "2", "all", "3"]  # two of ours, one of the program's
    # Only the program's own retry reaches logging's last-resort handler, as before.
    assert out.stderr.splitlines() == ["stamina.retry_scheduled"]


def test_with_logging_set_up_our_retries_are_logged(refused_url: str) -> None:
    out = run_script(refused_url, "configured")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ours", "2", "all", "3"]
    assert out.stderr.splitlines() == ["stamina WARNING stamina.retry_scheduled"] * 3


def test_the_retry_records_reach_a_handler_on_the_root_logger(
    refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from fixtures.fault_server import fast_retry

    from siray_widgets.client import SirayClient
    from siray_widgets.errors import TransportError

    caplog.set_level("WARNING", logger="stamina")
    with (
        SirayClient("sk-k", refused_url, retry=fast_retry(attempts=3)) as client,
        pytest.raises(TransportError),
    ):
        client.get_task("t1")
    retries = [r for r in caplog.records if r.name == "stamina"]
    assert [r.getMessage() for r in retries] == ["stamina.retry_scheduled"] * 2
