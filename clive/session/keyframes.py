"""Keyframes: the screen a replay of a session's cast reaches, kept every so often so that a seek
feeds the cast only from the keyframe before it. The reader keeps its own in memory; while
recording, a helper process replays the cast and appends them to keyframes.jsonl, because
replaying costs as much as drawing and would slow the recording process down."""

from __future__ import annotations

import bisect
import contextlib
import copy
import fcntl
import os
import select
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pyte import charsets as pyte_charsets
from pyte.screens import Char, Cursor, Margins, Savepoint, StaticDefaultDict

from clive.session.cast import (
    MAX_SIZE,
    AppendedLines,
    CastEvent,
    encode_line,
    parse_event,
    parse_header,
    parse_json_line,
    parse_size,
    truncate_torn,
    write_all,
)
from clive.terminal.fastfeed import FastStream
from clive.terminal.screen import ControlStrings, History, ScreenModel
from clive.terminal.terminal_screen import TerminalScreen

__all__ = [
    "KEYFRAME_CHARS",
    "KEYFRAME_EVENTS",
    "KEYFRAME_IDLE",
    "KEYFRAME_LAG",
    "KEYFRAME_SPACING",
    "KEYFRAME_START",
    "KEYFRAME_WAIT",
    "Keyframe",
    "RecordedKeyframes",
    "Replay",
    "Secrets",
    "keyframe_process",
]

# The reader keeps a copy of the screen every this many cast events or characters fed, so a
# seek feeds at most one interval (pyte draws about 1 MB/s: 16 KB is ~15-25 ms).
KEYFRAME_EVENTS = 200
KEYFRAME_CHARS = 16_384
# The recorder's keyframes (keyframes.jsonl, written by a helper process): they start once the cast
# holds this much output (less replays in a few milliseconds), one every this many seconds of
# replay, so a cold seek anywhere feeds at most that much; close() waits this long for the helper
# to catch up (it finishes on its own if that is not enough).
KEYFRAME_START = 32_768
KEYFRAME_SPACING = 0.010
KEYFRAME_WAIT = 2.0
# The helper runs at idle priority (SCHED_IDLE, else nice 19): only on CPU time that nothing else
# wants, so the agent and the programs it runs (and times) never wait for it; False: nice 10. It
# replays while the recording process waits rather than while it is busy, unless this many
# seconds behind.
KEYFRAME_IDLE = True
KEYFRAME_LAG = 30.0
KEYFRAME_MAX_LINE = 32 * 2**20


# ---- keyframes in memory ------------------------------------------------------------------


def _bare_copy(src: ScreenModel) -> ScreenModel:
    """A copy of a screen's whole state except its cells (the buffer starts empty)."""
    dst = copy.copy(src)
    dst.buffer = defaultdict(lambda: StaticDefaultDict(dst.default_char))
    dst.dirty = set()
    dst.mode = set(src.mode)
    dst.tabstops = set(src.tabstops)
    dst.cursor = copy.copy(src.cursor)
    dst.savepoints = [sp._replace(cursor=copy.copy(sp.cursor)) for sp in src.savepoints]
    dst.history = History(src.history.maxlen, src.history)
    dst.clears = list(src.clears)  # a counter list: a copy must not share it with its source
    if src._saved_main is not None:
        cursor = src._saved_main[1]
        dst._saved_main = ({}, copy.copy(cursor) if cursor is not None else None)
    return dst


_Row = tuple[Char, tuple[Char | None, ...]]


def _freeze_row(row: StaticDefaultDict, cells: dict[Char, Char]) -> _Row:
    # Cells are immutable and mostly repeat: share one object per distinct cell, so a keyframe
    # costs a pointer per column instead of a dict and a tuple per cell.
    line: list[Char | None] = [None] * (max(row) + 1 if row else 0)
    for x, char in row.items():
        line[x] = cells.setdefault(char, char)
    return cells.setdefault(row.default, row.default), tuple(line)


def _thaw_row(frozen: _Row) -> StaticDefaultDict:
    default, line = frozen
    row = StaticDefaultDict(default)
    row.update({x: char for x, char in enumerate(line) if char is not None})
    return row


