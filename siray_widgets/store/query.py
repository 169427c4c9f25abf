"""Finding runs: one filter object for Python, the command line and the history panel.

:class:`RunQuery` turns into one SQL ``WHERE`` clause. Text search looks for every word (or
"quoted phrase") anywhere in the prompt, the negative prompt, the note, the tags or the task
id, ignoring case (the ``search`` column holds that text casefolded, kept up to date by the
store). Any request field can be matched (``fields={"aspect_ratio": "16:9"}``), by one value,
a list of values, or an inclusive range (``{"stylize": (100, 500)}``).

:func:`page_rows` reads the compact rows the history panel shows: newest first, a page at a
time, each with the fields that differ from the defaults and references to its thumbnails.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..errors import ValidationError
from ..schema import FIELDS_BY_NAME, TASK_STATUSES
from .model import ORIGINS, RUN_STATES, STATUS_GROUPS

When = dt.datetime | dt.date | str | float | int | None
FieldFilter = Any

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RELATIVE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Longest prompt text in a compact row; the details view reads the whole run.
ROW_TEXT_LIMIT: Final = 500
#: Fields shown on their own in a compact row (not among the "changed" ones).
_OWN_COLUMNS: Final = frozenset({"model", "prompt", "negative_prompt"})


def search_text(
    prompt: str, negative_prompt: str, note: str, tags: Sequence[str], task_id: str | None
) -> str:
    """What the search box looks in, casefolded."""
    return "\n".join([prompt, negative_prompt, note, " ".join(tags), task_id or ""]).casefold()


def parse_when(value: When, *, end: bool = False) -> float | None:
    """A point in time as Unix seconds.

    Accepts Unix seconds, a datetime (naive = local time), a date (its start; with
    ``end=True`` the start of the next day, for an inclusive "until"), ISO text
    (``2026-11-30``, ``2026-11-30T14:00``), ``today``, ``yesterday``, or an age such as
    ``30m``, ``12h``, ``7d``, ``2w`` (that long ago).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time cannot be a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        day = value + dt.timedelta(days=1) if end else value
        return dt.datetime.combine(day, dt.time()).timestamp()
    if not isinstance(value, str):
        raise TypeError(f"a time is a datetime, a date or text, not {type(value).__name__}")
    text = value.strip().lower()
    if text in ("today", "yesterday"):
        day = dt.date.today() - dt.timedelta(days=1 if text == "yesterday" else 0)
        return parse_when(day, end=end)
    relative = _RELATIVE.match(text)
    if relative:
        return time.time() - float(relative.group(1)) * _UNITS[relative.group(2).lower()]
    try:
        if len(text) == 10:
            return parse_when(dt.date.fromisoformat(text), end=end)
        return dt.datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: write a date (2026-11-30), a date and time "
            "(2026-11-30T14:00), today, yesterday, or an age such as 12h or 7d"
        ) from None


def _is_day(value: When) -> bool:
    if isinstance(value, dt.datetime):
        return False
    if isinstance(value, dt.date):
        return True
    if isinstance(value, str):
        text = value.strip().lower()
        return len(text) == 10 or text in ("today", "yesterday")
    return False


def _status_clause(values: Sequence[str]) -> tuple[str, list[Any]]:
    states: set[str] = set()
    statuses: set[str] = set()
    for value in values:
        word = value.strip()
        if word.lower() in RUN_STATES:
            states.add(word.lower())
        elif word.lower() in STATUS_GROUPS:
            states.update(STATUS_GROUPS[word.lower()])
        elif word.upper() in TASK_STATUSES:
            statuses.add(word.upper())
        else:
            known = ", ".join([*RUN_STATES, *STATUS_GROUPS, *TASK_STATUSES])
            raise ValueError(f"unknown status {value!r}; known: {known}")
    parts: list[str] = []
    args: list[Any] = []
    if states:
        parts.append(f"state IN ({', '.join('?' * len(states))})")
        args.extend(sorted(states))
    if statuses:
        parts.append(f"status IN ({', '.join('?' * len(statuses))})")
        args.extend(sorted(statuses))
    return "(" + " OR ".join(parts) + ")", args


