"""Axis values in every syntax users already know, validated against the schema.

Numbers (``integer`` fields: chaos, stylize, weird, seed)::

    0, 250, 500            a list (negative numbers too: -1, 42)
    0-1000 (+250)          an inclusive range with a step (AUTOMATIC1111's syntax)
    1000-0 (-250)          ... counting down
    1-4                    ... step 1
    0-1000 [5]             five values spread evenly over the range, ends included
    0, 250, .., 1000       the step taken from the first two values
    0-500 (+250), 800      several of these, separated by commas

Enums (aspect_ratio, quality, model) by name: ``16:9, 1:1`` or ``16:9 1:1`` (a ``-`` or
``:`` is never read as a range there); ``all`` for every allowed value. Booleans:
``true, false`` (also yes/no, on/off, 1/0) or ``both``. Free text (prompt, negative prompt):
one value per line. Python lists, tuples and ranges work everywhere; their strings are read
with the same syntax.

Every value is validated by the schema before anything is sent; an error names the axis and
the value. No syntax can make more than :data:`MAX_AXIS_VALUES` values.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from ..errors import ValidationError
from ..schema import FIELD_NAMES, FIELDS_BY_NAME, Field
from .errors import SweepError

#: The most values one axis may have.
MAX_AXIS_VALUES = 1000
# Longest piece of value text read at all (a number has at most 30 digits).
_MAX_PIECE = 200

_INT = r"[+-]?\d{1,30}"
_NUMBER = re.compile(_INT)
_RANGE = re.compile(rf"({_INT})\s*-\s*({_INT})(?:\s*\(\s*([+-]?)\s*(\d{{1,30}})\s*\))?")
_COUNTED = re.compile(rf"({_INT})\s*-\s*({_INT})\s*\[\s*(\d{{1,30}})\s*\]")
_ELLIPSIS = frozenset({"..", "...", "…"})
_ALL = frozenset({"all", "*"})
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_BOTH = frozenset({"both", "all", "*"})


def schema_field(name: str, where: str | None = None) -> Field:
    """The schema's field called ``name``; a :class:`SweepError` lists the known ones."""
    found = FIELDS_BY_NAME.get(name)
    if found is None:
        raise SweepError(
            where or "axis", name, f"is not a request field (known: {', '.join(FIELD_NAMES)})"
        )
    return found


def is_text_field(f: Field) -> bool:
    """Free text: values are whole lines, never split at commas."""
    return f.type == "string" and f.enum is None


def parse_values(field_name: str, values: Any, *, where: str | None = None) -> list[Any]:
    """The validated values ``values`` stands for, in order.

    ``values`` is text in any syntax of this module, a single value, or an iterable (a list,
    tuple, range, numpy array) whose strings are read with the same syntax. ``where`` names
    the axis in errors (default: the field name). Duplicates and empty results are refused.

    >>> parse_values("stylize", "0-1000 (+250)")
    [0, 250, 500, 750, 1000]
    >>> parse_values("aspect_ratio", "16:9, 1:1")
    ['16:9', '1:1']
    """
    f = schema_field(field_name, where)
    where = where or field_name
    raw: list[Any]
    if isinstance(values, str):
        raw = _parse_text(f, values, where)
    elif isinstance(values, (bytes, bytearray, Mapping)):
        raise SweepError(where, values, "must be text or a list of values")
    elif isinstance(values, Iterable):
        raw = []
        for item in _bounded(values, where):
            if isinstance(item, str) and not is_text_field(f):
                raw.extend(_parse_text(f, item, where))
            else:
                raw.append(item)
            _check_count(len(raw), where, None)
    else:
        raw = [values]
    source = values if isinstance(values, str) else None
    validated = [_validate(f, value, where, source) for value in raw]
    if not validated:
        raise SweepError(where, values, "has no values")
    _check_count(len(validated), where, values)
    _refuse_duplicates(validated, where)
    return validated


def parse_value(field_name: str, text: str, *, where: str | None = None) -> Any:
    """One value written as text (a CSV cell, a form box): ``"250"``, ``"16:9"``, ``"true"``."""
    f = schema_field(field_name, where)
    where = where or field_name
    if is_text_field(f):
        return _validate(f, text, where)
    values = _parse_text(f, text, where)
    if len(values) != 1:
        raise SweepError(where, text, "must be a single value here")
    return _validate(f, values[0], where)


