"""What a tool answers: a Reply (text for a model, data for a program), and how the screen and the
terminal's state read in one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clive.mcp.registry import Opened
from clive.terminal.termstate import Activity, TerminalState


@dataclass(frozen=True, slots=True)
class Reply:
    """A tool's answer: text for a model, the same as data for a program, and whether it failed."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)
    error: bool = False

    def __add__(self, other: Reply) -> Reply:
        """This reply (a note) in front of ``other``."""
        return Reply(self.text + other.text, {**self.data, **other.data}, self.error or other.error)


NOTHING = Reply("")


def failed(message: str) -> Reply:
    """A failure: its first line says what went wrong (the rest, if any, is the screen)."""
    return Reply(message, {"error": message.split("\n", 1)[0]}, error=True)


def view(opened: Opened, *, changes_only: bool = False) -> tuple[TerminalState, str]:
    """The state and the screen, or what changed on it since the client last saw it."""
    term = opened.terminal
    snap = term.snapshot()
    state = term.state()
    screen = snap.render()
    if changes_only and opened.seen is not None:
        diff = snap.diff(opened.seen)
        if diff is not None:
            changes = diff.render() or "[screen unchanged]"
            if len(changes) < len(screen):
                screen = changes
    opened.seen = snap
    return state, screen


def screen_reply(opened: Opened, *, changes_only: bool = False) -> Reply:
    state, screen = view(opened, changes_only=changes_only)
    return Reply(f"{state.describe()}\n{screen}", {"state": state_data(state), "screen": screen})


def state_data(state: TerminalState) -> dict[str, Any]:
    return {
        "activity": state.activity.value,
        "description": state.describe(),
        "foreground": state.foreground,
        "pid": state.pid,
        "question": state.question,
        "waiting_on": state.waiting_on,
        "since": None if state.since is None else round(state.since, 3),
        "exact": state.exact,
        "password": state.activity == Activity.WAITING_SECRET,
    }


def describe(opened: Opened) -> dict[str, Any]:
    cols, rows = opened.terminal.size
    return {
        "terminal": opened.id,
        "program": opened.program,
        "workdir": str(opened.workdir),
        "cols": cols,
        "rows": rows,
        "sandbox": opened.sandbox,
        "session": str(opened.recorder.path),
        "session_id": opened.recorder.id,
    }
