"""The front end's pure rules, run in node against Python's, plus checks on the built bundle.

The live preview is computed in the browser (same frame as the input) and must be byte-equal
to Python's ``request_json``; the tricky cases are strings (escapes, control characters,
Unicode line separators, astral characters) and the "blank" rule for optional fields.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siray_widgets._widget_snippets import is_local_url, is_safe_image_url
from siray_widgets.errors import ValidationError
from siray_widgets.schema import FIELDS, ImageRequest, schema_json

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "siray_widgets" / "static"

DRIVER = """
import { bodyText, isLocalUrl, isValid, safeUrl, sending } from "./body.mjs";
import { readFileSync } from "node:fs";
const { fields, bodies, checks, urls, builtin } = JSON.parse(readFileSync(0, "utf8"));
const byName = Object.fromEntries(fields.map((f) => [f.name, f]));
process.stdout.write(JSON.stringify({
  bodies: bodies.map((v) => bodyText(fields, sending((name) => v[name], builtin ?? true))),
  checks: checks.map(([name, value]) => isValid(byName[name], value)),
  sent: checks.map(([, value]) => JSON.stringify(value)),
  urls: urls.map(safeUrl),
  local: urls.map(isLocalUrl),
}));
"""

TRICKY = [
    'a "quoted" fox',
    "back\\slash and /slash/",
    "line\nbreak\r\nand\ttab",
    "".join(chr(c) for c in range(32)),
    "\x7f delete and \x85 next line",
    "\u2028 line and \u2029 paragraph separators",
    "emoji 🦊🌊 and astral 𝒜",
    "right-to-left \u202e text \u200f",
    "</script><img src=x onerror=alert(1)>",
    "ナルト風の灯籠祭り",
    "\ufeffbyte order mark",
    "nul \x00 inside",
]
BLANKISH = ["", " ", "\t\n", "\x1c\x1d\x1e\x1f", "\x85", "\u3000\u2007\u00a0", "\ufeff", "\u200b"]


def _random_text(rng: random.Random) -> str:
    alphabet = "ab \t\n\"\\'/<>&\x00\x08\x0b\x0c\x1b\x1f\x7f\x85\xa0\u2028\u3000\ufeff€🦊𝒜é"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))


def _cases() -> list[dict[str, Any]]:
    rng = random.Random(20261125)
    cases: list[dict[str, Any]] = []
    for text in [*TRICKY, *BLANKISH[1:]]:
        cases.append({"prompt": text if text.strip() else "x" + text, "negative_prompt": text})
    for _ in range(300):
        prompt = _random_text(rng)
        cases.append(
            {
                "prompt": prompt if prompt.strip() else "p" + prompt,
                "negative_prompt": _random_text(rng),
                "aspect_ratio": rng.choice(FIELDS[3].enum or ["1:1"]),
                "chaos": rng.randint(0, 100),
                "stylize": rng.randint(0, 1000),
                "weird": rng.randint(0, 3000),
                "quality": rng.choice(["1", "2", "4"]),
                "seed": rng.choice([-1, 0, 9_999_999_999, rng.randint(0, 9_999_999_999)]),
                "raw": rng.random() < 0.5,
                "tile": rng.random() < 0.5,
            }
        )
    return cases


def _checks() -> list[tuple[str, Any]]:
    checks: list[tuple[str, Any]] = []
    for f in FIELDS:
        if f.type == "integer":
            assert f.minimum is not None
            assert f.maximum is not None
            for value in (f.minimum - 1, f.minimum, f.maximum, f.maximum + 1, 1.5, True, "3"):
                checks.append((f.name, value))
        elif f.type == "boolean":
            checks += [(f.name, True), (f.name, False), (f.name, 1), (f.name, "true")]
        else:
            for value in [*(f.enum or []), "nope", *BLANKISH, "a fox", 2]:
                checks.append((f.name, value))
    return checks


def _python_accepts(name: str, value: Any) -> bool:
    # The JS side never sees Python's int-to-string courtesy for quality: JSON keeps types.
    if name == "quality" and not isinstance(value, str):
        return False
    try:
        next(f for f in FIELDS if f.name == name).validate(value)
    except ValidationError:
        return False
    return True


URLS = [
    "https://example.com/a.png",
    "http://127.0.0.1:8000/sandbox/images/x/1.png",
    " https://example.com/padded.png ",
    "data:image/png;base64,iVBORw0KGgo=",
    "DATA:IMAGE/PNG;base64,AAAA",
    "data:image/webp,AAAA",
    "http://localhost:8765/sandbox/images/x/2.png",
    "http://[::1]:8765/x.png",
    "https://app.localhost/x.png",
    "http://127.1/x.png",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "data:image/svg+xml;base64,PHN2Zz4=",
    "blob:http://127.0.0.1:8000/0a1b",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x.png",
    "/relative.png",
    "",
]


@pytest.fixture(scope="module")
def node_rules(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run js/body.ts in node on the given input (bundled by the project's esbuild)."""
    node = shutil.which("node")
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    assert node, "node is needed to build the front end (see PACKAGING.md)"
    assert esbuild.exists(), "run `npm install` (pip install -e . does it)"
    folder = tmp_path_factory.mktemp("js")
    subprocess.run(
        [str(esbuild), str(ROOT / "js" / "body.ts"), "--bundle", "--format=esm",
         f"--outfile={folder / 'body.mjs'}", "--log-level=warning"],
        check=True,
    )  # fmt: skip
    (folder / "driver.mjs").write_text(DRIVER)

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        done = subprocess.run(
            [node, str(folder / "driver.mjs")],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            check=True,
            encoding="utf-8",
        )
        return dict(json.loads(done.stdout))

    return run


