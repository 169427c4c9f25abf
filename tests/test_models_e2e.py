"""A model of a fixture registry through the sandbox, the client and the command line, end to
end over real HTTP; and ``import siray_widgets`` stays free of the registry."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.registry_fixtures import (
    FIXTURE,
    FLUX_DEV,
    FLUX_ULTRA,
    NIJI,
    REF2I,
    SEEDREAM,
    TEXT_TO_IMAGE,
    isolate,
)
from PIL import Image

from siray_widgets import registry
from siray_widgets.client import AsyncSirayClient, SirayClient
from siray_widgets.errors import BadRequestError, ValidationError
from siray_widgets.sandbox import SandboxHandle, start
from siray_widgets.schema import CREATE_PATH, ModelRequest

CLI = str(Path(sys.executable).with_name("siray-widgets"))
AUTH = {"Authorization": "Bearer sandbox"}


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """A sandbox serving (and validating with) the fixture registry."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIRAY_SANDBOX_REGISTRY", str(FIXTURE))
        handle = start(duration=0)
    with handle:
        yield handle


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture
def known(box: SandboxHandle) -> registry.Registry:
    """The fixture registry, loaded the way a client loads it: from the gateway (the box)."""
    found = registry.load(box.base_url)
    assert found.source == "network"
    return found


def post(box: SandboxHandle, body: Any) -> httpx.Response:
    return httpx.post(box.base_url + CREATE_PATH, json=body, headers=AUTH)


# --- sandbox ------------------------------------------------------------------------------------


def test_the_sandbox_accepts_every_supported_model_of_its_registry(box: SandboxHandle) -> None:
    for model in TEXT_TO_IMAGE:
        response = post(box, {"model": model, "prompt": "a lighthouse"})
        if model == NIJI:  # niji 7 needs its aspect ratio, as before
            response = post(box, {"model": model, "prompt": "a fox", "aspect_ratio": "1:1"})
        assert response.status_code == 200, (model, response.text)
        assert response.json()["data"]["task_id"].startswith("image_")


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": SEEDREAM, "prompt": "a", "size": "1x1"}, "size", 'must be one of "2048x2048"'),
        (
            {"model": FLUX_DEV, "prompt": "a", "num_inference_steps": "30"},
            "num_inference_steps",
            "num_inference_steps='30' must be an integer in range 1..50",
        ),
        (
            {"model": FLUX_DEV, "prompt": "a", "guidance_scale": 4.25},
            "guidance_scale",
            "guidance_scale=4.25 must be a multiple of 0.5",
        ),
        (
            {"model": FLUX_ULTRA, "prompt": "a", "safety_tolerance": 9},
            "safety_tolerance",
            "safety_tolerance=9 is out of range 1..6",
        ),
        ({"model": FLUX_ULTRA, "prompt": "a", "raw": "yes"}, "raw", "must be true or false"),
        ({"model": FLUX_ULTRA, "prompt": "a", "chaos": 5}, "chaos", "is not a field of"),
        ({"model": FLUX_ULTRA}, "prompt", "prompt is required"),
        ({"model": SEEDREAM, "prompt": " "}, "prompt", "must not be empty"),
        (
            {"model": REF2I, "prompt": "a", "images": ["https://x/y.png"]},
            "model",
            "is not supported by the sandbox yet: it needs image input 'images'",
        ),
        ({"model": "acme/unknown", "prompt": "a"}, "model", f'must be one of "{NIJI}", '),
    ],
)
def test_the_sandbox_validates_other_models_from_their_schema(
    box: SandboxHandle, body: dict[str, Any], param: str, message: str
) -> None:
    response = post(box, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["code"] == "invalid_parameter"
    assert message in error["message"]


def test_the_message_is_the_schemas_own(box: SandboxHandle, known: registry.Registry) -> None:
    spec = known.get(FLUX_DEV).model_schema()
    with pytest.raises(ValidationError) as expected:
        spec.request("a", num_inference_steps=99)
    response = post(box, {"model": FLUX_DEV, "prompt": "a", "num_inference_steps": 99})
    assert response.json()["error"]["message"] == str(expected.value)


def test_placeholders_of_other_models_take_their_aspect_from_the_request(
    box: SandboxHandle, known: registry.Registry
) -> None:
    with SirayClient(base_url=box.base_url, api_key=box.api_key) as client:
        task = client.generate(model=SEEDREAM, prompt="a wide bay", size="2560x1440")
        png = httpx.get(task.outputs[0]).content
    width, height = Image.open(io.BytesIO(png)).size
    assert abs(width / height - 16 / 9) < 0.02


# --- client -------------------------------------------------------------------------------------


def test_a_fixture_model_goes_through_the_client(
    box: SandboxHandle, known: registry.Registry
) -> None:
    request = registry.request_for(FLUX_DEV, "a heron at dawn", num_inference_steps=12)
    assert isinstance(request, ModelRequest)
    with SirayClient(base_url=box.base_url, api_key=box.api_key) as client:
        task = client.generate(request)
    assert task.status.value == "SUCCESS"
    assert len(task.outputs) == 4
    assert box.received_bodies()[-1] == request.to_json().encode("utf-8")
    assert json.loads(box.received_bodies()[-1])["num_inference_steps"] == 12


def test_the_client_builds_other_models_from_keywords(
    box: SandboxHandle, known: registry.Registry
) -> None:
    async def main() -> str:
        async with AsyncSirayClient(base_url=box.base_url, api_key=box.api_key) as client:
            return await client.submit(model=FLUX_ULTRA, prompt="dunes", safety_tolerance=5)

    assert asyncio.run(main()).startswith("image_")
    sent = json.loads(box.received_bodies()[-1])
    assert sent == {
        "model": FLUX_ULTRA,
        "prompt": "dunes",
        "aspect_ratio": "16:9",
        "output_format": "jpg",
        "safety_tolerance": 5,
    }
    with (
        SirayClient(base_url=box.base_url, api_key=box.api_key) as client,
        pytest.raises(ValidationError, match="safety_tolerance=0"),
    ):
        client.submit(model=FLUX_ULTRA, prompt="dunes", safety_tolerance=0)


def test_a_request_the_server_refuses_is_a_bad_request_error(box: SandboxHandle) -> None:
    # Built against a registry that says more than the sandbox's: the server has the last word.
    loose = registry.parse_registry(
        json.dumps(
            {
                "data": [
                    {
                        "model_name": SEEDREAM,
                        "tag": "text-to-image",
                        "model_extend_info": json.dumps(
                            {
                                "properties": {
                                    "prompt": {"type": "string"},
                                    "steps": {"type": "integer"},
                                }
                            }
                        ),
                    }
                ]
            }
        )
    )
    request = registry.request_for(SEEDREAM, "a fox", registry=loose, steps=3)
    with (
        SirayClient(base_url=box.base_url, api_key=box.api_key) as client,
        pytest.raises(
            BadRequestError, match=r"steps is not a field of bytedance/seedream-3\.0-t2i"
        ),
    ):
        client.submit(request)


# --- command line -------------------------------------------------------------------------------


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SIRAY_API_KEY", "SIRAY_BASE_URL", "SIRAY_GATEWAY_URL")
    }
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=60, env={**base, **env}
    )


