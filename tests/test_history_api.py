"""``siray_widgets.History``: finding, restoring, comparing and marking runs."""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from fixtures.fault_server import (
    CREATE,
    TEST_KEY,
    FaultServer,
    Reply,
    created,
    task_path,
    task_reply,
)
from fixtures.store_fixtures import ImageServer, make_image, record_run

from siray_widgets import History
from siray_widgets.client import SirayClient
from siray_widgets.errors import ValidationError
from siray_widgets.schema import ImageRequest
from siray_widgets.store import RunStore

FOX = ImageRequest(prompt="a red fox in fresh snow", aspect_ratio="16:9", stylize=250, seed=11)
OWL = ImageRequest(
    prompt="an owl at night", negative_prompt="daylight", aspect_ratio="2:3", chaos=40, quality="2"
)
CITY = ImageRequest(prompt="a neon city, rain", aspect_ratio="16:9", raw=True, tile=True, seed=7)


def age(store: RunStore, task_id: str, days: float) -> None:
    """Move a run back in time (as if recorded ``days`` ago)."""
    with sqlite3.connect(store.db_path) as raw:
        raw.execute(
            "UPDATE runs SET created_at = ? WHERE task_id = ?",
            (time.time() - days * 86400, task_id),
        )


@pytest.fixture
def history(store: RunStore) -> History:
    record_run(store, FOX, task_id="fox")
    record_run(store, OWL, task_id="owl", end="failure")
    record_run(store, CITY, task_id="city", origin="cli")
    age(store, "fox", 10)
    age(store, "owl", 3)
    h = History(store)
    h.star("city")
    h.tag("fox", "animals", "winter")
    h.tag("owl", "animals")
    h.rate("fox", 4)
    h.note("city", "Use for the poster")
    return h


def ids(runs: list) -> list[str]:  # type: ignore[type-arg]
    return [r.task_id for r in runs]


