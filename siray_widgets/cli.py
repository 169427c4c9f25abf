"""The ``siray-widgets`` command line: ``generate``, ``sandbox``, ``lab`` and ``proxy``.

Errors print one line (no traceback) and exit non-zero: 2 for usage and validation, 1 for
API, transport and file problems. Heavy modules load only inside the command that needs them,
so ``siray-widgets --help`` is quick.

Adding a subcommand: write a function ``add_parser(subparsers)`` that adds one parser and
sets ``run`` (``args -> exit code``) as its default, then list it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from .sandbox.settings import DEFAULT_DURATION  # light: no server or Pillow imports

if TYPE_CHECKING:
    import httpx

    from .client import RunObserver, SirayClient
    from .schema import AnyRequest
    from .task import Task

PROG = "siray-widgets"
#: Exit codes.
EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SANDBOX_LINE = "sandbox: placeholder images, no key used"
#: Environment variable with the one bearer key ``siray-widgets sandbox`` accepts.
SANDBOX_KEY_ENV = "SIRAY_SANDBOX_KEY"

#: "module:function" of each subcommand's ``add_parser(subparsers)``, in --help order.
SUBCOMMANDS: tuple[str, ...] = (
    "siray_widgets.cli:add_generate_parser",
    "siray_widgets.cli_sweep:add_parser",
    "siray_widgets.cli_models:add_parser",
    "siray_widgets.cli:add_sandbox_parser",
    "siray_widgets.lab:add_parser",
    "siray_widgets.cli_history:add_parser",
    "siray_widgets.cli_proxy:add_parser",
)

Subparsers = argparse._SubParsersAction  # the type argparse gives add_subparsers' result


class CommandError(Exception):
    """A failure to report as one line, with the exit code to use."""

    def __init__(self, message: str, exit_code: int = EXIT_API) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see --help)\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# C0 and C1 controls, DEL, and the bidirectional overrides: a terminal obeys them (OSC 52
# writes the clipboard, others set the title, clear the screen, reorder what is shown).
_TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character written out (``\\x1b``), so that a server's
    text printed by the command cannot command the terminal."""
    return _TERMINAL_CONTROLS.sub(lambda m: repr(m.group())[1:-1], str(text))


def _fail(message: str) -> None:
    print(f"{PROG}: error: {terminal_safe(_one_line(message))}", file=sys.stderr, flush=True)


