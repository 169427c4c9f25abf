"""Parameters inside image files: written whenever the package saves an image, read back later.

Every image the package saves (the run store, ``siray-widgets generate --download``, exports)
carries its parameters three ways, so that each kind of tool finds them:

``siray-widgets``
    Lossless JSON: the request as sent (``request``) and every field (``params``, blank ones
    included), the task id, the model, the seed used, the image's index and the package
    version (:class:`ImageParams`). :func:`read_image_params` prefers it.
``Description``
    What Midjourney writes: the prompt and its suffix, ``a fox --ar 16:9 --s 250 ... --niji 7
    Job ID: <task id>``.
``parameters``
    What AUTOMATIC1111 (and the many tools that read its format) writes: the prompt, a
    ``Negative prompt:`` line, and a last line of ``Key: value`` pairs, where a value holding
    ``,``, ``:`` or a line break is written as a JSON string (``Aspect ratio: "16:9"``).

PNG files get them as text chunks (tEXt, or iTXt when the text is not Latin-1), inserted next
to the header without touching the pixels. JPEG and WebP files get them in EXIF
(``ImageDescription`` = the Description, ``UserComment`` = the A1111 parameters, as A1111
itself stores them in JPEG and WebP) and XMP (``dc:description``, and the JSON and the A1111
text in the ``siray`` namespace), again without re-encoding. A GIF is saved unchanged.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from . import __version__
from .errors import SirayError, SuffixError
from .schema import FIELDS, FIELDS_BY_NAME, MODEL_ID, ImageRequest
from .suffix import parse_prompt, parse_suffix, render_prompt

__all__ = [
    "DESCRIPTION_KEY",
    "JSON_KEY",
    "PARAMETERS_KEY",
    "ImageParams",
    "MetadataError",
    "a1111_parameters",
    "description",
    "embed",
    "parse_a1111_parameters",
    "parse_description",
    "read_image_metadata",
    "read_image_params",
    "sniff",
]

JSON_KEY: Final = "siray-widgets"
DESCRIPTION_KEY: Final = "Description"
PARAMETERS_KEY: Final = "parameters"
#: Version of the JSON chunk's layout.
FORMAT: Final = 1

XMP_NS: Final = "https://siray.ai/ns/siray-widgets/1.0/"
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_TYPES: Final = (b"tEXt", b"iTXt", b"zTXt")
_EXIF_HEADER: Final = b"Exif\x00\x00"
_XMP_HEADER: Final = b"http://ns.adobe.com/xap/1.0/\x00"
#: The most one JPEG segment can hold after its two length bytes.
_JPEG_SEGMENT_MAX: Final = 65533
_EXIF_DESCRIPTION: Final = 0x010E
_EXIF_SOFTWARE: Final = 0x0131
_EXIF_IFD: Final = 0x8769
_EXIF_USER_COMMENT: Final = 0x9286
_UNICODE_PREFIX: Final = b"UNICODE\x00"


class MetadataError(SirayError, ValueError):
    """An image's bytes cannot carry or do not hold parameters (says which and why)."""


# --- what is written -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageParams:
    """The parameters of one image, as the lossless JSON chunk holds them."""

    #: The request as it was sent (the seed as requested: -1 means "random").
    request: ImageRequest
    task_id: str | None = None
    #: The seed actually used, where known.
    seed: int | None = None
    #: 1-based position of the image in its task's outputs.
    index: int | None = None
    #: The package version that wrote the file.
    version: str = __version__
    #: Width and height in pixels, where known.
    size: tuple[int, int] | None = None

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def restored(self) -> ImageRequest:
        """The request that makes this image again: as sent, with the seed used if known."""
        if self.seed is None or self.seed == self.request.seed:
            return self.request
        try:
            return self.request.replace(seed=self.seed)
        except SirayError:  # a seed the schema does not allow: keep the request's own
            return self.request

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "request": self.request.to_body(),  # the body as sent
            "params": self.request.to_dict(),  # every field, blank ones included
            "task_id": self.task_id,
            "model": self.model,
            "seed": self.seed,
            "index": self.index,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Any) -> ImageParams:
        """Read the JSON chunk; raises :class:`MetadataError` naming what is wrong."""
        if not isinstance(data, Mapping) or not isinstance(data.get("request"), Mapping):
            raise MetadataError("the siray-widgets metadata has no 'request' object")
        params = data.get("params")
        try:
            if isinstance(params, Mapping):
                request = ImageRequest.from_body({**data["request"], **params})
            else:
                request = ImageRequest.from_body(data["request"])
        except SirayError as exc:
            raise MetadataError(
                f"the request in the image's metadata is not valid: {exc}"
            ) from None
        seed, index = data.get("seed"), data.get("index")
        task_id = data.get("task_id")
        return cls(
            request=request,
            task_id=task_id if isinstance(task_id, str) else None,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            version=str(data.get("version") or ""),
        )


