"""The axes of a sweep: what changes from one column (row, page) of the grid to the next.

Five kinds of axis:

- ``field``: any request field over values in the syntaxes of :mod:`.values`
  (``("stylize", "0-1000 (+250)")``, ``("aspect_ratio", "1:1, 16:9")``; the negative prompt,
  one variant per line).
- ``prompt``: prompt variants, one per line or list item; each may end in a suffix
  (``a fox --ar 16:9``) and may be a permutation prompt. CSV rows (a ``prompt`` column and
  field columns) are prompt variants too. Batch runs are a sweep with one prompt axis.
- ``preset``: presets by name or object, each applied over the cell's request.
- ``prompt_sr``: AUTOMATIC1111's Prompt S/R: the first value is searched for in the prompt
  (and negative prompt) and replaced by each value in turn.
- ``replicate``: the same request again with new seeds (Midjourney's ``--repeat``).

An :class:`Axis` is a plain value; it knows nothing about its slot (X, Y or Z), which is
only used to name it in errors.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, cast

from ..errors import SuffixError, ValidationError
from ..permutations import MAX_PERMUTATIONS, expand_permutations
from ..presets import Preset, PresetError, PresetLibrary, resolve_presets
from ..schema import FIELD_NAMES, FIELDS, FIELDS_BY_NAME
from ..suffix import FLAG_FIELDS, split_suffix
from .errors import SweepError
from .values import MAX_AXIS_VALUES, is_text_field, parse_value, parse_values, schema_field

AxisKind: TypeAlias = Literal["field", "prompt", "preset", "prompt_sr", "replicate"]
KINDS: tuple[AxisKind, ...] = ("field", "prompt", "preset", "prompt_sr", "replicate")
SLOTS: tuple[str, ...] = ("x", "y", "z")
#: The most replicates one sweep may ask for.
MAX_REPLICATES = 100

_KIND_NAMES: dict[str, str] = {
    "prompt": "prompt",
    "preset": "preset",
    "prompt_sr": "prompt S/R",
    "replicate": "replicate",
}
_SPECIAL_ALIASES: dict[str, tuple[AxisKind, str | None]] = {
    "prompts": ("prompt", None),
    "prompt variants": ("prompt", None),
    "variants": ("prompt", None),
    "batch": ("prompt", None),
    "negative": ("field", "negative_prompt"),
    "negative prompts": ("field", "negative_prompt"),
    "negative prompt variants": ("field", "negative_prompt"),
    "preset": ("preset", None),
    "presets": ("preset", None),
    "style": ("preset", None),
    "styles": ("preset", None),
    "prompt sr": ("prompt_sr", None),
    "prompt s/r": ("prompt_sr", None),
    "sr": ("prompt_sr", None),
    "s/r": ("prompt_sr", None),
    "search replace": ("prompt_sr", None),
    "search/replace": ("prompt_sr", None),
    "replicate": ("replicate", None),
    "replicates": ("replicate", None),
    "repeat": ("replicate", None),
    "repeats": ("replicate", None),
}

#: A prompt axis value: the prompt and the fields its suffix (or CSV columns) set.
Row: TypeAlias = Mapping[str, Any]
#: What ``define_sweep`` accepts for an axis.
AxisInput: TypeAlias = "Axis | tuple[str, Any] | str | None"


def axis_label(slot: str | None, name: str) -> str:
    """How errors and headers name an axis: ``"X axis (stylize)"``."""
    return f"{slot.upper()} axis ({name})" if slot else f"{name} axis"


def resolve_axis_name(name: str, *, slot: str | None = None) -> tuple[AxisKind, str | None]:
    """``(kind, field)`` for an axis name: a field name or label, a suffix flag, or a kind."""
    key = _normal(name)
    for f in FIELDS:
        if key in (_normal(f.name), _normal(f.label)):
            return ("prompt", None) if f.name == "prompt" else ("field", f.name)
    if key in FLAG_FIELDS:
        return "field", FLAG_FIELDS[key]
    if key in _SPECIAL_ALIASES:
        return _SPECIAL_ALIASES[key]
    raise SweepError(
        axis_label(slot, "?"),
        name,
        "is not something a sweep can vary; use a request field "
        f"({', '.join(FIELD_NAMES)}), or prompt, prompt_sr, preset or replicate",
    )


def _normal(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").split()).casefold()


@dataclass(frozen=True)
class Axis:
    """One axis: its kind, its values (validated, canonical) and a label per value."""

    kind: AxisKind
    values: tuple[Any, ...]
    labels: tuple[str, ...]
    #: The request field of a ``field`` axis.
    field: str | None = None
    #: The text the values were written as, if they were (shown again for editing).
    spec: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SweepError("axis", self.kind, f"is not an axis kind ({', '.join(KINDS)})")
        if not self.values:
            raise SweepError(axis_label(None, self.name), None, "has no values")
        if len(self.labels) != len(self.values):
            raise SweepError(axis_label(None, self.name), None, "needs one label per value")
        if (self.kind == "field") != (self.field is not None):
            raise SweepError(
                "axis", self.field, "a field axis, and only a field axis, names a field"
            )

    def __hash__(self) -> int:
        # Rows are read-only mappings (unhashable); labels identify the values well enough.
        return hash((self.kind, self.field, self.labels, self.spec))

    @property
    def name(self) -> str:
        """``"stylize"``, ``"prompt"``, ``"preset"``, ``"prompt S/R"``, ``"replicate"``."""
        return self.field if self.field is not None else _KIND_NAMES[self.kind]

    def __len__(self) -> int:
        return len(self.values)

    def label(self, slot: str | None = None) -> str:
        return axis_label(slot, self.name)

    # -- what the axis changes (conflicts between axes are worked out from these) --

    @property
    def sets(self) -> frozenset[str]:
        """Fields the axis sets outright in some cell."""
        if self.kind == "field":
            assert self.field is not None
            return frozenset({self.field})
        if self.kind == "replicate":
            return frozenset({"seed"})
        if self.kind == "prompt":
            return frozenset(k for row in self.values for k in row)
        if self.kind == "preset":
            return frozenset(k for p in self.values for k in p.fields)
        return frozenset()

    @property
    def varies(self) -> frozenset[str]:
        """Fields the axis sets to different values in different cells.

        A field every prompt variant (or preset) sets to the same value is not varied: it
        acts like part of the base, and a later axis may override it.
        """
        if self.kind in ("field", "replicate"):
            return self.sets
        mappings: list[Mapping[str, Any]] = (
            list(self.values) if self.kind == "prompt" else [p.fields for p in self.values]
        )
        missing = object()
        return frozenset(
            name
            for name in self.sets
            if len({repr(m.get(name, missing)) for m in mappings}) > 1
            or any(name not in m for m in mappings)
        )

    @property
    def wraps(self) -> frozenset[str]:
        """Fields the axis rewrites without replacing (templates, search and replace)."""
        if self.kind == "prompt_sr":
            return frozenset({"prompt", "negative_prompt"})
        if self.kind == "preset":
            return frozenset(k for p in self.values for k in p.touches if k not in p.fields)
        return frozenset()

    # -- JSON --

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; :meth:`from_json` validates it all again."""
        values: list[Any]
        if self.kind == "prompt":
            values = [dict(row) for row in self.values]
        elif self.kind == "preset":
            values = [p.to_json() for p in self.values]
        else:
            values = list(self.values)
        data: dict[str, Any] = {"kind": self.kind}
        if self.field is not None:
            data["field"] = self.field
        if self.spec is not None:
            data["spec"] = self.spec
        data["values"] = values
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Any, *, slot: str | None = None) -> Axis:
        """An axis from :meth:`to_json`'s output, every value validated again."""
        where = axis_label(slot, "?")
        if not isinstance(data, Mapping):
            raise SweepError(where, None, "must be a JSON object")
        kind, values = data.get("kind"), data.get("values")
        if kind not in KINDS:
            raise SweepError(where, kind, f"is not an axis kind ({', '.join(KINDS)})")
        if not isinstance(values, list):
            raise SweepError(where, None, '"values" must be a list')
        spec = data.get("spec")
        if spec is not None and not isinstance(spec, str):
            raise SweepError(where, spec, '"spec" must be text')
        if kind == "field":
            name = data.get("field")
            if not isinstance(name, str):
                raise SweepError(where, name, "a field axis needs a field name")
            axis = field_axis(name, values, slot=slot)
        elif kind == "prompt":
            where = axis_label(slot, "prompt")
            rows = [_row(v, where, parse=False) for v in values]
            if len(rows) > MAX_AXIS_VALUES:
                raise SweepError(where, None, f"has more than {MAX_AXIS_VALUES:,} prompts")
            axis = _rows_axis(rows, [str(r["prompt"]) for r in rows], where, spec=None)
        elif kind == "preset":
            try:
                presets = [Preset.from_json(v) for v in values]
            except PresetError as exc:
                raise SweepError(axis_label(slot, "preset"), None, str(exc)) from None
            axis = preset_axis(presets, slot=slot)
        elif kind == "prompt_sr":
            axis = search_replace_axis(values, slot=slot)
        else:
            axis = replicate_axis(len(values), slot=slot)
            if values != list(axis.values):
                raise SweepError(axis.label(slot), values, "must be 1, 2, ... n")
        saved = data.get("labels")
        if (
            isinstance(saved, list)
            and len(saved) == len(axis.values)
            and all(isinstance(label, str) for label in saved)
        ):
            axis = Axis(axis.kind, axis.values, tuple(saved), axis.field, spec)
        else:
            axis = Axis(axis.kind, axis.values, axis.labels, axis.field, spec)
        return axis


