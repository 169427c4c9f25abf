"""The create-task parameters: the single source of truth.

Names, types, ranges, enums, defaults and descriptions of every field of
``POST /v1/images/generations/async`` live here (copied from the API's reference page,
``shared/seed/niji-7-t2i-async.txt``). The request object, the widget's traits, the front
end's controls, the sandbox's validation and the OpenAPI document all derive from this table.

Other models publish their fields as a JSON Schema in Siray's registry; a
:class:`ModelSchema` built from it (:func:`model_schema_from_json`, rules in
:mod:`siray_widgets.schema_from_json`) gives the same things for them: :class:`Field` rules,
a :class:`ModelRequest`, the JSON the front end builds controls from. niji 7 stays the
hand-tuned table below (:data:`NIJI7`: labels, layout, suffix support).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .errors import SirayError, ValidationError

MODEL_ID = "midjourney/midjourney-niji-7-t2i"
CREATE_PATH = "/v1/images/generations/async"
TASK_PATH = "/v1/images/generations/async/{task_id}"

FieldType = Literal["string", "integer", "number", "boolean"]
#: How the front end shows a field (derived from its rule, see :meth:`Field.control`).
Control = Literal["checkbox", "choice", "slider", "number", "text", "textarea"]

_TRUE = frozenset(("true", "yes", "on", "1"))
_FALSE = frozenset(("false", "no", "off", "0"))


@dataclass(frozen=True)
class Field:
    """One create-task field and the rule it must satisfy.

    niji 7's fields are written by hand below (:data:`FIELDS`); other models' fields are built
    from their JSON Schema by :func:`model_schema_from_json`.
    """

    name: str
    type: FieldType
    label: str
    description: str
    required: bool = False
    #: The value this package sends when the user sets nothing (the seed's example body).
    #: ``None`` (with :attr:`allow_unset`): nothing is sent.
    default: Any = None
    #: The default the API documents, where it documents one.
    api_default: Any = None
    #: Bounds: ints for integer fields, ints or floats for number fields.
    minimum: Any = None
    maximum: Any = None
    #: The allowed values (strings, or numbers for numeric fields).
    enum: tuple[Any, ...] | None = None
    #: Shown as a multi-line text box.
    multiline: bool = False
    #: Left out of the body when blank (sending "" says nothing the API needs to hear).
    omit_if_blank: bool = False
    #: ``None`` is a valid value meaning "not set": the field is left out of the body.
    allow_unset: bool = False
    #: The bounds themselves are not allowed (JSON Schema's exclusiveMinimum/Maximum).
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    #: Values must be a multiple of this (JSON Schema's multipleOf).
    multiple_of: Any = None
    #: Text length bounds, in characters.
    min_length: int | None = None
    max_length: int | None = None

    def control(self) -> Control:
        """The control that fits this rule: enum -> choice, bounded number -> slider, ..."""
        if self.type == "boolean":
            return "checkbox"
        if self.enum is not None:
            return "choice"
        if self.type in ("integer", "number"):
            bounded = self.minimum is not None and self.maximum is not None
            return "slider" if bounded else "number"
        return "textarea" if self.multiline else "text"

    def allowed(self) -> str:
        """Plain words for what this field accepts."""
        if self.enum is not None:
            return "one of " + ", ".join(json.dumps(v) for v in self.enum)
        if self.type in ("integer", "number"):
            kind = "an integer" if self.type == "integer" else "a number"
            bounds = self._range()
            if ".." in bounds:
                words = f"{kind} in range {bounds}"
            else:
                words = f"{kind} {bounds}" if bounds else kind
            if self.multiple_of is not None:
                words += f" (a multiple of {self.multiple_of})"
            return words
        if self.type == "boolean":
            return "true or false"
        words = "non-empty text" if self.required else "text"
        if self.max_length is not None:
            words += f" of at most {self.max_length} characters"
        return words

    def validate(self, value: Any) -> Any:
        """Return ``value`` in its canonical form or raise :class:`ValidationError`."""
        if value is None and self.allow_unset:
            return None
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ValidationError(self.name, value, "must be true or false")
            return value
        if self.type == "integer":
            if isinstance(value, bool):
                raise ValidationError(self.name, value, "must be an integer, not a boolean")
            try:
                number = operator.index(value)  # ints and numpy ints, never floats or strings
            except TypeError:
                raise ValidationError(self.name, value, f"must be {self.allowed()}") from None
            return self._check_number(number)
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValidationError(self.name, value, f"must be {self.allowed()}")
            real = int(value) if isinstance(value, numbers.Integral) else float(value)
            if not math.isfinite(real):
                raise ValidationError(self.name, value, "must be a finite number")
            return self._check_number(real)
        # Strings. quality's enum is strings ("1", "2", "4"); an int 2 is what people type.
        if self.enum is not None and type(value) is int and str(value) in self.enum:
            value = str(value)
        if not isinstance(value, str):
            raise ValidationError(self.name, value, f"must be {self.allowed()}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (from bad copy/paste or binary data) cannot go into a JSON body.
            raise ValidationError(
                self.name, value, "contains characters that are not valid Unicode text"
            ) from None
        if self.enum is not None and value not in self.enum:
            raise ValidationError(self.name, value, f"must be {self.allowed()}")
        if self.required and not value.strip():
            raise ValidationError(self.name, value, "must not be empty or only whitespace")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(self.name, value, f"is longer than {self.max_length} characters")
        if self.min_length is not None and len(value) < self.min_length and value:
            raise ValidationError(self.name, value, f"is shorter than {self.min_length} characters")
        return value

    def _check_number(self, number: int | float) -> int | float:
        if self.enum is not None:
            if number not in self.enum:
                raise ValidationError(self.name, number, f"must be {self.allowed()}")
            return number
        low, high = self.minimum, self.maximum
        below = low is not None and (number <= low if self.exclusive_minimum else number < low)
        above = high is not None and (number >= high if self.exclusive_maximum else number > high)
        if below or above:
            bounds = self._range()
            if ".." in bounds:  # both bounds, inclusive: "is out of range 0..100"
                raise ValidationError(self.name, number, f"is out of range {bounds}")
            raise ValidationError(self.name, number, f"must be {bounds}")
        if self.multiple_of is not None and not _is_multiple(number, self.multiple_of):
            raise ValidationError(self.name, number, f"must be a multiple of {self.multiple_of}")
        return number

    def _range(self) -> str:
        low, high = self.minimum, self.maximum
        if (
            low is not None
            and high is not None
            and not (self.exclusive_minimum or self.exclusive_maximum)
        ):
            return f"{low}..{high}"
        parts = []
        if low is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {low}")
        if high is not None:
            parts.append(f"{'<' if self.exclusive_maximum else '<='} {high}")
        return " and ".join(parts)

    def from_text(self, text: str) -> Any:
        """A value typed as text (a command-line ``name=value``) in this field's type, validated.

        Integers and numbers are parsed, booleans read ``true/false/yes/no/on/off/1/0``,
        strings are taken as they are.
        """
        value: Any = text
        if self.type == "boolean":
            word = text.strip().lower()
            if word not in _TRUE | _FALSE:
                raise ValidationError(self.name, text, "must be true or false")
            value = word in _TRUE
        elif self.type == "integer":
            try:
                value = int(text.strip())
            except ValueError:
                raise ValidationError(self.name, text, f"must be {self.allowed()}") from None
        elif self.type == "number":
            try:
                value = float(text.strip())
            except ValueError:
                raise ValidationError(self.name, text, f"must be {self.allowed()}") from None
            if value.is_integer() and "." not in text and "e" not in text.lower():
                value = int(value)  # "30" stays 30 in the body, not 30.0
        return self.validate(value)

    def from_json(self, value: Any) -> Any:
        """A value decoded from a JSON body, with JSON Schema's strict types, validated.

        ``"quality": 2`` is not a string and ``"steps": 2.5`` not an integer (``5.0`` is).
        """
        if value is None and self.allow_unset:
            return None
        wrong = (
            (self.type == "boolean" and not isinstance(value, bool))
            or (self.type == "string" and not isinstance(value, str))
            or (
                self.type in ("integer", "number")
                and (isinstance(value, bool) or not isinstance(value, (int, float)))
            )
            or (self.type == "integer" and isinstance(value, float) and not value.is_integer())
        )
        if wrong:
            raise ValidationError(self.name, value, f"must be {self.allowed()}")
        if self.type == "integer" and isinstance(value, float):
            value = int(value)
        return self.validate(value)

    def to_json(self) -> dict[str, Any]:
        """The field as plain JSON, for the front end."""
        return {
            "name": self.name,
            "type": self.type,
            "label": self.label,
            "description": self.description,
            "required": self.required,
            "default": self.default,
            "api_default": self.api_default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "enum": list(self.enum) if self.enum is not None else None,
            "multiline": self.multiline,
            "omit_if_blank": self.omit_if_blank,
            "allow_unset": self.allow_unset,
            "exclusive_minimum": self.exclusive_minimum,
            "exclusive_maximum": self.exclusive_maximum,
            "multiple_of": self.multiple_of,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "control": self.control(),
            "allowed": self.allowed(),
        }

    def to_json_schema(self) -> dict[str, Any]:
        """The field as a JSON Schema property (OpenAPI 3.1 dialect)."""
        prop: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum is not None:
            prop["enum"] = list(self.enum)
        if self.minimum is not None:
            prop["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            prop["exclusiveMaximum" if self.exclusive_maximum else "maximum"] = self.maximum
        if self.multiple_of is not None:
            prop["multipleOf"] = self.multiple_of
        if self.min_length is not None:
            prop["minLength"] = self.min_length
        if self.max_length is not None:
            prop["maxLength"] = self.max_length
        if self.api_default is not None:
            prop["default"] = self.api_default
        if self.required and self.type == "string" and self.enum is None:
            # Not in the reference page, but the API cannot draw an empty prompt.
            prop["minLength"] = max(1, self.min_length or 0)
            # A character that is not whitespace by Python's str.isspace() (what the sandbox
            # and the widget call blank); a bare \S would let U+001C..U+001F and U+0085 pass.
            prop["pattern"] = NOT_BLANK_PATTERN
        return prop


#: JSON Schema pattern (ECMA-262): at least one character that Python's str.isspace() does
#: not call whitespace.
NOT_BLANK_PATTERN: Final = (
    "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def _is_multiple(number: int | float, step: int | float) -> bool:
    from decimal import Decimal, InvalidOperation  # exact for 0.1 steps; only when needed

    try:
        return Decimal(repr(number)) % Decimal(repr(step)) == 0
    except (InvalidOperation, ArithmeticError):
        return False


ASPECT_RATIOS: tuple[str, ...] = ("1:1", "9:16", "16:9", "4:3", "3:4", "3:2", "2:3")
QUALITIES: tuple[str, ...] = ("1", "2", "4")

#: Every field, in the order the request body is written.
FIELDS: tuple[Field, ...] = (
    Field(
        "model",
        "string",
        "Model",
        "The model that draws the image (this package speaks niji 7).",
        required=True,
        default=MODEL_ID,
        enum=(MODEL_ID,),
    ),
    Field(
        "prompt",
        "string",
        "Prompt",
        "What to draw, in words.",
        required=True,
        default="",
        multiline=True,
    ),
    Field(
        "negative_prompt",
        "string",
        "Negative prompt",
        "What should not appear in the image (Midjourney's --no).",
        default="",
        multiline=True,
        omit_if_blank=True,
    ),
    Field(
        "aspect_ratio",
        "string",
        "Aspect ratio",
        "Width to height of the image.",
        required=True,
        default="1:1",
        enum=ASPECT_RATIOS,
    ),
    Field(
        "chaos",
        "integer",
        "Chaos",
        "How different the images of one grid are from each other (0-100).",
        default=0,
        minimum=0,
        maximum=100,
    ),
    Field(
        "stylize",
        "integer",
        "Stylize",
        "How strongly Midjourney's own aesthetic is applied (0-1000).",
        default=100,
        api_default=100,
        minimum=0,
        maximum=1000,
    ),
    Field(
        "weird",
        "integer",
        "Weird",
        "How unusual and offbeat the look is (0-3000).",
        default=0,
        minimum=0,
        maximum=3000,
    ),
    Field(
        "quality",
        "string",
        "Quality",
        "Rendering effort: more detail for more GPU time.",
        default="1",
        enum=QUALITIES,
    ),
    Field(
        "seed",
        "integer",
        "Seed",
        "Starting noise; the same seed and prompt give similar images (-1 = random).",
        default=-1,
        minimum=-1,
        maximum=9_999_999_999,
    ),
    Field(
        "raw",
        "boolean",
        "Raw",
        "Raw mode: less of Midjourney's default aesthetic, closer to the prompt.",
        default=False,
    ),
    Field(
        "tile",
        "boolean",
        "Tile",
        "Make images that repeat seamlessly as tiles.",
        default=False,
    ),
)

FIELDS_BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(FIELDS_BY_NAME)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)


def field(name: str) -> Field:
    """The field called ``name``; a KeyError lists the known names."""
    try:
        return FIELDS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown field {name!r}; known fields: {', '.join(FIELD_NAMES)}") from None


def defaults() -> dict[str, Any]:
    """Every field's default value."""
    return {f.name: f.default for f in FIELDS}


