"""The command line against hostile servers (issue 11): control sequences in what it prints,
downloads that are not images or are too big, and a --timeout that covers the create call."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fixtures.fault_server import CREATE, FaultServer, Reply, created, task_path, task_reply

CLI = str(Path(sys.executable).with_name("siray-widgets"))
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def run(server: FaultServer, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SIRAY_API_KEY", "SIRAY_BASE_URL")}
    env.update(SIRAY_BASE_URL=server.url, SIRAY_API_KEY="sk-cli-hostile-0123456789")
    return subprocess.run(
        [CLI, "generate", "a fox", "--poll", "0.01", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_control_sequences_from_the_server_are_written_out(fault_server: FaultServer) -> None:
    # main: OSC 52 (clipboard write), a window title and clear-screen reached the terminal.
    evil = "\x1b]52;c;ZXZpbA==\x07\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eboom"
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.on("GET", task_path("t1"), task_reply("t1", "FAILURE", fail_reason=evil))
    out = run(fault_server)
    assert out.returncode == 1
    for char in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert char not in out.stderr + out.stdout
    assert "\\x1b]52;c;ZXZpbA==\\x07" in out.stderr  # shown, harmlessly
    assert "\\u202eboom" in out.stderr


def test_a_download_that_is_not_an_image_is_not_saved(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    # main: a JSON body answered with Content-Type image/png was saved as t1-1.png.
    url = f"{fault_server.url}/img/1.png"
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.on("GET", task_path("t1"), task_reply("t1", outputs=[url]))
    fault_server.on(
        "GET", "/img/1.png", Reply(200, b'{"error": "no"}', {"Content-Type": "image/png"})
    )
    out = run(fault_server, "--download", str(tmp_path / "out"))
    assert out.returncode == 1
    assert "did not answer with an image" in out.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_a_download_larger_than_the_cap_is_not_read(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    # main: a 200 MB body was read whole and saved.
    url = f"{fault_server.url}/img/1.png"
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.on("GET", task_path("t1"), task_reply("t1", outputs=[url, url]))
    fault_server.on(
        "GET",
        "/img/1.png",
        Reply(200, PNG, {"Content-Type": "image/png"}, padding=40 * 1024 * 1024, no_length=True),
    )
    started = time.monotonic()
    out = run(fault_server, "--download", str(tmp_path / "out"))
    assert time.monotonic() - started < 30
    assert out.returncode == 1
    assert "larger than 32 MB" in out.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_redirected_outputs_are_followed_and_named_by_their_real_type(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    fault_server.on("POST", CREATE, created("t1"))
    fault_server.on(
        "GET", task_path("t1"), task_reply("t1", outputs=[f"{fault_server.url}/redirect/t1/1"])
    )
    fault_server.on("GET", "/redirect/t1/1", Reply(302, b"", {"Location": "/files/1"}))
    fault_server.on("GET", "/files/1", Reply(200, jpeg, {"Content-Type": "image/jpeg"}))
    out = run(fault_server, "--download", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "t1-1.jpg").read_bytes() == jpeg


def test_timeout_covers_a_create_call_dripped_for_ever(fault_server: FaultServer) -> None:
    # main: `generate --timeout 5` against a server dripping a byte every 2 s ran past 40 s.
    fault_server.always(
        "POST", CREATE, Reply(200, {"code": "success", "data": {"task_id": "t1"}}, drip=(1, 0.2))
    )
    started = time.monotonic()
    out = run(fault_server, "--timeout", "1", timeout=30)
    assert time.monotonic() - started < 10
    assert out.returncode == 1
    assert "no complete answer within 1 s" in out.stderr
