"""The widget's history (issue 8): its runs recorded once as widget runs, the stuck-task
watchdog, and every History-tab message handler (docs/widget-contract.md § History).

Runs talk real HTTP to a sandbox or the fault server; the store is a real SQLite file in a temp
folder (``store_home``). The browser tests (``test_browser_history.py``) drive the same
messages from the page.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.fault_server import CREATE, FaultServer, created, task_path, task_reply
from fixtures.store_fixtures import ImageServer, make_image, record_run
from fixtures.widget_fixtures import WAIT, MakeWidget, custom_messages, replies, run_of, send

from siray_widgets import _widget_lazy
from siray_widgets._widget_history import MAX_IMAGE_BYTES, MAX_PAGE, WATCH
from siray_widgets.metadata import ImageParams, embed
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.schema import ImageRequest
from siray_widgets.store import RunStore, open_store

pytestmark = pytest.mark.usefixtures("no_siray_env")

KEY = "sk-test-HISTORY-0123456789abcdef"


@pytest.fixture
def shared(store_home: Path) -> Iterator[RunStore]:
    """The data folder's shared store (what the widget's History tab reads)."""
    store = open_store()
    yield store
    store.close()


def _runs(store: RunStore, **filters: Any) -> list[Any]:
    from siray_widgets.history import build_query

    return store.runs(build_query(**filters))


def _wait_for(condition: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- recording --------------------------------------------------------------------------------


def test_a_widget_run_is_recorded_once_as_a_widget_run_with_its_notebook(
    make_widget: MakeWidget,
    sandbox: SandboxHandle,
    shared: RunStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the real path (the generate message), with the package's default client hooks
    installed (a client imported from the package records as "script"): one row, origin
    widget, the notebook's name, the images kept; the run's entry names its row."""
    import siray_widgets

    siray_widgets.SirayClient  # noqa: B018 - installs the default recording hooks
    monkeypatch.setenv("JPY_SESSION_NAME", "studies/fox.ipynb")
    w = make_widget(box=sandbox, prompt="a fox in the snow", stylize=250)
    generation = run_of(w, send(w, "generate", body=w.request_json))
    generation.result(timeout=WAIT)
    generation.recorder.wait_images(WAIT)
    runs = _runs(shared)
    assert len(runs) == 1
    run = runs[0]
    assert (run.task_id, run.origin, run.source, run.state) == (
        generation.task_id,
        "widget",
        "studies/fox.ipynb",
        "success",
    )
    assert run.request_json == generation.request_json
    assert run.seed_used == generation.seed
    assert run.images_state == "done"
    assert [Path(p).exists() for p in run.files] == [True] * len(generation.images)
    entry = w.tasks[-1]
    assert entry["history_id"] == run.id
    assert entry["summary"] == f"a fox in the snow --stylize 250 --seed {generation.seed} --niji 7"
    assert entry["stalled"] is False
    assert [e.state for e in shared.get(run.id).events][:2] == ["starting", "running"]


def test_a_cancelled_widget_run_is_recorded_as_cancelled(
    make_widget: MakeWidget, make_sandbox: Any, shared: RunStore
) -> None:
    box = make_sandbox(duration=30)
    w = make_widget(box=box)
    generation = run_of(w, send(w, "generate", body=w.request_json))
    _wait_for(lambda: generation.task_id is not None)
    send(w, "cancel", run=generation.id)
    with pytest.raises(Exception):  # noqa: B017, PT011 - concurrent.futures.CancelledError
        generation.result(timeout=WAIT)
    (run,) = _runs(shared)
    assert (run.task_id, run.state) == (generation.task_id, "cancelled")