# --- making axes ------------------------------------------------------------------------------


def make_axis(
    name: str,
    values: Any,
    *,
    slot: str | None = None,
    library: PresetLibrary | None = None,
) -> Axis:
    """An axis over ``name`` (a field, a suffix flag such as ``ar``, or a kind) and ``values``."""
    if not isinstance(name, str):
        raise SweepError(axis_label(slot, "?"), name, "an axis is named by text, e.g. 'stylize'")
    kind, field_name = resolve_axis_name(name, slot=slot)
    if kind == "field":
        assert field_name is not None
        return field_axis(field_name, values, slot=slot)
    if kind == "prompt":
        return prompt_axis(values, slot=slot)
    if kind == "preset":
        return preset_axis(values, slot=slot, library=library)
    if kind == "prompt_sr":
        return search_replace_axis(values, slot=slot)
    return replicate_axis(values, slot=slot)


def parse_axis(spec: str, *, slot: str | None = None, library: PresetLibrary | None = None) -> Axis:
    """An axis written as ``name=values``: ``"stylize=0-1000 [5]"``, ``"ar=1:1, 16:9"``."""
    name, sep, values = spec.partition("=")
    if not sep or not name.strip():
        raise SweepError(
            axis_label(slot, "?"), spec, "must be written name=values, e.g. stylize=0-1000 [5]"
        )
    return make_axis(name.strip(), values.strip(), slot=slot, library=library)


