"""A sweep definition: a base request, up to three axes and presets, expanded into cells.

The definition is pure data: nothing here sends a request. It answers what a user must see
before anything is spent (the cells, the task, image and cost counts) and what a runner needs
to resume (a stable key per cell). It serializes to and from JSON, so it can be saved in the
run store and in a contact sheet's PNG metadata.

How a cell's request is built (later steps override earlier ones)::

    base (its seed is the sweep's shared seed)
    -> the sweep's presets' fields
    -> the prompt axis (a variant's prompt and the fields its suffix sets)
    -> the preset axis' fields -> field axes
    -> prompt templates (the sweep's presets, then the preset axis')
    -> prompt S/R -> replicate (seed + n - 1)

An axis may not override what another axis varies (``X stylize`` with presets that vary
stylize is refused, naming both); a field every variant of an axis sets alike acts like part
of the base. Cells come in a stable order: page (Z) by page, row (Y) by row, column (X)
by column.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..errors import SuffixError, ValidationError
from ..permutations import MAX_PERMUTATIONS, expand_permutations
from ..presets import Preset, PresetError, PresetLibrary, resolve_presets
from ..schema import FIELD_NAMES, FIELDS_BY_NAME, ImageRequest, defaults
from ..suffix import split_suffix
from .axes import SLOTS, Axis, AxisInput, as_axis, prompt_axis, replicate_axis
from .errors import SweepError

#: Images one task makes (Midjourney's grid of four).
IMAGES_PER_TASK = 4
#: The most cells one sweep may have.
MAX_CELLS = 10_000
FORMAT = "siray-sweep"
FORMAT_VERSION = 1
#: Largest serialized definition :meth:`SweepDefinition.from_json` reads.
MAX_JSON_CHARS = 16 * 1024 * 1024
# Midjourney's own seeds are 32-bit; a drawn shared seed stays in that range.
_DRAWN_SEED_BOUND = 2**32

# The order axes are applied in, by kind (slot order breaks ties).
_KIND_ORDER = {"prompt": 0, "preset": 1, "field": 2, "prompt_sr": 3, "replicate": 4}


def request_key(request: ImageRequest, replicate: int = 1) -> str:
    """A stable hash of what ``request`` sends (hex SHA-256 of its canonical JSON body).

    Equal bodies give equal keys, whatever the field order or the sweep they come from.
    Replicates after the first are told apart by their number (with a random seed their
    bodies are equal).
    """
    body: Any = request.to_body()
    if replicate != 1:
        body = {"body": body, "replicate": replicate}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SweepCounts:
    """What a sweep would send and make, and what it would cost where a price is known."""

    tasks: int
    images: int
    #: Price of one task (one create request), as given; None when unknown.
    unit_price: Decimal | None = None
    #: ``tasks * unit_price``; None when the price is unknown.
    cost: Decimal | None = None

    def __str__(self) -> str:
        text = f"{self.tasks:,} task{'s' * (self.tasks != 1)}, {self.images:,} images"
        if self.cost is not None:
            text += f", estimated cost {self.cost_text()}"
        return text

    def cost_text(self) -> str:
        """``$0.50``, or ``price unknown`` (the registry's money format)."""
        from ..registry import format_money

        return format_money(self.cost)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; money as decimal text (``"0.05"``), as the registry writes prices."""
        return {
            "tasks": self.tasks,
            "images": self.images,
            "unit_price": None if self.unit_price is None else str(self.unit_price),
            "cost": None if self.cost is None else str(self.cost),
            "cost_text": self.cost_text(),
        }


@dataclass(frozen=True)
class Coordinate:
    """Where a cell sits on one axis."""

    slot: str
    #: The axis' name: ``"stylize"``, ``"prompt"``, ``"preset"``, ...
    axis: str
    index: int
    label: str

    def __str__(self) -> str:
        return f"{self.slot.upper()} {self.axis}={self.label}"


@dataclass(frozen=True)
class Cell:
    """One request of a sweep, with its place in the grid and its resume key."""

    #: Position in run order (0-based).
    index: int
    coordinates: tuple[Coordinate, ...]
    #: The request to send. Treat it as read-only.
    request: ImageRequest
    #: :func:`request_key` of the request (and replicate): the same cell in any later run of
    #: the same sweep, or of a sweep with more values, has the same key.
    key: str
    replicate: int = 1

    def __hash__(self) -> int:
        return hash((self.index, self.key))

    def at(self, slot: str) -> Coordinate | None:
        for coordinate in self.coordinates:
            if coordinate.slot == slot:
                return coordinate
        return None

    @property
    def x(self) -> int | None:
        c = self.at("x")
        return None if c is None else c.index

    @property
    def y(self) -> int | None:
        c = self.at("y")
        return None if c is None else c.index

    @property
    def z(self) -> int | None:
        c = self.at("z")
        return None if c is None else c.index

    def describe(self) -> str:
        """``"X stylize=250 · Y chaos=50"`` (``"the only cell"`` without axes)."""
        return " · ".join(str(c) for c in self.coordinates) or "the only cell"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "replicate": self.replicate,
            "coordinates": {
                c.slot: {"axis": c.axis, "index": c.index, "label": c.label}
                for c in self.coordinates
            },
            "body": self.request.to_body(),
        }


@dataclass(frozen=True)
class SweepDefinition:
    """A base request, up to three axes (X columns, Y rows, Z pages) and stacked presets.

    Validated on construction: every value against the schema, axes that would override one
    another, at most :data:`MAX_CELLS` cells, a prompt somewhere. Build one with
    :func:`define_sweep` (or :func:`~siray_widgets.sweep.batch_sweep`).
    """

    #: Every request field; the prompt may be blank when a prompt axis supplies it. The seed
    #: is the sweep's shared seed (-1: each cell random).
    base: Mapping[str, Any]
    x: Axis | None = None
    y: Axis | None = None
    z: Axis | None = None
    #: Applied to every cell, in order, under the axes.
    presets: tuple[Preset, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", MappingProxyType(_check_base(self.base)))
        presets = tuple(self.presets)
        for preset in presets:
            if not isinstance(preset, Preset):
                raise SweepError("presets", preset, "must be a Preset")
        object.__setattr__(self, "presets", presets)
        for slot in SLOTS:
            axis = getattr(self, slot)
            if axis is not None and not isinstance(axis, Axis):
                raise SweepError(f"{slot.upper()} axis", axis, "must be an Axis (or None)")
        _check_conflicts(self.axes)
        if not str(self.base["prompt"]).strip() and not any(
            a.kind == "prompt" for _, a in self.axes
        ):
            raise SweepError("prompt", None, "is empty: a sweep needs a prompt or a prompt axis")
        if self.task_count > MAX_CELLS:
            sizes = " x ".join(f"{len(a)} ({a.label(s)})" for s, a in self.axes)
            raise SweepError(
                "sweep",
                None,
                f"has {self.task_count:,} cells ({sizes}); at most {MAX_CELLS:,} are allowed",
            )

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> str:
        """A stable hash of the whole definition (hex SHA-256 of its canonical JSON)."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # -- shape and counts --

    @property
    def axes(self) -> tuple[tuple[str, Axis], ...]:
        """``(slot, axis)`` for each axis present, in X, Y, Z order."""
        return tuple((s, a) for s in SLOTS if (a := getattr(self, s)) is not None)

    @property
    def seed(self) -> int:
        """The shared seed (-1: every cell gets a random one)."""
        return int(self.base["seed"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Columns, rows, pages (1 for a missing axis)."""
        return (
            len(self.x) if self.x else 1,
            len(self.y) if self.y else 1,
            len(self.z) if self.z else 1,
        )

    @property
    def task_count(self) -> int:
        return math.prod(self.shape)

    def counts(self, unit_price: Decimal | float | None = None) -> SweepCounts:
        """Tasks, images (4 a task) and, with ``unit_price`` (one task's price, e.g. the
        registry's ``ModelEntry.unit_price``), the estimated cost."""
        tasks = self.task_count
        if unit_price is None:
            return SweepCounts(tasks, tasks * IMAGES_PER_TASK)
        price = _price(unit_price)
        return SweepCounts(tasks, tasks * IMAGES_PER_TASK, price, price * tasks)

    # -- cells --

    def cells(self) -> list[Cell]:
        """Every cell in run order, validated; two cells sending the same request are refused."""
        cells = list(self.iter_cells())
        seen: dict[str, Cell] = {}
        for cell in cells:
            other = seen.get(cell.key)
            if other is not None:
                raise SweepError(
                    "sweep",
                    None,
                    f"cells {other.describe()} and {cell.describe()} would send the same "
                    "request (and pay for it twice); remove or change one of the values",
                )
            seen[cell.key] = cell
        return cells

    def iter_cells(self) -> Iterator[Cell]:
        """Cells one at a time, in run order: page by page, row by row, column by column."""
        axes = self.axes
        outer_first = axes[::-1]
        for index, combo in enumerate(itertools.product(*(range(len(a)) for _, a in outer_first))):
            position = dict(zip((s for s, _ in outer_first), combo, strict=True))
            yield self._cell(index, position)

    def cell(self, x: int = 0, y: int = 0, z: int = 0) -> Cell:
        """The cell at column ``x``, row ``y``, page ``z``."""
        columns, rows, pages = self.shape
        for name, value, size in (("x", x, columns), ("y", y, rows), ("z", z, pages)):
            if not 0 <= value < size:
                raise SweepError(f"{name.upper()} axis", value, f"is outside 0..{size - 1}")
        position = {s: {"x": x, "y": y, "z": z}[s] for s, _ in self.axes}
        return self._cell(x + columns * (y + rows * z), position)

    def _cell(self, index: int, position: Mapping[str, int]) -> Cell:
        chosen = sorted(
            ((slot, axis, position[slot]) for slot, axis in self.axes),
            key=lambda item: (_KIND_ORDER[item[1].kind], SLOTS.index(item[0])),
        )
        coordinates = tuple(
            Coordinate(slot, axis.name, position[slot], axis.labels[position[slot]])
            for slot, axis in self.axes
        )
        describe = " · ".join(str(c) for c in coordinates) or "the only cell"
        values = dict(self.base)
        for preset in self.presets:
            values = preset.set_fields(values)
        replicate = 1
        for _, axis, i in chosen:
            value = axis.values[i]
            if axis.kind == "prompt":
                values.update(value)
            elif axis.kind == "preset":
                values = value.set_fields(values)
            elif axis.kind == "field":
                assert axis.field is not None
                values[axis.field] = value
        for preset in self.presets:
            values = preset.wrap(values)
        for slot, axis, i in chosen:
            if axis.kind == "preset":
                values = axis.values[i].wrap(values)
            elif axis.kind == "prompt_sr":
                values = _search_replace(values, axis.values[0], axis.values[i], slot, describe)
            elif axis.kind == "replicate":
                replicate = axis.values[i]
                values["seed"] = _replicate_seed(values["seed"], replicate)
        try:
            request = ImageRequest(**values)
        except ValidationError as exc:
            raise SweepError(f"cell {describe}", None, str(exc)) from None
        return Cell(index, coordinates, request, request_key(request, replicate), replicate)

    # -- changing --

    def swap(self, a: str = "x", b: str = "y") -> SweepDefinition:
        """The same sweep with two axes swapped (cells keep their keys)."""
        for slot in (a, b):
            if slot not in SLOTS:
                raise SweepError("swap", slot, "is not an axis slot (x, y or z)")
        changes: dict[str, Any] = {a: getattr(self, b), b: getattr(self, a)}
        return dataclasses.replace(self, **changes)

    def with_axis(self, slot: str, axis: AxisInput) -> SweepDefinition:
        """The same sweep with the axis in ``slot`` replaced (None removes it)."""
        if slot not in SLOTS:
            raise SweepError("with_axis", slot, "is not an axis slot (x, y or z)")
        changes: dict[str, Any] = {slot: as_axis(axis, slot=slot)}
        return dataclasses.replace(self, **changes)

    # -- showing --

    def summary(self, unit_price: Decimal | float | None = None) -> dict[str, Any]:
        """Plain JSON for a header and the chips: seed, fixed fields, axes, counts."""
        varied: set[str] = set()
        for _, axis in self.axes:
            varied |= axis.sets | axis.wraps
        fixed = dict(self.base)
        for preset in self.presets:
            fixed = preset.apply_values(fixed)
        return {
            "seed": self.seed if self.seed != -1 else "random",
            "fixed": {n: fixed[n] for n in FIELD_NAMES if n not in varied and n != "seed"},
            "presets": [p.name for p in self.presets],
            "axes": [
                {
                    "slot": slot,
                    "kind": axis.kind,
                    "name": axis.name,
                    "labels": list(axis.labels),
                    "spec": axis.spec,
                }
                for slot, axis in self.axes
            ],
            **self.counts(unit_price).to_json(),
        }

    def __str__(self) -> str:
        lines = [
            f"sweep: {self.counts()}; seed "
            + (str(self.seed) if self.seed != -1 else "random per cell")
        ]
        for slot, axis in self.axes:
            shown = ", ".join(axis.labels[:8]) + (", …" if len(axis) > 8 else "")
            lines.append(f"  {slot.upper()} {axis.name} ({len(axis)}): {shown}")
        if self.presets:
            lines.append("  presets: " + ", ".join(p.name for p in self.presets))
        return "\n".join(lines)

    # -- JSON --

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for the run store and a contact sheet's metadata)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "base": dict(self.base),
            "presets": [p.to_json() for p in self.presets],
            "axes": {slot: axis.to_json() for slot, axis in self.axes},
        }

    def dumps(self) -> str:
        """:meth:`to_json` as compact text."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> SweepDefinition:
        """A definition from :meth:`to_json`'s output (or its text), validated again."""
        if isinstance(data, (str, bytes)):
            if len(data) > MAX_JSON_CHARS:
                raise SweepError("sweep", None, "definition is too large to read")
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise SweepError("sweep", None, f"definition is not JSON ({exc})") from None
        if not isinstance(data, Mapping):
            raise SweepError("sweep", None, "definition must be a JSON object")
        if data.get("format") != FORMAT:
            raise SweepError("sweep", data.get("format"), f'is not "{FORMAT}"')
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise SweepError("sweep", version, "is a definition version this package cannot read")
        base = data.get("base")
        if not isinstance(base, Mapping):
            raise SweepError("sweep base", None, "must be a JSON object of request fields")
        presets_data = data.get("presets", [])
        if not isinstance(presets_data, list):
            raise SweepError("sweep presets", None, "must be a list")
        try:
            presets = tuple(Preset.from_json(p) for p in presets_data)
        except PresetError as exc:
            raise SweepError("sweep presets", None, str(exc)) from None
        axes_data = data.get("axes", {})
        if not isinstance(axes_data, Mapping) or not set(axes_data) <= set(SLOTS):
            raise SweepError("sweep axes", None, "must be an object with keys x, y and z")
        axes = {slot: Axis.from_json(axes_data[slot], slot=slot) for slot in axes_data}
        return cls(base=base, presets=presets, **axes)


def define_sweep(
    prompt: str | ImageRequest | None = None,
    *,
    x: AxisInput = None,
    y: AxisInput = None,
    z: AxisInput = None,
    base: ImageRequest | Mapping[str, Any] | None = None,
    seed: int | str | None = None,
    replicates: int = 1,
    presets: Sequence[Preset | str] = (),
    library: PresetLibrary | None = None,
) -> SweepDefinition:
    """A sweep from what a user writes.

    - ``prompt``: text, which may end in a suffix and may be a permutation prompt (its
      variants become an axis in the first free slot), or an :class:`ImageRequest`.
    - ``x``, ``y``, ``z``: axes as ``("stylize", "0-1000 (+250)")``, ``"chaos=0, 50"`` or
      :class:`Axis` objects (see :mod:`siray_widgets.sweep.axes` for the kinds).
    - ``base``: the fields the prompt's suffix does not set (a request or a mapping).
    - ``seed``: None keeps a fixed seed from the base or the suffix, or draws one (shown in
      the header, so the sweep is repeatable); an int fixes it; ``"random"`` gives every cell
      a random seed.
    - ``replicates``: each request this many times with new seeds (an axis in a free slot).
    - ``presets``: applied to every cell, in order, under the axes (names are looked up in
      ``library``, by default the user's presets and the built-in ones).

    >>> sweep = define_sweep("a fox {in snow, at dusk} --ar 3:2", x=("stylize", "0-1000 [5]"))
    >>> sweep.counts().tasks
    10
    """
    values = _base_values(prompt, base)
    auto: list[Axis] = []
    if isinstance(prompt, str):
        try:
            expansions = expand_permutations(prompt, limit=MAX_PERMUTATIONS)
        except SuffixError as exc:
            raise SweepError("prompt", prompt, f"cannot be read ({exc})") from None
        if len(expansions) > 1:
            auto.append(dataclasses.replace(prompt_axis([prompt]), spec=prompt))
            values["prompt"] = ""
        else:
            try:
                text, fields = split_suffix(expansions[0].text)
            except SuffixError as exc:
                raise SweepError("prompt", prompt, f"cannot be read ({exc})") from None
            values.update(fields)
            values["prompt"] = text
    if isinstance(replicates, bool) or replicates != 1:
        repeated = replicate_axis(replicates)  # validates
        if len(repeated) > 1:
            auto.append(repeated)
    slots: dict[str, Axis | None] = {
        slot: as_axis(value, slot=slot, library=library)
        for slot, value in (("x", x), ("y", y), ("z", z))
    }
    for axis in auto:
        free = [s for s in SLOTS if slots[s] is None]
        if not free:
            raise SweepError(
                axis.label(),
                None,
                "needs an axis of its own, but X, Y and Z are all taken; free one of them",
            )
        slots[free[0]] = axis
    values["seed"] = _shared_seed(seed, values.get("seed", -1))
    try:
        resolved = tuple(resolve_presets(presets, library))
    except PresetError as exc:
        raise SweepError("presets", None, str(exc)) from None
    return SweepDefinition(base=values, presets=resolved, **slots)


# --- helpers ----------------------------------------------------------------------------------


def _base_values(
    prompt: str | ImageRequest | None, base: ImageRequest | Mapping[str, Any] | None
) -> dict[str, Any]:
    if isinstance(prompt, ImageRequest):
        if base is not None:
            raise SweepError("base", None, "give the request as the prompt or as base, not both")
        return prompt.to_dict()
    if prompt is not None and not isinstance(prompt, str):
        raise SweepError("prompt", prompt, "must be text or an ImageRequest")
    if base is None:
        return defaults()
    if isinstance(base, ImageRequest):
        return base.to_dict()
    if isinstance(base, Mapping):
        return _check_base({**defaults(), **base})
    raise SweepError("base", base, "must be an ImageRequest or a mapping of fields")


def _check_base(base: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(base, Mapping):
        raise SweepError("base", base, "must be a mapping of request fields")
    unknown = [k for k in base if k not in FIELDS_BY_NAME]
    if unknown:
        raise SweepError(
            "base", unknown[0], f"is not a request field (known: {', '.join(FIELD_NAMES)})"
        )
    values = {**defaults(), **base}
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = values[name]
        if name == "prompt" and isinstance(value, str) and not value.strip():
            out[name] = value  # a prompt axis may supply it
            continue
        try:
            out[name] = FIELDS_BY_NAME[name].validate(value)
        except ValidationError as exc:
            raise SweepError("base", None, str(exc)) from None
    return out


def _shared_seed(seed: int | str | None, current: Any) -> int:
    if seed is None:
        if isinstance(current, int) and current != -1:
            return current
        return secrets.randbelow(_DRAWN_SEED_BOUND)
    if isinstance(seed, str):
        if seed.strip().lower() == "random":
            return -1
        try:
            seed = int(seed.strip())
        except ValueError:
            raise SweepError("seed", seed, "must be a whole number or 'random'") from None
    try:
        return int(FIELDS_BY_NAME["seed"].validate(seed))
    except ValidationError as exc:
        raise SweepError("seed", seed, exc.problem) from None


def _price(value: Any) -> Decimal:
    """A price as a Decimal (a float is read from its shortest text: 0.05, not 0.05000000001)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, Decimal):
        price = value
    else:
        raise SweepError("unit_price", value, "must be a price of 0 or more")
    if not price.is_finite() or price < 0:
        raise SweepError("unit_price", value, "must be a price of 0 or more")
    return price


def _replicate_seed(seed: int, replicate: int) -> int:
    if seed == -1:
        return -1  # random each time already
    maximum = FIELDS_BY_NAME["seed"].maximum
    assert maximum is not None
    return (seed + replicate - 1) % (int(maximum) + 1)


def _search_replace(
    values: dict[str, Any], search: str, replacement: str, slot: str, describe: str
) -> dict[str, Any]:
    prompt, negative = str(values["prompt"]), str(values["negative_prompt"])
    if search not in prompt and search not in negative:
        raise SweepError(
            f"{slot.upper()} axis (prompt S/R)",
            search,
            f"is not in the prompt {prompt!r} (cell {describe}); the first value is what "
            "the others replace",
        )
    return {
        **values,
        "prompt": prompt.replace(search, replacement),
        "negative_prompt": negative.replace(search, replacement),
    }


def _check_conflicts(axes: Sequence[tuple[str, Axis]]) -> None:
    """Refuse an axis that would override a field another axis varies."""
    ordered = sorted(axes, key=lambda item: (_KIND_ORDER[item[1].kind], SLOTS.index(item[0])))
    for i, (early_slot, early) in enumerate(ordered):
        for late_slot, late in ordered[i + 1 :]:
            clash = sorted(early.varies & late.sets)
            if clash:
                name = clash[0]
                raise SweepError(
                    late.label(late_slot),
                    None,
                    f"would override the {name} that {early.label(early_slot)} varies; "
                    f"vary {name} on one axis only",
                )
