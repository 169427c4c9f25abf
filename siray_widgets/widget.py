"""``ImagineWidget``: the niji 7 image API as one Jupyter widget.

Every create-task parameter is a control bound to a trait, the exact request JSON is shown as
it changes, and Generate runs tasks in the background while the kernel stays free.

The contract between this module, the front end in ``js/`` and the browser tests (Python API,
synced traits, messages both ways, DOM roles, the static snapshot) is written down in
``docs/widget-contract.md``; change both together.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anywidget
import traitlets

from ._widget_snapshot import snapshot_html, snapshot_text, thumbnail
from ._widget_snippets import is_local_url, is_safe_image_url, snippets
from ._widget_tasks import (
    BackgroundLoop,
    Generation,
    describe_error,
    fetch_images,
    key_problem,
)
from .config import (
    API_KEY_ENV,
    BASE_URL_ENV,
    Secret,
    check_base_url,
    redact,
    without_userinfo,
)
from .errors import SirayError, TaskFailedError, ValidationError
from .schema import FIELD_NAMES, FIELDS_BY_NAME, TASK_STATUSES, ImageRequest, schema_json
from .session import counted_submit
from .suffix import parse_suffix
from .task import Task

if TYPE_CHECKING:  # the client (httpx, stamina) loads on the first Generate, off the loop
    from .client import AsyncSirayClient, PollSchedule
    from .sweep.runner import SweepRun

__all__ = ["Generation", "ImagineWidget"]

_STATIC = Path(__file__).parent / "static"

#: Something worth drawing, so that Generate works the moment the widget appears.
DEFAULT_PROMPT = "a paper lantern festival on a misty river at dusk, soft watercolor light"

#: How many finished runs the ``tasks`` trait keeps (it is saved with the notebook).
MAX_RUNS = 12

#: Traits the front end may write; everything else it sends is dropped.
_WRITABLE: frozenset[str] = frozenset(FIELD_NAMES)
_ACCEPTED_KWARGS: frozenset[str] = frozenset((*_WRITABLE, "api_key"))

#: How the task panel names each status (NOT_START reads like a typo as "not start").
STATUS_LABELS: dict[str, str] = {
    "NOT_START": "accepted",
    "SUBMITTED": "submitted",
    "QUEUED": "queued",
    "IN_PROGRESS": "in progress",
    "SUCCESS": "success",
    "FAILURE": "failed",
}
#: Display ids of the static snapshots kept per widget (each ``display(w)`` adds one).
MAX_SNAPSHOTS = 20

G = TypeVar("G")
S = TypeVar("S")

FinishCallback = Callable[[Generation], object]


class _Locked(traitlets.TraitType[G, S]):
    """A trait set under its widget's lock (a user's ``w.chaos = 5`` on the main thread).

    traitlets holds notifications object-wide, across threads: a write made while another
    thread is in ``hold_trait_notifications`` (a front-end update, a run's progress) would
    join that hold, and be rolled back with it if the hold fails.
    """

    def set(self, obj: Any, value: Any) -> None:
        with obj.__dict__.get("_lock") or nullcontext():
            super().set(obj, value)


class _FieldTrait(_Locked[G, S]):
    """A trait whose rule, default and help text come from the schema field of its name."""

    def __init__(self, name: str, default: Any = None) -> None:
        self.field = FIELDS_BY_NAME[name]
        super().__init__(
            default_value=self.field.default if default is None else default,
            help=self.field.description,
        )
        self.info_text = self.field.allowed()

    def validate(self, obj: Any, value: Any) -> G:
        try:
            return self.field.validate(value)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise traitlets.TraitError(str(exc)) from None


class _WidgetRequest(ImageRequest):
    """``w.request``: an ImageRequest whose assignments set the widget's traits."""

    __slots__ = ("_widget",)

    _widget: ImagineWidget

    def __setattr__(self, name: str, value: Any) -> None:
        # Validates (raising the schema's ValidationError, as any ImageRequest does), then
        # moves the trait; the trait's observer writes the same value back here.
        super().__setattr__(name, value)
        widget = getattr(self, "_widget", None)  # unset while ImageRequest.__init__ runs
        if widget is not None:
            setattr(widget, name, getattr(self, name))


class ImagineWidget(anywidget.AnyWidget):
    """The niji 7 image API as one widget: controls, live request JSON, tasks and images.

    >>> w = ImagineWidget(prompt="a fox in the snow", aspect_ratio="16:9")  # doctest: +SKIP
    >>> w  # doctest: +SKIP
    >>> task = await w.generate()  # doctest: +SKIP
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    # -- parameters (names, rules and defaults from the schema) --
    model: _FieldTrait[str, str] = _FieldTrait("model").tag(sync=True)
    prompt: _FieldTrait[str, str] = _FieldTrait("prompt", DEFAULT_PROMPT).tag(sync=True)
    negative_prompt: _FieldTrait[str, str] = _FieldTrait("negative_prompt").tag(sync=True)
    aspect_ratio: _FieldTrait[str, str] = _FieldTrait("aspect_ratio").tag(sync=True)
    chaos: _FieldTrait[int, int] = _FieldTrait("chaos").tag(sync=True)
    stylize: _FieldTrait[int, int] = _FieldTrait("stylize").tag(sync=True)
    weird: _FieldTrait[int, int] = _FieldTrait("weird").tag(sync=True)
    quality: _FieldTrait[str, str | int] = _FieldTrait("quality").tag(sync=True)
    seed: _FieldTrait[int, int] = _FieldTrait("seed").tag(sync=True)
    raw: _FieldTrait[bool, bool] = _FieldTrait("raw").tag(sync=True)
    tile: _FieldTrait[bool, bool] = _FieldTrait("tile").tag(sync=True)

    # -- state shown by the front end, written by Python only --
    request_json = traitlets.Unicode(read_only=True).tag(sync=True)
    task_id = traitlets.Unicode("", read_only=True).tag(sync=True)
    status = traitlets.Unicode("", read_only=True).tag(sync=True)
    progress = traitlets.Int(0, read_only=True).tag(sync=True)
    outputs = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    error = traitlets.Unicode("", read_only=True).tag(sync=True)
    tasks = traitlets.List(traitlets.Dict(), read_only=True).tag(sync=True)
    sandbox = traitlets.Bool(True, read_only=True).tag(sync=True)
    key_source = traitlets.Unicode("", read_only=True).tag(sync=True)
    schema = traitlets.Dict(read_only=True).tag(sync=True)
    snippets = traitlets.Dict(read_only=True).tag(sync=True)
    #: The seed the next run sends while ``seed`` is -1 ("random"): drawn in advance, so that
    #: ``request_json`` is exactly the body sent, and drawn again once a run has used it.
    next_seed = traitlets.Int(0, read_only=True).tag(sync=True)
    #: Small ``data:`` thumbnails of the latest successful run's loopback images, by output
    #: URL: what a view without a kernel (a reopened notebook) shows, and the snapshot's.
    thumbnails = traitlets.Dict(read_only=True).tag(sync=True)

    def __init__(
        self, prompt: str | None = None, /, *, api_key: str | Secret | None = None, **fields: Any
    ) -> None:
        unknown = sorted(set(fields) - _ACCEPTED_KWARGS)
        if unknown:
            raise TypeError(
                f"ImagineWidget() got an unexpected keyword argument {unknown[0]!r}; it takes "
                f"the request fields ({', '.join(FIELD_NAMES)}) and api_key"
            )
        if prompt is not None:
            if "prompt" in fields:
                raise TypeError("ImagineWidget() got the prompt both by position and by name")
            fields["prompt"] = prompt
        # Plain attributes first: trait observers fired by super().__init__ use them.
        # Guards the runs and every trait write: writes come from the main thread, the comm
        # thread and the loops that run tasks. Reentrant: observers write traits too.
        self._lock = threading.RLock()
        self._secret: Secret | None = None
        self._key_origin = ""
        self._base_url: str | None = None
        #: How often to poll (None: the client's default, Siray's 3-5 s guidance).
        self.poll: PollSchedule | None = None
        self._runs: list[Generation] = []  # newest last, at most MAX_RUNS (+ active ones)
        self._current: Generation | None = None
        self._asyncio_tasks: set[asyncio.Task[Any]] = set()  # strong references
        self._callbacks: list[FinishCallback] = []
        self._request = _WidgetRequest(prompt=DEFAULT_PROMPT)
        self._snapshot_ids: list[str] = []  # display ids of the static snapshots shown
        self._set_key(api_key, "python", refresh=False)
        self.set_trait("next_seed", _draw_seed())
        super().__init__(**fields)
        object.__setattr__(self._request, "_widget", self)
        # Registered here, not as a method override: ipywidgets' own dispatcher stays intact.
        self.on_msg(self._on_custom_msg)

    # -- defaults of the derived traits (computed when the comm first sends state) --

    @traitlets.default("request_json")
    def _default_request_json(self) -> str:
        return self._body().to_json()

    @traitlets.default("snippets")
    def _default_snippets(self) -> dict[str, str]:
        return self._snippets()

    @traitlets.default("schema")
    def _default_schema(self) -> dict[str, Any]:
        return {
            **schema_json(),
            "task_statuses": list(TASK_STATUSES),
            "task_status_labels": dict(STATUS_LABELS),
        }

    @traitlets.default("sandbox")
    def _default_sandbox(self) -> bool:
        return self._resolve()[1]

    @traitlets.default("key_source")
    def _default_key_source(self) -> str:
        return self._resolve()[2]

    # -- the request --

    @property
    def request(self) -> ImageRequest:
        """The request Generate would send; assigning to its fields moves the controls."""
        return self._request

    @request.setter
    def request(self, value: ImageRequest | Mapping[str, Any]) -> None:
        if not isinstance(value, ImageRequest):
            value = ImageRequest(**value)
        with self._lock, self.hold_trait_notifications():
            for name in FIELD_NAMES:
                setattr(self, name, getattr(value, name))

    @contextmanager
    def hold_trait_notifications(self) -> Iterator[None]:
        """traitlets' hold, under the widget's lock: it holds (and on error rolls back) the
        notifications of the whole object, so a write from another thread must not land
        inside it."""
        with self.__dict__.get("_lock") or nullcontext(), super().hold_trait_notifications():
            yield

    @traitlets.observe(*FIELD_NAMES)
    def _field_changed(self, change: Mapping[str, Any]) -> None:
        ImageRequest.__setattr__(self._request, change["name"], change["new"])
        self._refresh_request()

    def _refresh_request(self) -> None:
        with self._lock, self.hold_sync():
            self.set_trait("request_json", self._body().to_json())
            self.set_trait("snippets", self._snippets())

    def _body(self) -> ImageRequest:
        """The request exactly as Generate sends it: a random seed (-1) is replaced by the
        seed drawn for the next run (``next_seed``), so every run knows the seed it used."""
        values = self._request.to_dict()
        if values["seed"] == -1:
            values["seed"] = self.next_seed
        return ImageRequest(**values)

    def _snippets(self) -> dict[str, str]:
        return snippets(self._request, self._public_base_url(), body=self._body())

    def random_seed(self) -> int:
        """Set ``seed`` to a new random value in the schema's range and return it."""
        self.seed = _draw_seed()
        return self.seed

    # -- the key --

    @property
    def api_key(self) -> Secret | None:
        """The key set here (masked; ``.reveal()`` gives the text), or None.

        None means ``SIRAY_API_KEY`` is used if set, else the offline sandbox.
        """
        return self._secret

    @api_key.setter
    def api_key(self, value: str | Secret | None) -> None:
        self._set_key(value, "python")

    def _set_key(self, value: str | Secret | None, origin: str, refresh: bool = True) -> None:
        """Use ``value`` as the key (blank or None: none). A key that cannot be one is refused
        with a ValueError, also shown in the ``error`` trait; the key in use stays."""
        if isinstance(value, Secret):
            text = value.reveal().strip()
        elif isinstance(value, str):
            text = value.strip()
        elif value is None:
            text = ""
        else:
            raise TypeError(f"api_key must be a str, not {type(value).__name__}")
        problem = key_problem(text)
        if problem is not None:
            if refresh:  # a live widget: say it where the user looks
                with self._lock:
                    self.set_trait("error", problem)
            raise ValueError(problem)
        with self._lock:
            self._secret = Secret(text) if text else None
            self._key_origin = origin if text else ""
        if refresh:
            self._refresh_connection()

    # -- where requests go --

    @property
    def base_url(self) -> str | None:
        """Where requests go; None: ``SIRAY_BASE_URL``, else the public API (or the sandbox).

        Setting it updates the sandbox badge, the key source and the copyable snippets.
        """
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"base_url must be a str or None, not {type(value).__name__}")
        if value and without_userinfo(value) != value:  # synced snippets would show it
            check_base_url(value, with_key=False)  # raises, without showing the password
        self._base_url = (value or "").strip() or None
        self._refresh_connection()

    def _resolve(self) -> tuple[Secret | None, bool, str]:
        """(key, sandbox, key source) as the client will resolve them, without a server."""
        if self._secret is not None:
            return self._secret, False, self._key_origin
        env_key = os.environ.get(API_KEY_ENV, "").strip()
        env_url = os.environ.get(BASE_URL_ENV, "").strip()
        if env_key:
            return Secret(env_key), False, "environment"
        return None, not (self._base_url or env_url), ""

    def _public_base_url(self) -> str | None:
        """Where copied commands should send requests: never the sandbox's address (nor a
        password that a URL in the environment holds)."""
        url = self._base_url or os.environ.get(BASE_URL_ENV, "").strip() or None
        return without_userinfo(url) if url else None

    def _refresh_connection(self) -> None:
        """Recompute what depends on the key and base URL (the environment's included: it
        can change after the widget is made; this runs on each Generate and display)."""
        _, sandbox, source = self._resolve()
        with self._lock, self.hold_sync():
            self.set_trait("sandbox", sandbox)
            self.set_trait("key_source", source)
            self.set_trait("snippets", self._snippets())

    # -- front end writes --

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply the front end's changes to writable traits; resync anything refused."""
        accepted = {k: v for k, v in sync_data.items() if k in _WRITABLE}
        refused = [k for k in sync_data if k not in _WRITABLE]
        # Under the lock: a refused value rolls back every trait changed during the hold,
        # and a run on another thread must not have its progress rolled back with it.
        with self._lock:
            try:
                super().set_state(accepted)
            except traitlets.TraitError as exc:
                # The front end validates with the same schema, so this is rare; without a
                # resync its control would keep showing a value the kernel does not hold.
                self.set_trait("error", str(exc))
                refused = list(sync_data)
            refused = [k for k in refused if k in self.keys]  # a name we have never synced
            if refused:
                self.send_state(refused)

    # -- messages --

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The one dispatcher for the front end's messages."""
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        reply: dict[str, Any] = {"kind": f"{kind}-response", "id": content.get("id"), "ok": True}
        try:
            if kind == "generate":
                reply.update(self._generate_from_front_end(content.get("body")))
            elif kind == "cancel":
                run = content.get("run")
                reply["cancelled"] = self.cancel(run if isinstance(run, str) else None)
            elif kind == "random-seed":
                reply["seed"] = self.random_seed()
            elif kind == "set-key":
                key = content.get("key")
                try:
                    self._set_key(key if isinstance(key, str) else None, "widget")
                except ValueError as exc:  # plain words already, and shown: never the key
                    reply.update(ok=False, error=str(exc))
                reply.update(sandbox=self.sandbox, key_source=self.key_source)
            elif kind == "hello":
                pass  # a view checking that a kernel answers for this widget
            elif kind == "read-prompt":
                reply.update(self._read_prompt(content.get("text")))
            elif kind == "retry":
                reply.update(self._retry(content.get("run")))
            elif kind == "fetch-images":
                # A page (re)loaded after the runs: it has URLs but no bytes for them.
                urls = content.get("urls")
                known = {url for g in self.runs for url in g.local_images()}
                wanted = [u for u in urls if u in known] if isinstance(urls, list) else []
                reply["urls"] = self._send_images(wanted)
            else:
                raise ValueError(
                    f"unknown message kind {kind!r}: the page and the kernel run different "
                    "versions of siray-widgets; reload the page"
                )
        except Exception as exc:
            message = describe_error(exc, self._secret)
            with self._lock:
                self.set_trait("error", message)
            reply.update(ok=False, error=message)
        self.send(reply)

    def _generate_from_front_end(self, body: Any) -> dict[str, Any]:
        with self._lock:
            if isinstance(body, str) and body != self.request_json:
                # What is shown is what is sent: a change the kernel refused, or a change
                # made in Python that the page has not shown yet.
                self.send_state([*FIELD_NAMES, "request_json"])
                message = (
                    "The request shown was not the kernel's current request (a change had not "
                    "arrived yet); check the values and press Generate again."
                )
                self.set_trait("error", message)
                return {"ok": False, "error": message, "run": None, "ignored": False}
            starting = next((g for g in self._runs if g.awaits_task_id), None)
            if starting is not None:
                return {"ok": True, "ignored": True, "run": starting.id}
            generation = self.generate()
        return {"ok": True, "ignored": False, "run": generation.id}

    def _read_prompt(self, text: Any) -> dict[str, Any]:
        """A prompt typed or pasted with a Midjourney suffix (``a fox --ar 16:9 --s 250``):
        the suffix sets the fields and the prompt keeps only the text. A suffix that cannot be
        read changes nothing: the reply carries the parser's message."""
        if not isinstance(text, str):
            raise TypeError("read-prompt needs the prompt's text")
        try:
            prompt, fields = parse_suffix(text)
            with self._lock:
                values = {**self._request.to_dict(), **fields}
                if prompt.strip():
                    values["prompt"] = prompt if fields or prompt != text.strip() else text
                self.request = ImageRequest(**values)
        except SirayError as exc:  # SuffixError, or a ValidationError of the whole request
            return {"ok": False, "error": str(exc), "applied": "", "prompt": text}
        read = [
            f"{FIELDS_BY_NAME[name].label.lower()} {_shown(value)}"
            for name, value in fields.items()
        ]
        if not read and prompt.strip() == text.strip():
            applied = ""
        elif read:
            applied = "Read from the suffix: " + ", ".join(read) + "."
        else:
            applied = "Read the suffix: it sets nothing this model does not already use."
        return {"ok": True, "applied": applied, "prompt": self.prompt}

    def _retry(self, run: Any) -> dict[str, Any]:
        """Send a listed run's exact request again (its seed too) as a new run."""
        with self._lock:
            old = next((g for g in self._runs if g.id == run), None)
        if old is None:
            raise ValueError("that run is no longer listed; press Generate instead")
        generation = self._start(ImageRequest(**old.request.to_dict()), seed_random=old.seed_random)
        return {"run": generation.id}

    # -- runs --

    def generate(self) -> Generation:
        """Send the current request and follow the task in the background.

        Returns at once with a :class:`Generation`: ``await`` it in a cell for the final
        Task, or leave it be. Runs on the event loop running now (a notebook's), or on a
        private background loop when none is running (a plain script). The body sent is
        ``request_json``: while ``seed`` is -1 (random) it carries ``next_seed``, which is
        then drawn anew, so each run records the seed it used.
        """
        with self._lock:
            self._refresh_connection()  # the environment may have changed since
            drawn = self.seed == -1
            generation = self._start(self._body(), seed_random=drawn)
            if drawn:
                self.set_trait("next_seed", _draw_seed())
                self._refresh_request()
        return generation

    def _start(self, request: ImageRequest, *, seed_random: bool) -> Generation:
        """Record a run of ``request`` (sent as is) and follow its task in the background."""
        if self.comm is None:
            raise RuntimeError("this widget is closed; create a new ImagineWidget")
        with self._lock:
            generation = Generation(request, seed_random=seed_random)
            secret, _, _ = self._resolve()
            base_url, poll = self._base_url, self.poll
            self._runs.append(generation)
            self._prune()
            self._current = generation
            self._publish(generation)
        self._spawn(self._run(generation, secret, base_url, poll), generation.id, generation)
        return generation

    def _spawn(
        self,
        coro: Coroutine[Any, Any, None],
        name: str,
        generation: Generation | None = None,
    ) -> None:
        """Run ``coro`` on the event loop running now, or on the private background loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            background = BackgroundLoop.get()
            background.call_soon_threadsafe(self._launch, coro, name, background, generation)
        else:
            self._launch(coro, name, loop, generation)

    def _launch(
        self,
        coro: Coroutine[Any, Any, None],
        name: str,
        loop: asyncio.AbstractEventLoop,
        generation: Generation | None,
    ) -> None:
        task = loop.create_task(coro, name=f"siray-widgets {name}")
        self._asyncio_tasks.add(task)
        task.add_done_callback(self._asyncio_tasks.discard)
        if generation is not None:
            # A task cancelled before its first step never runs _run's body (nor its
            # finally): settle the run here, or it would stay "starting" for ever.
            task.add_done_callback(lambda _: self._finish_unstarted(generation))
            generation._bind(loop, task)

    async def _run(
        self,
        generation: Generation,
        secret: Secret | None,
        base_url: str | None,
        poll: PollSchedule | None,
    ) -> None:
        """Submit, poll, report: every outcome ends up in the traits, never in a log."""
        client: AsyncSirayClient | None = None
        outcome: Task | BaseException | None = None
        where = base_url or os.environ.get(BASE_URL_ENV, "").strip() or None
        try:
            client = await _open_client(secret, base_url, poll)
            generation.api_base_url = client.base_url
            if client.sandbox != self.sandbox:
                with self._lock:
                    self.set_trait("sandbox", client.sandbox)
            task_id = await counted_submit(client, generation.request)  # the session budget
            with self._lock:
                generation.task_id = task_id
                generation.state = "running"
                self._publish(generation)
            task = await client.wait(task_id, on_update=lambda t: self._on_reading(generation, t))
            with self._lock:
                generation.task = task
                generation.state = "success"
            outcome = task
        except asyncio.CancelledError:
            generation.state = "cancelled"
            generation.note = "Stopped following the task" + (
                f" {generation.task_id}; it may still finish on the server."
                if generation.task_id
                else "."
            )
            raise
        except TaskFailedError as exc:
            generation.state = "failure"
            generation.error = describe_error(exc, secret, base_url=where)
            outcome = exc
        except Exception as exc:
            generation.state = "error"
            generation.error = describe_error(exc, secret, base_url=where)
            outcome = exc
        finally:
            if client is not None:
                try:
                    await client.aclose()
                except Exception as exc:  # closing a pool is not worth a failed run
                    generation.note = redact(f"Closing the connection failed: {exc}", secret)
            if isinstance(outcome, Task):
                try:  # the page gets the bytes before the run is shown finished
                    await self._share_images(generation)
                finally:
                    self._finish(generation, outcome)
            else:
                self._finish(generation, outcome)

    def _on_reading(self, generation: Generation, task: Task) -> None:
        with self._lock:
            generation.task = task
            if generation.state == "starting":
                generation.state = "running"
            self._publish(generation)

    def _finish_unstarted(self, generation: Generation) -> None:
        """The asyncio task is done: settle its run if ``_run`` never got to (cancelled)."""
        with self._lock:
            if generation.finished_at is not None:
                return
            generation.state = "cancelled"
            generation.note = "Stopped before the request was sent."
        self._finish(generation, None)

    def _finish(self, generation: Generation, outcome: Task | BaseException | None) -> None:
        with self._lock:
            if generation.finished_at is not None:  # settled once, whoever comes first
                return
            generation.finished_at = time.time()
            self._publish(generation)
        self._update_snapshots()
        generation._settle(outcome)
        for callback in list(self._callbacks):
            try:
                callback(generation)
            except Exception as exc:
                name = getattr(callback, "__qualname__", repr(callback))
                text = f"The on_finish callback {name} raised {type(exc).__name__}: {exc}"
                with self._lock:
                    self.set_trait("error", redact(text, self._secret) + " — fix the callback.")

    # -- images from this machine --

    def _send_images(self, urls: list[str]) -> list[str]:
        """Send the bytes of the loopback images among ``urls`` to the front end.

        A browser on another machine (JupyterHub, Binder, Codespaces, an SSH tunnel) cannot
        load ``http://127.0.0.1:PORT/...``; the kernel can. The bytes go as one custom
        message, ``{"kind": "image-data", "urls", "types", "failed"}`` with one buffer per
        URL in ``urls``: not state, so never saved in the notebook. Returns the URLs asked for.
        """
        local = [url for url in dict.fromkeys(urls) if is_local_url(url)]
        if local:
            self._spawn(self._push_images(local), "images")
        return local

    async def _push_images(self, urls: list[str]) -> None:
        found, failed = await self._fetch_local(urls)
        self._send_image_data(found, failed)

    async def _fetch_local(self, urls: list[str]) -> tuple[list[tuple[str, str, bytes]], list[str]]:
        """The bytes of the loopback images among ``urls`` (never raises: what could not be
        fetched is listed as failed, and the page then tries those URLs itself)."""
        local = [url for url in dict.fromkeys(urls) if is_local_url(url)]
        if not local:
            return [], []
        try:
            return await fetch_images(local)
        except Exception:
            return [], local

    def _send_image_data(self, found: list[tuple[str, str, bytes]], failed: list[str]) -> None:
        if not found and not failed:
            return
        content = {
            "kind": "image-data",
            "urls": [url for url, _, _ in found],
            "types": [kind for _, kind, _ in found],
            "failed": failed,
        }
        with self._lock:
            if self.comm is not None:
                self.send(content, buffers=[data for _, _, data in found])

    async def _share_images(self, generation: Generation) -> None:
        """After a success: the page gets the loopback images' bytes, and the latest success
        keeps small thumbnails of them (for the snapshot and for views without a kernel)."""
        found, failed = await self._fetch_local(generation.local_images())
        self._send_image_data(found, failed)
        thumbs: dict[str, str] = {}
        for url, _, data in found:
            try:
                small = await asyncio.to_thread(thumbnail, data)
            except Exception:  # a thumbnail is a nicety: never worth a failed run
                small = None
            if small is not None:
                thumbs[url] = small
        with self._lock:
            runs = self._runs
            later = runs[runs.index(generation) + 1 :] if generation in runs else []
            if not any(g.state == "success" for g in later):
                self.set_trait("thumbnails", thumbs)

    def _prune(self) -> None:
        """Forget the oldest finished runs beyond MAX_RUNS (active ones always stay)."""
        excess = len(self._runs) - MAX_RUNS
        if excess > 0:
            old = [g for g in self._runs if g.done][:excess]
            self._runs = [g for g in self._runs if g not in old]

    def _publish(self, generation: Generation) -> None:
        """Copy a run's state into the traits (the latest run also into the top-level ones)."""
        with self._lock, self.hold_sync():
            self.set_trait("tasks", [g.to_json() for g in self._runs])
            if generation is self._current:
                self.set_trait("task_id", generation.task_id or "")
                self.set_trait("status", generation.status)
                self.set_trait("progress", generation.progress)
                self.set_trait("outputs", generation.images)
                self.set_trait("error", generation.error)

    def sweep(self, x: Any = None, y: Any = None, z: Any = None, **options: Any) -> SweepRun:
        """A sweep of the current request over up to three axes, started at once (above the
        session's threshold of tasks only with ``confirm=True``): ``w.sweep(x=("stylize",
        "0-1000 (+250)"), y=("chaos", [0, 50, 100]), confirm=True)``. Returns an awaitable
        :class:`~siray_widgets.sweep.SweepRun`; see :func:`siray_widgets.sweep.for_widget.
        widget_sweep` for the options (``start=False`` only plans it)."""
        from .sweep.for_widget import widget_sweep

        return widget_sweep(self, x, y, z, **options)

    def cancel(self, run: str | None = None) -> list[str]:
        """Stop following one run (by :attr:`Generation.id`) or every active run.

        Returns the ids of the runs asked to stop. Tasks may still finish on the server.
        """
        with self._lock:
            targets = [g for g in self._runs if not g.done and run in (None, g.id)]
        return [g.id for g in targets if g.cancel()]

    def on_finish(self, callback: FinishCallback, remove: bool = False) -> None:
        """Call ``callback(generation)`` when a run ends (success, failure, error, cancel).

        It runs on the thread of the loop that ran the task; exceptions are shown in the
        widget's error line.
        """
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    # -- results --

    @property
    def runs(self) -> list[Generation]:
        """Recent runs, newest last."""
        with self._lock:
            return list(self._runs)

    @property
    def result(self) -> Task | None:
        """The latest reading of the latest run's task (None before any)."""
        current = self._current
        return current.task if current is not None else None

    @property
    def images(self) -> list[str]:
        """Image URLs of the latest run (empty until it succeeds)."""
        return list(self.outputs)

    def pil_images(self, timeout: float = 30.0) -> list[Any]:
        """Download the latest run's images as PIL images (blocking; http(s) and raster data:)."""
        import base64
        import io
        import urllib.parse

        import httpx
        from PIL import Image

        pictures = []
        with httpx.Client(timeout=timeout, follow_redirects=True, trust_env=not self.sandbox) as h:
            for url in self.images:
                if not is_safe_image_url(url):
                    raise ValueError(f"not an http(s) or raster data:image URL: {url[:80]!r}")
                if url.lower().startswith("data:"):
                    meta, _, payload = url.partition(",")
                    data = (
                        base64.b64decode(payload)
                        if meta.endswith(";base64")
                        else urllib.parse.unquote_to_bytes(payload)
                    )
                else:
                    response = h.get(url)
                    response.raise_for_status()
                    data = response.content
                picture = Image.open(io.BytesIO(data))
                picture.load()
                pictures.append(picture)
        return pictures

    # -- lifecycle and display --

    def close(self) -> None:
        """Cancel every run, then close the widget (its views disappear).

        Runs end on their own loops: ``await`` or ``result()`` a run to see it settled.
        """
        if hasattr(self, "_runs"):  # __del__ may come after a failed __init__
            self.cancel()
        super().close()

    def __repr__(self) -> str:
        if not hasattr(self, "_request"):
            return f"<{type(self).__name__} (not initialised)>"
        changed = [
            f"{name}={getattr(self._request, name)!r}"
            for name in FIELD_NAMES
            if getattr(self._request, name) != FIELDS_BY_NAME[name].default
        ]
        state = [f"sandbox={self._resolve()[1]}"]
        if self.task_id:
            state.append(f"task_id={self.task_id!r}")
        if self.status:
            state.append(f"status={self.status!r}")
        return f"{type(self).__name__}({', '.join([*changed, *state])})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        self._refresh_connection()  # shown now: say where requests go now
        data["text/html"] = self._snapshot_bundle()["text/html"]
        return data, metadata

    def _ipython_display_(self, **kwargs: Any) -> None:
        """Show the live view and, beside it, the static snapshot under a display id.

        The snapshot is replaced after every finished run, so a saved notebook shows the
        current request, task id, status and thumbnails where the widget cannot run
        (nbconvert, GitHub, a notebook reopened without its kernel); the widget's CSS hides
        it next to a live view. Updating the view's own output instead would redraw the view
        (JupyterLab renders an updated output anew) and lose the user's focus and typing.
        """
        from IPython.display import display

        # ipywidgets replaces _repr_mimebundle_ with None when the widget is closed.
        render = getattr(self, "_repr_mimebundle_", None)
        bundle = render(**kwargs) if callable(render) and self.comm is not None else None
        if bundle is None:  # closed: its repr says so
            display({"text/plain": repr(self)}, raw=True)  # type: ignore[no-untyped-call]
            return
        data, metadata = bundle
        del data["text/html"]  # in the snapshot below, which stays current
        display(data, metadata=metadata, raw=True)  # type: ignore[no-untyped-call]
        display_id = secrets.token_hex(8)
        display(self._snapshot_bundle(), raw=True, display_id=display_id)  # type: ignore[no-untyped-call]
        with self._lock:
            self._snapshot_ids = [*self._snapshot_ids[-(MAX_SNAPSHOTS - 1) :], display_id]

    def _snapshot_bundle(self) -> dict[str, str]:
        with self._lock:
            run = self._current
            pictured = next((g for g in reversed(self._runs) if g.state == "success"), None)
            return {
                "text/html": snapshot_html(
                    self._request,
                    sandbox=self.sandbox,
                    run=run,
                    pictured=pictured,
                    thumbnails=self.thumbnails,
                ),
                "text/plain": snapshot_text(run),
            }

    def _update_snapshots(self) -> None:
        """Replace every static snapshot shown for this widget with the current one."""
        with self._lock:
            ids = list(self._snapshot_ids)
        if not ids:  # never displayed by IPython: nothing to update
            return
        from IPython.display import update_display

        data = self._snapshot_bundle()
        for display_id in ids:
            with contextlib.suppress(Exception):  # a kernel shutting down, say
                update_display(data, display_id=display_id, raw=True)  # type: ignore[no-untyped-call]


