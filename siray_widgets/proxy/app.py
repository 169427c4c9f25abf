"""The proxy's ASGI app: the API's two endpoints for participants, and the admin routes.

A participant's request is authenticated by their token (or JupyterHub identity), limited
(in-flight requests, creates per minute, queries per second), charged in the ledger, and
forwarded with the real key. Every answer to a participant carries their quota in headers
(:mod:`siray_widgets.quota`). Error bodies are OpenAI-style JSON like the API's own, with
codes of their own for a workshop's refusals (``workshop_quota_exceeded`` and so on).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ..config import is_workshop_token
from ..quota import ME_PATH
from ..schema import CREATE_PATH, TASK_PATH
from .hub import HubIdentity
from .ledger import Ledger, LedgerThread, Refusal, Usage, token_hash
from .limits import Concurrency, RateLimiter, retry_after
from .settings import ProxySettings
from .upstream import Answer, Upstream, error_body

logger = logging.getLogger("siray_widgets.proxy")

IMAGE_PREFIX = "/sandbox/images/"
_TERMINAL = ("SUCCESS", "FAILURE")
#: last_active is written at most this often per participant for status queries.
_TOUCH_EVERY = 30.0

#: The one answer to a missing, malformed or unknown token: the same bytes every time.
_UNAUTHORIZED = error_body(
    "invalid or missing workshop token: send the header 'Authorization: Bearer <your workshop "
    "token>' (set SIRAY_API_KEY to the token the instructor gave you)",
    "invalid_api_key",
)


@dataclass(frozen=True)
class Defaults:
    """What participants made while the proxy runs get (admin page, JupyterHub users)."""

    quota: int = 20
    budget: Decimal | None = None
    expires_at: float | None = None


class ProxyState:
    """Everything one proxy holds while it runs."""

    def __init__(
        self,
        settings: ProxySettings,
        ledger: LedgerThread,
        *,
        defaults: Defaults | None = None,
        clock: Any = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.defaults = defaults or Defaults()
        self.clock = clock
        self.upstream = Upstream(settings)
        self.hub = HubIdentity(settings.hub) if settings.hub is not None else None
        limits = settings.limits
        self.concurrency = Concurrency(limits.concurrency)
        self.create_rate = RateLimiter(limits.create_burst, limits.creates_per_minute / 60)
        self.poll_rate = RateLimiter(limits.poll_burst, limits.polls_per_second)
        self.bad_tokens = RateLimiter(limits.bad_token_burst, limits.bad_tokens_per_minute / 60)
        self._touched: dict[int, float] = {}
        #: Creates forwarded upstream, by outcome (for the benchmark and the admin page).
        self.forwarded: dict[str, int] = {"created": 0, "refused": 0, "uncertain": 0}

    async def aclose(self) -> None:
        await self.upstream.aclose()
        if self.hub is not None:
            await self.hub.aclose()


# --- answers -------------------------------------------------------------------------------


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(
    status: int,
    message: str,
    code: str,
    *,
    usage: Usage | None = None,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
    type_: str = "invalid_request_error",
) -> Response:
    merged = {**(headers or {}), **(usage.quota_view().to_headers() if usage else {})}
    return Response(
        error_body(message, code, type_, param),
        status_code=status,
        headers=merged,
        media_type="application/json",
    )


def _answer(answer: Answer, usage: Usage) -> Response:
    headers = {**answer.headers, **usage.quota_view().to_headers()}
    return Response(
        answer.body, status_code=answer.status, headers=headers, media_type=answer.media_type
    )


def _not_found(task_id: str, usage: Usage) -> Response:
    """The same answer for an unknown task id and for another participant's."""
    return error_response(
        404,
        f"task {task_id[:80]!r} not found (unknown id, or expired)",
        "task_not_found",
        usage=usage,
        param="task_id",
    )


def _state(request: Request) -> ProxyState:
    state: ProxyState = request.app.state.proxy
    return state


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def public_base(request: Request, prefix: str) -> str:
    """This proxy's base URL as the participant reached it."""
    return f"{request.url.scheme}://{request.url.netloc}{prefix}"


# --- who is asking -------------------------------------------------------------------------


async def participant(request: Request, state: ProxyState) -> Usage | Response:
    """The authenticated participant, or the answer that refuses the request."""
    address = client_address(request)
    wait = state.bad_tokens.blocked(address)
    if wait:
        return error_response(
            429,
            f"too many wrong tokens from {address}; wait {retry_after(wait)} s",
            "workshop_too_many_attempts",
            headers={"Retry-After": retry_after(wait)},
            type_="rate_limit_error",
        )
    token = bearer(request)
    usage: Usage | None = None
    if token is not None and is_workshop_token(token):
        usage = await state.ledger.run(Ledger.authenticate, token_hash(token))
    elif token is not None and state.hub is not None:
        usage = await _hub_participant(state, state.hub, token)
    if usage is None:
        if token is not None:  # a wrong guess (no token at all costs nothing to refuse)
            state.bad_tokens.take(address)
        logger.info("refused a request from %s: invalid or missing token", address)
        return Response(
            _UNAUTHORIZED,
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
            media_type="application/json",
        )
    if usage.expired(state.clock()):
        return error_response(
            403,
            "this workshop token has expired; ask the instructor for a new one",
            "workshop_token_expired",
            usage=usage,
        )
    return usage


