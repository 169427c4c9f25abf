"""The sandbox's model registry: what ``GET /api/model-verse/models`` serves, and how create
requests for models other than niji 7 are validated (from that model's published schema).

Which registry a sandbox serves is fixed when its app is created:

- ``SIRAY_SANDBOX_REGISTRY=FILE`` (``siray-widgets sandbox --registry FILE``): a saved
  registry answer, ``{"data": [...]}`` (a test fixture, say);
- otherwise the registry this process already loaded (the client's view of the models),
  else the cached copy in the data folder, else the snapshot shipped in the package.

The file is read on first use, so starting a sandbox costs nothing extra.

Tasks of other models are drawn by the same placeholder renderer as niji 7's: from the
prompt, the aspect (an ``aspect_ratio``, a ``size`` such as ``2048x1152``, or ``width`` and
``height``: the nearest of niji 7's ratios) and the seed.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..schema import ASPECT_RATIOS, MODEL_ID, ImageRequest, ModelRequest

if TYPE_CHECKING:
    from ..registry import Registry
    from ..schema import ModelSchema

#: A saved registry answer for sandboxes to serve (path to a JSON file).
REGISTRY_ENV: Final = "SIRAY_SANDBOX_REGISTRY"
MODELS_PATH: Final = "/api/model-verse/models"

_SIZE = re.compile(r"\s*(\d{1,5})\s*[x*×:]\s*(\d{1,5})\s*")
_SEED_MAX = 9_999_999_999
#: Up to this many accepted models are named in the error for an unknown one.
_LISTED = 12


class SandboxRegistry:
    """The registry one sandbox serves; loaded on first use, then fixed."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._body: bytes | None = None

    @classmethod
    def from_environment(cls) -> SandboxRegistry:
        path = os.environ.get(REGISTRY_ENV, "").strip()
        return cls(path or None)

    def registry(self) -> Registry:
        with self._lock:
            if self._registry is None:
                from .. import registry

                self._registry = (
                    registry.load_file(self.path) if self.path is not None else registry.current()
                )
            return self._registry

    def body(self) -> bytes:
        """The answer of ``GET /api/model-verse/models``: the registry as it was received."""
        found = self.registry()
        with self._lock:
            if self._body is None:
                self._body = json.dumps(
                    found.payload, ensure_ascii=True, separators=(",", ":")
                ).encode()
            return self._body

    def model_schema(self, model: str) -> ModelSchema:
        """The schema requests for ``model`` are validated with; a :class:`ValidationError`
        on ``model`` when the sandbox cannot take them."""
        from ..registry import UnknownModelError
        from ..schema import UnsupportedModelError

        try:
            return self.registry().get(model).model_schema()
        except UnknownModelError:
            raise ValidationError("model", model, self._accepted()) from None
        except UnsupportedModelError as exc:
            raise ValidationError(
                "model", model, f"is not supported by the sandbox yet: {exc.reason}"
            ) from None

    def _accepted(self) -> str:
        """What an unknown model name is told: the models accepted, when they are few."""
        others = (e.model_name for e in self.registry() if not e.builtin and e.support().supported)
        names = [MODEL_ID, *sorted(others)]
        if len(names) <= _LISTED:
            return "must be one of " + ", ".join(json.dumps(n) for n in names)
        return f"is not a model of this sandbox's registry (GET {MODELS_PATH} lists them)"


def requested_model(raw: bytes) -> str | None:
    """The ``model`` of a create body, or None (not JSON, not an object, no text model)."""
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) and model != MODEL_ID else None


def parse_model_body(raw: bytes, model: str, models: SandboxRegistry) -> ImageRequest:
    """A create body for ``model`` (not niji 7), validated from the model's schema with
    JSON Schema's strict types, as the placeholder request the renderer draws."""
    body = json.loads(raw, parse_constant=_no_constants)  # requested_model() parsed it already
    request = models.model_schema(model).from_body(body)
    assert isinstance(request, ModelRequest)
    return stand_in(request)


def stand_in(request: ModelRequest) -> ImageRequest:
    """niji 7's request that draws a placeholder for ``request``: prompt, aspect and seed."""
    values = request.to_dict()
    prompt = values.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        prompt = request.model
    negative = values.get("negative_prompt")
    seed = values.get("seed")
    return ImageRequest(
        prompt=prompt,
        negative_prompt=negative if isinstance(negative, str) else "",
        aspect_ratio=nearest_aspect(values),
        seed=seed if isinstance(seed, int) and -1 <= seed <= _SEED_MAX else -1,
    )


def nearest_aspect(values: dict[str, Any]) -> str:
    """The niji 7 aspect ratio closest to what ``values`` ask for (``1:1`` if nothing)."""
    ratio: float | None = None
    for name in ("aspect_ratio", "size", "image_size", "resolution"):
        text = values.get(name)
        match = _SIZE.fullmatch(text) if isinstance(text, str) else None
        if match and int(match[1]) > 0 and int(match[2]) > 0:
            ratio = int(match[1]) / int(match[2])
            break
    width, height = values.get("width"), values.get("height")
    if ratio is None and _positive(width) and _positive(height):
        assert isinstance(width, (int, float))
        assert isinstance(height, (int, float))
        ratio = width / height
    if ratio is None:
        return "1:1"
    target: float = ratio

    def distance(choice: str) -> float:
        w, h = (int(part) for part in choice.split(":"))
        return abs(math.log(target / (w / h)))

    return min(ASPECT_RATIOS, key=distance)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