class Keyframe:
    """A screen frozen compactly, from which any number of working screens can be thawed."""

    __slots__ = ("shell", "rows", "saved_rows")

    def __init__(self, screen: ScreenModel, cells: dict[Char, Char]) -> None:
        self.shell = _bare_copy(screen)
        self.rows = {y: _freeze_row(row, cells) for y, row in screen.buffer.items()}
        saved = screen._saved_main
        self.saved_rows = (
            {y: _freeze_row(row, cells) for y, row in saved[0].items()} if saved else None
        )

    def thaw(self) -> ScreenModel:
        screen = _bare_copy(self.shell)
        for y, row in self.rows.items():
            screen.buffer[y] = _thaw_row(row)
        if self.saved_rows is not None and screen._saved_main is not None:
            rows = {y: _thaw_row(row) for y, row in self.saved_rows.items()}
            screen._saved_main = (rows, screen._saved_main[1])
        return screen


def _ground(stream: FastStream) -> bool:
    # pyte's parser is a generator, which cannot be copied: keep keyframes only where it is
    # between escape sequences, so a fresh Stream continues exactly.
    return bool(getattr(stream, "_taking_plain_text", True))


# ---- keyframes on disk --------------------------------------------------------------------
#
# keyframes.jsonl holds one screen per line, ``{"index": N, "v": 1, ...}``: the screen replay
# reaches after the first N cast events (parser between sequences there). The form is plain JSON,
# checked field by field on load: a session may come from anyone, so a keyframe is data to
# validate, never code to run, and one that is off in any way is dropped (replay covers it).

KEYFRAME_FORM = 1
_KF_PREFIX = b'{"index": '
_CHARSET_NAME = {table: name for name, table in pyte_charsets.MAPS.items()}
_KF_KEYS = frozenset(
    "index v size styles rows cursor savepoints mode margins tabstops charset g0 g1 title icon "
    "saved_columns alternate saved_main scrolled clears".split()
)
_KF_OPTIONAL = frozenset({"join"})  # where a joiner waits for the next character (written only then)
_BIG = 2**62  # counters (lines scrolled, clears) and mode numbers stay below this


class _BadKeyframe(ValueError):
    pass


class _StyleTable:
    """Cell styles (every Char field but ``data``) numbered in order of first use."""

    def __init__(self) -> None:
        self.table: list[list[Any]] = []
        self._index: dict[tuple[Any, ...], int] = {}
        self._by_char: dict[Char, int] = {}

    def ref(self, char: Char) -> int:
        n = self._by_char.get(char)
        if n is None:
            key = tuple(char[1:])
            n = self._index.get(key)
            if n is None:
                n = self._index[key] = len(self.table)
                self.table.append(list(key))
            self._by_char[char] = n
        return n


def _encode_rows(rows: Mapping[int, Mapping[int, Char]], styles: _StyleTable) -> list[Any]:
    # Per row: [y, default cell, runs]; a run is [x, style, text] over consecutive columns of one
    # style, text a string when every cell holds one character, else the list of cell strings
    # (a wide character's empty stub, combining marks). Absent cells stay absent: pyte can tell.
    out = []
    for y in sorted(rows):
        row = rows[y]
        runs: list[Any] = []
        start = style = -1
        cells: list[str] = []
        for x in sorted(row):
            char = row[x]
            s = styles.ref(char)
            if s != style or x != start + len(cells):
                if cells:
                    runs.append([start, style, "".join(cells) if all(len(c) == 1 for c in cells) else cells])
                start, style, cells = x, s, []
            cells.append(char.data)
        if cells:
            runs.append([start, style, "".join(cells) if all(len(c) == 1 for c in cells) else cells])
        default = row.default  # type: ignore[attr-defined]
        out.append([y, [default.data, styles.ref(default)], runs])
    return out


def _encode_cursor(cursor: Any, styles: _StyleTable) -> list[Any]:
    attrs = cursor.attrs
    return [cursor.x, cursor.y, cursor.hidden, [attrs.data, styles.ref(attrs)]]


