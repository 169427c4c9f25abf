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
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import anywidget
import traitlets

from ._widget_lazy import HISTORY_KINDS, SWEEP_KINDS, lazy_module
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
from .errors import SirayError, TaskFailedError, ValidationError, WorkshopError
from .schema import (
    FIELD_NAMES,
    FIELDS_BY_NAME,
    NIJI7,
    TASK_STATUSES,
    AnyRequest,
    Field,
    ImageRequest,
    ModelRequest,
    ModelSchema,
)
from .suffix import parse_suffix
from .task import Task

if TYPE_CHECKING:  # the client (httpx, stamina) loads on the first Generate, off the loop
    from ._widget_history import HistoryPanel
    from ._widget_sweep import SweepPanel
    from .client import AsyncSirayClient, PollSchedule
    from .session import Reservation
    from .sweep.runner import SweepRun

__all__ = ["Generation", "ImagineWidget"]

_STATIC = Path(__file__).parent / "static"

#: Something worth drawing, so that Generate works the moment the widget appears.
DEFAULT_PROMPT = "a paper lantern festival on a misty river at dusk, soft watercolor light"

#: How many finished runs the ``tasks`` trait keeps (it is saved with the notebook).
MAX_RUNS = 12

#: Largest integer a browser holds exactly (JavaScript's Number.MAX_SAFE_INTEGER).
_MAX_SAFE = 2**53 - 1

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
    """A trait whose rule, default and help text come from a schema field (niji 7's by name,
    or another model's :class:`Field`)."""

    def __init__(self, field: str | Field, default: Any = None) -> None:
        self.field = FIELDS_BY_NAME[field] if isinstance(field, str) else field
        super().__init__(
            default_value=self.field.default if default is None else default,
            help=self.field.description,
        )
        self.info_text = self.field.allowed()

    def validate(self, obj: Any, value: Any) -> G:
        try:
            value = self.field.validate(value)
        except ValidationError as exc:
            raise traitlets.TraitError(str(exc)) from None
        if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_SAFE:
            value = int(value)  # 4.0 is sent as 4: the browser's preview cannot tell them apart
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_SAFE:
            raise traitlets.TraitError(
                f"{self.field.name}={value} is too large for the widget (a browser holds "
                f"integers up to {_MAX_SAFE} exactly); send it with the client instead"
            )
        return value  # type: ignore[no-any-return]


