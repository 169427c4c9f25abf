"""Siray's model registry: every model, the JSON Schema of its request, and its price.

Siray publishes its models at ``GET {gateway}/api/model-verse/models`` (no key needed; the
gateway is ``https://api-gateway.siray.ai``, ``SIRAY_GATEWAY_URL`` points elsewhere). The
answer is ``{"data": [entry, ...]}``; each entry has ``model_name``, ``tag``
(``text-to-image``, ``image-to-image``, ``text-to-video``, ...), ``out_price``,
``billing_type`` and ``model_extend_info``: the JSON Schema of the model's request, as a
string. The official ComfyUI nodes build one node per model from exactly these fields.

Where the registry comes from, first match wins (:func:`load`):

1. the cached copy in the data folder, if younger than ``max_age`` (a day);
2. the gateway, with a timeout and a size cap; a good answer replaces the cache;
3. the cached copy of any age ("stale cache"), if the gateway could not be read;
4. the snapshot shipped in the package: niji 7 only, price unknown.

niji 7 needs none of this: its fields are the hand-tuned table in :mod:`siray_widgets.schema`,
so it works offline with no registry at all. Other ``text-to-image`` models get fields built
from their schema (:func:`siray_widgets.schema.model_schema_from_json`).

Everything the gateway sends is treated as untrusted: bounded in size and count, JSON only
(no NaN, no deep nesting), names restricted to plain characters, text made printable. A bad
entry is skipped (``Registry.problems`` says why); a bad answer as a whole is a
:class:`RegistryError`, and :func:`load` falls back as above.

This module is loaded only when a registry is needed: ``import siray_widgets`` does not
import it (nor httpx).
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from . import __version__
from .config import data_dir, gateway_url, is_loopback
from .errors import SirayError
from .schema import (
    MODEL_ID,
    NIJI7,
    AnyRequest,
    ModelSchema,
    UnsupportedModelError,
    model_schema_from_json,
)

__all__ = [
    "REGISTRY_PATH",
    "ModelEntry",
    "Registry",
    "RegistryError",
    "Support",
    "UnknownModelError",
    "aload",
    "cache_path",
    "cost_text",
    "current",
    "estimate_cost",
    "fetch",
    "format_money",
    "load",
    "load_file",
    "load_local",
    "model_schema",
    "parse_registry",
    "request_for",
    "schema_json",
    "snapshot",
    "use",
]

REGISTRY_PATH: Final = "/api/model-verse/models"
#: A cached registry younger than this is used without asking the gateway.
DEFAULT_MAX_AGE: Final = 24 * 3600.0
#: Seconds for the whole fetch (connecting, headers, body).
FETCH_TIMEOUT: Final = 15.0
#: Largest registry answer read, in bytes (decoded); a few hundred models take ~1 MB.
MAX_BYTES: Final = 8 * 1024 * 1024
#: At most this many entries are read.
MAX_ENTRIES: Final = 5000
#: Largest ``model_extend_info`` string read, in characters.
MAX_SCHEMA_CHARS: Final = 256 * 1024
TEXT_TO_IMAGE: Final = "text-to-image"
#: Tags of models that make images: ``siray-widgets models`` lists these.
IMAGE_TAGS: Final = ("text-to-image", "image-to-image")
#: ``billing_type`` values (lower case, ``-`` and blanks read as ``_``) charged per task:
#: ``out_price`` is then the price of one generation. Anything else: price unknown.
PER_TASK_BILLING: Final = frozenset(
    ("per_image", "image", "per_request", "request", "per_call", "per_task", "per_generation")
)
#: Prices are in US dollars (Siray bills in USD).
CURRENCY_SYMBOL: Final = "$"
SNAPSHOT_RESOURCE: Final = "registry_snapshot.json"

Source = Literal["network", "cache", "stale cache", "snapshot", "file"]

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:+-]{0,199}")
_MAX_PRICE = Decimal(1_000_000)
_CACHE_FORMAT = 1


class RegistryError(SirayError):
    """The registry could not be fetched or read; the message says where and why."""


class UnknownModelError(SirayError, LookupError):
    """A model name the registry does not list (the message suggests close names)."""

    def __init__(self, name: str, known: list[str], where: str = "") -> None:
        self.name = name
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        origin = f" [{where}]" if where else ""
        super().__init__(
            f"model {_printable(name, 80)!r} is not in the Siray model registry{hint}{origin} "
            "(siray-widgets models lists them; siray_widgets.registry.load() refreshes it)"
        )

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Support:
    """Whether this package can build requests for a model, and if not, why."""

    supported: bool
    reason: str = ""

    def text(self) -> str:
        return "supported" if self.supported else f"not supported yet: {self.reason}"


@dataclass(frozen=True)
class ModelEntry:
    """One model as the registry lists it (names and text already made safe to show)."""

    model_name: str
    tag: str
    #: Display name ("Seedream 3.0 t2i"); may be empty.
    title: str = ""
    description: str = ""
    out_price: Decimal | None = None
    billing_type: str | None = None
    #: The parsed ``model_extend_info`` (None when absent or unreadable: see schema_problem).
    request_schema: Mapping[str, Any] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    schema_problem: str | None = None

    @property
    def builtin(self) -> bool:
        """niji 7: its fields are the package's hand-tuned table, not the published schema."""
        return self.model_name == MODEL_ID

    @property
    def is_image_model(self) -> bool:
        return self.tag in IMAGE_TAGS or self.builtin

    @cached_property
    def _schema_or_reason(self) -> ModelSchema | str:
        if self.builtin:
            return NIJI7
        if self.request_schema is None:
            return self.schema_problem or "the registry publishes no request schema for it"
        try:
            spec = model_schema_from_json(self.model_name, self.request_schema)
        except UnsupportedModelError as exc:
            return exc.reason
        if self.tag != TEXT_TO_IMAGE:
            return f"only text-to-image models are supported, and it is {self.tag or 'untagged'}"
        return spec

    def support(self) -> Support:
        found = self._schema_or_reason
        return Support(True) if isinstance(found, ModelSchema) else Support(False, found)

    def model_schema(self) -> ModelSchema:
        """The model's fields; :class:`UnsupportedModelError` says why there are none."""
        found = self._schema_or_reason
        if isinstance(found, str):
            raise UnsupportedModelError(self.model_name, found)
        return found

    @property
    def unit_price(self) -> Decimal | None:
        """Price of one task, or None when unknown (no price, or not billed per task)."""
        if self.out_price is None or not _per_task(self.billing_type):
            return None
        return self.out_price

    def price_text(self) -> str:
        """``$0.05 per task``, or ``price unknown`` (with the billing type when that is why)."""
        if self.unit_price is not None:
            return f"{format_money(self.unit_price)} per task"
        if self.out_price is not None and self.billing_type:
            return f"price unknown (billed {self.billing_type})"
        return "price unknown"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for ``siray-widgets models --json`` and the front end."""
        support = self.support()
        price = self.unit_price
        return {
            "model": self.model_name,
            "title": self.title,
            "tag": self.tag,
            "description": self.description,
            "price": str(price) if price is not None else None,
            "price_text": self.price_text(),
            "out_price": str(self.out_price) if self.out_price is not None else None,
            "billing_type": self.billing_type,
            "supported": support.supported,
            "support": support.text(),
            "builtin": self.builtin,
        }


@dataclass(frozen=True)
class Registry:
    """The models of one registry answer, and where that answer came from."""

    entries: tuple[ModelEntry, ...]
    source: Source
    gateway: str | None = None
    #: Unix time the answer was fetched (None: the snapshot or a file).
    fetched_at: float | None = None
    #: Entries that were skipped, and why.
    problems: tuple[str, ...] = ()
    #: Why the gateway was not used, when :func:`load` fell back to a cache or the snapshot.
    error: str | None = None
    #: The answer as decoded JSON (what the sandbox serves again).
    payload: Any = dataclasses.field(default=None, repr=False, compare=False)

    @cached_property
    def _by_name(self) -> dict[str, ModelEntry]:
        return {e.model_name: e for e in self.entries}

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name or name == MODEL_ID

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> ModelEntry:
        """The entry called ``name``; niji 7 is always there (from the snapshot if need be)."""
        if not isinstance(name, str):
            raise TypeError(f"a model name is a str, not {type(name).__name__}")
        entry = self._by_name.get(name)
        if entry is not None:
            return entry
        if name == MODEL_ID:
            return snapshot().entries[0]
        raise UnknownModelError(name, self.names, self.describe())

    def image_models(self) -> list[ModelEntry]:
        """Models that make images (text-to-image first, then by name); niji 7 included."""
        found = [e for e in self.entries if e.is_image_model]
        if not any(e.builtin for e in found):
            found.append(self.get(MODEL_ID))
        return sorted(found, key=lambda e: (e.tag != TEXT_TO_IMAGE, e.model_name))

    def describe(self, now: float | None = None) -> str:
        """One line saying where these models come from (for the CLI and the widget)."""
        where = self.gateway or "the gateway"
        age = _age_text((now or time.time()) - self.fetched_at) if self.fetched_at else ""
        if self.source == "network":
            text = f"registry fetched from {where} just now"
        elif self.source == "cache":
            text = f"registry from {where}, cached {age}"
        elif self.source == "stale cache":
            text = f"offline: registry from {where}, cached {age}"
        elif self.source == "file":
            text = f"registry read from {where}"
        else:
            text = "offline: the snapshot shipped with siray-widgets (niji 7 only, price unknown)"
        return f"{text} ({self.error})" if self.error else text


# --- reading an answer ----------------------------------------------------------------------


def parse_registry(
    payload: bytes | str | Any,
    *,
    source: Source = "network",
    gateway: str | None = None,
    fetched_at: float | None = None,
) -> Registry:
    """A registry answer (raw bytes, text, or decoded JSON) -> :class:`Registry`.

    Raises :class:`RegistryError` when the answer as a whole is unusable; single bad entries
    are skipped and listed in ``problems``.
    """
    if isinstance(payload, (bytes, bytearray, str)):
        payload = _loads(payload, "the registry answer")
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        raise RegistryError(
            'the registry answer is not {"data": [...]}: '
            f"got {_kind(data if isinstance(payload, Mapping) else payload)}"
        )
    problems: list[str] = []
    if len(data) > MAX_ENTRIES:
        problems.append(f"only the first {MAX_ENTRIES} of {len(data)} entries were read")
        data = data[:MAX_ENTRIES]
    entries: dict[str, ModelEntry] = {}
    for index, raw in enumerate(data):
        try:
            entry = _entry(raw)
        except _BadEntry as exc:
            problems.append(f"entry {index} skipped: {exc}")
            continue
        if entry.model_name in entries:
            problems.append(f"entry {index} skipped: {entry.model_name} is listed twice")
            continue
        entries[entry.model_name] = entry
    return Registry(
        tuple(entries.values()),
        source,
        gateway=gateway,
        fetched_at=fetched_at,
        problems=tuple(problems),
        payload=payload,
    )


class _BadEntry(Exception):
    pass


def _entry(raw: Any) -> ModelEntry:
    if not isinstance(raw, Mapping):
        raise _BadEntry(f"it is {_kind(raw)}, not an object")
    name = raw.get("model_name")
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        shown = _printable(name, 60) if isinstance(name, str) else _kind(name)
        raise _BadEntry(f"model_name {shown!r} is not a plain model name")
    tag = raw.get("tag")
    schema, problem = _request_schema(raw.get("model_extend_info"))
    return ModelEntry(
        model_name=name,
        tag=_printable(tag, 40).lower() if isinstance(tag, str) else "",
        title=_printable(raw.get("name"), 120),
        description=_printable(raw.get("description"), 1000),
        out_price=_price(raw.get("out_price")),
        billing_type=_printable(raw.get("billing_type"), 40) or None,
        request_schema=schema,
        schema_problem=problem,
    )


def _request_schema(value: Any) -> tuple[Mapping[str, Any] | None, str | None]:
    if value is None or value == "":
        return None, None
    if isinstance(value, Mapping):  # already an object: accepted as well
        return value, None
    if not isinstance(value, str):
        return None, f"its request schema is {_kind(value)}, not a JSON string"
    if len(value) > MAX_SCHEMA_CHARS:
        return None, f"its request schema is longer than {MAX_SCHEMA_CHARS} characters"
    try:
        schema = _loads(value, "its request schema")
    except RegistryError as exc:
        return None, str(exc)
    if not isinstance(schema, Mapping):
        return None, f"its request schema is {_kind(schema)}, not an object"
    return schema, None


def _price(value: Any) -> Decimal | None:
    """``out_price`` as an exact decimal (a JSON number or a numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)  # 0.05 -> "0.05", not 0.05000000000000000277
    elif isinstance(value, (int, str)):
        text = str(value).strip()
        if len(text) > 40:
            return None
    else:
        return None
    try:
        price = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not price.is_finite() or price < 0 or price > _MAX_PRICE:
        return None
    return price


