"""``siray-widgets lab``: JupyterLab on the quickstart notebook (sandbox unless a key is set),
with working copies of the teaching notebooks beside it."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

from .cli import EXIT_API, CommandError, port_number

QUICKSTART = "quickstart.ipynb"
#: The notebooks copied into the working folder (the quickstart is the one opened).
TEACHING = ("parameter-tour.ipynb", "workshop.ipynb")
#: The working folder ``siray-widgets lab`` makes in the current folder: it holds a copy of the
#: quickstart, so the one in the package (or the repository) never changes.
WORK_FOLDER = "siray-work"


def notebook_source(name: str) -> Path:
    """A shipped notebook: the repo's copy in a checkout, else the one in the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "notebooks" / name, package / "notebooks" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} is not in this installation of siray-widgets")


def quickstart_source() -> Path:
    """The quickstart notebook (see :func:`notebook_source`)."""
    return notebook_source(QUICKSTART)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``lab`` subcommand."""
    parser = subparsers.add_parser(
        "lab",
        help="open JupyterLab on the quickstart notebook",
        description=(
            "Open JupyterLab on the quickstart notebook. Without SIRAY_API_KEY the widget uses "
            "the embedded sandbox (placeholder images, no key, no network)."
        ),
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"folder to work in, where copies of quickstart.ipynb and the teaching notebooks "
        "are made if missing "
        f"(default: ./{WORK_FOLDER})",
    )
    parser.add_argument(
        "--port", type=port_number, default=8888, help="JupyterLab's port (default 8888)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start JupyterLab in the foreground (replaces this process).

    A folder that cannot be made, a missing quickstart or a failed start is one line and
    exit code 1 (raised as :class:`~siray_widgets.cli.CommandError`).
    """
    try:
        return _run(args)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise CommandError(f"lab: {where}{exc.strerror or exc}", EXIT_API) from None


def prepare_folder(folder: Path) -> Path:
    """Make ``folder`` and copy the quickstart and the teaching notebooks into it, each unless
    a copy is there already (your edits and outputs stay in it); return the quickstart's copy.

    A copy carries the kernel and language details JupyterLab fills in when a notebook's
    kernel starts (for this Python), so that merely opening it leaves it unmodified. A
    teaching notebook missing from the installation is skipped; the quickstart is required.
    """
    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / QUICKSTART
    _copy(quickstart_source(), notebook)
    for name in TEACHING:
        try:
            source = notebook_source(name)
        except FileNotFoundError:
            continue
        _copy(source, folder / name)
    return notebook


def _copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    content = json.loads(source.read_text(encoding="utf-8"))
    content.setdefault("metadata", {}).update(
        kernelspec={
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        language_info={
            "codemirror_mode": {"name": "ipython", "version": 3},
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "name": "python",
            "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3",
            "version": platform.python_version(),
        },
    )
    text = json.dumps(content, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    target.write_text(text, encoding="utf-8")


def _run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("jupyterlab") is None:  # before importing jupyter_server
        print(
            "error: JupyterLab is not installed; run: pip install 'siray-widgets[lab]'",
            file=sys.stderr,
        )
        return 2
    from .jupyter_server import LAB_OPTIONS

    workdir: Path = (args.dir or Path.cwd() / WORK_FOLDER).absolute()
    notebook = prepare_folder(workdir)
    mode = (
        "your SIRAY_API_KEY"
        if os.environ.get("SIRAY_API_KEY")
        else "the offline sandbox (no SIRAY_API_KEY)"
    )
    print(
        f"siray-widgets: JupyterLab on {notebook} (a working copy), using {mode}.\n"
        "siray-widgets: open the address below; Ctrl+C stops JupyterLab.",
        flush=True,
    )
    argv = [
        sys.executable,
        "-m",
        "siray_widgets.jupyter_server",
        "--ip=127.0.0.1",
        f"--port={args.port}",
        f"--ServerApp.root_dir={workdir}",
        f"--ServerApp.default_url=/lab/tree/{notebook.name}",  # the address printed opens it
        # Warnings, errors and the address: not a page of start-up chatter.
        "--ServerApp.log_level=WARN",
        "--LabApp.log_level=WARN",
        *LAB_OPTIONS,
        # Containers and workshop VMs often run as root; JupyterLab refuses that by default.
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *(["--no-browser"] if args.no_browser else []),
        notebook.name,
    ]
    os.chdir(workdir)
    os.execv(sys.executable, argv)
