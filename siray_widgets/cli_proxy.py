"""``siray-widgets proxy``: the workshop proxy in the foreground, for an instructor.

    siray-widgets proxy --upstream URL|sandbox [--host 127.0.0.1] [--port N] [--db PATH]
        [--participants N | --roster FILE] [--quota N] [--budget USD] [--expires 3h]
        [--tokens-out tokens.csv] [--admin-token TOKEN]

Started again with the same ``--db`` and no participant options, it carries on with the same
participants, tokens and usage. docs/workshop.md is the instructor's checklist.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .cli import EXIT_API, EXIT_OK, EXIT_USAGE, CommandError, Subparsers, port_number

if TYPE_CHECKING:
    from .proxy import ProxyHandle

DEFAULT_PORT = 8766
DEFAULT_TOKENS_OUT = "workshop-tokens.csv"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register the ``proxy`` subcommand."""
    from .config import API_KEY_ENV, WORKSHOP_HTTP_ENV
    from .proxy.settings import ADMIN_TOKEN_ENV

    parser = subparsers.add_parser(
        "proxy",
        help="run a workshop proxy: one real key here, tokens and quotas for participants",
        description=(
            "Forward the Siray image API for a class: participants use a workshop token as "
            f"their key; the real key ({API_KEY_ENV} on this machine) never leaves it. Each "
            "token has a quota of tasks (and optionally a spend budget and an expiry); usage "
            "is kept in SQLite and survives restarts. Admin page at /admin. "
            f"Environment: {ADMIN_TOKEN_ENV} sets the admin token (better than --admin-token, "
            f"which other users can see in the process list). Participants on other machines: "
            f"HTTPS with --certfile/--keyfile, or plain http on a private network with "
            f"{WORKSHOP_HTTP_ENV}=1 on their side (see docs/workshop.md)."
        ),
    )
    parser.add_argument(
        "--upstream",
        required=True,
        metavar="URL|sandbox",
        help="where to forward: the API's base URL (https://api.siray.ai) or 'sandbox' to "
        "rehearse on a local sandbox (no key, placeholder images)",
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    net.add_argument(
        "--port", type=port_number, default=None, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    net.add_argument("--certfile", type=Path, help="serve HTTPS with this certificate (PEM)")
    net.add_argument("--keyfile", type=Path, help="the certificate's private key (PEM)")
    net.add_argument(
        "--public-url",
        metavar="URL",
        help="the base URL participants use (default: worked out from --host)",
    )
    people = parser.add_argument_group("participants")
    who = people.add_mutually_exclusive_group()
    who.add_argument(
        "--participants",
        type=_count,
        metavar="N",
        help="make participant-01 ... participant-N (those not in the database yet)",
    )
    who.add_argument(
        "--roster",
        type=Path,
        metavar="FILE",
        help="a CSV of names (a 'name' column, optionally 'quota' and 'budget'; or one a line)",
    )
    people.add_argument(
        "--quota", type=_count, default=20, help="tasks per participant (default 20)"
    )
    people.add_argument("--budget", metavar="USD", help="spend budget per participant, dollars")
    people.add_argument(
        "--price-per-task",
        metavar="USD",
        help="what one task costs, for budgets (until prices come from the model registry)",
    )
    people.add_argument("--expires", metavar="DURATION", help="tokens stop working after, e.g. 3h")
    people.add_argument(
        "--tokens-out",
        type=Path,
        default=None,
        metavar="CSV",
        help=f"write new tokens here (default {DEFAULT_TOKENS_OUT}; appended to if it exists)",
    )
    people.add_argument(
        "--refund-failures",
        action="store_true",
        help="give back a task that ends in FAILURE (default: it stays charged)",
    )
    admin = parser.add_argument_group("admin and storage")
    admin.add_argument(
        "--db", type=Path, help="accounting database (default: in the siray-widgets data folder)"
    )
    admin.add_argument("--admin-token", metavar="TOKEN", help="password of the admin page")
    admin.add_argument(
        "--admin-remote",
        action="store_true",
        help="serve the admin page to other machines too (needs --certfile)",
    )
    limits = parser.add_argument_group("limits per participant")
    limits.add_argument(
        "--concurrency", type=_count, default=4, help="requests at once (default 4)"
    )
    limits.add_argument(
        "--creates-per-minute", type=_positive, default=20.0, help="new tasks a minute (default 20)"
    )
    limits.add_argument(
        "--allow-model",
        action="append",
        metavar="MODEL",
        help="a model participants may use (repeat; default: niji 7 only)",
    )
    hub = parser.add_argument_group("JupyterHub")
    hub.add_argument(
        "--hub",
        action="store_true",
        help="accept participants' JupyterHub identity (run as a hub service; see docs)",
    )
    rehearse = parser.add_argument_group("rehearsal (--upstream sandbox)")
    rehearse.add_argument(
        "--sandbox-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a sandbox task takes (default 3)",
    )
    rehearse.add_argument(
        "--sandbox-fail-rate", type=float, default=None, metavar="SHARE", help="0..1"
    )
    parser.set_defaults(run=run)


def lan_address() -> str | None:
    """This machine's address on its main network (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address: str = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def public_url(handle: ProxyHandle, host: str, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        address = lan_address()
        if address is None:
            return handle.base_url
        scheme = urlsplit(handle.base_url).scheme
        return f"{scheme}://{address}:{handle.port}{urlsplit(handle.base_url).path}"
    return handle.base_url.replace("127.0.0.1", host, 1) if host != "127.0.0.1" else handle.base_url


def _setup_logging() -> None:
    logger = logging.getLogger("siray_widgets.proxy")
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)


def _hub_options(args: argparse.Namespace) -> dict[str, Any]:
    if not args.hub:
        return {}
    from .proxy.hub import HubSettings

    options: dict[str, Any] = {"hub": HubSettings.from_env()}
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "").strip().rstrip("/")
    if prefix:
        options["prefix"] = prefix
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL", "").strip()
    if service_url:
        parts = urlsplit(service_url)
        if args.host is None and parts.hostname:
            options["host"] = parts.hostname
        if args.port is None and parts.port:
            options["port"] = parts.port
    return options


def run(args: argparse.Namespace) -> int:
    _setup_logging()
    sandbox: dict[str, Any] = {}
    if args.sandbox_duration is not None:
        sandbox["duration"] = args.sandbox_duration
    if args.sandbox_fail_rate is not None:
        sandbox["failure_share"] = args.sandbox_fail_rate
    if sandbox and args.upstream != "sandbox":
        raise CommandError("--sandbox-* options need --upstream sandbox", EXIT_USAGE)
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1", EXIT_USAGE)
    # SIGTERM stops the proxy cleanly from the moment anyone can see it started.
    stop = threading.Event()
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        return _run(args, sandbox, stop)
    finally:
        signal.signal(signal.SIGTERM, previous_term)


def _run(args: argparse.Namespace, sandbox: dict[str, Any], stop: threading.Event) -> int:
    from . import proxy
    from .config import is_loopback
    from .proxy.ledger import LedgerLockedError
    from .proxy.roster import RosterError, write_tokens
    from .proxy.settings import ADMIN_TOKEN_ENV, Limits

    upstream_host = urlsplit(args.upstream).hostname or ""
    if (
        args.price_per_task is None
        and args.upstream != "sandbox"
        and not is_loopback(upstream_host)
    ):
        from . import registry

        try:
            registry.load()  # today's prices for budgets (a day's cache; offline: the last copy)
        except ValueError as exc:  # a SIRAY_GATEWAY_URL that cannot work
            raise CommandError(str(exc), EXIT_USAGE) from None
    options: dict[str, Any] = {
        "host": args.host or "127.0.0.1",
        "port": DEFAULT_PORT if args.port is None else args.port,
        **_hub_options(args),
    }
    try:
        handle = proxy.start(
            upstream=args.upstream,
            db=args.db,
            participants=args.participants,
            roster=args.roster,
            quota=args.quota,
            budget=args.budget,
            price_per_task=args.price_per_task,
            expires=args.expires,
            admin_token=args.admin_token,
            certfile=args.certfile,
            keyfile=args.keyfile,
            sandbox=sandbox or None,
            charge_failures=not args.refund_failures,
            limits=Limits(
                concurrency=args.concurrency,
                creates_per_minute=args.creates_per_minute,
                # A participant allowed N requests at once may start N tasks at once.
                create_burst=max(Limits.create_burst, args.concurrency),
            ),
            models=args.allow_model,
            admin_remote=args.admin_remote,
            **options,
        )
    except (ValueError, RosterError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except (LedgerLockedError, RuntimeError) as exc:
        raise CommandError(str(exc), EXIT_API) from None
    except OSError as exc:
        where = f"{options['host']}:{options['port']}"
        raise CommandError(f"cannot start on {where}: {exc.strerror or exc}", EXIT_API) from None
    try:
        url = public_url(handle, options["host"], args.public_url)
        if handle.issued:
            out = args.tokens_out or Path(DEFAULT_TOKENS_OUT)
            try:
                write_tokens(out, handle.issued, url)
            except OSError as exc:
                raise CommandError(f"cannot write the tokens: {exc}", EXIT_API) from None
        token_note = (
            "given with --admin-token"
            if args.admin_token
            else f"from {ADMIN_TOKEN_ENV}"
            if os.environ.get(ADMIN_TOKEN_ENV, "").strip()
            else handle.admin_token
        )
        print(_banner(handle, url, args, token_note), flush=True)
        return _serve(handle, stop)
    finally:
        # A second Ctrl-C while stopping would leave the database lock and a half-closed
        # server behind; stopping takes well under a second.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            handle.stop()
        finally:
            signal.signal(signal.SIGINT, previous)


def _banner(handle: ProxyHandle, url: str, args: argparse.Namespace, token_note: str) -> str:
    from .config import WORKSHOP_HTTP_ENV, is_loopback, is_private_address

    usage = handle.usage()
    upstream = "a rehearsal sandbox" if handle.sandbox is not None else handle.upstream_url
    lines = [
        f"Workshop proxy on {handle.base_url}, forwarding to {upstream}.",
        f"Accounting: {handle.db_path} ({len(usage)} participants, "
        f"{sum(u.used for u in usage)} tasks used)",
    ]
    for model, price in handle.prices().items():
        shown = "unknown (give --price-per-task for budgets)" if price is None else f"${price}"
        lines.append(f"Price per task of {model}: {shown}")
    if handle.recovered:
        lines.append(
            f"  {handle.recovered} task(s) cut off by the last stop stay charged (admin page)."
        )
    if handle.issued:
        out = args.tokens_out or Path(DEFAULT_TOKENS_OUT)
        lines.append(f"New participants (tokens also in {out}):")
        width = max(len(i.name) for i in handle.issued)
        lines += [f"  {i.name:<{width}}  {i.token}" for i in handle.issued]
    lines += [
        "Participants set:",
        f"  export SIRAY_BASE_URL={url}",
        "  export SIRAY_API_KEY=<their workshop token>",
    ]
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and not is_loopback(host):
        if is_private_address(host):
            lines.append(
                f"  export {WORKSHOP_HTTP_ENV}=1   # plain http on this LAN: tokens cross it "
                "unencrypted (HTTPS: --certfile/--keyfile)"
            )
        else:
            lines.append(
                f"  (warning: {host} is not a private-network address; clients send a token "
                "over plain http only to one. Use --certfile/--keyfile, or --public-url with "
                "this machine's LAN IP)"
            )
    admin_url = handle.base_url.replace("0.0.0.0", "127.0.0.1") + "/admin"
    lines += [
        f"Admin page: {admin_url} (user: admin, password: the admin token)",
        f"Admin token: {token_note}",
        "Press Ctrl-C to stop; usage is saved as it happens.",
    ]
    return "\n".join(lines)


def _serve(handle: ProxyHandle, stop: threading.Event) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        while not stop.wait(0.5) and handle.running:
            pass
    print(f"proxy stopped; accounting is in {handle.db_path}", file=sys.stderr, flush=True)
    return EXIT_OK