def as_axis(
    value: AxisInput, *, slot: str | None = None, library: PresetLibrary | None = None
) -> Axis | None:
    """An :class:`Axis`, a ``(name, values)`` pair, a ``"name=values"`` text, or None."""
    if value is None or isinstance(value, Axis):
        return value
    if isinstance(value, str):
        return parse_axis(value, slot=slot, library=library)
    if isinstance(value, tuple) and len(value) == 2:
        return make_axis(value[0], value[1], slot=slot, library=library)
    raise SweepError(
        axis_label(slot, "?"),
        value,
        "must be an Axis, a (name, values) pair such as ('stylize', '0-1000 (+250)'), "
        "or 'name=values'",
    )


def field_axis(field_name: str, values: Any, *, slot: str | None = None) -> Axis:
    """An axis over one request field (``prompt`` makes a prompt axis)."""
    if field_name == "prompt":
        return prompt_axis(values, slot=slot)
    f = schema_field(field_name, axis_label(slot, "?"))
    where = axis_label(slot, field_name)
    parsed = parse_values(field_name, values, where=where)
    return Axis(
        "field",
        tuple(parsed),
        tuple(_label(f.name, v) for v in parsed),
        field=field_name,
        spec=values if isinstance(values, str) else None,
    )


def prompt_axis(
    prompts: str | Iterable[str | Row],
    *,
    slot: str | None = None,
    labels: Sequence[str] | None = None,
    limit: int = MAX_PERMUTATIONS,
) -> Axis:
    """Prompt variants: text (one per line) or a list of texts or rows.

    Each text may end in a suffix and may be a permutation prompt (expanded here; a single
    permutation text is labelled by the options it takes). A row is a mapping with a
    ``prompt`` and other request fields (from a CSV file).
    """
    where = axis_label(slot, "prompt")
    items: list[str | Row]
    if isinstance(prompts, str):
        items = [line.strip() for line in prompts.splitlines() if line.strip()]
    elif isinstance(prompts, Mapping):
        raise SweepError(where, prompts, "must be text (one prompt per line) or a list")
    else:
        items = list(_take(prompts, where))
    rows: list[Row] = []
    row_labels: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            made = _rows_from_mapping(item, where, limit)
        elif isinstance(item, str):
            made = _rows_from_text(item, where, limit, label_by_choice=len(items) == 1)
        else:
            raise SweepError(where, item, "must be text or a mapping with a 'prompt'")
        for row, label in made:
            rows.append(row)
            row_labels.append(label)
            if len(rows) > MAX_AXIS_VALUES:
                raise SweepError(where, None, f"has more than {MAX_AXIS_VALUES:,} prompts")
    if not rows:
        raise SweepError(where, prompts, "has no prompts")
    if labels is not None:
        if len(labels) != len(rows):
            raise SweepError(where, None, f"has {len(rows)} prompts but {len(labels)} labels")
        row_labels = [str(label) for label in labels]
    return _rows_axis(rows, row_labels, where, spec=prompts if isinstance(prompts, str) else None)