def _shown(value: Any) -> str:
    """A field's value in a sentence: ``on``/``off``, numbers and enums as they are, and free
    text in quotes."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and not any(
        value == e for f in FIELDS_BY_NAME.values() for e in f.enum or ()
    ):
        return f"“{value}”"
    return str(value)


def _draw_seed() -> int:
    """A random seed in the schema's range (0 up to the maximum: never -1)."""
    top = FIELDS_BY_NAME["seed"].maximum
    assert top is not None
    return secrets.randbelow(top + 1)


async def _open_client(
    secret: Secret | None, base_url: str | None, poll: PollSchedule | None
) -> AsyncSirayClient:
    """Build the client off the loop (the first one without a key starts the sandbox server).

    If the run is cancelled meanwhile, the worker thread still finishes building it: the
    client is then closed, by that thread or here, instead of left with an open pool.
    """
    handoff = threading.Lock()
    abandoned = False
    built: list[AsyncSirayClient] = []

    def build() -> AsyncSirayClient | None:
        client = _new_client(secret, base_url, poll)
        with handoff:
            if not abandoned:
                built.append(client)
                return client
        with contextlib.suppress(Exception):  # nobody is left to tell
            asyncio.run(client.aclose())
        return None

    try:
        client = await asyncio.to_thread(build)
    except asyncio.CancelledError:
        with handoff:
            abandoned = True
            orphans = list(built)  # built just before the cancel arrived
        for orphan in orphans:
            with contextlib.suppress(Exception):
                await orphan.aclose()
        raise
    assert client is not None  # only None once abandoned, and then nobody awaits it
    return client


def _new_client(
    secret: Secret | None, base_url: str | None, poll: PollSchedule | None
) -> AsyncSirayClient:
    """Import and build the client in a worker thread: the import costs ~70 ms (httpx) and the
    first client without a key starts the sandbox server; neither should block the kernel."""
    from .client import AsyncSirayClient

    return AsyncSirayClient(secret, base_url, poll=poll)
