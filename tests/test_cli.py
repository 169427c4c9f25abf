"""The ``siray-widgets`` command line, run as a subprocess the way users run it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.fault_server import CREATE, FaultServer, Reply, created, task_path, task_reply
from PIL import Image

from siray_widgets import Task, TaskStatus, cli
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.sandbox.images import image_size
from siray_widgets.schema import FIELDS, MODEL_ID

CLI = str(Path(sys.executable).with_name("siray-widgets"))
SECRET = "sk-live-cli-secret-4242"


def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SIRAY_API_KEY", "SIRAY_BASE_URL")}
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "SIRAY_SANDBOX_DURATION": "0.5", **env},
    )


def request_json(stdout: str) -> dict[str, object]:
    """The request JSON block at the top of generate's output."""
    end = stdout.index("\n}\n") + 2
    body: dict[str, object] = json.loads(stdout[:end])
    return body


def assert_one_line_error(out: subprocess.CompletedProcess[str], code: int) -> str:
    """The error is the last line of stderr and the only one saying "error" (lines before it
    are the progress the command showed on the way)."""
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], out.stderr
    assert lines[-1].startswith("siray-widgets")
    return lines[-1]


def test_generate_without_a_key_uses_the_sandbox_and_says_so() -> None:
    out = run("generate", "a fox in the snow --ar 16:9 --s 250", "--stylize", "300", "--seed", "7")
    assert out.returncode == 0, out.stderr
    assert "sandbox: placeholder images, no key used" in out.stderr
    assert "SUCCESS" in out.stderr
    assert "100%" in out.stderr  # the progress bar's last state
    body = request_json(out.stdout)
    assert body == {
        "model": MODEL_ID,
        "prompt": "a fox in the snow",
        "aspect_ratio": "16:9",  # from the suffix
        "chaos": 0,
        "stylize": 300,  # the flag beats the suffix's --s 250
        "weird": 0,
        "quality": "1",
        "seed": 7,
        "raw": False,
        "tile": False,
    }
    lines = out.stdout.splitlines()
    task_line = next(line for line in lines if line.startswith("task id: "))
    task_id = task_line.removeprefix("task id: ")
    urls = [line for line in lines if line.startswith("http://127.0.0.1:")]
    assert [u.rsplit("/", 2)[1:] for u in urls] == [[task_id, f"{n}.png"] for n in (1, 2, 3, 4)]


