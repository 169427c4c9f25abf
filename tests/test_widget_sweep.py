"""The Sweep tab's message handlers (docs/widget-contract.md § Sweep), driven as the page does.

Real sandbox servers over HTTP, a real run store in a temp folder (``store_home``), the widget
with a recording comm (no kernel). The browser tests (``test_browser_sweep.py``) drive the same
messages from the page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.widget_fixtures import WAIT, MakeWidget, custom_messages, replies, send

from siray_widgets import _widget_lazy, session
from siray_widgets._widget_lazy import SWEEP_KINDS
from siray_widgets._widget_sweep import MAX_THUMB_CELLS
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.session import SessionBudget
from siray_widgets.widget import ImagineWidget

pytestmark = pytest.mark.usefixtures("no_siray_env")

GRID = {"x": {"axis": "stylize", "values": "0-1000 [3]"}, "y": {"axis": "chaos", "values": "0, 50"}}


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> SessionBudget:
    fresh = SessionBudget()
    monkeypatch.setattr(session, "_budget", fresh)
    return fresh


def _wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _grid(w: ImagineWidget, sweep_id: str) -> dict[int, dict[str, Any]]:
    """The cells as the page knows them: the run reply's, then every update in order."""
    cells: dict[int, dict[str, Any]] = {}
    for reply in replies(w, "sweep-run-response"):
        if reply.get("ok") and reply["sweep"]["id"] == sweep_id:
            cells = {c["index"]: c for c in reply["sweep"]["cells"]}
    for update in replies(w, "sweep-update"):
        if update["sweep"] == sweep_id:
            for c in update["cells"]:
                cells[c["index"]] = c
    return cells


def _finished(w: ImagineWidget, sweep_id: str) -> bool:
    updates = [u for u in replies(w, "sweep-update") if u["sweep"] == sweep_id]
    return bool(updates) and updates[-1]["state"] in ("done", "cancelled", "stopped")


def test_the_module_is_sent_with_settings_from_python() -> None:
    module = _widget_lazy.lazy_module("sweep")
    assert "export" in module["code"]
    assert module["css"].startswith(".siray-widget")
    config = module["config"]
    assert config["fields"] == [
        "prompt", "negative_prompt", "aspect_ratio", "chaos", "stylize", "weird", "quality",
        "seed", "raw", "tile",
    ]  # fmt: skip
    assert {s["name"] for s in config["special"]} == {"prompt", "prompt_sr", "preset", "replicate"}
    assert (config["concurrency"], config["max_concurrency"], config["images_per_task"]) == (
        8,
        64,
        4,
    )


