"""A static HTML page of runs: one file, readable anywhere, searchable without Python.

Thumbnails are inline (``data:`` URIs), so the page can be mailed or put on a shared drive.
Every text from a run (prompts, notes, tags, server messages) is escaped; a small inline
script filters the cards by words, state and star by toggling ``hidden`` (it never writes
HTML), and a Content-Security-Policy forbids everything but the page's own style, script and
inline images.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .. import __version__
from ..schema import FIELDS_BY_NAME
from .model import Run
from .paths import atomic_write

if TYPE_CHECKING:
    from .runs import RunStore

_CSP: Final = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
)

_STYLE: Final = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fafafa; --card: #fff; --muted: #6b6b70;
  --line: #d9d9de; --bad: #b3261e; --ok: #1b7f3b; }
@media (prefers-color-scheme: dark) { :root { --fg: #ececf0; --bg: #16161a; --card: #212127;
  --muted: #a0a0aa; --line: #3a3a44; --bad: #ff8a80; --ok: #7ee2a0; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { position: sticky; top: 0; background: var(--bg); border-bottom: 1px solid var(--line);
  padding: 12px 16px; display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center;
  z-index: 1; }
h1 { font-size: 18px; margin: 0; }
input[type=search] { flex: 1 1 240px; padding: 6px 8px; font: inherit; }
main { padding: 16px; display: grid; gap: 12px;
  grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); }
article { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px; display: flex; flex-direction: column; gap: 6px; }
article[hidden] { display: none; }
.thumbs { display: grid; grid-template-columns: repeat(2, 1fr); gap: 4px; }
.thumbs img { width: 100%; height: auto; border-radius: 4px; display: block; }
.none { color: var(--muted); font-style: italic; }
.prompt { font-weight: 600; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
.neg, .meta, .note { color: var(--muted); margin: 0; overflow-wrap: anywhere; }
.params { margin: 0; display: flex; flex-wrap: wrap; gap: 4px; padding: 0; list-style: none; }
.params li { border: 1px solid var(--line); border-radius: 10px; padding: 0 6px; font-size: 12px; }
.state-success { color: var(--ok); } .state-failure, .state-error { color: var(--bad); }
.why { color: var(--bad); margin: 0; overflow-wrap: anywhere; }
"""

_SCRIPT: Final = """
(() => {
  const cards = Array.from(document.querySelectorAll("article"));
  const q = document.getElementById("q");
  const state = document.getElementById("state");
  const starred = document.getElementById("starred");
  const count = document.getElementById("count");
  const groups = { failed: ["failure", "error"] };
  function apply() {
    const words = q.value.toLowerCase().split(/\\s+/).filter(Boolean);
    const wanted = state.value;
    let shown = 0;
    for (const card of cards) {
      const text = card.dataset.text;
      const s = card.dataset.state;
      const ok = words.every((w) => text.includes(w)) &&
        (!wanted || s === wanted || (groups[wanted] || []).includes(s)) &&
        (!starred.checked || card.dataset.starred === "1");
      card.hidden = !ok;
      if (ok) shown += 1;
    }
    count.textContent = shown + " of " + cards.length + " runs";
  }
  q.addEventListener("input", apply);
  state.addEventListener("change", apply);
  starred.addEventListener("change", apply);
  apply();
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _card(store: RunStore, run: Run) -> str:
    thumbs: list[str] = []
    for image in run.images:
        if not image.thumb:
            continue
        try:
            data = Path(image.thumb).read_bytes()
        except OSError:
            continue
        uri = "data:image/webp;base64," + base64.b64encode(data).decode("ascii")
        thumbs.append(
            f'<img src="{uri}" alt="image {image.index} of task {_e(run.task_id or "")}" '
            'loading="lazy">'
        )
    gallery = (
        f'<div class="thumbs">{"".join(thumbs)}</div>'
        if thumbs
        else '<p class="none">no image kept</p>'
    )
    params = [
        f"<li>{_e(FIELDS_BY_NAME[k].label if k in FIELDS_BY_NAME else k)}: {_e(v)}</li>"
        for k, v in run.params.items()
        if k not in ("prompt", "negative_prompt", "model")
        and (k not in FIELDS_BY_NAME or FIELDS_BY_NAME[k].default != v)
    ]
    if run.seed_used is not None and run.params.get("seed") != run.seed_used:
        params.append(f"<li>seed used: {_e(run.seed_used)}</li>")
    when = run.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    marks = ("★ " if run.starred else "") + ("●" * run.rating)
    tags = " ".join(f"#{t}" for t in run.tags)
    why = run.fail_reason or run.error
    search = " ".join(
        [
            run.prompt,
            run.negative_prompt,
            run.note,
            " ".join(run.tags),
            run.task_id or "",
            run.model,
            run.state,
        ]
    ).lower()
    parts = [
        f'<article data-text="{_e(search)}" data-state="{_e(run.state)}" '
        f'data-starred="{1 if run.starred else 0}">',
        gallery,
        f'<p class="prompt">{_e(run.prompt)}</p>',
    ]
    if run.negative_prompt.strip():
        parts.append(f'<p class="neg">no: {_e(run.negative_prompt)}</p>')
    if params:
        parts.append(f'<ul class="params">{"".join(params)}</ul>')
    if why:
        parts.append(f'<p class="why">{_e(why)}</p>')
    if run.note:
        parts.append(f'<p class="note">{_e(run.note)}</p>')
    parts.append(
        f'<p class="meta"><span class="state-{_e(run.state)}">{_e(run.state)}</span> · '
        f"{_e(when)} · {_e(run.task_id or 'no task id')} · {_e(run.origin)}"
        + (f" · {_e(run.source)}" if run.source else "")
        + (f" · {_e(marks)}" if marks else "")
        + (f" · {_e(tags)}" if tags else "")
        + "</p>"
    )
    parts.append("</article>")
    return "".join(parts)


def render(store: RunStore, runs: Sequence[Run], title: str = "siray-widgets history") -> str:
    """The whole page as text."""
    made = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    cards = "\n".join(_card(store, run) for run in runs)
    states = sorted({run.state for run in runs})
    options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in states)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="siray-widgets {_e(__version__)}">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        '<input type="search" id="q" placeholder="Search prompts, tags, notes, task ids…" '
        'aria-label="Search runs" autofocus>'
        '<label>State <select id="state"><option value="">any</option>'
        f'<option value="failed">failed</option>{options}</select></label>'
        '<label><input type="checkbox" id="starred"> starred only</label>'
        f'<span id="count" aria-live="polite">{len(runs)} runs</span>'
        f'<span class="meta">made {_e(made)}</span></header>'
        f'<main id="runs">\n{cards}\n</main>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_html(store: RunStore, runs: Sequence[Run], path: Path) -> Path:
    """Write the page to ``path`` (its folder is created if needed); returns the path."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, render(store, runs).encode("utf-8"))
    return path.resolve()
