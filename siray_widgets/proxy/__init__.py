"""The workshop proxy: one real key on the instructor's machine, tokens for participants.

It speaks the API's two endpoints, so the widget, the CLI, the official SDK and curl work
through it by changing only the base URL and using a workshop token as the key. It forwards
to an upstream (Siray, or a sandbox for rehearsal) with the real key, which it never shows,
and keeps every participant's quota in SQLite.

>>> from siray_widgets import proxy
>>> with proxy.start(upstream="sandbox", db="class.db", participants=3) as p:  # doctest: +SKIP
...     print(p.base_url, [i.token for i in p.issued])

``siray-widgets proxy`` is the command for people (:mod:`siray_widgets.cli_proxy`);
docs/workshop.md is the instructor's checklist. Starlette and uvicorn load only here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..config import API_KEY_ENV, Secret, check_base_url, check_key
from ..errors import ConfigurationError
from ..schema import MODEL_ID
from .ledger import Issued, Ledger, LedgerThread, Usage, numbered_names
from .roster import RosterEntry, read_roster
from .settings import (
    ADMIN_TOKEN_ENV,
    Limits,
    PriceLookup,
    ProxySettings,
    default_db_path,
    fixed_price,
    parse_duration,
    parse_money,
    registry_prices,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..sandbox import SandboxHandle
    from ..sandbox.server import BackgroundServer
    from .app import ProxyState
    from .hub import HubSettings

__all__ = ["Issued", "Limits", "ProxyHandle", "Usage", "start"]


class ProxyHandle:
    """A running proxy: where it is, the tokens made at start, and how to stop it."""

    def __init__(
        self,
        server: BackgroundServer,
        state: ProxyState,
        *,
        scheme: str,
        issued: list[Issued],
        sandbox: SandboxHandle | None,
    ) -> None:
        self._server = server
        self._state = state
        self._sandbox = sandbox
        host = server.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        shown = f"[{host}]" if ":" in host else host
        #: How this machine reaches the proxy, e.g. ``http://127.0.0.1:8000`` (no trailing /).
        self.base_url = f"{scheme}://{shown}:{server.port}{state.settings.prefix}"
        #: Participants made by this start (with their tokens: the only time they are seen).
        self.issued = issued
        self.db_path: Path = state.ledger.path
        self.upstream_url = state.settings.upstream_url
        #: Reservations found cut off by a crash when the database was opened (now charged).
        self.recovered = state.ledger.recovered

    @property
    def admin_token(self) -> str:
        return self._state.settings.admin_token.reveal()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def running(self) -> bool:
        return self._server.running

    @property
    def sandbox(self) -> SandboxHandle | None:
        """The sandbox started as the upstream (``upstream="sandbox"``), if any."""
        return self._sandbox

    @property
    def forwarded(self) -> dict[str, int]:
        """Creates forwarded upstream since start, by outcome (created, refused, uncertain)."""
        return dict(self._state.forwarded)

    def prices(self) -> dict[str, Decimal | None]:
        """The price per task of each model participants may use (None: unknown)."""
        settings = self._state.settings
        return {model: settings.prices(model) for model in sorted(settings.models)}

    def usage(self) -> list[Usage]:
        """Every participant's standing, from the database."""
        return self._state.ledger.call(Ledger.all_usage)

    def participant(self, name: str) -> Usage | None:
        return self._state.ledger.call(Ledger.by_name, name)

    def add_participants(
        self,
        names: Sequence[str],
        *,
        quota: int | None = None,
        budget: Decimal | None = None,
        expires_at: float | None = None,
    ) -> list[Issued]:
        defaults = self._state.defaults
        return self._state.ledger.call(
            Ledger.add,
            names,
            quota=defaults.quota if quota is None else quota,
            budget=defaults.budget if budget is None else budget,
            expires_at=defaults.expires_at if expires_at is None else expires_at,
        )

    def set_paused(self, name: str | None, paused: bool = True) -> None:
        """Pause (or resume) one participant by name, or everyone (None)."""
        pid = None
        if name is not None:
            found = self.participant(name)
            if found is None:
                raise LookupError(f"no participant named {name!r}")
            pid = found.participant_id
        self._state.ledger.call(Ledger.set_paused, pid, paused)

    def top_up(self, name: str, tasks: int = 0, budget: Decimal | None = None) -> None:
        found = self.participant(name)
        if found is None:
            raise LookupError(f"no participant named {name!r}")
        self._state.ledger.call(Ledger.top_up, found.participant_id, tasks=tasks, budget=budget)

    def stop(self) -> None:
        """Stop serving, close the database, stop the rehearsal sandbox (idempotent)."""
        self._server.stop()
        self._state.ledger.close()
        if self._sandbox is not None:
            self._sandbox.stop()

    def __enter__(self) -> ProxyHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ProxyHandle {self.base_url} -> {self.upstream_url} {state}>"


