"""The claude policy, driven through the real anthropic SDK against a fake Messages API."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from fakeapi import (
    FakeMessagesAPI,
    Turn,
    cut_off,
    disconnect,
    http_error,
    malformed,
    overloaded_mid_stream,
    text_only,
    tool_use,
)

from clive.agent.actions import ACTION_TYPES, Done, Keys, Run, Wait, WriteFile, parse_action
from clive.agent.policies.claude import ClaudePolicy
from clive.agent.policies.tools import TOOLS
from clive.agent.policy import InvalidReply, Observation, PolicyError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_PROFILE",
        "CLIVE_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config"))


@pytest.fixture
def api():
    with FakeMessagesAPI() as server:
        yield server


class Sleeps(list):
    """An injected sleep that only remembers how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_policy(api: FakeMessagesAPI, **kw: Any) -> ClaudePolicy:
    kw.setdefault("sleep", Sleeps())
    return ClaudePolicy("Make the benchmark faster.", base_url=api.url, api_key="test-key", **kw)


def observe(cycle: int, screen: str | None = None, feedback: str | None = None) -> Observation:
    return Observation(
        cycle=cycle,
        kind="full" if cycle == 1 else "diff",
        screen=screen if screen is not None else f"$ echo {cycle}\n{cycle}\n$",
        cursor=(2, 2),
        title="bash",
        last_exit_code=0,
        elapsed=cycle * 0.5,
        state="[at prompt]",
        feedback=feedback,
    )


def without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_cache_control(v) for v in value]
    return value


def assert_valid_conversation(messages: list[dict[str, Any]]) -> None:
    """What the real API insists on: alternating turns, every tool_use answered right after."""
    assert messages and messages[0]["role"] == "user" and messages[-1]["role"] == "user"
    for i, message in enumerate(messages):
        assert message["role"] == ("user" if i % 2 == 0 else "assistant")
        assert message["content"]
    assert not any(b["type"] == "tool_result" for b in messages[0]["content"])
    for asked, answered in zip(messages[1::2], messages[2::2], strict=True):
        uses = [b["id"] for b in asked["content"] if b["type"] == "tool_use"]
        kinds = [b["type"] for b in answered["content"]]
        results = [b["tool_use_id"] for b in answered["content"] if b["type"] == "tool_result"]
        assert results == uses
        assert kinds[: len(results)] == ["tool_result"] * len(results)  # tool results come first


def test_streamed_tool_use_becomes_the_action(api):
    api.script = [tool_use("run", {"command": "make bench"}, text="Build it first.", chunk=3)]
    decision = make_policy(api).decide(observe(1))
    assert decision.action == Run(command="make bench")
    assert decision.reasoning == "Build it first."
    assert decision.usage.input_tokens == 120 and decision.usage.output_tokens == 30
    request = api.requests[0]
    assert request.body["stream"] is True
    sent_key = request.headers.get("x-api-key") or request.headers.get("authorization")
    assert sent_key in ("test-key", "Bearer test-key")
    assert request.body["messages"][0]["content"][-1]["text"] == observe(1).render()


def test_keys_tool_carries_its_wait(api):
    keys = {"keys": ":wq<Enter>", "wait": {"kind": "prompt", "timeout": 5}}
    api.script = [tool_use("keys", keys)]
    decision = make_policy(api).decide(observe(1))
    assert decision.action == Keys(keys=":wq<Enter>", wait=Wait(kind="prompt", timeout=5.0))


def test_requests_carry_eight_tools_and_cache_the_prefix(api):
    api.script = [tool_use("done", {"summary": "nothing to do"})]
    make_policy(api).decide(observe(1))
    body = api.requests[0].body
    assert [tool["name"] for tool in body["tools"]] == list(ACTION_TYPES)
    assert len(body["tools"]) == 8
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert not any("cache_control" in tool for tool in body["tools"][:-1])
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["system"][-1]["text"] == "Make the benchmark faster."
    assert body["tool_choice"]["type"] == "auto"
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}


