"""A participant's allowance at a workshop proxy, as the proxy tells it to the client.

The proxy (``siray-widgets proxy``) adds these headers to every answer it gives a participant,
and serves the same facts as JSON at :data:`ME_PATH`; the client reads them into a
:class:`Quota` (``client.quota``). Both sides take the header names from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

LIMIT_HEADER: Final = "X-Siray-Quota-Limit"
REMAINING_HEADER: Final = "X-Siray-Quota-Remaining"
#: Dollars, as a decimal string; absent when the participant has no spend budget.
BUDGET_LIMIT_HEADER: Final = "X-Siray-Budget-Limit"
BUDGET_REMAINING_HEADER: Final = "X-Siray-Budget-Remaining"
#: Unix seconds; absent when the token does not expire.
EXPIRES_HEADER: Final = "X-Siray-Token-Expires"
#: ``1`` while the instructor has paused new tasks for this participant.
PAUSED_HEADER: Final = "X-Siray-Paused"
#: ``GET`` here (with the participant's token) answers ``{"code": "success", "data": {...}}``.
ME_PATH: Final = "/proxy/me"


@dataclass(frozen=True)
class Quota:
    """How many tasks (and dollars) a workshop participant has left."""

    #: Tasks allowed in all (top-ups included).
    limit: int
    #: Tasks still allowed (tasks in flight count as used).
    remaining: int
    budget_limit: Decimal | None = None
    budget_remaining: Decimal | None = None
    expires_at: datetime | None = None
    paused: bool = False

    @property
    def used(self) -> int:
        return max(0, self.limit - self.remaining)

    def describe(self) -> str:
        """``workshop: 14 of 20 left`` (and the budget, and a pause, when there are)."""
        text = f"workshop: {self.remaining} of {self.limit} left"
        if self.budget_limit is not None and self.budget_remaining is not None:
            text += f", ${self.budget_remaining:.2f} of ${self.budget_limit:.2f}"
        if self.paused:
            text += " (paused by the instructor)"
        return text

    def to_headers(self) -> dict[str, str]:
        headers = {LIMIT_HEADER: str(self.limit), REMAINING_HEADER: str(self.remaining)}
        if self.budget_limit is not None and self.budget_remaining is not None:
            headers[BUDGET_LIMIT_HEADER] = str(self.budget_limit)
            headers[BUDGET_REMAINING_HEADER] = str(self.budget_remaining)
        if self.expires_at is not None:
            headers[EXPIRES_HEADER] = str(int(self.expires_at.timestamp()))
        headers[PAUSED_HEADER] = "1" if self.paused else "0"
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Quota | None:
        """The quota in a proxy's answer; None when the answer carries none (not a proxy) or
        carries nonsense (a server that is not ours)."""
        limit = _count(headers.get(LIMIT_HEADER))
        remaining = _count(headers.get(REMAINING_HEADER))
        if limit is None or remaining is None:
            return None
        return cls(
            limit=limit,
            remaining=min(remaining, limit),
            budget_limit=_money(headers.get(BUDGET_LIMIT_HEADER)),
            budget_remaining=_money(headers.get(BUDGET_REMAINING_HEADER)),
            expires_at=_time(headers.get(EXPIRES_HEADER)),
            paused=headers.get(PAUSED_HEADER, "0").strip() == "1",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "used": self.used,
            "budget_limit": None if self.budget_limit is None else str(self.budget_limit),
            "budget_remaining": (
                None if self.budget_remaining is None else str(self.budget_remaining)
            ),
            "expires_at": None if self.expires_at is None else int(self.expires_at.timestamp()),
            "paused": self.paused,
            "describe": self.describe(),
        }

    @classmethod
    def from_json(cls, data: Any) -> Quota | None:
        """The ``data`` object of :data:`ME_PATH`'s answer; None if it is not one."""
        if not isinstance(data, Mapping):
            return None
        limit = _count(data.get("limit"))
        remaining = _count(data.get("remaining"))
        if limit is None or remaining is None:
            return None
        return cls(
            limit=limit,
            remaining=min(remaining, limit),
            budget_limit=_money(data.get("budget_limit")),
            budget_remaining=_money(data.get("budget_remaining")),
            expires_at=_time(data.get("expires_at")),
            paused=data.get("paused") is True,
        )


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10**9 else None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        return int(value)
    return None


def _money(value: object) -> Decimal | None:
    if not isinstance(value, str) or len(value) > 32:
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _time(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit() or len(value) > 12:
            return None
        value = int(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
