"""The agent loop: observe the screen, let the policy decide, act, record — until done or out of budget."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from clive.agent.actions import Action, Done, Result, action_to_dict
from clive.agent.executor import Executor, Outcome
from clive.agent.policy import Decision, InvalidReply, Observation, Policy, PolicyError, Usage
from clive.session.redaction import Redactor
from clive.terminal import Terminal
from clive.terminal.screen import Snapshot


class EventSink(Protocol):
    """Where cycles are recorded (the session recorder)."""

    def event(self, type: str, cycle: int, **fields: Any) -> dict[str, Any]: ...


class AgentStopped(Exception):
    """A budget ran out, a person pressed Ctrl-C, or the policy gave up: the loop ends."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status  # "budget", "interrupted", "failed"


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits on one agent run; None means no limit."""

    max_cycles: int | None = None
    wall_seconds: float | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_invalid_in_a_row: int = 3


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """How a run of the loop ended."""

    status: str  # done, budget, interrupted, failed
    summary: str
    cycles: int
    final: Action | None = None
    reasoning: str = ""  # why: the first line of the first reasoning the policy gave in this run


@dataclass(slots=True)
class Totals:
    """Running totals across the session, checked against the budget."""

    cycles: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    invalid_replies: int = 0

    def add(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        self.output_tokens += usage.output_tokens
        self.cost += usage.cost


class Agent:
    """Observes the terminal, acts through the executor, and records every cycle."""

    def __init__(
        self,
        terminal: Terminal,
        executor: Executor,
        recorder: EventSink | None = None,
        *,
        budget: Budget | None = None,
        approve: Any = None,
        cycles_before: int = 0,
    ) -> None:
        self.terminal = terminal
        self.executor = executor
        self.recorder = recorder
        self.budget = budget or Budget()
        self.totals = Totals()  # of this run: the budget counts these
        # A resumed session numbers its cycles on from the last one recorded, not from 1 again.
        self.cycles_before = cycles_before
        self.approve = approve  # callable(Action) -> Action | None (None = rejected)
        self.started = time.monotonic()
        # The last screen the policy saw, per screen: coming back from vim to the shell, the diff is
        # against the shell screen it saw before, not against vim's.
        self._seen: dict[bool, Snapshot] = {}
        self._feedback: str | None = None
        self._stop = threading.Event()
        self._last_alternate = False
        self._clears_seen = [0, 0]  # the terminal's clear counts (main, alternate) at the last observation
        self._commands_seen = -1  # the terminal's count of finished commands at the last observation
        # What the policy reads goes through redaction first: a key or token shown on the screen or
        # printed by a command never reaches a model (the recorder also keeps it out of the files).
        self._scrub = getattr(recorder, "scrub", None) or Redactor().scrub

    # ---- the loop -----------------------------------------------------------------------

    def run(self, policy: Policy, *, max_cycles: int | None = None) -> AgentOutcome:
        """Cycle until the policy is done; ``max_cycles`` bounds this run on top of the budget."""
        start_cycles = self.totals.cycles
        invalid_in_a_row = 0
        why = ""
        while True:
            try:
                self._check_budget()
                if max_cycles is not None and self.totals.cycles - start_cycles >= max_cycles:
                    raise AgentStopped("budget", f"{max_cycles} cycles used without finishing")
                observation = self.observe(full=bool(getattr(policy, "wants_full_screen", False)))
                try:
                    decision = policy.decide(observation)
                except InvalidReply as exc:
                    self.totals.add(getattr(exc, "usage", None) or Usage())  # spent all the same
                    invalid_in_a_row += 1
                    self.totals.invalid_replies += 1
                    self._feedback = f"[your last reply was not usable: {exc}]"
                    self._record("invalid_reply", error=str(exc), count=invalid_in_a_row)
                    if invalid_in_a_row >= self.budget.max_invalid_in_a_row:
                        raise AgentStopped(
                            "failed", f"{invalid_in_a_row} unusable model replies in a row; last: {exc}"
                        ) from None
                    continue
                invalid_in_a_row = 0
                why = why or _first_line(decision.reasoning)
                self.totals.add(decision.usage)
                outcome = self.act(decision.action, decision=decision, observation=observation)
                if isinstance(decision.action, Done | Result) and outcome.ok:
                    summary = getattr(decision.action, "summary", None) or decision.action.description
                    return AgentOutcome("done", summary, self.totals.cycles - start_cycles, decision.action, why)
            except PolicyError as exc:
                return AgentOutcome("failed", str(exc), self.totals.cycles - start_cycles, reasoning=why)
            except AgentStopped as exc:
                return AgentOutcome(exc.status, str(exc), self.totals.cycles - start_cycles, reasoning=why)

    def request_stop(self) -> None:
        """Ask the loop to stop at the next safe point (after the cycle in flight is recorded)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def cycle(self) -> int:
        """The number of the last cycle recorded in the session (0 before the first)."""
        return self.cycles_before + self.totals.cycles

    def _check_budget(self) -> None:
        b, t = self.budget, self.totals
        if self._stop.is_set():
            raise AgentStopped("interrupted", "interrupted")
        if b.max_cycles is not None and t.cycles >= b.max_cycles:
            raise AgentStopped("budget", f"cycle budget reached ({b.max_cycles} cycles)")
        if b.wall_seconds is not None and time.monotonic() - self.started >= b.wall_seconds:
            raise AgentStopped("budget", f"wall-time budget reached ({b.wall_seconds:g}s)")
        if b.max_tokens is not None and t.input_tokens + t.output_tokens >= b.max_tokens:
            raise AgentStopped("budget", f"token budget reached ({b.max_tokens} tokens)")
        if b.max_cost is not None and t.cost >= b.max_cost:
            raise AgentStopped("budget", f"cost budget reached (${b.max_cost:g})")

    # ---- one cycle ----------------------------------------------------------------------

    def observe(self, *, full: bool = False) -> Observation:
        """The screen for the policy: whole the first time, after a clear or when asked, else what changed."""
        snap = self.terminal.snapshot()
        previous = self._seen.get(snap.alternate)
        if previous is not None and snap.alternate != self._last_alternate:
            previous = dataclasses.replace(previous, alternate=not snap.alternate)
        diff = None if full or previous is None else snap.diff(previous)
        try:
            state: str | None = self.terminal.state().describe()
        except Exception:  # noqa: BLE001 - state is a hint; the screen is the truth
            state = None
        kind, screen = "full", snap.render()
        clears = self.terminal.clears[snap.alternate]
        cleared = clears != self._clears_seen[snap.alternate]
        self._clears_seen[snap.alternate] = clears
        if diff is not None and not cleared:  # after a clear (ESC [2J, ESC c) the screen goes whole
            # At the prompt the cursor is where the prompt ends: saying so costs tokens for nothing.
            changes = diff.render(cursor=state != "[at prompt]")
            if len(changes) < len(screen):  # a redrawn screen can be shorter whole than as changes
                kind, screen = "diff", changes
        self._seen[snap.alternate] = snap
        self._last_alternate = snap.alternate
        commands = self.terminal.commands_finished
        new_exit_code, self._commands_seen = commands != self._commands_seen, commands
        observation = Observation(
            cycle=self.cycle + 1,
            kind=kind,
            screen=self._scrub(screen),
            cursor=snap.cursor,
            title=snap.title,
            last_exit_code=self.terminal.last_exit_code,
            elapsed=time.monotonic() - self.started,
            state=state,
            feedback=self._scrub(self._feedback) if self._feedback else None,
            new_exit_code=new_exit_code,
        )
        self._feedback = None
        return observation

    def act(
        self,
        action: Action,
        *,
        decision: Decision | None = None,
        observation: Observation | None = None,
        source: str = "policy",
    ) -> Outcome:
        """Carry out one action and record it as a cycle."""
        if self.approve is not None and source == "policy":
            approved = self.approve(action)
            if approved is None:
                if self._stop.is_set():
                    # Closed while the action waited: nobody decided, so no cycle says it was refused,
                    # and a resumed session proposes it again.
                    raise AgentStopped("interrupted", "interrupted before the action was decided")
                outcome = Outcome(False, "rejected by the person approving actions", refused=True)
                self._finish_cycle(action, outcome, decision, observation, source)
                return outcome
            action = approved
        repairs = self.terminal.repairs
        before = len(repairs)
        outcome = self.executor.execute(action)
        self._finish_cycle(action, outcome, decision, observation, source)
        for what in repairs[before:]:
            # A program left the terminal broken and clive put it right before this action.
            self._record("repair", what=what)
        return outcome

    def _finish_cycle(
        self,
        action: Action,
        outcome: Outcome,
        decision: Decision | None,
        observation: Observation | None,
        source: str,
    ) -> None:
        self.totals.cycles += 1
        self._feedback = f"[{action.type}] {outcome.text}"
        fields: dict[str, Any] = {
            "source": source,
            "action": action_to_dict(action),
            "outcome": outcome.to_dict(),
            "checkpoint": outcome.checkpoint,
        }
        if observation is not None:
            fields["observation"] = observation.to_dict()
        if decision is not None:
            fields["reasoning"] = decision.reasoning
            fields["usage"] = decision.usage.to_dict()
        self._record("cycle", **fields)

    def _record(self, type: str, **fields: Any) -> None:
        if self.recorder is not None:
            self.recorder.event(type, self.cycle, **fields)


def _first_line(text: str | None, limit: int = 200) -> str:
    line = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
