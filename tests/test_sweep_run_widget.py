"""``ImagineWidget.sweep`` and the session budget the widget's Generate shares with sweeps.

Real sandbox servers over HTTP; the widget with a recording comm (no kernel), as in the
widget's own tests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fixtures.widget_fixtures import FAST, MakeWidget

from siray_widgets import session
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.session import BudgetExceededError, SessionBudget, session_budget
from siray_widgets.sweep import ConfirmationRequired

pytestmark = pytest.mark.usefixtures("no_siray_env")

WAIT = 30.0


@pytest.fixture
def fresh_budget(monkeypatch: pytest.MonkeyPatch) -> SessionBudget:
    """The process-wide session budget, fresh for this test (and put back afterwards)."""
    budget = SessionBudget()
    monkeypatch.setattr(session, "_budget", budget)
    return budget


def test_widget_sweep_runs_the_widgets_request_on_its_connection(
    make_widget: MakeWidget,
    sandbox: SandboxHandle,
    fresh_budget: SessionBudget,
    store_home: Path,
) -> None:
    w = make_widget(box=sandbox, prompt="a paper boat on a pond", aspect_ratio="16:9", seed=77)
    sweep = w.sweep(x=("chaos", [0, 50]), y=("stylize", "100, 750"))
    assert sweep.running or sweep.done
    assert sweep.wait(WAIT) is sweep
    assert [run.state for run in sweep.cells] == ["success"] * 4
    sent = [json.loads(body) for body in sandbox.received_bodies()]
    # (Four at once: they may arrive in any order; the order is tested in test_sweep_run.)
    assert sorted((b["chaos"], b["stylize"]) for b in sent) == [
        (0, 100),
        (0, 750),
        (50, 100),
        (50, 750),
    ]
    assert {b["prompt"] for b in sent} == {"a paper boat on a pond"}
    assert {b["aspect_ratio"] for b in sent} == {"16:9"}
    assert {b["seed"] for b in sent} == {77}, "the widget's fixed seed is the shared seed"
    assert fresh_budget.tasks == 4
    # The widget's own Generate counts in the same session budget.
    generation = w.generate()
    generation.result(WAIT)
    assert fresh_budget.tasks == 5
    # With the cap reached, Generate is refused before anything is sent...
    fresh_budget.cap = 5
    with pytest.raises(BudgetExceededError, match="session cap of 5 tasks"):
        w.generate()
    assert "Not sent: The session cap of 5 tasks" in w.error
    assert len(sandbox.received_bodies()) == 5
    # ...and so is a sweep: every cell stays unsent, saying why.
    stopped = w.sweep(x=("chaos", [10, 20]), start=False)
    stopped.start().wait(WAIT)
    assert stopped.state == "stopped"
    assert [run.state for run in stopped.cells] == ["cancelled", "cancelled"]
    assert all("session cap" in run.reason for run in stopped.cells)
    assert len(sandbox.received_bodies()) == 5


def test_widget_sweep_needs_confirmation_above_the_threshold(
    make_widget: MakeWidget, sandbox: SandboxHandle, fresh_budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a kite over dunes")
    with pytest.raises(ConfirmationRequired, match="6 tasks"):
        w.sweep(x=("stylize", "0-1000 [3]"), y=("chaos", [0, 50]))
    assert sandbox.received_bodies() == []
    sweep = w.sweep(x=("stylize", "0-1000 [3]"), y=("chaos", [0, 50]), confirm=True, store=False)
    sweep.wait(WAIT)
    assert len(sandbox.received_bodies()) == 6


def test_a_random_seed_sweep_defined_again_resumes_with_its_earlier_seed(
    make_widget: MakeWidget,
    sandbox: SandboxHandle,
    fresh_budget: SessionBudget,
    store_home: Path,
) -> None:
    """The widget's seed box on "random": the sweep draws a shared seed once; the same sweep
    defined again (a restart, more values) takes it back from the run store and resends
    nothing that succeeded."""
    w = make_widget(box=sandbox, prompt="a lantern in fog", seed=-1)
    first = w.sweep(x=("weird", [0, 250]))
    first.wait(WAIT)
    seed = first.definition.seed
    assert seed != -1
    again = w.sweep(x=("weird", [0, 250, 500]), start=False)
    assert again.definition.seed == seed
    assert again.plan().send == 1
    again.start().wait(WAIT)
    assert len(sandbox.received_bodies()) == 3
    # An explicit seed is a different sweep.
    other = w.sweep(x=("weird", [0, 250]), seed=5, start=False)
    assert other.plan().send == 2


def test_awaiting_a_widget_sweep_from_a_running_loop(
    make_widget: MakeWidget, sandbox: SandboxHandle, fresh_budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a glass city")

    async def main() -> None:
        sweep = w.sweep(x=("quality", "all"), store=False)
        # An impatient awaiter giving up does not cancel the sweep for the others.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.ensure_future(_await(sweep)), 0.001)
        done = await sweep
        assert done is sweep
        with pytest.raises(RuntimeError, match="not been started"):
            await w.sweep(x=("quality", "all"), start=False)

    asyncio.run(main())
    assert {json.loads(b)["quality"] for b in sandbox.received_bodies()} == {"1", "2", "4"}
    assert session_budget() is fresh_budget


async def _await(sweep: object) -> object:
    return await sweep  # type: ignore[misc]


def test_the_poll_schedule_of_the_widget_is_used(
    make_widget: MakeWidget, sandbox: SandboxHandle, fresh_budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a moth")
    assert w.poll is FAST
    sweep = w.sweep(x=("chaos", [1]), store=False)
    sweep.wait(WAIT)
    assert sweep.cells[0].state == "success"


def test_a_sweep_restored_from_a_contact_sheet_runs_on_the_widgets_connection(
    make_widget: MakeWidget,
    sandbox: SandboxHandle,
    fresh_budget: SessionBudget,
    store_home: Path,
    tmp_path: Path,
) -> None:
    from siray_widgets import read_contact_sheet

    w = make_widget(box=sandbox, prompt="an owl", seed=3)
    first = w.sweep(x=("weird", [0, 500]))
    first.wait(WAIT)
    path = first.contact_sheet(tmp_path / "owl.png")
    restored = w.sweep(definition=read_contact_sheet(path.read_bytes()), start=False)
    assert restored.definition.key == first.definition.key
    assert restored.plan().reuse == 2
    with pytest.raises(TypeError, match="not both"):
        w.sweep(x=("chaos", [1]), definition=restored.definition)
