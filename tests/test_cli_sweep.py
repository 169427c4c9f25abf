"""``siray-widgets sweep`` as a user runs it: a subprocess, no terminal, a real sandbox server.

Creates are counted at the server (the sandbox keeps every create body), including when the
command is killed mid-sweep (SIGKILL) and run again into the same folder.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from siray_widgets.metadata import read_image_params
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.store import RunQuery, RunStore
from siray_widgets.sweep import SweepDefinition, read_contact_sheet

pytestmark = pytest.mark.slow

PROMPT = "a fox {in snow, at dusk} --ar 3:2"
GRID = ["--x", "stylize=0-1000[3]"]
TIMEOUT = 90


@pytest.fixture
def box(make_sandbox: Callable[..., SandboxHandle]) -> SandboxHandle:
    return make_sandbox(duration=0.2)


def env_for(box: SandboxHandle, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    env.update(
        SIRAY_BASE_URL=box.base_url,
        SIRAY_API_KEY=box.api_key,
        SIRAY_WIDGETS_HOME=str(home),
        COLUMNS="200",
    )
    env.update(extra)
    return env


def sweep(
    box: SandboxHandle, home: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "siray_widgets.cli", "sweep", *args, "--poll", "0.05"],
        env=env_for(box, home, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def creates(box: SandboxHandle) -> list[dict[str, Any]]:
    return [json.loads(body) for body in box.received_bodies()]


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return data


def test_without_a_terminal_and_without_yes_it_refuses_saying_how_many_tasks(
    box: SandboxHandle, tmp_path: Path
) -> None:
    result = sweep(box, tmp_path / "home", PROMPT, *GRID, "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "would send 6 tasks (24 images" in result.stderr
    assert "--yes" in result.stderr
    assert creates(box) == [], "nothing was sent"
    assert not (tmp_path / "out").exists()
    # Under the threshold it runs without asking.
    small = sweep(box, tmp_path / "home", "a fox", "--x", "chaos=0,50")
    assert small.returncode == 0, small.stderr
    assert len(creates(box)) == 2


def test_a_sweep_into_a_folder_and_the_same_sweep_again(box: SandboxHandle, tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    first = sweep(box, home, PROMPT, *GRID, "--yes", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "plan: 6 cells, 6 tasks (24 images" in first.stderr
    sent = creates(box)
    assert len(sent) == 6
    assert sorted((b["prompt"], b["stylize"]) for b in sent) == sorted(
        (p, s) for p in ("a fox in snow", "a fox at dusk") for s in (0, 500, 1000)
    )
    # One line per cell on stdout, each a success with its four files.
    lines = [line for line in first.stdout.splitlines() if line.startswith("#")]
    assert len(lines) == 6
    assert all(": success" in line for line in lines)
    data = manifest(out)
    definition = SweepDefinition.from_json(data["definition"])
    assert [c["state"] for c in data["cells"]] == ["success"] * 6
    images = sorted(out.glob("*.png"))
    pictures = [p for p in images if not p.name.startswith("contact-sheet")]
    assert len(pictures) == 24
    for cell in data["cells"]:
        assert len(cell["files"]) == 4
        for name in cell["files"]:
            params = read_image_params(out / name)  # every image carries its parameters
            assert params.to_body() == cell["body"]
    with (out / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == ["success"] * 6
    assert {r["variant"] for r in rows} == {"in snow", "at dusk"}
    assert read_contact_sheet(out / "contact-sheet.png").key == definition.key
    # The same command again: nothing is sent, the seed is the folder's.
    again = sweep(box, home, PROMPT, *GRID, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert len(creates(box)) == 6
    assert f"seed {definition.seed}" in again.stderr
    assert again.stdout.count("(done earlier)") == 6
    # More values: only the new cells are sent (4 of 10), no confirmation needed.
    more = sweep(box, home, PROMPT, "--x", "stylize=0-1000[5]", "--out", str(out))
    assert more.returncode == 0, more.stderr
    assert len(creates(box)) == 10
    assert {b["stylize"] for b in creates(box)[6:]} == {250, 750}
    assert len([c for c in manifest(out)["cells"] if c["state"] == "success"]) == 10
    # Another sweep into the same folder is refused: nothing is overwritten, nothing sent.
    other = sweep(box, home, "a heron", "--x", "chaos=0,50", "--out", str(out))
    assert other.returncode == 2
    assert "holds the results of another sweep ('a fox" in other.stderr
    assert len(creates(box)) == 10


def test_from_a_contact_sheet_restores_the_sweep(box: SandboxHandle, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = sweep(
        box,
        home,
        "a heron",
        "--x",
        "chaos=0,40",
        "--y",
        "weird=0,300",
        "--out",
        str(tmp_path / "a"),
    )
    assert first.returncode == 0, first.stderr
    sheet = tmp_path / "a" / "contact-sheet.png"
    restored = sweep(box, home, "--from", str(sheet), "--out", str(tmp_path / "b"))
    assert restored.returncode == 0, restored.stderr
    assert len(creates(box)) == 4, "the run history knows every cell: nothing is sent again"
    assert manifest(tmp_path / "b")["definition"] == manifest(tmp_path / "a")["definition"]
    assert len(list((tmp_path / "b").glob("*_1.png"))) == 4
    # Without the run history, a new folder sends the cells again (a fresh copy).
    fresh = sweep(
        box,
        tmp_path / "home2",
        "--from",
        str(sheet),
        "--out",
        str(tmp_path / "c"),
        SIRAY_WIDGETS_HISTORY="0",
    )
    assert fresh.returncode == 0, fresh.stderr

    def key(body: dict[str, Any]) -> str:
        return json.dumps(body, sort_keys=True)

    assert sorted(map(key, creates(box)[4:])) == sorted(map(key, creates(box)[:4]))
    bad = sweep(
        box, home, "--from", str(tmp_path / "a" / manifest(tmp_path / "a")["cells"][0]["files"][0])
    )
    assert bad.returncode == 2
    assert "holds no sweep definition" in bad.stderr


@pytest.mark.parametrize("history", ["store", "folder"])
def test_killed_mid_sweep_then_run_again_sends_only_what_was_never_created(
    make_sandbox: Callable[..., SandboxHandle], tmp_path: Path, history: str
) -> None:
    """SIGKILL with 2 tasks done and 2 in flight; the same command again follows the tasks the
    killed run created and sends only the cells it never sent: 8 creates in all. With the
    run history off, the folder's manifest alone is enough."""
    box = make_sandbox(duration=0.6)
    home, out = tmp_path / "home", tmp_path / "out"
    extra = {"SIRAY_WIDGETS_HISTORY": "0"} if history == "folder" else {}
    args = [
        sys.executable,
        "-m",
        "siray_widgets.cli",
        "sweep",
        "a tern",
        "--x",
        "chaos=0,25,50,75",
        "--y",
        "stylize=0,500",
        "--concurrency",
        "2",
        "--yes",
        "--out",
        str(out),
        "--poll",
        "0.05",
    ]
    process = subprocess.Popen(
        args,
        env=env_for(box, home, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Two at a time, all of the same length: cells 3 and 4 are created together when 1
        # and 2 end, and no fifth for 0.6 s. Kill once 4 tasks are in the folder's manifest.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and (
            len(box.received_bodies()) < 4 or len(_task_ids(out)) < 4
        ):
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    before = len(box.received_bodies())
    assert before == 4
    killed = manifest(out)
    created = {c["key"]: c["task_id"] for c in killed["cells"] if c["task_id"]}
    assert len(created) == before, "every task created is in the folder's manifest"
    if history == "store":
        with RunStore(home) as store:
            runs = store.runs(RunQuery(origin="sweep"))
            assert {r.cell_key: r.task_id for r in runs if r.task_id} == created
    again = subprocess.run(
        args,
        env=env_for(box, home, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    plan = next(line for line in again.stderr.splitlines() if line.startswith("plan:"))
    assert f"{8 - before} task" in plan, again.stderr  # to send; the rest done or followed
    assert len(box.received_bodies()) == 8, "exactly the cells never created were sent"
    final = manifest(out)
    assert [c["state"] for c in final["cells"]] == ["success"] * 8
    for cell in final["cells"]:
        if cell["key"] in created:
            assert cell["task_id"] == created[cell["key"]], "the killed run's task was followed"


def _task_ids(out: Path) -> list[str]:
    try:
        return [c["task_id"] for c in manifest(out)["cells"] if c["task_id"]]
    except (OSError, ValueError):
        return []


def test_a_batch_from_a_prompt_file_and_a_preset_axis(box: SandboxHandle, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red kite\n\na blue kite --ar 16:9\na green kite\n", encoding="utf-8")
    result = sweep(
        box,
        tmp_path / "home",
        "--prompts",
        str(prompts),
        "--x",
        "preset=stylize low,stylize very high",
        "--yes",
    )
    assert result.returncode == 0, result.stderr
    sent = creates(box)
    assert len(sent) == 6
    assert sorted((b["prompt"], b["stylize"]) for b in sent) == sorted(
        (p, s) for p in ("a red kite", "a blue kite", "a green kite") for s in (50, 750)
    )
    assert {b["aspect_ratio"] for b in sent if b["prompt"] == "a blue kite"} == {"16:9"}


def test_pages_get_sheets_of_their_own(box: SandboxHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = sweep(
        box, tmp_path / "home", "a vase", "--x", "chaos=0,50", "--z", "raw=both", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.glob("contact-sheet*.png"))
    assert names == ["contact-sheet-z1.png", "contact-sheet-z2.png", "contact-sheet.png"]
    for name in names:
        assert read_contact_sheet(out / name).shape == (2, 1, 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a fox", "--x", "stylize=0-5000[3]"], "X axis (stylize)"),
        (["a fox", "--x", "colour=red"], "not something a sweep can vary"),
        (["--x", "chaos=1,2"], "give a PROMPT"),
        (["a fox", "--seed", "soon"], "--seed 'soon'"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(
    box: SandboxHandle, tmp_path: Path, args: list[str], message: str
) -> None:
    result = sweep(box, tmp_path / "home", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert creates(box) == []
