"""Issue 8 in a real JupyterLab: the History tab, the widget's runs in the store, the stuck-task
watchdog, the task panel's run thumbnails, and an image file's parameters.

One page (``history.ipynb``, its own data folder): cell 0 holds the widget ``w``, cell 1 a
second widget ``v``. The tests run in order, as one session: runs from the command line and
from before a kernel restart, a widget run recorded once, the details drawer, each restore and
its undo, rerun, star, rate, delete, compare, an image file (chosen, and dropped), two widgets,
the keyboard, a stalled run, the run thumbnails, and screenshots in both themes.
DOM roles and messages: docs/widget-contract.md (§ History, § Lazy panels).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fixtures.lab_fixtures import (
    JupyterServer,
    NotebookPage,
    close_page,
    drop_file,
    eval_until,
    open_notebook,
    printed_json,
    request_text,
    role,
    wait_status,
)
from fixtures.store_fixtures import ImageServer, make_image, record_run

from siray_widgets.metadata import ImageParams, embed
from siray_widgets.schema import ImageRequest
from siray_widgets.store import RunStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "history.ipynb"
CELLS = (
    "import os\n"
    "os.environ['SIRAY_WIDGETS_HOME'] = {home!r}\n"
    "from siray_widgets import ImagineWidget, PollSchedule, sandbox\n"
    'w = ImagineWidget(prompt="a lighthouse at dusk")\n'
    "w.poll = PollSchedule.fixed(0.1)\n"
    "w",
    'v = ImagineWidget(prompt="a second widget")\nv.poll = PollSchedule.fixed(0.1)\nv',
)
KOI = ImageRequest(
    prompt="a koi pond in the rain",
    negative_prompt="people",
    aspect_ratio="3:2",
    chaos=20,
    stylize=600,
    seed=1234,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This page's data folder (the kernel's, the command line's and the test's)."""
    return tmp_path_factory.mktemp("history-home")


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer, home: Path) -> Iterator[NotebookPage]:
    cells = [CELLS[0].format(home=str(home)), CELLS[1]]
    nb = open_notebook(browser, lab_server, NAME, cells)
    yield nb
    close_page(nb)


def seed(home: Path, images: ImageServer, request: ImageRequest, task_id: str) -> int:
    """A finished run with kept images, recorded by this process (as another process would)."""
    with RunStore(home) as store:
        recorder = record_run(
            store, request, outputs=images.images(task_id), task_id=task_id, keep_images=True
        )
        recorder.wait_images(30)
        assert recorder.run_id is not None
        return recorder.run_id


def stored(home: Path, **where: Any) -> list[Any]:
    from siray_widgets.history import build_query

    with RunStore(home) as store:
        return store.runs(build_query(**where))


def show_history(widget: Locator) -> Locator:
    widget.locator("[role=tab][data-tab=history]").click()
    gallery = role(widget, "history-gallery")
    gallery.wait_for()
    return gallery


def card(widget: Locator, task_id: str) -> Locator:
    return widget.locator(f'.siray-hcard[data-task-id="{task_id}"]')


def search(widget: Locator, text: str) -> None:
    role(widget, "history-search").fill(text)


def restart_kernel(nb: NotebookPage) -> None:
    """Kernel > Restart Kernel… > Restart, as a user does; then a first cell runs (execution
    counts start again at 1, which the cell helpers must see change)."""
    nb.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
    nb.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    nb.page.locator(".jp-Dialog-button", has_text=re.compile(r"^Restart$")).click()
    nb.wait_for_kernel_idle()
    assert nb.run("print('restarted')").strip() == "restarted"


def screenshot(widget: Locator, artifacts: Path, name: str) -> None:
    widget.screenshot(path=str(artifacts / f"history-{name}.png"))


# -- runs from everywhere ---------------------------------------------------------------------