def _encode_screen(screen: ScreenModel, index: int) -> dict[str, Any]:
    """A screen (with ``history=0``, as the reader keeps it) as a keyframe's plain JSON value."""
    styles = _StyleTable()
    saved = screen._saved_main
    return {
        "index": index,  # first, so the reader finds it without parsing the line
        "v": KEYFRAME_FORM,
        "size": [screen.columns, screen.lines],
        "rows": _encode_rows(screen.buffer, styles),
        "cursor": _encode_cursor(screen.cursor, styles),
        "savepoints": [
            [_encode_cursor(sp.cursor, styles), _CHARSET_NAME[sp.g0_charset], _CHARSET_NAME[sp.g1_charset],
             sp.charset, sp.origin, sp.wrap]
            for sp in screen.savepoints
        ],  # fmt: skip
        "mode": sorted(screen.mode),
        "margins": list(screen.margins) if screen.margins is not None else None,
        "tabstops": sorted(screen.tabstops),
        "charset": screen.charset,
        "g0": _CHARSET_NAME[screen.g0_charset],
        "g1": _CHARSET_NAME[screen.g1_charset],
        "title": screen.title,
        "icon": screen.icon_name,
        "saved_columns": screen.saved_columns,
        "alternate": screen.alternate,
        "saved_main": None
        if saved is None
        else [_encode_rows(saved[0], styles), _encode_cursor(saved[1], styles) if saved[1] is not None else None],
        "scrolled": screen.scrolled,
        "clears": list(screen.clears),
        "styles": styles.table,
    } | ({"join": list(screen.join_at)} if screen.join_at is not None else {})


def _want(ok: bool, what: str) -> None:
    if not ok:
        raise _BadKeyframe(what)


def _int(value: Any, low: int, high: int, what: str) -> int:
    _want(type(value) is int and low <= value <= high, what)
    return value


def _bool(value: Any, what: str) -> bool:
    _want(type(value) is bool, what)
    return value


def _str(value: Any, what: str) -> str:
    _want(type(value) is str, what)
    return value


def _array(value: Any, what: str, length: int | None = None) -> list[Any]:
    _want(type(value) is list and (length is None or len(value) == length), what)
    return value


class _KeyframeDecoder:
    """Builds a screen from a keyframe's JSON value, refusing anything a replay could not produce
    the shape of (types, ranges, names); raises ``_BadKeyframe``."""

    def __init__(self, obj: Any, cells: dict[Char, Char]) -> None:
        _want(type(obj) is dict and _KF_KEYS <= obj.keys() <= _KF_KEYS | _KF_OPTIONAL, "keys")
        _want(obj["v"] == KEYFRAME_FORM and type(obj["v"]) is int, "form")
        self.obj = obj
        self._cells = cells
        styles = []
        for style in _array(obj["styles"], "styles"):
            fg, bg, *flags = _array(style, "style", 8)
            _str(fg, "fg"), _str(bg, "bg")
            styles.append((fg, bg, *(_bool(f, "flag") for f in flags)))
        self._styles = styles
        self._made: dict[tuple[str, int], Char] = {}

    def char(self, data: Any, style: Any) -> Char:
        made = self._made.get((data, style)) if type(data) is str and type(style) is int else None
        if made is None:
            _str(data, "cell")
            _int(style, 0, len(self._styles) - 1, "style ref")
            char = Char(data, *self._styles[style])
            made = self._made[(data, style)] = self._cells.setdefault(char, char)
        return made

    def rows(self, value: Any) -> dict[int, StaticDefaultDict]:
        out: dict[int, StaticDefaultDict] = {}
        for item in _array(value, "rows"):
            y, default, runs = _array(item, "row", 3)
            _int(y, 0, MAX_SIZE, "row y")
            _want(y not in out, "row twice")
            row = StaticDefaultDict(self.char(*_array(default, "default cell", 2)))
            for run in _array(runs, "runs"):
                x, style, text = _array(run, "run", 3)
                _int(x, 0, MAX_SIZE, "run x")
                if type(text) is list:
                    _want(all(type(c) is str for c in text), "cells")
                else:
                    _str(text, "run text")
                _want(0 < len(text) <= MAX_SIZE + 1 - x, "run length")
                for dx, data in enumerate(text):
                    _want(x + dx not in row, "cell twice")
                    row[x + dx] = self.char(data, style)
            out[y] = row
        return out

    def cursor(self, value: Any) -> Cursor:
        x, y, hidden, attrs = _array(value, "cursor", 4)
        cursor = Cursor(_int(x, 0, MAX_SIZE, "cursor x"), _int(y, 0, MAX_SIZE, "cursor y"),
                        self.char(*_array(attrs, "cursor attrs", 2)))  # fmt: skip
        cursor.hidden = _bool(hidden, "cursor hidden")
        return cursor

    @staticmethod
    def charset(name: Any) -> str:
        _want(type(name) is str and name in pyte_charsets.MAPS, "charset")
        return pyte_charsets.MAPS[name]

    def screen(self) -> TerminalScreen:
        obj = self.obj
        columns, lines = _array(obj["size"], "size", 2)
        _int(columns, 1, MAX_SIZE, "columns"), _int(lines, 1, MAX_SIZE, "lines")
        screen = TerminalScreen(columns, lines, history=0)
        for y, row in self.rows(obj["rows"]).items():
            screen.buffer[y] = row
        screen.dirty = set()
        screen.cursor = self.cursor(obj["cursor"])
        savepoints = []
        for item in _array(obj["savepoints"], "savepoints"):
            cursor, g0, g1, charset, origin, wrap = _array(item, "savepoint", 6)
            savepoints.append(Savepoint(self.cursor(cursor), self.charset(g0), self.charset(g1),
                                        _int(charset, 0, 1, "charset"), _bool(origin, "origin"),
                                        _bool(wrap, "wrap")))  # fmt: skip
        screen.savepoints = savepoints
        screen.mode = {_int(m, 0, _BIG, "mode") for m in _array(obj["mode"], "mode")}
        margins = obj["margins"]
        if margins is not None:
            top, bottom = _array(margins, "margins", 2)
            _int(top, 0, MAX_SIZE, "top"), _int(bottom, top, MAX_SIZE, "bottom")
            margins = Margins(top, bottom)
        screen.margins = margins
        screen.tabstops = {_int(t, 0, MAX_SIZE, "tabstop") for t in _array(obj["tabstops"], "tabstops")}
        screen.charset = _int(obj["charset"], 0, 1, "charset")
        screen.g0_charset = self.charset(obj["g0"])
        screen.g1_charset = self.charset(obj["g1"])
        screen.title = _str(obj["title"], "title")
        screen.icon_name = _str(obj["icon"], "icon")
        saved_columns = obj["saved_columns"]
        screen.saved_columns = None if saved_columns is None else _int(saved_columns, 1, MAX_SIZE, "saved columns")
        screen.alternate = _bool(obj["alternate"], "alternate")
        saved = obj["saved_main"]
        if saved is not None:
            rows, cursor = _array(saved, "saved main", 2)
            screen._saved_main = (self.rows(rows), None if cursor is None else self.cursor(cursor))
        _want(saved is None or screen.alternate, "saved main screen outside the alternate screen")
        screen.scrolled = _int(obj["scrolled"], 0, _BIG, "scrolled")
        clears = _array(obj["clears"], "clears", 2)
        screen.clears = [_int(c, 0, _BIG, "clears") for c in clears]
        if "join" in obj:
            y, x = _array(obj["join"], "join", 2)
            screen.join_at = (_int(y, 0, MAX_SIZE, "join row"), _int(x, 0, MAX_SIZE, "join column"))
        return screen