def port_number(text: str) -> int:
    """argparse type of a TCP port to listen on: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: a port is 0..65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="The Siray.ai niji 7 image API from the shell, with an offline sandbox.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for target in SUBCOMMANDS:
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``siray-widgets`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except CommandError as exc:
        _fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED


# --- generate ------------------------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_generate_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """``generate PROMPT [--FIELD VALUE ...]``; one flag per schema field."""
    from .schema import FIELDS

    parser = subparsers.add_parser(
        "generate",
        help="generate images from a prompt (Midjourney suffixes understood)",
        description=(
            "Generate four images. The prompt may end in a Midjourney suffix "
            "('a fox in the snow --ar 16:9 --s 250'); flags override it. Without "
            "SIRAY_API_KEY the in-process sandbox answers (placeholder images, no key used)."
        ),
    )
    parser.add_argument("prompt", help="what to draw, optionally ending in a Midjourney suffix")
    fields = parser.add_argument_group("request fields (override the suffix)")
    for field in FIELDS:
        if field.name in ("prompt", "model"):  # --model is added with --param below
            continue
        help_text = f"{field.description} Accepts {field.allowed()}."
        dest = f"field_{field.name}"
        if field.type == "boolean":
            fields.add_argument(
                _flag(field.name), dest=dest, action=argparse.BooleanOptionalAction, help=help_text
            )
        elif field.type == "integer":
            fields.add_argument(_flag(field.name), dest=dest, type=int, metavar="N", help=help_text)
        else:
            metavar = "{" + ",".join(field.enum) + "}" if field.enum else "TEXT"
            fields.add_argument(_flag(field.name), dest=dest, metavar=metavar, help=help_text)
    from .cli_models import add_model_arguments

    add_model_arguments(parser)  # --model NAME, --param NAME=VALUE
    parser.add_argument(
        "--download", type=Path, metavar="DIR", help="save the images into DIR (created if needed)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="give up waiting after this long (default 600; the task keeps running)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        metavar="SECONDS",
        help="ask for the status every SECONDS (default: Siray's 3-5 s; faster in the sandbox)",
    )
    parser.add_argument(
        "--base-url", metavar="URL", help="API base URL (default: SIRAY_BASE_URL or Siray's)"
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="use the in-process sandbox even if SIRAY_API_KEY is set",
    )
    parser.set_defaults(run=run_generate)


def build_request(args: argparse.Namespace) -> AnyRequest:
    """The prompt's suffix, then the flags on top; raises CommandError(exit 2) if invalid."""
    from .cli_models import build_model_request, wants_model_options
    from .errors import SuffixError, ValidationError
    from .schema import FIELDS

    overrides = {
        f.name: getattr(args, f"field_{f.name}")
        for f in FIELDS
        if getattr(args, f"field_{f.name}", None) is not None
    }
    if wants_model_options(args):
        return build_model_request(args, overrides)  # --model / --param
    try:
        # Imported here so the other commands work even while suffix parsing is broken.
        from .suffix import parse_prompt

        request = parse_prompt(args.prompt)
        return request.replace(**overrides) if overrides else request
    except (ValidationError, SuffixError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _client(args: argparse.Namespace) -> tuple[SirayClient, bool]:
    """The client to use, and whether it talks to the in-process sandbox."""
    from .client import SirayClient

    try:
        if args.sandbox:
            from . import sandbox

            box = sandbox.shared()
            return SirayClient(api_key=box.api_key, base_url=box.base_url), True
        # --timeout bounds the create request too (a server can drip its answer for ever).
        client = SirayClient(base_url=args.base_url, deadline=min(args.timeout, 60.0))
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    return client, client.sandbox


def run_generate(args: argparse.Namespace) -> int:
    from .errors import SirayError

    if args.poll is not None and not args.poll > 0:
        raise CommandError(f"--poll {args.poll} must be a positive number of seconds", EXIT_USAGE)
    if not args.timeout > 0:
        raise CommandError(f"--timeout {args.timeout} must be a positive number", EXIT_USAGE)
    request = build_request(args)
    client, in_sandbox = _client(args)
    from .cli_history import record, report_kept

    recorder = record(request, api_base_url=client.base_url)  # never fails the command
    try:
        line = SANDBOX_LINE if in_sandbox else terminal_safe(client.summary)
        print(line, file=sys.stderr, flush=True)
        print(request.to_json(), flush=True)
        try:
            task = _submit_and_wait(client, request, args, in_sandbox, recorder)
        except BaseException as exc:
            recorder.finished(exc)
            raise
        try:
            for url in task.outputs:
                print(terminal_safe(url), flush=True)
            if args.download is not None:
                for path in download(
                    task, args.download, trust_env=not in_sandbox, request=request
                ):
                    print(f"saved {path}", flush=True)
        finally:
            recorder.finished(task)  # after --download: the history fetches the images next
        report_kept(recorder)
    except SirayError as exc:
        raise CommandError(str(exc)) from None
    finally:
        client.close()
    return EXIT_OK


def _submit_and_wait(
    client: SirayClient,
    request: AnyRequest,
    args: argparse.Namespace,
    in_sandbox: bool,
    observer: RunObserver,
) -> Task:
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from .client import PollSchedule
    from .errors import WaitTimeoutError

    started = time.monotonic()
    task_id = client.submit(request)
    observer.submitted(task_id)
    print(f"task id: {terminal_safe(task_id)}", flush=True)
    from .cli_models import cost_line

    print(cost_line(request), file=sys.stderr, flush=True)
    if args.poll is not None:
        poll: PollSchedule | None = PollSchedule.fixed(args.poll)
    elif in_sandbox:
        # Siray asks for 3-5 s between polls; the local sandbox can take more, so that a
        # person sees the bar move through a generation that lasts a few seconds.
        poll = PollSchedule(initial=0.2, maximum=0.5, after_change=0.2)
    else:
        poll = None
    # The bar goes to stderr, so stdout holds only the request, the id and the URLs.
    progress = Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True, highlight=False),
    )
    bar = progress.add_task("SUBMITTED", total=100)

    def on_update(task: Task) -> None:
        observer.reading(task)
        progress.update(bar, completed=task.progress, description=task.status.value)

    # --timeout counts from the start, the create request included.
    left = max(0.1, args.timeout - (time.monotonic() - started))
    with progress:
        try:
            return client.wait(task_id, on_update=on_update, timeout=left, poll=poll)
        except WaitTimeoutError as exc:  # say the time the user gave
            raise WaitTimeoutError(task_id, args.timeout, exc.last_status) from None


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def file_stem(task_id: str) -> str:
    """A file name made from a task id the server chose: only ``A-Za-z0-9_.-``, no leading
    dot, at most 100 characters (``../x`` becomes ``_x``)."""
    stem = _UNSAFE_NAME.sub("_", task_id).lstrip(".")[:100]
    return stem or "task"


