"""Export: images plus manifests, read back field for field; the static HTML page."""

from __future__ import annotations

import csv
import html.parser
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.store_fixtures import ImageServer, record_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siray_widgets import History, read_image_params
from siray_widgets.metadata import read_image_metadata
from siray_widgets.schema import FIELD_NAMES, FIELDS, FIELDS_BY_NAME, Field, ImageRequest
from siray_widgets.store import RunStore
from siray_widgets.store.export import CSV_COLUMNS, csv_unescape

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


def values(f: Field) -> st.SearchStrategy[Any]:
    if f.enum is not None:
        return st.sampled_from(f.enum)
    if f.type == "integer":
        assert f.minimum is not None
        assert f.maximum is not None
        return st.integers(f.minimum, f.maximum)
    if f.type == "boolean":
        return st.booleans()
    if f.required:
        return TEXT.filter(lambda s: s.strip() != "")
    return TEXT


requests = st.fixed_dictionaries({f.name: values(f) for f in FIELDS if f.name != "model"}).map(
    lambda d: ImageRequest(**d)
)
marks = st.fixed_dictionaries(
    {
        "starred": st.booleans(),
        "rating": st.integers(0, 5),
        "note": TEXT,
        "tags": st.lists(
            st.text(alphabet="abcxyz ,=+-@", min_size=1, max_size=12).filter(lambda t: t.strip()),
            max_size=3,
        ),
    }
)


@pytest.fixture(scope="module")
def shared_images() -> Iterator[ImageServer]:
    server = ImageServer()
    try:
        yield server
    finally:
        server.close()


def from_csv(column: str, text: str) -> Any:
    """A manifest.csv cell back to the value it holds."""
    text = csv_unescape(column, text)
    spec = FIELDS_BY_NAME.get(column)
    if spec is not None and spec.type == "integer":
        return int(text)
    if spec is not None and spec.type == "boolean":
        return {"true": True, "false": False}[text]
    return text


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    runs=st.lists(
        st.tuples(requests, marks, st.sampled_from(["png", "jpeg", "webp"])), min_size=1, max_size=3
    )
)
def test_export_and_read_back_every_field(
    shared_images: ImageServer, runs: list[tuple[ImageRequest, dict[str, Any], str]]
) -> None:
    with tempfile.TemporaryDirectory() as scratch, RunStore(Path(scratch) / "home") as store:
        history = History(store)
        recorded = []
        for n, (request, mark, kind) in enumerate(runs):
            urls = [shared_images.serve_image(f"/h/{kind}/{i}.{kind}", kind) for i in (1, 2)]
            run = record_run(store, request, outputs=urls, keep_images=True).wait_images(30)
            assert run.images_state == "done", run.images_error
            history.star(run, mark["starred"])
            history.rate(run, mark["rating"])
            history.note(run, mark["note"])
            history.tag(run, *mark["tags"])
            recorded.append((history.get(run.id), kind, n))
        result = history.export(None, Path(scratch) / "out")
        assert len(result.files) == 2 * len(runs)
        manifest = json.loads(result.manifest_json.read_text("utf-8"))
        with result.manifest_csv.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == list(CSV_COLUMNS)
        assert len(rows) == len(manifest["images"]) == 2 * len(runs)
        by_task = {r.task_id: r for r, _, _ in recorded}
        for row, data in zip(rows, manifest["images"], strict=True):
            run = by_task[row["task_id"]]
            path = result.folder / row["file"]
            assert path.exists()
            assert data["file"] == row["file"]
            # The image itself carries the request, the task and the seed.
            meta = read_image_metadata(path)
            assert meta.request == run.request
            assert (meta.task_id, meta.seed, meta.index) == (
                run.task_id,
                run.seed_used,
                int(row["index"]),
            )
            used = run.seed_used if run.seed_used is not None else run.request.seed
            assert read_image_params(path) == run.request.replace(seed=used)
            # Every request field in its own column, in CSV and JSON alike.
            for name in FIELD_NAMES:
                assert from_csv(name, row[name]) == run.params[name], name
                assert data[name] == run.params[name], name
            assert row["state"] == data["state"] == run.state
            assert row["status"] == data["status"] == run.status
            assert row["created_at"] == data["created_at"] == run.created_at.isoformat()
            assert row["finished_at"] == run.finished_at.isoformat()  # type: ignore[union-attr]
            assert row["seed_used"] == ("" if run.seed_used is None else str(run.seed_used))
            assert from_csv("starred", row["starred"]) if run.starred else row["starred"] == "false"
            assert int(row["rating"]) == run.rating
            assert csv_unescape("note", row["note"]) == run.note
            assert json.loads(csv_unescape("tags", row["tags"])) == list(run.tags) == data["tags"]
            assert row["url"] in run.outputs
        assert [r["task_id"] for r in manifest["runs"]] == [r.task_id for r in store.runs()]


