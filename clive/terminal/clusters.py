"""Grapheme clusters in the text FastStream's lazy path cuts into rows: one character a cell.

The lazy path measures and cuts a line as a string with one character for each cell (a two-cell
character followed by ``STUB``). A cluster that ``graphemes.draw`` keeps in one cell, an emoji ZWJ
sequence, a flag, a letter with its accents, is several characters: here it becomes one token, a
lone surrogate (which no decoded text holds: the terminal decodes with errors replaced), standing
for the text that cell holds. Tokens are made the first time a cluster is seen and kept for the
process (``CAPACITY`` of them: past that, new clusters go the slow way), so a token in any row
made earlier still reads back.
"""

from __future__ import annotations

import re
import unicodedata

from wcwidth import wcwidth

FIRST = 0xD800
CAPACITY = 0x800  # the lone surrogates, D800-DFFF
ZWJ = "\u200d"
_ANY_TOKEN = re.compile("[\ud800-\udfff]")

# A cluster's characters -> its token, followed by STUB when its first character takes two cells.
TOKENS: dict[str, str] = {}
# ord(token) -> the text its cell holds, as a ``str.translate`` table.
TEXT: dict[int, str] = {}


def cell_text(cluster: str) -> str:
    """The text ``graphemes.draw`` leaves in the cell of ``cluster``: each character joins the cell's
    text, which is NFC-normalised after a combining mark."""
    text = cluster[0]
    for char in cluster[1:]:
        text += char
        if unicodedata.combining(char):
            text = unicodedata.normalize("NFC", text)
    return text


def token(cluster: str, stub: str) -> str | None:
    """The cells of ``cluster`` (two characters or more) as the lazy path cuts them; None when every
    token is taken."""
    found = TOKENS.get(cluster)
    if found is not None:
        return found
    if len(TEXT) >= CAPACITY:
        return None
    code = FIRST + len(TEXT)
    TEXT[code] = cell_text(cluster)
    found = TOKENS[cluster] = chr(code) + (stub if wcwidth(cluster[0]) == 2 else "")
    return found


def text_of(cells: str) -> str:
    """``cells`` with each token read back as its cluster's text."""
    if not TEXT or cells.isascii() or _ANY_TOKEN.search(cells) is None:
        return cells
    return cells.translate(TEXT)


def has_tokens(cells: str) -> bool:
    return bool(TEXT) and not cells.isascii() and _ANY_TOKEN.search(cells) is not None
