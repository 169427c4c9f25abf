"""Parameters embedded in PNG, JPEG and WebP files, read back by us, by Pillow and by an
AUTOMATIC1111-style reader; Midjourney Description strings."""

from __future__ import annotations

import io
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from fixtures.store_fixtures import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from siray_widgets import __version__, read_image_params
from siray_widgets.errors import SuffixError
from siray_widgets.metadata import (
    DESCRIPTION_KEY,
    JSON_KEY,
    PARAMETERS_KEY,
    ImageParams,
    MetadataError,
    a1111_parameters,
    description,
    embed,
    parse_a1111_parameters,
    parse_description,
    read_image_metadata,
)
from siray_widgets.schema import FIELDS, MODEL_ID, Field, ImageRequest

# --- strategies --------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


def values(f: Field) -> st.SearchStrategy[Any]:
    if f.enum is not None:
        return st.sampled_from(f.enum)
    if f.type == "integer":
        assert f.minimum is not None
        assert f.maximum is not None
        return st.integers(f.minimum, f.maximum)
    if f.type == "boolean":
        return st.booleans()
    if f.required:
        return TEXT.filter(lambda s: s.strip() != "")
    return TEXT


requests = st.fixed_dictionaries({f.name: values(f) for f in FIELDS if f.name != "model"}).map(
    lambda d: ImageRequest(**d)
)

params_strategy = st.builds(
    ImageParams,
    request=requests,
    task_id=st.one_of(
        st.none(), st.text(alphabet="abcdef0123456789_-:, ", min_size=1, max_size=30)
    ),
    seed=st.one_of(st.none(), st.integers(0, 9_999_999_999)),
    index=st.one_of(st.none(), st.integers(1, 4)),
)

KINDS = ("png", "jpeg", "webp", "webp-lossless")
SAMPLE = ImageParams(
    ImageRequest(
        prompt="a red fox, in fresh snow: watercolor\nsecond line ☃ 狐",
        negative_prompt="people, text",
        aspect_ratio="16:9",
        chaos=20,
        stylize=250,
        weird=5,
        quality="2",
        seed=-1,
        raw=True,
        tile=False,
    ),
    task_id="image_a8813a4b4c9",
    seed=4242,
    index=3,
)


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA").tobytes()


# --- PNG ---------------------------------------------------------------------------------


def test_png_round_trip_keeps_pixels_and_every_value() -> None:
    original = make_image("png")
    stamped = embed(original, SAMPLE)
    assert pixels(stamped) == pixels(original)
    back = read_image_metadata(stamped)
    assert back.request == SAMPLE.request
    assert (back.task_id, back.seed, back.index, back.version) == (
        "image_a8813a4b4c9",
        4242,
        3,
        __version__,
    )
    assert back.size == (64, 48)
    # The request to make it again carries the seed that was used.
    assert read_image_params(stamped) == SAMPLE.request.replace(seed=4242)


def test_png_chunks_are_what_other_tools_read() -> None:
    stamped = embed(make_image("png"), SAMPLE)
    with Image.open(io.BytesIO(stamped)) as image:
        text = dict(image.text)  # type: ignore[attr-defined]
    assert set(text) >= {JSON_KEY, DESCRIPTION_KEY, PARAMETERS_KEY}
    body = json.loads(text[JSON_KEY])
    assert body["request"] == SAMPLE.request.to_body()
    assert body["model"] == MODEL_ID
    assert body["task_id"] == "image_a8813a4b4c9"
    assert body["seed"] == 4242
    assert body["version"] == __version__
    assert text[DESCRIPTION_KEY] == (
        "a red fox, in fresh snow: watercolor\nsecond line ☃ 狐 --ar 16:9 --chaos 20 "
        "--stylize 250 --weird 5 --q 2 --raw --no people, text --niji 7 Job ID: image_a8813a4b4c9"
    )
    # The chunks sit before the image data, where readers that stop early still find them.
    kinds = [c for c in _chunk_types(stamped)]
    assert kinds.index(b"IDAT") > max(i for i, k in enumerate(kinds) if k in (b"tEXt", b"iTXt"))


