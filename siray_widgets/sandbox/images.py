"""Placeholder images drawn with Pillow, in which every parameter visibly matters.

- ``aspect_ratio`` sets the shape and ``quality`` the pixel count (area grows with it);
- the seed and the prompt fix the composition, so the same request gives the same pixels
  (a fixed ``seed``; ``-1`` draws a random one per task). The PNG files are not byte-equal
  across tasks: their metadata carries each task's id;
- ``chaos`` spreads the four images of a task apart (colours and positions);
- ``stylize`` raises colour saturation; ``raw`` flattens colour and contrast;
- ``weird`` adds inverted glitch bands, more of them the higher it is;
- ``tile`` draws on a torus, so opposite edges continue each other;
- the prompt is written small in a corner; PNG text chunks carry the request, the seed and
  the task id.

Everything is drawn on a padded canvas and cropped, so blurring and wrapping behave the same
at the edges as inside.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

from ..schema import ImageRequest

#: Width and height of a 1:1 image at quality "1"; pixel count grows in proportion to quality.
BASE_EDGE = 512
#: Most glitch bands (at weird=3000).
MAX_BANDS = 48
_BLOBS = (7, 11)


def image_size(aspect_ratio: str, quality: str) -> tuple[int, int]:
    """Pixel size for an aspect ratio such as ``"16:9"`` and a quality ``"1"``, ``"2"``, ``"4"``.

    The area is ``BASE_EDGE**2 * quality`` (more GPU time, more pixels); both sides are
    multiples of 8.
    """
    w_ratio, h_ratio = (int(part) for part in aspect_ratio.split(":"))
    area = BASE_EDGE * BASE_EDGE * int(quality)

    def side(a: int, b: int) -> int:
        return max(8, round(math.sqrt(area * a / b) / 8) * 8)

    return side(w_ratio, h_ratio), side(h_ratio, w_ratio)


def _seed_of(*parts: Any) -> int:
    """A stable integer from ``parts`` (Python's hash() changes between runs)."""
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=True).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0.0, min(1.0, s)), max(0.0, min(1.0, v)))
    return round(r * 255), round(g * 255), round(b * 255)


def _ramp(values: list[float]) -> bytes:
    return bytes(max(0, min(127, round(v * 127))) for v in values)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render(
    request: ImageRequest, *, image_seed: int, index: int, label: bool = True
) -> Image.Image:
    """Image ``index`` (0..3) of a task, as an RGB image.

    ``image_seed`` is the seed actually used (the request's, or the random one chosen for
    seed=-1). ``label=False`` leaves out the text (tests use it to find the text).
    """
    width, height = image_size(request.aspect_ratio, request.quality)
    unit = min(width, height)
    blur = unit / 48
    pad = math.ceil(blur * 3) + 2
    pw, ph = width + 2 * pad, height + 2 * pad
    tile = request.tile
    # Composition comes from the seed and the words; the other parameters act on top of it,
    # so changing stylize (say) changes the look of the same picture.
    words = (request.prompt, request.negative_prompt)
    base = random.Random(_seed_of("base", image_seed, *words))
    own = random.Random(_seed_of("own", image_seed, *words, index))
    spread = 0.06 + 0.94 * request.chaos / 100  # chaos 0 still gives four distinct images

    def jitter(amount: float) -> float:
        return spread * own.uniform(-amount, amount)

    hue = base.random() + jitter(0.25)  # at most half the colour wheel apart: never wraps
    # Background: a gradient between two colours; on a tile, a periodic (cosine) one.
    xs = [(x - pad) / width for x in range(pw)]
    ys = [(y - pad) / height for y in range(ph)]
    if tile:
        hx = [(1 - math.cos(2 * math.pi * t)) / 2 for t in xs]
        vy = [(1 - math.cos(2 * math.pi * t)) / 2 for t in ys]
    else:
        hx, vy = xs, ys
    ramp = ImageChops.add(
        Image.frombytes("L", (pw, 1), _ramp(hx)).resize((pw, ph), Image.Resampling.NEAREST),
        Image.frombytes("L", (1, ph), _ramp(vy)).resize((pw, ph), Image.Resampling.NEAREST),
    )
    dark = _rgb(hue, 0.55, 0.30)
    light = _rgb(hue + 0.12, 0.55, 0.90)
    channels = [
        ramp.point([round(dark[c] + (light[c] - dark[c]) * i / 255) for i in range(256)])
        for c in range(3)
    ]
    background = Image.merge("RGB", channels)

    # Soft blobs; on a tile each is also drawn shifted by one period in every direction.
    shapes = background.copy()
    draw = ImageDraw.Draw(shapes)
    shifts = [(dx, dy) for dx in (-width, 0, width) for dy in (-height, 0, height)]
    for _ in range(base.randint(*_BLOBS)):
        cx = (base.random() + jitter(0.35)) * width
        cy = (base.random() + jitter(0.35)) * height
        radius = base.uniform(0.08, 0.26) * unit
        colour = _rgb(
            hue + base.uniform(-0.3, 0.3) + jitter(0.25),
            base.uniform(0.55, 0.95),
            base.uniform(0.65, 1.0),
        )
        for dx, dy in shifts if tile else [(0, 0)]:
            x, y = cx + dx + pad, cy + dy + pad
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    image = Image.blend(background, shapes, 0.8).filter(ImageFilter.GaussianBlur(blur))

    # Stylize: Midjourney's aesthetic, shown as colour saturation. Raw: less of it.
    saturation = 0.25 + 1.25 * math.sqrt(request.stylize / 1000)
    if request.raw:
        saturation *= 0.55
        image = ImageEnhance.Contrast(image).enhance(0.7)
    image = ImageEnhance.Color(image).enhance(saturation)

    # Weird: inverted glitch bands. Band j is the same whatever the weird value, so a higher
    # value only adds bands.
    bands = math.ceil(MAX_BANDS * request.weird / 3000)
    if bands:
        mask = Image.new("L", (pw, ph), 0)
        mask_draw = ImageDraw.Draw(mask)
        for j in range(bands):
            rng = random.Random(_seed_of("weird", image_seed, *words, index, j))
            x = rng.random() * width
            y = rng.random() * height
            w = (0.15 + 0.6 * rng.random()) * width
            h = 1 + rng.random() * unit / 40
            for dx, dy in shifts if tile else [(0, 0)]:
                mask_draw.rectangle(
                    (x + dx + pad, y + dy + pad, x + dx + w + pad, y + dy + h + pad), fill=255
                )
        image = Image.composite(ImageOps.invert(image), image, mask)

    image = image.crop((pad, pad, pad + width, pad + height))
    if label:
        _write_labels(image, request.prompt, index)
    return image