def _tls(certfile: str | os.PathLike[str] | None, keyfile: str | os.PathLike[str] | None) -> None:
    if certfile is None:
        if keyfile is not None:
            raise ValueError("a key file (--keyfile) needs its certificate (--certfile)")
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ValueError(
            f"cannot use the certificate {certfile} (key {keyfile or 'in the same file'}): {reason}"
        ) from None


def _upstream(
    upstream: str, upstream_key: str | Secret | None, sandbox_config: Mapping[str, Any] | None
) -> tuple[str, Secret, SandboxHandle | None]:
    if upstream == "sandbox":
        from .. import sandbox as sandbox_module

        # A key of its own, so that only this proxy can use it (it listens on loopback).
        config = {"duration": sandbox_module.DEFAULT_DURATION, **(sandbox_config or {})}
        config.setdefault("api_key", "sandbox-" + secrets.token_urlsafe(24))
        box = sandbox_module.start(**config)
        return box.base_url, Secret(box.api_key), box
    if isinstance(upstream_key, Secret):
        key = upstream_key.reveal().strip()
    else:
        key = (upstream_key or os.environ.get(API_KEY_ENV, "")).strip()
    if not key:
        raise ConfigurationError(
            f"forwarding to {upstream} needs the real API key: set {API_KEY_ENV} on this machine "
            "(or use --upstream sandbox to rehearse)"
        )
    check_key(key, f"in {API_KEY_ENV}")
    check_base_url(upstream, with_key=True)
    return upstream.rstrip("/"), Secret(key), None


def _entries(
    participants: int | None, roster: Sequence[str] | str | os.PathLike[str] | None
) -> list[RosterEntry]:
    if participants is not None and roster is not None:
        raise ValueError("give participants (a number) or a roster, not both")
    if participants is not None:
        if isinstance(participants, bool) or not 0 <= participants <= 10_000:
            raise ValueError(f"participants={participants!r} must be a number 0..10000")
        return [RosterEntry(name) for name in numbered_names(participants)]
    if roster is None:
        return []
    if isinstance(roster, (str, os.PathLike)):
        return read_roster(Path(roster))
    return [RosterEntry(name) for name in roster]


