"""ImagineWidget in a real JupyterLab 4 (and Notebook 7) driven by headless Debian Chromium.

One JupyterLab server per session and one notebook page per module: the tests below share
the page ``widget.ipynb`` (cell 0 holds the widget ``w``; the last cell is a scratch cell that
:meth:`NotebookPage.run` types code into), so their order is the story of one user session.
Keyed runs use their own notebook and sandbox; the key reaches the kernel only through the
server's ``$SIRAY_WIDGETS_TEST_KEY`` and is never printed. The DOM roles, traits and messages
used here are those of docs/widget-contract.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fixtures.lab_fixtures import (
    TEST_KEY_ENV,
    JupyterServer,
    NotebookPage,
    close_page,
    eval_until,
    field,
    image_sources,
    layout,
    moved,
    open_notebook,
    request_text,
    role,
    wait_images_loaded,
    wait_request,
    wait_status,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator, Route

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = "<img src=x onerror=alert(1)>"
FIELDS = (
    "model",
    "prompt",
    "negative_prompt",
    "aspect_ratio",
    "chaos",
    "stylize",
    "weird",
    "quality",
    "seed",
    "raw",
    "tile",
)
WIDGET_CELL = (
    "from siray_widgets import ImagineWidget\n"
    'w = ImagineWidget(prompt="a lighthouse at dusk", chaos=10)\n'
    "w"
)
KEYED_CELLS = (
    # A sandbox that accepts only this session's fake key, used the way a real server is:
    # through SIRAY_BASE_URL and SIRAY_API_KEY. The key's value never appears in a cell.
    "import os\n"
    "from siray_widgets import sandbox\n"
    f'_server = sandbox.start(api_key=os.environ["{TEST_KEY_ENV}"], duration=0.5)\n'
    'os.environ["SIRAY_BASE_URL"] = _server.base_url\n'
    f'os.environ["SIRAY_API_KEY"] = os.environ["{TEST_KEY_ENV}"]',
    "from siray_widgets import ImagineWidget, PollSchedule\n"
    'k = ImagineWidget(prompt="a keyed fox")\n'
    "k.poll = PollSchedule.fixed(0.2)  # quicker than Siray's 3 s\n"
    "k",
)
#: The label a swap-label button shows now (docs/widget-contract.md, "DOM": copy buttons).
VISIBLE_LABEL = (
    "el => [...el.querySelectorAll('.siray-swap > span')]"
    ".find(s => s.style.visibility !== 'hidden').textContent"
)


def luminance(css: str) -> float:
    """Relative luminance (WCAG) of a computed ``rgb(r, g, b)`` colour."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(element: Locator) -> float:
    """WCAG contrast ratio of an element's text against its own background colour."""
    color, background = element.evaluate(
        "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
    )
    low, high = sorted([luminance(str(color)), luminance(str(background))])
    return (high + 0.05) / (low + 0.05)


def secret_in(text: str, key: str) -> bool:
    """Whether ``key`` (or its random part) appears in ``text``; never shows either."""
    return key in text or key.removeprefix("sk-test-") in text


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer) -> Iterator[NotebookPage]:
    """``widget.ipynb`` open in JupyterLab with the widget cell run."""
    nb = open_notebook(browser, lab_server, "widget.ipynb", (WIDGET_CELL,))
    nb.run_cell(0)
    yield nb
    close_page(nb)


@pytest.fixture(scope="module")
def widget(lab: NotebookPage) -> Locator:
    """The rendered widget root in cell 0."""
    root = lab.widget(0)
    root.wait_for(state="visible")
    return root


# --------------------------------------------------------------------------------------------
# Render and two-way binding
# --------------------------------------------------------------------------------------------


def test_widget_renders_every_control(lab: NotebookPage, widget: Locator) -> None:
    """Every API field has a control; the request panel shows the body; sandbox badge shown."""
    missing = [name for name in FIELDS if field(widget, name).count() == 0]
    assert not missing, f"controls missing for {missing}"
    body = json.loads(request_text(widget))
    assert body["prompt"] == "a lighthouse at dusk"
    assert body["chaos"] == 10
    assert role(widget, "generate").is_visible()
    assert role(widget, "sandbox-badge").is_visible(), "no key set, yet no sandbox badge"
    assert not lab.foreign_errors, f"uncaught errors in the page: {lab.foreign_errors}"


