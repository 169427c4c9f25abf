"""``siray-widgets history``: list, show, export, html, purge and retry recorded runs, and
the spend ledger (``history ledger``: tasks and estimated cost per day and model).

Also :func:`record`, the command line's way to record a run (``generate`` uses it), which
never fails the command: without a usable store it hands back an observer that does nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli import EXIT_OK, EXIT_USAGE, CommandError, Subparsers, terminal_safe

if TYPE_CHECKING:
    from .history import History
    from .schema import AnyRequest
    from .store import NullRecorder, Recorder, Run

_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


# --- recording a command's run -------------------------------------------------------------


def record(
    request: AnyRequest, origin: str = "cli", api_base_url: str | None = None
) -> Recorder | NullRecorder:
    """Start recording a command's run to the API at ``api_base_url`` (a do-nothing stand-in
    if that is not possible; a warning on stderr says why)."""
    from .store import NullRecorder, start_recording

    recorder = start_recording(
        request,
        origin=origin,
        source=f"siray-widgets {origin}",
        warn=False,
        api_base_url=api_base_url,
    )
    if isinstance(recorder, NullRecorder) and recorder.problem:
        print(
            f"siray-widgets: warning: the run is not recorded: {recorder.problem}", file=sys.stderr
        )
    return recorder


def report_kept(recorder: Recorder | NullRecorder, timeout: float = 120.0) -> None:
    """Wait for the run's images to be kept in the history, and say how that went (stderr)."""
    import concurrent.futures

    from .store import NullRecorder

    if isinstance(recorder, NullRecorder):
        return  # said when recording started
    if recorder.problem is not None:
        print(f"siray-widgets: warning: history: {recorder.problem}", file=sys.stderr)
        return
    try:
        run = recorder.wait_images(timeout)
    except (concurrent.futures.TimeoutError, KeyError):
        print("history: the images are still downloading in the background", file=sys.stderr)
        return
    if run.images_state == "done":
        folder = Path(run.files[0]).parent
        print(f"history: kept {len(run.files)} image(s) in {folder}", file=sys.stderr)
    elif run.images_state in ("failed", "partial"):
        print(f"history: {run.images_error} (siray-widgets history retry)", file=sys.stderr)