def _check_names(names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in FIELDS_BY_NAME]
    if unknown:
        raise ValidationError(
            unknown[0],
            None,
            f"is not a create-task field (known fields: {', '.join(FIELD_NAMES)})",
        )


class ImageRequest:
    """A create-task request, valid at every moment.

    Validates on construction and on every assignment; :meth:`to_json` is the exact body
    the client sends (the same bytes the widget shows).

    >>> r = ImageRequest(prompt="a fox in the snow", chaos=20)
    >>> r.chaos = 150
    Traceback (most recent call last):
    ...
    siray_widgets.errors.ValidationError: chaos=150 is out of range 0..100
    """

    __slots__ = FIELD_NAMES

    model: str
    prompt: str
    negative_prompt: str
    aspect_ratio: str
    chaos: int
    stylize: int
    weird: int
    quality: str
    seed: int
    raw: bool
    tile: bool

    def __init__(self, prompt: str | None = None, **fields: Any) -> None:
        if prompt is not None:
            fields["prompt"] = prompt
        _check_names(fields)
        values = defaults()
        values.update(fields)
        for name in FIELD_NAMES:
            setattr(self, name, values[name])

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in FIELDS_BY_NAME:
            _check_names([name])
        object.__setattr__(self, name, FIELDS_BY_NAME[name].validate(value))

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ImageRequest:
        """Build from a JSON body as the API receives it (absent optional fields = defaults)."""
        if not isinstance(body, Mapping):
            raise ValidationError("body", body, "must be a JSON object")
        missing = [n for n in REQUIRED_FIELDS if n not in body]
        if missing:
            raise ValidationError(missing[0], None, "is required")
        return cls(**body)

    def replace(self, **changes: Any) -> ImageRequest:
        """A copy with ``changes`` applied (validated)."""
        return ImageRequest(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every field, blank ones included."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send, in schema order; blank optional text is left out."""
        return build_body(self.to_dict())

    def to_json(self) -> str:
        """The exact request body as text: the widget shows these bytes, the client sends them."""
        return dump_body(self.to_body())

    @property
    def model_schema(self) -> ModelSchema:
        """niji 7's :class:`ModelSchema` (the same for every ImageRequest)."""
        return NIJI7

    def to_suffix(self) -> str:
        """The Midjourney prompt suffix equivalent to this request (without the prompt)."""
        from .suffix import render_suffix

        return render_suffix(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageRequest):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.to_dict().items() if v != FIELDS_BY_NAME[k].default}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"ImageRequest({args})"


