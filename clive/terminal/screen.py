"""The screen model (pyte with scrollback and the alternate screen) and immutable snapshots of it."""

from __future__ import annotations

import collections
import copy
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import pyte
from pyte import modes as mo

from clive.terminal import clusters, graphemes
from clive.terminal.conformance import XtermMoves

# Private DEC modes that switch to the alternate screen; pyte shifts private modes by 5 bits.
_ALT_MODES = {47 << 5, 1047 << 5, 1049 << 5}
_SAVE_CURSOR_MODE = 1049 << 5
# Application cursor keys (DECCKM, private mode 1); pyte tracks the mode but names no constant for it.
DECCKM = 1 << 5


@dataclass(frozen=True, slots=True)
class StyleRun:
    """A run of cells sharing one style, columns [start, end)."""

    start: int
    end: int
    fg: str = "default"
    bg: str = "default"
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    reverse: bool = False


_cell_data = operator.attrgetter("data")


def _line_text(line: Any, columns: int) -> str:
    # pyte stores a wide character at x and an empty stub at x + 1; joining the data skips the stub.
    return "".join(map(_cell_data, map(line.__getitem__, range(columns)))).rstrip()


def _line_styles(line: Any, columns: int) -> tuple[StyleRun, ...]:
    runs: list[StyleRun] = []
    start = 0
    key = None
    for x in range(columns + 1):
        if x < columns:
            ch = line[x]
            k = (ch.fg, ch.bg, ch.bold, ch.italics, ch.underscore, ch.reverse)
        else:
            k = None
        if k != key:
            if key is not None and key != ("default", "default", False, False, False, False):
                runs.append(StyleRun(start, x, *key))
            start, key = x, k
    return tuple(runs)


# In the lines clive.terminal.fastfeed's lazy path measures and cuts, a two-cell character is followed by this
# (its second cell). A character written in the last column has no second cell: the row ends there.
STUB = "\x00"

_rows_patterns: dict[int, re.Pattern[str]] = {}


def rows_pattern(columns: int) -> re.Pattern[str]:
    """Splits text (lines joined by LF, no CR or TAB) into its screen rows: an empty line is one row.

    ``findall`` gives each row's cells; a second cell (STUB) that would start a row is dropped."""
    pattern = _rows_patterns.get(columns)
    if pattern is None:
        pattern = _rows_patterns[columns] = re.compile(f"(?m)(.{{1,{columns}}}){STUB}?|^$")
    return pattern


def row_texts(rows: list[str]) -> list[str]:
    """Rows' cells as ``rows_pattern`` gives them, as text: second cells dropped, clusters read back
    from their tokens (``clusters``), right-stripped."""
    if any(STUB in row for row in rows):
        rows = [row.replace(STUB, "") for row in rows]
    if clusters.TEXT:
        rows = list(map(clusters.text_of, rows))
    return list(map(str.rstrip, rows))


class LineRows:
    """The last ``count`` rows of ``lines`` wrapped at ``columns``, not cut into rows yet.

    The lines hold no controls and are cells (a two-cell character is followed by STUB, a cluster is a
    token: see ``clusters``), each written from column 0 of a fresh row (clive.terminal.fastfeed's lazy
    path), so ``rows_pattern`` cuts them."""

    __slots__ = ("lines", "columns", "count")

    def __init__(self, lines: list[str], columns: int, count: int) -> None:
        self.lines = lines
        self.columns = columns
        self.count = count

    def dropped(self, rows: int) -> LineRows:
        """The same without its first ``rows`` rows."""
        return LineRows(self.lines, self.columns, self.count - rows)

    def rows(self) -> list[str]:
        # Every line has a row at least, so the last `count` rows are all in the last `count` lines.
        lines = self.lines[-self.count :] if self.count < len(self.lines) else self.lines
        rows = rows_pattern(self.columns).findall("\n".join(lines))
        return row_texts(rows[len(rows) - self.count :])


