"""Midjourney prompt suffixes (``a fox --ar 16:9 --s 250``) to and from request fields.

Workshop users and prompt designers think in suffixes, so a request can be written as one
and a prompt ending in one can be read into fields. Every flag this model cannot honour is
refused with a message naming it: nothing is ever dropped silently.

Permutation prompts (``a {red, green} fox --ar {1:1, 16:9}``) are expanded first (see
:mod:`siray_widgets.permutations`): :func:`parse_prompts` returns every request such a text
makes; :func:`parse_prompt` reads exactly one and says where to go when there are more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .errors import SuffixError, ValidationError
from .permutations import (
    MAX_PERMUTATIONS,
    escape_permutations,
    expand_permutations,
    expand_single,
)
from .schema import FIELDS_BY_NAME, ImageRequest

# flag (as typed, lower case) -> field it sets. Long and short aliases.
_VALUE_FLAGS: dict[str, str] = {
    "ar": "aspect_ratio",
    "aspect": "aspect_ratio",
    "chaos": "chaos",
    "c": "chaos",
    "stylize": "stylize",
    "s": "stylize",
    "weird": "weird",
    "w": "weird",
    "quality": "quality",
    "q": "quality",
    "seed": "seed",
    "no": "negative_prompt",
}
_SWITCH_FLAGS: dict[str, str] = {"raw": "raw", "tile": "tile"}

# Real Midjourney flags this API has no field for; each says why it cannot be honoured.
_UNSUPPORTED: dict[str, str] = {
    "v": "selects a Midjourney version; this model is niji 7 only (use --niji 7 or leave it out)",
    "version": "selects a Midjourney version; this model is niji 7 only",
    "cref": "character references are not supported by this API",
    "cw": "character weight needs --cref, which this API does not support",
    "sref": "style references are not supported by this API",
    "sw": "style weight needs --sref, which this API does not support",
    "sv": "style reference versions are not supported by this API",
    "oref": "omni references are not supported by this API",
    "ow": "omni weight needs --oref, which this API does not support",
    "iw": "image prompts (and their weight) are not supported by this text-to-image API",
    "repeat": "repeats are not supported; run generate several times instead",
    "r": "repeats are not supported; run generate several times instead",
    "stop": "stopping early is not supported by this API",
    "p": "personalization profiles are not supported by this API",
    "profile": "personalization profiles are not supported by this API",
    "personalize": "personalization profiles are not supported by this API",
    "exp": "experimental aesthetics are not supported by this API",
    "draft": "draft mode is not supported by this API",
    "video": "video output is not supported by this API",
    "hd": "HD mode is not supported by this API",
    "fast": "speed modes are chosen by the service, not the prompt",
    "relax": "speed modes are chosen by the service, not the prompt",
    "turbo": "speed modes are chosen by the service, not the prompt",
    "public": "visibility modes are not part of this API",
    "stealth": "visibility modes are not part of this API",
    "style": "only --style raw is supported (it sets raw)",
    "niji": "this model is niji 7 (write --niji 7 or leave it out)",
}

#: Flag (lower case, without dashes) -> the field it sets: ``{"ar": "aspect_ratio", ...}``.
FLAG_FIELDS: Mapping[str, str] = MappingProxyType({**_VALUE_FLAGS, **_SWITCH_FLAGS})

# Every flag name this module knows, supported or not.
_KNOWN_FLAGS = frozenset(_VALUE_FLAGS) | frozenset(_SWITCH_FLAGS) | frozenset(_UNSUPPORTED)

# A flag starts a whitespace-separated token with two dashes. Phones turn "--" into an em
# dash (and some keyboards into an en dash), so those count too, but only before a flag name
# this module knows: "a fox —beautiful" is prose. (No nested quantifiers: linear.)
_FLAG = re.compile(r"(?<!\S)(--|[\u2014\u2013])([A-Za-z][\w-]*)")


def render_suffix(request: ImageRequest) -> str:
    """The suffix equivalent to ``request``'s parameters, e.g. ``--ar 16:9 --chaos 20 ...``."""
    parts = [
        f"--ar {request.aspect_ratio}",
        f"--chaos {request.chaos}",
        f"--stylize {request.stylize}",
        f"--weird {request.weird}",
        f"--q {request.quality}",
    ]
    if request.seed != -1:  # -1 means "random", which is what leaving --seed out means
        parts.append(f"--seed {request.seed}")
    if request.raw:
        parts.append("--raw")
    if request.tile:
        parts.append("--tile")
    if request.negative_prompt.strip():
        parts.append(f"--no {escape_permutations(request.negative_prompt.strip())}")
    parts.append("--niji 7")
    return " ".join(parts)


