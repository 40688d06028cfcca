"""A drop-in for ``pyte.Stream`` that keeps up with a flood and leaves exactly the screen pyte would.

pyte parses one character at a time and draws one cell at a time: about 1 MB/s. A flood (``cat`` of
a log, a compiler, a training loop) is almost all printable text, CR LF and SGR colour, so this
stream takes those itself and hands everything else to pyte's own parser, on the same screen:

* **Slow path.** Anything else (cursor addressing, erase, modes, OSC, controls, a zero-width character
  with nothing before it on its line to join) goes to a real ``pyte.Stream``. When a chunk ends inside an
  escape sequence, the next chunk goes to that parser one character at a time until it is back in
  its ground state (a chunk ending in the first bytes of an SGR is held back instead: so far they
  change nothing). A slow segment runs to the next CR, LF, TAB, BS or ESC, which end pyte's text
  runs too, so a run that pyte draws in one ``draw()`` call (and cuts short at an unprintable
  character) is never split in a way that changes what is drawn.
* **Eager path.** One- and two-cell text, SGR, CR, LF, TAB and BS anywhere on the screen: cells are
  written from a per-style cache of ``Char`` objects, one-cell text a row at a time, two-cell
  characters one by one as pyte's ``draw`` writes them (the character, then "" in its second
  cell); CR, LF, TAB and BS call the screen's own methods, so scrolling, margins and scrollback are
  the screen's own. Characters beyond the BMP and of no width (grapheme clusters) go to the
  screen's own ``draw``, which joins them to the cells before.
* **Lazy path.** On the bottom row of a full-height scroll region, whole lines of text and SGR that
  end in CR LF are applied with C-speed string operations (``split``, ``re.sub``, ``findall``): a
  line is taken as its cells, its SGRs removed, each two-cell character followed by ``STUB`` and
  each grapheme cluster one token (``fastcheck.cells``, ``clusters``), and a row's text is the line
  with tabs expanded, cut every ``columns`` cells (a STUB that would start a row is dropped: pyte
  writes a two-cell character in the last column without its second cell), STUBs removed, tokens
  read back and right-stripped. Rows are made only for the lines that reach the
  screen: the lines above them go to the scrollback whole (``LineRows``), cut into rows only if
  anything reads the history, so lines that a flood pushes out of the history again are never cut
  (the Terminal's reader feeds a flood in windows of many reads, see ``Terminal._read``); those past
  the history are counted (their wrapped rows too) and their colours folded. Only the screen's
  bottom rows are kept, as that text plus the raw characters of their lines; their cells are built
  the first time anything reads ``screen.buffer`` (``ScreenModel`` calls ``fastrows.PendingRows.flush``), and
  ``text_lines()`` reads the text without building them.
* **Checks.** Whether a chunk is all one- and two-cell text, CR, LF, TAB, BS and SGR is checked with
  C-speed string operations (the SGRs removed, the rest translated away) a slice of about ``fastcheck._SLICE``
  characters at a time, cut after an LF: the slices before the first that fails are taken as one
  stretch, the failing one goes the usual way. A slice's lines are measured when it is checked
  (``fastcheck.line_stats``: the rows they wrap to), so a stretch's rows are a sum. ``CheckedText`` lets a
  reader run those checks on a flood's text while it waits for more of it. Where ``clive/terminal/_speedups.c``
  was built (``pip install`` builds it), the SGRs are removed and the checks and measures of ASCII
  text done in one pass in C, a regex match per SGR being most of the cost in Python.

Why the shortcuts are exact. The lazy path runs only with the cursor on the bottom row of a
full-height scroll region, DECAWM on, IRM and LNM off, the G0 charset the identity and (for a tab)
the default tab stops. It takes a line only if its CRs come just before its LF, every character is
one or two cells wide or of no width, a tab stays short of the last column, and it starts at column
0 of a fresh row (blank, or the continuation of the cursor's row with the cursor at its end); and a
cluster's characters all follow its first in one run of text (no SGR, control or line's start before a
zero-width character, nothing but text after a joiner, no regional indicator first in a slice, which
might pair with one the screen holds): ``graphemes.draw`` then puts the cluster in the cell of its
first character, as wide as that, which is the token's cell. Then
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
from bisect import bisect_left
from itertools import accumulate
from typing import Any

from pyte import modes as mo
from pyte.charsets import LAT1_MAP

from clive.terminal.clusters import has_tokens
from clive.terminal.fastcheck import (
    ASCII_TEXT,
    FAST,
    NARROW,
    WIDE,
    CheckedText,
    Slices,
    Stretch,
    cells,
    fast_prefix,
    line_stats,
    one_cell_each,
    strip_sgr,
    wrapped_rows,
)
from clive.terminal.fastrows import Lines, PendingRows, fold, glyphs, line_rows, row_cuts, sgr
from clive.terminal.parser import TerminalStream
from clive.terminal.screen import STUB, LineRows, ScreenModel, _line_text, row_texts, rows_pattern

__all__ = ["CheckedText", "FastStream"]


# Where a slow segment may end: characters that always end one of pyte's text runs.
_STOP = re.compile(r"[\r\n\t\x08\x1b]")
# The start of an SGR cut off at the end of a chunk: ESC, ESC [, ESC [ 3 ...
_PARTIAL_SGR = re.compile(r"\x1b(?:\[[0-9;]*)?\Z")
# The last group: the rest of a fast stretch, characters beyond the BMP and of no width (clusters).
_EAGER_TOKEN = re.compile(
    f"([{NARROW}]+)|\\x1b\\[([0-9;]*)m|(\\r)|(\\n)|(\\t)|(\\x08)|([{WIDE}]+)|([^{NARROW}{WIDE}\\x1b\\r\\n\\t\\x08]+)"
)


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
        self._slow = TerminalStream(screen)
        self._fast = _fast_capable(screen) and hasattr(self._slow, "_taking_plain_text")
        self._stops_for: tuple[int, set[int]] = (-1, set())
        # The start of an escape sequence cut off at the end of the last chunk, not yet given to
        # pyte: so far it has no effect on the screen, and whole it may be an SGR this stream takes.
        self._held = ""
        # (start, end, stretch) of a fast stretch checked whole, for the lazy path to reuse.
        self._plain: tuple[int, int, Stretch] | None = None

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
        known: Slices | None = None
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

    def _feed(self, data: str, n: int, known: Slices | None) -> None:
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
                # it in slices, faster than FAST can, and the slice that fails the usual way.
                stop, check, stretch = fast_prefix(data, pos, n, known, self.listener.columns)
                if stop > pos:
                    self._plain = (pos, stop, stretch)
                    try:
                        self._fast_region(data, pos, stop)
                    finally:
                        self._plain = None
                    pos = stop
                    continue
            m = FAST.match(data, pos, check)  # to the end of the slice that failed: the next may not
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
        if s.charset != 0 or s.g0_charset != LAT1_MAP or s.join_at is not None:
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
                c.attrs = sgr(c.attrs, m.group(2), mo.DECSCNM in s.mode)
            elif kind == 3:
                s.carriage_return()
            elif kind == 4:
                s.linefeed()
            elif kind == 5:
                s.tab()
            elif kind == 6:
                s.backspace()
            elif kind == 7:
                self._draw_wide(m.group(7))
            else:
                s.draw(m.group(8))  # graphemes.draw: joins what it must to the cells before

    def _left_to_pyte(self, text: str) -> bool:
        """Draw ``text`` with the screen's own ``draw`` where ours would not match it: the cursor off the
        screen, insert mode, a character set that translates, or a joiner waiting for its next
        character; whether it did."""
        s = self.listener
        c = s.cursor
        if (c.x > s.columns or not 0 <= c.y < s.lines or mo.IRM in s.mode or s.charset or s.g0_charset != LAT1_MAP
                or s.join_at is not None):
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
        glyph = glyphs(c.attrs).__getitem__
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
        glyph = glyphs(c.attrs).__getitem__
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
        p: PendingRows | None = s._pending
        if p is not None and c.attrs is not p.attrs:
            p.flush(s)
            p = None
        if p is None:
            if c.x != 0:
                return pos
            row = s._buffer.get(s.lines - 1)
            if row is not None and (row or row.default != s.default_char):
                return pos
            p = PendingRows(c.attrs, s.default_char, mo.DECSCNM in s.mode, row is not None)
        seg = data[pos:end]
        out = self._lines_bulk(p, seg, self._plain_hint(data, pos, end))
        if out is None:
            out = self._lines_each(p, seg)
        if out.consumed == 0:
            return pos
        self._apply(p, seg[: out.consumed], out)
        return pos + out.consumed

    def _plain_hint(self, data: str, pos: int, end: int) -> Stretch | None:
        """``data[pos:end]`` as checked whole (see ``Stretch``), when it was."""
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
        taken = cells(strip_sgr(done))
        plain = stretch.plain[len(taken) :]
        controls = None
        if stretch.controls is not None:
            controls = stretch.controls[len(taken.encode("ascii").translate(None, ASCII_TEXT)) :]
        if stretch.lines is None or not taken.endswith("\r\n"):
            return Stretch(plain, controls, None)
        # The lines taken are the first of the stretch's, whole: the rest are its lines after them.
        k = taken.count("\r\n")
        stats = stretch.stats
        if stats is not None:
            cols = self.listener.columns
            stats = (stats[0] - sum(wrapped_rows(line, cols) for line in stretch.lines[:k]), stats[1])
        return Stretch(plain, controls, stretch.lines[k:], stats)

    def _lines_bulk(self, p: PendingRows, seg: str, stretch: Stretch | None) -> Lines | None:
        """The common case, with C-speed string operations only; None when it does not apply.

        ``stretch``: ``seg`` checked whole, when it was."""
        s = self.listener
        cols = s.columns
        x0 = s.cursor.x
        sgr = "\x1b" in seg
        if stretch is None:
            stretch = Stretch(cells(strip_sgr(seg)), None, None)
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
                wrapped = wrapped_rows(lines[0], cols) + (wrapped_rows(lines[-1], cols) if len(lines) > 1 else 0)
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
        out = Lines()
        # Raw lines: only the last few can have a row on the screen (each line takes one row at least).
        # Those of `lines` are cells: raw for text without SGRs, unless it holds two-cell characters.
        raw = sgr or STUB in plain or has_tokens(plain)
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
                wraps += sum(wrapped_rows(lines[i], cols) for i in changed if i < n)
                longest = max(longest, len(lines[0]))
            else:
                wraps, longest = line_stats(lines, cols, STUB in plain)
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
                out.line_rows = [wrapped_rows(line, cols) + 1 for line in lines[n - tail :]]
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

    def _lines_each(self, p: PendingRows, seg: str) -> Lines:
        """Line by line, stopping before the first line the lazy path cannot take."""
        s = self.listener
        cols = s.columns
        out = Lines()
        x = s.cursor.x
        tabs_ok: bool | None = None
        consumed = 0
        for i, raw in enumerate(seg.split("\n")):
            plain = cells(strip_sgr(raw))
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
                made = line_rows(p.src + body, cols)
            else:
                if body and x != 0:
                    break
                made = line_rows(body, cols)
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

    def _apply(self, p: PendingRows, seg: str, out: Lines) -> None:
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
                    p.anchor = fold(p.anchor, "".join(p.lines), p.reverse)
                if sgr:
                    p.anchor = fold(p.anchor, seg, p.reverse, out.head)
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
                p.anchor = fold(p.anchor, "".join(lines[:j]), p.reverse)
            p.lines = lines[j:]
            p.rows = line_rows[j:]
            p.skip = skip
            if skip and len(p.lines[0]) > 4096 and one_cell_each(p.lines[0]):
                # A very long line (no LF for a while): cut it where its first row on screen starts.
                head, rest = row_cuts(p.lines[0], [skip * s.columns])
                p.anchor = fold(p.anchor, head, p.reverse)
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
            s.cursor.attrs = fold(s.cursor.attrs, seg, p.reverse)
        p.attrs = s.cursor.attrs
        s.cursor.x = out.x
        s._pending = p
