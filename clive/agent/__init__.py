"""The observe-decide-act loop: ``Agent`` (loop.py), the ``Policy`` protocol and its model-driven and
human policies (``policies/``), the actions a policy may take, and the executor that carries them out.

May import ``clive.terminal``, ``clive.session`` and ``clive.safety``; knows nothing of playbooks or git."""

from clive.agent.loop import Agent, AgentOutcome, AgentStopped, Budget

__all__ = ["Agent", "AgentOutcome", "AgentStopped", "Budget"]
