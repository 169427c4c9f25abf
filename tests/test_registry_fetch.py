"""Fetching the registry over real HTTP (the sandbox's endpoint, a hostile server), the cache
in the data folder and the offline fallbacks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.fault_server import FaultServer, Reply
from fixtures.registry_fixtures import (
    FIXTURE,
    NIJI,
    SEEDREAM,
    elapsed,
    fixture_payload,
    isolate,
    raw_server,
)

from siray_widgets import registry
from siray_widgets.config import data_dir, gateway_url
from siray_widgets.errors import ConfigurationError
from siray_widgets.registry import REGISTRY_PATH, RegistryError, fetch, load
from siray_widgets.sandbox import SandboxHandle, start

FIXTURE_NAMES = [e["model_name"] for e in fixture_payload()["data"]]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def fixture_sandbox() -> Iterator[SandboxHandle]:
    """A sandbox serving the fixture registry (the variable is read when the app is made)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIRAY_SANDBOX_REGISTRY", str(FIXTURE))
        handle = start(duration=0)
    with handle:
        yield handle


def serve_fixture(server: FaultServer) -> FaultServer:
    return server.always("GET", REGISTRY_PATH, Reply(200, fixture_payload()))


# --- from the sandbox ---------------------------------------------------------------------


def test_fetch_from_the_sandbox_endpoint(fixture_sandbox: SandboxHandle) -> None:
    found = fetch(fixture_sandbox.base_url)
    assert found.source == "network"
    assert found.gateway == fixture_sandbox.base_url
    assert found.names == FIXTURE_NAMES
    assert found.payload == fixture_payload()  # served as it was published
    assert found.fetched_at is not None
    assert abs(found.fetched_at - time.time()) < 60


def test_the_sandbox_endpoint_needs_no_key(fixture_sandbox: SandboxHandle) -> None:
    import httpx

    response = httpx.get(fixture_sandbox.base_url + REGISTRY_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == fixture_payload()


def test_a_default_sandbox_serves_what_this_process_knows() -> None:
    # No loaded registry and an empty data folder: the snapshot (niji 7 only).
    with start(duration=0) as box:
        assert fetch(box.base_url).names == [NIJI]
    # Once the process has loaded a registry, a new sandbox serves that one.
    registry.use(registry.load_file(FIXTURE))
    with start(duration=0) as box:
        assert fetch(box.base_url).names == FIXTURE_NAMES


def test_gateway_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, fixture_sandbox: SandboxHandle
) -> None:
    monkeypatch.setenv("SIRAY_GATEWAY_URL", fixture_sandbox.base_url + "/")
    assert gateway_url() == fixture_sandbox.base_url
    assert fetch().names == FIXTURE_NAMES
    monkeypatch.setenv("SIRAY_GATEWAY_URL", "ftp://example.com")
    with pytest.raises(ConfigurationError, match="SIRAY_GATEWAY_URL"):
        gateway_url()
    monkeypatch.delenv("SIRAY_GATEWAY_URL")
    assert gateway_url() == "https://api-gateway.siray.ai"


# --- a hostile or broken server ---------------------------------------------------------------


def test_no_key_is_sent_to_the_gateway(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRAY_API_KEY", "sk-test-0123456789abcdef-SECRET")
    serve_fixture(fault_server)
    fetch(fault_server.url)
    (seen,) = fault_server.seen
    assert "authorization" not in seen.headers
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["user-agent"].startswith("siray-widgets/")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(500, {"error": "boom"}), "answered HTTP 500"),
        (Reply(404, "not here"), "answered HTTP 404"),
        (Reply(200, "<html>maintenance</html>"), "not valid JSON"),
        (Reply(200, {"data": "nope"}), r'not \{"data": \[...\]\}'),
        (Reply(200, b"x" * 5000), "sent more than 4000 bytes"),  # Content-Length says so
        (Reply(drop=True), "cannot read"),
    ],
)
def test_bad_answers_are_registry_errors(
    fault_server: FaultServer, reply: Reply, message: str
) -> None:
    fault_server.on("GET", REGISTRY_PATH, reply)
    with pytest.raises(RegistryError, match=message):
        fetch(fault_server.url, max_bytes=4000, timeout=5)


def test_a_server_that_does_not_answer_is_cut_off(fault_server: FaultServer) -> None:
    fault_server.on("GET", REGISTRY_PATH, Reply(200, fixture_payload(), delay=3))
    start_at = time.monotonic()
    with pytest.raises(RegistryError, match=r"did not answer within 0\.5 s"):
        fetch(fault_server.url, timeout=0.5)
    assert elapsed(start_at) < 2


def test_a_trickled_body_is_cut_off_at_the_total_deadline() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    parts: list[bytes | float] = [head]
    for _ in range(40):
        parts += [b'{"data": [' if _ == 0 else b" ", 0.1]
    with raw_server(parts) as server:
        start_at = time.monotonic()
        with pytest.raises(RegistryError, match=r"took longer than 1 s|did not answer"):
            fetch(server.url, timeout=1.0)
        assert elapsed(start_at) < 2.5


def test_an_endless_chunked_body_stops_at_the_size_cap() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"400\r\n" + b" " * 0x400 + b"\r\n"
    with (
        raw_server([head, *[chunk] * 64]) as server,
        pytest.raises(RegistryError, match="sent more than 8192 bytes"),
    ):
        fetch(server.url, max_bytes=8192, timeout=5)