def build_body(values: Mapping[str, Any]) -> dict[str, Any]:
    """Body for already-validated ``values``: schema order, blank optional text left out.

    The front end repeats exactly this rule (it reads ``omit_if_blank`` from the schema) so
    that its live preview is byte-equal to what is sent.
    """
    return _build_body(FIELDS, values)


def _build_body(fields: Iterable[Field], values: Mapping[str, Any]) -> dict[str, Any]:
    # Unset values (None, only possible where allow_unset) are left out too.
    return {
        f.name: values[f.name]
        for f in fields
        if values[f.name] is not None and not (f.omit_if_blank and not str(values[f.name]).strip())
    }


def dump_body(body: Mapping[str, Any]) -> str:
    """Body -> the bytes sent, as text. Two-space indent: the same text JSON.stringify(b, null, 2)
    writes, so the browser's preview and the HTTP body are equal byte for byte."""
    return json.dumps(body, indent=2, ensure_ascii=False)


def schema_json(spec: ModelSchema | None = None) -> dict[str, Any]:
    """A model's parameter schema as plain JSON (what the front end builds its controls from).

    Without ``spec``: niji 7's. For another model pass its :class:`ModelSchema`
    (``siray_widgets.registry.model_schema(name)`` finds it by name).
    """
    return (spec or NIJI7).schema_json()


