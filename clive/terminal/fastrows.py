"""The cells FastStream writes: SGR folded as pyte's ``select_graphic_rendition`` does (memoised), a cache
of ``Char`` glyphs per style, rows cut from a line's text, and the lazy path's bottom rows of a flood,
kept as text and built into cells the first time anything reads them (see ``fastfeed``)."""

from __future__ import annotations

import re
from typing import Any

from pyte import graphics as g
from pyte.screens import Char, StaticDefaultDict

from clive.terminal import clusters
from clive.terminal.fastcheck import SGR, cells, one_cell_each
from clive.terminal.screen import STUB, LineRows, ScreenModel, _line_text, row_texts, rows_pattern

_NOT_PLAIN = re.compile(r"\x1b\[[0-9;]*m|\r")
_ROW_TOKEN = re.compile(r"([^\x1b\t\r]+)|\x1b\[([0-9;]*)m|(\t)|(\r)")
_DEFAULTS = (Char(" "), Char(" ", reverse=True))  # pyte's default_char without and with DECSCNM
_CACHE_LIMIT = 50_000
# Keyed by (id(attrs), params): the value holds `attrs` too, so that id is never reused while cached.
_sgr_memo: tuple[dict[tuple[int, str], tuple[Char, Char]], ...] = ({}, {})


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


def sgr(attrs: Char, params: str, reverse: bool) -> Char:
    memo = _sgr_memo[reverse]
    hit = memo.get((id(attrs), params))
    if hit is not None:
        return hit[1]
    if len(memo) > _CACHE_LIMIT:
        memo.clear()
    result = _apply_sgr(attrs, params, _DEFAULTS[reverse])
    memo[(id(attrs), params)] = (attrs, result)
    return result


def fold(attrs: Char, raw: str, reverse: bool, end: int | None = None) -> Char:
    """The attributes after every SGR in ``raw[:end]`` (which holds only text, CR, LF, TAB and SGR)."""
    if end is None:
        end = len(raw)
    # ESC[0m and ESC[m reset everything, whatever came before: apply only what follows the last.
    start = raw.rfind("\x1b[", 0, end)
    if start < 0:
        return attrs
    after: list[str] = []
    for _ in range(8):  # coloured text resets often: look back a few SGRs first
        params = SGR.match(raw, start).group(1)  # type: ignore[union-attr]  # every ESC starts an SGR
        if params == "0" or params == "":
            attrs = _DEFAULTS[reverse]
            break
        after.append(params)
        start = raw.rfind("\x1b[", 0, start)
        if start < 0:
            break
    else:
        start = max(raw.rfind("\x1b[0m", 0, end), raw.rfind("\x1b[m", 0, end), 0)
        after = SGR.findall(raw, start, end)
        after.reverse()
    for params in reversed(after):
        attrs = sgr(attrs, params, reverse)
    return attrs


class Glyphs(dict):
    """The cells of one style, made once per character."""

    __slots__ = ("attrs",)

    def __init__(self, attrs: Char) -> None:
        super().__init__()
        self.attrs = attrs

    def __missing__(self, ch: str) -> Char:
        cell = self[ch] = self.attrs._replace(data=ch)
        return cell


_glyph_cache: dict[Char, Glyphs] = {}


def glyphs(attrs: Char) -> Glyphs:
    glyphs = _glyph_cache.get(attrs)
    if glyphs is None:
        if len(_glyph_cache) > 1024:
            _glyph_cache.clear()
        glyphs = _glyph_cache[attrs] = Glyphs(attrs)
    return glyphs


def row_cuts(raw: str, cuts: list[int]) -> list[str]:
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


def line_rows(src: str, cols: int) -> tuple[list[str], str, int] | None:
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


class Lines:
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


class PendingRows:
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
                    glyph = glyphs(attrs).__getitem__
                    if not one_cell_each(text):
                        # Its cells: as pyte's draw, a two-cell character's second cell is "" (none in
                        # the last column); a cluster's cell holds its text.
                        token_text = clusters.TEXT.get
                        for ch in cells(text):
                            if ch == STUB:
                                if x < cols:
                                    row[x] = glyph("")
                                    x += 1
                                continue
                            if x == cols:
                                row = StaticDefaultDict(default)
                                built.append(row)
                                x = 0
                            row[x] = glyph(token_text(ord(ch), ch))
                            x += 1
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
                    attrs = sgr(attrs, m.group(2), reverse)
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
