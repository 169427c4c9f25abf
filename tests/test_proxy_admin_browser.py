"""The admin page in a real browser (headless Chromium): its forms work, and another site's
forms and scripts cannot use the instructor's remembered password to change anything."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.proxy_fixtures import ADMIN_TOKEN
from playwright.sync_api import Browser, BrowserContext, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from siray_widgets.proxy import ProxyHandle
from siray_widgets.sandbox.server import BackgroundServer
from siray_widgets.schema import CREATE_PATH, MODEL_ID

pytestmark = pytest.mark.browser

MakeProxy = Callable[..., ProxyHandle]
BODY = {"model": MODEL_ID, "prompt": "a fox", "aspect_ratio": "1:1"}


@pytest.fixture
def admin(browser: Browser) -> Iterator[BrowserContext]:
    """A browser that knows the admin password (as after the instructor typed it once)."""
    context = browser.new_context(
        http_credentials={"username": "admin", "password": ADMIN_TOKEN},
        viewport={"width": 1400, "height": 700},
    )
    yield context
    context.close()


def row(page: Page, name: str) -> str:
    return page.locator("tr", has_text=name).inner_text()


def test_the_admin_pages_forms_work_in_a_browser(
    make_proxy: MakeProxy, admin: BrowserContext
) -> None:
    p = make_proxy(participants=2, quota=5)
    page = admin.new_page()
    page.goto(p.base_url + "/admin")
    assert "active" in row(page, "participant-01")

    page.locator("tr", has_text="participant-01").get_by_role("button", name="Pause").click()
    page.wait_for_url(p.base_url + "/admin")
    assert "paused" in row(page, "participant-01")
    assert "active" in row(page, "participant-02")
    assert p.participant("participant-01").paused  # type: ignore[union-attr]

    page.locator("tr", has_text="participant-02").get_by_role("button", name="Top up").click()
    page.wait_for_url(p.base_url + "/admin")
    assert "0 / 10" in row(page, "participant-02")

    page.get_by_label("How many").fill("2")
    page.get_by_role("button", name="Add participants").click()
    page.get_by_role("heading", name="New participants").wait_for()
    shown = page.locator("tbody").inner_text()
    tokens = re.findall(r"workshop-[2-9a-z-]{23}", shown)
    assert len(tokens) == 2
    assert "participant-03" in shown
    made = httpx.post(
        p.base_url + CREATE_PATH, json=BODY, headers={"Authorization": f"Bearer {tokens[0]}"}
    )
    assert made.status_code == 200

    page.get_by_role("link", name="Back to the admin page").click()
    page.get_by_role("button", name="Pause everyone").click()
    page.wait_for_url(p.base_url + "/admin")
    assert all(u.paused for u in p.usage())
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("name,state,quota,used,left")
    assert "participant-03,paused,5,1,4" in text


@pytest.fixture
def attacker_site(make_proxy: MakeProxy) -> Iterator[Callable[[str], str]]:
    """Another origin serving a page that, once opened, tries to act on the proxy's admin."""
    pages: dict[str, str] = {}

    async def serve(request: Request) -> HTMLResponse:
        return HTMLResponse(pages[request.path_params["name"]])

    server = BackgroundServer(Starlette(routes=[Route("/{name}", serve)]), "127.0.0.1", 0)
    server.start()

    def publish(html: str) -> str:
        name = f"page{len(pages)}"
        pages[name] = html
        return f"http://127.0.0.1:{server.port}/{name}"

    yield publish
    server.stop()


def test_another_sites_form_cannot_act_with_the_remembered_password(
    make_proxy: MakeProxy, admin: BrowserContext, attacker_site: Callable[[str], str]
) -> None:
    p = make_proxy(participants=2, quota=5)
    page = admin.new_page()
    page.goto(p.base_url + "/admin")  # the instructor's browser has logged in
    forged = attacker_site(
        f'<form method=post action="{p.base_url}/admin/action">'
        '<input name=action value=pause-all><input name=csrf value="guess"></form>'
        "<script>document.forms[0].submit()</script>"
    )
    with page.expect_response(p.base_url + "/admin/action") as answer:
        page.goto(forged)
    assert answer.value.status == 403
    scripted = attacker_site(
        "<script>fetch(" + repr(p.base_url + "/admin/api/pause-all") + ", {method: 'POST', "
        "mode: 'no-cors', credentials: 'include'}).then(() => document.title = 'sent', "
        "() => document.title = 'sent')</script>"
    )
    page.goto(scripted)
    page.wait_for_function("document.title === 'sent'")
    assert not any(u.paused for u in p.usage())
