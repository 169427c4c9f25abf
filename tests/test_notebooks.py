"""Every notebook in ``notebooks/`` runs headlessly (nbclient) and saves no key.

Each notebook runs twice: with no key (the widget uses its in-process sandbox) and with a
fake key pointing ``SIRAY_BASE_URL`` at a sandbox that accepts only that key; the executed
notebook, widget state included, must not contain the key anywhere.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.slow

# An empty notebooks/ must fail, not skip: parametrize over a placeholder that fails.
NOTEBOOK_PARAMS: list[Any] = [*NOTEBOOKS] or [pytest.param(None, id="no-notebooks")]


def _execute(name: str | None, workdir: Path) -> dict[str, Any]:
    """Run ``notebooks/name`` in ``workdir`` with nbclient; return the executed notebook."""
    assert name is not None, f"{NOTEBOOK_DIR} holds no notebook: the quickstart must be there"
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    return dict(json.loads(nbformat.writes(nb)))


def _widget_states(nb: dict[str, Any]) -> dict[str, Any]:
    """The saved widget models by id (empty if the notebook saved none)."""
    return dict(nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {}))


def _displayed_model_ids(nb: dict[str, Any]) -> set[str]:
    return {
        output["data"][WIDGET_VIEW]["model_id"]
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
        if WIDGET_VIEW in output.get("data", {})
    }


def _imagine_states(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """Saved states of the ImagineWidget models (recognised by their synced traits)."""
    return [
        model["state"]
        for model in _widget_states(nb).values()
        if {"request_json", "sandbox", "prompt"} <= set(model.get("state", {}))
    ]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The kernel inherits this process's env: no real key, no base URL, quiet paths, and a
    run history of its own (so a notebook's sweeps send their cells in every test, rather
    than finding them done by an earlier test)."""
    monkeypatch.delenv("SIRAY_API_KEY", raising=False)
    monkeypatch.delenv("SIRAY_BASE_URL", raising=False)
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(tmp_path / "history"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("SIRAY_SANDBOX_DURATION", "0.3")  # the kernel's shared sandbox
    return monkeypatch


@pytest.fixture
def keyed_sandbox(clean_env: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A sandbox accepting only a fresh fake key, and the env that points kernels at it."""
    from siray_widgets import sandbox

    key = "sk-test-" + secrets.token_hex(16)
    # Tasks finish at once: with a key (not the embedded sandbox) the client polls at Siray's
    # 3-5 s pace, and only a task finished at its first, immediate reading skips that wait
    # (the notebooks' sweeps make a dozen runs).
    handle = sandbox.start(api_key=key, duration=0)
    try:
        clean_env.setenv("SIRAY_API_KEY", key)
        clean_env.setenv("SIRAY_BASE_URL", handle.base_url)
        yield key, handle
    finally:
        handle.stop()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", NOTEBOOK_PARAMS)
def test_notebook_runs_on_the_sandbox(
    name: str | None, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """No key: every cell runs, widget state is saved for every displayed widget."""
    nb = _execute(name, tmp_path)
    states = _widget_states(nb)
    missing = _displayed_model_ids(nb) - set(states)
    assert not missing, f"displayed widgets without saved state: {sorted(missing)}"
    for state in _imagine_states(nb):
        assert state["sandbox"] is True, "no key set, yet the widget does not say sandbox"
    if name == "quickstart.ipynb":
        # The static snapshot beside the widget followed the run made in a later cell
        # (docs/widget-contract.md, "Snapshot"): what nbconvert and GitHub show.
        snapshots = [
            output["data"]["text/html"]
            for cell in nb["cells"]
            for output in cell.get("outputs", [])
            if "siray-snapshot" in str(output.get("data", {}).get("text/html", ""))
        ]
        assert len(snapshots) == 1
        html = "".join(snapshots[0]) if isinstance(snapshots[0], list) else snapshots[0]
        assert "status <b>SUCCESS</b>" in html
        assert html.count("<img src='data:image/jpeg;base64,") == 4
        assert "127.0.0.1" not in html
    if name == "parameter-tour.ipynb":
        # Every section's sweep showed its contact sheet, and the 6-task sweep was refused
        # until confirmed.
        assert _count_outputs(nb, "image/png") >= 10
        assert "would send 6 tasks" in _text_outputs(nb)
    if name == "workshop.ipynb":
        assert _count_outputs(nb, "image/png") >= 3  # the three sweeps' contact sheets
        assert "<figure" in _text_outputs(nb, "text/html")  # the gallery of their runs


def _count_outputs(nb: dict[str, Any], mime: str) -> int:
    return sum(
        1
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    )


def _text_outputs(nb: dict[str, Any], mime: str = "text/plain") -> str:
    parts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") if output.get("output_type") == "stream" else None
            text = text or output.get("data", {}).get(mime, "")
            parts.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOK_PARAMS)
def test_notebooks_in_the_repository_hold_no_outputs(name: str | None) -> None:
    """What users open starts clean: no outputs, counts or widget state saved in git."""
    assert name is not None
    nb = json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{name} has saved outputs"
            assert cell.get("execution_count") is None, f"{name} has execution counts"
    assert "widgets" not in nb.get("metadata", {}), f"{name} has saved widget state"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", NOTEBOOK_PARAMS)
def test_notebook_with_a_key_saves_no_key(
    name: str | None, tmp_path: Path, keyed_sandbox: tuple[str, Any]
) -> None:
    """With SIRAY_API_KEY set, the key reaches the server but never the saved notebook."""
    key, handle = keyed_sandbox
    nb = _execute(name, tmp_path)
    secret_part = key.removeprefix("sk-test-")
    text = json.dumps(nb, ensure_ascii=False)
    leaked = secret_part in text  # checked without printing the key on failure
    assert not leaked, f"the API key appears in executed {name} (widget state or outputs)"
    assert _widget_states(nb) or not _displayed_model_ids(nb), "widget state was not saved"
    for state in _imagine_states(nb):
        assert state["sandbox"] is False, "a key was set, yet the widget says sandbox"
    if ".generate(" in text:
        assert handle.received_bodies(), "nothing reached the keyed server: the key went unused"
