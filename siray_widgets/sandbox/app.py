"""The sandbox's ASGI app: the two Siray endpoints, their errors, the images, the schema.

Validation comes from :mod:`siray_widgets.schema`; nothing about fields is retyped here.
Every body is JSON built with ``ensure_ascii`` (no user text is ever rendered as HTML, and odd
code points such as lone surrogates cannot break the encoder).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ValidationError
from ..schema import CREATE_PATH, FIELDS_BY_NAME, TASK_PATH, ImageRequest, openapi
from .faults import Faults, Malformed, RequestFault
from .images import ImageCache, png_bytes
from .models import MODELS_PATH, SandboxRegistry, parse_model_body, requested_model
from .settings import SandboxSettings
from .store import IMAGES_PER_TASK, TaskRecord, TaskStore, new_task_id

IMAGE_PATH = "/sandbox/images/{task_id}/{number:int}.png"
# Python's json reads only int and float; these are the JSON types each schema type allows.
_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int, float),
    "boolean": (bool,),
}

Sleep = Callable[[float], Awaitable[None]]


class SandboxState:
    """Everything one sandbox server holds: settings, tasks, fault dice, images, bodies."""

    def __init__(self, settings: SandboxSettings, *, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.sleep = sleep
        self.clock = settings.clock
        self.store = TaskStore(
            clock=settings.clock, max_tasks=settings.max_tasks, ttl=settings.task_ttl
        )
        self.faults = Faults(settings)
        self.images = ImageCache(settings.image_cache_bytes)
        self._bodies: deque[bytes] = deque(maxlen=settings.keep_bodies or None)
        self._bodies_lock = threading.Lock()
        # Random seeds for seed=-1 requests: a separate generator so that they do not shift
        # the fault dice (which are seeded for reproducibility).
        self._seeds = random.Random()

    def record_body(self, body: bytes) -> None:
        if self.settings.keep_bodies:
            with self._bodies_lock:
                self._bodies.append(body)

    def received_bodies(self) -> list[bytes]:
        with self._bodies_lock:
            return list(self._bodies)

    def create_task(self, request: ImageRequest) -> TaskRecord:
        fate = self.faults.task_fate()
        seed = request.seed if request.seed != -1 else self._seeds.randint(0, 9_999_999_999)
        record = TaskRecord(
            task_id=new_task_id(),
            request=request,
            image_seed=seed,
            submitted=self.clock(),
            duration=self.settings.duration,
            fail_reason=fate.fail_reason,
            stall_at=fate.stall_at,
        )
        self.store.add(record)
        return record


# --- responses -----------------------------------------------------------------------------


def json_response(
    data: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def error_response(
    status_code: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An OpenAI-style error body, as the Siray API sends."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json_response({"error": error}, status_code, headers)


def fault_response(fault: RequestFault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.status == 429:
        return error_response(
            429,
            f"Rate limit reached (sandbox fault injection); retry after {fault.retry_after} s",
            type_="rate_limit_error",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if fault.status == 503:
        return error_response(
            503,
            "Service temporarily unavailable (sandbox fault injection)",
            type_="server_error",
            code="service_unavailable",
            headers=headers,
        )
    return error_response(
        fault.status,
        "Internal server error (sandbox fault injection)",
        type_="server_error",
        code="internal_error",
    )


def malformed_response(kind: Malformed, good: Mapping[str, Any]) -> Response:
    """A 200 whose body breaks the API's promise in the way ``kind`` names."""
    if kind is Malformed.NOT_JSON:
        return Response(
            "Bad gateway: the upstream answered something unexpected (sandbox fault injection)",
            media_type="text/plain",
        )
    if kind is Malformed.TRUNCATED:
        text = json.dumps(good, ensure_ascii=True)
        return Response(text[: len(text) // 2], media_type="application/json")
    if kind is Malformed.NOT_SUCCESS:
        return json_response(
            {
                "code": "error",
                "message": "sandbox fault injection: code is not success",
                "data": None,
            }
        )
    return json_response({"code": "success", "message": "", "data": {}})


# --- request checks --------------------------------------------------------------------------


def check_auth(request: Request, settings: SandboxSettings) -> Response | None:
    """401 unless the request carries an acceptable bearer key (never echoed back)."""
    scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
    key = key.strip()
    headers = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not key:
        return error_response(
            401,
            "Missing API key: send the header 'Authorization: Bearer <key>' "
            "(the sandbox accepts any non-empty key unless it was started with one)",
            code="invalid_api_key",
            headers=headers,
        )
    if settings.api_key is not None and not hmac.compare_digest(
        key.encode(), settings.api_key.encode()
    ):
        return error_response(401, "Invalid API key", code="invalid_api_key", headers=headers)
    return None


class BodyError(Exception):
    """The body cannot be read as a create request at all (not a field problem)."""

    def __init__(self, status_code: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"request body is larger than {limit} bytes", "body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"request body is larger than {limit} bytes", "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_create_body(raw: bytes) -> ImageRequest:
    """Raw bytes -> a validated :class:`ImageRequest`.

    Raises :class:`BodyError` for bodies that are not a JSON object and
    :class:`~siray_widgets.errors.ValidationError` for a bad field. Types are checked as
    strictly as JSON Schema would (``"quality": 2`` is not a string), then the schema's own
    rules run.
    """
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, bad UTF-8 and over-long integers.
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise BodyError(400, f"request body is not valid JSON: {reason}", "invalid_json") from None
    if not isinstance(body, dict):
        raise BodyError(400, "request body must be a JSON object", "invalid_json")
    normalized: dict[str, Any] = {}
    for name, value in body.items():
        spec = FIELDS_BY_NAME.get(name)
        if spec is not None:
            allowed = _JSON_TYPES[spec.type]
            wrong_type = (
                not isinstance(value, allowed)
                or (isinstance(value, bool) and bool not in allowed)  # bool is an int subclass
                # JSON Schema counts 5.0 as an integer; anything with a fraction is not one.
                or (isinstance(value, float) and not value.is_integer())
            )
            if wrong_type:
                raise ValidationError(name, value, f"must be {spec.allowed()}")
            if isinstance(value, float):
                value = int(value)
        normalized[name] = value
    return ImageRequest.from_body(normalized)  # unknown and missing fields raise here


def parse_any_create_body(raw: bytes, models: SandboxRegistry) -> ImageRequest:
    """niji 7 (and every malformed body) as :func:`parse_create_body` reads it; any other
    model of the sandbox's registry validated from its own schema (see :mod:`.models`)."""
    model = requested_model(raw)
    if model is None:
        return parse_create_body(raw)
    return parse_model_body(raw, model, models)


# --- endpoints -------------------------------------------------------------------------------


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


async def _before_api(request: Request, state: SandboxState) -> Response | None:
    """Latency, auth and the 429/503 dice shared by both endpoints."""
    if state.settings.latency:
        await state.sleep(state.settings.latency)
    return check_auth(request, state.settings)


async def create_task(request: Request) -> Response:
    state = _state(request)
    try:
        raw = await read_body(request, state.settings.max_body_bytes)
    except BodyError as exc:
        return error_response(exc.status_code, str(exc), code=exc.code)
    state.record_body(raw)
    denied = await _before_api(request, state)
    if denied is not None:
        return denied
    fault = state.faults.request_fault()
    if fault is not None and fault.status != 500:
        return fault_response(fault)  # 429 and 503: nothing was created, safe to retry
    try:
        image_request = parse_any_create_body(raw, request.app.state.models)
    except BodyError as exc:
        return error_response(exc.status_code, str(exc), code=exc.code)
    except ValidationError as exc:
        param = None if exc.field == "body" else exc.field
        return error_response(400, str(exc), code="invalid_parameter", param=param)
    record = state.create_task(image_request)
    if fault is not None:
        # A 500 after the task was stored, as a real service can fail: a client that
        # blindly retries a create on 500 makes a second task.
        return fault_response(fault)
    good = {"code": "success", "data": {"task_id": record.task_id}, "message": ""}
    kind = state.faults.malformed()
    return malformed_response(kind, good) if kind is not None else json_response(good)


async def get_task(request: Request) -> Response:
    state = _state(request)
    denied = await _before_api(request, state)
    if denied is not None:
        return denied
    fault = state.faults.request_fault()
    if fault is not None:
        return fault_response(fault)
    task_id = request.path_params["task_id"]
    record = state.store.get(task_id)
    if record is None:
        return error_response(
            404,
            f"task {task_id[:80]!r} not found (unknown id, or expired)",
            code="task_not_found",
            param="task_id",
        )
    data = record.to_api(state.clock(), str(request.base_url))
    good = {"code": "success", "message": "", "data": data}
    kind = state.faults.malformed()
    return malformed_response(kind, good) if kind is not None else json_response(good)


async def get_image(request: Request) -> Response:
    """An output image; public like the API's CDN URLs (no key), rendered on first request."""
    state = _state(request)
    task_id: str = request.path_params["task_id"]
    number: int = request.path_params["number"]
    record = state.store.get(task_id)
    if (
        record is None
        or not 1 <= number <= IMAGES_PER_TASK
        or record.state(state.clock()).status != "SUCCESS"
    ):
        return error_response(
            404, "no such image (unknown task, or not finished)", code="not_found"
        )
    key = (task_id, number)
    data = state.images.get(key)
    if data is None:
        # Rendering is CPU work: keep it off the event loop so polling stays responsive.
        data = await run_in_threadpool(
            png_bytes,
            record.request,
            task_id=task_id,
            image_seed=record.image_seed,
            index=number - 1,
        )
        state.images.put(key, data)
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
    )


async def get_models(request: Request) -> Response:
    """The model registry, as Siray's gateway publishes it (public: no key needed)."""
    state = _state(request)
    if state.settings.latency:
        await state.sleep(state.settings.latency)
    models: SandboxRegistry = request.app.state.models
    body = await run_in_threadpool(models.body)  # the first call may read a file
    return Response(body, media_type="application/json")


async def get_openapi(request: Request) -> Response:
    return json_response(request.app.state.openapi)


async def get_root(request: Request) -> Response:
    return json_response(
        {
            "service": "siray-widgets sandbox: a local stand-in for the Siray image API",
            "images": "placeholder images, no key used",
            "create": f"POST {CREATE_PATH}",
            "status": f"GET {TASK_PATH}",
            "openapi": "/openapi.json",
        }
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as JSON errors, like the rest of the API."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return error_response(exc.status_code, exc.detail, code=code, headers=exc.headers)


def create_app(
    settings: SandboxSettings | None = None, *, sleep: Sleep = asyncio.sleep
) -> Starlette:
    """The sandbox as an ASGI app; its :class:`SandboxState` is ``app.state.sandbox``.

    ``sleep`` is how latency is waited for (tests pass a recorder instead of waiting).
    """
    settings = settings or SandboxSettings()
    app = Starlette(
        routes=[
            Route(CREATE_PATH, create_task, methods=["POST"]),
            Route(TASK_PATH, get_task, methods=["GET"]),
            Route(IMAGE_PATH, get_image, methods=["GET"]),
            Route("/openapi.json", get_openapi, methods=["GET"]),
            Route(MODELS_PATH, get_models, methods=["GET"]),
            Route("/", get_root, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    # The API does not redirect ".../async/" to ".../async"; a 404 is what a client that lost
    # its task id (the official SDK does) should see.
    app.router.redirect_slashes = False
    app.state.sandbox = SandboxState(settings, sleep=sleep)
    app.state.openapi = openapi()
    app.state.models = SandboxRegistry.from_environment()
    return app