def test_the_store_keeps_images_only_where_the_widget_itself_would_fetch(
    make_widget: MakeWidget, fault_server: FaultServer, shared: RunStore
) -> None:
    """Issue 11 for the run store: an API that names another local service's URLs (or more
    images than a task makes) gets the run recorded, its outputs listed, and nothing fetched."""
    admin = FaultServer()
    try:
        trap = [f"{admin.url}/internal/admin?action=drop-all", f"{admin.url}/img/1.png"]
        many = [f"https://cdn.example/{n}.png" for n in range(16)]
        for task_id, outputs in (("t-trap", trap), ("t-many", many)):
            fault_server.on("POST", CREATE, created(task_id))
            fault_server.on("GET", task_path(task_id), task_reply(task_id, outputs=outputs))
        w = make_widget()
        w.base_url, w.api_key = fault_server.url, KEY
        for task_id, outputs in (("t-trap", trap), ("t-many", many)):
            generation = run_of(w, send(w, "generate", body=w.request_json))
            generation.result(timeout=WAIT)
            assert generation.recorder.images is None  # no download was started
            run = shared.get(task_id)
            assert (run.state, run.outputs, run.images_state) == ("success", tuple(outputs), "none")
        time.sleep(0.5)
        assert admin.seen == []
    finally:
        admin.close()


# -- the stuck-task watchdog ------------------------------------------------------------------


def _stalling(fault_server: FaultServer, task_id: str, progress: str = "40%") -> FaultServer:
    fault_server.on("POST", CREATE, created(task_id))
    fault_server.always("GET", task_path(task_id), task_reply(task_id, "IN_PROGRESS", progress))
    return fault_server


def test_a_stalled_run_says_so_and_comes_back_when_progress_moves(
    make_widget: MakeWidget, fault_server: FaultServer, shared: RunStore
) -> None:
    _stalling(fault_server, "t-stall")
    w = make_widget()
    w.base_url, w.api_key, w.stall_after = fault_server.url, KEY, 0.3
    seen: list[bool] = []
    w.observe(lambda c: seen.append(bool(c["new"] and c["new"][-1].get("stalled"))), ["tasks"])
    generation = run_of(w, send(w, "generate", body=w.request_json))
    # (The watchdog's thread marks the run, then publishes it: wait for the trait too.)
    _wait_for(lambda: generation.stalled and w.tasks[-1]["stalled"] is True)
    assert generation.state == "running"  # still followed: stalled is a condition
    assert _runs(shared)[0].state == "stalled"
    fault_server.always("GET", task_path("t-stall"), task_reply("t-stall", "IN_PROGRESS", "60%"))
    _wait_for(lambda: not generation.stalled and w.tasks[-1]["stalled"] is False)
    assert True in seen
    assert seen[-1] is False
    run = shared.get(_runs(shared)[0].id)
    assert run.state == "running"
    assert [e.state for e in run.events if e.state in ("stalled", "running")][-2:] == [
        "stalled",
        "running",
    ]
    w.cancel()
    _wait_for(lambda: generation.done)


def test_keep_waiting_clears_a_stall_until_it_stalls_again_and_cancel_ends_it(
    make_widget: MakeWidget, fault_server: FaultServer, shared: RunStore
) -> None:
    _stalling(fault_server, "t-keep")
    w = make_widget()
    w.base_url, w.api_key, w.stall_after = fault_server.url, KEY, 0.5
    generation = run_of(w, send(w, "generate", body=w.request_json))
    _wait_for(lambda: generation.stalled and w.tasks[-1]["stalled"] is True)
    reply = send(w, "keep-waiting", run=generation.id)
    assert reply["ok"]
    assert reply["stalled"] is False
    assert w.tasks[-1]["stalled"] is False
    assert _runs(shared)[0].state == "running"
    _wait_for(lambda: generation.stalled)  # nothing moved: stalled again
    send(w, "cancel", run=generation.id)
    _wait_for(lambda: generation.done)
    assert w.tasks[-1]["stalled"] is False
    assert _runs(shared)[0].state == "cancelled"
    unknown = send(w, "keep-waiting", run="run-none")
    assert not unknown["ok"]
    assert unknown["error"] == "that run is no longer listed in this widget"
    assert w.error == ""  # said in the reply, not in the run's error line


