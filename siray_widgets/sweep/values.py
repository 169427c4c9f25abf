"""Axis values in every syntax users already know, validated against the schema.

Numbers (``integer`` fields: chaos, stylize, weird, seed; ``number`` fields of other models
take decimals the same way: ``1-2 (+0.25)``)::

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
one value per line. ``unset`` leaves out a field that may be left out. Python lists, tuples
and ranges work everywhere; their strings are read with the same syntax.

Every value is validated by the schema before anything is sent; an error names the axis and
the value. No syntax can make more than :data:`MAX_AXIS_VALUES` values.
"""

from __future__ import annotations

import decimal
import itertools
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeAlias

from ..errors import ValidationError
from ..schema import FIELD_NAMES, FIELDS_BY_NAME, Field
from .errors import SweepError

#: The most values one axis may have.
MAX_AXIS_VALUES = 1000
# Longest piece of value text read at all (a number has at most 30 digits).
_MAX_PIECE = 200

_INT = r"[+-]?\d{1,30}"
_DEC = r"[+-]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})"
_STEP_INT = r"\d{1,30}"
_STEP_DEC = r"(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})"


class _Syntax:
    """The number patterns of one field type (whole numbers, or decimals)."""

    def __init__(self, number: str, step: str) -> None:
        self.number = re.compile(number)
        self.range = re.compile(rf"({number})\s*-\s*({number})(?:\s*\(\s*([+-]?)\s*({step})\s*\))?")
        self.counted = re.compile(rf"({number})\s*-\s*({number})\s*\[\s*(\d{{1,30}})\s*\]")


_WHOLE = _Syntax(_INT, _STEP_INT)
_DECIMAL = _Syntax(_DEC, _STEP_DEC)
_ELLIPSIS = frozenset({"..", "...", "…"})
_ALL = frozenset({"all", "*"})
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_BOTH = frozenset({"both", "all", "*"})
_UNSET = frozenset({"unset", "(unset)"})
# One piece of a number list: a number, a range's numbers, or None for "..".
_Part: TypeAlias = "Decimal | list[Decimal] | None"
# Decimal arithmetic wide enough for 30-digit numbers and steps.
_CONTEXT = decimal.Context(prec=80, traps=[decimal.InvalidOperation, decimal.DivisionByZero])


def schema_field(name: str | Field, where: str | None = None) -> Field:
    """The schema's field called ``name`` (a :class:`Field` is returned as it is)."""
    if isinstance(name, Field):
        return name
    found = FIELDS_BY_NAME.get(name)
    if found is None:
        raise SweepError(
            where or "axis", name, f"is not a request field (known: {', '.join(FIELD_NAMES)})"
        )
    return found


def is_text_field(f: Field) -> bool:
    """Free text: values are whole lines, never split at commas."""
    return f.type == "string" and f.enum is None


def parse_values(field: str | Field, values: Any, *, where: str | None = None) -> list[Any]:
    """The validated values ``values`` stands for, in order.

    ``field`` is a niji 7 field name or any model's :class:`~siray_widgets.schema.Field`.
    ``values`` is text in any syntax of this module, a single value, or an iterable (a list,
    tuple, range, numpy array) whose strings are read with the same syntax. ``where`` names
    the axis in errors (default: the field name). Duplicates and empty results are refused.

    >>> parse_values("stylize", "0-1000 (+250)")
    [0, 250, 500, 750, 1000]
    >>> parse_values("aspect_ratio", "16:9, 1:1")
    ['16:9', '1:1']
    """
    f = schema_field(field, where)
    where = where or f.name
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


def parse_value(field: str | Field, text: str, *, where: str | None = None) -> Any:
    """One value written as text (a CSV cell, a form box): ``"250"``, ``"16:9"``, ``"true"``."""
    f = schema_field(field, where)
    where = where or f.name
    if is_text_field(f):
        return _validate(f, text, where)
    values = _parse_text(f, text, where)
    if len(values) != 1:
        raise SweepError(where, text, "must be a single value here")
    return _validate(f, values[0], where)


