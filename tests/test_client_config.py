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
from siray_widgets.errors import AuthenticationError, ConfigurationError


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


# --- keys that cannot travel in a header -----------------------------------------------------

# Each holds "SECRET" twice, apart, so that a leak of either half shows.
BAD_KEYS = {
    "line-break": ("sk-SECRET-123\nPART2-SECRET", "a line break"),
    "carriage-return": ("sk-SECRET-\r123-SECRET", "a line break"),
    "space": ("Bearer sk-SECRET-123-SECRET", "whitespace"),
    "tab": ("sk-SECRET-\t123-SECRET", "whitespace"),
    "no-break-space": ("sk-SECRET-\xa0123-SECRET", "whitespace"),
    "nul": ("sk-SECRET-\x00123-SECRET", "a control character"),
    "control": ("sk-SECRET-\x01456-SECRET", "a control character"),
    "delete": ("sk-SECRET-\x7f456-SECRET", "a control character"),
    "typographic-quote": ("sk-SECRET-789\u2019-SECRET", "a non-ASCII character"),
    "accented": ("sk-SECRET-é-SECRET", "a non-ASCII character"),
}


def assert_key_refused(error: BaseException, key: str, kind: str, where: str) -> None:
    assert isinstance(error, ConfigurationError)
    assert isinstance(error, ValueError)
    message = str(error)
    assert kind in message
    assert where in message
    assert "copy it again from the Siray dashboard" in message
    for shown in (message, repr(error), repr(vars(error))):
        assert "SECRET" not in shown
        assert repr(key)[1:-1] not in shown
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize(("key", "kind"), BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_key_with_whitespace_control_or_non_ascii_is_refused_unshown(
    key: str, kind: str, sandbox_calls: list[FakeSandbox]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncSirayClient(key, "https://api.example")
    assert_key_refused(info.value, key, kind, "passed as api_key")
    with pytest.raises(ConfigurationError) as info:
        SirayClient(Secret(key), "https://api.example")
    assert_key_refused(info.value, key, kind, "passed as api_key")
    with pytest.raises(ConfigurationError) as info:
        resolve(environ={"SIRAY_API_KEY": key})  # os.environ cannot hold a NUL
    assert_key_refused(info.value, key, kind, "in SIRAY_API_KEY")
    assert sandbox_calls == []


def test_blanks_around_a_key_are_stripped_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key read from a file or pasted with a trailing newline is still the key.
    assert resolve("  sk-arg\n").api_key == Secret("sk-arg")
    assert resolve(Secret("\tsk-secret \r\n")).api_key == Secret("sk-secret")
    monkeypatch.setenv("SIRAY_API_KEY", "sk-env\n")
    assert resolve().api_key == Secret("sk-env")


# --- base URLs that cannot work --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1", ["not a valid URL"]),
        ("http://127.0.0.1:99999", ["not a valid URL", "65535"]),
        ("http://127.0.0.1:0", ["port 0", "1..65535"]),
        ("http://127.0.0.1:port", ["not a valid URL"]),
        ("https:", ["no host name"]),
        ("http://", ["no host name"]),
        ("ftp://files.example", ["must start with https://"]),
        ("api.siray.ai", ["must start with https://"]),
    ],
)
def test_a_base_url_that_cannot_work_is_refused_when_the_client_is_built(
    url: str, words: list[str]
) -> None:
    for key in (None, TEST_KEY):
        with pytest.raises(ConfigurationError) as info:
            AsyncSirayClient(key, url)
        for word in words:
            assert word in str(info.value)


def test_httpx_only_url_errors_are_configuration_errors_too() -> None:
    # urlsplit accepts this host; httpx's own URL parser does not.
    with pytest.raises(ConfigurationError, match="not a valid URL"):
        AsyncSirayClient(None, "http://exa mple\x00.com")


# --- the key over plain http -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://api.example.com", "api.example.com"),
        ("HTTP://10.0.0.5:8765/v1", "10.0.0.5"),
        ("http://[2001:db8::1]:80", "[2001:db8::1]"),
        ("http://localhost.evil.example", "localhost.evil.example"),
        ("http://128.0.0.1", "128.0.0.1"),
    ],
)
def test_a_key_is_not_sent_over_plain_http_to_another_machine(url: str, host: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncSirayClient(TEST_KEY, url)
    message = str(info.value)
    assert host in message
    assert "https://" in message
    assert TEST_KEY not in message
    # Without a key nothing secret travels: plain http is fine.
    assert AsyncSirayClient(None, url).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://127.1.2.3",
        "http://[::1]:8765",
        "http://localhost:8765",
        "http://LocalHost",
        "https://api.example.com",
    ],
)
def test_a_key_goes_over_http_to_loopback_and_over_https_anywhere(url: str) -> None:
    assert AsyncSirayClient(TEST_KEY, url).has_key


def test_the_sandbox_open_key_may_cross_a_lan_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # `siray-widgets sandbox --allow-remote` tells workshop users to set SIRAY_API_KEY=sandbox;
    # that key is public by design, so a LAN sandbox stays usable.
    monkeypatch.setenv("SIRAY_API_KEY", "sandbox")
    monkeypatch.setenv("SIRAY_BASE_URL", "http://192.168.1.20:8765")
    assert SirayClient().has_key