def test_every_control_is_described_for_keyboard_and_screen_reader_users(
    lab: NotebookPage, widget: Locator
) -> None:
    """Each field's inputs point (aria-describedby) at the schema's description, inside the
    same view, and the description is always on screen: nothing appears or moves on focus
    (docs/widget-contract.md, "DOM")."""
    from siray_widgets.schema import FIELDS_BY_NAME

    described = widget.evaluate(
        """root => [...root.querySelectorAll('[data-field]')].map(wrap => [
            wrap.dataset.field,
            [...wrap.querySelectorAll('input:not([data-role]), select, textarea')].map(c =>
                (c.getAttribute('aria-describedby') || '').split(' ').filter(Boolean)
                    .map(id => root.querySelector('#' + CSS.escape(id))?.textContent ?? null)),
        ])"""
    )
    assert sorted(name for name, _ in described) == sorted(FIELDS)
    for name, controls in described:
        assert controls, f"{name} has no input"
        for texts in controls:
            assert texts, f"an input of {name} has no aria-describedby"
            assert texts[0] == FIELDS_BY_NAME[name].description, name
    for name in FIELDS:
        description = field(widget, name).locator(".siray-desc")
        assert description.is_visible(), f"{name}'s description is hidden"
    before = layout(widget)
    field(widget, "prompt").locator("textarea").focus()
    assert moved(before, layout(widget)) == []


def test_a_copy_button_gets_its_label_back_after_two_quick_clicks(widget: Locator) -> None:
    """The label swaps in place ("Copied ✓" or "Copy failed") without changing the button's
    size, and comes back after two quick clicks."""
    from playwright.sync_api import expect

    button = widget.locator('[data-copy="json"]')
    box = button.bounding_box()
    assert button.evaluate(VISIBLE_LABEL) == "JSON"
    button.click()
    expect(button).to_have_attribute("title", "Copy JSON")
    widget.page.wait_for_function(
        f"el => ({VISIBLE_LABEL})(el) !== 'JSON'", arg=button.element_handle()
    )
    assert button.bounding_box() == box
    button.click()  # again, while it says so
    widget.page.wait_for_function(
        f"el => ({VISIBLE_LABEL})(el) === 'JSON'", arg=button.element_handle(), timeout=10_000
    )
    assert button.bounding_box() == box


def test_slider_sets_the_python_trait(lab: NotebookPage, widget: Locator) -> None:
    """Moving the chaos slider sets ``w.chaos`` (read back by a cell) and the panel at once."""
    chaos = field(widget, "chaos")
    chaos.locator("input[type=range]").fill("42")
    assert chaos.locator("input[type=number]").input_value() == "42"
    wait_request(widget, "chaos", 42)
    eval_until(lab, "print(w.chaos)", "42")


def test_python_trait_moves_the_slider(lab: NotebookPage, widget: Locator) -> None:
    """``w.stylize = 777`` in a cell moves the slider, the number box and the panel."""
    from playwright.sync_api import expect

    lab.run("w.stylize = 777")
    stylize = field(widget, "stylize")
    expect(stylize.locator("input[type=range]")).to_have_value("777", timeout=10_000)
    expect(stylize.locator("input[type=number]")).to_have_value("777")
    wait_request(widget, "stylize", 777)


# --------------------------------------------------------------------------------------------
# Generate (one task, with a markup prompt typed by the user, shared by the tests below)
# --------------------------------------------------------------------------------------------


@dataclass
class Generated:
    """What one click on Generate left behind."""

    shown_body: str
    progress_seen: list[str]
    image_count: int
    #: Sandbox image URLs the page tried to load itself (it should not: see the fixture).
    direct_loads: list[str]


