"""Reading images from servers that may not play fair: size-capped, content-checked.

Used by the command line's ``--download`` and by the widget's image fetches, so that both
refuse the same things: an answer larger than the cap (read no further than that), and a body
that is not a raster image whatever its ``Content-Type`` says (a JSON error page saved as
``.png``, an SVG that can run script).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:  # httpx loads with the client, not with the widget
    import httpx

#: The largest image read, in bytes (a niji image is a few MB).
MAX_IMAGE_BYTES: Final = 32 * 1024 * 1024
#: How many redirects an image URL may take (the live service's outputs take one).
MAX_REDIRECTS: Final = 5

#: Raster types only: never SVG, which can run script when opened.
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_EXTENSIONS: Final = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


class DownloadError(Exception):
    """An image could not be had; the message says why in plain words."""


def sniff_image(data: bytes) -> str | None:
    """The raster type ``data`` really is (from its first bytes), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def extension(kind: str) -> str:
    """The file extension of a type :func:`sniff_image` returns."""
    return _EXTENSIONS[kind]


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the default port filled in; None otherwise."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port or (443 if scheme == "https" else 80)


def _too_big(url: str, limit: int) -> DownloadError:
    return DownloadError(f"{url[:100]} is larger than {limit // (1024 * 1024)} MB; not saved")


def check_length(response: httpx.Response, limit: int) -> None:
    """Refuse at once an answer whose declared length is over ``limit``."""
    declared = response.headers.get("Content-Length", "")
    if len(declared) > 15 or (declared.isdigit() and int(declared) > limit):
        raise _too_big(str(response.url), limit)


def checked_image(url: str, data: bytes) -> str:
    """The type of ``data``, or :class:`DownloadError` if it is not a raster image."""
    kind = sniff_image(data)
    if kind is None:
        raise DownloadError(
            f"{url[:100]} did not answer with an image (PNG, JPEG, GIF or WebP); not saved"
        )
    return kind


def read_capped(response: httpx.Response, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The body of a streamed ``response``, refusing to read past ``limit`` bytes."""
    check_length(response, limit)
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > limit:
            raise _too_big(str(response.url), limit)
    return bytes(data)


async def aread_capped(response: httpx.Response, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """:func:`read_capped` for an async streamed ``response``."""
    check_length(response, limit)
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            raise _too_big(str(response.url), limit)
    return bytes(data)