def _field_value(name: str, value: Any) -> Any:
    """A filter value in the form the stored JSON holds (validated for known fields)."""
    spec = FIELDS_BY_NAME.get(name)
    if spec is not None:
        if spec.type == "integer" and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ValidationError(name, value, "must be a whole number") from None
        elif spec.type == "boolean" and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValidationError(name, value, "must be true or false")
            value = lowered in ("true", "1", "yes")
        value = spec.validate(value)
    if isinstance(value, bool):
        return int(value)  # json_extract gives 1 / 0 for true / false
    if value is not None and not isinstance(value, (int, float, str)):
        raise TypeError(f"cannot match field {name} against a {type(value).__name__}")
    return value


def _is_range(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value
        )
    )


#: Request fields the runs table also keeps in a column of their own.
_COLUMNS: Final = {"aspect_ratio": "aspect_ratio", "seed": "seed", "model": "model"}


def _field_clause(name: str, value: FieldFilter) -> tuple[str, list[Any]]:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a field name")
    # Fields with a column of their own are matched there (no JSON to parse per row).
    column = _COLUMNS.get(name, f"json_extract(params_json, '$.{name}')")
    if _is_range(value):
        low, high = value
        parts, args = [], []
        if low is not None:
            parts.append(f"{column} >= ?")
            args.append(low)
        if high is not None:
            parts.append(f"{column} <= ?")
            args.append(high)
        return "(" + (" AND ".join(parts) or "1") + ")", args
    if isinstance(value, (list, set, frozenset, tuple)):
        items = [_field_value(name, v) for v in value]
        if not items:
            return "0", []
        return f"{column} IN ({', '.join('?' * len(items))})", items
    return f"{column} IS ?", [_field_value(name, value)]


def _words(text: str) -> list[str]:
    try:
        parts = shlex.split(text)
    except ValueError:  # an unmatched quote: plain words
        parts = text.split()
    return [p.casefold() for p in parts if p.strip()]


@dataclass(frozen=True)
class RunQuery:
    """Which runs to find, and which page of them.

    Every criterion given must hold. ``status`` takes run states (``success``, ``failure``,
    ``error``, ``cancelled``, ``interrupted``, ``stalled``, ``running``, ``starting``), the
    groups ``failed`` (failure or error), ``active`` and ``finished``, or API statuses in
    capitals (``IN_PROGRESS``). ``since``/``until`` are inclusive (see :func:`parse_when`).
    """

    text: str = ""
    status: str | Sequence[str] | None = None
    starred: bool | None = None
    tags: Sequence[str] = ()
    since: When = None
    until: When = None
    origin: str | None = None
    model: str | None = None
    min_rating: int | None = None
    sweep_id: str | None = None
    fields: Mapping[str, FieldFilter] = field(default_factory=dict)
    limit: int | None = None
    offset: int = 0
    order: Literal["newest", "oldest"] = "newest"

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        for word in _words(self.text):
            clauses.append("instr(search, ?) > 0")
            args.append(word)
        if self.status:
            statuses = [self.status] if isinstance(self.status, str) else list(self.status)
            clause, more = _status_clause(statuses)
            clauses.append(clause)
            args.extend(more)
        if self.starred is not None:
            clauses.append("starred = ?")
            args.append(int(self.starred))
        tags = [self.tags] if isinstance(self.tags, str) else list(self.tags)
        for tag in tags:
            clauses.append(
                "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.tag = ?)"
            )
            args.append(normalise_tag(tag))
        since = parse_when(self.since)
        if since is not None:
            clauses.append("created_at >= ?")
            args.append(since)
        until = parse_when(self.until, end=True)
        if until is not None:
            # A day means all of it: until the next one starts.
            clauses.append("created_at < ?" if _is_day(self.until) else "created_at <= ?")
            args.append(until)
        if self.origin is not None:
            if self.origin not in ORIGINS:
                raise ValueError(f"unknown origin {self.origin!r}; known: {', '.join(ORIGINS)}")
            clauses.append("origin = ?")
            args.append(self.origin)
        if self.model is not None:
            clauses.append("model = ?")
            args.append(self.model)
        if self.min_rating is not None:
            clauses.append("rating >= ?")
            args.append(int(self.min_rating))
        if self.sweep_id is not None:
            clauses.append("sweep_id = ?")
            args.append(self.sweep_id)
        for name, value in self.fields.items():
            clause, more = _field_clause(name, value)
            clauses.append(clause)
            args.extend(more)
        return (" AND ".join(clauses) or "1"), args

    def order_by(self) -> str:
        direction = "DESC" if self.order == "newest" else "ASC"
        return f"ORDER BY created_at {direction}, id {direction}"

    def page_clause(self) -> tuple[str, list[Any]]:
        if self.limit is None:
            return ("LIMIT -1 OFFSET ?" if self.offset else ""), (
                [self.offset] if self.offset else []
            )
        if self.limit < 0 or self.offset < 0:
            raise ValueError("limit and offset must not be negative")
        return "LIMIT ? OFFSET ?", [self.limit, self.offset]


