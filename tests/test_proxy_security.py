"""Workshop proxy security, over real HTTP to a real sandbox upstream: isolation, the real key,
refusals with their own errors, token guessing, the admin side."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.fault_server import FaultServer, created, error_reply, task_reply
from fixtures.proxy_fixtures import ADMIN_TOKEN, REAL_KEY
from fixtures.sandbox_fixtures import FakeClock

from siray_widgets.client import AsyncSirayClient, RetryPolicy, SirayClient
from siray_widgets.errors import (
    AuthenticationError,
    NotFoundError,
    ParticipantPausedError,
    QuotaExceededError,
    RateLimitError,
    TokenExpiredError,
)
from siray_widgets.proxy import Limits, ProxyHandle
from siray_widgets.proxy.admin import form_token
from siray_widgets.proxy.roster import write_tokens
from siray_widgets.quota import LIMIT_HEADER, REMAINING_HEADER
from siray_widgets.schema import CREATE_PATH, MODEL_ID

BODY = {"model": MODEL_ID, "prompt": "a fox in the snow", "aspect_ratio": "1:1"}
MakeProxy = Callable[..., ProxyHandle]


#: One pooled client for the module (a new httpx client per request costs ~30 ms).
HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(base: str, token: str, **body: object) -> httpx.Response:
    return HTTP.post(base + CREATE_PATH, json={**BODY, **body}, headers=bearer(token))


def status(base: str, token: str, task_id: str) -> httpx.Response:
    return HTTP.get(f"{base}{CREATE_PATH}/{task_id}", headers=bearer(token))


def without_date(headers: httpx.Headers) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in headers.items() if k.lower() != "date")


# --- isolation -----------------------------------------------------------------------------


def test_a_participant_cannot_read_another_ones_task(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=2, quota=2)
    alice, bob = p.issued
    made = create(p.base_url, alice.token)
    assert made.status_code == 200, made.text
    task_id = made.json()["data"]["task_id"]
    assert status(p.base_url, alice.token, task_id).json()["data"]["status"] == "SUCCESS"

    theirs = status(p.base_url, bob.token, task_id)
    unknown_id = "image_" + "0" * (len(task_id) - len("image_"))
    unknown = status(p.base_url, bob.token, unknown_id)
    assert theirs.status_code == unknown.status_code == 404
    # Byte for byte the same answer but for the id it names, headers included.
    assert theirs.content == unknown.content.replace(unknown_id.encode(), task_id.encode())
    assert without_date(theirs.headers) == without_date(unknown.headers)
    assert theirs.json()["error"]["code"] == "task_not_found"
    # Through the client too: a plain NotFoundError, no hint that the task exists.
    with (
        SirayClient(api_key=bob.token, base_url=p.base_url) as client,
        pytest.raises(NotFoundError, match="not found"),
    ):
        client.get_task(task_id)
    # Bob's own quota is untouched by looking.
    assert p.participant(bob.name).used == 0  # type: ignore[union-attr]


# --- the real key --------------------------------------------------------------------------


def test_the_real_key_is_in_no_answer_log_or_file(
    make_proxy: MakeProxy,
    fault_server: FaultServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # An upstream that echoes the key it got in every way it can.
    echo = f"key {REAL_KEY} refused ('{REAL_KEY}'; Bearer%20{REAL_KEY})"
    fault_server.on("POST", CREATE_PATH, error_reply(400, echo, param="prompt"), created("t-1"))
    fault_server.on("POST", CREATE_PATH, error_reply(401, echo))
    fault_server.on("POST", CREATE_PATH, error_reply(500, echo))
    fault_server.always("GET", f"{CREATE_PATH}/t-1", task_reply("t-1", fail_reason=""))
    tokens_csv = tmp_path / "tokens.csv"
    p = make_proxy(upstream=fault_server.url, participants=2, quota=10, db=tmp_path / "k.db")
    write_tokens(tokens_csv, p.issued, p.base_url)
    alice = p.issued[0]

    answers = [
        create(p.base_url, alice.token),  # 400 echoing the key
        create(p.base_url, alice.token),  # created
        create(p.base_url, alice.token),  # the upstream refuses the key: 401
        create(p.base_url, alice.token),  # 500 echoing the key
        status(p.base_url, alice.token, "t-1"),
        httpx.get(p.base_url + "/proxy/me", headers=bearer(alice.token)),
        httpx.get(p.base_url + "/"),
        create(p.base_url, "workshop-22222-22222-22222-22222"),
        httpx.get(p.base_url + "/admin", auth=("admin", ADMIN_TOKEN)),
        httpx.get(p.base_url + "/admin/api/participants", headers=bearer(ADMIN_TOKEN)),
        httpx.get(p.base_url + "/admin/export.csv", headers=bearer(ADMIN_TOKEN)),
    ]
    assert [a.status_code for a in answers[:5]] == [400, 200, 502, 500, 200]
    assert "refused" in answers[0].json()["error"]["message"]  # the rest of the text is kept
    assert answers[2].json()["error"]["code"] == "workshop_upstream_auth"
    # The upstream got the real key, and never a participant's token.
    sent = [s.headers.get("authorization") for s in fault_server.seen]
    assert sent
    assert all(a == f"Bearer {REAL_KEY}" for a in sent)
    everything = [a.content for a in answers] + [
        "\n".join(f"{k}: {v}" for k, v in a.headers.items()).encode() for a in answers
    ]
    p.stop()
    logs = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert any("create" in line for line in logs)  # the proxy did log
    everything += [line.encode() for line in logs]
    for path in tmp_path.iterdir():  # the database (and its WAL), the lock, the tokens
        if path.is_file():
            everything.append(path.read_bytes())
    assert tokens_csv.read_text().startswith("token,name,quota")
    for blob in everything:
        assert REAL_KEY.encode() not in blob
        assert REAL_KEY[8:30].encode() not in blob
    # And the participants' tokens are not in the database either: only their hashes are.
    database = (tmp_path / "k.db").read_bytes()
    assert alice.token.encode() not in database
    assert "k.db" in repr(p.db_path)
    assert REAL_KEY not in repr(p)


# --- refusals with their own errors --------------------------------------------------------


def test_spent_quota_is_a_429_saying_quota_and_how_many(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, quota=2)
    token = p.issued[0].token
    assert [create(p.base_url, token).status_code for _ in range(2)] == [200, 200]
    spent = create(p.base_url, token)
    assert spent.status_code == 429
    error = spent.json()["error"]
    assert error["code"] == "workshop_quota_exceeded"
    assert "quota" in error["message"]
    assert "2 tasks allowed" in error["message"]
    assert "Retry-After" not in spent.headers  # waiting does not help
    assert spent.headers[LIMIT_HEADER] == "2"
    assert spent.headers[REMAINING_HEADER] == "0"
    # The client raises its own exception, not a RateLimitError it would retry.
    with SirayClient(api_key=token, base_url=p.base_url) as client:
        with pytest.raises(QuotaExceededError, match="quota") as caught:
            client.submit(prompt="one more", aspect_ratio="1:1")
        assert not isinstance(caught.value, RateLimitError)
        assert caught.value.status_code == 429
        assert client.quota is not None
        assert client.quota.describe() == "workshop: 0 of 2 left"
    assert p.forwarded["created"] == 2


def test_a_paused_participant_gets_its_own_error_and_can_still_poll(
    make_proxy: MakeProxy,
) -> None:
    p = make_proxy(participants=2, quota=5)
    alice, bob = p.issued
    task_id = create(p.base_url, alice.token).json()["data"]["task_id"]
    p.set_paused(alice.name)
    paused = create(p.base_url, alice.token)
    assert paused.status_code == 403
    assert paused.json()["error"]["code"] == "workshop_paused"
    assert paused.headers["X-Siray-Paused"] == "1"
    assert status(p.base_url, alice.token, task_id).status_code == 200  # running tasks finish
    assert create(p.base_url, bob.token).status_code == 200  # only Alice is paused
    with SirayClient(api_key=alice.token, base_url=p.base_url) as client:
        with pytest.raises(ParticipantPausedError, match="paused"):
            client.submit(prompt="x", aspect_ratio="1:1")
        assert client.refresh_quota() is not None
        assert client.quota is not None
        assert client.quota.paused
        assert "paused" in client.quota.describe()
    p.set_paused(None)  # everyone
    assert create(p.base_url, bob.token).json()["error"]["code"] == "workshop_paused"
    p.set_paused(None, False)
    assert create(p.base_url, alice.token).status_code == 200
    # Refusals are not charged.
    assert p.participant(alice.name).used == 2  # type: ignore[union-attr]


def test_an_expired_token_gets_its_own_error(make_proxy: MakeProxy) -> None:
    clock = FakeClock()
    p = make_proxy(participants=1, quota=5, expires="2h", clock=clock)
    token = p.issued[0].token
    made = create(p.base_url, token)
    assert made.status_code == 200
    assert int(made.headers["X-Siray-Token-Expires"]) == int(clock.now + 7200)
    clock.advance(7201)
    expired = create(p.base_url, token)
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "workshop_token_expired"
    assert "expired" in expired.json()["error"]["message"]
    task_id = made.json()["data"]["task_id"]
    assert status(p.base_url, token, task_id).status_code == 403
    with SirayClient(api_key=token, base_url=p.base_url) as client:
        with pytest.raises(TokenExpiredError, match="expired"):
            client.submit(prompt="x", aspect_ratio="1:1")
        with pytest.raises(TokenExpiredError):
            client.refresh_quota()


def test_the_async_client_reads_the_quota_from_every_answer(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, quota=20)

    async def main() -> None:
        async with AsyncSirayClient(api_key=p.issued[0].token, base_url=p.base_url) as client:
            assert client.quota is None
            first = await client.refresh_quota()
            assert first is not None
            assert first.describe() == "workshop: 20 of 20 left"
            for _ in range(6):
                await client.submit(prompt="a fox", aspect_ratio="1:1")
            assert client.quota is not None
            assert client.quota.describe() == "workshop: 14 of 20 left"
            assert (client.quota.limit, client.quota.remaining, client.quota.used) == (20, 14, 6)

    asyncio.run(main())


# --- guessing tokens -----------------------------------------------------------------------


def test_bad_tokens_always_get_the_same_401_then_are_rate_limited(
    make_proxy: MakeProxy,
) -> None:
    p = make_proxy(participants=1, limits=Limits(bad_token_burst=5, bad_tokens_per_minute=1))
    good = p.issued[0].token
    url = p.base_url + CREATE_PATH
    attempts = [
        {},  # no header
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer"},
        bearer("not-a-token"),
        bearer("workshop-22222-22222-22222-22222"),  # the right shape, unknown
    ]
    attempts += [bearer(f"workshop-{n}{n}{n}{n}{n}-22222-22222-22222") for n in range(3, 6)]
    answers = [httpx.post(url, json=BODY, headers=h) for h in attempts]
    assert {a.status_code for a in answers} == {401}
    assert len({a.content for a in answers}) == 1
    assert len({tuple(without_date(a.headers)) for a in answers}) == 1
    # Five wrong tokens were presented (two of them not even shaped like one); the sixth guess
    # from this address is refused before the token is even looked at, and so
    # is a good token from the same address (a guesser could otherwise tell which one hit).
    limited = httpx.post(url, json=BODY, headers=bearer("workshop-33333-33333-33333-33333"))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "workshop_too_many_attempts"
    assert httpx.post(url, json=BODY, headers=bearer(good)).status_code == 429
    # Another client address is not affected (127.0.0.2 is this machine too).
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as other:
        assert other.post(url, json=BODY, headers=bearer(good)).status_code == 200
    with (
        SirayClient(
            api_key="workshop-44444-44444-44444-44444",
            base_url=p.base_url,
            retry=RetryPolicy.never(),
        ) as client,
        pytest.raises(RateLimitError),
    ):
        client.submit(prompt="x", aspect_ratio="1:1")


def test_a_wrong_token_is_an_authentication_error_in_the_client(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1)
    with (
        SirayClient(api_key="workshop-22222-22222-22222-22222", base_url=p.base_url) as client,
        pytest.raises(AuthenticationError, match="workshop token"),
    ):
        client.submit(prompt="x", aspect_ratio="1:1")


# --- the admin side ------------------------------------------------------------------------


def test_the_admin_page_needs_the_admin_token(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, limits=Limits(bad_token_burst=3, bad_tokens_per_minute=1))
    admin = p.base_url + "/admin"
    nothing = httpx.get(admin)
    assert nothing.status_code == 401
    assert nothing.headers["WWW-Authenticate"].startswith("Basic")
    assert "participant-01" not in nothing.text
    assert httpx.get(admin, auth=("admin", "wrong")).status_code == 401
    participant = p.issued[0].token
    assert httpx.get(admin, headers=bearer(participant)).status_code == 401
    page = httpx.get(admin, auth=("anyone", ADMIN_TOKEN))
    assert page.status_code == 200
    assert "participant-01" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none'
    assert httpx.get(admin, headers=bearer(ADMIN_TOKEN)).status_code == 200
    api = p.base_url + "/admin/api/participants"
    assert httpx.get(api).status_code == 401
    assert httpx.get(p.base_url + "/admin/export.csv").status_code == 401
    # Changes through the JSON API take the token only as a Bearer header: a browser's
    # remembered Basic credentials cannot be used by another site to change anything.
    assert httpx.post(api, json={"count": 1}, auth=("admin", ADMIN_TOKEN)).status_code == 401
    # Wrong admin tokens are rate-limited like wrong participant tokens.
    assert httpx.get(admin, auth=("admin", "wrong-again")).status_code == 401
    limited = httpx.get(admin, auth=("admin", ADMIN_TOKEN))
    assert limited.status_code == 429
    # Behind a reverse proxy (which adds X-Forwarded-For) the admin side is not there at all.
    transport = httpx.HTTPTransport(local_address="127.0.0.3")
    with httpx.Client(transport=transport) as other:
        assert other.get(admin, headers=bearer(ADMIN_TOKEN)).status_code == 200
        forwarded = {**bearer(ADMIN_TOKEN), "X-Forwarded-For": "203.0.113.7"}
        assert other.get(admin, headers=forwarded).status_code == 404


def test_admin_forms_refuse_cross_site_posts(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1)
    url = p.base_url + "/admin/action"
    auth = ("admin", ADMIN_TOKEN)
    form = {"action": "pause-all", "csrf": ""}
    # Basic credentials alone (what a browser would attach to a forged form): refused.
    assert httpx.post(url, data=form, auth=auth).status_code == 403
    token = httpx.get(p.base_url + "/admin", auth=auth).text
    csrf = re.search(r'name=csrf value="([0-9a-f]+)"', token)
    assert csrf is not None
    form["csrf"] = csrf.group(1)
    cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert httpx.post(url, data=form, auth=auth, headers=cross).status_code == 403
    assert httpx.post(url, data=form, auth=auth, headers={"Origin": "null"}).status_code == 403
    assert p.participant("participant-01").paused is False  # type: ignore[union-attr]
    same = {"Origin": p.base_url, "Sec-Fetch-Site": "same-origin"}
    done = httpx.post(url, data=form, auth=auth, headers=same)
    assert done.status_code == 303
    assert p.participant("participant-01").paused is True  # type: ignore[union-attr]


def test_every_text_on_the_admin_page_is_escaped(make_proxy: MakeProxy) -> None:
    evil = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>"
    p = make_proxy(roster=[evil, "Zoë & Ann"])
    page = httpx.get(p.base_url + "/admin", auth=("admin", ADMIN_TOKEN)).text
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;&gt;&lt;img" in page
    assert "Zoë &amp; Ann" in page
    # New tokens for such a name are shown escaped as well.
    pid = p.participant(evil).participant_id  # type: ignore[union-attr]
    form = {"action": "token", "participant": str(pid), "csrf": form_token_of(p)}
    shown = httpx.post(p.base_url + "/admin/action", data=form, auth=("admin", ADMIN_TOKEN))
    assert shown.status_code == 200
    assert "<script>" not in shown.text
    assert re.search(r"workshop-[2-9a-z-]{23}", shown.text)
    # The export protects spreadsheets from formulas in names.
    p.add_participants(['=HYPERLINK("http://x")'])
    export = httpx.get(p.base_url + "/admin/export.csv", headers=bearer(ADMIN_TOKEN)).text
    assert "\n'=HYPERLINK" in export.replace('"', "")


def form_token_of(p: ProxyHandle) -> str:
    return form_token(p._state)
