"""schemathesis against the sandbox's own /openapi.json: no 5xx, every answer as documented.

The schema is loaded from the running server's URL. (schemathesis's lazy ``from_fixture``
does not work with this pytest, so each operation's strategy is driven with ``@given``.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import pytest
import schemathesis
from fixtures.sandbox_fixtures import FakeClock
from hypothesis import HealthCheck, given, settings

from siray_widgets.sandbox import SandboxHandle, start
from siray_widgets.schema import CREATE_PATH, TASK_PATH

#: Per operation and generation mode: a few hundred examples in all.
EXAMPLES = 100


@pytest.fixture(scope="module")
def api_box() -> Iterator[SandboxHandle]:
    # One fixed key: schemathesis checks that made-up credentials are refused (an open
    # sandbox accepts any non-empty key by design, so that check needs this mode).
    with start(duration=0, api_key="schemathesis-key") as box:
        yield box


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
@pytest.mark.parametrize(("method", "path"), [("POST", CREATE_PATH), ("GET", TASK_PATH)])
def test_api_conforms_to_its_openapi_document(
    api_box: SandboxHandle, method: str, path: str, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{api_box.base_url}/openapi.json")
    operation = schema[path][method]
    auth = {"Authorization": f"Bearer {api_box.api_key}"}
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=auth)
        seen.append(response.status_code)

    check()
    assert seen
    assert max(seen) < 500


def test_every_task_state_conforms(
    make_sandbox: Callable[..., SandboxHandle], sandbox_clock: FakeClock
) -> None:
    """Status answers in each phase (and FAILURE, and a stall) match the document too."""
    box = make_sandbox(
        duration=10,
        clock=sandbox_clock,
        api_key="k",
        failure_share=0.3,
        stall_at=70,
        stall_share=0.3,
        seed=3,
    )
    schema = schemathesis.openapi.from_url(f"{box.base_url}/openapi.json")
    create, status = schema[CREATE_PATH]["POST"], schema[TASK_PATH]["GET"]
    auth = {"Authorization": "Bearer k"}
    body = {"model": "midjourney/midjourney-niji-7-t2i", "prompt": "a fox", "aspect_ratio": "1:1"}
    task_ids: list[str] = []
    for _ in range(12):
        response = create.Case(body=body, media_type="application/json").call_and_validate(
            headers=auth
        )
        task_ids.append(response.json()["data"]["task_id"])
    statuses: set[str] = set()
    for _ in range(12):
        for task_id in task_ids:
            case = status.Case(path_parameters={"task_id": task_id})
            statuses.add(case.call_and_validate(headers=auth).json()["data"]["status"])
        sandbox_clock.advance(1.0)
    assert statuses == {"NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS", "FAILURE"}


def test_the_document_calls_blank_exactly_what_the_server_refuses(api_box: SandboxHandle) -> None:
    """Python's str.isspace() decides a blank prompt (the sandbox, the client, the widget);
    the document's pattern agrees, character by character (a bare \\S let "\\x1e" through,
    and schemathesis then flagged the server for refusing "valid" data)."""
    import httpx

    document = httpx.get(f"{api_box.base_url}/openapi.json").json()
    body_schema = document["paths"][CREATE_PATH]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    if "$ref" in body_schema:
        name = body_schema["$ref"].rsplit("/", 1)[-1]
        body_schema = document["components"]["schemas"][name]
    pattern = body_schema["properties"]["prompt"]["pattern"]
    auth = {"Authorization": f"Bearer {api_box.api_key}"}
    spaces = [chr(i) for i in range(0x110000) if chr(i).isspace()]
    texts = [*spaces, "".join(spaces), "\x1e a", "fox", "\x1bfox", "\ufeff"]
    # JSON Schema patterns are ECMA-262 regular expressions: ask JavaScript, not Python's re.
    script = (
        "const [p, ts] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(ts.map((t) => new RegExp(p, 'u').test(t))));"
    )
    found = subprocess.run(
        ["node", "-e", script],
        input=json.dumps([pattern, texts]),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    for text, valid in zip(texts, json.loads(found.stdout), strict=True):
        assert valid is bool(text.strip()), repr(text)
    for text in ("\x1e", "\x85", " \u3000"):
        answer = httpx.post(
            api_box.base_url + CREATE_PATH,
            json={"model": "midjourney/midjourney-niji-7-t2i", "prompt": text},
            headers=auth,
        )
        assert answer.status_code == 400, (text, answer.text)
