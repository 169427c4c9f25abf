"""Forwarding to the real API with the real key, and reading what came back.

The key goes only into the ``Authorization`` header of the two API requests; image downloads
(sandbox upstreams) carry no key. Every body that goes back to a participant has the key
masked first (:func:`siray_widgets.config.redact`), in case the upstream echoes it.

A create's answer is sorted into three outcomes, which decide the charge:

- ``created``: a 2xx with ``data.task_id`` -- charged;
- ``refused``: the upstream surely made no task (a 4xx other than 408, a 503, or no
  connection at all) -- not charged;
- ``uncertain``: anything else (500, 502, 504, 408, a broken connection, a 2xx without a task
  id) -- a task may exist and be billed, so it stays charged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from .. import __version__
from ..config import is_loopback, redact
from ..schema import CREATE_PATH, TASK_PATH
from .settings import ProxySettings

logger = logging.getLogger("siray_widgets.proxy")

_TASK_PREFIX = TASK_PATH.split("{", 1)[0]
#: Headers of an upstream answer that are passed on to the participant.
_PASSED_HEADERS = ("retry-after",)

Outcome = Literal["created", "refused", "uncertain"]

#: Requests to the upstream in flight at once, spread over a few small connection pools;
#: more wait their turn on a semaphore. httpcore's pool looks at every queued request and
#: every connection on each request: with 600 queued creates and one big pool that cost 18 ms
#: of CPU per create, with small pools and no queue inside them, well under 2 ms.
POOLS = 4
PER_POOL = 16


@dataclass(frozen=True)
class Answer:
    """An answer to give the participant (already free of the key)."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: The parsed JSON body, when it was JSON.
    data: Any = None


@dataclass(frozen=True)
class CreateResult:
    outcome: Outcome
    answer: Answer
    task_id: str | None = None


def error_body(
    message: str, code: str, type_: str = "invalid_request_error", param: str | None = None
) -> bytes:
    """An OpenAI-style error body, as the Siray API writes them."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": error}, ensure_ascii=True, separators=(",", ":")).encode()


class Upstream:
    """One pooled HTTP client to the upstream, created in the loop that uses it."""

    def __init__(self, settings: ProxySettings) -> None:
        self.base_url = settings.upstream_url.rstrip("/")
        self._key = settings.upstream_key
        self._create_timeout = settings.create_timeout
        self._status_timeout = settings.status_timeout
        host = urlsplit(self.base_url).hostname or ""
        self._local = is_loopback(host)
        self._pools: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        self._slots: asyncio.Semaphore | None = None

    def _new_pool(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"User-Agent": f"siray-widgets-proxy/{__version__}"},
            timeout=httpx.Timeout(self._status_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=PER_POOL, max_keepalive_connections=PER_POOL),
            # Environment proxies are for the internet, not for a sandbox on this machine.
            trust_env=not self._local,
            follow_redirects=False,
        )

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[httpx.AsyncClient]:
        """A pool with a free connection (waiting for one if every pool is busy)."""
        if self._slots is None:  # first use, in the loop that will use them
            self._pools = [self._new_pool() for _ in range(POOLS)]
            self._busy = [0] * POOLS
            self._slots = asyncio.Semaphore(POOLS * PER_POOL)
        async with self._slots:
            index = min(range(POOLS), key=self._busy.__getitem__)
            self._busy[index] += 1
            try:
                yield self._pools[index]
            finally:
                self._busy[index] -= 1

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.reveal()}", "Accept": "application/json"}

    def _clean(self, text: str) -> str:
        return redact(text, self._key)

    async def aclose(self) -> None:
        pools, self._pools = self._pools, []
        for http in pools:
            await http.aclose()

    # -- the two endpoints --

    async def create(self, body: bytes) -> CreateResult:
        headers = {**self._auth(), "Content-Type": "application/json"}
        try:
            async with self._slot() as http:
                response = await http.post(
                    self.base_url + CREATE_PATH,
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(self._create_timeout, connect=10.0),
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            logger.warning("upstream unreachable for a create: %s", self._clean(str(exc)))
            return CreateResult("refused", _unreachable())
        except httpx.HTTPError as exc:
            logger.warning("upstream create broke off: %s", self._clean(type(exc).__name__))
            return CreateResult("uncertain", _broke_off())
        answer = self._answer(response)
        status = response.status_code
        if 200 <= status < 300:
            data = answer.data
            inner = data.get("data") if isinstance(data, dict) else None
            task_id = inner.get("task_id") if isinstance(inner, dict) else None
            if (
                isinstance(data, dict)
                and data.get("code") == "success"
                and isinstance(task_id, str)
                and task_id
            ):
                return CreateResult("created", answer, task_id)
            return CreateResult("uncertain", answer)
        if (400 <= status < 500 and status != 408) or status == 503:
            return CreateResult("refused", answer)
        return CreateResult("uncertain", answer)

    async def status(self, task_id: str) -> Answer:
        try:
            async with self._slot() as http:
                response = await http.get(
                    self.base_url + _TASK_PREFIX + quote(task_id, safe=""), headers=self._auth()
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            logger.warning("upstream unreachable for a status query: %s", self._clean(str(exc)))
            return _unreachable()
        except httpx.HTTPError as exc:
            logger.warning("upstream status query broke off: %s", type(exc).__name__)
            return _broke_off()
        return self._answer(response)

    async def file(self, path: str) -> Answer:
        """A public file of the upstream (a sandbox's image), fetched without the key."""
        try:
            async with self._slot() as http:
                response = await http.get(self.base_url + path)
        except httpx.HTTPError as exc:
            logger.warning("upstream image fetch failed: %s", type(exc).__name__)
            return _broke_off()
        if response.status_code != 200:
            return Answer(404, error_body("no such image", "not_found"))
        media = response.headers.get("content-type", "application/octet-stream")
        return Answer(
            200,
            response.content,
            media_type=media if media.startswith("image/") else "application/octet-stream",
            headers={"Cache-Control": response.headers.get("cache-control", "no-cache")},
        )

    # -- reading answers --

    def _answer(self, response: httpx.Response) -> Answer:
        headers = {k: response.headers[k] for k in _PASSED_HEADERS if k in response.headers}
        status = response.status_code
        text = self._clean(response.content.decode("utf-8", "replace"))
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if status in (401, 407):
            # The upstream refused *the workshop's* key: the participant's client would say
            # "set SIRAY_API_KEY", which is not theirs to fix.
            logger.error(
                "the upstream answered %d to the workshop's key: check SIRAY_API_KEY", status
            )
            return Answer(
                502,
                error_body(
                    "the workshop proxy's own API key was refused by the upstream; tell the "
                    "instructor",
                    "workshop_upstream_auth",
                    "server_error",
                ),
            )
        if status == 402:
            logger.error("the upstream answered 402: the workshop's Siray balance is used up")
        if 300 <= status < 400:
            return Answer(
                502, error_body("the upstream answered with a redirect", "upstream_redirect")
            )
        if data is None:
            return Answer(status, text.encode(), "text/plain; charset=utf-8", headers)
        return Answer(status, text.encode(), "application/json", headers, data)


def _unreachable() -> Answer:
    return Answer(
        503,
        error_body(
            "the workshop proxy cannot reach the image service right now; nothing was created, "
            "try again in a moment",
            "upstream_unavailable",
            "server_error",
        ),
        headers={"Retry-After": "2"},
    )


def _broke_off() -> Answer:
    return Answer(
        502,
        error_body(
            "the image service did not answer the workshop proxy in full",
            "upstream_error",
            "server_error",
        ),
    )
