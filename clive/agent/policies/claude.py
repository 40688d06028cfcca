"""The claude policy: the Anthropic Messages API through the official SDK, one tool per action.

The conversation is rebuilt on every call from clive's own cycle records, so it stays valid
(every tool_use answered by a tool_result) and bounded: recent cycles verbatim, older ones
folded into one line each, and nothing at all before the last ``new_context`` briefing.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anthropic

from clive.agent.actions import (
    Action,
    ActionError,
    Checkpoint,
    Done,
    EditFile,
    Keys,
    ReadFile,
    Result,
    Run,
    WriteFile,
    parse_action,
)
from clive.agent.policies.tools import TOOL_NAMES, TOOLS
from clive.agent.policy import Decision, InvalidReply, Observation, PolicyError, Usage

try:  # anthropic 2.x ships its own fork of httpx
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - anthropic < 2
    from httpx import TransportError

DEFAULT_MODEL = "claude-sonnet-4-6"

RETRY_STATUSES = frozenset({429, 500, 502, 503, 529})
# An error event inside a 200 stream has no status of its own; its type says whether to retry.
RETRY_ERROR_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error"})
BACKOFF_BASE = 0.5  # seconds, doubled on every retry
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0

# USD per million tokens (input, output); cache writes cost 1.25x input, cache reads 0.1x.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4-0": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}

PREAMBLE = (
    "You are clive, working in a real terminal on the user's behalf. Each user turn shows the "
    "result of your last action, then the terminal screen: in full, or as [changed rows] since "
    "you last saw that screen (the header says when output scrolled it up N lines first; rows "
    'are numbered from 1, and "A-B| text" means rows A to B all read text). Call exactly one '
    "tool per turn. Use run for shell commands, keys for interactive programs, the file tools "
    "to read and change files, and done when the task is finished."
)

_EPHEMERAL = {"type": "ephemeral"}


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str, limit: int = 50) -> str:
    return json.dumps(_clip(text, limit), ensure_ascii=False)


def price_of(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None for a model not in the table."""
    base = re.sub(r"-(\d{8}|latest)$", "", model)
    return PRICES.get(base)


def _describe(action: Action) -> str:
    """An action in a few words, for a folded cycle."""
    match action:
        case Keys(keys=keys):
            return f"keys {_quote(keys)}"
        case Run(command=command):
            return f"run {_quote(command)}"
        case ReadFile(path=path, start=start, end=end):
            lines = f":{start or 1}-{end or ''}" if start or end else ""
            return f"read_file {path}{lines}"
        case WriteFile(path=path, content=content):
            return f"write_file {path} ({len(content)} chars)"
        case EditFile(path=path):
            return f"edit_file {path}"
        case Checkpoint(message=message):
            return f"checkpoint {_quote(message)}"
        case Result(metric=metric, status=status, description=description):
            return f"result {status} metric={metric} {_quote(description)}"
        case Done(summary=summary):
            return f"done {_quote(summary)}"
    return action.type


@dataclass(slots=True)
class _Cycle:
    """One exchange: the observation sent and the model's reply, as it goes back to the API."""

    observation: Observation
    reply: list[dict[str, Any]]  # the assistant's content blocks
    tool_ids: list[str]
    action: Action | None = None
    error: str | None = None  # what was wrong with the reply; sent back with the next turn

    def fold(self, following: Observation) -> str:
        """This cycle in one line, its outcome taken from the observation that followed it."""
        if self.error is not None:
            return f"cycle {self.observation.cycle}: invalid reply ({_clip(self.error, 70)})"
        line = f"cycle {self.observation.cycle}: {_describe(self.action)}"
        outcome = next((ln for ln in (following.feedback or "").splitlines() if ln.strip()), "")
        if outcome:
            line += f" → {_clip(outcome, 70)}"
        elif isinstance(self.action, Run) and following.last_exit_code is not None:
            line += f" → exit {following.last_exit_code}"
        return line