def test_preview_rules_match_python_byte_for_byte(node_rules: Any) -> None:
    from siray_widgets.widget import ImagineWidget

    rng = random.Random(7)
    cases = [ImageRequest(**values).to_dict() for values in _cases()]  # every field, like traits
    for values in cases:  # the traits the page reads: the fields and the drawn next seed
        values["next_seed"] = rng.randint(0, 9_999_999_999)
    checks = _checks()
    result = node_rules(
        {"fields": schema_json()["fields"], "bodies": cases, "checks": checks, "urls": URLS}
    )
    assert any(values["seed"] == -1 for values in cases)
    widget = ImagineWidget()
    try:
        for values, shown in zip(cases, result["bodies"], strict=True):
            fields = {k: v for k, v in values.items() if k != "next_seed"}
            widget.request = fields
            widget.set_trait("next_seed", values["next_seed"])
            widget._refresh_request()
            assert shown == widget.request_json, values  # what Python sends, byte for byte
            if values["seed"] == -1:
                assert json.loads(shown)["seed"] == values["next_seed"]
    finally:
        widget.close()
    for (name, value), accepted in zip(checks, result["checks"], strict=True):
        assert accepted == _python_accepts(name, value), (name, value)
    allowed = [u is not None for u in result["urls"]]
    assert allowed == [is_safe_image_url(u) for u in URLS]
    assert allowed == [True] * 10 + [False] * 11
    assert result["urls"][2] == "https://example.com/padded.png"
    # The page waits for the kernel's bytes only for URLs the kernel does send bytes for.
    for url, local in zip(URLS, result["local"], strict=True):
        assert not local or is_local_url(url), url
    assert result["local"][:9] == [False, True, False, False, False, False, True, True, False]


