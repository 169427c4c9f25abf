"""``siray-widgets sweep``: an X/Y/Z grid of runs from the shell, resumable into a folder.

    siray-widgets sweep "a fox {in snow, at dusk} --ar 3:2" --x stylize=0-1000[5] --y chaos=0,50
    siray-widgets sweep --prompts prompts.txt --x preset="stylize low,stylize high" --out study/
    siray-widgets sweep --from study/contact-sheet.png --out study/

Before anything is sent it prints the cells, tasks, images and estimated cost; above the
threshold (5 tasks; ``--confirm-above``) it asks, ``--yes`` skips the question, and with no
terminal to ask it refuses, saying how many tasks it would send. A progress bar (on a
terminal) and one line per finished cell follow. With ``--out DIR``, DIR receives every image
(four a cell, each with its parameters in its metadata), ``manifest.json`` (updated as cells
change, so a killed run leaves its task ids behind), ``manifest.csv`` and ``contact-sheet.png``
(the definition inside: ``--from`` restores it). Running the same command into the same
folder again sends only the cells that are missing or failed, and follows tasks a killed run
had created. Ctrl-C stops new submissions and keeps following created tasks; a second Ctrl-C
stops following too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .cli import EXIT_API, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CommandError, Subparsers

if TYPE_CHECKING:
    from .client import AsyncSirayClient, PollSchedule
    from .sweep import SweepDefinition
    from .sweep.resume import Prior
    from .sweep.runner import SweepRun
    from .sweep.state import CellRun

MANIFEST: Final = "manifest.json"
MANIFEST_CSV: Final = "manifest.csv"
SHEET: Final = "contact-sheet.png"
MANIFEST_FORMAT: Final = "siray-sweep-manifest"
#: Images downloaded at once into --out.
DOWNLOAD_THREADS: Final = 4
_SEED_FLAG = re.compile(r"(?<!\S)(?:--|[\u2014\u2013])seed\b", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")
_FOLLOWED: Final = frozenset({"submitted", "running", "stalled"})


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run an X/Y/Z grid of variations (resumable; a contact sheet at the end)",
        description=(
            "Run a grid of requests that differ along up to three axes. Axes are NAME=VALUES: "
            "a request field or suffix flag (stylize=0-1000[5], chaos=0,50, ar=1:1,16:9, "
            "raw=both), or prompt (variants one per ;), preset (names from your presets and "
            "the built-in ones), prompt_sr (search, then replacements), replicate=N. Values: "
            "lists 0,250,500; ranges 0-1000(+250); counted ranges 0-1000[5]; 0,250,..,1000; "
            "enums by name or all. The prompt may be a permutation prompt "
            "('a {red, green} bird'): its variants become an axis. Nothing is sent before "
            "you see the task count; more than 5 tasks need --yes or a yes at the prompt."
        ),
    )
    parser.add_argument("prompt", nargs="?", help="the prompt, optionally with a suffix")
    axes = parser.add_argument_group("the grid")
    for slot, where in (("x", "columns"), ("y", "rows"), ("z", "pages")):
        axes.add_argument(f"--{slot}", metavar="NAME=VALUES", help=f"the axis of the {where}")
    axes.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="one run per line of FILE (or per row of a CSV with a prompt column): a batch",
    )
    axes.add_argument(
        "--from",
        dest="sheet",
        type=Path,
        metavar="SHEET.png",
        help="restore the sweep saved in a contact sheet's metadata (and run it again)",
    )
    axes.add_argument(
        "--seed",
        metavar="N|random",
        help=(
            "the shared seed (default: the one the same sweep used before in --out or the run "
            "history, else a new one); 'random' gives every cell its own"
        ),
    )
    axes.add_argument(
        "--replicates", type=int, default=1, metavar="N", help="each cell N times, new seeds"
    )
    axes.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        help="apply a preset to every cell (repeat to stack them in order)",
    )
    run = parser.add_argument_group("running")
    run.add_argument("--yes", "-y", action="store_true", help="send without asking")
    run.add_argument(
        "--confirm-above",
        type=int,
        metavar="N",
        help="ask before sending more than N tasks (default 5; SIRAY_WIDGETS_CONFIRM_ABOVE)",
    )
    run.add_argument(
        "--cap", type=int, metavar="N", help="never send more than N tasks in this command"
    )
    run.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="tasks in flight at once (default 8: see siray_widgets.sweep.runner)",
    )
    run.add_argument(
        "--out", type=Path, metavar="DIR", help="save images, manifest and contact sheet here"
    )
    run.add_argument(
        "--no-resume",
        action="store_true",
        help="send every cell again, even those an earlier run finished",
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop following a task after this long (default 900; it may still finish)",
    )
    run.add_argument(
        "--poll",
        type=float,
        metavar="SECONDS",
        help="ask for each task's status every SECONDS (default: Siray's 3-5 s)",
    )
    run.add_argument(
        "--base-url", metavar="URL", help="API base URL (default: SIRAY_BASE_URL or Siray's)"
    )
    run.add_argument(
        "--sandbox", action="store_true", help="use the in-process sandbox even with a key"
    )
    parser.set_defaults(run=run_sweep_command)


# --- the definition ----------------------------------------------------------------------------


def build_definition(args: argparse.Namespace) -> SweepDefinition:
    """The sweep the arguments describe; CommandError (exit 2) naming what is wrong."""
    from .sweep import SweepError, batch_sweep, define_sweep, read_contact_sheet

    axes = {slot: getattr(args, slot) for slot in ("x", "y", "z") if getattr(args, slot)}
    seed: int | str | None = args.seed
    if isinstance(seed, str) and seed.strip().lower() != "random":
        try:
            seed = int(seed)
        except ValueError:
            raise CommandError(
                f"--seed {seed!r} must be a whole number or 'random'", EXIT_USAGE
            ) from None
    try:
        if args.sheet is not None:
            if args.prompt or axes or args.prompts or args.preset or args.replicates != 1:
                raise CommandError(
                    "--from restores the whole sweep: give no prompt, axes, --prompts, "
                    "--preset or --replicates with it",
                    EXIT_USAGE,
                )
            definition = read_contact_sheet(args.sheet)
            if seed is not None:
                definition = _with_seed(definition, seed)
            return definition
        options: dict[str, Any] = {
            "seed": seed,
            "replicates": args.replicates,
            "presets": list(args.preset),
        }
        if args.prompts is not None:
            if args.prompt:
                raise CommandError("give the prompts either as PROMPT or with --prompts", 2)
            free = [slot for slot in ("y", "x", "z") if slot not in axes]
            if not free:
                raise CommandError("--prompts needs a free axis: drop one of --x/--y/--z", 2)
            return batch_sweep(args.prompts, slot=free[0], **axes, **options)
        if not args.prompt:
            raise CommandError("give a PROMPT, --prompts FILE or --from SHEET.png", EXIT_USAGE)
        return define_sweep(args.prompt, **axes, **options)
    except SweepError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _with_seed(definition: SweepDefinition, seed: int | str) -> SweepDefinition:
    import dataclasses

    from .sweep.definition import _shared_seed

    return dataclasses.replace(
        definition, base={**definition.base, "seed": _shared_seed(seed, definition.seed)}
    )


def _seed_was_drawn(args: argparse.Namespace) -> bool:
    """Whether the shared seed was drawn for this command (no --seed, no seed in a prompt)."""
    if args.seed is not None or args.sheet is not None:
        return False
    return not (args.prompt and _SEED_FLAG.search(args.prompt))


# --- the output folder -------------------------------------------------------------------------


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest an earlier run left in ``out`` (None when there is none, or a foreign one)."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CommandError(f"{out / MANIFEST} cannot be read ({exc}); move it away") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise CommandError(f"{out / MANIFEST} is not a sweep manifest; use another --out")
    return data


def manifest_priors(out: Path, manifest: dict[str, Any]) -> dict[str, Prior]:
    """What the folder's manifest says earlier runs did, per cell key."""
    from .sweep.resume import Prior

    found: dict[str, Prior] = {}
    cells = manifest.get("cells")
    if not isinstance(cells, list):
        return found
    for cell in cells:
        if not isinstance(cell, dict) or not isinstance(cell.get("key"), str):
            continue
        files = [out / name for name in cell.get("files") or [] if isinstance(name, str)]
        task_id = cell.get("task_id") if isinstance(cell.get("task_id"), str) else None
        outputs = tuple(u for u in cell.get("outputs") or [] if isinstance(u, str))
        state = cell.get("state")
        if state == "success" and outputs and files and all(f.is_file() for f in files):
            found[cell["key"]] = Prior(
                cell["key"],
                "reuse",
                state="success",
                task_id=task_id,
                outputs=outputs,
                files=tuple(str(f) for f in files),
                status="SUCCESS",
                progress=100,
            )
        elif task_id and (state == "success" or cell.get("follow", True)):
            # Created but not finished (or finished, its images not saved yet): ask again.
            found[cell["key"]] = Prior(
                cell["key"], "follow", state=str(state), task_id=task_id, outputs=outputs
            )
    return found