def test_preview_parses_every_syntax_and_says_what_run_would_send(
    make_widget: MakeWidget, sandbox: SandboxHandle, store_home: Path, budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a heron {at dawn, in fog}")
    forms: list[tuple[dict[str, Any], list[list[str]]]] = [
        (GRID, [["0", "500", "1000"], ["0", "50"], ["at dawn", "in fog"]]),
        (
            {"x": {"axis": "stylize", "values": "0-1000 (+250)"}},
            [["0", "250", "500", "750", "1000"]],
        ),
        ({"x": {"axis": "chaos", "values": "0, 25, .., 100"}}, [["0", "25", "50", "75", "100"]]),
        ({"x": {"axis": "aspect_ratio", "values": "16:9, 1:1"}}, [["16:9", "1:1"]]),
        ({"x": {"axis": "replicate", "values": "3"}}, [["#1", "#2", "#3"]]),
        (
            {"x": {"axis": "preset", "values": "Stylize low, Stylize high"}},
            [["Stylize low", "Stylize high"]],
        ),
    ]
    for form, labels in forms:
        reply = send(w, "sweep-preview", form=form)
        assert reply["ok"], reply
        preview = reply["preview"]
        assert [a["labels"] for a in preview["axes"]][: len(labels)] == labels
    reply = send(w, "sweep-preview", form=GRID)
    preview = reply["preview"]
    assert preview["shape"] == {"columns": 3, "rows": 2, "pages": 2}  # the {a, b} prompt is Z
    assert (preview["tasks"], preview["images"]) == (12, 48)
    plan = preview["plan"]
    assert (plan["send"], plan["confirm_above"], plan["needs_confirmation"]) == (12, 5, True)
    assert plan["cost_text"] == "price unknown"  # a keyed server: the registry's price, or none
    assert isinstance(preview["seed"], int)
    # The preview is stable while the user types (the drawn seed is kept): Run can check it.
    assert send(w, "sweep-preview", form=GRID)["preview"]["key"] == preview["key"]
    assert sandbox.received_bodies() == []  # nothing is sent by a preview


def test_an_invalid_value_names_the_axis_and_the_value(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    cases = [
        ({"x": {"axis": "stylize", "values": "0-2000 [3]"}}, "x", "X axis (stylize)", "2000"),
        (
            {"y": {"axis": "aspect_ratio", "values": "1:1, 5:4"}},
            "y",
            "Y axis (aspect_ratio)",
            "5:4",
        ),
        ({"z": {"axis": "colour", "values": "red"}}, "z", "Z axis", "colour"),
        ({"x": {"axis": "chaos", "values": ""}}, "x", "X axis (chaos)", "no values"),
        ({"x": {"axis": "chaos", "values": "1, 1"}}, "x", "X axis (chaos)", "twice"),
    ]
    for form, slot, axis, value in cases:
        reply = send(w, "sweep-preview", form=form)
        assert reply["ok"] is False
        assert reply["axis"] == slot
        assert axis in reply["error"], reply["error"]
        assert value in reply["error"], reply["error"]
    assert w.error == ""  # refusals are the tab's, never the run's error line
    bad = send(w, "sweep-preview", form="stylize=1")
    assert bad["ok"] is False
    assert "must be an object" in bad["error"]


def test_run_needs_confirmation_above_the_threshold_then_the_grid_fills_through_updates(
    make_widget: MakeWidget, make_sandbox: Any, store_home: Path, budget: SessionBudget
) -> None:
    box = make_sandbox(duration=0.3)
    w = make_widget(box=box, prompt="a red kite")
    preview = send(w, "sweep-preview", form=GRID)["preview"]
    refused = send(w, "sweep-run", form=GRID, key=preview["key"])
    assert refused["ok"] is False
    assert refused["needs_confirmation"] is True
    assert "6 tasks" in refused["error"]
    assert box.received_bodies() == []
    assert budget.tasks == 0
    stale = send(w, "sweep-run", form=GRID, key="0" * 64, confirm=True)
    assert stale["ok"] is False
    assert "changed since its preview" in stale["error"]
    started = send(w, "sweep-run", form=GRID, key=preview["key"], confirm=True)
    assert started["ok"], started
    sweep = started["sweep"]
    assert sweep["shape"] == {"columns": 3, "rows": 2, "pages": 1}
    assert [a["labels"] for a in sweep["axes"]] == [["0", "500", "1000"], ["0", "50"]]
    assert len(sweep["cells"]) == 6
    again = send(w, "sweep-run", form=GRID, key=preview["key"], confirm=True)
    assert again["ok"] is False
    assert "running" in again["error"]
    _wait_for(lambda: _finished(w, sweep["id"]))
    cells = _grid(w, sweep["id"])
    assert [cells[i]["state"] for i in range(6)] == ["success"] * 6
    assert {(c["x"], c["y"]) for c in cells.values()} == {
        (x, y) for x in range(3) for y in range(2)
    }
    updates = [u for u in replies(w, "sweep-update") if u["sweep"] == sweep["id"]]
    assert updates[-1]["progress"]["success"] == 6
    assert updates[-1]["session"]["tasks"] == 6 == budget.tasks
    # Throttled: far fewer messages than cell changes (each cell changes 3+ times).
    assert len(updates) < 6 * 3
    # Never a path of the kernel's machine: only counts of kept thumbnails.
    text = json.dumps(replies(w, "sweep-update"))
    assert str(store_home) not in text
    # The state of a view made afterwards: the same grid.
    state = send(w, "sweep-state")["sweep"]
    assert state["id"] == sweep["id"]
    assert state["state"] == "done"
    # Run again: every cell was done by the earlier run; nothing is sent.
    plan = send(w, "sweep-preview", form=GRID)["preview"]["plan"]
    assert (plan["reuse"], plan["send"]) == (6, 0)


def test_thumbnails_cells_use_these_undo_and_diff(
    make_widget: MakeWidget, sandbox: SandboxHandle, store_home: Path, budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a tin robot", aspect_ratio="3:2")
    form = {"x": {"axis": "stylize", "values": "50, 750"}}
    started = send(w, "sweep-run", form=form)
    sweep_id = started["sweep"]["id"]
    _wait_for(lambda: all(c["thumbs"] for c in _grid(w, sweep_id).values()))
    send(w, "sweep-thumbs", sweep=sweep_id, cells=[0, 1])
    content, buffers = custom_messages(w, "sweep-thumbs-response")[-1]
    assert [(i["cell"], i["image"], i["type"]) for i in content["items"]] == [
        (0, 1, "image/webp"),
        (1, 1, "image/webp"),
    ]
    assert len(buffers) == 2
    assert all(b[:4] == b"RIFF" for b in buffers)
    send(w, "sweep-thumbs", sweep=sweep_id, cells=[1], all=True)
    content, buffers = custom_messages(w, "sweep-thumbs-response")[-1]
    assert [i["image"] for i in content["items"]] == [1, 2, 3, 4]
    assert len(buffers) == 4
    too_many = send(w, "sweep-thumbs", sweep=sweep_id, cells=list(range(MAX_THUMB_CELLS + 1)))
    assert too_many["ok"] is False

    cell = send(w, "sweep-cell", sweep=sweep_id, cell=1)
    assert cell["cell"]["describe"] == "X stylize=750"
    assert cell["body"]["stylize"] == 750
    assert cell["body"]["aspect_ratio"] == "3:2"
    assert cell["prompt_text"].startswith("a tin robot --ar 3:2")
    differ = {r["name"] for r in cell["rows"] if r["differs"]}
    assert "stylize" in differ

    before = (w.stylize, w.seed)
    used = send(w, "sweep-use", sweep=sweep_id, cell=1)
    assert used["undo"] is True
    assert "X stylize=750" in used["applied"]
    assert w.stylize == 750
    assert w.seed == cell["body"]["seed"]
    undone = send(w, "history-undo")  # the History tab's one undo
    assert undone["ok"]
    assert (w.stylize, w.seed) == before

    diff = send(w, "sweep-diff", sweep=sweep_id, a=0, b=1)
    assert [r["name"] for r in diff["rows"] if r["differs"]] == ["stylize"]
    assert (diff["a"]["describe"], diff["b"]["describe"]) == ("X stylize=50", "X stylize=750")
    gone = send(w, "sweep-cell", sweep="sweep-0000", cell=0)
    assert gone["ok"] is False
    assert "no longer this widget's" in gone["error"]
    assert send(w, "sweep-cell", sweep=sweep_id, cell=7)["ok"] is False


def test_a_failed_cell_keeps_its_reason_and_retry_sends_only_it(
    make_widget: MakeWidget, make_sandbox: Any, store_home: Path, budget: SessionBudget
) -> None:
    # Seeded dice (siray_widgets/sandbox/faults.py): of the first twelve tasks only the 9th fails.
    box = make_sandbox(duration=0.2, failure_share=0.2, seed=16)
    w = make_widget(box=box, prompt="a glass bell")
    form = {
        "x": {"axis": "weird", "values": "0, 10, 20"},
        "y": {"axis": "chaos", "values": "1, 2, 3"},
    }
    sweep_id = send(w, "sweep-run", form=form, confirm=True)["sweep"]["id"]
    _wait_for(lambda: _finished(w, sweep_id))
    cells = _grid(w, sweep_id)
    failed = [c for c in cells.values() if c["state"] == "failed"]
    assert len(failed) == 1
    assert "sandbox fault injection" in failed[0]["reason"]
    retried = send(w, "sweep-retry", sweep=sweep_id, cell=failed[0]["index"])
    assert retried["ok"]
    assert retried["cell"]["state"] == "queued"
    _wait_for(lambda: _grid(w, sweep_id)[failed[0]["index"]]["state"] == "success")
    assert len(box.task_ids()) == 10


def test_cancel_stops_new_submissions_and_followed_tasks_finish(
    make_widget: MakeWidget, make_sandbox: Any, store_home: Path, budget: SessionBudget
) -> None:
    box = make_sandbox(duration=1.5)
    w = make_widget(box=box, prompt="a slow boat")
    form = {"x": {"axis": "chaos", "values": "1-8 [8]"}}
    sweep_id = send(w, "sweep-run", form=form, confirm=True, concurrency=2)["sweep"]["id"]
    _wait_for(lambda: len(box.task_ids()) == 2)
    cancelled = send(w, "sweep-cancel", sweep=sweep_id)
    assert cancelled["ok"]
    assert cancelled["state"] == "cancelling"
    _wait_for(lambda: _finished(w, sweep_id))
    states = [c["state"] for c in _grid(w, sweep_id).values()]
    assert states.count("success") == len(box.task_ids()) == 2
    assert states.count("cancelled") == 6


def test_batch_prompts_are_a_sweep_with_one_prompt_axis(
    make_widget: MakeWidget, sandbox: SandboxHandle, budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, aspect_ratio="16:9")
    batch = "a fox in snow\n\na heron --ar 1:1\na {red, blue} kite"
    reply = send(
        w, "sweep-preview", form={"batch": batch, "x": {"axis": "stylize", "values": "50, 750"}}
    )
    preview = reply["preview"]
    assert [(a["slot"], a["kind"]) for a in preview["axes"]] == [("x", "field"), ("y", "prompt")]
    assert preview["axes"][1]["labels"] == [
        "a fox in snow",
        "a heron --ar 1:1",
        "a red kite",
        "a blue kite",
    ]
    assert preview["tasks"] == 8
    both = send(w, "sweep-preview", form={"batch": "a", "y": {"axis": "chaos", "values": "1"}})
    assert both["ok"] is False
    assert "Y axis" in both["error"]
    empty = send(w, "sweep-preview", form={"batch": "\n  \n"})
    assert empty["ok"] is False
    assert "no prompts" in empty["error"]


def test_presets_listed_and_their_changes_previewed(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    listed = send(w, "sweep-presets")
    assert "Stylize high" in [p["name"] for p in listed["presets"]]
    stacked = send(w, "sweep-presets", names=["Stylize high", "Raw"])
    assert [(c["field"], c["before"], c["after"]) for c in stacked["changes"]] == [
        ("stylize", 100, 250),
        ("raw", False, True),
    ]
    assert send(w, "sweep-presets", names=["No such preset"])["ok"] is False
    preview = send(w, "sweep-preview", form={"presets": ["Stylize high"]})["preview"]
    assert preview["presets"] == ["Stylize high"]
    assert preview["tasks"] == 1
    assert w.stylize == 100  # previews never change the controls


def test_every_sweep_kind_is_answered_and_never_leaks_the_key(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    secret = "sk-live-SWEEPSECRET-0123456789"
    w.api_key = secret
    for kind in sorted(SWEEP_KINDS):
        reply = send(w, kind, form={"x": {"axis": secret, "values": secret}}, sweep=secret)
        assert secret not in json.dumps(reply), kind
    assert secret not in json.dumps(w.get_state())
