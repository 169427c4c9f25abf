"""Front-end modules loaded when first needed (a tab first shown, an image first enlarged).

The main bundle (``static/widget.js``, which every notebook that shows the widget loads and may
save) stays within its size budget; bigger or rarer parts (the History tab, the image viewer,
later Sweep) are built by ``scripts/build.mjs`` from ``js/lazy/<name>.ts`` into
``static/lazy/<name>.js`` (an ES module) and ``<name>.css``, and sent as text the first time a
view needs them: the ``load-module`` message (docs/widget-contract.md § Lazy modules). The front
end imports the text from a ``blob:`` URL, as anywidget imports the main bundle.

A module may also get settings that only Python knows (a size cap, a page size): register a
function in :data:`MODULE_CONFIG` under the module's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

LAZY_DIR: Final = Path(__file__).parent / "static" / "lazy"
_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

#: Settings sent with a module, by module name (each a function: read when sent).
MODULE_CONFIG: dict[str, Callable[[], dict[str, Any]]] = {}


def lazy_module(name: object) -> dict[str, Any]:
    """``{"name", "code", "css", "config"}`` of the lazy module ``name`` (ValueError if there
    is none)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not the name of a front-end module")
    path = LAZY_DIR / f"{name}.js"
    try:
        code = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"the {name} module is not built ({path} is missing): reinstall siray-widgets, or "
            "run `npm run build` in a source checkout"
        ) from None
    css_path = path.with_suffix(".css")
    css = css_path.read_text(encoding="utf-8") if css_path.exists() else ""
    config = MODULE_CONFIG.get(name)
    return {"name": name, "code": code, "css": css, "config": config() if config else {}}
