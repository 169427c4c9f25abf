"""``ImagineWidget(model=...)`` for the registry's other text-to-image models: traits, rules and
messages from the model's schema, Generate end to end against a sandbox serving the fixture
registry, the price of a run and this session's spend. niji 7's own tests are elsewhere and
unchanged; the workshop quota line is in test_widget_quota.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import traitlets
from fixtures.registry_fixtures import (
    FIXTURE,
    FLUX_DEV,
    FLUX_ULTRA,
    GEMINI,
    NIJI,
    REF2I,
    SEEDREAM,
    VIDEO,
    entry,
    fixture_payload,
)
from fixtures.widget_fixtures import WAIT, MakeWidget, replies, run_of, send

from siray_widgets import registry, session
from siray_widgets.errors import BadRequestError, ValidationError
from siray_widgets.registry import UnknownModelError
from siray_widgets.sandbox import SandboxHandle, start
from siray_widgets.schema import FIELD_NAMES, UnsupportedModelError
from siray_widgets.session import BudgetExceededError, SessionBudget, session_budget
from siray_widgets.task import TaskStatus
from siray_widgets.widget import ImagineWidget


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """A sandbox that serves (and validates with) the fixture registry."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIRAY_SANDBOX_REGISTRY", str(FIXTURE))
        handle = start(duration=0)
    with handle:
        yield handle


