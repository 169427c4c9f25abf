"""``siray-widgets lab``: JupyterLab on the quickstart notebook (sandbox unless a key is set)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from .cli import EXIT_API, CommandError, port_number

QUICKSTART = "quickstart.ipynb"


def quickstart_source() -> Path:
    """The quickstart notebook: the repo's copy in a checkout, else the one in the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (
        package.parent / "notebooks" / QUICKSTART,
        package / "notebooks" / QUICKSTART,
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{QUICKSTART} is not in this installation of siray-widgets")


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
        help="folder to work in (default: the checkout's notebooks/, or the current folder, "
        "where quickstart.ipynb is copied if missing)",
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


def _run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("jupyterlab") is None:  # before importing jupyter_server
        print(
            "error: JupyterLab is not installed; run: pip install 'siray-widgets[lab]'",
            file=sys.stderr,
        )
        return 2
    from .jupyter_server import LAB_OPTIONS

    source = quickstart_source()
    workdir: Path = args.dir or (source.parent if source.parent.name == "notebooks" else Path.cwd())
    workdir.mkdir(parents=True, exist_ok=True)
    notebook = workdir / QUICKSTART
    if not notebook.exists():
        shutil.copyfile(source, notebook)
    mode = "your SIRAY_API_KEY" if os.environ.get("SIRAY_API_KEY") else "the offline sandbox"
    print(f"siray-widgets: opening {notebook} in JupyterLab, using {mode}.", flush=True)
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ip=127.0.0.1",
        f"--port={args.port}",
        f"--ServerApp.root_dir={workdir}",
        *LAB_OPTIONS,
        # Containers and workshop VMs often run as root; JupyterLab refuses that by default.
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *(["--no-browser"] if args.no_browser else []),
        str(notebook.relative_to(workdir)),
    ]
    os.chdir(workdir)
    os.execv(sys.executable, argv)