def _rows_axis(rows: list[Row], labels: list[str], where: str, spec: str | None) -> Axis:
    """A prompt axis from validated rows; the same row twice is refused."""
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for i, row in enumerate(rows):
        key = tuple(sorted((k, repr(v)) for k, v in row.items()))
        if key in seen:
            raise SweepError(
                where,
                labels[i],
                f"appears twice (variants {seen[key] + 1} and {i + 1}); it would be paid for twice",
            )
        seen[key] = i
    return Axis(
        "prompt",
        tuple(MappingProxyType(dict(r)) for r in rows),
        tuple(labels),
        spec=spec,
    )


def preset_axis(
    presets: str | Iterable[Preset | str],
    *,
    slot: str | None = None,
    library: PresetLibrary | None = None,
) -> Axis:
    """One preset per value (names looked up in ``library``; text: names separated by commas)."""
    where = axis_label(slot, "preset")
    spec = presets if isinstance(presets, str) else None
    items: list[Preset | str]
    if isinstance(presets, str):
        items = [n.strip() for n in next(csv.reader([presets], skipinitialspace=True), [])]
        items = [n for n in items if n]
    else:
        items = list(_take(presets, where))
    try:
        resolved = resolve_presets(items, library)
    except PresetError as exc:
        raise SweepError(where, None, str(exc)) from None
    if not resolved:
        raise SweepError(where, presets, "has no presets")
    names: dict[str, int] = {}
    for i, preset in enumerate(resolved):
        key = preset.name.casefold()
        if key in names:
            raise SweepError(where, preset.name, "appears twice; it would be paid for twice")
        names[key] = i
    return Axis("preset", tuple(resolved), tuple(p.name for p in resolved), spec=spec)


def search_replace_axis(values: str | Iterable[str], *, slot: str | None = None) -> Axis:
    """Prompt S/R: the first value is searched for and replaced by each value in turn.

    Text is read as one CSV line (``red, "pale, green", blue``) or one value per line.
    """
    where = axis_label(slot, "prompt S/R")
    items: list[Any]
    if isinstance(values, str):
        if "\n" in values.strip():
            items = [line.strip() for line in values.splitlines() if line.strip()]
        else:
            items = [v.strip() for v in next(csv.reader([values], skipinitialspace=True), [])]
    else:
        items = list(_take(values, where))
    for item in items:
        if not isinstance(item, str):
            raise SweepError(where, item, "must be text")
        try:
            FIELDS_BY_NAME["prompt"].validate(item or "x")
        except ValidationError as exc:
            raise SweepError(where, item, exc.problem) from None
    if not items:
        raise SweepError(where, values, "has no values")
    if not items[0]:
        raise SweepError(where, values, "needs a first value to search for")
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise SweepError(where, item, "appears twice; it would be paid for twice")
        seen.add(item)
    labels = tuple(item if item else "(removed)" for item in items)
    return Axis(
        "prompt_sr",
        tuple(items),
        labels,
        spec=values if isinstance(values, str) else None,
    )