def _top_level_selectors(css: str) -> list[str]:
    """The selectors of the stylesheet's top-level rules (nested rules are inside them)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    selectors, depth, start = [], 0, 0
    for i, char in enumerate(css):
        if char == "{":
            if depth == 0:
                selectors += [s.strip() for s in css[start:i].split(",")]
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                start = i + 1
    assert depth == 0, "unbalanced braces"
    return selectors


def test_bundle_is_built_small_and_scoped() -> None:
    js = (STATIC / "widget.js").read_bytes()
    css = (STATIC / "widget.css").read_text()
    assert len(js) <= 30 * 1024, "widget.js budget: 30 KB minified"
    assert len(css.encode()) <= 8 * 1024, "widget.css budget: 8 KB minified"
    # No global class names: every rule is nested in the widget root, except the one that
    # hides the widget's own static snapshot (docs/widget-contract.md, "Snapshot").
    for source in ((ROOT / "js" / "widget.css").read_text(), css):
        selectors = _top_level_selectors(source)
        assert ".siray-widget" in selectors
        outside = [s for s in selectors if s != ".siray-widget" and ".siray-snapshot" not in s]
        assert outside == []


def test_front_end_never_parses_strings_as_html() -> None:
    # The built bundle and lazily loaded modules: code only, no comments.
    for path in (STATIC / "widget.js", *sorted((STATIC / "lazy").glob("*.js"))):
        code = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{path.name} uses {sink}"
    assert "textContent" in (STATIC / "widget.js").read_text()


def test_lazy_modules_are_built_and_scoped() -> None:
    """The modules the kernel sends when first needed (docs/widget-contract.md, "Lazy
    modules"): an ES module with a default export each, and CSS scoped to the widget root."""
    built = {p.stem for p in (STATIC / "lazy").glob("*.js")}
    assert built >= {"history", "viewer", "sweep"}
    for name in built:
        js = (STATIC / "lazy" / f"{name}.js").read_text()
        assert re.search(r"export\s*\{[^}]*\bas default\b|export default\b", js), name
        css = (STATIC / "lazy" / f"{name}.css").read_text()
        assert _top_level_selectors(css) == [".siray-widget"], name


# --- models other than niji 7: fields generated from a published schema ---------------------

EDGE = "acme/edge-cases-t2i"
#: Every rule a published schema can carry, and two names the widget already uses.
EDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt", "style"],
    "properties": {
        "model": {"type": "string", "enum": [EDGE]},
        "prompt": {"type": "string", "minLength": 3, "maxLength": 120},
        "free": {"type": "number"},
        "cfg": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 20},
        "strength": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.1},
        "steps": {"type": "integer", "minimum": 2, "maximum": 64, "multipleOf": 2},
        "upscale": {"type": "integer", "enum": [1, 2, 4]},
        "ratio": {"type": "number", "enum": [0.5, 1, 1.5]},
        "style": {"type": "string", "enum": ["ink", "oil"]},
        "layout": {"type": "string", "maxLength": 5},
        "status": {"type": "boolean"},
        "seed": {"type": "integer", "minimum": -1},
    },
}
FLOATS = [
    0.1, 0.2, 0.30000000000000004, 2.5, -0.5, 1e-05, 0.0001, 1.5e-07, 123456.789,
    1e15 + 0.5, 1e16, 1.5e16, 9007199254740994.0, 1e21, 1.7976931348623157e308, 3.0, -0.0,
]  # fmt: skip


@pytest.fixture(scope="module")
def edge_registry() -> Iterator[Any]:
    """The fixture registry plus the edge-case model, as the widget's registry."""
    from fixtures.registry_fixtures import entry, fixture_payload

    from siray_widgets import registry

    payload = fixture_payload()
    payload["data"].append(entry(EDGE, EDGE_SCHEMA, out_price="0.0125"))
    before = registry._current
    found = registry.use(registry.parse_registry(payload, source="file"))
    yield found
    registry._current = before


