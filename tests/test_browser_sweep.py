"""Issue 9 in a real JupyterLab: the Sweep tab, built by typing values and clicking.

One page (``sweep.ipynb``, its own data folder): cell 0 holds the widget ``w``, cell 1 a
second widget ``v``. The tests run in order, as one session: a 3x3 sweep typed in and confirmed
above the threshold, filling in live on the shared sandbox; an invalid value; the cell drawer
(Use these, Undo, compare two cells); swapping axes and hiding values; a failed cell (a sandbox
whose seeded dice fail one task in nine) and its Retry; Cancel mid-sweep; Run by keyboard only;
two widgets with independent panels; screenshots in both themes.
DOM roles and messages: docs/widget-contract.md (§ Sweep).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fixtures.lab_fixtures import (
    JupyterServer,
    NotebookPage,
    close_page,
    open_notebook,
    printed_json,
    role,
)
from fixtures.sweep_fixtures import axis, cells, show_sweep

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "sweep.ipynb"
CELLS = (
    "import os, json\n"
    "os.environ['SIRAY_WIDGETS_HOME'] = {home!r}\n"
    "from siray_widgets import ImagineWidget, PollSchedule, sandbox\n"
    "from siray_widgets.session import session_budget\n"
    'w = ImagineWidget(prompt="a paper lantern on a river")\n'
    "w.poll = PollSchedule.fixed(0.1)\n"
    "w",
    'v = ImagineWidget(prompt="a second widget")\nv.poll = PollSchedule.fixed(0.1)\nv',
)
#: A sandbox whose seeded dice fail exactly the 9th task of the first twelve (failure_share
#: 0.2, seed 16: see siray_widgets/sandbox/faults.py): a 3x3 sweep gets one failed cell, and
#: its Retry (the 10th task) succeeds.
FAILING = "sandbox.start(duration=0.5, failure_share=0.2, seed=16)"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep-home")


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer, home: Path) -> Iterator[NotebookPage]:
    nb = open_notebook(browser, lab_server, NAME, [CELLS[0].format(home=str(home)), CELLS[1]])
    nb.run_cell(0)
    nb.run_cell(1)
    yield nb
    close_page(nb)


def states(panel: Locator) -> list[str]:
    return [str(s) for s in cells(panel).evaluate_all("els => els.map(e => e.dataset.state)")]


def wait_states(panel: Locator, done: Any, timeout: float = 60_000) -> list[str]:
    panel.page.wait_for_function(
        f"""el => {{
            const tds = el.querySelectorAll('td[data-role="sweep-cell"]');
            const s = [...tds].map(e => e.dataset.state);
            return s.length > 0 && ({done})(s);
        }}""",
        arg=panel.element_handle(),
        timeout=timeout,
    )
    return states(panel)


def screenshot(widget: Locator, artifacts: Path, name: str) -> None:
    widget.screenshot(path=str(artifacts / f"sweep-{name}.png"))


# -- a 3x3 sweep, typed in, confirmed, filling in ------------------------------------------------


def test_a_3x3_sweep_typed_in_needs_confirmation_and_fills_in_live(
    lab: NotebookPage, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    panel = show_sweep(widget)
    run = role(panel, "sweep-run")
    expect(run).to_be_disabled()
    axis(panel, "x", "stylize", "0-1000 [3]")
    axis(panel, "y", "chaos", "0, 50, 100")
    summary = role(panel, "sweep-summary")
    expect(summary).to_contain_text("9 cells (3 × 3)")
    expect(summary).to_contain_text("9 tasks to send")
    expect(summary).to_contain_text("36 images")
    expect(summary).to_contain_text("no cost (sandbox)")
    chips = panel.locator('[data-chips="x"] .siray-schip')
    expect(chips).to_have_text(["0", "500", "1000"])
    expect(panel.locator('[data-chips="y"] .siray-schip')).to_have_text(["0", "50", "100"])
    seed = printed_json(lab, "print(json.dumps(w.seed))")
    assert seed == -1
    expect(role(panel, "sweep-seed-note")).to_contain_text(
        re.compile(r"Seed \d+, shared by every cell")
    )
    expect(run).to_be_enabled()
    screenshot(widget, artifacts_dir, "preview-light")

    # 9 tasks > 5: Run asks first, in the page; Back sends nothing.
    run.click()
    confirm = role(panel, "sweep-confirm")
    expect(confirm).to_be_visible()
    expect(role(panel, "sweep-confirm-text")).to_contain_text(
        "9 tasks (36 images, no cost (sandbox))"
    )
    expect(role(panel, "sweep-confirm-text")).to_contain_text("more than the 5")
    send = role(panel, "sweep-confirm-send")
    expect(send).to_have_text("Send 9 tasks")
    expect(send).to_be_focused()
    screenshot(widget, artifacts_dir, "confirm-light")
    role(panel, "sweep-confirm-back").click()
    expect(confirm).to_be_hidden()
    assert printed_json(lab, "print(session_budget().tasks)") == 0

    run.click()
    send.click()
    expect(cells(panel)).to_have_count(9)
    # It fills in live: cells are still going while the first ones are done.
    seen = wait_states(panel, "s => s.some(x => x !== 'success') && s.some(x => x === 'success')")
    assert set(seen) <= {"queued", "submitted", "running", "success"}
    final = wait_states(panel, "s => s.every(x => x === 'success')")
    assert final == ["success"] * 9
    expect(role(panel, "sweep-progress")).to_contain_text("9/9 finished")
    expect(panel.locator('td[data-role="sweep-cell"] img')).to_have_count(9, timeout=30_000)
    for src in panel.locator('td[data-role="sweep-cell"] img').evaluate_all(
        "els => els.map(e => e.src)"
    ):
        assert src.startswith("blob:")  # bytes through the comm, never a kernel-side path
    expect(role(panel, "sweep-session")).to_contain_text("9 tasks sent this session")
    assert printed_json(lab, "print(session_budget().tasks)") == 9
    # Column headers are the X values, row headers the Y values.
    expect(panel.locator("thead th[data-col]")).to_have_text(["0", "500", "1000"])
    expect(role(panel, "sweep-grid").locator("tbody th")).to_have_text(["0", "50", "100"])
    corner = panel.locator("thead th.siray-scorner")
    expect(corner).to_have_text("X stylize →Y chaos ↓")
    # Sticky labels: scrolled, the headers stay at the top and the left.
    assert (
        role(panel, "sweep-grid")
        .locator("thead th")
        .first.evaluate("e => getComputedStyle(e).position")
        == "sticky"
    )
    screenshot(widget, artifacts_dir, "grid-light")


def test_an_invalid_value_names_the_axis_and_the_value_and_run_is_disabled(
    lab: NotebookPage,
) -> None:
    from playwright.sync_api import expect

    panel = show_sweep(lab.widget(0))
    axis(panel, "x", "stylize", "0-2000 [3]")
    error = role(panel, "sweep-error")
    expect(error).to_contain_text("X axis (stylize)")
    expect(error).to_contain_text("2000")
    expect(panel.locator('textarea[data-values="x"]')).to_have_attribute("aria-invalid", "true")
    expect(panel.locator('[data-slot="x"] .siray-shint')).to_contain_text("2000")
    expect(role(panel, "sweep-run")).to_be_disabled()
    axis(panel, "x", "stylize", "0, 500, 1000")  # the same values as the sweep shown
    expect(error).to_be_hidden()
    expect(role(panel, "sweep-summary")).to_contain_text("9 done by an earlier run")
    expect(role(panel, "sweep-summary")).to_contain_text("0 tasks to send")


def test_a_cell_opens_its_parameters_use_these_undo_and_two_cells_compare(
    lab: NotebookPage,
) -> None:
    from playwright.sync_api import expect

    panel = show_sweep(lab.widget(0))
    cell = panel.locator('td[data-x="1"][data-y="2"] .siray-sopen')
    cell.click()
    details = role(panel, "sweep-details")
    expect(details).to_contain_text("X stylize=500 · Y chaos=100")
    expect(details.locator('tr[data-field="stylize"] td').nth(1)).to_have_text("500")
    expect(details.locator('[data-role="sweep-images"] img')).to_have_count(4)
    role(details, "sweep-use").click()
    expect(role(panel, "sweep-note")).to_contain_text(
        "Used the parameters of cell X stylize=500 · Y chaos=100"
    )
    assert printed_json(lab, "print(json.dumps([w.stylize, w.chaos]))") == [500, 100]
    role(details, "sweep-undo").click()
    expect(role(panel, "sweep-note")).to_contain_text("Undid the restore")
    assert printed_json(lab, "print(json.dumps([w.stylize, w.chaos, w.seed]))") == [100, 0, -1]
    # Two cells, picked with Ctrl+click, side by side.
    panel.locator('td[data-x="0"][data-y="0"] .siray-sopen').click(modifiers=["Control"])
    panel.locator('td[data-x="2"][data-y="0"] .siray-sopen').click(modifiers=["Control"])
    compare = role(panel, "sweep-compare")
    expect(compare).to_have_text("Compare (2/2)")
    compare.click()
    diff = role(panel, "sweep-diff")
    expect(diff.locator('tr[data-differs="true"]')).to_have_count(1)
    expect(diff.locator('tr[data-field="stylize"] td')).to_have_text(["0", "1000"])


def test_swap_axes_and_hide_values_happen_in_the_page(lab: NotebookPage) -> None:
    from playwright.sync_api import expect

    panel = show_sweep(lab.widget(0))
    swap = role(panel, "sweep-swap")
    swap.click()
    expect(panel.locator("thead th[data-col]")).to_have_text(["0", "50", "100"])  # chaos
    expect(role(panel, "sweep-grid").locator("tbody th")).to_have_text(
        ["0", "500", "1000"]
    )  # stylize
    # The cell of stylize 1000, chaos 50 is now in the third row, second column.
    moved = panel.locator('tbody tr[data-row="2"] td[data-col="1"]')
    expect(moved).to_have_attribute("data-x", "2")
    expect(moved).to_have_attribute("data-y", "1")
    expect(panel.locator("thead th.siray-scorner")).to_have_text("Y chaos →X stylize ↓")
    # Hide chaos 50: its column goes; shown again, it is back.
    chip = panel.locator('[data-filter="y"] [data-value="1"]')
    chip.click()
    expect(chip).to_have_attribute("aria-pressed", "false")
    expect(panel.locator("thead th[data-col]")).to_have_text(["0", "100"])
    expect(cells(panel)).to_have_count(6)
    chip.click()
    swap.click()
    expect(panel.locator("thead th[data-col]")).to_have_text(["0", "500", "1000"])
    expect(cells(panel)).to_have_count(9)


# -- failure, retry, cancel ----------------------------------------------------------------------


def test_a_failed_cell_shows_its_reason_and_retry_sends_it_again(
    lab: NotebookPage, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    lab.run(f"failing = {FAILING}\nw.base_url, w.api_key = failing.base_url, failing.api_key")
    widget = lab.widget(0)
    panel = show_sweep(widget)
    axis(panel, "x", "weird", "0, 10, 20")
    axis(panel, "y", "chaos", "5, 15, 25")
    expect(role(panel, "sweep-summary")).to_contain_text("9 tasks to send")
    role(panel, "sweep-run").click()
    role(panel, "sweep-confirm-send").click()
    final = wait_states(
        panel, "s => s.length === 9 && s.every(x => x === 'success' || x === 'failed')"
    )
    assert sorted(final) == ["failed"] + ["success"] * 8
    failed = panel.locator('td[data-state="failed"]')
    expect(role(failed, "sweep-reason")).to_contain_text("sandbox fault injection")
    expect(role(panel, "sweep-progress")).to_contain_text("1 failed")
    # Every successful cell shows its thumbnail once the store has kept its images.
    expect(panel.locator('td[data-state="success"] img')).to_have_count(8, timeout=30_000)
    screenshot(widget, artifacts_dir, "failed-light")
    index = failed.get_attribute("data-index")
    role(failed, "sweep-retry").click()
    cell = panel.locator(f'td[data-index="{index}"]')
    expect(cell).to_have_attribute("data-state", "success", timeout=30_000)
    expect(cell.locator("img")).to_have_count(1, timeout=30_000)
    assert (
        printed_json(lab, "print(len(failing.task_ids()))") == 10
    )  # one more task: the retry only


def test_cancel_stops_new_submissions_and_created_tasks_land_in_the_grid(
    lab: NotebookPage,
) -> None:
    from playwright.sync_api import expect

    lab.run("slow = sandbox.start(duration=2)\nw.base_url, w.api_key = slow.base_url, slow.api_key")
    panel = show_sweep(lab.widget(0))
    axis(panel, "x", "weird", "1, 2, 3")
    axis(panel, "y", "chaos", "1, 2, 3")
    flight = role(panel, "sweep-concurrency")
    flight.fill("2")
    expect(role(panel, "sweep-summary")).to_contain_text("9 tasks to send")
    role(panel, "sweep-run").click()
    role(panel, "sweep-confirm-send").click()
    wait_states(panel, "s => s.filter(x => x === 'running' || x === 'submitted').length === 2")
    cancel = role(panel, "sweep-cancel")
    expect(cancel).to_be_focused()  # the next thing one may want
    cancel.click()
    final = wait_states(panel, "s => s.every(x => x === 'success' || x === 'cancelled')", 30_000)
    created = printed_json(lab, "print(len(slow.task_ids()))")
    assert final.count("success") == created  # every created task was followed to the end
    assert 2 <= created <= 3  # two in flight, at most one more started before the click
    assert final.count("cancelled") == 9 - created
    expect(role(panel, "sweep-progress")).to_contain_text("Sweep cancelled")
    expect(panel.locator('td[data-state="cancelled"] [data-role="sweep-retry"]')).to_have_count(
        9 - created
    )
    lab.run("w.base_url = w.api_key = None")


def test_run_by_keyboard_only(lab: NotebookPage) -> None:
    from playwright.sync_api import expect

    page = lab.page
    runs_before = printed_json(lab, "len(w.tasks)")  # (running a cell moves the focus: first)
    panel = show_sweep(lab.widget(0))
    flight = role(panel, "sweep-concurrency")
    flight.fill("8")
    box = panel.locator('textarea[data-values="x"]')
    box.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("11, 22, 33")
    y = panel.locator('textarea[data-values="y"]')
    y.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("7, 8")
    expect(role(panel, "sweep-summary")).to_contain_text("6 tasks to send")
    # Ctrl+Enter in the Sweep tab is the sweep's Run (it asks first), never Generate.
    page.keyboard.press("Control+Enter")
    send = role(panel, "sweep-confirm-send")
    expect(send).to_be_focused()
    page.keyboard.press("Escape")
    expect(role(panel, "sweep-confirm")).to_be_hidden()
    run = role(panel, "sweep-run")
    run.focus()
    page.keyboard.press("Enter")
    expect(send).to_be_focused()
    page.keyboard.press("Escape")  # back, and nothing sent
    expect(role(panel, "sweep-confirm")).to_be_hidden()
    expect(run).to_be_focused()
    page.keyboard.press("Enter")
    expect(send).to_be_focused()
    page.keyboard.press("Enter")
    expect(cells(panel)).to_have_count(6)
    wait_states(panel, "s => s.length === 6 && s.every(x => x === 'success')")
    assert printed_json(lab, "len(w.tasks)") == runs_before  # Ctrl+Enter started no Generate run


# -- two widgets, themes ---------------------------------------------------------------------------


def test_two_widgets_have_independent_sweep_panels(lab: NotebookPage) -> None:
    from playwright.sync_api import expect

    w, v = lab.widget(0), lab.widget(1)
    first, second = show_sweep(w), show_sweep(v)
    expect(cells(second)).to_have_count(0)
    expect(role(second, "sweep-summary")).to_have_text("Choose an axis and type its values.")
    axis(second, "x", "aspect_ratio", "1:1, 16:9")
    expect(role(second, "sweep-summary")).to_contain_text("2 cells")
    expect(role(first, "sweep-summary")).to_contain_text("6 cells")
    role(second, "sweep-run").click()  # 2 tasks: no confirmation
    expect(role(second, "sweep-confirm")).to_be_hidden()
    wait_states(second, "s => s.length === 2 && s.every(x => x === 'success')")
    expect(cells(first)).to_have_count(6)
    expect(second.locator("thead th[data-col]")).to_have_text(["1:1", "16:9"])
    ids = lab.page.evaluate(
        "() => [...document.querySelectorAll('.siray-widget [id]')].map(e => e.id)"
    )
    assert len(ids) == len(set(ids)), "every id is made per view"
    for label in second.locator("label[for]").all():
        target = label.get_attribute("for")
        assert second.locator(f'[id="{target}"]').count() == 1


def test_the_sweep_tab_in_the_dark_theme(lab: NotebookPage, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    widget = lab.widget(0)
    lab.set_theme("JupyterLab Dark")
    try:
        panel = show_sweep(widget)
        expect(cells(panel)).to_have_count(6)
        panel.locator('td[data-x="0"][data-y="0"] .siray-sopen').click()
        expect(role(panel, "sweep-details")).to_be_visible()
        screenshot(widget, artifacts_dir, "grid-dark")
    finally:
        lab.set_theme("JupyterLab Light")