def start(
    *,
    upstream: str = "sandbox",
    upstream_key: str | Secret | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    db: str | os.PathLike[str] | None = None,
    participants: int | None = None,
    roster: Sequence[str] | str | os.PathLike[str] | None = None,
    quota: int = 20,
    budget: Decimal | str | float | None = None,
    price_per_task: Decimal | str | float | None = None,
    prices: PriceLookup | None = None,
    expires: float | str | None = None,
    admin_token: str | None = None,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    sandbox: Mapping[str, Any] | None = None,
    charge_failures: bool = True,
    limits: Limits | None = None,
    models: Sequence[str] | None = None,
    admin_remote: bool = False,
    prefix: str = "",
    hub: HubSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> ProxyHandle:
    """Start a workshop proxy in a background thread and return its handle.

    ``upstream`` is the API's base URL (the real key comes from ``upstream_key`` or
    ``SIRAY_API_KEY``) or ``"sandbox"``, which starts a sandbox for it (``sandbox=`` takes its
    settings). ``db`` defaults to the data folder. ``participants`` (a count) or ``roster``
    (names, or a CSV path) adds participants whose names are not there yet, each with
    ``quota`` tasks, a ``budget`` in dollars (needs a price: ``price_per_task`` for every
    model, else a ``prices`` lookup by model, else the model registry's local copy) and a
    token that ``expires`` after so long (seconds or "3h").
    ``admin_token`` defaults to ``SIRAY_PROXY_ADMIN_TOKEN`` or a new random one.
    ``certfile``/``keyfile`` serve HTTPS. ``charge_failures=False`` refunds tasks that end in
    FAILURE. Bad values are a ``ValueError`` before anything starts; a port in use, an
    ``OSError``; a database another proxy holds, a ``RuntimeError``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port={port!r} must be an integer 0..65535 (0 picks a free port)")
    _tls(certfile, keyfile)
    if admin_remote and certfile is None:
        raise ValueError(
            "the admin page is offered to other machines only over HTTPS (--certfile): its "
            "token would otherwise cross the network in the clear"
        )
    entries = _entries(participants, roster)
    if price_per_task is not None:
        lookup = fixed_price(parse_money(price_per_task, "price per task"))
    elif prices is not None:
        lookup = prices
    else:
        from .. import registry  # the local copy (cache or snapshot): no network here

        lookup = registry_prices(registry.current())
    allowed = frozenset(models) if models is not None else frozenset({MODEL_ID})
    budget_amount = None if budget is None else parse_money(budget, "budget")
    if budget_amount is not None or any(e.budget is not None for e in entries):
        unknown = sorted(m for m in allowed if lookup(m) is None)
        if unknown:
            raise ValueError(
                f"a spend budget needs the price of a task, and none is known for "
                f"{', '.join(unknown)}; give one (--price-per-task USD)"
            )
    expires_at = None
    if expires is not None:
        seconds = parse_duration(expires) if isinstance(expires, str) else float(expires)
        if not seconds > 0:
            raise ValueError(f"expires={expires!r} must be a positive duration")
        expires_at = clock() + seconds
    token_text = (admin_token or os.environ.get(ADMIN_TOKEN_ENV, "")).strip() or (
        secrets.token_urlsafe(24)
    )
    check_key(token_text, "given as the admin token", "choose one without such characters")
    path = Path(db) if db is not None else default_db_path()

    upstream_url, key, box = _upstream(upstream, upstream_key, sandbox)
    ledger: LedgerThread | None = None
    try:
        ledger = LedgerThread(path, clock=clock)
        issued = _add_entries(ledger, entries, quota, budget_amount, expires_at)
        settings = ProxySettings(
            upstream_url=upstream_url,
            upstream_key=key,
            admin_token=Secret(token_text),
            models=allowed,
            prices=lookup,
            charge_failures=charge_failures,
            limits=limits or Limits(),
            admin_remote=admin_remote,
            prefix=prefix.rstrip("/"),
            hub=hub,
        )
        from ..sandbox.server import BackgroundServer
        from .app import Defaults, ProxyState

        state = ProxyState(
            settings, ledger, defaults=Defaults(quota, budget_amount, expires_at), clock=clock
        )
        options: dict[str, Any] = {"lifespan": "on"}
        if certfile is not None:
            options.update(ssl_certfile=os.fspath(certfile))
            if keyfile is not None:
                options.update(ssl_keyfile=os.fspath(keyfile))
        server = BackgroundServer(_app(state), host, port, name="siray-proxy", **options)
        server.start()
    except BaseException:
        if ledger is not None:
            ledger.close()
        if box is not None:
            box.stop()
        raise
    scheme = "https" if certfile is not None else "http"
    return ProxyHandle(server, state, scheme=scheme, issued=issued, sandbox=box)


def _add_entries(
    ledger: LedgerThread,
    entries: list[RosterEntry],
    quota: int,
    budget: Decimal | None,
    expires_at: float | None,
) -> list[Issued]:
    """Add the entries whose names are new (a second start with the same list adds none)."""
    existing = set(ledger.call(Ledger.names))
    issued: list[Issued] = []
    for entry in entries:
        if entry.name in existing:
            continue
        issued += ledger.call(
            Ledger.add,
            [entry.name],
            quota=quota if entry.quota is None else entry.quota,
            budget=budget if entry.budget is None else entry.budget,
            expires_at=expires_at,
        )
    return issued


def _app(state: ProxyState) -> Starlette:
    from .app import create_app

    app = create_app(state)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await state.aclose()  # the upstream's connection pool belongs to this loop

    app.router.lifespan_context = lifespan
    return app