def _valid_value(f: Any, rng: random.Random) -> Any:
    """A random value ``f`` accepts (None where it may be left unset)."""
    if f.allow_unset and rng.random() < 0.15:
        return None
    if f.enum is not None:
        return rng.choice(f.enum)
    if f.type == "boolean":
        return rng.random() < 0.5
    if f.type == "string":
        text = _random_text(rng)
        if f.required and not text.strip():
            text = "p" + text
        if f.min_length and 0 < len(text) < f.min_length:
            text = text.ljust(f.min_length, "x")
        return text[: f.max_length] if f.max_length is not None else text
    for _ in range(200):
        if f.multiple_of is not None:
            from decimal import Decimal

            k = rng.randint(-50, 50)
            value: Any = k * f.multiple_of
            if f.type == "number":
                value = float(Decimal(k) * Decimal(repr(f.multiple_of)))
        elif f.type == "integer":
            low = f.minimum if f.minimum is not None else -(2**40)
            high = f.maximum if f.maximum is not None else 2**40
            value = rng.randint(low, high)
        else:
            value = rng.choice([*FLOATS, rng.uniform(-1e3, 1e3), rng.uniform(0, 20)])
        try:
            return f.validate(value)
        except ValidationError:
            continue
    raise AssertionError(f"no value found for {f.name}")


CHECK_VALUES: list[Any] = [
    None, True, False, "x", "", "ink", "  ", "abcdef", 0, -1, 1, 2, 3, 4, 20, 64, 66,
    2**53 - 1, 2**53, 2**53 + 2, -(2**53), *FLOATS, 0.5, 1.5, 0.3, 0.7, 19.999, 20.0,
    1e-300,
]  # fmt: skip


def test_preview_rules_match_python_for_generated_models(
    node_rules: Any, edge_registry: Any, make_widget: Any
) -> None:
    """Every supported model of the fixture registry, and one with every rule a schema can
    carry: the browser's preview is byte-equal to Python's body, and the browser accepts
    exactly what the kernel accepts."""
    import traitlets
    from fixtures.registry_fixtures import NIJI, TEXT_TO_IMAGE

    rng = random.Random(12)
    models = [m for m in TEXT_TO_IMAGE if m != NIJI] + [EDGE]
    covered: set[str] = set()
    for model in models:
        w = make_widget(model=model)
        spec = w.model_schema
        schema = w.schema
        assert schema["builtin"] is False
        assert schema["suffix"] is False
        cases, expected = [], []
        for _ in range(150):
            values = {f.name: _valid_value(f, rng) for f in spec.fields}
            w.request = values
            state = {t: getattr(w, t) for t in w._traits_of.values()}
            cases.append({**state, "next_seed": 77})
            expected.append(w.request_json)
        checks = [(f.name, v) for f in spec.fields for v in CHECK_VALUES]
        result = node_rules(
            {"fields": schema["fields"], "bodies": cases, "checks": checks, "urls": [],
             "builtin": False}
        )  # fmt: skip
        for shown, body, values in zip(result["bodies"], expected, cases, strict=True):
            assert shown == body, values  # byte for byte, floats and unset fields included
        by_name = {f.name: w._traits_of[f.name] for f in spec.fields}
        for (name, value), accepted, sent in zip(
            checks, result["checks"], result["sent"], strict=True
        ):
            trait = w.traits()[by_name[name]]
            try:
                trait.validate(w, json.loads(sent))  # what the page would send
                python = True
            except traitlets.TraitError:
                python = False
            assert accepted == python, (model, name, value, sent)
        covered |= {f["control"] for f in schema["fields"]}
        if model == EDGE:
            assert any('"free": 1e-05' in body for body in expected)
            assert any('"layout"' in body for body in expected)
            assert [f.get("trait") for f in schema["fields"] if "trait" in f] == [
                "layout_", "status_"
            ]  # fmt: skip
            bodies_unset = [json.loads(b) for b in expected]
            assert any("seed" not in b for b in bodies_unset)  # unset: left out
    assert covered == {"checkbox", "choice", "slider", "number", "text", "textarea"}


def test_importing_the_widget_loads_no_tab_handlers() -> None:
    """The History and Sweep tabs' kernel modules load on their first message (or their
    front-end module's first load), not with ``from siray_widgets import ImagineWidget``."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from siray_widgets import ImagineWidget\n"
        "print(sorted(m for m in sys.modules if m.startswith('siray_widgets._widget_')))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = found.stdout.strip()
    assert "_widget_history" not in loaded, loaded
    assert "_widget_sweep" not in loaded, loaded
