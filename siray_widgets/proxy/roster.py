"""Class lists in and tokens out: the roster CSV a teacher has, the tokens CSV they hand out."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from .ledger import Issued, clean_name
from .settings import parse_money

#: The tokens CSV's columns, in order (the header row).
TOKEN_COLUMNS = ("token", "name", "quota", "budget_usd", "expires_at", "base_url")
#: Largest roster read, in bytes.
MAX_ROSTER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RosterEntry:
    name: str
    #: This person's own quota or budget, when the roster has the column (else the default).
    quota: int | None = None
    budget: Decimal | None = None


class RosterError(ValueError):
    """A roster that cannot be read; the message names the file and the line."""


def read_roster(path: Path) -> list[RosterEntry]:
    """Names from a CSV: a header row with a ``name`` column (and optionally ``quota`` and
    ``budget``), or no header and one name a line (the first cell). Blank lines and lines
    starting with ``#`` are skipped; a name twice is an error."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RosterError(f"cannot read the roster {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_ROSTER_BYTES:
        raise RosterError(f"the roster {path} is larger than {MAX_ROSTER_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RosterError(f"the roster {path} is not UTF-8 text (save it as CSV UTF-8)") from None
    rows = [
        (number, row)
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1)
        if row and any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")
    ]
    if not rows:
        raise RosterError(f"the roster {path} holds no names")
    header = [cell.strip().lower() for cell in rows[0][1]]
    columns = {"name": 0}
    if "name" in header:
        columns = {key: header.index(key) for key in ("name", "quota", "budget") if key in header}
        rows = rows[1:]
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        where = f"{path}, line {number}"

        def cell(key: str, row: list[str] = row) -> str:
            index = columns.get(key)
            return row[index].strip() if index is not None and index < len(row) else ""

        try:
            name = clean_name(cell("name"))
            quota = int(cell("quota")) if cell("quota") else None
            if quota is not None and quota < 0:
                raise ValueError(f"quota {quota} must be 0 or more")
            budget = parse_money(cell("budget"), "budget") if cell("budget") else None
        except ValueError as exc:
            raise RosterError(f"{where}: {exc}") from None
        if name in seen:
            raise RosterError(f"{where}: {name!r} is also on line {seen[name]}")
        seen[name] = number
        entries.append(RosterEntry(name, quota, budget))
    return entries


def _expiry_text(expires_at: float | None) -> str:
    if expires_at is None:
        return ""
    return datetime.fromtimestamp(expires_at).astimezone().isoformat(timespec="seconds")


def token_rows(issued: Sequence[Issued], base_url: str) -> list[list[str]]:
    return [
        [
            i.token,
            i.name,
            str(i.quota),
            "" if i.budget is None else str(i.budget),
            _expiry_text(i.expires_at),
            base_url,
        ]
        for i in issued
    ]


def write_tokens(path: Path, issued: Sequence[Issued], base_url: str) -> None:
    """Write (or append to) the tokens CSV, readable by its owner only.

    An existing file is appended to when it has the same header (a second run that adds
    participants); any other file is left alone and the error says so.
    """
    rows = token_rows(issued, base_url)
    exists = path.exists()
    if exists:
        try:
            with path.open(newline="", encoding="utf-8") as existing:
                first = next(csv.reader(existing), [])
        except OSError as exc:
            raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
        if tuple(first) != TOKEN_COLUMNS:
            raise FileExistsError(
                f"{path} exists and is not a tokens file from this proxy; choose another "
                "--tokens-out"
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        if not exists:
            writer.writerow(TOKEN_COLUMNS)
        writer.writerows(rows)
