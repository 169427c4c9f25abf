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
    "parse_prompts": "suffix",
    "render_suffix": "suffix",
    "expand_permutations": "permutations",
    "SweepDefinition": "sweep",
    "SweepError": "sweep",
    "define_sweep": "sweep",
    "batch_sweep": "sweep",
    "SweepRun": "sweep.runner",
    "ConfirmationRequired": "sweep.plan",
    "run_sweep": "sweep.runner",
    "run_sweep_sync": "sweep.runner",
    "start_sweep": "sweep.runner",
    "read_contact_sheet": "sweep.contact_sheet",
    "SessionBudget": "session",
    "BudgetExceededError": "session",
    "session_budget": "session",
    "Preset": "presets",
    "PresetLibrary": "presets",
    "apply_presets": "presets",
    "preview_presets": "presets",
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
    "History": "history",
    "read_image_params": "metadata",
    "WorkshopError": "errors",
    "QuotaExceededError": "errors",
    "ParticipantPausedError": "errors",
    "TokenExpiredError": "errors",
    "Quota": "quota",
}

#: Clients imported from the package record each ``generate()`` in the run history: the
#: client knows nothing of the store (it only calls the hooks it is given), so the wiring
#: happens here, at the top. ``SIRAY_WIDGETS_HISTORY=0`` or ``hooks=False`` turns it off.
_RECORDED_CLIENTS = frozenset({"SirayClient", "AsyncSirayClient"})

#: Submodules reachable as attributes (``siray_widgets.session.session_budget()``).
_MODULES = frozenset({"session", "registry"})

__all__ = [*_EXPORTS, *sorted(_MODULES), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siray_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    if name in _RECORDED_CLIENTS:
        _record_client_runs()
    globals()[name] = value
    return value


def _record_client_runs() -> None:
    """Make the run store's recorder the client's default hooks (once; cheap: the store
    opens on the first run)."""
    from . import client
    from .store.hooks import RecordingHooks

    if client.default_hooks is None:
        client.default_hooks = RecordingHooks(origin="script")


def __dir__() -> list[str]:
    return sorted(__all__)


def _ledger_price(model: str) -> float | None:
    """The price the spend ledger records for one task of ``model``: the model registry's
    (the one this process loaded, else the cached copy or the snapshot; never the network)."""
    from . import registry

    try:
        cost = registry.estimate_cost(model, 1)
    except (registry.UnknownModelError, ValueError):  # ValueError: a bad SIRAY_GATEWAY_URL
        return None
    return None if cost is None else float(cost)


def _wire_ledger_prices() -> None:
    """Every run store this process opens prices its ledger from the registry (wired here, at
    the top: the store knows nothing of the registry). Cheap: the store's package is lazy."""
    from . import store

    if store.default_price_lookup is None:
        store.default_price_lookup = _ledger_price


_wire_ledger_prices()


if TYPE_CHECKING:
    from .client import AsyncSirayClient, PollSchedule, SirayClient
    from .errors import (
        APIError,
        AuthenticationError,
        BadRequestError,
        ForbiddenError,
        NotFoundError,
        ParticipantPausedError,
        PaymentRequiredError,
        QuotaExceededError,
        RateLimitError,
        ServerError,
        SirayError,
        SuffixError,
        TaskFailedError,
        TokenExpiredError,
        TransportError,
        UnexpectedResponseError,
        ValidationError,
        WaitTimeoutError,
        WorkshopError,
    )
    from .history import History
    from .metadata import read_image_params
    from .permutations import expand_permutations
    from .presets import Preset, PresetLibrary, apply_presets, preview_presets
    from .quota import Quota
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
    from .session import BudgetExceededError, SessionBudget, session_budget
    from .suffix import parse_prompt, parse_prompts, render_suffix
    from .sweep import SweepDefinition, SweepError, batch_sweep, define_sweep
    from .sweep.contact_sheet import read_contact_sheet
    from .sweep.plan import ConfirmationRequired
    from .sweep.runner import (
        SweepRun,
        run_sweep,
        run_sweep_sync,
        start_sweep,
    )
    from .task import Task, TaskStatus
    from .widget import ImagineWidget
