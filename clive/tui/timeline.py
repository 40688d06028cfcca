"""The timeline of cycles: one row per cycle (action, exit code, duration, tokens)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.message import Message
from textual.widgets import DataTable

from clive.actions import summarize_action


def action_summary(action: Any, width: int = 40) -> str:
    """An action in a few words: ``run make test``, ``keys :wq<Enter>``."""
    return summarize_action(action, width)


def _outcome(event: dict[str, Any]) -> dict[str, Any]:
    outcome = event.get("outcome")
    return outcome if isinstance(outcome, dict) else {}


def cycle_row(event: dict[str, Any]) -> tuple[str, str, str, str, str]:
    outcome = _outcome(event)
    code = outcome.get("exit_code")
    if type(code) is int:
        exit_text = str(code)
    elif outcome.get("refused"):
        exit_text = "rej"
    else:
        exit_text = "-"
    duration = outcome.get("duration")
    dur = f"{duration:.2f}s" if isinstance(duration, int | float) else "-"
    usage = event.get("usage")
    tokens = "-"
    if isinstance(usage, dict):
        total = sum(v for k, v in usage.items() if k.endswith("tokens") and isinstance(v, int))
        tokens = str(total) if total else "-"
    return (str(event.get("cycle", "?")), action_summary(event.get("action"), 16), exit_text, dur, tokens)


class Timeline(DataTable[str]):
    """Cycles as a table; moving the cursor posts ``Timeline.Selected``."""

    DEFAULT_CSS = """
    Timeline {
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    Timeline:focus {
        border: round $primary;
    }
    """

    class Selected(Message):
        """The person moved to another cycle (``index`` in the timeline)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.border_title = "cycles"

    def on_mount(self) -> None:
        self.add_column("#", key="cycle")
        self.add_column("action", key="action")
        self.add_column("exit", key="exit")
        self.add_column("time", key="time")
        self.add_column("tok", key="tokens")

    def add_cycles(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.add_row(*cycle_row(event))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(event.cursor_row))