class History:
    """Rows scrolled off the top of the main screen, oldest first: the last ``maxlen`` of them.

    Rows come as text (``append``, ``extend``) or, from a flood, as whole lines (``extend_lines``). A
    flood pushes out again nearly all it pushes in: lines pushed out before anything reads the history
    are never cut into rows. Reading (iterating, indexing) cuts what is left."""

    __slots__ = ("maxlen", "_rows", "_tail", "_tail_len")

    def __init__(self, maxlen: int, rows: Iterable[str] = ()) -> None:
        self.maxlen = max(maxlen, 0)
        self._rows: collections.deque[str] = collections.deque(rows, maxlen=self.maxlen)
        # What came after _rows while lines are waiting to be cut: row texts (lists) and LineRows.
        self._tail: list[list[str] | LineRows] = []
        self._tail_len = 0

    def __len__(self) -> int:
        return len(self._rows) + self._tail_len

    def __iter__(self) -> Iterator[str]:
        return iter(self._cut())

    def __getitem__(self, index: int) -> str:
        return self._cut()[index]

    def __repr__(self) -> str:
        return f"History({self.maxlen}, {list(self)!r})"

    def append(self, row: str) -> None:
        if self._tail:
            self._push([row], 1)
        else:
            self._rows.append(row)

    def extend(self, rows: Iterable[str]) -> None:
        if self._tail:
            rows = list(rows)
            self._push(rows, len(rows))
        else:
            self._rows.extend(rows)

    def extend_lines(self, block: LineRows) -> None:
        self._push(block, block.count)

    def clear(self) -> None:
        self._rows.clear()
        self._tail = []
        self._tail_len = 0

    def _push(self, item: list[str] | LineRows, count: int) -> None:
        if not count or not self.maxlen:
            return
        tail = self._tail
        if isinstance(item, list) and tail and isinstance(tail[-1], list):
            tail[-1].extend(item)
        else:
            tail.append(item)
        self._tail_len += count
        excess = len(self._rows) + self._tail_len - self.maxlen
        if excess <= 0:
            return
        rows = self._rows
        if excess < len(rows):
            if excess < 64:
                for _ in range(excess):
                    rows.popleft()
            else:
                self._rows = collections.deque(islice(rows, excess, None), maxlen=self.maxlen)
            return
        excess -= len(rows)
        rows.clear()
        i = 0
        while True:
            item = tail[i]
            size = len(item) if isinstance(item, list) else item.count
            if size > excess:
                break
            excess -= size
            self._tail_len -= size
            i += 1
        if excess:
            tail[i] = item[excess:] if isinstance(item, list) else item.dropped(excess)
            self._tail_len -= excess
        del tail[:i]

    def _cut(self) -> collections.deque[str]:
        if self._tail:
            for item in self._tail:
                self._rows.extend(item if isinstance(item, list) else item.rows())
            self._tail = []
            self._tail_len = 0
        return self._rows


