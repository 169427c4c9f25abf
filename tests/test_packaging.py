"""The wheel built from the repo ships the front-end bundle and the console script.

The build runs in a copy of the source tree without ``siray_widgets/static/``, so the
jupyter-builder hook must run ``npm install`` and ``npm run build`` itself (as in a clean
clone); the working tree is never touched.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = ("siray_widgets/static/widget.js", "siray_widgets/static/widget.css")
#: Modules the kernel sends when first needed (siray_widgets/_widget_lazy.py).
LAZY = tuple(
    f"siray_widgets/static/lazy/{name}.{ext}"
    for name in ("history", "viewer", "sweep")
    for ext in ("js", "css")
)
#: The notebooks `siray-widgets lab` copies into its working folder (siray_widgets/lab.py).
NOTEBOOKS = tuple(
    f"siray_widgets/notebooks/{name}.ipynb" for name in ("quickstart", "parameter-tour", "workshop")
)
# Never copied: build products, caches, and what git ignores.
SKIP_PARTS = {".git", ".venv", "node_modules", "static", "dist", "build", "test-artifacts"}

pytestmark = pytest.mark.slow


def _source_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files, as a fresh commit of the tree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    files = [Path(p) for p in out.decode().split("\0") if p]
    return [p for p in files if not SKIP_PARTS & set(p.parts) and (REPO / p).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """Build the wheel once from a clean copy of the tree (npm runs via the build hook)."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed; the wheel build needs it: apt-get install -y npm")
    src = tmp_path_factory.mktemp("src")
    for rel in _source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    assert not (src / BUNDLE[0]).exists(), "the copy must start without a bundle"
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "npm_config_prefer_offline": "true", "npm_config_fund": "false"}
    env.pop("HATCH_JUPYTER_BUILDER_SKIP_NPM", None)
    env.pop("SKIP_JUPYTER_BUILDER", None)
    # --no-isolation: the venv's hatchling and hatch-jupyter-builder (pinned by the test
    # extra) build it, without downloading build requirements on every run.
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"wheel build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    wheels = sorted(dist.glob("siray_widgets-*.whl"))
    assert len(wheels) == 1, f"expected one wheel, got {[w.name for w in wheels]}"
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


@pytest.mark.timeout(360)
@pytest.mark.parametrize("member", BUNDLE + LAZY + NOTEBOOKS)
def test_wheel_contains_the_bundle(wheel: zipfile.ZipFile, member: str) -> None:
    """widget.js and widget.css, each lazily loaded module, and the notebooks `lab` copies
    out, are in the wheel, not empty."""
    names = wheel.namelist()
    assert member in names, f"{member} missing from the wheel; it holds {sorted(names)}"
    assert wheel.getinfo(member).file_size > 0, f"{member} is empty in the wheel"


@pytest.mark.timeout(360)
def test_wheel_bundle_is_an_esm_module(wheel: zipfile.ZipFile) -> None:
    """The shipped widget.js is the built ES module anywidget imports (it has a default export)."""
    js = wheel.read(BUNDLE[0]).decode()
    assert re.search(r"export\s*(default\b|\{[^}]*\bas default\b)", js), (
        "widget.js has no ES module default export"
    )


@pytest.mark.timeout(360)
def test_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    """entry_points.txt maps ``siray-widgets`` to ``siray_widgets.cli:main``."""
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    assert parser.has_section("console_scripts"), "no [console_scripts] in entry_points.txt"
    assert parser["console_scripts"].get("siray-widgets") == "siray_widgets.cli:main"


@pytest.mark.timeout(360)
def test_wheel_lazy_modules_are_esm_modules_with_a_default_export(wheel: zipfile.ZipFile) -> None:
    """A lazy module is imported from a blob: URL and its default export called (panel.ts)."""
    for member in (m for m in LAZY if m.endswith(".js")):
        js = wheel.read(member).decode()
        assert re.search(r"export\s*(default\b|\{[^}]*\bas default\b)", js), member
