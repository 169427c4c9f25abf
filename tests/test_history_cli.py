"""``siray-widgets generate`` records its runs; ``siray-widgets history ...`` reads and tidies
them. Run as subprocesses, the way users run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.store_fixtures import ImageServer, record_run

from siray_widgets import History, read_image_params
from siray_widgets.metadata import read_image_metadata
from siray_widgets.schema import ImageRequest
from siray_widgets.store import RunStore

CLI = str(Path(sys.executable).with_name("siray-widgets"))


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SIRAY_API_KEY", "SIRAY_BASE_URL")}
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "SIRAY_SANDBOX_DURATION": "0.3", "SIRAY_WIDGETS_HOME": str(home), **env},
    )


def test_generate_is_recorded_and_its_downloads_carry_their_parameters(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = run(
        home,
        "generate",
        "a fox in the snow --ar 16:9 --s 250",
        "--seed",
        "99",
        "--download",
        str(tmp_path / "dl"),
    )
    assert out.returncode == 0, out.stderr
    assert "history: kept 4 image(s) in" in out.stderr
    task_id = next(
        line.removeprefix("task id: ") for line in out.stdout.splitlines() if "task id" in line
    )
    history = History(home)
    run_ = history.get(task_id)
    expected = ImageRequest(prompt="a fox in the snow", aspect_ratio="16:9", stylize=250, seed=99)
    assert run_.origin == "cli"
    assert run_.source == "siray-widgets cli"
    assert run_.state == "success"
    assert run_.request == expected
    assert run_.images_state == "done"
    assert len(run_.files) == 4
    assert "IN_PROGRESS" in [e.status for e in run_.events]
    for path in sorted((tmp_path / "dl").iterdir()):
        assert read_image_params(path) == expected
        assert read_image_metadata(path).task_id == task_id
    assert history.ledger.day().tasks == 1


def test_a_failed_generate_is_recorded_too(tmp_path: Path, make_sandbox: object) -> None:
    box = make_sandbox(failure_share=1.0)  # type: ignore[operator]
    home = tmp_path / "home"
    out = run(home, "generate", "a fox", SIRAY_BASE_URL=box.base_url, SIRAY_API_KEY="k")
    assert out.returncode == 1
    (only,) = History(home).list()
    assert only.state == "failure"
    assert only.fail_reason


def test_an_unusable_store_does_not_stop_generate(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = run(blocker, "generate", "a fox")
    assert out.returncode == 0, out.stderr
    assert "warning: the run is not recorded" in out.stderr
    assert "SUCCESS" in out.stderr


@pytest.fixture
def filled(tmp_path: Path, image_server: ImageServer) -> Path:
    home = tmp_path / "filled"
    with RunStore(home) as store:
        url = image_server.serve_image("/c.png")
        record_run(
            store,
            ImageRequest(prompt="a red fox", aspect_ratio="16:9", stylize=250),
            task_id="fox",
            outputs=[url],
            keep_images=True,
        ).wait_images(30)
        record_run(store, ImageRequest(prompt="an owl", chaos=40), task_id="owl", end="failure")
        record_run(
            store,
            ImageRequest(prompt="a city <b>", aspect_ratio="16:9"),
            task_id="city",
            outputs=[url],
            keep_images=True,
        ).wait_images(30)
        store.star("fox")
        store.add_tags("city", ["poster"])
    return home


def test_list_and_its_filters(filled: Path) -> None:
    out = run(filled, "history", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["city", "owl", "fox"]
    assert "3 of 3 run(s)" in out.stderr
    out = run(filled, "history", "list", "--json", "--where", "aspect_ratio=16:9", "--starred")
    rows = json.loads(out.stdout)
    assert [r["task_id"] for r in rows] == ["fox"]
    assert Path(rows[0]["thumbs"][0]).is_file()
    assert rows[0]["changed"] == {"aspect_ratio": "16:9", "stylize": 250}
    out = run(filled, "history", "list", "--json", "--status", "failed")
    assert [r["task_id"] for r in json.loads(out.stdout)] == ["owl"]
    out = run(filled, "history", "list", "--json", "--where", "chaos=10..50")
    assert [r["task_id"] for r in json.loads(out.stdout)] == ["owl"]
    out = run(filled, "history", "list", "--json", "--tag", "poster", "--since", "1h")
    assert [r["task_id"] for r in json.loads(out.stdout)] == ["city"]
    out = run(filled, "history", "list", "red", "--json")
    assert [r["task_id"] for r in json.loads(out.stdout)] == ["fox"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["list", "--status", "meh"], "unknown status 'meh'"),
        (["list", "--since", "someday"], "is not a time"),
        (["list", "--where", "stylize"], "write FIELD=VALUE"),
        (["list", "--where", "stylize=9999"], "out of range"),
        (["purge", "--older-than", "soon"], "write an age"),
        (["purge", "--max-size", "lots"], "write a size"),
    ],
)
def test_bad_filters_are_one_line_errors(filled: Path, args: list[str], words: str) -> None:
    out = run(filled, "history", *args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert words in out.stderr.strip().splitlines()[-1]


def test_show(filled: Path) -> None:
    out = run(filled, "history", "show", "owl")
    assert out.returncode == 0, out.stderr
    assert "state       failure (API status FAILURE)" in out.stdout
    assert "fail reason moderation: blocked" in out.stdout
    assert '"chaos": 40' in out.stdout
    out = run(filled, "history", "show", "fox", "--json")
    data = json.loads(out.stdout)
    assert data["starred"] is True
    assert data["images"][0]["path"].endswith("fox-1.png")
    out = run(filled, "history", "show", "nope")
    assert out.returncode == 1
    assert "no run 'nope'" in out.stderr


def test_export_html_retry_and_purge(filled: Path, tmp_path: Path) -> None:
    out = run(filled, "history", "export", str(tmp_path / "exp"), "--where", "aspect_ratio=16:9")
    assert out.returncode == 0, out.stderr
    assert "exported 2 image(s) of 2 run(s)" in out.stdout
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [
        "city-1.png",
        "fox-1.png",
        "manifest.csv",
        "manifest.json",
    ]
    out = run(filled, "history", "html", str(tmp_path / "h.html"))
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "h.html").read_text()
    assert "a city &lt;b&gt;" in page
    out = run(filled, "history", "retry")
    assert out.returncode == 0, out.stderr
    assert "0 of 0 run(s)" in out.stdout
    out = run(filled, "history", "purge", "--failed", "--dry-run")
    assert "would forget 1 run(s)" in out.stdout
    out = run(filled, "history", "purge", "--max-runs", "1")
    assert out.returncode == 0, out.stderr
    assert "forgot 2 run(s)" in out.stdout
    assert "1 run(s)" in out.stdout
    assert [r.task_id for r in History(filled).list()] == ["fox"]  # starred: kept


def test_history_alone_prints_its_help(filled: Path) -> None:
    out = run(filled, "history")
    assert out.returncode == 2
    for word in ("list", "show", "export", "html", "purge", "retry"):
        assert word in out.stderr


def test_a_project_store_by_option(tmp_path: Path) -> None:
    with RunStore(tmp_path / "project") as store:
        record_run(store, task_id="here")
    out = run(tmp_path / "elsewhere", "history", "--store", str(tmp_path / "project"), "list")
    assert out.returncode == 0, out.stderr
    assert "here" in out.stdout