def test_every_tool_schema_is_what_parse_action_accepts():
    samples = {
        "keys": {"keys": "ls<Enter>", "wait": {"kind": "idle", "value": 200, "timeout": 3}},
        "run": {"command": "make", "timeout": 60},
        "read_file": {"path": "a.c", "start": 1, "end": 9},
        "write_file": {"path": "a.c", "content": "int x;\n"},
        "edit_file": {"path": "a.c", "old": "x", "new": "y"},
        "checkpoint": {"message": "baseline"},
        "result": {"metric": 1.5, "status": "keep", "description": "unrolled"},
        "done": {"summary": "finished"},
    }
    for tool in TOOLS:
        schema = tool["input_schema"]
        assert tool["description"] and schema["type"] == "object"
        sample = samples[tool["name"]]
        assert set(sample) == set(schema["properties"])
        assert set(schema["required"]) <= set(sample)
        parse_action({"type": tool["name"], **sample})
        parse_action({"type": tool["name"], **{k: sample[k] for k in schema["required"]}})


def test_the_next_observation_answers_the_tool_call(api):
    api.script = [tool_use("run", {"command": "make"}), tool_use("done", {"summary": "ok"})]
    policy = make_policy(api)
    policy.decide(observe(1))
    second = observe(2, feedback="exit 0 in 2.1s")
    policy.decide(second)
    messages = api.requests[1].messages
    assert_valid_conversation(messages)
    tool_id = api.replies[0]["content"][-1]["id"]
    assert messages[1]["content"][-1]["id"] == tool_id
    answer = messages[2]["content"]
    assert len(answer) == 1 and answer[0]["type"] == "tool_result"
    assert answer[0]["tool_use_id"] == tool_id
    assert answer[0]["content"] == second.render()
    assert "exit 0 in 2.1s" in answer[0]["content"]
    assert "is_error" not in answer[0]


def test_529_then_success_retries_with_backoff(api):
    api.script = [http_error(529), http_error(529), tool_use("run", {"command": "make"})]
    sleeps = Sleeps()
    decision = make_policy(api, sleep=sleeps).decide(observe(1))
    assert decision.action == Run(command="make")
    assert len(api.requests) == 3
    assert len(sleeps) == 2
    assert 0.3 <= sleeps[0] <= 0.7 and 0.7 <= sleeps[1] <= 1.3  # 0.5 s, then doubled, jittered


def test_retry_after_header_sets_the_wait(api):
    api.script = [http_error(429, retry_after="2"), tool_use("run", {"command": "make"})]
    sleeps = Sleeps()
    make_policy(api, sleep=sleeps).decide(observe(1))
    assert sleeps == [2.0]


def test_network_failures_and_overload_inside_a_stream_are_retried(api):
    api.script = [disconnect(), overloaded_mid_stream(), tool_use("done", {"summary": "ok"})]
    sleeps = Sleeps()
    decision = make_policy(api, sleep=sleeps).decide(observe(1))
    assert decision.action == Done(summary="ok")
    assert len(api.requests) == 3 and len(sleeps) == 2


def test_gives_up_after_max_retries_in_one_line(api):
    api.script = [http_error(529)] * 3
    sleeps = Sleeps()
    with pytest.raises(PolicyError) as failure:
        make_policy(api, max_retries=2, sleep=sleeps).decide(observe(1))
    assert str(failure.value) == "model API failed after 3 tries: 529 Overloaded"
    assert len(api.requests) == 3 and len(sleeps) == 2


def test_401_is_a_one_line_policy_error_without_retries(api):
    api.script = [http_error(401, "invalid x-api-key")]
    with pytest.raises(PolicyError) as failure:
        make_policy(api).decide(observe(1))
    message = str(failure.value)
    assert message.startswith("the API rejected the key (401)")
    assert "invalid x-api-key" in message
    assert "\n" not in message and "Traceback" not in message
    assert len(api.requests) == 1


def test_400_says_what_the_api_said(api):
    api.script = [http_error(400, "prompt is too long: 210000 tokens > 200000 maximum")]
    with pytest.raises(PolicyError, match=r"\(400\): prompt is too long") as failure:
        make_policy(api).decide(observe(1))
    assert "\n" not in str(failure.value)
    assert len(api.requests) == 1


def _error_answer(request) -> list[dict[str, Any]]:
    assert_valid_conversation(request.messages)
    return request.messages[-1]["content"]


def test_malformed_tool_input_is_sent_back_as_an_error_result(api):
    api.script = [malformed("run", '{"command": "make" "bench"}'), tool_use("run", {"command": "make"})]
    policy = make_policy(api)
    with pytest.raises(InvalidReply, match="not valid JSON") as invalid:
        policy.decide(observe(1))
    assert invalid.value.usage.input_tokens == 120  # the tokens still count
    decision = policy.decide(observe(2))
    assert decision.action == Run(command="make")
    answer = _error_answer(api.requests[1])
    assert answer[0]["tool_use_id"] == api.replies[0]["content"][-1]["id"]
    assert answer[0]["is_error"] is True
    assert "not valid JSON" in answer[0]["content"]
    assert answer[1]["text"] == observe(2).render()


