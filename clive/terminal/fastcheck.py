"""FastStream's checks: whether text is all one- and two-cell characters and grapheme clusters, CR, LF,
TAB, BS and SGR (what its fast paths take), checked a slice at a time, and the rows its lines take when
wrapped. Why the shortcuts are exact is in ``fastfeed``'s docstring; ``CheckedText`` lets the
Terminal's reader check a flood while it waits for more of it. Where ``_speedups.c`` was built, the
SGRs are removed and the text checked, made into cells and measured in one pass in C.

A cluster is what ``graphemes.draw`` puts in one cell: a character with the zero-width characters
after it, and the character after each zero-width joiner, or a pair of regional indicators (a flag).
In the lazy path's cells it is one token (``clusters``). A zero-width character with nothing on its
line to join (after a tab, a CR, a BS, at a line's or a slice's start), a joiner with nothing after
it, and an SGR inside a cluster are left to pyte's path."""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from itertools import compress, islice
from typing import NamedTuple

from wcwidth import wcwidth

try:
    from clive.terminal import _speedups  # the C checks (clive/terminal/_speedups.c), where it was built
except ImportError:
    _speedups = None

from clive.terminal import clusters
from clive.terminal.screen import STUB, ControlStrings, rows_pattern

__all__ = ["CheckedText"]


JOINS = 3  # the width table's value for a character of no width, which joins the cell before it


def _plane_widths(plane: int) -> bytes:
    """The cells (pyte's `wcwidth`) of every character of a Unicode plane, a byte each: 1 or 2, JOINS
    for none, else 0 (controls, surrogates)."""
    table = bytearray(0x10000)
    base = plane << 16
    for cp in range(max(base, 0x20), base + 0x10000):
        if not 0xD800 <= cp < 0xE000:
            cells = wcwidth(chr(cp))
            if cells in (1, 2):
                table[cp - base] = cells
            elif cells == 0:
                table[cp - base] = JOINS
    return bytes(table)
_WIDTHS = _plane_widths(0)


@functools.cache
def all_widths() -> bytes:
    """``_WIDTHS`` for every code point, made the first time a character beyond the BMP is checked (planes
    4-13, 15 and 16 hold no character of another width: their table is made without asking)."""
    planes = [_plane_widths(p) if p in (1, 2, 3, 14) else bytes([1]) * 0x10000 for p in range(1, 17)]
    return _WIDTHS + b"".join(planes)


def _ranges(widths: bytes, width: int) -> str:
    """A regex class body for every character ``width`` cells wide by ``widths``."""
    parts = []
    for m in re.finditer(re.escape(bytes([width])) + b"+", widths):
        start, end = m.start(), m.end() - 1
        parts.append(f"\\U{start:08x}" if start == end else f"\\U{start:08x}-\\U{end:08x}")
    return "".join(parts)


# Only the BMP: a class with astral ranges cannot be compiled to a bitmap and gets slow.
NARROW = _ranges(_WIDTHS, 1)
WIDE = _ranges(_WIDTHS, 2)
ZERO = _ranges(_WIDTHS, JOINS)
# A stretch this stream takes itself: one- and two-cell text, CR, LF, TAB, BS and SGR with plain
# parameters.
FAST = re.compile(f"(?:\\x1b\\[[0-9;]*m|[{NARROW}{WIDE}\\r\\n\\t\\x08]+)+")
# Any character of a fast stretch once its SGRs are removed; the same for ASCII text (much faster).
_NOT_FAST = re.compile(f"[^{NARROW}{WIDE}\\r\\n\\t\\x08]")
# A two-cell character, which the lazy path's text follows with STUB (its second cell).
TWO_CELLS = re.compile(f"[{WIDE}]")


# A character beyond the BMP or of no width: text holding none is one- and two-cell characters only.
_CLUSTERED = re.compile(f"[{ZERO}\U00010000-\U0010ffff]")


