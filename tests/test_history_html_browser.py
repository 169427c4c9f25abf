"""The static history page in a real (headless) Chromium: it filters without Python, shows
the inline thumbnails, and runs no script from the runs' texts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.store_fixtures import ImageServer, record_run
from playwright.sync_api import Browser

from siray_widgets import History
from siray_widgets.schema import ImageRequest
from siray_widgets.store import RunStore

pytestmark = [pytest.mark.browser]


def test_the_page_filters_in_the_browser(
    browser: Browser, store: RunStore, image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.serve_image("/t.png")
    record_run(
        store, ImageRequest(prompt="a red fox in snow"), outputs=[url, url], keep_images=True
    ).wait_images(30)
    record_run(
        store,
        ImageRequest(prompt="an owl <img src=x onerror=\"document.title='pwned'\">"),
        end="failure",
    )
    record_run(
        store, ImageRequest(prompt="a red kite"), outputs=[url], keep_images=True
    ).wait_images(30)
    history = History(store)
    history.star(history.list("kite")[0])
    path = history.html(tmp_path / "history.html")

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(path.as_uri())
        cards = page.locator("article")
        assert cards.count() == 3
        assert page.locator("#count").inner_text() == "3 of 3 runs"
        # Thumbnails are inline and decode.
        widths = page.eval_on_selector_all("article img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) >= 2
        assert all(w > 0 for w in widths)
        page.fill("#q", "red")
        assert page.locator("#count").inner_text() == "2 of 3 runs"
        page.fill("#q", "RED fox")
        assert page.locator("article:not([hidden])").count() == 1
        assert "fox" in page.locator("article:not([hidden]) .prompt").inner_text()
        page.fill("#q", "")
        page.select_option("#state", "failed")
        assert page.locator("#count").inner_text() == "1 of 3 runs"
        page.select_option("#state", "")
        page.check("#starred")
        assert page.locator("article:not([hidden]) .prompt").inner_text() == "a red kite"
        # The owl's prompt is text on the page, not an element that ran.
        assert "onerror" in page.locator("article").nth(1).inner_text()
        assert page.title() != "pwned"
        assert errors == []
    finally:
        page.close()
