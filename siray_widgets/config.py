"""Where requests go and with which key: argument, environment, or the offline sandbox.

Resolution, first match wins:

1. ``api_key=`` / ``base_url=`` arguments;
2. the ``SIRAY_API_KEY`` / ``SIRAY_BASE_URL`` environment variables;
3. neither a key nor a base URL anywhere: the embedded sandbox (placeholder images, no key).

A base URL without a key sends no ``Authorization`` header: the server answers 401 and the
user gets an :class:`~siray_widgets.errors.AuthenticationError` saying to set ``SIRAY_API_KEY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

DEFAULT_BASE_URL: Final = "https://api.siray.ai"
API_KEY_ENV: Final = "SIRAY_API_KEY"
BASE_URL_ENV: Final = "SIRAY_BASE_URL"

KeySource = Literal["argument", "environment", "sandbox", "none"]


class Secret:
    """A string that never shows itself: repr, str and format all print a mask.

    Only :meth:`reveal` returns the value, and only the client calls it, to build the
    ``Authorization`` header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"an API key must be a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key into whatever file the pickle lands in.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Settings:
    """The resolved connection settings of one client."""

    base_url: str
    api_key: Secret | None
    key_source: KeySource
    sandbox: bool

    def describe(self) -> str:
        """One human line saying where requests go (never the key itself)."""
        if self.sandbox:
            return "sandbox: placeholder images, no key used"
        if self.api_key is None:
            return f"{self.base_url} without an API key: set {API_KEY_ENV} to authenticate"
        if self.key_source == "environment":
            return f"{self.base_url} with the key from {API_KEY_ENV}"
        return f"{self.base_url} with the key passed as api_key"


def _clean(value: str | None) -> str | None:
    """Blank counts as unset: ``SIRAY_API_KEY=`` in a shell file should not send ``Bearer ``."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def resolve(
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve key and base URL (see the module docstring); may start the sandbox."""
    env = os.environ if environ is None else environ

    key: Secret | None
    source: KeySource
    if isinstance(api_key, Secret):
        key, source = (api_key, "argument") if _clean(api_key.reveal()) else (None, "none")
    elif (text := _clean(api_key)) is not None:
        key, source = Secret(text), "argument"
    elif (text := _clean(env.get(API_KEY_ENV))) is not None:
        key, source = Secret(text), "environment"
    else:
        key, source = None, "none"

    url = _clean(base_url) or _clean(env.get(BASE_URL_ENV))
    if key is None and url is None:
        # Imported here: the sandbox pulls in uvicorn and Pillow, and starts a server.
        from . import sandbox

        handle = sandbox.shared()
        return Settings(
            base_url=handle.base_url.rstrip("/"),
            api_key=Secret(handle.api_key),
            key_source="sandbox",
            sandbox=True,
        )
    return Settings(
        base_url=(url or DEFAULT_BASE_URL).rstrip("/"),
        api_key=key,
        key_source=source,
        sandbox=False,
    )
