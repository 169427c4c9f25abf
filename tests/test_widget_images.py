"""Images on this machine reach the page as bytes: a remote browser cannot load 127.0.0.1.

On JupyterHub, Binder, Codespaces or through an SSH tunnel, the kernel and the sandbox run on
one machine and the browser on another. The widget sends each loopback image's bytes in a
custom message with binary buffers (never state, so never saved in the notebook); the page
shows them through blob: URLs, and asks again (``fetch-images``) after a reload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from fixtures.widget_fixtures import MakeWidget, custom_messages, send, until

from siray_widgets._widget_snippets import is_local_url, is_safe_image_url
from siray_widgets._widget_tasks import fetch_images
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.widget import Generation, ImagineWidget

pytestmark = pytest.mark.usefixtures("no_siray_env")

PNG = b"\x89PNG\r\n\x1a\n"


def image_messages(w: ImagineWidget) -> list[tuple[dict[str, Any], list[bytes]]]:
    return custom_messages(w, "image-data")


def run_and_wait_for_bytes(w: ImagineWidget) -> tuple[Generation, dict[str, Any], list[bytes]]:
    async def main() -> Generation:
        g = w.generate()
        await g
        await until(lambda: bool(image_messages(w)))
        return g

    g = asyncio.run(main())
    content, buffers = image_messages(w)[-1]
    return g, content, buffers


def test_a_run_sends_the_bytes_of_its_loopback_images(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    g, content, buffers = run_and_wait_for_bytes(w)
    assert len(g.images) >= 1
    assert all(is_local_url(url) for url in g.images)
    assert content["urls"] == g.images
    assert content["types"] == ["image/png"] * len(g.images)
    assert content["failed"] == []
    assert len(buffers) == len(g.images)
    for url, data in zip(g.images, buffers, strict=True):
        assert data.startswith(PNG)
        assert data == httpx.get(url, follow_redirects=True).content  # what the URL serves
    # Bytes are messages, not state: nothing of them is synced or saved with the notebook.
    state = w.get_state()
    assert w.outputs == g.images
    assert not [k for k, v in state.items() if isinstance(v, (bytes, bytearray, memoryview))]
    assert not any(b[:64].hex() in json.dumps(state, default=bytes.hex) for b in buffers)


def test_a_reloaded_page_asks_again_and_gets_only_known_images(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    g, _, _ = run_and_wait_for_bytes(w)
    before = len(image_messages(w))
    foreign = [
        f"{sandbox.base_url}/sandbox/images/not-a-run-of-this-widget/1.png",
        "http://127.0.0.1:1/anything.png",
        "https://cdn.example.com/a.png",
    ]

    async def main() -> dict[str, Any]:
        reply = send(w, "fetch-images", urls=[g.images[0], *foreign, 42])
        await until(lambda: len(image_messages(w)) > before)
        return reply

    reply = asyncio.run(main())
    assert reply["ok"]
    assert reply["urls"] == [g.images[0]]  # the kernel never fetches what the page names
    content, buffers = image_messages(w)[-1]
    assert content["urls"] == [g.images[0]]
    assert buffers[0] == httpx.get(g.images[0], follow_redirects=True).content


def test_images_elsewhere_are_left_to_the_browser(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_widget()
    spawned: list[str] = []

    def spawn(coro: Coroutine[Any, Any, None], *_: Any) -> None:
        spawned.append(type(coro).__name__)
        coro.close()  # not run: only whether the bytes would be fetched is asked here

    monkeypatch.setattr(w, "_spawn", spawn)
    assert w._send_images(["https://cdn.siray.ai/a.png", "data:image/png;base64,AAAA"]) == []
    assert spawned == []
    local = "http://localhost:8000/sandbox/images/t/1.png"
    assert w._send_images([local, local]) == [local]
    assert len(spawned) == 1


def test_images_that_cannot_be_fetched_are_reported_as_failed(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    box = make_sandbox()
    urls = [
        f"{box.base_url}/openapi.json",  # answers, but not with an image
        f"{box.base_url}/sandbox/images/no-such-task/1.png",  # 404
        "http://127.0.0.1:1/closed-port.png",  # nothing listens
    ]
    found, failed = asyncio.run(fetch_images(urls, timeout=5))
    assert found == []
    assert failed == urls


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8765/sandbox/images/t/1.png", True),
        ("http://127.9.8.7/x.png", True),
        ("https://localhost/x.png", True),
        ("http://LOCALHOST:80/x.png", True),
        ("http://[::1]:8000/x.png", True),
        ("http://app.localhost/x.png", True),
        ("https://cdn.siray.ai/x.png", False),
        ("http://10.0.0.5/x.png", False),
        ("http://128.0.0.1/x.png", False),
        ("http://localhost.example.com/x.png", False),
        ("ftp://127.0.0.1/x.png", False),
        ("data:image/png;base64,AAAA", False),
        ("http://[::1/x.png", False),  # not a URL
    ],
)
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://cdn.siray.ai/x.png", True),
        ("data:image/png;base64,AAAA", True),
        ("DATA:IMAGE/JPEG;base64,AAAA", True),
        ("data:image/webp,AAAA", True),
        ("data:image/svg+xml,<svg onload=alert(1)>", False),  # a download that runs script
        ("data:image/svg+xml;base64,PHN2Zz4=", False),
        ("blob:http://127.0.0.1/abc", False),  # only the page makes blob: URLs, from bytes
        ("javascript:alert(1)", False),
    ],
)
def test_only_http_and_raster_data_urls_are_safe(url: str, safe: bool) -> None:
    assert is_safe_image_url(url) is safe