def image_name(run: CellRun, number: int, extension: str) -> str:
    """``stylize-500_prompt-at.dusk_3f9a01c2_2.png``: the cell's coordinates, the start of its
    key (the same cell keeps its name when the sweep gains values), the image's number."""
    parts = []
    for coordinate in run.cell.coordinates:
        label = _UNSAFE.sub("-", f"{coordinate.axis}-{coordinate.label}").strip("-")
        parts.append(label[:40])
    stem = "_".join(parts)[:150] or "cell"
    return f"{stem}_{run.key[:8]}_{number}{extension}"


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class Folder:
    """The ``--out`` folder: images, the manifest (kept current), the CSV and the sheet."""

    def __init__(self, out: Path, sweep: SweepRun, family: str) -> None:
        self.out = out
        self.sweep = sweep
        self.family = family
        self.files: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="siray-sweep-out")
        self._saving: list[Future[None]] = []
        self.problems: list[str] = []
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create {out}: {exc.strerror or exc}") from None
        self.root = out.resolve()

    def write_manifest(self) -> None:
        from .sweep.resume import sweep_id

        sweep = self.sweep
        with self._lock:
            files = {key: list(names) for key, names in self.files.items()}
        cells = []
        for run in sweep.cells:
            data = run.to_json()
            cells.append(
                {
                    "index": run.index,
                    "key": run.key,
                    "coordinates": data["labels"],
                    "state": run.state,
                    "task_id": run.task_id,
                    "follow": run.follow_on_retry
                    or run.state in ("submitted", "running", "stalled"),
                    "reason": run.reason,
                    "seed": run.cell.request.seed,
                    "outputs": list(run.outputs),
                    "files": files.get(run.key, []),
                    "body": run.cell.request.to_body(),
                }
            )
        document = {
            "format": MANIFEST_FORMAT,
            "version": 1,
            "sweep_id": sweep_id(sweep.definition),
            "family": self.family,
            "updated_at": time.time(),
            "state": sweep.state,
            "definition": sweep.definition.to_json(),
            "cells": cells,
        }
        text = json.dumps(document, indent=1, ensure_ascii=False)
        try:
            _atomic_write(self.out / MANIFEST, text.encode("utf-8"))
        except OSError as exc:
            raise CommandError(
                f"cannot write {self.out / MANIFEST}: {exc.strerror or exc}"
            ) from None

    def save_images(self, run: CellRun, trust_env: bool, done: Callable[[CellRun], None]) -> None:
        """Save the cell's images in the background (``done(run)`` afterwards)."""
        future = self._pool.submit(self._save, run, trust_env)
        future.add_done_callback(lambda _: done(run))
        self._saving.append(future)

    def have_images(self, run: CellRun) -> bool:
        names = self.files.get(run.key)
        return bool(names) and all((self.out / name).is_file() for name in names or [])

    def _save(self, run: CellRun, trust_env: bool) -> None:
        from ._download import extension, sniff_image
        from .metadata import ImageParams, MetadataError, embed
        from .store.images import ImageError, fetch

        names: list[str] = []
        try:
            kept = [Path(f) for f in run.files] if run.files else []
            for number, url in enumerate(run.outputs, start=1):
                source = kept[number - 1] if len(kept) == len(run.outputs) else None
                if source is not None and source.is_file() and source.parent != self.root:
                    data = source.read_bytes()  # the run store's copy, parameters inside
                else:
                    data = fetch(url)
                kind = sniff_image(data)
                if kind is None:
                    raise ImageError(f"{url[:100]} is not a PNG, JPEG, GIF or WebP image")
                name = image_name(run, number, extension(kind))
                path = self.out / name
                if path.resolve().parent != self.root:
                    raise ImageError(f"refusing to write {path}: it leads outside {self.out}")
                with contextlib.suppress(MetadataError):  # a GIF, say: saved as it came
                    data = embed(data, ImageParams(run.cell.request, run.task_id, None, number))
                _atomic_write(path, data)
                names.append(name)
        except (ImageError, OSError) as exc:
            with self._lock:
                self.problems.append(f"cell {run.index}: images not saved: {exc}")
        finally:
            with self._lock:
                if names:
                    self.files[run.key] = names

    def finish(self, trust_env: bool) -> list[Path]:
        """Wait for the images, write the manifest, the CSV and the contact sheet(s)."""
        for future in list(self._saving):
            future.result()
        self._pool.shutdown(wait=True)
        self.write_manifest()
        from .sweep.contact_sheet import render_contact_sheet, save_contact_sheet
        from .sweep.results import rows_csv

        rows = self.sweep.results
        for row in rows:
            row["files"] = self.files.get(row["key"], [])
        written = [self.out / MANIFEST]
        try:
            _atomic_write(self.out / MANIFEST_CSV, rows_csv(rows).encode("utf-8"))
            written.append(self.out / MANIFEST_CSV)
            definition = self.sweep.definition
            cells = self.sweep.cells
            sheet = render_contact_sheet(definition, cells, load=self._load)
            written.append(save_contact_sheet(sheet, self.out / SHEET, definition, cells))
            pages = definition.shape[2]
            if pages > 1:
                for page in range(pages):
                    image = render_contact_sheet(definition, cells, page=page, load=self._load)
                    name = f"contact-sheet-z{page + 1}.png"
                    written.append(save_contact_sheet(image, self.out / name, definition, cells))
        except OSError as exc:
            raise CommandError(f"cannot write into {self.out}: {exc.strerror or exc}") from None
        return written

    def _load(self, run: CellRun) -> list[Any]:
        from PIL import Image

        names = self.files.get(run.key)
        if not names:
            raise OSError("images not saved")
        pictures = []
        for name in names:
            with Image.open(self.out / name) as picture:
                picture.draft("RGB", (512, 512))
                pictures.append(picture.convert("RGB"))
        return pictures


