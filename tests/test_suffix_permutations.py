"""Permutation prompts (``a {red, green} bird``), and prose dashes that are not flags."""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from typing import TypeAlias

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from siray_widgets.errors import SuffixError
from siray_widgets.permutations import (
    MAX_DEPTH,
    PermutationError,
    count_permutations,
    escape_permutations,
    expand_permutations,
    has_permutations,
)
from siray_widgets.schema import ImageRequest
from siray_widgets.suffix import parse_prompt, parse_prompts, parse_suffix, render_prompt


def texts(text: str, **kwargs: int) -> list[str]:
    return [e.text for e in expand_permutations(text, **kwargs)]


# --- examples from Midjourney's documentation ------------------------------------------------


def test_one_group_makes_one_prompt_per_option() -> None:
    assert texts("a {red, green, yellow} bird") == ["a red bird", "a green bird", "a yellow bird"]


def test_groups_multiply_leftmost_slowest() -> None:
    assert texts("a {red, green} bird in the {jungle, desert}") == [
        "a red bird in the jungle",
        "a red bird in the desert",
        "a green bird in the jungle",
        "a green bird in the desert",
    ]


def test_groups_nest() -> None:
    text = "A {sculpture, painting} of a {seagull {on a pier, on a beach}, poodle {on a sofa}}."
    assert texts(text) == [
        "A sculpture of a seagull on a pier.",
        "A sculpture of a seagull on a beach.",
        "A sculpture of a poodle on a sofa.",
        "A painting of a seagull on a pier.",
        "A painting of a seagull on a beach.",
        "A painting of a poodle on a sofa.",
    ]
    assert count_permutations(text) == 6


def test_backslash_escapes_a_comma_inside_a_group() -> None:
    assert texts("a {red, pink\\, yellow} flower") == ["a red flower", "a pink, yellow flower"]


def test_escaped_braces_and_backslashes_are_text() -> None:
    assert texts("a \\{literal\\} brace, a \\\\ and a \\n") == ["a {literal} brace, a \\ and a \\n"]
    assert not has_permutations("a \\{literal\\} brace")
    assert has_permutations("a {literal} brace")


def test_options_are_trimmed_and_empty_options_leave_no_double_space() -> None:
    assert texts("a {  red ,green  } bird") == ["a red bird", "a green bird"]
    assert texts("a {, fluffy} cat") == ["a cat", "a fluffy cat"]
    assert texts("{, big} bird") == ["bird", "big bird"]
    assert texts("a bird {, in flight}") == ["a bird", "a bird in flight"]


def test_labels_name_the_options_taken() -> None:
    labels = [e.label for e in expand_permutations("a {red, green} bird --ar {1:1, 16:9}")]
    assert labels == ["red · 1:1", "red · 16:9", "green · 1:1", "green · 16:9"]
    assert [e.label for e in expand_permutations("a {, fluffy} cat")] == ["(none)", "fluffy"]


def test_parse_prompts_expands_the_suffix_too() -> None:
    requests = parse_prompts("a {red, green} bird --ar {1:1, 16:9} --s 250")
    assert [(r.prompt, r.aspect_ratio, r.stylize) for r in requests] == [
        ("a red bird", "1:1", 250),
        ("a red bird", "16:9", 250),
        ("a green bird", "1:1", 250),
        ("a green bird", "16:9", 250),
    ]


def test_parse_prompts_keeps_the_base() -> None:
    requests = parse_prompts("a {cat, dog}", base=ImageRequest("x", chaos=30))
    assert [(r.prompt, r.chaos) for r in requests] == [("a cat", 30), ("a dog", 30)]


def test_parse_prompts_validates_every_variant() -> None:
    with pytest.raises(SuffixError) as info:
        parse_prompts("a fox --ar {1:1, 5:4}")
    assert info.value.flag == "--ar 5:4"


def test_parse_prompt_points_to_parse_prompts() -> None:
    with pytest.raises(SuffixError) as info:
        parse_prompt("a {red, green} bird --ar {1:1, 16:9}")
    assert info.value.flag == "{red, green}"
    assert "makes 4 prompts" in str(info.value)
    assert "parse_prompts()" in str(info.value)


def test_parse_prompt_accepts_a_single_option_and_escapes() -> None:
    assert parse_prompt("a {red} bird").prompt == "a red bird"
    assert parse_prompt("a \\{red, green\\} bird").prompt == "a {red, green} bird"


def test_render_prompt_escapes_braces_so_it_reads_back() -> None:
    r = ImageRequest("a {curly} \\, fox", negative_prompt="{x}")
    assert parse_prompts(render_prompt(r)) == [r]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a } b", "closes no '{'"),
        ("a {b, c", "never closed"),
        ("a {b, {c, d} e", "never closed"),
        ("{" * (MAX_DEPTH + 1) + "a" + "}" * (MAX_DEPTH + 1), "nested more than"),
    ],
)
def test_malformed_groups_are_refused_with_a_clear_error(text: str, words: str) -> None:
    with pytest.raises(PermutationError, match=re.escape(words)):
        expand_permutations(text)
    with pytest.raises(SuffixError, match=re.escape(words)):
        parse_prompt(text)


