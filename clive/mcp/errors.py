"""The one failure a tool reports to the client: a line saying what was wrong or refused."""

from __future__ import annotations


class ToolFailure(Exception):
    """A tool call that cannot be carried out (bad argument, unknown terminal, refusal); the message
    is one line, or one line then the screen that explains it."""