def test_redirects_are_followed_a_few_times(fault_server: FaultServer) -> None:
    fault_server.on(
        "GET", REGISTRY_PATH, Reply(302, headers={"Location": fault_server.url + "/v2/models"})
    )
    fault_server.on("GET", "/v2/models", Reply(200, fixture_payload()))
    assert fetch(fault_server.url).names == FIXTURE_NAMES
    loop = Reply(302, headers={"Location": fault_server.url + REGISTRY_PATH})
    fault_server.always("GET", REGISTRY_PATH, loop)
    with pytest.raises(RegistryError, match="cannot read"):
        fetch(fault_server.url)


def test_nothing_listening(refused_url: str) -> None:
    with pytest.raises(RegistryError, match=f"cannot read {refused_url}"):
        fetch(refused_url)


# --- cache and fallbacks --------------------------------------------------------------------


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "registry").glob("*")) if (home / "registry").exists() else []


def test_a_fetched_registry_is_cached_and_reused(fault_server: FaultServer, tmp_path: Path) -> None:
    serve_fixture(fault_server)
    first = load(fault_server.url, cache=True)
    assert first.source == "network"
    assert first.names == FIXTURE_NAMES
    files = cache_files(tmp_path / "home")
    assert len(files) == 1  # the file and nothing else (no temporary left behind)
    assert files[0] == registry.cache_path(fault_server.url)
    assert files[0].parent == data_dir() / "registry"

    again = load(fault_server.url, cache=True)
    assert again.source == "cache"
    assert again.names == FIXTURE_NAMES
    assert fault_server.count("GET", REGISTRY_PATH) == 1  # the cache answered
    assert registry.current() is again
    assert registry.estimate_cost(SEEDREAM, 2) is not None  # prices come from current()

    refreshed = load(fault_server.url, cache=True, refresh=True)
    assert refreshed.source == "network"
    assert fault_server.count("GET", REGISTRY_PATH) == 2


def test_a_stale_cache_is_refetched_and_used_when_the_gateway_fails(
    fault_server: FaultServer,
) -> None:
    serve_fixture(fault_server)
    load(fault_server.url, cache=True)
    fault_server.always("GET", REGISTRY_PATH, Reply(503, "down"))
    stale = load(fault_server.url, cache=True, max_age=0)
    assert fault_server.count("GET", REGISTRY_PATH) == 2  # it did ask
    assert stale.source == "stale cache"
    assert stale.names == FIXTURE_NAMES
    assert stale.error is not None
    assert "answered HTTP 503" in stale.error
    assert "offline" in stale.describe()


def test_no_cache_and_no_gateway_falls_back_to_the_snapshot(refused_url: str) -> None:
    found = load(refused_url, cache=True)
    assert found.source == "snapshot"
    assert found.names == [NIJI]
    assert found.error is not None
    assert refused_url in found.error
    assert registry.model_schema(NIJI) is not None  # niji 7 works offline


def test_offline_never_asks(fault_server: FaultServer) -> None:
    serve_fixture(fault_server)
    assert load(fault_server.url, cache=True, offline=True).source == "snapshot"
    load(fault_server.url, cache=True)
    assert load(fault_server.url, cache=True, offline=True, max_age=0).source == "stale cache"
    assert fault_server.count() == 1


def test_a_broken_cache_file_is_ignored(fault_server: FaultServer) -> None:
    serve_fixture(fault_server)
    path = registry.cache_path(fault_server.url)
    path.parent.mkdir(parents=True)
    for junk in (b"{not json", b'{"format": 99}', b"[" * 100_000):
        path.write_bytes(junk)
        assert load(fault_server.url, cache=True).source == "network"
        path.write_bytes(junk)
        assert registry.load_local(fault_server.url).source == "snapshot"


def test_an_unwritable_data_folder_does_not_stop_a_fetch(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(blocker))
    serve_fixture(fault_server)
    found = load(fault_server.url, cache=True)
    assert found.source == "network"
    assert any("could not cache the registry" in p for p in found.problems)


def test_loopback_gateways_are_not_cached_by_default(
    fixture_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    assert load(fixture_sandbox.base_url).source == "network"
    assert cache_files(tmp_path / "home") == []


def test_load_local_reads_the_cache_without_the_network(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_fixture(fault_server)
    load(fault_server.url, cache=True)
    # A fresh process (nothing loaded yet) finds the cached copy of the configured gateway.
    monkeypatch.setattr(registry, "_cacheable", lambda base: True)
    monkeypatch.setenv("SIRAY_GATEWAY_URL", fault_server.url)
    monkeypatch.setattr(registry, "_current", None)
    fault_server.close()
    local = registry.current()
    assert local.source == "cache"
    assert local.names == FIXTURE_NAMES


def test_aload_does_not_block_the_loop(fixture_sandbox: SandboxHandle) -> None:
    async def main() -> tuple[list[str], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.ensure_future(tick())
        found = await registry.aload(fixture_sandbox.base_url, refresh=True)
        ticker.cancel()
        return found.names, ticks

    names, ticks = asyncio.run(main())
    assert names == FIXTURE_NAMES
    assert ticks >= 1


def test_data_dir_defaults_to_the_platform_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIRAY_WIDGETS_HOME")
    assert data_dir().name == "siray-widgets"
    assert data_dir(environ={"SIRAY_WIDGETS_HOME": "~/x"}) == Path("~/x").expanduser()
    assert data_dir(environ={"SIRAY_WIDGETS_HOME": "  "}).name == "siray-widgets"


def test_the_registry_file_loader_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read the registry file"):
        registry.load_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": []}))
    with pytest.raises(RegistryError, match=r'not \{"data"'):
        registry.load_file(bad)
