"""A real PTY read into a screen model: the ``Terminal`` (pexpect, shell integration with OSC 133), the
screen and its fast feed (with the C checks in ``_speedups.c``), key notation, the terminal state read
from the kernel, and output as plain text.

May import ``clive.safety``; knows nothing of sessions, agents or experiments."""

from clive.terminal.terminal import (
    CommandResult,
    Terminal,
    TerminalError,
    TerminalListener,
    TerminalTimeout,
    clean_environment,
)

__all__ = ["CommandResult", "Terminal", "TerminalError", "TerminalListener", "TerminalTimeout", "clean_environment"]
