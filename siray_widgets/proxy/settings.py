"""One workshop proxy's configuration: where it forwards, the limits it keeps, its prices.

Kept free of heavy imports: ``siray_widgets.proxy`` imports this module eagerly.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..config import Secret, data_dir
from ..schema import MODEL_ID

if TYPE_CHECKING:
    from ..registry import Registry

#: Environment variable with the admin token (preferred to ``--admin-token``: the process list
#: shows command-line arguments to every user of the machine).
ADMIN_TOKEN_ENV: Final = "SIRAY_PROXY_ADMIN_TOKEN"
#: The proxy's database, in the package's data folder unless ``--db`` says otherwise.
DB_NAME: Final = "workshop-proxy.sqlite3"

#: Price of one task of ``model`` in dollars, or None when unknown: from the model registry
#: (:func:`registry_prices`), or one fixed ``price_per_task`` for every model.
PriceLookup = Callable[[str], Decimal | None]


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """``workshop-proxy.sqlite3`` in the data folder (``SIRAY_WIDGETS_HOME`` moves it)."""
    return data_dir(environ=environ) / DB_NAME


def registry_prices(registry: Registry) -> PriceLookup:
    """Prices per task as ``registry`` publishes them (None for unknown models and prices)."""

    def lookup(model: str) -> Decimal | None:
        try:
            return registry.get(model).unit_price
        except LookupError:
            return None

    return lookup


def fixed_price(price: Decimal | None) -> PriceLookup:
    """A price lookup that knows one price for every model (None: no price known)."""

    def lookup(model: str) -> Decimal | None:
        return price

    return lookup


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"3h"``, ``"90m"``, ``"1h30m"``, ``"2d"`` or plain seconds -> seconds (> 0).

    Raises ValueError with a message that names the accepted forms.
    """
    value = text.strip().lower().replace(" ", "")
    seconds: float | None = None
    if value and re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    elif value and re.fullmatch(rf"(?:{_DURATION.pattern})+", value, re.IGNORECASE):
        seconds = sum(float(n) * _UNIT[u.lower()] for n, u in _DURATION.findall(value))
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"{text!r} is not a duration; write it like 3h, 90m, 1h30m, 2d or a number of seconds"
        )
    return seconds


def parse_money(text: str | Decimal | float | int, what: str = "amount") -> Decimal:
    """Dollars as a Decimal >= 0 with at most 6 decimals (the ledger counts micro-dollars)."""
    try:
        amount = Decimal(str(text).strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(
            f"{what} {text!r} is not an amount of dollars (write it like 2.50)"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} {text!r} must be an amount of dollars >= 0")
    if amount != amount.quantize(Decimal("0.000001")):
        raise ValueError(f"{what} {text!r} has more than 6 decimals")
    return amount


def micros(amount: Decimal) -> int:
    return int(amount * 1_000_000)


def dollars(amount_micros: int) -> Decimal:
    return (Decimal(amount_micros) / 1_000_000).quantize(Decimal("0.000001")).normalize()


@dataclass(frozen=True)
class Limits:
    """Per-participant and per-address limits (in-memory; they reset when the proxy restarts)."""

    #: Requests of one participant in flight at once (both endpoints).
    concurrency: int = 4
    #: Creates: burst size, then this many per minute.
    create_burst: int = 10
    creates_per_minute: float = 20.0
    #: Status queries: burst size, then this many per second.
    poll_burst: int = 30
    polls_per_second: float = 5.0
    #: Wrong tokens from one client address: burst, then this many per minute.
    bad_token_burst: int = 20
    bad_tokens_per_minute: float = 10.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"limit {field.name}={value!r} must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"limit {field.name}={value!r} must be a positive number")

    @classmethod
    def unlimited(cls) -> Limits:
        """Limits no test or benchmark reaches (a million of everything)."""
        big = 1_000_000
        return cls(big, big, big, big, big, big, big)


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy app needs once it runs (participants live in the database)."""

    #: Where the real API is, without a trailing slash.
    upstream_url: str
    #: The real key (never shown: :class:`~siray_widgets.config.Secret`).
    upstream_key: Secret = dataclasses.field(repr=False)
    #: The admin token (page and JSON endpoints).
    admin_token: Secret = dataclasses.field(repr=False)
    #: Models participants may use; anything else is refused before it costs anything.
    models: frozenset[str] = frozenset({MODEL_ID})
    #: What a task costs, per model (None: unknown). Budgets need a known price.
    prices: PriceLookup = dataclasses.field(default=fixed_price(None), repr=False)
    #: Whether a task that ends in FAILURE stays charged (True) or is refunded (False).
    charge_failures: bool = True
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: Serve the admin page to other machines too (only with TLS).
    admin_remote: bool = False
    #: Path prefix the proxy is served under (a JupyterHub service: ``/services/NAME``).
    prefix: str = ""
    #: Largest create body accepted, in bytes.
    max_body_bytes: int = 64 * 1024
    #: Seconds to wait for the upstream's answer to a create: less than the client's own 30 s,
    #: so that a participant hears "no answer" from the proxy rather than timing out blind.
    create_timeout: float = 25.0
    #: Seconds to wait for the upstream's answer to a status query.
    status_timeout: float = 20.0
    #: JupyterHub identity (``hub.HubSettings``), or None: tokens only.
    hub: Any = None

    def __post_init__(self) -> None:
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ValueError(f"prefix {self.prefix!r} must start with / and not end with /")
        if not self.models:
            raise ValueError("models must name at least one model participants may use")
