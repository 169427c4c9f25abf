"""Issue 7, bugs 4, 5 and 10: a widget without its kernel, saved and exported notebooks, and the
quickstart opened as a user opens it; in a real JupyterLab (headless Chromium).

Bug 4: after a kernel restart Generate did nothing visible (an uncaught "Cannot send"); reopened
from saved state it said "Starting…" forever. Now the view says it is no longer connected and
disables its controls (docs/widget-contract.md, "Connection").
Bug 5: the static HTML was frozen at first display; nbconvert showed nothing with widget state
saved; a reopened view said "loading…" forever. Now a snapshot follows every finished run
(docs/widget-contract.md, "Snapshot") and a view without kernel shows its thumbnails.
Bug 10: the quickstart was marked modified on open, and autosave wrote into the tracked file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fixtures.lab_fixtures import (
    JupyterServer,
    NotebookPage,
    close_page,
    eval_until,
    field,
    open_notebook,
    role,
    wait_images_loaded,
    wait_status,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
GONE = "This widget is no longer connected to a kernel: run its cell again."
CELL = (
    "from siray_widgets import ImagineWidget, PollSchedule\n"
    'w = ImagineWidget(prompt="a <b>saved</b> lantern", aspect_ratio="3:2")\n'
    "w.poll = PollSchedule.fixed(0.1)\n"
    "w"
)


def _api(server: JupyterServer, method: str, path: str) -> Any:
    request = urllib.request.Request(server.url(path), method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


def shut_down_kernel_of(server: JupyterServer, name: str) -> None:
    """Shut the notebook's session down, as closing it and its kernel in JupyterLab does."""
    for session in _api(server, "GET", "/api/sessions"):
        if session["path"] == name:
            _api(server, "DELETE", f"/api/sessions/{session['id']}")


def restart_kernel(nb: NotebookPage) -> None:
    """Kernel > Restart Kernel… > Restart, then wait for the new kernel."""
    nb.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
    nb.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    nb.page.locator(".jp-Dialog-button", has_text=re.compile(r"^Restart$")).click()
    nb.wait_for_kernel_idle()


def expect_cut_off(widget: Locator) -> None:
    from playwright.sync_api import expect

    banner = role(widget, "connection")
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_have_text(GONE)
    expect(role(widget, "generate")).to_be_disabled()
    expect(field(widget, "chaos").locator("input[type=range]")).to_be_disabled()
    expect(field(widget, "prompt").locator("textarea")).to_be_disabled()
    assert widget.get_attribute("data-link") == "gone"


@pytest.fixture(scope="module")
def saved(browser: Browser, lab_server: JupyterServer) -> tuple[str, str]:
    """Run a generation in ``saved.ipynb``, save it (widget state too) and close it; yields
    (task id, seed) of the run. The kernel is shut down: nobody has this widget any more."""
    nb = open_notebook(browser, lab_server, "saved.ipynb", (CELL,))
    try:
        nb.run_cell(0)
        widget = nb.widget(0)
        widget.wait_for(state="visible")
        role(widget, "generate").click()
        wait_status(nb, "w", "SUCCESS")
        wait_images_loaded(widget)
        task_id, seed = nb.run("print(w.task_id, w.runs[-1].seed)").split()
        # The snapshot follows the run once its thumbnails are made (before it shows done).
        eval_until(nb, "print(len(w.thumbnails))", "4")
        nb.save()
    finally:
        close_page(nb)
    shut_down_kernel_of(lab_server, "saved.ipynb")
    return task_id, seed


# -- bug 4 ------------------------------------------------------------------------------------


def test_after_a_kernel_restart_the_widget_says_it_is_cut_off(
    browser: Browser, lab_server: JupyterServer
) -> None:
    nb = open_notebook(browser, lab_server, "restart.ipynb", (CELL,))
    try:
        nb.run_cell(0)
        widget = nb.widget(0)
        widget.wait_for(state="visible")
        assert role(widget, "connection").is_hidden()
        restart_kernel(nb)
        expect_cut_off(widget)
        role(widget, "generate").click(force=True)  # what a user tries anyway
        nb.page.wait_for_timeout(500)
        assert not nb.foreign_errors, nb.foreign_errors  # no uncaught "Cannot send"
    finally:
        close_page(nb)


