"""Midjourney permutation prompts: ``a {red, green} bird --ar {1:1, 16:9}`` -> four prompts.

The syntax, as Midjourney documents it:

- ``{a, b, c}`` is replaced by each option in turn; several groups multiply
  (``a {red, green} bird in the {jungle, desert}`` makes four prompts, the leftmost group
  varying slowest).
- Groups nest: ``a {seagull {on a pier, on a beach}, poodle}`` makes three.
- A backslash makes the next ``{``, ``}``, ``,`` or ``\\`` literal (``{red, pink\\, yellow}``
  has two options, the second ``pink, yellow``). A backslash before anything else is kept.
- Options are trimmed; an empty option (``a {, fluffy} cat``) leaves no double space behind.
- Suffixes permute too, because the whole text is expanded before any flag is read.

The parser makes one pass over the text (no backtracking regular expression), keeps its own
stack instead of recursing while reading, and refuses nesting deeper than
:data:`MAX_DEPTH` and more than ``limit`` expansions before building any of them, so no
input can make it slow or large.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from .errors import SuffixError

#: Default cap on the prompts one text may expand to.
MAX_PERMUTATIONS = 1000
#: Deepest brace nesting accepted.
MAX_DEPTH = 32
#: Cap on the characters all expansions of one text may hold together.
MAX_TOTAL_CHARS = 16_000_000

_SPECIAL = re.compile(r"[{},\\]")
_ESCAPABLE = "{},\\"
# Counts above this are not tracked exactly (they are far past any limit anyway).
_COUNT_CEILING = 10**15


class PermutationError(SuffixError):
    """A permutation prompt that cannot be expanded (unbalanced braces, too many prompts)."""


@dataclass(frozen=True)
class Expansion:
    """One prompt a permutation text expands to.

    ``choices`` holds the option taken in each top-level group, in order (nested choices are
    part of their group's option): the label a sweep shows for this variant.
    """

    text: str
    choices: tuple[str, ...]

    @property
    def label(self) -> str:
        """The choices joined for display: ``"red · jungle"``; the text if there are none."""
        if not self.choices:
            return self.text.strip()
        return " · ".join(c if c else "(none)" for c in self.choices)


class _Group:
    __slots__ = ("count", "end", "options", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = start
        self.options: list[list[_Item]] = [[]]
        self.count = 0


_Item: TypeAlias = "str | _Group"


class _Empty:
    """Stands for an empty option while expansions are joined."""

    __slots__ = ()


_EMPTY = _Empty()
# A rope: text joined lazily, so that building many expansions never copies strings twice.
_Rope: TypeAlias = "str | _Empty | tuple[_Rope, _Rope]"


def has_permutations(text: str) -> bool:
    """Whether ``text`` holds permutation syntax (an unescaped brace)."""
    return bool(_parse(text, limit=None)[1])


def count_permutations(text: str) -> int:
    """How many prompts ``text`` expands to (1 without groups); raises on bad syntax."""
    sequence, _ = _parse(text, limit=None)
    return _sequence_count(sequence)


def expand_permutations(text: str, *, limit: int = MAX_PERMUTATIONS) -> list[Expansion]:
    """Every prompt ``text`` expands to, in Midjourney's order (leftmost group slowest).

    Text without braces expands to itself (escapes resolved). Raises
    :class:`PermutationError` for unbalanced braces, nesting deeper than
    :data:`MAX_DEPTH`, or more than ``limit`` prompts; nothing is built in those cases.

    >>> [e.text for e in expand_permutations("a {red, green} bird")]
    ['a red bird', 'a green bird']
    """
    sequence, _ = _parse(text, limit=limit)
    count = _sequence_count(sequence)
    if count > limit:
        shown = f"{count:,}" if count < _COUNT_CEILING else "an astronomical number of"
        raise PermutationError(
            _excerpt(text),
            f"expands to {shown} prompts; at most {limit:,} are allowed in one go "
            "(split the groups across sweep axes, or remove options)",
        )
    if count * max(len(text), 1) > MAX_TOTAL_CHARS:
        raise PermutationError(
            _excerpt(text),
            f"{count:,} prompts of up to {len(text):,} characters are too much text to build",
        )
    return [
        Expansion(_flatten(rope), tuple(_flatten(choice) for choice in _unchain(choices)))
        for rope, choices in _expand_top(sequence)
    ]


def expand_single(text: str) -> str:
    """The one prompt ``text`` expands to (escapes resolved), in one pass.

    Raises :class:`PermutationError` for bad syntax, and when the text makes several prompts
    (naming the first group with a choice, and pointing to ``parse_prompts``).
    """
    sequence, groups = _parse(text, limit=None)
    count = _sequence_count(sequence)
    if count != 1:
        group = next((g for g in groups if g.count > 1), None)
        shown = f"{count:,}" if count < _COUNT_CEILING else "an astronomical number of"
        raise PermutationError(
            text[group.start : group.end + 1] if group is not None else _excerpt(text),
            f"is a permutation: this text makes {shown} prompts. parse_prompts() returns "
            "them all (or run them as a sweep); write \\{ and \\} for literal braces",
        )
    (rope,) = _expand_sequence(sequence)
    return _flatten(rope)


def first_group(text: str) -> str | None:
    """The source text of the first group that offers more than one option, or None."""
    _, groups = _parse(text, limit=None)
    for group in groups:
        if group.count > 1:
            return text[group.start : group.end + 1]
    return None


def escape_permutations(text: str) -> str:
    """``text`` written so that :func:`expand_permutations` gives it back unchanged.

    Braces get a backslash, and so does a backslash that would otherwise escape the next
    character; commas need none outside braces.

    >>> escape_permutations("a {literal} brace")
    'a \\\\{literal\\\\} brace'
    """
    out: list[str] = []
    for i, char in enumerate(text):
        if char in "{}":
            out.append("\\" + char)
        elif char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            out.append("\\\\")
        else:
            out.append(char)
    return "".join(out)


# --- reading -------------------------------------------------------------------------------


def _parse(text: str, *, limit: int | None) -> tuple[list[_Item], list[_Group]]:
    """The text as a sequence of literals and groups (one left-to-right pass).

    Returns the top-level sequence and every group in order of opening. Counts are worked
    out as groups close; with a ``limit`` the pass stops as soon as one is exceeded.
    """
    top: list[_Item] = []
    groups: list[_Group] = []
    stack: list[_Group] = []
    current: list[_Item] = top
    buffer: list[str] = []
    pos = 0

    def flush() -> None:
        if buffer:
            current.append("".join(buffer))
            buffer.clear()

    while True:
        match = _SPECIAL.search(text, pos)
        if match is None:
            buffer.append(text[pos:])
            break
        i = match.start()
        if i > pos:
            buffer.append(text[pos:i])
        char = text[i]
        pos = i + 1
        if char == "\\":
            if pos < len(text) and text[pos] in _ESCAPABLE:
                buffer.append(text[pos])
                pos += 1
            else:
                buffer.append("\\")
        elif char == "{":
            if len(stack) >= MAX_DEPTH:
                raise PermutationError(
                    _excerpt(text, i), f"braces are nested more than {MAX_DEPTH} deep"
                )
            flush()
            group = _Group(i)
            groups.append(group)
            current.append(group)
            stack.append(group)
            current = group.options[0]
        elif char == "," and stack:
            flush()
            _trim(current)
            group = stack[-1]
            group.count = _saturate(group.count + _sequence_count(current))
            if limit is not None and group.count > limit:
                _raise_too_many(text, group, limit)
            current = []
            group.options.append(current)
        elif char == "}":
            if not stack:
                raise PermutationError(
                    _excerpt(text, i),
                    f"this '}}' (character {i + 1}) closes no '{{'; write \\}} for a literal brace",
                )
            flush()
            _trim(current)
            group = stack.pop()
            group.end = i
            group.count = _saturate(group.count + _sequence_count(current))
            if limit is not None and group.count > limit:
                _raise_too_many(text, group, limit)
            current = stack[-1].options[-1] if stack else top
        else:  # a comma outside braces is text
            buffer.append(",")
    if stack:
        opened = stack[0].start
        raise PermutationError(
            _excerpt(text, opened),
            f"this '{{' (character {opened + 1}) is never closed; close it with '}}' or "
            "write \\{ for a literal brace",
        )
    flush()
    return top, groups


def _trim(option: list[_Item]) -> None:
    """Strip the whitespace at both ends of one option."""
    if option and isinstance(option[0], str):
        option[0] = option[0].lstrip()
    if option and isinstance(option[-1], str):
        option[-1] = option[-1].rstrip()


def _sequence_count(sequence: Sequence[_Item]) -> int:
    count = 1
    for item in sequence:
        if isinstance(item, _Group):
            count = _saturate(count * item.count)
    return count


def _saturate(count: int) -> int:
    return min(count, _COUNT_CEILING)


def _raise_too_many(text: str, group: _Group, limit: int) -> None:
    raise PermutationError(
        _excerpt(text, group.start),
        f"this group alone makes more than {limit:,} prompts; at most {limit:,} are allowed "
        "in one go",
    )


def _excerpt(text: str, at: int = 0, width: int = 40) -> str:
    """A short piece of ``text`` around character ``at``, for error messages."""
    start = max(0, at - 10)
    piece = text[start : start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    return f"{prefix}{piece}{suffix}"


# --- expanding -----------------------------------------------------------------------------


def _expand_sequence(sequence: Sequence[_Item]) -> list[_Rope]:
    results: list[_Rope] = [""]
    for item in sequence:
        if isinstance(item, str):
            if item:
                results = [(r, item) for r in results]
            continue
        options = _expand_group(item)
        results = [(r, o) for r in results for o in options]
    return results


def _expand_group(group: _Group) -> list[_Rope]:
    options: list[_Rope] = []
    for option in group.options:
        if all(isinstance(item, str) and not item for item in option):
            options.append(_EMPTY)
        else:
            options.extend(_expand_sequence(option))
    return options


# The options taken so far, as a linked list (appending to a tuple would copy it each time).
_Chain: TypeAlias = "tuple[()] | tuple[_Chain, _Rope]"


def _expand_top(sequence: Sequence[_Item]) -> list[tuple[_Rope, _Chain]]:
    """Expansions of the top level, each with the option it took in every top-level group."""
    results: list[tuple[_Rope, _Chain]] = [("", ())]
    for item in sequence:
        if isinstance(item, str):
            if item:
                results = [((r, item), c) for r, c in results]
            continue
        options = _expand_group(item)
        results = [((r, o), (c, o)) for r, c in results for o in options]
    return results


def _unchain(chain: _Chain) -> list[_Rope]:
    items: list[_Rope] = []
    while chain:
        chain, item = chain
        items.append(item)
    items.reverse()
    return items


def _flatten(rope: _Rope) -> str:
    """Join a rope; where an empty option sat between two spaces, keep only one."""
    out: list[str] = []
    stack: list[_Rope] = [rope]
    after_empty = False
    last = ""  # the last character written
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            stack.append(node[1])
            stack.append(node[0])
        elif isinstance(node, _Empty):
            after_empty = True
        elif node:
            if after_empty and (not last or last.isspace()):
                node = node.lstrip()
                if not node:
                    continue
            after_empty = False
            out.append(node)
            last = node[-1]
    text = "".join(out)
    # An empty option at the very end leaves no trailing space either.
    return text.rstrip() if after_empty else text
