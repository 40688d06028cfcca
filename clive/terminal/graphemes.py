"""pyte's ``Screen.draw`` with the grapheme clusters a terminal keeps together.

pyte stops drawing a run of text at the first character of zero width that is not a combining
mark: a zero-width joiner (U+200D) in an emoji sequence, a variation selector (U+FE0F) or a
zero-width space drop everything after them up to the next control, so ``👨‍👩‍👧 family`` shows as
``👨``. Here, as tmux draws them:

* every character of zero width joins the cell before it (the wide character's cell, not the stub
  after it), as a combining mark does;
* the character after a joiner joins that cell too, whatever its width: a ZWJ sequence is one cell
  (two for a wide first character);
* a second regional indicator joins a lone first one: a flag is one two-cell character.

Characters pyte cannot print (width -1) still end the run, as in pyte. Everything else, the wrap,
insert mode and the character sets, is pyte's ``draw`` line for line. ``clusters`` reads a row's text
back into its cells by the same rules.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from pyte import modes as mo
from wcwidth import wcwidth

ZWJ = "\u200d"
_REGIONAL = range(0x1F1E6, 0x1F200)


def _lone_regional(data: str) -> bool:
    return len(data) == 1 and ord(data) in _REGIONAL


def _joined_cell(screen: Any) -> tuple[Any, int] | None:
    """The row and column of the cell a zero-width character joins: the one before the cursor."""
    c = screen.cursor
    if c.x:
        line = screen.buffer[c.y]
        x = min(c.x, screen.columns) - 1
        if line[x].data == "" and x:
            x -= 1  # the stub after a wide character: the character is one cell further left
        return line, x
    if c.y:
        above = screen.buffer[c.y - 1]
        x = screen.columns - 1
        if above[x].data == "" and x:
            x -= 1
        return above, x
    return None


def draw(screen: Any, data: str) -> None:
    """Draw ``data`` at the cursor as ``pyte.Screen.draw`` does, keeping grapheme clusters whole."""
    data = data.translate(screen.g1_charset if screen.charset else screen.g0_charset)
    for char in data:
        c = screen.cursor
        width = wcwidth(char)
        joins = width == 0 or screen.join_at == (c.y, c.x)
        if not joins and ord(char) in _REGIONAL and c.x:
            prev = _joined_cell(screen)
            joins = prev is not None and _lone_regional(prev[0][prev[1]].data)
        if joins and width >= 0:
            prev = _joined_cell(screen)
            screen.join_at = None
            if prev is not None:
                row, x = prev
                cell = row[x]
                text = cell.data + char
                if unicodedata.combining(char):
                    text = unicodedata.normalize("NFC", text)
                row[x] = cell._replace(data=text)
                if char == ZWJ:
                    screen.join_at = (c.y, c.x)  # the next character joins this cell too
            continue
        screen.join_at = None
        if c.x == screen.columns:
            if mo.DECAWM in screen.mode:
                screen.dirty.add(c.y)
                screen.carriage_return()
                screen.linefeed()
            elif width > 0:
                c.x -= width
        # Only now, as pyte does: a row the wrap leaves behind is not made (an empty row in the buffer).
        line = screen.buffer[c.y]
        if mo.IRM in screen.mode and width > 0:
            screen.insert_characters(width)
        if width == 1:
            line[c.x] = c.attrs._replace(data=char)
        elif width == 2:
            line[c.x] = c.attrs._replace(data=char)
            if c.x + 1 < screen.columns:
                line[c.x + 1] = c.attrs._replace(data="")
        else:
            break  # unprintable: pyte ends the run here
        if width > 0:
            c.x = min(c.x + width, screen.columns)
    screen.dirty.add(screen.cursor.y)


def clusters(text: str) -> list[tuple[str, int]]:
    """A row's text as its cells hold it: (a character with all that joined it, the cells it takes)."""
    out: list[tuple[str, int]] = []
    joining = False
    for char in text:
        width = wcwidth(char)
        if out and (width == 0 or joining or (ord(char) in _REGIONAL and _lone_regional(out[-1][0]))):
            out[-1] = (out[-1][0] + char, out[-1][1])
        else:
            out.append((char, max(width, 1)))
        joining = char == ZWJ
    return out