async def _hub_participant(state: ProxyState, hub: HubIdentity, token: str) -> Usage | None:
    name = await hub.user(token)
    if name is None:
        return None
    usage = await state.ledger.run(Ledger.by_name, name)
    if usage is not None:
        return usage
    defaults = state.defaults
    try:
        await state.ledger.run(
            Ledger.add,
            [name],
            quota=defaults.quota,
            budget=defaults.budget,
            expires_at=defaults.expires_at,
            hub_user=True,
        )
        logger.info("JupyterHub user %s joined the workshop", name)
    except ValueError:
        pass  # made by a request that arrived at the same moment, or a bad name
    return await state.ledger.run(Ledger.by_name, name)


# --- the two endpoints ---------------------------------------------------------------------


class _BodyError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyError(413, f"request body is larger than {limit} bytes", "body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyError(413, f"request body is larger than {limit} bytes", "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _model_of(raw: bytes, allowed: frozenset[str]) -> str:
    """The body's model, if participants may use it (checked before anything is charged)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _BodyError(400, "request body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise _BodyError(400, "request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or model not in allowed:
        names = ", ".join(sorted(allowed))
        shown = repr(model)[:100]
        raise _BodyError(
            400,
            f"model={shown} is not available through this workshop proxy; use one of: {names}",
            "workshop_model_not_allowed",
            "model",
        )
    return model


async def create_task(request: Request) -> Response:
    state = _state(request)
    who = await participant(request, state)
    if isinstance(who, Response):
        return who
    pid = who.participant_id
    if not state.concurrency.enter(pid):
        return _too_many_at_once(state, who)
    try:
        wait = state.create_rate.take(pid)
        if wait:
            return error_response(
                429,
                f"too many new tasks in a short time; wait {retry_after(wait)} s",
                "rate_limit_exceeded",
                usage=who,
                headers={"Retry-After": retry_after(wait)},
                type_="rate_limit_error",
            )
        try:
            raw = await _read_body(request, state.settings.max_body_bytes)
            model = _model_of(raw, state.settings.models)
        except _BodyError as exc:
            return error_response(exc.status, str(exc), exc.code, usage=who, param=exc.param)
        try:
            reservation = await state.ledger.run(
                Ledger.reserve, pid, model, state.settings.prices(model)
            )
        except Refusal as refusal:
            logger.info("%s: create refused: %s", who.name, refusal.code)
            return error_response(
                refusal.status, refusal.message, refusal.code, usage=refusal.usage
            )
        return await _forward_create(state, who, reservation.charge_id, raw)
    finally:
        state.concurrency.leave(pid)


async def _forward_create(state: ProxyState, who: Usage, charge_id: int, raw: bytes) -> Response:
    settled = False
    try:
        result = await state.upstream.create(raw)
        state.forwarded[result.outcome] += 1
        if result.outcome == "created":
            assert result.task_id is not None
            usage = await state.ledger.run(Ledger.commit, charge_id, result.task_id)
        elif result.outcome == "refused":
            usage = await state.ledger.run(Ledger.release, charge_id)
        else:
            usage = await state.ledger.run(Ledger.charge_uncertain, charge_id)
        settled = True
    finally:
        if not settled:
            # Cancelled (the proxy is stopping) or failed mid-way: the request may have
            # reached the upstream, so the task stays charged.
            await asyncio.shield(state.ledger.run(Ledger.charge_uncertain, charge_id))
    logger.info(
        "%s: create -> %d %s%s (%s)",
        who.name,
        result.answer.status,
        result.outcome,
        f" {result.task_id}" if result.task_id else "",
        usage.quota_view().describe(),
    )
    return _answer(result.answer, usage)


async def get_task(request: Request) -> Response:
    state = _state(request)
    who = await participant(request, state)
    if isinstance(who, Response):
        return who
    pid = who.participant_id
    if not state.concurrency.enter(pid):
        return _too_many_at_once(state, who)
    try:
        wait = state.poll_rate.take(pid)
        if wait:
            return error_response(
                429,
                f"too many status queries in a short time; wait {retry_after(wait)} s",
                "rate_limit_exceeded",
                usage=who,
                headers={"Retry-After": retry_after(wait)},
                type_="rate_limit_error",
            )
        task_id: str = request.path_params["task_id"]
        owner = await state.ledger.run(Ledger.owner, task_id)
        if owner is None or owner.participant_id != pid:
            return _not_found(task_id, who)
        answer = await state.upstream.status(task_id)
        if answer.status == 404:
            return _not_found(task_id, who)
        usage = who
        if answer.status == 200 and isinstance(answer.data, dict):
            answer, status = _rewrite_outputs(answer, state, request)
            if status in _TERMINAL and status != owner.status:
                refunded = await state.ledger.run(
                    Ledger.record_status,
                    task_id,
                    status,
                    refund_failure=not state.settings.charge_failures,
                )
                if refunded:
                    logger.info("%s: task %s failed and was refunded", who.name, task_id)
                    usage = await state.ledger.run(Ledger.current, pid)
        await _touch(state, pid)
        return _answer(answer, usage)
    finally:
        state.concurrency.leave(pid)


def _rewrite_outputs(answer: Answer, state: ProxyState, request: Request) -> tuple[Answer, str]:
    """Point a sandbox upstream's image URLs at this proxy; return the task's status."""
    data = answer.data.get("data") if isinstance(answer.data, dict) else None
    if not isinstance(data, dict):
        return answer, ""
    status = data.get("status")
    outputs = data.get("outputs")
    upstream = state.upstream.base_url + IMAGE_PREFIX
    if isinstance(outputs, list) and any(
        isinstance(url, str) and url.startswith(upstream) for url in outputs
    ):
        base = public_base(request, state.settings.prefix)
        data["outputs"] = [
            base + url[len(state.upstream.base_url) :]
            if isinstance(url, str) and url.startswith(upstream)
            else url
            for url in outputs
        ]
        body = json.dumps(answer.data, ensure_ascii=True, separators=(",", ":")).encode()
        answer = Answer(answer.status, body, answer.media_type, answer.headers, answer.data)
    return answer, status if isinstance(status, str) else ""


async def _touch(state: ProxyState, pid: int) -> None:
    now = state.clock()
    if now - state._touched.get(pid, 0.0) >= _TOUCH_EVERY:
        state._touched[pid] = now
        await state.ledger.run(Ledger.touch, pid)


def _too_many_at_once(state: ProxyState, who: Usage) -> Response:
    limit = state.settings.limits.concurrency
    return error_response(
        429,
        f"too many requests at once: at most {limit} of yours are handled at the same time",
        "rate_limit_exceeded",
        usage=who,
        headers={"Retry-After": "1"},
        type_="rate_limit_error",
    )


async def get_image(request: Request) -> Response:
    """A sandbox upstream's image, public like the API's CDN links, for tasks made here."""
    state = _state(request)
    task_id: str = request.path_params["task_id"]
    name: str = request.path_params["name"]
    owner = await state.ledger.run(Ledger.owner, task_id)
    if owner is None or not name.endswith(".png") or "/" in name:
        return Response(
            error_body("no such image", "not_found"), 404, media_type="application/json"
        )
    answer = await state.upstream.file(f"{IMAGE_PREFIX}{task_id}/{name}")
    return Response(
        answer.body, status_code=answer.status, headers=answer.headers, media_type=answer.media_type
    )


async def get_me(request: Request) -> Response:
    """The participant's quota as JSON (``client.refresh_quota()``)."""
    state = _state(request)
    who = await participant(request, state)
    if isinstance(who, Response):
        return who
    data = {"name": who.name, **who.quota_view().to_json()}
    headers = {**who.quota_view().to_headers(), "Cache-Control": "no-store"}
    return json_response({"code": "success", "message": "", "data": data}, headers=headers)


async def get_root(request: Request) -> Response:
    return json_response(
        {
            "service": "siray-widgets workshop proxy: the Siray image API with workshop tokens",
            "create": f"POST {CREATE_PATH}",
            "status": f"GET {TASK_PATH}",
            "quota": f"GET {ME_PATH}",
            "auth": "Authorization: Bearer <your workshop token>",
        }
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return Response(
        error_body(str(exc.detail), code),
        status_code=exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


def create_app(state: ProxyState) -> Starlette:
    """The proxy as an ASGI app; its :class:`ProxyState` is ``app.state.proxy``."""
    from .admin import admin_routes

    routes: list[BaseRoute] = [
        Route(CREATE_PATH, create_task, methods=["POST"]),
        Route(TASK_PATH, get_task, methods=["GET"]),
        Route(IMAGE_PREFIX + "{task_id}/{name}", get_image, methods=["GET"]),
        Route(ME_PATH, get_me, methods=["GET"]),
        Route("/", get_root, methods=["GET"]),
        *admin_routes(),
    ]
    prefix = state.settings.prefix
    app = Starlette(
        routes=[Mount(prefix, routes=routes)] if prefix else routes,
        exception_handlers={HTTPException: http_error},
    )
    app.router.redirect_slashes = False
    app.state.proxy = state
    return app
