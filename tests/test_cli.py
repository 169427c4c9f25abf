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
from PIL import Image

from siray_widgets import cli
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
