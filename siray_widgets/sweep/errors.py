"""The one error a sweep definition raises: it names the axis (or cell) and the value."""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError


class SweepError(ValidationError):
    """A sweep that cannot be defined: an invalid value, a conflict, too many cells.

    ``axis`` names where the problem is (``"X axis (stylize)"``, a cell, ``"prompt"``);
    ``value`` is the offending value (None when there is none). A :class:`ValidationError`,
    so code that catches invalid requests catches these too.
    """

    def __init__(self, axis: str, value: Any, problem: str) -> None:
        self.axis = axis
        self.field = axis
        self.value = value
        self.problem = problem
        shown = "" if value is None else f"{shown_value(value)} "
        Exception.__init__(self, f"{axis}: {shown}{problem}")


def shown_value(value: Any, limit: int = 60) -> str:
    """A value as it appears in a message: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
