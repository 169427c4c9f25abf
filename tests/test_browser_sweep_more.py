"""Issue 9 in a real JupyterLab, the Sweep tab's other ways in: a Z axis as pages, a cell's
image full size in the image viewer, a prompt file loaded (or dropped) for a batch, and a
contact sheet dropped on a second widget, which opens its sweep ready to run (resumed).

One page (``sweep-more.ipynb``, its own data folder): cell 0 holds the widget ``w``, cell 1 a
second widget ``v``; the tests run in order, as one session. Drops are dispatched with a real
DataTransfer, as a browser does. DOM roles and messages: docs/widget-contract.md (§ Sweep).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fixtures.lab_fixtures import (
    JupyterServer,
    NotebookPage,
    close_page,
    drop_file,
    open_notebook,
    printed_json,
    role,
)
from fixtures.sweep_fixtures import axis, cells, show_sweep

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "sweep-more.ipynb"
CELLS = (
    "import os, json\n"
    "os.environ['SIRAY_WIDGETS_HOME'] = {home!r}\n"
    "from siray_widgets import ImagineWidget, PollSchedule\n"
    'w = ImagineWidget(prompt="a moth on a lamp", seed=1234)\n'
    "w.poll = PollSchedule.fixed(0.1)\n"
    "w",
    'v = ImagineWidget(prompt="a second widget")\nv.poll = PollSchedule.fixed(0.1)\nv',
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep-more-home")


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer, home: Path) -> Iterator[NotebookPage]:
    nb = open_notebook(browser, lab_server, NAME, [CELLS[0].format(home=str(home)), CELLS[1]])
    nb.run_cell(0)
    nb.run_cell(1)
    yield nb
    close_page(nb)


def screenshot(widget: Locator, artifacts: Path, name: str) -> None:
    widget.screenshot(path=str(artifacts / f"sweep-more-{name}.png"))


def test_a_z_axis_makes_pages_and_each_page_shows_its_own_cells(
    lab: NotebookPage, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    panel = show_sweep(widget)
    axis(panel, "x", "stylize", "0, 1000")
    axis(panel, "z", "aspect_ratio", "1:1, 16:9")
    expect(role(panel, "sweep-summary")).to_contain_text("4 cells (2 × 1 × 2 pages)")
    role(panel, "sweep-run").click()  # 4 tasks: no confirmation
    pages = role(panel, "sweep-pages")
    tabs = pages.locator("[role=tab]")
    expect(tabs).to_have_text(["aspect_ratio 1:1", "aspect_ratio 16:9"])
    expect(tabs.first).to_have_attribute("aria-selected", "true")
    expect(cells(panel)).to_have_count(2)
    expect(panel.locator('td[data-z="0"][data-state="success"] img')).to_have_count(
        2, timeout=30_000
    )
    assert cells(panel).evaluate_all("els => els.map(e => e.dataset.z)") == ["0", "0"]
    page_one = set(cells(panel).evaluate_all("els => els.map(e => e.dataset.index)"))
    tabs.nth(1).click()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(panel.locator('td[data-z="1"]')).to_have_count(2)
    expect(panel.locator('td[data-z="0"]')).to_have_count(0)
    expect(panel.locator('td[data-z="1"][data-state="success"] img')).to_have_count(
        2, timeout=30_000
    )
    page_two = set(cells(panel).evaluate_all("els => els.map(e => e.dataset.index)"))
    assert not page_one & page_two
    assert len(page_one | page_two) == 4
    screenshot(widget, artifacts_dir, "z-pages")
    # Pages by keyboard: arrows move between the tabs.
    tabs.nth(1).focus()
    lab.page.keyboard.press("ArrowLeft")
    expect(tabs.first).to_have_attribute("aria-selected", "true")
    expect(tabs.first).to_be_focused()
    expect(panel.locator('td[data-z="0"]')).to_have_count(2)


def test_a_cells_image_opens_full_size_in_the_viewer(
    lab: NotebookPage, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    panel = show_sweep(widget)
    panel.locator('td[data-x="1"][data-z="0"] .siray-sopen').click()
    details = role(panel, "sweep-details")
    expect(details).to_contain_text("X stylize=1000 · Z aspect_ratio=1:1")
    task_id = printed_json(lab, "print(json.dumps(w._sweeps._sweep.cell(1).task_id))")
    images = details.locator("button[data-image]")
    expect(images).to_have_count(4)
    images.nth(1).click()
    viewer = role(widget, "viewer")
    expect(viewer).to_be_visible()
    img = viewer.locator("img")
    expect(img).to_have_attribute("alt", "Image 2 of X stylize=1000 · Z aspect_ratio=1:1")
    assert (img.get_attribute("src") or "").startswith("blob:")  # bytes, never a kernel path
    lab.page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=img.element_handle()
    )
    assert img.evaluate("i => Math.min(i.naturalWidth, i.naturalHeight)") > 256  # not a thumbnail
    name = role(viewer, "viewer-download").get_attribute("download") or ""
    assert name.endswith("-2.png")
    assert name == f"{task_id}-2.png"
    screenshot(widget, artifacts_dir, "viewer")
    lab.page.keyboard.press("ArrowRight")
    expect(img).to_have_attribute("alt", "Image 3 of X stylize=1000 · Z aspect_ratio=1:1")
    lab.page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    # By keyboard only: the images are buttons; Enter opens, Escape closes.
    images.nth(0).focus()
    lab.page.keyboard.press("Enter")
    expect(viewer).to_be_visible()
    expect(img).to_have_attribute("alt", "Image 1 of X stylize=1000 · Z aspect_ratio=1:1")
    lab.page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(images.nth(0)).to_be_focused()


def test_a_prompt_file_loaded_or_dropped_is_read_by_the_kernel(
    lab: NotebookPage, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    panel = show_sweep(widget)
    role(panel, "sweep-mode").select_option("batch")
    batch = role(panel, "sweep-batch")
    expect(batch).to_be_focused()
    csv = b'prompt,chaos\na moth at dusk,5\n"a moth, at dawn",75\n'
    role(panel, "sweep-batch-input").set_input_files(
        files=[{"name": "moths.csv", "mimeType": "text/csv", "buffer": csv}]
    )
    expect(batch).to_have_value(csv.decode())
    expect(role(panel, "sweep-batch-source")).to_have_text("moths.csv (CSV)")
    note = role(panel, "sweep-batch-note")
    expect(note).to_have_text("2 prompts · columns: prompt, chaos")
    expect(role(panel, "sweep-batch-chips").locator(".siray-schip")).to_have_count(2)
    summary = role(panel, "sweep-summary")
    expect(summary).to_contain_text("8 cells (2 × 2 × 2 pages)")  # X and Z stay
    screenshot(widget, artifacts_dir, "batch-file")
    # A CSV with a column no request has, dropped on the box: the kernel's words, naming it.
    drop_file(batch, "bad.csv", b"prompt,colour\na moth,red\n", "text/csv")
    error = role(panel, "sweep-error")
    expect(error).to_contain_text("prompt list bad.csv: 'colour' is not a column")
    expect(note).to_contain_text("'colour'")
    expect(role(panel, "sweep-run")).to_be_disabled()
    # The box stays the Sweep tab's: the drop did not go to the History tab.
    expect(widget.locator("[role=tab][data-tab=sweep]")).to_have_attribute("aria-selected", "true")
    # Too large: refused in the page, nothing loaded.
    role(panel, "sweep-batch-input").set_input_files(
        files=[{"name": "huge.txt", "mimeType": "text/plain", "buffer": b"a\n" * 600_000}]
    )
    expect(note).to_contain_text("huge.txt is 1.1 MB: prompt files up to 1 MB are read")
    expect(batch).to_have_value("prompt,colour\na moth,red\n")
    # A text file: one prompt per line.
    drop_file(batch, "list.txt", b"a moth\n\na lamp --weird 20\na window\n", "text/plain")
    expect(role(panel, "sweep-batch-source")).to_have_text("list.txt (text)")
    expect(note).to_have_text("3 prompts")
    expect(error).to_be_hidden()
    expect(summary).to_contain_text("12 cells (2 × 3 × 2 pages)")
    role(panel, "sweep-batch-forget").click()
    expect(role(panel, "sweep-batch-source")).to_have_text("")
    role(panel, "sweep-mode").select_option("grid")


def test_a_contact_sheet_dropped_on_another_widget_opens_its_sweep_resumed(
    lab: NotebookPage, home: Path, artifacts_dir: Path
) -> None:
    from PIL import Image
    from playwright.sync_api import expect

    sheet = home / "moths-sheet.png"
    lab.run(f"w._sweeps._sweep.contact_sheet({str(sheet)!r}, tile=48)")
    first = show_sweep(lab.widget(0))
    first.locator("[data-role=sweep-pages] [role=tab]").nth(1).click()  # w shows page 2
    widget = lab.widget(1)
    widget.locator("[role=tab][data-tab=generate]").click()
    drop_file(role(widget, "request-json"), "moths-sheet.png", sheet.read_bytes(), "image/png")
    expect(widget.locator("[role=tab][data-tab=sweep]")).to_have_attribute("aria-selected", "true")
    panel = role(widget, "sweep")
    expect(role(panel, "sweep-sheet")).to_contain_text("The sweep saved in moths-sheet.png")
    expect(panel.locator('select[data-axis="x"]')).to_have_value("stylize")
    expect(panel.locator('textarea[data-values="x"]')).to_have_value("0, 1000")
    expect(panel.locator('select[data-axis="z"]')).to_have_value("aspect_ratio")
    expect(panel.locator('textarea[data-values="z"]')).to_have_value("1:1, 16:9")
    summary = role(panel, "sweep-summary")
    expect(summary).to_contain_text("4 cells (2 × 1 × 2 pages)")
    expect(summary).to_contain_text("0 tasks to send")
    expect(summary).to_contain_text("4 done by an earlier run")
    expect(role(panel, "sweep-seed-note")).to_contain_text("Seed 1234")
    expect(role(panel, "sweep-note")).to_contain_text("Opened the sweep of moths-sheet.png")
    expect(role(panel, "sweep-note")).to_contain_text("a moth on a lamp")  # the prompt it took
    run = role(panel, "sweep-run")
    expect(run).to_have_text("Show the sweep")
    expect(run).to_be_focused()
    screenshot(widget, artifacts_dir, "sheet-opened")
    lab.page.keyboard.press("Enter")
    expect(cells(panel)).to_have_count(2)
    expect(panel.locator('td[data-state="success"] img')).to_have_count(2, timeout=30_000)
    expect(role(panel, "sweep-progress")).to_contain_text("4/4 finished")
    assert printed_json(lab, "print(json.dumps([v.prompt, v.seed]))") == ["a moth on a lamp", 1234]
    # Two widgets, independent: v shows page 1 of its sweep, w still page 2 of its own.
    expect(role(panel, "sweep-pages").locator('[aria-selected="true"]')).to_have_text(
        "aspect_ratio 1:1"
    )
    expect(role(first, "sweep-pages").locator('[aria-selected="true"]')).to_have_text(
        "aspect_ratio 16:9"
    )
    expect(first.locator('td[data-z="1"]')).to_have_count(2)
    ids = lab.page.evaluate(
        "() => [...document.querySelectorAll('.siray-widget [id]')].map(e => e.id)"
    )
    assert len(ids) == len(set(ids)), "every id is made per view"
    # Editing a value makes it a new sweep (the saved one is no longer used as is).
    box = panel.locator('textarea[data-values="x"]')
    box.press("End")
    box.press_sequentially(", 500")
    expect(role(panel, "sweep-sheet")).to_be_hidden()
    expect(summary).to_contain_text("6 cells (3 × 1 × 2 pages)")
    expect(summary).to_contain_text("2 tasks to send")
    # A PNG holding neither a sweep nor an image's parameters: the History tab says so.
    pixels = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(pixels, "PNG")
    drop_file(role(panel, "sweep-summary"), "red.png", pixels.getvalue(), "image/png")
    expect(widget.locator("[role=tab][data-tab=history]")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(role(widget, "history-note")).to_contain_text(
        "red.png holds neither a sweep (it is not a contact sheet saved by siray-widgets) "
        "nor an image's parameters"
    )
