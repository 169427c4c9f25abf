"""Text the widget offers to copy, and its static HTML fallback, derived from one request.

Computed in Python so that flag names, URLs and the client's API are written once, here and in
the modules they come from; the front end only copies these strings.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Sequence

from .config import API_KEY_ENV, DEFAULT_BASE_URL, is_loopback
from .errors import SirayError
from .schema import CREATE_PATH, FIELDS, ImageRequest


def snippets(request: ImageRequest, base_url: str | None = None) -> dict[str, str]:
    """The four copyable texts: ``json``, ``curl``, ``python`` and ``suffix``.

    ``base_url`` is where a real request should go (the sandbox's address is never worth
    copying); None means the public API.
    """
    body = request.to_json()
    return {
        "json": body,
        "curl": curl_command(body, base_url),
        "python": python_snippet(request, base_url),
        "suffix": suffix(request),
    }


def curl_command(body: str, base_url: str | None = None) -> str:
    """A curl command that sends ``body``; the key stays in the shell variable."""
    url = (base_url or DEFAULT_BASE_URL).rstrip("/") + CREATE_PATH
    quoted = "'" + body.replace("'", "'\\''") + "'"  # POSIX shell single quotes
    return (
        f"curl -sS -X POST {url} \\\n"
        f'  -H "Authorization: Bearer ${API_KEY_ENV}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {quoted}"
    )


def python_snippet(request: ImageRequest, base_url: str | None = None) -> str:
    """A script that sends the same request with this package's client (to ``base_url``)."""
    args = [
        f"    {f.name}={getattr(request, f.name)!r},"
        for f in FIELDS
        if getattr(request, f.name) != f.default
    ]
    call = "ImageRequest(\n" + "\n".join(args) + "\n)" if args else "ImageRequest()"
    if base_url:
        client = f"SirayClient(base_url={base_url!r})"
        comment = f"key from {API_KEY_ENV}"
    else:
        client, comment = "SirayClient()", f"key from {API_KEY_ENV}; none: the offline sandbox"
    return (
        "from siray_widgets import ImageRequest, SirayClient\n"
        "\n"
        f"request = {call}\n"
        f"with {client} as client:  # {comment}\n"
        "    task = client.generate(request)\n"
        "print(task.outputs)\n"
    )


def suffix(request: ImageRequest) -> str:
    """The Midjourney suffix for the request's parameters ("" if it cannot be written)."""
    try:
        return request.to_suffix()
    except SirayError:
        return ""


def static_html(request: ImageRequest, *, status: str, images: Sequence[str], sandbox: bool) -> str:
    """A small, fully escaped HTML snapshot for viewers that cannot run the widget."""
    esc = html.escape
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{esc(f.label)}</th>"
        f"<td><code>{esc(str(getattr(request, f.name)))}</code></td></tr>"
        for f in FIELDS
    )
    pictures = "".join(
        f"<img src='{esc(url, quote=True)}' alt='generated image' "
        "style='max-width:160px;margin:2px'>"
        for url in images
        if is_safe_image_url(url)
    )
    state = f"<p>Task status: <b>{esc(status)}</b></p>" if status else ""
    badge = " (sandbox)" if sandbox else ""
    return (
        "<div><p><b>Siray image widget</b>"
        f"{esc(badge)} — static snapshot; run the notebook to use the controls.</p>"
        f"<table>{rows}</table>{state}{pictures}</div>"
    )


_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp)[;,]", re.IGNORECASE)


def is_safe_image_url(url: str) -> bool:
    """Only http(s) and raster data:image URLs are ever shown (the front end has the same rule).

    Not SVG: harmless in an ``<img>``, but the download link would hand over a file that can
    run script.
    """
    text = url.strip()
    return text.lower().startswith(("https://", "http://")) or bool(_DATA_IMAGE.match(text))


def is_local_url(url: str) -> bool:
    """Whether ``url`` is http(s) on a loopback host (127.0.0.0/8, localhost, ::1).

    The kernel can load such a URL but a browser on another machine cannot (JupyterHub,
    Binder, Codespaces, an SSH tunnel): the widget sends those images' bytes instead.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    return host.lower().endswith(".localhost") or is_loopback(host)