def _per_task(billing_type: str | None) -> bool:
    if not billing_type:
        return False
    return re.sub(r"[\s-]+", "_", billing_type.strip().lower()) in PER_TASK_BILLING


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: bytes | bytearray | str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise RegistryError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, over-long integers
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise RegistryError(f"{what} is not valid JSON: {reason}") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean"}
    if value is None:
        return "nothing"
    for cls, word in names.items():
        if isinstance(value, cls):
            return word
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def _printable(value: Any, limit: int) -> str:
    """Text from the server, safe to print in a terminal or a page: no control characters
    (no ANSI escapes), no lone surrogates, one line, at most ``limit`` characters."""
    if not isinstance(value, str):
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _age_text(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 129_600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


# --- fetching ---------------------------------------------------------------------------------


def fetch(
    gateway: str | None = None, *, timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_BYTES
) -> Registry:
    """Fetch the registry from the gateway now (no cache); raises :class:`RegistryError`.

    ``timeout`` bounds the whole exchange (a server that trickles bytes is cut off too) and
    ``max_bytes`` the decoded body. No key is sent: the registry is public.
    """
    import httpx

    base = gateway_url(gateway)
    url = base + REGISTRY_PATH
    host = urlsplit(url).hostname or ""
    deadline = time.monotonic() + timeout
    try:
        with (
            httpx.Client(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                follow_redirects=True,
                max_redirects=3,
                trust_env=not is_loopback(host),
                headers={
                    "Accept": "application/json",
                    "User-Agent": f"siray-widgets/{__version__}",
                },
            ) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise RegistryError(f"{url} answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise RegistryError(f"{url} sent more than {max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise RegistryError(f"{url} sent more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise RegistryError(f"{url} took longer than {timeout:g} s")
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise RegistryError(f"{url} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RegistryError(f"cannot read {url}: {detail}") from None
    return parse_registry(b"".join(chunks), source="network", gateway=base, fetched_at=time.time())


# --- the cache in the data folder ---------------------------------------------------------


def cache_path(gateway: str | None = None) -> Path:
    """Where the registry of ``gateway`` is cached (one file per gateway)."""
    import hashlib

    base = gateway_url(gateway)
    digest = hashlib.sha256(base.encode()).hexdigest()[:12]
    return data_dir() / "registry" / f"models-{digest}.json"


def _cacheable(base: str) -> bool:
    # A sandbox or test server on this machine changes port every run: not worth a file each.
    return not is_loopback(urlsplit(base).hostname or "")


def _read_cache(base: str) -> Registry | None:
    path = cache_path(base)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1024 * 1024)
        record = _loads(raw, f"the cached registry {path}")
        if not (
            isinstance(record, Mapping)
            and record.get("format") == _CACHE_FORMAT
            and record.get("gateway") == base
            and _is_time(record.get("fetched_at"))
        ):
            return None
        return parse_registry(
            record.get("payload"), source="cache", gateway=base, fetched_at=record["fetched_at"]
        )
    except (OSError, RegistryError):
        return None  # no cache, or a broken one: the gateway or the snapshot answers instead


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _write_cache(registry: Registry) -> str | None:
    """Store a fetched registry atomically; return a problem text instead of raising."""
    assert registry.gateway is not None
    path = cache_path(registry.gateway)
    record = {
        "format": _CACHE_FORMAT,
        "gateway": registry.gateway,
        "fetched_at": registry.fetched_at,
        "payload": registry.payload,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".models-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(record, file, ensure_ascii=True, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, TypeError, ValueError) as exc:
        return f"could not cache the registry in {path.parent}: {exc}"
    return None


# --- loading: cache, gateway, fallbacks -------------------------------------------------------

_current: Registry | None = None
_lock = threading.Lock()


def load(
    gateway: str | None = None,
    *,
    refresh: bool = False,
    offline: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    timeout: float = FETCH_TIMEOUT,
    cache: bool | None = None,
) -> Registry:
    """The registry, from the cache, the gateway or the snapshot (see the module docstring).

    ``refresh`` asks the gateway even when the cache is fresh; ``offline`` never asks it.
    ``cache`` (default: yes, except for gateways on this machine) reads and writes the copy
    in the data folder. Never raises for network trouble: ``Registry.error`` says what went
    wrong and ``Registry.source`` what answered instead.
    """
    base = gateway_url(gateway)
    use_cache = _cacheable(base) if cache is None else cache
    cached = _read_cache(base) if use_cache else None
    if cached is not None and not refresh and time.time() - (cached.fetched_at or 0) <= max_age:
        return _remember(cached)
    if offline:
        fallback = _stale(cached) if cached is not None else snapshot()
        return _remember(fallback)
    try:
        fresh = fetch(base, timeout=timeout)
    except RegistryError as exc:
        fallback = _stale(cached) if cached is not None else snapshot()
        return _remember(dataclasses.replace(fallback, error=str(exc)))
    if use_cache:
        problem = _write_cache(fresh)
        if problem is not None:
            fresh = dataclasses.replace(fresh, problems=(*fresh.problems, problem))
    return _remember(fresh)


async def aload(
    gateway: str | None = None,
    *,
    refresh: bool = False,
    offline: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    timeout: float = FETCH_TIMEOUT,
    cache: bool | None = None,
) -> Registry:
    """:func:`load` without blocking the event loop (for the widget and async callers).

    Runs on a worker thread: the registry is read about once a day, and one code path for
    the network, the cache file and the fallbacks is easier to trust than two.
    """
    return await asyncio.to_thread(
        load,
        gateway,
        refresh=refresh,
        offline=offline,
        max_age=max_age,
        timeout=timeout,
        cache=cache,
    )


def load_local(gateway: str | None = None) -> Registry:
    """The registry without the network: the cached copy (any age), else the snapshot."""
    base = gateway_url(gateway)
    cached = _read_cache(base) if _cacheable(base) else None
    return cached if cached is not None else snapshot()


def load_file(path: str | os.PathLike[str]) -> Registry:
    """A registry answer saved in a file (``{"data": [...]}``); raises :class:`RegistryError`."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or exc
        raise RegistryError(f"cannot read the registry file {file}: {reason}") from None
    if len(raw) > MAX_BYTES:
        raise RegistryError(f"the registry file {file} is larger than {MAX_BYTES} bytes")
    return parse_registry(raw, source="file", gateway=str(file))


_snapshot: Registry | None = None


def snapshot() -> Registry:
    """The registry entry of niji 7 shipped in the package (works with no network at all)."""
    global _snapshot
    if _snapshot is None:
        folder = resources.files("siray_widgets").joinpath("data")
        raw = folder.joinpath(SNAPSHOT_RESOURCE).read_bytes()
        _snapshot = parse_registry(raw, source="snapshot")
    return _snapshot


def _stale(cached: Registry) -> Registry:
    return dataclasses.replace(cached, source="stale cache")


def _remember(registry: Registry) -> Registry:
    global _current
    with _lock:
        _current = registry
    return registry


def current() -> Registry:
    """The registry this process loaded last; else the local one (cache or snapshot).

    Never touches the network: prices and schemas for a run are looked up here.
    """
    global _current
    with _lock:
        found = _current
    if found is None:
        found = load_local()
        with _lock:
            _current = _current or found
    return found


def use(registry: Registry) -> Registry:
    """Make ``registry`` the one :func:`current` returns (tests, the sandbox, a file)."""
    return _remember(registry)


# --- what callers want: schemas, requests, prices ---------------------------------------------


def _entry_of(model: str | ModelEntry, registry: Registry | None) -> ModelEntry:
    if isinstance(model, ModelEntry):
        return model
    return (registry or current()).get(model)


def model_schema(model: str, *, registry: Registry | None = None) -> ModelSchema:
    """The fields of ``model`` (niji 7's built-in table without any lookup).

    Raises :class:`UnknownModelError` for a name the registry does not list and
    :class:`~siray_widgets.schema.UnsupportedModelError` for a model this package cannot
    build requests for yet (image inputs, say).
    """
    if model == MODEL_ID:
        return NIJI7
    return _entry_of(model, registry).model_schema()


def schema_json(model: str, *, registry: Registry | None = None) -> dict[str, Any]:
    """``model``'s parameter schema as plain JSON: what the front end builds controls from."""
    return model_schema(model, registry=registry).schema_json()


def request_for(
    model: str, prompt: str | None = None, /, *, registry: Registry | None = None, **values: Any
) -> AnyRequest:
    """A validated request for ``model`` (an ``ImageRequest`` for niji 7)."""
    return model_schema(model, registry=registry).request(prompt, **values)


def estimate_cost(
    model: str | ModelEntry, tasks: int = 1, *, registry: Registry | None = None
) -> Decimal | None:
    """Estimated cost of ``tasks`` tasks of ``model``: ``out_price`` x tasks for per-task
    billing, None when the price is unknown (show :func:`format_money`'s "price unknown")."""
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 0:
        raise ValueError(f"tasks={tasks!r} must be a whole number >= 0")
    price = _entry_of(model, registry).unit_price
    return None if price is None else price * tasks


def format_money(amount: Decimal | None) -> str:
    """``$0.05``, ``$1,234.50``, ``$0.0025`` (small prices keep their digits); None ->
    ``price unknown``."""
    if amount is None:
        return "price unknown"
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, min(8, -exponent if isinstance(exponent, int) else 2))
    sign = "-" if amount < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{abs(amount):,.{places}f}"


def cost_text(model: str | ModelEntry, tasks: int = 1, *, registry: Registry | None = None) -> str:
    """One phrase for a run or a sweep: ``$0.20 (4 tasks x $0.05)`` or ``price unknown``."""
    entry = _entry_of(model, registry)
    total = estimate_cost(entry, tasks)
    if total is None:
        return entry.price_text()
    unit = format_money(entry.unit_price)
    noun = "task" if tasks == 1 else "tasks"
    return f"{format_money(total)} ({tasks} {noun} x {unit})"
