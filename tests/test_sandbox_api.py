"""The sandbox's two endpoints over real HTTP: shapes, auth, validation, errors, images."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from siray_widgets.errors import ValidationError
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.schema import CREATE_PATH, FIELDS, FIELDS_BY_NAME, MODEL_ID, openapi

BODY: dict[str, Any] = {"model": MODEL_ID, "prompt": "a fox in the snow", "aspect_ratio": "16:9"}


@pytest.fixture
def http(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.api_key}"}
    ) as client:
        yield client


def create(http: httpx.Client, **fields: Any) -> str:
    response = http.post(CREATE_PATH, json={**BODY, **fields})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["task_id"]
    return task_id


def assert_error(response: httpx.Response, status: int, code: str, param: str | None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]
    message: str = error["message"]
    return message


def test_create_answers_the_documented_shape(http: httpx.Client) -> None:
    response = http.post(CREATE_PATH, json=BODY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "data", "message"}
    assert body["code"] == "success"
    assert isinstance(body["message"], str)
    assert set(body["data"]) == {"task_id"}
    assert body["data"]["task_id"].startswith("image_")


def test_status_of_a_finished_task(http: httpx.Client, sandbox: SandboxHandle) -> None:
    task_id = create(http)
    response = http.get(f"{CREATE_PATH}/{task_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["message"]) == ("success", "")
    data = body["data"]
    assert set(data) == {
        "task_id",
        "status",
        "progress",
        "outputs",
        "fail_reason",
        "submit_time",
        "start_time",
        "finish_time",
    }
    assert (data["task_id"], data["status"], data["progress"]) == (task_id, "SUCCESS", "100%")
    assert data["fail_reason"] == ""
    assert data["outputs"] == [
        f"{sandbox.base_url}/sandbox/images/{task_id}/{n}.png" for n in (1, 2, 3, 4)
    ]
    assert all(isinstance(data[k], int) for k in ("submit_time", "start_time", "finish_time"))
    assert 0 < data["submit_time"] <= data["start_time"] <= data["finish_time"]


def test_task_ids_are_unique(http: httpx.Client, sandbox: SandboxHandle) -> None:
    ids = [create(http) for _ in range(20)]
    assert len(set(ids)) == 20
    assert sandbox.task_ids() == ids


def test_images_are_public_pngs(http: httpx.Client) -> None:
    task_id = create(http)
    urls = http.get(f"{CREATE_PATH}/{task_id}").json()["data"]["outputs"]
    for url in urls:
        response = httpx.get(url)  # no Authorization header, like a CDN link
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("suffix", ["0.png", "5.png", "x.png"])
def test_image_numbers_outside_1_to_4_are_404(http: httpx.Client, suffix: str) -> None:
    task_id = create(http)
    response = http.get(f"/sandbox/images/{task_id}/{suffix}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_task_is_404_naming_the_id(http: httpx.Client) -> None:
    message = assert_error(http.get(f"{CREATE_PATH}/image_nope"), 404, "task_not_found", "task_id")
    assert "image_nope" in message
    assert http.get("/sandbox/images/image_nope/1.png").status_code == 404


def test_trailing_slash_is_not_redirected(http: httpx.Client) -> None:
    # The official SDK asks for ".../async/" when it lost the task id; a 404 says so plainly.
    assert http.get(f"{CREATE_PATH}/").status_code == 404


def test_wrong_method_is_405_json(http: httpx.Client) -> None:
    response = http.delete(CREATE_PATH)
    assert_error(response, 405, "method_not_allowed", None)
    assert "POST" in response.headers["allow"]


def test_openapi_document_is_the_schema_modules(sandbox: SandboxHandle) -> None:
    response = httpx.get(f"{sandbox.base_url}/openapi.json")  # no key needed
    assert response.status_code == 200
    assert response.json() == openapi()


def test_root_describes_the_sandbox(sandbox: SandboxHandle) -> None:
    body = httpx.get(sandbox.base_url).json()
    assert body["images"] == "placeholder images, no key used"
    assert body["openapi"] == "/openapi.json"


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}],
    ids=["none", "empty", "bearer-without-key", "basic"],
)
def test_both_endpoints_need_a_bearer_key(sandbox: SandboxHandle, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=sandbox.base_url, headers=headers) as client:
        for response in (client.post(CREATE_PATH, json=BODY), client.get(f"{CREATE_PATH}/x")):
            message = assert_error(response, 401, "invalid_api_key", None)
            assert "Bearer" in message
            assert response.headers["www-authenticate"] == "Bearer"
    assert sandbox.task_ids() == []


def test_any_key_is_accepted_by_default(sandbox: SandboxHandle) -> None:
    assert sandbox.api_key == "sandbox"
    response = httpx.post(
        sandbox.base_url + CREATE_PATH, json=BODY, headers={"Authorization": "bearer whatever"}
    )
    assert response.status_code == 200


def test_a_fixed_key_refuses_others_without_echoing_them(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    box = make_sandbox(api_key="the-right-key")
    assert box.api_key == "the-right-key"
    assert "the-right-key" not in repr(box)
    assert "the-right-key" not in repr(box.settings)
    wrong = httpx.post(
        box.base_url + CREATE_PATH, json=BODY, headers={"Authorization": "Bearer sk-wrong-123"}
    )
    message = assert_error(wrong, 401, "invalid_api_key", None)
    assert "sk-wrong-123" not in wrong.text
    assert "the-right-key" not in message
    right = httpx.post(
        box.base_url + CREATE_PATH, json=BODY, headers={"Authorization": "Bearer the-right-key"}
    )
    assert right.status_code == 200


# --- validation ----------------------------------------------------------------------------


def _bad_values() -> Iterator[tuple[str, Any]]:
    """For every field, values its schema rule refuses (derived from the schema itself)."""
    for field in FIELDS:
        if field.minimum is not None and field.maximum is not None:
            yield field.name, field.maximum + 1
            yield field.name, field.minimum - 1
        if field.enum is not None:
            yield field.name, "not-" + field.enum[0]
        if field.required and field.type == "string" and field.enum is None:
            yield field.name, "   "


@pytest.mark.parametrize(("name", "value"), list(_bad_values()))
def test_out_of_rule_values_are_400_with_the_schemas_message(
    http: httpx.Client, name: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as expected:
        FIELDS_BY_NAME[name].validate(value)
    message = assert_error(
        http.post(CREATE_PATH, json={**BODY, name: value}), 400, "invalid_parameter", name
    )
    assert message == str(expected.value)


def test_the_error_body_matches_the_openai_style_example(http: httpx.Client) -> None:
    response = http.post(CREATE_PATH, json={**BODY, "chaos": 150})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "chaos=150 is out of range 0..100",
            "type": "invalid_request_error",
            "param": "chaos",
            "code": "invalid_parameter",
        }
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quality", 2),  # the API's enum holds strings
        ("chaos", "5"),
        ("chaos", 5.5),
        ("chaos", True),
        ("raw", "true"),
        ("raw", 1),
        ("prompt", 5),
        ("negative_prompt", None),
        ("seed", None),
    ],
)
def test_json_types_are_checked_strictly(http: httpx.Client, name: str, value: Any) -> None:
    message = assert_error(
        http.post(CREATE_PATH, json={**BODY, name: value}), 400, "invalid_parameter", name
    )
    assert message.startswith(name)
    assert FIELDS_BY_NAME[name].allowed() in message


def test_an_integral_float_counts_as_an_integer(http: httpx.Client) -> None:
    # JSON Schema says 5.0 is an integer; the OpenAPI document promises that.
    create(http, chaos=5.0)


@pytest.mark.parametrize("name", ["model", "prompt", "aspect_ratio"])
def test_missing_required_field_is_400(http: httpx.Client, name: str) -> None:
    body = {k: v for k, v in BODY.items() if k != name}
    message = assert_error(http.post(CREATE_PATH, json=body), 400, "invalid_parameter", name)
    assert message == f"{name} is required"


def test_unknown_field_is_400_naming_it(http: httpx.Client) -> None:
    message = assert_error(
        http.post(CREATE_PATH, json={**BODY, "sampler": "euler"}),
        400,
        "invalid_parameter",
        "sampler",
    )
    assert "not a create-task field" in message


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"[1, 2]", b'"text"', b'{"chaos": NaN}', b"\xff\xfe\x00"],
    ids=["empty", "truncated", "prose", "array", "string", "nan", "bad-utf8"],
)
def test_bodies_that_are_not_a_json_object_are_400(http: httpx.Client, raw: bytes) -> None:
    response = http.post(CREATE_PATH, content=raw, headers={"Content-Type": "application/json"})
    message = assert_error(response, 400, "invalid_json", None)
    assert "JSON" in message


def test_a_huge_body_is_413(http: httpx.Client, sandbox: SandboxHandle) -> None:
    body = {**BODY, "prompt": "x" * (sandbox.settings.max_body_bytes + 1)}
    assert_error(http.post(CREATE_PATH, json=body), 413, "body_too_large", None)


def test_received_bodies_are_the_exact_bytes(http: httpx.Client, sandbox: SandboxHandle) -> None:
    first = json.dumps(BODY, indent=2).encode()
    second = b'{"model":"%s","prompt":"caf\\u00e9","aspect_ratio":"1:1","chaos":150}' % (
        MODEL_ID.encode()
    )
    for raw in (first, second):
        http.post(CREATE_PATH, content=raw, headers={"Content-Type": "application/json"})
    assert sandbox.received_bodies() == [first, second]  # rejected bodies are kept too


@pytest.mark.parametrize(
    "prompt",
    ["狐狸在雪中 🦊", "\u202eRTL override", "tab\tnew\nline\x00nul"],
    ids=["cjk-emoji", "rtl", "controls"],
)
def test_unusual_prompts_are_drawn(http: httpx.Client, prompt: str) -> None:
    raw = json.dumps({**BODY, "prompt": prompt}).encode()
    response = http.post(CREATE_PATH, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    task_id = response.json()["data"]["task_id"]
    url = http.get(f"{CREATE_PATH}/{task_id}").json()["data"]["outputs"][0]
    image = httpx.get(url)
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG")


def test_a_lone_surrogate_is_400_naming_the_field(http: httpx.Client) -> None:
    raw = json.dumps({**BODY, "prompt": "\ud800 lone"}).encode()  # valid JSON escape
    response = http.post(CREATE_PATH, content=raw, headers={"Content-Type": "application/json"})
    message = assert_error(response, 400, "invalid_parameter", "prompt")
    assert "not valid Unicode" in message