# -- pages of runs ----------------------------------------------------------------------------


def test_history_query_filters_pages_and_refuses_bad_values(
    make_widget: MakeWidget, shared: RunStore
) -> None:
    record_run(shared, ImageRequest(prompt="a red fox", aspect_ratio="16:9"))
    failed = record_run(shared, ImageRequest(prompt="a grey wolf"), end="failure")
    starred = record_run(shared, ImageRequest(prompt="a red panda", stylize=500))
    shared.star(starred.run_id, True)
    w = make_widget()
    reply = send(w, "history-query")
    assert (reply["ok"], reply["total"], reply["recording"]) == (True, 3, True)
    assert [r["prompt"] for r in reply["rows"]] == ["a red panda", "a grey wolf", "a red fox"]
    assert reply["rows"][0]["changed"]["stylize"] == 500
    assert [r["prompt"] for r in send(w, "history-query", text="red")["rows"]] == [
        "a red panda",
        "a red fox",
    ]
    assert [r["id"] for r in send(w, "history-query", starred=True)["rows"]] == [starred.run_id]
    assert [r["id"] for r in send(w, "history-query", failed=True)["rows"]] == [failed.run_id]
    assert send(w, "history-query", aspect_ratio="16:9")["total"] == 1
    page = send(w, "history-query", offset=1, limit=1)
    assert (page["total"], len(page["rows"]), page["offset"]) == (3, 1, 1)
    assert send(w, "history-query", limit=10**6)["limit"] == MAX_PAGE
    bad = send(w, "history-query", aspect_ratio="5:4")
    assert not bad["ok"]
    assert "aspect_ratio" in bad["error"]
    assert "16:9" in bad["error"]  # names what is allowed
    assert not send(w, "history-query", offset="2")["ok"]
    assert not send(w, "history-query", text=["red"])["ok"]
    assert w.error == ""


def test_history_get_shows_everything_and_leaves_the_controls_alone(
    make_widget: MakeWidget, shared: RunStore, image_server: ImageServer
) -> None:
    recorder = record_run(
        shared,
        ImageRequest(prompt="a heron", chaos=30, seed=42),
        outputs=image_server.images("t-heron"),
        task_id="t-heron",
        keep_images=True,
    )
    recorder.wait_images(WAIT)
    w = make_widget(prompt="what I am typing", stylize=700)
    before = (w.request_json, w.get_state())
    run = send(w, "history-get", run=recorder.run_id)["run"]
    assert (w.request_json, w.get_state()) == before
    assert (run["task_id"], run["state"], run["params"]["chaos"], run["seed_used"]) == (
        "t-heron",
        "success",
        30,
        42,
    )
    assert set(run["changed"]) == {"prompt", "chaos", "seed"}
    assert run["prompt_text"] == "a heron --chaos 30 --seed 42 --niji 7"
    assert run["events"][0]["state"] == "starting"
    assert len(run["images"]) == 4
    for image in run["images"]:
        assert image["thumb"].startswith("thumbs/")  # references, never paths or URLs
        assert image["file"].startswith("images/")
    assert send(w, "history-get", run="t-heron")["run"]["id"] == recorder.run_id
    missing = send(w, "history-get", run=999)
    assert not missing["ok"]
    assert "no run 999" in missing["error"]
    assert not send(w, "history-get", run=True)["ok"]


