"""Shared test set-up. Fixtures live in tests/fixtures/, one plugin module per area."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "fixtures.sandbox_fixtures",
    "fixtures.fault_server",
    "fixtures.lab_fixtures",
    "fixtures.widget_fixtures",
    "fixtures.store_fixtures",
    "fixtures.proxy_fixtures",
]

#: Where the whole suite's run history goes: never the user's real data folder. Set here, at
#: import, so that it is in place before any test module (or anything it imports) opens the
#: store, and inherited by every subprocess (the command line, notebook kernels, JupyterLab).
_SUITE_HOME = tempfile.mkdtemp(prefix="siray-widgets-test-home-")
os.environ["SIRAY_WIDGETS_HOME"] = _SUITE_HOME


@pytest.fixture(autouse=True, scope="session")
def _suite_data_home() -> Iterator[Path]:
    """The suite's data folder (see above), removed at the end."""
    home = Path(_SUITE_HOME)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _keep_data_home_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with SIRAY_WIDGETS_HOME pointing at a temporary folder (a test may
    point it elsewhere with monkeypatch; it comes back afterwards)."""
    if os.environ.get("SIRAY_WIDGETS_HOME") != _SUITE_HOME:
        monkeypatch.setenv("SIRAY_WIDGETS_HOME", _SUITE_HOME)
