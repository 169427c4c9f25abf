"""``siray-widgets models`` and the model options of ``generate`` (``--model``, ``--param``).

``models`` lists the image models of Siray's registry with their price per task and whether
this package supports them (niji 7 always; other text-to-image models from their published
schema; models that need image inputs not yet). ``--json`` prints the same as JSON.

``generate --model NAME`` sends a request for another model, built from its schema;
``--param name=value`` sets any field of the model (typed from the schema: integers, numbers,
``true``/``false``), including the ones niji 7 does not have.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli import EXIT_OK, EXIT_USAGE, CommandError, Subparsers

if TYPE_CHECKING:
    from .registry import ModelEntry, Registry
    from .schema import AnyRequest


# --- models --------------------------------------------------------------------------------


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """``models [--json] [--all] [--refresh | --offline] [--gateway URL]``."""
    parser = subparsers.add_parser(
        "models",
        help="list Siray's image models with their prices and support status",
        description=(
            "List the image models of Siray's model registry: price per task and whether "
            "siray-widgets can send requests for them. The registry is cached for a day in the "
            "data folder (SIRAY_WIDGETS_HOME); offline, the cache or the snapshot shipped with "
            "the package answers. SIRAY_GATEWAY_URL reads it from another server (a sandbox "
            "serves the same endpoint)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--all", action="store_true", help="every model of the registry, not only image models"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--refresh", action="store_true", help="ask the gateway even if the cache is fresh"
    )
    when.add_argument("--offline", action="store_true", help="never ask the gateway")
    parser.add_argument(
        "--gateway", metavar="URL", help="registry server (default: SIRAY_GATEWAY_URL or Siray's)"
    )
    parser.set_defaults(run=run_models)


def _load(gateway: str | None, *, refresh: bool = False, offline: bool = False) -> Registry:
    from . import registry

    try:
        return registry.load(gateway, refresh=refresh, offline=offline)
    except ValueError as exc:  # a gateway URL that cannot work
        raise CommandError(str(exc), EXIT_USAGE) from None


def run_models(args: argparse.Namespace) -> int:
    found = _load(args.gateway, refresh=args.refresh, offline=args.offline)
    from .schema import MODEL_ID

    entries = list(found) if args.all else found.image_models()
    if args.all and MODEL_ID not in found.names:
        entries.append(found.get(MODEL_ID))  # niji 7 works whatever the registry says
    if args.json:
        document = {
            "source": found.source,
            "gateway": found.gateway,
            "fetched_at": found.fetched_at,
            "error": found.error,
            "description": found.describe(),
            "problems": list(found.problems),
            "models": [entry.to_json() for entry in entries],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)
        return EXIT_OK
    print(found.describe(), file=sys.stderr, flush=True)
    for problem in found.problems:
        print(f"skipped: {problem}", file=sys.stderr, flush=True)
    print(table(entries), flush=True)
    return EXIT_OK


def table(entries: list[ModelEntry]) -> str:
    """Plain aligned columns (greppable, no markup): model, tag, price, status."""
    rows = [("MODEL", "TAG", "PRICE", "STATUS")]
    for entry in entries:
        status = entry.support().text()
        if entry.builtin:
            status += " (built in: hand-tuned controls, Midjourney suffixes)"
        rows.append((entry.model_name, entry.tag or "-", entry.price_text(), status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]))
    return "\n".join(lines)


# --- generate --model / --param ------------------------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--param`` for ``generate``."""
    from .schema import MODEL_ID

    group = parser.add_argument_group("other models")
    group.add_argument(
        "--model",
        metavar="NAME",
        help=(
            f"a text-to-image model of Siray's registry (default {MODEL_ID}); its fields come "
            "from its published schema (see: siray-widgets models). Suffixes are niji 7 only"
        ),
    )
    group.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "set any field of the model, typed from its schema (repeat for several), "
            "e.g. --param num_inference_steps=30 --param enable_safety_checker=false"
        ),
    )


def wants_model_options(args: argparse.Namespace) -> bool:
    return getattr(args, "model", None) is not None or bool(getattr(args, "param", None))


def build_model_request(args: argparse.Namespace, overrides: dict[str, Any]) -> AnyRequest:
    """The request for ``--model`` (niji 7 by default): the prompt (read as a Midjourney
    suffix for niji 7 only), the field flags, then ``--param`` on top."""
    from . import registry
    from .errors import SuffixError, ValidationError
    from .schema import MODEL_ID, NIJI7, UnsupportedModelError

    model: str = args.model or MODEL_ID
    params = _split_params(args.param)
    try:
        if model == MODEL_ID:
            spec = NIJI7
            from .suffix import parse_prompt

            request: AnyRequest = parse_prompt(args.prompt)
        else:
            spec = _model_schema(model)
            if "prompt" not in spec:
                raise CommandError(
                    f"model {model} has no prompt field; its fields: {', '.join(spec.field_names)}",
                    EXIT_USAGE,
                )
            request = spec.request(args.prompt)
        for name in list(overrides) + [name for name, _ in params]:
            if name not in spec:
                raise CommandError(
                    f"model {model} has no field {name!r}; its fields: "
                    + ", ".join(spec.field_names),
                    EXIT_USAGE,
                )
        typed = {name: spec.field(name).from_text(text) for name, text in params}
        changes = {**overrides, **typed}
        return request.replace(**changes) if changes else request
    except (ValidationError, SuffixError, UnsupportedModelError, registry.UnknownModelError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _model_schema(model: str) -> Any:
    """The schema of ``model``, asking the gateway again if a cached registry lacks it."""
    from .registry import UnknownModelError

    found = _load(None)
    try:
        return found.get(model).model_schema()
    except UnknownModelError as exc:
        if found.source in ("cache", "stale cache"):
            fresh = _load(None, refresh=True)
            if fresh.source == "network":
                return fresh.get(model).model_schema()
        raise CommandError(str(exc), EXIT_USAGE) from None


def _split_params(items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--param {item!r} must look like NAME=VALUE", EXIT_USAGE)
        pairs.append((name.strip(), value))
    return pairs


def cost_line(request: AnyRequest) -> str:
    """``estimated cost: $0.05 (1 task x $0.05)``, from the registry this process knows."""
    from . import registry

    try:
        text = registry.cost_text(request.model, 1)
    except (registry.UnknownModelError, ValueError):  # ValueError: a bad SIRAY_GATEWAY_URL
        text = "price unknown"
    return f"estimated cost: {text}"


def serve_registry_file(path: Path) -> None:
    """``sandbox --registry FILE``: check the file now, then make the sandbox serve it."""
    from .registry import RegistryError, load_file
    from .sandbox.models import REGISTRY_ENV

    try:
        load_file(path)
    except RegistryError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    os.environ[REGISTRY_ENV] = str(path.resolve())