def format_values(field: str | Field, values: Iterable[Any]) -> str:
    """The shortest text :func:`parse_values` reads back as ``values``.

    >>> format_values("stylize", [0, 250, 500, 750, 1000])
    '0-1000 (+250)'
    """
    f = schema_field(field)
    items = list(values)
    if is_text_field(f):
        return "\n".join(str(v) for v in items)
    words = [_word(v) for v in items]
    if f.type in ("integer", "number") and f.enum is None and len(items) >= 3:
        numbers = [Decimal(w) for w in words]
        step = numbers[1] - numbers[0]
        if step != 0 and all(b - a == step for a, b in itertools.pairwise(numbers)):
            sign = "+" if step > 0 else "-"
            return f"{words[0]}-{words[-1]} ({sign}{_word(abs(step))})"
    return ", ".join(words)


def _word(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, Decimal)):
        text = format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


# --- text ----------------------------------------------------------------------------------


def _parse_text(f: Field, text: str, where: str) -> list[Any]:
    if is_text_field(f):
        return [line.strip() for line in text.splitlines() if line.strip()]
    if not text.strip():
        raise SweepError(where, text, "has no values")
    if f.allow_unset and text.strip().lower() in _UNSET:
        return [None]
    if f.enum is not None:
        return _parse_enum(f, _pieces(text, where), where)
    if f.type in ("integer", "number"):
        return _parse_numbers(text, where, whole=f.type == "integer")
    if f.type == "boolean":
        return _parse_booleans(_pieces(text, where), where)
    raise SweepError(where, text, f"cannot be read for a field of type {f.type!r}")


def _pieces(text: str, where: str) -> list[str]:
    """Comma-separated pieces; with no comma, whitespace separates (``16:9 1:1``)."""
    if "," not in text:
        return text.split()
    pieces = [p.strip() for p in text.split(",")]
    if any(not p for p in pieces):
        raise SweepError(where, text, "has an empty value between commas")
    return pieces


def _parse_enum(f: Field, pieces: list[str], where: str) -> list[Any]:
    assert f.enum is not None
    allowed = f.enum
    if len(pieces) == 1 and pieces[0].lower() in _ALL:
        return list(allowed)
    loose = {_loosen(_word(v)): v for v in allowed}
    out: list[Any] = []
    for piece in pieces:
        if piece in allowed:
            out.append(piece)
        elif _loosen(piece) in loose:
            out.append(loose[_loosen(piece)])
        elif f.allow_unset and piece.lower() in _UNSET:
            out.append(None)
        else:
            shown = ", ".join(_word(v) for v in allowed)
            raise SweepError(where, piece, f"is not one of {shown} (or 'all')")
    return out


def _loosen(value: str) -> str:
    return "".join(value.split()).casefold()


def _parse_booleans(pieces: list[str], where: str) -> list[bool]:
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


# --- numbers (exact: whole numbers as they are, decimals as Decimal until the end) -----------


def _parse_numbers(text: str, where: str, *, whole: bool) -> list[int | float]:
    syntax = _WHOLE if whole else _DECIMAL
    pieces = [p.strip() for p in text.split(",")]
    if any(not p for p in pieces):
        raise SweepError(where, text, "has an empty value between commas")
    # Each piece: a number, a list of numbers (a range), or None for "..".
    parts: list[_Part] = []
    for piece in pieces:
        if len(piece) > _MAX_PIECE:
            raise SweepError(where, piece, "is too long to be a value")
        if piece in _ELLIPSIS:
            parts.append(None)
        elif syntax.number.fullmatch(piece):
            parts.append(Decimal(piece))
        else:
            parts.append(_parse_range(piece, where, syntax, whole))
    out: list[Decimal] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part is None:
            out.extend(_fill(parts, i, text, where))
            i += 2  # the end value is part of the fill
        else:
            out.extend(part if isinstance(part, list) else [part])
            i += 1
        _check_count(len(out), where, text)
    return [_number(d, whole) for d in out]


def _number(value: Decimal, whole: bool) -> int | float:
    """A Decimal as the body will hold it: an int when whole (so 1 and 1.0 are one value)."""
    if value == value.to_integral_value():
        return int(value)
    assert not whole
    return float(value)