@pytest.fixture(autouse=True)
def _fixture_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Widgets made here find the fixture registry as a sandbox's; nothing asks the internet
    (the gateway is a closed port on this machine); every test starts a fresh session."""
    monkeypatch.setenv("SIRAY_SANDBOX_REGISTRY", str(FIXTURE))
    monkeypatch.setenv("SIRAY_GATEWAY_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(registry, "_current", None)
    monkeypatch.setattr(session, "_budget", SessionBudget())
    return


def sent_bodies(box: SandboxHandle) -> list[dict[str, Any]]:
    return [json.loads(body) for body in box.received_bodies()]


# --- fields become traits ---------------------------------------------------------------------


def test_a_model_gets_a_trait_per_field_with_its_schemas_defaults(make_widget: MakeWidget) -> None:
    w = make_widget(model=FLUX_DEV, num_inference_steps=30)
    assert w.model == FLUX_DEV
    assert w.num_inference_steps == 30
    assert (w.guidance_scale, w.num_images, w.enable_safety_checker) == (3.5, 1, True)
    assert w.negative_prompt == ""
    assert w.prompt.strip()  # something worth drawing, as niji 7's widget has
    assert json.loads(w.request_json) == {
        "model": FLUX_DEV,
        "prompt": w.prompt,
        "num_inference_steps": 30,
        "guidance_scale": 3.5,
        "num_images": 1,
        "enable_safety_checker": True,
    }
    assert w.request_json == w.request.to_json()
    # Synced: the model's fields and the widget's own state; none of niji 7's other fields.
    assert {"num_inference_steps", "guidance_scale", "price", "quota"} <= set(w.keys)
    assert not {"chaos", "stylize", "weird", "quality", "tile"} & set(w.keys)
    assert type(w).__name__ == "ImagineWidget"
    assert isinstance(w, ImagineWidget)
    assert repr(w).startswith(f"ImagineWidget(model={FLUX_DEV!r}, prompt=")


def test_the_schema_trait_is_the_models_with_generated_controls(make_widget: MakeWidget) -> None:
    w = make_widget(model=FLUX_DEV)
    schema = w.schema
    assert (schema["model"], schema["builtin"], schema["suffix"]) == (FLUX_DEV, False, False)
    assert [(f["name"], f["control"]) for f in schema["fields"]] == [
        ("model", "choice"),
        ("prompt", "textarea"),
        ("negative_prompt", "textarea"),
        ("num_inference_steps", "slider"),
        ("guidance_scale", "slider"),
        ("num_images", "choice"),
        ("enable_safety_checker", "checkbox"),
    ]
    steps = next(f for f in schema["fields"] if f["name"] == "guidance_scale")
    assert (steps["type"], steps["minimum"], steps["maximum"], steps["multiple_of"]) == (
        "number",
        1,
        10,
        0.5,
    )
    assert [s["name"] for s in schema["skipped"]] == ["image", "loras"]
    assert schema["task_statuses"][0] == "NOT_START"
    assert "trait" not in json.dumps(schema["fields"])  # no name needed renaming


def test_niji_7_fields_a_model_lacks_are_not_there(make_widget: MakeWidget) -> None:
    w = make_widget(model=SEEDREAM)
    for name in ("chaos", "aspect_ratio", "seed", "raw"):
        with pytest.raises(AttributeError, match=f"{SEEDREAM} has no field '{name}'"):
            getattr(w, name)
    with pytest.raises(AttributeError, match="its fields: model, prompt, size"):
        w.chaos = 5
    with pytest.raises(TypeError, match=r"argument 'chaos'.*model, prompt, size"):
        ImagineWidget(model=SEEDREAM, chaos=5)


def test_a_field_niji_7_also_has_follows_the_models_rule(make_widget: MakeWidget) -> None:
    w = make_widget(model=FLUX_ULTRA)
    w.aspect_ratio = "21:9"  # not one of niji 7's ratios
    assert json.loads(w.request_json)["aspect_ratio"] == "21:9"
    with pytest.raises(traitlets.TraitError, match=r'aspect_ratio=.*"9:21"'):
        w.aspect_ratio = "7:1"
    assert w.aspect_ratio == "21:9"
    # Its seed has no default: unset, left out of the body, no seed drawn by the widget.
    assert w.seed is None
    assert "seed" not in json.loads(w.request_json)
    w.seed = 5
    assert json.loads(w.request_json)["seed"] == 5
    w.seed = None
    assert "seed" not in w.request_json


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("num_inference_steps", 51, "num_inference_steps=51 is out of range 1..50"),
        ("num_inference_steps", 2.5, "must be an integer in range 1..50"),
        ("guidance_scale", 4.2, "must be a multiple of 0.5"),
        ("guidance_scale", 0.5, "out of range 1..10"),
        ("num_images", 3, "must be one of 1, 2, 4"),
        ("enable_safety_checker", "no", "must be true or false"),
        ("prompt", "  ", "must not be empty"),
        ("model", NIJI, f'must be one of "{FLUX_DEV}"'),
    ],
)
def test_bad_values_are_refused_with_the_schemas_words(
    make_widget: MakeWidget, name: str, value: Any, words: str
) -> None:
    w = make_widget(model=FLUX_DEV)
    before = getattr(w, name)
    with pytest.raises(traitlets.TraitError, match=name) as caught:
        setattr(w, name, value)
    assert words in str(caught.value)
    assert getattr(w, name) == before
    assert getattr(w.request, name) == before
    with pytest.raises(ValidationError, match=name):
        setattr(w.request, name, value)
    if name != "model":
        with pytest.raises(traitlets.TraitError, match=name):
            ImagineWidget(model=FLUX_DEV, **{name: value})


def test_a_refused_write_from_the_page_is_sent_back(make_widget: MakeWidget) -> None:
    w = make_widget(model=FLUX_DEV)
    w.comm.sent.clear()
    w.set_state({"guidance_scale": 4.25})
    assert w.guidance_scale == 3.5
    assert "multiple of 0.5" in w.error
    resent = [d["state"] for k, d in w.comm.sent if k == "comm_msg" and d["method"] == "update"]
    assert any(state.get("guidance_scale") == 3.5 for state in resent)
    w.set_state({"guidance_scale": 7, "chaos": 3})  # chaos: not a trait of this model
    assert w.guidance_scale == 7
    assert not hasattr(w, "_trait_values") or "chaos" not in w._trait_values


def test_whole_floats_become_ints(make_widget: MakeWidget) -> None:
    """The page cannot tell 4.0 from 4: what Python sends is what the page shows (integers
    past 2**53 are refused too: see test_widget_frontend's generated models)."""
    w = make_widget(model=FLUX_DEV)
    w.guidance_scale = 4.0
    assert w.guidance_scale == 4
    assert type(w.guidance_scale) is int
    assert '"guidance_scale": 4,' in w.request_json


def test_assigning_requests_and_mappings(make_widget: MakeWidget) -> None:
    w = make_widget(model=FLUX_DEV)
    w.request = {"prompt": "a heron", "num_images": 4}
    assert (w.prompt, w.num_images, w.num_inference_steps) == ("a heron", 4, 28)
    w.request = registry.request_for(FLUX_DEV, "a crane", guidance_scale=2, registry=_fixture())
    assert (w.prompt, w.guidance_scale, w.num_images) == ("a crane", 2, 1)
    w.request.num_inference_steps = 12  # moves the trait
    assert w.num_inference_steps == 12
    with pytest.raises(ValueError, match=f"that is a request for {NIJI}"):
        w.request = registry.request_for(NIJI, "a fox")
    with pytest.raises(ValidationError, match="chaos"):
        w.request = {"chaos": 3}


def _fixture() -> registry.Registry:
    return registry.load_file(FIXTURE)


def test_field_names_the_widget_already_uses_get_a_trait_name_of_their_own(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = "acme/clash-t2i"
    schema = {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "enum": [model]},
            "prompt": {"type": "string"},
            "layout": {"type": "string", "enum": ["grid", "single"], "default": "grid"},
            "status": {"type": "boolean", "default": False},
            "generate": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        },
    }
    payload = {"data": [*fixture_payload()["data"], entry(model, schema)]}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(payload))
    monkeypatch.setenv("SIRAY_SANDBOX_REGISTRY", str(path))
    w = make_widget(model=model, layout_="single", generate_=3)
    assert w._traits_of == {
        "model": "model",
        "prompt": "prompt",
        "layout": "layout_",
        "status": "status_",
        "generate": "generate_",
    }
    assert (w.layout_, w.status_, w.generate_) == ("single", False, 3)
    assert callable(w.generate)  # the widget's own names still work
    assert w.status == ""
    body = json.loads(w.request_json)
    assert (body["layout"], body["status"], body["generate"]) == ("single", False, 3)
    traits = {f["name"]: f.get("trait") for f in w.schema["fields"]}
    assert traits == {
        "model": None,
        "prompt": None,
        "layout": "layout_",
        "status": "status_",
        "generate": "generate_",
    }
    w.request.status = True  # by the field's name on the request
    assert w.status_ is True


