"""Cursor movement, scrolling and character sets as xterm and tmux do them where pyte differs or
has nothing, for the screen model (``ScreenModel`` mixes this in; the fidelity suite,
bench/fidelity.py, compares the result with tmux cell by cell)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyte

# DEC special graphics as xterm and tmux draw them. pyte's map is the Linux console's, which also
# turns + , - . 0 into arrows and a block and shows h as a shaded square (xterm: the newline symbol).
DEC_SPECIAL_GRAPHICS = "".join(
    {"+": "+", ",": ",", "-": "-", ".": ".", "0": "0", "h": "\u2424"}.get(chr(i), c)
    for i, c in enumerate(pyte.charsets.VT100_MAP)
)



class XtermMoves:
    """The moves pyte gets wrong or lacks; mixed into a ``pyte.Screen``."""

    if TYPE_CHECKING:  # what pyte.Screen provides
        cursor: pyte.screens.Cursor
        columns: int
        lines: int
        margins: pyte.screens.Margins | None
        tabstops: set[int]
        buffer: dict
        g0_charset: str
        g1_charset: str

        def cursor_up(self, count: int | None = None) -> None: ...
        def cursor_down(self, count: int | None = None) -> None: ...
        def ensure_hbounds(self) -> None: ...
        def carriage_return(self) -> None: ...
        def index(self) -> None: ...
        def reverse_index(self) -> None: ...
        def draw(self, data: str) -> None: ...

    # The pending wrap (the cursor just past the last column, pyte's ``x == columns``) as tmux keeps it:
    # CUU and CUD end it (the parser sends them to move_up and move_down; pyte's index and reverse
    # index move with cursor_up and cursor_down and keep it), a backspace or CUB counts back from
    # just past the last column (pyte: from the last), and a tab changes nothing there.
    def move_up(self, count: int | None = None) -> None:
        """CUU."""
        self.cursor.x = min(self.cursor.x, self.columns - 1)
        self.cursor_up(count)

    def move_down(self, count: int | None = None) -> None:
        """CUD and VPR."""
        self.cursor.x = min(self.cursor.x, self.columns - 1)
        self.cursor_down(count)

    def cursor_back(self, count: int | None = None) -> None:
        self.cursor.x -= count or 1
        self.ensure_hbounds()

    def tab(self) -> None:
        if self.cursor.x < self.columns:
            super().tab()

    def define_charset(self, code: str, mode: str) -> None:
        if code == "0":
            if mode == "(":
                self.g0_charset = DEC_SPECIAL_GRAPHICS
            elif mode == ")":
                self.g1_charset = DEC_SPECIAL_GRAPHICS
            return
        super().define_charset(code, mode)

    def next_line(self) -> None:
        """``ESC E`` (NEL): a carriage return and a line feed (pyte's is a line feed)."""
        self.carriage_return()
        self.index()

    def scroll_up(self, count: int | None = None) -> None:
        """SU (``CSI n S``): the scroll region moves up, the cursor stays."""
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        x, y = self.cursor.x, self.cursor.y
        self.cursor.y = bottom
        for _ in range(min(count or 1, bottom - top + 1)):
            self.index()
        self.cursor.x, self.cursor.y = x, y

    def scroll_down(self, count: int | None = None) -> None:
        """SD (``CSI n T``): the scroll region moves down, the cursor stays."""
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        x, y = self.cursor.x, self.cursor.y
        self.cursor.y = top
        for _ in range(min(count or 1, bottom - top + 1)):
            self.reverse_index()
        self.cursor.x, self.cursor.y = x, y

    def repeat_character(self, count: int | None = None) -> None:
        """REP (``CSI n b``): the character just drawn, again (ncurses uses it under xterm-256color)."""
        x = min(self.cursor.x, self.columns) - 1
        if x >= 0 and self.buffer[self.cursor.y][x].data:
            # To the end of the line at most, as tmux does: it never wraps.
            self.draw(self.buffer[self.cursor.y][x].data * min(count or 1, self.columns - self.cursor.x))

    def forward_tab(self, count: int | None = None) -> None:
        """CHT (``CSI n I``)."""
        for _ in range(count or 1):
            self.tab()

    def back_tab(self, count: int | None = None) -> None:
        """CBT (``CSI n Z``): to the previous tab stop, or the first column."""
        for _ in range(count or 1):
            self.cursor.x = max([t for t in self.tabstops if t < min(self.cursor.x, self.columns)] or [0])