def request_json_schema() -> dict[str, Any]:
    """JSON Schema of the create-task body."""
    return NIJI7.request_json_schema()


# --- every model: a schema object and a request object --------------------------------------


class UnsupportedModelError(SirayError, ValueError):
    """A model whose request schema this package cannot build a request for (yet)."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"model {model!r} is not supported yet: {reason}")


@dataclass(frozen=True)
class ModelSchema:
    """One model's create-task fields: niji 7's hand-tuned table, or one built from the JSON
    Schema the registry publishes (:func:`model_schema_from_json`).

    >>> spec = model_schema_from_json("acme/t2i", {"type": "object", "required": ["prompt"],
    ...     "properties": {"prompt": {"type": "string"},
    ...                    "steps": {"type": "integer", "minimum": 1, "maximum": 50}}})
    >>> spec.request(prompt="a fox", steps=30).to_body()
    {'model': 'acme/t2i', 'prompt': 'a fox', 'steps': 30}
    """

    model: str
    fields: tuple[Field, ...]
    #: niji 7's hand-written table (labels, layout and suffix support tuned by hand).
    builtin: bool = False
    #: Midjourney prompt suffixes (``--ar 16:9``) can be read into and written from requests.
    suffix: bool = False
    #: Optional properties of the published schema that are not offered, with the reason
    #: (image inputs, arrays and objects are not supported yet).
    skipped: tuple[tuple[str, str], ...] = ()
    _by_name: Mapping[str, Field] = dataclasses.field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})
        if len(self._by_name) != len(self.fields):
            raise ValueError(f"model {self.model!r}: field names repeat")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def field(self, name: str) -> Field:
        """The field called ``name``; a KeyError lists the known names."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"model {self.model!r} has no field {name!r}; its fields: "
                + ", ".join(self.field_names)
            ) from None

    def check_names(self, names: Iterable[str]) -> None:
        """Raise :class:`ValidationError` naming the first name that is not a field."""
        unknown = [n for n in names if n not in self._by_name]
        if unknown:
            raise ValidationError(
                unknown[0],
                None,
                f"is not a field of {self.model} (its fields: {', '.join(self.field_names)})",
            )

    def defaults(self) -> dict[str, Any]:
        """Every field's default value (None: not sent)."""
        return {f.name: f.default for f in self.fields}

    def request(self, prompt: str | None = None, /, **values: Any) -> AnyRequest:
        """A validated request for this model (an :class:`ImageRequest` for niji 7)."""
        if self.builtin:  # ImageRequest's prompt is not positional-only: pass it once
            return ImageRequest(**values) if prompt is None else ImageRequest(prompt, **values)
        return ModelRequest(self, prompt, **values)

    def from_body(self, body: Mapping[str, Any]) -> AnyRequest:
        """Build from a JSON body as the API receives it (absent optional fields = defaults).

        Types are checked as strictly as JSON Schema would (``"steps": "30"`` is not an
        integer) before each field's own rule runs.
        """
        if self.builtin:
            return ImageRequest.from_body(body)
        if not isinstance(body, Mapping):
            raise ValidationError("body", body, "must be a JSON object")
        self.check_names(body)
        missing = [n for n in self.required if n not in body]
        if missing:
            raise ValidationError(missing[0], None, "is required")
        values = {name: self._by_name[name].from_json(value) for name, value in body.items()}
        return ModelRequest(self, **values)

    def build_body(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The body for already-validated ``values`` (see :func:`build_body`)."""
        return _build_body(self.fields, values)

    def schema_json(self) -> dict[str, Any]:
        """The schema as plain JSON for the front end: fields in layout order."""
        return {
            "model": self.model,
            "builtin": self.builtin,
            "suffix": self.suffix,
            "fields": [f.to_json() for f in self.fields],
            "skipped": [{"name": name, "reason": why} for name, why in self.skipped],
        }

    def request_json_schema(self) -> dict[str, Any]:
        """JSON Schema of this model's create-task body."""
        return {
            "type": "object",
            "required": list(self.required),
            "properties": {f.name: f.to_json_schema() for f in self.fields},
            "additionalProperties": False,
        }


class ModelRequest:
    """A create-task request for a model whose fields come from its JSON Schema.

    Valid at every moment, like :class:`ImageRequest`: fields are attributes (and items),
    checked on construction and on every assignment; :meth:`to_json` is the exact body sent.

    >>> spec = model_schema_from_json("acme/t2i", {"properties": {"prompt": {"type": "string"},
    ...     "steps": {"type": "integer", "minimum": 1, "maximum": 50}}, "required": ["prompt"]})
    >>> r = ModelRequest(spec, "a fox")
    >>> r.steps = 99
    Traceback (most recent call last):
    ...
    siray_widgets.errors.ValidationError: steps=99 is out of range 1..50
    """

    __slots__ = ("_spec", "_values")

    _spec: ModelSchema
    _values: dict[str, Any]

    def __init__(self, spec: ModelSchema, prompt: str | None = None, /, **fields: Any) -> None:
        if prompt is not None:
            fields["prompt"] = prompt
        spec.check_names(fields)
        values = spec.defaults()
        values.update(fields)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(
            self, "_values", {f.name: f.validate(values[f.name]) for f in spec.fields}
        )

    @property
    def model(self) -> str:
        return self._spec.model

    @property
    def model_schema(self) -> ModelSchema:
        return self._spec

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not slots, methods or properties.
        values = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            raise AttributeError(
                f"{self._spec.model} has no field {name!r}; its fields: "
                + ", ".join(self._spec.field_names)
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._spec.check_names([name])
        self._values[name] = self._spec.field(name).validate(value)

    def __getitem__(self, name: str) -> Any:
        self._spec.check_names([name])
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.__setattr__(name, value)

    def replace(self, **changes: Any) -> ModelRequest:
        """A copy with ``changes`` applied (validated)."""
        return ModelRequest(self._spec, **{**self._values, **changes})

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle rebuild through the constructor (validated again).
        return (_rebuild_request, (self._spec, dict(self._values)))

    def to_dict(self) -> dict[str, Any]:
        """Every field, unset ones (None) included."""
        return dict(self._values)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send, in field order; unset and blank optional fields left out."""
        return self._spec.build_body(self._values)

    def to_json(self) -> str:
        """The exact request body as text (the bytes the client sends)."""
        return dump_body(self.to_body())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelRequest):
            return NotImplemented
        return self._spec == other._spec and self._values == other._values

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        defaults = self._spec.defaults()
        changed = {k: v for k, v in self._values.items() if k != "model" and v != defaults.get(k)}
        args = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"ModelRequest({self._spec.model!r}{args})"


def _rebuild_request(spec: ModelSchema, values: dict[str, Any]) -> ModelRequest:
    return ModelRequest(spec, **values)


#: A request for any model: niji 7's hand-tuned class or the generic one.
AnyRequest = ImageRequest | ModelRequest

#: niji 7: the hand-written table above, with Midjourney suffix support.
NIJI7 = ModelSchema(MODEL_ID, FIELDS, builtin=True, suffix=True)


def model_schema_from_json(model: str, schema: Any) -> ModelSchema:
    """Build a model's fields from the JSON Schema of its request (``model_extend_info``).

    enum -> a choice, integer or number with a range -> a slider, string -> text (multi-line
    for prompts), boolean -> a checkbox. ``model`` is always the model's own name; niji 7 is
    always :data:`NIJI7`, the hand-tuned table.

    Raises :class:`UnsupportedModelError` when the request needs something this package cannot
    send yet: an image input, or a required property that is an array or an object. Optional
    ones are left out and listed in :attr:`ModelSchema.skipped`. The rules live in
    :mod:`siray_widgets.schema_from_json`, loaded on first use (niji 7 never needs them).
    """
    if model == MODEL_ID:
        return NIJI7
    from .schema_from_json import build_model_schema

    return build_model_schema(model, schema)


TASK_STATUSES: tuple[str, ...] = (
    "NOT_START",
    "SUBMITTED",
    "QUEUED",
    "IN_PROGRESS",
    "SUCCESS",
    "FAILURE",
)


def openapi() -> dict[str, Any]:
    """An OpenAPI 3.1 document for both endpoints (served by the sandbox, read by tests)."""
    error = {"$ref": "#/components/schemas/Error"}

    def error_response(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": error}}}

    common_errors = {
        "401": error_response("Missing or invalid API key"),
        "429": error_response("Rate limited; honour Retry-After"),
        "500": error_response("Server error"),
        "503": error_response("Service unavailable"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Siray image generation (niji 7), as spoken by siray-widgets",
            "version": "1",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CreateRequest": request_json_schema(),
                "CreateResponse": {
                    "type": "object",
                    "required": ["code", "data", "message"],
                    "properties": {
                        "code": {"type": "string", "const": "success"},
                        "message": {"type": "string"},
                        "data": {
                            "type": "object",
                            "required": ["task_id"],
                            "properties": {"task_id": {"type": "string", "minLength": 1}},
                        },
                    },
                },
                "TaskResponse": {
                    "type": "object",
                    "required": ["code", "data", "message"],
                    "properties": {
                        "code": {"type": "string", "const": "success"},
                        "message": {"type": "string"},
                        "data": {
                            "type": "object",
                            "required": [
                                "task_id",
                                "status",
                                "progress",
                                "outputs",
                                "fail_reason",
                                "submit_time",
                                "start_time",
                                "finish_time",
                            ],
                            "properties": {
                                "task_id": {"type": "string"},
                                "status": {"type": "string", "enum": list(TASK_STATUSES)},
                                "progress": {"type": "string", "pattern": r"^\d{1,3}%$"},
                                "outputs": {"type": "array", "items": {"type": "string"}},
                                "fail_reason": {"type": "string"},
                                "submit_time": {"type": "integer"},
                                "start_time": {"type": "integer"},
                                "finish_time": {"type": "integer"},
                            },
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "code": {"type": ["string", "null"]},
                                "param": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            CREATE_PATH: {
                "post": {
                    "operationId": "createTask",
                    "summary": "Create an image generation task",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CreateRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Task created",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/CreateResponse"}
                                }
                            },
                        },
                        "400": error_response("A parameter is invalid"),
                        **common_errors,
                    },
                }
            },
            TASK_PATH: {
                "get": {
                    "operationId": "getTask",
                    "summary": "Query a task",
                    "parameters": [
                        {
                            "name": "task_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The task",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/TaskResponse"}
                                }
                            },
                        },
                        "404": error_response("Unknown task id"),
                        **common_errors,
                    },
                }
            },
        },
    }
