"""`siray-widgets lab` (what `scripts/lab` runs): JupyterLab on a working copy of the quickstart.

Issue 7, bug 9: start-up printed an 11,000-character minified line and a Node stack trace; now it
is a few lines and the address. Bug 10: it opened the tracked quickstart, so autosave wrote
outputs into git; now it opens a copy in a working folder (``./siray-work`` by default).
The browser side of bug 10 is ``test_browser_kernel.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, deadline: float) -> dict[str, object]:
    # The URL is logged a moment before the socket accepts connections.
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return dict(json.load(response))
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


REPO = Path(__file__).resolve().parents[1]


def _lab_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    env.pop("SIRAY_API_KEY", None)
    return env


class Lab:
    """``siray-widgets lab --no-browser`` running in a subprocess; every line it printed."""

    def __init__(self, tmp_path: Path, *args: str, cwd: Path | None = None) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "siray_widgets.cli", "lab", "--no-browser"]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port), *args],
            env=_lab_env(tmp_path),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.token = ""

    def wait_for_url(self, timeout: float = 60) -> str:
        """Read output until the address is printed; return its token."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"http://127\.0\.0\.1:{self.port}/lab\?token=(\w+)")
        while not self.token and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, "JupyterLab exited before it served anything:\n" + "".join(self.lines)
            self.lines.append(line)
            match = pattern.search(line)
            self.token = match.group(1) if match else ""
        assert self.token, "JupyterLab never printed its URL"
        return self.token

    def get(self, path: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.port}{path}?token={self.token}"
        return _get_json(url, time.monotonic() + 30)

    def stop(self) -> list[str]:
        """SIGTERM; return everything printed."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines += out.splitlines(keepends=True)
        return self.lines


@pytest.mark.timeout(90)
def test_lab_serves_the_quickstart_from_a_fresh_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    lab = Lab(tmp_path, "--dir", str(work))
    try:
        lab.wait_for_url()
        assert "using the offline sandbox" in lab.lines[0]
        model = lab.get("/api/contents/quickstart.ipynb")
        cells = model["content"]["cells"]  # type: ignore[index]
        assert any("ImagineWidget" in "".join(cell["source"]) for cell in cells)
        # The notebook was copied into the fresh folder, next to nothing else.
        assert (work / "quickstart.ipynb").is_file()
    finally:
        lab.stop()


@pytest.mark.timeout(90)
def test_lab_starts_cleanly_a_few_lines_and_the_address(tmp_path: Path) -> None:
    """No minified dump, no Node stack trace, nothing that looks like an error."""
    lab = Lab(tmp_path, "--dir", str(tmp_path / "work"))
    try:
        lab.wait_for_url()
        lab.get("/api/status")  # serving; anything logged while starting is out by now
        time.sleep(1.5)
    finally:
        lines = lab.stop()
    text = "".join(lines)
    started = [
        line for line in lines if "received signal" not in line and "Shutting down" not in line
    ]
    assert len(started) <= 12, text
    assert max(len(line) for line in lines) <= 200, text
    for noise in (
        "Fail to get yarn",
        "Dynamic require",
        "Error",
        "Traceback",
        "    at ",
        "Node.js",
    ):
        assert noise not in text, text
    assert f"http://127.0.0.1:{lab.port}/lab?token=" in text


@pytest.mark.timeout(90)
def test_lab_opens_a_copy_in_a_working_folder_never_the_tracked_quickstart(
    tmp_path: Path,
) -> None:
    tracked = REPO / "notebooks" / "quickstart.ipynb"
    before = tracked.read_bytes()
    here = tmp_path / "here"
    here.mkdir()
    lab = Lab(tmp_path, cwd=here)  # no --dir: what scripts/lab does in a checkout
    try:
        lab.wait_for_url()
        copy = here / "siray-work" / "quickstart.ipynb"
        assert json.loads(copy.read_text())["cells"] == json.loads(before)["cells"]
        model = lab.get("/api/contents/quickstart.ipynb")  # served from the working folder
        assert model["path"] == "quickstart.ipynb"
        listing = lab.get("/api/contents")
        assert sorted(item["name"] for item in listing["content"]) == [  # type: ignore[attr-defined, index]
            "parameter-tour.ipynb",
            "quickstart.ipynb",
            "workshop.ipynb",
        ]
        tour = json.loads((here / "siray-work" / "parameter-tour.ipynb").read_text())
        shipped = json.loads((REPO / "notebooks" / "parameter-tour.ipynb").read_text())
        assert tour["cells"] == shipped["cells"]
    finally:
        lab.stop()
    copy.write_text(copy.read_text().replace("a red fox", "my own fox"))  # the user's edits
    again = Lab(tmp_path, cwd=here)
    try:
        again.wait_for_url()
        assert "my own fox" in copy.read_text()  # kept, not copied over
    finally:
        again.stop()
    assert tracked.read_bytes() == before


def _lab(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``siray-widgets lab ...`` in a subprocess; ``code`` runs first (to break something)."""
    prelude = code or ""
    script = f"import sys\n{prelude}\nfrom siray_widgets.cli import main\nsys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", script, "lab", "--no-browser", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lab_reports_a_folder_it_cannot_make_in_one_line() -> None:
    out = _lab("--dir", "/proc/nope")
    assert out.returncode == 1, out.stderr
    assert out.stderr == "siray-widgets: error: lab: /proc/nope: No such file or directory\n"
    assert out.stdout == ""


def test_lab_reports_a_missing_quickstart_in_one_line(tmp_path: Path) -> None:
    # An installation without the notebook (a broken wheel, say).
    out = _lab(
        "--dir",
        str(tmp_path),
        code="import siray_widgets.lab as lab\nlab.QUICKSTART = 'gone.ipynb'",
    )
    assert out.returncode == 1, out.stderr
    assert out.stderr == (
        "siray-widgets: error: lab: gone.ipynb is not in this installation of siray-widgets\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_lab_refuses_a_bad_port_in_one_line(tmp_path: Path) -> None:
    out = _lab("--dir", str(tmp_path), "--port", "99999")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1
    assert "invalid port 99999" in out.stderr
    assert list(tmp_path.iterdir()) == []
