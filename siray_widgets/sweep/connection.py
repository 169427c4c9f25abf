"""The connection a sweep uses: its own client made from the caller's, and what kind of server
it talks to (the embedded sandbox, a server on this machine, or the real API)."""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import AsyncSirayClient, PollSchedule, SirayClient


def is_client(value: object) -> bool:
    from ..client import AsyncSirayClient, SirayClient

    return isinstance(value, (AsyncSirayClient, SirayClient))


def is_sandbox(client: object) -> bool:
    """Whether requests will go to the embedded sandbox (free), without starting it."""
    if client is not None and is_client(client):
        return bool(getattr(client, "sandbox", False))
    if client is not None:
        return False  # a factory: assume the real API (the plan shows a price)
    from ..config import API_KEY_ENV, BASE_URL_ENV

    return not (os.environ.get(API_KEY_ENV, "").strip() or os.environ.get(BASE_URL_ENV, "").strip())


def is_local_api(client: object) -> bool | None:
    """Whether requests go to a server on this machine (the sandbox, a local test server);
    None when it cannot be known without building the client."""
    from ..config import BASE_URL_ENV

    if client is not None and is_client(client):
        return url_is_local(str(getattr(client, "base_url", "")))
    if client is not None:
        return None
    if is_sandbox(None):
        return True
    url = os.environ.get(BASE_URL_ENV, "").strip()
    return url_is_local(url) if url else False


def url_is_local(url: str) -> bool:
    from urllib.parse import urlsplit

    from ..config import is_loopback

    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return False
    return bool(host) and is_loopback(host)


def private_copy(
    parent: AsyncSirayClient | SirayClient, poll: PollSchedule | None
) -> AsyncSirayClient:
    """A client with ``parent``'s connection settings (key, base URL, timeouts, transport,
    poll schedule) and a connection pool of its own, that does not retry by itself: the
    sweep's gate decides when to send again (one slow-down for all cells, not one each).
    The parent's pool, loop and hooks are left alone."""
    from ..client import AsyncSirayClient, RetryPolicy, SirayClient

    source: AsyncSirayClient = parent._async if isinstance(parent, SirayClient) else parent
    if not isinstance(source, AsyncSirayClient):
        raise TypeError(
            f"client must be an AsyncSirayClient or a SirayClient, not {type(parent).__name__}"
        )
    own = copy.copy(source)
    own._pool = None
    own._finalizer = None
    own._closed = False
    own._quota = None
    own.retry = RetryPolicy.never()
    own.hooks = False  # the sweep records each cell itself
    if poll is not None:
        own.poll = poll
    return own