def download(
    task: Task, directory: Path, *, trust_env: bool = True, request: AnyRequest | None = None
) -> list[Path]:
    """Save every output of ``task`` into ``directory`` as ``<task id>-<n><ext>``.

    With ``request``, each image carries its parameters (:func:`siray_widgets.metadata.embed`).

    The task id comes from the server, so it is reduced to safe characters (:func:`file_stem`)
    and every path is checked to resolve inside ``directory``. Output URLs are public (as the
    API's CDN links are): no ``Authorization`` header is sent, so the key never travels to
    another host. Redirects are followed (the live service's outputs are redirects). Each
    image is read within :data:`DOWNLOAD_DEADLINE` seconds and
    :data:`~siray_widgets._download.MAX_IMAGE_BYTES`, and saved only if its bytes are a
    raster image (PNG, JPEG, GIF or WebP), with the extension of what it really is.
    """
    import asyncio

    import httpx

    from ._download import DownloadError

    try:
        directory.mkdir(parents=True, exist_ok=True)
        root = directory.resolve()
        stem = file_stem(task.task_id)
        saved: list[Path] = []
        for number, url in enumerate(task.outputs, start=1):
            path = directory / f"{stem}-{number}{_extension(url, None)}"
            _check_inside(path, root, directory)
            data, kind = asyncio.run(_fetch_image(url, trust_env))
            path = path.with_suffix(_image_suffix(kind))
            _check_inside(path, root, directory)
            path.write_bytes(_stamped(data, request, task, number))
            saved.append(path)
        return saved
    except httpx.HTTPStatusError as exc:
        raise CommandError(
            f"downloading {exc.request.url} failed: HTTP {exc.response.status_code}"
        ) from None
    except httpx.HTTPError as exc:
        raise CommandError(f"downloading failed: {exc}") from None
    except DownloadError as exc:
        raise CommandError(f"downloading failed: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot save into {directory}: {exc.strerror or exc}") from None


#: Seconds one image may take to download, however slowly the server sends it.
DOWNLOAD_DEADLINE = 120.0


async def _fetch_image(url: str, trust_env: bool) -> tuple[bytes, str]:
    """One image's bytes and real type, within the deadline and the size cap."""
    import asyncio

    import httpx

    from ._download import MAX_REDIRECTS, DownloadError, aread_capped, checked_image

    async def get() -> tuple[bytes, str]:
        async with (
            httpx.AsyncClient(
                timeout=60.0,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                trust_env=trust_env,
            ) as http,
            http.stream("GET", url) as response,
        ):
            response.raise_for_status()
            data = await aread_capped(response)
        return data, checked_image(url, data)

    try:
        return await asyncio.wait_for(get(), DOWNLOAD_DEADLINE)
    except asyncio.TimeoutError:
        raise DownloadError(
            f"{url[:100]} was not downloaded within {DOWNLOAD_DEADLINE:g} s"
        ) from None


def _check_inside(path: Path, root: Path, directory: Path) -> None:
    if path.resolve().parent != root:  # a symlink planted in the folder, say
        raise CommandError(f"refusing to write {path}: it leads outside {directory}")


def _image_suffix(kind: str) -> str:
    from ._download import extension

    return extension(kind)


def _stamped(data: bytes, request: AnyRequest | None, task: Task, number: int) -> bytes:
    """``data`` with its parameters embedded (unchanged without a request or if not an image)."""
    from .schema import ImageRequest

    if not isinstance(request, ImageRequest):  # other models' files are saved as they came
        return data
    from .metadata import ImageParams, MetadataError, embed

    try:
        return embed(data, ImageParams(request, task.task_id, None, number))
    except MetadataError:
        return data  # not an image we know how to stamp: saved as it came


def _extension(url: str, response: httpx.Response | None) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".webp", ".gif"):
        return suffix
    if response is None:
        return ".png"
    content_type = str(response.headers.get("content-type", "")).split(";")[0].strip()
    return {"image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}.get(
        content_type, ".png"
    )


# --- sandbox -------------------------------------------------------------------------------


