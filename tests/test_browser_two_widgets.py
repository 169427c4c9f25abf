"""Issue 7, bug 2: two widgets, and two views of one widget, on one page never cross-wire.

Element ids and radio group names used to be the same in every view: highlights vanished in
one widget when the other was clicked, arrow keys in one radio group moved into the other
widget and changed its trait, a label focused the other widget's slider, and seven controls of
the second widget had no accessible name. Every id and name is now made per view
(docs/widget-contract.md, "DOM").

The page: widget ``a`` shown twice (cell 0: two views of one model) and widget ``b`` (cell 1).
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
    eval_until,
    field,
    open_notebook,
    request_text,
    role,
    wait_request,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = (
    "from IPython.display import display\n"
    "from siray_widgets import ImagineWidget\n"
    'a = ImagineWidget(prompt="the first widget", aspect_ratio="16:9", quality="2")\n'
    "display(a)\n"
    "display(a)",
    'b = ImagineWidget(prompt="the second widget", aspect_ratio="3:2", quality="4")\nb',
)

#: Every reference from one element to another by id, checked inside each view.
REFERENCES_JS = """
root => {
    const problems = [];
    const refs = [];
    for (const el of root.querySelectorAll('label[for]')) refs.push([el, el.htmlFor]);
    for (const attr of ['aria-labelledby', 'aria-describedby', 'aria-controls']) {
        for (const el of root.querySelectorAll(`[${attr}]`)) {
            for (const id of el.getAttribute(attr).split(/\\s+/).filter(Boolean)) {
                refs.push([el, id]);
            }
        }
    }
    for (const [el, id] of refs) {
        const target = document.getElementById(id);
        if (!target || !root.contains(target)) {
            problems.push(`${el.outerHTML.slice(0, 80)} -> #${id}`);
        }
    }
    return {problems, count: refs.length};
}
"""


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer) -> Iterator[NotebookPage]:
    nb = open_notebook(
        browser, lab_server, "two.ipynb", CELLS, viewport={"width": 1280, "height": 3800}
    )
    nb.run_cell(0)
    nb.run_cell(1)
    yield nb
    close_page(nb)


@pytest.fixture(scope="module")
def views(lab: NotebookPage) -> dict[str, Locator]:
    """``a1`` and ``a2`` (two views of ``a``) and ``b``."""
    a_views = lab.cell(0).locator(".jp-OutputArea-output .siray-widget")
    b_view = lab.widget(1)
    b_view.wait_for(state="visible")
    a_views.nth(1).wait_for(state="visible")
    return {"a1": a_views.nth(0), "a2": a_views.nth(1), "b": b_view}


def checked(view: Locator, name: str) -> str:
    return str(field(view, name).locator("input[type=radio]:checked").get_attribute("value"))


def test_ids_are_unique_in_the_page_and_every_reference_stays_in_its_view(
    lab: NotebookPage, views: dict[str, Locator]
) -> None:
    ids: list[str] = lab.page.evaluate(
        "() => [...document.querySelectorAll('.siray-widget [id]')].map(e => e.id)"
    )
    assert len(ids) > 30
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []
    for name, view in views.items():
        result: dict[str, Any] = view.evaluate(REFERENCES_JS)
        assert result["count"] > 20, name
        assert result["problems"] == [], name
    groups = [
        set(view.locator("input[type=radio]").evaluate_all("els => els.map(e => e.name)"))
        for view in views.values()
    ]
    for i, names in enumerate(groups):
        assert len(names) == 2  # aspect ratio and quality
        for other in groups[i + 1 :]:
            assert names.isdisjoint(other)


def test_every_control_of_every_view_has_an_accessible_name(views: dict[str, Locator]) -> None:
    from playwright.sync_api import expect

    for name, view in views.items():
        controls = view.locator(
            "input:visible, select:visible, textarea:visible, button:visible, [role=radiogroup]"
        )
        count = controls.count()
        assert count > 25, name
        for i in range(count):
            expect(controls.nth(i)).to_have_accessible_name(re.compile(r"\S"))
        for field_name, label in (("chaos", "Chaos"), ("prompt", "Prompt"), ("raw", "Raw")):
            control = field(view, field_name).locator("input, textarea").first
            expect(control).to_have_accessible_name(label)
        expect(field(view, "aspect_ratio").locator("[role=radiogroup]")).to_have_accessible_name(
            "Aspect ratio"
        )


def test_choices_stay_highlighted_in_each_view(
    lab: NotebookPage, views: dict[str, Locator]
) -> None:
    assert [checked(v, "aspect_ratio") for v in views.values()] == ["16:9", "16:9", "3:2"]
    assert [checked(v, "quality") for v in views.values()] == ["2", "2", "4"]
    field(views["b"], "aspect_ratio").locator('label[data-value="4:3"]').click()
    eval_until(lab, "print(a.aspect_ratio, b.aspect_ratio)", "16:9 4:3")
    assert [checked(v, "aspect_ratio") for v in views.values()] == ["16:9", "16:9", "4:3"]
    field(views["a2"], "aspect_ratio").locator('label[data-value="1:1"]').click()
    eval_until(lab, "print(a.aspect_ratio, b.aspect_ratio)", "1:1 4:3")
    assert [checked(v, "aspect_ratio") for v in views.values()] == ["1:1", "1:1", "4:3"]
    highlighted = [
        v.locator(".siray-opt:has(input:checked)").evaluate_all("els => els.length")
        for v in views.values()
    ]
    assert highlighted == [2, 2, 2]  # one tile per group, in every view


def test_arrow_keys_stay_in_their_own_radio_group(
    lab: NotebookPage, views: dict[str, Locator]
) -> None:
    quality = field(views["b"], "quality")
    quality.locator("input:checked").focus()
    lab.page.keyboard.press("ArrowLeft")
    lab.page.keyboard.press("ArrowLeft")
    assert views["b"].evaluate("root => root.contains(document.activeElement)")
    assert quality.evaluate("el => el.contains(document.activeElement)")
    eval_until(lab, "print(a.quality, b.quality)", "2 1")
    assert [checked(v, "quality") for v in views.values()] == ["2", "2", "1"]


def test_a_label_focuses_its_own_views_control(views: dict[str, Locator]) -> None:
    for name in ("b", "a2", "a1"):
        view = views[name]
        field(view, "chaos").locator("label").click()
        focused_here = view.evaluate(
            "root => root.contains(document.activeElement) && "
            "document.activeElement.type === 'range'"
        )
        assert focused_here, f"the Chaos label of {name} focused another view's control"


def test_two_views_of_one_widget_share_state_but_not_dom(
    lab: NotebookPage, views: dict[str, Locator]
) -> None:
    prompt = field(views["a1"], "prompt").locator("textarea")
    prompt.fill("typed in the first view")
    wait_request(views["a2"], "prompt", "typed in the first view")
    assert field(views["a2"], "prompt").locator("textarea").input_value() == (
        "typed in the first view"
    )
    assert "typed in the first view" not in request_text(views["b"])
    eval_until(lab, "print(a.prompt)", "typed in the first view")
    # An invalid value typed in one view is that view's business until it is valid.
    chaos = field(views["a2"], "chaos").locator("input[type=number]")
    chaos.fill("500")
    assert chaos.get_attribute("aria-invalid") == "true"
    assert field(views["a1"], "chaos").locator("input[type=number]").get_attribute(
        "aria-invalid"
    ) in (None, "false")
    assert role(views["a1"], "generate").is_enabled()
    assert role(views["a2"], "generate").is_disabled()
    chaos.fill("5")


def test_screenshot_of_two_widgets(
    lab: NotebookPage, views: dict[str, Locator], artifacts_dir: Path
) -> None:
    png = artifacts_dir / "two-widgets.png"
    lab.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").screenshot(path=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
