"""The three ways to start a sandbox (in-process, shell, fixture), and the shared one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from siray_widgets import sandbox as sandbox_module
from siray_widgets.client import AsyncSirayClient, PollSchedule, SirayClient
from siray_widgets.sandbox import SandboxHandle, shared, start
from siray_widgets.schema import CREATE_PATH, MODEL_ID

BODY = {"model": MODEL_ID, "prompt": "a fox", "aspect_ratio": "1:1"}
CLI = str(Path(sys.executable).with_name("siray-widgets"))


def create(box: SandboxHandle) -> httpx.Response:
    return httpx.post(
        box.base_url + CREATE_PATH, json=BODY, headers={"Authorization": f"Bearer {box.api_key}"}
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SIRAY_API_KEY", "SIRAY_BASE_URL")}
    return {**env, **extra}


# --- in-process ----------------------------------------------------------------------------


def test_start_and_stop_in_process() -> None:
    box = start(duration=0)
    assert box.base_url == f"http://127.0.0.1:{box.port}"
    assert box.api_key == "sandbox"
    assert box.running
    assert create(box).status_code == 200
    box.stop()
    assert not box.running
    with pytest.raises(httpx.ConnectError):
        create(box)
    box.stop()  # idempotent


def test_context_manager_stops() -> None:
    with start(duration=0) as box:
        assert create(box).status_code == 200
    assert not box.running
    assert "stopped" in repr(box)


def test_start_from_a_thread_that_is_not_main() -> None:
    result: list[SandboxHandle | BaseException] = []

    def work() -> None:
        try:
            result.append(start(duration=0))
        except BaseException as exc:  # reported below
            result.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    box = result[0]
    assert isinstance(box, SandboxHandle)
    with box:
        assert create(box).status_code == 200


def test_start_inside_a_running_event_loop() -> None:
    """As in a Jupyter cell: a loop is already running in this thread."""

    async def cell() -> str:
        with start(duration=0) as box:
            async with AsyncSirayClient(api_key=box.api_key, base_url=box.base_url) as client:
                task = await client.generate(
                    prompt="a fox", poll=PollSchedule.fixed(0.01), timeout=10
                )
                return task.status.value

    assert asyncio.run(cell()) == "SUCCESS"


def test_two_sandboxes_are_independent(make_sandbox: Callable[..., SandboxHandle]) -> None:
    one, two = make_sandbox(), make_sandbox()
    assert one.port != two.port
    create(one)
    assert len(one.task_ids()) == 1
    assert two.task_ids() == []


def test_other_interfaces_need_allow_remote() -> None:
    with pytest.raises(ValueError, match="allow_remote=True"):
        start(host="0.0.0.0")
    with start(host="0.0.0.0", allow_remote=True, duration=0) as box:
        assert box.base_url.startswith("http://0.0.0.0:")
        local = httpx.post(
            f"http://127.0.0.1:{box.port}{CREATE_PATH}",
            json=BODY,
            headers={"Authorization": "Bearer x"},
        )
        assert local.status_code == 200
    with start(host="localhost", duration=0) as box:
        assert box.base_url.startswith("http://localhost:")


def test_a_busy_port_is_an_oserror(sandbox: SandboxHandle) -> None:
    with pytest.raises(OSError, match="in use"):
        start(port=sandbox.port)


def test_unknown_setting_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown sandbox setting"):
        start(fail_rate=0.5)


# --- pytest fixture ------------------------------------------------------------------------


def test_the_fixture_gives_an_instant_running_sandbox(sandbox: SandboxHandle) -> None:
    assert sandbox.running
    assert sandbox.settings.duration == 0
    task_id = create(sandbox).json()["data"]["task_id"]
    status = httpx.get(
        f"{sandbox.base_url}{CREATE_PATH}/{task_id}", headers={"Authorization": "Bearer k"}
    )
    assert status.json()["data"]["status"] == "SUCCESS"


def test_sandbox_env_points_the_client_at_the_fixture(sandbox_env: SandboxHandle) -> None:
    with SirayClient(poll=PollSchedule.fixed(0.01)) as client:
        assert client.base_url == sandbox_env.base_url
        task = client.generate(prompt="a fox", timeout=10)
    assert task.outputs[0].startswith(sandbox_env.base_url)


# --- the shared sandbox --------------------------------------------------------------------


@pytest.fixture
def fresh_shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with no shared sandbox yet; stop the one the test starts."""
    monkeypatch.setattr(sandbox_module, "_shared", None)
    monkeypatch.delenv("SIRAY_API_KEY", raising=False)
    monkeypatch.delenv("SIRAY_BASE_URL", raising=False)
    monkeypatch.setenv("SIRAY_SANDBOX_DURATION", "0")
    yield
    made = sandbox_module._shared
    if made is not None:
        made.stop()


