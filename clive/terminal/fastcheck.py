"""FastStream's checks: whether text is all one- and two-cell characters, CR, LF, TAB, BS and SGR (what
its fast paths take), checked a slice at a time, and the rows its lines take when wrapped. Why the
shortcuts are exact is in ``fastfeed``'s docstring; ``CheckedText`` lets the Terminal's reader check
a flood while it waits for more of it. Where ``_speedups.c`` was built, the SGRs are removed and
ASCII text checked and measured in one pass in C."""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import compress, islice
from typing import NamedTuple

from wcwidth import wcwidth

try:
    from clive.terminal import _speedups  # the C checks (clive/terminal/_speedups.c), where it was built
except ImportError:
    _speedups = None

from clive.terminal.screen import STUB, ControlStrings, rows_pattern

__all__ = ["CheckedText"]


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
NARROW = _width_ranges(1)
WIDE = _width_ranges(2)
# A stretch this stream takes itself: one- and two-cell text, CR, LF, TAB, BS and SGR with plain
# parameters.
FAST = re.compile(f"(?:\\x1b\\[[0-9;]*m|[{NARROW}{WIDE}\\r\\n\\t\\x08]+)+")
# Any character of a fast stretch once its SGRs are removed; the same for ASCII text (much faster).
_NOT_FAST = re.compile(f"[^{NARROW}{WIDE}\\r\\n\\t\\x08]")
# A two-cell character, which the lazy path's text follows with STUB (its second cell).
TWO_CELLS = re.compile(f"[{WIDE}]")


class _CellsTable(dict):
    """``str.translate`` table: a two-cell character to itself and STUB, any other to itself."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        cells = self[code] = ch + STUB if TWO_CELLS.match(ch) else ch
        return cells
_CELLS_TABLE = _CellsTable()
# ASCII text a row can hold as it is: what is left of a line after deleting it is its control characters.
ASCII_TEXT = bytes(range(0x20, 0x7F)) + b"\t"
SGR = re.compile(r"\x1b\[([0-9;]*)m")
# A long chunk is checked for the fast paths a slice of about this many characters at a time, cut after
# an LF (so no SGR is cut): regex passes over a slice this size stay in the CPU's cache.
_SLICE = 1 << 18
_COUNTED_WRAPS = 3  # see _extra_rows


def cells(plain: str) -> str:
    """Text without SGRs as the lazy path takes it: each two-cell character followed by STUB."""
    return plain if plain.isascii() or TWO_CELLS.search(plain) is None else plain.translate(_CELLS_TABLE)


def strip_sgr(text: str) -> str:
    """``text`` without its SGRs, where every ESC starts one (the fast paths took it)."""
    if "\x1b" not in text:
        return text
    return _speedups.strip_sgr(text) if _speedups is not None else SGR.sub("", text)


def _check_slice(seg: str) -> tuple[str, bytes | None] | None:
    """``seg`` without its SGRs (as ``cells``) and, when ASCII, its control characters in order; None
    unless it is all one- and two-cell text, CR, LF, TAB, BS and SGR (what the fast paths take)."""
    plain = seg
    if "\x1b" in seg:
        plain = _speedups.strip_sgr(seg) if _speedups is not None else SGR.sub("", seg)
        if plain is None:  # an ESC that starts no SGR (the regex leaves it, and the checks below fail)
            return None
    if not plain.isascii():
        return (cells(plain), None) if _NOT_FAST.search(plain) is None else None
    controls = plain.encode("ascii").translate(None, ASCII_TEXT)
    return (plain, controls) if not controls.translate(None, b"\r\n\x08") else None


def line_stats(lines: list[str], columns: int, stubs: bool) -> tuple[int, int]:
    """Of lines (cells, see ``cells``) written from column 0, each on a fresh row: the rows they take
    beyond one each when wrapped at ``columns``, and the longest line's length. ``stubs``: whether any
    line holds a STUB (the caller knows from the text it split, at the cost of one scan)."""
    lens = list(map(len, lines))
    longest = max(lens)
    if longest <= columns:
        return 0, longest
    if stubs:
        # A two-cell character in the last column loses its second cell: no arithmetic for those. (The
        # sum is wrapped's, line by line, as the lazy path corrects it: a line may hold a lead LF.)
        return sum(wrapped_rows(line, columns) for line in lines if len(line) > columns), longest
    return _extra_rows(lens, columns), longest


def _checked_slice(seg: str, columns: int) -> tuple[str, bytes | None, list[str], tuple[int, int] | None] | None:
    """``_check_slice`` of ``seg``, that text split at CR LF, and ``line_stats`` of those lines at
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
    return plain, controls, lines, line_stats(lines, columns, STUB in plain) if columns > 0 else None


class Slice(NamedTuple):
    """A fast slice checked before: where it ends, its text without SGRs, the control characters of that
    when ASCII, that text split at CR LF, and ``line_stats`` of those lines (None: not for this width)."""

    end: int
    plain: str
    controls: bytes | None
    lines: list[str]
    stats: tuple[int, int] | None
# Slices checked before, by where they start.
Slices = dict[int, Slice]


class Stretch(NamedTuple):
    """A fast stretch checked whole: its text without SGRs, the control characters of that when ASCII,
    the text split at CR LF when known, and ``line_stats`` of those lines at ``columns`` when known."""

    plain: str
    controls: bytes | None
    lines: list[str] | None
    stats: tuple[int, int] | None = None


def fast_prefix(data: str, pos: int, end: int, known: Slices | None, columns: int) -> tuple[int, int, Stretch]:
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
    stretch = Stretch(
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
        self.slices: list[tuple[int, Slice]] = []  # (start, slice)

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
                self.slices.append((self._size, Slice(self._size + cut, plain, controls, split, stats)))
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


def wrapped_rows(line: str, columns: int) -> int:
    """Rows beyond the first of a line (cells, see ``cells``) wrapped at ``columns``."""
    if len(line) <= columns:
        return 0
    if STUB in line:
        return len(rows_pattern(columns).findall(line)) - 1
    return (len(line) - 1) // columns