def test_a_notebook_reopened_from_saved_state_says_it_is_cut_off_and_shows_thumbnails(
    browser: Browser, lab_server: JupyterServer, saved: tuple[str, str], artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    task_id, seed = saved
    nb = open_notebook(browser, lab_server, "saved.ipynb", (), write=False)
    try:
        widget = nb.widget(0)
        widget.wait_for(state="visible")
        expect_cut_off(widget)
        generate = role(widget, "generate")
        expect(generate).to_have_attribute("aria-busy", "false")  # not "Starting…" forever
        expect(generate).to_have_accessible_name(re.compile(r"^Generate\b"))
        expect(role(widget, "task-id")).to_have_text(task_id)
        expect(role(widget, "run-seed")).to_contain_text(seed)
        images = role(widget, "images")
        expect(images.locator("img")).to_have_count(4)
        sources = images.locator("img").evaluate_all("els => els.map(e => e.src)")
        assert all(src.startswith("data:image/jpeg;base64,") for src in sources), sources
        assert wait_images_loaded(widget) == 4
        assert "loading" not in images.inner_text()
        widget.screenshot(path=artifacts_dir / "reopened-without-kernel.png")
        # The static snapshot beside it stays hidden: the view shows the same, and more.
        snapshot = nb.cell(0).locator(".siray-snapshot")
        expect(snapshot).to_have_count(1)
        expect(snapshot).to_be_hidden()
        assert not nb.foreign_errors, nb.foreign_errors
    finally:
        close_page(nb)


# -- bug 5 ------------------------------------------------------------------------------------


def test_nbconvert_after_a_run_shows_the_current_snapshot(
    lab_server: JupyterServer, saved: tuple[str, str], tmp_path: Path
) -> None:
    task_id, seed = saved
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir",
         str(tmp_path), str(lab_server.root / "saved.ipynb")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "saved.html").read_text()
    assert "a &lt;b&gt;saved&lt;/b&gt; lantern" in html  # the request, escaped
    assert "<b>saved</b>" not in html
    assert f"task <code>{task_id}</code>" in html
    assert "status <b>SUCCESS</b>" in html
    assert f"seed {seed} (drawn at random)" in html
    sources = re.findall(r"<img[^>]*\ssrc=['\"]([^'\"]+)['\"]", html)
    thumbs = [s for s in sources if s.startswith("data:image/jpeg;base64,")]
    assert len(thumbs) == 4
    assert not [s for s in sources if "127.0.0.1" in s or "localhost" in s]


# -- bug 10 -----------------------------------------------------------------------------------


def test_the_quickstart_opens_unmodified_and_its_outputs_never_reach_the_tracked_file(
    browser: Browser, lab_server: JupyterServer
) -> None:
    from siray_widgets.lab import QUICKSTART, prepare_folder, quickstart_source

    tracked = quickstart_source()
    assert tracked == REPO / "notebooks" / QUICKSTART
    before = tracked.read_bytes()
    folder = lab_server.root / "work"
    opened = prepare_folder(folder)  # what `siray-widgets lab` opens
    assert opened == folder / QUICKSTART
    assert json.loads(opened.read_text())["cells"] == json.loads(before)["cells"]
    name = f"work/{QUICKSTART}"
    nb = open_notebook(browser, lab_server, name, (), write=False)
    try:
        nb.page.wait_for_timeout(1500)  # time for anything that would touch the document
        tab = nb.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")
        assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), "marked modified on open"
        nb.run_cell(1)  # the widget
        nb.widget(1).wait_for(state="visible")
        nb.save()
    finally:
        close_page(nb)
    saved = json.loads(opened.read_text())
    assert saved["cells"][1]["outputs"], "the copy keeps its outputs"
    assert tracked.read_bytes() == before, "the tracked quickstart changed"