def _chunk_types(data: bytes) -> list[bytes]:
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def test_latin1_text_goes_in_text_chunks_and_the_rest_in_itxt() -> None:
    plain = ImageParams(ImageRequest(prompt="a fox"), task_id="t1")
    kinds = _chunk_types(embed(make_image("png"), plain))
    assert kinds.count(b"tEXt") == 3
    assert b"iTXt" not in kinds
    kinds = _chunk_types(embed(make_image("png"), SAMPLE))
    assert b"iTXt" in kinds


def test_embedding_twice_replaces_rather_than_duplicates() -> None:
    first = embed(make_image("png"), SAMPLE)
    newer = ImageParams(SAMPLE.request.replace(chaos=90), task_id="other", seed=1, index=1)
    second = embed(first, newer)
    kinds = _chunk_types(second)
    assert kinds.count(b"tEXt") + kinds.count(b"iTXt") == 3
    assert read_image_metadata(second).request.chaos == 90


def test_other_text_chunks_survive() -> None:
    buffer = io.BytesIO()
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "someone")
    Image.open(io.BytesIO(make_image("png"))).save(buffer, "PNG", pnginfo=info)
    stamped = embed(buffer.getvalue(), SAMPLE)
    with Image.open(io.BytesIO(stamped)) as image:
        assert image.text["Author"] == "someone"  # type: ignore[attr-defined]


# --- JPEG and WebP -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jpeg", "webp", "webp-lossless", "webp-alpha"])
def test_jpeg_and_webp_carry_the_same_in_exif_and_xmp(kind: str) -> None:
    alpha = kind == "webp-alpha"
    original = make_image("webp-lossless" if alpha else kind, alpha=alpha)
    stamped = embed(original, SAMPLE)
    # Not re-encoded: the compressed image data is the same bytes.
    assert pixels(stamped) == pixels(original)
    back = read_image_metadata(stamped)
    assert back.request == SAMPLE.request
    assert (back.task_id, back.seed, back.index) == ("image_a8813a4b4c9", 4242, 3)
    with Image.open(io.BytesIO(stamped)) as image:
        exif = image.getexif()
        xmp = image.info.get("xmp")
        assert image.size == (64, 48)
        if kind == "webp-alpha":
            assert "A" in image.getbands()
    comment = exif.get_ifd(0x8769)[0x9286]
    assert comment.startswith(b"UNICODE\x00")
    assert comment[8:].decode("utf-16-be") == a1111_parameters(back)
    assert "siray-widgets" in exif[0x0131]
    assert isinstance(xmp, (bytes, str))
    text = xmp.decode() if isinstance(xmp, bytes) else xmp
    assert "<siray:params>" in text
    assert "dc:description" in text


def test_jpeg_embedding_keeps_scan_data_byte_for_byte() -> None:
    original = make_image("jpeg")
    stamped = embed(original, SAMPLE)
    scan = original.index(b"\xff\xda")
    assert stamped.endswith(original[scan:])
    again = embed(stamped, SAMPLE)
    assert again.count(b"http://ns.adobe.com/xap/1.0/\x00") == 1
    assert again.count(b"Exif\x00\x00") == 1


def test_a_gif_is_saved_unchanged() -> None:
    gif = make_image("gif")
    assert embed(gif, SAMPLE) == gif


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<!doctype html><title>404</title>", "not a PNG, JPEG, WebP or GIF"),
        (make_image("png")[:60], "ends inside"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
    ],
    ids=["html", "truncated-png", "truncated-jpeg"],
)
def test_bytes_that_are_not_whole_images_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(MetadataError, match=words):
        embed(data, SAMPLE)


def test_an_image_without_parameters_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    path.write_bytes(make_image("png"))
    with pytest.raises(MetadataError, match="no generation parameters"):
        read_image_params(path)
    with pytest.raises(MetadataError, match="cannot read"):
        read_image_params(tmp_path / "missing.png")


