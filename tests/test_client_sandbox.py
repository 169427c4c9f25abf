"""The client against the embedded sandbox: the real server it talks to by default."""

from __future__ import annotations

import asyncio

import pytest
from fixtures.fault_server import tiny_poll

from siray_widgets import ImageRequest, Task, TaskStatus
from siray_widgets.client import AsyncSirayClient, SirayClient
from siray_widgets.sandbox import SandboxHandle


def test_generate_against_the_sandbox_sends_the_shown_bytes(sandbox: SandboxHandle) -> None:
    request = ImageRequest(prompt="a paper crane on a desk", aspect_ratio="3:2", seed=11)
    statuses: list[TaskStatus] = []

    async def main() -> Task:
        async with AsyncSirayClient(sandbox.api_key, sandbox.base_url, poll=tiny_poll()) as c:
            return await c.generate(request, on_update=lambda t: statuses.append(t.status))

    task = asyncio.run(main())
    assert task.status is TaskStatus.SUCCESS
    assert task.outputs
    assert statuses[-1] is TaskStatus.SUCCESS
    assert sandbox.received_bodies()[-1] == request.to_json().encode("utf-8")


def test_no_key_and_no_url_uses_the_shared_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIRAY_API_KEY", raising=False)
    monkeypatch.delenv("SIRAY_BASE_URL", raising=False)
    monkeypatch.setenv("SIRAY_SANDBOX_DURATION", "0")
    with SirayClient(poll=tiny_poll()) as client:
        assert client.sandbox is True
        assert client.summary == "sandbox: placeholder images, no key used"
        task = client.generate(prompt="a lantern in fog")
    assert task.status is TaskStatus.SUCCESS
    assert task.outputs