def test_the_number_of_expansions_is_capped_before_any_is_built() -> None:
    with pytest.raises(PermutationError, match="expands to 1,024 prompts; at most 1,000"):
        expand_permutations("{a,b}" * 10)
    assert len(texts("{a,b}" * 10, limit=1024)) == 1024
    with pytest.raises(PermutationError, match="at most 3"):
        parse_prompts("a {b, c} {d, e}", limit=3)
    # 2**40 prompts are refused at once, not built.
    with pytest.raises(PermutationError, match="expands to"):
        expand_permutations("{a,b}" * 40)


# --- linear time (issue 11, item 1) -----------------------------------------------------------


def _seconds(call: object, *args: object) -> float:
    assert callable(call)
    start = time.perf_counter()
    with contextlib.suppress(SuffixError):
        call(*args)
    return time.perf_counter() - start


@pytest.mark.parametrize(
    "text",
    [
        "{" + "," * 100_000,  # quadratic for the old regular expression (~30 s here)
        "{" + "," * 100_000 + "}",
        "a " + "{a}" * 50_000,
        "{a,b}" * 40_000,
        "{" * 100_000,
        "}" * 100_000,
        "\\" * 200_000,
        "\u2014" * 100_000 + "x",
        " --" * 50_000,
    ],
    ids=[
        "open-commas",
        "closed-commas",
        "singles",
        "many-groups",
        "opens",
        "closes",
        "backslashes",
        "dashes",
        "flags",
    ],
)
def test_pathological_prompts_finish_quickly(text: str) -> None:
    # A hang guard, not a speed goal (benchmarks/bench_permutations.py prints the figures):
    # the bound is about 10x what the linear parser needs on a busy 2-core machine.
    assert _seconds(parse_prompt, text) < 3.0
    assert _seconds(parse_prompts, text) < 3.0


# --- prose dashes (issue 11, item 11) ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a fox \u2014beautiful",
        "a fox \u2013beautiful and proud",
        "a fox \u2014wild \u2014free",
        "\u2014nothing but prose",
    ],
)
def test_a_dash_before_an_ordinary_word_is_prose(text: str) -> None:
    assert parse_prompt(text).prompt == text.strip()


def test_prose_dashes_and_a_real_suffix() -> None:
    prompt, fields = parse_suffix("a fox \u2014beautiful \u2014ar 16:9 \u2013s 250")
    assert prompt == "a fox \u2014beautiful"
    assert fields == {"aspect_ratio": "16:9", "stylize": 250}


def test_a_dash_before_a_known_unsupported_flag_still_says_why() -> None:
    with pytest.raises(SuffixError, match="niji 7 only"):
        parse_prompt("a fox \u2014v 6")


def test_two_ascii_dashes_before_an_unknown_word_are_still_refused() -> None:
    with pytest.raises(SuffixError, match="not a Midjourney flag"):
        parse_prompt("a fox --beautiful")


# --- properties -------------------------------------------------------------------------------

# A permutation text as a tree: a sequence is a list of items; an item is literal text or a
# group (a list of options, each a sequence).
Seq: TypeAlias = "list[Item]"
Item: TypeAlias = "str | list[Seq]"

_literal = (
    st.text(alphabet=st.sampled_from("ab yz{},\\:-"), min_size=1, max_size=5)
    .map(str.strip)
    .filter(bool)
)


def _sequences(depth: int) -> st.SearchStrategy[Seq]:
    if depth == 0:
        return st.lists(_literal, min_size=1, max_size=3)
    group = st.lists(_sequences(depth - 1), min_size=1, max_size=3)
    return st.lists(st.one_of(_literal, group), min_size=1, max_size=3)


def _write(seq: Seq) -> str:
    parts = []
    for item in seq:
        if isinstance(item, str):
            parts.append(re.sub(r"([{},\\])", r"\\\1", item))
        else:
            parts.append("{" + ",".join(_write(option) for option in item) + "}")
    return "".join(parts)


def _expected(seq: Seq) -> list[str]:
    pieces: list[list[str]] = []
    for item in seq:
        if isinstance(item, str):
            pieces.append([item])
        else:
            pieces.append([text for option in item for text in _expected(option)])
    return ["".join(combo) for combo in itertools.product(*pieces)]


@given(_sequences(3))
def test_expansion_matches_the_tree_it_was_written_from(seq: Seq) -> None:
    expected = _expected(seq)
    assume(len(expected) <= 500)
    written = _write(seq)
    assert texts(written) == expected
    assert count_permutations(written) == len(expected)


@given(st.text(alphabet=st.sampled_from("ab {},\\\u2014-"), max_size=30))
def test_escaped_text_expands_to_itself(text: str) -> None:
    assert texts(escape_permutations(text)) == [text]


@given(st.text(max_size=60))
def test_any_text_expands_or_fails_with_the_packages_own_error(text: str) -> None:
    try:
        result = expand_permutations(text)
    except PermutationError:
        return
    assert len(result) >= 1