# --- every field, every format -----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=params_strategy, kind=st.sampled_from(KINDS))
def test_every_field_round_trips_through_every_format(params: ImageParams, kind: str) -> None:
    stamped = embed(make_image(kind, (16, 16)), params)
    back = read_image_metadata(stamped)
    assert back.request == params.request
    assert back.request.to_json() == params.request.to_json()
    assert (back.task_id, back.seed, back.index) == (params.task_id, params.seed, params.index)
    expected_seed = params.seed if params.seed is not None else params.request.seed
    assert read_image_params(stamped).seed == expected_seed


# --- AUTOMATIC1111 -----------------------------------------------------------------------

# The two patterns A1111's parse_generation_parameters has used for the last line.
A1111_OLD = re.compile(r'\s*([\w ]+):\s*("(?:\\"[^,]|\\"|\\|[^\"])+"|[^,]*)(?:,|$)')
A1111_NEW = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_read(text: str, pattern: re.Pattern[str]) -> dict[str, str]:
    """What an A1111-compatible reader makes of a parameters text (its algorithm, restated)."""
    *lines, last = text.strip().split("\n")
    if len(pattern.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        if in_negative:
            negative += ("" if not negative else "\n") + line
        else:
            prompt += ("" if not prompt else "\n") + line
    result = {"Prompt": prompt, "Negative prompt": negative}
    for key, value in pattern.findall(last):
        if value[:1] == '"' and value[-1:] == '"':
            value = json.loads(value)
        result[key] = value
    return result


@pytest.mark.parametrize("pattern", [A1111_OLD, A1111_NEW], ids=["old", "new"])
def test_a1111_readers_parse_the_parameters_chunk(pattern: re.Pattern[str]) -> None:
    params = ImageParams(SAMPLE.request, "image_a8813a4b4c9", 4242, 3, size=(1456, 816))
    text = a1111_parameters(params)
    last = text.splitlines()[-1]
    assert 'Aspect ratio: "16:9"' in last  # a value with ":" is quoted
    assert len(pattern.findall(last)) >= 3
    read = a1111_read(text, pattern)
    assert read["Prompt"] == "a red fox, in fresh snow: watercolor\nsecond line ☃ 狐"
    assert read["Negative prompt"] == "people, text"
    assert read["Aspect ratio"] == "16:9"
    assert read["Seed"] == "4242"
    assert read["Stylize"] == "250"
    assert read["Size"] == "1456x816"
    assert read["Model"] == MODEL_ID
    assert read["Task ID"] == "image_a8813a4b4c9"
    # And our own reader gives the same back.
    assert parse_a1111_parameters(text)["Aspect ratio"] == "16:9"


def test_a_file_with_only_a1111_parameters_is_read(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(
        "parameters",
        'a castle\nNegative prompt: fog\nAspect ratio: "3:2", Stylize: 600, Seed: 77, '
        "Quality: 4, Raw: True",
    )
    path = tmp_path / "a1111.png"
    Image.open(io.BytesIO(make_image("png"))).save(path, "PNG", pnginfo=info)
    assert read_image_params(path) == ImageRequest(
        prompt="a castle",
        negative_prompt="fog",
        aspect_ratio="3:2",
        stylize=600,
        seed=77,
        quality="4",
        raw=True,
    )


# --- Midjourney Description --------------------------------------------------------------


def test_description_round_trips() -> None:
    text = description(SAMPLE)
    assert parse_description(text) == SAMPLE.request


def test_a_midjourney_description_is_read(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Description", "a lighthouse at dusk --ar 16:9 --s 250 --niji 7 Job ID: 1b2c-3d")
    info.add_text("Author", "someone")
    path = tmp_path / "mj.png"
    Image.open(io.BytesIO(make_image("png"))).save(path, "PNG", pnginfo=info)
    assert read_image_params(path) == ImageRequest(
        prompt="a lighthouse at dusk", aspect_ratio="16:9", stylize=250
    )
    assert read_image_metadata(path).task_id == "1b2c-3d"


def test_flags_niji_7_cannot_express_are_refused_or_dropped() -> None:
    text = "a cat --ar 3:4 --v 6.1 --sref https://x.example/a.png --s 50 Job ID: abc"
    with pytest.raises(SuffixError, match="--v"):
        parse_description(text)
    assert parse_description(text, strict=False) == ImageRequest(
        prompt="a cat", aspect_ratio="3:4", stylize=50
    )
