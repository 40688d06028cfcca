"""The offline policy: a playbook's steps, one action per cycle, each optionally checked on the screen."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from clive.agent.actions import Action, Done
from clive.agent.policy import Decision, Observation, PolicyError
from clive.experiments.playbook import Expect
from clive.terminal.screen import Snapshot


def expect_matches(expect: Expect, snapshot: Snapshot) -> bool:
    """Whether the screen shows what a step expects (a text anywhere, or a regex over the screen)."""
    if expect.text is not None:
        return snapshot.contains(expect.text)
    if expect.regex is not None:
        return re.search(expect.regex, snapshot.text(), re.MULTILINE) is not None
    return True


def describe_expect(expect: Expect) -> str:
    return f"text {expect.text!r}" if expect.text is not None else f"regex {expect.regex!r}"


class ScriptedPolicy:
    """Plays steps in order; fails the run when a step's expectation is not on the screen."""

    name = "scripted"
    reads_briefing = False

    def __init__(
        self,
        steps: Sequence[Action],
        expects: Sequence[Expect | None] = (),
        *,
        screen: Callable[[], Snapshot],
    ) -> None:
        self.steps = list(steps)
        self.expects = list(expects) + [None] * (len(steps) - len(expects))
        self._screen = screen
        self._next = 0

    def decide(self, observation: Observation) -> Decision:
        if self._next > 0:
            self._check(self._next - 1)
        if self._next >= len(self.steps):
            return Decision(Done(f"all {len(self.steps)} steps done"))
        step = self.steps[self._next]
        self._next += 1
        return Decision(step, reasoning=f"step {self._next} of {len(self.steps)}")

    def _check(self, index: int) -> None:
        expect = self.expects[index]
        if expect is None:
            return
        snap = self._screen()
        if not expect_matches(expect, snap):
            last = next((line for line in reversed(snap.lines) if line.strip()), "")
            raise PolicyError(
                f"step {index + 1} ({self.steps[index].type}): expected {describe_expect(expect)} on the screen; "
                f"its last line is {last.strip()!r}"
            )

    def skip(self, count: int) -> None:
        """Resume after ``count`` steps that an earlier run already carried out."""
        self._next = min(count, len(self.steps))

    def new_context(self, briefing: str) -> None:
        """Steps carry no conversation; nothing to forget."""