def normalise_tag(tag: str) -> str:
    """Tags are trimmed, single-spaced text of 1..64 characters; compared as written."""
    if not isinstance(tag, str):
        raise TypeError(f"a tag is text, not {type(tag).__name__}")
    cleaned = " ".join(tag.split())
    if not cleaned:
        raise ValueError("a tag must not be empty")
    if len(cleaned) > 64:
        raise ValueError(f"a tag has at most 64 characters: {cleaned[:20]!r}… has {len(cleaned)}")
    return cleaned


# --- compact rows --------------------------------------------------------------------------

ROW_COLUMNS: Final = (
    "id, task_id, created_at, finished_at, state, status, progress, model, params_json, "
    "seed_used, starred, rating, origin, source, images_state, fail_reason, error, note, "
    "outputs_json, "
    "(SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM run_tags "
    " WHERE run_id = runs.id ORDER BY tag)), "
    "(SELECT json_group_array(coalesce(thumb, '')) FROM (SELECT thumb FROM images "
    " WHERE run_id = runs.id ORDER BY idx))"
)


def compact_row(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    """One run as the history panel lists it: small, JSON, with thumbnail references."""
    (
        run_id,
        task_id,
        created_at,
        finished_at,
        state,
        status,
        progress,
        model,
        params_json,
        seed_used,
        starred,
        rating,
        origin,
        source,
        images_state,
        fail_reason,
        error,
        note,
        outputs_json,
        tags,
        thumbs,
    ) = row
    params: dict[str, Any] = json.loads(params_json)
    changed = {
        name: value
        for name, value in params.items()
        if name not in _OWN_COLUMNS
        and (name not in FIELDS_BY_NAME or FIELDS_BY_NAME[name].default != value)
    }
    prompt = str(params.get("prompt", ""))
    negative = str(params.get("negative_prompt", ""))
    return {
        "id": run_id,
        "task_id": task_id,
        "created_at": round(created_at * 1000),
        "finished_at": None if finished_at is None else round(finished_at * 1000),
        "state": state,
        "status": status,
        "progress": progress,
        "model": model,
        "prompt": prompt[:ROW_TEXT_LIMIT],
        "negative_prompt": negative[:ROW_TEXT_LIMIT],
        "aspect_ratio": params.get("aspect_ratio"),
        "changed": changed,
        "seed_used": seed_used,
        "starred": bool(starred),
        "rating": rating,
        "tags": tags.split("\x1f") if tags else [],
        "note": note[:ROW_TEXT_LIMIT],
        "origin": origin,
        "source": source,
        "outputs": len(json.loads(outputs_json)),
        "thumbs": [t or None for t in json.loads(thumbs)] if thumbs else [],
        "images_state": images_state,
        "fail_reason": fail_reason[:ROW_TEXT_LIMIT],
        "error": error[:ROW_TEXT_LIMIT],
    }


@dataclass(frozen=True)
class Page:
    """One page of compact rows, and how many runs match in all."""

    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int | None

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "total": self.total, "offset": self.offset, "limit": self.limit}