# --- running -----------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> tuple[AsyncSirayClient, bool]:
    from .client import AsyncSirayClient, PollSchedule

    poll: PollSchedule | None = PollSchedule.fixed(args.poll) if args.poll else None
    try:
        if args.sandbox:
            from . import sandbox

            box = sandbox.shared()
            return (
                AsyncSirayClient(
                    box.api_key, box.base_url, poll=poll or PollSchedule.local(), hooks=False
                ),
                True,
            )
        client = AsyncSirayClient(base_url=args.base_url, poll=poll, hooks=False)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    return client, client.sandbox


def _confirm(plan_text: str, tasks: int, threshold: int) -> bool:
    """Ask on the terminal; refuse (CommandError) when there is none to ask."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise CommandError(
            f"this sweep would send {plan_text}, more than the {threshold} that run without "
            "asking, and there is no terminal to ask: run it again with --yes to send them",
            EXIT_USAGE,
        )
    print(f"Send {plan_text}? [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _cell_line(run: CellRun, files: list[str]) -> str:
    from .cli import terminal_safe

    where = run.cell.describe()
    if run.state == "success":
        shown = f"{files[0]} (+{len(files) - 1} more)" if len(files) > 1 else "".join(files)
        detail = f"{run.task_id}  {shown}".rstrip()
        if run.origin == "earlier":
            detail += "  (done earlier)"
    else:
        detail = run.reason or ""
        if run.task_id:
            detail = f"{run.task_id}  {detail}"
    return terminal_safe(f"#{run.index:<3} {where}: {run.state}  {detail}".rstrip())


def run_sweep_command(args: argparse.Namespace) -> int:
    from .errors import SirayError
    from .session import session_budget
    from .sweep import SweepRun
    from .sweep.resume import family_key, with_family_seed

    for name in ("concurrency", "confirm_above", "cap"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "concurrency" else 0):
            raise CommandError(f"--{name.replace('_', '-')} {value} is out of range", EXIT_USAGE)
    for name in ("timeout", "poll"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise CommandError(f"--{name} {value} must be a positive number of seconds", 2)
    definition = build_definition(args)
    manifest = read_manifest(args.out) if args.out is not None else None
    if manifest is not None and manifest.get("family") != family_key(definition):
        raise CommandError(
            f"{args.out} holds the results of another sweep ({_about(manifest)}); give this "
            "one another --out (the same sweep, or the same with more values, resumes there)",
            EXIT_USAGE,
        )
    store = _store()
    note = ""
    if _seed_was_drawn(args) and definition.seed != -1:
        seed = _manifest_seed(manifest)
        if seed is not None:
            definition = _with_seed(definition, seed)
            note = f"seed {seed}: the one this sweep used in {args.out}"
        else:
            definition, reused = with_family_seed(definition, store)
            if reused:
                note = f"seed {definition.seed}: the one this sweep used before (run history)"
    budget = session_budget()
    if args.confirm_above is not None:
        budget.confirm_above = args.confirm_above
    if args.cap is not None:
        budget.cap = budget.tasks + args.cap
    client, in_sandbox = _client(args)
    priors = (
        manifest_priors(args.out, manifest) if manifest is not None and not args.no_resume else None
    )
    try:
        sweep = SweepRun(
            definition,
            client=client,
            concurrency=args.concurrency,
            store=store if store is not None else False,
            resume=not args.no_resume,
            wait_timeout=args.timeout,
            free=in_sandbox,
            priors=priors,
        )
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    print(
        "sandbox: placeholder images, no key used" if in_sandbox else client.summary,
        file=sys.stderr,
        flush=True,
    )
    print(str(definition), file=sys.stderr, flush=True)
    if note:
        print(note, file=sys.stderr, flush=True)
    plan = sweep.plan()
    print(f"plan: {plan}", file=sys.stderr, flush=True)
    if (
        plan.needs_confirmation
        and not args.yes
        and not _confirm(plan.text(), plan.send, plan.confirm_above)
    ):
        print("nothing sent", file=sys.stderr, flush=True)
        return EXIT_USAGE
    folder = Folder(args.out, sweep, family_key(definition)) if args.out is not None else None
    if folder is not None and manifest is not None:
        _adopt_files(folder, manifest)
    try:
        return _run(sweep, folder, args, trust_env=not in_sandbox)
    except SirayError as exc:
        raise CommandError(str(exc), EXIT_API) from None


def _store() -> Any:
    """The run store cells are recorded in (None: recording is off or impossible)."""
    from .store import StoreError, open_store, recording_enabled

    if not recording_enabled():
        return None

    try:
        return open_store()
    except StoreError as exc:
        print(f"siray-widgets: warning: the sweep is not recorded: {exc}", file=sys.stderr)
        return None


def _about(manifest: dict[str, Any]) -> str:
    """A few words on the sweep a manifest holds: its prompt and axes."""
    from .cli import terminal_safe

    definition = manifest.get("definition") or {}
    base = definition.get("base") or {}
    axes = definition.get("axes") or {}
    specs = [
        a.get("spec") for a in axes.values() if isinstance(a, dict) and a.get("kind") == "prompt"
    ]
    prompt = str(base.get("prompt") or next((s for s in specs if s), "prompt variants"))[:60]
    names = [str(a.get("field") or a.get("kind")) for a in axes.values() if isinstance(a, dict)]
    return terminal_safe(f"{prompt!r} over {', '.join(names) or 'no axis'}")


def _manifest_seed(manifest: dict[str, Any] | None) -> int | None:
    """The shared seed of the folder's earlier run (of the same family: checked before)."""
    from .sweep import SweepDefinition, SweepError

    if manifest is None:
        return None
    try:
        earlier = SweepDefinition.from_json(manifest.get("definition") or {})
    except SweepError:
        return None
    return earlier.seed if earlier.seed != -1 else None


