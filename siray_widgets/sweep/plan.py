"""What running a sweep would do, before anything is sent, and the refusal above the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..errors import SirayError
from ..task import IMAGES_PER_TASK


class ConfirmationRequired(SirayError):
    """Running the sweep would send more tasks than run without asking; nothing was sent."""

    def __init__(self, plan: SweepPlan, how: str = "confirm=True") -> None:
        self.plan = plan
        super().__init__(
            f"this sweep would send {plan.text()} — more than the {plan.confirm_above} task"
            f"{'s' * (plan.confirm_above != 1)} that run without asking. Nothing was sent. Run "
            f"it with {how} to send them (or raise the threshold: "
            f"session_budget().confirm_above = {plan.send})."
        )


@dataclass(frozen=True)
class SweepPlan:
    """What running a sweep would do, before anything is sent."""

    #: Cells in all.
    total: int
    #: Cells whose result an earlier run already has (nothing is sent for them).
    reuse: int
    #: Cells whose task an earlier run created: followed again, nothing is paid twice.
    follow: int
    #: Create requests this run would send (cells missing, failed, refused or cancelled).
    send: int
    #: Price of one task (None: unknown); ``free`` for the sandbox.
    unit_price: Decimal | None
    free: bool
    confirm_above: int
    #: Tasks the session's cap still allows (None: no cap).
    remaining: int | None

    @property
    def images(self) -> int:
        return self.send * IMAGES_PER_TASK

    @property
    def cost(self) -> Decimal | None:
        if self.free:
            return Decimal(0)
        return None if self.unit_price is None else self.unit_price * self.send

    @property
    def needs_confirmation(self) -> bool:
        return self.send > self.confirm_above

    def cost_text(self) -> str:
        from ..registry import format_money

        if self.free:
            return "no cost (sandbox)"
        if self.cost is None:
            return "price unknown"
        return f"estimated cost {format_money(self.cost)}"

    def text(self) -> str:
        """``12 tasks (48 images, estimated cost $0.60)``."""
        noun = "task" if self.send == 1 else "tasks"
        return f"{self.send} {noun} ({self.images} images, {self.cost_text()})"

    def __str__(self) -> str:
        parts = [f"{self.total} cell{'s' * (self.total != 1)}"]
        if self.reuse:
            parts.append(f"{self.reuse} done earlier")
        if self.follow:
            parts.append(f"{self.follow} followed again")
        parts.append(f"{self.text()} to send")
        if self.remaining is not None and self.send > self.remaining:
            parts.append(f"the session cap allows {self.remaining} more")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "reuse": self.reuse,
            "follow": self.follow,
            "send": self.send,
            "images": self.images,
            "unit_price": None if self.unit_price is None else str(self.unit_price),
            "free": self.free,
            "cost": None if self.cost is None else str(self.cost),
            "cost_text": self.cost_text(),
            "confirm_above": self.confirm_above,
            "needs_confirmation": self.needs_confirmation,
            "remaining": self.remaining,
            "text": str(self),
        }
