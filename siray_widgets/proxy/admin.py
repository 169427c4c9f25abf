"""The instructor's side: an HTML admin page and JSON endpoints behind the admin token.

Access: only from this machine by default (a loopback peer, and no ``X-Forwarded-For`` or
``Forwarded`` header, which a reverse proxy in front would add), unless the proxy was started
with ``admin_remote`` (TLS only). Then the admin token, as HTTP Basic credentials (any user
name, the token as password: the browser asks once) or as ``Authorization: Bearer``. Wrong
tokens count against the same per-address limit as wrong participant tokens.

Cross-site requests cannot act: a browser attaches Basic credentials by itself, so the page's
forms also carry a token derived from the admin token (HMAC) and must come from the page's
own origin (``Origin`` / ``Sec-Fetch-Site``); the JSON endpoints that change anything take
only ``Authorization: Bearer``, which no other site can make a browser send. No cookies.

Every text on the page goes through :func:`html.escape`; a strict Content-Security-Policy
allows no script at all.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import is_loopback
from .app import ProxyState, client_address, json_response
from .ledger import Issued, Ledger, Usage, clean_name, next_names
from .limits import retry_after
from .settings import dollars, parse_duration, parse_money
from .upstream import error_body

_HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    # Not "no-referrer": with it, browsers send "Origin: null" on the page's own form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_REALM = 'Basic realm="siray-widgets workshop proxy admin", charset="UTF-8"'
#: CSV cells starting with these are formulas to a spreadsheet; they get a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Handler = Callable[[Request], Awaitable[Response]]


def _state(request: Request) -> ProxyState:
    state: ProxyState = request.app.state.proxy
    return state


def form_token(state: ProxyState) -> str:
    """The token the page's forms carry (derived from the admin token, so never stored)."""
    key = state.settings.admin_token.reveal().encode()
    return hmac.new(key, b"siray-widgets proxy admin form", hashlib.sha256).hexdigest()


# --- access --------------------------------------------------------------------------------


def _local_only(request: Request, state: ProxyState) -> bool:
    if state.settings.admin_remote:
        return True
    forwarded = "x-forwarded-for" in request.headers or "forwarded" in request.headers
    return is_loopback(client_address(request)) and not forwarded


def _presented_token(request: Request, *, allow_basic: bool) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value and allow_basic:
        import base64
        import binascii

        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _gate(request: Request, *, allow_basic: bool = True) -> Response | None:
    """None when the request may use the admin side; else the answer that refuses it."""
    state = _state(request)
    if not _local_only(request, state):
        return Response(error_body("Not Found", "not_found"), 404, media_type="application/json")
    address = client_address(request)
    wait = state.bad_tokens.blocked(("admin", address))
    if wait:
        return Response(
            error_body(f"too many wrong admin tokens; wait {retry_after(wait)} s", "rate_limited"),
            429,
            headers={"Retry-After": retry_after(wait)},
            media_type="application/json",
        )
    token = _presented_token(request, allow_basic=allow_basic)
    expected = state.settings.admin_token.reveal().encode()
    if token is not None and hmac.compare_digest(token.encode("utf-8", "replace"), expected):
        return None
    if token is not None:  # a wrong guess; no credentials at all is a browser's first visit
        state.bad_tokens.take(("admin", address))
    return Response(
        error_body("the admin page needs the admin token", "admin_token_required"),
        401,
        headers={"WWW-Authenticate": _REALM if allow_basic else "Bearer"},
        media_type="application/json",
    )


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from the admin page itself (browsers say where from).

    ``Sec-Fetch-Site`` (every current browser sends it, and no page can forge it) decides when
    present; else ``Origin`` must be this origin; a request with neither is not from a browser
    (curl), and the form token still has to match.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


# --- the page ------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _state_text(usage: Usage, now: float) -> str:
    if usage.expired(now):
        return "expired"
    return "paused" if usage.paused else "active"


def _money(amount_micros: int | None) -> str:
    return "—" if amount_micros is None else f"${dollars(amount_micros):.2f}"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fff}
