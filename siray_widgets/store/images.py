"""Keeping a run's images: download, check, embed the parameters, thumbnail.

The API's output URLs are redirects whose lifetime is unknown, so the store downloads every
image as soon as its run succeeds, on a small pool of background threads (a script that ends
right after ``generate()`` still waits for them: the pool's threads are joined at exit).

Each download follows redirects, is capped in size (:data:`MAX_IMAGE_BYTES`), and must be a
PNG, JPEG, WebP or GIF that Pillow can decode (an HTML error page or an SVG is refused). No
``Authorization`` header is ever sent, and proxies from the environment are used only for
hosts that are not this machine.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import io
import ipaddress
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from .. import __version__
from .._download import origin
from ..config import is_loopback
from ..metadata import ImageParams, MetadataError, embed, image_size, sniff

#: The largest image kept (bytes).
MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024
#: The largest image, in pixels, that is decoded to check it and make its thumbnail.
MAX_PIXELS: Final = 80_000_000  # below Pillow's own warning threshold
#: Longest side of a thumbnail, in pixels.
THUMB_EDGE: Final = 256
THUMB_QUALITY: Final = 72
DOWNLOAD_TIMEOUT: Final = 60.0
EXTENSIONS: Final = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


class ImageError(Exception):
    """One image could not be kept; the message says why in plain words."""


#: No run's images are downloaded when its API names more than this many (a task makes 4).
MAX_IMAGES_PER_RUN: Final = 4


def _local_host(host: str) -> bool:
    """This machine, or a private, link-local or otherwise non-public address: where a
    hostile API could point a download at another local service (an admin URL, a cloud's
    metadata address)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return False


def download_refusal(urls: Sequence[str], api_base_url: str | None) -> str | None:
    """Why the run store must not download ``urls`` for a run of the API at
    ``api_base_url`` (None: it may).

    Only as many images as a task makes; no URL on this machine or a private network unless
    it is on the run's own API server (the sandbox serves its images from its own origin):
    the store fetches in the background, with nobody to see a URL aimed at another service.
    """
    if len(urls) > MAX_IMAGES_PER_RUN:
        return f"the API named {len(urls)} images; a task makes at most {MAX_IMAGES_PER_RUN}"
    own = origin(api_base_url) if api_base_url else None
    for url in urls:
        found = origin(url)
        if found is None:
            return f"not an http(s) URL: {url[:200]}"
        if _local_host(found[1]) and found != own:
            return (
                f"an image URL points at {found[1]}, a local or private address that is not "
                "the API's own server"
            )
    return None


@dataclass(frozen=True)
class Checked:
    """A downloaded image that passed the checks, with its parameters embedded."""

    data: bytes
    media_type: str
    width: int
    height: int
    thumbnail: bytes
    seed: int | None  # the seed the file itself records (the sandbox's placeholders do)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def fetch(
    url: str, *, max_bytes: int = MAX_IMAGE_BYTES, timeout: float = DOWNLOAD_TIMEOUT
) -> bytes:
    """The bytes at ``url`` (redirects followed), or :class:`ImageError`."""
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageError(f"not an http(s) URL: {url[:200]}")
    local = is_loopback(parts.hostname)
    headers = {"User-Agent": f"siray-widgets/{__version__}", "Accept": "image/*"}
    public = not _local_host(parts.hostname)

    def stay_public(request: httpx.Request) -> None:
        # A public image URL that redirects to this machine or a private network is refused.
        if public and _local_host(request.url.host):
            raise ImageError(f"the download was redirected to {request.url.host}, a local address")

    try:
        with (
            httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                trust_env=not local,
                headers=headers,
                verify=_tls(),
                event_hooks={"request": [stay_public]},
            ) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ImageError(f"HTTP {response.status_code} from {_host(response.url)}")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise ImageError(f"the image is {int(length):,} bytes; the limit is {max_bytes:,}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise ImageError(f"the image is larger than the limit of {max_bytes:,} bytes")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise ImageError(f"download failed: {type(exc).__name__}: {exc}"[:300]) from None
    except httpx.InvalidURL as exc:
        raise ImageError(f"not a valid URL ({exc})") from None


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every download (building one reads the CA bundle: ~0.1 s)."""
    import httpx

    return httpx.create_ssl_context()


def _host(url: object) -> str:
    return urlsplit(str(url)).hostname or "the server"


def check(data: bytes, params: ImageParams | None) -> Checked:
    """Refuse what is not a whole image; embed ``params``; make the thumbnail.

    ``params`` is None for other models' images (the metadata chunks speak niji 7): they are
    kept as they came.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    media_type = sniff(data)
    if media_type is None:
        start = data[:64].lstrip().lower()
        what = "an HTML page" if start.startswith((b"<!doctype", b"<html")) else "not an image"
        if start.startswith((b"<?xml", b"<svg")):
            what = "an SVG (not kept: it can hold scripts)"
        raise ImageError(f"the download is {what} (expected PNG, JPEG, WebP or GIF)")
    if media_type == "image/png":  # checked before Pillow sees it (Pillow would only warn)
        size = image_size(data)
        if size is not None and size[0] * size[1] > MAX_PIXELS:
            raise ImageError(f"the image is {size[0]}x{size[1]} pixels; too large to keep")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"the image is {width}x{height} pixels; too large to keep")
            probe.verify()  # structure and checksums, without decoding every pixel
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a truncated file fails here
            seed = _seed_chunk(image.info)
            thumb = ImageOps.exif_transpose(image)
            thumb.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
            if thumb.mode not in ("RGB", "RGBA"):
                thumb = thumb.convert("RGBA" if "A" in thumb.getbands() else "RGB")
            out = io.BytesIO()
            thumb.save(out, "WEBP", quality=THUMB_QUALITY, method=4)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("the image has too many pixels to keep") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image is damaged or truncated ({exc})"[:300]) from None
    if params is None:
        return Checked(data, media_type, width, height, out.getvalue(), seed)
    if params.seed is None and seed is not None:
        params = ImageParams(params.request, params.task_id, seed, params.index, params.version)
    params = ImageParams(
        params.request, params.task_id, params.seed, params.index, params.version, (width, height)
    )
    try:
        stamped = embed(data, params)
    except MetadataError as exc:
        raise ImageError(f"cannot add the parameters to the image: {exc}") from None
    return Checked(stamped, media_type, width, height, out.getvalue(), seed)


def _seed_chunk(info: dict[str, object]) -> int | None:
    value = info.get("seed")
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's download threads (two: downloads wait on the network, not the CPU)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="siray-widgets-images"
            )
        return _pool