def description(params: ImageParams) -> str:
    """Midjourney's ``Description``: prompt, suffix, and ``Job ID:`` when the task is known."""
    text = render_prompt(params.request)
    return f"{text} Job ID: {params.task_id}" if params.task_id else text


#: A1111 label of each field written on the parameters line, in order.
_A1111_LABELS: Final[dict[str, str]] = {
    "aspect_ratio": "Aspect ratio",
    "chaos": "Chaos",
    "stylize": "Stylize",
    "weird": "Weird",
    "quality": "Quality",
    "seed": "Seed",
    "raw": "Raw",
    "tile": "Tile",
}


def _a1111_quote(value: str) -> str:
    """A1111's own rule: a value with ``,``, ``:`` or a line break becomes a JSON string."""
    if any(c in value for c in ',:\n\r"') or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def a1111_parameters(params: ImageParams) -> str:
    """The AUTOMATIC1111 ``parameters`` text (the Seed is the seed used, where known)."""
    request = params.request
    values: dict[str, Any] = {
        label: getattr(request, name) for name, label in _A1111_LABELS.items()
    }
    values["Seed"] = params.seed if params.seed is not None else request.seed
    pairs = {label: _a1111_text(value) for label, value in values.items()}
    if params.size is not None:
        pairs["Size"] = f"{params.size[0]}x{params.size[1]}"
    pairs["Model"] = request.model
    if params.task_id:
        pairs["Task ID"] = params.task_id
    pairs["Version"] = f"siray-widgets {params.version}"
    lines = [request.prompt]
    if request.negative_prompt.strip():
        lines.append(f"Negative prompt: {request.negative_prompt}")
    lines.append(", ".join(f"{key}: {_a1111_quote(value)}" for key, value in pairs.items()))
    return "\n".join(lines)


def _a1111_text(value: Any) -> str:
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def _texts(params: ImageParams) -> dict[str, str]:
    return {
        JSON_KEY: json.dumps(params.to_json(), ensure_ascii=False, separators=(",", ":")),
        DESCRIPTION_KEY: description(params),
        PARAMETERS_KEY: a1111_parameters(params),
    }