class ScreenModel(XtermMoves, pyte.Screen):
    """A pyte screen that keeps scrollback, follows the alternate screen and reports replies."""

    def __init__(
        self,
        columns: int,
        lines: int,
        history: int = 5000,
        reply: Callable[[str], None] | None = None,
    ) -> None:
        self.history = History(history)
        self.scrolled = 0  # lines pushed off the top of the main screen, ever
        # Whole-screen erases (ESC [2J, ESC [3J) and resets (ESC c), ever: [main, alternate].
        self.clears = [0, 0]
        self.alternate = False
        self._saved_main: tuple[dict, Any] | None = None
        self._reply = reply
        super().__init__(columns, lines)

    join_at: tuple[int, int] | None = None  # after a zero-width joiner: where the next character joins

    def draw(self, data: str) -> None:
        graphemes.draw(self, data)  # pyte's draw, keeping emoji sequences and flags whole

    # clive.terminal.fastfeed may leave the bottom rows of a flood unbuilt: their text is known at once, their
    # cells are made the first time anything reads `buffer` (or resizes), so a flood costs no cells.
    _pending: Any = None

    @property
    def buffer(self) -> dict[int, Any]:
        if self._pending is not None:
            self._pending.flush(self)
        return self._buffer

    @buffer.setter
    def buffer(self, value: dict[int, Any]) -> None:
        self._pending = None
        self._buffer = value

    # The alternate screen: full-screen programs draw there and leave the main screen intact.
    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        shifted = [m << 5 for m in modes] if kwargs.get("private") else list(modes)
        if any(m in _ALT_MODES for m in shifted):
            if _SAVE_CURSOR_MODE in shifted:
                self.save_cursor()  # 1049 saves the cursor as DECSC does, into the same slot
            self._enter_alternate(save_cursor=False)
            rest = [m for m, s in zip(modes, shifted, strict=True) if s not in _ALT_MODES]
            if not rest:
                return
            modes = tuple(rest)
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        shifted = [m << 5 for m in modes] if kwargs.get("private") else list(modes)
        if any(m in _ALT_MODES for m in shifted):
            self._leave_alternate()
            if _SAVE_CURSOR_MODE in shifted:
                self.restore_cursor()  # as DECRC, even when the main screen was already shown (xterm, tmux)
            rest = [m for m, s in zip(modes, shifted, strict=True) if s not in _ALT_MODES]
            if not rest:
                return
            modes = tuple(rest)
        super().reset_mode(*modes, **kwargs)

    # DECSC/DECRC as xterm and tmux do them: one saved cursor that DECRC restores as often as asked,
    # with the origin and wrap modes as they were (pyte keeps a stack that DECRC pops).
    def save_cursor(self) -> None:
        super().save_cursor()
        del self.savepoints[:-1]

    def restore_cursor(self) -> None:
        if not self.savepoints:
            super().restore_cursor()
            return
        saved = self.savepoints[-1]
        self.g0_charset, self.g1_charset, self.charset = saved.g0_charset, saved.g1_charset, saved.charset
        (self.set_mode if saved.origin else self.reset_mode)(pyte.modes.DECOM)
        (self.set_mode if saved.wrap else self.reset_mode)(pyte.modes.DECAWM)
        self.cursor = copy.copy(saved.cursor)
        self.ensure_hbounds()
        self.ensure_vbounds(use_margins=True)

    def _enter_alternate(self, save_cursor: bool) -> None:
        if self.alternate:
            return
        self._saved_main = (dict(self.buffer), copy.copy(self.cursor) if save_cursor else None)
        self.alternate = True
        self.buffer.clear()
        self.dirty.update(range(self.lines))

    def _leave_alternate(self) -> None:
        if not self.alternate:
            return
        self.alternate = False
        saved, cursor = self._saved_main or ({}, None)
        self._saved_main = None
        self.buffer.clear()
        for y, line in saved.items():
            if y < self.lines:
                self.buffer[y] = line
        if cursor is not None:
            self.cursor = cursor
            self.ensure_hbounds()
            self.ensure_vbounds()
        self.dirty.update(range(self.lines))

    def index(self) -> None:
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and not self.alternate:
            self.history.append(_line_text(self.buffer[0], self.columns))
            self.scrolled += 1
        super().index()

    def reset(self) -> None:
        # ESC c (RIS) resets the terminal; scrollback survives as it does in xterm.
        self.clears[self.alternate] += 1
        self.alternate = False
        self._saved_main = None
        super().reset()
        self.join_at = None
        self.g1_charset = pyte.charsets.LAT1_MAP  # xterm and tmux start G1 as ASCII (pyte: DEC graphics)

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        if self._pending is not None:
            self._pending.flush(self)
        if self.alternate and self._saved_main is not None:
            saved, cursor = self._saved_main
            lines_now = lines if lines is not None else self.lines
            self._saved_main = ({y: v for y, v in saved.items() if y < lines_now}, cursor)
        super().resize(lines, columns)

    def select_graphic_rendition(self, *attrs: int, private: bool = False, **kwargs: Any) -> None:
        # ``CSI > 4 ; 2 m`` (xterm modifyOtherKeys, sent by vim) reaches here as private SGR.
        if not private:
            super().select_graphic_rendition(*attrs)

    def write_process_input(self, data: str) -> None:
        # Answers to device status and attribute queries (vim asks for the cursor position).
        if self._reply is not None:
            self._reply(data)

    @property
    def app_cursor_keys(self) -> bool:
        return DECCKM in self.mode

    @property
    def cursor_visible(self) -> bool:
        return mo.DECTCEM in self.mode and not self.cursor.hidden

    def text_lines(self) -> list[str]:
        if self._pending is not None:
            return self._pending.text_lines(self)
        return [_line_text(self.buffer[y], self.columns) for y in range(self.lines)]

    def snapshot(self, *, with_style: bool = False) -> Snapshot:
        styles = None
        if with_style:
            styles = tuple(_line_styles(self.buffer[y], self.columns) for y in range(self.lines))
        return Snapshot(
            lines=tuple(self.text_lines()),
            cursor=(self.cursor.x, self.cursor.y),
            cursor_visible=self.cursor_visible,
            title=self.title,
            columns=self.columns,
            rows=self.lines,
            alternate=self.alternate,
            styles=styles,
        )