# --- models that cannot be used ---------------------------------------------------------------


def test_an_unknown_model_is_named_with_close_names(make_widget: MakeWidget) -> None:
    with pytest.raises(UnknownModelError) as caught:
        ImagineWidget(model="black-forest-labs/flux-1-dev-t2x")
    text = str(caught.value)
    assert "model 'black-forest-labs/flux-1-dev-t2x' is not in the Siray model registry" in text
    assert "did you mean black-forest-labs/flux-1-dev-t2i" in text
    assert "siray-widgets models lists them" in text
    assert isinstance(caught.value, traitlets.TraitError)  # as every refused value is
    with pytest.raises(TypeError, match="model must be a model name"):
        ImagineWidget(model=7)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (REF2I, "it needs image input 'images'"),
        (VIDEO, "only text-to-image models are supported, and it is text-to-video"),
    ],
)
def test_an_unsupported_model_says_why(model: str, reason: str) -> None:
    with pytest.raises(UnsupportedModelError) as caught:
        ImagineWidget(model=model)
    assert str(caught.value) == f"model {model!r} is not supported yet: {reason}"


def test_niji_7_by_name_is_the_hand_tuned_widget(make_widget: MakeWidget) -> None:
    w = make_widget(model=NIJI, chaos=5)
    assert type(w)._spec.builtin
    assert w._traits_of == {name: name for name in FIELD_NAMES}
    assert w.chaos == 5
    assert "trait" not in json.dumps(w.schema)


# --- Generate end to end ----------------------------------------------------------------------


def test_generate_sends_the_body_shown_and_shows_the_images(
    make_widget: MakeWidget, box: SandboxHandle
) -> None:
    w = make_widget(model=FLUX_DEV, box=box, prompt="a heron in the reeds", guidance_scale=4.5)
    shown = w.request_json
    reply = send(w, "generate", body=shown)
    assert reply["ok"]
    assert not reply["ignored"]
    task = w.runs[-1].result(timeout=WAIT)
    assert task.status is TaskStatus.SUCCESS
    assert box.received_bodies()[-1] == shown.encode()  # the very bytes shown
    assert len(w.images) == 4
    run = w.tasks[-1]
    assert run["state"] == "success"
    assert "seed" not in run  # this model has no seed field
    assert w.snippets["suffix"] == ""  # Midjourney suffixes are niji 7's
    assert f"request_for(\n    {FLUX_DEV!r}," in w.snippets["python"]
    assert "guidance_scale=4.5" in w.snippets["python"]
    assert json.loads(w.snippets["json"]) == json.loads(shown)
    html = w._snapshot_bundle()["text/html"]
    assert "Guidance scale" in html
    assert "4.5" in html
    assert "Chaos" not in html


def test_a_models_own_seed_is_sent_as_set_and_reused(
    make_widget: MakeWidget, box: SandboxHandle
) -> None:
    w = make_widget(model=FLUX_ULTRA, box=box, seed=1234)
    w.generate().result(timeout=WAIT)
    assert sent_bodies(box)[-1]["seed"] == 1234
    assert (w.tasks[-1]["seed"], w.tasks[-1]["seed_random"]) == (1234, False)
    retry = send(w, "retry", run=w.runs[-1].id)
    assert retry["ok"]
    w.runs[-1].result(timeout=WAIT)
    assert sent_bodies(box)[-1]["seed"] == 1234
    drawn = send(w, "random-seed")
    assert drawn["ok"]
    assert 0 <= w.seed <= 9_999_999_999


