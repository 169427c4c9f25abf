"""The sandbox's live-quirks mode, and the sandbox as a service facing hostile clients.

Quirks ("live"): what other clients of the live service report, taught to the sandbox so
that the package's client and widget are tested against them (the client and widget suites
run against a quirks-mode sandbox too: see tests/fixtures/sandbox_fixtures.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fixtures.sandbox_fixtures import FakeClock

from siray_widgets.sandbox import SandboxHandle, start
from siray_widgets.sandbox.store import TaskRecord, TaskStore, new_task_id, outputs_lag
from siray_widgets.schema import CREATE_PATH, MODEL_ID, ImageRequest

BODY = {"model": MODEL_ID, "prompt": "a fox", "aspect_ratio": "1:1"}
PNG = b"\x89PNG\r\n\x1a\n"


def client(box: SandboxHandle, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=box.base_url, headers={"Authorization": f"Bearer {key or box.api_key}"}
    )


# --- live quirks ------------------------------------------------------------------------------


def test_live_quirks_walk_through_a_task(
    make_sandbox: Callable[..., SandboxHandle], sandbox_clock: FakeClock
) -> None:
    box = make_sandbox(quirks="live", duration=10, clock=sandbox_clock)
    with client(box) as http:
        created = http.post(CREATE_PATH, json=BODY).json()
        assert set(created) == {"code", "data", "message"}  # create: nested, as documented
        task_id = created["data"]["task_id"]

        def status() -> dict[str, Any]:
            answer: dict[str, Any] = http.get(f"{CREATE_PATH}/{task_id}").json()
            assert "data" not in answer  # status: flat, the task's fields at the top level
            return answer

        assert status()["status"] == "NOT_START"
        sandbox_clock.advance(10)
        early = status()
        assert (early["status"], early["outputs"], early["fail_reason"]) == ("SUCCESS", [], "")
        sandbox_clock.advance(outputs_lag(10))
        done = status()
        assert done["status"] == "SUCCESS"
        assert len(done["outputs"]) == 4
        assert all(f"/redirect/{task_id}/" in url for url in done["outputs"])
        assert done["fail_reason"] == done["outputs"][0]  # a URL, on success
        hop = http.get(done["outputs"][0])
        assert hop.status_code == 302
        assert hop.headers["location"] == f"/sandbox/images/{task_id}/1.png"
        image = http.get(done["outputs"][0], follow_redirects=True)
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(PNG)


def test_live_quirks_unknown_model_is_503_model_not_found(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    box = make_sandbox(quirks="live")
    with client(box) as http:
        answer = http.post(CREATE_PATH, json={**BODY, "model": "acme/no-such-model"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "model_not_found"
    assert box.task_ids() == []


def test_quirks_setting_is_checked(make_sandbox: Callable[..., SandboxHandle]) -> None:
    with pytest.raises(ValueError, match="quirks='wild' must be one of none, live"):
        make_sandbox(quirks="wild")


def test_the_shared_sandbox_takes_its_quirks_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from siray_widgets import sandbox

    monkeypatch.setenv(sandbox.QUIRKS_ENV, "live")
    assert sandbox.shared_quirks() == "live"
    monkeypatch.setenv(sandbox.QUIRKS_ENV, "odd")
    with pytest.raises(ValueError, match="SIRAY_SANDBOX_QUIRKS"):
        sandbox.shared_quirks()


# --- 10. the sandbox as a service ---------------------------------------------------------------


def test_bodies_of_refused_requests_are_not_kept(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    # main: 300 requests answered 401 still stored 300 bodies.
    box = make_sandbox(api_key="the-right-key")
    with client(box, "a-wrong-key") as http:
        for _ in range(30):
            assert http.post(CREATE_PATH, json=BODY).status_code == 401
    assert box.received_bodies() == []
    with client(box) as http:
        assert http.post(CREATE_PATH, json=BODY).status_code == 200
    assert len(box.received_bodies()) == 1


def test_a_request_head_sent_too_slowly_is_dropped(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    # main: a half-sent head held the connection for as long as the client liked.
    box = make_sandbox(head_timeout=0.3)
    with socket.create_connection(("127.0.0.1", box.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 3


def test_a_body_sent_too_slowly_is_answered_408(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    # main: the handler waited for the rest of the body for ever.
    box = make_sandbox(body_timeout=0.3)
    head = (
        f"POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {box.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", box.port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"model"')
        answer = b""
        while chunk := sock.recv(65536):  # "Connection: close": read to the end
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer
    assert box.received_bodies() == []


def test_running_tasks_are_never_evicted(make_sandbox: Callable[..., SandboxHandle]) -> None:
    # main: past its bound the store evicted the oldest task even while it ran (404).
    box = make_sandbox(duration=60, max_tasks=1000)
    with client(box) as http:
        ids = [http.post(CREATE_PATH, json=BODY).json()["data"]["task_id"] for _ in range(1000)]
        full = http.post(CREATE_PATH, json=BODY)
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "sandbox_full"
        assert "Retry-After" in full.headers
        first = http.get(f"{CREATE_PATH}/{ids[0]}")
        assert first.status_code == 200
        assert first.json()["data"]["status"] != "SUCCESS"
    assert box.task_ids() == ids


def test_finished_tasks_make_room_oldest_first() -> None:
    clock = FakeClock()
    store = TaskStore(clock=clock, max_tasks=3)

    def add(duration: float) -> str:
        record = TaskRecord(new_task_id(), ImageRequest("p"), 1, clock(), duration)
        store.add(record)
        return record.task_id

    running = add(100)
    done_old, done_new = add(0), add(0)
    fresh = add(0)  # evicts the oldest *finished* task, not the running one
    assert store.ids() == [running, done_new, fresh]
    assert store.get(done_old) is None


def test_a_store_full_of_stalled_tasks_frees_them_after_the_ttl() -> None:
    clock = FakeClock()
    store = TaskStore(clock=clock, max_tasks=2, ttl=50)

    def stalled() -> TaskRecord:
        return TaskRecord(new_task_id(), ImageRequest("p"), 1, clock(), 10, stall_at=40)

    first, second = stalled(), stalled()
    store.add(first)
    store.add(second)
    from siray_widgets.sandbox.store import StoreFullError

    with pytest.raises(StoreFullError):
        store.add(stalled())
    clock.advance(51)
    third = stalled()
    store.add(third)
    assert store.ids() == [second.task_id, third.task_id]


def test_a_stopped_sandbox_frees_its_port() -> None:
    with start(duration=0, head_timeout=0.5) as box:
        port = box.port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