class ControlStrings:
    """Drops DCS, SOS, PM and APC strings (``ESC P``/``X``/``^``/``_`` ... ``ESC \\``) from decoded output.

    A terminal never draws them (tmux passthrough, sixel and kitty images, DECRQSS replies); pyte has
    no parser for them and would draw their payload as text. As in a VT500 parser, any ESC ends the
    string; ``ESC \\`` (ST) is consumed with it, any other ESC starts a new sequence."""

    _START = re.compile("\x1b[PX^_]")

    def __init__(self) -> None:
        self._inside = False
        self._held = ""  # a lone ESC at the end of a chunk: what it starts is in the next chunk

    @property
    def at_ground(self) -> bool:
        """Outside any string and holding nothing back: a fresh filter would continue the same."""
        return not self._inside and not self._held

    def feed(self, text: str) -> str:
        if self._held:
            text, self._held = self._held + text, ""
        out: list[str] = []
        pos, end = 0, len(text)
        while pos < end:
            if self._inside:
                esc = text.find("\x1b", pos)
                if esc == -1:
                    return "".join(out)
                if esc + 1 == end:
                    self._held = "\x1b"
                    return "".join(out)
                self._inside = False
                pos = esc + 2 if text[esc + 1] == "\\" else esc
            else:
                m = self._START.search(text, pos)
                if m is None:
                    if text.endswith("\x1b"):
                        out.append(text[pos:-1])
                        self._held = "\x1b"
                    else:
                        out.append(text[pos:])
                    break
                out.append(text[pos : m.start()])
                self._inside, pos = True, m.end()
        return "".join(out)


def numbered_rows(rows: Iterable[tuple[int, str]]) -> list[str]:
    """Rows as ``N| text`` for a model; a run of three or more identical rows reads ``A-B| text``.

    vim's column of ``~`` and the blank top of a short file in less are most of their screens:
    one line each says the same for a tenth of the tokens.
    """
    out: list[str] = []
    run: list[tuple[int, str]] = []

    def flush() -> None:
        if len(run) >= 3:
            out.append(f"{run[0][0] + 1}-{run[-1][0] + 1}| {run[0][1]}")
        else:
            out.extend(f"{y + 1}| {text}" for y, text in run)
        run.clear()

    for y, text in rows:
        if run and (y != run[-1][0] + 1 or text != run[-1][1]):
            flush()
        run.append((y, text))
    flush()
    return out