def test_the_prompt_is_never_read_as_a_midjourney_suffix(
    make_widget: MakeWidget, box: SandboxHandle
) -> None:
    w = make_widget(model=GEMINI, box=box, prompt="a fox --ar 16:9")
    assert json.loads(w.request_json)["prompt"] == "a fox --ar 16:9"
    reply = send(w, "read-prompt", text="a fox --ar 16:9")
    assert not reply["ok"]
    assert "does not read Midjourney suffixes" in reply["error"]
    assert w.prompt == "a fox --ar 16:9"


# --- prices and the session -------------------------------------------------------------------


def test_the_price_of_the_next_run_and_the_session_line(
    make_widget: MakeWidget, box: SandboxHandle
) -> None:
    w = make_widget(model=FLUX_DEV)
    assert w.price == {
        "run": "$0.0125 per run on Siray (free in the sandbox)",
        "unit": "0.0125",
        "session": "0 tasks sent this session",
    }
    registry.use(registry.load(box.base_url))  # as a display loads it from the gateway
    paid = make_widget(model=FLUX_DEV, box=box)  # a key and a server: not the sandbox
    assert paid.price["run"] == "$0.0125 per run"
    paid.generate().result(timeout=WAIT)
    paid.generate().result(timeout=WAIT)
    assert paid.price["session"] == "2 tasks sent this session, estimated $0.025"
    assert w.price["session"] == paid.price["session"]  # one session per process
    niji = make_widget(box=box)
    assert niji.price["run"] == "$0.05 per run"
    niji.generate().result(timeout=WAIT)
    assert niji.price["session"] == "3 tasks sent this session, estimated $0.075"
    # A run in the offline sandbox is counted and free (the browser test runs one).
    assert w._reserve(sandbox=True).price == 0


def test_a_model_without_a_price_says_so(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = fixture_payload()
    for item in payload["data"]:
        if item["model_name"] == SEEDREAM:
            item["billing_type"] = "per_second"
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(payload))
    monkeypatch.setenv("SIRAY_SANDBOX_REGISTRY", str(path))
    w = make_widget(model=SEEDREAM)
    assert w.price["run"] == "price unknown (free in the sandbox)"
    assert w.price["unit"] is None


def test_a_session_cap_stops_a_run_before_anything_is_sent(
    make_widget: MakeWidget, box: SandboxHandle
) -> None:
    session_budget().spend_cap = Decimal("0.02")
    w = make_widget(model=FLUX_DEV, box=box)
    w.generate().result(timeout=WAIT)  # $0.0125: within the cap
    before = len(box.received_bodies())
    with pytest.raises(BudgetExceededError, match=r"spend cap of \$0.02"):
        w.generate()
    assert "Not sent: One more task ($0.0125) would pass the session's spend cap of $0.02" in (
        w.error
    )
    reply = send(w, "generate", body=w.request_json)  # the button says the same
    assert not reply["ok"]
    assert "spend cap of $0.02" in reply["error"]
    assert len(box.received_bodies()) == before
    assert session_budget().tasks == 1
    assert w.price["session"] == "1 task sent this session, estimated $0.0125 (cap $0.02)"


def test_a_refused_create_is_given_back_to_the_session(
    make_widget: MakeWidget, box: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = fixture_payload()  # the widget's registry allows 80 steps; the server's 50
    for item in payload["data"]:
        if item["model_name"] == FLUX_DEV:
            item["model_extend_info"] = item["model_extend_info"].replace(
                '"maximum":50', '"maximum":80'
            )
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(payload))
    monkeypatch.setenv("SIRAY_SANDBOX_REGISTRY", str(path))
    w = make_widget(model=FLUX_DEV, box=box, num_inference_steps=80)
    with pytest.raises(BadRequestError, match="num_inference_steps"):
        w.generate().result(timeout=WAIT)
    assert "num_inference_steps" in w.error
    budget = session_budget()
    assert (budget.tasks, budget.spend) == (0, 0)