def test_models_json_lists_prices_and_support(box: SandboxHandle) -> None:
    out = run("models", "--json", SIRAY_GATEWAY_URL=box.base_url)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["source"] == "network"
    assert doc["gateway"] == box.base_url
    rows = {m["model"]: m for m in doc["models"]}
    assert list(rows) == [*sorted(TEXT_TO_IMAGE), REF2I]
    assert (rows[SEEDREAM]["price"], rows[SEEDREAM]["price_text"]) == ("0.03", "$0.03 per task")
    assert rows[SEEDREAM]["supported"] is True
    assert rows[REF2I]["supported"] is False
    assert rows[REF2I]["support"] == "not supported yet: it needs image input 'images'"
    assert rows[NIJI]["builtin"] is True
    everything = json.loads(run("models", "--json", "--all", "--gateway", box.base_url).stdout)
    assert len(everything["models"]) == 8


def test_models_table(box: SandboxHandle) -> None:
    out = run("models", SIRAY_GATEWAY_URL=box.base_url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "TAG", "PRICE", "STATUS"]
    seedream = next(line for line in lines if line.startswith(SEEDREAM))
    assert seedream.split()[:4] == [SEEDREAM, "text-to-image", "$0.03", "per"]
    assert seedream.rstrip().endswith("supported")
    assert any(line.startswith(REF2I) and "not supported yet" in line for line in lines)
    assert f"registry fetched from {box.base_url}" in out.stderr


def test_models_offline_shows_the_snapshot(tmp_path: Path) -> None:
    out = run("models", "--offline", SIRAY_WIDGETS_HOME=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].startswith(NIJI)
    assert "price unknown" in out.stdout
    assert "snapshot" in out.stderr


