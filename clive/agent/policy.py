"""The seam between the agent loop and whatever decides: observations in, decisions out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from clive.agent.actions import Action, action_to_dict


class InvalidReply(Exception):
    """The policy's answer could not be used (unknown tool, bad JSON, no tool call).

    The loop tells the policy what was wrong in the next observation and goes on, counting these.
    """


class PolicyError(Exception):
    """The policy cannot go on at all (bad key, unreachable endpoint, steps that failed)."""


def _unbracketed(state: str) -> str:
    """``[at prompt]`` as ``at prompt``, to sit inside the observation header's own brackets.

    The question inside may hold brackets of its own (``Overwrite? [y/N]``), and a guessed state
    ends in ``(guessed from the screen)`` after the closing one: only the outer pair goes."""
    if not state.startswith("["):
        return state
    inner, bracket, rest = state[1:].rpartition("]")
    return inner + rest if bracket else state


@dataclass(frozen=True, slots=True)
class Observation:
    """What the policy sees at the start of a cycle."""

    cycle: int
    kind: Literal["full", "diff"]
    screen: str  # the full screen rendered, or the changed rows
    cursor: tuple[int, int]
    title: str
    last_exit_code: int | None
    elapsed: float  # seconds since the session started
    state: str | None = None  # what the terminal is doing, e.g. "[at prompt]"
    feedback: str | None = None  # the result of the previous action, or what was wrong with it
    new_exit_code: bool = True  # a command ended since the last observation: its exit code is news

    def render(self) -> str:
        """The text a model reads."""
        parts = []
        if self.feedback:
            parts.append(self.feedback)
        head = f"[cycle {self.cycle}, {self.elapsed:.1f}s"
        if self.new_exit_code and self.last_exit_code is not None and not (self.feedback or "").startswith("[run]"):
            head += f", last exit code {self.last_exit_code}"  # a run's feedback has said it already
        if self.state:
            head += ", " + _unbracketed(self.state)
        head += "]"
        parts.append(head)
        if self.kind == "diff" and not self.screen:
            parts.append("[screen unchanged]")
        if self.screen:
            parts.append(self.screen)
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "screen": self.screen,
            "cursor": list(self.cursor),
            "title": self.title,
            "last_exit_code": self.last_exit_code,
            "elapsed": round(self.elapsed, 3),
            "state": self.state,
            "feedback": self.feedback,
            "new_exit_code": self.new_exit_code,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one model call (all zero for offline policies)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "cache_read": self.cache_read_tokens,
            "cache_write": self.cache_write_tokens,
            "cost": round(self.cost, 6),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The next action and why."""

    action: Action
    reasoning: str = ""
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": action_to_dict(self.action),
            "reasoning": self.reasoning,
            "usage": self.usage.to_dict(),
        }


class Policy(Protocol):
    """Decides the next action. Implementations: scripted, claude, human."""

    name: str

    def decide(self, observation: Observation) -> Decision:
        """The next action; raises InvalidReply (recoverable) or PolicyError (fatal)."""
        ...

    def new_context(self, briefing: str) -> None:
        """Start afresh from durable state (an experiment boundary): forget the conversation."""
        ...