def test_the_session_counts_across_threads_and_keeps_its_cap() -> None:
    s = SessionBudget(spend_cap="1.00")
    errors: list[Exception] = []

    def spend() -> None:
        for _ in range(50):
            try:
                s.reserve("m", Decimal("0.01"))
            except BudgetExceededError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (s.tasks, s.spend, len(errors)) == (100, Decimal("1.00"), 100)
    held = SessionBudget(spend_cap=1)
    first = held.reserve("m", Decimal("0.6"))
    with pytest.raises(BudgetExceededError, match="would pass the session's spend cap"):
        held.reserve("m", Decimal("0.6"))
    first.release()
    held.reserve("m", Decimal("0.6"))
    with pytest.raises(BudgetExceededError, match="price of m is unknown"):
        held.reserve("m")
    unpriced = SessionBudget()
    unpriced.reserve("a")
    unpriced.reserve("a")
    unpriced.reserve("b", Decimal("0.05"))
    assert unpriced.describe() == "3 tasks sent this session, estimated $0.05 + 2 of unknown price"
    with pytest.raises(ValueError, match="dollars >= 0"):
        SessionBudget(spend_cap="-1")


def test_listeners_are_told_and_not_kept_alive() -> None:
    import gc
    import weakref

    class Listener:
        def __init__(self) -> None:
            self.heard = 0

        def changed(self, budget: SessionBudget) -> None:
            self.heard += 1

    s = SessionBudget()
    kept, gone = Listener(), Listener()
    s.on_change(kept.changed)
    s.on_change(gone.changed)
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None  # a bound method is held weakly (a closed widget is not kept)
    s.reserve("m", Decimal("0.01"))
    assert kept.heard == 1
    s.on_change(kept.changed, remove=True)
    s.reserve("m", Decimal("0.01"))
    assert kept.heard == 1


def test_replies_of_a_model_widget_never_carry_niji_fields(make_widget: MakeWidget) -> None:
    w = make_widget(model=SEEDREAM)
    send(w, "hello")
    assert replies(w, "hello-response")[-1]["ok"]
    state = w.get_state()
    assert "chaos" not in state
    assert "size" in state
    assert state["size"] is None  # optional without a default: not sent until chosen
    assert "size" not in json.loads(w.request_json)


# --- history: another model's runs restore into its own widget --------------------------------


def test_a_models_runs_restore_and_rerun_in_its_own_widget_only(
    make_widget: MakeWidget, box: SandboxHandle, store_home: Path
) -> None:
    """A run of a generated model is recorded with its own body; Use all / Use seed / Rerun put
    it back through that model's fields; a niji 7 widget refuses it and names the widget that
    takes it (and a niji 7 run is refused by the model's widget)."""
    from siray_widgets.store import open_store

    w = make_widget(model=FLUX_ULTRA, box=box, prompt="a heron at dusk", seed=4321)
    first = w.generate()
    first.result(timeout=WAIT)
    store = open_store()
    try:
        run = store.get(first.task_id)
    finally:
        store.close()
    assert run.model == FLUX_ULTRA
    assert json.loads(run.request_json) == sent_bodies(box)[-1]

    w.request = {"prompt": "something else", "seed": 7}
    reply = send(w, "history-restore", run=run.id, what="all")
    assert reply["ok"], reply
    assert (w.request.prompt, w.request.seed) == ("a heron at dusk", 4321)
    assert set(reply["changed"]) == {"prompt", "seed"}
    send(w, "history-undo")
    assert (w.request.prompt, w.request.seed) == ("something else", 7)
    send(w, "history-restore", run=run.id, what="seed")
    assert (w.request.prompt, w.request.seed) == ("something else", 4321)

    again = run_of(w, send(w, "history-rerun", run=run.id))
    again.result(timeout=WAIT)
    assert sent_bodies(box)[-1] == json.loads(run.request_json)

    niji = make_widget(box=box, prompt="a fox")
    refused = send(niji, "history-restore", run=run.id, what="all")
    assert refused["ok"] is False
    assert f"ImagineWidget(model={FLUX_ULTRA!r})" in refused["error"]
    assert niji.request.prompt == "a fox"
    assert send(niji, "history-rerun", run=run.id)["ok"] is False
    niji.generate().result(timeout=WAIT)
    refused = send(w, "history-rerun", run=niji.runs[-1].history_id)
    assert refused["ok"] is False
    assert "midjourney/midjourney-niji-7-t2i" in refused["error"]


def test_a_sweep_of_another_model_is_refused_saying_which_widget_sweeps(
    make_widget: MakeWidget, box: SandboxHandle
) -> None:
    from siray_widgets.sweep import SweepError

    w = make_widget(model=FLUX_DEV, box=box)
    before = len(box.received_bodies())
    with pytest.raises(SweepError, match=r"sweeps are built on midjourney/midjourney-niji-7-t2i"):
        w.sweep(x=("num_inference_steps", [10, 20]))
    assert len(box.received_bodies()) == before