def test_an_error_the_loop_repeats_as_feedback_is_sent_once(api):
    api.script = [tool_use("shell", {"command": "ls"}), tool_use("run", {"command": "ls"})]
    policy = make_policy(api)
    with pytest.raises(InvalidReply) as invalid:
        policy.decide(observe(1))
    policy.decide(observe(2, feedback=f"[your last reply was not usable: {invalid.value}]"))
    answer = _error_answer(api.requests[1])
    assert answer[0]["content"] == str(invalid.value)
    assert answer[1]["text"] == observe(2).render()


def test_unknown_tool_and_bad_fields_are_invalid_replies(api):
    api.script = [
        tool_use("shell", {"command": "ls"}),
        tool_use("run", {"cmd": "ls"}),
        tool_use("run", {"command": "ls"}),
    ]
    policy = make_policy(api)
    with pytest.raises(InvalidReply, match="unknown tool 'shell'"):
        policy.decide(observe(1))
    with pytest.raises(InvalidReply, match="bad run input: run: unknown field 'cmd'"):
        policy.decide(observe(2))
    assert "unknown tool 'shell'" in _error_answer(api.requests[1])[0]["content"]
    policy.decide(observe(3))
    assert "unknown field 'cmd'" in _error_answer(api.requests[2])[0]["content"]


def test_a_reply_without_a_tool_call_is_an_invalid_reply(api):
    api.script = [text_only("I think the build is slow."), tool_use("done", {"summary": "ok"})]
    policy = make_policy(api)
    with pytest.raises(InvalidReply, match="no tool call"):
        policy.decide(observe(1))
    policy.decide(observe(2))
    messages = api.requests[1].messages
    assert_valid_conversation(messages)
    assert messages[1]["content"] == [{"type": "text", "text": "I think the build is slow."}]
    answer = messages[2]["content"]
    assert answer[0]["type"] == "text" and "no tool call" in answer[0]["text"]
    assert answer[1]["text"] == observe(2).render()


def test_max_tokens_inside_a_tool_input_is_an_invalid_reply(api):
    partial = '{"path": "big.c", "content": "int main(void) {\\n  retur'
    api.script = [
        cut_off("write_file", partial, text="Writing the file."),
        tool_use("write_file", {"path": "big.c", "content": "int main(void) { return 0; }\n"}),
    ]
    policy = make_policy(api, max_tokens=64)
    with pytest.raises(InvalidReply, match=r"max_tokens \(64\)"):
        policy.decide(observe(1))
    decision = policy.decide(observe(2))
    assert isinstance(decision.action, WriteFile)
    answer = _error_answer(api.requests[1])
    assert answer[0]["is_error"] is True and "max_tokens" in answer[0]["content"]


def test_max_tokens_before_any_tool_call_is_an_invalid_reply(api):
    api.script = [text_only("Let me think at length", stop_reason="max_tokens")]
    with pytest.raises(InvalidReply, match="max_tokens"):
        make_policy(api).decide(observe(1))


def test_context_stays_bounded_over_30_cycles(api):
    api.script = lambda body: tool_use("run", {"command": f"echo {len(body['messages'])}"})
    policy = make_policy(api, keep_recent=6)
    screen = "\n".join(f"row {r:02d} " + "x" * 70 for r in range(24))  # a busy 80x24 screen
    for cycle in range(1, 31):
        feedback = f"exit 0 in 0.1s (cycle {cycle - 1})" if cycle > 1 else None
        policy.decide(observe(cycle, screen=screen, feedback=feedback))
    sizes = [len(json.dumps(request.messages)) for request in api.requests]
    for request in api.requests:
        assert_valid_conversation(request.messages)
        assert len(request.messages) <= 2 * (2 * 6) + 1
    assert max(sizes[12:]) < 1.3 * max(sizes[:12])  # not growing with the cycle count
    assert sizes[-1] < 30 * len(screen) / 2
    opening = api.requests[-1].messages[0]["content"][0]["text"]
    assert opening.startswith("Earlier cycles, one line each")
    assert "cycle 1: run " in opening and "→ exit 0 in 0.1s (cycle 1)" in opening
    assert screen not in opening