def test_runs_from_the_command_line_and_an_earlier_kernel_are_in_the_gallery(
    lab: NotebookPage, home: Path
) -> None:
    from playwright.sync_api import expect

    env = {**os.environ, "SIRAY_WIDGETS_HOME": str(home), "SIRAY_SANDBOX_DURATION": "0"}
    env.pop("SIRAY_API_KEY", None)
    env.pop("SIRAY_BASE_URL", None)
    cli = subprocess.run(
        [sys.executable, "-m", "siray_widgets.cli", "generate", "a harbour from the command line"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    lab.run_cell(0)
    earlier = lab.run(
        "g = w.generate(); await g; g.recorder.wait_images(30); print(g.task_id)", timeout=90
    ).strip()
    restart_kernel(lab)
    lab.run_cell(0)
    lab.run_cell(1)
    widget = lab.widget(0)
    show_history(widget)
    expect(card(widget, earlier)).to_be_visible()
    harbour = widget.locator(".siray-hcard", has_text="a harbour from the command line")
    expect(harbour).to_be_visible()
    expect(harbour.locator("img")).to_have_count(4)
    for src in harbour.locator("img").evaluate_all("els => els.map(e => e.src)"):
        assert src.startswith("blob:")  # bytes through the comm, never a kernel-side URL
    (run,) = stored(home, origin="cli")
    assert run.prompt == "a harbour from the command line"
    assert stored(home, origin="widget")[0].task_id == earlier


def test_a_widget_run_is_recorded_once_and_lands_in_the_open_gallery(
    lab: NotebookPage, home: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    before = len(stored(home))
    widget.locator("[role=tab][data-tab=generate]").click()
    role(widget, "generate").click()
    wait_status(lab, "w", "SUCCESS")
    task_id = lab.run("print(w.task_id)").strip()
    show_history(widget)
    expect(card(widget, task_id)).to_be_visible(timeout=10_000)
    newest = widget.locator('.siray-hcard[data-index="0"]')
    expect(newest).to_have_attribute("data-task-id", task_id)
    runs = stored(home)
    assert len(runs) == before + 1
    (run,) = [r for r in runs if r.task_id == task_id]
    assert (run.origin, run.state) == ("widget", "success")
    assert Path(run.source) == lab.path  # the notebook, where jupyter_server says it is
    assert run.request_json == lab.run("print(w.runs[-1].request_json)").strip()


# -- the details drawer and restoring -----------------------------------------------------------


def test_the_details_drawer_shows_a_run_without_changing_the_controls(
    lab: NotebookPage, home: Path, images: ImageServer, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    run_id = seed(home, images, KOI, "t-koi")
    widget = lab.widget(0)
    show_history(widget)
    koi = card(widget, "t-koi")
    expect(koi).to_be_visible(timeout=10_000)  # another process's run, heard of by the watch
    shown = request_text(widget)
    kernel = lab.run("print(w.request_json)").strip()
    koi.click()
    drawer = role(widget, "history-details")
    expect(drawer).to_have_attribute("data-run", str(run_id))
    fields = role(drawer, "details-fields")
    for text in ("a koi pond in the rain", "people", "3:2", "600", "1234", "success"):
        expect(fields).to_contain_text(text)
    expect(role(drawer, "details-prompt")).to_have_text(
        "a koi pond in the rain --ar 3:2 --chaos 20 --stylize 600 --seed 1234 --no people --niji 7"
    )
    expect(drawer.locator(".siray-himages img")).to_have_count(4)
    assert request_text(widget) == shown
    assert lab.run("print(w.request_json)").strip() == kernel
    screenshot(widget, artifacts_dir, "details-light")


def test_each_restore_action_does_what_invokeai_means_and_undo_puts_it_back(
    lab: NotebookPage,
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    drawer = role(widget, "history-details")
    note = role(widget, "history-note")
    undo = role(widget, "history-undo")
    start = printed_json(lab, "print(w.request.to_json())")
    assert start["seed"] == -1
    koi = KOI.to_dict()
    expected = {
        "all": koi,
        "remix": {**koi, "seed": -1},
        "prompt": {**start, "prompt": koi["prompt"], "negative_prompt": koi["negative_prompt"]},
        "seed": {**start, "seed": 1234},
    }
    for what, want in expected.items():
        drawer.locator(f'[data-restore="{what}"]').click()
        expect(note).not_to_be_empty()
        eval_until(lab, "print(w.request.to_json())", ImageRequest(**want).to_json())
        expect(undo).to_be_enabled()
        # The page follows: the request panel shows the restored request.
        body = json.loads(request_text(widget))
        assert {k: v for k, v in body.items() if k != "seed"} == {
            k: v for k, v in ImageRequest(**want).to_body().items() if k != "seed"
        }
        undo.click()
        expect(undo).to_be_disabled()
        eval_until(lab, "print(w.request.to_json())", ImageRequest(**start).to_json())
    expect(note).to_contain_text("Undid the restore")


def test_rerun_star_rate_and_delete_reach_the_store(lab: NotebookPage, home: Path) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    drawer = role(widget, "history-details")
    shown = lab.run("print(w.request_json)").strip()
    runs = int(lab.run("print(len(w.runs))").strip())
    role(drawer, "history-rerun").click()
    eval_until(lab, "print(len(w.runs))", str(runs + 1))
    wait_status(lab, "w", "SUCCESS")
    sent = printed_json(lab, "print(w.runs[-1].request_json)")
    assert sent == KOI.to_body()  # the run's own request, its seed too
    assert lab.run("print(w.request_json)").strip() == shown  # controls untouched

    role(drawer, "history-star").click()
    expect(role(drawer, "history-star")).to_have_attribute("aria-pressed", "true")
    drawer.locator('[data-rate="3"]').click()
    expect(drawer.locator('[data-rate="3"]')).to_have_attribute("aria-pressed", "true")
    (koi,) = stored(home, text="t-koi")
    assert (koi.starred, koi.rating) == (True, 3)
    expect(card(widget, "t-koi").locator(".siray-hstar")).to_be_visible()

    remove = role(drawer, "history-delete")
    remove.click()
    expect(remove).to_have_text("Delete for good?")
    remove.click()
    expect(card(widget, "t-koi")).to_have_count(0)
    expect(role(widget, "history-note")).to_contain_text("Deleted run t-koi")
    assert stored(home, text="t-koi") == []


# -- comparing ----------------------------------------------------------------------------------


def test_two_runs_compared_field_by_field_with_their_images(
    lab: NotebookPage, home: Path, images: ImageServer, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    seed(home, images, ImageRequest(prompt="a lily pad", stylize=100, seed=5), "t-lily-a")
    seed(home, images, ImageRequest(prompt="a lily pad", stylize=750, raw=True, seed=5), "t-lily-b")
    widget = lab.widget(0)
    show_history(widget)
    search(widget, "lily")
    expect(widget.locator(".siray-hcard[data-run]")).to_have_count(2, timeout=10_000)
    for task_id in ("t-lily-a", "t-lily-b"):
        card(widget, task_id).locator('[data-role="pick"]').click()
        expect(card(widget, task_id)).to_have_attribute("aria-selected", "true")
    compare = role(widget, "history-compare")
    expect(compare).to_have_text("Compare (2/2)")
    compare.click()
    diff = role(widget, "history-diff")
    differing = diff.locator('tr[data-differs="true"]')
    expect(differing).to_have_count(2)
    expect(diff.locator('tr[data-field="stylize"]')).to_have_attribute("data-differs", "true")
    expect(diff.locator('tr[data-field="raw"]')).to_have_attribute("data-differs", "true")
    expect(diff.locator('tr[data-field="prompt"]')).to_have_attribute("data-differs", "false")
    expect(role(diff, "diff-summary")).to_have_text("2 fields differ: Stylize, Raw.")
    expect(diff.locator(".siray-hpair img[src^='blob:']")).to_have_count(8)
    screenshot(widget, artifacts_dir, "diff-light")


# -- an image file's parameters -------------------------------------------------------------------

SNAIL = ImageRequest(prompt="a snail on a leaf", chaos=45, aspect_ratio="4:3", seed=-1)


def snail_png(tmp: Path) -> Path:
    path = tmp / "snail.png"
    params = ImageParams(SNAIL, task_id="t-snail", seed=99, index=1)
    path.write_bytes(embed(make_image("png"), params))
    return path


def test_a_chosen_png_shows_the_diff_before_it_restores(
    lab: NotebookPage, tmp_path: Path, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    show_history(widget)
    before = printed_json(lab, "print(w.request.to_json())")
    role(widget, "image-file").set_input_files(str(snail_png(tmp_path)))
    params = role(widget, "image-params")
    expect(params).to_contain_text("Parameters in snail.png")
    expect(params.locator('tr[data-field="chaos"]')).to_have_attribute("data-differs", "true")
    expect(params.locator('tr[data-field="chaos"] td').nth(1)).to_have_text("45")
    expect(params.locator('tr[data-field="seed"] td').nth(1)).to_have_text("99")
    assert printed_json(lab, "print(w.request.to_json())") == before  # shown, not applied yet
    screenshot(widget, artifacts_dir, "image-light")
    role(params, "apply-image").click()
    expect(role(widget, "history-note")).to_contain_text("Used the image's parameters")
    eval_until(lab, "print(w.chaos, w.aspect_ratio, w.seed)", "45 4:3 99")
    role(widget, "history-undo").click()
    eval_until(lab, "print(w.request.to_json())", ImageRequest(**before).to_json())


def test_a_png_dropped_on_the_generate_tab_opens_its_diff(
    lab: NotebookPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    widget.locator("[role=tab][data-tab=generate]").click()
    drop_file(
        role(widget, "request-json"), "dropped.png", snail_png(tmp_path).read_bytes(), "image/png"
    )
    expect(widget.locator("[role=tab][data-tab=history]")).to_have_attribute(
        "aria-selected", "true"
    )
    params = role(widget, "image-params")
    expect(params).to_contain_text("Parameters in dropped.png")
    role(params, "cancel-image").click()
    expect(params).to_have_count(0)
    assert lab.run("print(w.chaos)").strip() == "0"


# -- two widgets, the keyboard ------------------------------------------------------------------


def test_two_widgets_on_one_page_keep_their_own_history_state(lab: NotebookPage) -> None:
    from playwright.sync_api import expect

    first, second = lab.widget(0), lab.widget(1)
    show_history(second)
    search(second, "lily")
    lily = card(second, "t-lily-a")
    expect(lily).to_be_visible(timeout=10_000)
    lily.click()
    role(second, "history-details").locator('[data-restore="prompt"]').click()
    eval_until(lab, "print(v.prompt)", "a lily pad")
    assert lab.run("print(w.prompt)").strip() == "a lighthouse at dusk"
    expect(card(second, "t-lily-a")).to_have_attribute("aria-selected", "false")
    expect(card(first, "t-lily-a")).to_have_attribute("aria-selected", "true")  # picked in w
    ids = lab.page.evaluate(
        "() => [...document.querySelectorAll('.siray-widget [id]')].map(e => e.id)"
    )
    assert len(ids) == len(set(ids))
    expect(role(second, "history-undo")).to_be_enabled()
    expect(role(first, "history-undo")).to_be_disabled()


def test_the_gallery_works_from_the_keyboard_alone(lab: NotebookPage) -> None:
    from playwright.sync_api import expect

    page = lab.page
    widget = lab.widget(0)
    widget.locator("[role=tab][data-tab=history]").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(role(widget, "history-search")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("lily")
    gallery = role(widget, "history-gallery")
    expect(widget.locator(".siray-hcard[data-run]")).to_have_count(2)
    gallery.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    active = gallery.get_attribute("aria-activedescendant")
    assert active
    second = widget.locator(f"#{active}")
    expect(second).to_have_attribute("data-index", "1")
    page.keyboard.press("Space")
    expect(second).to_have_attribute("aria-selected", "false")  # it was picked: now not
    page.keyboard.press("Space")
    expect(second).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    drawer = role(widget, "history-details")
    expect(drawer).to_have_attribute("data-run", str(second.get_attribute("data-run")))
    expect(drawer.locator('[data-restore="all"]')).to_be_focused()
    page.keyboard.press("Tab")
    expect(drawer.locator('[data-restore="remix"]')).to_be_focused()
    page.keyboard.press("Escape")  # closes the drawer; the focus goes back to the gallery
    expect(drawer).to_be_hidden()
    expect(gallery).to_be_focused()
    role(widget, "history-search").focus()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    expect(widget.locator(".siray-hcard[data-run]").first).to_be_visible()


# -- the task panel: stalls and run thumbnails --------------------------------------------------


def test_a_stalled_run_offers_keep_waiting_and_cancel(
    lab: NotebookPage, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    lab.run(
        "slow = sandbox.start(duration=1, stall_at=40)\n"
        "w.base_url, w.api_key = slow.base_url, slow.api_key\n"
        "w.stall_after = 1.5"
    )
    widget = lab.widget(0)
    widget.locator("[role=tab][data-tab=generate]").click()
    role(widget, "generate").click()
    stalled = role(widget, "stalled")
    expect(stalled).to_be_visible(timeout=15_000)
    expect(role(widget, "status")).to_have_text("stalled")
    screenshot(widget, artifacts_dir, "stalled-light")
    role(stalled, "keep-waiting").click()
    expect(stalled).to_be_hidden()
    expect(role(widget, "status")).to_have_text("IN_PROGRESS")
    expect(stalled).to_be_visible(timeout=10_000)  # nothing moved: stalled again
    role(widget, "cancel").click()  # beside the status, which says "stalled"
    expect(role(widget, "status")).to_have_text("cancelled")
    expect(stalled).to_be_hidden()
    lab.run("w.base_url = w.api_key = w.stall_after = None")


def test_the_run_buttons_are_thumbnails_of_their_own_request(lab: NotebookPage) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    chips = role(widget, "tasks").locator("button")
    runs = printed_json(lab, "import json; print(json.dumps([g.summary for g in w.runs]))")
    expect(chips).to_have_count(len(runs))
    assert len(runs) >= 3
    succeeded = role(widget, "tasks").locator('button[data-state="success"] img')
    expect(succeeded.first).to_be_visible()
    for src in succeeded.evaluate_all("els => els.map(e => e.src)"):
        assert src.startswith(("blob:", "data:image/"))
    for i, summary in enumerate(runs):
        assert summary in str(chips.nth(i).get_attribute("title"))
    chips.nth(1).click()  # the rerun of the koi run: its own request, not the current one
    expect(role(widget, "run-request")).to_have_text(f"Request: {runs[1]}")
    assert "koi pond" in runs[1]
    assert "koi pond" not in lab.run("print(w.snippets['suffix'])")


def test_the_history_tab_in_the_dark_theme(lab: NotebookPage, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    lab.set_theme("JupyterLab Dark")
    try:
        show_history(widget)
        search(widget, "")
        first = widget.locator(".siray-hcard[data-run]").first
        expect(first).to_be_visible()
        first.click()
        expect(role(widget, "history-details")).to_be_visible()
        screenshot(widget, artifacts_dir, "details-dark")
        role(widget, "history-compare").click()
        expect(role(widget, "history-diff")).to_be_visible()
        screenshot(widget, artifacts_dir, "diff-dark")
    finally:
        lab.set_theme("JupyterLab Light")