def replicate_axis(count: int | str, *, slot: str | None = None) -> Axis:
    """``count`` replicates: the same request with seeds ``seed``, ``seed + 1``, ...

    (With a random seed each replicate is sent with seed -1.)
    """
    where = axis_label(slot, "replicate")
    n: Any = count
    if isinstance(count, str) and re.fullmatch(r"\d{1,6}", count.strip(), re.ASCII):
        n = int(count.strip())
    if not isinstance(n, int) or isinstance(n, bool):
        raise SweepError(where, count, "must be a whole number of replicates")
    if not 1 <= n <= MAX_REPLICATES:
        raise SweepError(where, count, f"must be between 1 and {MAX_REPLICATES}")
    return Axis(
        "replicate",
        tuple(range(1, n + 1)),
        tuple(f"#{i}" for i in range(1, n + 1)),
        spec=str(n),
    )


# --- helpers ----------------------------------------------------------------------------------


def _label(field_name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_text_field(FIELDS_BY_NAME[field_name]) and not str(value).strip():
        return "(none)"
    return str(value)


def _take(values: Iterable[Any], where: str) -> list[Any]:
    items: list[Any] = []
    for item in values:
        items.append(item)
        if len(items) > MAX_AXIS_VALUES:
            raise SweepError(where, None, f"has more than {MAX_AXIS_VALUES:,} values")
    return items


def _rows_from_text(
    text: str, where: str, limit: int, *, label_by_choice: bool
) -> list[tuple[Row, str]]:
    try:
        expansions = expand_permutations(text, limit=limit)
    except SuffixError as exc:
        raise SweepError(where, text, f"cannot be read ({exc})") from None
    by_choice = label_by_choice and len(expansions) > 1
    out: list[tuple[Row, str]] = []
    for expansion in expansions:
        row = _row({"prompt": expansion.text}, where, parse=True)
        out.append((row, expansion.label if by_choice else expansion.text.strip()))
    return out


def _rows_from_mapping(item: Mapping[str, Any], where: str, limit: int) -> list[tuple[Row, str]]:
    text = item.get("prompt")
    if not isinstance(text, str):
        raise SweepError(where, dict(item), "needs a 'prompt' text")
    try:
        expansions = expand_permutations(text, limit=limit)
    except SuffixError as exc:
        raise SweepError(where, text, f"cannot be read ({exc})") from None
    return [
        (_row({**item, "prompt": e.text}, where, parse=True), e.text.strip()) for e in expansions
    ]


def _row(item: Any, where: str, *, parse: bool) -> Row:
    """A validated row. With ``parse``, the prompt's suffix is read into fields."""
    if not isinstance(item, Mapping):
        raise SweepError(where, item, "must be a mapping with a 'prompt'")
    text = item.get("prompt")
    if not isinstance(text, str):
        raise SweepError(where, dict(item), "needs a 'prompt' text")
    fields: dict[str, Any] = {}
    if parse:
        try:
            text, fields = split_suffix(text)
        except SuffixError as exc:
            raise SweepError(where, item.get("prompt"), f"cannot be read ({exc})") from None
    try:
        prompt = FIELDS_BY_NAME["prompt"].validate(text)
    except ValidationError as exc:
        raise SweepError(where, item.get("prompt"), exc.problem) from None
    row: dict[str, Any] = {"prompt": prompt}
    for key, value in item.items():
        if key == "prompt":
            continue
        if not isinstance(key, str) or key not in FIELDS_BY_NAME:
            raise SweepError(
                where, key, f"is not a request field (known: {', '.join(FIELD_NAMES)})"
            )
        if key in fields:
            raise SweepError(
                where, item.get("prompt"), f"sets {key} in its suffix and in its own column"
            )
        f = FIELDS_BY_NAME[key]
        if isinstance(value, str) and not is_text_field(f):
            row[key] = parse_value(key, value, where=f"{where} {key}")
        else:
            try:
                row[key] = f.validate(value)
            except ValidationError as exc:
                raise SweepError(f"{where} {key}", value, exc.problem) from None
    row.update(fields)
    return cast(Row, {n: row[n] for n in FIELD_NAMES if n in row})