def _adopt_files(folder: Folder, manifest: dict[str, Any]) -> None:
    """Images the folder already holds for cells an earlier run finished."""
    for cell in manifest.get("cells") or []:
        if isinstance(cell, dict) and cell.get("state") == "success" and cell.get("files"):
            names = [n for n in cell["files"] if isinstance(n, str)]
            if names and all((folder.out / n).is_file() for n in names):
                folder.files[str(cell.get("key"))] = names


def _run(sweep: SweepRun, folder: Folder | None, args: argparse.Namespace, trust_env: bool) -> int:
    events: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    sweep.on_change(events.put)
    progress = _progress_bar(len(sweep.cells))
    printed: set[str] = set()
    settled: set[str] = set()
    saved: queue.SimpleQueue[CellRun] = queue.SimpleQueue()

    def finished(run: CellRun) -> None:
        if run.key in printed:
            return
        printed.add(run.key)
        files = folder.files.get(run.key, []) if folder is not None else []
        line = _cell_line(run, files)
        if progress is not None:
            progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    def settle(run: CellRun) -> None:
        """A cell reached a final state: save its images (then print it), or print it."""
        if run.key in settled:
            return
        settled.add(run.key)
        if folder is not None and run.state == "success" and not folder.have_images(run):
            folder.save_images(run, trust_env, saved.put)
        else:
            finished(run)

    for run in sweep.cells:  # done earlier: shown (and saved) first
        if run.state == "success":
            settle(run)
    if folder is not None:
        folder.write_manifest()
    sweep.start(confirm=True)
    interrupts = 0
    if progress is not None:
        progress.start()
    bar = progress.add_task("sweep", total=len(sweep.cells)) if progress is not None else None
    try:
        while True:
            try:
                try:
                    event: dict[str, Any] | None = events.get(timeout=0.2)
                except queue.Empty:
                    event = None
                if event is not None and event["kind"] == "cell":
                    cell = event["cell"]
                    run = sweep.cell(cell["index"])
                    if folder is not None and cell["state"] in ("submitted", "success", "failed"):
                        folder.write_manifest()
                    if cell["state"] in ("success", "failed", "refused", "cancelled"):
                        settle(run)
                while not saved.empty():
                    finished(saved.get())
                if progress is not None and bar is not None:
                    p = sweep.progress
                    progress.update(bar, completed=p.finished, description=_bar_text(p))
                if sweep.done and events.empty() and settled <= printed:
                    break
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts == 1:
                    sweep.cancel()
                    followed = sum(1 for r in sweep.cells if r.state in _FOLLOWED)
                    _say(
                        progress,
                        f"cancelling: nothing more is sent; following the {followed} task(s) "
                        "already created (Ctrl-C again stops following them)",
                    )
                else:
                    sweep.cancel(follow=False)
    finally:
        if progress is not None:
            progress.stop()
    sweep.wait()
    for run in sweep.cells:
        if run.state in ("success", "failed", "refused", "cancelled"):
            settle(run)
    if folder is not None:
        sweep.wait_images(60)
        written = folder.finish(trust_env)
        while not saved.empty():
            finished(saved.get())
        for problem in folder.problems:
            print(f"siray-widgets: warning: {problem}", file=sys.stderr, flush=True)
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr, flush=True)
    summary = sweep.progress
    print(f"{sweep.id}: {summary}", file=sys.stderr, flush=True)
    if sweep.stopped_reason and sweep.state == "stopped":
        print(f"stopped: {sweep.stopped_reason}", file=sys.stderr, flush=True)
    if interrupts:
        return EXIT_INTERRUPTED
    if summary.counts["success"] == summary.total:
        return EXIT_OK
    print(
        "not every cell succeeded: run the same command again to send only those",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_API


def _say(progress: Any, text: str) -> None:
    if progress is not None:
        progress.console.print(text, markup=False, highlight=False)
    else:
        print(text, file=sys.stderr, flush=True)


def _bar_text(progress: Any) -> str:
    counts = progress.counts
    active = counts["submitted"] + counts["running"] + counts["stalled"]
    failed = counts["failed"] + counts["refused"]
    text = f"{active} running"
    if failed:
        text += f", {failed} failed"
    return text


def _progress_bar(total: int) -> Any:
    """A rich progress bar on stderr, when stderr is a terminal (None otherwise)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True, highlight=False),
    )