@dataclass(slots=True)
class _Reply:
    """A streamed message put back together from its raw events."""

    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    complete: bool = False

    def feed(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self._take_usage(event.message.usage)
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "text":
                self.blocks[event.index] = {"type": "text", "text": block.text or ""}
            elif block.type == "tool_use":
                self.blocks[event.index] = {
                    "type": "tool_use", "id": block.id, "name": block.name, "json": "",
                }
        elif kind == "content_block_delta":
            block = self.blocks.get(event.index)
            delta = event.delta
            if block is None:
                return
            if delta.type == "text_delta" and block["type"] == "text":
                block["text"] += delta.text
            elif delta.type == "input_json_delta" and block["type"] == "tool_use":
                block["json"] += delta.partial_json
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self._take_usage(event.usage)
        elif kind == "message_stop":
            self.complete = True

    def _take_usage(self, usage: Any) -> None:
        # message_delta counts are running totals; absent ones keep message_start's value.
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            value = getattr(usage, name, None)
            if value is not None:
                self.usage[name] = value

    def ordered(self) -> list[dict[str, Any]]:
        return [self.blocks[i] for i in sorted(self.blocks)]


class _StreamCut(Exception):
    """The stream ended before message_stop: treated like a dropped connection."""


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    message = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    return _clip(str(message or exc.message), 300)


def _error_type(exc: anthropic.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("type")
    return None


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return min(seconds, RETRY_AFTER_CAP)
    return None


def require_credentials() -> None:
    """Refuse, in a line, where the SDK would have no key or token to send."""
    if not os.environ.get("ANTHROPIC_API_KEY") and not os.environ.get("ANTHROPIC_AUTH_TOKEN"):
        raise PolicyError("ANTHROPIC_API_KEY is not set: export it, or run with --policy scripted")


class ClaudePolicy:
    """Decides with Claude (or any Anthropic-compatible endpoint) through tool use."""

    name = "claude"

    def __init__(
        self,
        system_prompt: str,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 2048,
        keep_recent: int = 6,
        max_retries: int = 4,
        client: anthropic.Anthropic | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_folded: int = 50,
    ) -> None:
        self.model = model or os.environ.get("CLIVE_MODEL") or DEFAULT_MODEL
        self.max_tokens = max_tokens
        self.keep_recent = max(keep_recent, 0)
        self.max_retries = max(max_retries, 0)
        self.max_folded = max_folded
        self._sleep = sleep
        if client is None:
            key = api_key or os.environ.get("ANTHROPIC_API_KEY")
            token = None if key else os.environ.get("ANTHROPIC_AUTH_TOKEN")
            if not key:
                require_credentials()
            client = anthropic.Anthropic(
                api_key=key,
                auth_token=token,
                base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
                max_retries=0,
            )
        else:
            client = client.with_options(max_retries=0)
        # The SDK's own retries are off: ours count tries, sleep through `sleep` and say why.
        self._client = client
        self.base_url = str(client.base_url)
        # The API refuses empty text blocks, so an empty playbook prose leaves the preamble alone.
        self._system = [{"type": "text", "text": text} for text in (PREAMBLE, system_prompt) if text]
        self._system[-1]["cache_control"] = _EPHEMERAL
        self._tools = [dict(tool) for tool in TOOLS]
        self._tools[-1]["cache_control"] = _EPHEMERAL
        self._briefing: str | None = None
        self._folds: list[str] = []
        self._cycles: list[_Cycle] = []

    # -- the Policy protocol ------------------------------------------------------------

    def new_context(self, briefing: str) -> None:
        """Forget every cycle; the briefing opens the next conversation."""
        self._briefing = briefing
        self._folds = []
        self._cycles = []

    def decide(self, observation: Observation) -> Decision:
        self._fold_old_cycles(observation)
        reply = self._request(self._messages(observation))
        usage = self._usage(reply)
        cycle, reasoning = self._read_reply(observation, reply)
        self._cycles.append(cycle)
        if cycle.error is not None:
            invalid = InvalidReply(cycle.error)
            invalid.usage = usage  # the tokens were spent all the same
            raise invalid
        return Decision(action=cycle.action, reasoning=reasoning, usage=usage)

    @property
    def wants_full_screen(self) -> bool:
        """Whether the next observation should be the full screen, not a diff.

        True at the start of a context and when the next call folds older cycles away (and with
        them the screens those diffs built on).
        """
        return not self._cycles or self._fold_due()

    # -- the conversation ---------------------------------------------------------------

    def _fold_due(self) -> bool:
        # Fold in batches, keeping keep_recent..2*keep_recent-1 cycles verbatim: between folds
        # the conversation only grows at its end, so the cached prefix stays valid.
        return len(self._cycles) >= max(2 * self.keep_recent, 1)

    def _fold_old_cycles(self, current: Observation) -> None:
        if not self._fold_due():
            return
        cut = len(self._cycles) - self.keep_recent
        following = [c.observation for c in self._cycles[1:]] + [current]
        for cycle, after in zip(self._cycles[:cut], following, strict=False):
            self._folds.append(cycle.fold(after))
        self._cycles = self._cycles[cut:]

    def _opening(self) -> list[dict[str, Any]]:
        blocks = []
        if self._briefing:
            blocks.append({"type": "text", "text": self._briefing})
        if self._folds:
            shown = self._folds[-self.max_folded :] if self.max_folded > 0 else []
            lines = ["Earlier cycles, one line each (oldest first):"]
            if len(shown) < len(self._folds):
                lines.append(f"({len(self._folds) - len(shown)} earlier cycles not shown)")
            lines.extend(shown)
            blocks.append({"type": "text", "text": "\n".join(lines)})
        return blocks

    @staticmethod
    def _answer(previous: _Cycle | None, observation: Observation) -> list[dict[str, Any]]:
        """The user turn that answers the previous reply and shows the new observation."""
        if previous is not None and previous.error and previous.error in (observation.feedback or ""):
            # The loop repeated the error as feedback; the error result below already says it.
            observation = replace(observation, feedback=None)
        text = observation.render()
        if previous is None:
            return [{"type": "text", "text": text}]
        if previous.error is None:
            return [{"type": "tool_result", "tool_use_id": previous.tool_ids[0], "content": text}]
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": tid, "content": previous.error, "is_error": True}
            for tid in previous.tool_ids
        ]
        if not blocks:
            blocks.append({"type": "text", "text": f"Error: {previous.error}"})
        blocks.append({"type": "text", "text": text})
        return blocks

    def _messages(self, observation: Observation) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        previous: _Cycle | None = None
        for cycle in [*self._cycles, None]:
            seen = cycle.observation if cycle is not None else observation
            content = self._answer(previous, seen)
            if not messages:
                content = self._opening() + content
            messages.append({"role": "user", "content": content})
            if cycle is not None:
                messages.append({"role": "assistant", "content": cycle.reply})
            previous = cycle
        # A cache breakpoint at the end: the next call extends this exact prefix.
        last = messages[-1]["content"][-1]
        messages[-1]["content"][-1] = {**last, "cache_control": _EPHEMERAL}
        return messages

    def _read_reply(self, observation: Observation, reply: _Reply) -> tuple[_Cycle, str]:
        """The cycle record for a reply; its error says what was wrong, if anything."""
        texts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in reply.ordered():
            if block["type"] == "text" and block["text"].strip():
                texts.append({"type": "text", "text": block["text"]})
            elif block["type"] == "tool_use":
                calls.append(block)
        reasoning = "\n".join(block["text"].strip() for block in texts)
        sent_back = list(texts)
        inputs: list[Any] = []
        for call in calls:
            try:
                value = json.loads(call["json"]) if call["json"].strip() else {}
            except json.JSONDecodeError as exc:
                value = exc
            inputs.append(value)
            sent_back.append({
                "type": "tool_use",
                "id": call["id"],
                "name": call["name"],
                "input": value if isinstance(value, dict) else {},
            })
        if not sent_back:
            sent_back.append({"type": "text", "text": "(empty reply)"})
        cycle = _Cycle(observation, sent_back, [call["id"] for call in calls])
        cut_off = reply.stop_reason == "max_tokens"
        if not calls:
            cycle.error = (
                f"reply cut off at max_tokens ({self.max_tokens}) before any tool call; "
                "call one tool, with less text before it"
                if cut_off
                else "no tool call in the reply; call exactly one tool per turn (done to finish)"
            )
        elif len(calls) > 1:
            cycle.error = f"{len(calls)} tool calls in one reply; call exactly one tool per turn"
        else:
            call, value = calls[0], inputs[0]
            try:
                cycle.action = self._action(call["name"], call["json"], value, cut_off)
            except InvalidReply as exc:
                cycle.error = str(exc)
        return cycle, reasoning

    def _action(self, name: str, raw: str, value: Any, cut_off: bool) -> Action:
        if name not in TOOL_NAMES:
            raise InvalidReply(f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}")
        if isinstance(value, json.JSONDecodeError):
            if cut_off:
                raise InvalidReply(
                    f"reply cut off at max_tokens ({self.max_tokens}) inside the {name} input; "
                    "send a shorter action (write a large file in parts)"
                )
            raise InvalidReply(
                f"the {name} input is not valid JSON ({value.msg} at char {value.pos}): "
                f"{_clip(raw, 80)}"
            )
        if not isinstance(value, dict):
            raise InvalidReply(f"the {name} input must be a JSON object, got {_clip(raw, 80)}")
        try:
            return parse_action({**value, "type": name})
        except ActionError as exc:
            raise InvalidReply(f"bad {name} input: {exc}") from None

    # -- the API ------------------------------------------------------------------------

    def _request(self, messages: list[dict[str, Any]]) -> _Reply:
        """One streamed call, retried on overload, rate limits and network trouble."""
        tries = 0
        while True:
            tries += 1
            try:
                return self._stream(messages)
            except anthropic.APIStatusError as exc:
                kind = _error_type(exc)
                if exc.status_code not in RETRY_STATUSES and kind not in RETRY_ERROR_TYPES:
                    raise self._refusal(exc) from None
                status = exc.status_code if exc.status_code >= 400 else kind
                failure, wait = f"{status} {_api_message(exc)}", _retry_after(exc)
            except (anthropic.APIConnectionError, TransportError, _StreamCut) as exc:
                detail = str(exc) or type(exc).__name__
                failure, wait = f"connection error: {_clip(detail, 200)}", None
            except anthropic.AnthropicError as exc:
                raise PolicyError(f"model API error: {_clip(str(exc), 300)}") from None
            if tries > self.max_retries:
                raise PolicyError(f"model API failed after {tries} tries: {failure}")
            if wait is None:
                wait = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (tries - 1))
                wait *= random.uniform(0.75, 1.25)
            self._sleep(wait)

    def _stream(self, messages: list[dict[str, Any]]) -> _Reply:
        reply = _Reply()
        stream = self._client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=self._system,
            tools=self._tools,
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
            messages=messages,
            stream=True,
        )
        with stream:
            try:
                for event in stream:
                    reply.feed(event)
            except ValueError as exc:
                # A compatible endpoint that sends events the SDK cannot read.
                raise PolicyError(f"model API sent a malformed stream: {_clip(str(exc), 200)}") from None
        if not reply.complete:
            raise _StreamCut("the stream ended before message_stop")
        return reply

    def _refusal(self, exc: anthropic.APIStatusError) -> PolicyError:
        status, message = exc.status_code, _api_message(exc)
        if status == 401:
            return PolicyError(f"the API rejected the key (401): {message}; check ANTHROPIC_API_KEY")
        if status == 403:
            return PolicyError(f"the API refused access (403): {message}")
        if status == 400:
            return PolicyError(f"the API refused the request (400): {message}")
        if status == 404:
            return PolicyError(
                f"the API answered 404 for model {self.model!r} at {self.base_url}: {message}"
            )
        return PolicyError(f"model API error {status}: {message}")

    def _usage(self, reply: _Reply) -> Usage:
        counts = reply.usage
        usage = Usage(
            input_tokens=counts.get("input_tokens", 0),
            output_tokens=counts.get("output_tokens", 0),
            cache_read_tokens=counts.get("cache_read_input_tokens", 0),
            cache_write_tokens=counts.get("cache_creation_input_tokens", 0),
        )
        price = price_of(self.model)
        if price is None:
            return usage
        per_input, per_output = price[0] / 1e6, price[1] / 1e6
        cost = (
            usage.input_tokens * per_input
            + usage.output_tokens * per_output
            + usage.cache_write_tokens * per_input * 1.25
            + usage.cache_read_tokens * per_input * 0.1
        )
        return Usage(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            cost,
        )
