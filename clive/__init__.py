"""clive: an agent that inhabits a terminal.

The parts, lowest first; each imports only the parts before it:
``safety`` (limits, sandbox, process cleanup, command guard) → ``terminal`` (PTY, screen, shell
integration) → ``session`` (recordings on disk) → ``agent`` (observe, decide, act) →
``experiments`` (playbooks, the keep-or-discard loop, git) → ``tui`` (the viewer) → ``cli``.
"""

__version__ = "0.1.0"
