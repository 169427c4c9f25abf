"""Text the widget offers to copy, derived from one request, and the URL rules it shows by.

Computed in Python so that flag names, URLs and the client's API are written once, here and in
the modules they come from; the front end only copies these strings.
"""

from __future__ import annotations

import re
import urllib.parse

from .config import API_KEY_ENV, DEFAULT_BASE_URL, is_loopback
from .errors import SirayError
from .schema import CREATE_PATH, FIELDS, AnyRequest, ImageRequest
from .suffix import render_suffix


def snippets(
    request: AnyRequest, base_url: str | None = None, *, body: AnyRequest | None = None
) -> dict[str, str]:
    """The four copyable texts: ``json``, ``curl``, ``python`` and ``suffix``.

    ``body`` is the request exactly as Generate sends it (``request`` with the seed it will
    use when ``request.seed`` is -1, "random"); ``json``, ``curl`` and ``python`` send it.
    ``suffix`` is the whole Midjourney prompt for ``request`` (no ``--seed`` when random; ""
    for a model other than niji 7).
    ``base_url`` is where a real request should go (the sandbox's address is never worth
    copying); None means the public API.
    """
    sent = body if body is not None else request
    text = sent.to_json()
    return {
        "json": text,
        "curl": curl_command(text, base_url),
        "python": python_snippet(sent, base_url),
        "suffix": midjourney_prompt(request) if isinstance(request, ImageRequest) else "",
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


def python_snippet(request: AnyRequest, base_url: str | None = None) -> str:
    """A script that sends the same request with this package's client (to ``base_url``)."""
    values = request.to_dict()
    if isinstance(request, ImageRequest):
        args = [f"    {f.name}={values[f.name]!r}," for f in FIELDS if values[f.name] != f.default]
        call = "ImageRequest(\n" + "\n".join(args) + "\n)" if args else "ImageRequest()"
        imported = "ImageRequest, SirayClient"
    else:  # another model: its fields come from the registry, by name
        fields = request.model_schema.fields
        args = [f"    {request.model!r},"] + [
            f"    {f.name}={values[f.name]!r},"
            for f in fields
            if f.name != "model" and values[f.name] != f.default
        ]
        call = "request_for(\n" + "\n".join(args) + "\n)"
        imported = "SirayClient, request_for"
    if base_url:
        client = f"SirayClient(base_url={base_url!r})"
        comment = f"key from {API_KEY_ENV}"
    else:
        client, comment = "SirayClient()", f"key from {API_KEY_ENV}; none: the offline sandbox"
    return (
        f"from siray_widgets import {imported}\n"
        "\n"
        f"request = {call}\n"
        f"with {client} as client:  # {comment}\n"
        "    task = client.generate(request)\n"
        "print(task.outputs)\n"
    )


def midjourney_prompt(request: ImageRequest) -> str:
    """What a Midjourney user would type: the prompt, then the flags of the fields that differ
    from the defaults, then ``--niji 7`` ("" if the request cannot be written as one).

    Derived from :func:`~siray_widgets.suffix.render_suffix` (one source for flag names):
    a flag is left out when the default request renders it the same way. Reading the result
    back with :func:`~siray_widgets.suffix.parse_prompt` gives ``request`` again.
    """
    try:
        flags = _flag_groups(render_suffix(request))
        defaults = set(_flag_groups(render_suffix(ImageRequest(prompt=request.prompt))))
    except SirayError:
        return ""
    kept = [g for g in flags if g not in defaults or g.startswith("--niji")]
    return " ".join([request.prompt.strip(), *kept])


def _flag_groups(suffix: str) -> list[str]:
    """``"--ar 1:1 --no a b --niji 7"`` -> ``["--ar 1:1", "--no a b", "--niji 7"]``."""
    return [group.strip() for group in re.split(r"\s(?=--)", suffix) if group.strip()]


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
