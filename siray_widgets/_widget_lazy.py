"""Panels the front end loads when their tab first opens, instead of with the widget.

The main bundle (``static/widget.js``, which every notebook that shows the widget loads and may
save) stays within its size budget; a bigger panel (History, later Sweep) is built by
``scripts/build.mjs`` from ``js/lazy/<name>.ts`` into ``static/lazy/<name>.js`` (an ES module,
its CSS inlined as text) and sent as text the first time a view opens its tab: the
``load-panel`` message (docs/widget-contract.md § Lazy panels). The front end imports it from a
``blob:`` URL, as anywidget imports the main bundle.

A panel may also get settings that only Python knows (a size cap, a limit): register a
function in :data:`PANEL_CONFIG` under the panel's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

LAZY_DIR: Final = Path(__file__).parent / "static" / "lazy"
_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

#: Settings sent with a panel's module, by panel name (each a function: read when sent).
PANEL_CONFIG: dict[str, Callable[[], dict[str, Any]]] = {}


def panel_module(name: object) -> dict[str, Any]:
    """``{"code", "css", "config"}`` of the lazy panel ``name`` (ValueError if there is none)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not the name of a panel")
    path = LAZY_DIR / f"{name}.js"
    try:
        code = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"the {name} panel is not built ({path} is missing): reinstall siray-widgets, or "
            "run `npm run build` in a source checkout"
        ) from None
    css_path = path.with_suffix(".css")
    css = css_path.read_text(encoding="utf-8") if css_path.exists() else ""
    config = PANEL_CONFIG.get(name)
    return {"name": name, "code": code, "css": css, "config": config() if config else {}}