def _decode_screen(obj: Any, cells: dict[Char, Char] | None = None) -> TerminalScreen:
    """The screen a keyframe's JSON value holds; ``_BadKeyframe`` if it is not a sound one."""
    return _KeyframeDecoder(obj, {} if cells is None else cells).screen()


class Replay:
    """A screen fed cast events the way replay feeds them. The reader and the recorder's keyframe
    process share it, so a recorded keyframe is exactly the screen a replay reaches."""

    __slots__ = ("screen", "stream", "strings")

    def __init__(self, screen: ScreenModel) -> None:
        self.screen = screen
        self.stream = FastStream(screen)
        self.strings = ControlStrings()  # keyframes are only taken outside control strings

    def feed(self, event: CastEvent | None) -> str | None:
        """Apply one event; what the parser raised, if it failed (replay goes on past it)."""
        if event is None:
            return None
        try:
            if event[1] == "o":
                # The live terminal drops DCS/APC/PM/SOS strings before its screen: so does replay.
                self.stream.feed(self.strings.feed(event[2]))
            elif event[1] == "r":
                size = parse_size(event[2])
                if size is not None:
                    self.screen.resize(size[1], size[0])
        except Exception as exc:  # noqa: BLE001 - pyte fails on some sequences
            # Do what Terminal does live: drop the rest of the chunk, start a new parser.
            self.stream = FastStream(self.screen)
            return f"{type(exc).__name__}: {exc}"
        return None

    @property
    def at_ground(self) -> bool:
        """Between escape sequences and control strings: a fresh parser would go on the same."""
        return _ground(self.stream) and self.strings.at_ground