# --- writing -------------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The media type of image bytes from their first bytes, or None if not an image we keep."""
    if data.startswith(_PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def embed(data: bytes, params: ImageParams) -> bytes:
    """``data`` (a PNG, JPEG or WebP file) with ``params`` embedded; pixels untouched.

    Chunks or segments this package wrote before are replaced, everything else is kept. A GIF
    comes back unchanged. Raises :class:`MetadataError` for bytes that are not such an image.
    """
    kind = sniff(data)
    if params.size is None and kind is not None:
        params = ImageParams(
            params.request,
            params.task_id,
            params.seed,
            params.index,
            params.version,
            image_size(data),
        )
    if kind == "image/png":
        return _png_embed(data, _texts(params))
    if kind == "image/jpeg":
        return _jpeg_embed(data, params)
    if kind == "image/webp":
        return _webp_embed(data, params)
    if kind == "image/gif":
        return data
    raise MetadataError("not a PNG, JPEG, WebP or GIF image")


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file's header (PNG directly, others through Pillow)."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(type, body, whole chunk) of each chunk; raises MetadataError on a broken structure."""
    if not data.startswith(_PNG_SIGNATURE):
        raise MetadataError("not a PNG file")
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise MetadataError("the PNG file ends inside a chunk header")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise MetadataError(f"the PNG file ends inside its {kind!r} chunk")
        yield kind, data[pos + 8 : pos + 8 + length], data[pos:end]
        pos = end
        if kind == b"IEND":
            return
    raise MetadataError("the PNG file has no IEND chunk")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_text_chunk(key: str, text: str) -> bytes:
    keyword = key.encode("latin-1")
    try:
        return _png_chunk(b"tEXt", keyword + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # iTXt: keyword, no compression, no language tag, no translated keyword, UTF-8 text.
        body = keyword + b"\x00\x00\x00\x00\x00" + text.encode("utf-8", "surrogatepass")
        return _png_chunk(b"iTXt", body)


def _png_embed(data: bytes, texts: Mapping[str, str]) -> bytes:
    ours = {key.encode("latin-1") for key in texts}
    out = [_PNG_SIGNATURE]
    for kind, body, whole in _png_chunks(data):
        if kind in _PNG_TEXT_TYPES and body.split(b"\x00", 1)[0] in ours:
            continue  # written by an earlier save: replaced below
        out.append(whole)
        if kind == b"IHDR":
            out.extend(_png_text_chunk(key, text) for key, text in texts.items())
    return b"".join(out)


def _xml_char(c: str) -> bool:
    """Whether XML 1.0 can hold ``c`` (tab and line feed aside)."""
    return c >= " " and c not in "\ufffe\uffff" and not 0xD800 <= ord(c) <= 0xDFFF


def _xml_text(text: str) -> str:
    """``text`` escaped for XML element content; characters XML cannot hold become U+FFFD."""
    cleaned = "".join(c if c in "\t\n" or _xml_char(c) else "\ufffd" for c in text)
    return html.escape(cleaned, quote=False).replace("\r", "&#13;")


def _xmp_packet(params: ImageParams) -> bytes:
    texts = _texts(params)
    # ASCII JSON: no character is lost to XML's rules.
    params_json = json.dumps(params.to_json(), ensure_ascii=True, separators=(",", ":"))
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:siray="{XMP_NS}">\n'
        '   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{_xml_text(texts[DESCRIPTION_KEY])}</rdf:li></rdf:Alt></dc:description>\n"
        f"   <xmp:CreatorTool>siray-widgets {_xml_text(params.version)}</xmp:CreatorTool>\n"
        f"   <siray:params>{_xml_text(params_json)}</siray:params>\n"
        f"   <siray:parameters>{_xml_text(texts[PARAMETERS_KEY])}</siray:parameters>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def _exif_bytes(data: bytes, params: ImageParams) -> bytes:
    """The file's EXIF (kept) with the Description, Software and UserComment set."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        exif = Image.Exif()
    texts = _texts(params)
    exif[_EXIF_DESCRIPTION] = texts[DESCRIPTION_KEY]
    exif[_EXIF_SOFTWARE] = f"siray-widgets {params.version}"
    exif.get_ifd(_EXIF_IFD)[_EXIF_USER_COMMENT] = _UNICODE_PREFIX + texts[PARAMETERS_KEY].encode(
        "utf-16-be", "surrogatepass"
    )
    raw: bytes = exif.tobytes()
    return raw if raw.startswith(_EXIF_HEADER) else _EXIF_HEADER + raw


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The header segments (marker, whole segment) before the scan data, and where it starts."""
    if not data.startswith(b"\xff\xd8"):
        raise MetadataError("not a JPEG file")
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise MetadataError("the JPEG file has a broken segment structure")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            return segments, pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            segments.append((marker, data[pos : pos + 2]))
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise MetadataError("the JPEG file ends inside a segment")
        segments.append((marker, data[pos:end]))
        pos = end
    raise MetadataError("the JPEG file has no image data")


def _app1(payload: bytes) -> bytes | None:
    if len(payload) > _JPEG_SEGMENT_MAX:
        return None  # too big for one segment: left out rather than split
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_embed(data: bytes, params: ImageParams) -> bytes:
    segments, scan = _jpeg_segments(data)
    kept = [
        (marker, seg)
        for marker, seg in segments
        if not (marker == 0xE1 and seg[4:].startswith((_EXIF_HEADER, _XMP_HEADER)))
    ]
    ours = [
        seg
        for seg in (_app1(_exif_bytes(data, params)), _app1(_XMP_HEADER + _xmp_packet(params)))
        if seg is not None
    ]
    # After a JFIF APP0 if there is one (its place is first), else right after SOI.
    at = 1 if kept and kept[0][0] == 0xE0 else 0
    parts = [seg for _, seg in kept[:at]] + ours + [seg for _, seg in kept[at:]]
    return b"\xff\xd8" + b"".join(parts) + data[scan:]


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        raise MetadataError("not a WebP file")
    chunks: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        end = pos + 8 + length
        if end > len(data):
            raise MetadataError(f"the WebP file ends inside its {kind!r} chunk")
        chunks.append((kind, data[pos + 8 : end]))
        pos = end + (length & 1)
    if not chunks:
        raise MetadataError("the WebP file has no chunks")
    return chunks


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def _webp_embed(data: bytes, params: ImageParams) -> bytes:
    chunks = _riff_chunks(data)
    exif = _exif_bytes(data, params)[len(_EXIF_HEADER) :]  # WebP's EXIF chunk has no header
    xmp = _xmp_packet(params)
    if chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0]
        header = bytes([flags | 0x08 | 0x04]) + chunks[0][1][1:]
        body = [(kind, b) for kind, b in chunks[1:] if kind not in (b"EXIF", b"XMP ")]
    else:  # the simple format: an extended header is needed to carry metadata
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            alpha = "A" in image.getbands()
        flags = 0x08 | 0x04 | (0x10 if alpha else 0)
        header = (
            bytes([flags, 0, 0, 0])
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little")
        )
        body = [(kind, b) for kind, b in chunks if kind not in (b"EXIF", b"XMP ")]
    payload = b"WEBP" + b"".join(
        _riff_chunk(kind, b)
        for kind, b in [(b"VP8X", header), *body, (b"EXIF", exif), (b"XMP ", xmp)]
    )
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


# --- reading -------------------------------------------------------------------------------

_JOB_ID = re.compile(r"\s+Job ID:\s*\S+\s*$")
_FLAG = re.compile(r"(?<!\S)(?:--|[\u2014\u2013])([A-Za-z][\w-]*)")
_A1111_PAIR = re.compile(r'\s*([\w][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_XMP_FIELD = re.compile(r"<siray:(params|parameters)>(.*?)</siray:\1>", re.DOTALL)
_XMP_DESCRIPTION = re.compile(
    r"<dc:description>\s*<rdf:Alt>\s*<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL
)


def parse_description(text: str, *, strict: bool = True) -> ImageRequest:
    """A Midjourney ``Description`` (``prompt --ar 16:9 ... Job ID: ...``) as a request.

    With ``strict=False``, flags this model cannot express (``--v 6``, ``--sref URL``) are
    dropped instead of raising :class:`~siray_widgets.errors.SuffixError`.
    """
    text = _JOB_ID.sub("", text.strip())
    if strict:
        return parse_prompt(text)
    flags = list(_FLAG.finditer(text))
    if not flags:
        return parse_prompt(text)
    kept = [text[: flags[0].start()]]
    for i, match in enumerate(flags):
        end = flags[i + 1].start() if i + 1 < len(flags) else len(text)
        piece = text[match.start() : end].strip()
        try:
            parse_suffix("x " + piece)
        except SuffixError:
            continue
        kept.append(piece)
    return parse_prompt(" ".join(kept))


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """An A1111 ``parameters`` text as ``{"Prompt", "Negative prompt", <key>: <value>}``."""
    *lines, last = text.strip().split("\n")
    if len(_A1111_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if line.startswith("Negative prompt:") and not negative:
            negative.append(line[len("Negative prompt:") :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    result = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _A1111_PAIR.findall(last):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = str(json.loads(value))
            except ValueError:
                value = value[1:-1]
        result[key.strip()] = value
    return result


def _request_from_a1111(pairs: Mapping[str, str]) -> ImageParams:
    fields: dict[str, Any] = {"prompt": pairs["Prompt"]}
    if pairs.get("Negative prompt"):
        fields["negative_prompt"] = pairs["Negative prompt"]
    for name, label in _A1111_LABELS.items():
        if label not in pairs:
            continue
        value: Any = pairs[label]
        kind = FIELDS_BY_NAME[name].type
        if kind == "integer":
            try:
                value = int(value)
            except ValueError:
                raise MetadataError(
                    f"{label} {value!r} in the A1111 parameters is not a number"
                ) from None
        elif kind == "boolean":
            value = value.lower() == "true"
        fields[name] = value
    model = pairs.get("Model", MODEL_ID)
    fields["model"] = model
    seed = fields.get("seed")
    try:
        request = ImageRequest(**fields)
    except SirayError as exc:
        raise MetadataError(f"the A1111 parameters do not make a valid request: {exc}") from None
    return ImageParams(request, task_id=pairs.get("Task ID"), seed=seed)


def _text_items(data: bytes) -> dict[str, str]:
    """Every text the file carries under the keys this module writes."""
    from PIL import Image, UnidentifiedImageError

    kind = sniff(data)
    texts: dict[str, str] = {}
    if kind == "image/png":
        for chunk_type, body, _ in _png_chunks(data):
            if chunk_type not in _PNG_TEXT_TYPES:
                continue
            key_bytes, _, rest = body.partition(b"\x00")
            key = key_bytes.decode("latin-1")
            if key not in (JSON_KEY, DESCRIPTION_KEY, PARAMETERS_KEY) or key in texts:
                continue
            texts[key] = _png_text(chunk_type, rest)
        return texts
    if kind not in ("image/jpeg", "image/webp"):
        raise MetadataError("not a PNG, JPEG or WebP image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            xmp = image.info.get("xmp") or b""
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MetadataError(f"the image cannot be read: {exc}") from None
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8", "replace")
    for name, value in _XMP_FIELD.findall(str(xmp)):
        texts[JSON_KEY if name == "params" else PARAMETERS_KEY] = html.unescape(value)
    found = _XMP_DESCRIPTION.search(str(xmp))
    if found:
        texts[DESCRIPTION_KEY] = html.unescape(found.group(1))
    comment = exif.get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT)
    if isinstance(comment, bytes) and PARAMETERS_KEY not in texts:
        texts[PARAMETERS_KEY] = _user_comment(comment)
    described = exif.get(_EXIF_DESCRIPTION)
    if isinstance(described, str) and DESCRIPTION_KEY not in texts:
        texts[DESCRIPTION_KEY] = described
    return texts


def _png_text(chunk_type: bytes, rest: bytes) -> str:
    if chunk_type == b"tEXt":
        return rest.decode("latin-1")
    if chunk_type == b"zTXt":
        return zlib.decompress(rest[1:]).decode("latin-1")
    compressed, _method = rest[0], rest[1]
    _lang, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return (zlib.decompress(text) if compressed else text).decode("utf-8", "replace")


def _user_comment(raw: bytes) -> str:
    prefix, body = raw[:8], raw[8:]
    if prefix == _UNICODE_PREFIX:
        # UTF-16 without a byte order mark; A1111 and piexif write it big-endian.
        return body.decode("utf-16-be", "replace")
    return body.decode("utf-8", "replace").rstrip("\x00")


def _read_bytes(source: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read {source}: {exc.strerror or exc}") from None


def read_image_metadata(source: str | os.PathLike[str] | bytes) -> ImageParams:
    """The parameters an image carries: from our JSON, else A1111 ``parameters``, else a
    Midjourney ``Description``. Raises :class:`MetadataError` when it holds none of them."""
    data = _read_bytes(source)
    texts = _text_items(data)
    if JSON_KEY in texts:
        try:
            decoded = json.loads(texts[JSON_KEY])
        except ValueError:
            raise MetadataError("the siray-widgets metadata is not valid JSON") from None
        params = ImageParams.from_json(decoded)
    elif PARAMETERS_KEY in texts:
        params = _request_from_a1111(parse_a1111_parameters(texts[PARAMETERS_KEY]))
    elif DESCRIPTION_KEY in texts:
        text = texts[DESCRIPTION_KEY]
        job = re.search(r"Job ID:\s*(\S+)\s*$", text)
        try:
            request = parse_description(text)
        except SirayError as exc:
            raise MetadataError(f"the image's Description cannot be read: {exc}") from None
        params = ImageParams(request, task_id=job.group(1) if job else None)
    else:
        raise MetadataError(
            "the image carries no generation parameters (no siray-widgets, parameters or "
            "Description text)"
        )
    return ImageParams(
        params.request,
        params.task_id,
        params.seed,
        params.index,
        params.version,
        image_size(data),
    )


def read_image_params(source: str | os.PathLike[str] | bytes) -> ImageRequest:
    """The request that makes an image again, read from the file (a path, or its bytes).

    Reads what :func:`embed` writes (PNG text chunks; EXIF/XMP in JPEG and WebP), A1111
    ``parameters``, and Midjourney ``Description`` texts. The seed is the seed used when the
    file records it (see :func:`read_image_metadata` for the request exactly as sent).
    """
    return read_image_metadata(source).restored


def field_names() -> tuple[str, ...]:
    """Every request field, in schema order (the columns of a manifest)."""
    return tuple(f.name for f in FIELDS)
