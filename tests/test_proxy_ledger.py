"""Workshop proxy accounting: restarts, concurrency, what is charged and what is not."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fixtures.fault_server import FaultServer, Reply, error_reply
from fixtures.proxy_fixtures import REAL_KEY

from siray_widgets.client import SirayClient
from siray_widgets.errors import QuotaExceededError
from siray_widgets.proxy import Limits, ProxyHandle
from siray_widgets.proxy.ledger import Ledger, LedgerLockedError, LedgerThread
from siray_widgets.sandbox import SandboxHandle
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


def charges(db: Path) -> list[tuple[str, str | None, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT state, outcome, task_id FROM charges ORDER BY id").fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


# --- restarts ------------------------------------------------------------------------------


def test_a_restart_mid_class_loses_nothing_and_charges_nothing_twice(
    make_proxy: MakeProxy, key_upstream: SandboxHandle, tmp_path: Path
) -> None:
    db = tmp_path / "class.db"
    first = make_proxy(db=db, participants=2, quota=5)
    alice, bob = first.issued
    made = [create(first.base_url, alice.token).json()["data"]["task_id"] for _ in range(3)]
    assert create(first.base_url, bob.token).status_code == 200
    with pytest.raises(LedgerLockedError, match="another workshop proxy"):
        make_proxy(db=db)  # one proxy per database
    first.stop()

    again = make_proxy(db=db)  # no participant options: carries on
    assert again.issued == []
    assert again.recovered == 0
    by_name = {u.name: u for u in again.usage()}
    assert (by_name[alice.name].used, by_name[alice.name].left) == (3, 2)
    assert by_name[bob.name].used == 1
    # Same tokens; Alice still sees her tasks, Bob still does not.
    for task_id in made:
        assert status(again.base_url, alice.token, task_id).json()["data"]["status"] == "SUCCESS"
        assert status(again.base_url, bob.token, task_id).status_code == 404
    assert [create(again.base_url, alice.token).status_code for _ in range(3)] == [200, 200, 429]
    # Every task the upstream made is exactly one charge.
    states = charges(db)
    assert [s for s, _, _ in states] == ["charged"] * 6
    assert len({t for _, _, t in states}) == 6
    # The same participants option again adds nobody; a bigger one adds the difference.
    again.stop()
    third = make_proxy(db=db, participants=3)
    assert [i.name for i in third.issued] == ["participant-03"]


def test_a_reservation_cut_off_by_a_crash_stays_charged(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    ledger = Ledger(db)
    (issued,) = ledger.add(["ann"], quota=2)
    pid = ledger.authenticate(_hash(issued.token)).participant_id  # type: ignore[union-attr]
    reservation = ledger.reserve(pid, MODEL_ID, Decimal("0.05"))
    assert reservation.usage.in_flight == 1
    ledger.close()  # the process died before the upstream answered

    reopened = Ledger(db)
    assert reopened.recovered == 1
    usage = reopened.current(pid)
    assert (usage.used, usage.in_flight, usage.uncertain) == (1, 0, 1)
    assert usage.spent_micros == 50_000
    # Should the answer still arrive (a second process), it is recorded, not charged twice.
    after = reopened.commit(reservation.charge_id, "image_abc")
    assert (after.used, after.uncertain) == (1, 0)
    assert reopened.commit(reservation.charge_id, "image_abc").used == 1
    assert reopened.owner("image_abc") is not None
    reopened.close()


def _hash(token: str) -> str:
    from siray_widgets.proxy.ledger import token_hash

    return token_hash(token)


def test_the_ledger_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer siray-widgets"):
        LedgerThread(db)
    LedgerThread(tmp_path / "fine.db").close()  # and the lock was let go
    LedgerThread(tmp_path / "fine.db").close()


# --- concurrency ---------------------------------------------------------------------------


def test_fifty_parallel_creates_with_one_left_pass_exactly_once(
    make_proxy: MakeProxy, key_upstream: SandboxHandle
) -> None:
    p = make_proxy(participants=1, quota=5)
    token = p.issued[0].token
    for _ in range(4):
        assert create(p.base_url, token).status_code == 200
    before = len(key_upstream.task_ids())

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.post(p.base_url + CREATE_PATH, json=BODY, headers=bearer(token))
                    for _ in range(50)
                )
            )

    answers = asyncio.run(burst())
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [429] * 49
    refused = {a.json()["error"]["code"] for a in answers if a.status_code == 429}
    assert refused == {"workshop_quota_exceeded"}
    assert len(key_upstream.task_ids()) - before == 1  # exactly one reached the upstream
    usage = p.participant("participant-01")
    assert usage is not None
    assert (usage.used, usage.left, usage.in_flight) == (5, 0, 0)


def test_per_participant_concurrency_is_capped(make_proxy: MakeProxy) -> None:
    p = make_proxy(
        participants=2,
        quota=50,
        limits=Limits(concurrency=2),
        sandbox={"duration": 0, "latency": 1.0},  # the first two hold their places a while
        upstream="sandbox",
    )
    alice, bob = p.issued

    async def burst() -> tuple[list[int], int]:
        async with httpx.AsyncClient(timeout=30) as http:
            mine = [
                http.post(p.base_url + CREATE_PATH, json=BODY, headers=bearer(alice.token))
                for _ in range(5)
            ]
            theirs = http.post(p.base_url + CREATE_PATH, json=BODY, headers=bearer(bob.token))
            answers = await asyncio.gather(*mine, theirs)
        return [a.status_code for a in answers[:5]], answers[5].status_code

    alice_codes, bob_code = asyncio.run(burst())
    assert sorted(alice_codes) == [200, 200, 429, 429, 429]
    assert bob_code == 200  # one participant's burst does not block another
    usage = p.participant(alice.name)
    assert usage is not None
    assert usage.used == 2  # what was turned away at the door was not charged


def test_creates_per_minute_are_limited_and_the_client_waits(make_proxy: MakeProxy) -> None:
    # One new create every 2 s after a burst of two: the third, right after, must wait.
    p = make_proxy(participants=1, quota=50, limits=Limits(create_burst=2, creates_per_minute=30))
    token = p.issued[0].token
    assert [create(p.base_url, token).status_code for _ in range(2)] == [200, 200]
    limited = create(p.base_url, token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] in ("1", "2")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    # Our client honours Retry-After and gets through.
    with SirayClient(api_key=token, base_url=p.base_url) as client:
        assert client.submit(prompt="x", aspect_ratio="1:1").startswith("image_")
    assert p.participant("participant-01").used == 3  # type: ignore[union-attr]


# --- what is charged -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "outcome", "answered"),
    [
        (error_reply(400, "chaos=150 is out of range", param="chaos"), "refused", 400),
        (error_reply(429, "slow down", headers={"Retry-After": "3"}), "refused", 429),
        (error_reply(503, "busy", headers={"Retry-After": "2"}), "refused", 503),
        (error_reply(401, "Invalid API key"), "refused", 502),
        (error_reply(500, "oops"), "uncertain", 500),
        (error_reply(502, "bad gateway"), "uncertain", 502),
        (Reply(200, {"code": "success", "data": {}, "message": ""}), "uncertain", 200),
        (Reply(200, "<html>not json</html>"), "uncertain", 200),
        (Reply(drop=True), "uncertain", 502),
    ],
)
def test_refused_creates_are_not_charged_and_unclear_ones_are(
    make_proxy: MakeProxy,
    fault_server: FaultServer,
    reply: Reply,
    outcome: str,
    answered: int,
) -> None:
    fault_server.on("POST", CREATE_PATH, reply)
    p = make_proxy(upstream=fault_server.url, participants=1, quota=3)
    answer = create(p.base_url, p.issued[0].token)
    assert answer.status_code == answered
    if "Retry-After" in reply.headers:
        assert answer.headers["Retry-After"] == reply.headers["Retry-After"]
    usage = p.participant("participant-01")
    assert usage is not None
    assert usage.used == (0 if outcome == "refused" else 1)
    assert usage.uncertain == (1 if outcome == "uncertain" else 0)
    assert p.forwarded[outcome] == 1


def test_an_unreachable_upstream_is_a_503_and_not_charged(
    make_proxy: MakeProxy, refused_url: str
) -> None:
    p = make_proxy(upstream=refused_url, participants=1, quota=3)
    answer = create(p.base_url, p.issued[0].token)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert p.participant("participant-01").used == 0  # type: ignore[union-attr]


def test_requests_that_cannot_be_sent_are_not_charged(
    make_proxy: MakeProxy, fault_server: FaultServer
) -> None:
    p = make_proxy(upstream=fault_server.url, participants=1, quota=3)
    token = p.issued[0].token
    other_model = create(p.base_url, token, model="some/expensive-video-model")
    assert other_model.status_code == 400
    assert other_model.json()["error"]["code"] == "workshop_model_not_allowed"
    not_json = httpx.post(p.base_url + CREATE_PATH, content=b"{nope", headers=bearer(token))
    assert not_json.status_code == 400
    huge = create(p.base_url, token, prompt="x" * 70_000)
    assert huge.status_code == 413
    assert fault_server.seen == []  # none of it went upstream
    assert p.participant("participant-01").used == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("charge_failures", [True, False])
def test_a_failure_is_charged_or_refunded_by_the_setting(
    make_proxy: MakeProxy, charge_failures: bool
) -> None:
    p = make_proxy(
        upstream="sandbox",
        sandbox={"duration": 0, "failure_share": 1.0},
        participants=1,
        quota=3,
        charge_failures=charge_failures,
    )
    token = p.issued[0].token
    task_id = create(p.base_url, token).json()["data"]["task_id"]
    for _ in range(3):  # polling again refunds nothing twice
        answer = status(p.base_url, token, task_id)
        assert answer.json()["data"]["status"] == "FAILURE"
    usage = p.participant("participant-01")
    assert usage is not None
    assert usage.failed == 1
    assert usage.used == (1 if charge_failures else 0)
    assert usage.refunded == (0 if charge_failures else 1)
    assert answer.headers["X-Siray-Quota-Remaining"] == str(3 - usage.used)


def test_polling_is_never_charged(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, quota=1)
    token = p.issued[0].token
    task_id = create(p.base_url, token).json()["data"]["task_id"]
    for _ in range(20):
        assert status(p.base_url, token, task_id).status_code == 200
    usage = p.participant("participant-01")
    assert usage is not None
    assert (usage.used, usage.left) == (1, 0)


def test_a_spend_budget_holds_with_a_known_price(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, quota=10, budget="0.12", price_per_task="0.05")
    token = p.issued[0].token
    first = create(p.base_url, token)
    assert first.headers["X-Siray-Budget-Remaining"] == "0.07"
    assert create(p.base_url, token).status_code == 200
    spent = create(p.base_url, token)
    assert spent.status_code == 429
    error = spent.json()["error"]
    assert error["code"] == "workshop_budget_exceeded"
    assert "budget" in error["message"]
    assert "quota" in error["message"]
    with SirayClient(api_key=token, base_url=p.base_url) as client:
        with pytest.raises(QuotaExceededError, match="budget"):
            client.submit(prompt="x", aspect_ratio="1:1")
        assert client.quota is not None
        assert client.quota.describe() == "workshop: 8 of 10 left, $0.02 of $0.12"
    p.top_up("participant-01", budget=Decimal("0.05"))
    assert create(p.base_url, token).status_code == 200
    usage = p.participant("participant-01")
    assert usage is not None
    assert usage.spent_micros == 150_000


def test_a_budget_without_a_price_is_refused_at_start(
    make_proxy: MakeProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siray_widgets import registry

    monkeypatch.setattr(registry, "_current", registry.snapshot())  # niji 7: price unknown
    with pytest.raises(ValueError, match="price"):
        make_proxy(participants=1, budget="1.00")
    with pytest.raises(ValueError, match="price"):
        make_proxy(participants=1, budget="1.00", prices=lambda model: None)
    p = make_proxy(
        participants=1, budget="1.00", prices=lambda model: Decimal("0.25")
    )  # the registry's seam: a lookup by model
    assert create(p.base_url, p.issued[0].token).headers["X-Siray-Budget-Remaining"] == "0.75"


def test_budgets_use_the_model_registrys_price_when_none_is_given(
    make_proxy: MakeProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.registry_fixtures import FIXTURE

    from siray_widgets import registry

    monkeypatch.setattr(registry, "_current", registry.load_file(FIXTURE))  # niji: $0.05
    p = make_proxy(participants=1, quota=10, budget="0.10")
    token = p.issued[0].token
    assert create(p.base_url, token).headers["X-Siray-Budget-Remaining"] == "0.05"
    assert create(p.base_url, token).status_code == 200
    assert create(p.base_url, token).json()["error"]["code"] == "workshop_budget_exceeded"
    # A price given by hand wins over the registry's.
    q = make_proxy(participants=1, quota=10, budget="0.10", price_per_task="0.10")
    assert create(q.base_url, q.issued[0].token).headers["X-Siray-Budget-Remaining"] == "0"


def test_top_up_and_new_tokens_through_the_admin_api(make_proxy: MakeProxy) -> None:
    p = make_proxy(participants=1, quota=1)
    admin = {"Authorization": "Bearer " + p.admin_token}
    old = p.issued[0].token
    assert create(p.base_url, old).status_code == 200
    assert create(p.base_url, old).status_code == 429
    api = p.base_url + "/admin/api"
    listed = httpx.get(api + "/participants", headers=admin).json()["participants"]
    pid = listed[0]["id"]
    assert (listed[0]["used"], listed[0]["left"]) == (1, 0)
    assert "token" not in listed[0]
    topped = httpx.post(f"{api}/participants/{pid}/topup", json={"tasks": 2}, headers=admin)
    assert topped.is_success
    assert create(p.base_url, old).status_code == 200
    new = httpx.post(f"{api}/participants/{pid}/token", headers=admin).json()["participants"]
    assert create(p.base_url, old).status_code == 401
    assert create(p.base_url, new[0]["token"]).status_code == 200
    added = httpx.post(
        api + "/participants", json={"names": ["Zoë"], "count": 2, "quota": 4}, headers=admin
    ).json()["participants"]
    assert [a["name"] for a in added] == ["Zoë", "participant-02", "participant-03"]
    assert create(p.base_url, added[0]["token"]).headers["X-Siray-Quota-Remaining"] == "3"
    bad = httpx.post(f"{api}/participants/{pid}/topup", json={"tasks": "lots"}, headers=admin)
    assert bad.status_code == 400
    assert "whole number" in bad.json()["error"]["message"]
    assert httpx.post(f"{api}/participants/999/pause", headers=admin).status_code == 400
    later = httpx.post(f"{api}/participants/{pid}/expiry", json={"expires": "1h"}, headers=admin)
    assert later.is_success
    assert p.participant("participant-01").expires_at is not None  # type: ignore[union-attr]
    httpx.post(f"{api}/participants/{pid}/expiry", json={"expires": "never"}, headers=admin)
    assert p.participant("participant-01").expires_at is None  # type: ignore[union-attr]
    assert httpx.post(f"{api}/pause-all", headers=admin).json() == {"done": "paused 4 participants"}
    export = httpx.get(p.base_url + "/admin/export.csv", headers=admin).text.splitlines()
    assert export[0].startswith("name,state,quota,used,left")
    assert export[1].startswith("participant-01,paused,3,3,0")
    assert REAL_KEY not in "".join(export)