def test_an_image_that_could_not_be_kept_is_listed_with_the_reason(
    image_server: ImageServer, store: RunStore, tmp_path: Path
) -> None:
    good = image_server.serve_image("/g.png")
    run = record_run(store, outputs=[good, image_server.url + "/gone.png"], keep_images=True)
    run.wait_images(30)
    result = History(store).export([run.task_id or ""], tmp_path / "out")
    assert result.missing == 1
    rows = json.loads(result.manifest_json.read_text())["images"]
    assert rows[0]["file"] == f"{run.task_id}-1.png"
    assert rows[1]["file"] == ""
    assert "not exported" in rows[1]["error"]
    assert str(result).endswith("1 image(s) unavailable")


def test_formula_like_text_is_guarded_in_the_csv_only(
    store: RunStore, tmp_path: Path, image_server: ImageServer
) -> None:
    url = image_server.serve_image("/f.png")
    request = ImageRequest(prompt='=HYPERLINK("http://evil")', negative_prompt="-x")
    run = record_run(store, request, outputs=[url], keep_images=True).wait_images(30)
    result = History(store).export([run], tmp_path / "out")
    text = result.manifest_csv.read_text("utf-8-sig")
    assert "'=HYPERLINK" in text
    assert ",'-x," in text
    assert json.loads(result.manifest_json.read_text())["images"][0]["prompt"] == request.prompt


def test_export_refuses_the_data_folder_itself(store: RunStore) -> None:
    with pytest.raises(ValueError, match="outside the data folder"):
        History(store).export(None, store.home / "export")


# --- the HTML page -----------------------------------------------------------------------


class _Collect(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.articles: list[dict[str, str | None]] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "article":
            self.articles.append(dict(attrs))
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def test_the_html_page_escapes_every_text_and_inlines_thumbnails(
    image_server: ImageServer, store: RunStore, tmp_path: Path
) -> None:
    url = image_server.serve_image("/p.png")
    run = record_run(store, ImageRequest(prompt=HOSTILE), outputs=[url, url], keep_images=True)
    run.wait_images(30)
    record_run(store, ImageRequest(prompt="an owl"), end="failure")
    history = History(store)
    history.note(run.task_id or "", "</article><b>bold?</b>")
    history.tag(run.task_id or "", '"quoted"')
    path = history.html(tmp_path / "page" / "history.html")
    text = path.read_text("utf-8")
    page = _Collect()
    page.feed(text)
    assert page.tags.count("script") == 1  # only the page's own filter
    assert "b" not in page.tags
    assert [a["data-state"] for a in page.articles] == ["failure", "success"]  # newest first
    assert HOSTILE.lower() in (page.articles[1]["data-text"] or "")
    joined = "".join(page.text)
    assert HOSTILE in joined
    assert "</article><b>bold?</b>" in joined
    assert len(page.images) == 2
    assert all(src.startswith("data:image/webp;base64,") for src in page.images)
    assert "Content-Security-Policy" in text
    assert "moderation: blocked" in joined  # the failure's reason, shown
