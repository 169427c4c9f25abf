"""The examples in the docstrings of the permutation, suffix, preset and sweep modules run."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = [
    "siray_widgets.permutations",
    "siray_widgets.suffix",
    "siray_widgets.presets",
    "siray_widgets.sweep.values",
    "siray_widgets.sweep.definition",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(tmp_path))
    module = importlib.import_module(name)
    result = doctest.testmod(module, raise_on_error=False, report=True)
    assert result.attempted > 0
    assert result.failed == 0
