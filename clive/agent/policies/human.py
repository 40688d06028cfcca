"""The human policy: a person decides every action (the free-hand co-pilot, `clive tui` with no playbook)."""

from __future__ import annotations

import queue

from clive.agent.actions import Action, Done
from clive.agent.policy import Decision, Observation


class HumanPolicy:
    """Waits for the person to submit each action; ``close()`` ends the run."""

    name = "human"

    def __init__(self) -> None:
        self._actions: queue.Queue[Action] = queue.Queue()
        self.last_observation: Observation | None = None

    def submit(self, action: Action) -> None:
        """The person's next action (called from the viewer's thread)."""
        self._actions.put(action)

    def close(self) -> None:
        """End the run: the waiting decide() returns done."""
        self._actions.put(Done("the person closed the co-pilot"))

    def decide(self, observation: Observation) -> Decision:
        self.last_observation = observation
        return Decision(self._actions.get(), reasoning="typed by the person")

    def new_context(self, briefing: str) -> None:
        """A person keeps their own context."""