@pytest.mark.usefixtures("fresh_shared")
def test_shared_is_started_once_even_from_many_threads() -> None:
    seen: list[SandboxHandle] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        seen.append(shared())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8
    assert all(box is seen[0] for box in seen)
    assert shared() is seen[0]
    assert seen[0].settings.duration == 0  # from SIRAY_SANDBOX_DURATION


@pytest.mark.usefixtures("fresh_shared")
def test_shared_restarts_after_being_stopped() -> None:
    first = shared()
    first.stop()
    second = shared()
    assert second is not first
    assert second.running


@pytest.mark.usefixtures("fresh_shared")
def test_the_client_uses_the_shared_sandbox_without_a_key() -> None:
    with SirayClient(poll=PollSchedule.fixed(0.01)) as client:
        assert client.sandbox
        assert client.summary == "sandbox: placeholder images, no key used"
        task = client.generate(prompt="a fox", timeout=10)
    assert task.outputs[0].startswith(shared().base_url)


def test_shared_default_duration_lets_a_human_see_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIRAY_SANDBOX_DURATION", raising=False)
    assert sandbox_module.shared_duration() == sandbox_module.DEFAULT_DURATION >= 2
    monkeypatch.setenv("SIRAY_SANDBOX_DURATION", "slow")
    with pytest.raises(ValueError, match="SIRAY_SANDBOX_DURATION"):
        sandbox_module.shared_duration()


def test_importing_the_package_or_the_sandbox_loads_no_server_or_pillow() -> None:
    code = (
        "import sys, siray_widgets, siray_widgets.sandbox\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# --- from the shell ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_start_from_the_shell(stop_signal: signal.Signals) -> None:
    port = free_port()
    with subprocess.Popen(
        [CLI, "sandbox", "--port", str(port), "--duration", "0", "--fail-rate", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        base_url = f"http://127.0.0.1:{port}"
        assert base_url in lines[0]
        assert f"  export SIRAY_BASE_URL={base_url}\n" in lines
        assert "  export SIRAY_API_KEY=sandbox\n" in lines
        response = httpx.post(
            base_url + CREATE_PATH, json=BODY, headers={"Authorization": "Bearer sandbox"}
        )
        assert response.status_code == 200
        proc.send_signal(stop_signal)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "sandbox stopped" in err
    assert "Traceback" not in err


def test_shell_refuses_a_public_interface_without_the_flag() -> None:
    out = subprocess.run(
        [CLI, "sandbox", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "--allow-remote" in out.stderr


def test_shell_reports_a_busy_port_in_one_line(sandbox: SandboxHandle) -> None:
    out = subprocess.run(
        [CLI, "sandbox", "--port", str(sandbox.port)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{sandbox.port}" in out.stderr


def test_the_shell_takes_the_key_from_siray_sandbox_key() -> None:
    # --api-key puts the key in the process list; the environment variable does not.
    key = "sk-sandbox-only-7781"
    port = free_port()
    with subprocess.Popen(
        [CLI, "sandbox", "--port", str(port), "--duration", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(SIRAY_SANDBOX_KEY=key),
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        assert '  export SIRAY_API_KEY="$SIRAY_SANDBOX_KEY"\n' in lines
        url = f"http://127.0.0.1:{port}{CREATE_PATH}"
        wrong = httpx.post(url, json=BODY, headers={"Authorization": "Bearer sandbox"})
        right = httpx.post(url, json=BODY, headers={"Authorization": f"Bearer {key}"})
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=30)
    assert (wrong.status_code, right.status_code) == (401, 200)
    assert proc.returncode == 0
    assert key not in "".join(lines) + rest + err


def test_the_shell_help_explains_where_the_key_goes() -> None:
    out = subprocess.run(
        [CLI, "sandbox", "--help"], capture_output=True, text=True, timeout=60, env=clean_env()
    )
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "SIRAY_SANDBOX_KEY" in text
    assert "visible to other users of this machine" in text


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_the_shell_refuses_a_bad_port_in_one_line(port: str) -> None:
    out = subprocess.run(
        [CLI, "sandbox", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    assert "--port" in out.stderr


@pytest.mark.parametrize("port", [65536, -1, True, "8765"])
def test_start_refuses_a_bad_port(port: object) -> None:
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        start(port=port)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["two words", "line\nbreak", "caf\u00e9"])
def test_a_sandbox_key_no_client_could_send_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="given to the sandbox") as info:
        start(api_key=key)
    assert key not in str(info.value)
