"""Fields built from a model's JSON Schema: controls, rules, requests; niji 7 unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siray_widgets.errors import ValidationError
from siray_widgets.schema import (
    FIELD_NAMES,
    FIELDS,
    FIELDS_BY_NAME,
    MODEL_ID,
    NIJI7,
    Field,
    ImageRequest,
    ModelRequest,
    ModelSchema,
    UnsupportedModelError,
    model_schema_from_json,
    openapi,
    request_json_schema,
    schema_json,
)

MODEL = "acme/painter-t2i"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt", "style"],
    "properties": {
        "steps": {
            "type": "integer",
            "title": "Steps",
            "description": "Denoising steps",
            "minimum": 1,
            "maximum": 50,
        },
        "model": {"type": "string", "enum": [MODEL], "description": "Model name"},
        "prompt": {"type": "string", "description": "Text prompt", "maxLength": 200},
        "style": {"type": "string", "enum": ["ink", "oil", "pixel"]},
        "cfg": {"type": "number", "exclusiveMinimum": 0, "maximum": 20, "default": 7.5},
        "seed": {"type": "integer", "minimum": 0},
        "hdr": {"type": "boolean", "default": False},
        "caption": {"type": "string"},
        "upscale": {"type": "integer", "enum": [1, 2, 4]},
        "width": {"type": "integer", "minimum": 256, "maximum": 2048, "multipleOf": 64},
    },
}


@pytest.fixture(scope="module")
def spec() -> ModelSchema:
    return model_schema_from_json(MODEL, SCHEMA)


def test_fields_come_in_layout_order_with_controls(spec: ModelSchema) -> None:
    fields = spec.schema_json()["fields"]
    assert [(f["name"], f["control"]) for f in fields] == [
        ("model", "choice"),
        ("prompt", "textarea"),
        ("steps", "slider"),
        ("style", "choice"),
        ("cfg", "slider"),
        ("seed", "number"),
        ("hdr", "checkbox"),
        ("caption", "text"),
        ("upscale", "choice"),
        ("width", "slider"),
    ]
    doc = spec.schema_json()
    assert (doc["model"], doc["builtin"], doc["suffix"], doc["skipped"]) == (
        MODEL,
        False,
        False,
        [],
    )


def test_labels_descriptions_and_defaults(spec: ModelSchema) -> None:
    steps = spec.field("steps")
    assert (steps.label, steps.description, steps.default, steps.allow_unset) == (
        "Steps",
        "Denoising steps",
        None,  # optional, no published default: not sent until set
        True,
    )
    assert spec.field("caption").label == "Caption"
    assert spec.field("style").default == "ink"  # required enum: its first value
    assert spec.field("cfg").default == 7.5
    assert spec.field("model").description == "Model name"
    assert spec.defaults()["prompt"] == ""


def test_the_body_holds_required_fields_set_fields_and_published_defaults(
    spec: ModelSchema,
) -> None:
    request = spec.request("a heron", steps=30)
    assert request.to_body() == {
        "model": MODEL,
        "prompt": "a heron",
        "steps": 30,
        "style": "ink",
        "cfg": 7.5,
        "hdr": False,
    }
    request.caption = "   "  # blank optional text is left out
    request.seed = None  # unset again
    assert "caption" not in request.to_body()
    assert "seed" not in request.to_body()
    assert request.to_json() == json.dumps(request.to_body(), indent=2, ensure_ascii=False)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("steps", 0, r"steps=0 is out of range 1\.\.50"),
        ("steps", 2.5, r"steps=2\.5 must be an integer in range 1\.\.50"),
        ("steps", True, "must be an integer, not a boolean"),
        ("cfg", 0, "cfg=0 must be > 0 and <= 20"),
        ("cfg", float("nan"), "must be a finite number"),
        ("cfg", "7", "must be a number > 0 and <= 20"),
        ("seed", -1, "seed=-1 must be >= 0"),
        ("style", "watercolor", 'must be one of "ink", "oil", "pixel"'),
        ("upscale", 3, "must be one of 1, 2, 4"),
        ("width", 300, "must be a multiple of 64"),
        ("prompt", "x" * 201, "is longer than 200 characters"),
        ("prompt", None, "must be non-empty text"),
        ("hdr", "yes", "must be true or false"),
        ("model", "acme/other", f'must be one of "{MODEL}"'),
    ],
)
def test_every_rule_is_enforced_with_a_message(
    spec: ModelSchema, name: str, value: Any, message: str
) -> None:
    values = {"prompt": "a heron", name: value}
    with pytest.raises(ValidationError, match=message):
        spec.request(**values)


def test_numbers_keep_their_type(spec: ModelSchema) -> None:
    request = spec.request("a heron", cfg=12, width=1024)
    assert request.cfg == 12
    assert isinstance(request.cfg, int)
    assert request.replace(cfg=0.5).cfg == 0.5


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("steps", "30", 30),
        ("cfg", "4.5", 4.5),
        ("cfg", "12", 12),
        ("hdr", "true", True),
        ("hdr", "OFF", False),
        ("style", "oil", "oil"),
        ("upscale", "2", 2),
        ("caption", "a b=c", "a b=c"),
    ],
)
def test_from_text_types_command_line_values(
    spec: ModelSchema, name: str, text: str, value: Any
) -> None:
    parsed = spec.field(name).from_text(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("name", "text"), [("steps", "thirty"), ("cfg", "1,5"), ("hdr", "maybe"), ("upscale", "3")]
)
def test_from_text_refuses_what_does_not_fit(spec: ModelSchema, name: str, text: str) -> None:
    with pytest.raises(ValidationError, match=name):
        spec.field(name).from_text(text)


def test_from_body_is_strict_about_json_types(spec: ModelSchema) -> None:
    good = {"model": MODEL, "prompt": "a heron", "style": "oil", "steps": 5.0}
    assert spec.from_body(good).to_body()["steps"] == 5  # JSON Schema: 5.0 is an integer
    for bad in ({"steps": "5"}, {"upscale": 2.5}, {"hdr": 1}, {"prompt": 5}, {"cfg": True}):
        with pytest.raises(ValidationError):
            spec.from_body({**good, **bad})
    with pytest.raises(ValidationError, match="style is required"):
        spec.from_body({"model": MODEL, "prompt": "a heron"})
    with pytest.raises(ValidationError, match="chaos is not a field of acme/painter-t2i"):
        spec.from_body({**good, "chaos": 5})
    with pytest.raises(ValidationError, match="must be a JSON object"):
        spec.from_body(["not", "a", "body"])  # type: ignore[arg-type]


def test_a_model_request_behaves_like_an_image_request(spec: ModelSchema) -> None:
    request = spec.request("a heron", steps=30)
    assert isinstance(request, ModelRequest)
    assert request.model == MODEL
    assert request.model_schema is spec
    assert request["steps"] == 30
    request["steps"] = 31
    assert request.steps == 31
    assert request == spec.request("a heron", steps=31)
    assert request != spec.request("a heron", steps=32)
    assert repr(request) == "ModelRequest('acme/painter-t2i', prompt='a heron', steps=31)"
    with pytest.raises(AttributeError, match="has no field 'nope'"):
        _ = request.nope
    with pytest.raises(TypeError):
        hash(request)
    copy = request.replace(steps=10)
    assert (copy.steps, request.steps) == (10, 31)


def test_a_model_request_copies_and_pickles(spec: ModelSchema) -> None:
    import copy
    import pickle

    request = spec.request("a heron", steps=30)
    for twin in (copy.copy(request), copy.deepcopy(request), pickle.loads(pickle.dumps(request))):
        assert twin == request
        assert twin is not request
        twin.steps = 2
        assert request.steps == 30


def test_integer_bounds_become_inclusive_and_drafts_both_read() -> None:
    spec = model_schema_from_json(
        MODEL,
        {
            "properties": {
                "a": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
                "b": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 5},
                "c": {"type": "integer", "minimum": 0.5, "maximum": 9.5},
            }
        },
    )
    assert (spec.field("a").minimum, spec.field("a").maximum) == (1, 9)
    assert (spec.field("b").minimum, spec.field("b").maximum) == (1, 5)
    assert (spec.field("c").minimum, spec.field("c").maximum) == (1, 9)


def test_huge_or_impossible_numbers_are_not_trusted() -> None:
    spec = model_schema_from_json(
        MODEL,
        {
            "properties": {
                "a": {"type": "integer", "minimum": -(10**400), "maximum": 10**400},
                "b": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 1e308},
                "c": {"type": "integer", "enum": [1, 10**30]},
            }
        },
    )
    assert (spec.field("a").minimum, spec.field("a").maximum) == (None, None)
    assert spec.field("b").multiple_of is None
    assert dict(spec.skipped) == {"c": "its enum holds values that are not numbers (or too large)"}
    with pytest.raises(UnsupportedModelError, match="no value satisfies its rule"):
        model_schema_from_json(
            MODEL,
            {
                "properties": {
                    "n": {"type": "integer", "minimum": 1, "maximum": 5, "multipleOf": 7}
                },
                "required": ["n"],
            },
        )


def test_a_published_default_that_breaks_its_own_rule_is_ignored() -> None:
    spec = model_schema_from_json(
        MODEL,
        {"properties": {"n": {"type": "integer", "minimum": 1, "maximum": 4, "default": 9}}},
    )
    assert spec.field("n").default is None
    assert spec.field("n").api_default is None


def test_the_model_field_is_always_the_models_own_name() -> None:
    spec = model_schema_from_json(
        MODEL, {"properties": {"model": {"type": "string", "enum": ["someone/else"]}}}
    )
    assert spec.field("model").enum == (MODEL,)
    bare = model_schema_from_json(MODEL, {"properties": {"prompt": {"type": "string"}}})
    assert bare.field_names == ("model", "prompt")
    assert bare.request("x").to_body() == {"model": MODEL, "prompt": "x"}


def test_niji_7_is_never_rebuilt_from_a_published_schema() -> None:
    assert model_schema_from_json(MODEL_ID, {"properties": {}}) is NIJI7


def test_json_schema_of_a_generated_model(spec: ModelSchema) -> None:
    doc = spec.request_json_schema()
    assert doc["required"] == ["model", "prompt", "style"]
    assert doc["properties"]["cfg"] == {
        "type": "number",
        "description": "",
        "exclusiveMinimum": 0,
        "maximum": 20,
        "default": 7.5,
    }
    assert doc["properties"]["prompt"]["maxLength"] == 200


# --- niji 7: the same names and behaviour as before --------------------------------------------


def test_niji_7_public_names_are_unchanged() -> None:
    assert NIJI7.fields is FIELDS
    assert NIJI7.field_names == FIELD_NAMES
    assert NIJI7.builtin
    assert NIJI7.suffix
    assert schema_json()["model"] == MODEL_ID
    assert schema_json() == schema_json(NIJI7)
    assert [f["name"] for f in schema_json()["fields"]] == list(FIELD_NAMES)
    assert openapi()["components"]["schemas"]["CreateRequest"] == request_json_schema()
    assert NIJI7.request("a fox") == ImageRequest(prompt="a fox")
    assert ImageRequest(prompt="a fox").model_schema is NIJI7


def test_niji_7_controls_and_texts_are_what_they_were() -> None:
    controls = {f["name"]: f["control"] for f in schema_json()["fields"]}
    assert controls == {
        "model": "choice",
        "prompt": "textarea",
        "negative_prompt": "textarea",
        "aspect_ratio": "choice",
        "chaos": "slider",
        "stylize": "slider",
        "weird": "slider",
        "quality": "choice",
        "seed": "slider",
        "raw": "checkbox",
        "tile": "checkbox",
    }
    assert FIELDS_BY_NAME["chaos"].allowed() == "an integer in range 0..100"
    assert not any(f.allow_unset for f in FIELDS)
    with pytest.raises(ValidationError, match=r"^chaos=150 is out of range 0\.\.100$"):
        ImageRequest(prompt="a fox", chaos=150)
    with pytest.raises(ValidationError, match=r"^chaos=1\.5 must be an integer in range 0\.\.100$"):
        ImageRequest(prompt="a fox", chaos=1.5)


# --- anything the registry might publish -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
prop_keys = st.sampled_from(
    [
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "default",
        "title",
        "description",
        "minLength",
        "maxLength",
        "format",
    ]
)
type_names = st.sampled_from(["string", "integer", "number", "boolean", "array", "object", None])
props = st.dictionaries(prop_keys, json_values, max_size=6).flatmap(
    lambda p: type_names.map(lambda t: {**p, "type": t} if t else p)
)
schemas = st.fixed_dictionaries(
    {
        "properties": st.dictionaries(
            st.sampled_from(["prompt", "steps", "image", "size", "x_1", "bad name", "seed"]),
            props,
            max_size=5,
        ),
        "required": st.lists(st.sampled_from(["prompt", "steps", "image", "size"]), max_size=3),
    }
)


@settings(max_examples=300, deadline=None)
@given(schemas)
def test_any_published_schema_gives_fields_or_a_reason(schema: dict[str, Any]) -> None:
    """Whatever the registry publishes: a working schema or UnsupportedModelError, nothing
    else; and every generated default passes its own field's rule."""
    try:
        spec = model_schema_from_json(MODEL, schema)
    except UnsupportedModelError as exc:
        reason = exc.reason
        assert reason
        return
    for f in spec.fields:
        assert isinstance(f, Field)
        assert f.name.isidentifier()
        if f.required and f.type == "string" and f.enum is None:
            continue  # a prompt: the user writes it
        assert f.validate(f.default) == f.default
    json.dumps(spec.schema_json())  # plain JSON for the front end