class RecordedKeyframes:
    """keyframes.jsonl as a reader sees it: which cast positions have a keyframe and where its
    line is; a line is parsed and checked only when a seek wants it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0  # just past the last complete line scanned
        self._where: dict[int, tuple[int, int]] = {}  # cast index -> (offset, length) of the line
        self.positions: list[int] = []  # sorted; indices not tried yet
        self.rejected = 0  # lines found unusable (garbage, or a keyframe that failed its checks)

    def refresh(self) -> None:
        """Note the complete lines appended since the last look (a torn last line waits)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return  # no keyframes (an older session), or unreadable: replay covers it
        start, end = 0, data.rfind(b"\n")
        while start <= end:
            stop = data.index(b"\n", start)
            index = _keyframe_index(data, start, stop)
            if index is None:
                self.rejected += 1
            elif index > 0 and index not in self._where:
                self._where[index] = (self._offset + start, stop - start)
                bisect.insort(self.positions, index)
            start = stop + 1
        self._offset += end + 1

    def before(self, n: int) -> int:
        """The last untried keyframe position at or before ``n`` (-1 if none)."""
        i = bisect.bisect_right(self.positions, n)
        return self.positions[i - 1] if i else -1

    def take(self, index: int, cells: dict[Char, Char]) -> TerminalScreen | None:
        """The screen of the keyframe at ``index`` (tried once: it leaves ``positions``), or None
        if its line does not hold a sound one."""
        self.positions.remove(index)
        offset, length = self._where.pop(index)
        try:
            if length > KEYFRAME_MAX_LINE:
                raise _BadKeyframe("too long")
            with open(self.path, "rb") as f:
                data = os.pread(f.fileno(), length, offset)
            obj = parse_json_line(data)
            _want(type(obj) is dict and obj.get("index") == index, "index")
            return _decode_screen(obj, cells)
        except (OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError, MemoryError):
            self.rejected += 1
            return None


def _keyframe_index(data: bytes, start: int, stop: int) -> int | None:
    """The cast index a keyframe line starts with (``{"index": N, ``), or None."""
    if not data.startswith(_KF_PREFIX, start):
        return None
    head = start + len(_KF_PREFIX)
    comma = data.find(b", ", head, min(stop, head + 16))
    digits = data[head:comma] if comma != -1 else b""
    return int(digits) if digits.isdigit() else None


# ---- the keyframe process -----------------------------------------------------------------
#
# Replaying is as costly as drawing: a second screen in the recording process would cost the agent
# loop ~10%. So the recorder starts a helper process once the cast is worth it; the helper follows
# terminal.cast as it grows, replays it with Replay, and appends a keyframe whenever about
# KEYFRAME_SPACING seconds of replay have passed since the last one. It learns the secrets on its
# stdin (never argv or environment), and ends, after catching up, when that pipe closes: when the
# recorder closes, or dies. It gives way: to everything else on the machine (idle priority), and
# to the recording process itself, replaying while that waits (on the model, on a command) rather
# than while it is busy, unless it has fallen KEYFRAME_LAG seconds behind. Keyframes are a cache:
# whatever goes wrong here, replay still works.


class Secrets(Protocol):
    """What the helper needs of the recorder's ``Redactor``: to learn secrets, and to find them."""

    def add(self, secret: str) -> bool: ...

    def found_in(self, data: bytes) -> bool: ...


