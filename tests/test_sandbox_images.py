"""Placeholder images: size per aspect ratio and quality, determinism, tiles, metadata, looks."""

from __future__ import annotations

import io
import itertools
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from siray_widgets.sandbox import SandboxHandle
from siray_widgets.sandbox.images import BASE_EDGE, ImageCache, image_size, metadata, render
from siray_widgets.schema import ASPECT_RATIOS, CREATE_PATH, MODEL_ID, QUALITIES, ImageRequest

SEEDS = (1, 2, 3)


def request(**fields: Any) -> ImageRequest:
    return ImageRequest(**{"prompt": "a fox in the snow", **fields})


def diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference, 0..255."""
    return float(ImageStat.Stat(ImageChops.difference(a, b).convert("L")).mean[0])


def roughness(image: Image.Image) -> float:
    """Mean difference between neighbouring pixels (high for sharp detail)."""
    w, h = image.size
    return diff(image.crop((0, 0, w - 1, h)), image.crop((1, 0, w, h))) + diff(
        image.crop((0, 0, w, h - 1)), image.crop((0, 1, w, h))
    )


def saturation(image: Image.Image) -> float:
    return float(ImageStat.Stat(image.convert("HSV").getchannel("S")).mean[0])


def contrast(image: Image.Image) -> float:
    return float(ImageStat.Stat(image.convert("L")).stddev[0])


class Api:
    """Creates tasks on a sandbox and fetches their images."""

    def __init__(self, box: SandboxHandle) -> None:
        self.http = httpx.Client(
            base_url=box.base_url, headers={"Authorization": f"Bearer {box.api_key}"}
        )

    def images(self, **fields: Any) -> tuple[str, list[bytes]]:
        body = {"model": MODEL_ID, "prompt": "a fox in the snow", "aspect_ratio": "1:1", **fields}
        task_id = self.http.post(CREATE_PATH, json=body).json()["data"]["task_id"]
        urls = self.http.get(f"{CREATE_PATH}/{task_id}").json()["data"]["outputs"]
        return task_id, [self.http.get(url).content for url in urls]


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.http.close()


def pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size, image.convert("RGB").tobytes()


# --- size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "quality"), list(itertools.product(ASPECT_RATIOS, QUALITIES)))
def test_size_follows_aspect_ratio_and_quality(ratio: str, quality: str) -> None:
    width, height = image_size(ratio, quality)
    w_ratio, h_ratio = (int(x) for x in ratio.split(":"))
    assert width % 8 == 0
    assert height % 8 == 0
    assert width / height == pytest.approx(w_ratio / h_ratio, rel=0.02)
    # Pixel count grows in proportion to quality (more GPU time, more pixels).
    assert width * height == pytest.approx(BASE_EDGE * BASE_EDGE * int(quality), rel=0.03)


def test_base_size() -> None:
    assert image_size("1:1", "1") == (512, 512)
    assert image_size("1:1", "4") == (1024, 1024)
    assert image_size("16:9", "1") == (680, 384)
    assert image_size("9:16", "1") == (384, 680)


@pytest.mark.parametrize(("ratio", "quality"), [("16:9", "1"), ("2:3", "2"), ("1:1", "4")])
def test_served_images_have_that_size(api: Api, ratio: str, quality: str) -> None:
    _, images = api.images(aspect_ratio=ratio, quality=quality)
    assert len(images) == 4
    for data in images:
        assert pixels(data)[0] == image_size(ratio, quality)


# --- determinism ---------------------------------------------------------------------------


def test_same_request_same_pixels(api: Api) -> None:
    first_id, first = api.images(seed=1234, chaos=30)
    second_id, second = api.images(seed=1234, chaos=30)
    assert first_id != second_id
    assert [pixels(d) for d in first] == [pixels(d) for d in second]
    # The files differ only in their text chunks (which name the task): byte-equal without.
    assert first[0] != second[0]
    assert [_without_text(d) for d in first] == [_without_text(d) for d in second]
    assert [metadata(d)["request"] for d in first] == [metadata(d)["request"] for d in second]


def test_random_seed_differs_between_tasks_but_not_between_downloads(
    api: Api, sandbox: SandboxHandle
) -> None:
    task_id, first = api.images(seed=-1)
    _, other = api.images(seed=-1)
    assert pixels(first[0]) != pixels(other[0])
    assert metadata(first[0])["seed"] != "-1"
    url = f"{sandbox.base_url}/sandbox/images/{task_id}/1.png"
    assert api.http.get(url).content == first[0]


def test_different_seeds_or_prompts_differ() -> None:
    base = render(request(seed=1), image_seed=1, index=0)
    assert diff(base, render(request(seed=2), image_seed=2, index=0)) > 5
    assert diff(base, render(request(prompt="a cat"), image_seed=1, index=0)) > 5


def test_rendering_is_repeatable() -> None:
    one = render(request(weird=900, tile=True, raw=True), image_seed=5, index=2)
    two = render(request(weird=900, tile=True, raw=True), image_seed=5, index=2)
    assert one.tobytes() == two.tobytes()


# --- how parameters look -------------------------------------------------------------------


def _seams(image: Image.Image) -> tuple[float, float]:
    w, h = image.size
    left_right = diff(image.crop((0, 0, 1, h)), image.crop((w - 1, 0, w, h)))
    top_bottom = diff(image.crop((0, 0, w, 1)), image.crop((0, h - 1, w, h)))
    return left_right, top_bottom


@pytest.mark.parametrize("ratio", ["1:1", "16:9", "2:3"])
@pytest.mark.parametrize("seed", SEEDS)
def test_tiles_really_tile(ratio: str, seed: int) -> None:
    for weird in (0, 3000):
        tile = render(request(aspect_ratio=ratio, tile=True, weird=weird), image_seed=seed, index=0)
        plain = render(
            request(aspect_ratio=ratio, tile=False, weird=weird), image_seed=seed, index=0
        )
        for tiled_seam, plain_seam in zip(_seams(tile), _seams(plain), strict=True):
            # Opposite edges of a tile continue each other: they differ about as little as
            # neighbouring columns inside do; without tile they are far apart.
            assert tiled_seam < 3
            assert plain_seam > 10 * tiled_seam + 10


def test_served_tile_edges_match(api: Api) -> None:
    _, images = api.images(tile=True, seed=77, aspect_ratio="3:2")
    with Image.open(io.BytesIO(images[0])) as image:
        assert max(_seams(image.convert("RGB"))) < 3


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_spreads_the_four_images_apart(seed: int) -> None:
    def spread(chaos: int) -> float:
        images = [
            render(request(chaos=chaos), image_seed=seed, index=i, label=False) for i in range(4)
        ]
        pairs = list(itertools.combinations(images, 2))
        return sum(diff(a, b) for a, b in pairs) / len(pairs)

    low, mid, high = spread(0), spread(50), spread(100)
    assert 0 < low < mid < high
    assert high > 3 * low


@pytest.mark.parametrize("seed", SEEDS)
def test_stylize_raises_saturation(seed: int) -> None:
    values = [
        saturation(render(request(stylize=s), image_seed=seed, index=0, label=False))
        for s in (0, 100, 250, 500, 1000)
    ]
    assert values == sorted(values)
    assert values[-1] > values[0] + 40


@pytest.mark.parametrize("seed", SEEDS)
def test_raw_flattens_colour_and_contrast(seed: int) -> None:
    styled = render(request(raw=False), image_seed=seed, index=0, label=False)
    raw = render(request(raw=True), image_seed=seed, index=0, label=False)
    assert saturation(raw) < saturation(styled)
    assert contrast(raw) < contrast(styled)


@pytest.mark.parametrize("seed", SEEDS)
def test_weird_adds_glitches(seed: int) -> None:
    values = [
        roughness(render(request(weird=w), image_seed=seed, index=0, label=False))
        for w in (0, 1, 500, 1500, 3000)
    ]
    assert values == sorted(values)
    assert values[0] < values[1]  # any weird at all shows
    assert values[-1] > 1.2 * values[0]


def test_prompt_is_written_small_in_a_corner() -> None:
    req = request(prompt="a fox in the snow " * 10)  # longer than the image is wide
    with_text = render(req, image_seed=9, index=0)
    without = render(req, image_seed=9, index=0, label=False)
    w, h = with_text.size
    changed = ImageChops.difference(with_text, without).convert("L")
    bottom = changed.crop((0, int(h * 0.9), w, h)).getbbox()
    assert bottom is not None  # the prompt, bottom-left
    assert bottom[0] < w * 0.05
    assert changed.crop((0, int(h * 0.1), w, int(h * 0.9))).getbbox() is None  # nothing between
    assert changed.crop((int(w * 0.5), 0, w, int(h * 0.1))).getbbox() is None  # top-right free
    # Inset: never on the outermost pixels, so tiles keep matching edges.
    assert changed.getbbox() is not None
    left, top, right, bottom_edge = changed.getbbox()  # type: ignore[misc]
    assert (left, top) > (0, 0)
    assert right < w
    assert bottom_edge < h


# --- metadata ------------------------------------------------------------------------------


def _chunk_types(data: bytes) -> list[bytes]:
    types, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        types.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return types


def _without_text(data: bytes) -> bytes:
    kept, offset = [data[:8]], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunk = data[offset : offset + 12 + length]
        if chunk[4:8] != b"tEXt":
            kept.append(chunk)
        offset += 12 + length
    return b"".join(kept)


def test_png_text_chunks_carry_the_request_and_task_id(api: Api) -> None:
    task_id, images = api.images(prompt="un café ☕ --ar 16:9", chaos=12, seed=42, tile=True)
    for number, data in enumerate(images, start=1):
        assert b"tEXt" in _chunk_types(data)
        meta = metadata(data)
        assert meta["task_id"] == task_id
        assert meta["image"] == f"{number}/4"
        assert meta["seed"] == "42"
        assert (
            json.loads(meta["request"])
            == request(prompt="un café ☕ --ar 16:9", chaos=12, seed=42, tile=True).to_body()
        )


# --- cache ---------------------------------------------------------------------------------


def test_image_cache_is_bounded_and_lru() -> None:
    cache = ImageCache(max_bytes=100)
    cache.put(("a", 1), b"x" * 40)
    cache.put(("b", 1), b"x" * 40)
    assert cache.get(("a", 1)) is not None  # a is now the most recent
    cache.put(("c", 1), b"x" * 40)
    assert cache.get(("b", 1)) is None
    assert cache.get(("a", 1)) is not None
    cache.put(("huge", 1), b"x" * 101)
    assert cache.get(("huge", 1)) is None


def test_images_are_rendered_once_then_cached(api: Api, sandbox: SandboxHandle) -> None:
    task_id, first = api.images()
    assert sandbox._state.images.get((task_id, 1)) == first[0]
