"""The widget against hostile servers (issue 11): what the kernel fetches, what it keeps, and a
Generate right after a Cancel. Real HTTP to the tests' fault server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest
from fixtures.fault_server import (
    CREATE,
    TEST_KEY,
    FaultServer,
    Reply,
    created,
    task_path,
    task_reply,
)
from fixtures.widget_fixtures import FAST, MakeWidget, custom_messages, run_of, send, until

from siray_widgets._widget_tasks import Generation, describe_error
from siray_widgets.config import Secret
from siray_widgets.errors import AuthenticationError
from siray_widgets.schema import ImageRequest
from siray_widgets.widget import ImagineWidget

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def pointed_at(w: ImagineWidget, server: FaultServer) -> ImagineWidget:
    w.base_url = server.url
    w.api_key = TEST_KEY
    w.poll = FAST
    return w


def run_once(w: ImagineWidget) -> Generation:
    """Generate and wait for the run to settle, however it ends."""

    async def main() -> Generation:
        g = w.generate()
        await asyncio.wait_for(_settled(g), 20)
        return g

    return asyncio.run(main())


async def _settled(g: Generation) -> None:
    with contextlib.suppress(BaseException):
        await g


# --- 4. the kernel fetches only its own sandbox's images ------------------------------------


def test_loopback_urls_named_by_another_origin_are_never_fetched(
    make_widget: MakeWidget, fault_server: FaultServer
) -> None:
    # main: after a run the kernel GET every loopback URL in outputs, e.g. an admin endpoint
    # of another local service, named by the API.
    admin = FaultServer()
    try:
        trap = [f"{admin.url}/internal/admin?action=drop-all", f"{admin.url}/img/1.png"]
        fault_server.on("POST", CREATE, created("t1"))
        fault_server.on("GET", task_path("t1"), task_reply("t1", outputs=trap))
        w = pointed_at(make_widget(), fault_server)
        g = run_once(w)
        assert g.state == "success"
        assert g.local_images() == []
        reply = send(w, "fetch-images", urls=trap)
        assert reply["urls"] == []

        async def settle() -> None:
            await asyncio.sleep(0.3)

        asyncio.run(settle())
        assert admin.seen == []
    finally:
        admin.close()


def test_the_kernel_fetches_at_most_a_tasks_worth_of_images_from_its_own_api(
    make_widget: MakeWidget, fault_server: FaultServer
) -> None:
    # main: 2,000 URLs in outputs were all fetched at once (83 s of a stalled loop).
    urls = [f"{fault_server.url}/img/{n}.png" for n in range(16)]
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.on("GET", task_path("t1"), task_reply("t1", outputs=urls))
    for n in range(16):
        fault_server.always("GET", f"/img/{n}.png", Reply(200, PNG, {"Content-Type": "image/png"}))
    w = pointed_at(make_widget(), fault_server)

    async def main() -> None:
        g = w.generate()
        await g
        await until(lambda: bool(custom_messages(w, "image-data")))

    asyncio.run(main())
    content, buffers = custom_messages(w, "image-data")[-1]
    assert content["urls"] == urls[:4]
    assert buffers == [PNG] * 4
    assert sum(1 for s in fault_server.seen if s.path.startswith("/img/")) == 4


def test_a_remote_api_gets_no_loopback_fetches() -> None:
    g = Generation(ImageRequest(prompt="a fox"))
    g.api_base_url = "https://api.siray.ai"
    g.task = None
    assert g.local_images() == []
    g.api_base_url = "http://127.0.0.1:8765"
    assert g.local_images() == []  # no outputs yet


def test_a_fetched_body_that_is_not_an_image_is_not_sent(
    make_widget: MakeWidget, fault_server: FaultServer
) -> None:
    url = f"{fault_server.url}/img/1.png"
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.on("GET", task_path("t1"), task_reply("t1", outputs=[url]))
    fault_server.always("GET", "/img/1.png", Reply(200, b'{"a": 1}', {"Content-Type": "image/png"}))
    w = pointed_at(make_widget(), fault_server)

    async def main() -> None:
        await w.generate()
        await until(lambda: bool(custom_messages(w, "image-data")))

    asyncio.run(main())
    content, buffers = custom_messages(w, "image-data")[-1]
    assert (content["urls"], content["failed"], buffers) == ([], [url], [])


# --- 9. a Generate right after a Cancel --------------------------------------------------------


def test_a_generate_right_after_a_cancel_is_not_ignored(
    make_widget: MakeWidget, fault_server: FaultServer
) -> None:
    # main: within two loop turns of a Cancel the cancelled run still said "starting", and
    # the new Generate was silently ignored as a double click.
    fault_server.always("POST", CREATE, created("t1"))
    fault_server.always("GET", task_path("t1"), task_reply("t1"))
    w = pointed_at(make_widget(), fault_server)

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        first = send(w, "generate", body=w.request_json)
        send(w, "cancel")
        second = send(w, "generate", body=w.request_json)
        await _settled(run_of(w, second))
        return first, second

    first, second = asyncio.run(main())
    assert not second["ignored"]
    assert second["run"] != first["run"]
    assert run_of(w, second).state == "success"


def test_a_double_click_is_still_one_task(
    make_widget: MakeWidget, fault_server: FaultServer
) -> None:
    fault_server.always("POST", CREATE, created("t1"))
    fault_server.always("GET", task_path("t1"), task_reply("t1"))
    w = pointed_at(make_widget(), fault_server)

    async def main() -> dict[str, Any]:
        send(w, "generate", body=w.request_json)
        second = send(w, "generate", body=w.request_json)
        await _settled(w.runs[0])
        return second

    assert asyncio.run(main())["ignored"]
    assert len(fault_server.creates()) == 1


# --- 2. the README's claim, as written, against a server that echoes the key --------------------


def test_the_key_is_in_no_trait_repr_log_or_error_even_when_the_server_echoes_it(
    make_widget: MakeWidget, fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    # main: the echoed key reached the saved `error` and `tasks` traits, the Task that
    # `task = await w.generate()` returns (and so a saved notebook), and httpx's log.
    for name in ("", "httpx", "httpcore", "siray_widgets", "stamina"):
        caplog.set_level(logging.DEBUG, logger=name)
    echo = f"https://cdn.example/img.png?k={TEST_KEY}"
    fault_server.on("POST", CREATE, created("t1"), created("t2"))
    fault_server.always("GET", task_path("t1"), task_reply("t1", outputs=[echo]))
    fault_server.always(
        "GET", task_path("t2"), task_reply("t2", "FAILURE", fail_reason=f"bad {TEST_KEY}")
    )
    w = pointed_at(make_widget(), fault_server)
    results: list[Any] = []

    async def main() -> None:
        task = await w.generate()  # the README's usage
        results.append(task)
        results.append((task.status, task.outputs))  # what the README's next line shows
        g = w.generate()
        await _settled(g)
        results.append(g)
        fault_server.on("POST", CREATE, Reply(401, b"", reason=f"refused {TEST_KEY}"))
        g = w.generate()
        await _settled(g)
        results.append(g)

    asyncio.run(main())
    assert results[0].outputs == ("https://cdn.example/img.png?k=***",)  # not vacuous
    assert "***" in w.error
    assert "refused" in w.error
    shown = [
        json.dumps(w.get_state(), default=repr),
        repr(w),
        *(repr(r) for r in results),
        json.dumps(results[0].to_json()),
        *(json.dumps(g.to_json()) for g in w.runs),
        *(r.getMessage() + repr(r.args) for r in caplog.records),
    ]
    for text in shown:
        assert TEST_KEY not in text


def test_describe_error_keeps_the_packages_own_words() -> None:
    # Issue 7, bug 7: with the sandbox's open key ("sandbox") the advice read "the offline ***".
    error = AuthenticationError("Invalid API key", status_code=401)
    text = describe_error(error, Secret("sandbox"))
    assert "offline sandbox" in text
    assert "***" not in text
    long_key = "sk-the-offline-sandbox-0123"
    echoed = AuthenticationError(f"Invalid API key {long_key}", status_code=401)
    text = describe_error(echoed, Secret(long_key))
    assert long_key not in text
    assert "Invalid API key ***" in text
    assert "offline sandbox" in text


def test_a_base_url_with_a_password_is_refused_by_the_widget(make_widget: MakeWidget) -> None:
    w = make_widget()
    with pytest.raises(ValueError, match="user name or password") as info:
        w.base_url = "https://me:hunter2secret@api.example.com"
    assert "hunter2secret" not in str(info.value)
    assert "hunter2secret" not in json.dumps(w.get_state(), default=repr)


def test_a_password_in_siray_base_url_stays_out_of_the_snippets(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRAY_BASE_URL", "https://me:hunter2secret@api.example.com")
    w = make_widget()
    w._refresh_connection()
    assert "hunter2secret" not in json.dumps(w.snippets)
    assert "api.example.com" in w.snippets["python"]
