"""Issue 7, bugs 3, 6, 7, 12 and 13, as a user meets them, in a real JupyterLab.

One page (``runs.ipynb``): cell 0 holds the widget ``w`` (polling fast) and four sandboxes made
in the kernel: ``slow`` (tasks stall in progress), ``failing`` (every task fails with the
"upstream timeout" reason), ``keyed`` (accepts one key only). The tests run in order, as one
session: paste a Midjourney prompt, generate with seeds, cancel, fail, retry, copy.
DOM roles and messages: docs/widget-contract.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
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

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Locator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = (
    "from siray_widgets import ImagineWidget, PollSchedule, parse_prompt, sandbox\n"
    "slow = sandbox.start(duration=1, stall_at=40)\n"
    "failing = sandbox.start(failure_share=1.0, seed=5, duration=0.3)  # seed 5: timeouts\n"
    'keyed = sandbox.start(api_key="the-only-good-key-0123456789")\n'
    'w = ImagineWidget(prompt="a lighthouse")\n'
    "w.poll = PollSchedule.fixed(0.1)\n"
    "w"
)
PASTED = "a fox --ar 16:9 --s 250 --chaos 20 --no people"


@pytest.fixture(scope="module")
def lab(browser: Browser, lab_server: JupyterServer) -> Iterator[NotebookPage]:
    nb = open_notebook(
        browser,
        lab_server,
        "runs.ipynb",
        (CELL,),
        permissions=("clipboard-read", "clipboard-write"),
    )
    nb.run_cell(0)
    yield nb
    close_page(nb)


@pytest.fixture(scope="module")
def widget(lab: NotebookPage) -> Locator:
    root = lab.widget(0)
    root.wait_for(state="visible")
    return root


def clipboard(nb: NotebookPage) -> str:
    return str(nb.page.evaluate("() => navigator.clipboard.readText()"))


def generate_and_wait(nb: NotebookPage, widget: Locator, status: str) -> None:
    before = int(nb.run("print(len(w.runs))").strip())
    role(widget, "generate").click()
    eval_until(nb, "print(len(w.runs))", str(before + 1))
    wait_status(nb, "w", status)


# -- bug 3: a pasted Midjourney prompt --------------------------------------------------------


def test_a_pasted_midjourney_prompt_sets_the_controls(lab: NotebookPage, widget: Locator) -> None:
    """Pasted, the suffix is read at once by Python's parse_prompt: the controls follow, the
    prompt keeps only the text, and one line says what was set."""
    from playwright.sync_api import expect

    lab.page.evaluate("text => navigator.clipboard.writeText(text)", PASTED)
    prompt = field(widget, "prompt").locator("textarea")
    prompt.click()
    lab.page.keyboard.press("Control+A")
    lab.page.keyboard.press("Control+V")
    expect(prompt).to_have_value("a fox")
    hint = field(widget, "prompt").locator(".siray-hint")
    expect(hint).to_have_text(
        "Read from the suffix: aspect ratio 16:9, stylize 250, chaos 20, negative prompt “people”."
    )
    body = wait_request(widget, "prompt", "a fox")
    assert (body["aspect_ratio"], body["stylize"], body["chaos"]) == ("16:9", 250, 20)
    assert body["negative_prompt"] == "people"
    expect(field(widget, "aspect_ratio").locator("input:checked")).to_have_value("16:9")
    expect(field(widget, "stylize").locator("input[type=number]")).to_have_value("250")
    expect(field(widget, "negative_prompt").locator("textarea")).to_have_value("people")
    eval_until(lab, "print(w.prompt, w.aspect_ratio, w.stylize, w.chaos)", "a fox 16:9 250 20")


def test_a_typed_suffix_is_read_before_generate_sends(lab: NotebookPage, widget: Locator) -> None:
    """Typed, the suffix is read when the field is left: a click on Generate sends the prompt
    text and the fields the flags set, never the flags as prompt text."""
    prompt = field(widget, "prompt").locator("textarea")
    prompt.click()
    lab.page.keyboard.press("End")
    lab.page.keyboard.type(" --ar 1:1 --c 5")
    assert "--ar" not in json.loads(request_text(widget))["prompt"]
    generate_and_wait(lab, widget, "SUCCESS")
    sent = json.loads(lab.run("print(w.runs[-1].request_json)"))
    assert (sent["prompt"], sent["aspect_ratio"], sent["chaos"]) == ("a fox", "1:1", 5)
    assert prompt.input_value() == "a fox"


def test_an_unreadable_suffix_shows_the_parsers_message_and_blocks_generate(
    lab: NotebookPage, widget: Locator
) -> None:
    from playwright.sync_api import expect

    prompt = field(widget, "prompt").locator("textarea")
    prompt.click()
    lab.page.keyboard.press("End")
    lab.page.keyboard.type(" --v 6")
    lab.page.keyboard.press("Tab")
    hint = field(widget, "prompt").locator(".siray-hint")
    expect(hint).to_contain_text("--v 6: selects a Midjourney version")
    expect(prompt).to_have_attribute("aria-invalid", "true")
    expect(role(widget, "generate")).to_be_disabled()
    expect(prompt).to_have_value("a fox --v 6")  # nothing lost
    assert lab.run("print(w.prompt)").strip() == "a fox"
    prompt.click()
    for _ in range(len(" --v 6")):
        lab.page.keyboard.press("Backspace")
    expect(prompt).to_have_attribute("aria-invalid", "false")
    expect(role(widget, "generate")).to_be_enabled()


# -- bug 12: seeds ----------------------------------------------------------------------------


def test_a_typed_seed_is_shown_on_its_run_and_stays(lab: NotebookPage, widget: Locator) -> None:
    from playwright.sync_api import expect

    seed_box = field(widget, "seed").locator("input[type=number]")
    seed_box.fill("1234")
    wait_request(widget, "seed", 1234)
    generate_and_wait(lab, widget, "SUCCESS")
    expect(role(widget, "run-seed")).to_have_text("Seed 1234")
    expect(seed_box).to_have_value("1234")  # kept for the next run, not back to "random"
    assert json.loads(request_text(widget))["seed"] == 1234


def test_a_random_run_shows_the_seed_it_used_and_can_reuse_it(
    lab: NotebookPage, widget: Locator
) -> None:
    from playwright.sync_api import expect

    role(widget, "clear-seed").click()
    seed_box = field(widget, "seed").locator("input[type=number]")
    expect(seed_box).to_have_value("")
    expect(seed_box).to_have_attribute("placeholder", "random each run")
    drawn = json.loads(request_text(widget))["seed"]
    assert drawn == int(lab.run("print(w.next_seed)").strip())
    generate_and_wait(lab, widget, "SUCCESS")
    expect(role(widget, "run-seed")).to_have_text(f"Seed {drawn} (drawn at random)")
    # The seed the images were made with: in the sandbox's PNG metadata, and in the body.
    used = lab.run(
        "import json\n"
        "print(w.pil_images()[0].info['seed'], "
        "json.loads(sandbox.shared().received_bodies()[-1])['seed'])"
    ).split()
    assert used == [str(drawn), str(drawn)]
    assert json.loads(request_text(widget))["seed"] != drawn  # the next run draws anew
    role(widget, "use-seed").click()
    expect(seed_box).to_have_value(str(drawn))
    eval_until(lab, "print(w.seed)", str(drawn))
    expect(role(widget, "use-seed")).to_be_disabled()  # it is the seed in the box now


# -- bug 6: a cancelled run says cancelled everywhere ----------------------------------------


def test_a_cancelled_run_says_cancelled_everywhere(lab: NotebookPage, widget: Locator) -> None:
    from playwright.sync_api import expect

    lab.run("w.base_url, w.api_key = slow.base_url, slow.api_key")
    role(widget, "generate").click()
    status = role(widget, "status")
    expect(status).to_have_attribute("data-status", "IN_PROGRESS", timeout=20_000)
    role(widget, "cancel").click()
    expect(status).to_have_text("cancelled")
    wait_status(lab, "w", "IN_PROGRESS")  # the API's last word; the run itself is cancelled
    eval_until(lab, "print(w.runs[-1].state)", "cancelled")
    lab.page.wait_for_timeout(1000)  # and it stays so
    expect(status).to_have_text("cancelled")
    chip = role(widget, "tasks").locator("button").last
    expect(chip).to_have_text(re.compile(r"^#\d+ cancelled$"))
    timeline = role(widget, "timeline")
    expect(timeline.locator('li[data-step="cancelled"]')).to_have_attribute("data-state", "current")
    current = timeline.locator('li[data-state="current"]')
    expect(current).to_have_count(1)
    stopped = timeline.locator('li[data-step="IN_PROGRESS"]')
    expect(stopped).to_have_attribute("data-state", "stopped")
    expect(role(widget, "cancel")).to_be_disabled()
    expect(role(widget, "note")).to_contain_text("may still finish on the server")


# -- bug 13: a failure keeps the good images, says what to do, and retries -----------------


def test_a_failed_run_keeps_the_last_good_images_and_offers_retry(
    lab: NotebookPage, widget: Locator, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    lab.run("w.base_url, w.api_key = None, None")  # the shared sandbox: a good run first
    generate_and_wait(lab, widget, "SUCCESS")
    wait_images_loaded(widget)
    urls = json.loads(lab.run("import json; print(json.dumps(w.images))"))
    assert urls
    lab.run("w.base_url, w.api_key = failing.base_url, failing.api_key")
    generate_and_wait(lab, widget, "FAILURE")
    error = role(widget, "error")
    expect(error).to_contain_text("upstream timeout")
    expect(error).to_contain_text("The service had a problem, not your request")
    assert "change the prompt" not in error.inner_text()  # wrong advice for a timeout
    expect(role(widget, "images-note")).to_contain_text("the last that succeeded")
    shown = (
        role(widget, "images").locator("figure").evaluate_all("els => els.map(e => e.dataset.url)")
    )
    assert shown == urls
    assert wait_images_loaded(widget) == len(urls)
    widget.screenshot(path=artifacts_dir / "failure-keeps-images.png")
    failed_body = lab.run("print(w.runs[-1].request_json)")
    retry = role(widget, "retry")
    expect(retry).to_be_visible()
    retry.click()
    eval_until(lab, "print(len({g.request_json for g in w.runs[-2:]}), w.runs[-1].done)", "1 True")
    assert lab.run("print(w.runs[-1].request_json)") == failed_body


# -- bug 13: copy the whole Midjourney prompt; a timeline that reads well ------------------


def test_the_midjourney_copy_is_the_whole_prompt_without_defaults(
    lab: NotebookPage, widget: Locator
) -> None:
    widget.locator('[data-copy="suffix"]').click()
    lab.page.wait_for_function(
        "el => el.querySelector('.siray-swap > span:nth-child(2)').style.visibility === ''",
        arg=widget.locator('[data-copy="suffix"]').element_handle(),
    )
    copied = clipboard(lab)
    assert copied.startswith("a fox --")
    assert copied.endswith("--niji 7")
    for default in ("--chaos 0", "--weird 0", "--stylize 100", "--q 1", "--ar 1:1"):
        assert default not in copied
    assert copied == lab.run("print(w.snippets['suffix'])").strip()
    lab.page.evaluate("text => navigator.clipboard.writeText(text)", "")
    assert lab.run(f"print(parse_prompt({copied!r}) == w.request)").strip() == "True"


def test_the_timeline_reads_as_words(widget: Locator) -> None:
    steps = role(widget, "timeline").locator("li").all_text_contents()
    assert "accepted" in steps
    assert not [s for s in steps if "not start" in s.lower()]
    assert "in progress" in steps


# -- bug 7: the 401 text when no key was sent -----------------------------------------------


def test_a_401_without_a_key_says_none_was_sent(lab: NotebookPage, widget: Locator) -> None:
    from playwright.sync_api import expect

    lab.run("w.base_url, w.api_key = keyed.base_url, None")
    before = int(lab.run("print(len(w.runs))").strip())
    role(widget, "generate").click()
    eval_until(lab, "print(len(w.runs), w.runs[-1].state)", f"{before + 1} error")
    error = role(widget, "error")
    expect(error).to_contain_text("asked for an API key")
    expect(error).to_contain_text("none was sent")
    text = error.inner_text()
    assert "refused the key" not in text
    assert "remove the key" not in text
    expect(role(widget, "retry")).to_be_visible()
