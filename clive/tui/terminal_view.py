"""The terminal pane: a pyte ``Snapshot`` drawn cell for cell, with colours and the cursor.

Rows are rendered with Textual's line API from a cache keyed on what a row shows (so output that
scrolls up is not drawn again), and a new snapshot repaints only the rows that differ from the last
one, so a live screen never flickers and stepping through a recording repaints little.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from clive.terminal.graphemes import clusters
from clive.terminal.screen import Snapshot, StyleRun

# pyte names the ANSI colours after the VT100 manual ("brown" is yellow).
_NAMES = {
    "black": 0, "red": 1, "green": 2, "brown": 3, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7,
}


@lru_cache(maxsize=1024)
def pyte_color(name: str) -> Color | None:
    """A Rich colour for a pyte colour name or hex string; None for the default colour."""
    if not name or name == "default":
        return None
    bright = name.startswith("bright")
    base = name[6:] if bright else name
    if base in _NAMES:
        return Color.from_ansi(_NAMES[base] + (8 if bright else 0))
    if len(name) == 6:
        try:
            return Color.from_rgb(int(name[0:2], 16), int(name[2:4], 16), int(name[4:6], 16))
        except ValueError:
            return None
    return None


@lru_cache(maxsize=4096)
def run_style(fg: str, bg: str, bold: bool, italics: bool, underscore: bool, reverse: bool) -> Style:
    return Style(
        color=pyte_color(fg),
        bgcolor=pyte_color(bg),
        bold=bold or None,
        italic=italics or None,
        underline=underscore or None,
        reverse=reverse or None,
    )


# What a terminal sends for keys that have no character of their own.
KEY_BYTES = {
    "enter": "\r", "tab": "\t", "backspace": "\x7f", "escape": "\x1b", "delete": "\x1b[3~",
    "up": "\x1b[A", "down": "\x1b[B", "right": "\x1b[C", "left": "\x1b[D",
    "home": "\x1b[H", "end": "\x1b[F", "pageup": "\x1b[5~", "pagedown": "\x1b[6~", "insert": "\x1b[2~",
    "shift+tab": "\x1b[Z",
}
HAND_BACK_KEY = "ctrl+right_square_bracket"


def key_bytes(event: events.Key) -> str | None:
    """The bytes a terminal would send for a key press, or None for keys we cannot send."""
    if event.key in KEY_BYTES:
        return KEY_BYTES[event.key]
    if event.key.startswith("ctrl+") and len(event.key) == 6 and event.key[5].isalpha():
        return chr(ord(event.key[5].lower()) - 96)
    if event.character:
        return event.character
    return None


_CURSOR = Style(reverse=True)
_PLAIN = Style()


def _cells(text: str) -> tuple[list[tuple[int, str]], int]:
    """(column, what to show) for each cell-holding character of a row, and the columns they take.
    A cluster Rich would measure otherwise than the screen (an emoji ZWJ sequence, a flag) shows as
    its first character, so that the row keeps its columns whatever the outer terminal makes of it."""
    out = []
    col = 0
    for cluster, width in clusters(text):
        shown = cluster if cell_len(cluster) == width else cluster[0]
        out.append((col, shown if shown >= " " else " "))
        col += width
    return out, col


def row_strip(
    text: str, runs: tuple[StyleRun, ...], columns: int, cursor_x: int | None
) -> Strip:
    """One screen row as a strip exactly ``columns`` cells wide."""
    cells, width = _cells(text)
    if width < columns:
        cells.extend((c, " ") for c in range(width, columns))
    segments: list[Segment] = []
    run_i = 0
    current: Style | None = None
    buf: list[str] = []
    for col, ch in cells:
        while run_i < len(runs) and runs[run_i].end <= col:
            run_i += 1
        if run_i < len(runs) and runs[run_i].start <= col:
            r = runs[run_i]
            style = run_style(r.fg, r.bg, r.bold, r.italics, r.underscore, r.reverse)
        else:
            style = _PLAIN
        if col == cursor_x:
            style = style + _CURSOR
        if style is not current:
            if buf:
                segments.append(Segment("".join(buf), current))
            buf, current = [], style
        buf.append(ch)
    if buf:
        segments.append(Segment("".join(buf), current))
    return Strip(segments, max(columns, width)).crop(0, columns)


@lru_cache(maxsize=4096)
def cached_row_strip(text: str, runs: tuple[StyleRun, ...], columns: int, cursor_x: int | None) -> Strip:
    """``row_strip`` keyed on what the row shows: output that scrolls up finds its rows here."""
    return row_strip(text, runs, columns, cursor_x)


RowKey = tuple[str, tuple[StyleRun, ...], int | None]
DRAWN_KEPT = 1024  # drawn rows a view keeps


def _row_keys(snap: Snapshot) -> list[RowKey]:
    """What each row of ``snap`` shows: its text, style runs and the cursor column if it is there."""
    lines, styles = snap.lines, snap.styles
    cursor_x, cursor_y = snap.cursor if snap.cursor_visible else (None, -1)
    keys = []
    for y in range(snap.rows):
        text = lines[y] if y < len(lines) else ""
        runs = styles[y] if styles is not None and y < len(styles) else ()
        keys.append((text, runs, cursor_x if y == cursor_y else None))
    return keys


class TerminalView(ScrollView, can_focus=True):
    """Shows one snapshot of a terminal; ``show`` a new one to update it."""

    DEFAULT_CSS = """
    TerminalView {
        background: $background;
        scrollbar-size: 1 1;
    }
    TerminalView:focus {
        background-tint: $foreground 3%;
    }
    """

    class HandBack(Message):
        """The person pressed Ctrl-] during a take-over."""

    def __init__(self, snapshot: Snapshot | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        # While set (a take-over), every key goes here as terminal bytes instead of to the app.
        self.keys_to: Callable[[str], None] | None = None
        self._snapshot: Snapshot | None = None
        self._keys: list[RowKey] = []
        self._columns = 0
        # Rows as drawn (cropped to the view, in the widget's style), by what they show: a row
        # that scrolled up or came back is not drawn again.
        self._drawn: dict[tuple[object, ...], Strip] = {}
        self._line_style = Style()
        self.drawn_rows = 0  # rows drawn (not found among those drawn before), for tests and benches
        if snapshot is not None:
            self.show(snapshot)

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def show(self, snapshot: Snapshot) -> None:
        """Display ``snapshot``, repainting only the rows that changed."""
        old = self._snapshot
        old_keys = self._keys
        self._snapshot = snapshot
        self._keys = _row_keys(snapshot)
        self._columns = snapshot.columns
        if snapshot.cursor_visible and (old is None or old.cursor != snapshot.cursor):
            # As a terminal does, the view follows the cursor up and down when it moves out of sight
            # (a pane shorter than the screen); a person who scrolled away is left there until it
            # moves. Not sideways: the left edge stays where the person sees it.
            self.call_after_refresh(self._cursor_into_view)
        if old is None or (old.columns, old.rows) != (snapshot.columns, snapshot.rows):
            self._drawn.clear()
            self.virtual_size = Size(snapshot.columns, snapshot.rows)
            self.refresh()
            return
        scroll_y = self.scroll_offset.y
        width = self.size.width
        start = None  # a run of changed rows is repainted as one region
        for y, key in enumerate([*self._keys, None]):
            changed = key is not None and key != old_keys[y]
            if changed and start is None:
                start = y
            elif not changed and start is not None:
                self.refresh(Region(0, start - scroll_y, width, y - start))
                start = None

    def on_resize(self) -> None:
        self.call_after_refresh(self._cursor_into_view)  # zoomed out, say: keep the cursor in sight

    def _cursor_into_view(self) -> None:
        snap = self._snapshot
        if snap is not None and snap.cursor_visible:
            x, y = snap.cursor
            self.scroll_to_region(Region(x, y, 1, 1), animate=False, immediate=True, x_axis=False)

    def render_lines(self, crop: Region) -> list[Strip]:
        # One look-up of the widget's style per repaint, not one per row.
        self._line_style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.size.width
        style = self._line_style
        if row >= len(self._keys):
            return Strip.blank(width, style)
        key = self._keys[row]
        drawn_from = (key, scroll_x, width, style)
        strip = self._drawn.get(drawn_from)
        if strip is None:
            self.drawn_rows += 1
            text, runs, cursor_x = key
            strip = cached_row_strip(text, runs, self._columns, cursor_x)
            strip = strip.crop(scroll_x, scroll_x + width).extend_cell_length(width).apply_style(style)
            if len(self._drawn) >= DRAWN_KEPT:
                self._drawn.clear()
            self._drawn[drawn_from] = strip
        return strip

    async def _on_key(self, event: events.Key) -> None:
        if self.keys_to is None:
            return
        event.stop()
        event.prevent_default()
        if event.key == HAND_BACK_KEY or event.character == "\x1d":
            self.post_message(self.HandBack())
            return
        data = key_bytes(event)
        if data:
            self.keys_to(data)