@pytest.fixture(scope="module")
def generated(lab: NotebookPage, widget: Locator) -> Generated:
    """Type the markup prompt, click Generate, wait for SUCCESS and the images.

    The widget polls every 0.2 s (instead of Siray's 3 s) so the 1.5 s sandbox task is seen
    in progress, not only before and after.
    """
    lab.run("from siray_widgets import PollSchedule\nw.poll = PollSchedule.fixed(0.2)")
    prompt = field(widget, "prompt").locator("textarea").first
    prompt.fill(XSS)
    wait_request(widget, "prompt", XSS)
    eval_until(lab, "print(w.prompt)", XSS)
    shown = request_text(widget)
    # Record every percentage the progress bar and its label show from now on.
    widget.evaluate(
        """root => {
            const bar = root.querySelector('[data-role="progress"]');
            const label = root.querySelector('[data-role="percent"]');
            const seen = window.__sirayProgress = [];
            const record = () => seen.push(
                `${bar.getAttribute('aria-valuenow')}|${bar.value}|${label.textContent}`);
            const observer = new MutationObserver(record);
            for (const el of [bar, label]) {
                observer.observe(el, {subtree: true, childList: true, characterData: true,
                                      attributes: true});
            }
        }"""
    )
    # As on JupyterHub, Binder or through an SSH tunnel: the browser cannot reach the kernel's
    # 127.0.0.1 sandbox, so the images can only arrive as bytes sent by the kernel.
    direct_loads: list[str] = []

    def unreachable(route: Route) -> None:
        direct_loads.append(route.request.url)
        route.abort()

    lab.page.route("**/sandbox/images/**", unreachable)
    role(widget, "generate").click()
    count = wait_images_loaded(widget)
    wait_status(lab, "w", "SUCCESS")
    seen = [str(t) for t in lab.page.evaluate("window.__sirayProgress")]
    return Generated(shown, seen, count, direct_loads)


def test_generate_shows_task_id_progress_and_images(
    lab: NotebookPage, widget: Locator, generated: Generated
) -> None:
    """Generate shows the task id Python has, progress up to 100 % and decoded images."""
    task_id = role(widget, "task-id").inner_text().strip()
    assert task_id, "no task id shown"
    assert task_id == lab.run("print(w.task_id)").strip()
    assert generated.progress_seen, "the progress bar never changed"
    moving = [t for t in generated.progress_seen if t.split("|")[0] not in ("0", "100")]
    assert moving, f"no progress between 0 and 100 shown: {generated.progress_seen}"
    for seen in moving:
        now, value, label = seen.split("|")
        assert now == value, f"bar value {value} and aria-valuenow {now} differ"
        assert label == f"{now}%", f"label {label!r} does not match the bar ({now})"
    assert generated.progress_seen[-1] == "100|100|100%", (
        f"progress did not end at 100 %: {generated.progress_seen}"
    )
    assert role(widget, "progress").get_attribute("aria-valuenow") == "100"
    assert role(widget, "percent").inner_text().strip() == "100%"
    assert "SUCCESS" in role(widget, "status").inner_text().upper()
    assert generated.image_count >= 1
    outputs = json.loads(lab.run("import json; print(json.dumps(list(w.outputs)))"))
    urls, srcs = image_sources(widget)
    assert urls == outputs, f"outputs {outputs} not all shown ({urls})"
    # Sandbox URLs are 127.0.0.1: shown from the kernel's bytes, never loaded by the page.
    assert all(src.startswith("blob:") for src in srcs), srcs
    assert generated.direct_loads == []
    downloads = role(widget, "images").locator("a[data-role=download]")
    assert downloads.evaluate_all("els => els.map(e => e.download)") == [
        f"{task_id}-{i + 1}.png" for i in range(len(outputs))
    ]


def test_downloads_are_named_by_task_and_image(
    lab: NotebookPage, widget: Locator, generated: Generated
) -> None:
    """Issue 7, bug 8: every run's images used to save as ``siray-2.png`` and the viewer's
    as a UUID. Both save as ``<task_id>-<n>.png`` (docs/widget-contract.md, "DOM")."""
    task_id = role(widget, "task-id").inner_text().strip()
    with lab.page.expect_download() as caught:
        role(widget, "images").locator("a[data-role=download]").nth(1).click()
    assert caught.value.suggested_filename == f"{task_id}-2.png"
    role(widget, "images").locator("button.siray-thumb").nth(2).click()
    viewer = role(widget, "viewer")
    viewer.wait_for(state="visible")
    with lab.page.expect_download() as caught:
        role(widget, "viewer-download").click()
    assert caught.value.suggested_filename == f"{task_id}-3.png"
    lab.page.keyboard.press("ArrowRight")
    with lab.page.expect_download() as caught:
        role(widget, "viewer-download").click()
    assert caught.value.suggested_filename == f"{task_id}-4.png"
    lab.page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")


