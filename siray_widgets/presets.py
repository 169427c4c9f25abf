"""Presets: named partial parameter sets, with an optional prompt template.

A preset sets some request fields (``{"stylize": 250}``) and may wrap the prompt and the
negative prompt in a template: ``"{prompt}, watercolor"`` puts the user's prompt where
``{prompt}`` stands; a template without the placeholder is appended after a comma
(AUTOMATIC1111's rule for its styles, so an imported ``styles.csv`` behaves as it did there).
Several presets stack in order: later fields win, later templates wrap earlier results.
:func:`preview_presets` shows what would change before anything is applied.

User presets live in ``presets.json`` in the user data folder (``SIRAY_WIDGETS_HOME``
overrides it); a few teaching presets are built in (:data:`BUILTIN_PRESETS`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .config import data_dir
from .errors import SirayError, ValidationError
from .schema import FIELD_NAMES, FIELDS_BY_NAME, ImageRequest

PLACEHOLDER = "{prompt}"
PRESETS_FILE = "presets.json"
FORMAT = "siray-presets"
FORMAT_VERSION = 1
MAX_NAME_LENGTH = 80
# Fields a preset reaches through its templates, never by setting them outright.
TEMPLATE_FIELDS = ("prompt", "negative_prompt")


class PresetError(SirayError, ValueError):
    """A preset that cannot be made, found, read, saved or imported; the message says why."""


# --- the preset ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named partial parameter set with optional prompt and negative-prompt templates.

    >>> p = Preset("Dreamy", {"stylize": 750}, prompt="{prompt}, soft dreamy light")
    >>> r = p.apply(ImageRequest("a fox"))
    >>> (r.prompt, r.stylize)
    ('a fox, soft dreamy light', 750)
    """

    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    #: Template for the prompt (``{prompt}`` = the user's prompt); blank leaves it alone.
    prompt: str = ""
    #: Template for the negative prompt (``{prompt}`` = the user's negative prompt).
    negative_prompt: str = ""
    description: str = ""
    #: True for the presets that ship with the package (not part of equality or JSON).
    builtin: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        name = _check_name(self.name)
        if not isinstance(self.fields, Mapping):
            raise PresetError(f"preset {name!r}: fields must be a mapping of field names to values")
        checked: dict[str, Any] = {}
        for key, value in self.fields.items():
            if key in TEMPLATE_FIELDS:
                raise PresetError(
                    f"preset {name!r}: {key} is set through a template "
                    f"(Preset(..., {key}='{PLACEHOLDER}, ...')), not as a field"
                )
            if key not in FIELDS_BY_NAME:
                raise PresetError(
                    f"preset {name!r}: {key!r} is not a request field "
                    f"(known: {', '.join(n for n in FIELD_NAMES if n not in TEMPLATE_FIELDS)})"
                )
            try:
                checked[key] = FIELDS_BY_NAME[key].validate(value)
            except ValidationError as exc:
                raise PresetError(f"preset {name!r}: {exc}") from None
        for label, text in (("prompt", self.prompt), ("negative_prompt", self.negative_prompt)):
            _check_text(name, label, text)
        _check_text(name, "description", self.description)
        object.__setattr__(self, "name", name)
        # Schema order, read-only: a preset is a value.
        ordered = {n: checked[n] for n in FIELD_NAMES if n in checked}
        object.__setattr__(self, "fields", MappingProxyType(ordered))

    def __hash__(self) -> int:
        fields = tuple(self.fields.items())
        return hash((self.name, fields, self.prompt, self.negative_prompt, self.description))

    # -- applying --

    def apply(self, request: ImageRequest) -> ImageRequest:
        """``request`` with this preset's fields set and its templates applied."""
        return ImageRequest(**self.apply_values(request.to_dict()))

    def apply_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`apply` on plain field values (not validated; the prompt may be blank)."""
        return self.wrap(self.set_fields(values))

    def set_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with this preset's fields set (templates left out)."""
        return {**values, **self.fields}

    def wrap(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with the prompt and negative prompt put through the templates."""
        out = dict(values)
        if self.prompt.strip():
            out["prompt"] = merge_template(self.prompt, str(out.get("prompt", "")))
        if self.negative_prompt.strip():
            out["negative_prompt"] = merge_template(
                self.negative_prompt, str(out.get("negative_prompt", ""))
            )
        return out

    @property
    def touches(self) -> frozenset[str]:
        """Every field this preset may change."""
        wrapped = {n for n in TEMPLATE_FIELDS if str(getattr(self, n)).strip()}
        return frozenset(self.fields) | wrapped

    def summary(self) -> str:
        """One line: what the preset does (``stylize=250, prompt: '{prompt}, watercolor'``)."""
        parts = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in self.fields.items()]
        if self.prompt.strip():
            parts.append(f"prompt: {self.prompt!r}")
        if self.negative_prompt.strip():
            parts.append(f"negative prompt: {self.negative_prompt!r}")
        return ", ".join(parts) or "changes nothing"

    # -- JSON --

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (what ``presets.json`` and a saved sweep hold)."""
        data: dict[str, Any] = {"name": self.name, "fields": dict(self.fields)}
        for key in ("prompt", "negative_prompt", "description"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Preset:
        """Read :meth:`to_json`'s output back (validated; unknown keys are refused)."""
        if not isinstance(data, Mapping):
            raise PresetError(f"a preset must be a JSON object, not {type(data).__name__}")
        unknown = set(data) - {"name", "fields", "prompt", "negative_prompt", "description"}
        if unknown:
            raise PresetError(
                f"preset {data.get('name')!r}: unknown key(s) "
                + ", ".join(sorted(map(str, unknown)))
            )
        if "name" not in data:
            raise PresetError("a preset needs a name")
        fields = data.get("fields", {})
        if not isinstance(fields, Mapping):
            raise PresetError(f"preset {data['name']!r}: fields must be a JSON object")
        texts = {k: data.get(k, "") for k in ("prompt", "negative_prompt", "description")}
        return cls(name=data["name"], fields=dict(fields), **texts)


def merge_template(template: str, text: str) -> str:
    """Put ``text`` into ``template``: at ``{prompt}``, else appended after a comma.

    >>> merge_template("{prompt}, watercolor", "a fox")
    'a fox, watercolor'
    >>> merge_template("watercolor", "a fox")
    'a fox, watercolor'
    """
    if not template.strip():
        return text
    if PLACEHOLDER in template:
        return template.replace(PLACEHOLDER, text)
    return ", ".join(part for part in (text.strip(), template.strip()) if part)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise PresetError(f"a preset name must be text, not {type(name).__name__}")
    clean = name.strip()
    if not clean:
        raise PresetError("a preset needs a name (it is empty)")
    if len(clean) > MAX_NAME_LENGTH:
        raise PresetError(
            f"preset name {clean[:20]!r}… is longer than {MAX_NAME_LENGTH} characters"
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in clean):
        raise PresetError(f"preset name {clean!r} contains control characters")
    return clean


def _check_text(name: str, label: str, text: Any) -> None:
    if not isinstance(text, str):
        raise PresetError(f"preset {name!r}: {label} must be text, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PresetError(f"preset {name!r}: {label} is not valid Unicode text") from None


def _key(name: str) -> str:
    return name.strip().casefold()


# --- stacking and previews ------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field a stack of presets changes."""

    field: str
    before: Any
    after: Any
    #: The presets that touched the field, in the order applied.
    presets: tuple[str, ...]

    def __str__(self) -> str:
        by = ", ".join(self.presets)
        return f"{self.field}: {self.before!r} → {self.after!r}  ({by})"


@dataclass(frozen=True)
class PresetPreview:
    """What applying presets would do: the request before and after, and each change."""

    before: ImageRequest
    after: ImageRequest
    changes: tuple[Change, ...]

    def __str__(self) -> str:
        if not self.changes:
            return "no changes"
        return "\n".join(str(c) for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        """For the front end: the changes and the resulting body."""
        return {
            "changes": [
                {"field": c.field, "before": c.before, "after": c.after, "presets": list(c.presets)}
                for c in self.changes
            ],
            "body": self.after.to_body(),
        }


def resolve_presets(
    presets: Iterable[Preset | str], library: PresetLibrary | None = None
) -> list[Preset]:
    """Presets given as objects or names, as objects (names looked up in ``library``)."""
    out: list[Preset] = []
    lib = library
    for item in presets:
        if isinstance(item, Preset):
            out.append(item)
        elif isinstance(item, str):
            lib = lib if lib is not None else PresetLibrary()
            out.append(lib.get(item))
        else:
            raise PresetError(f"expected a Preset or a preset name, not {type(item).__name__}")
    return out


def apply_presets(
    request: ImageRequest,
    presets: Sequence[Preset | str],
    *,
    library: PresetLibrary | None = None,
) -> ImageRequest:
    """``request`` with ``presets`` applied in order (names looked up in ``library``)."""
    return preview_presets(request, presets, library=library).after


def preview_presets(
    request: ImageRequest,
    presets: Sequence[Preset | str],
    *,
    library: PresetLibrary | None = None,
) -> PresetPreview:
    """What stacking ``presets`` on ``request`` changes, field by field (nothing applied).

    A field a later preset sets back to where it started is not a change.
    """
    resolved = resolve_presets(presets, library)
    values = request.to_dict()
    touched: dict[str, list[str]] = {}
    for preset in resolved:
        after = preset.apply_values(values)
        for name in FIELD_NAMES:
            if after[name] != values[name] or name in preset.fields:
                touched.setdefault(name, []).append(preset.name)
        values = after
    try:
        result = ImageRequest(**values)
    except ValidationError as exc:
        names = ", ".join(p.name for p in resolved)
        raise PresetError(f"applying {names} gives an invalid request: {exc}") from None
    before = request.to_dict()
    changes = tuple(
        Change(name, before[name], values[name], tuple(dict.fromkeys(touched[name])))
        for name in FIELD_NAMES
        if name in touched and values[name] != before[name]
    )
    return PresetPreview(request, result, changes)


# --- built-in teaching presets ----------------------------------------------------------------

_STYLIZE_SOURCE = "Midjourney's settings (docs.midjourney.com, Stylize)"

#: Presets that ship with the package. The stylize four are the buttons of Midjourney's
#: settings panel: Stylize Low --s 50, Med --s 100 (the default), High --s 250, Very High --s 750.
BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        "Stylize low",
        {"stylize": 50},
        description=f"--s 50, 'Stylize Low' in {_STYLIZE_SOURCE}: close to the prompt, "
        "little of Midjourney's own look.",
        builtin=True,
    ),
    Preset(
        "Stylize med",
        {"stylize": 100},
        description=f"--s 100, 'Stylize Med' in {_STYLIZE_SOURCE}; the default.",
        builtin=True,
    ),
    Preset(
        "Stylize high",
        {"stylize": 250},
        description=f"--s 250, 'Stylize High' in {_STYLIZE_SOURCE}: more artistic, "
        "looser with the prompt.",
        builtin=True,
    ),
    Preset(
        "Stylize very high",
        {"stylize": 750},
        description=f"--s 750, 'Stylize Very High' in {_STYLIZE_SOURCE}: Midjourney's "
        "aesthetic first, the prompt second.",
        builtin=True,
    ),
    Preset(
        "Raw",
        {"raw": True},
        description="--raw: less of Midjourney's default beautifying; write longer, more "
        "descriptive prompts with it.",
        builtin=True,
    ),
    Preset(
        "Seamless tile",
        {"tile": True},
        description="--tile: images that repeat seamlessly, for patterns and textures.",
        builtin=True,
    ),
    Preset(
        "Portrait 2:3",
        {"aspect_ratio": "2:3"},
        description="--ar 2:3: a tall frame for people and posters.",
        builtin=True,
    ),
    Preset(
        "Widescreen 16:9",
        {"aspect_ratio": "16:9"},
        description="--ar 16:9: a wide, cinematic frame for scenes and landscapes.",
        builtin=True,
    ),
    Preset(
        "No text",
        negative_prompt="text, letters, watermark, signature",
        description="Adds text, letters, watermarks and signatures to the negative prompt (--no).",
        builtin=True,
    ),
)


# --- the user's presets on disk ---------------------------------------------------------------


class PresetLibrary:
    """The built-in presets plus the user's, saved as JSON in ``folder``.

    ``folder`` defaults to the user data folder. The file is read on every look-up (another
    kernel may have saved a preset) and replaced atomically on every change; a file this
    version cannot read is never overwritten.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else data_dir()
        self.path = self.folder / PRESETS_FILE

    def __repr__(self) -> str:
        return f"PresetLibrary({str(self.folder)!r})"

    # -- reading --

    def user_presets(self) -> list[Preset]:
        """The user's presets, in the order saved."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise self._unreadable(str(exc)) from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self._unreadable(f"not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self._unreadable(f'not a presets file (no "format": "{FORMAT}")')
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise self._unreadable(f"version {version!r} is newer than this package reads")
        items = data.get("presets")
        if not isinstance(items, list):
            raise self._unreadable('"presets" must be a list')
        try:
            return [Preset.from_json(item) for item in items]
        except PresetError as exc:
            raise self._unreadable(str(exc)) from None

    def all(self) -> list[Preset]:
        """Built-in presets first, then the user's."""
        return [*BUILTIN_PRESETS, *self.user_presets()]

    def names(self) -> list[str]:
        return [p.name for p in self.all()]

    def get(self, name: str) -> Preset:
        """The preset called ``name`` (case and outer spaces ignored).

        Built-in presets are found without reading the user's file (no user preset can
        take a built-in's name).
        """
        wanted = _key(name)
        for preset in BUILTIN_PRESETS:
            if _key(preset.name) == wanted:
                return preset
        for preset in self.user_presets():
            if _key(preset.name) == wanted:
                return preset
        known = self.names()
        shown = ", ".join(repr(n) for n in known[:20]) + (", …" if len(known) > 20 else "")
        raise PresetError(f"no preset called {name!r}; known presets: {shown}")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(_key(p.name) == _key(name) for p in self.all())

    def __iter__(self) -> Iterator[Preset]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self.all())

    # -- changing --

    def save(self, preset: Preset, *, replace: bool = False) -> Preset:
        """Save ``preset``; an existing user preset of that name needs ``replace=True``."""
        self.save_all([preset], replace=replace)
        return preset

    def save_all(self, presets: Sequence[Preset], *, replace: bool = False) -> None:
        """Save several presets at once (all or none)."""
        builtin = {_key(p.name) for p in BUILTIN_PRESETS}
        current = self.user_presets()
        index = {_key(p.name): i for i, p in enumerate(current)}
        seen: set[str] = set()
        for preset in presets:
            if not isinstance(preset, Preset):
                raise PresetError(f"expected a Preset, not {type(preset).__name__}")
            key = _key(preset.name)
            if key in builtin:
                raise PresetError(f"{preset.name!r} is a built-in preset; choose another name")
            if key in seen:
                raise PresetError(f"{preset.name!r} appears twice in what is being saved")
            seen.add(key)
            stored = Preset(
                preset.name,
                dict(preset.fields),
                preset.prompt,
                preset.negative_prompt,
                preset.description,
            )
            if key in index:
                if not replace:
                    raise PresetError(
                        f"a preset called {current[index[key]].name!r} exists already; "
                        "pass replace=True to overwrite it"
                    )
                current[index[key]] = stored
            else:
                index[key] = len(current)
                current.append(stored)
        self._write(current)

    def delete(self, name: str) -> None:
        """Remove the user preset called ``name``."""
        if _key(name) in {_key(p.name) for p in BUILTIN_PRESETS}:
            raise PresetError(f"{name!r} is a built-in preset and cannot be deleted")
        current = self.user_presets()
        kept = [p for p in current if _key(p.name) != _key(name)]
        if len(kept) == len(current):
            raise PresetError(f"no saved preset called {name!r}")
        self._write(kept)

    def import_styles(
        self, source: str | os.PathLike[str], *, replace: bool = False
    ) -> list[Preset]:
        """Import an AUTOMATIC1111 ``styles.csv`` (a path, or its text) and save every style."""
        presets = read_a1111_styles(source)
        self.save_all(presets, replace=replace)
        return presets

    # -- files --

    def _unreadable(self, problem: str) -> PresetError:
        return PresetError(
            f"{self.path} cannot be read: {problem}. It was left as it is; fix it or move it "
            "away to start a new one."
        )

    def _write(self, presets: Sequence[Preset]) -> None:
        data = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "presets": [p.to_json() for p in presets],
        }
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".presets-", suffix=".json", dir=self.folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise PresetError(f"cannot save presets to {self.path}: {exc}") from None