def format_values(field_name: str, values: Iterable[Any]) -> str:
    """The shortest text :func:`parse_values` reads back as ``values``.

    >>> format_values("stylize", [0, 250, 500, 750, 1000])
    '0-1000 (+250)'
    """
    f = schema_field(field_name)
    items = list(values)
    if is_text_field(f):
        return "\n".join(str(v) for v in items)
    if f.type == "boolean":
        return ", ".join("true" if v else "false" for v in items)
    if f.type == "integer" and len(items) >= 3:
        step = items[1] - items[0]
        if step != 0 and all(b - a == step for a, b in itertools.pairwise(items)):
            return f"{items[0]}-{items[-1]} ({'+' if step > 0 else '-'}{abs(step)})"
    return ", ".join(str(v) for v in items)


# --- text ----------------------------------------------------------------------------------


def _parse_text(f: Field, text: str, where: str) -> list[Any]:
    if is_text_field(f):
        return [line.strip() for line in text.splitlines() if line.strip()]
    if not text.strip():
        raise SweepError(where, text, "has no values")
    if f.type == "integer":
        return _parse_numbers(text, where)
    pieces = _pieces(text, where)
    if f.type == "boolean":
        return _parse_booleans(pieces, text, where)
    assert f.enum is not None
    return _parse_enum(f.enum, pieces, text, where)


def _pieces(text: str, where: str) -> list[str]:
    """Comma-separated pieces; with no comma, whitespace separates (``16:9 1:1``)."""
    if "," not in text:
        return text.split()
    pieces = [p.strip() for p in text.split(",")]
    if any(not p for p in pieces):
        raise SweepError(where, text, "has an empty value between commas")
    return pieces


def _parse_enum(allowed: tuple[str, ...], pieces: list[str], text: str, where: str) -> list[str]:
    if len(pieces) == 1 and pieces[0].lower() in _ALL:
        return list(allowed)
    loose = {_loosen(v): v for v in allowed}
    out = []
    for piece in pieces:
        if piece in allowed:
            out.append(piece)
        elif _loosen(piece) in loose:
            out.append(loose[_loosen(piece)])
        else:
            shown = ", ".join(allowed)
            raise SweepError(where, piece, f"is not one of {shown} (or 'all')")
    return out


def _loosen(value: str) -> str:
    return "".join(value.split()).casefold()


def _parse_booleans(pieces: list[str], text: str, where: str) -> list[bool]:
    if len(pieces) == 1 and pieces[0].lower() in _BOTH:
        return [False, True]
    out = []
    for piece in pieces:
        word = piece.lower()
        if word in _TRUE:
            out.append(True)
        elif word in _FALSE:
            out.append(False)
        else:
            raise SweepError(where, piece, "is not true or false (or 'both')")
    return out


def _parse_numbers(text: str, where: str) -> list[int]:
    pieces = [p.strip() for p in text.split(",")]
    if any(not p for p in pieces):
        raise SweepError(where, text, "has an empty value between commas")
    # Each piece: an int, a list of ints (a range), or None for "..".
    parts: list[int | list[int] | None] = []
    for piece in pieces:
        if len(piece) > _MAX_PIECE:
            raise SweepError(where, piece, "is too long to be a value")
        if piece in _ELLIPSIS:
            parts.append(None)
        elif _NUMBER.fullmatch(piece):
            parts.append(int(piece))
        else:
            parts.append(_parse_range(piece, where))
    out: list[int] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part is None:
            out.extend(_fill(parts, i, text, where))
            _check_count(len(out), where, text)
            i += 2  # the end value is part of the fill
            continue
        if isinstance(part, list):
            out.extend(part)
        else:
            out.append(part)
        _check_count(len(out), where, text)
        i += 1
    return out