# --- the subcommand ------------------------------------------------------------------------


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "history",
        help="list, show, export and tidy the recorded runs",
        description=(
            "Every run from the widget, scripts and this command is recorded in the data folder "
            "(SIRAY_WIDGETS_HOME, else the per-user one). These commands read and tidy it."
        ),
    )
    parser.add_argument(
        "--store", metavar="DIR", type=Path, help="a project-local history folder instead"
    )
    commands = parser.add_subparsers(title="history commands", metavar="COMMAND")

    listing = commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("text", nargs="?", default="", help="words to look for")
    _filters(listing)
    listing.add_argument("--json", action="store_true", help="a JSON array of compact rows")
    listing.set_defaults(run=_list)

    show = commands.add_parser("show", help="everything about one run")
    show.add_argument("task_id", metavar="TASK_ID")
    show.add_argument("--json", action="store_true", help="the run as JSON")
    show.set_defaults(run=_show)

    export = commands.add_parser("export", help="images plus manifest.json and manifest.csv")
    export.add_argument("folder", metavar="DIR", type=Path)
    _filters(export)
    export.set_defaults(run=_export)

    page = commands.add_parser("html", help="a static, searchable HTML page of the runs")
    page.add_argument("file", metavar="FILE", type=Path)
    _filters(page)
    page.set_defaults(run=_html)

    purge = commands.add_parser(
        "purge",
        help="forget runs and tidy the folder",
        description=(
            "Always: applies the size bounds, deletes files no run refers to and compacts the "
            "database. Starred runs are kept unless --include-starred."
        ),
    )
    purge.add_argument("--older-than", metavar="AGE", help="forget runs older than AGE (30d, 12h)")
    purge.add_argument(
        "--failed", action="store_true", help="forget failed, cancelled and interrupted runs"
    )
    purge.add_argument("--all", dest="everything", action="store_true", help="forget every run")
    purge.add_argument("--include-starred", action="store_true", help="starred runs too")
    purge.add_argument(
        "--max-size", metavar="SIZE", help="keep at most SIZE of images (2G; 0 = no bound)"
    )
    purge.add_argument(
        "--max-runs", metavar="N", type=int, help="keep at most N runs (0 = no bound)"
    )
    purge.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    purge.set_defaults(run=_purge)

    retry = commands.add_parser("retry", help="download again the images a run could not keep")
    _filters(retry)
    retry.set_defaults(run=_retry)

    ledger = commands.add_parser(
        "ledger",
        help="tasks sent and their estimated cost, per day and model",
        description=(
            "The spend ledger: every task sent (widget, scripts, this command, sweeps), counted "
            "per day and model when it is created, with the cost estimated from Siray's price "
            "list (siray-widgets models). Tasks whose price was unknown are counted apart."
        ),
    )
    ledger.add_argument("--since", metavar="DAY", help="from this day or age (2026-11-01, 7d)")
    ledger.add_argument("--until", metavar="DAY", help="up to this day (inclusive)")
    ledger.add_argument("--model", metavar="NAME", help="one model only")
    ledger.add_argument("--json", action="store_true", help="rows and the total as JSON")
    ledger.set_defaults(run=_ledger)
    parser.set_defaults(run=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--search", "-s", default="", metavar="TEXT", help="words to look for")
    group.add_argument(
        "--status",
        action="append",
        metavar="STATE",
        help="success, failure, error, failed, cancelled, interrupted, stalled, active",
    )
    group.add_argument("--starred", action="store_true", default=None, help="starred runs only")
    group.add_argument("--tag", action="append", default=[], metavar="TAG", help="with this tag")
    group.add_argument(
        "--since", metavar="WHEN", help="from this date/time or age (2026-11-01, 7d)"
    )
    group.add_argument("--until", metavar="WHEN", help="up to this date/time (inclusive)")
    group.add_argument("--origin", choices=("widget", "cli", "script", "sweep"))
    group.add_argument("--model", metavar="NAME")
    group.add_argument("--min-rating", type=int, metavar="N", choices=range(0, 6))
    group.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a request field: stylize=250, aspect_ratio=16:9|3:2 (any of), chaos=10..50 (range)",
    )
    group.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    group.add_argument("--oldest-first", action="store_true")


def _where(items: list[str]) -> dict[str, Any]:
    from .schema import FIELDS_BY_NAME

    fields: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(f"--where {item!r}: write FIELD=VALUE", EXIT_USAGE)
        spec = FIELDS_BY_NAME.get(name)
        if ".." in value and (spec is None or spec.type == "integer"):
            low, _, high = value.partition("..")
            try:
                fields[name] = (int(low) if low else None, int(high) if high else None)
            except ValueError:
                raise CommandError(
                    f"--where {item!r}: a range is LOW..HIGH, in numbers", EXIT_USAGE
                ) from None
        elif "|" in value:
            fields[name] = value.split("|")
        else:
            fields[name] = value
    return fields


