"""The widget's error text (issue 7, bug 7 and 13): what went wrong and what to do, never the key.

Runs talk real HTTP to a keyed sandbox or the fault server. The browser test
``test_browser_runs.py::test_a_401_without_a_key_says_none_was_sent`` shows the same text
in the page.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fixtures.fault_server import CREATE, FaultServer, error_reply
from fixtures.widget_fixtures import WAIT, MakeWidget

from siray_widgets._widget_tasks import describe_error
from siray_widgets.errors import AuthenticationError, TaskFailedError
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.sandbox.faults import FAIL_REASONS

pytestmark = pytest.mark.usefixtures("no_siray_env")

KEY = "sk-test-ERRORS-0123456789abcdef"


def _error_of(w: object) -> str:
    generation = w.generate()  # type: ignore[attr-defined]
    with pytest.raises(AuthenticationError):
        generation.result(timeout=WAIT)
    return str(generation.error)


def test_a_401_without_a_key_at_a_base_url_says_none_was_sent(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(api_key=KEY)
    w = make_widget()
    w.base_url = box.base_url  # a server of its own, and no key set anywhere
    text = _error_of(w)
    assert text.startswith(f"The server at {box.base_url} asked for an API key (HTTP 401")
    assert "none was sent" in text
    assert "w.base_url = None" in text  # the way back to the sandbox
    # Not the old self-contradiction: no key was refused, and there is none to remove.
    assert "refused the key" not in text
    assert "remove the key" not in text
    assert w.error == text


def test_a_refused_key_is_called_refused(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(api_key="the-only-good-key-0123456789")
    w = make_widget()
    w.base_url = box.base_url
    w.api_key = KEY
    text = _error_of(w)
    assert text.startswith("The API refused the key (HTTP 401")
    assert "none was sent" not in text
    assert KEY not in text


def test_a_key_echoed_by_the_server_after_bearer_is_masked_whole(
    make_widget: MakeWidget, fault_server: FaultServer
) -> None:
    fault_server.always("POST", CREATE, error_reply(401, f"Invalid token: Bearer {KEY}"))
    w = make_widget()
    w.base_url = fault_server.url
    w.api_key = KEY
    text = _error_of(w)
    assert "Bearer ***" in text
    assert KEY not in text
    assert "ERRORS" not in text


def test_a_key_that_is_an_ordinary_word_does_not_mask_that_word_in_the_text(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(api_key="the-only-good-key-0123456789")
    w = make_widget()
    w.base_url = box.base_url
    w.api_key = "sandbox"  # too short to be a key: redacting it hides the package's own words
    text = _error_of(w)
    assert "***" not in text
    assert "offline sandbox" in text


@pytest.mark.parametrize(
    ("reason", "advice", "not_advice"),
    [
        (FAIL_REASONS[0], "Rephrase the prompt", "Retry"),  # moderation
        (FAIL_REASONS[1], "press Retry", "Rephrase"),  # worker lost
        (FAIL_REASONS[2], "press Retry", "change the prompt"),  # upstream timeout
        ("something nobody expected", "Press Retry", "Rephrase"),
        ("", "no reason given", "Rephrase the"),
    ],
)
def test_a_failed_task_gets_advice_that_fits_its_reason(
    reason: str, advice: str, not_advice: str
) -> None:
    text = describe_error(TaskFailedError("image_1", reason))
    assert text.startswith("Task image_1 failed: ")
    assert advice in text
    assert not_advice not in text
    if "timeout" in reason:
        assert "not your request" in text  # a timeout is the service's, not the prompt's
