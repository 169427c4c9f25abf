"""Sweep definitions: axes, expansion order, seeds, keys, conflicts, counts and JSON."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siray_widgets.presets import Preset
from siray_widgets.schema import ImageRequest
from siray_widgets.sweep import (
    IMAGES_PER_TASK,
    MAX_CELLS,
    Axis,
    SweepDefinition,
    SweepError,
    define_sweep,
    field_axis,
    make_axis,
    parse_axis,
    prompt_axis,
    request_key,
)


@pytest.fixture(autouse=True)
def _data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Preset names are looked up in the user's presets: never the real data folder.
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(tmp_path / "home"))


def grid(sweep: SweepDefinition) -> list[tuple[int | None, int | None, int | None]]:
    return [(c.x, c.y, c.z) for c in sweep.cells()]


# --- shape and order --------------------------------------------------------------------------


def test_cells_run_page_by_page_row_by_row_column_by_column() -> None:
    sweep = define_sweep(
        "a fox",
        x=("chaos", "0, 50, 100"),
        y=("stylize", [0, 250]),
        z=("aspect_ratio", "1:1, 16:9"),
        seed=7,
    )
    cells = sweep.cells()
    assert sweep.shape == (3, 2, 2)
    assert [c.index for c in cells] == list(range(12))
    assert grid(sweep) == [(x, y, z) for z in range(2) for y in range(2) for x in range(3)]
    assert [(c.request.chaos, c.request.stylize, c.request.aspect_ratio) for c in cells[:4]] == [
        (0, 0, "1:1"),
        (50, 0, "1:1"),
        (100, 0, "1:1"),
        (0, 250, "1:1"),
    ]
    assert cells[4].describe() == "X chaos=50 · Y stylize=250 · Z aspect_ratio=1:1"
    assert cells[7].describe() == "X chaos=50 · Y stylize=0 · Z aspect_ratio=16:9"
    for cell in cells:
        assert sweep.cell(cell.x or 0, cell.y or 0, cell.z or 0) == cell


def test_an_axis_may_sit_in_any_slot() -> None:
    sweep = define_sweep("a fox", y=("chaos", [0, 50]), seed=1)
    assert sweep.shape == (1, 2, 1)
    assert grid(sweep) == [(None, 0, None), (None, 1, None)]
    assert sweep.cell(y=1).request.chaos == 50
    with pytest.raises(SweepError, match=r"Y axis: 2 is outside 0\.\.1"):
        sweep.cell(y=2)


def test_a_sweep_without_axes_is_one_cell() -> None:
    cells = define_sweep("a fox --s 250", seed=5).cells()
    assert len(cells) == 1
    assert cells[0].describe() == "the only cell"
    assert cells[0].request == ImageRequest("a fox", stylize=250, seed=5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_every_combination_once_in_stable_order(nx: int, ny: int, nz: int) -> None:
    sweep = define_sweep(
        "a fox",
        x=("chaos", list(range(nx))),
        y=("stylize", list(range(ny))),
        z=("weird", list(range(nz))),
        seed=3,
    )
    cells = sweep.cells()
    assert len(cells) == sweep.counts().tasks == nx * ny * nz
    assert grid(sweep) == [
        (x, y, z) for z, y, x in itertools.product(range(nz), range(ny), range(nx))
    ]
    assert [(c.request.chaos, c.request.stylize, c.request.weird) for c in cells] == [
        (x, y, z) for z, y, x in itertools.product(range(nz), range(ny), range(nx))
    ]
    assert sweep.cells() == cells  # the same every time
    assert len({c.key for c in cells}) == len(cells)


# --- counts -----------------------------------------------------------------------------------


def test_counts_tasks_images_and_cost() -> None:
    sweep = define_sweep("a fox", x="stylize=0-1000 [5]", y="chaos=0, 50", seed=1)
    counts = sweep.counts()
    assert (counts.tasks, counts.images, counts.cost) == (10, 10 * IMAGES_PER_TASK, None)
    assert str(counts) == "10 tasks, 40 images"
    priced = sweep.counts(unit_price=0.05)
    assert priced.cost == Decimal("0.50")  # exact: money is not added up in binary floats
    assert str(priced) == "10 tasks, 40 images, estimated cost $0.50"
    assert sweep.counts(unit_price=Decimal("0.0025")).cost_text() == "$0.025"
    assert priced.to_json() == {
        "tasks": 10,
        "images": 40,
        "unit_price": "0.05",
        "cost": "0.50",
        "cost_text": "$0.50",
    }
    for bad in (-1, float("nan"), float("inf"), Decimal("NaN"), True, "1"):
        with pytest.raises(SweepError, match="unit_price"):
            sweep.counts(unit_price=bad)  # type: ignore[arg-type]


def test_too_many_cells_are_refused_before_any_is_built() -> None:
    start = time.perf_counter()
    with pytest.raises(SweepError, match=f"has 1,000,000 cells .*at most {MAX_CELLS:,}"):
        define_sweep("a fox", x=("seed", "0-999 (+1)"), y=("weird", "0-999 (+1)"))
    assert time.perf_counter() - start < 2.0


# --- the issue's own examples -----------------------------------------------------------------


def test_the_command_line_example_of_the_issue() -> None:
    # siray-widgets sweep "a fox {in snow, at dusk} --ar 3:2" --x stylize=0-1000[5] --y chaos=0,50
    sweep = define_sweep("a fox {in snow, at dusk} --ar 3:2", x="stylize=0-1000[5]", y="chaos=0,50")
    assert sweep.shape == (5, 2, 2)  # the permutation takes the free Z slot
    assert sweep.z is not None
    assert sweep.z.labels == ("in snow", "at dusk")
    assert sweep.z.spec == "a fox {in snow, at dusk} --ar 3:2"
    cells = sweep.cells()
    assert len(cells) == 20
    assert {c.request.aspect_ratio for c in cells} == {"3:2"}
    assert cells[0].request.prompt == "a fox in snow"
    assert cells[-1].request.prompt == "a fox at dusk"
    assert {c.request.seed for c in cells} == {sweep.seed}


def test_a_permutation_prompt_fills_the_first_free_slot() -> None:
    sweep = define_sweep("a {red, green} bird --ar {1:1, 16:9}")
    assert sweep.x is not None
    assert sweep.x.labels == ("red · 1:1", "red · 16:9", "green · 1:1", "green · 16:9")
    assert [(c.request.prompt, c.request.aspect_ratio) for c in sweep.cells()] == [
        ("a red bird", "1:1"),
        ("a red bird", "16:9"),
        ("a green bird", "1:1"),
        ("a green bird", "16:9"),
    ]


def test_no_free_slot_for_a_permutation_is_an_error() -> None:
    with pytest.raises(SweepError, match="prompt axis: needs an axis of its own"):
        define_sweep("a {red, green} bird", x="chaos=0", y="stylize=0", z="weird=0")


# --- seeds ------------------------------------------------------------------------------------


def test_one_shared_fixed_seed_by_default() -> None:
    sweep = define_sweep("a fox", x="chaos=0, 50")
    assert 0 <= sweep.seed < 2**32
    assert {c.request.seed for c in sweep.cells()} == {sweep.seed}
    assert sweep.summary()["seed"] == sweep.seed
    assert f"seed {sweep.seed}" in str(sweep)
    # Each new sweep draws its own.
    assert len({define_sweep("a fox").seed for _ in range(5)}) > 1


def test_a_seed_from_the_suffix_or_the_base_is_kept() -> None:
    assert define_sweep("a fox --seed 42").seed == 42
    assert define_sweep("a fox", base=ImageRequest("x", seed=9)).seed == 9
    assert define_sweep("a fox --seed 42", seed=7).seed == 7
    assert define_sweep("a fox", seed="123").seed == 123


def test_a_random_seed_per_cell() -> None:
    sweep = define_sweep("a fox", x="chaos=0, 50", seed="random")
    assert sweep.seed == -1
    assert {c.request.seed for c in sweep.cells()} == {-1}
    assert sweep.summary()["seed"] == "random"


@pytest.mark.parametrize("seed", [-2, 10**10, "lucky"])
def test_bad_seeds_are_named(seed: object) -> None:
    with pytest.raises(SweepError, match=r"^seed: "):
        define_sweep("a fox", seed=seed)  # type: ignore[arg-type]


def test_a_seed_axis() -> None:
    sweep = define_sweep("a fox", x="seed=-1, 1, 2")
    assert [c.request.seed for c in sweep.cells()] == [-1, 1, 2]


def test_replicates_take_new_seeds() -> None:
    sweep = define_sweep("a fox", x="chaos=0, 50", replicates=3, seed=100)
    assert sweep.y is not None
    assert sweep.y.labels == ("#1", "#2", "#3")
    cells = sweep.cells()
    assert [(c.request.chaos, c.request.seed, c.replicate) for c in cells] == [
        (0, 100, 1),
        (50, 100, 1),
        (0, 101, 2),
        (50, 101, 2),
        (0, 102, 3),
        (50, 102, 3),
    ]


def test_replicates_wrap_at_the_largest_seed() -> None:
    sweep = define_sweep("a fox", replicates=2, seed=9_999_999_999)
    assert [c.request.seed for c in sweep.cells()] == [9_999_999_999, 0]


def test_replicates_with_random_seeds_are_still_told_apart() -> None:
    cells = define_sweep("a fox", replicates=3, seed="random").cells()
    assert [c.request.seed for c in cells] == [-1, -1, -1]
    assert len({c.key for c in cells}) == 3
    assert cells[0].key == request_key(cells[0].request)


def test_replicates_and_a_seed_axis_conflict() -> None:
    with pytest.raises(SweepError, match=r"^Y axis \(replicate\): would override the seed"):
        define_sweep("a fox", x="seed=1, 2", replicates=2)


# --- kinds of axis ----------------------------------------------------------------------------


def test_prompt_variants_with_suffixes() -> None:
    sweep = define_sweep(
        x=("prompt", "a fox --ar 16:9\na cat --ar 16:9 --q 2\n\n"), base={"stylize": 300}, seed=1
    )
    assert sweep.x is not None
    assert sweep.x.labels == ("a fox --ar 16:9", "a cat --ar 16:9 --q 2")
    assert [(c.request.prompt, c.request.quality, c.request.stylize) for c in sweep.cells()] == [
        ("a fox", "1", 300),
        ("a cat", "2", 300),
    ]


def test_negative_prompt_variants() -> None:
    sweep = define_sweep("a fox", x=("negative_prompt", ["", "snow", "trees, snow"]), seed=1)
    assert sweep.x is not None
    assert sweep.x.labels == ("(none)", "snow", "trees, snow")
    assert [c.request.negative_prompt for c in sweep.cells()] == ["", "snow", "trees, snow"]


def test_prompt_search_replace() -> None:
    sweep = define_sweep(
        "a red fox, red sky --no red trees", x=("sr", 'red, blue, "pale, green"'), seed=1
    )
    cells = sweep.cells()
    assert [c.request.prompt for c in cells] == [
        "a red fox, red sky",
        "a blue fox, blue sky",
        "a pale, green fox, pale, green sky",
    ]
    assert [c.request.negative_prompt for c in cells] == [
        "red trees",
        "blue trees",
        "pale, green trees",
    ]


def test_search_replace_needs_its_first_value_in_the_prompt() -> None:
    sweep = define_sweep("a fox", x=("prompt S/R", ["red", "blue"]), seed=1)
    with pytest.raises(SweepError) as info:
        sweep.cells()
    assert str(info.value).startswith("X axis (prompt S/R): 'red' is not in the prompt 'a fox'")


def test_a_cell_made_invalid_names_the_cell() -> None:
    sweep = define_sweep("fox", x=("sr", ["fox", ""]), seed=1)
    with pytest.raises(SweepError, match=r"^cell X prompt S/R=\(removed\): prompt"):
        sweep.cells()


def test_presets_as_an_axis_and_stacked_under_the_axes() -> None:
    watercolor = Preset("Watercolor", prompt="{prompt}, watercolor", negative_prompt="photo")
    sweep = define_sweep(
        "a fox --no text",
        x=("preset", ["Stylize low", "stylize HIGH"]),
        y=("chaos", [0, 20]),
        presets=[watercolor, Preset("Wide", {"aspect_ratio": "16:9", "chaos": 99})],
        seed=1,
    )
    assert sweep.x is not None
    assert sweep.x.labels == ("Stylize low", "Stylize high")
    cells = sweep.cells()
    assert [(c.request.stylize, c.request.chaos) for c in cells] == [
        (50, 0),
        (250, 0),
        (50, 20),
        (250, 20),
    ]
    # The axes override the sweep's presets (chaos), which apply to every cell.
    assert {c.request.aspect_ratio for c in cells} == {"16:9"}
    assert {c.request.prompt for c in cells} == {"a fox, watercolor"}
    assert {c.request.negative_prompt for c in cells} == {"text, photo"}
    assert sweep.summary()["presets"] == ["Watercolor", "Wide"]


def test_preset_templates_wrap_each_prompt_variant() -> None:
    sweep = define_sweep(
        x=("prompt", ["a fox", "a cat"]),
        y=("preset", [Preset("Ink", prompt="ink drawing of {prompt}"), Preset("Plain")]),
        seed=1,
    )
    assert [c.request.prompt for c in sweep.cells()] == [
        "ink drawing of a fox",
        "ink drawing of a cat",
        "a fox",
        "a cat",
    ]


@pytest.mark.parametrize(
    ("name", "kind", "field"),
    [
        ("stylize", "field", "stylize"),
        ("s", "field", "stylize"),
        ("--ar" if False else "ar", "field", "aspect_ratio"),
        ("Aspect ratio", "field", "aspect_ratio"),
        ("aspect-ratio", "field", "aspect_ratio"),
        ("no", "field", "negative_prompt"),
        ("negative", "field", "negative_prompt"),
        ("Negative prompt", "field", "negative_prompt"),
        ("prompt", "prompt", None),
        ("prompts", "prompt", None),
        ("Prompt S/R", "prompt_sr", None),
        ("prompt_sr", "prompt_sr", None),
        ("styles", "preset", None),
        ("repeat", "replicate", None),
    ],
)
def test_axis_names(name: str, kind: str, field: str | None) -> None:
    values = {
        "field": "1",
        "prompt": "a fox",
        "prompt_sr": "fox, cat",
        "preset": "Raw",
        "replicate": "2",
    }[kind]
    if field == "aspect_ratio":
        values = "1:1"
    elif field == "negative_prompt":
        values = "text"
    axis = make_axis(name, values)
    assert (axis.kind, axis.field) == (kind, field)


def test_unknown_axis_names_and_malformed_specs() -> None:
    with pytest.raises(SweepError, match="'colour' is not something a sweep can vary"):
        define_sweep("a fox", x=("colour", "red"))
    with pytest.raises(SweepError, match="must be written name=values"):
        parse_axis("stylize 0-1000")
    with pytest.raises(SweepError, match=r"^Y axis \(stylize\): 2000 is out of range"):
        define_sweep("a fox", y="stylize=0, 2000")
    with pytest.raises(SweepError, match=r"^Z axis \(aspect_ratio\): '5:4' is not one of"):
        define_sweep("a fox", z=("ar", "1:1, 5:4"))
    with pytest.raises(SweepError, match=r"^X axis \(preset\): no preset called 'Nope'"):
        define_sweep("a fox", x=("preset", "Raw, Nope"))
    with pytest.raises(
        SweepError, match=r"^X axis \(prompt\): 'a cat --ar 5:4' cannot be read \(--ar 5:4: "
    ):
        define_sweep(x=("prompt", "a fox\na cat --ar 5:4"))
    with pytest.raises(SweepError, match="must be an Axis, a \\(name, values\\) pair"):
        define_sweep("a fox", x=["stylize", "0"])  # type: ignore[arg-type]


def test_duplicate_values_would_pay_twice_and_are_refused() -> None:
    with pytest.raises(SweepError, match=r"^X axis \(prompt\): 'a fox' appears twice"):
        define_sweep(x=("prompt", "a fox\na fox"))
    with pytest.raises(SweepError, match=r"'Raw' appears twice"):
        define_sweep("a fox", x=("preset", "Raw, raw"))
    # Different values that make the same request are caught when the cells are built.
    sweep = define_sweep(x=("prompt", "a fox\na fox --s 100"), seed=1)
    with pytest.raises(SweepError, match="would send the same request"):
        sweep.cells()


# --- conflicts --------------------------------------------------------------------------------


def test_an_axis_may_not_override_what_another_varies() -> None:
    with pytest.raises(SweepError) as info:
        define_sweep("a fox", x=("stylize", "0, 100"), y=("preset", "Stylize low, Stylize high"))
    assert str(info.value) == (
        "X axis (stylize): would override the stylize that Y axis (preset) varies; "
        "vary stylize on one axis only"
    )
    with pytest.raises(SweepError, match="aspect_ratio that X axis \\(prompt\\) varies"):
        define_sweep(x=("prompt", "a --ar 1:1\nb --ar 16:9"), y=("ar", "1:1"))
    with pytest.raises(SweepError, match="prompt that X axis \\(prompt\\) varies"):
        define_sweep("a {fox, cat}", y=("prompt", "a\nb"))
    with pytest.raises(SweepError, match="stylize that X axis \\(stylize\\) varies"):
        define_sweep("a fox", x="stylize=0, 1", y="s=5")


def test_a_setting_every_variant_shares_acts_like_the_base() -> None:
    # Every variant says --ar 3:2; the aspect-ratio axis overrides it as it overrides a base.
    sweep = define_sweep("a fox {in snow, at dusk} --ar 3:2", x="ar=1:1, 16:9", seed=1)
    assert [c.request.aspect_ratio for c in sweep.cells()] == ["1:1", "16:9", "1:1", "16:9"]


# --- keys (resume) ----------------------------------------------------------------------------


def test_keys_hash_the_canonical_body() -> None:
    request = ImageRequest("a fox", stylize=250, seed=3)
    canonical = json.dumps(request.to_body(), sort_keys=True, separators=(",", ":"))
    assert request_key(request) == hashlib.sha256(canonical.encode()).hexdigest()
    assert request_key(ImageRequest(stylize=250, seed=3, prompt="a fox")) == request_key(request)
    assert request_key(request, replicate=2) != request_key(request)
    assert request_key(request.replace(stylize=251)) != request_key(request)


def test_keys_survive_added_values_swapped_axes_and_a_reload() -> None:
    small = define_sweep("a fox", x="stylize=0, 250", y="chaos=0", seed=11)
    bigger = define_sweep("a fox", x="stylize=0, 250, 500", y="chaos=0, 50", seed=11)
    small_keys = {c.key for c in small.cells()}
    bigger_keys = {c.key for c in bigger.cells()}
    assert small_keys < bigger_keys
    assert len(bigger_keys - small_keys) == 4  # the cells a resumed run would still send
    swapped = bigger.swap("x", "y")
    assert swapped.shape == (2, 3, 1)
    assert {c.key for c in swapped.cells()} == bigger_keys
    assert SweepDefinition.from_json(bigger.dumps()).cells() == bigger.cells()


def test_with_axis_replaces_or_removes_an_axis() -> None:
    sweep = define_sweep("a fox", x="stylize=0, 250", seed=1)
    assert sweep.with_axis("y", "chaos=0, 5").shape == (2, 2, 1)
    assert sweep.with_axis("x", None).shape == (1, 1, 1)


# --- JSON -------------------------------------------------------------------------------------


def test_a_rich_definition_round_trips_through_json() -> None:
    sweep = define_sweep(
        "a {red, green} fox \\{curly\\} --ar 3:2 --no snow",
        y=("sr", "fox, cat"),
        z=("preset", [Preset("Ink", {"weird": 100}, prompt="ink, {prompt}"), "Raw"]),
        presets=["No text", Preset("Mine", {"quality": 2})],
        seed=77,
    )
    data = sweep.to_json()
    assert data["format"] == "siray-sweep"
    assert data["version"] == 1
    text = json.dumps(data)
    again = SweepDefinition.from_json(text)
    assert again == sweep
    assert again.cells() == sweep.cells()
    assert again.to_json() == data
    assert sweep.cells()[0].request.prompt == "ink, a red fox {curly}"


def test_json_keeps_a_replicate_axis_and_labels() -> None:
    sweep = define_sweep("a fox", replicates=2, x=prompt_axis(["a", "b"], labels=["A", "B"]))
    again = SweepDefinition.from_json(sweep.to_json())
    assert again.x is not None
    assert again.x.labels == ("A", "B")
    assert again == sweep


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d.update(format="other"), 'is not "siray-sweep"'),
        (lambda d: d.update(version=99), "version this package cannot read"),
        (lambda d: d["base"].update(chaos=500), "chaos=500 is out of range"),
        (lambda d: d["base"].update(colour="red"), "'colour' is not a request field"),
        (lambda d: d["axes"]["x"].update(values=[0, 5000]), "X axis (stylize): 5000"),
        (lambda d: d["axes"]["x"].update(kind="nope"), "is not an axis kind"),
        (lambda d: d["axes"].update(w={}), "keys x, y and z"),
        (lambda d: d.update(presets=[{"name": ""}]), "needs a name"),
    ],
)
def test_bad_json_is_refused_with_a_clear_error(mutate: object, words: str) -> None:
    data = define_sweep("a fox", x="stylize=0, 250", seed=1).to_json()
    assert callable(mutate)
    mutate(data)
    with pytest.raises(SweepError) as info:
        SweepDefinition.from_json(data)
    assert words in str(info.value)


@pytest.mark.parametrize("text", ["", "[", "[1]", "{" * 100_000, '"x"'])
def test_json_that_is_not_a_definition(text: str) -> None:
    with pytest.raises(SweepError, match=r"^sweep"):
        SweepDefinition.from_json(text)


# --- showing ----------------------------------------------------------------------------------


def test_summary_is_plain_json_for_the_header_and_chips() -> None:
    sweep = define_sweep("a fox --ar 3:2", x="stylize=0-1000 (+500)", presets=["Raw"], seed=4)
    summary = sweep.summary(unit_price=0.1)
    json.dumps(summary)
    assert summary["seed"] == 4
    assert summary["fixed"]["aspect_ratio"] == "3:2"
    assert summary["fixed"]["raw"] is True  # from the preset
    assert "stylize" not in summary["fixed"]
    assert summary["axes"] == [
        {
            "slot": "x",
            "kind": "field",
            "name": "stylize",
            "labels": ["0", "500", "1000"],
            "spec": "0-1000 (+500)",
        }
    ]
    assert (summary["tasks"], summary["images"]) == (3, 12)
    assert (summary["cost"], summary["cost_text"]) == ("0.3", "$0.30")


def test_cells_to_json() -> None:
    cell = define_sweep("a fox", x="chaos=0, 5", seed=1).cells()[1]
    data = cell.to_json()
    assert data["coordinates"] == {"x": {"axis": "chaos", "index": 1, "label": "5"}}
    assert data["body"]["chaos"] == 5
    assert data["key"] == cell.key


def test_axis_objects_validate_themselves() -> None:
    with pytest.raises(SweepError, match="has no values"):
        Axis("field", (), (), field="chaos")
    with pytest.raises(SweepError, match="one label per value"):
        Axis("field", (1,), (), field="chaos")
    assert field_axis("prompt", "a\nb").kind == "prompt"


def test_a_sweep_needs_a_prompt() -> None:
    with pytest.raises(SweepError, match=r"^prompt: is empty: a sweep needs a prompt"):
        define_sweep(x="chaos=0, 5")
    with pytest.raises(SweepError, match=r"^prompt: is empty"):
        define_sweep("   ")


@pytest.mark.parametrize("count", [0, 101, "9" * 5000, "²", "two", 2.0, True])
def test_bad_replicate_counts_are_named(count: object) -> None:
    with pytest.raises(SweepError, match=r"^replicate axis: "):
        define_sweep("a fox", replicates=count)  # type: ignore[arg-type]


def test_definitions_cells_and_presets_are_hashable_values() -> None:
    sweep = define_sweep("a fox", x=("preset", "Raw, Stylize low"), y="chaos=0, 5", seed=1)
    again = SweepDefinition.from_json(sweep.dumps())
    assert {sweep, again} == {sweep}
    assert sweep.key == again.key
    assert len(sweep.key) == 64
    assert sweep.key != sweep.swap().key  # a different grid, the same cells
    assert len(set(sweep.cells())) == 4
    assert len({sweep.x, again.x}) == 1