def _history(args: argparse.Namespace) -> History:
    from .history import History
    from .store import StoreError

    try:
        return History(args.store)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def _query_kwargs(args: argparse.Namespace, text: str = "") -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "status": args.status,
        "starred": args.starred,
        "tag": args.tag or None,
        "since": args.since,
        "until": args.until,
        "where": _where(args.where),
        "limit": args.limit,
        "order": "oldest" if args.oldest_first else "newest",
    }
    for name in ("origin", "model", "min_rating"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    words = " ".join(part for part in (text, args.search) if part)
    return {"text": words, **kwargs}


def _select(args: argparse.Namespace, history: History, text: str = "") -> list[Run]:
    from .errors import ValidationError
    from .history import build_query

    try:
        query = build_query(**_query_kwargs(args, text))
        return history.store.runs(query)
    except (ValueError, TypeError, ValidationError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _list(args: argparse.Namespace) -> int:
    from .errors import ValidationError
    from .history import build_query

    history = _history(args)
    if args.json:
        try:
            page = history.store.page(build_query(**_query_kwargs(args, args.text)))
        except (ValueError, TypeError, ValidationError) as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        rows = [
            {**row, "thumbs": [str(history.store.path(t)) if t else None for t in row["thumbs"]]}
            for row in page.rows
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    runs = _select(args, history, args.text)
    for run in runs:
        print(_line(run))
    total = history.count()
    print(f"{len(runs)} of {total} run(s) in {history.home}", file=sys.stderr)
    return EXIT_OK


def _line(run: Run) -> str:
    when = run.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    star = "*" if run.starred else "-"
    prompt = " ".join(run.prompt.split())
    if len(prompt) > 60:
        prompt = prompt[:59] + "…"
    ratio = str(run.params.get("aspect_ratio", ""))
    return f"{when}  {run.state:<11} {run.task_id or '-':<24} {star} {ratio:<5} {prompt}"


def _show(args: argparse.Namespace) -> int:
    history = _history(args)
    try:
        run = history.get(args.task_id)
    except KeyError as exc:
        raise CommandError(str(exc.args[0])) from None
    if args.json:
        print(json.dumps(run.to_json(), indent=2, ensure_ascii=False))
        return EXIT_OK
    lines = [
        f"task id     {run.task_id or '(none)'}",
        f"state       {run.state}" + (f" (API status {run.status})" if run.status else ""),
        f"model       {run.model}",
        f"origin      {run.origin}" + (f" ({run.source})" if run.source else ""),
        f"created     {run.created_at.astimezone().isoformat(timespec='seconds')}",
    ]
    if run.finished_at:
        lines.append(f"finished    {run.finished_at.astimezone().isoformat(timespec='seconds')}")
    timings = run.timings
    if timings["total"] is not None:
        lines.append(
            "timings     "
            + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if v is not None)
        )
    if run.seed_used is not None:
        lines.append(f"seed used   {run.seed_used}")
    if run.fail_reason:
        lines.append(f"fail reason {run.fail_reason}")
    if run.error:
        lines.append(f"error       {run.error}")
    marks = [f"rating {run.rating}/5"] if run.rating else []
    if run.starred:
        marks.insert(0, "starred")
    if run.tags:
        marks.append("tags: " + ", ".join(run.tags))
    if marks:
        lines.append("marks       " + "; ".join(marks))
    if run.note:
        lines.append(f"note        {run.note}")
    lines.append("request:")
    lines.append(run.request_json)
    lines.append(
        f"images      {run.images_state}" + (f": {run.images_error}" if run.images_error else "")
    )
    for image in run.images:
        lines.append(
            f"  {image.index}. {image.path or image.url}"
            + (f"  ({image.error})" if image.error else "")
        )
    lines.append("events:")
    for event in run.events:
        status = f" {event.status}" if event.status else ""
        lines.append(
            f"  {event.at.astimezone().strftime('%H:%M:%S.%f')[:-3]}  {event.state}{status} "
            f"{event.progress}%"
        )
    print("\n".join(lines))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    history = _history(args)
    runs = _select(args, history)
    try:
        result = history.export(runs, args.folder)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{result} (manifest.json, manifest.csv)")
    return EXIT_OK


def _html(args: argparse.Namespace) -> int:
    history = _history(args)
    runs = _select(args, history)
    try:
        path = history.html(args.file, runs)
    except OSError as exc:
        raise CommandError(f"cannot write {args.file}: {exc.strerror or exc}") from None
    print(f"wrote {path} ({len(runs)} run(s), {path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def parse_size(text: str) -> int | None:
    """``2G``, ``500M``, ``1.5g``, ``1000000`` -> bytes (decimal units); ``0`` -> None."""
    cleaned = text.strip().lower().removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in _SIZE_UNITS and not cleaned[-1:].isdigit() else ""
    number = cleaned[: -len(unit)] if unit else cleaned
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except ValueError:
        raise CommandError(
            f"--max-size {text!r}: write a size such as 500M or 2G", EXIT_USAGE
        ) from None
    if value < 0:
        raise CommandError(f"--max-size {text!r} must not be negative", EXIT_USAGE)
    return int(value) or None


def _age(text: str | None) -> float | None:
    if text is None:
        return None
    from .store.query import _RELATIVE, _UNITS

    match = _RELATIVE.match(text)
    if not match:
        raise CommandError(
            f"--older-than {text!r}: write an age such as 30d, 12h or 2w", EXIT_USAGE
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def _purge(args: argparse.Namespace) -> int:
    history = _history(args)
    older = _age(args.older_than)
    if args.max_size is not None or args.max_runs is not None:
        limits = history.store.limits()
        max_bytes = parse_size(args.max_size) if args.max_size is not None else limits.max_bytes
        max_runs = (args.max_runs or None) if args.max_runs is not None else limits.max_runs
        if args.dry_run:
            runs = max_runs or "any number of"
            print(f"would set the bounds to {_bound(max_bytes)} and {runs} runs")
        else:
            history.store.set_limits(max_bytes, max_runs, apply=False)  # purge applies them
    report = history.purge(
        older_than=older,
        failed=args.failed,
        everything=args.everything,
        include_starred=args.include_starred,
        dry_run=args.dry_run,
    )
    size = history.store.size()
    limits = history.store.limits()
    print(report)
    print(
        f"{size['runs']} run(s), {size['image_bytes'] / 1e6:.1f} MB of images, "
        f"{size['database_bytes'] / 1e6:.1f} MB of database in {history.home} "
        f"(bounds: {_bound(limits.max_bytes)}, {limits.max_runs or 'any number of'} runs)"
    )
    return EXIT_OK


def _bound(max_bytes: int | None) -> str:
    return "no size bound" if max_bytes is None else f"{max_bytes / 1e9:g} GB of images"


def _retry(args: argparse.Namespace) -> int:
    from .errors import ValidationError
    from .history import build_query

    history = _history(args)
    try:
        query = build_query(**_query_kwargs(args))
    except (ValueError, TypeError, ValidationError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    futures = history.store.retry_images(query)
    failed = 0
    for future in futures:
        run = future.result()
        ok = run.images_state == "done"
        failed += not ok
        detail = "kept" if ok else run.images_error
        print(f"{run.task_id}: {detail}")
    print(f"{len(futures) - failed} of {len(futures)} run(s) now have every image kept")
    return EXIT_OK if not failed else 1


def _ledger_day(text: str | None) -> str | None:
    """A --since/--until value as a day (``YYYY-MM-DD``): a date, ``today``, or an age."""
    import datetime as dt

    from .store import parse_when

    if text is None:
        return None
    try:
        when = parse_when(text)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"{text!r}: {exc}", EXIT_USAGE) from None
    assert when is not None
    return dt.date.fromtimestamp(when).isoformat()


def _money(cost: float, priced: int) -> str:
    from decimal import Decimal

    from .registry import format_money

    if not priced:
        return "price unknown"
    return format_money(Decimal(f"{cost:.6f}").normalize())  # float sums: 0.15000000000000002


def _ledger(args: argparse.Namespace) -> int:
    history = _history(args)
    since, until = _ledger_day(args.since), _ledger_day(args.until)
    try:
        rows = history.store.ledger.rows(since, until, args.model)
        total = history.store.ledger.total(since, until, args.model)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.json:
        document = {
            "rows": [
                {**row.to_json(), "cost_text": _money(row.cost, row.priced_tasks)} for row in rows
            ],
            "total": {**total.to_json(), "cost_text": _money(total.cost, total.priced_tasks)},
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EXIT_OK
    table = [("DAY", "MODEL", "TASKS", "ESTIMATED")]
    for row in [*rows, total]:
        cost = _money(row.cost, row.priced_tasks)
        if row.priced_tasks and row.unpriced_tasks:
            cost += f" (+{row.unpriced_tasks} without a price)"
        day = "total" if row is total else row.day
        model = "" if row is total else terminal_safe(row.model)
        table.append((day, model, str(row.tasks), cost))
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    for day, model, tasks, cost in table:
        print(f"{day:<{widths[0]}}  {model:<{widths[1]}}  {tasks:>{widths[2]}}  {cost}".rstrip())
    print(f"spend ledger of {history.home}", file=sys.stderr)
    return EXIT_OK