def test_generate_with_a_fixture_model_and_params(box: SandboxHandle) -> None:
    out = run(
        "generate",
        "a heron --ar 16:9",  # not a suffix for this model: part of the prompt
        "--model",
        FLUX_DEV,
        "--param",
        "num_inference_steps=30",
        "--param",
        "guidance_scale=4.5",
        "--param",
        "enable_safety_checker=false",
        "--poll",
        "0.05",
        SIRAY_GATEWAY_URL=box.base_url,
        SIRAY_BASE_URL=box.base_url,
        SIRAY_API_KEY=box.api_key,
    )
    assert out.returncode == 0, out.stderr
    end = out.stdout.index("\n}\n") + 2
    printed = out.stdout[:end]
    assert json.loads(printed) == {
        "model": FLUX_DEV,
        "prompt": "a heron --ar 16:9",
        "num_inference_steps": 30,
        "guidance_scale": 4.5,
        "num_images": 1,
        "enable_safety_checker": False,
    }
    assert printed.encode() in box.received_bodies()  # the very bytes shown were sent
    assert len([line for line in out.stdout.splitlines() if line.endswith(".png")]) == 4
    assert "estimated cost: $0.0125 (1 task x $0.0125)" in out.stderr


def test_generate_niji_7_with_a_param(box: SandboxHandle) -> None:
    out = run(
        "generate",
        "a fox --ar 3:2",
        "--param",
        "chaos=20",
        "--poll",
        "0.05",
        SIRAY_BASE_URL=box.base_url,
        SIRAY_API_KEY=box.api_key,
    )
    assert out.returncode == 0, out.stderr
    sent = json.loads(box.received_bodies()[-1])
    assert (sent["model"], sent["aspect_ratio"], sent["chaos"]) == (NIJI, "3:2", 20)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", REF2I], "is not supported yet: it needs image input 'images'"),
        (["--model", SEEDREAM, "--chaos", "3"], "has no field 'chaos'; its fields: model"),
        (["--model", SEEDREAM, "--param", "size"], "must look like NAME=VALUE"),
        (["--model", SEEDREAM, "--param", "steps=3"], "has no field 'steps'"),
        (["--model", FLUX_DEV, "--param", "num_inference_steps=many"], "must be an integer"),
        (["--model", "bytedance/seedream-3.0-t2x"], "did you mean bytedance/seedream-3.0-t2i"),
    ],
)
def test_generate_refuses_bad_model_options_before_sending(
    box: SandboxHandle, args: list[str], message: str
) -> None:
    before = len(box.received_bodies())
    out = run(
        "generate",
        "a fox",
        *args,
        SIRAY_GATEWAY_URL=box.base_url,
        SIRAY_BASE_URL=box.base_url,
        SIRAY_API_KEY=box.api_key,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].startswith("siray-widgets: error: ")
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(box.received_bodies()) == before


def test_the_sandbox_command_serves_a_registry_file() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    with subprocess.Popen(
        [CLI, "sandbox", "--port", "0", "--duration", "0", "--registry", str(FIXTURE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        base_url = lines[0].split()[3].rstrip(":")
        assert any(f"{base_url}/api/model-verse/models" in line for line in lines)
        names = registry.fetch(base_url).names
        response = httpx.post(
            base_url + CREATE_PATH, json={"model": SEEDREAM, "prompt": "a"}, headers=AUTH
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert names[:2] == [NIJI, SEEDREAM]
    assert response.status_code == 200


def test_the_sandbox_command_refuses_a_bad_registry_file(tmp_path: Path) -> None:
    bad = tmp_path / "models.json"
    bad.write_text("{}")
    out = run("sandbox", "--port", "0", "--registry", str(bad))
    assert out.returncode == 2
    assert 'is not {"data": [...]}' in out.stderr
    assert "Traceback" not in out.stderr


# --- import cost ----------------------------------------------------------------------------


def test_importing_the_package_loads_no_registry_and_no_http() -> None:
    probe = (
        "import sys, siray_widgets\n"
        "from siray_widgets import ImageRequest, schema_json\n"
        "schema_json(); ImageRequest(prompt='a fox').to_json()\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('siray_widgets.registry', 'siray_widgets.schema_from_json', 'httpx', "
        "'platformdirs', 'siray_widgets.client'))))\n"
        "import siray_widgets.registry\n"
        "print(sorted(m for m in sys.modules if m.startswith(('httpx', 'platformdirs'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.splitlines() == ["[]", "[]"]
