"""The detail of one cycle: the observation sent, the reasoning, the action and its outcome."""

from __future__ import annotations

import json
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


def describe_cycle(event: dict[str, Any] | None) -> Text:
    """The cycle as text with headed sections."""
    text = Text()
    if event is None:
        text.append("no cycle selected", style="dim")
        return text

    def section(title: str, body: str) -> None:
        if text:
            text.append("\n")
        text.append(title + "\n", style="bold")
        text.append(body.rstrip() + "\n")

    head = f"cycle {event.get('cycle', '?')}"
    t = event.get("t")
    if isinstance(t, int | float):
        head += f" at {t:.1f}s"
    if event.get("source") and event.get("source") != "policy":
        head += f" ({event['source']})"
    text.append(head + "\n", style="bold reverse")
    reasoning = event.get("reasoning")
    if reasoning:
        section("reasoning", str(reasoning))
    action = event.get("action")
    if action is not None:
        section("action", json.dumps(action, ensure_ascii=False, indent=1))
    outcome = event.get("outcome")
    if isinstance(outcome, dict):
        lines = []
        for key in ("ok", "exit_code", "duration", "refused"):
            if key in outcome:
                lines.append(f"{key}: {outcome[key]}")
        body = outcome.get("text") or outcome.get("output")
        if body:
            lines.append(str(body))
        section("outcome", "\n".join(lines))
    if event.get("checkpoint"):
        section("checkpoint", str(event["checkpoint"]))
    observation = event.get("observation")
    if isinstance(observation, dict):
        screen = observation.get("screen") or ""
        section(f"observation ({observation.get('kind', '?')})", str(screen) or "(no change)")
    usage = event.get("usage")
    if isinstance(usage, dict) and any(usage.values()):
        section("usage", ", ".join(f"{k} {v}" for k, v in usage.items() if v))
    return text


class CycleDetail(ScrollView, can_focus=True):
    """Scrollable detail of the selected cycle, drawn line by line (no relayout per cycle)."""

    DEFAULT_CSS = """
    CycleDetail {
        height: 1fr;
        border: round $secondary 50%;
        border-title-color: $text-muted;
        scrollbar-size: 1 1;
    }
    CycleDetail:focus {
        border: round $secondary;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "detail"
        self._lines: list[Text] = describe_cycle(None).split("\n")
        self._strips: dict[int, Strip] = {}
        self._line_style = Style()

    def show(self, event: dict[str, Any] | None) -> None:
        """Show ``event``, repainting only the lines that differ from the cycle shown before."""
        old = self._lines
        self._lines = describe_cycle(event).split("\n", allow_blank=True)
        width = max((line.cell_len for line in self._lines), default=0)
        # The virtual size only grows: a new size means a new layout, which costs a full repaint.
        size = self.virtual_size
        if width > size.width or len(self._lines) > size.height:
            self.virtual_size = Size(max(width, size.width), max(len(self._lines), size.height))
        if self.scroll_offset != (0, 0):
            self._strips.clear()
            self.scroll_to(0, 0, animate=False)
            self.refresh()
            return
        width = self.size.width
        for row in range(max(len(old), len(self._lines))):
            line = self._lines[row] if row < len(self._lines) else None
            if row >= len(old) or line is None or line != old[row]:
                self._strips.pop(row, None)
                self.refresh(Region(0, row, width, 1))

    def render_lines(self, crop: Region) -> list[Strip]:
        self._line_style = self.rich_style  # once per repaint, not once per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.size.width
        strip = self._strips.get(row)
        if strip is None:
            if row < len(self._lines):
                strip = Strip(self._lines[row].render(self.app.console))
            else:
                strip = Strip.blank(0)
            self._strips[row] = strip
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width).apply_style(self._line_style)
