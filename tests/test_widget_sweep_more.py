"""The Sweep tab's other ways in (docs/widget-contract.md § Sweep): a cell's images at full
size for the viewer (``sweep-images``), a prompt file read in the page and parsed here
(``batch_format``), and a contact sheet dropped on the widget (``sweep-sheet``).

Real sandbox servers over HTTP, a real run store in a temp folder, a widget with a recording
comm (no kernel); tests/test_browser_sweep_more.py drives the same messages from the page.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.widget_fixtures import WAIT, MakeWidget, custom_messages, replies, send

from siray_widgets import session
from siray_widgets._widget_sweep import MAX_BATCH_CHARS
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.session import SessionBudget
from siray_widgets.widget import ImagineWidget

pytestmark = pytest.mark.usefixtures("no_siray_env")


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> SessionBudget:
    fresh = SessionBudget()
    monkeypatch.setattr(session, "_budget", fresh)
    return fresh


def send_bytes(w: ImagineWidget, kind: str, data: bytes, **content: Any) -> dict[str, Any]:
    """A message with one binary buffer (a dropped file), as the page sends it."""
    msg_id = f"m{len(w.comm.sent)}"
    w._on_custom_msg(w, {"kind": kind, "id": msg_id, **content}, [memoryview(data)])
    reply = replies(w, f"{kind}-response")[-1]
    assert reply["id"] == msg_id
    return reply


def finished(w: ImagineWidget, sweep_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        updates = [u for u in replies(w, "sweep-update") if u["sweep"] == sweep_id]
        if updates and updates[-1]["state"] == "done":
            return
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.02)


def test_a_cells_images_come_at_full_size_as_bytes_never_paths(
    make_widget: MakeWidget, sandbox: SandboxHandle, store_home: Path, budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a copper kettle")
    sweep_id = send(w, "sweep-run", form={"x": {"axis": "chaos", "values": "0, 40"}})["sweep"]["id"]
    finished(w, sweep_id)
    run = w._sweeps._sweep  # type: ignore[union-attr]
    run.wait_images()  # the store's kept copies (before that, the downloaded bytes are sent)
    reply = send(w, "sweep-images", sweep=sweep_id, cell=1)
    assert reply["ok"], reply
    content, buffers = custom_messages(w, "sweep-images-response")[-1]
    assert [i["image"] for i in content["items"]] == [1, 2, 3, 4]
    assert {i["type"] for i in content["items"]} == {"image/png"}
    assert content["describe"] == "X chaos=40"
    assert [bytes(b) for b in buffers] == run.images(1)  # the kept images, whole
    from PIL import Image

    sizes = {Image.open(io.BytesIO(bytes(b))).size for b in buffers}
    assert min(min(s) for s in sizes) > 256  # full size: thumbnails are at most 256 px
    assert str(store_home) not in json.dumps(content)
    assert send(w, "sweep-images", sweep=sweep_id, cell=9)["ok"] is False
    assert send(w, "sweep-images", sweep="sweep-0", cell=0)["ok"] is False


def test_a_prompt_file_is_parsed_here_with_the_batch_rules(
    make_widget: MakeWidget, sandbox: SandboxHandle, budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, aspect_ratio="16:9")
    csv = 'prompt,stylize,Aspect ratio\na fox in snow,50,1:1\n"a heron, at dawn",750,\n'
    form = {"batch": csv, "batch_format": "csv", "batch_name": "list.csv"}
    preview = send(w, "sweep-preview", form=form)["preview"]
    assert [(a["slot"], a["kind"]) for a in preview["axes"]] == [("y", "prompt")]
    assert preview["batch"] == {"rows": 2, "columns": ["prompt", "stylize", "aspect_ratio"]}
    assert preview["tasks"] == 2
    # The rows set their fields: run it and look at what each cell sent.
    sweep_id = send(w, "sweep-run", form=form)["sweep"]["id"]
    finished(w, sweep_id)
    bodies = [send(w, "sweep-cell", sweep=sweep_id, cell=i)["body"] for i in (0, 1)]
    assert [(b["prompt"], b["stylize"], b["aspect_ratio"]) for b in bodies] == [
        ("a fox in snow", 50, "1:1"),
        ("a heron, at dawn", 750, "16:9"),
    ]
    # The same text as plain text: one prompt per line (the header is a prompt too).
    text = send(w, "sweep-preview", form={**form, "batch_format": "text", "batch_name": "a.txt"})
    assert text["preview"]["batch"] == {"rows": 3, "columns": []}
    # Errors name the file and the column or line.
    bad_column = send(w, "sweep-preview", form={**form, "batch": "prompt,colour\na,red\n"})
    assert bad_column["ok"] is False
    assert "list.csv" in bad_column["error"]
    assert "'colour'" in bad_column["error"]
    no_prompt = send(w, "sweep-preview", form={**form, "batch": "prompt,stylize\na,1\n,2\n"})
    assert "line 3 has no prompt" in no_prompt["error"]
    bad_value = send(w, "sweep-preview", form={**form, "batch": "prompt,stylize\na,5000\n"})
    assert bad_value["ok"] is False
    assert "5000" in bad_value["error"]
    # Too long: refused as a whole, never cut short.
    big = send(w, "sweep-preview", form={"batch": "a\n" * (MAX_BATCH_CHARS // 2 + 1)})
    assert big["ok"] is False
    assert "at most 1,048,576" in big["error"]
    wrong = send(w, "sweep-preview", form={**form, "batch_format": "xlsx"})
    assert "batch_format" in wrong["error"]


def test_a_contact_sheet_opens_its_sweep_and_running_it_reuses_the_cells(
    make_widget: MakeWidget, sandbox: SandboxHandle, store_home: Path, budget: SessionBudget
) -> None:
    w = make_widget(box=sandbox, prompt="a lighthouse at night", stylize=300)
    form = {
        "x": {"axis": "chaos", "values": "0, 30"},
        "z": {"axis": "aspect_ratio", "values": "1:1, 16:9"},
        "presets": ["Raw"],
    }
    sweep_id = send(w, "sweep-run", form=form)["sweep"]["id"]
    finished(w, sweep_id)
    run = w._sweeps._sweep  # type: ignore[union-attr]
    sheet = io.BytesIO()
    run.contact_sheet(tile=48).save(sheet, "PNG")  # pixels only: no sweep inside
    plain = sheet.getvalue()
    path = run.contact_sheet(store_home / "sheet.png", tile=48)
    data = path.read_bytes()

    v = make_widget(box=sandbox, prompt="something else", stylize=0)
    opened = send_bytes(v, "sweep-sheet", data, name="sheet.png")
    assert opened["ok"], opened
    assert opened["name"] == "sheet.png"
    assert opened["form"] == {
        "seed": "shared",
        "presets": ["Raw"],
        "x": {"axis": "chaos", "values": "0, 30"},
        "z": {"axis": "aspect_ratio", "values": "1:1, 16:9"},
    }
    preview = opened["preview"]
    assert preview["key"] == run.definition.key
    assert preview["shape"] == {"columns": 2, "rows": 1, "pages": 2}
    assert (preview["plan"]["reuse"], preview["plan"]["send"]) == (4, 0)
    # The controls hold the sheet's request (one undo puts them back).
    assert (v.prompt, v.stylize, v.seed) == ("a lighthouse at night", 300, run.definition.seed)
    assert opened["undo"] is True
    assert "sheet.png" in opened["applied"]
    # The page sends the sheet's id while its form is untouched: the sweep as saved.
    again = send(v, "sweep-preview", form={"sheet": opened["sheet"]})["preview"]
    assert again["key"] == run.definition.key
    started = send(v, "sweep-run", form={"sheet": opened["sheet"]}, key=again["key"])
    assert started["ok"], started
    assert {c["origin"] for c in started["sweep"]["cells"]} == {"earlier"}
    assert budget.tasks == 4  # the first run only
    # The filled form, sent as typed, is the same sweep too.
    typed = send(v, "sweep-preview", form=opened["form"])["preview"]
    assert typed["key"] == run.definition.key
    assert send(v, "sweep-preview", form={"sheet": "nope"})["ok"] is False
    undone = send(v, "history-undo")
    assert undone["ok"]
    assert (v.prompt, v.stylize) == ("something else", 0)

    # A PNG with an image's parameters is for the History tab; one with neither says so.
    image = run.images(0)[0]
    assert send_bytes(v, "sweep-sheet", image, name="one.png") == {
        **replies(v, "sweep-sheet-response")[-1],
        "ok": True,
        "sheet": False,
        "image": True,
    }
    neither = send_bytes(v, "sweep-sheet", plain, name="pixels.png")
    assert neither["ok"] is False
    assert "pixels.png holds neither a sweep" in neither["error"]
    assert "nor an image's parameters" in neither["error"]
    assert send_bytes(v, "sweep-sheet", b"", name="x.png")["ok"] is False
