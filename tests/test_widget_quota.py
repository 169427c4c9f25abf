"""The workshop quota in the widget, against a real ``siray_widgets.proxy.start()`` in front of
a sandbox: the header's line ("workshop: 14 of 20 left") after each exchange and on display,
and plain words (never a bare 403) when the quota is spent, the participant paused or the
token expired."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fixtures.sandbox_fixtures import FakeClock
from fixtures.widget_fixtures import WAIT, MakeWidget

from siray_widgets.errors import ParticipantPausedError, QuotaExceededError, TokenExpiredError
from siray_widgets.proxy import ProxyHandle
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.widget import ImagineWidget

MakeProxy = Callable[..., ProxyHandle]


def at_proxy(make_widget: MakeWidget, p: ProxyHandle, index: int = 0) -> ImagineWidget:
    w = make_widget(prompt="a red fox", aspect_ratio="3:2")
    w.base_url = p.base_url
    w.api_key = p.issued[index].token
    return w


def wait_for(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_the_quota_shows_on_display_and_after_each_run(
    make_proxy: MakeProxy, make_widget: MakeWidget
) -> None:
    p = make_proxy(participants=2, quota=3)
    w = at_proxy(make_widget, p)
    assert w.quota == {}  # nothing asked yet
    w._repr_mimebundle_()  # displayed: the proxy is asked in the background
    wait_for(lambda: w.quota.get("text") == "workshop: 3 of 3 left")
    assert w.quota == {"text": "workshop: 3 of 3 left", "state": "ok", "remaining": 3, "limit": 3}
    w.generate().result(timeout=WAIT)
    assert w.quota["text"] == "workshop: 2 of 3 left"
    w.generate().result(timeout=WAIT)
    assert w.quota == {"text": "workshop: 1 of 3 left", "state": "low", "remaining": 1, "limit": 3}
    # Another participant's token: another allowance; the old line goes at once.
    w.api_key = p.issued[1].token
    assert w.quota == {}
    w.generate().result(timeout=WAIT)
    assert w.quota["text"] == "workshop: 2 of 3 left"


def test_a_spent_quota_says_so_and_a_top_up_clears_it(
    make_proxy: MakeProxy, make_widget: MakeWidget
) -> None:
    p = make_proxy(participants=1, quota=1)
    w = at_proxy(make_widget, p)
    w.generate().result(timeout=WAIT)
    assert w.quota["state"] == "spent"  # the answer said 0 left
    with pytest.raises(QuotaExceededError):
        w.generate().result(timeout=WAIT)
    assert w.error == (
        "Your workshop allowance is used up (workshop quota used up: 1 of the 1 tasks allowed "
        "to this token are used): ask the instructor to top it up. Nothing was sent."
    )
    assert "HTTP" not in w.error
    assert w.tasks[-1]["state"] == "error"
    spent = {"text": "workshop: 0 of 1 left", "state": "spent", "remaining": 0, "limit": 1}
    assert w.quota == spent
    p.top_up(p.issued[0].name, tasks=2)
    w.generate().result(timeout=WAIT)
    assert w.quota == {"text": "workshop: 1 of 3 left", "state": "low", "remaining": 1, "limit": 3}
    assert w.error == ""


def test_a_paused_participant_is_told_to_wait(
    make_proxy: MakeProxy, make_widget: MakeWidget
) -> None:
    p = make_proxy(participants=1, quota=20)
    w = at_proxy(make_widget, p)
    w.generate().result(timeout=WAIT)
    p.set_paused(p.issued[0].name)
    with pytest.raises(ParticipantPausedError):
        w.generate().result(timeout=WAIT)
    assert w.error.startswith("The instructor has paused new tasks for you")
    assert "wait until the class resumes" in w.error.lower()
    assert w.quota["state"] == "paused"
    assert w.quota["text"] == "workshop: 19 of 20 left (paused by the instructor)"
    p.set_paused(p.issued[0].name, False)
    w._repr_mimebundle_()  # displayed again: asked again
    wait_for(lambda: w.quota.get("state") == "ok")
    w.generate().result(timeout=WAIT)
    assert w.quota["text"] == "workshop: 18 of 20 left"


def test_an_expired_token_is_told_to_ask_for_a_new_one(
    make_proxy: MakeProxy, make_widget: MakeWidget
) -> None:
    clock = FakeClock(time.time())
    p = make_proxy(participants=1, quota=5, expires="2h", clock=clock)
    w = at_proxy(make_widget, p)
    w.generate().result(timeout=WAIT)
    clock.advance(7201)
    with pytest.raises(TokenExpiredError):
        w.generate().result(timeout=WAIT)
    assert w.error == (
        "Your workshop token has expired: ask the instructor for a new one and paste it in the "
        "API key field."
    )
    assert w.quota["state"] == "expired"
    assert w.quota["text"] == "workshop: token expired"


def test_no_quota_line_away_from_a_proxy(make_widget: MakeWidget, sandbox: SandboxHandle) -> None:
    w = make_widget(box=sandbox)
    w._repr_mimebundle_()
    w.generate().result(timeout=WAIT)
    time.sleep(0.1)  # the display's background question has had time to answer
    assert w.quota == {}