def add_sandbox_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """``sandbox``: run the offline sandbox server in the foreground."""
    parser = subparsers.add_parser(
        "sandbox",
        help="run the offline sandbox server (placeholder images, no key, no network)",
        description=(
            "Run a local server that speaks the Siray image API and returns placeholder images. "
            "Point the client at it with SIRAY_BASE_URL. Fault options make it misbehave on "
            "purpose, for teaching and testing error handling. "
            f"Environment: {SANDBOX_KEY_ENV}=KEY makes the server accept only that bearer key "
            "(the preferred way to set one: unlike --api-key it is not in the process list)."
        ),
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    net.add_argument(
        "--port", type=port_number, default=8765, help="port (default 8765; 0 = any free)"
    )
    net.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding an interface other than loopback (a workshop on a LAN)",
    )
    net.add_argument(
        "--api-key",
        metavar="KEY",
        help=(
            "accept only this bearer key (default: any non-empty key). Command-line arguments "
            "are visible to other users of this machine (ps, /proc); prefer setting "
            f"{SANDBOX_KEY_ENV}"
        ),
    )
    gen = parser.add_argument_group("generation and faults")
    gen.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help=f"from submit to SUCCESS (default {DEFAULT_DURATION:g})",
    )
    gen.add_argument(
        "--latency", type=float, default=0.0, metavar="SECONDS", help="delay of every API answer"
    )
    shares = (
        ("--fail-rate", "failure_share", "share of tasks that end in FAILURE"),
        ("--rate-limit-rate", "rate_limit_share", "share of requests answered 429"),
        ("--server-error-rate", "server_error_share", "share of requests answered 500/503"),
        ("--malformed-rate", "malformed_share", "share of 200 answers with a malformed body"),
        ("--stall-rate", "stall_share", "share of tasks that stall (with --stall-at; default 1)"),
    )
    for flag, dest, help_text in shares:
        gen.add_argument(flag, dest=dest, type=float, metavar="SHARE", help=f"{help_text}, 0..1")
    gen.add_argument(
        "--retry-after", type=int, default=1, metavar="SECONDS", help="Retry-After of 429 and 503"
    )
    gen.add_argument(
        "--stall-at", type=int, metavar="PERCENT", help="stalling tasks stop at this progress"
    )
    gen.add_argument("--seed", type=int, help="seed of the fault dice (reproducible faults)")
    gen.add_argument(
        "--quirks",
        choices=("none", "live"),
        default="none",
        help=(
            "'live': behave as the live service does beyond its documentation (SUCCESS before "
            "outputs, redirect output URLs, a URL in fail_reason, flat status answers, 503 "
            "model_not_found); default 'none'"
        ),
    )
    parser.add_argument(
        "--registry",
        type=Path,
        metavar="FILE",
        help=(
            'a saved model registry ({"data": [...]}) to serve at /api/model-verse/models and '
            "to validate other models' requests with (default: the cached one, or niji 7's)"
        ),
    )
    parser.set_defaults(run=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    from . import sandbox

    api_key: str | None = args.api_key
    key_hint = "sandbox"
    if api_key is not None:
        key_hint = "<the key given with --api-key>"
    elif os.environ.get(SANDBOX_KEY_ENV, "").strip():
        api_key = os.environ[SANDBOX_KEY_ENV].strip()
        key_hint = f'"${SANDBOX_KEY_ENV}"'
    config: dict[str, Any] = {
        "duration": args.duration,
        "latency": args.latency,
        "retry_after": args.retry_after,
        "stall_at": args.stall_at,
        "seed": args.seed,
        "api_key": api_key,
        "allow_remote": args.allow_remote,
        "quirks": args.quirks,
    }
    for dest in (
        "failure_share",
        "rate_limit_share",
        "server_error_share",
        "malformed_share",
        "stall_share",
    ):
        if getattr(args, dest) is not None:
            config[dest] = getattr(args, dest)
    if args.registry is not None:
        from .cli_models import serve_registry_file

        serve_registry_file(args.registry)
    try:
        handle = sandbox.start(host=args.host, port=args.port, **config)
    except (ValueError, OverflowError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    lines = [
        f"Siray sandbox on {handle.base_url}: placeholder images, no real key needed.",
        "Point the client at it:",
        f"  export SIRAY_BASE_URL={handle.base_url}",
        f"  export SIRAY_API_KEY={key_hint}",
        f"OpenAPI document: {handle.base_url}/openapi.json",
        f"Model registry: {handle.base_url}/api/model-verse/models (SIRAY_GATEWAY_URL)",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while not stop.wait(0.5) and handle.running:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        handle.stop()
    print("sandbox stopped", file=sys.stderr, flush=True)
    return EXIT_OK


if __name__ == "__main__":
    # ``python -m siray_widgets.cli``: run the package's copy of this module, whose
    # CommandError is the one the subcommands (imported from the package) raise.
    from siray_widgets.cli import main as package_main

    sys.exit(package_main())