def render_prompt(request: ImageRequest) -> str:
    """The prompt followed by its suffix: what a Midjourney user would type.

    Braces in the prompt are escaped (``\\{``), so reading the text back gives this one
    request rather than a permutation.
    """
    return f"{escape_permutations(request.prompt.strip())} {render_suffix(request)}"


def parse_suffix(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``text`` into the prompt and the fields its suffix sets (validated).

    Permutation escapes are resolved; a text that makes several prompts is refused (see
    :func:`parse_prompts`). Raises :class:`SuffixError` naming the flag for anything
    unsupported or malformed.
    """
    return split_suffix(expand_single(text))


def split_suffix(text: str) -> tuple[str, dict[str, Any]]:
    """:func:`parse_suffix` for text whose permutations are already expanded.

    Braces and backslashes are plain text here.
    """
    if "::" in text:
        raise SuffixError(
            "'::' weights",
            "multi-prompt weights are not supported; write one prompt and put what to leave "
            "out in --no",
        )
    flags = [
        m for m in _FLAG.finditer(text) if m.group(1) == "--" or m.group(2).lower() in _KNOWN_FLAGS
    ]
    if not flags:
        return text.strip(), {}
    prompt = text[: flags[0].start()].strip()
    fields: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for i, match in enumerate(flags):
        end = flags[i + 1].start() if i + 1 < len(flags) else len(text)
        name = match.group(2).lower()
        flag = f"--{match.group(2)}"
        value = text[match.end() : end].strip()
        field_name, field_value = _read_flag(name, flag, value)
        if field_name is None:
            continue
        if field_name in seen:
            raise SuffixError(flag, f"sets {field_name}, which {seen[field_name]} already set")
        seen[field_name] = flag
        try:
            fields[field_name] = FIELDS_BY_NAME[field_name].validate(field_value)
        except ValidationError as exc:
            raise SuffixError(f"{flag} {value}".strip(), str(exc)) from None
    return prompt, fields


def parse_prompt(text: str, base: ImageRequest | None = None) -> ImageRequest:
    """Read a prompt that may end in a suffix into a request.

    Fields the suffix does not set come from ``base`` (or the defaults). A permutation
    prompt that makes several requests raises :class:`SuffixError` pointing to
    :func:`parse_prompts`.

    >>> parse_prompt("a fox in the snow --ar 16:9 --s 250").stylize
    250
    """
    return _request(split_suffix(expand_single(text)), base)


def parse_prompts(
    text: str, base: ImageRequest | None = None, *, limit: int = MAX_PERMUTATIONS
) -> list[ImageRequest]:
    """Every request a permutation prompt makes, in Midjourney's order.

    ``a {red, green} bird --ar {1:1, 16:9}`` gives four requests (red 1:1, red 16:9,
    green 1:1, green 16:9). Text without braces gives one. All are validated before any is
    returned; more than ``limit`` raises :class:`~siray_widgets.permutations.PermutationError`
    before any is built.

    >>> [r.prompt for r in parse_prompts("a {red, green} bird")]
    ['a red bird', 'a green bird']
    """
    return [_request(split_suffix(e.text), base) for e in expand_permutations(text, limit=limit)]


def _request(parsed: tuple[str, dict[str, Any]], base: ImageRequest | None) -> ImageRequest:
    prompt, fields = parsed
    start = base.to_dict() if base is not None else {}
    return ImageRequest(**{**start, **fields, "prompt": prompt})


def _read_flag(name: str, flag: str, value: str) -> tuple[str | None, Any]:
    """(field, raw value) for one flag; (None, None) for flags that set nothing."""
    if name in _VALUE_FLAGS:
        field_name = _VALUE_FLAGS[name]
        if not value:
            example = "text" if field_name == "negative_prompt" else "a value"
            raise SuffixError(flag, f"needs {example} after it (sets {field_name})")
        if field_name == "negative_prompt":
            return field_name, value
        if " " in value:
            raise SuffixError(flag, f"takes one value, but {value!r} follows it")
        if FIELDS_BY_NAME[field_name].type == "integer":
            try:
                return field_name, int(value)
            except ValueError:
                raise SuffixError(
                    f"{flag} {value}", f"{field_name} must be a whole number"
                ) from None
        return field_name, value
    if name in _SWITCH_FLAGS:
        _no_value(flag, value)
        return _SWITCH_FLAGS[name], True
    if name == "style" and value.lower() == "raw":
        return "raw", True
    if name == "niji" and value in ("", "7"):
        return None, None  # the model itself; nothing to set
    if name in _UNSUPPORTED:
        shown = f"{flag} {value}".strip()
        raise SuffixError(shown, _UNSUPPORTED[name])
    raise SuffixError(flag, "is not a Midjourney flag this package knows")


def _no_value(flag: str, value: str) -> None:
    if value:
        raise SuffixError(
            flag,
            f"takes no value, but {value!r} follows it (put prompt text before the flags)",
        )