def test_request_panel_equals_the_body_the_sandbox_received(
    lab: NotebookPage, widget: Locator, generated: Generated
) -> None:
    """The panel's text was byte-for-byte the create body the sandbox got, random seed
    included; now it shows the seed drawn for the next run (docs/widget-contract.md, "Seeds")."""
    received = lab.run(
        "import json\nfrom siray_widgets import sandbox\n"
        "print(json.dumps(sandbox.shared().received_bodies()[-1].decode()))"
    )
    assert json.loads(received) == generated.shown_body
    now = json.loads(request_text(widget))
    sent = json.loads(generated.shown_body)
    assert now["seed"] != sent["seed"]
    assert {**now, "seed": sent["seed"]} == sent
    assert str(now["seed"]) == lab.run("print(w.next_seed)").strip()


def test_markup_prompt_is_shown_as_text(
    lab: NotebookPage, widget: Locator, generated: Generated
) -> None:
    """``<img src=x onerror=alert(1)>`` stays text: no dialog, no injected element."""
    assert XSS in request_text(widget)
    assert json.loads(request_text(widget))["prompt"] == XSS
    assert widget.locator('img[src="x"]').count() == 0
    assert lab.page.locator('img[src="x"]').count() == 0
    assert not lab.dialogs, f"a dialog opened: {lab.dialogs}"


# --------------------------------------------------------------------------------------------
# Look
# --------------------------------------------------------------------------------------------


def _colors(widget: Locator) -> tuple[str, str]:
    """The widget root's computed text and background colours."""
    color, background = widget.evaluate(
        "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
    )
    return str(color), str(background)


