"""The ``:`` prompt: jump to a cycle by number."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class GotoInput(Input):
    """A one-line input, hidden until ``:``; Enter posts ``GotoInput.Jump``, Escape closes it."""

    DEFAULT_CSS = """
    GotoInput {
        dock: bottom;
        display: none;
        height: 3;
    }
    GotoInput.-open {
        display: block;
    }
    """

    BINDINGS = [Binding("escape", "close", "Cancel", show=False)]

    class Jump(Message):
        def __init__(self, cycle: int) -> None:
            super().__init__()
            self.cycle = cycle

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(placeholder="go to cycle number (Enter, Esc cancels)", restrict=r"[0-9]*", **kwargs)

    def open(self) -> None:
        self.value = ""
        self.add_class("-open")
        self.focus()

    def action_close(self) -> None:
        self.remove_class("-open")
        self.screen.focus_next()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = self.value.strip()
        self.action_close()
        if text:
            self.post_message(self.Jump(int(text)))
