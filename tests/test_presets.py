"""Presets: validation, stacking, previews, the saved library, styles.csv import, built-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siray_widgets.presets import (
    BUILTIN_PRESETS,
    PRESETS_FILE,
    Preset,
    PresetError,
    PresetLibrary,
    apply_presets,
    merge_template,
    preview_presets,
    read_a1111_styles,
)
from siray_widgets.schema import ASPECT_RATIOS, ImageRequest
from siray_widgets.sweep import define_sweep


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("SIRAY_WIDGETS_HOME", str(folder))
    return folder


# --- one preset -------------------------------------------------------------------------------


def test_a_preset_sets_fields_and_wraps_the_prompt() -> None:
    preset = Preset("Dreamy", {"stylize": 750, "quality": 2}, prompt="{prompt}, soft light")
    request = preset.apply(ImageRequest("a fox", chaos=5))
    assert (request.prompt, request.stylize, request.quality, request.chaos) == (
        "a fox, soft light",
        750,
        "2",  # validated to the schema's canonical form
        5,
    )
    assert dict(preset.fields) == {"stylize": 750, "quality": "2"}
    assert preset.touches == {"stylize", "quality", "prompt"}
    assert preset.summary() == "stylize=750, quality='2', prompt: '{prompt}, soft light'"


@pytest.mark.parametrize(
    ("template", "prompt", "expected"),
    [
        ("{prompt}, watercolor", "a fox", "a fox, watercolor"),
        ("watercolor of {prompt}, {prompt} again", "a fox", "watercolor of a fox, a fox again"),
        ("watercolor", "a fox ", "a fox, watercolor"),  # AUTOMATIC1111: appended after a comma
        ("watercolor", "", "watercolor"),
        ("", "a fox", "a fox"),
        ("   ", "a fox", "a fox"),
    ],
)
def test_templates_work_as_in_automatic1111(template: str, prompt: str, expected: str) -> None:
    assert merge_template(template, prompt) == expected


def test_a_negative_template_appends_to_the_negative_prompt() -> None:
    no_text = Preset("No text", negative_prompt="text, watermark")
    assert no_text.apply(ImageRequest("a fox")).negative_prompt == "text, watermark"
    assert no_text.apply(ImageRequest("a fox", negative_prompt="snow")).negative_prompt == (
        "snow, text, watermark"
    )


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Preset(""), "needs a name"),
        (lambda: Preset("   "), "needs a name"),
        (lambda: Preset("x" * 81), "longer than 80"),
        (lambda: Preset("a\nb"), "control characters"),
        (lambda: Preset(3), "must be text"),  # type: ignore[arg-type]
        (lambda: Preset("p", {"prompt": "x"}), "prompt is set through a template"),
        (lambda: Preset("p", {"colour": "red"}), "'colour' is not a request field"),
        (lambda: Preset("p", {"stylize": 5000}), "preset 'p': stylize=5000 is out of range"),
        (lambda: Preset("p", {"aspect_ratio": "5:4"}), "aspect_ratio='5:4' must be one of"),
        (lambda: Preset("p", prompt=3), "prompt must be text"),  # type: ignore[arg-type]
        (lambda: Preset("p", prompt="\ud800"), "not valid Unicode"),
        (lambda: Preset("p", ["stylize"]), "fields must be a mapping"),  # type: ignore[arg-type]
    ],
)
def test_bad_presets_are_refused_naming_the_problem(make: object, words: str) -> None:
    assert callable(make)
    with pytest.raises(PresetError) as info:
        make()
    assert words in str(info.value)


def test_presets_are_values() -> None:
    preset = Preset("  Wide  ", {"aspect_ratio": "16:9"})
    assert preset.name == "Wide"
    assert preset == Preset("Wide", {"aspect_ratio": "16:9"})
    with pytest.raises(TypeError):
        preset.fields["stylize"] = 5  # type: ignore[index]


_presets = st.builds(
    Preset,
    name=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=20,
    ).filter(str.strip),
    fields=st.fixed_dictionaries(
        {},
        optional={
            "stylize": st.integers(0, 1000),
            "aspect_ratio": st.sampled_from(ASPECT_RATIOS),
            "raw": st.booleans(),
            "seed": st.integers(-1, 9_999_999_999),
        },
    ),
    prompt=st.one_of(st.just(""), st.text(max_size=20).map(lambda t: t + " {prompt}")),
    negative_prompt=st.text(alphabet="abc, ", max_size=10),
    description=st.text(alphabet="abc ", max_size=10),
)


@given(_presets)
def test_json_round_trip(preset: Preset) -> None:
    assert Preset.from_json(json.loads(json.dumps(preset.to_json()))) == preset


def test_from_json_refuses_unknown_keys() -> None:
    with pytest.raises(PresetError, match="unknown key"):
        Preset.from_json({"name": "p", "colour": "red"})
    with pytest.raises(PresetError, match="must be a JSON object"):
        Preset.from_json(["p"])


# --- stacking and previews --------------------------------------------------------------------


def test_stacked_presets_apply_in_order() -> None:
    ink = Preset("Ink", {"stylize": 50}, prompt="ink drawing of {prompt}")
    bold = Preset("Bold", {"stylize": 400, "chaos": 10}, prompt="{prompt}, bold lines")
    request = apply_presets(ImageRequest("a fox"), [ink, bold])
    assert (request.prompt, request.stylize, request.chaos) == (
        "ink drawing of a fox, bold lines",
        400,
        10,
    )
    other_way = apply_presets(ImageRequest("a fox"), [bold, ink])
    assert (other_way.prompt, other_way.stylize) == ("ink drawing of a fox, bold lines", 50)


def test_preview_shows_each_change_and_who_made_it() -> None:
    request = ImageRequest("a fox", stylize=100, chaos=10)
    preview = preview_presets(
        request,
        [
            Preset("Loud", {"stylize": 750, "chaos": 0}),
            Preset("Quiet", {"chaos": 10}),  # back where it started: no change
            "Widescreen 16:9",  # a built-in, by name
        ],
    )
    assert preview.before == request
    assert preview.after == ImageRequest("a fox", stylize=750, chaos=10, aspect_ratio="16:9")
    assert [(c.field, c.before, c.after, c.presets) for c in preview.changes] == [
        ("aspect_ratio", "1:1", "16:9", ("Widescreen 16:9",)),
        ("stylize", 100, 750, ("Loud",)),
    ]
    assert str(preview) == (
        "aspect_ratio: '1:1' → '16:9'  (Widescreen 16:9)\nstylize: 100 → 750  (Loud)"
    )
    data = preview.to_json()
    json.dumps(data)
    assert data["body"]["stylize"] == 750
    assert data["changes"][1] == {
        "field": "stylize",
        "before": 100,
        "after": 750,
        "presets": ["Loud"],
    }
    assert str(preview_presets(request, [])) == "no changes"


def test_a_stack_that_breaks_the_request_says_so() -> None:
    blank = Preset("Blank", prompt="{prompt}")
    assert apply_presets(ImageRequest("a fox"), [blank]).prompt == "a fox"
    with pytest.raises(PresetError, match="no preset called 'Nope'"):
        apply_presets(ImageRequest("a fox"), ["Nope"])


# --- built-in teaching presets ----------------------------------------------------------------


def test_the_stylize_presets_match_midjourneys_settings() -> None:
    stylize = {p.name: p.fields.get("stylize") for p in BUILTIN_PRESETS}
    assert stylize["Stylize low"] == 50
    assert stylize["Stylize med"] == 100
    assert stylize["Stylize high"] == 250
    assert stylize["Stylize very high"] == 750
    assert all(p.builtin and p.description for p in BUILTIN_PRESETS)
    assert len({p.name.casefold() for p in BUILTIN_PRESETS}) == len(BUILTIN_PRESETS)


def test_teaching_presets_make_a_sweep_axis() -> None:
    sweep = define_sweep(
        "a fox", x=("preset", "Stylize low, Stylize med, Stylize high, Stylize very high"), seed=1
    )
    assert [c.request.stylize for c in sweep.cells()] == [50, 100, 250, 750]


# --- the library on disk ----------------------------------------------------------------------


def test_the_library_lives_in_the_data_folder(home: Path) -> None:
    library = PresetLibrary()
    assert library.path == home / PRESETS_FILE
    assert library.user_presets() == []
    assert [p.name for p in library] == [p.name for p in BUILTIN_PRESETS]
    library.save(Preset("Mine", {"chaos": 30}, prompt="{prompt}, dusk", description="d"))
    data = json.loads(library.path.read_text(encoding="utf-8"))
    assert data == {
        "format": "siray-presets",
        "version": 1,
        "presets": [
            {
                "name": "Mine",
                "fields": {"chaos": 30},
                "prompt": "{prompt}, dusk",
                "description": "d",
            }
        ],
    }
    again = PresetLibrary()  # a later session
    assert again.get("  mine ") == Preset(
        "Mine", {"chaos": 30}, prompt="{prompt}, dusk", description="d"
    )
    assert "MINE" in again
    assert len(again) == len(BUILTIN_PRESETS) + 1
    assert [p.name for p in home.iterdir()] == [PRESETS_FILE]  # no temporary files left


def test_saved_presets_work_by_name_in_a_sweep() -> None:
    PresetLibrary().save(Preset("Dusk", {"chaos": 30}, prompt="{prompt} at dusk"))
    cell = define_sweep("a fox", presets=["dusk"], seed=1).cells()[0]
    assert (cell.request.prompt, cell.request.chaos) == ("a fox at dusk", 30)


def test_saving_replacing_and_deleting(tmp_path: Path) -> None:
    library = PresetLibrary(tmp_path / "lib")
    library.save(Preset("A", {"chaos": 1}))
    library.save(Preset("B", {"chaos": 2}))
    with pytest.raises(PresetError, match="a preset called 'A' exists already; pass replace=True"):
        library.save(Preset("a", {"chaos": 9}))
    library.save(Preset("a", {"chaos": 9}), replace=True)
    assert [(p.name, p.fields["chaos"]) for p in library.user_presets()] == [("a", 9), ("B", 2)]
    with pytest.raises(PresetError, match="built-in preset; choose another name"):
        library.save(Preset("stylize LOW", {"stylize": 1}))
    with pytest.raises(PresetError, match="cannot be deleted"):
        library.delete("Raw")
    library.delete("A")
    with pytest.raises(PresetError, match="no saved preset called 'A'"):
        library.delete("A")
    assert [p.name for p in library.user_presets()] == ["B"]
    with pytest.raises(PresetError, match="appears twice"):
        library.save_all([Preset("C"), Preset("c")])
    assert [p.name for p in library.user_presets()] == ["B"]  # all or none


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a presets file"),
        ('{"format": "siray-presets", "version": 99, "presets": []}', "newer than"),
        ('{"format": "siray-presets", "version": 1, "presets": {}}', "must be a list"),
        (
            '{"format": "siray-presets", "version": 1, "presets": [{"name": "x", '
            '"fields": {"stylize": 9000}}]}',
            "stylize=9000 is out of range",
        ),
    ],
)
def test_a_file_it_cannot_read_is_never_overwritten(
    tmp_path: Path, content: str, words: str
) -> None:
    library = PresetLibrary(tmp_path)
    library.path.write_text(content, encoding="utf-8")
    with pytest.raises(PresetError) as info:
        library.get("anything")
    assert words in str(info.value)
    assert "left as it is" in str(info.value)
    with pytest.raises(PresetError):
        library.save(Preset("New"))
    assert library.path.read_text(encoding="utf-8") == content
    assert library.get("stylize high").fields["stylize"] == 250  # built-ins still work


# --- AUTOMATIC1111 styles.csv -----------------------------------------------------------------

STYLES_CSV = (
    "\ufeffname,prompt,negative_prompt\n"
    '"Cinematic","cinematic still of {prompt}, shallow depth of field","cartoon, drawing"\n'
    'Masterpiece,"masterpiece, best quality",\n'
    '"Two lines","line one\nline two",\n'
    ",,\n"
    'Only negative,,"blurry, lowres"\n'
)


def test_styles_csv_becomes_presets(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(STYLES_CSV, encoding="utf-8")
    presets = read_a1111_styles(path)
    assert [p.name for p in presets] == ["Cinematic", "Masterpiece", "Two lines", "Only negative"]
    assert presets[0].prompt == "cinematic still of {prompt}, shallow depth of field"
    assert presets[0].negative_prompt == "cartoon, drawing"
    assert presets[2].prompt == "line one\nline two"
    base = ImageRequest("a fox", negative_prompt="text")
    assert presets[0].apply(base).prompt == "cinematic still of a fox, shallow depth of field"
    assert presets[0].apply(base).negative_prompt == "text, cartoon, drawing"
    assert presets[1].apply(base).prompt == "a fox, masterpiece, best quality"
    assert presets[3].apply(base).prompt == "a fox"
    assert read_a1111_styles(STYLES_CSV) == presets  # the text works as well as the path


def test_importing_styles_saves_them(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(STYLES_CSV, encoding="utf-8")
    library = PresetLibrary()
    imported = library.import_styles(path)
    assert library.user_presets() == imported
    with pytest.raises(PresetError, match="exists already"):
        library.import_styles(path)
    library.import_styles(path, replace=True)
    assert len(library.user_presets()) == 4


def test_old_styles_files_with_a_text_column() -> None:
    presets = read_a1111_styles('name,text\nOld,"old style, {prompt}"\n')
    assert presets[0].apply(ImageRequest("a fox")).prompt == "old style, a fox"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("title,prompt\nx,y\n", "no 'name' column"),
        ("name,colour\nx,red\n", "neither a 'prompt' nor a 'negative_prompt' column"),
        ("name,prompt\nA,x\nB,y\na,z\n", "the style 'a' appears twice (lines 2 and 4)"),
        ("name,prompt\n,orphan prompt\n", "line 2: a style without a name"),
        # An unclosed quote swallows the rest of the file into one name.
        ('name,prompt\n"unclosed,x\nNext,y\n', "contains control characters"),
    ],
)
def test_bad_styles_files_are_refused(text: str, words: str) -> None:
    with pytest.raises(PresetError, match="styles text") as info:
        read_a1111_styles(text)
    assert words in str(info.value)


def test_a_missing_styles_file(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="cannot read"):
        read_a1111_styles(tmp_path / "nope.csv")


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_presets, max_size=5, unique_by=lambda p: p.name.strip().casefold()))
def test_library_round_trip(tmp_path: Path, presets: list[Preset]) -> None:
    builtin = {p.name.casefold() for p in BUILTIN_PRESETS}
    presets = [p for p in presets if p.name.casefold() not in builtin]
    library = PresetLibrary(tmp_path / "round-trip")
    library.path.unlink(missing_ok=True)
    library.save_all(presets)
    assert PresetLibrary(library.folder).user_presets() == presets
