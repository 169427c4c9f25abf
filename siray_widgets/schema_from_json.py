"""Fields from a model's published JSON Schema (its registry entry's ``model_extend_info``).

The mapping follows what the official ComfyUI nodes do with the same schemas, made strict:
enum (or const) -> a choice, integer or number -> a slider when both bounds are known (a
number box otherwise), string -> text (multi-line when the name says prompt), boolean -> a
checkbox. Published defaults are used only when they pass their own field's rule; optional
fields without one are not sent until set. Image inputs, arrays and objects are not supported
yet: required ones make the model unsupported (with the reason), optional ones are skipped.

Everything published is untrusted: names must be plain identifiers (they become attributes
and traits), enums and texts are bounded, bounds must be finite numbers, an empty range or a
mixed enum is refused with a reason instead of an exception. Call it through
:func:`siray_widgets.schema.model_schema_from_json`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import ValidationError
from .schema import Field, ModelSchema, UnsupportedModelError

#: Field names become attributes, traits and CSS hooks: plain identifiers only.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_MAX_PROPERTIES = 200
_MAX_ENUM = 500
_MAX_TEXT = 1000
_IMAGE_WORDS = ("image", "img", "mask")
#: Names with an image word that still hold no image (image_size, num_images, ...).
_NOT_IMAGE_WORDS = ("size", "format", "num", "count", "ratio", "resolution", "quality", "type")
_IMAGE_FORMATS = ("uri", "url", "data-url", "binary", "byte")
#: These come first in a generated layout, in this order; the rest keep the schema's order.
_FIRST = ("model", "prompt", "negative_prompt")


class _Skip(Exception):
    """A property this package cannot offer; the message says why."""


def build_model_schema(model: str, schema: Any) -> ModelSchema:
    """See :func:`siray_widgets.schema.model_schema_from_json` (the public entry point)."""
    if not isinstance(schema, Mapping):
        raise UnsupportedModelError(model, "its request schema is not a JSON object")
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise UnsupportedModelError(model, "its request schema lists no properties")
    if len(properties) > _MAX_PROPERTIES:
        raise UnsupportedModelError(model, f"its request has more than {_MAX_PROPERTIES} fields")
    listed = schema.get("required")
    required = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    images = [n for n, p in properties.items() if _is_image_input(n, p)]
    needed = [n for n in images if n in required]
    if needed:
        raise UnsupportedModelError(
            model, "it needs image input " + ", ".join(repr(_short(n)) for n in needed)
        )
    fields: list[Field] = []
    skipped: list[tuple[str, str]] = []
    for name, prop in properties.items():
        shown = _short(name)
        try:
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise _Skip("its name is not a plain identifier")
            if name in images:
                raise _Skip("image inputs are not supported yet")
            if name == "model":
                continue
            fields.append(_field(name, prop, name in required))
        except _Skip as exc:
            if name in required:
                raise UnsupportedModelError(model, f"it needs field {shown!r}, and {exc}") from None
            skipped.append((shown, str(exc)))
    published = properties.get("model")
    model_field = Field(
        "model",
        "string",
        "Model",
        _clean_text(published.get("description") if isinstance(published, Mapping) else None)
        or "The model that draws the image.",
        required=True,
        default=model,
        enum=(model,),
    )
    ordered = sorted(fields, key=lambda f: _FIRST.index(f.name) if f.name in _FIRST else 99)
    return ModelSchema(model, (model_field, *ordered), skipped=tuple(skipped))


def _short(value: Any, limit: int = 64) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean_text(value: Any, limit: int = _MAX_TEXT) -> str:
    """Published text (a title, a description): printable, one line of at most ``limit``."""
    if not isinstance(value, str):
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(prop: Mapping[str, Any]) -> Any:
    kind = prop.get("type")
    if isinstance(kind, list):  # ["integer", "null"]: an optional integer
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else kind
    return kind


def _is_image_input(name: Any, prop: Any) -> bool:
    """Whether a property takes an image (a URL or data URL, or a list of them)."""
    if not isinstance(prop, Mapping):
        return False
    fmt = prop.get("format")
    media = prop.get("contentMediaType")
    if isinstance(media, str) and media.lower().startswith("image/"):
        return True
    lowered = name.lower() if isinstance(name, str) else ""
    if not any(word in lowered for word in _IMAGE_WORDS):
        return False
    if any(word in lowered for word in _NOT_IMAGE_WORDS):
        return False
    kind = _json_type(prop)
    if kind == "array":
        return True
    if kind in ("string", None) and prop.get("enum") is None:
        return True
    return isinstance(fmt, str) and fmt.lower() in _IMAGE_FORMATS


#: Larger numbers cannot be shown exactly by a browser (JavaScript's Number.MAX_SAFE_INTEGER).
_MAX_SAFE = 2**53 - 1


def _is_real(value: Any) -> bool:
    """A finite JSON number a browser can hold exactly (huge ones are ignored, not trusted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= _MAX_SAFE  # also false for inf and nan


def _field(name: str, prop: Any, required: bool) -> Field:
    """One property of a published schema as a :class:`Field` (raises :class:`_Skip`)."""
    if not isinstance(prop, Mapping):
        raise _Skip("its schema is not a JSON object")
    kind = _json_type(prop)
    enum = _enum(prop)
    if kind is None and enum is not None:
        kind = (
            "string"
            if all(isinstance(v, str) for v in enum)
            else "integer"
            if all(isinstance(v, int) for v in enum)
            else "number"
        )
    elif kind is None:
        kind = "string"  # as the official ComfyUI nodes read an untyped property
    if kind not in ("string", "integer", "number", "boolean"):
        raise _Skip(f"fields of type {_short(kind)!r} are not supported yet")
    if enum is not None:
        if kind == "boolean":
            enum = None  # true/false is all a checkbox can say anyway
        elif kind == "string" and not all(isinstance(v, str) for v in enum):
            raise _Skip("its enum mixes text and other values")
        elif kind in ("integer", "number") and not all(_is_real(v) for v in enum):
            raise _Skip("its enum holds values that are not numbers (or too large)")
        elif kind == "integer" and not all(float(v).is_integer() for v in enum):
            raise _Skip("its integer enum holds fractions")
        elif kind == "integer":
            enum = tuple(int(v) for v in enum)
    minimum, maximum, excl_min, excl_max = _bounds(prop, kind)
    step: Any = prop.get("multipleOf")
    multiple_of: Any = None
    if _is_real(step) and step > 0 and kind in ("integer", "number"):
        multiple_of = step
        if kind == "integer":
            multiple_of = int(step) if float(step).is_integer() else None
    min_len = prop.get("minLength")
    max_len = prop.get("maxLength")
    text_rule = kind == "string" and enum is None
    label = _clean_text(prop.get("title"), 60) or name.replace("_", " ").capitalize()
    description = _clean_text(prop.get("description"))
    draft = Field(
        name,
        kind,
        label,
        description,
        required=required,
        minimum=minimum,
        maximum=maximum,
        enum=enum,
        multiline=text_rule and "prompt" in name.lower(),
        omit_if_blank=text_rule and not required,
        allow_unset=not required,
        exclusive_minimum=excl_min,
        exclusive_maximum=excl_max,
        multiple_of=multiple_of,
        min_length=min_len if text_rule and _is_count(min_len) else None,
        max_length=max_len if text_rule and _is_count(max_len) else None,
    )
    api_default = _usable_default(draft, prop.get("default"))
    if api_default is not None:
        default = api_default
    elif required:
        default = _required_default(draft)
    else:
        default = "" if text_rule else None
    return dataclasses.replace(draft, default=default, api_default=api_default)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**7


def _enum(prop: Mapping[str, Any]) -> tuple[Any, ...] | None:
    if "enum" in prop:
        values = prop["enum"]
    elif "const" in prop:
        values = [prop["const"]]
    else:
        return None
    if not isinstance(values, list):
        raise _Skip("its enum is not a list")
    values = [v for v in values if v is not None]  # null only says the field may be left out
    if not values:
        raise _Skip("its enum is empty")
    if len(values) > _MAX_ENUM:
        raise _Skip(f"its enum has more than {_MAX_ENUM} values")
    if any(isinstance(v, (bool, list, dict)) for v in values):
        raise _Skip("its enum holds values that are neither text nor numbers")
    if any(isinstance(v, str) and (len(v) > 200 or not v.isprintable()) for v in values):
        raise _Skip("its enum holds over-long or unprintable text")
    return tuple(dict.fromkeys(values))  # repeated values once, order kept


def _bounds(prop: Mapping[str, Any], kind: str) -> tuple[Any, Any, bool, bool]:
    """minimum, maximum and whether each is exclusive (both JSON Schema drafts' spellings)."""
    if kind not in ("integer", "number"):
        return None, None, False, False
    low = prop.get("minimum")
    high = prop.get("maximum")
    low = low if _is_real(low) else None
    high = high if _is_real(high) else None
    excl_low = excl_high = False
    raw_low, raw_high = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    if _is_real(raw_low) and (low is None or raw_low >= low):
        low, excl_low = raw_low, True
    elif raw_low is True and low is not None:  # draft 4: a flag on minimum
        excl_low = True
    if _is_real(raw_high) and (high is None or raw_high <= high):
        high, excl_high = raw_high, True
    elif raw_high is True and high is not None:
        excl_high = True
    if kind == "integer":
        # Integer bounds, inclusive: what a slider needs.
        if low is not None:
            low = math.floor(low) + 1 if excl_low and float(low).is_integer() else math.ceil(low)
            excl_low = False
        if high is not None:
            high = (
                math.ceil(high) - 1 if excl_high and float(high).is_integer() else math.floor(high)
            )
            excl_high = False
    if low is not None and high is not None and (low > high or (low == high and excl_low)):
        raise _Skip(f"its range {low}..{high} is empty")
    return low, high, excl_low, excl_high


def _usable_default(field: Field, value: Any) -> Any:
    """The published default if the field's own rule accepts it, else None."""
    if value is None:
        return None
    try:
        return field.from_json(value)
    except ValidationError:
        return None


def _required_default(field: Field) -> Any:
    """A starting value for a required field without a published default."""
    if field.enum is not None:
        return field.enum[0]
    if field.type == "boolean":
        return False
    if field.type == "string":
        return ""  # the user must write it (a prompt, say): validation says so until then
    low, high = field.minimum, field.maximum
    candidates: list[int | float] = [0]
    if low is not None and high is not None:
        candidates.append((low + high) // 2 if field.type == "integer" else (low + high) / 2)
    if low is not None:
        candidates += [low, low + 1]
        if field.multiple_of is not None:
            candidates.append(math.ceil(low / field.multiple_of) * field.multiple_of)
    if high is not None:
        candidates += [high, high - 1]
    for candidate in candidates:
        try:
            return field.validate(candidate)
        except ValidationError:
            continue
    raise _Skip(f"no value satisfies its rule ({field.allowed()})")
