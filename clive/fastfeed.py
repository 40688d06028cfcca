"""A drop-in for ``pyte.Stream`` that keeps up with a flood and leaves exactly the screen pyte would.

pyte parses one character at a time and draws one cell at a time: about 1 MB/s. A flood (``cat`` of
a log, a compiler, a training loop) is almost all printable text, CR LF and SGR colour, so this
stream takes those itself and hands everything else to pyte's own parser, on the same screen:

* **Slow path.** Anything else (cursor addressing, erase, modes, OSC, combining characters, two-cell
  characters outside the BMP, controls) goes to a real ``pyte.Stream``. When a chunk ends inside an
  escape sequence, the next chunk goes to that parser one character at a time until it is back in
  its ground state (a chunk ending in the first bytes of an SGR is held back instead: so far they
  change nothing). A slow segment runs to the next CR, LF, TAB, BS or ESC, which end pyte's text
  runs too, so a run that pyte draws in one ``draw()`` call (and cuts short at an unprintable
  character) is never split in a way that changes what is drawn.
* **Eager path.** One- and two-cell text, SGR, CR, LF, TAB and BS anywhere on the screen: cells are
  written from a per-style cache of ``Char`` objects, one-cell text a row at a time, two-cell
  characters one by one as pyte's ``draw`` writes them (the character, then "" in its second
  cell); CR, LF, TAB and BS call the screen's own methods, so scrolling, margins and scrollback are
  the screen's own.
* **Lazy path.** On the bottom row of a full-height scroll region, whole lines of text and SGR that
  end in CR LF are applied with C-speed string operations (``split``, ``re.sub``, ``findall``): a
  line is taken as its cells, its SGRs removed and each two-cell character followed by ``STUB``
  (``_cells``), and a row's text is the line with tabs expanded, cut every ``columns`` cells (a STUB
  that would start a row is dropped: pyte writes a two-cell character in the last column without its
  second cell), STUBs removed and right-stripped. Rows are made only for the lines that reach the
  screen: the lines above them go to the scrollback whole (``LineRows``), cut into rows only if
  anything reads the history, so lines that a flood pushes out of the history again are never cut
  (the Terminal's reader feeds a flood in windows of many reads, see ``Terminal._read``); those past
  the history are counted (their wrapped rows too) and their colours folded. Only the screen's
  bottom rows are kept, as that text plus the raw characters of their lines; their cells are built
  the first time anything reads ``screen.buffer`` (``ScreenModel`` calls ``_Pending.flush``), and
  ``text_lines()`` reads the text without building them.
* **Checks.** Whether a chunk is all one- and two-cell text, CR, LF, TAB, BS and SGR is checked with
  C-speed string operations (the SGRs removed, the rest translated away) a slice of about ``_SLICE``
  characters at a time, cut after an LF: the slices before the first that fails are taken as one
  stretch, the failing one goes the usual way. A slice's lines are measured when it is checked
  (``_line_stats``: the rows they wrap to), so a stretch's rows are a sum. ``CheckedText`` lets a
  reader run those checks on a flood's text while it waits for more of it. Where ``clive/_speedups.c``
  was built (``pip install`` builds it), the SGRs are removed and the checks and measures of ASCII
  text done in one pass in C, a regex match per SGR being most of the cost in Python.

Why the shortcuts are exact. The lazy path runs only with the cursor on the bottom row of a
full-height scroll region, DECAWM on, IRM and LNM off, the G0 charset the identity and (for a tab)
the default tab stops. It takes a line only if its CRs come just before its LF, every character is
one or two cells wide (from the BMP), a tab stays short of the last column, and it starts at column
0 of a fresh row (blank, or the continuation of the cursor's row with the cursor at its end). Then
each row is written left to right from column 0 and wraps when a character arrives at ``x ==
columns``, as pyte's ``draw`` does; a two-cell character takes cells x and x + 1, or only x when x
is the last column (and the cursor stops at ``columns``). So a row is the next ``columns`` cells of
the line, and a second cell that would start the next row is lost; its cells are its characters in
the colours in force at each, its rendered text is the line cut as above, and every row that scrolls
off goes to the scrollback in order, as ``ScreenModel.index`` would push it. SGR goes through a
transcription of pyte's ``select_graphic_rendition`` with memoised results; ``ESC[0m`` and ``ESC[m``
reset every attribute, so folding a stretch starts from its last reset. Which rows exist in
``screen.buffer`` (pyte's ``delete_lines`` can tell) and the ``dirty`` set are kept as pyte keeps
them. Slices are cut right after an LF, which no SGR holds and which ends pyte's text runs, so a
stretch taken a slice at a time ends as it would whole; the lines skipped are counted exactly (their
wrapped rows too), since ``ScreenModel.scrolled`` counts every row. Anything else takes the eager or
slow path. ``tests/test_fastfeed.py`` checks all of it against pyte, cell by cell, for random byte
streams cut at random places.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate, compress, islice
from typing import Any, NamedTuple

import pyte
from pyte import graphics as g
from pyte import modes as mo
from pyte.charsets import LAT1_MAP
from pyte.screens import Char, StaticDefaultDict
from wcwidth import wcwidth

try:
    from clive import _speedups  # the C versions of the checks (clive/_speedups.c), where it was built
except ImportError:
    _speedups = None

from clive.screen import STUB, ControlStrings, LineRows, ScreenModel, _line_text, row_texts, rows_pattern

__all__ = ["CheckedText", "FastStream"]


def _bmp_widths() -> bytes:
    """The cells (pyte's `wcwidth`) of every BMP character, a byte each: 1 or 2, else 0 (controls,
    combining characters, surrogates, unassigned)."""
    table = bytearray(0x10000)
    for cp in range(0x20, 0x10000):
        if not 0xD800 <= cp < 0xE000:
            cells = wcwidth(chr(cp))
            if cells in (1, 2):
                table[cp] = cells
    return bytes(table)


_WIDTHS = _bmp_widths()


def _width_ranges(width: int) -> str:
    """A regex class body for every BMP character ``width`` cells wide (pyte's `wcwidth`), no controls."""
    # Only the BMP: a class with astral ranges cannot be compiled to a bitmap and gets slow.
    parts = []
    start = None
    for cp in range(0x20, 0x10001):
        ok = cp < 0x10000 and _WIDTHS[cp] == width
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            end = cp - 1
            parts.append(f"\\u{start:04x}" if start == end else f"\\u{start:04x}-\\u{end:04x}")
            start = None
    return "".join(parts)


_NARROW = _width_ranges(1)
_WIDE = _width_ranges(2)
# A stretch this stream takes itself: one- and two-cell text, CR, LF, TAB, BS and SGR with plain
# parameters.
_FAST = re.compile(f"(?:\\x1b\\[[0-9;]*m|[{_NARROW}{_WIDE}\\r\\n\\t\\x08]+)+")
# Any character of a fast stretch once its SGRs are removed; the same for ASCII text (much faster).
_NOT_FAST = re.compile(f"[^{_NARROW}{_WIDE}\\r\\n\\t\\x08]")
# A two-cell character, which the lazy path's text follows with STUB (its second cell).
_TWO_CELLS = re.compile(f"[{_WIDE}]")


class _CellsTable(dict):
    """``str.translate`` table: a two-cell character to itself and STUB, any other to itself."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        cells = self[code] = ch + STUB if _TWO_CELLS.match(ch) else ch
        return cells


_CELLS_TABLE = _CellsTable()
# ASCII text a row can hold as it is: what is left of a line after deleting it is its control characters.
_ASCII_TEXT = bytes(range(0x20, 0x7F)) + b"\t"
# Where a slow segment may end: characters that always end one of pyte's text runs.
_STOP = re.compile(r"[\r\n\t\x08\x1b]")
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
# The start of an SGR cut off at the end of a chunk: ESC, ESC [, ESC [ 3 ...
_PARTIAL_SGR = re.compile(r"\x1b(?:\[[0-9;]*)?\Z")
_NOT_PLAIN = re.compile(r"\x1b\[[0-9;]*m|\r")
_EAGER_TOKEN = re.compile(f"([{_NARROW}]+)|\\x1b\\[([0-9;]*)m|(\\r)|(\\n)|(\\t)|(\\x08)|([{_WIDE}]+)")
_ROW_TOKEN = re.compile(r"([^\x1b\t\r]+)|\x1b\[([0-9;]*)m|(\t)|(\r)")

# A long chunk is checked for the fast paths a slice of about this many characters at a time, cut after
# an LF (so no SGR is cut): regex passes over a slice this size stay in the CPU's cache.
_SLICE = 1 << 18
_COUNTED_WRAPS = 3  # see _extra_rows

_DEFAULTS = (Char(" "), Char(" ", reverse=True))  # pyte's default_char without and with DECSCNM
_CACHE_LIMIT = 50_000


def _apply_sgr(attrs: Char, params: str, default: Char) -> Char:
    """pyte 0.8.2's ``select_graphic_rendition``, as a function of the current attributes."""
    values = [min(int(p or 0), 9999) for p in params.split(";")]
    if values == [0]:
        return default
    replace: dict[str, Any] = {}
    attrs_list = list(reversed(values))
    while attrs_list:
        attr = attrs_list.pop()
        if attr == 0:
            replace.update(default._asdict())
        elif attr in g.FG_ANSI:
            replace["fg"] = g.FG_ANSI[attr]
        elif attr in g.BG:
            replace["bg"] = g.BG_ANSI[attr]
        elif attr in g.TEXT:
            attr_str = g.TEXT[attr]
            replace[attr_str[1:]] = attr_str.startswith("+")
        elif attr in g.FG_AIXTERM:
            replace.update(fg=g.FG_AIXTERM[attr])
        elif attr in g.BG_AIXTERM:
            replace.update(bg=g.BG_AIXTERM[attr])
        elif attr in (g.FG_256, g.BG_256):
            key = "fg" if attr == g.FG_256 else "bg"
            try:
                n = attrs_list.pop()
                if n == 5:
                    m = attrs_list.pop()
                    replace[key] = g.FG_BG_256[m]
                elif n == 2:
                    red, green, blue = attrs_list.pop(), attrs_list.pop(), attrs_list.pop()
                    replace[key] = f"{red:02x}{green:02x}{blue:02x}"
            except IndexError:
                pass
    return attrs._replace(**replace)


# Keyed by (id(attrs), params): the value holds `attrs` too, so that id is never reused while cached.
_sgr_memo: tuple[dict[tuple[int, str], tuple[Char, Char]], ...] = ({}, {})


def _sgr(attrs: Char, params: str, reverse: bool) -> Char:
    memo = _sgr_memo[reverse]
    hit = memo.get((id(attrs), params))
    if hit is not None:
        return hit[1]
    if len(memo) > _CACHE_LIMIT:
        memo.clear()
    result = _apply_sgr(attrs, params, _DEFAULTS[reverse])
    memo[(id(attrs), params)] = (attrs, result)
    return result


def _fold(attrs: Char, raw: str, reverse: bool, end: int | None = None) -> Char:
    """The attributes after every SGR in ``raw[:end]`` (which holds only text, CR, LF, TAB and SGR)."""
    if end is None:
        end = len(raw)
    # ESC[0m and ESC[m reset everything, whatever came before: apply only what follows the last.
    start = raw.rfind("\x1b[", 0, end)
    if start < 0:
        return attrs
    after: list[str] = []
    for _ in range(8):  # coloured text resets often: look back a few SGRs first
        params = _SGR.match(raw, start).group(1)  # type: ignore[union-attr]  # every ESC starts an SGR
        if params == "0" or params == "":
            attrs = _DEFAULTS[reverse]
            break
        after.append(params)
        start = raw.rfind("\x1b[", 0, start)
        if start < 0:
            break
    else:
        start = max(raw.rfind("\x1b[0m", 0, end), raw.rfind("\x1b[m", 0, end), 0)
        after = _SGR.findall(raw, start, end)
        after.reverse()
    for params in reversed(after):
        attrs = _sgr(attrs, params, reverse)
    return attrs


def _cells(plain: str) -> str:
    """Text without SGRs as the lazy path takes it: each two-cell character followed by STUB."""
    return plain if plain.isascii() or _TWO_CELLS.search(plain) is None else plain.translate(_CELLS_TABLE)


def _strip_sgr(text: str) -> str:
    """``text`` without its SGRs, where every ESC starts one (the fast paths took it)."""
    if "\x1b" not in text:
        return text
    return _speedups.strip_sgr(text) if _speedups is not None else _SGR.sub("", text)


def _check_slice(seg: str) -> tuple[str, bytes | None] | None:
    """``seg`` without its SGRs (as ``_cells``) and, when ASCII, its control characters in order; None
    unless it is all one- and two-cell text, CR, LF, TAB, BS and SGR (what the fast paths take)."""
    plain = seg
    if "\x1b" in seg:
        plain = _speedups.strip_sgr(seg) if _speedups is not None else _SGR.sub("", seg)
        if plain is None:  # an ESC that starts no SGR (the regex leaves it, and the checks below fail)
            return None
    if not plain.isascii():
        return (_cells(plain), None) if _NOT_FAST.search(plain) is None else None
    controls = plain.encode("ascii").translate(None, _ASCII_TEXT)
    return (plain, controls) if not controls.translate(None, b"\r\n\x08") else None


def _line_stats(lines: list[str], columns: int, stubs: bool) -> tuple[int, int]:
    """Of lines (cells, see ``_cells``) written from column 0, each on a fresh row: the rows they take
    beyond one each when wrapped at ``columns``, and the longest line's length. ``stubs``: whether any
    line holds a STUB (the caller knows from the text it split, at the cost of one scan)."""
    lens = list(map(len, lines))
    longest = max(lens)
    if longest <= columns:
        return 0, longest
    if stubs:
        # A two-cell character in the last column loses its second cell: no arithmetic for those. (The
        # sum is _wrapped's, line by line, as the lazy path corrects it: a line may hold a lead LF.)
        return sum(_wrapped(line, columns) for line in lines if len(line) > columns), longest
    return _extra_rows(lens, columns), longest


def _checked_slice(seg: str, columns: int) -> tuple[str, bytes | None, list[str], tuple[int, int] | None] | None:
    """``_check_slice`` of ``seg``, that text split at CR LF, and ``_line_stats`` of those lines at
    ``columns`` (None for columns 0); None unless the fast paths take ``seg``."""
    if _speedups is not None and columns > 0:
        found = _speedups.check_ascii(seg, columns) if seg.isascii() else _speedups.check_text(seg, columns, _WIDTHS)
        if found is None:
            return None
        if found is not NotImplemented:  # two-cell characters, or beyond the BMP: the checks below
            plain, controls, lines, wraps, longest = found
            return plain, controls, lines, (wraps, longest)
    checked = _check_slice(seg)
    if checked is None:
        return None
    plain, controls = checked
    lines = plain.split("\r\n")
    return plain, controls, lines, _line_stats(lines, columns, STUB in plain) if columns > 0 else None


class _Slice(NamedTuple):
    """A fast slice checked before: where it ends, its text without SGRs, the control characters of that
    when ASCII, that text split at CR LF, and ``_line_stats`` of those lines (None: not for this width)."""

    end: int
    plain: str
    controls: bytes | None
    lines: list[str]
    stats: tuple[int, int] | None


# Slices checked before, by where they start.
_Slices = dict[int, _Slice]


class _Stretch(NamedTuple):
    """A fast stretch checked whole: its text without SGRs, the control characters of that when ASCII,
    the text split at CR LF when known, and ``_line_stats`` of those lines at ``columns`` when known."""

    plain: str
    controls: bytes | None
    lines: list[str] | None
    stats: tuple[int, int] | None = None


def _fast_prefix(data: str, pos: int, end: int, known: _Slices | None, columns: int) -> tuple[int, int, _Stretch]:
    """How far ``data[pos:end]`` is one fast stretch, in whole slices: (where it stops, where the slice it
    stopped in ends, the stretch). Slices in ``known`` were checked before (and found fast)."""
    plains: list[str] = []
    controls: list[bytes] | None = []
    lines: list[str] = []
    wraps: int | None = 0
    longest = 0
    starts = sorted(known) if known else []
    i = pos
    while i < end:
        hit = known.get(i) if known else None
        if hit is not None and hit.end <= end:
            j, plain, ctl, split, stats = hit
        else:
            j = end if end - i <= _SLICE else data.find("\n", i + _SLICE, end) + 1
            if j <= 0:
                j = end
            k = bisect_right(starts, i)
            if k < len(starts) and starts[k] < j:
                j = starts[k]  # back in step with the slices checked before
            checked = _checked_slice(data[i:j], columns)
            if checked is None:
                break
            plain, ctl, split, stats = checked
        # A slice ends with an LF: its last line ends there, or (no CR before it) runs on, and the
        # rows it takes are no longer the sum of its two parts'.
        if lines:
            if lines[-1]:
                wraps = None
            lines[-1] += split[0]
            lines.extend(islice(split, 1, None))
        else:
            lines.extend(split)
        if stats is None:
            wraps = None
        elif wraps is not None:
            wraps += stats[0]
            longest = max(longest, stats[1])
        plains.append(plain)
        if controls is not None and ctl is not None:
            controls.append(ctl)
        else:
            controls = None
        i = j
    else:
        j = end
    stretch = _Stretch(
        "".join(plains),
        None if controls is None else b"".join(controls),
        lines if plains else None,
        None if wraps is None or not plains else (wraps, longest),
    )
    return i, j, stretch


class CheckedText:
    """Text for ``FastStream.feed`` put together as it is read, its slices checked for the fast paths on
    the way (``check``): a reader can check a flood while it waits for the next bytes of it.

    ``strings`` filters the text first (``ControlStrings``); a slice that checks out holds no string to
    drop and leaves the filter as it was, so it skips the filter. ``columns``: the screen's width."""

    __slots__ = ("_parts", "_pending", "_size", "_strings", "columns", "slices")

    def __init__(self, strings: ControlStrings | None = None, columns: int = 0) -> None:
        self._parts: list[str] = []  # checked or filtered
        self._pending: list[str] = []  # added, neither checked nor filtered yet
        self._size = 0  # characters in _parts
        self._strings = strings
        self.columns = columns
        self.slices: list[tuple[int, _Slice]] = []  # (start, slice)

    def add(self, text: str) -> None:
        self._pending.append(text)

    def check(self) -> None:
        """Check the text added since the last check, up to its last LF."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending = []
        cut = text.rfind("\n") + 1
        if not cut:
            self._pending.append(text)
            return
        strings = self._strings
        if strings is None or strings.at_ground:
            head = text[:cut]
            checked = _checked_slice(head, self.columns)
            if checked is not None:
                plain, controls, split, stats = checked
                self.slices.append((self._size, _Slice(self._size + cut, plain, controls, split, stats)))
                self._parts.append(head)
                self._size += cut
                if cut < len(text):
                    self._pending.append(text[cut:])
                return
        # Not fast (a prompt, a title, cursor moves): left to feed, and the slices after it are checked on.
        self._filtered(text)

    def text(self) -> str:
        """All the text added, filtered."""
        if self._pending:
            self._filtered("".join(self._pending))
            self._pending = []
        return "".join(self._parts)

    def _filtered(self, text: str) -> None:
        if self._strings is not None:
            text = self._strings.feed(text)
        self._parts.append(text)
        self._size += len(text)


def _extra_rows(lens: list[int], columns: int) -> int:
    """Rows beyond the first of lines this long, wrapped at ``columns``."""
    # A line of k characters takes a row more for each multiple of `columns` below k: count the lines
    # longer than each of the first few multiples (all of them, in most floods), then sum the rest.
    extra = 0
    for multiple in range(1, _COUNTED_WRAPS + 1):
        longer = sum(map((multiple * columns).__lt__, lens))
        if not longer:
            return extra
        extra += longer
    long = list(compress(lens, map((_COUNTED_WRAPS * columns).__lt__, lens)))
    return extra + sum(map(columns.__rfloordiv__, map((-1).__add__, long))) - _COUNTED_WRAPS * len(long)


def _wrapped(line: str, columns: int) -> int:
    """Rows beyond the first of a line (cells, see ``_cells``) wrapped at ``columns``."""
    if len(line) <= columns:
        return 0
    if STUB in line:
        return len(rows_pattern(columns).findall(line)) - 1
    return (len(line) - 1) // columns


class _Glyphs(dict):
    """The cells of one style, made once per character."""

    __slots__ = ("attrs",)

    def __init__(self, attrs: Char) -> None:
        super().__init__()
        self.attrs = attrs

    def __missing__(self, ch: str) -> Char:
        cell = self[ch] = self.attrs._replace(data=ch)
        return cell


_glyph_cache: dict[Char, _Glyphs] = {}


def _glyphs(attrs: Char) -> _Glyphs:
    glyphs = _glyph_cache.get(attrs)
    if glyphs is None:
        if len(_glyph_cache) > 1024:
            _glyph_cache.clear()
        glyphs = _glyph_cache[attrs] = _Glyphs(attrs)
    return glyphs


def _row_cuts(raw: str, cuts: list[int]) -> list[str]:
    """Split ``raw`` before the characters at plain-text offsets ``cuts`` (SGRs stay on the left)."""
    pieces = []
    removed = 0
    last = 0
    i = 0
    for m in _NOT_PLAIN.finditer(raw):
        while i < len(cuts) and cuts[i] + removed < m.start():
            at = cuts[i] + removed
            pieces.append(raw[last:at])
            last = at
            i += 1
        removed += m.end() - m.start()
    while i < len(cuts):
        at = cuts[i] + removed
        pieces.append(raw[last:at])
        last = at
        i += 1
    pieces.append(raw[last:])
    return pieces


def _line_rows(src: str, cols: int) -> tuple[list[str], str, int] | None:
    """One line's rows from column 0 of a fresh row: their texts, and the last one's cells and width."""
    if "\t" in src:
        expanded = src.expandtabs(8)
        if len(expanded) >= cols:
            return None  # a tab near the right edge stops at the last column, not the next 8
        return row_texts([expanded]), src, len(expanded)
    if len(src) <= cols:
        return row_texts([src]), src, len(src)
    parts = rows_pattern(cols).findall(src)
    return row_texts(parts), parts[-1], len(parts[-1])


class _Lines:
    """What the lazy path makes of a stretch of lines, starting at the cursor's row."""

    __slots__ = (
        "texts",
        "early",
        "raws",
        "head",
        "line_rows",
        "scrolls",
        "src",
        "width",
        "drew",
        "touched",
        "x",
        "consumed",
    )

    def __init__(self) -> None:
        self.texts: list[str] = []  # rendered rows; the first replaces the cursor's row
        self.early: LineRows | None = None  # rows before `texts`, as lines (when there are many)
        self.raws: list[str] = []  # raw lines; the first continues the cursor's line, unless `head` is set
        # With many lines, only the last few are kept in `raws`: the stretch up to `head` holds those
        # before (lines that scroll off the screen for sure), that count only for their colours.
        self.head: int | None = None
        self.line_rows: list[int] = []  # rows of each line in `raws` (the cursor's line: from its row on)
        self.scrolls = 0
        self.src = ""  # plain text of the last row, CRs removed and tabs unexpanded
        self.width = 0  # its width in cells: where an append to it starts
        self.drew = False  # whether any character was ever drawn on the last row
        self.touched = False  # whether this stretch drew a character on the cursor's row (no scroll)
        self.x = 0
        self.consumed = 0


class _Pending:
    """The bottom rows of a screen: text now, cells when asked for.

    ``lines`` holds the raw characters of each line with a row among them (``skip`` rows of the
    first are already off the top), so rows are only split out of their lines when they are built.
    """

    __slots__ = (
        "texts",
        "lines",
        "rows",
        "skip",
        "anchor",
        "attrs",
        "default",
        "reverse",
        "src",
        "width",
        "present",
        "sgr",
    )

    def __init__(self, anchor: Char, default: Char, reverse: bool, present: bool) -> None:
        self.texts = [""]  # rendered text of the bottom len(texts) rows
        self.lines = [""]
        self.rows = [1]  # rows of each line
        self.skip = 0
        self.anchor = anchor  # attributes in force at the start of lines[0]
        self.attrs = anchor  # the cursor's attributes after the last character applied
        self.default = default  # default_char when these rows were made (DECSCNM cannot change meanwhile)
        self.reverse = reverse
        self.src = ""  # plain text of the cursor's row
        self.width = 0  # cells used on it
        self.present = present  # whether the bottom row exists in pyte's buffer (it does once drawn on)
        self.sgr = False  # whether any of lines may hold an SGR (else dropping lines keeps the anchor)

    def text_lines(self, screen: ScreenModel) -> list[str]:
        buf = screen._buffer
        columns = screen.columns
        real = screen.lines - len(self.texts)
        lines = [_line_text(buf[y], columns) for y in range(real)]
        lines.extend(self.texts)
        self.present = True  # ScreenModel.text_lines creates every row it reads
        return lines

    def flush(self, screen: ScreenModel) -> None:
        """Build the pending rows' cells into ``screen``'s buffer, exactly as pyte would hold them."""
        screen._pending = None
        cols = screen.columns
        default = self.default
        reverse = self.reverse
        attrs = self.anchor
        built: list[StaticDefaultDict] = []
        for raw in self.lines:
            row = StaticDefaultDict(default)
            built.append(row)
            x = 0
            for m in _ROW_TOKEN.finditer(raw):
                kind = m.lastindex
                if kind == 1:
                    text = m.group(1)
                    glyph = _glyphs(attrs).__getitem__
                    if not text.isascii() and _TWO_CELLS.search(text) is not None:
                        for ch in text:  # as pyte's draw: a two-cell character's second cell is ""
                            if x == cols:
                                row = StaticDefaultDict(default)
                                built.append(row)
                                x = 0
                            row[x] = glyph(ch)
                            if _TWO_CELLS.match(ch) is None:
                                x += 1
                                continue
                            if x + 1 < cols:
                                row[x + 1] = glyph("")
                            x = min(x + 2, cols)
                        continue
                    i = 0
                    n = len(text)
                    while i < n:
                        if x == cols:  # autowrap: the next character starts a new row
                            row = StaticDefaultDict(default)
                            built.append(row)
                            x = 0
                        k = min(n - i, cols - x)
                        row.update(zip(range(x, x + k), map(glyph, text[i : i + k]), strict=True))
                        x += k
                        i += k
                elif kind == 2:
                    attrs = _sgr(attrs, m.group(2), reverse)
                elif kind == 3:
                    x = (x // 8 + 1) * 8  # default tab stops, checked when the line was taken
                else:
                    x = 0
        built = built[self.skip :]
        buf = screen._buffer
        top = screen.lines - len(built)
        for i, row in enumerate(built):
            buf[top + i] = row
        if not self.present:
            buf.pop(screen.lines - 1, None)


def _default_stops(columns: int) -> set[int]:
    return set(range(8, columns, 8))


# What the fast paths do in the screen's stead (the eager path calls the screen's own CR, LF, TAB and
# BS; the lazy path does what these do). A subclass that changes any of them gets pyte's path only.
_REPLICATED = (
    "draw",
    "index",
    "linefeed",
    "carriage_return",
    "tab",
    "select_graphic_rendition",
    "text_lines",
    "resize",
    "default_char",
    "buffer",
)


def _fast_capable(screen: Any) -> bool:
    if not isinstance(screen, ScreenModel):
        return False
    cls = type(screen)
    return all(getattr(cls, name) is getattr(ScreenModel, name) for name in _REPLICATED)


class FastStream:
    """``pyte.Stream(screen)`` for a ``ScreenModel``, exact and much faster on floods of text."""

    def __init__(self, screen: ScreenModel) -> None:
        self.listener = screen
        self._slow = pyte.Stream(screen)
        self._fast = _fast_capable(screen) and hasattr(self._slow, "_taking_plain_text")
        self._stops_for: tuple[int, set[int]] = (-1, set())
        # The start of an escape sequence cut off at the end of the last chunk, not yet given to
        # pyte: so far it has no effect on the screen, and whole it may be an SGR this stream takes.
        self._held = ""
        # (start, end, stretch) of a fast stretch checked whole, for the lazy path to reuse.
        self._plain: tuple[int, int, _Stretch] | None = None

    @property
    def _taking_plain_text(self) -> bool | None:
        """True while between escape sequences (as ``pyte.Stream`` says it)."""
        return self._slow._taking_plain_text and not self._held

    def feed(self, data: str, checked: CheckedText | None = None) -> None:
        """Consume text: the screen ends exactly as ``pyte.Stream.feed`` would leave it. ``checked``, if
        given, holds this very text and the checks already done on it."""
        slow = self._slow
        if not self._fast:
            slow.feed(data)
            return
        known: _Slices | None = None
        if checked is not None and checked.slices:
            # Held back from the last chunk: the start of an SGR, that the first slice continues.
            shift = len(self._held)
            width = checked.columns == self.listener.columns
            if shift or not width:
                known = {
                    start + shift: piece._replace(end=piece.end + shift, stats=piece.stats if width else None)
                    for start, piece in checked.slices
                    if start or not shift
                }
            else:
                known = dict(checked.slices)
        if self._held:
            data = self._held + data
            self._held = ""
        tail = _PARTIAL_SGR.search(data, max(0, len(data) - 64))
        if tail is None:
            self._feed(data, len(data), known)
            return
        self._feed(data, tail.start(), known)
        if slow._taking_plain_text:
            self._held = data[tail.start() :]
        else:
            self._feed(data[tail.start() :], len(data) - tail.start(), None)

    def _feed(self, data: str, n: int, known: _Slices | None) -> None:
        slow = self._slow
        pos = 0
        check = 0  # where to check the rest of the chunk for one long fast stretch next
        while pos < n:
            if not slow._taking_plain_text:
                # Inside an escape sequence: one character at a time until pyte is back in ground.
                slow.feed(data[pos])
                pos += 1
                continue
            if pos >= check:
                # A flood's chunk is usually one fast stretch, but for its very end (a prompt): check
                # it in slices, faster than _FAST can, and the slice that fails the usual way.
                stop, check, stretch = _fast_prefix(data, pos, n, known, self.listener.columns)
                if stop > pos:
                    self._plain = (pos, stop, stretch)
                    try:
                        self._fast_region(data, pos, stop)
                    finally:
                        self._plain = None
                    pos = stop
                    continue
            m = _FAST.match(data, pos, check)  # to the end of the slice that failed: the next may not
            if m is not None:
                end = m.end()
                self._fast_region(data, pos, end)
                pos = end
                continue
            stop = _STOP.search(data, pos + 1, n)
            end = n if stop is None else stop.start()
            slow.feed(data[pos:end])
            pos = end

    # ---- fast regions ----------------------------------------------------------------------

    def _fast_region(self, data: str, pos: int, end: int) -> None:
        while pos < end:
            if self._lazy_state():
                done = self._lazy(data, pos, end)
                if done > pos:
                    pos = done
                    continue
            nl = data.find("\n", pos, end)
            stop = end if nl < 0 else nl + 1
            self._eager(data, pos, stop)
            pos = stop

    def _lazy_state(self) -> bool:
        s = self.listener
        margins = s.margins
        if margins is not None and (margins.top != 0 or margins.bottom != s.lines - 1):
            return False
        mode = s.mode
        if mo.DECAWM not in mode or mo.IRM in mode or mo.LNM in mode:
            return False
        if s.charset != 0 or s.g0_charset != LAT1_MAP:
            return False
        c = s.cursor
        return c.y == s.lines - 1 and 0 <= c.x <= s.columns

    def _tabs_ok(self) -> bool:
        s = self.listener
        cols, stops = self._stops_for
        if cols != s.columns:
            self._stops_for = (s.columns, _default_stops(s.columns))
            stops = self._stops_for[1]
        return s.tabstops == stops

    # ---- the eager path ----------------------------------------------------------------------

    def _eager(self, data: str, pos: int, end: int) -> None:
        s = self.listener
        for m in _EAGER_TOKEN.finditer(data, pos, end):
            kind = m.lastindex
            if kind == 1:
                self._draw(m.group(1))
            elif kind == 2:
                c = s.cursor
                c.attrs = _sgr(c.attrs, m.group(2), mo.DECSCNM in s.mode)
            elif kind == 3:
                s.carriage_return()
            elif kind == 4:
                s.linefeed()
            elif kind == 5:
                s.tab()
            elif kind == 6:
                s.backspace()
            else:
                self._draw_wide(m.group(7))

    def _left_to_pyte(self, text: str) -> bool:
        """Draw ``text`` with pyte's own ``draw`` where ours would not match it: the cursor off the screen,
        insert mode, or a character set that translates; whether it did."""
        s = self.listener
        c = s.cursor
        if c.x > s.columns or not 0 <= c.y < s.lines or mo.IRM in s.mode or s.charset or s.g0_charset != LAT1_MAP:
            s.draw(text)
            return True
        return False

    def _draw(self, text: str) -> None:
        """pyte's ``Screen.draw`` for characters one cell wide, a row at a time."""
        if self._left_to_pyte(text):
            return
        s = self.listener
        c = s.cursor
        cols = s.columns
        mode = s.mode
        glyph = _glyphs(c.attrs).__getitem__
        buf = s.buffer
        autowrap = mo.DECAWM in mode
        n = len(text)
        i = 0
        while i < n:
            if c.x == cols:
                if not autowrap:
                    # Each further character overwrites the last column.
                    buf[c.y][cols - 1] = glyph(text[-1])
                    break
                s.dirty.add(c.y)
                s.carriage_return()
                s.linefeed()
            x = c.x
            k = min(n - i, cols - x)
            buf[c.y].update(zip(range(x, x + k), map(glyph, text[i : i + k]), strict=True))
            c.x = x + k
            i += k
        s.dirty.add(c.y)

    def _draw_wide(self, text: str) -> None:
        """pyte's ``Screen.draw`` for characters two cells wide."""
        if self._left_to_pyte(text):
            return
        s = self.listener
        c = s.cursor
        cols = s.columns
        mode = s.mode
        glyph = _glyphs(c.attrs).__getitem__
        stub = glyph("")
        buf = s.buffer
        autowrap = mo.DECAWM in mode
        for ch in text:
            if c.x == cols:
                if autowrap:
                    s.dirty.add(c.y)
                    s.carriage_return()
                    s.linefeed()
                else:
                    c.x -= 2
            x = c.x
            line = buf[c.y]
            line[x] = glyph(ch)
            if x + 1 < cols:
                line[x + 1] = stub
            c.x = min(x + 2, cols)
        s.dirty.add(c.y)

    # ---- the lazy path -----------------------------------------------------------------------

    def _lazy(self, data: str, pos: int, end: int) -> int:
        """Apply whole lines at the bottom row without building cells; returns where it stopped."""
        s = self.listener
        c = s.cursor
        p: _Pending | None = s._pending
        if p is not None and c.attrs is not p.attrs:
            p.flush(s)
            p = None
        if p is None:
            if c.x != 0:
                return pos
            row = s._buffer.get(s.lines - 1)
            if row is not None and (row or row.default != s.default_char):
                return pos
            p = _Pending(c.attrs, s.default_char, mo.DECSCNM in s.mode, row is not None)
        seg = data[pos:end]
        out = self._lines_bulk(p, seg, self._plain_hint(data, pos, end))
        if out is None:
            out = self._lines_each(p, seg)
        if out.consumed == 0:
            return pos
        self._apply(p, seg[: out.consumed], out)
        return pos + out.consumed

    def _plain_hint(self, data: str, pos: int, end: int) -> _Stretch | None:
        """``data[pos:end]`` as checked whole (see ``_Stretch``), when it was."""
        hint = self._plain
        if hint is None or hint[1] != end or not hint[0] <= pos:
            return None
        start, stop, stretch = hint
        if pos == start:
            if stretch.lines is not None:  # the lazy path changes these lines: they serve once
                self._plain = (start, stop, stretch._replace(lines=None, stats=None))
            return stretch
        # What the eager path took first ends with an LF, which no SGR holds: the rest is a suffix. (It
        # took the lines up to the bottom row, as a flood that starts on a cleared screen does.)
        if data[pos - 1] != "\n":
            return None
        done = data[start:pos]
        taken = _cells(_strip_sgr(done))
        plain = stretch.plain[len(taken) :]
        controls = None
        if stretch.controls is not None:
            controls = stretch.controls[len(taken.encode("ascii").translate(None, _ASCII_TEXT)) :]
        if stretch.lines is None or not taken.endswith("\r\n"):
            return _Stretch(plain, controls, None)
        # The lines taken are the first of the stretch's, whole: the rest are its lines after them.
        k = taken.count("\r\n")
        stats = stretch.stats
        if stats is not None:
            cols = self.listener.columns
            stats = (stats[0] - sum(_wrapped(line, cols) for line in stretch.lines[:k]), stats[1])
        return _Stretch(plain, controls, stretch.lines[k:], stats)

    def _lines_bulk(self, p: _Pending, seg: str, stretch: _Stretch | None) -> _Lines | None:
        """The common case, with C-speed string operations only; None when it does not apply.

        ``stretch``: ``seg`` checked whole, when it was."""
        s = self.listener
        cols = s.columns
        x0 = s.cursor.x
        sgr = "\x1b" in seg
        if stretch is None:
            stretch = _Stretch(_cells(_strip_sgr(seg)), None, None)
        plain, controls, lines, stats = stretch
        # Each line must start at column 0: every LF follows a CR, but for an LF first at column 0; and
        # a CR must end a line or the stretch (a CR inside a line writes text over text). So the CRs
        # and LFs are the CR LF pairs that split the lines, that first LF and a last CR.
        lead = plain.startswith("\n")
        if lead and x0 != 0:
            return None
        if lines is None:
            lines = plain[1:].split("\r\n") if lead else plain.split("\r\n")
            stats = None
        else:
            if stats is not None:
                # The first and last lines change below: take them out of the rows counted.
                wrapped = _wrapped(lines[0], cols) + (_wrapped(lines[-1], cols) if len(lines) > 1 else 0)
                stats = (stats[0] - wrapped, stats[1])
            if lead:
                lines[0] = lines[0][1:]
        pairs = len(lines) - 1
        if lead:
            lines.insert(0, "")
        ends_cr = plain.endswith("\r")
        if controls is not None:
            cr, lf, bs = controls.count(b"\r"), controls.count(b"\n"), b"\x08" in controls
        else:
            cr, lf, bs = plain.count("\r"), plain.count("\n"), "\x08" in plain
        if bs or cr != pairs + ends_cr or lf != pairs + lead:
            return None
        if ends_cr:
            lines[-1] = lines[-1][:-1]
        n = len(lines)
        first = lines[0]
        if first and x0 != p.width:
            return None
        out = _Lines()
        # Raw lines: only the last few can have a row on the screen (each line takes one row at least).
        # Those of `lines` are cells: raw for text without SGRs, unless it holds two-cell characters.
        raw = sgr or STUB in plain
        last = s.lines + 1
        if n > last:
            if raw:
                cut = len(seg)
                for _ in range(last):
                    cut = seg.rfind("\n", 0, cut)
                out.head = cut
                out.raws = seg[cut + 1 :].split("\n")
            else:
                out.head = 0
                out.raws = lines[n - last :]
        else:
            out.raws = seg.split("\n") if raw else lines[:]
        lines[0] = p.src + first  # the cursor's row, continued
        tail = len(out.raws)
        if "\t" in plain or "\t" in p.src:
            # Tabs already on the cursor's row went to the default stops when they were drawn.
            if "\t" in plain and not self._tabs_ok():
                return None
            out.src = lines[-1]
            rows = "\n".join(lines).expandtabs(8).split("\n")
            if max(map(len, rows)) >= cols:
                return None
            out.line_rows = [1] * tail
            total = len(rows)
        else:
            if stats is not None:
                wraps, longest = stats
                changed = {0, 1, n - 1} if lead else {0, n - 1}
                wraps += sum(_wrapped(lines[i], cols) for i in changed if i < n)
                longest = max(longest, len(lines[0]))
            else:
                wraps, longest = _line_stats(lines, cols, STUB in plain)
            total = n + wraps
            # Rows are made for the last lines only, enough to fill the screen (each takes one row at
            # least); those before go to the history as lines, cut into rows if anything reads them.
            m = min(n, s.lines)
            shown = lines[n - m :] if n > m else lines
            if longest <= cols:
                rows = shown
                out.line_rows = [1] * tail
            else:
                rows = rows_pattern(cols).findall("\n".join(shown))
                out.line_rows = [_wrapped(line, cols) + 1 for line in lines[n - tail :]]
            if n > m:
                # Rows past the history's length would be pushed out again at once; the lines kept for the
                # rest are enough for them (each takes a row at least).
                early = min(total - len(rows), s.history.maxlen)
                out.early = LineRows(lines[max(0, n - m - early) : n - m], cols, early)
            out.src = rows[-1]
        out.width = len(rows[-1])
        out.scrolls = total - 1
        out.texts = row_texts(rows)
        out.consumed = len(seg)
        if out.scrolls:
            out.drew = bool(out.src.replace("\t", ""))
            out.x = 0 if ends_cr else out.width
        else:
            out.touched = bool(first.replace("\t", ""))
            out.drew = p.present or out.touched
            out.x = 0 if ends_cr else out.width if first else x0
        return out

    def _lines_each(self, p: _Pending, seg: str) -> _Lines:
        """Line by line, stopping before the first line the lazy path cannot take."""
        s = self.listener
        cols = s.columns
        out = _Lines()
        x = s.cursor.x
        tabs_ok: bool | None = None
        consumed = 0
        for i, raw in enumerate(seg.split("\n")):
            plain = _cells(_strip_sgr(raw))
            cr = plain.endswith("\r")
            body = plain[:-1] if cr else plain
            if "\r" in body or "\x08" in body:
                break
            if "\t" in body:
                if tabs_ok is None:
                    tabs_ok = self._tabs_ok()
                if not tabs_ok:
                    break
            if i == 0:
                if body and x != p.width:
                    break
                made = _line_rows(p.src + body, cols)
            else:
                if body and x != 0:
                    break
                made = _line_rows(body, cols)
            if made is None:
                break
            texts, out.src, out.width = made
            out.texts.extend(texts)
            out.raws.append(raw)
            out.line_rows.append(len(texts))
            drew = bool(body.replace("\t", ""))
            if i == 0:
                out.touched = drew
                out.drew = p.present or drew
            else:
                out.drew = drew
            if len(texts) > 1:
                out.drew = True
            if cr:
                x = 0
            elif body:
                x = out.width
            consumed += len(raw) + (1 if i else 0)
        out.x = x
        out.scrolls = len(out.texts) - 1
        out.consumed = consumed if out.raws else 0
        return out

    def _apply(self, p: _Pending, seg: str, out: _Lines) -> None:
        s = self.listener
        rows = s.lines
        scrolls = out.scrolls
        have = len(p.texts)
        if scrolls:
            buf = s._buffer
            real = rows - have  # rows above the pending ones, still built
            from_real = min(scrolls, real)
            push: list[str] = []
            if not s.alternate:
                push = [_line_text(buf[y], s.columns) for y in range(from_real)]
            for y in range(real - from_real):
                buf[y] = buf[y + scrolls]
            kept = min(rows, have + scrolls)
            if out.early is None:
                texts = p.texts[:-1] + out.texts
            else:
                push.extend(p.texts[:-1])
                texts = out.texts  # as many rows as the screen has, at least
            if not s.alternate:
                if out.early is not None:
                    s.history.extend(push)
                    s.history.extend_lines(out.early)
                    push = []
                push.extend(texts[: len(texts) - kept])
                s.history.extend(push)
                s.scrolled += scrolls
            p.texts = texts[len(texts) - kept :]
            sgr = "\x1b" in seg
            if out.head is None:
                lines = p.lines[:-1]
                lines.append(p.lines[-1] + out.raws[0])
                lines.extend(out.raws[1:])
                line_rows = p.rows[:-1]
                line_rows.append(p.rows[-1] - 1 + out.line_rows[0])
                line_rows.extend(out.line_rows[1:])
                p.sgr = p.sgr or sgr
            else:
                # The pending lines and the head are all off the screen: only their colours count.
                if p.sgr:
                    p.anchor = _fold(p.anchor, "".join(p.lines), p.reverse)
                if sgr:
                    p.anchor = _fold(p.anchor, seg, p.reverse, out.head)
                lines = out.raws
                line_rows = out.line_rows
                p.skip = 0
                p.sgr = sgr
            # Keep the lines that have a row on screen; fold the colours of those gone. Each line has at
            # least one row, so the last `kept` lines hold them all.
            n = len(lines)
            tail = line_rows[max(0, n - kept) :]
            if len(tail) == n:
                tail[0] -= p.skip
            seen = list(accumulate(reversed(tail)))
            k = bisect_left(seen, kept)
            j = n - 1 - k
            skip = seen[k] - kept + (p.skip if j == 0 else 0)
            if j and p.sgr:
                p.anchor = _fold(p.anchor, "".join(lines[:j]), p.reverse)
            p.lines = lines[j:]
            p.rows = line_rows[j:]
            p.skip = skip
            if skip and len(p.lines[0]) > 4096 and (p.lines[0].isascii() or _TWO_CELLS.search(p.lines[0]) is None):
                # A very long line (no LF for a while): cut it where its first row on screen starts.
                head, rest = _row_cuts(p.lines[0], [skip * s.columns])
                p.anchor = _fold(p.anchor, head, p.reverse)
                p.lines[0] = rest
                p.rows[0] -= skip
                p.skip = 0
            p.present = out.drew
            s.dirty.update(range(rows))
        else:
            p.texts[-1] = out.texts[0]
            p.lines[-1] += out.raws[0]
            p.rows[-1] += out.line_rows[0] - 1
            p.sgr = p.sgr or "\x1b" in seg
            p.present = out.drew
            if out.touched:
                s.dirty.add(s.cursor.y)
        p.src = out.src
        p.width = out.width
        if "\x1b" in seg:
            s.cursor.attrs = _fold(s.cursor.attrs, seg, p.reverse)
        p.attrs = s.cursor.attrs
        s.cursor.x = out.x
        s._pending = p
