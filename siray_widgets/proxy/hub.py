"""JupyterHub identity: a participant's hub token in place of a workshop token.

Run as a JupyterHub service, the proxy gets ``JUPYTERHUB_API_URL`` (and
``JUPYTERHUB_SERVICE_NAME``, ``JUPYTERHUB_SERVICE_PREFIX``) from the hub. A kernel on the hub
has its user's token in ``JUPYTERHUB_API_TOKEN``; sent as the bearer key, the proxy asks the
hub whose it is (``GET {api}/user`` with that token, as JupyterHub's own ``HubAuth`` does) and
charges that user, made a participant on first sight. Answers are cached for a few minutes
under the token's hash. docs/workshop.md shows the hub configuration; it has not been tried
against a real hub here (the tests use a stand-in that answers like one).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

logger = logging.getLogger("siray_widgets.proxy")


@dataclass(frozen=True)
class HubSettings:
    #: The hub's API, e.g. ``http://127.0.0.1:8081/hub/api``.
    api_url: str
    #: This service's name: the user's token must be allowed to access it.
    service_name: str | None = None
    #: Seconds an identity is remembered.
    cache_seconds: float = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HubSettings:
        env = os.environ if environ is None else environ
        api_url = env.get("JUPYTERHUB_API_URL", "").strip()
        if not api_url:
            raise ValueError(
                "--hub needs JUPYTERHUB_API_URL: run the proxy as a JupyterHub service "
                "(docs/workshop.md shows the configuration)"
            )
        return cls(api_url.rstrip("/"), env.get("JUPYTERHUB_SERVICE_NAME", "").strip() or None)


class HubIdentity:
    """Who a hub token belongs to, asked of the hub and remembered for a while."""

    def __init__(self, settings: HubSettings, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._http: httpx.AsyncClient | None = None

    async def user(self, token: str) -> str | None:
        """The hub user name the token belongs to, or None (unknown, or not allowed here)."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        name = await self._ask(token)
        # Failures are remembered briefly too, so a wrong token does not hammer the hub.
        ttl = self.settings.cache_seconds if name is not None else 10.0
        self._cache[key] = (now + ttl, name)
        self._cache.move_to_end(key)
        while len(self._cache) > 10_000:
            self._cache.popitem(last=False)
        return name

    async def _ask(self, token: str) -> str | None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        try:
            response = await self._http.get(
                self.settings.api_url + "/user", headers={"Authorization": f"token {token}"}
            )
        except httpx.HTTPError as exc:
            logger.warning("JupyterHub could not be asked who a token is: %s", type(exc).__name__)
            return None
        if response.status_code != 200:
            return None
        try:
            model = response.json()
        except ValueError:
            return None
        if not isinstance(model, dict) or model.get("kind", "user") != "user":
            return None
        name = model.get("name")
        if not isinstance(name, str) or not name or len(name) > 200:
            return None
        scopes = model.get("scopes")
        service = self.settings.service_name
        if isinstance(scopes, list) and service is not None:
            allowed = {"access:services", f"access:services!service={service}"}
            if not allowed.intersection(scopes):
                logger.info("hub user %s may not access the service %s", name, service)
                return None
        return name

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
