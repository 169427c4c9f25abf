"""The spend ledger gets the registry's prices (wired once, at the package root) and
``siray-widgets history ledger [--json]`` shows tasks and estimated cost per day and model,
across processes, over real HTTP to a sandbox serving the fixture registry."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.registry_fixtures import FIXTURE, FLUX_DEV, NIJI

import siray_widgets
from siray_widgets import store
from siray_widgets.sandbox import SandboxHandle, start

CLI = str(Path(sys.executable).with_name("siray-widgets"))


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIRAY_SANDBOX_REGISTRY", str(FIXTURE))
        handle = start(duration=0)
    with handle:
        yield handle


def run(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    environ.update(SIRAY_WIDGETS_HOME=str(home), **env)
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


def test_every_store_prices_its_ledger_from_the_registry(tmp_path: Path) -> None:
    assert store.default_price_lookup is siray_widgets._ledger_price
    opened = store.RunStore(tmp_path / "project")
    try:
        assert opened.price_lookup is siray_widgets._ledger_price
    finally:
        opened.close()
    assert siray_widgets._ledger_price("no/such-model") is None


def test_history_ledger_shows_spend_per_day_and_model(box: SandboxHandle, tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = {
        "SIRAY_BASE_URL": box.base_url,
        "SIRAY_API_KEY": box.api_key,
        "SIRAY_GATEWAY_URL": box.base_url,
    }
    for _ in range(2):
        out = run("generate", "a heron", "--model", FLUX_DEV, "--poll", "0.05", home=home, **server)
        assert out.returncode == 0, out.stderr
    # niji 7 from a process that never loaded the registry: counted, price unknown.
    out = run("generate", "a fox --ar 3:2", "--poll", "0.05", home=home, **server)
    assert out.returncode == 0, out.stderr

    table = run("history", "ledger", home=home)
    assert table.returncode == 0, table.stderr
    today = dt.date.today().isoformat()
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["DAY", "MODEL", "TASKS", "ESTIMATED"]
    assert lines[1].split() == [today, FLUX_DEV, "2", "$0.025"]
    assert lines[2].split() == [today, NIJI, "1", "price", "unknown"]
    assert lines[3].split() == ["total", "3", "$0.025", "(+1", "without", "a", "price)"]
    assert str(home) in table.stderr

    document = json.loads(run("history", "ledger", "--json", "--since", "1d", home=home).stdout)
    assert [
        (r["model"], r["tasks"], r["priced_tasks"], r["cost_text"]) for r in document["rows"]
    ] == [
        (FLUX_DEV, 2, 2, "$0.025"),
        (NIJI, 1, 0, "price unknown"),
    ]
    assert document["total"]["tasks"] == 3
    assert document["total"]["cost"] == pytest.approx(0.025)

    only = json.loads(run("history", "ledger", "--json", "--model", NIJI, home=home).stdout)
    assert [r["model"] for r in only["rows"]] == [NIJI]
    later = json.loads(
        run("history", "ledger", "--json", "--since", "2999-01-01", home=home).stdout
    )
    assert (later["rows"], later["total"]["tasks"], later["total"]["cost_text"]) == (
        [],
        0,
        "price unknown",
    )


def test_history_ledger_refuses_a_day_it_cannot_read(tmp_path: Path) -> None:
    out = run("history", "ledger", "--since", "last tuesday", home=tmp_path / "home")
    assert out.returncode == 2
    assert "last tuesday" in out.stderr
    assert "Traceback" not in out.stderr
