"""Where the client sends requests, with which key, and when it falls back to the sandbox."""

from __future__ import annotations

import asyncio
import pickle
import sys
import types
from dataclasses import dataclass

import pytest
from fixtures.fault_server import TEST_KEY, FaultServer, error_reply, task_path

import siray_widgets
from siray_widgets.client import AsyncSirayClient, RetryPolicy, SirayClient
from siray_widgets.config import DEFAULT_BASE_URL, Secret, resolve
from siray_widgets.errors import AuthenticationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIRAY_API_KEY", raising=False)
    monkeypatch.delenv("SIRAY_BASE_URL", raising=False)


@dataclass
class FakeSandbox:
    base_url: str = "http://127.0.0.1:9/"
    api_key: str = "sandbox-key"


@pytest.fixture
def sandbox_calls(monkeypatch: pytest.MonkeyPatch) -> list[FakeSandbox]:
    """Stand in for ``siray_widgets.sandbox`` and record each ``shared()`` call."""
    calls: list[FakeSandbox] = []

    def shared() -> FakeSandbox:
        calls.append(FakeSandbox())
        return calls[-1]

    fake = types.ModuleType("siray_widgets.sandbox")
    fake.shared = shared  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "siray_widgets.sandbox", fake)
    monkeypatch.delattr(siray_widgets, "sandbox", raising=False)
    return calls


def test_key_and_url_from_arguments(sandbox_calls: list[FakeSandbox]) -> None:
    settings = resolve("sk-arg", "https://proxy.example/siray/")
    assert settings.api_key == Secret("sk-arg")
    assert settings.key_source == "argument"
    assert settings.base_url == "https://proxy.example/siray"
    assert settings.sandbox is False
    assert sandbox_calls == []


def test_key_and_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sandbox_calls: list[FakeSandbox]
) -> None:
    monkeypatch.setenv("SIRAY_API_KEY", "sk-env")
    monkeypatch.setenv("SIRAY_BASE_URL", "https://env.example")
    settings = resolve()
    assert settings.api_key == Secret("sk-env")
    assert settings.key_source == "environment"
    assert settings.base_url == "https://env.example"
    assert sandbox_calls == []


def test_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIRAY_API_KEY", "sk-env")
    monkeypatch.setenv("SIRAY_BASE_URL", "https://env.example")
    settings = resolve("sk-arg", "https://arg.example")
    assert settings.api_key == Secret("sk-arg")
    assert settings.base_url == "https://arg.example"


def test_a_key_alone_goes_to_the_real_api(sandbox_calls: list[FakeSandbox]) -> None:
    settings = resolve("sk-arg")
    assert settings.base_url == DEFAULT_BASE_URL == "https://api.siray.ai"
    assert settings.sandbox is False
    assert sandbox_calls == []


def test_nothing_anywhere_means_the_sandbox(sandbox_calls: list[FakeSandbox]) -> None:
    client = AsyncSirayClient()
    assert len(sandbox_calls) == 1
    assert client.sandbox is True
    assert client.base_url == "http://127.0.0.1:9"
    assert client.has_key  # the sandbox's own key
    assert client.summary == "sandbox: placeholder images, no key used"
    assert "sandbox-key" not in repr(client)


def test_blank_values_count_as_unset(
    monkeypatch: pytest.MonkeyPatch, sandbox_calls: list[FakeSandbox]
) -> None:
    monkeypatch.setenv("SIRAY_API_KEY", "  ")
    monkeypatch.setenv("SIRAY_BASE_URL", "")
    assert resolve(api_key="").sandbox is True
    assert len(sandbox_calls) == 1


def test_a_base_url_without_key_sends_no_authorization(
    fault_server: FaultServer, sandbox_calls: list[FakeSandbox]
) -> None:
    fault_server.on("GET", task_path("t1"), error_reply(401, "Missing API key"))
    client = AsyncSirayClient(base_url=fault_server.url, retry=RetryPolicy.never())
    assert client.sandbox is False
    assert not client.has_key
    assert "set SIRAY_API_KEY" in client.summary

    async def main() -> None:
        async with client:
            await client.get_task("t1")

    with pytest.raises(AuthenticationError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "no API key was sent" in message
    assert "SIRAY_API_KEY" in message
    assert "authorization" not in fault_server.seen[0].headers
    assert sandbox_calls == []


def test_summary_names_the_key_source_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AsyncSirayClient(TEST_KEY).summary == (
        "https://api.siray.ai with the key passed as api_key"
    )
    monkeypatch.setenv("SIRAY_API_KEY", TEST_KEY)
    sync = SirayClient()
    assert sync.summary == "https://api.siray.ai with the key from SIRAY_API_KEY"
    assert sync.sandbox is False
    assert TEST_KEY not in sync.summary


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="must start with https://"):
        AsyncSirayClient(TEST_KEY, "ftp://files.example")


def test_secret_never_shows_itself() -> None:
    secret = Secret(TEST_KEY)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}"):
        assert TEST_KEY not in text
    assert secret.reveal() == TEST_KEY
    assert TEST_KEY not in repr(resolve(secret, "https://x.example"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    with pytest.raises(TypeError, match="must be a str"):
        Secret(12345)  # type: ignore[arg-type]
