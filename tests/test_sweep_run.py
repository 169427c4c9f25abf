"""The sweep runner against real servers over HTTP: the sandbox (wrapped to log every request
with its time) and the fault server (scripted answers, 429 storms).

What is checked at the server, not in the runner: how many tasks are in flight at once, the
order creates arrive in, how many requests arrive while the shared back-off holds, that
nothing more is created after Cancel, and that nothing is sent before confirmation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures.fault_server import CREATE, FaultServer, Reply, created, error_reply, task_path
from fixtures.fault_server import task_reply as fault_task_reply

from siray_widgets.client import AsyncSirayClient, PollSchedule, SirayClient
from siray_widgets.sandbox import SandboxHandle, SandboxSettings
from siray_widgets.sandbox.app import create_app
from siray_widgets.sandbox.server import BackgroundServer
from siray_widgets.session import SessionBudget
from siray_widgets.store import RunStore
from siray_widgets.sweep import (
    ConfirmationRequired,
    SweepDefinition,
    SweepError,
    SweepRun,
    define_sweep,
    read_contact_sheet,
    run_sweep,
    run_sweep_sync,
)
from siray_widgets.sweep.contact_sheet import read_contact_sheet_cells

FAST = PollSchedule.fixed(0.05)
WAIT = 30.0


# --- a sandbox that logs every request ---------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request as the server handled it: when it came and went, what it answered."""

    start: float
    end: float
    method: str
    path: str
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Logged:
    """ASGI middleware: every API request with its times and its answer."""

    def __init__(self, app: Any, hits: list[Hit], lock: threading.Lock) -> None:
        self.app = app
        self.hits = hits
        self.lock = lock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CREATE):
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        status = 0
        parts: list[bytes] = []

        async def logged_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, logged_send)
        hit = Hit(start, time.monotonic(), scope["method"], scope["path"], status, b"".join(parts))
        with self.lock:
            self.hits.append(hit)


class LoggedSandbox:
    def __init__(self, **config: Any) -> None:
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        app = create_app(SandboxSettings.from_config({"duration": 0, **config}))
        app.add_middleware(_Logged, hits=self.hits, lock=self.lock)
        self.server = BackgroundServer(app, "127.0.0.1", 0)
        self.server.start()
        self.handle = SandboxHandle(self.server, app.state.sandbox)
        self.base_url = self.handle.base_url
        self.api_key = self.handle.api_key

    def creates(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.method == "POST"]

    def polls(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.method == "GET"]

    def client(self) -> AsyncSirayClient:
        return AsyncSirayClient(self.api_key, self.base_url, poll=FAST, hooks=False)

    def max_in_flight(self) -> int:
        """Tasks created whose final status had not been read yet, at most, at any time (each
        counted from its create's answer to its first final reading)."""
        events: list[tuple[float, int]] = [(h.end, +1) for h in self.creates() if h.status == 200]
        finished: set[str] = set()
        for hit in sorted(self.polls(), key=lambda h: h.end):
            task = hit.path.rsplit("/", 1)[1]
            final = hit.status == 200 and hit.json()["data"]["status"] in ("SUCCESS", "FAILURE")
            if final and task not in finished:
                finished.add(task)
                events.append((hit.end, -1))
        level = most = 0
        for _, step in sorted(events):
            level += step
            most = max(most, level)
        return most

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def logged_sandbox() -> Iterator[Callable[..., LoggedSandbox]]:
    made: list[LoggedSandbox] = []

    def make(**config: Any) -> LoggedSandbox:
        box = LoggedSandbox(**config)
        made.append(box)
        return box

    yield make
    for box in made:
        box.stop()


@pytest.fixture
def budget() -> SessionBudget:
    """A session budget of its own per test (the process-wide one is left alone)."""
    return SessionBudget()