class _Absent:
    """Where another model's widget has no field of niji 7's: reading or writing it says so."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        raise AttributeError(_no_field(obj._spec, self.name))

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(_no_field(obj._spec, self.name))


def _no_field(spec: ModelSchema, name: str) -> str:
    return f"{spec.model} has no field {name!r}; its fields: {', '.join(spec.field_names)}"


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


class _WidgetModelRequest(ModelRequest):
    """``w.request`` of another model: a ModelRequest whose assignments set the traits."""

    __slots__ = ("_widget",)

    _widget: ImagineWidget

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        widget = getattr(self, "_widget", None)
        if widget is not None:
            setattr(widget, widget._traits_of[name], self._values[name])


class ImagineWidget(anywidget.AnyWidget):
    """The niji 7 image API as one widget: controls, live request JSON, tasks and images.

    ``ImagineWidget(model="...")`` makes one for another text-to-image model of Siray's
    registry: its fields come from the model's published schema (a trait each, named like
    the field, or with ``_`` added where the widget already uses the name).

    >>> w = ImagineWidget(prompt="a fox in the snow", aspect_ratio="16:9")  # doctest: +SKIP
    >>> w  # doctest: +SKIP
    >>> task = await w.generate()  # doctest: +SKIP
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    #: The model's fields (niji 7's hand-tuned table here; subclasses made per model).
    _spec: ClassVar[ModelSchema] = NIJI7
    #: Field name -> trait name.
    _traits_of: ClassVar[Mapping[str, str]] = {name: name for name in FIELD_NAMES}

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
    #: ``run``: the next run's estimated cost ("$0.05 per run", "price unknown"), ``unit``
    #: (the price of one task as a decimal string, or None), ``session``: this process's
    #: tasks and estimated spend (:mod:`siray_widgets.session`).
    price = traitlets.Dict(read_only=True).tag(sync=True)
    #: At a workshop proxy: ``text`` ("workshop: 14 of 20 left"), ``state`` (``ok``, ``low``,
    #: ``spent``, ``paused``, ``expired``), ``remaining``, ``limit``; elsewhere ``{}``.
    quota = traitlets.Dict(read_only=True).tag(sync=True)

    def __new__(cls, *args: Any, **kwargs: Any) -> ImagineWidget:
        model = kwargs.get("model")
        if model is not None and model != cls._spec.model and cls._spec is NIJI7:
            if not isinstance(model, str):
                raise TypeError(f"model must be a model name (a str), not {type(model).__name__}")
            from ._widget_models import find_model

            keyless = kwargs.get("api_key") is None and not _env(API_KEY_ENV)
            sandbox = keyless and not _env(BASE_URL_ENV)  # as _resolve() will say
            try:
                spec = find_model(model, sandbox=sandbox)
            except SirayError as exc:  # unknown (close names suggested) or unsupported (why)
                raise _trait_error(exc) from None
            cls = _model_class(cls, spec)
        widget: ImagineWidget = super().__new__(cls, *args, **kwargs)
        return widget

    def __init__(
        self, prompt: str | None = None, /, *, api_key: str | Secret | None = None, **fields: Any
    ) -> None:
        writable = set(self._traits_of.values())
        unknown = sorted(set(fields) - writable - {"api_key"})
        if unknown:
            raise TypeError(
                f"ImagineWidget() got an unexpected keyword argument {unknown[0]!r}; it takes "
                f"the request fields ({', '.join(self._traits_of.values())}) and api_key"
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
        #: Seconds without a change in status or progress before a run shows "stalled"
        #: (None: from the poll schedule, see siray_widgets.store.default_stall_after).
        self.stall_after: float | None = None
        self._history: HistoryPanel | None = None  # the History tab's messages, once used
        self._sweeps: SweepPanel | None = None  # the Sweep tab's messages, once used
        self._runs: list[Generation] = []  # newest last, at most MAX_RUNS (+ active ones)
        self._current: Generation | None = None
        self._asyncio_tasks: set[asyncio.Task[Any]] = set()  # strong references
        self._callbacks: list[FinishCallback] = []
        self._request: AnyRequest = (
            _WidgetRequest(prompt=DEFAULT_PROMPT)
            if self._spec.builtin
            else _WidgetModelRequest(self._spec, **_initial_values(self._spec))
        )
        self._snapshot_ids: list[str] = []  # display ids of the static snapshots shown
        self._quota_problem = ""  # what a workshop proxy last refused for
        self._set_key(api_key, "python", refresh=False)
        self.set_trait("next_seed", _draw_seed())
        self.observe(self._field_changed, names=list(self._traits_of.values()))
        from .session import session_budget

        session_budget().on_change(self._refresh_price)
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
        schema = self._spec.schema_json()
        for field in schema["fields"]:
            if self._traits_of[field["name"]] != field["name"]:  # renamed: "layout_"
                field["trait"] = self._traits_of[field["name"]]
        return {
            **schema,
            "task_statuses": list(TASK_STATUSES),
            "task_status_labels": dict(STATUS_LABELS),
        }

    @traitlets.default("price")
    def _default_price(self) -> dict[str, Any]:
        from ._widget_models import price_texts

        return price_texts(self._spec.model, sandbox=self._resolve()[1])

    @traitlets.default("quota")
    def _default_quota(self) -> dict[str, Any]:
        return {}

    @traitlets.default("sandbox")
    def _default_sandbox(self) -> bool:
        return self._resolve()[1]

    @traitlets.default("key_source")
    def _default_key_source(self) -> str:
        return self._resolve()[2]

    # -- the request --

    @property
    def request(self) -> AnyRequest:
        """The request Generate would send; assigning to its fields moves the controls."""
        return self._request

    @request.setter
    def request(self, value: AnyRequest | Mapping[str, Any]) -> None:
        if isinstance(value, (ImageRequest, ModelRequest)):
            if value.model != self._spec.model:
                raise ValueError(
                    f"that is a request for {value.model}; this widget sends {self._spec.model} "
                    f"(make one with ImagineWidget(model={value.model!r}))"
                )
        else:
            value = self._spec.request(**value)
        with self._lock, self.hold_trait_notifications():
            for name, trait in self._traits_of.items():
                setattr(self, trait, getattr(value, name))

    @property
    def model_schema(self) -> ModelSchema:
        """The fields of this widget's model (niji 7's table, or built from the registry)."""
        return self._spec

    @contextmanager
    def hold_trait_notifications(self) -> Iterator[None]:
        """traitlets' hold, under the widget's lock: it holds (and on error rolls back) the
        notifications of the whole object, so a write from another thread must not land
        inside it."""
        with self.__dict__.get("_lock") or nullcontext(), super().hold_trait_notifications():
            yield

    def _field_changed(self, change: Mapping[str, Any]) -> None:
        request = self._request
        if isinstance(request, ImageRequest):
            ImageRequest.__setattr__(request, change["name"], change["new"])
        else:
            ModelRequest.__setattr__(request, self._fields_of[change["name"]], change["new"])
        self._refresh_request()

    @property
    def _fields_of(self) -> dict[str, str]:
        """Trait name -> field name."""
        return {trait: name for name, trait in self._traits_of.items()}

    def _refresh_request(self) -> None:
        with self._lock, self.hold_sync():
            self.set_trait("request_json", self._body().to_json())
            self.set_trait("snippets", self._snippets())

    def _body(self) -> AnyRequest:
        """The request exactly as Generate sends it: for niji 7 a random seed (-1) is replaced
        by the seed drawn for the next run (``next_seed``), so every run knows the seed it
        used. Other models' requests go as they are (an unset seed: the API draws one)."""
        values = self._request.to_dict()
        if not self._spec.builtin:
            return ModelRequest(self._spec, **values)
        if values["seed"] == -1:
            values["seed"] = self.next_seed
        return ImageRequest(**values)

    def _snippets(self) -> dict[str, str]:
        return snippets(self._request, self._public_base_url(), body=self._body())

    def random_seed(self) -> int:
        """Set ``seed`` to a new random value in the schema's range and return it."""
        if not self._spec.builtin:
            field = self._spec.field("seed") if "seed" in self._spec else None
            if field is None or field.type != "integer":
                raise ValueError(f"{self._spec.model} has no integer seed field")
            low = max(0, field.minimum or 0)
            high = field.maximum if field.maximum is not None else 2**32 - 1
            drawn = low + secrets.randbelow(max(1, min(high, _MAX_SAFE) - low + 1))
            setattr(self, self._traits_of["seed"], drawn)
            return drawn
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
        secret, sandbox, source = self._resolve()
        where = (_fingerprint(secret), self._base_url or _env(BASE_URL_ENV) or None)
        with self._lock, self.hold_sync():
            self.set_trait("sandbox", sandbox)
            self.set_trait("key_source", source)
            self.set_trait("snippets", self._snippets())
            if where != getattr(self, "_quota_where", where):  # another token or server
                self._quota_problem = ""
                self.set_trait("quota", {})
            self._quota_where = where
        self._refresh_price()

    # -- prices and the workshop quota --

    def _refresh_price(self, budget: object = None) -> None:
        """Recompute the ``price`` trait (also called by the session budget after any run)."""
        from ._widget_models import price_texts

        with self._lock:
            self.set_trait("price", price_texts(self._spec.model, sandbox=self.sandbox))

    def _show_quota(self, quota: Any, problem: str | None = None) -> None:
        """Show what a workshop proxy said (``problem``: what it last refused for)."""
        from ._widget_models import quota_state

        with self._lock:
            if problem is not None:
                self._quota_problem = problem
            if quota is None and not self._quota_problem and not self.quota:
                return
            self.set_trait("quota", quota_state(quota, self._quota_problem))

    def _refresh_quota_soon(self) -> None:
        """Ask a workshop proxy for the quota in the background (on display). Only where a
        base URL is set (a proxy always is one): the public API is never asked."""
        secret, sandbox, _ = self._resolve()
        if sandbox or secret is None or self.comm is None or not self._public_base_url():
            return
        self._spawn(self._ask_quota(secret, self._base_url), "quota")

    async def _ask_quota(self, secret: Secret, base_url: str | None) -> None:
        client: AsyncSirayClient | None = None
        try:
            client = await _open_client(secret, base_url, None)
            quota = await client.refresh_quota()
        except WorkshopError as exc:
            self._show_quota(None, _workshop_problem(exc))
        except Exception:  # the header line is a nicety; Generate says what is wrong
            return
        else:
            if quota is not None:
                self._show_quota(quota, "" if not quota.paused else None)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _reserve(self, sandbox: bool) -> Reservation:
        """Reserve the next run's estimated cost in this process's session (free in the
        sandbox); raises BudgetExceededError, shown in ``error``, past a session cap."""
        from ._widget_models import unit_price
        from .session import BudgetExceededError, session_budget

        try:
            price = Decimal(0) if sandbox else unit_price(self._spec.model, sandbox=False)
        except Exception:  # a registry that cannot be read (a bad SIRAY_GATEWAY_URL): unknown
            price = None
        try:
            return session_budget().reserve(self._spec.model, price)
        except BudgetExceededError as exc:
            self.set_trait("error", f"Not sent: {exc}.")
            raise

    # -- front end writes --

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply the front end's changes to writable traits; resync anything refused."""
        writable = self._fields_of
        accepted = {k: v for k, v in sync_data.items() if k in writable}
        refused = [k for k in sync_data if k not in writable]
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

    def _history_panel(self) -> HistoryPanel:
        """The History tab's handlers (made on first use: the Sweep tab's "Use these" and
        opened contact sheets share their one undo)."""
        if self._history is None:
            from ._widget_history import HistoryPanel

            self._history = HistoryPanel(self)
        return self._history

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        """The one dispatcher for the front end's messages."""
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        reply: dict[str, Any] = {"kind": f"{kind}-response", "id": content.get("id"), "ok": True}
        data: list[bytes] = []  # binary buffers of the reply
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
            elif kind in HISTORY_KINDS:  # the History tab (siray_widgets/_widget_history.py)
                answer, data = self._history_panel().handle(kind, content, buffers or [])
                reply.update(answer)
            elif kind in SWEEP_KINDS:  # the Sweep tab (siray_widgets/_widget_sweep.py)
                if self._sweeps is None:
                    from ._widget_sweep import SweepPanel

                    self._sweeps = SweepPanel(self)
                answer, data = self._sweeps.handle(kind, content, buffers or [])
                reply.update(answer)
            elif kind == "keep-waiting":
                stalled = self._keep_waiting(content.get("run"))
                reply.update(ok=stalled is not None, stalled=bool(stalled))
                if stalled is None:
                    reply["error"] = "that run is no longer listed in this widget"
            elif kind == "load-module":  # a lazily loaded front-end module (js/lazy/)
                try:
                    reply.update(lazy_module(content.get("name")))
                except ValueError as exc:  # said in the tab, not in the run's error line
                    reply.update(ok=False, error=str(exc))
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
        self.send(reply, buffers=data or None)

    def _generate_from_front_end(self, body: Any) -> dict[str, Any]:
        with self._lock:
            if isinstance(body, str) and body != self.request_json:
                # What is shown is what is sent: a change the kernel refused, or a change
                # made in Python that the page has not shown yet.
                self.send_state([*self._traits_of.values(), "request_json"])
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
        if not self._spec.suffix:
            raise ValueError(f"{self._spec.model} does not read Midjourney suffixes")
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
        generation = self._start(old.request.replace(), seed_random=old.seed_random)
        return {"run": generation.id}

    def _keep_waiting(self, run: Any) -> bool | None:
        """The user's "Keep waiting" on a stalled run: it counts as running until it stalls
        again. Returns whether it is stalled now (None: no such run)."""
        with self._lock:
            generation = next((g for g in self._runs if g.id == run), None)
        if generation is None:
            return None
        from ._widget_history import tell

        tell(generation.recorder, "keep_waiting")
        self._publish(generation)
        return generation.stalled

    def _recorded(self, generation: Generation) -> None:
        """The run's recorder changed (a reading, a stall seen by the watchdog's thread, the
        images kept): show whether it is stalled."""
        if not generation.done:
            self._publish(generation)

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
            drawn = self._spec.builtin and self.seed == -1
            generation = self._start(self._body(), seed_random=drawn)
            if drawn:
                self.set_trait("next_seed", _draw_seed())
                self._refresh_request()
        return generation

    def _start(self, request: AnyRequest, *, seed_random: bool) -> Generation:
        """Record a run of ``request`` (sent as is) and follow its task in the background.

        It is counted in this process's session budget first (a cap that it would pass
        raises :class:`~siray_widgets.session.BudgetExceededError`, and nothing is sent); a
        create that surely made no task is given back.
        """
        if self.comm is None:
            raise RuntimeError("this widget is closed; create a new ImagineWidget")
        with self._lock:
            secret, sandbox, _ = self._resolve()
            charge = self._reserve(sandbox)
            generation = Generation(request, seed_random=seed_random)
            generation._charge = charge
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
        from ._widget_history import record_run, tell, warm_store

        client: AsyncSirayClient | None = None
        outcome: Task | BaseException | None = None
        where = base_url or os.environ.get(BASE_URL_ENV, "").strip() or None
        try:
            client = await _open_client(secret, base_url, poll)
            generation.api_base_url = client.base_url
            # Recorded here, exactly once, as a widget run (the client has no hooks of its own).
            await warm_store()
            generation.recorder = record_run(
                generation.request,
                secret=secret,
                poll=client.poll,
                stall_after=self.stall_after,
                on_change=lambda _: self._recorded(generation),
                api_base_url=client.base_url,
            )
            if client.sandbox != self.sandbox:
                with self._lock:
                    self.set_trait("sandbox", client.sandbox)
            generation._submitted = True
            try:
                task_id = await client.submit(generation.request)
            except BaseException as exc:
                if generation._charge is not None:  # given back if surely no task was made
                    generation._charge.settle(exc)
                if isinstance(exc, WorkshopError):  # quota spent, paused, expired: the header
                    self._show_quota(client.quota, _workshop_problem(exc))
                raise
            self._show_quota(client.quota, "")  # a workshop proxy says what is left
            tell(generation.recorder, "submitted", task_id)
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
                self._show_quota(client.quota)
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
        from ._widget_history import tell  # loaded by the run's start (_run)

        tell(generation.recorder, "reading", task)
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
        if generation._charge is not None and not generation._submitted:
            generation._charge.release()  # ended before its create request was sent
        from ._widget_history import tell

        tell(generation.recorder, "finished", outcome)
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
        from .sweep.errors import SweepError
        from .sweep.for_widget import widget_sweep

        if not self._spec.builtin:
            raise SweepError(
                "model",
                self._spec.model,
                f"sweeps are built on {NIJI7.model}'s fields for now; make one with "
                f"ImagineWidget() (the other models run one request at a time)",
            )
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
        sweeps = getattr(self, "_sweeps", None)
        if sweeps is not None:
            sweeps.close()  # the sweep runs on (it is paid for); the page is gone
        super().close()

    def __repr__(self) -> str:
        if not hasattr(self, "_request"):
            return f"<{type(self).__name__} (not initialised)>"
        values = self._request.to_dict()
        changed = [
            f"{self._traits_of[f.name]}={values[f.name]!r}"
            for f in self._spec.fields
            if values[f.name] != f.default
        ]
        if not self._spec.builtin:
            changed.insert(0, f"model={self._spec.model!r}")
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
        self._refresh_registry_soon()  # prices change: read them again, off the kernel
        self._refresh_quota_soon()  # at a workshop proxy: what is left
        data["text/html"] = self._snapshot_bundle()["text/html"]
        return data, metadata

    def _refresh_registry_soon(self) -> None:
        """Load the model registry in the background once per process (the cache, or the
        gateway when the cache is a day old), then show its price."""
        global _registry_loading
        with _registry_lock:
            if _registry_loading:
                return
            _registry_loading = True
        self._spawn(self._load_registry(), "registry")

    async def _load_registry(self) -> None:
        from . import registry

        # A registry fetched or chosen in this process (registry.use(), a file) stays.
        if registry.current().source in ("cache", "stale cache", "snapshot"):
            with contextlib.suppress(Exception):  # offline: the cache or the snapshot answers
                await registry.aload()
        self._refresh_price()

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


#: Whether this process has started loading the model registry for the widgets' prices.
_registry_loading = False
_registry_lock = threading.Lock()


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _fingerprint(secret: Secret | None) -> str | None:
    """A key's short digest, only to notice that the key changed (never shown or synced)."""
    if secret is None:
        return None
    return hashlib.sha256(secret.reveal().encode()).hexdigest()[:16]


def _trait_error(exc: SirayError) -> SirayError:
    """``exc`` (an unknown or unsupported model) as a TraitError too, as every value the
    widget refuses at construction is; ``except UnknownModelError`` still catches it."""
    kind = type(exc)
    both = _TRAIT_ERRORS.get(kind)
    if both is None:
        both = _TRAIT_ERRORS[kind] = type(kind.__name__, (kind, traitlets.TraitError), {})
    made: SirayError = both.__new__(both)
    made.__dict__.update(exc.__dict__)
    made.args = exc.args
    return made


_TRAIT_ERRORS: dict[type[SirayError], type[SirayError]] = {}


def _workshop_problem(exc: WorkshopError) -> str:
    from .errors import ParticipantPausedError, QuotaExceededError, TokenExpiredError

    if isinstance(exc, TokenExpiredError):
        return "expired"
    if isinstance(exc, ParticipantPausedError):
        return "paused"
    if isinstance(exc, QuotaExceededError):
        return "spent"
    return ""


def _initial_values(spec: ModelSchema) -> dict[str, Any]:
    """Another model's first values: its defaults, and something worth drawing as the prompt."""
    values = spec.defaults()
    if "prompt" in spec:
        # A prompt rule the default does not meet (a short maxLength): left as published.
        with contextlib.suppress(ValidationError):
            values["prompt"] = spec.field("prompt").validate(DEFAULT_PROMPT)
    return values


_classes: dict[tuple[type[ImagineWidget], ModelSchema], type[ImagineWidget]] = {}
_classes_lock = threading.Lock()


def _model_class(base: type[ImagineWidget], spec: ModelSchema) -> type[ImagineWidget]:
    """The widget class of another model: a trait per field of ``spec`` (validated by it),
    and niji 7's own fields taken away. Made once per model schema."""
    with _classes_lock:
        made = _classes.get((base, spec))
        if made is not None:
            return made
        from ._widget_models import trait_names

        taken = frozenset(name for name in dir(base) if name not in FIELD_NAMES)
        names = trait_names(spec, taken)
        initial = _initial_values(spec)
        attrs: dict[str, Any] = {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
            "_spec": spec,
            "_traits_of": names,
        }
        for name in FIELD_NAMES:
            attrs[name] = _Absent()
        for field in spec.fields:
            default = initial[field.name]
            attrs[names[field.name]] = _FieldTrait[Any, Any](field, default).tag(sync=True)
        made = cast("type[ImagineWidget]", type(base.__name__, (base,), attrs))
        _classes[(base, spec)] = made
        return made


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

    # hooks=False: the widget records its runs itself (_run), once, as origin "widget".
    return AsyncSirayClient(secret, base_url, poll=poll, hooks=False)
