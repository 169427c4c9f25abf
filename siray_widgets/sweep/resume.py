"""Resuming: what earlier runs already did for a sweep's cells, and the sweep saved in the store.

Every cell of a sweep is a run in the run store, recorded with the cell's key (the hash of
the request it sends). Running a sweep again (after a kernel restart, after adding values,
after a Retry) looks its cells' keys up there:

- a run that succeeded is *reused* (nothing is sent);
- a run that has a task id but did not finish (the process ended, following it stopped) is
  *followed* again (its task is asked for; nothing is paid twice);
- anything else (no run, a failure, a refusal, a run that never got a task id) is *sent*.

Keys identify requests, not sweeps, so a sweep with more values reuses the cells it shares
with the earlier one. The sweep itself (definition and its cells' keys) is kept as a
document (kind ``"sweep"``), and the shared seed of each *family* of sweeps (same base
request, same kinds of axis, any values) as a document of kind ``"sweep-family"``: a sweep
defined again without an explicit seed takes the family's seed, which is what makes "the same
sweep again" the same requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from .definition import Cell, SweepDefinition

if TYPE_CHECKING:
    from ..store import Run, RunStore

logger = logging.getLogger("siray_widgets.sweep")

SWEEP_DOCUMENT: Final = "sweep"
FAMILY_DOCUMENT: Final = "sweep-family"
#: Run states whose task may still be followed (a task id is known, no final answer kept).
_FOLLOWABLE: Final = frozenset(
    {"starting", "running", "stalled", "interrupted", "cancelled", "error"}
)

Action = Literal["reuse", "follow", "send"]


@dataclass(frozen=True)
class Prior:
    """What an earlier run did for one cell."""

    key: str
    action: Action
    state: str = ""
    task_id: str | None = None
    status: str = ""
    progress: int = 0
    outputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    thumbs: tuple[str, ...] = ()
    run_id: int | None = None
    seed_used: int | None = None
    reason: str = ""

    @classmethod
    def of_run(cls, key: str, run: Run) -> Prior:
        action: Action = "send"
        if run.state == "success" and run.outputs:
            action = "reuse"
        elif run.task_id and run.state in _FOLLOWABLE:
            action = "follow"
        return cls(
            key=key,
            action=action,
            state=run.state,
            task_id=run.task_id,
            status=run.status,
            progress=run.progress,
            outputs=tuple(run.outputs),
            files=tuple(i.path for i in run.images if i.path),
            thumbs=tuple(i.thumb for i in run.images if i.thumb),
            run_id=run.id,
            seed_used=run.seed_used,
            reason=run.fail_reason or run.error,
        )


def family_key(definition: SweepDefinition) -> str:
    """The hash of what makes sweeps "the same sweep" for resuming: the base request without
    its seed, the presets, and each slot's kind of axis (not its values)."""
    data = definition.to_json()
    base = {k: v for k, v in data["base"].items() if k != "seed"}
    axes = {
        slot: {"kind": axis.get("kind"), "field": axis.get("field")}
        for slot, axis in data["axes"].items()
    }
    if any(a.kind == "replicate" for _, a in definition.axes):
        axes["replicate"] = {"kind": "replicate", "field": None}
    text = json.dumps(
        {"base": base, "presets": data["presets"], "axes": axes},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sweep_id(definition: SweepDefinition) -> str:
    """The id a sweep's runs are recorded under: ``sweep-`` and 16 hex digits of its key."""
    return "sweep-" + definition.key[:16]


def family_seed(store: RunStore, definition: SweepDefinition) -> int | None:
    """The shared seed the last sweep of ``definition``'s family used (None: none known)."""
    try:
        found = store.get_document(FAMILY_DOCUMENT, family_key(definition))
    except Exception as exc:  # a store that cannot be read: no resume, never a failure
        logger.warning("sweep: cannot read the run store (%s); nothing is resumed", exc)
        return None
    seed = found.get("seed") if isinstance(found, Mapping) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def remember(
    store: RunStore,
    definition: SweepDefinition,
    cells: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Keep the sweep (definition and, if given, its cells' states) and its family's seed."""
    now = time.time()
    ident = sweep_id(definition)
    store.put_document(
        FAMILY_DOCUMENT,
        family_key(definition),
        {"seed": definition.seed, "sweep_id": ident, "updated_at": now},
    )
    old = store.get_document(SWEEP_DOCUMENT, ident)
    document: dict[str, Any] = {
        "definition": definition.to_json(),
        "created_at": old.get("created_at", now) if isinstance(old, Mapping) else now,
        "updated_at": now,
        "cells": dict(cells) if cells is not None else _old_cells(old),
    }
    store.put_document(SWEEP_DOCUMENT, ident, document)


def _old_cells(old: Any) -> dict[str, Any]:
    if isinstance(old, Mapping) and isinstance(old.get("cells"), Mapping):
        return dict(old["cells"])
    return {}


def find_priors(store: RunStore, cells: Iterable[Cell]) -> dict[str, Prior]:
    """What earlier runs did for ``cells``, by cell key (cells never run are left out).

    Among several runs of one key the best is kept: a success, else a followable task (the
    newest), else the newest.
    """
    from ..store import RunQuery

    wanted = {cell.key: cell for cell in cells}
    if not wanted:
        return {}
    seeds = sorted({cell.request.seed for cell in wanted.values()})
    # The seed has a column of its own: this narrows the search to this sweep's seeds.
    query = RunQuery(origin="sweep", fields={"seed": seeds}, order="newest")
    try:
        runs = store.runs(query)
    except Exception as exc:
        logger.warning("sweep: cannot read the run store (%s); nothing is resumed", exc)
        return {}
    found: dict[str, Prior] = {}
    rank = {"reuse": 2, "follow": 1, "send": 0}
    for run in runs:
        key = run.cell_key
        if key is None or key not in wanted:
            continue
        prior = Prior.of_run(key, run)
        best = found.get(key)
        if best is None or rank[prior.action] > rank[best.action]:
            found[key] = prior
    return found


def with_family_seed(
    definition: SweepDefinition, store: RunStore | None
) -> tuple[SweepDefinition, bool]:
    """``definition`` with the shared seed of the last sweep of its family, if there was one
    (and whether it was taken): for a sweep defined without an explicit seed, so that
    defining it again (after a restart, with more values) makes the same requests."""
    if store is None or definition.seed == -1:
        return definition, False
    seed = family_seed(store, definition)
    if seed is None or seed == definition.seed:
        return definition, seed is not None
    import dataclasses

    return dataclasses.replace(definition, base={**definition.base, "seed": seed}), True


def same_kind(prior: Prior, local: bool | None) -> bool:
    """Whether a finished result came from the same kind of server as a sweep's: images on
    this machine (the sandbox's placeholders) for a sweep ``local`` to this machine, images
    elsewhere for one that is not (None: unknown, anything goes)."""
    from .connection import url_is_local

    if prior.action != "reuse" or local is None or not prior.outputs:
        return True
    return all(url_is_local(url) for url in prior.outputs) == local
