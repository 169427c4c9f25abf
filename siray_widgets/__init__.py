"""siray-widgets: the Siray.ai niji 7 image API as a Jupyter widget, with an offline sandbox.

Names are imported lazily so that ``import siray_widgets`` stays cheap (httpx, anywidget
and Pillow load only when first used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ImageRequest": "schema",
    "ModelRequest": "schema",
    "ModelSchema": "schema",
    "FIELDS": "schema",
    "MODEL_ID": "schema",
    "schema_json": "schema",
    "openapi": "schema",
    "UnsupportedModelError": "schema",
    "request_for": "registry",
    "estimate_cost": "registry",
    "format_money": "registry",
    "RegistryError": "registry",
    "UnknownModelError": "registry",
    "parse_prompt": "suffix",
    "render_suffix": "suffix",
    "Task": "task",
    "TaskStatus": "task",
    "AsyncSirayClient": "client",
    "SirayClient": "client",
    "PollSchedule": "client",
    "ImagineWidget": "widget",
    "SirayError": "errors",
    "ValidationError": "errors",
    "SuffixError": "errors",
    "APIError": "errors",
    "BadRequestError": "errors",
    "AuthenticationError": "errors",
    "PaymentRequiredError": "errors",
    "ForbiddenError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
    "UnexpectedResponseError": "errors",
    "TransportError": "errors",
    "TaskFailedError": "errors",
    "WaitTimeoutError": "errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siray_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .client import AsyncSirayClient, PollSchedule, SirayClient
    from .errors import (
        APIError,
        AuthenticationError,
        BadRequestError,
        ForbiddenError,
        NotFoundError,
        PaymentRequiredError,
        RateLimitError,
        ServerError,
        SirayError,
        SuffixError,
        TaskFailedError,
        TransportError,
        UnexpectedResponseError,
        ValidationError,
        WaitTimeoutError,
    )
    from .registry import (
        RegistryError,
        UnknownModelError,
        estimate_cost,
        format_money,
        request_for,
    )
    from .schema import (
        FIELDS,
        MODEL_ID,
        ImageRequest,
        ModelRequest,
        ModelSchema,
        UnsupportedModelError,
        openapi,
        schema_json,
    )
    from .suffix import parse_prompt, render_suffix
    from .task import Task, TaskStatus
    from .widget import ImagineWidget
