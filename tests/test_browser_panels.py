"""The panel registry (issue 7, "Ready to grow"), in headless Chromium without JupyterLab.

``render`` composes the tabs listed in ``js/panels/index.ts``; a later panel joins as a tab,
built in or loaded lazily from the kernel (History; later Sweep). This bundles ``js/widget.ts``
with a test entry that adds a dummy tab, mounts it on a model double that holds a real
ImagineWidget's state, and checks the tab strip (ARIA tabs, keyboard), per-view ids, that
unmounting leaves no listener behind, and the lazy-module mechanism (the ``load-module`` message,
the module imported from a blob: URL, its CSS and settings) (docs/widget-contract.md, "Front
end layout", "Lazy panels"). The widget itself is tested in a real JupyterLab
by the other ``test_browser_*`` modules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]

ENTRY = """
import { mount } from "%(root)s/js/widget";
import { TABS } from "%(root)s/js/panels/index";

const history = {
  id: "history",
  label: "History",
  panels: [{
    area: "wide",
    mount(ctx) {
      const el = document.createElement("section");
      el.dataset.role = "dummy-history";
      el.id = ctx.id("history");
      el.textContent = "runs will be listed here";
      return el;
    },
  }],
};

/** A model double: the state of a real ImagineWidget, listeners counted, sends recorded;
 * `fire(name, ...args)` calls the listeners (a kernel's message: "msg:custom"). */
function fakeModel(state) {
  const listeners = new Map();
  const callbacks = new Map();
  const sent = [];
  return {
    sent,
    listeners,
    get: (name) => state[name],
    set: (name, value) => { state[name] = value; },
    save_changes() {},
    send(content) { sent.push(content); },
    on(name, cb) {
      listeners.set(name, (listeners.get(name) ?? 0) + 1);
      callbacks.set(name, [...(callbacks.get(name) ?? []), cb]);
    },
    off(name, cb) {
      listeners.set(name, (listeners.get(name) ?? 1) - 1);
      callbacks.set(name, (callbacks.get(name) ?? []).filter((c) => c !== cb));
    },
    fire(name, ...args) { for (const cb of callbacks.get(name) ?? []) cb(...args); },
    widget_manager: {},
  };
}

const lazy = { id: "lazy", label: "Lazy", panels: [], load: "demo" };
const GENERATE = TABS.filter((t) => !t.load);

window.sirayTest = { mount, GENERATE, history, lazy, fakeModel };
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(JS, CSS) of the widget plus the test entry, built by the project's esbuild."""
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    assert esbuild.exists(), "run `npm install` (pip install -e . does it)"
    assert shutil.which("node"), "node is needed to build the front end"
    folder = tmp_path_factory.mktemp("panels")
    (folder / "entry.ts").write_text(ENTRY % {"root": ROOT.as_posix()})
    subprocess.run(
        [str(esbuild), str(folder / "entry.ts"), "--bundle", "--format=iife",
         f"--outdir={folder / 'out'}", "--log-level=warning"],
        check=True,
    )  # fmt: skip
    return (folder / "out" / "entry.js").read_text(), (folder / "out" / "entry.css").read_text()


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """A real widget's synced state, as the page would receive it."""
    from siray_widgets.widget import ImagineWidget

    widget = ImagineWidget(prompt="a fox")
    try:
        return dict(json.loads(json.dumps(widget.get_state(), default=str)))
    finally:
        widget.close()


