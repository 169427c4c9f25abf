"""The static snapshot (docs/widget-contract.md, "Snapshot"; issue 7, bug 5), without a browser.

Displayed by IPython, the widget publishes its live view and, under a display id, a static
snapshot that it replaces after every finished run. The browser test
``test_browser_kernel.py::test_nbconvert_after_a_run_shows_the_current_snapshot`` exports a real
notebook; these check the pieces against a real sandbox.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from fixtures.widget_fixtures import WAIT, MakeWidget

from siray_widgets._widget_snapshot import MAX_THUMBNAIL_CHARS, thumbnail
from siray_widgets.errors import TaskFailedError
from siray_widgets.sandbox import SandboxHandle

pytestmark = pytest.mark.usefixtures("no_siray_env")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Shown:
    """What the widget asked IPython to display and update."""

    def __init__(self) -> None:
        self.displayed: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.updates: list[tuple[dict[str, Any], str]] = []

    def display(self, data: dict[str, Any], **kwargs: Any) -> None:
        assert kwargs.get("raw") is True
        self.displayed.append((data, kwargs))

    def update_display(self, data: dict[str, Any], *, display_id: str, **kwargs: Any) -> None:
        self.updates.append((data, display_id))


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Shown:
    import IPython.display

    record = Shown()
    monkeypatch.setattr(IPython.display, "display", record.display)
    monkeypatch.setattr(IPython.display, "update_display", record.update_display)
    return record


def test_display_publishes_the_view_and_a_snapshot_under_a_display_id(
    make_widget: MakeWidget, shown: Shown
) -> None:
    w = make_widget(prompt="<b>bold</b> & a fox")
    w._ipython_display_()
    (view, view_kwargs), (snapshot, snapshot_kwargs) = shown.displayed
    assert set(view) == {WIDGET_VIEW, "text/plain"}  # no stale HTML beside the live view
    assert "display_id" not in view_kwargs
    assert set(snapshot) == {"text/html", "text/plain"}
    assert snapshot_kwargs["display_id"]
    html = snapshot["text/html"]
    assert "class='siray-snapshot'" in html  # hidden by the widget's CSS next to a live view
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; a fox" in html
    assert "<b>bold</b>" not in html
    assert snapshot["text/plain"] == "Siray image widget (static snapshot): no run yet."


def test_each_finished_run_replaces_every_snapshot_with_thumbnails(
    make_widget: MakeWidget, sandbox: SandboxHandle, shown: Shown
) -> None:
    w = make_widget(box=sandbox, prompt="a lighthouse at dusk")
    w._ipython_display_()
    w._ipython_display_()  # shown twice: both snapshots follow
    ids = {kwargs["display_id"] for _, kwargs in shown.displayed if "display_id" in kwargs}
    assert len(ids) == 2
    generation = w.generate()
    generation.result(timeout=WAIT)
    assert {display_id for _, display_id in shown.updates} == ids
    html = shown.updates[-1][0]["text/html"]
    assert generation.task_id
    assert generation.task_id in html
    assert "status <b>SUCCESS</b>" in html
    assert f"seed {generation.seed} (drawn at random)" in html
    sources = re.findall(r"<img src='([^']*)'", html)
    assert len(sources) == len(generation.images) >= 1
    assert all(src.startswith("data:image/jpeg;base64,") for src in sources)
    assert "127.0.0.1" not in "".join(sources)  # nobody else can load the sandbox's URLs
    # The same thumbnails are state, for a view without a kernel.
    assert set(w.thumbnails) == set(generation.images)
    assert all(len(t) <= MAX_THUMBNAIL_CHARS for t in w.thumbnails.values())
    assert sorted(w.thumbnails.values()) == sorted(sources)
    assert shown.updates[-1][0]["text/plain"].startswith(
        f"Siray image widget (static snapshot): Last run: task {generation.task_id}"
    )


def test_a_failure_after_a_success_keeps_the_good_images_in_the_snapshot(
    make_widget: MakeWidget,
    sandbox: SandboxHandle,
    make_sandbox: Callable[..., SandboxHandle],
    shown: Shown,
) -> None:
    w = make_widget(box=sandbox)
    w._ipython_display_()
    good = w.generate()
    good.result(timeout=WAIT)
    thumbs = dict(w.thumbnails)
    failing = make_sandbox(failure_share=1.0, seed=3)
    w.base_url, w.api_key = failing.base_url, failing.api_key

    async def fail() -> None:
        with pytest.raises(TaskFailedError):
            await w.generate()

    asyncio.run(fail())
    html = shown.updates[-1][0]["text/html"]
    assert "status <b>FAILURE</b>" in html
    assert "failed:" in html
    assert "Images of the last run that succeeded" in html
    assert good.task_id is not None
    assert good.task_id in html
    assert w.thumbnails == thumbs  # still the last success's
    assert len(re.findall(r"<img src='data:image/jpeg", html)) == len(good.images)


def test_thumbnail_makes_a_small_jpeg_and_refuses_what_is_not_an_image() -> None:
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (1200, 800), (200, 30, 30, 128)).save(out, format="PNG")
    small = thumbnail(out.getvalue())
    assert small is not None
    assert small.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))) as picture:
        assert max(picture.size) == 160
        assert picture.size == (160, 107)
    assert thumbnail(b"<svg onload=alert(1)>") is None
    assert thumbnail(b"") is None


def test_a_closed_widget_displays_its_repr_only(make_widget: MakeWidget, shown: Shown) -> None:
    w = make_widget(prompt="a fox")
    w.close()
    w._ipython_display_()
    assert shown.displayed == [({"text/plain": repr(w)}, {"raw": True})]
