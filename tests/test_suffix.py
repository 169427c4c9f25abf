"""Midjourney suffix rendering and parsing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siray_widgets.errors import SuffixError, ValidationError
from siray_widgets.schema import ASPECT_RATIOS, FIELDS_BY_NAME, QUALITIES, ImageRequest
from siray_widgets.suffix import parse_prompt, parse_suffix, render_prompt, render_suffix


def test_render_matches_the_documented_example() -> None:
    r = ImageRequest(
        prompt="a fox",
        aspect_ratio="16:9",
        chaos=20,
        stylize=250,
        weird=0,
        quality="2",
        seed=42,
        raw=True,
        tile=True,
        negative_prompt="text",
    )
    assert render_suffix(r) == (
        "--ar 16:9 --chaos 20 --stylize 250 --weird 0 --q 2 --seed 42 --raw --tile --no text "
        "--niji 7"
    )
    assert render_prompt(r).startswith("a fox --ar 16:9")


def test_defaults_render_without_seed_or_switches() -> None:
    assert render_suffix(ImageRequest("x")) == (
        "--ar 1:1 --chaos 0 --stylize 100 --weird 0 --q 1 --niji 7"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a fox --ar 16:9", {"aspect_ratio": "16:9"}),
        ("a fox --aspect 3:2", {"aspect_ratio": "3:2"}),
        ("a fox --chaos 5 --weird 7", {"chaos": 5, "weird": 7}),
        ("a fox --c 5 --w 7 --s 300", {"chaos": 5, "weird": 7, "stylize": 300}),
        ("a fox --stylize 300", {"stylize": 300}),
        ("a fox --quality 4", {"quality": "4"}),
        ("a fox --q 2", {"quality": "2"}),
        ("a fox --seed 9999999999", {"seed": 9_999_999_999}),
        ("a fox --raw", {"raw": True}),
        ("a fox --style raw", {"raw": True}),
        ("a fox --tile", {"tile": True}),
        ("a fox --no text, watermark", {"negative_prompt": "text, watermark"}),
        ("a fox --niji 7", {}),
        ("a fox --NIJI 7 --AR 9:16", {"aspect_ratio": "9:16"}),
        # Phones turn -- into an em dash; some keyboards into an en dash.
        ("a fox \u2014ar 16:9 \u2014s 250", {"aspect_ratio": "16:9", "stylize": 250}),
        ("a fox \u2013chaos 10", {"chaos": 10}),
    ],
)
def test_parse_each_flag(text: str, expected: dict[str, object]) -> None:
    prompt, fields = parse_suffix(text)
    assert prompt == "a fox"
    assert fields == expected


def test_text_dashes_inside_the_prompt_are_not_flags() -> None:
    r = parse_prompt("a well-known fox \u2014 in the snow, half--frozen")
    assert r.prompt == "a well-known fox \u2014 in the snow, half--frozen"


def test_parse_keeps_base_fields_the_suffix_does_not_set() -> None:
    base = ImageRequest("old", chaos=40, tile=True)
    r = parse_prompt("new --s 10", base=base)
    assert (r.prompt, r.chaos, r.tile, r.stylize) == ("new", 40, True, 10)


@pytest.mark.parametrize(
    ("text", "flag", "words"),
    [
        ("a fox --cref http://x/y.png", "--cref http://x/y.png", "character references"),
        ("a fox --iw 2", "--iw 2", "image prompts"),
        ("a fox --v 6", "--v 6", "niji 7 only"),
        ("a fox --niji 6", "--niji 6", "niji 7"),
        ("a fox --repeat 4", "--repeat 4", "repeats"),
        ("a fox --sref 123", "--sref 123", "style references"),
        ("a fox --style cute", "--style cute", "only --style raw"),
        ("a fox --frobnicate", "--frobnicate", "not a Midjourney flag"),
        ("a fox::2 a cat", "'::' weights", "weights"),
        ("a {red, blue} fox", "{red, blue}", "permutation"),
        ("a fox --chaos 150", "--chaos 150", "chaos=150 is out of range 0..100"),
        ("a fox --q 3", "--q 3", 'must be one of "1", "2", "4"'),
        ("a fox --ar 5:4", "--ar 5:4", "aspect_ratio='5:4'"),
        ("a fox --s many", "--s many", "whole number"),
        ("a fox --ar", "--ar", "needs a value"),
        ("a fox --tile please", "--tile", "takes no value"),
        ("a fox --ar 1:1 2:3", "--ar", "takes one value"),
        ("a fox --c 1 --chaos 2", "--chaos", "already set"),
    ],
)
def test_unsupported_or_malformed_flags_are_named(text: str, flag: str, words: str) -> None:
    with pytest.raises(SuffixError) as info:
        parse_prompt(text)
    assert info.value.flag == flag
    assert words in str(info.value)


def test_a_suffix_alone_has_no_prompt() -> None:
    with pytest.raises(ValidationError, match="prompt"):
        parse_prompt("--ar 16:9")


# Text without suffix syntax (no dashes or colons) and without outer whitespace: the round
# trip is only promised for prompts that are not themselves suffix-like. Braces and
# backslashes are fine: render_prompt escapes them.
_plain_text = (
    st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_characters="-\u2014\u2013:", exclude_categories=("Cs", "Cc")
        ),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)


def _int_field(name: str) -> st.SearchStrategy[int]:
    f = FIELDS_BY_NAME[name]
    assert f.minimum is not None
    assert f.maximum is not None
    return st.integers(f.minimum, f.maximum)


@given(
    prompt=_plain_text,
    negative=st.one_of(st.just(""), _plain_text),
    aspect_ratio=st.sampled_from(ASPECT_RATIOS),
    chaos=_int_field("chaos"),
    stylize=_int_field("stylize"),
    weird=_int_field("weird"),
    quality=st.sampled_from(QUALITIES),
    seed=_int_field("seed"),
    raw=st.booleans(),
    tile=st.booleans(),
)
def test_round_trip(**fields: Any) -> None:
    negative = fields.pop("negative")
    r = ImageRequest(**fields, negative_prompt=negative)
    assert parse_prompt(render_prompt(r)) == r