class _CellsTable(dict):
    """``str.translate`` table: a two-cell character to itself and STUB, any other to itself."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        two = TWO_CELLS.match(ch) if code < 0x10000 else all_widths()[code] == 2
        cells = self[code] = ch + STUB if two else ch
        return cells
_CELLS_TABLE = _CellsTable()
# ASCII text a row can hold as it is: what is left of a line after deleting it is its control characters.
ASCII_TEXT = bytes(range(0x20, 0x7F)) + b"\t"
SGR = re.compile(r"\x1b\[([0-9;]*)m")
# A long chunk is checked for the fast paths a slice of about this many characters at a time, cut after
# an LF (so no SGR is cut): regex passes over a slice this size stay in the CPU's cache.
_SLICE = 1 << 18
_COUNTED_WRAPS = 3  # see _extra_rows


# What only the width table of every plane can tell: a character beyond the BMP, or of no width.
_NOT_FAST_IN_BMP = re.compile(f"[^{NARROW}{WIDE}{ZERO}\\r\\n\\t\\x08\U00010000-\U0010ffff]")
_CONTROLS = "\t\r\n\x08"
_REGIONAL = range(0x1F1E6, 0x1F200)


@functools.cache
def _split_cluster() -> re.Pattern[str]:
    """An SGR inside a cluster, in the text as written: after a joiner, before a character of no width,
    between two regional indicators."""
    zero = _ranges(all_widths(), JOINS)
    sgr = "\\x1b\\[[0-9;]*m"
    regional = "\U0001f1e6-\U0001f1ff"
    return re.compile(f"\u200d\\x1b|{sgr}(?=[{zero}])|[{regional}](?:{sgr})+[{regional}]")


def _cluster_spans(plain: str) -> list[tuple[int, int]] | None:
    """Where ``plain`` holds clusters of two characters or more, as ``graphemes.draw`` makes them; None
    unless every character is fast and every zero-width character joins a character before it."""
    if _NOT_FAST_IN_BMP.search(plain) is not None:
        return None
    widths = all_widths()
    n = len(plain)
    spans: list[tuple[int, int]] = []
    start = end = -1  # the cluster being made
    lone = -1  # where a regional indicator alone in its cell is
    for m in _CLUSTERED.finditer(plain):
        p = m.start()
        code = ord(plain[p])
        width = widths[code]
        if not width:
            return None
        if p < end:  # a character after a joiner, already in the cluster
            if plain[p] == clusters.ZWJ:
                if p + 1 == n or plain[p + 1] in _CONTROLS:
                    return None
                end = max(end, p + 2)
            continue
        if width == JOINS:
            if p != end:
                if not p or plain[p - 1] in _CONTROLS:
                    return None  # nothing on its line to join here
                if end > start >= 0:
                    spans.append((start, end))
                start = p - 1
            end = p + 1
            if plain[p] == clusters.ZWJ:
                if p + 1 == n or plain[p + 1] in _CONTROLS:
                    return None
                end = p + 2
            lone = -1
        elif code in _REGIONAL:
            if lone == p - 1 >= 0:
                if end > start >= 0:
                    spans.append((start, end))
                start, end, lone = p - 1, p + 1, -1
            else:
                lone = p
    if end > start >= 0:
        spans.append((start, end))
    return spans


def cluster_cells(plain: str) -> str | None:
    """``cells`` of text that may hold clusters; None unless every character is fast and every
    zero-width character joins a cluster (or when every token is taken)."""
    spans = _cluster_spans(plain)
    if spans is None:
        return None
    pieces = []
    last = 0
    for start, end in spans:
        found = clusters.token(plain[start:end], STUB)
        if found is None:
            return None
        pieces.append(plain[last:start])
        pieces.append(found)
        last = end
    pieces.append(plain[last:])
    return "".join(pieces).translate(_CELLS_TABLE)


def cells(plain: str) -> str:
    """Text without SGRs, checked fast, as the lazy path takes it: a character a cell, each two-cell
    character followed by STUB, each cluster a token (``clusters``)."""
    if plain.isascii():
        return plain
    if _CLUSTERED.search(plain) is None:
        return plain if TWO_CELLS.search(plain) is None else plain.translate(_CELLS_TABLE)
    found = cluster_cells(plain)
    assert found is not None, "cells() of text the checks refused"
    return found


def one_cell_each(text: str) -> bool:
    """Whether every character of ``text`` takes one cell of its own (so its offsets are its cells)."""
    return text.isascii() or (TWO_CELLS.search(text) is None and _CLUSTERED.search(text) is None)


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
        if _NOT_FAST.search(plain) is None:
            return cells(plain), None
        found = cluster_cells(plain)
        if found is None or (plain is not seg and _split_cluster().search(seg) is not None):
            return None
        if ord(plain[0]) in _REGIONAL:
            return None  # it may pair with one the screen has before the cursor: pyte's path decides
        return found, None
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
        if seg.isascii():
            found = _speedups.check_ascii(seg, columns)
        else:
            widths = all_widths() if all_widths.cache_info().currsize else _WIDTHS
            found = _speedups.check_text(seg, columns, widths, clusters.TOKENS)
        if found is None:
            return None
        if found is not NotImplemented:  # beyond the BMP at first, a new cluster: the checks below
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