@media (prefers-color-scheme:dark){body{color:#ddd;background:#1e1e1e}
table,th,td{border-color:#555!important}input,button,textarea{background:#333;color:#ddd}}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
form.inline{display:inline}input[type=number]{width:4.5rem}input.money{width:5rem}
.paused{color:#b45309}.expired{color:#b91c1c}.active{color:#15803d}
section{margin:1rem 0}code{font-size:13px}
"""


def _page(title: str, body: str) -> Response:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(text, media_type="text/html; charset=utf-8", headers=_HTML_HEADERS)


def _form(
    state: ProxyState, action: str, fields: dict[str, object], button: str, extra: str = ""
) -> str:
    hidden = "".join(
        f'<input type=hidden name="{_e(k)}" value="{_e(v)}">' for k, v in fields.items()
    )
    return (
        f'<form class=inline method=post action="admin/action">'
        f'<input type=hidden name=csrf value="{_e(form_token(state))}">'
        f'<input type=hidden name=action value="{_e(action)}">{hidden}{extra}'
        f"<button>{_e(button)}</button></form>"
    )


def render_page(state: ProxyState, rows: list[Usage], message: str = "") -> Response:
    now = state.clock()
    used = sum(u.used for u in rows)
    quota = sum(u.quota for u in rows)
    spent = sum(u.spent_micros for u in rows)
    f = state.forwarded
    summary = (
        f"<p>{len(rows)} participants · {used} of {quota} tasks used · spent {_money(spent)} · "
        f"upstream <code>{_e(state.settings.upstream_url)}</code> · creates forwarded this run: "
        f"{f['created']} made, {f['refused']} refused upstream, {f['uncertain']} uncertain</p>"
    )
    table_rows = []
    for u in rows:
        status = _state_text(u, now)
        toggle = (
            _form(state, "resume", {"participant": u.participant_id}, "Resume")
            if u.paused
            else _form(state, "pause", {"participant": u.participant_id}, "Pause")
        )
        top_up = _form(
            state,
            "topup",
            {"participant": u.participant_id},
            "Top up",
            extra=(
                '<input type=number name=tasks value=5 min=-1000 max=1000 aria-label="tasks">'
                + (
                    ' <input class=money name=budget placeholder="$" aria-label="dollars">'
                    if u.budget_micros is not None
                    else ""
                )
            ),
        )
        extend = _form(
            state,
            "expiry",
            {"participant": u.participant_id},
            "Set expiry",
            extra='<input name=expires size=5 placeholder="1h" aria-label="expires in">',
        )
        token = _form(state, "token", {"participant": u.participant_id}, "New token")
        table_rows.append(
            "<tr>"
            f"<td>{_e(u.name)}{' (hub)' if u.hub_user else ''}</td>"
            f"<td class={_e(status)}>{_e(status)}</td>"
            f"<td class=n>{u.used} / {u.quota}</td><td class=n>{u.left}</td>"
            f"<td class=n>{u.in_flight}</td><td class=n>{u.failed}</td>"
            f"<td class=n>{u.refunded}</td><td class=n>{u.uncertain}</td>"
            f"<td class=n>{_money(u.spent_micros)} / {_money(u.budget_micros)}</td>"
            f"<td>{_e(_when(u.last_active))}</td><td>{_e(_when(u.expires_at))}</td>"
            f"<td>{toggle} {top_up} {extend} {token}</td>"
            "</tr>"
        )
    note = f"<p role=status class=paused>{_e(message)}</p>" if message else ""
    add_form = (
        '<form method=post action="admin/action">'
        f'<input type=hidden name=csrf value="{_e(form_token(state))}">'
        "<input type=hidden name=action value=add>"
        "<label>How many <input type=number name=count min=0 max=500 value=0></label> "
        "<label>or names, one a line <textarea name=names rows=2 cols=24></textarea></label> "
        f'<label>quota <input type=number name=quota min=0 value="{state.defaults.quota}">'
        "</label> "
        '<label>budget $ <input class=money name=budget value="'
        f'{"" if state.defaults.budget is None else _e(state.defaults.budget)}"></label> '
        '<label>expires in <input name=expires size=5 placeholder="3h"></label> '
        "<button>Add participants</button></form>"
    )
    body = (
        "<h1>Workshop proxy</h1>"
        f"{note}{summary}"
        f"<section>{_form(state, 'pause-all', {}, 'Pause everyone')} "
        f"{_form(state, 'resume-all', {}, 'Resume everyone')} "
        '<a href="admin">Refresh</a> · <a href="admin/export.csv">Export CSV</a></section>'
        "<table><thead><tr><th>participant</th><th>state</th><th>tasks used</th><th>left</th>"
        "<th>in flight</th><th>failed</th><th>refunded</th><th>uncertain</th>"
        "<th>spend / budget</th><th>last activity</th><th>expires</th><th>actions</th></tr>"
        f"</thead><tbody>{''.join(table_rows)}</tbody></table>"
        f"<section><h2>Add participants</h2>{add_form}</section>"
    )
    return _page("Workshop proxy", body)


def render_tokens(issued: list[Issued], what: str) -> Response:
    rows = "".join(
        f"<tr><td>{_e(i.name)}</td><td><code>{_e(i.token)}</code></td><td class=n>{i.quota}</td>"
        "</tr>"
        for i in issued
    )
    body = (
        f"<h1>{_e(what)}</h1><p>Copy these now: tokens are stored only as hashes and cannot "
        "be shown again (a new token can be made at any time).</p>"
        "<table><thead><tr><th>participant</th><th>token</th><th>quota</th></tr></thead>"
        f'<tbody>{rows}</tbody></table><p><a href="../admin">Back to the admin page</a></p>'
    )
    return _page(what, body)


# --- reading inputs ------------------------------------------------------------------------


class InputError(ValueError):
    pass


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"{what}={str(value)[:40]!r} must be a whole number") from None


def _budget(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return parse_money(value, "budget")
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _expiry(value: Any, state: ProxyState) -> float | None:
    if value in (None, ""):
        return None
    try:
        seconds = parse_duration(str(value))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    now: float = state.clock()
    return now + seconds


async def _add(state: ProxyState, data: dict[str, Any]) -> list[Issued]:
    names_field = data.get("names") or []
    if isinstance(names_field, str):
        names_field = names_field.splitlines()
    if not isinstance(names_field, list):
        raise InputError("names must be a list of names")
    existing = await state.ledger.run(Ledger.names)
    try:
        names = [clean_name(n) for n in names_field if str(n).strip()]
    except ValueError as exc:
        raise InputError(str(exc)) from None
    count = _int(data.get("count"), "count", 0)
    if not 0 <= count <= 500:
        raise InputError("count must be 0..500")
    names += next_names(count, [*existing, *names])
    if not names:
        raise InputError("give a number of participants or their names")
    quota = _int(data.get("quota"), "quota", state.defaults.quota)
    budget = _budget(data.get("budget"))
    if budget is None:
        budget = state.defaults.budget
    expires_at = _expiry(data.get("expires"), state)
    if expires_at is None:
        expires_at = state.defaults.expires_at
    try:
        return await state.ledger.run(
            Ledger.add, names, quota=quota, budget=budget, expires_at=expires_at
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


async def _act(state: ProxyState, action: str, data: dict[str, Any]) -> list[Issued] | str:
    """Carry out one admin action; the tokens it made, or a line saying what was done."""
    ledger = state.ledger
    if action == "add":
        return await _add(state, data)
    if action in ("pause-all", "resume-all"):
        count = await ledger.run(Ledger.set_paused, None, action == "pause-all")
        return f"{'paused' if action == 'pause-all' else 'resumed'} {count} participants"
    pid = _int(data.get("participant"), "participant")
    try:
        if action in ("pause", "resume"):
            await ledger.run(Ledger.set_paused, pid, action == "pause")
            return f"participant {pid} {action}d"
        if action == "topup":
            tasks = _int(data.get("tasks"), "tasks", 0)
            await ledger.run(Ledger.top_up, pid, tasks=tasks, budget=_budget(data.get("budget")))
            return f"participant {pid} topped up"
        if action == "expiry":
            raw = data.get("expires")
            never = raw in (None, "", "never")
            await ledger.run(Ledger.set_expiry, pid, None if never else _expiry(raw, state))
            return f"participant {pid}: expiry changed"
        if action == "token":
            return [await ledger.run(Ledger.reissue, pid)]
    except LookupError as exc:
        raise InputError(str(exc.args[0])) from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    raise InputError(f"unknown action {action[:40]!r}")


# --- routes --------------------------------------------------------------------------------


async def admin_page(request: Request) -> Response:
    denied = _gate(request)
    if denied is not None:
        return denied
    state = _state(request)
    return render_page(state, await state.ledger.run(Ledger.all_usage))


async def admin_action(request: Request) -> Response:
    denied = _gate(request)
    if denied is not None:
        return denied
    state = _state(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type != "application/x-www-form-urlencoded" or len(raw) > 64 * 1024:
        return Response(
            error_body("expected a form", "bad_form"), 400, media_type="application/json"
        )
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    token_ok = hmac.compare_digest(fields.get("csrf", "").encode(), form_token(state).encode())
    if not token_ok or not _same_origin(request):
        return Response(
            error_body("cross-site request refused", "csrf"), 403, media_type="application/json"
        )
    try:
        result = await _act(state, fields.get("action", ""), fields)
    except InputError as exc:
        return render_page(state, await state.ledger.run(Ledger.all_usage), str(exc))
    if isinstance(result, list):
        what = "New token" if fields.get("action") == "token" else "New participants"
        return render_tokens(result, what)
    return RedirectResponse("../admin", status_code=303, headers={"Cache-Control": "no-store"})


async def export_csv(request: Request) -> Response:
    denied = _gate(request)
    if denied is not None:
        return denied
    state = _state(request)
    rows = await state.ledger.run(Ledger.all_usage)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Response(
        usage_csv(rows, state.clock()),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="workshop-usage-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


#: The usage CSV's columns (the header row).
USAGE_COLUMNS = (
    *("name", "state", "quota", "used", "left", "in_flight", "failed", "refunded"),
    *("uncertain", "spent_usd", "budget_usd", "last_active", "expires_at", "created_at"),
)


def usage_csv(rows: list[Usage], now: float) -> str:
    """One line per participant; cells a spreadsheet would run as formulas are quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(USAGE_COLUMNS)
    for u in rows:
        writer.writerow(
            [
                safe_cell(u.name),
                _state_text(u, now),
                u.quota,
                u.used,
                u.left,
                u.in_flight,
                u.failed,
                u.refunded,
                u.uncertain,
                dollars(u.spent_micros),
                "" if u.budget_micros is None else dollars(u.budget_micros),
                _iso(u.last_active),
                _iso(u.expires_at),
                _iso(u.created_at),
            ]
        )
    return out.getvalue()


def safe_cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _iso(ts: float | None) -> str:
    return (
        "" if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
    )


async def api_participants(request: Request) -> Response:
    state = _state(request)
    if request.method == "GET":
        denied = _gate(request)
        if denied is not None:
            return denied
        rows = await state.ledger.run(Ledger.all_usage)
        now = state.clock()
        return json_response(
            {"participants": [u.to_json(now) for u in rows]}, headers={"Cache-Control": "no-store"}
        )
    return await _api_act(request, "add")


async def api_action(request: Request) -> Response:
    action = request.path_params["action"]
    data: dict[str, Any] = {}
    if "pid" in request.path_params:
        data["participant"] = request.path_params["pid"]
    return await _api_act(request, action, data)


async def _api_act(request: Request, action: str, data: dict[str, Any] | None = None) -> Response:
    denied = _gate(request, allow_basic=False)  # only a header no other site can send
    if denied is not None:
        return denied
    state = _state(request)
    body: Any = {}
    raw = await request.body()
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Response(
                error_body("the body must be a JSON object", "invalid_json"),
                400,
                media_type="application/json",
            )
    try:
        result = await _act(state, action, {**body, **(data or {})})
    except InputError as exc:
        return Response(error_body(str(exc), "invalid_input"), 400, media_type="application/json")
    headers = {"Cache-Control": "no-store"}
    if isinstance(result, list):
        added = [
            {
                "name": i.name,
                "token": i.token,
                "quota": i.quota,
                "budget_usd": None if i.budget is None else str(i.budget),
                "expires_at": i.expires_at,
            }
            for i in result
        ]
        return json_response({"participants": added}, headers=headers)
    return json_response({"done": result}, headers=headers)


def admin_routes() -> list[BaseRoute]:
    return [
        Route("/admin", admin_page, methods=["GET"]),
        Route("/admin/action", admin_action, methods=["POST"]),
        Route("/admin/export.csv", export_csv, methods=["GET"]),
        Route("/admin/api/participants", api_participants, methods=["GET", "POST"]),
        Route("/admin/api/participants/{pid:int}/{action}", api_action, methods=["POST"]),
        Route("/admin/api/{action}", api_action, methods=["POST"]),
    ]