def _write_labels(image: Image.Image, prompt: str, index: int) -> None:
    """The prompt small in the bottom-left corner, "sandbox n/4" top-left.

    Inset from the edges so tiles still match along them.
    """
    width, height = image.size
    size = max(11, min(width, height) // 36)
    margin = max(6, size // 2)
    font = _font(size)
    draw = ImageDraw.Draw(image)
    stroke = max(1, size // 12)
    text = "".join(ch if ch.isprintable() else " " for ch in prompt).strip()
    available = width - 2 * margin
    if draw.textlength(text, font=font) > available:
        # Shorten until it fits, ending in an ellipsis.
        cut = len(text)
        while cut > 1 and draw.textlength(text[:cut] + "…", font=font) > available:
            cut = max(1, int(cut * 0.9))
        text = text[:cut].rstrip() + "…"
    for position, line in (
        ((margin, margin), f"sandbox {index + 1}/4"),
        ((margin, height - margin - size), text),
    ):
        try:
            draw.text(
                position, line, font=font, fill="white", stroke_width=stroke, stroke_fill="black"
            )
        except UnicodeEncodeError:  # Pillow without FreeType: a Latin-1 bitmap font
            safe = line.encode("latin-1", "replace").decode("latin-1")
            draw.text(position, safe, font=font, fill="white")


def png_bytes(request: ImageRequest, *, task_id: str, image_seed: int, index: int) -> bytes:
    """Image ``index`` (0..3) as PNG, with the request and task id in tEXt chunks.

    The same request, seed and index give the same pixels; two tasks' files still differ in
    their bytes, because the ``task_id`` chunk differs. The same task's image is byte-equal
    on every download.
    """
    image = render(request, image_seed=image_seed, index=index)
    info = PngInfo()
    info.add_text("task_id", task_id)
    # ensure_ascii: tEXt is Latin-1; escaped JSON loads back to the same request.
    info.add_text("request", json.dumps(request.to_body(), ensure_ascii=True))
    info.add_text("seed", str(image_seed))
    info.add_text("image", f"{index + 1}/4")
    info.add_text("Software", "siray-widgets sandbox (placeholder image)")
    buffer = io.BytesIO()
    # Level 1: fast to write, and the same input still gives the same bytes; these images
    # are throwaway.
    image.save(buffer, "PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def metadata(data: bytes) -> Mapping[str, str]:
    """The text chunks of a PNG made by :func:`png_bytes`."""
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.text)


class ImageCache:
    """LRU cache of rendered PNGs, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, int], data: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            if len(data) > self.max_bytes:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)
