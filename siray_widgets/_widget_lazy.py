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

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

LAZY_DIR: Final = Path(__file__).parent / "static" / "lazy"
_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

#: Settings sent with a module, by module name (each a function: read when sent).
MODULE_CONFIG: dict[str, Callable[[], dict[str, Any]]] = {}
#: The kernel-side module of a tab, imported on its first message (or its module's first
#: load): it registers the tab's settings above. Importing it with the widget would make
#: every ``import`` of the widget pay for tabs that may never be opened.
HANDLERS: Final = {"history": "._widget_history", "sweep": "._widget_sweep"}

#: The messages of the History tab (handled in ``_widget_history.py``).
HISTORY_KINDS: Final = frozenset(
    {
        "history-query",
        "history-get",
        "history-thumbs",
        "history-restore",
        "history-undo",
        "history-rerun",
        "history-star",
        "history-rate",
        "history-delete",
        "history-diff",
        "read-image",
        "apply-image",
    }
)
#: The messages of the Sweep tab (handled in ``_widget_sweep.py``).
SWEEP_KINDS: Final = frozenset(
    {
        "sweep-preview",
        "sweep-run",
        "sweep-state",
        "sweep-cancel",
        "sweep-retry",
        "sweep-cell",
        "sweep-use",
        "sweep-diff",
        "sweep-thumbs",
        "sweep-presets",
        "sweep-images",
        "sweep-sheet",
    }
)


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
    if name in HANDLERS:
        importlib.import_module(HANDLERS[name], __package__)
    config = MODULE_CONFIG.get(name)
    return {"name": name, "code": code, "css": css, "config": config() if config else {}}
