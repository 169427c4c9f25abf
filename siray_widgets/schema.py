"""The create-task parameters: the single source of truth.

Names, types, ranges, enums, defaults and descriptions of every field of
``POST /v1/images/generations/async`` live here (copied from the API's reference page,
``shared/seed/niji-7-t2i-async.txt``). The request object, the widget's traits, the front
end's controls, the sandbox's validation and the OpenAPI document all derive from this table.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ValidationError

MODEL_ID = "midjourney/midjourney-niji-7-t2i"
CREATE_PATH = "/v1/images/generations/async"
TASK_PATH = "/v1/images/generations/async/{task_id}"

FieldType = Literal["string", "integer", "boolean"]


@dataclass(frozen=True)
class Field:
    """One create-task field and the rule it must satisfy."""

    name: str
    type: FieldType
    label: str
    description: str
    required: bool = False
    #: The value this package sends when the user sets nothing (the seed's example body).
    default: Any = None
    #: The default the API documents, where it documents one.
    api_default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None
    #: Shown as a multi-line text box.
    multiline: bool = False
    #: Left out of the body when blank (sending "" says nothing the API needs to hear).
    omit_if_blank: bool = False

    def allowed(self) -> str:
        """Plain words for what this field accepts."""
        if self.enum is not None:
            return "one of " + ", ".join(json.dumps(v) for v in self.enum)
        if self.minimum is not None and self.maximum is not None:
            return f"an integer in range {self.minimum}..{self.maximum}"
        if self.type == "boolean":
            return "true or false"
        if self.required:
            return "non-empty text"
        return "text"

    def validate(self, value: Any) -> Any:
        """Return ``value`` in its canonical form or raise :class:`ValidationError`."""
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
                raise ValidationError(
                    self.name, value, f"must be an integer in range {self._range()}"
                ) from None
            assert self.minimum is not None
            assert self.maximum is not None
            if not self.minimum <= number <= self.maximum:
                raise ValidationError(self.name, number, f"is out of range {self._range()}")
            return number
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
        return value

    def _range(self) -> str:
        return f"{self.minimum}..{self.maximum}"

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
            "allowed": self.allowed(),
        }

    def to_json_schema(self) -> dict[str, Any]:
        """The field as a JSON Schema property (OpenAPI 3.1 dialect)."""
        prop: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum is not None:
            prop["enum"] = list(self.enum)
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        if self.api_default is not None:
            prop["default"] = self.api_default
        if self.required and self.type == "string" and self.enum is None:
            # Not in the reference page, but the API cannot draw an empty prompt.
            prop["minLength"] = 1
            prop["pattern"] = r"\S"
        return prop


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
    return {
        f.name: values[f.name]
        for f in FIELDS
        if not (f.omit_if_blank and not str(values[f.name]).strip())
    }


def dump_body(body: Mapping[str, Any]) -> str:
    """Body -> the bytes sent, as text. Two-space indent: the same text JSON.stringify(b, null, 2)
    writes, so the browser's preview and the HTTP body are equal byte for byte."""
    return json.dumps(body, indent=2, ensure_ascii=False)


def schema_json() -> dict[str, Any]:
    """The whole parameter schema as plain JSON (what the front end builds its controls from)."""
    return {"model": MODEL_ID, "fields": [f.to_json() for f in FIELDS]}


def request_json_schema() -> dict[str, Any]:
    """JSON Schema of the create-task body."""
    return {
        "type": "object",
        "required": list(REQUIRED_FIELDS),
        "properties": {f.name: f.to_json_schema() for f in FIELDS},
        "additionalProperties": False,
    }


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
