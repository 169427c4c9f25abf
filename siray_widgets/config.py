"""Where requests go and with which key: argument, environment, or the offline sandbox.

Resolution, first match wins:

1. ``api_key=`` / ``base_url=`` arguments;
2. the ``SIRAY_API_KEY`` / ``SIRAY_BASE_URL`` environment variables;
3. neither a key nor a base URL anywhere: the embedded sandbox (placeholder images, no key).

A base URL without a key sends no ``Authorization`` header: the server answers 401 and the
user gets an :class:`~siray_widgets.errors.AuthenticationError` saying to set ``SIRAY_API_KEY``.

Both are checked here, before anything is sent, and refused with a
:class:`~siray_widgets.errors.ConfigurationError` (a ``ValueError``):

- a key must be printable ASCII without whitespace (surrounding blanks are stripped): a key
  pasted with a line break, a control character or a typographic quote cannot travel in an
  HTTP header, and the HTTP library would echo it in its error;
- a base URL needs an ``http``/``https`` scheme, a host and a port in 1..65535, and no
  ``user:password@`` part (httpx would send those as Basic credentials, in place of the key,
  and the password would show wherever the URL does);
- a key is sent over plain ``http://`` only to this machine (``localhost``, ``127.0.0.0/8``,
  ``::1``); elsewhere it would cross the network unencrypted. The one exception is the
  sandbox's open key (``"sandbox"``), which is public by design, so that a workshop can use a
  sandbox on the LAN.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, quote_plus, urlsplit

from .errors import ConfigurationError

DEFAULT_BASE_URL: Final = "https://api.siray.ai"
API_KEY_ENV: Final = "SIRAY_API_KEY"
BASE_URL_ENV: Final = "SIRAY_BASE_URL"
#: The key a sandbox accepts when started without one; public by design, so not a secret.
SANDBOX_OPEN_KEY: Final = "sandbox"
#: Where Siray publishes its model registry (``GET {gateway}/api/model-verse/models``).
DEFAULT_GATEWAY_URL: Final = "https://api-gateway.siray.ai"
GATEWAY_URL_ENV: Final = "SIRAY_GATEWAY_URL"
#: The package's data folder (run store, registry cache) goes here when set.
HOME_ENV: Final = "SIRAY_WIDGETS_HOME"

KeySource = Literal["argument", "environment", "sandbox", "none"]


class Secret:
    """A string that never shows itself: repr, str and format all print a mask.

    Only :meth:`reveal` returns the value, and only the client calls it, to build the
    ``Authorization`` header.
    """

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"an API key must be a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key into whatever file the pickle lands in.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Settings:
    """The resolved connection settings of one client."""

    base_url: str
    api_key: Secret | None
    key_source: KeySource
    sandbox: bool

    def describe(self) -> str:
        """One human line saying where requests go (never the key itself)."""
        if self.sandbox:
            return "sandbox: placeholder images, no key used"
        if self.api_key is None:
            return f"{self.base_url} without an API key: set {API_KEY_ENV} to authenticate"
        if self.key_source == "environment":
            return f"{self.base_url} with the key from {API_KEY_ENV}"
        return f"{self.base_url} with the key passed as api_key"


def _clean(value: str | None) -> str | None:
    """Blank counts as unset: ``SIRAY_API_KEY=`` in a shell file should not send ``Bearer ``."""
    if value is None:
        return None
    value = value.strip()
    return value or None


_KEY_WHERE: Final = {"argument": "passed as api_key", "environment": f"in {API_KEY_ENV}"}


def check_key(
    key: str, where: str = "", hint: str = "copy it again from the Siray dashboard"
) -> None:
    """Raise :class:`ConfigurationError` unless ``key`` is printable ASCII without whitespace.

    The message names the kind of character at fault and ``where`` the key came from; it
    never shows the key.
    """
    for char in key:
        if "!" <= char <= "~":
            continue
        if char in "\r\n":
            kind = "a line break"
        elif char.isspace():
            kind = "whitespace"
        elif not char.isprintable():
            kind = "a control character"
        else:
            kind = "a non-ASCII character (a typographic quote or dash, say)"
        place = f" {where}" if where else ""
        raise ConfigurationError(
            f"the API key{place} contains {kind}; a key is printable ASCII with no whitespace "
            f"or control characters — {hint}"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, without brackets) is this machine."""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, with_key: bool) -> None:
    """Raise :class:`ConfigurationError` for a base URL that cannot work or would leak the key.

    It needs an ``http``/``https`` scheme, a host and a port in 1..65535; with a key, plain
    ``http://`` is accepted only for a loopback host (see the module docstring).
    """
    shown = without_userinfo(url)
    if shown != url:
        # Checked first: every message below quotes the URL, which would show the password.
        raise ConfigurationError(
            f"base URL {shown!r} holds a user name or password (user:password@host); remove "
            f"it: the API takes the key from {API_KEY_ENV} (or api_key=), never from the URL"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", a port that is not a number or too big
        raise ConfigurationError(
            f"base URL {url!r} is not a valid URL ({exc}); write it like https://api.siray.ai"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            f"base URL {url!r} must start with https:// (or http:// for a local server)"
        )
    if not host:
        raise ConfigurationError(
            f"base URL {url!r} has no host name; write it like https://api.siray.ai"
        )
    if port is not None and not 1 <= port <= 65535:
        raise ConfigurationError(f"base URL {url!r} has port {port}, not one of 1..65535")
    if with_key and scheme == "http" and not is_loopback(host):
        shown = f"[{host}]" if ":" in host else host
        raise ConfigurationError(
            f"refusing to send the API key unencrypted over http:// to {shown}; use "
            f"https://{shown} (plain http:// is only for a server on this machine: localhost, "
            "127.0.0.1 or ::1)"
        )


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` before its host cut out (``url`` itself if none).

    Plain string work, so that it also cleans URLs that ``urlsplit`` cannot read.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc = rest[:end]
    if "@" not in netloc:
        return url
    host = netloc.rpartition("@")[2]
    return f"{scheme}{sep}***@{host}{rest[end:]}"


def resolve(
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve key and base URL (see the module docstring); may start the sandbox.

    Raises :class:`~siray_widgets.errors.ConfigurationError` (a ``ValueError``) for a key or
    base URL that cannot work, before anything is sent.
    """
    env = os.environ if environ is None else environ

    key: Secret | None
    source: KeySource
    if isinstance(api_key, Secret):
        text = _clean(api_key.reveal())
        if text is None:
            key, source = None, "none"
        else:
            key = api_key if text == api_key.reveal() else Secret(text)
            source = "argument"
    elif (text := _clean(api_key)) is not None:
        key, source = Secret(text), "argument"
    elif (text := _clean(env.get(API_KEY_ENV))) is not None:
        key, source = Secret(text), "environment"
    else:
        key, source = None, "none"
    if key is not None:
        check_key(key.reveal(), _KEY_WHERE.get(source, ""))

    url = _clean(base_url) or _clean(env.get(BASE_URL_ENV))
    if key is None and url is None:
        # Imported here: the sandbox pulls in uvicorn and Pillow, and starts a server.
        from . import sandbox

        handle = sandbox.shared()
        return Settings(
            base_url=handle.base_url.rstrip("/"),
            api_key=Secret(handle.api_key),
            key_source="sandbox",
            sandbox=True,
        )
    url = url or DEFAULT_BASE_URL
    # The sandbox's open key and a workshop token on a private network (opt-in) may go over
    # plain http:// to another machine; a real API key never does.
    public = key is None or key.reveal() == SANDBOX_OPEN_KEY or workshop_plain_http(key, url, env)
    check_base_url(url, with_key=not public)
    return Settings(
        base_url=url.rstrip("/"),
        api_key=key,
        key_source=source,
        sandbox=False,
    )


#: Keys shorter than this are not masked in text: they cannot be real API keys, and masking
#: them would hide ordinary words (the sandbox's open key is the word "sandbox").
MIN_REDACTED_LENGTH: Final = 8


@functools.lru_cache(maxsize=16)
def _forms(key: str) -> tuple[str, ...]:
    """Every way ``key`` can come back inside a server's or a library's text, longest first.

    Cached (a few keys per process at most): every string of every answer is masked with it.
    """
    forms = {
        key,
        repr(key)[1:-1],
        json.dumps(key)[1:-1],
        json.dumps(key, ensure_ascii=False)[1:-1],
        repr(key.encode("utf-8", "backslashreplace"))[2:-1],
        key.encode("unicode_escape").decode("ascii"),
        quote(key, safe=""),
        quote_plus(key),
        # HTML-escaped, as an error page shows it (&amp; &lt; &gt; &quot; &#x27;), and as
        # Go's JSON encoder writes <, > and & (\u003c ...).
        html.escape(key),
        html.escape(key, quote=False),
        key.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"),
    }
    # Pieces between characters a key never has; short ones could be ordinary words.
    forms.update(piece for piece in re.split(r"[^!-~]", key) if len(piece) >= MIN_REDACTED_LENGTH)
    return tuple(sorted((f for f in forms if len(f) >= MIN_REDACTED_LENGTH), key=len, reverse=True))


def mentions(text: str, secret: Secret | None) -> bool:
    """Whether :func:`redact` would change ``text`` (a quick test before masking in depth)."""
    key = secret.reveal() if secret is not None else ""
    return len(key) >= MIN_REDACTED_LENGTH and any(form in text for form in _forms(key))


def redact(text: str, secret: Secret | None) -> str:
    """``text`` with the key (if any) masked as ``***``: defence in depth for echoed server text.

    Servers may echo the key they rejected, and error texts quote it in more ways than one:
    escaped (an HTTP library's ``repr`` of a header value, JSON), percent-encoded,
    HTML-escaped, or cut in pieces at a character that broke it. The client and the widget
    both mask with this. Keys shorter than :data:`MIN_REDACTED_LENGTH` are left alone (no
    real key is that short, and masking would eat ordinary words).
    """
    key = secret.reveal() if secret is not None else ""
    if len(key) < MIN_REDACTED_LENGTH:
        return text
    for form in _forms(key):
        if form in text:
            text = text.replace(form, "***")
    return text


def gateway_url(url: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The gateway the model registry is read from: ``url``, ``SIRAY_GATEWAY_URL`` or Siray's.

    No key is ever sent to the gateway (the registry is public), so plain ``http://`` is
    accepted anywhere. Raises :class:`ConfigurationError` for a URL that cannot work.
    """
    env = os.environ if environ is None else environ
    chosen = _clean(url) or _clean(env.get(GATEWAY_URL_ENV)) or DEFAULT_GATEWAY_URL
    try:
        check_base_url(chosen, with_key=False)
    except ConfigurationError as exc:
        where = "" if _clean(url) else f" (from {GATEWAY_URL_ENV})"
        raise ConfigurationError(str(exc).replace("base URL", f"gateway URL{where}", 1)) from None
    return chosen.rstrip("/")


def data_dir(*, environ: Mapping[str, str] | None = None) -> Path:
    """The package's one data folder: ``SIRAY_WIDGETS_HOME`` or the platform's user data dir.

    Only computes the path (no I/O, nothing created): the layer that writes creates what it
    needs. On Linux the default is ``~/.local/share/siray-widgets``.
    """
    env = os.environ if environ is None else environ
    home = _clean(env.get(HOME_ENV))
    if home is not None:
        return Path(home).expanduser()
    import platformdirs  # ~20 ms; only when a data file is actually wanted

    return platformdirs.user_data_path("siray-widgets", appauthor=False)


# --- workshop tokens over plain http on a classroom LAN (the proxy, issue 10) -------------

#: Set to ``1`` on a participant's machine to let a *workshop token* travel over plain
#: ``http://`` to a workshop proxy at a private-network IP address (docs/workshop.md).
WORKSHOP_HTTP_ENV: Final = "SIRAY_WORKSHOP_PLAIN_HTTP"
#: Every workshop token starts with this; a real Siray key never has the token's shape.
WORKSHOP_TOKEN_PREFIX: Final = "workshop-"
#: Digits and letters without look-alikes (no 0/o, 1/l/i), so a token can be typed from paper.
WORKSHOP_TOKEN_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"
#: Groups of characters after the prefix, and characters per group (20 x log2(31) = 99 bits).
WORKSHOP_TOKEN_GROUPS: Final = (4, 5)
_WORKSHOP_TOKEN: Final = re.compile(
    re.escape(WORKSHOP_TOKEN_PREFIX)
    + "-".join(
        [f"[{WORKSHOP_TOKEN_ALPHABET}]{{{WORKSHOP_TOKEN_GROUPS[1]}}}"] * WORKSHOP_TOKEN_GROUPS[0]
    )
)
#: RFC 1918 IPv4 networks and IPv6 unique local addresses: a classroom LAN, never the internet.
_PRIVATE_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def is_workshop_token(key: str) -> bool:
    """Whether ``key`` has the exact shape of a workshop proxy's participant token."""
    return _WORKSHOP_TOKEN.fullmatch(key) is not None


def is_private_address(host: str) -> bool:
    """Whether ``host`` is an IP address on a private network (RFC 1918, or IPv6 ``fc00::/7``).

    Host names are not resolved (no I/O here), so they are never private by this rule.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in _PRIVATE_NETWORKS if net.version == address.version)


def workshop_plain_http(key: Secret, url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``key`` may go over plain ``http://`` to ``url`` although the host is not local.

    All three must hold: ``SIRAY_WORKSHOP_PLAIN_HTTP=1`` is set (an explicit opt-in), ``key``
    is a workshop token (a real Siray key never has its shape, so the real key is still
    refused), and the URL's host is a private-network IP address (a classroom LAN).
    """
    env = os.environ if environ is None else environ
    if env.get(WORKSHOP_HTTP_ENV, "").strip() != "1" or not is_workshop_token(key.reveal()):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and host is not None and is_private_address(host)