def _parse_range(piece: str, where: str, syntax: _Syntax, whole: bool) -> list[Decimal]:
    counted = syntax.counted.fullmatch(piece)
    if counted:
        start, end = Decimal(counted.group(1)), Decimal(counted.group(2))
        return _spread(start, end, int(counted.group(3)), piece, where, whole)
    ranged = syntax.range.fullmatch(piece)
    if not ranged:
        kind = "a whole number" if whole else "a number"
        example = "0, 250, 500 or 0-1000 (+250) or 0-1000 [5] or 0, 250, .., 1000"
        raise SweepError(where, piece, f"is not {kind} or a range (write {example})")
    start, end = Decimal(ranged.group(1)), Decimal(ranged.group(2))
    sign, size = ranged.group(3), ranged.group(4)
    direction = 1 if end >= start else -1
    step = Decimal(size) if size is not None else Decimal(1)
    if step == 0:
        raise SweepError(where, piece, "has a step of 0")
    if sign and (1 if sign == "+" else -1) != direction and start != end:
        word = "up" if sign == "+" else "down"
        raise SweepError(
            where,
            piece,
            f"counts {word} but {_word(end)} is {'below' if word == 'up' else 'above'} "
            f"{_word(start)}; write {_word(end)}-{_word(start)} or change the step's sign",
        )
    count = int(_CONTEXT.divide_int(abs(end - start), step)) + 1
    if count > MAX_AXIS_VALUES:
        hint = ""
        if not size:
            hint = f" (add a step: {piece} (+{_word(max(Decimal(1), abs(end - start) // 4))}))"
        raise SweepError(
            where, piece, f"makes {count:,} values; at most {MAX_AXIS_VALUES:,} per axis{hint}"
        )
    return [_CONTEXT.add(start, _CONTEXT.multiply(step * direction, k)) for k in range(count)]


def _spread(
    start: Decimal, end: Decimal, n: int, piece: str, where: str, whole: bool
) -> list[Decimal]:
    if n < 1:
        raise SweepError(where, piece, "asks for no values")
    if n > MAX_AXIS_VALUES:
        raise SweepError(where, piece, f"asks for {n:,} values; at most {MAX_AXIS_VALUES:,}")
    if n == 1:
        return [start]
    span = end - start
    if whole:
        count = int(abs(span)) + 1
        if n > count:
            raise SweepError(
                where,
                piece,
                f"asks for {n} values, but only {count} whole numbers lie in that range",
            )
        half = Decimal(1) / 2
        return [
            start
            + (_CONTEXT.divide(span * i, Decimal(n - 1)) + half).to_integral_value(
                rounding=decimal.ROUND_FLOOR
            )
            for i in range(n)
        ]
    if span == 0:
        raise SweepError(where, piece, f"asks for {n} values in a range of one value")
    return [start + _CONTEXT.divide(span * i, Decimal(n - 1)) for i in range(n)]


def _fill(
    parts: list[Decimal | list[Decimal] | None], i: int, text: str, where: str
) -> list[Decimal]:
    """The values ``a, b, .., c`` stands for after ``b`` (``c`` included)."""
    before = parts[max(0, i - 2) : i]
    after = parts[i + 1] if i + 1 < len(parts) else None
    if len(before) < 2 or not all(isinstance(p, Decimal) for p in before):
        raise SweepError(
            where, text, "needs two numbers before '..' to set the step (0, 250, .., 1000)"
        )
    if not isinstance(after, Decimal):
        raise SweepError(where, text, "needs a number after '..' to end at (0, 250, .., 1000)")
    a, b = before
    assert isinstance(a, Decimal)
    assert isinstance(b, Decimal)
    step = b - a
    if step == 0:
        raise SweepError(where, text, f"repeats {_word(a)} before '..', so there is no step")
    if (after - b) * step < 0:
        raise SweepError(
            where,
            text,
            f"steps by {_signed(step)} from {_word(b)} and never reaches {_word(after)}",
        )
    count = int(_CONTEXT.divide_int(after - b, step))
    if count > MAX_AXIS_VALUES:
        raise SweepError(
            where, text, f"makes {count:,} values; at most {MAX_AXIS_VALUES:,} per axis"
        )
    if b + count * step != after:
        below, above = b + count * step, b + (count + 1) * step
        raise SweepError(
            where,
            text,
            f"steps by {_signed(step)} from {_word(b)} and misses {_word(after)} (it would stop "
            f"at {_word(below)}, then {_word(above)}); end at one of those",
        )
    return [b + k * step for k in range(1, count + 1)]


def _signed(step: Decimal) -> str:
    return ("+" if step > 0 else "-") + _word(abs(step))


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
