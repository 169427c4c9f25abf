"""Everything that speaks the API works through the workshop proxy by changing only the base
URL and the key: the widget, the client, the CLI, the official SDK and curl; over HTTPS too;
and JupyterHub users with their hub identity."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.proxy_fixtures import REAL_KEY
from fixtures.widget_fixtures import WAIT, MakeWidget
from siray import Siray
from siray.exceptions import APIError as SdkAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from siray_widgets import cli
from siray_widgets.client import SirayClient
from siray_widgets.config import (
    WORKSHOP_HTTP_ENV,
    Secret,
    is_workshop_token,
    resolve,
    workshop_plain_http,
)
from siray_widgets.errors import ConfigurationError, QuotaExceededError
from siray_widgets.proxy import ProxyHandle
from siray_widgets.proxy.hub import HubSettings
from siray_widgets.proxy.ledger import new_token
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.sandbox.server import BackgroundServer
from siray_widgets.schema import CREATE_PATH, MODEL_ID
from siray_widgets.task import TaskStatus

MakeProxy = Callable[..., ProxyHandle]


# --- the widget and the client -------------------------------------------------------------


def test_the_widget_generates_through_the_proxy_and_says_when_the_quota_is_spent(
    make_proxy: MakeProxy, make_widget: MakeWidget
) -> None:
    p = make_proxy(participants=1, quota=1)
    w = make_widget(prompt="a red fox", aspect_ratio="3:2")
    w.base_url = p.base_url
    w.api_key = p.issued[0].token
    task = w.generate().result(timeout=WAIT)
    assert task.status is TaskStatus.SUCCESS
    assert all(url.startswith(p.base_url + "/sandbox/images/") for url in task.outputs)
    assert not w.sandbox
    with pytest.raises(QuotaExceededError):
        w.generate().result(timeout=WAIT)
    assert "quota" in w.error
    assert "ask the instructor" in w.error
    assert p.issued[0].token not in json.dumps(w.get_state(), default=str)


def test_the_client_generates_and_downloads_images_through_the_proxy(
    make_proxy: MakeProxy,
) -> None:
    p = make_proxy(participants=1, quota=3)
    with SirayClient(api_key=p.issued[0].token, base_url=p.base_url) as client:
        task = client.generate(prompt="a lighthouse at dusk", aspect_ratio="16:9", seed=7)
        assert client.quota is not None
        assert client.quota.describe() == "workshop: 2 of 3 left"
    image = httpx.get(task.outputs[0])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    # Only images of tasks made through this proxy are passed on.
    assert httpx.get(p.base_url + "/sandbox/images/image_000000000000/1.png").status_code == 404


def test_the_client_knows_no_quota_when_the_server_is_not_a_proxy(
    key_upstream: SandboxHandle,
) -> None:
    with SirayClient(api_key=REAL_KEY, base_url=key_upstream.base_url) as client:
        assert client.refresh_quota() is None
        client.submit(prompt="a fox", aspect_ratio="1:1")
        assert client.quota is None


# --- the command line ----------------------------------------------------------------------


def test_the_cli_generates_through_the_proxy(
    make_proxy: MakeProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    p = make_proxy(participants=1, quota=2)
    monkeypatch.setenv("SIRAY_BASE_URL", p.base_url)
    monkeypatch.setenv("SIRAY_API_KEY", p.issued[0].token)
    code = cli.main(
        ["generate", "a fox in the snow --ar 16:9", "--poll", "0.05", "--download", str(tmp_path)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert p.base_url in err
    assert out.count(p.base_url + "/sandbox/images/") == 4
    assert len(list(tmp_path.glob("*.png"))) == 4
    assert p.participant("participant-01").used == 1  # type: ignore[union-attr]
    assert cli.main(["generate", "again", "--poll", "0.05"]) == 0
    assert cli.main(["generate", "once more", "--poll", "0.05"]) == 1
    _, err = capsys.readouterr()
    assert "quota" in err
    assert "ask the instructor" in err


# --- the official SDK and curl -------------------------------------------------------------


def test_the_official_sdk_works_through_the_proxy(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=2, quota=2)
    alice, bob = p.issued
    sdk = Siray(api_key=alice.token, base_url=p.base_url)
    made = sdk.image.generate_async(model=MODEL_ID, prompt="a fox", aspect_ratio="1:1", chaos=5)
    task_id = made.raw_response["data"]["task_id"]
    done = sdk.image.query_task(task_id)
    assert done.status == "SUCCESS"
    assert len(done.outputs) == 4
    with pytest.raises(SdkAPIError) as caught:
        Siray(api_key=bob.token, base_url=p.base_url).image.query_task(task_id)
    assert caught.value.status_code == 404
    sdk.image.generate_async(model=MODEL_ID, prompt="a fox", aspect_ratio="1:1")
    with pytest.raises(SdkAPIError) as caught:
        sdk.image.generate_async(model=MODEL_ID, prompt="a fox", aspect_ratio="1:1")
    assert caught.value.status_code == 429
    assert "quota" in str(caught.value)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_works_through_the_proxy(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, quota=1)
    token = p.issued[0].token
    body = json.dumps({"model": MODEL_ID, "prompt": "a fox", "aspect_ratio": "1:1"})
    curl = ["curl", "--silent", "--show-error", "--header", f"Authorization: Bearer {token}"]
    made = subprocess.run(
        [
            *curl,
            "--header",
            "Content-Type: application/json",
            "--data",
            body,
            p.base_url + CREATE_PATH,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    task_id = json.loads(made.stdout)["data"]["task_id"]
    polled = subprocess.run(
        [*curl, f"{p.base_url}{CREATE_PATH}/{task_id}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(polled.stdout)["data"]["status"] == "SUCCESS"
    headers = subprocess.run(
        [
            *curl,
            "--include",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--header",
            "Content-Type: application/json",
            "--data",
            body,
            p.base_url + CREATE_PATH,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert headers.stdout.strip() == "429"


# --- on a LAN: HTTPS, or plain http with the opt-in ----------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


def test_the_proxy_serves_https_with_the_instructors_certificate(
    make_proxy: MakeProxy, tls_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make_proxy(participants=1, quota=2, certfile=tls_files["cert"], keyfile=tls_files["key"])
    assert p.base_url.startswith("https://")
    # A client that does not trust the certificate sends nothing.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(p.base_url + "/")
    # A participant trusts the instructor's certificate (SSL_CERT_FILE, as httpx reads it).
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files["ca"]))
    with SirayClient(api_key=p.issued[0].token, base_url=p.base_url) as client:
        task = client.generate(prompt="a fox over https", aspect_ratio="1:1")
    assert task.outputs[0].startswith(p.base_url)
    assert httpx.get(task.outputs[0], verify=ssl.create_default_context()).status_code == 200


def test_a_bad_certificate_is_refused_before_start(
    make_proxy: MakeProxy, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="cannot use the certificate"):
        make_proxy(certfile=tls_files["ca"], keyfile=tls_files["key"])
    with pytest.raises(ValueError, match="certificate"):
        make_proxy(keyfile=tls_files["key"])
    with pytest.raises(ValueError, match="HTTPS"):
        make_proxy(admin_remote=True)


TOKEN = new_token()


@pytest.mark.parametrize(
    ("key", "url", "opt_in", "allowed"),
    [
        (TOKEN, "http://192.168.1.20:8766", True, True),
        (TOKEN, "http://10.0.0.5:8766", True, True),
        (TOKEN, "http://172.16.4.2:8766", True, True),
        (TOKEN, "http://[fd12:3456::1]:8766", True, True),
        (TOKEN, "http://192.168.1.20:8766", False, False),  # no opt-in
        (REAL_KEY, "http://192.168.1.20:8766", True, False),  # a real key: never
        (TOKEN.upper(), "http://192.168.1.20:8766", True, False),  # not a token's shape
        (TOKEN, "http://8.8.8.8:8766", True, False),  # not a private network
        (TOKEN, "http://172.32.0.1:8766", True, False),  # just outside 172.16/12
        (TOKEN, "http://169.254.1.1:8766", True, False),  # link-local is not RFC 1918
        (TOKEN, "http://instructor.local:8766", True, False),  # names are not resolved
        (TOKEN, "https://192.168.1.20:8766", True, False),  # (https needs no exception)
    ],
)
def test_plain_http_on_a_lan_only_for_a_workshop_token_with_the_opt_in(
    key: str, url: str, opt_in: bool, allowed: bool
) -> None:
    env = {WORKSHOP_HTTP_ENV: "1"} if opt_in else {}
    assert workshop_plain_http(Secret(key), url, env) is allowed


def test_the_client_accepts_a_lan_proxy_only_as_the_rule_says() -> None:
    lan = "http://192.168.1.20:8766"
    env = {WORKSHOP_HTTP_ENV: "1"}
    settings = resolve(TOKEN, lan, environ=env)
    assert settings.base_url == lan
    assert not settings.sandbox
    with pytest.raises(ConfigurationError, match="unencrypted"):
        resolve(TOKEN, lan, environ={})
    with pytest.raises(ConfigurationError, match="unencrypted"):
        resolve(REAL_KEY, lan, environ=env)
    assert resolve(REAL_KEY, "https://192.168.1.20:8766", environ={}).api_key is not None
    assert is_workshop_token(TOKEN)
    assert not is_workshop_token(TOKEN + "2")
    assert not is_workshop_token("workshop-00000-00000-00000-00000")  # 0 is not in the alphabet


def test_the_proxy_refuses_to_send_the_real_key_over_plain_http(make_proxy: MakeProxy) -> None:
    with pytest.raises(ConfigurationError, match="unencrypted"):
        make_proxy(upstream="http://192.168.1.30:9000")
    with pytest.raises(ConfigurationError, match="SIRAY_API_KEY"):
        make_proxy(upstream="https://api.siray.ai", upstream_key="")


# --- JupyterHub identity -------------------------------------------------------------------

HUB_TOKENS = {
    "hub-token-alice-0123456789": {"name": "alice", "scopes": ["access:services"]},
    "hub-token-bob-0123456789": {
        "name": "bob",
        "scopes": ["access:services!service=siray-proxy"],
    },
    "hub-token-carol-0123456789": {"name": "carol", "scopes": ["read:users:name"]},
}


@pytest.fixture
def fake_hub() -> Iterator[str]:
    """A stand-in for JupyterHub's ``GET /hub/api/user`` (who does this token belong to?)."""

    async def user(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        model: dict[str, Any] | None = HUB_TOKENS.get(token) if scheme == "token" else None
        if model is None:
            return JSONResponse({"status": 403, "message": "not allowed"}, 403)
        return JSONResponse({"kind": "user", **model})

    server = BackgroundServer(Starlette(routes=[Route("/hub/api/user", user)]), "127.0.0.1", 0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/hub/api"
    finally:
        server.stop()


def test_jupyterhub_users_are_charged_by_their_hub_identity(
    make_proxy: MakeProxy, fake_hub: str
) -> None:
    p = make_proxy(
        quota=2,
        hub=HubSettings(fake_hub, "siray-proxy"),
        prefix="/services/siray-proxy",
    )
    assert p.base_url.endswith("/services/siray-proxy")
    alice = "hub-token-alice-0123456789"
    with SirayClient(api_key=alice, base_url=p.base_url) as client:
        task = client.generate(prompt="a fox", aspect_ratio="1:1")
        assert client.quota is not None
        assert client.quota.describe() == "workshop: 1 of 2 left"
    assert task.outputs[0].startswith(p.base_url + "/sandbox/images/")
    with SirayClient(api_key="hub-token-bob-0123456789", base_url=p.base_url) as client:
        client.submit(prompt="a fox", aspect_ratio="1:1")
    usage = {u.name: u for u in p.usage()}
    assert sorted(usage) == ["alice", "bob"]
    assert usage["alice"].hub_user
    assert usage["alice"].used == 1
    # A hub user whose token may not use this service, and a made-up token: the same 401.
    refused = [
        httpx.post(
            p.base_url + CREATE_PATH,
            json={"model": MODEL_ID, "prompt": "x", "aspect_ratio": "1:1"},
            headers={"Authorization": f"Bearer {token}"},
        )
        for token in ("hub-token-carol-0123456789", "hub-token-nobody-000000")
    ]
    assert [r.status_code for r in refused] == [401, 401]
    assert refused[0].content == refused[1].content
    assert REAL_KEY not in refused[0].text
