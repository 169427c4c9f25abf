"""Batch runs: one run per line of a prompt list (text, Python list, CSV or text file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siray_widgets.schema import ImageRequest
from siray_widgets.sweep import (
    SweepDefinition,
    SweepError,
    batch_sweep,
    read_prompt_csv,
    read_prompt_list,
)


@pytest.fixture(autouse=True)
def _data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(tmp_path / "home"))


def prompts(sweep: SweepDefinition) -> list[str]:
    return [c.request.prompt for c in sweep.cells()]


def test_text_one_prompt_per_line() -> None:
    sweep = batch_sweep("a fox\n\n  a cat --ar 16:9  \na dog\n", seed=1)
    assert sweep.shape == (1, 3, 1)  # one row per prompt
    assert sweep.y is not None
    assert sweep.y.labels == ("a fox", "a cat --ar 16:9", "a dog")
    assert [(c.request.prompt, c.request.aspect_ratio) for c in sweep.cells()] == [
        ("a fox", "1:1"),
        ("a cat", "16:9"),
        ("a dog", "1:1"),
    ]


def test_a_python_list_with_base_and_other_axes() -> None:
    sweep = batch_sweep(
        ["a fox", "a cat"],
        slot="x",
        y=("stylize", [0, 500]),
        base=ImageRequest("ignored", chaos=20),
        replicates=2,
        seed=5,
    )
    assert sweep.shape == (2, 2, 2)
    cells = sweep.cells()
    assert {c.request.chaos for c in cells} == {20}
    assert [c.request.seed for c in cells] == [5] * 4 + [6] * 4
    assert prompts(sweep)[:4] == ["a fox", "a cat", "a fox", "a cat"]


def test_a_line_with_a_permutation_makes_several_runs() -> None:
    sweep = batch_sweep("a {red, green} fox\na cat", seed=1)
    assert prompts(sweep) == ["a red fox", "a green fox", "a cat"]
    assert sweep.y is not None
    assert sweep.y.labels == ("a red fox", "a green fox", "a cat")


def test_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("\ufeffa fox\r\na cat, at dusk\r\n", encoding="utf-8")
    assert prompts(batch_sweep(path, seed=1)) == ["a fox", "a cat, at dusk"]


def test_a_csv_file_with_field_columns(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text(
        "prompt,Aspect ratio,--s,negative_prompt\n"
        '"a fox, in snow",16:9,250,\n'
        'a cat --q 2,,,"text, watermark"\n'
        "\n",
        encoding="utf-8",
    )
    assert read_prompt_list(path) == [
        {"prompt": "a fox, in snow", "aspect_ratio": "16:9", "stylize": "250"},
        {"prompt": "a cat --q 2", "negative_prompt": "text, watermark"},
    ]
    sweep = batch_sweep(path, base={"stylize": 50}, seed=1)
    assert [
        (
            c.request.prompt,
            c.request.aspect_ratio,
            c.request.stylize,
            c.request.quality,
            c.request.negative_prompt,
        )
        for c in sweep.cells()
    ] == [
        ("a fox, in snow", "16:9", 250, "1", ""),
        ("a cat", "1:1", 50, "2", "text, watermark"),
    ]


def test_a_csv_without_header_holds_one_prompt_per_row() -> None:
    assert read_prompt_csv('a fox\n"a cat, at dusk"\n') == ["a fox", "a cat, at dusk"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a fox, in snow\na cat\n", "no header row naming a 'prompt' column"),
        ("prompt,colour\na fox,red\n", "'colour' is not a column this list can have"),
        ("prompt,prompt\na,b\n", "names a column twice"),
        ("prompt,stylize\na fox,250,extra\n", "line 2 has more cells than the header"),
        ("prompt,stylize\n,250\n", "line 2 has no prompt"),
    ],
)
def test_bad_csv_files_are_refused(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SweepError, match=r"^prompt list list\.csv: ") as info:
        read_prompt_list(path)
    assert words in str(info.value)


def test_bad_values_in_a_csv_name_the_column_and_value(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("prompt,stylize\na fox,9000\n", encoding="utf-8")
    with pytest.raises(SweepError, match=r"^Y axis \(prompt\) stylize: 9000 is out of range"):
        batch_sweep(path)
    path.write_text("prompt,stylize\na fox --s 5,9\n", encoding="utf-8")
    with pytest.raises(SweepError, match="sets stylize in its suffix and in its own column"):
        batch_sweep(path)


def test_unreadable_and_empty_lists(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="cannot be read"):
        read_prompt_list(tmp_path / "missing.txt")
    with pytest.raises(SweepError, match=r"^prompt list: has no prompts"):
        batch_sweep("\n\n")
    with pytest.raises(SweepError, match="must hold prompts"):
        read_prompt_list([1, 2])  # type: ignore[list-item]


def test_the_batch_slot_is_its_own() -> None:
    with pytest.raises(SweepError, match="holds the prompt list"):
        batch_sweep("a fox", y=("chaos", "0, 5"))
    with pytest.raises(SweepError, match="not an axis slot"):
        batch_sweep("a fox", slot="w")
    with pytest.raises(SweepError, match="not prompt="):
        batch_sweep("a fox", prompt="a cat")


def test_a_batch_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text('prompt,ar\n"a \\{red, green\\} fox",16:9\nb,1:1\n', encoding="utf-8")
    sweep = batch_sweep(path, seed=2)
    assert prompts(sweep) == ["a {red, green} fox", "b"]
    again = SweepDefinition.from_json(sweep.dumps())
    assert again.cells() == sweep.cells()
