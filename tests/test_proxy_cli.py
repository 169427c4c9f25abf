"""``siray-widgets proxy``: the command an instructor runs, in a real process."""

from __future__ import annotations

import csv
import os
import re
import signal
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fixtures.proxy_fixtures import REAL_KEY

from siray_widgets import cli
from siray_widgets.proxy.roster import TOKEN_COLUMNS
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.schema import CREATE_PATH, MODEL_ID

BODY = {"model": MODEL_ID, "prompt": "a fox", "aspect_ratio": "1:1"}
ADMIN = "cli-admin-token-0123456789"


class Running:
    def __init__(self, process: subprocess.Popen[str], banner: str) -> None:
        self.process = process
        self.banner = banner
        found = re.search(r"Workshop proxy on (\S+), ", banner)
        assert found, banner
        self.url = found.group(1)

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=20)
        return self.process.returncode, self.banner + out, err


def start_cli(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Running:
    process = subprocess.Popen(
        [sys.executable, "-m", "siray_widgets.cli", "proxy", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = process.stdout.readline()
        if not line:
            _, err = process.communicate(timeout=20)
            raise AssertionError(f"the proxy did not start: {''.join(lines)}{err}")
        lines.append(line)
    return Running(process, "".join(lines))


def create(url: str, token: str) -> httpx.Response:
    return httpx.post(url + CREATE_PATH, json=BODY, headers={"Authorization": f"Bearer {token}"})


def read_tokens(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_command_keeps_its_class_across_restarts(
    key_upstream: SandboxHandle, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SIRAY_API_KEY": REAL_KEY,
        "SIRAY_PROXY_ADMIN_TOKEN": ADMIN,
        "SIRAY_WIDGETS_HOME": str(tmp_path / "home"),
    }
    db, tokens = tmp_path / "class.db", tmp_path / "out" / "tokens.csv"
    common = ["--upstream", key_upstream.base_url, "--db", str(db), "--tokens-out", str(tokens)]

    first = start_cli([*common, "--participants", "3", "--quota", "2", "--expires", "3h"], env)
    rows = read_tokens(tokens)
    assert tuple(rows[0]) == TOKEN_COLUMNS
    assert [r["name"] for r in rows] == ["participant-01", "participant-02", "participant-03"]
    assert {r["quota"] for r in rows} == {"2"}
    assert all(r["token"] in first.banner for r in rows)  # printed too
    assert all(r["expires_at"] for r in rows)
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert "Admin token: from SIRAY_PROXY_ADMIN_TOKEN" in first.banner
    assert create(first.url, rows[0]["token"]).status_code == 200
    admin = httpx.get(first.url + "/admin", auth=("admin", ADMIN))
    assert admin.status_code == 200
    code, out, err = first.stop()
    assert code == 0, err
    assert "participant-01: create -> 200 created" in err  # the log line, on stderr

    # Same --db, no participant options: same people, tokens and usage.
    second = start_cli(common, env)
    assert "3 participants, 1 tasks used" in second.banner
    assert "New participants" not in second.banner
    answers = [create(second.url, rows[0]["token"]).status_code for _ in range(2)]
    assert answers == [200, 429]
    assert create(second.url, rows[1]["token"]).status_code == 200
    code, out2, err2 = second.stop()
    assert code == 0, err2
    assert read_tokens(tokens) == rows  # nothing new to write

    # Asking for four adds only the fourth, appended to the same file.
    third = start_cli([*common, "--participants", "4"], env)
    code, out3, err3 = third.stop()
    assert code == 0, err3
    assert [r["name"] for r in read_tokens(tokens)][-1] == "participant-04"
    assert len(read_tokens(tokens)) == 4
    # The real key is in nothing the command printed or wrote.
    for text in (out, err, out2, err2, out3, err3):
        assert REAL_KEY not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert REAL_KEY.encode() not in path.read_bytes()


def test_rehearsal_on_a_sandbox_needs_no_key(tmp_path: Path) -> None:
    env = {**os.environ, "SIRAY_WIDGETS_HOME": str(tmp_path / "home")}
    env.pop("SIRAY_API_KEY", None)
    running = start_cli(
        ["--upstream", "sandbox", "--sandbox-duration", "0", "--participants", "1"],
        env,
        cwd=tmp_path,
    )
    try:
        assert "forwarding to a rehearsal sandbox" in running.banner
        assert str(tmp_path / "home" / "workshop-proxy.sqlite3") in running.banner
        token = re.search(r"participant-01\s+(workshop-\S+)", running.banner)
        assert token is not None
        assert create(running.url, token.group(1)).status_code == 200
        assert "Admin token: " in running.banner
    finally:
        code, _, err = running.stop()
    assert code == 0, err
    # The tokens went to the default file in the folder it was started from.
    assert (tmp_path / "workshop-tokens.csv").read_text().startswith("token,name,quota")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--upstream", "https://api.siray.ai"], {}, "needs the real API key"),
        (["--upstream", "http://203.0.113.9"], {"SIRAY_API_KEY": REAL_KEY}, "unencrypted"),
        (["--upstream", "sandbox", "--budget", "1"], {}, "--price-per-task"),
        (["--upstream", "sandbox", "--expires", "soon"], {}, "not a duration"),
        (["--upstream", "sandbox", "--budget", "lots", "--price-per-task", "1"], {}, "dollars"),
        (["--upstream", "sandbox", "--admin-remote"], {}, "HTTPS"),
        (["--upstream", "sandbox", "--certfile", "/nonexistent.pem"], {}, "certificate"),
        (["--upstream", "https://x.example", "--sandbox-duration", "1"], {}, "--upstream sandbox"),
        (["--upstream", "sandbox", "--concurrency", "0"], {}, "at least 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from siray_widgets import registry

    monkeypatch.setattr(registry, "_current", registry.snapshot())  # niji 7: price unknown
    monkeypatch.delenv("SIRAY_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["proxy", *args, "--port", "0", "--db", str(tmp_path / "x.db")])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert REAL_KEY not in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was made


def test_a_roster_is_read_and_its_errors_name_the_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    roster = tmp_path / "names.csv"
    roster.write_text("name,quota\nAda Lovelace,5\n\n# a comment\nAlan Turing,\nAda Lovelace,3\n")
    code = cli.main(["proxy", "--upstream", "sandbox", "--roster", str(roster), "--port", "0"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "line 6" in err
    assert "also on line 2" in err
    with pytest.raises(SystemExit) as usage:
        cli.main(["proxy", "--upstream", "sandbox", "--participants", "2", "--roster", "x"])
    assert usage.value.code == 2
    _, err = capsys.readouterr()
    assert "not allowed with argument" in err

    from siray_widgets.proxy.roster import read_roster

    roster.write_text("\ufeffName,Quota,Budget\nAda Lovelace,5,1.50\nAlan Turing,,\n")
    entries = read_roster(roster)
    assert [(e.name, e.quota, e.budget) for e in entries] == [
        ("Ada Lovelace", 5, Decimal("1.50")),
        ("Alan Turing", None, None),
    ]
    roster.write_text("Grace Hopper\nKatherine Johnson\n")
    assert [e.name for e in read_roster(roster)] == ["Grace Hopper", "Katherine Johnson"]
