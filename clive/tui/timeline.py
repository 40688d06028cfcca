"""The timeline of cycles: one row per cycle (action, exit code, duration, tokens).

A line-API widget rather than a ``DataTable``: a row is drawn once and kept, moving the cursor
repaints the two rows it leaves and enters, and ten thousand cycles cost a list of events, not ten
thousand table rows.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from clive.session.listing import summarize_action


def action_summary(action: Any, width: int = 40) -> str:
    """An action in a few words: ``run make test``, ``keys :wq<Enter>``."""
    return summarize_action(action, width)


def _outcome(event: dict[str, Any]) -> dict[str, Any]:
    outcome = event.get("outcome")
    return outcome if isinstance(outcome, dict) else {}


def cycle_row(event: dict[str, Any], action_width: int = 200) -> tuple[str, str, str, str, str]:
    """The timeline's cells for one cycle: number, action, exit code, duration, tokens."""
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
    return (str(event.get("cycle", "?")), action_summary(event.get("action"), action_width), exit_text, dur, tokens)


def fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis (wide characters count
    two cells)."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


HEADER = ("#", "action", "exit", "time", "tok")
# Widths of the columns after the action's (exit, time, tok); the action takes what is left.
FIXED = (4, 6, 5)


class Timeline(ScrollView, can_focus=True):
    """Cycles as rows under a fixed header; moving the cursor with the keys or the mouse posts
    ``Timeline.Selected``, moving it with ``move_cursor`` does not."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"timeline--header", "timeline--cursor", "timeline--failed"}

    DEFAULT_CSS = """
    Timeline {
        height: 1fr;
        background: $surface;
        border: round $primary 50%;
        border-title-color: $text-muted;
        /* No scrollbar: the title bar says which cycle of how many, and a scrollbar whose thumb
           moves at every step would repaint at every step. */
        overflow-x: hidden;
        overflow-y: hidden;
        & > .timeline--header {
            text-style: bold;
            background: $panel;
        }
        & > .timeline--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .timeline--failed {
            color: $text-error;
        }
        &:focus {
            border: round $primary;
            background-tint: $foreground 5%;
            & > .timeline--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "cursor_first", "First", show=False),
        Binding("end", "cursor_last", "Last", show=False),
    ]

    class Selected(Message):
        """The person moved to another cycle (``index`` in the timeline)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "cycles"
        self.cycles: list[dict[str, Any]] = []  # the cycle events, one per row
        self.cursor_row = 0
        self._strips: dict[tuple[int, bool], Strip] = {}  # (row, under the cursor) -> drawn row
        self._drawn_with: tuple[object, ...] = ()  # width and styles the kept strips were drawn with
        self._styles: dict[str, Style] = {}

    def clear(self) -> None:
        """Forget every row: the viewer shows another recording (another worker's)."""
        self.cycles = []
        self.cursor_row = 0
        self._strips.clear()
        self.virtual_size = Size(0, 1)
        self.scroll_to(y=0, animate=False, force=True)
        self.refresh()

    def add_cycles(self, cycles: list[dict[str, Any]]) -> None:
        if not cycles:
            return
        self.cycles.extend(cycles)
        self.virtual_size = Size(0, len(self.cycles) + 1)

    # ---- the cursor ----------------------------------------------------------------------

    @property
    def _rows_shown(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # less the header

    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row``, scrolling only as far as needed to show it."""
        if not self.cycles:
            return
        row = max(0, min(row, len(self.cycles) - 1))
        old, self.cursor_row = self.cursor_row, row
        top = round(self.scroll_y)
        self.scroll_to_cursor()
        if round(self.scroll_y) == top:  # no scroll: repaint just the two rows
            width = self.size.width
            for r in {old, row}:
                if top <= r < top + self._rows_shown:
                    self.refresh(Region(0, r - top + 1, width, 1))

    def scroll_to_cursor(self) -> None:
        """Scroll only as far as it takes to show the cursor's row."""
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, force=True)
        elif self.cursor_row >= top + self._rows_shown:
            self.scroll_to(y=self.cursor_row - self._rows_shown + 1, animate=False, force=True)

    def on_resize(self, event: events.Resize) -> None:
        # A cursor placed before the first layout (live mode opens at the newest cycle) is
        # shown once the timeline knows its height.
        self.call_after_refresh(self.scroll_to_cursor)

    def _move(self, row: int) -> None:
        if self.cycles and row != self.cursor_row:
            self.move_cursor(row)
            self.post_message(self.Selected(self.cursor_row))

    def action_cursor_up(self) -> None:
        self._move(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor_row - self._rows_shown)

    def action_page_down(self) -> None:
        self._move(self.cursor_row + self._rows_shown)

    def action_cursor_first(self) -> None:
        self._move(0)

    def action_cursor_last(self) -> None:
        self._move(len(self.cycles) - 1)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_to(y=self.scroll_y + 3, animate=False, force=True)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_to(y=self.scroll_y - 3, animate=False, force=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            self._move(round(self.scroll_y) + offset.y - 1)

    # ---- drawing -------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Look the component styles up once per repaint; kept rows are dropped when they change
        # (focus, theme) or the width does.
        self._styles = {
            name: self.get_component_rich_style(name, partial=name != "timeline--header")
            for name in self.COMPONENT_CLASSES
        }
        self._styles["base"] = self.rich_style
        drawn_with = (self.scrollable_content_region.width, self._number_width(), *self._styles.values())
        if drawn_with != self._drawn_with or len(self._strips) > 4096:
            self._strips.clear()
            self._drawn_with = drawn_with
        return super().render_lines(crop)

    def _number_width(self) -> int:
        last = self.cycles[-1].get("cycle", "?") if self.cycles else "#"
        return max(3, len(str(last)))

    def _row_strip(self, row: int, cursor: bool, width: int) -> Strip:
        styles = self._styles
        event = self.cycles[row]
        number_width = self._number_width()
        action_width = max(4, width - number_width - sum(FIXED) - 4)
        number, action, exit_text, duration, tokens = cycle_row(event)
        base = styles["base"] + styles["timeline--cursor"] if cursor else styles["base"]
        failed = exit_text not in ("0", "-")
        segments = [
            Segment(f"{number:>{number_width}} {fit(action, action_width)} ", base),
            Segment(f"{exit_text:>{FIXED[0]}}", base + styles["timeline--failed"] if failed else base),
            Segment(f" {duration:>{FIXED[1]}} {tokens:>{FIXED[2]}}", base),
        ]
        return Strip(segments).extend_cell_length(width, base).crop(0, width)

    def _header_strip(self, width: int) -> Strip:
        number_width = self._number_width()
        action_width = max(4, width - number_width - sum(FIXED) - 4)
        text = " ".join(
            [HEADER[0].rjust(number_width), HEADER[1].ljust(action_width)]
            + [h.rjust(w) for h, w in zip(HEADER[2:], FIXED, strict=True)]
        )
        style = self._styles["base"] + self._styles["timeline--header"]
        return Strip([Segment(text, style)]).extend_cell_length(width, style).crop(0, width)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            return self._header_strip(width)
        row = round(self.scroll_y) + y - 1
        if not 0 <= row < len(self.cycles):
            return Strip.blank(width, self._styles["base"])
        key = (row, row == self.cursor_row)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._row_strip(row, key[1], width)
        return strip