def test_screenshots_in_light_and_dark_theme(
    lab: NotebookPage, widget: Locator, generated: Generated, artifacts_dir: Path
) -> None:
    """Screenshots of the widget in both themes; its text colour follows the theme."""
    light_png = artifacts_dir / "widget-light.png"
    dark_png = artifacts_dir / "widget-dark.png"
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=light_png)
    light = _colors(widget)
    badge_contrast = {"light": contrast(role(widget, "sandbox-badge"))}
    try:
        lab.set_theme("JupyterLab Dark")
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=dark_png)
        dark = _colors(widget)
        badge_contrast["dark"] = contrast(role(widget, "sandbox-badge"))
    finally:
        lab.set_theme("JupyterLab Light")
    for png in (light_png, dark_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    assert light[0] != dark[0], f"text colour {light[0]} did not change with the dark theme"
    for theme, ratio in badge_contrast.items():
        assert ratio >= 4.5, f"sandbox badge contrast {ratio:.2f}:1 in the {theme} theme"


def test_images_come_back_after_the_page_is_reloaded(
    lab: NotebookPage, widget: Locator, generated: Generated
) -> None:
    """Image bytes are not saved state: a reloaded page asks the kernel for them again."""
    outputs = json.loads(lab.run("import json; print(json.dumps(list(w.outputs)))"))
    lab.save()
    lab.page.reload()
    lab.wait_for_kernel_idle()
    widget.wait_for(state="visible")
    # At once the saved thumbnails, then the full images from the kernel's bytes.
    assert wait_images_loaded(widget) == len(outputs)
    lab.page.wait_for_function(
        "el => [...el.querySelectorAll('img')].every(i => i.src.startsWith('blob:'))",
        arg=role(widget, "images").element_handle(),
    )
    assert wait_images_loaded(widget) == len(outputs)
    urls, srcs = image_sources(widget)
    assert urls == outputs
    assert all(src.startswith("blob:") for src in srcs), srcs
    assert generated.direct_loads == []  # still none loaded by the page itself


def test_a_busy_kernel_is_not_called_dead(lab: NotebookPage, widget: Locator) -> None:
    """No answer to Generate for 15 s while the kernel works on it: the kernel is busy, the
    request stays pending, and the view is not called cut off (docs/widget-contract.md,
    "Connection")."""
    from playwright.sync_api import expect

    # A kernel busy with the message itself (an old kernel without a subshell for widget
    # messages, behind a long cell, looks the same to the page).
    lab.run(
        "import time\nw.on_msg(w._on_custom_msg, remove=True)\nw.on_msg(lambda *_: time.sleep(40))"
    )
    lab.page.clock.install()  # the last test on this page: JupyterLab's timers stop too
    generate = role(widget, "generate")
    generate.click()
    lab.page.clock.run_for(16_000)
    pending = role(widget, "pending")
    expect(pending).to_contain_text("busy")
    expect(generate).to_be_disabled()  # still waiting for the answer: no second request
    expect(role(widget, "connection")).to_be_hidden()
    assert widget.get_attribute("data-link") == "slow"
    assert "restart" not in role(widget, "error").inner_text().lower()


# --------------------------------------------------------------------------------------------
# The key
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_key_is_nowhere_in_the_page_or_saved_notebook(
    browser: Browser, lab_server: JupyterServer, test_api_key: str
) -> None:
    """A key from the env, then typed into the widget: used, but never in the DOM or the file."""
    from playwright.sync_api import expect

    nb = open_notebook(browser, lab_server, "keyed.ipynb", KEYED_CELLS)
    try:
        nb.run_cell(0)
        nb.run_cell(1)
        widget = nb.widget(1)
        widget.wait_for(state="visible")
        expect(role(widget, "sandbox-badge")).to_be_hidden()
        eval_until(nb, "print(k.sandbox, k.key_source)", "False environment")

        # 1. The key from SIRAY_API_KEY reaches the keyed server.
        role(widget, "generate").click()
        wait_images_loaded(widget)
        wait_status(nb, "k", "SUCCESS")
        eval_until(nb, "print(len(_server.received_bodies()))", "1")

        # 2. The same key typed into the widget's password field goes to Python once.
        widget.locator("details.siray-key > summary").click()
        key_input = role(widget, "api-key")
        key_input.fill(test_api_key)
        role(widget, "set-key").click()
        expect(key_input).to_have_value("")
        eval_until(nb, "print(k.sandbox, k.key_source)", "False widget")
        eval_until(nb, f'print(k.api_key.reveal() == os.environ["{TEST_KEY_ENV}"])', "True")
        first_task = nb.run("print(k.task_id)").strip()
        role(widget, "generate").click()
        # A new task that succeeded: the keyed server accepted the typed key.
        eval_until(nb, f"print(k.task_id not in ('', {first_task!r}) and k.status)", "SUCCESS")
        eval_until(nb, "print(len(_server.received_bodies()))", "2")
        wait_images_loaded(widget)
        expect(role(widget, "sandbox-badge")).to_be_hidden()

        leaked = secret_in(nb.page.content(), test_api_key)
        assert not leaked, "the API key appears in the page HTML"
        values = nb.page.evaluate(
            "() => [...document.querySelectorAll('input, textarea')].map(e => e.value).join(' ')"
        )
        leaked = secret_in(values, test_api_key)
        assert not leaked, "the API key is the value of an input in the page"

        saved = nb.save()
        states = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
        widget_states = [
            m["state"] for m in states["state"].values() if "request_json" in m.get("state", {})
        ]
        assert widget_states, "the saved notebook holds no ImagineWidget state"
        assert all(s["sandbox"] is False for s in widget_states)
        leaked = secret_in(nb.path.read_text(), test_api_key)
        assert not leaked, "the API key appears in the saved notebook"
    finally:
        close_page(nb)


# --------------------------------------------------------------------------------------------
# Notebook 7
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_notebook7_renders_and_generates(browser: Browser, notebook_server: JupyterServer) -> None:
    """Smoke path in Notebook 7: the widget renders and Generate shows images."""
    from playwright.sync_api import expect

    nb = open_notebook(browser, notebook_server, "smoke.ipynb", (WIDGET_CELL,))
    try:
        nb.run_cell(0)
        widget = nb.widget(0)
        widget.wait_for(state="visible")
        assert json.loads(request_text(widget))["prompt"] == "a lighthouse at dusk"
        role(widget, "generate").click()
        expect(role(widget, "task-id")).to_have_text(re.compile(r"\S"), timeout=30_000)
        assert wait_images_loaded(widget) >= 1
        wait_status(nb, "w", "SUCCESS")
        assert not nb.foreign_errors, f"uncaught errors in the page: {nb.foreign_errors}"
    finally:
        close_page(nb)
