"""Sweep value syntaxes: lists, ranges, counted ranges, '..', enums, booleans, Python lists."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from siray_widgets.errors import ValidationError
from siray_widgets.schema import ASPECT_RATIOS, FIELDS_BY_NAME, QUALITIES, Field
from siray_widgets.sweep import MAX_AXIS_VALUES, SweepError, format_values, parse_values
from siray_widgets.sweep.values import parse_value


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        ("stylize", "0, 250, 500", [0, 250, 500]),
        ("stylize", "0,250,500", [0, 250, 500]),
        ("stylize", "0-1000 (+250)", [0, 250, 500, 750, 1000]),
        ("stylize", "0 - 1000 (+250)", [0, 250, 500, 750, 1000]),
        ("stylize", "0-1000(250)", [0, 250, 500, 750, 1000]),
        ("stylize", "1000-0 (-250)", [1000, 750, 500, 250, 0]),
        ("stylize", "0-1000 (+300)", [0, 300, 600, 900]),  # stops at the last step inside
        ("stylize", "0-1000 [5]", [0, 250, 500, 750, 1000]),
        ("stylize", "0-1000[5]", [0, 250, 500, 750, 1000]),
        ("chaos", "0-100 [4]", [0, 33, 67, 100]),
        ("chaos", "100-0 [3]", [100, 50, 0]),
        ("chaos", "7-9 [1]", [7]),
        ("stylize", "0, 250, .., 1000", [0, 250, 500, 750, 1000]),
        ("stylize", "1000, 750, ..., 0", [1000, 750, 500, 250, 0]),
        ("stylize", "10, 20, …, 50, 100", [10, 20, 30, 40, 50, 100]),
        ("stylize", "0-500 (+250), 800, 900-1000 [2]", [0, 250, 500, 800, 900, 1000]),
        ("chaos", "1-4", [1, 2, 3, 4]),
        ("seed", "-1", [-1]),
        ("seed", "-1, 42, 9999999999", [-1, 42, 9_999_999_999]),
        ("seed", "-1-2", [-1, 0, 1, 2]),
        ("seed", "2--1", [2, 1, 0, -1]),
        ("seed", "+5", [5]),
        ("aspect_ratio", "16:9", ["16:9"]),
        ("aspect_ratio", "16:9, 1:1", ["16:9", "1:1"]),
        ("aspect_ratio", "16:9 1:1 2:3", ["16:9", "1:1", "2:3"]),
        ("aspect_ratio", "16 : 9, 1:1", ["16:9", "1:1"]),
        ("aspect_ratio", "all", list(ASPECT_RATIOS)),
        ("quality", "1,2,4", ["1", "2", "4"]),
        ("quality", "4 1", ["4", "1"]),
        ("raw", "true, false", [True, False]),
        ("tile", "Yes no", [True, False]),
        ("raw", "both", [False, True]),
        ("negative_prompt", "text\n\n  watermark, signature \n", ["text", "watermark, signature"]),
    ],
)
def test_text_syntaxes(field: str, spec: str, expected: list[Any]) -> None:
    assert parse_values(field, spec) == expected


@pytest.mark.parametrize(
    ("field", "values", "expected"),
    [
        ("stylize", [0, 250, 500], [0, 250, 500]),
        ("stylize", (0, 500), [0, 500]),
        ("stylize", range(0, 1001, 500), [0, 500, 1000]),
        ("stylize", ["0-500 (+250)", 1000], [0, 250, 500, 1000]),
        ("stylize", 250, [250]),
        ("seed", [-1, 7], [-1, 7]),
        ("quality", [1, 2, 4], ["1", "2", "4"]),
        ("aspect_ratio", ["16:9", "1:1"], ["16:9", "1:1"]),
        ("raw", [True, False], [True, False]),
        ("negative_prompt", ["", "text, watermark"], ["", "text, watermark"]),
    ],
)
def test_python_values(field: str, values: Any, expected: list[Any]) -> None:
    assert parse_values(field, values) == expected


def test_aspect_ratios_are_never_read_as_ranges_or_times() -> None:
    # ':' and '-' mean nothing special for an enum: '16:9' is a name.
    assert parse_values("aspect_ratio", "9:16") == ["9:16"]
    with pytest.raises(SweepError, match="'1:1-16:9' is not one of"):
        parse_values("aspect_ratio", "1:1-16:9")


@pytest.mark.parametrize(
    ("field", "spec", "shown", "words"),
    [
        ("stylize", "0-1250 (+250)", "1250", "is out of range 0..1000 (in '0-1250 (+250)')"),
        ("stylize", [0, 1200], "1200", "is out of range 0..1000"),
        ("chaos", "-1", "-1", "is out of range 0..100"),
        ("stylize", "1.5", "'1.5'", "is not a whole number or a range"),
        ("stylize", [2.5], "2.5", "must be an integer"),
        ("stylize", [True], "True", "not a boolean"),
        ("stylize", "0, 0", "0", "appears twice"),
        ("stylize", "0, 250, .., 1000, 500", "500", "appears twice"),
        ("stylize", "0,,1", "'0,,1'", "empty value between commas"),
        ("stylize", "", "''", "has no values"),
        ("stylize", [], "[]", "has no values"),
        ("stylize", "0-1000", "'0-1000'", "makes 1,001 values; at most 1,000 per axis"),
        ("stylize", "0-1000 (-250)", "'0-1000 (-250)'", "counts down but 1000 is above 0"),
        ("stylize", "1000-0 (+250)", "'1000-0 (+250)'", "counts up but 0 is below 1000"),
        ("stylize", "0-1000 (+0)", "'0-1000 (+0)'", "step of 0"),
        ("stylize", "0-1000 [0]", "'0-1000 [0]'", "asks for no values"),
        ("chaos", "0-2 [5]", "'0-2 [5]'", "only 3 whole numbers"),
        ("stylize", "0, .., 1000", "'0, .., 1000'", "two numbers before '..'"),
        ("stylize", "0, 250, ..", "'0, 250, ..'", "a number after '..'"),
        ("stylize", "0, 0, .., 10", "'0, 0, .., 10'", "no step"),
        ("stylize", "0, 300, .., 1000", "'0, 300, .., 1000'", "misses 1000"),
        ("stylize", "500, 250, .., 1000", "'500, 250, .., 1000'", "never reaches 1000"),
        ("aspect_ratio", "5:4", "'5:4'", "is not one of 1:1, 9:16"),
        ("quality", "3", "'3'", "is not one of 1, 2, 4"),
        ("quality", [3], "3", 'must be one of "1", "2", "4"'),
        ("raw", "maybe", "'maybe'", "is not true or false"),
        ("raw", [1], "1", "must be true or false"),
        ("stylize", {"a": 1}, "{'a': 1}", "must be text or a list"),
    ],
)
def test_errors_name_the_axis_and_the_value(field: str, spec: Any, shown: str, words: str) -> None:
    with pytest.raises(SweepError) as info:
        parse_values(field, spec, where="X axis (test)")
    message = str(info.value)
    assert message.startswith(f"X axis (test): {shown} "), message
    assert words in message
    assert info.value.axis == "X axis (test)"
    assert isinstance(info.value, ValidationError)  # callers that catch these catch sweeps


def test_an_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(SweepError, match=r"'colour' is not a request field .*stylize"):
        parse_values("colour", "1")


@pytest.mark.parametrize(
    "spec",
    [
        "0-9999999999 (+1)",
        "0-9999999999",
        "0-9999999999 [9999999999]",
        "0, 1, .., 9999999999",
        "9" * 100_000,
        "1," * 100_000,
        "-" * 100_000,
    ],
)
def test_huge_or_hostile_specs_are_refused_quickly(spec: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SweepError):
        parse_values("seed", spec)
    assert time.perf_counter() - start < 2.0  # a hang guard, not a speed goal


def test_huge_python_iterables_are_refused_without_being_read() -> None:
    with pytest.raises(SweepError, match="makes 1,000,000,000,000 values"):
        parse_values("seed", range(10**12))

    def endless() -> Any:
        n = 0
        while True:
            yield n % 1000
            n += 1

    with pytest.raises(SweepError, match=f"more than {MAX_AXIS_VALUES:,} values"):
        parse_values("stylize", endless())


def test_parse_value_reads_one_value() -> None:
    assert parse_value("stylize", " 250 ") == 250
    assert parse_value("aspect_ratio", "16:9") == "16:9"
    assert parse_value("raw", "TRUE") is True
    assert parse_value("negative_prompt", "a, b") == "a, b"
    with pytest.raises(SweepError, match="single value"):
        parse_value("stylize", "0, 250")


# --- properties -------------------------------------------------------------------------------

_stylize = st.integers(0, 1000)
_seed = st.integers(-1, 9_999_999_999)


def _spacing() -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", "  "])


@given(_stylize, _stylize, st.integers(1, 1000), _spacing(), _spacing())
def test_ranges_match_pythons_range(a: int, b: int, step: int, s1: str, s2: str) -> None:
    assume(abs(b - a) // step < MAX_AXIS_VALUES)
    direction = 1 if b >= a else -1
    sign = "+" if direction > 0 else "-"
    spec = f"{a}{s1}-{s2}{b}{s1}({sign}{step})"
    assert parse_values("stylize", spec) == list(range(a, b + direction, direction * step))


@given(_seed, _seed, st.integers(1, 50))
def test_counted_ranges_are_even_distinct_and_keep_the_ends(a: int, b: int, n: int) -> None:
    assume(n <= abs(b - a) + 1)
    values = parse_values("seed", f"{a}-{b} [{n}]")
    assert len(values) == n
    assert values[0] == a
    assert values[-1] == (b if n > 1 else a)  # [1] is the start alone
    assert len(set(values)) == n
    assert values == sorted(values, reverse=b < a)
    if n > 2:
        gaps = [abs(y - x) for x, y in itertools.pairwise(values)]
        assert max(gaps) - min(gaps) <= 1  # as even as whole numbers allow


@given(_stylize, st.integers(1, 400), st.integers(0, 30))
def test_dots_continue_the_first_step(a: int, step: int, k: int) -> None:
    end = a + step * (k + 1)
    assume(end <= 1000)
    assert parse_values("stylize", f"{a}, {a + step}, .., {end}") == list(range(a, end + 1, step))


@given(st.lists(_seed, min_size=1, max_size=30, unique=True), _spacing())
def test_lists_round_trip(values: list[int], space: str) -> None:
    assert parse_values("seed", f",{space}".join(map(str, values))) == values


@given(st.lists(st.sampled_from(ASPECT_RATIOS), min_size=1, unique=True))
def test_enum_lists_round_trip(values: list[str]) -> None:
    assert parse_values("aspect_ratio", ", ".join(values)) == values
    assert parse_values("aspect_ratio", " ".join(values)) == values


@given(
    st.sampled_from(["stylize", "chaos", "weird", "seed", "quality", "aspect_ratio", "raw"]),
    st.data(),
)
def test_format_values_reads_back(field: str, data: st.DataObject) -> None:
    f = FIELDS_BY_NAME[field]
    element: st.SearchStrategy[Any]
    if f.type == "integer":
        assert f.minimum is not None
        assert f.maximum is not None
        element = st.integers(f.minimum, f.maximum)
    elif f.type == "boolean":
        element = st.booleans()
    else:
        element = st.sampled_from(f.enum or QUALITIES)
    values = data.draw(st.lists(element, min_size=1, max_size=20, unique=True))
    assert parse_values(field, format_values(field, values)) == values


def test_format_values_writes_progressions_as_ranges() -> None:
    assert format_values("stylize", [0, 250, 500, 750, 1000]) == "0-1000 (+250)"
    assert format_values("stylize", [1000, 500, 0]) == "1000-0 (-500)"
    assert format_values("seed", [-1, 0, 1]) == "-1-1 (+1)"
    assert format_values("stylize", [0, 10, 30]) == "0, 10, 30"
    assert format_values("raw", [True, False]) == "true, false"


@given(st.text(max_size=40))
def test_any_text_gives_values_or_a_sweep_error(text: str) -> None:
    for field in ("stylize", "aspect_ratio", "raw", "seed"):
        problem = ""
        try:
            values = parse_values(field, text)
        except SweepError as exc:  # never a bare ValueError, never another field's name
            problem = str(exc)
        if problem:
            assert problem.startswith(f"{field}: ")
        else:
            assert values


# --- other models' fields: decimals, numeric enums, unset values ------------------------------

GUIDANCE = Field(
    "guidance", "number", "Guidance", "How closely to follow the prompt.", minimum=1, maximum=20
)
STEPS = Field("steps", "integer", "Steps", "Sampling steps.", enum=(10, 20, 30), default=20)
OPTIONAL = Field(
    "strength", "integer", "Strength", "", minimum=0, maximum=9, default=None, allow_unset=True
)


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        (GUIDANCE, "7.5", [7.5]),
        (GUIDANCE, "1-2 (+0.25)", [1, 1.25, 1.5, 1.75, 2]),
        (GUIDANCE, "1-2 (+.1)", [1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2]),
        (GUIDANCE, "2-1 [3]", [2, 1.5, 1]),
        (GUIDANCE, "1.5, 2, .., 3", [1.5, 2, 2.5, 3]),
        (GUIDANCE, "1, 2.50, 20.0", [1, 2.5, 20]),
        (GUIDANCE, [1, 2.5], [1, 2.5]),
        (STEPS, "10, 30", [10, 30]),
        (STEPS, "all", [10, 20, 30]),
        (STEPS, [20], [20]),
        (OPTIONAL, "unset", [None]),
        (OPTIONAL, [None, 3], [None, 3]),
        (OPTIONAL, "0-9 (+3)", [0, 3, 6, 9]),
    ],
)
def test_fields_of_other_models(field: Field, spec: Any, expected: list[Any]) -> None:
    values = parse_values(field, spec)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]  # 2.0 is sent as 2


@pytest.mark.parametrize(
    ("field", "spec", "words"),
    [
        (GUIDANCE, "0.5", "0.5 is out of range 1..20"),
        (GUIDANCE, "1, 1.0", "1 appears twice"),
        (GUIDANCE, "1-2 (+0)", "step of 0"),
        (GUIDANCE, "1-2 (+0.0001)", "makes 10,001 values"),
        (GUIDANCE, "1.5, 2, .., 2.75", "misses 2.75 (it would stop at 2.5, then 3)"),
        (STEPS, "15", "'15' is not one of 10, 20, 30"),
        (OPTIONAL, "maybe", "is not a whole number or a range"),
    ],
)
def test_errors_for_other_models_fields(field: Field, spec: str, words: str) -> None:
    with pytest.raises(SweepError, match=f"^{field.name}: ") as info:
        parse_values(field, spec)
    assert words in str(info.value)


@given(
    st.integers(4, 80).map(lambda n: n / 4),
    st.integers(1, 40).map(lambda n: n / 4),
    st.integers(1, 12),
)
def test_decimal_progressions_read_back(start: float, step: float, n: int) -> None:
    values = [start + step * k for k in range(n)]
    assume(values[-1] <= 20)
    text = format_values(GUIDANCE, values)
    assert parse_values(GUIDANCE, text) == values
