"""The hostile-server sweep: every answer shape the fault server can make ends in one of the
package's own errors (never a bare RecursionError, ValueError or a hang), for both endpoints.

The same sweep prints its table, with times and memory, in benchmarks/bench_hostile.py.
"""

from __future__ import annotations

import pytest
from fixtures.fault_server import TEST_KEY, FaultServer, hostile_replies, sweep_cases, sweep_one

from siray_widgets.errors import (
    RateLimitError,
    SirayError,
    TaskFailedError,
    TransportError,
    UnexpectedResponseError,
    UnknownModelError,
)

#: Answers whose exact error class is part of the contract (the rest: any SirayError).
EXPECTED: dict[str, type[SirayError]] = {
    "json nested 100k deep (200)": UnexpectedResponseError,
    "int of 4301 digits (200)": UnexpectedResponseError,
    "answer of 300 MB": UnexpectedResponseError,
    "answer of 300 MB, no length": UnexpectedResponseError,
    "dripped, a byte per 0.2 s": TransportError,
    "task id '..'": UnexpectedResponseError,
    "neither nested nor flat": UnexpectedResponseError,
    "unknown model (503)": UnknownModelError,
    "Retry-After of 10 days (429)": RateLimitError,
}


@pytest.mark.parametrize(("name", "endpoint"), sweep_cases())
def test_every_hostile_answer_ends_in_the_packages_own_error(
    fault_server: FaultServer, name: str, endpoint: str
) -> None:
    reply = hostile_replies(fault_server.url, TEST_KEY)[name]
    result = sweep_one(fault_server, name, reply, endpoint)
    assert result.outcome is not None, f"{name} on {endpoint}: returned normally"
    assert issubclass(result.outcome, SirayError), (name, endpoint, result.outcome, result.message)
    expected = EXPECTED.get(name)
    if name == "key in fail_reason" and endpoint == "status":
        expected = TaskFailedError
    if expected is not None:
        assert issubclass(result.outcome, expected), (name, endpoint, result.message)
    assert TEST_KEY not in result.message
    assert "\x1b" not in result.message or result.outcome is TaskFailedError