def test_history_thumbs_sends_the_stored_bytes_and_nothing_else(
    make_widget: MakeWidget, shared: RunStore, image_server: ImageServer
) -> None:
    recorder = record_run(
        shared, outputs=image_server.images("t-thumbs"), task_id="t-thumbs", keep_images=True
    )
    recorder.wait_images(WAIT)
    w = make_widget()
    refs = send(w, "history-query")["rows"][0]["thumbs"]
    ask = [*refs, "thumbs/none.webp", "../runs.sqlite3", "runs.sqlite3"]
    reply, buffers = custom_reply(w, "history-thumbs", refs=ask)
    assert reply["refs"] == refs
    assert reply["types"] == ["image/webp"] * 4
    assert reply["failed"] == ["thumbs/none.webp", "../runs.sqlite3", "runs.sqlite3"]
    assert buffers == [(shared.home / ref).read_bytes() for ref in refs]
    full = send(w, "history-get", run="t-thumbs")["run"]["images"][0]["file"]
    reply, buffers = custom_reply(w, "history-thumbs", refs=[full])
    assert reply["types"] == ["image/png"]
    assert buffers[0].startswith(b"\x89PNG")
    assert not send(w, "history-thumbs", refs=[f"thumbs/{i}.webp" for i in range(65)])["ok"]
    assert not send(w, "history-thumbs", refs=[f"images/{i}.png" for i in range(5)])["ok"]
    assert not send(w, "history-thumbs", refs="thumbs/x.webp")["ok"]


def custom_reply(w: Any, kind: str, **content: Any) -> tuple[dict[str, Any], list[bytes]]:
    reply = send(w, kind, **content)
    sent = custom_messages(w, f"{kind}-response")[-1]
    assert sent[0] == reply
    return reply, sent[1]


# -- using a run again --------------------------------------------------------------------------


def test_each_restore_action_has_invokeais_meaning_and_one_undo(
    make_widget: MakeWidget, shared: RunStore
) -> None:
    old = ImageRequest(
        prompt="a koi pond",
        negative_prompt="people",
        aspect_ratio="3:2",
        chaos=20,
        stylize=600,
        seed=1234,
    )
    run_id = record_run(shared, old).run_id
    w = make_widget(prompt="now", stylize=50, seed=-1, aspect_ratio="1:1")
    start = w.request.to_dict()

    reply = send(w, "history-restore", run=run_id, what="all")
    assert w.request.to_dict() == old.to_dict()  # the seed that was used, too
    assert reply["undo"] is True
    assert set(reply["changed"]) == {
        "prompt",
        "negative_prompt",
        "aspect_ratio",
        "chaos",
        "stylize",
        "seed",
    }
    assert reply["applied"].startswith("Used all of run ")
    send(w, "history-undo")
    assert w.request.to_dict() == start

    send(w, "history-restore", run=run_id, what="remix")  # all but the seed
    assert w.request.to_dict() == {**old.to_dict(), "seed": -1}
    send(w, "history-undo")

    send(w, "history-restore", run=run_id, what="prompt")
    assert w.request.to_dict() == {**start, "prompt": "a koi pond", "negative_prompt": "people"}
    send(w, "history-undo")

    reply = send(w, "history-restore", run=run_id, what="seed")
    assert w.request.to_dict() == {**start, "seed": 1234}
    assert reply["applied"] == f"Used the seed of run {_runs(shared)[0].task_id}: seed 1234."
    undo = send(w, "history-undo")
    assert (undo["ok"], undo["undo"]) == (True, False)
    assert w.request.to_dict() == start
    again = send(w, "history-undo")  # one undo
    assert (again["ok"], again["error"]) == (False, "there is no restore to undo")
    assert not send(w, "history-restore", run=run_id, what="everything")["ok"]
    assert w.request.to_dict() == start
    assert w.error == ""


def test_rerun_sends_the_runs_own_request_and_seed_without_touching_the_controls(
    make_widget: MakeWidget, sandbox: SandboxHandle, shared: RunStore
) -> None:
    old = ImageRequest(prompt="a paper crane", stylize=321, seed=77)
    run_id = record_run(shared, old).run_id
    w = make_widget(box=sandbox, prompt="something else")
    before = w.request_json
    reply = send(w, "history-rerun", run=run_id)
    generation = run_of(w, reply)
    generation.result(timeout=WAIT)
    assert w.request_json == before
    assert generation.request.to_dict() == old.to_dict()
    assert json.loads(sandbox.received_bodies()[-1]) == old.to_body()
    assert len(_runs(shared, origin="widget")) == 1  # recorded as a new run


