"""The terminal pane: a pyte ``Snapshot`` drawn cell for cell, with colours and the cursor.

Rows are rendered with Textual's line API from a cache keyed on what a row shows, and a new
snapshot refreshes only the rows that differ from the last one, so a live screen never flickers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from wcwidth import wcwidth

from clive.screen import Snapshot, StyleRun

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


def _cells(text: str) -> list[tuple[int, str]]:
    """(column, character) for each character of a row; wide characters take two columns."""
    out = []
    col = 0
    for ch in text:
        out.append((col, ch))
        col += max(wcwidth(ch), 1) if ch >= " " else 1
    return out


def row_strip(
    text: str, runs: tuple[StyleRun, ...], columns: int, cursor_x: int | None
) -> Strip:
    """One screen row as a strip exactly ``columns`` cells wide."""
    cells = _cells(text)
    width = cells[-1][0] + max(wcwidth(cells[-1][1]), 1) if cells else 0
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
        buf.append(ch if ch >= " " else " ")
    if buf:
        segments.append(Segment("".join(buf), current))
    return Strip(segments, max(columns, width)).crop(0, columns)


class TerminalView(ScrollView, can_focus=True):
    """Shows one snapshot of a terminal; set ``snapshot`` to update it."""

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
        self._cache: dict[int, tuple[tuple[object, ...], Strip]] = {}
        self.rendered_rows = 0  # rows drawn (not served from the cache), for tests and benches
        if snapshot is not None:
            self.show(snapshot)

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def show(self, snapshot: Snapshot) -> None:
        """Display ``snapshot``, redrawing only the rows that changed."""
        old = self._snapshot
        self._snapshot = snapshot
        size = Size(snapshot.columns, snapshot.rows)
        if old is None or (old.columns, old.rows) != (snapshot.columns, snapshot.rows):
            self._cache.clear()
            self.virtual_size = size
            self.refresh()
            return
        changed = [y for y in range(snapshot.rows) if self._row_key(snapshot, y) != self._row_key(old, y)]
        for y in changed:
            self._cache.pop(y, None)
            self.refresh(Region(0, y - self.scroll_offset.y, self.size.width, 1))

    @staticmethod
    def _row_key(snap: Snapshot, y: int) -> tuple[object, ...]:
        text = snap.lines[y] if y < len(snap.lines) else ""
        runs = snap.styles[y] if snap.styles is not None and y < len(snap.styles) else ()
        cursor = snap.cursor[0] if snap.cursor_visible and snap.cursor[1] == y else None
        return (text, runs, cursor)

    def render_line(self, y: int) -> Strip:
        snap = self._snapshot
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.size.width
        if snap is None or row >= snap.rows:
            return Strip.blank(width, self.rich_style)
        key = self._row_key(snap, row)
        cached = self._cache.get(row)
        if cached is None or cached[0] != key:
            text, runs, cursor = key
            strip = row_strip(text, runs, snap.columns, cursor)  # type: ignore[arg-type]
            self._cache[row] = (key, strip)
            self.rendered_rows += 1
        else:
            strip = cached[1]
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width).apply_style(self.rich_style)

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