# --- AUTOMATIC1111 styles.csv ------------------------------------------------------------------

#: Cap on the size of a styles file read at once.
MAX_STYLES_BYTES = 16 * 1024 * 1024


def read_a1111_styles(source: str | os.PathLike[str]) -> list[Preset]:
    """The styles of an AUTOMATIC1111 ``styles.csv`` as presets (nothing saved).

    ``source`` is a path, or the file's text (a string holding a line break). Columns:
    ``name``, ``prompt`` (older files: ``text``) and ``negative_prompt``; a ``description``
    column is kept; other columns are ignored. Templates work as they did in the web UI.
    """
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        text, where = source, "styles text"
    else:
        path = Path(source)
        where = str(path)
        try:
            if path.stat().st_size > MAX_STYLES_BYTES:
                raise PresetError(f"{where} is larger than {MAX_STYLES_BYTES // 2**20} MB")
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"cannot read {where}: {exc}") from None
    text = text.removeprefix("\ufeff")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        if "name" not in header:
            raise PresetError(
                f"{where} has no 'name' column (an AUTOMATIC1111 styles.csv starts with "
                "name,prompt,negative_prompt)"
            )
        if not {"prompt", "text", "negative_prompt"} & set(header):
            raise PresetError(f"{where} has neither a 'prompt' nor a 'negative_prompt' column")
        presets: list[Preset] = []
        rows: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            name = (row.get("name") or "").strip()
            prompt = row.get("prompt") or row.get("text") or ""
            negative = row.get("negative_prompt") or ""
            if not name:
                if (prompt + negative).strip():
                    raise PresetError(f"{where}, line {line}: a style without a name")
                continue  # a blank row
            key = _key(name)
            if key in rows:
                raise PresetError(
                    f"{where}: the style {name!r} appears twice (lines {rows[key]} and {line})"
                )
            rows[key] = line
            try:
                presets.append(
                    Preset(
                        name,
                        prompt=prompt,
                        negative_prompt=negative,
                        description=(row.get("description") or "").strip(),
                    )
                )
            except PresetError as exc:
                raise PresetError(f"{where}, line {line}: {exc}") from None
    except csv.Error as exc:
        raise PresetError(f"{where} is not valid CSV: {exc}") from None
    return presets
