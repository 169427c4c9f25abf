"""Property tests of the parameter schema: valid input makes valid bodies, bad input is refused.

Strategies are derived from ``schema.FIELDS`` itself, so a new field or a changed range is
covered without editing this file.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siray_widgets.errors import ValidationError
from siray_widgets.schema import (
    FIELD_NAMES,
    FIELDS,
    FIELDS_BY_NAME,
    Field,
    ImageRequest,
    request_json_schema,
)

VALIDATOR = jsonschema.Draft202012Validator(request_json_schema())


# --- strategies --------------------------------------------------------------------------


def valid_values(f: Field) -> st.SearchStrategy[Any]:
    if f.enum is not None:
        return st.sampled_from(f.enum)
    if f.type == "integer":
        assert f.minimum is not None
        assert f.maximum is not None
        return st.integers(f.minimum, f.maximum)
    if f.type == "boolean":
        return st.booleans()
    if f.required:  # the prompt: any text with something visible in it
        return st.text(min_size=1).filter(lambda s: s.strip() != "")
    return st.text()


#: Any subset of the optional fields, and every required one except those with a default.
valid_fields = st.fixed_dictionaries(
    {"prompt": valid_values(FIELDS_BY_NAME["prompt"])},
    optional={f.name: valid_values(f) for f in FIELDS if f.name != "prompt"},
)

# Values JSON Schema and our validator both reject. (An integral float such as 3.0 counts as
# an integer in JSON Schema, so it is tested on its own below.)
fractional = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer())
not_text = st.one_of(st.none(), st.integers(), fractional, st.lists(st.integers(), max_size=2))


def invalid_values(f: Field) -> st.SearchStrategy[Any]:
    if f.type == "integer":
        assert f.minimum is not None
        assert f.maximum is not None
        return st.one_of(
            st.integers(max_value=f.minimum - 1),
            st.integers(min_value=f.maximum + 1),
            st.booleans(),  # bool is an int subclass in Python, but never a number here
            fractional,
            st.text(),  # "20" is what a form field holds; the caller must convert it
            st.none(),
        )
    if f.type == "boolean":
        return st.one_of(st.integers(0, 1), st.text(), st.none(), fractional)
    if f.enum is not None:
        return st.one_of(
            st.text().filter(lambda s: s not in f.enum),  # type: ignore[operator]
            st.integers().filter(lambda i: str(i) not in f.enum),  # type: ignore[operator]
            st.booleans(),
            st.none(),
            fractional,
        )
    if f.required:
        blank = st.text(alphabet=" \t\n\r\u00a0\u2003\u3000", max_size=8)
        return st.one_of(blank, not_text, st.booleans())
    return st.one_of(not_text, st.booleans())


field_and_bad_value = st.sampled_from(FIELDS).flatmap(
    lambda f: st.tuples(st.just(f.name), invalid_values(f))
)


# --- valid input -------------------------------------------------------------------------


@given(valid_fields)
def test_valid_fields_make_a_body_the_schema_accepts(fields: dict[str, Any]) -> None:
    request = ImageRequest(**fields)
    body = request.to_body()
    VALIDATOR.validate(body)
    # The body keeps schema order, and the text sent is that body, byte for byte.
    assert list(body) == [name for name in FIELD_NAMES if name in body]
    assert json.loads(request.to_json()) == body
    assert request.to_json() == json.dumps(body, indent=2, ensure_ascii=False)
    # Every value given is the value sent (blank optional text is left out).
    for name, value in fields.items():
        if name in body:
            assert body[name] == value
        else:
            assert FIELDS_BY_NAME[name].omit_if_blank
            assert not value.strip()


@given(valid_fields)
def test_body_round_trips_through_from_body(fields: dict[str, Any]) -> None:
    request = ImageRequest(**fields)
    again = ImageRequest.from_body(json.loads(request.to_json()))
    assert again.to_json() == request.to_json()


# --- invalid input -----------------------------------------------------------------------


@given(field_and_bad_value)
def test_invalid_values_are_refused_naming_the_field(case: tuple[str, Any]) -> None:
    name, bad = case
    fields: dict[str, Any] = {"prompt": "a fox", name: bad}
    with pytest.raises(ValidationError) as info:
        ImageRequest(**fields)
    assert info.value.field == name
    assert str(info.value).startswith(name)


@given(field_and_bad_value)
def test_invalid_assignment_is_refused_and_changes_nothing(case: tuple[str, Any]) -> None:
    name, bad = case
    request = ImageRequest(prompt="a fox", chaos=7)
    before = request.to_json()
    with pytest.raises(ValidationError) as info:
        setattr(request, name, bad)
    assert info.value.field == name
    assert request.to_json() == before


@given(field_and_bad_value)
def test_the_schema_agrees_that_invalid_values_are_invalid(case: tuple[str, Any]) -> None:
    name, bad = case
    body = ImageRequest(prompt="a fox").to_body()
    body[name] = bad
    assert not VALIDATOR.is_valid(body)


@given(st.sampled_from([f for f in FIELDS if f.type == "integer"]), st.integers(-5, 5))
def test_integral_floats_are_not_integers_here(f: Field, offset: int) -> None:
    assert f.minimum is not None
    value = float(f.minimum + abs(offset))
    with pytest.raises(ValidationError, match=f"^{f.name}="):
        ImageRequest(prompt="a fox", **{f.name: value})


@given(st.text(min_size=1).filter(lambda s: s not in FIELDS_BY_NAME and s.isidentifier()))
def test_unknown_fields_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="is not a create-task field") as info:
        ImageRequest(prompt="a fox", **{name: 1})
    assert info.value.field == name


# --- messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"chaos": 150}, "chaos=150 is out of range 0..100"),
        ({"stylize": -1}, "stylize=-1 is out of range 0..1000"),
        ({"weird": 3001}, "weird=3001 is out of range 0..3000"),
        ({"seed": 10_000_000_000}, "seed=10000000000 is out of range -1..9999999999"),
        ({"chaos": True}, "chaos=True must be an integer, not a boolean"),
        ({"chaos": "20"}, "chaos='20' must be an integer in range 0..100"),
        ({"quality": "3"}, 'quality=\'3\' must be one of "1", "2", "4"'),
        ({"aspect_ratio": "5:4"}, 'aspect_ratio=\'5:4\' must be one of "1:1", "9:16"'),
        ({"raw": 1}, "raw=1 must be true or false"),
        ({"prompt": "   "}, "prompt='   ' must not be empty or only whitespace"),
        ({"prompt": ""}, "prompt='' must not be empty or only whitespace"),
        ({"model": "midjourney/v6"}, "model='midjourney/v6' must be one of"),
    ],
)
def test_messages_name_field_value_and_what_is_allowed(
    fields: dict[str, Any], message: str
) -> None:
    fields.setdefault("prompt", "a fox")
    with pytest.raises(ValidationError) as info:
        ImageRequest(**fields)
    assert str(info.value).startswith(message)


def test_quality_given_as_a_number_is_sent_as_a_string() -> None:
    body = ImageRequest(prompt="a fox", quality=2).to_body()
    assert body["quality"] == "2"
    VALIDATOR.validate(body)


def test_schema_bounds_match_the_reference_page() -> None:
    props = request_json_schema()["properties"]
    assert (props["chaos"]["minimum"], props["chaos"]["maximum"]) == (0, 100)
    assert (props["stylize"]["minimum"], props["stylize"]["maximum"]) == (0, 1000)
    assert (props["weird"]["minimum"], props["weird"]["maximum"]) == (0, 3000)
    assert (props["seed"]["minimum"], props["seed"]["maximum"]) == (-1, 9_999_999_999)
    assert props["quality"]["enum"] == ["1", "2", "4"]
    assert request_json_schema()["required"] == ["model", "prompt", "aspect_ratio"]
    assert props["stylize"]["default"] == 100


def test_text_that_cannot_be_sent_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"^negative_prompt='\\ud800' contains characters"):
        ImageRequest("a fox", negative_prompt="\ud800")