def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def grid(columns: int, rows: int, *, seed: int = 11, **options: Any) -> SweepDefinition:
    return define_sweep(
        "a lighthouse at dusk --ar 3:2",
        x=("stylize", list(range(0, 100 * columns, 100))),
        y=("chaos", list(range(0, 10 * rows, 10))),
        seed=seed,
        **options,
    )


# --- order, concurrency, states ----------------------------------------------------------------


def test_cells_start_in_order_with_the_concurrency_bound_observed_at_the_server(
    logged_sandbox: Callable[..., LoggedSandbox], store: RunStore, budget: SessionBudget
) -> None:
    box = logged_sandbox(duration=0.4)
    definition = grid(4, 3)
    sweep = SweepRun(
        definition, client=box.client(), concurrency=3, store=store, budget=budget
    ).start(confirm=True)
    sweep.wait(WAIT)

    cells = definition.cells()
    assert [run.state for run in sweep.cells] == ["success"] * 12
    creates = box.creates()
    assert len(creates) == 12, "each cell is created exactly once"
    sent = [h.json()["data"]["task_id"] for h in creates]
    assert sorted(sent) == sorted(run.task_id or "" for run in sweep.cells)
    # The bodies that arrived are the cells' requests, started in the stable order: a cell
    # starts only once a place is free, so it arrives within `concurrency` of its place.
    arrived = [json.loads(body) for body in box.handle.received_bodies()]
    order = [next(c.index for c in cells if c.request.to_body() == b) for b in arrived]
    assert sorted(order) == list(range(12))
    assert set(order[:3]) == {0, 1, 2}
    assert all(abs(position - index) < 3 for position, index in enumerate(order))
    # At most 3 tasks in flight at the server at any moment, and the bound was used.
    assert box.max_in_flight() == 3
    # 4 rounds of 0.4 s at 3 at a time: well under running them one by one (12 x 0.4 s).
    assert sweep.progress.counts["success"] == 12
    runs = store.runs()
    assert len(runs) == 12
    assert {r.sweep_id for r in runs} == {sweep.id}
    assert {r.cell_key for r in runs} == {c.key for c in cells}
    assert all(r.origin == "sweep" and r.state == "success" for r in runs)
    assert budget.tasks == 12


