"""Other models' widgets in a real JupyterLab (headless Chromium): controls generated from a
fixture registry model's schema, each one moving the preview and Python, Generate making
images in the sandbox serving that registry; niji 7's controls as they were; the price, the
session line, and the workshop quota line through a real proxy. One notebook (one kernel) for
the module; docs/widget-contract.md sections "Traits" and "DOM"."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

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
    wait_images_loaded,
    wait_request,
    wait_status,
)
from fixtures.registry_fixtures import FIXTURE, FLUX_DEV

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = (
    # The kernel's sandbox serves the fixture registry; the widget finds its models there.
    "import os, tempfile\n"
    f"os.environ['SIRAY_SANDBOX_REGISTRY'] = {str(FIXTURE)!r}\n"
    "from siray_widgets import ImagineWidget, PollSchedule\n"
    f"m = ImagineWidget(model={FLUX_DEV!r}, prompt='a heron in the reeds')\n"
    "m.poll = PollSchedule.fixed(0.1)\n"
    "m",
    "n = ImagineWidget(prompt='a lighthouse')\nn",
    # A workshop proxy in front of its own sandbox, and a widget of a participant.
    "from siray_widgets import proxy\n"
    "p = proxy.start(upstream='sandbox', participants=1, quota=2,\n"
    "                db=os.path.join(tempfile.mkdtemp(), 'proxy.sqlite3'),\n"
    "                sandbox={'duration': 0})\n"
    "q = ImagineWidget(prompt='a fox in the snow')\n"
    "q.base_url = p.base_url\n"
    "q.api_key = p.issued[0].token\n"
    "q.poll = PollSchedule.fixed(0.1)\n"
    "q",
)


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer) -> Iterator[NotebookPage]:
    nb = open_notebook(browser, lab_server, "models.ipynb", CELLS)
    for index in range(len(CELLS)):
        nb.run_cell(index)
    yield nb
    nb.run("p.stop()")
    close_page(nb)


@pytest.fixture(scope="module")
def model(lab: NotebookPage) -> Locator:
    root = lab.widget(0)
    root.wait_for(state="visible")
    return root


@pytest.fixture(scope="module")
def niji(lab: NotebookPage) -> Locator:
    root = lab.widget(1)
    root.wait_for(state="visible")
    return root


@pytest.fixture(scope="module")
def workshop(lab: NotebookPage) -> Locator:
    root = lab.widget(2)
    root.wait_for(state="visible")
    return root


def controls(widget: Locator) -> list[tuple[str, list[str]]]:
    """Each field and its inputs (``tag:type``), in layout order."""
    return [
        (str(name), [str(kind) for kind in kinds])
        for name, kinds in widget.locator("[data-field]").evaluate_all(
            """els => els.map(e => [e.dataset.field, [...e.querySelectorAll(
                'input, select, textarea')].map(i => i.tagName.toLowerCase() +
                (i.type && i.tagName === 'INPUT' ? ':' + i.type : ''))])"""
        )
    ]


def test_the_models_controls_come_from_its_schema(lab: NotebookPage, model: Locator) -> None:
    assert controls(model) == [
        ("model", ["select"]),
        ("prompt", ["textarea"]),
        ("negative_prompt", ["textarea"]),
        ("num_inference_steps", ["input:range", "input:number"]),
        ("guidance_scale", ["input:range", "input:number"]),
        ("num_images", ["input:radio", "input:radio", "input:radio"]),
        ("enable_safety_checker", ["input:checkbox"]),
    ]
    steps = field(model, "guidance_scale").locator("input[type=range]")
    assert (steps.get_attribute("min"), steps.get_attribute("max")) == ("1", "10")
    assert steps.get_attribute("step") == "0.5"
    labels = (
        field(model, "num_images")
        .locator("label")
        .evaluate_all("els => els.map(e => e.dataset.value)")
    )
    assert labels == ["1", "2", "4"]
    assert field(model, "num_inference_steps").get_attribute("title") == "Number of denoising steps"
    assert model.locator('[data-field="chaos"]').count() == 0
    assert request_text(model) == json.loads(
        lab.run("import json; print(json.dumps(m.request_json))")
    )
    assert role(model, "price").text_content() == "$0.0125 per run on Siray (free in the sandbox)"
    assert role(model, "session").text_content() == "0 tasks sent this session"
    assert role(model, "quota").is_hidden()
    # Midjourney prompts and seeds drawn by Python are niji 7's.
    assert model.locator('[data-copy="suffix"]').count() == 0
    assert role(model, "suffix").count() == 0
    assert role(model, "seed-note").is_hidden()


def test_moving_a_control_updates_the_preview_and_python(lab: NotebookPage, model: Locator) -> None:
    steps = field(model, "num_inference_steps").locator("input[type=range]")
    steps.focus()
    lab.page.keyboard.press("ArrowRight")
    wait_request(model, "num_inference_steps", 29)
    eval_until(lab, "print(m.num_inference_steps)", "29")
    box = field(model, "guidance_scale").locator("input[type=number]")
    box.fill("4.5")
    wait_request(model, "guidance_scale", 4.5)
    eval_until(lab, "print(m.guidance_scale)", "4.5")
    # A value the schema refuses stays as typed, marked, with the schema's words; nothing sent.
    box.fill("4.2")
    assert box.get_attribute("aria-invalid") == "true"
    hint = field(model, "guidance_scale").locator(".siray-hint").text_content() or ""
    assert "a multiple of 0.5" in hint
    assert role(model, "generate").is_disabled()
    assert "guidance_scale" in (role(model, "pending").text_content() or "")
    assert json.loads(request_text(model))["guidance_scale"] == 4.5
    box.fill("6")
    wait_request(model, "guidance_scale", 6)
    assert not role(model, "generate").is_disabled()
    field(model, "num_images").locator('label[data-value="4"]').click()
    body = wait_request(model, "num_images", 4)  # a number, as the schema says, not "4"
    assert body["num_images"] == 4
    eval_until(lab, "print(repr(m.num_images))", "4")
    field(model, "enable_safety_checker").locator("input").click()
    wait_request(model, "enable_safety_checker", False)
    eval_until(lab, "print(m.enable_safety_checker)", "False")
    # Python moves the controls too.
    lab.run("m.num_inference_steps = 12")
    wait_request(model, "num_inference_steps", 12)
    assert steps.input_value() == "12"
    eval_until(lab, "print(m.request_json == " + json.dumps(request_text(model)) + ")", "True")


def test_generate_makes_images_and_counts_the_run(lab: NotebookPage, model: Locator) -> None:
    shown = request_text(model)
    role(model, "generate").click()
    wait_status(lab, "m", "SUCCESS")
    role(model, "images").scroll_into_view_if_needed()  # lazy images load once in view
    assert wait_images_loaded(model) == 4
    sent = json.loads(lab.run("print(json.dumps(m.tasks[-1]['request_json']))"))
    assert sent == shown  # the body shown is the body sent
    model.page.wait_for_function(
        "el => el.textContent === '1 task sent this session, estimated $0.00'",
        arg=role(model, "session").element_handle(),
    )
    assert role(model, "run-seed").is_hidden() or role(model, "run-seed").text_content() == ""


def test_niji_7_keeps_its_hand_tuned_controls(niji: Locator) -> None:
    assert controls(niji) == [
        ("model", ["select"]),
        ("prompt", ["textarea"]),
        ("negative_prompt", ["textarea"]),
        ("aspect_ratio", ["input:radio"] * 7),
        ("chaos", ["input:range", "input:number"]),
        ("stylize", ["input:range", "input:number"]),
        ("weird", ["input:range", "input:number"]),
        ("quality", ["input:radio"] * 3),
        ("seed", ["input:number"]),
        ("raw", ["input:checkbox"]),
        ("tile", ["input:checkbox"]),
    ]
    assert field(niji, "aspect_ratio").locator(".siray-shape").count() == 7
    assert role(niji, "random-seed").is_visible()
    assert field(niji, "seed").locator("input").get_attribute("placeholder") == "random each run"
    assert role(niji, "price").text_content() == "$0.05 per run on Siray (free in the sandbox)"


def test_the_workshop_quota_line_follows_the_proxy(lab: NotebookPage, workshop: Locator) -> None:
    quota = role(workshop, "quota")
    quota.wait_for(state="visible")
    workshop.page.wait_for_function(
        "el => el.textContent === 'workshop: 2 of 2 left'", arg=quota.element_handle()
    )
    assert quota.get_attribute("data-state") == "ok"
    role(workshop, "generate").click()
    wait_status(lab, "q", "SUCCESS")
    workshop.page.wait_for_function(
        "el => el.textContent === 'workshop: 1 of 2 left'", arg=quota.element_handle()
    )
    assert quota.get_attribute("data-state") == "low"
    assert role(workshop, "price").text_content() == "price unknown"  # not the sandbox's file
    role(workshop, "generate").click()
    wait_status(lab, "q", "SUCCESS")
    workshop.page.wait_for_function(
        "el => el.dataset.state === 'spent'", arg=quota.element_handle()
    )
    role(workshop, "generate").click()
    error = role(workshop, "error")
    error.wait_for(state="visible")
    assert (error.text_content() or "").startswith("Your workshop allowance is used up")
    assert "ask the instructor to top it up" in (error.text_content() or "")
    assert quota.text_content() == "workshop: 0 of 2 left"
    color = quota.evaluate("el => getComputedStyle(el).color")
    assert color != role(workshop, "key-source").evaluate("el => getComputedStyle(el).color")


def test_screenshots_in_light_and_dark(
    lab: NotebookPage, model: Locator, workshop: Locator, artifacts_dir: Path
) -> None:
    model.screenshot(path=artifacts_dir / "model-widget-light.png")
    workshop.screenshot(path=artifacts_dir / "workshop-quota-light.png")
    lab.set_theme("JupyterLab Dark")
    try:
        model.screenshot(path=artifacts_dir / "model-widget-dark.png")
        workshop.screenshot(path=artifacts_dir / "workshop-quota-dark.png")
    finally:
        lab.set_theme("JupyterLab Light")
    for name in ("model-widget", "workshop-quota"):
        for theme in ("light", "dark"):
            assert (artifacts_dir / f"{name}-{theme}.png").stat().st_size > 10_000