def test_rerun_of_a_run_whose_seed_is_unknown_draws_one(
    make_widget: MakeWidget, sandbox: SandboxHandle, shared: RunStore
) -> None:
    run_id = record_run(shared, ImageRequest(prompt="a moth", seed=-1)).run_id
    w = make_widget(box=sandbox)
    generation = run_of(w, send(w, "history-rerun", run=run_id))
    generation.result(timeout=WAIT)
    assert generation.seed != -1
    assert generation.seed_random


def test_star_rate_and_delete_persist_in_the_store(
    make_widget: MakeWidget, shared: RunStore, image_server: ImageServer
) -> None:
    recorder = record_run(
        shared, outputs=image_server.images("t-marks"), task_id="t-marks", keep_images=True
    )
    kept = recorder.wait_images(WAIT)
    w = make_widget()
    assert send(w, "history-star", run=recorder.run_id, starred=True)["starred"] is True
    assert shared.get("t-marks").starred
    assert send(w, "history-rate", run=recorder.run_id, rating=4)["rating"] == 4
    assert shared.get("t-marks").rating == 4
    bad = send(w, "history-rate", run=recorder.run_id, rating=9)
    assert not bad["ok"]
    assert "0..5" in bad["error"]
    assert send(w, "history-star", run=recorder.run_id, starred=False)["starred"] is False
    running = record_run(shared, end="running")
    refused = send(w, "history-delete", run=running.run_id)
    assert not refused["ok"]
    assert "cancel it first" in refused["error"]
    assert send(w, "history-delete", run=recorder.run_id)["deleted"] is True
    with pytest.raises(KeyError):
        shared.get("t-marks")
    assert not any(Path(p).exists() for p in kept.files)
    assert not send(w, "history-delete", run=recorder.run_id)["ok"]


def test_history_diff_marks_the_fields_that_differ(
    make_widget: MakeWidget, shared: RunStore
) -> None:
    a = record_run(shared, ImageRequest(prompt="a lily", stylize=100, seed=5)).run_id
    b = record_run(shared, ImageRequest(prompt="a lily", stylize=750, raw=True, seed=5)).run_id
    w = make_widget()
    reply = send(w, "history-diff", a=a, b=b)
    rows = {r["name"]: r for r in reply["rows"]}
    assert {name for name, r in rows.items() if r["differs"]} == {"stylize", "raw"}
    assert (rows["stylize"]["a"], rows["stylize"]["b"], rows["stylize"]["label"]) == (
        100,
        750,
        "Stylize",
    )
    assert rows["prompt"]["differs"] is False
    assert (reply["a"]["id"], reply["b"]["id"]) == (a, b)
    fields = list(ImageRequest(prompt="x").to_dict())
    assert list(rows)[: len(fields)] == fields


# -- an image file's parameters ---------------------------------------------------------------


def _png(request: ImageRequest, task_id: str | None = "t-png", seed: int | None = None) -> bytes:
    return embed(make_image("png"), ImageParams(request, task_id=task_id, seed=seed, index=1))


def test_read_image_shows_the_diff_and_apply_image_restores_with_undo(
    make_widget: MakeWidget, shared: RunStore
) -> None:
    in_store = record_run(shared, ImageRequest(prompt="a snail"), task_id="t-png").run_id
    w = make_widget(prompt="a snail", chaos=0)
    before = w.request.to_dict()
    image = ImageRequest(prompt="a snail", chaos=45, aspect_ratio="4:3", seed=-1)
    payload = {"kind": "read-image", "id": "r1", "name": "snail.png"}
    w._on_custom_msg(w, payload, [memoryview(_png(image, seed=99))])
    reply = replies(w, "read-image-response")[-1]
    assert reply["ok"], reply
    assert (reply["name"], reply["task_id"], reply["known"]) == ("snail.png", "t-png", in_store)
    assert reply["size"] == [64, 48]
    differs = {r["name"]: (r["a"], r["b"]) for r in reply["rows"] if r["differs"]}
    assert differs == {"chaos": (0, 45), "aspect_ratio": ("1:1", "4:3"), "seed": (-1, 99)}
    assert w.request.to_dict() == before  # shown, not applied
    applied = send(w, "apply-image")
    assert applied["applied"].startswith("Used the image's parameters: ")
    assert (w.chaos, w.aspect_ratio, w.seed) == (45, "4:3", 99)
    assert not send(w, "apply-image")["ok"]  # applied once
    send(w, "history-undo")
    assert w.request.to_dict() == before