def test_with_concurrency_one_creates_arrive_in_exact_order(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox()
    definition = grid(3, 2)
    sweep = run_sweep_sync(
        definition,
        client=box.client(),
        concurrency=1,
        store=False,
        budget=budget,
        confirm=True,
        timeout=WAIT,
    )
    expected = [c.request.to_body() for c in definition.cells()]
    assert [json.loads(b) for b in box.handle.received_bodies()] == expected
    assert box.max_in_flight() == 1
    assert [r["index"] for r in sweep.results] == list(range(6))


def test_failed_cells_keep_their_reason_and_retry_sends_only_them(
    logged_sandbox: Callable[..., LoggedSandbox], store: RunStore, budget: SessionBudget
) -> None:
    box = logged_sandbox(failure_share=0.5, seed=5)
    sweep = SweepRun(grid(4, 2), client=box.client(), store=store, budget=budget)
    sweep.start(confirm=True).wait(WAIT)
    failed = [run for run in sweep.cells if run.state == "failed"]
    assert failed, "the seeded dice fail some tasks"
    assert len(failed) < 8
    assert all(run.reason and run.task_id for run in failed)
    assert sweep.state == "done"
    assert len(box.creates()) == 8
    # Retry: only the failed cells are sent again (the others were paid for and succeeded).
    events: list[dict[str, Any]] = []
    sweep.on_change(events.append)
    sweep.retry(confirm=True).wait(WAIT)
    assert len(box.creates()) == 8 + len(failed)
    sent_again = [json.loads(b) for b in box.handle.received_bodies()[8:]]

    def canonical(body: dict[str, Any]) -> str:
        return json.dumps(body, sort_keys=True)

    assert sorted(map(canonical, sent_again)) == sorted(
        canonical(run.cell.request.to_body()) for run in failed
    )
    assert {e["cell"]["index"] for e in events if e["kind"] == "cell"} == {
        run.index for run in failed
    }
    # The store keeps every run; a sweep made again now reuses the successes.
    again = SweepRun(grid(4, 2), client=box.client(), store=store, budget=budget)
    plan = again.plan()
    assert plan.reuse == sum(1 for run in sweep.cells if run.state == "success")
    assert plan.send == 8 - plan.reuse


def test_resume_sends_only_new_cells_when_values_are_added(
    logged_sandbox: Callable[..., LoggedSandbox], store: RunStore, budget: SessionBudget
) -> None:
    box = logged_sandbox()
    first = SweepRun(grid(2, 2), client=box.client(), store=store, budget=budget)
    first.start().wait(WAIT)  # 4 tasks: under the threshold, no confirmation needed
    assert len(box.creates()) == 4
    bigger = SweepRun(grid(3, 2), client=box.client(), store=store, budget=budget)
    plan = bigger.plan()
    assert (plan.total, plan.reuse, plan.send) == (6, 4, 2)
    assert [run.origin for run in bigger.cells if run.state == "success"] == ["earlier"] * 4
    bigger.start().wait(WAIT)
    assert len(box.creates()) == 6
    assert all(run.state == "success" for run in bigger.cells)
    # The same sweep once more: nothing at all is sent.
    SweepRun(grid(3, 2), client=box.client(), store=store, budget=budget).start().wait(WAIT)
    assert len(box.creates()) == 6
    assert store.get_document("sweep", bigger.id)["definition"] == bigger.definition.to_json()
    # The sandbox's placeholders never stand in for the real API's images.
    remote = SweepRun(grid(3, 2), client=box.client, store=store, budget=budget, local=False)
    assert (remote.plan().reuse, remote.plan().send) == (0, 6)
    local = SweepRun(grid(3, 2), client=box.client, store=store, budget=budget, local=True)
    assert local.plan().reuse == 6


def test_run_sweep_on_the_callers_loop_and_a_cancelled_await_stops_it(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox(duration=1.0)

    async def main() -> None:
        async with box.client() as client:
            done = await run_sweep(grid(2, 1, seed=5), client=client, store=False, budget=budget)
            assert [run.state for run in done.cells] == ["success", "success"]
            # The caller's client is left as it was: the sweep used a pool of its own.
            assert client._pool is None or not client._pool.closed
            waiting = asyncio.ensure_future(
                run_sweep(
                    grid(3, 2, seed=6),
                    client=client,
                    store=False,
                    budget=budget,
                    concurrency=2,
                    confirm=True,
                )
            )
            await asyncio.to_thread(until, lambda: len(box.creates()) >= 4)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await asyncio.sleep(0.3)

    asyncio.run(main())
    assert len(box.creates()) == 4, "a cancelled await stops the sweep at once"


def test_a_blocking_client_works_too(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox()
    with SirayClient(box.api_key, box.base_url, poll=FAST, hooks=False) as client:
        sweep = run_sweep_sync(grid(2, 2), client=client, store=False, budget=budget, timeout=WAIT)
        assert client.get_task(sweep.cells[0].task_id or "").status.value == "SUCCESS"
    assert [run.state for run in sweep.cells] == ["success"] * 4


# --- never spends by surprise ------------------------------------------------------------------


def test_above_the_threshold_nothing_is_sent_without_confirmation(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox()
    sweep = SweepRun(grid(3, 2), client=box.client(), store=False, budget=budget)
    with pytest.raises(ConfirmationRequired) as caught:
        sweep.start()
    message = str(caught.value)
    assert "6 tasks" in message
    assert "24 images" in message
    assert "confirm=True" in message
    assert box.hits == [], "nothing reached the server"
    assert sweep.state == "planned"
    with pytest.raises(RuntimeError, match="not been started"):
        sweep.wait(1)
    budget.confirm_above = 6  # the threshold is settable
    sweep.start().wait(WAIT)
    assert len(box.creates()) == 6


def test_a_session_cap_stops_new_submissions(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox()
    budget.cap = 4
    sweep = SweepRun(grid(3, 2), client=box.client(), store=False, budget=budget)
    sweep.start(confirm=True).wait(WAIT)
    assert len(box.creates()) == 4
    assert sweep.state == "stopped"
    assert "session cap of 4 tasks" in sweep.stopped_reason
    states = [run.state for run in sweep.cells]
    assert states.count("success") == 4
    assert states.count("cancelled") == 2
    assert all("session cap" in run.reason for run in sweep.cells if run.state == "cancelled")
    assert budget.tasks == 4
    assert budget.remaining == 0
    # Raising the cap and retrying sends exactly the two cells left.
    budget.cap = 10
    sweep.retry().wait(WAIT)
    assert len(box.creates()) == 6
    assert budget.tasks == 6


# --- the shared back-off -----------------------------------------------------------------------


class TimedFaultServer(FaultServer):
    """The fault server, noting when each request arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        super().__init__()

    def _next(self, request: Any) -> Reply:
        with self._lock:
            self.times.append(time.monotonic())
        return super()._next(request)


@pytest.fixture
def timed_server() -> Iterator[TimedFaultServer]:
    server = TimedFaultServer()
    yield server
    server.close()


def test_a_429_storm_slows_the_whole_sweep_down_once(
    timed_server: TimedFaultServer, budget: SessionBudget
) -> None:
    """Three cells in flight all get 429 (Retry-After: 1). A runner backing off per cell
    sends three requests when the second is over; this one sends none during the window,
    then one probe (answered slowly here), and only after it the others."""
    server = timed_server
    storm = error_reply(429, "slow down", code="rate_limit_exceeded", headers={"Retry-After": "1"})
    server.on("POST", CREATE, storm, storm, storm)
    server.on("POST", CREATE, Reply(200, created("t1").body, delay=0.4))
    server.on("POST", CREATE, *(created(f"t{i}") for i in range(2, 7)))
    for i in range(1, 7):
        server.always("GET", task_path(f"t{i}"), fault_task_reply(f"t{i}"))
    client = AsyncSirayClient("sk-test-gate-0123456789abcdef", server.url, poll=FAST, hooks=False)
    definition = grid(3, 2)
    sweep = run_sweep_sync(
        definition,
        client=client,
        concurrency=3,
        store=False,
        budget=budget,
        confirm=True,
        timeout=WAIT,
    )
    assert [run.state for run in sweep.cells] == ["success"] * 6
    with server._lock:
        seen = list(zip(server.times, server.seen, strict=True))
    storms = [t for t, s in seen[:3]]
    assert [s.method for _, s in seen[:3]] == ["POST"] * 3
    last_429 = max(storms)
    after = [(t, s) for t, s in seen if t > last_429]
    probe_at, probe = after[0]
    # Nothing during the back-off window (1 s from the first 429).
    assert probe_at - min(storms) >= 0.95
    assert probe.method == "POST"
    # Nothing else while the probe is out (its answer takes 0.4 s).
    assert after[1][0] - probe_at >= 0.35
    assert len(server.creates()) == 3 + 6
    assert [run.attempts for run in sweep.cells[:3]] == [1, 1, 1]
    # Every create went with the same body a cell had, the refused ones again after.
    assert server.unscripted == []


def test_under_random_429s_every_cell_lands_and_no_task_is_made_twice(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox(duration=0.2, rate_limit_share=0.35, retry_after=0, seed=9)
    sweep = run_sweep_sync(
        grid(4, 3), client=box.client(), store=False, budget=budget, confirm=True, timeout=WAIT
    )
    assert [run.state for run in sweep.cells] == ["success"] * 12
    refused = [h for h in box.hits if h.status == 429]
    assert refused, "the dice refused some requests (creates and polls)"
    assert any(h.method == "GET" for h in refused), "status queries go through the gate too"
    assert len(box.handle.task_ids()) == 12, "no task was created twice"
    assert budget.tasks == 12, "refused creates were given back to the session budget"
    assert sum(run.attempts for run in sweep.cells) == sum(1 for h in refused if h.method == "POST")


def test_refused_cells_say_why_and_others_go_on(
    timed_server: TimedFaultServer, budget: SessionBudget
) -> None:
    server = timed_server
    server.on(
        "POST",
        CREATE,
        error_reply(400, "prompt blocked by moderation", code="invalid_parameter", param="prompt"),
        created("t2"),
        error_reply(500, "upstream exploded", type="server_error"),
        created("t4"),
    )
    for i in (2, 4):
        server.always("GET", task_path(f"t{i}"), fault_task_reply(f"t{i}"))
    client = AsyncSirayClient("sk-test-refuse-0123456789abcdef", server.url, poll=FAST, hooks=False)
    sweep = run_sweep_sync(
        grid(2, 2), client=client, concurrency=1, store=False, budget=budget, timeout=WAIT
    )
    states = [run.state for run in sweep.cells]
    assert states == ["refused", "success", "failed", "success"]
    assert "moderation" in sweep.cells[0].reason
    assert "HTTP 500" in sweep.cells[2].reason
    # A refused create made no task: it is given back; a 500 may have made one: it stays.
    assert budget.tasks == 3
    assert len(server.creates()) == 4


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_stops_new_submissions_and_follows_created_tasks_to_the_end(
    logged_sandbox: Callable[..., LoggedSandbox], store: RunStore, budget: SessionBudget
) -> None:
    box = logged_sandbox(duration=1.0)
    sweep = SweepRun(grid(3, 3), client=box.client(), concurrency=3, store=store, budget=budget)
    events: list[dict[str, Any]] = []
    sweep.on_change(events.append)
    sweep.start(confirm=True)
    deadline = time.monotonic() + WAIT
    while len(box.creates()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sweep.cancel()
    sweep.wait(WAIT)
    assert len(box.creates()) == 3, "nothing is created after Cancel"
    states = [run.state for run in sweep.cells]
    assert states[:3] == ["success"] * 3, "created tasks are followed and land in the grid"
    assert states[3:] == ["cancelled"] * 6
    assert all(run.reason == "Cancelled: not sent." for run in sweep.cells[3:])
    finals = {h.path.rsplit("/", 1)[1] for h in box.polls() if b'"SUCCESS"' in h.body}
    assert finals == {run.task_id for run in sweep.cells[:3]}
    assert sweep.state == "cancelled"
    assert any(e["kind"] == "sweep" and e["state"] == "cancelling" for e in events)
    # Running it again sends exactly the six not sent.
    again = SweepRun(grid(3, 3), client=box.client(), concurrency=3, store=store, budget=budget)
    assert (again.plan().reuse, again.plan().send) == (3, 6)


def test_a_cancel_made_before_the_sweep_took_its_first_step_holds(
    logged_sandbox: Callable[..., LoggedSandbox], budget: SessionBudget
) -> None:
    box = logged_sandbox()
    sweep = SweepRun(grid(3, 2), client=box.client(), store=False, budget=budget)
    loop = asyncio.new_event_loop()  # not running yet: the round's first step comes after
    try:
        sweep.start(confirm=True, loop=loop).cancel()
        loop.run_until_complete(asyncio.wait_for(_awaited(sweep), WAIT))
    finally:
        loop.close()
    assert box.creates() == []
    assert [run.state for run in sweep.cells] == ["cancelled"] * 6
    assert sweep.state == "cancelled"
    assert budget.tasks == 0


async def _awaited(sweep: SweepRun) -> SweepRun:
    return await sweep


def test_a_stalled_cell_is_marked_and_a_later_run_follows_it_without_paying_again(
    logged_sandbox: Callable[..., LoggedSandbox], store: RunStore, budget: SessionBudget
) -> None:
    box = logged_sandbox(duration=0.5, stall_at=50, stall_share=1.0)
    definition = grid(1, 1)
    sweep = SweepRun(definition, client=box.client(), store=store, budget=budget, stall_after=0.3)
    states: list[str] = []
    sweep.on_change(lambda e: states.append(e["cell"]["state"]) if e["kind"] == "cell" else None)
    sweep.start()
    deadline = time.monotonic() + WAIT
    while "stalled" not in states and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "stalled" in states
    assert sweep.cells[0].progress == 50
    sweep.cancel(follow=False)
    sweep.wait(WAIT)
    cell = sweep.cells[0]
    assert cell.state == "cancelled"
    assert cell.task_id is not None
    assert cell.task_id in cell.reason
    assert "running the sweep again follows it" in cell.reason
    assert store.get(cell.task_id).state in ("stalled", "cancelled")
    later = SweepRun(definition, client=box.client(), store=store, budget=budget)
    plan = later.plan()
    assert (plan.follow, plan.send) == (1, 0), "the created task is followed, not sent again"
    assert len(box.creates()) == 1


# --- results, snapshot, contact sheet ----------------------------------------------------------


def test_snapshot_results_and_the_contact_sheet_round_trip(
    logged_sandbox: Callable[..., LoggedSandbox],
    store: RunStore,
    budget: SessionBudget,
    tmp_path: Path,
) -> None:
    box = logged_sandbox(failure_share=0.4, seed=2)
    definition = define_sweep(
        "a red fox", x=("stylize", [0, 500]), y=("chaos", [0, 60]), z=("weird", [0, 900]), seed=3
    )
    sweep = SweepRun(definition, client=box.client(), store=store, budget=budget)
    sweep.start(confirm=True).wait(WAIT)
    assert sweep.wait_images(WAIT) == sum(1 for r in sweep.cells if r.state == "success")
    snapshot = sweep.snapshot()
    json.dumps(snapshot)  # plain JSON all the way down
    assert snapshot["shape"] == {"columns": 2, "rows": 2, "pages": 2}
    assert snapshot["progress"]["total"] == 8
    assert len(snapshot["cells"]) == 8
    assert sweep.snapshot(since=snapshot["version"])["cells"] == []
    rows = sweep.results
    assert [r["stylize"] for r in rows[:2]] == [0, 500]
    assert {r["state"] for r in rows} <= {"success", "failed"}
    frame = sweep.to_pandas()
    assert list(frame["weird"]) == [0, 0, 0, 0, 900, 900, 900, 900]
    failed = [r for r in sweep.cells if r.state == "failed"]
    assert failed, "the seeded dice fail a task"

    path = sweep.contact_sheet(tmp_path / "sheet.png")
    assert read_contact_sheet(path).to_json() == definition.to_json()
    assert read_contact_sheet(path.read_bytes()).key == definition.key
    recorded = read_contact_sheet_cells(path)
    assert {k: v["state"] for k, v in recorded.items()} == {r.key: r.state for r in sweep.cells}
    from PIL import Image

    with Image.open(path) as sheet:
        one_page = sweep.contact_sheet(page=1)
        assert sheet.height > one_page.height > 0
        assert sheet.width == one_page.width
        # A failed cell is drawn with its red border.
        colours = {colour for _, colour in sheet.convert("RGB").getcolors(1 << 20) or []}
        assert (200, 40, 40) in colours
    first = next(run for run in sweep.cells if run.state == "success")
    thumbs = sweep.thumbnails(first.index)
    assert len(thumbs) == 4
    assert all(t[:4] == b"RIFF" and t[8:12] == b"WEBP" for t in thumbs)
    assert sweep.thumbnails(failed[0]) == []
    kept = first.files[0]
    with pytest.raises(SweepError, match="holds no sweep definition"):
        read_contact_sheet(kept)
