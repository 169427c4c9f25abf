"""`siray-widgets lab`: the README's main job starts JupyterLab on the quickstart notebook."""

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


@pytest.mark.timeout(90)
def test_lab_serves_the_quickstart_from_a_fresh_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    env.pop("SIRAY_API_KEY", None)
    port = _free_port()
    cmd = [sys.executable, "-m", "siray_widgets.cli", "lab", "--no-browser"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--dir", str(work)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "using the offline sandbox" in first
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "JupyterLab exited before it served anything"
            match = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", line)
            url = match and match.group(1)
        assert url, "JupyterLab never printed its URL"
        api = f"http://127.0.0.1:{port}/api/contents/quickstart.ipynb?token={url}"
        model = _get_json(api, deadline)
        cells = model["content"]["cells"]
        assert any("ImagineWidget" in "".join(cell["source"]) for cell in cells)
        # The notebook was copied into the fresh folder, next to nothing else.
        assert (work / "quickstart.ipynb").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


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