def test_generate_downloads_the_images(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    out = run(
        "generate", "a lighthouse --ar 2:3 --tile", "--quality", "2", "--download", str(target)
    )
    assert out.returncode == 0, out.stderr
    task_id = next(
        line.removeprefix("task id: ") for line in out.stdout.splitlines() if "task id" in line
    )
    files = sorted(target.iterdir())
    assert [f.name for f in files] == [f"{task_id}-{n}.png" for n in (1, 2, 3, 4)]
    for path in files:
        assert f"saved {path}" in out.stdout
        with Image.open(path) as image:
            assert image.size == image_size("2:3", "2")
            assert image.text["task_id"] == task_id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["a fox", "--chaos", "150"], ["chaos=150", "0..100"]),
        (["a fox --ar 5:4"], ["--ar 5:4", "aspect_ratio"]),
        (["a fox", "--quality", "3"], ["quality", '"4"']),
        (["a fox --v 6"], ["--v 6", "niji 7"]),
        (["a fox", "--chaos", "lots"], ["--chaos", "invalid int value"]),
        (["   "], ["prompt"]),
        (["a fox", "--poll", "0"], ["--poll"]),
        (["a fox", "--base-url", "ftp://example.com"], ["https://"]),
        (["a fox", "--base-url", "http://[::1"], ["http://[::1", "not a valid URL"]),
        (["a fox", "--base-url", "http://127.0.0.1:99999"], ["99999", "65535"]),
        (["a fox", "--base-url", "https://"], ["no host name"]),
    ],
    ids=[
        "range",
        "suffix-enum",
        "flag-enum",
        "unsupported-flag",
        "not-int",
        "blank",
        "poll",
        "url",
        "url-bracket",
        "url-port",
        "url-host",
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    out = run("generate", *args)
    message = assert_one_line_error(out, 2)
    assert out.stderr == message + "\n"  # found before anything ran: the only line
    for word in words:
        assert word in message
    assert out.stdout == ""  # nothing was sent


def test_api_errors_are_one_line_and_exit_1_without_the_key(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    box = make_sandbox(api_key="the-right-key")
    out = run("generate", "a fox", SIRAY_BASE_URL=box.base_url, SIRAY_API_KEY=SECRET)
    message = assert_one_line_error(out, 1)
    assert "Invalid API key" in message
    assert SECRET not in out.stdout + out.stderr
    assert box.task_ids() == []


def test_a_failed_task_is_one_line_and_exit_1(make_sandbox: Callable[..., SandboxHandle]) -> None:
    box = make_sandbox(failure_share=1.0)
    out = run("generate", "a fox", SIRAY_BASE_URL=box.base_url, SIRAY_API_KEY="k")
    message = assert_one_line_error(out, 1)
    assert "failed" in message
    assert box.task_ids()[0] in message


def test_a_stalled_task_times_out_in_one_line(make_sandbox: Callable[..., SandboxHandle]) -> None:
    box = make_sandbox(stall_at=10)
    out = run(
        "generate",
        "a fox",
        "--timeout",
        "0.5",
        "--poll",
        "0.05",
        SIRAY_BASE_URL=box.base_url,
        SIRAY_API_KEY="k",
    )
    message = assert_one_line_error(out, 1)
    assert "did not finish within 0.5 s" in message


def test_a_real_key_is_used_and_never_echoed(make_sandbox: Callable[..., SandboxHandle]) -> None:
    box = make_sandbox(api_key=SECRET)
    out = run(
        "generate", "a fox", "--poll", "0.05", SIRAY_BASE_URL=box.base_url, SIRAY_API_KEY=SECRET
    )
    assert out.returncode == 0, out.stderr
    assert "sandbox:" not in out.stderr  # a configured server, not the in-process sandbox
    assert "SIRAY_API_KEY" in out.stderr  # it says where the key came from...
    assert SECRET not in out.stdout + out.stderr  # ...never what it is


def test_sandbox_flag_ignores_a_configured_key() -> None:
    out = run("generate", "a fox", "--sandbox", SIRAY_API_KEY=SECRET)
    assert out.returncode == 0, out.stderr
    assert "sandbox: placeholder images, no key used" in out.stderr


def test_download_into_a_file_is_one_line_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = run("generate", "a fox", "--download", str(blocker))
    message = assert_one_line_error(out, 1)
    assert "cannot save into" in message


def test_no_command_prints_help_and_exits_2() -> None:
    out = run()
    assert out.returncode == 2
    assert "generate" in out.stderr
    assert "sandbox" in out.stderr
    assert "lab" in out.stderr


def test_generate_has_a_flag_for_every_schema_field() -> None:
    out = run("generate", "--help")
    assert out.returncode == 0
    flags = [f"--{f.name.replace('_', '-')}" for f in FIELDS if f.name != "prompt"]
    assert len(flags) == len(FIELDS) - 1
    for flag in flags:
        assert flag in out.stdout
    assert "--no-raw" in out.stdout  # booleans can be set either way


def test_a_subcommand_is_one_registry_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_parser(subparsers: cli.Subparsers[argparse.ArgumentParser]) -> None:
        parser = subparsers.add_parser("hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(run=lambda args: print(f"hello {args.name}") or 3)

    monkeypatch.setattr(sys.modules[__name__], "add_parser", add_parser, raising=False)
    monkeypatch.setattr(cli, "SUBCOMMANDS", (*cli.SUBCOMMANDS, f"{__name__}:add_parser"))
    assert cli.main(["hello", "--name", "lab"]) == 3
    assert capsys.readouterr().out == "hello lab\n"


def test_a_key_over_plain_http_to_another_host_is_refused_in_one_line() -> None:
    out = run("generate", "a fox", "--base-url", "http://api.example.com", SIRAY_API_KEY=SECRET)
    message = assert_one_line_error(out, 2)
    assert out.stderr == message + "\n"
    assert "api.example.com" in message
    assert "https://api.example.com" in message
    assert SECRET not in out.stderr
    assert out.stdout == ""


def test_a_key_with_a_line_break_is_refused_in_one_line_without_the_key() -> None:
    out = run("generate", "a fox", "--base-url", "http://127.0.0.1:9", SIRAY_API_KEY="sk-AB\nCD")
    message = assert_one_line_error(out, 2)
    assert out.stderr == message + "\n"
    assert "copy it again from the Siray dashboard" in message
    assert "AB" not in message
    assert "CD" not in message
    assert out.stdout == ""


def test_a_down_server_is_one_error_line_and_no_retry_noise(refused_url: str) -> None:
    # stamina logs every retry as a WARNING; with no logging set up, Python's last-resort
    # handler printed four "stamina.retry_scheduled" lines before the error.
    out = run("generate", "a fox", SIRAY_BASE_URL=refused_url, SIRAY_API_KEY="k")
    message = assert_one_line_error(out, 1)
    assert "could not connect" in message
    # The line saying where requests go, then the error: nothing else.
    assert out.stderr.splitlines() == [f"{refused_url} with the key from SIRAY_API_KEY", message]


# --- --download with a hostile task id ----------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "stem"),
    [
        ("../escaped", "_escaped"),
        ("..", "task"),
        ("/etc/passwd", "_etc_passwd"),
        (".hidden", "hidden"),
        ("a b/c\\d:e\x00f", "a_b_c_d_e_f"),
        ("ok-Task_1.2", "ok-Task_1.2"),
        ("x" * 300, "x" * 100),
    ],
)
def test_file_stem_keeps_only_safe_characters(task_id: str, stem: str) -> None:
    assert cli.file_stem(task_id) == stem


def test_download_keeps_a_hostile_task_id_inside_the_folder(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    png = b"\x89PNG\r\n\x1a\n not really"
    fault_server.on("POST", CREATE, created("../escaped"))
    fault_server.on(
        "GET",
        task_path("..%2Fescaped"),  # the client quotes the id into one path segment
        task_reply("../escaped", outputs=[f"{fault_server.url}/img/1.png"]),
    )
    fault_server.on("GET", "/img/1.png", Reply(200, png, headers={"Content-Type": "image/png"}))
    target = tmp_path / "out"
    out = run(
        "generate",
        "a fox",
        "--download",
        str(target),
        SIRAY_BASE_URL=fault_server.url,
        SIRAY_API_KEY="k",
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in target.iterdir()) == ["_escaped-1.png"]
    assert (target / "_escaped-1.png").read_bytes() == png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing escaped


def test_download_refuses_a_symlink_that_leads_out(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.on("GET", "/img/1.png", Reply(200, b"png", headers={"Content-Type": "image/png"}))
    target = tmp_path / "out"
    target.mkdir()
    outside = tmp_path / "outside.png"
    (target / "t1-1.png").symlink_to(outside)
    task = Task(task_id="t1", status=TaskStatus.SUCCESS, outputs=(f"{fault_server.url}/img/1.png",))
    with pytest.raises(cli.CommandError, match="leads outside"):
        cli.download(task, target)
    assert not outside.exists()
