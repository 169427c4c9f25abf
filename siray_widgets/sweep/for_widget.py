"""``ImagineWidget.sweep``: a sweep of the widget's current request, on the widget's connection.

The widget's method is one line that calls :func:`widget_sweep`; everything else lives here,
so the sweep's Python API and the Sweep panel (which sends messages that end up here) share
one implementation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..config import API_KEY_ENV, BASE_URL_ENV
from .axes import AxisInput
from .definition import SweepDefinition, define_sweep
from .runner import SweepRun

if TYPE_CHECKING:
    from ..client import AsyncSirayClient, PollSchedule
    from ..config import Secret
    from ..presets import Preset
    from ..schema import ImageRequest


class SweepableWidget(Protocol):
    """What :func:`widget_sweep` needs of a widget (an :class:`ImagineWidget` has it all)."""

    @property
    def request(self) -> ImageRequest: ...
    @property
    def api_key(self) -> Secret | None: ...
    @property
    def base_url(self) -> str | None: ...

    poll: PollSchedule | None


def widget_definition(
    widget: SweepableWidget,
    x: AxisInput = None,
    y: AxisInput = None,
    z: AxisInput = None,
    *,
    seed: int | str | None = None,
    replicates: int = 1,
    presets: Sequence[Preset | str] = (),
) -> SweepDefinition:
    """The sweep of ``widget``'s current request over the axes. The prompt may be a
    permutation prompt (its variants become an axis). With the seed box on "random" and no
    ``seed``, the sweep takes the seed of the last sweep of the same kind in the run store
    (so defining it again, after a restart or with more values, resumes it), else a new one."""
    request = widget.request
    base = request.to_dict()
    prompt = str(base.pop("prompt"))
    definition = define_sweep(
        prompt, x=x, y=y, z=z, base=base, seed=seed, replicates=replicates, presets=presets
    )
    if seed is None and request.seed == -1:
        from ..store import open_store, recording_enabled
        from .resume import with_family_seed

        if recording_enabled():
            try:
                store = open_store()
            except Exception:  # no store: no resume, never a failure
                return definition
            definition, _ = with_family_seed(definition, store)
    return definition


def widget_sweep(
    widget: SweepableWidget,
    x: AxisInput = None,
    y: AxisInput = None,
    z: AxisInput = None,
    *,
    confirm: bool = False,
    start: bool = True,
    seed: int | str | None = None,
    replicates: int = 1,
    presets: Sequence[Preset | str] = (),
    definition: SweepDefinition | None = None,
    **options: Any,
) -> SweepRun:
    """A :class:`SweepRun` of the widget's request over the axes, on the widget's connection
    (its key, base URL and poll schedule), started unless ``start=False``. ``definition``
    runs a given sweep instead (one restored from a contact sheet, say) on that connection.
    ``options`` are :class:`SweepRun`'s (``concurrency``, ``store``, ``resume`` ...)."""
    if definition is None:
        definition = widget_definition(
            widget, x, y, z, seed=seed, replicates=replicates, presets=presets
        )
    elif any(v is not None for v in (x, y, z, seed)) or replicates != 1 or presets:
        raise TypeError("give either a definition or axes (x, y, z, seed, ...), not both")
    secret, base_url, poll = widget.api_key, widget.base_url, widget.poll

    def connect() -> AsyncSirayClient:
        from ..client import AsyncSirayClient

        return AsyncSirayClient(secret, base_url, poll=poll, hooks=False)

    sandbox = _sandbox(secret, base_url)
    options.setdefault("free", sandbox)
    options.setdefault("local", True if sandbox else _local(base_url))
    sweep = SweepRun(definition, client=connect, poll=poll, **options)
    return sweep.start(confirm=confirm) if start else sweep


def _local(base_url: str | None) -> bool:
    """Whether the widget's API is on this machine."""
    from .connection import url_is_local

    url = base_url or os.environ.get(BASE_URL_ENV, "").strip()
    return url_is_local(url) if url else False


def _sandbox(secret: Secret | None, base_url: str | None) -> bool:
    """Whether the widget's requests go to the embedded sandbox (as the client resolves it)."""
    if secret is not None or base_url:
        return False
    return not (os.environ.get(API_KEY_ENV, "").strip() or os.environ.get(BASE_URL_ENV, "").strip())