def _parse_range(piece: str, where: str) -> list[int]:
    counted = _COUNTED.fullmatch(piece)
    if counted:
        start, end, n = (int(g) for g in counted.groups())
        return _spread(start, end, n, piece, where)
    ranged = _RANGE.fullmatch(piece)
    if not ranged:
        raise SweepError(
            where,
            piece,
            "is not a whole number or a range (write 0, 250, 500 or 0-1000 (+250) or "
            "0-1000 [5] or 0, 250, .., 1000)",
        )
    start, end = int(ranged.group(1)), int(ranged.group(2))
    sign, size = ranged.group(3), ranged.group(4)
    direction = 1 if end >= start else -1
    step = int(size) if size is not None else 1
    if step == 0:
        raise SweepError(where, piece, "has a step of 0")
    if sign and (1 if sign == "+" else -1) != direction and start != end:
        word = "up" if sign == "+" else "down"
        raise SweepError(
            where,
            piece,
            f"counts {word} but {end} is {'below' if word == 'up' else 'above'} {start}; "
            f"write {end}-{start} or change the step's sign",
        )
    count = abs(end - start) // step + 1
    if count > MAX_AXIS_VALUES:
        hint = "" if size else f" (add a step: {start}-{end} (+{max(1, abs(end - start) // 4)}))"
        raise SweepError(
            where, piece, f"makes {count:,} values; at most {MAX_AXIS_VALUES:,} per axis{hint}"
        )
    return list(range(start, end + direction, step * direction))


def _spread(start: int, end: int, n: int, piece: str, where: str) -> list[int]:
    if n < 1:
        raise SweepError(where, piece, "asks for no values")
    if n > MAX_AXIS_VALUES:
        raise SweepError(where, piece, f"asks for {n:,} values; at most {MAX_AXIS_VALUES:,}")
    if n == 1:
        return [start]
    whole = abs(end - start) + 1
    if n > whole:
        raise SweepError(
            where, piece, f"asks for {n} values, but only {whole} whole numbers lie in that range"
        )
    span = end - start
    return [start + math.floor(Fraction(i * span, n - 1) + Fraction(1, 2)) for i in range(n)]


def _fill(parts: list[int | list[int] | None], i: int, text: str, where: str) -> list[int]:
    """The values ``a, b, .., c`` stands for after ``b`` (``c`` included)."""
    before = parts[max(0, i - 2) : i]
    after = parts[i + 1] if i + 1 < len(parts) else None
    if len(before) < 2 or not all(isinstance(p, int) for p in before):
        raise SweepError(
            where, text, "needs two numbers before '..' to set the step (0, 250, .., 1000)"
        )
    if not isinstance(after, int):
        raise SweepError(where, text, "needs a number after '..' to end at (0, 250, .., 1000)")
    a, b = before
    assert isinstance(a, int)
    assert isinstance(b, int)
    step = b - a
    if step == 0:
        raise SweepError(where, text, f"repeats {a} before '..', so there is no step")
    if (after - b) * step < 0:
        raise SweepError(where, text, f"steps by {step:+} from {b} and never reaches {after}")
    count = (after - b) // step
    if count > MAX_AXIS_VALUES:
        raise SweepError(
            where, text, f"makes {count:,} values; at most {MAX_AXIS_VALUES:,} per axis"
        )
    if (after - b) % step:
        below, above = b + count * step, b + (count + 1) * step
        raise SweepError(
            where,
            text,
            f"steps by {step:+} from {b} and misses {after} (it would stop at {below}, "
            f"then {above}); end at one of those",
        )
    return [b + k * step for k in range(1, count + 1)]


# --- checks --------------------------------------------------------------------------------


def _bounded(values: Iterable[Any], where: str) -> list[Any]:
    if isinstance(values, range) and len(values) > MAX_AXIS_VALUES:
        raise SweepError(
            where, values, f"makes {len(values):,} values; at most {MAX_AXIS_VALUES:,} per axis"
        )
    items = list(itertools.islice(values, MAX_AXIS_VALUES + 1))
    _check_count(len(items), where, None)
    return items


def _check_count(count: int, where: str, values: Any) -> None:
    if count > MAX_AXIS_VALUES:
        raise SweepError(where, values, f"makes more than {MAX_AXIS_VALUES:,} values (the limit)")


def _validate(f: Field, value: Any, where: str, source: str | None = None) -> Any:
    try:
        return f.validate(value)
    except ValidationError as exc:
        written = f" (in {source.strip()!r})" if source and source.strip() != str(value) else ""
        raise SweepError(where, value, exc.problem + written) from None


def _refuse_duplicates(values: list[Any], where: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise SweepError(
                where,
                value,
                "appears twice; each value makes its own cells, so it would be paid for twice",
            )
        seen.add(value)
