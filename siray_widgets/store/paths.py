"""Where the data folder is, and safe names and atomic writes inside it.

One data folder per user (``platformdirs``' user data directory for ``siray-widgets``);
``SIRAY_WIDGETS_HOME`` overrides it, and a project can keep its own store by passing a folder
to :class:`~siray_widgets.store.RunStore` (or ``siray-widgets history --store DIR``).

The store owns every file in that folder. Layout::

    runs.sqlite3 (+ -wal, -shm)   the database: runs, their events, images, tags, the ledger
    images/<task>-<n>.<ext>       the images of each run, with their parameters embedded
    thumbs/<task>-<n>.webp        small thumbnails (the history gallery, the HTML page)
    cache/                        files other parts keep here through the store (the registry)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Final

HOME_ENV: Final = "SIRAY_WIDGETS_HOME"
APP_NAME: Final = "siray-widgets"
DB_NAME: Final = "runs.sqlite3"
IMAGES_DIR: Final = "images"
THUMBS_DIR: Final = "thumbs"
CACHE_DIR: Final = "cache"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def data_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``path`` if given, else ``$SIRAY_WIDGETS_HOME``, else the per-user one.

    Not created here (see :func:`ensure_home`).
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs  # only when needed: the override above is the common case in tests

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def ensure_home(home: Path) -> Path:
    """Create the data folder and its subfolders; return it resolved."""
    for sub in ("", IMAGES_DIR, THUMBS_DIR, CACHE_DIR):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return home.resolve()


def file_stem(task_id: str) -> str:
    """A file name stem for a task id chosen by a server.

    Only ``A-Za-z0-9_.-``, no leading dot, at most 80 characters. When the id had to be
    changed to fit, a short hash of the original is appended, so two ids never share a stem.
    """
    stem = _UNSAFE.sub("_", task_id).lstrip(".")[:80]
    if stem != task_id or not stem:
        digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = f"{stem or 'task'}_{digest}"
    return stem


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would lead outside ``root``."""
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ValueError(f"{relative!r} leads outside the data folder {root}")
    return candidate


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder that is then renamed over ``path``.
    """
    tmp = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
