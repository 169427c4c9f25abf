"""ImagineWidget without running tasks: traits, validation, the request, state sent and kept."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
import traitlets
from fixtures.widget_fixtures import MakeWidget, send

from siray_widgets.config import Secret, redact
from siray_widgets.errors import ValidationError
from siray_widgets.schema import FIELDS, FIELDS_BY_NAME, TASK_STATUSES, ImageRequest, schema_json
from siray_widgets.suffix import parse_prompt
from siray_widgets.widget import DEFAULT_PROMPT, STATUS_LABELS, ImagineWidget

pytestmark = pytest.mark.usefixtures("no_siray_env")

SECRET = "sk-test-STATE-0123456789abcdef"


def sent_request(w: ImagineWidget) -> ImageRequest:
    """The request Generate would send now (``request_json`` read back)."""
    return ImageRequest(**json.loads(w.request_json))


def updates(w: ImagineWidget) -> list[dict[str, Any]]:
    """State updates sent to the front end since the widget was made."""
    return [
        data["state"]
        for kind, data in w.comm.sent
        if kind == "comm_msg" and data.get("method") == "update"
    ]


# -- defaults and validation ----------------------------------------------------------------


def test_defaults_come_from_the_schema_plus_a_prompt(make_widget: MakeWidget) -> None:
    w = make_widget()
    for f in FIELDS:
        expected = DEFAULT_PROMPT if f.name == "prompt" else f.default
        assert getattr(w, f.name) == expected, f.name
    assert w.prompt.strip()
    assert w.request == ImageRequest(prompt=DEFAULT_PROMPT)
    # The body sent carries the seed drawn for the next run (seed -1 means random).
    assert w.request_json == ImageRequest(prompt=DEFAULT_PROMPT, seed=w.next_seed).to_json()
    assert w.schema == {
        **schema_json(),
        "task_statuses": list(TASK_STATUSES),
        "task_status_labels": STATUS_LABELS,
    }
    assert set(STATUS_LABELS) == set(TASK_STATUSES)
    assert STATUS_LABELS["NOT_START"] == "accepted"  # "not start" read like a typo
    assert (w.task_id, w.status, w.progress, w.outputs, w.error, w.tasks) == ("", "", 0, [], "", [])
    assert (w.sandbox, w.thumbnails) == (True, {})


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("chaos", 150, "chaos=150 is out of range 0..100"),
        ("chaos", -1, "chaos=-1 is out of range 0..100"),
        ("stylize", 1001, "stylize=1001 is out of range 0..1000"),
        ("weird", 3001, "weird=3001 is out of range 0..3000"),
        ("seed", 10_000_000_000, "seed=10000000000 is out of range -1..9999999999"),
        ("seed", -2, "seed=-2 is out of range -1..9999999999"),
        ("chaos", 2.5, "range 0..100"),
        ("chaos", True, "not a boolean"),
        ("quality", "3", 'one of "1", "2", "4"'),
        ("aspect_ratio", "5:4", '"16:9"'),
        ("model", "other/model", "midjourney/midjourney-niji-7-t2i"),
        ("prompt", "   ", "must not be empty"),
        ("raw", "yes", "true or false"),
    ],
)
def test_bad_values_raise_trait_errors_naming_field_and_allowed_values(
    make_widget: MakeWidget, name: str, value: Any, words: str
) -> None:
    w = make_widget()
    before = getattr(w, name)
    with pytest.raises(traitlets.TraitError, match=name) as caught:
        setattr(w, name, value)
    assert words in str(caught.value)
    assert getattr(w, name) == before
    assert getattr(w.request, name) == before
    # The same rule at construction time.
    with pytest.raises(traitlets.TraitError, match=name):
        ImagineWidget(**{name: value})


def test_quality_accepts_the_int_people_type(make_widget: MakeWidget) -> None:
    w = make_widget(quality=2)
    assert w.quality == "2"
    assert '"quality": "2"' in w.request_json


def test_unknown_constructor_arguments_are_refused(make_widget: MakeWidget) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'chaoss'"):
        ImagineWidget(chaoss=10)
    with pytest.raises(TypeError, match="'layout'"):
        ImagineWidget(layout={"width": "100px"})
    with pytest.raises(TypeError, match="both by position and by name"):
        ImagineWidget("a fox", prompt="a cat")
    with pytest.raises(TypeError, match="'seed_locked'"):  # seeds now stay until changed
        ImagineWidget(seed_locked=True)
    w = make_widget("a fox in the snow", chaos=5, seed=7)
    assert (w.prompt, w.chaos, w.seed) == ("a fox in the snow", 5, 7)
    assert w.request_json == w.request.to_json()  # a concrete seed is sent as it is


# -- traits and the request stay one thing --------------------------------------------------


def test_setting_a_trait_updates_request_and_json_and_snippets(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    w.chaos = 50
    assert w.request.chaos == 50
    assert sent_request(w) == ImageRequest(**{**w.request.to_dict(), "seed": w.next_seed})
    assert '"chaos": 50' in w.request_json
    assert w.snippets["json"] == w.request_json
    assert "--chaos 50" in w.snippets["suffix"]


def test_the_suffix_snippet_is_the_whole_midjourney_prompt_without_defaults(
    make_widget: MakeWidget,
) -> None:
    w = make_widget(prompt="a red fox", aspect_ratio="16:9", stylize=250, negative_prompt="dogs")
    assert w.snippets["suffix"] == "a red fox --ar 16:9 --stylize 250 --no dogs --niji 7"
    assert parse_prompt(w.snippets["suffix"]) == w.request  # random seed: no --seed
    w.seed, w.raw = 1234, True
    assert w.snippets["suffix"] == (
        "a red fox --ar 16:9 --stylize 250 --seed 1234 --raw --no dogs --niji 7"
    )
    assert parse_prompt(w.snippets["suffix"]) == w.request
    w.request = ImageRequest(prompt="only defaults")
    assert w.snippets["suffix"] == "only defaults --niji 7"
    w.negative_prompt = "text, watermark"
    assert json.loads(w.request_json)["negative_prompt"] == "text, watermark"
    w.negative_prompt = "  "
    assert "negative_prompt" not in json.loads(w.request_json)  # blank: left out, as sent


def test_assigning_to_the_request_moves_the_traits(make_widget: MakeWidget) -> None:
    w = make_widget()
    w.request.stylize = 300
    assert w.stylize == 300
    assert '"stylize": 300' in w.request_json
    with pytest.raises(ValidationError, match=r"chaos=150 is out of range 0\.\.100"):
        w.request.chaos = 150
    assert w.chaos == 0
    assert w.request.chaos == 0

    w.request = ImageRequest(prompt="a lighthouse", aspect_ratio="9:16", raw=True)
    assert (w.prompt, w.aspect_ratio, w.raw, w.stylize) == ("a lighthouse", "9:16", True, 100)
    w.request = {"prompt": "a harbour", "tile": True}
    assert (w.prompt, w.tile, w.raw) == ("a harbour", True, False)
    assert w.request_json == ImageRequest(prompt="a harbour", tile=True, seed=w.next_seed).to_json()


def test_python_snippet_rebuilds_the_same_request(make_widget: MakeWidget) -> None:
    w = make_widget(prompt='it\'s a "quoted" fox\nnew line', chaos=20, quality="4", seed=12345)
    source = w.snippets["python"]
    head = source.split("with SirayClient", 1)[0]  # the part that builds the request
    namespace: dict[str, Any] = {}
    exec(head, namespace)
    assert namespace["request"] == w.request


def test_curl_sends_the_body_and_leaves_the_key_in_the_shell(
    make_widget: MakeWidget,
) -> None:
    import shlex

    w = make_widget(prompt="it's a fox's den")
    curl = w.snippets["curl"]
    assert "$SIRAY_API_KEY" in curl
    assert "https://api.siray.ai/v1/images/generations/async" in curl
    words = shlex.split(curl.replace("\\\n", " "), posix=True)
    assert words[words.index("-d") + 1] == w.request_json  # survives shell quoting intact


# -- the seed -------------------------------------------------------------------------------


def test_a_random_seed_is_drawn_in_advance_so_the_body_shown_is_the_body_sent(
    make_widget: MakeWidget,
) -> None:
    seed_field = FIELDS_BY_NAME["seed"]
    assert seed_field.maximum is not None
    w = make_widget()
    assert w.seed == -1
    assert 0 <= w.next_seed <= seed_field.maximum
    assert json.loads(w.request_json)["seed"] == w.next_seed
    assert json.loads(w.snippets["json"])["seed"] == w.next_seed
    assert "--seed" not in w.snippets["suffix"]  # random is what leaving --seed out means
    rolled = w.random_seed()  # "New seed": a concrete one, kept
    assert w.seed == rolled
    assert 0 <= rolled <= seed_field.maximum
    assert json.loads(w.request_json)["seed"] == rolled
    assert f"--seed {rolled}" in w.snippets["suffix"]
    w.seed = -1
    assert json.loads(w.request_json)["seed"] == w.next_seed
    others = {make_widget().next_seed for _ in range(5)}
    assert len(others) > 1  # drawn, not a constant


# -- front end writes -----------------------------------------------------------------------


def test_front_end_writes_to_fields_apply_and_read_only_state_is_protected(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    w.set_state({"chaos": 30, "seed_locked": False})  # an older page's trait: dropped
    assert w.chaos == 30
    assert w.request.chaos == 30
    w.comm.sent.clear()
    seed = w.next_seed
    w.set_state(
        {
            "request_json": "{}",
            "status": "SUCCESS",
            "outputs": ["javascript:alert(1)"],
            "next_seed": 5,
            "thumbnails": {"x": "data:image/svg+xml,<svg onload=alert(1)>"},
        }
    )
    assert sent_request(w) == ImageRequest(**{**w.request.to_dict(), "seed": seed})
    assert (w.status, w.outputs, w.next_seed, w.thumbnails) == ("", [], seed, {})
    resent = {k for state in updates(w) for k in state}
    assert {"request_json", "status", "outputs", "next_seed", "thumbnails"} <= resent


def test_a_refused_front_end_value_is_reported_and_resynced(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    w.comm.sent.clear()
    w.set_state({"chaos": 150})
    assert w.chaos == 0
    assert "chaos=150 is out of range 0..100" in w.error
    assert any(state.get("chaos") == 0 for state in updates(w))


# -- the key never leaves Python ------------------------------------------------------------


def test_key_is_nowhere_in_state_repr_or_mimebundle(make_widget: MakeWidget) -> None:
    w = make_widget(api_key=SECRET, prompt="<img src=x onerror=alert(1)>")
    assert w.sandbox is False
    assert w.key_source == "python"
    assert w.api_key is not None
    assert w.api_key.reveal() == SECRET
    assert SECRET not in repr(w.api_key)
    w.chaos = 12
    state = json.dumps(w.get_state(), default=str)
    bundle = json.dumps(w._repr_mimebundle_(), default=str)
    sent = json.dumps(w.comm.sent, default=str)
    for text in (state, repr(w), str(w), bundle, sent, json.dumps(w.snippets)):
        assert SECRET not in text
    # The static fallback shows the prompt as text, never as markup.
    html = w._repr_mimebundle_()[0]["text/html"]
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_key_from_environment_counts_and_is_not_copied_into_state(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRAY_API_KEY", SECRET)
    w = make_widget()
    assert (w.sandbox, w.key_source) == (False, "environment")
    assert w.api_key is None  # nothing set on the widget itself
    assert SECRET not in json.dumps(w.get_state(), default=str)
    w.api_key = "  "  # blank means unset
    assert w.api_key is None
    with pytest.raises(TypeError, match="must be a str"):
        w.api_key = 12345


def test_repr_is_short_and_informative(make_widget: MakeWidget) -> None:
    w = make_widget(prompt="a fox", aspect_ratio="16:9")
    assert repr(w) == "ImagineWidget(prompt='a fox', aspect_ratio='16:9', sandbox=True)"
    data, _ = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == repr(w)


# -- a key that cannot be one is refused, in words that never show it -----------------------

BROKEN_KEYS = [
    "sk-live-SECRET\nPART2",
    "sk-live-SECRET\x00PART2",
    "sk-live-SECRET\x7fPART2",
    "sk-live-SECRET PART2",
    "sk-live-SECRET\u2019PART2",  # a typographic quote from a rich-text paste
]


@pytest.mark.parametrize("key", BROKEN_KEYS)
def test_a_key_with_a_character_keys_never_have_is_refused_without_echoing_it(
    make_widget: MakeWidget, key: str
) -> None:
    w = make_widget()
    with pytest.raises(ValueError, match="API key was not used") as caught:
        w.api_key = key
    assert "SECRET" not in str(caught.value)
    assert "PART2" not in str(caught.value)
    assert "API key was not used" in w.error
    assert (w.api_key, w.sandbox, w.key_source) == (None, True, "")  # nothing changed

    w.api_key = SECRET
    reply = send(w, "set-key", key=key)  # pasted into the widget's key field
    assert not reply["ok"]
    assert "API key was not used" in reply["error"]
    assert w.api_key is not None
    assert w.api_key.reveal() == SECRET  # the key in use stays
    assert (w.sandbox, w.key_source) == (False, "python")
    everything = json.dumps([w.get_state(), w.comm.sent], default=str)
    assert "SECRET" not in everything.replace(SECRET, "")
    assert "PART2" not in everything

    with pytest.raises(ValueError, match="API key was not used"):
        ImagineWidget(api_key=key)


def test_redact_masks_the_key_however_an_error_quotes_it() -> None:
    key = "sk-live-SECRET\nPART2-and-more"
    secret = Secret(key)
    quoted = [
        key,
        f"Illegal header value b'Bearer {key!r}'",  # an HTTP library's repr of the header
        repr(key.encode()),
        json.dumps({"key": key}),
        urllib.parse.quote(key),
        "the server saw 'sk-live-SECRET' and then 'PART2-and-more'",  # cut at the line break
    ]
    for text in quoted:
        masked = redact(text, secret)
        assert "SECRET" not in masked, text
        assert "PART2-and-more" not in masked, text
        assert "***" in masked
    assert redact("nothing to hide", secret) == "nothing to hide"
    assert redact("a plain sk-key", None) == "a plain sk-key"


# -- where requests go: base_url and the environment ----------------------------------------


def test_setting_base_url_updates_badge_key_source_and_snippets(make_widget: MakeWidget) -> None:
    w = make_widget(chaos=5)
    assert (w.sandbox, w.key_source) == (True, "")
    w.base_url = " https://proxy.example.com "
    assert w.base_url == "https://proxy.example.com"
    assert (w.sandbox, w.key_source) == (False, "")  # a server of its own: no sandbox
    assert "https://proxy.example.com/v1/images/generations/async" in w.snippets["curl"]
    python = w.snippets["python"]
    assert "SirayClient(base_url='https://proxy.example.com')" in python
    namespace: dict[str, Any] = {}
    exec(python.split("with SirayClient", 1)[0], namespace)  # still builds the same request
    assert namespace["request"] == sent_request(w)
    w.base_url = None
    assert (w.sandbox, w.key_source) == (True, "")
    assert "https://api.siray.ai/" in w.snippets["curl"]
    assert "SirayClient()" in w.snippets["python"]
    with pytest.raises(TypeError, match="base_url must be a str"):
        w.base_url = 8080  # type: ignore[assignment]


def test_a_key_put_in_the_environment_later_shows_when_displayed(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_widget()
    assert (w.sandbox, w.key_source) == (True, "")
    monkeypatch.setenv("SIRAY_API_KEY", SECRET)
    assert repr(w).endswith("sandbox=False)")
    w._repr_mimebundle_()  # what displaying it again in a cell does
    assert (w.sandbox, w.key_source) == (False, "environment")
    monkeypatch.delenv("SIRAY_API_KEY")
    w._repr_mimebundle_()
    assert (w.sandbox, w.key_source) == (True, "")
    assert SECRET not in json.dumps([w.get_state(), w.comm.sent], default=str)


def test_front_end_writes_to_names_that_are_not_traits_are_dropped(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    w.set_state({"bogus": 1, "chaos": 12})  # an older or newer page
    assert w.chaos == 12
    assert not hasattr(w, "bogus")