@pytest.fixture
def page(browser: Browser, bundle: tuple[str, str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    page.set_content("<!doctype html><html><body><div id='one'></div><div id='two'></div>")
    page.add_style_tag(content=bundle[1])
    page.add_script_tag(content=bundle[0])
    yield page
    context.close()


def mount(page: Page, state: dict[str, Any], where: str, *, extra: bool | str) -> None:
    page.evaluate(
        """([state, where, extra]) => {
            const t = window.sirayTest;
            const model = t.fakeModel(structuredClone(state));
            const tabs = [...t.GENERATE, ...(extra ? [extra === "lazy" ? t.lazy : t.history] : [])];
            window[`model_${where}`] = model;
            window[`unmount_${where}`] = t.mount(model, document.getElementById(where), tabs);
        }""",
        [state, where, extra],
    )


def test_one_tab_shows_no_strip(page: Page, state: dict[str, Any]) -> None:
    mount(page, state, "one", extra=False)
    root = page.locator("#one .siray-widget")
    assert root.locator("[role=tablist]").is_hidden()
    assert root.locator("[role=tab]").count() == 1
    assert root.locator("[role=tabpanel]").count() == 0
    assert root.locator('[data-role="generate"]').is_visible()
    assert page.evaluate("window.model_one.sent.map(m => m.kind)") == ["hello"]


def test_a_second_tab_joins_the_strip_and_works_by_keyboard(
    page: Page, state: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    mount(page, state, "one", extra=True)
    root = page.locator("#one .siray-widget")
    strip = root.locator("[role=tablist]")
    expect(strip).to_be_visible()
    tabs = strip.locator("[role=tab]")
    expect(tabs).to_have_text(["Generate", "History"])
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    panels = root.locator("[role=tabpanel]")
    expect(panels).to_have_count(2)
    for i in range(2):
        controls = tabs.nth(i).get_attribute("aria-controls")
        assert controls
        assert panels.nth(i).get_attribute("id") == controls
        assert panels.nth(i).get_attribute("aria-labelledby") == tabs.nth(i).get_attribute("id")
    expect(root.locator('[data-role="dummy-history"]')).to_be_hidden()
    tabs.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_be_focused()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(tabs.nth(0)).to_have_attribute("tabindex", "-1")
    expect(root.locator('[data-role="dummy-history"]')).to_be_visible()
    expect(root.locator('[data-role="generate"]')).to_be_hidden()
    page.keyboard.press("ArrowRight")  # wraps
    expect(tabs.nth(0)).to_be_focused()
    page.keyboard.press("End")
    expect(tabs.nth(1)).to_be_focused()
    page.keyboard.press("Home")
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    tabs.nth(1).click()
    expect(root.locator('[data-role="dummy-history"]')).to_be_visible()


def test_two_views_never_share_an_id_and_unmounting_leaves_no_listener(
    page: Page, state: dict[str, Any]
) -> None:
    mount(page, state, "one", extra=True)
    mount(page, state, "two", extra=True)
    ids: list[str] = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)")
    ids = [i for i in ids if i not in ("one", "two")]
    assert len(ids) > 40
    assert len(ids) == len(set(ids))
    listening = page.evaluate(
        "() => [...window.model_one.listeners.values()].reduce((a, b) => a + b)"
    )
    assert listening > 10
    page.evaluate("() => window.unmount_one()")
    left = page.evaluate(
        "() => Object.fromEntries([...window.model_one.listeners].filter(([, n]) => n))"
    )
    assert left == {}
    assert page.locator("#one .siray-widget").count() == 0
    assert page.locator("#two .siray-widget").count() == 1


DEMO = """export default (config) => [{
  area: "wide",
  mount(ctx) {
    const el = document.createElement("p");
    el.dataset.role = "demo";
    el.id = ctx.id("demo");
    el.className = "siray-demo";
    el.textContent = `loaded with n=${config.n}`;
    return el;
  },
}];"""


def answer(page: Page, where: str, kind: str, **content: Any) -> None:
    """The kernel's reply to the last ``kind`` message the view sent."""
    page.evaluate(
        """([where, kind, content]) => {
            const model = window[`model_${where}`];
            const msg = model.sent.filter((m) => m.kind === kind).at(-1);
            model.fire("msg:custom", { kind: `${kind}-response`, id: msg.id, ...content }, []);
        }""",
        [where, kind, content],
    )


def test_a_lazy_tab_loads_its_module_from_the_kernel_once(
    page: Page, state: dict[str, Any]
) -> None:
    """Shown the first time, a tab with ``load`` asks for its module (``load-module``), imports
    the text from a blob: URL, calls the default export with the settings, mounts the panels
    and adds the CSS; shown again, it asks nothing more."""
    from playwright.sync_api import expect

    mount(page, state, "one", extra="lazy")
    root = page.locator("#one .siray-widget")
    kinds = "window.model_one.sent.map(m => m.kind + (m.name ? ':' + m.name : ''))"
    assert page.evaluate(kinds) == ["hello"]  # nothing loads before the tab is shown
    root.locator("[role=tab][data-tab=lazy]").click()
    assert page.evaluate(kinds) == ["hello", "load-module:demo"]
    expect(root.locator('[data-role="loading"]')).to_have_text("Loading…")
    css = ".siray-widget .siray-demo { color: rgb(1, 2, 3); }"
    answer(page, "one", "load-module", ok=True, code=DEMO, css=css, config={"n": 7})
    demo = root.locator('[data-role="demo"]')
    expect(demo).to_have_text("loaded with n=7")
    expect(demo).to_have_css("color", "rgb(1, 2, 3)")
    expect(root.locator('[data-role="loading"]')).to_have_count(0)
    root.locator("[role=tab][data-tab=generate]").click()
    expect(demo).to_be_hidden()
    root.locator("[role=tab][data-tab=lazy]").click()
    expect(demo).to_be_visible()
    assert page.evaluate(kinds) == ["hello", "load-module:demo"]


def test_a_lazy_tab_says_why_it_could_not_load(page: Page, state: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    mount(page, state, "one", extra="lazy")
    root = page.locator("#one .siray-widget")
    root.locator("[role=tab][data-tab=lazy]").click()
    answer(page, "one", "load-module", ok=False, error="the demo panel is not built")
    expect(root.locator('[data-role="loading"]')).to_have_text("the demo panel is not built")
    mount(page, state, "two", extra="lazy")
    two = page.locator("#two .siray-widget")
    two.locator("[role=tab][data-tab=lazy]").click()
    answer(page, "two", "load-module", ok=True, code="export default 42;", css="", config={})
    expect(two.locator('[data-role="loading"]')).to_contain_text("not a function")
