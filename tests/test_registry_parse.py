"""Reading registry answers in the format Siray publishes: entries, support, prices, safety."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fixtures.registry_fixtures import (
    CHAT,
    FIXTURE,
    FLUX_DEV,
    FLUX_ULTRA,
    GEMINI,
    NIJI,
    REF2I,
    SEEDREAM,
    TEXT_TO_IMAGE,
    VIDEO,
    entry,
    fixture_payload,
)

from siray_widgets import registry
from siray_widgets.errors import ValidationError
from siray_widgets.registry import (
    Registry,
    RegistryError,
    UnknownModelError,
    cost_text,
    estimate_cost,
    format_money,
    parse_registry,
)
from siray_widgets.schema import (
    FIELDS,
    NIJI7,
    ImageRequest,
    ModelRequest,
    UnsupportedModelError,
    model_schema_from_json,
)


@pytest.fixture(scope="module")
def reg() -> Registry:
    return parse_registry(FIXTURE.read_bytes(), source="file", gateway=str(FIXTURE))


def answer(*entries: dict[str, Any]) -> Registry:
    return parse_registry(json.dumps({"data": list(entries)}))


# --- the fixture, read as the gateway sends it ----------------------------------------------


def test_every_entry_of_the_fixture_is_read(reg: Registry) -> None:
    assert reg.names == [e["model_name"] for e in fixture_payload()["data"]]
    assert reg.problems == ()
    assert reg.source == "file"
    assert reg.get(SEEDREAM).title == "Seedream 3.0 t2i"
    assert reg.get(SEEDREAM).tag == "text-to-image"
    assert reg.get(VIDEO).tag == "text-to-video"


def test_support_follows_tag_and_schema(reg: Registry) -> None:
    for name in TEXT_TO_IMAGE:
        assert reg.get(name).support().supported, name
    assert reg.get(REF2I).support().text() == "not supported yet: it needs image input 'images'"
    assert "only text-to-image models" in reg.get(VIDEO).support().reason
    assert reg.get(CHAT).support().reason == "the registry publishes no request schema for it"
    with pytest.raises(UnsupportedModelError, match="needs image input 'images'"):
        reg.get(REF2I).model_schema()


def test_image_models_lists_text_to_image_first_and_the_image_input_model(reg: Registry) -> None:
    names = [e.model_name for e in reg.image_models()]
    assert names == [*sorted(TEXT_TO_IMAGE), REF2I]


def test_niji_7_uses_the_built_in_table_not_the_published_schema(reg: Registry) -> None:
    assert reg.get(NIJI).model_schema() is NIJI7
    assert registry.model_schema(NIJI, registry=reg) is NIJI7
    assert isinstance(registry.request_for(NIJI, "a fox", registry=reg), ImageRequest)


def test_the_published_niji_schema_matches_the_built_in_fields_exactly() -> None:
    """The registry's niji 7 schema (fixture and shipped snapshot) says what FIELDS say: one
    source of truth, checked against the other."""
    for payload in (fixture_payload(), json.loads(snapshot_text())):
        schema = json.loads(payload["data"][0]["model_extend_info"])
        assert set(schema["properties"]) == {f.name for f in FIELDS}
        assert set(schema["required"]) == {f.name for f in FIELDS if f.required}
        generic = model_schema_from_json("someone/niji-copy", _renamed(schema))
        for built_in in FIELDS:
            if built_in.name == "model":
                continue
            made = generic.field(built_in.name)
            assert made.type == built_in.type, built_in.name
            assert made.enum == built_in.enum, built_in.name
            assert made.minimum == built_in.minimum, built_in.name
            assert made.maximum == built_in.maximum, built_in.name
            assert made.required == built_in.required, built_in.name
            assert made.api_default == built_in.api_default, built_in.name


def snapshot_text() -> str:
    from importlib import resources

    return (
        resources.files("siray_widgets")
        .joinpath("data")
        .joinpath("registry_snapshot.json")
        .read_text(encoding="utf-8")
    )


def _renamed(schema: dict[str, Any]) -> dict[str, Any]:
    # Built as a generic model, the niji schema must give the same rules as the table.
    props = dict(schema["properties"])
    props["model"] = {"type": "string", "enum": ["someone/niji-copy"]}
    return {**schema, "properties": props}


def test_the_snapshot_holds_niji_7_only_with_an_unknown_price() -> None:
    snap = registry.snapshot()
    assert snap.names == [NIJI]
    assert snap.source == "snapshot"
    assert snap.get(NIJI).unit_price is None
    assert cost_text(NIJI, 3, registry=snap) == "price unknown"
    assert "snapshot" in snap.describe()


def test_generated_fields_for_a_model_with_ranges_numbers_and_skipped_inputs(
    reg: Registry,
) -> None:
    spec = reg.get(FLUX_DEV).model_schema()
    assert spec.field_names == (
        "model",
        "prompt",
        "negative_prompt",
        "num_inference_steps",
        "guidance_scale",
        "num_images",
        "enable_safety_checker",
    )
    controls = {f["name"]: f["control"] for f in spec.schema_json()["fields"]}
    assert controls == {
        "model": "choice",
        "prompt": "textarea",
        "negative_prompt": "textarea",
        "num_inference_steps": "slider",
        "guidance_scale": "slider",
        "num_images": "choice",
        "enable_safety_checker": "checkbox",
    }
    assert dict(spec.skipped) == {
        "image": "image inputs are not supported yet",
        "loras": "fields of type 'array' are not supported yet",
    }
    steps = spec.field("num_inference_steps")
    assert (steps.minimum, steps.maximum, steps.default) == (1, 50, 28)
    assert spec.field("guidance_scale").multiple_of == 0.5
    assert spec.field("num_images").enum == (1, 2, 4)


def test_a_request_from_a_generated_schema_validates_and_builds_the_body(reg: Registry) -> None:
    request = registry.request_for(SEEDREAM, "a fox", registry=reg, size="2560x1440")
    assert isinstance(request, ModelRequest)
    assert request.to_body() == {"model": SEEDREAM, "prompt": "a fox", "size": "2560x1440"}
    # size has no published default: it is left out until set
    assert registry.request_for(SEEDREAM, "a fox", registry=reg).to_body() == {
        "model": SEEDREAM,
        "prompt": "a fox",
    }
    with pytest.raises(ValidationError, match=r"size='1x1' must be one of \"2048x2048\""):
        request.size = "1x1"
    with pytest.raises(ValidationError, match=r"is not a field of bytedance/seedream-3\.0-t2i"):
        request.chaos = 5
    ultra = registry.request_for(FLUX_ULTRA, "a fox", registry=reg)
    assert json.loads(ultra.to_json()) == {
        "model": FLUX_ULTRA,
        "prompt": "a fox",
        "aspect_ratio": "16:9",
        "output_format": "jpg",
        "safety_tolerance": 2,
    }
    with pytest.raises(ValidationError, match=r"safety_tolerance=7 is out of range 1\.\.6"):
        ultra.replace(safety_tolerance=7)


def test_a_model_with_only_a_prompt(reg: Registry) -> None:
    spec = reg.get(GEMINI).model_schema()
    assert spec.field_names == ("model", "prompt")
    with pytest.raises(ValidationError, match="must not be empty or only whitespace"):
        spec.request("  ")


def test_unknown_models_suggest_close_names(reg: Registry) -> None:
    with pytest.raises(UnknownModelError) as caught:
        reg.get("bytedance/seedream-3.0-t2x")
    assert "did you mean bytedance/seedream-3.0-t2i" in str(caught.value)
    assert isinstance(caught.value, LookupError)
    # niji 7 is always known, even to a registry that does not list it
    assert answer(entry("acme/x")).get(NIJI).model_schema() is NIJI7


# --- prices ---------------------------------------------------------------------------------


def test_estimate_cost_is_price_times_tasks_for_per_task_billing(reg: Registry) -> None:
    assert estimate_cost(SEEDREAM, 4, registry=reg) == Decimal("0.12")
    assert estimate_cost(FLUX_ULTRA, 3, registry=reg) == Decimal("0.18")  # "0.06" as text
    assert estimate_cost(FLUX_DEV, 0, registry=reg) == Decimal("0")
    assert estimate_cost(reg.get(NIJI), 10) == Decimal("0.50")
    assert cost_text(SEEDREAM, 4, registry=reg) == "$0.12 (4 tasks x $0.03)"
    assert cost_text(GEMINI, 1, registry=reg) == "$0.039 (1 task x $0.039)"


def test_price_unknown_when_billing_is_not_per_task_or_price_is_missing(reg: Registry) -> None:
    assert estimate_cost(VIDEO, 2, registry=reg) is None
    assert cost_text(VIDEO, 2, registry=reg) == "price unknown (billed per_second)"
    none = answer(entry("acme/a", out_price=None), entry("acme/b", billing_type=None))
    assert estimate_cost("acme/a", 1, registry=none) is None
    assert estimate_cost("acme/b", 1, registry=none) is None
    assert format_money(None) == "price unknown"


@pytest.mark.parametrize("billing", ["per_image", "PER-IMAGE", "per request", "per_call"])
def test_per_task_billing_spellings(billing: str) -> None:
    reg = answer(entry("acme/a", out_price=0.05, billing_type=billing))
    assert estimate_cost("acme/a", 2, registry=reg) == Decimal("0.10")


@pytest.mark.parametrize("tasks", [-1, 1.5, True, "2"])
def test_estimate_cost_refuses_odd_task_counts(reg: Registry, tasks: Any) -> None:
    with pytest.raises(ValueError, match="must be a whole number"):
        estimate_cost(SEEDREAM, tasks, registry=reg)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0.05", "$0.05"),
        ("0.2", "$0.20"),
        ("12", "$12.00"),
        ("1234.5", "$1,234.50"),
        ("0.0025", "$0.0025"),
        ("0.0000022", "$0.0000022"),
        ("0", "$0.00"),
    ],
)
def test_format_money(amount: str, text: str) -> None:
    assert format_money(Decimal(amount)) == text


@pytest.mark.parametrize(
    ("raw", "price"),
    [
        (0.05, Decimal("0.05")),  # exact: not 0.05000000000000000277
        ("0.06", Decimal("0.06")),
        (1, Decimal("1")),
        (" 0.5 ", Decimal("0.5")),
        (-1, None),
        ("NaN", None),
        ("Infinity", None),
        ("free", None),
        (True, None),
        ([0.1], None),
        ("9" * 50, None),
        (10**9, None),
    ],
)
def test_out_price_parsing(raw: Any, price: Decimal | None) -> None:
    assert answer(entry("acme/a", out_price=raw)).get("acme/a").out_price == price


# --- hostile answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>gateway error</html>", "not valid JSON"),
        (b"[]", 'not {"data": [...]}'),
        (b'{"data": {"models": []}}', 'not {"data": [...]}'),
        (b'{"code": "error", "message": "down"}', 'not {"data": [...]}'),
        (b'{"data": [NaN]}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_a_bad_answer_is_a_registry_error(body: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_registry(body)


def test_bad_entries_are_skipped_and_named() -> None:
    reg = answer(
        entry("acme/good"),
        "not an object",  # type: ignore[arg-type]
        entry("acme/evil\x1b[31m"),
        entry("../../etc/passwd"),
        entry(""),
        {"model_name": 42},
        entry("acme/good"),
    )
    assert reg.names == ["acme/good"]
    assert len(reg.problems) == 6
    assert all("\x1b" not in p for p in reg.problems)
    assert "entry 6 skipped: acme/good is listed twice" in reg.problems


def test_printed_text_is_made_safe() -> None:
    raw = entry(
        "acme/a",
        tag="text-to-image\x1b[2J",
        name="Evil\x1b]0;title\x07 model\n\ud800",
        description="x" * 5000,
        billing_type="per_image\r\n",
    )
    e = answer(raw).get("acme/a")
    for text in (e.tag, e.title, e.description, e.billing_type or ""):
        assert text.isprintable()
        text.encode("utf-8")  # no lone surrogates
    assert len(e.description) <= 1000
    assert e.billing_type == "per_image"


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ("{not json", "its request schema is not valid JSON"),
        ('["a list"]', "its request schema is a list, not an object"),
        (json.dumps({"properties": {}}), "lists no properties"),
        ("x" * 300_000, "longer than"),
        (
            json.dumps(
                {
                    "properties": {"prompt": {"type": "string"}, "cfg": {"type": "object"}},
                    "required": ["prompt", "cfg"],
                }
            ),
            "it needs field 'cfg', and fields of type 'object' are not supported yet",
        ),
        (
            json.dumps(
                {"properties": {"image_url": {"type": "string"}}, "required": ["image_url"]}
            ),
            "needs image input 'image_url'",
        ),
        (
            json.dumps(
                {
                    "properties": {
                        "ref": {"type": "string", "format": "uri", "contentMediaType": "image/png"}
                    },
                    "required": ["ref"],
                }
            ),
            "needs image input 'ref'",
        ),
        (
            json.dumps(
                {"properties": {"__class__": {"type": "string"}}, "required": ["__class__"]}
            ),
            "its name is not a plain identifier",
        ),
        (
            json.dumps(
                {
                    "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}},
                    "required": ["n"],
                }
            ),
            "its range 5..1 is empty",
        ),
        (
            json.dumps(
                {
                    "properties": {"n": {"type": "string", "enum": list(range(600))}},
                    "required": ["n"],
                }
            ),
            "more than 500 values",
        ),
    ],
)
def test_unusable_schemas_make_a_model_unsupported_with_a_reason(schema: str, reason: str) -> None:
    e = answer(entry("acme/a", schema)).get("acme/a")
    support = e.support()
    assert not support.supported
    assert reason in support.reason


def test_optional_oddities_are_skipped_not_fatal() -> None:
    schema = {
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string"},
            "weights": {"type": "array", "items": {"type": "number"}},
            "__proto__": {"type": "string"},
            "mask": {"type": "string"},
            "image_size": {"type": "string", "enum": ["square", "portrait"]},
            "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
            "strength": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "style": {"enum": ["a", "b", None]},
        },
    }
    spec = answer(entry("acme/a", schema)).get("acme/a").model_schema()
    assert spec.field_names == ("model", "prompt", "image_size", "num_images", "strength", "style")
    assert {name for name, _ in spec.skipped} == {"weights", "__proto__", "mask"}
    assert spec.field("strength").type == "number"
    assert spec.field("style").enum == ("a", "b")


def test_too_many_entries_are_cut_with_a_problem() -> None:
    entries = [entry(f"acme/m{i}") for i in range(registry.MAX_ENTRIES + 5)]
    reg = answer(*entries)
    assert len(reg) == registry.MAX_ENTRIES
    assert any("only the first" in p for p in reg.problems)


def test_model_extend_info_given_as_an_object_is_accepted_too() -> None:
    raw = entry("acme/a")
    raw["model_extend_info"] = json.loads(raw["model_extend_info"])
    assert answer(raw).get("acme/a").support().supported
