"""The errors a Terminal raises: what the user or the caller can act on."""

from __future__ import annotations

from clive.terminal.screen import Snapshot


class TerminalError(Exception):
    """Something the user or the caller can act on: a bad argument, a dead shell, a failed interrupt."""


class TerminalTimeout(TerminalError):
    """A wait ran out of time; carries the screen as it was at that moment."""

    def __init__(self, message: str, snapshot: Snapshot) -> None:
        super().__init__(message)
        self.snapshot = snapshot
