"""The widget's model: which fields it has (from the registry), their trait names, the price
of a run, and the workshop quota line.

Kept apart from :mod:`siray_widgets.widget`: niji 7 needs none of this (its fields are the
hand-tuned table), and the registry loads only when another model is asked for.

Which registry answers, in order (the first that lists the model):

1. while the widget talks to the offline sandbox: the registry file the sandbox serves
   (``SIRAY_SANDBOX_REGISTRY``), so that a widget and its sandbox agree on every model;
2. the registry this process knows (:func:`siray_widgets.registry.current`: loaded, cached or
   the snapshot);
3. the gateway, asked once more (a model published since the cache was written).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .schema import MODEL_ID, NIJI7, ModelSchema

if TYPE_CHECKING:
    from .quota import Quota
    from .registry import Registry

#: Names a field may not take as a trait (set on the instance, not the class).
_INSTANCE_NAMES = frozenset({"poll"})


def sandbox_registry() -> Registry | None:
    """The registry file the sandbox serves (``SIRAY_SANDBOX_REGISTRY``), or None."""
    from .sandbox.models import REGISTRY_ENV

    path = os.environ.get(REGISTRY_ENV, "").strip()
    if not path:
        return None
    return _registry_file(path, _mtime(path))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


_files: dict[tuple[str, float], Registry] = {}


def _registry_file(path: str, mtime: float) -> Registry:
    from .registry import load_file

    found = _files.get((path, mtime))
    if found is None:
        found = _files[(path, mtime)] = load_file(path)  # RegistryError names the file
    return found


def _registries(sandbox: bool) -> list[Registry]:
    from . import registry

    local = [registry.current()]
    served = sandbox_registry()
    if served is not None:
        local = [served, *local] if sandbox else [*local, served]
    return local


def find_model(model: str, *, sandbox: bool) -> ModelSchema:
    """The fields of ``model``; raises ``UnknownModelError`` (naming close names) or
    ``UnsupportedModelError`` (saying why)."""
    if model == MODEL_ID:
        return NIJI7
    from . import registry

    searched = _registries(sandbox)
    for found in searched:
        if model in found.names:
            return found.get(model).model_schema()
    fresh = registry.load(refresh=True)  # bounded by the registry's own timeout
    if model in fresh.names:
        return fresh.get(model).model_schema()
    names = sorted({name for found in [*searched, fresh] for name in found.names})
    raise registry.UnknownModelError(model, names, fresh.describe())


def unit_price(model: str, *, sandbox: bool) -> Decimal | None:
    """The registry's price of one task of ``model`` (None: unknown). Never the network."""
    for found in _registries(sandbox):
        if model in found.names:
            return found.get(model).unit_price
    return None


def price_texts(model: str, *, sandbox: bool) -> dict[str, Any]:
    """The ``price`` trait: the next run's estimated cost and this session's line."""
    from .registry import format_money
    from .session import session_budget

    try:
        unit = unit_price(model, sandbox=sandbox)
    except Exception:  # a registry file gone bad: a price is not worth a broken widget
        unit = None
    run = "price unknown" if unit is None else f"{format_money(unit)} per run"
    if sandbox:
        run += " on Siray (free in the sandbox)" if unit is not None else " (free in the sandbox)"
    return {
        "run": run,
        "unit": None if unit is None else str(unit),
        "session": session_budget().describe(),
    }


def trait_names(spec: ModelSchema, taken: frozenset[str]) -> dict[str, str]:
    """Field name -> trait name: the field's own name, unless the widget already uses it
    (``layout``, ``status``, ``generate``...); then with ``_`` added until it is free."""
    names: dict[str, str] = {}
    used = set(spec.field_names)
    for name in spec.field_names:
        trait = name
        while trait in taken or trait in _INSTANCE_NAMES or (trait != name and trait in used):
            trait += "_"
        used.add(trait)
        names[name] = trait
    return names


def quota_state(quota: Quota | None, problem: str = "") -> dict[str, Any]:
    """The ``quota`` trait: {} away from a workshop proxy, else the line the header shows.

    ``problem`` is what the proxy last refused for (``spent``, ``paused``, ``expired``).
    """
    if quota is None and not problem:
        return {}
    text = quota.describe() if quota is not None else "workshop"
    state = problem or "ok"
    if quota is not None and not problem:
        if quota.paused:
            state = "paused"
        elif quota.remaining == 0:
            state = "spent"
        elif quota.remaining <= max(1, quota.limit // 10):
            state = "low"
    if state == "expired":
        text = "workshop: token expired"
    elif state == "paused" and "paused" not in text:
        text += " (paused by the instructor)"
    out: dict[str, Any] = {"text": text, "state": state}
    if quota is not None:
        out.update(remaining=quota.remaining, limit=quota.limit)
    return out