def test_read_image_says_what_is_wrong(make_widget: MakeWidget, shared: RunStore) -> None:
    w = make_widget()

    def read(data: bytes | None, name: str = "x.png") -> dict[str, Any]:
        msg = {"kind": "read-image", "id": f"r{len(w.comm.sent)}", "name": name}
        w._on_custom_msg(w, msg, [] if data is None else [data])
        return replies(w, "read-image-response")[-1]

    plain = read(make_image("png"), "plain.png")
    assert not plain["ok"]
    assert "carries no generation parameters" in plain["error"]
    assert "no bytes of x.png arrived" in read(None)["error"]
    huge = read(b"\0" * (MAX_IMAGE_BYTES + 1), "huge.png")
    assert huge["error"] == "huge.png is 33.6 MB: images up to 32 MB are read"
    assert w.error == ""


# -- lazy modules and news of changes ----------------------------------------------------------


def test_load_module_sends_the_built_module_its_css_and_settings(make_widget: MakeWidget) -> None:
    w = make_widget()
    reply = send(w, "load-module", name="history")
    assert reply["ok"]
    assert "export" in reply["code"]
    assert ".siray-hgallery" in reply["css"]
    assert reply["config"]["max_image_bytes"] == MAX_IMAGE_BYTES
    viewer = send(w, "load-module", name="viewer")
    assert (viewer["ok"], viewer["config"]) == (True, {})
    assert ".siray-viewer" in viewer["css"]
    for name in ("../widget", "History", "", None, "sweepish"):
        refused = send(w, "load-module", name=name)
        assert not refused["ok"]
    assert "not built" in send(w, "load-module", name="sweepish")["error"]
    assert w.error == ""  # said where the module was wanted, not in the run's error line


def test_load_module_names_a_missing_build(
    make_widget: MakeWidget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_widget_lazy, "LAZY_DIR", tmp_path)
    reply = send(make_widget(), "load-module", name="history")
    assert not reply["ok"]
    assert "npm run build" in reply["error"]


def test_open_history_panels_hear_of_runs_recorded_elsewhere(
    make_widget: MakeWidget, shared: RunStore, store_home: Path
) -> None:
    """Another process (here: another connection to the same file) records a run: each widget
    whose History tab asked for runs gets ``history-changed`` within a couple of seconds; a
    closed widget is forgotten."""
    w, other = make_widget(), make_widget()
    send(w, "history-query")
    send(other, "history-query")
    other.close()
    with RunStore(store_home) as elsewhere:
        record_run(elsewhere, ImageRequest(prompt="from the command line"))
    _wait_for(lambda: bool(replies(w, "history-changed")), timeout=5)
    assert send(w, "history-query")["rows"][0]["prompt"] == "from the command line"
    _wait_for(lambda: all(p._widget is not other for p in list(WATCH._panels)), timeout=5)


def test_history_changed_follows_this_kernels_own_runs(
    make_widget: MakeWidget, sandbox: SandboxHandle, shared: RunStore
) -> None:
    w = make_widget(box=sandbox)
    send(w, "history-query")

    async def main() -> None:  # under a running loop, as in a kernel
        count = len(replies(w, "history-changed"))
        await run_of(w, send(w, "generate", body=w.request_json))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(replies(w, "history-changed")) == count:
            assert loop.time() < deadline, "no history-changed after a run"
            await asyncio.sleep(0.05)

    asyncio.run(main())