@dataclass(frozen=True, slots=True)
class ScreenDiff:
    """What changed between two snapshots: the rows that differ, and the cursor and title."""

    rows: tuple[tuple[int, str], ...]
    cursor: tuple[int, int]
    title: str | None  # None when unchanged
    alternate: bool | None  # None when unchanged
    scrolled: int = 0  # the old screen moved up this many lines before ``rows`` were applied
    moved: bool = True  # the cursor is not where it was

    @property
    def empty(self) -> bool:
        return not self.rows and self.title is None and self.alternate is None and not self.scrolled

    def apply(self, previous: Snapshot) -> tuple[str, ...]:
        """The lines this diff turns ``previous`` into (what a reader of the diff reconstructs)."""
        lines = list(previous.lines[self.scrolled :]) + [""] * self.scrolled
        for y, text in self.rows:
            lines[y] = text
        return tuple(lines)

    def render(self, *, cursor: bool = True) -> str:
        """A compact text form for a model: a header, one line per changed row, then the cursor.

        Empty when nothing changed, or only the cursor moved and ``cursor`` is False.
        """
        where = f"cursor row {self.cursor[1] + 1}, col {self.cursor[0] + 1}"
        if self.empty:
            return f"[screen unchanged, {where}]" if cursor and self.moved else ""
        lines = [self._head(), *numbered_rows(self.rows)]
        if cursor:
            lines.append(f"[{where}]")
        return "\n".join(lines)

    def _head(self) -> str:
        head = ["changed rows"]
        if self.alternate is not None:
            head.append("alternate screen" if self.alternate else "main screen")
        if self.title is not None:
            head.append(f"title: {self.title}")
        if self.scrolled:
            head.append(f"scrolled up {self.scrolled} line{'' if self.scrolled == 1 else 's'}")
        return "[" + ", ".join(head) + "]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [[y, t] for y, t in self.rows],
            "cursor": list(self.cursor),
            "title": self.title,
            "alternate": self.alternate,
            "scrolled": self.scrolled,
            "moved": self.moved,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable picture of the screen as a person would see it."""

    lines: tuple[str, ...]
    cursor: tuple[int, int]  # (x, y), 0-based
    columns: int
    rows: int
    title: str = ""
    cursor_visible: bool = True
    alternate: bool = False
    styles: tuple[tuple[StyleRun, ...], ...] | None = field(default=None, compare=False)

    def text(self) -> str:
        """The screen as text, trailing blank lines dropped."""
        lines = list(self.lines)
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    def contains(self, needle: str) -> bool:
        return any(needle in line for line in self.lines)

    def diff(self, previous: Snapshot | None) -> ScreenDiff | None:
        """Rows that changed since ``previous``; None when a full snapshot is needed instead."""
        if previous is None or (previous.columns, previous.rows) != (self.columns, self.rows):
            return None
        # Output that scrolls the screen changes every row; described as a scroll plus the new
        # rows, it costs only what is new.
        shift = _best_scroll(previous.lines, self.lines)
        base = list(previous.lines[shift:]) + [""] * shift
        rows = tuple((y, line) for y, (line, old) in enumerate(zip(self.lines, base, strict=True)) if line != old)
        return ScreenDiff(
            rows=rows,
            cursor=self.cursor,
            title=self.title if self.title != previous.title else None,
            alternate=self.alternate if self.alternate != previous.alternate else None,
            scrolled=shift,
            moved=self.cursor != previous.cursor,
        )

    def render(self) -> str:
        """The full screen for a model, with row numbers, cursor and title."""
        head = f"[screen {self.columns}x{self.rows}"
        if self.alternate:
            head += ", alternate"
        if self.title:
            head += f", title: {self.title}"
        head += "]"
        shown = len(self.lines)
        while shown and not self.lines[shown - 1] and shown - 1 > self.cursor[1]:
            shown -= 1
        body = numbered_rows(enumerate(self.lines[:shown]))
        return "\n".join([head, *body, f"[cursor row {self.cursor[1] + 1}, col {self.cursor[0] + 1}]"])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "lines": list(self.lines),
            "cursor": list(self.cursor),
            "columns": self.columns,
            "rows": self.rows,
            "title": self.title,
            "cursor_visible": self.cursor_visible,
            "alternate": self.alternate,
        }
        if self.styles is not None:
            data["styles"] = [
                [[r.start, r.end, r.fg, r.bg, r.bold, r.italics, r.underscore, r.reverse] for r in row]
                for row in self.styles
            ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        styles = data.get("styles")
        return cls(
            lines=tuple(data["lines"]),
            cursor=(int(data["cursor"][0]), int(data["cursor"][1])),
            columns=int(data["columns"]),
            rows=int(data["rows"]),
            title=data.get("title", ""),
            cursor_visible=bool(data.get("cursor_visible", True)),
            alternate=bool(data.get("alternate", False)),
            styles=None
            if styles is None
            else tuple(tuple(StyleRun(*run) for run in row) for row in styles),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        return cls.from_dict(json.loads(text))


def _best_scroll(old: tuple[str, ...], new: tuple[str, ...]) -> int:
    """The upward shift of ``old`` that leaves the fewest rows to send (0 when none helps)."""
    rows = len(old)

    def changed(shift: int) -> int:
        return sum(1 for y in range(rows) if new[y] != (old[y + shift] if y + shift < rows else ""))

    best, best_changed = 0, changed(0)
    if best_changed <= 1:
        return 0
    # Candidate shifts: where the old screen's non-empty rows reappear higher up.
    positions: dict[str, list[int]] = {}
    for y, line in enumerate(old):
        if line:
            positions.setdefault(line, []).append(y)
    candidates = set()
    for y, line in enumerate(new):
        for oy in positions.get(line, ()):
            if oy > y:
                candidates.add(oy - y)
    for shift in sorted(candidates):
        count = changed(shift)
        if count < best_changed:
            best, best_changed = shift, count
    return best