def test_list_is_newest_first_and_filters_combine(history: History) -> None:
    assert ids(history.list()) == ["city", "owl", "fox"]
    assert ids(history.list(order="oldest")) == ["fox", "owl", "city"]
    assert ids(history.list("fox")) == ["fox"]
    assert ids(history.list("FOX snow")) == ["fox"]  # every word, any case
    assert ids(history.list('"fresh snow"')) == ["fox"]
    assert ids(history.list("daylight")) == ["owl"]  # the negative prompt too
    assert ids(history.list("poster")) == ["city"]  # and the note
    assert ids(history.list("winter")) == ["fox"]  # and the tags
    assert ids(history.list("ci")) == ["city"]  # and the task id
    assert ids(history.list(status="success")) == ["city", "fox"]
    assert ids(history.list(status="failed")) == ["owl"]
    assert ids(history.list(status="FAILURE")) == ["owl"]  # the API's words work too
    assert ids(history.list(starred=True)) == ["city"]
    assert ids(history.list(tag="animals")) == ["owl", "fox"]
    assert ids(history.list(tag=["animals", "winter"])) == ["fox"]
    assert ids(history.list(aspect_ratio="16:9")) == ["city", "fox"]
    assert ids(history.list(aspect_ratio=["2:3", "1:1"])) == ["owl"]
    assert ids(history.list(stylize=(200, 300))) == ["fox"]
    assert ids(history.list(chaos=(10, None))) == ["owl"]
    assert ids(history.list(raw=True, tile=True)) == ["city"]
    assert ids(history.list(quality=2)) == ["owl"]  # 2 means "2", as everywhere
    assert ids(history.list(origin="cli")) == ["city"]
    assert ids(history.list(min_rating=3)) == ["fox"]
    assert ids(history.list(since="5d")) == ["city", "owl"]
    assert ids(history.list(until="2d")) == ["owl", "fox"]
    assert ids(history.list(since=dt.date.today())) == ["city"]
    assert ids(history.list(until=dt.date.today() - dt.timedelta(days=5))) == ["fox"]
    assert ids(history.list("animals", status="success", aspect_ratio="16:9")) == ["fox"]
    assert ids(history.list(limit=1, offset=1)) == ["owl"]
    assert history.count(status="success") == 2
    assert len(history) == 3
    assert "fox" in history
    assert "nope" not in history


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"status": "done-ish"}, ValueError, "unknown status 'done-ish'"),
        ({"since": "last tuesday"}, ValueError, "is not a time"),
        ({"colour": "red"}, TypeError, "unknown filter 'colour'"),
        ({"stylize": 5000}, ValidationError, "stylize=5000 is out of range"),
        ({"origin": "phone"}, ValueError, "unknown origin"),
    ],
)
def test_bad_filters_say_what_is_wrong(
    history: History, kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        history.list(**kwargs)  # type: ignore[arg-type]


def test_get_returns_everything_and_says_when_unknown(history: History) -> None:
    run = history.get("owl")
    assert run.state == "failure"
    assert run.fail_reason == "moderation: blocked"
    assert run.request == OWL
    assert [e.state for e in run.events] == ["starting", "running", "running", "running", "failure"]
    with pytest.raises(KeyError, match="no run 'missing' in the history"):
        history.get("missing")


def test_query_gives_compact_rows_for_a_gallery(history: History) -> None:
    page = history.query(limit=2)
    assert page.total == 3
    assert [row["task_id"] for row in page.rows] == ["city", "owl"]
    city = page.rows[0]
    assert city["changed"] == {"aspect_ratio": "16:9", "seed": 7, "raw": True, "tile": True}
    assert city["starred"] is True
    assert city["note"] == "Use for the poster"
    assert city["origin"] == "cli"
    assert isinstance(city["created_at"], int)  # epoch milliseconds, for JavaScript
    assert history.query("animals").total == 2
    assert page.to_json()["total"] == 3


def test_restore_with_invokeai_meanings(history: History) -> None:
    fox = history.get("fox")
    assert fox.seed_used == 11
    assert history.restore("fox") == FOX  # all, with the seed that was used
    assert history.restore(fox, "remix") == FOX.replace(seed=-1)
    current = ImageRequest(prompt="something else", chaos=70, seed=99, aspect_ratio="1:1")
    assert history.restore("fox", "remix", base=current) == FOX.replace(seed=99)
    assert history.restore("owl", "prompt", base=current) == current.replace(
        prompt=OWL.prompt, negative_prompt="daylight"
    )
    assert history.restore("fox", "seed", base=current) == current.replace(seed=11)
    assert history.restore("fox", "seed") == ImageRequest(prompt=FOX.prompt, seed=11)
    with pytest.raises(ValueError, match="choose one of all, remix, prompt, seed"):
        history.restore("fox", "everything")  # type: ignore[arg-type]


def test_restore_all_uses_the_seed_the_service_reports(store: RunStore) -> None:
    recorder = store.record(FOX.replace(seed=-1), keep_images=False)
    recorder.submitted("t-random")
    from fixtures.store_fixtures import task

    recorder.finished(task("t-random", "SUCCESS", 100, [], seed=31337))
    history = History(store)
    assert history.get("t-random").seed_used == 31337
    assert history.restore("t-random").seed == 31337
    assert history.get("t-random").request.seed == -1  # as sent


def test_diff_names_the_fields_that_differ(history: History) -> None:
    assert history.diff("fox", "city") == {
        "prompt": (FOX.prompt, CITY.prompt),
        "stylize": (250, 100),
        "seed": (11, 7),
        "raw": (False, True),
        "tile": (False, True),
        "seed_used": (11, 7),
    }
    assert history.diff("fox", "fox") == {}


def test_marks_and_delete(history: History, image_server: ImageServer) -> None:
    history.unstar("city")
    history.rate("city", 5)
    history.untag("fox", "winter")
    history.note("city", "")
    city = history.get("city")
    assert (city.starred, city.rating, city.note) == (False, 5, "")
    assert history.get("fox").tags == ("animals",)
    assert history.tags() == {"animals": 2}
    assert ids(history.list("poster")) == []  # the search text follows the note
    with pytest.raises(ValueError, match=r"0\.\.5"):
        history.rate("city", 6)
    with pytest.raises(ValueError, match="must not be empty"):
        history.tag("city", "  ")
    url = image_server.serve_image("/d.png")
    kept = record_run(history.store, outputs=[url], keep_images=True).wait_images(30)
    files = [Path(p) for p in (kept.images[0].path, kept.images[0].thumb) if p]
    assert all(f.exists() for f in files)
    assert history.delete(kept, "owl") == 2
    assert not any(f.exists() for f in files)
    assert ids(history.list()) == ["city", "fox"]


def test_to_pandas_has_a_column_per_field(history: History) -> None:
    frame = history.to_pandas()
    assert list(frame["task_id"]) == ["city", "owl", "fox"]
    for column in ("prompt", "negative_prompt", "aspect_ratio", "stylize", "seed", "raw", "tile"):
        assert column in frame.columns
    assert frame.loc[frame.task_id == "fox", "stylize"].item() == 250
    assert str(frame["created_at"].dtype).startswith("datetime64")
    only = history.to_pandas(status="failed")
    assert list(only["task_id"]) == ["owl"]


def test_to_pandas_without_pandas_says_how_to_get_it(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        history.to_pandas()


def test_resume_follows_an_interrupted_task_to_its_end(
    fault_server: FaultServer, store: RunStore
) -> None:
    # The image is on the API's own server (as the sandbox serves its own): the store keeps it.
    fault_server.always("GET", "/r.png", Reply(200, make_image(), {"Content-Type": "image/png"}))
    url = fault_server.url + "/r.png"
    fault_server.on("POST", CREATE, created("t-resume"))
    fault_server.always("GET", task_path("t-resume"), task_reply("t-resume", "IN_PROGRESS", "30%"))
    recorder = record_run(store, task_id="t-resume", end="running")
    recorder.interrupted("the kernel died")
    assert store.get("t-resume").state == "interrupted"
    fault_server.always(
        "GET", task_path("t-resume"), task_reply("t-resume", "SUCCESS", outputs=[url])
    )
    from fixtures.fault_server import tiny_poll

    with SirayClient(
        api_key=TEST_KEY, base_url=fault_server.url, poll=tiny_poll(), hooks=False
    ) as client:
        run = History(store).resume("t-resume", client)
    assert run.state == "success"
    assert run.images_state == "done"
    states = [e.state for e in run.events]
    assert states[states.index("interrupted") + 1] == "running"  # taken over
    assert states[-1] == "success"
    assert store.count() == 1


def test_a_project_store_is_separate(tmp_path: Path, store: RunStore) -> None:
    record_run(store, task_id="global")
    project = History(tmp_path / "project")
    record_run(project.store, task_id="local")
    assert ids(project.list()) == ["local"]
    assert ids(History(store).list()) == ["global"]
    assert project.home == (tmp_path / "project").resolve()
    assert repr(project) == f"History(1 runs in {str(project.home)!r})"


def test_the_default_history_is_the_environment_folder(store_home: Path) -> None:
    assert History().home == store_home.resolve()


def test_size_bounds_forget_the_oldest_unstarred(
    image_server: ImageServer, store: RunStore
) -> None:
    urls = [image_server.serve_image(f"/s{i}.png") for i in range(4)]
    runs = [record_run(store, outputs=[u], keep_images=True).wait_images(30) for u in urls]
    per_run = runs[0].bytes
    assert per_run > 0
    store.star(runs[0])
    assert History(store).set_limits(max_bytes=int(per_run * 2.5)) == 2
    assert History(store).size()["image_bytes"] == 2 * per_run
    left = [r.task_id for r in store.runs()]
    assert left == [runs[3].task_id, runs[0].task_id]  # the starred one stays, however old
    assert not Path(runs[1].images[0].path or "").exists()
    store.set_limits(max_bytes=None, max_runs=1)
    assert [r.task_id for r in store.runs()] == [runs[0].task_id]  # starred: never forgotten
    assert store.limits().max_runs == 1
    with RunStore(store.home) as again:  # the bounds are saved in the store
        assert again.limits().max_runs == 1


def test_purge_forgets_what_it_is_told_and_tidies(history: History) -> None:
    store = history.store
    stray = store.home / "images" / "left-over.png"
    stray.write_bytes(b"x")
    report = history.purge(failed=True, dry_run=True)
    assert (report.runs, report.orphan_files, report.dry_run) == (1, 1, True)
    assert history.count() == 3
    report = history.purge(failed=True)
    assert (report.runs, report.orphan_files) == (1, 1)
    assert not stray.exists()
    assert ids(history.list()) == ["city", "fox"]
    assert history.purge(older_than=5 * 86400).runs == 1  # fox, 10 days old
    assert history.purge(everything=True).runs == 0  # city is starred
    assert history.purge(everything=True, include_starred=True).runs == 1
    assert len(history) == 0