def test_between_folds_each_request_extends_the_last(api):
    # What prompt caching needs: the conversation only grows at its end.
    api.script = lambda body: tool_use("run", {"command": "true"})
    policy = make_policy(api, keep_recent=3)
    for cycle in range(1, 6):
        policy.decide(observe(cycle, feedback="exit 0"))
    first, second = (without_cache_control(r.messages) for r in api.requests[3:5])
    assert second[: len(first)] == first


def test_new_context_drops_the_history(api):
    api.script = lambda body: tool_use("run", {"command": "make"})
    policy = make_policy(api)
    for cycle in range(1, 4):
        policy.decide(observe(cycle))
    briefing = "Playbook: make it fast.\nresults.tsv:\nabc123\t1.5\tkeep\tbaseline"
    policy.new_context(briefing)
    policy.decide(observe(4))
    messages = api.requests[-1].messages
    assert len(messages) == 1
    blocks = messages[0]["content"]
    assert [b["type"] for b in blocks] == ["text", "text"]
    assert blocks[0]["text"] == briefing and blocks[1]["text"] == observe(4).render()
    policy.decide(observe(5))
    messages = api.requests[-1].messages
    assert_valid_conversation(messages)
    assert len(messages) == 3 and messages[0]["content"][0]["text"] == briefing


def test_asks_for_the_full_screen_when_the_context_starts_or_folds(api):
    api.script = lambda body: tool_use("run", {"command": "true"})
    policy = make_policy(api, keep_recent=2)
    wanted = []
    for cycle in range(1, 8):
        wanted.append(policy.wants_full_screen)
        policy.decide(observe(cycle))
    assert wanted == [True, False, False, False, True, False, True]
    policy.new_context("briefing")
    assert policy.wants_full_screen


def test_an_injected_client_leaves_retries_to_the_policy(api):
    api.script = [http_error(529)] * 5
    client = anthropic.Anthropic(base_url=api.url, api_key="test-key", max_retries=5)
    policy = ClaudePolicy("prose", client=client, max_retries=1, sleep=Sleeps())
    with pytest.raises(PolicyError, match="after 2 tries"):
        policy.decide(observe(1))
    assert len(api.requests) == 2


def test_usage_is_priced_per_model_and_counted_for_unknown_ones(api):
    usage = {
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 5000,
    }
    api.script = [tool_use("run", {"command": "make"}, usage=usage)] * 2
    priced = make_policy(api, model="claude-sonnet-4-6").decide(observe(1)).usage
    assert (priced.cache_write_tokens, priced.cache_read_tokens) == (3000, 5000)
    assert priced.cost == pytest.approx((1000 * 3 + 200 * 15 + 3000 * 3.75 + 5000 * 0.3) / 1e6)
    local = make_policy(api, model="my-local-model").decide(observe(1)).usage
    assert local.input_tokens == 1000 and local.output_tokens == 200 and local.cost == 0


def test_model_key_and_base_url_come_from_the_environment(api, monkeypatch):
    monkeypatch.setenv("CLIVE_MODEL", "claude-haiku-4-5")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
    api.script = [tool_use("done", {"summary": "ok"})]
    policy = ClaudePolicy("prose", sleep=Sleeps())
    policy.decide(observe(1))
    assert api.requests[0].body["model"] == "claude-haiku-4-5"
    assert "env-key" in str(api.requests[0].headers)


def test_missing_key_says_how_to_go_on():
    with pytest.raises(PolicyError) as failure:
        ClaudePolicy("prose")
    assert str(failure.value) == (
        "ANTHROPIC_API_KEY is not set: export it, or run with --policy scripted"
    )


def test_fake_api_answers_plain_json_when_not_streaming(api):
    api.script = [tool_use("run", {"command": "make"}, text="ok")]
    client = anthropic.Anthropic(base_url=api.url, api_key="test-key", max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.stop_reason == "tool_use"
    assert message.content[0].text == "ok"
    assert message.content[1].input == {"command": "make"}


def test_fake_api_turns_can_answer_what_they_received(api):
    def answer(body: dict[str, Any]) -> Turn:
        seen = body["messages"][-1]["content"][-1]["text"]
        return tool_use("done", {"summary": f"saw {len(seen)} chars"})

    api.script = [answer]
    decision = make_policy(api).decide(observe(1))
    assert decision.action == Done(summary=f"saw {len(observe(1).render())} chars")
    assert api.requests[0].last_user_text() == observe(1).render()