class _KeyframeWriter:
    """Follows one session's cast and appends its keyframes (the helper process's work)."""

    def __init__(self, cast: Path, out: Path, spacing: float, redactor: Secrets) -> None:
        self._cast_path = cast
        self._spacing = spacing
        self._redactor = redactor
        self._fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # A helper of an earlier run of this session may still be catching up: it goes first.
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        truncate_torn(out)
        self._cast = AppendedLines(cast)
        self._header = False
        self._lines: deque[bytes] = deque()  # cast lines read, not yet replayed
        self._pos = 0  # cast events replayed (or skipped)
        self._skip = 0  # events already covered by the keyframe this replay starts from
        self._replay: Replay | None = None
        self._start = RecordedKeyframes(out)
        self._start.refresh()
        self._since = 0.0  # seconds of replay since the last keyframe
        self._cost = 0.0  # seconds the last keyframe took to write

    def _begin(self, width: int, height: int, events: int) -> None:
        # Go on from the last sound keyframe (a resumed session), else from a blank screen.
        for index in reversed(list(self._start.positions)):
            screen = self._start.take(index, {}) if index <= events else None
            if screen is not None:
                self._replay, self._skip = Replay(screen), index
                return
        self._replay = Replay(TerminalScreen(width, height, history=0))

    def behind(self) -> bool:
        """Read what the cast gained; whether any of it is left to replay."""
        lines = self._cast.read()
        if not self._header and lines:
            header = parse_header(lines[0], self._cast_path)
            self._header = True
            lines = lines[1:]
            self._begin(header.width, header.height, len(lines))
        self._lines.extend(lines)
        return bool(self._lines)

    def step(self, budget: float | None = None) -> None:
        """Replay the lines read, for about ``budget`` seconds (None: all of them)."""
        replay, queue = self._replay, self._lines
        clock = time.perf_counter
        stop = None if budget is None else clock() + budget
        while queue and (stop is None or clock() < stop):
            line = queue.popleft()
            self._pos += 1
            if self._pos <= self._skip:
                continue
            assert replay is not None
            started = clock()
            replay.feed(parse_event(line))
            self._since += clock() - started
            # At least KEYFRAME_SPACING of replay apart, and 4 times what one costs to write (a
            # big screen); spacing 0: after every event that leaves the parser between sequences.
            due = self._since >= self._spacing and (not self._spacing or self._since >= 4 * self._cost)
            if due and replay.at_ground:
                started = clock()
                self._write(self._pos)
                self._cost = clock() - started
                self._since = 0.0

    def _write(self, index: int) -> None:
        assert self._replay is not None
        try:
            data = encode_line(_encode_screen(self._replay.screen, index))
        except (KeyError, TypeError, ValueError):  # a state the form has no words for: skip it
            return
        # The screen comes from the redacted cast, but a secret can still be put together on it
        # (written in pieces, or learned late): such a keyframe is not written; replay covers it.
        if len(data) <= KEYFRAME_MAX_LINE and not self._redactor.found_in(data):
            write_all(self._fd, data)

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


class _ProcessLoad:
    """Whether a process has been busy lately: more than a fifth of a CPU over the last 0.1 s or
    more (from /proc; where there is none, never). One that waits uses next to none; one that
    works, on a machine busy with others, may get well under a whole CPU."""

    def __init__(self, pid: int) -> None:
        self._stat = f"/proc/{pid}/stat"
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._at, self._ticks = time.monotonic(), self._cpu_ticks()
        self._busy = False

    def _cpu_ticks(self) -> int | None:
        try:
            with open(self._stat, "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            return int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, ValueError, IndexError):
            return None

    def busy(self) -> bool:
        now = time.monotonic()
        if now - self._at >= 0.1:
            ticks = self._cpu_ticks()
            if ticks is None or self._ticks is None:
                self._busy = False
            else:
                self._busy = (ticks - self._ticks) / self._hz > 0.2 * (now - self._at)
            self._at, self._ticks = now, ticks
        return self._busy


def keyframe_process(redactor: Secrets) -> None:
    """Entry point of the helper, which the recorder runs as ``python -c CODE CAST KEYFRAMES SPACING
    LAG IDLE``, CODE calling this with an empty ``Redactor``: it follows the cast at CAST and appends
    to KEYFRAMES. stdin carries the secrets, one JSON string a line, an empty line after the first
    batch, and ends with the session."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cast, out = Path(sys.argv[1]), Path(sys.argv[2])
    spacing, lag, idle = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
    try:
        if not idle:
            raise OSError
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19 if idle else 10)
    recorder = _ProcessLoad(os.getppid())
    pending = b""
    started = open_ = False

    def read_secrets() -> None:
        nonlocal pending, started, open_
        data = os.read(0, 65536)
        open_ = bool(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line:
                started = True
            elif isinstance(secret := parse_json_line(line), str):
                redactor.add(secret)

    open_ = True
    while open_ and not started:  # every secret known so far, before any keyframe is written
        read_secrets()
    if not started:
        return
    writer = _KeyframeWriter(cast, out, spacing, redactor)
    caught_up = time.monotonic()
    while open_:
        if writer.behind():
            working = not recorder.busy() or time.monotonic() - caught_up > lag
        else:
            working, caught_up = False, time.monotonic()
        if working:
            writer.step(0.05)
        if select.select([0], [], [], 0 if working else 0.05)[0]:
            read_secrets()
    writer.behind()
    writer.step()
    writer.close()
