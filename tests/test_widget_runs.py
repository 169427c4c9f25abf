"""ImagineWidget runs against real sandbox servers (real HTTP on loopback).

The message handler is driven directly, as the front end would: under ``asyncio.run`` (a
running loop, like a kernel) and with no running loop at all (a plain script).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable

import pytest
from fixtures.widget_fixtures import WAIT, MakeWidget, run_of, send, until

from siray_widgets.errors import AuthenticationError, TaskFailedError
from siray_widgets.sandbox import SandboxHandle
from siray_widgets.task import TaskStatus
from siray_widgets.widget import Generation

pytestmark = pytest.mark.usefixtures("no_siray_env")

SECRET = "sk-test-RUNS-fedcba9876543210"


# -- generate from the front end ------------------------------------------------------------


def test_generate_message_under_a_running_loop_sends_exactly_what_is_shown(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(
        box=sandbox, prompt="a lighthouse in a storm", chaos=20, negative_prompt="people"
    )
    finished: list[Generation] = []
    w.on_finish(finished.append)
    shown = w.request_json

    async def main() -> Generation:
        reply = send(w, "generate", body=shown)
        assert reply["ok"]
        assert not reply["ignored"]
        generation = run_of(w, reply)
        task = await generation
        assert task.status is TaskStatus.SUCCESS
        return generation

    generation = asyncio.run(main())
    assert sandbox.received_bodies()[-1] == shown.encode("utf-8")
    assert generation.request_json == shown
    assert generation.state == "success"
    assert w.task_id == generation.task_id
    assert w.status == "SUCCESS"
    assert w.progress == 100
    assert w.outputs == w.images == generation.images
    assert all(url.startswith("http://127.0.0.1") for url in w.images)
    assert w.result is not None
    assert w.result.task_id == w.task_id
    assert w.error == ""
    assert finished == [generation]
    entry = w.tasks[-1]
    assert entry["id"] == generation.id
    assert (entry["state"], entry["status"], entry["task_id"]) == ("success", "SUCCESS", w.task_id)
    assert entry["request_json"] == shown
    assert (entry["seed"], entry["seed_random"]) == (json.loads(shown)["seed"], True)
    assert entry["finished_at"] >= entry["started_at"]


def test_generate_message_with_no_running_loop_runs_in_the_background(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    reply = send(w, "generate", body=w.request_json)
    task = run_of(w, reply).result(timeout=WAIT)
    assert task.status is TaskStatus.SUCCESS
    assert w.status == "SUCCESS"
    assert len(w.images) >= 1


def test_a_double_click_makes_one_task(make_widget: MakeWidget, sandbox: SandboxHandle) -> None:
    w = make_widget(box=sandbox)

    async def main() -> None:
        first = send(w, "generate", body=w.request_json)
        second = send(w, "generate", body=w.request_json)  # the loop has not run in between
        assert not first["ignored"]
        assert second["ignored"]
        assert second["run"] == first["run"]
        await run_of(w, first)

    asyncio.run(main())
    assert len(w.runs) == 1
    assert len(sandbox.received_bodies()) == 1


def test_a_stale_body_is_refused_rather_than_sending_something_else(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)
    shown = w.request_json
    w.chaos = 77  # changed in Python after the page drew its preview
    reply = send(w, "generate", body=shown)
    assert not reply["ok"]
    assert "press Generate again" in reply["error"]
    assert w.error == reply["error"]
    assert w.runs == []
    assert sandbox.received_bodies() == []


def test_several_runs_at_once_each_keep_their_own_state(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(duration=1.0)
    w = make_widget(box=box)

    async def main() -> list[Generation]:
        runs = []
        for prompt in ("a red fox", "a blue whale", "a green parrot"):
            w.prompt = prompt
            runs.append(w.generate())
        await until(lambda: all(g.task_id for g in runs))
        assert len({g.task_id for g in runs}) == 3
        assert sum(1 for g in runs if not g.done) >= 2  # really concurrent
        await asyncio.gather(*runs)
        return runs

    runs = asyncio.run(main())
    prompts = [json.loads(g.request_json)["prompt"] for g in runs]
    assert prompts == ["a red fox", "a blue whale", "a green parrot"]
    received = [json.loads(body)["prompt"] for body in box.received_bodies()]
    assert sorted(received) == sorted(prompts)
    by_id = {entry["id"]: entry for entry in w.tasks}
    for g in runs:
        entry = by_id[g.id]
        assert entry["task_id"] == g.task_id
        assert entry["state"] == "success"
        assert entry["outputs"] == g.images
        assert json.loads(entry["request_json"])["prompt"] == g.request.prompt
    assert len({tuple(g.images) for g in runs}) == 3
    assert w.task_id == runs[-1].task_id  # the top-level traits follow the newest run


# -- cancel and close -----------------------------------------------------------------------


def test_cancel_message_stops_polling_and_says_so(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(duration=60)
    w = make_widget(box=box)

    async def main() -> Generation:
        generation = w.generate()
        await until(lambda: generation.status != "")  # polling has begun
        reply = send(w, "cancel", run=generation.id)
        assert reply["cancelled"] == [generation.id]
        with pytest.raises(asyncio.CancelledError):
            await generation
        return generation

    generation = asyncio.run(main())
    assert generation.state == "cancelled"
    assert generation.task_id is not None
    assert generation.task_id in generation.note
    assert "may still finish on the server" in generation.note
    assert w.tasks[-1]["state"] == "cancelled"
    assert w.tasks[-1]["finished_at"] is not None
    assert w.error == ""
    assert send(w, "cancel")["cancelled"] == []  # nothing left to stop


def test_close_cancels_every_run(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(duration=60)
    w = make_widget(box=box)
    first = w.generate()  # no running loop: both run on the background loop
    second = w.generate()
    for g in (first, second):
        with pytest.raises((TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)):
            g.result(timeout=0.3)  # still polling
    w.close()
    for g in (first, second):
        with pytest.raises(concurrent.futures.CancelledError):
            g.result(timeout=WAIT)
        assert g.state == "cancelled"
    with pytest.raises(RuntimeError, match="closed"):
        w.generate()


# -- other messages -------------------------------------------------------------------------


def test_random_seed_message_sets_a_seed_in_range(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    reply = send(w, "random-seed")
    assert reply["ok"]
    assert w.seed == reply["seed"]
    assert 0 <= w.seed <= 9_999_999_999
    assert f'"seed": {w.seed}' in w.request_json


def test_every_run_records_the_seed_it_sent_and_a_typed_seed_stays(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox, seed=4242)

    async def main() -> list[Generation]:
        typed = w.generate()
        await typed
        assert w.seed == 4242  # a typed seed stays for the next run
        w.seed = -1
        drawn = w.next_seed
        first = w.generate()
        assert w.next_seed != drawn  # the next random run gets a new seed
        second = w.generate()
        await asyncio.gather(first, second)
        assert (first.seed, first.seed_random) == (drawn, True)
        return [typed, first, second]

    runs = asyncio.run(main())
    sent = [json.loads(body)["seed"] for body in sandbox.received_bodies()]
    # The two random runs go out together: the server may see them in either order.
    assert sent[0] == runs[0].seed
    assert sorted(sent[1:]) == sorted(g.seed for g in runs[1:])
    assert sent[0] == 4242
    assert -1 not in sent
    assert len(set(sent)) == 3
    assert [(e["seed"], e["seed_random"]) for e in w.tasks] == [
        (g.seed, g.seed_random) for g in runs
    ]
    assert [g.seed_random for g in runs] == [False, True, True]


def test_retry_sends_the_same_request_again_seed_included(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox, prompt="a harbour at night")

    async def main() -> tuple[Generation, Generation]:
        first = w.generate()
        await first
        w.prompt = "something else entirely"  # the controls moved on since
        reply = send(w, "retry", run=first.id)
        assert reply["ok"]
        again = run_of(w, reply)
        await again
        return first, again

    first, again = asyncio.run(main())
    assert again.id != first.id
    assert again.request_json == first.request_json
    bodies = sandbox.received_bodies()
    assert bodies[-1] == bodies[-2] == first.request_json.encode()
    assert (again.seed, again.seed_random) == (first.seed, first.seed_random)
    missing = send(w, "retry", run="run-unknown")
    assert not missing["ok"]
    assert "press Generate" in missing["error"]


def test_read_prompt_applies_a_midjourney_suffix_and_says_what_it_set(
    make_widget: MakeWidget,
) -> None:
    w = make_widget(chaos=5, stylize=100)
    reply = send(w, "read-prompt", text="a fox --ar 16:9 --s 250 --chaos 20 --no people")
    assert reply["ok"]
    assert reply["prompt"] == "a fox"
    assert reply["applied"] == (
        "Read from the suffix: aspect ratio 16:9, stylize 250, chaos 20, negative prompt “people”."
    )
    assert (w.prompt, w.aspect_ratio, w.stylize, w.chaos, w.negative_prompt) == (
        "a fox",
        "16:9",
        250,
        20,
        "people",
    )
    before = w.request_json
    bad = send(w, "read-prompt", text="a fox --v 6")
    assert not bad["ok"]
    assert "--v 6" in bad["error"]
    assert "niji 7" in bad["error"]
    assert w.request_json == before  # nothing changed
    plain = send(w, "read-prompt", text="  a poem -- short, with dashes  ")
    assert plain["ok"]
    assert plain["applied"] == ""
    assert w.prompt == "  a poem -- short, with dashes  "  # no flags: the text as typed
    only = send(w, "read-prompt", text="--raw --tile")
    assert only["ok"]
    assert (w.prompt, w.raw, w.tile) == ("  a poem -- short, with dashes  ", True, True)
    assert only["applied"] == "Read from the suffix: raw on, tile on."


def test_hello_is_answered(make_widget: MakeWidget) -> None:
    w = make_widget()
    reply = send(w, "hello")
    assert reply == {"kind": "hello-response", "id": reply["id"], "ok": True}


def test_set_key_message_switches_away_from_the_sandbox_without_echoing_the_key(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    assert (w.sandbox, w.key_source) == (True, "")
    reply = send(w, "set-key", key=f"  {SECRET}\n")
    assert reply == {
        "kind": "set-key-response",
        "id": reply["id"],
        "ok": True,
        "sandbox": False,
        "key_source": "widget",
    }
    assert w.api_key is not None
    assert w.api_key.reveal() == SECRET
    assert SECRET not in json.dumps(w.comm.sent, default=str)
    assert SECRET not in json.dumps(w.get_state(), default=str)
    send(w, "set-key", key="")
    assert (w.api_key, w.sandbox, w.key_source) == (None, True, "")


def test_an_unknown_message_is_reported_not_swallowed(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    reply = send(w, "explode")
    assert not reply["ok"]
    assert "unknown message kind 'explode'" in w.error
    assert "reload the page" in w.error


# -- errors, in plain words and without the key ---------------------------------------------


def test_a_refused_key_says_what_to_do_and_never_shows_the_key(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(api_key="the-only-good-key")
    w = make_widget(box=box)
    w.api_key = SECRET

    async def main() -> Generation:
        generation = w.generate()
        with pytest.raises(AuthenticationError):
            await generation
        return generation

    generation = asyncio.run(main())
    assert generation.state == "error"
    assert "401" in w.error
    assert "Set SIRAY_API_KEY or w.api_key" in w.error
    assert w.error == generation.error == w.tasks[-1]["error"]
    assert w.task_id == ""
    everything = json.dumps([w.get_state(), w.comm.sent, repr(generation)], default=str)
    assert SECRET not in everything


def test_a_failed_task_is_reported_with_its_reason(
    make_widget: MakeWidget, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    box = make_sandbox(failure_share=1.0, seed=1)
    w = make_widget(box=box)
    with pytest.raises(TaskFailedError):
        w.generate().result(timeout=WAIT)
    assert w.status == "FAILURE"
    assert w.tasks[-1]["state"] == "failure"
    assert "failed" in w.error
    assert "Retry" in w.error or "Rephrase" in w.error
    assert w.outputs == []


def test_a_bad_base_url_is_reported_as_a_setting_to_fix(
    make_widget: MakeWidget,
) -> None:
    w = make_widget()
    w.base_url = "ftp://example.invalid"
    with pytest.raises(ValueError, match="must start with https://"):
        w.generate().result(timeout=WAIT)
    assert "fix that setting" in w.error
    assert "bug" not in w.error


def test_an_on_finish_callback_that_raises_is_shown(
    make_widget: MakeWidget, sandbox: SandboxHandle
) -> None:
    w = make_widget(box=sandbox)

    def broken(generation: Generation) -> None:
        raise RuntimeError("callback broke")

    w.on_finish(broken)
    w.generate().result(timeout=WAIT)
    assert "on_finish callback" in w.error
    assert "broken raised RuntimeError: callback broke" in w.error
    assert "bug in siray-widgets" not in w.error
    w.on_finish(broken, remove=True)
    w.generate().result(timeout=WAIT)
    assert w.error == ""


# -- no key at all: the shared sandbox --------------------------------------------------------


def test_without_a_key_the_widget_uses_the_sandbox_and_images_download(
    make_widget: MakeWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIRAY_SANDBOX_DURATION", "0.3")  # if this test starts it
    w = make_widget(aspect_ratio="16:9")
    assert w.sandbox is True

    async def main() -> None:
        await w.generate()

    asyncio.run(main())
    assert w.sandbox is True
    assert w.status == "SUCCESS"
    pictures = w.pil_images()
    assert len(pictures) == len(w.images) >= 1
    width, height = pictures[0].size
    assert width > height  # 16:9 placeholders


def test_a_key_put_in_the_environment_after_the_widget_is_used_and_shown_on_generate(
    make_widget: MakeWidget, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_widget()
    assert (w.sandbox, w.key_source) == (True, "")
    monkeypatch.setenv("SIRAY_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("SIRAY_API_KEY", SECRET)
    shown = w.request_json
    w.generate().result(timeout=WAIT)
    assert (w.sandbox, w.key_source) == (False, "environment")
    assert sandbox.received_bodies() == [shown.encode()]
    assert sandbox.base_url in w.snippets["curl"]
