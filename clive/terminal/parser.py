"""pyte's parser as a UTF-8 terminal (xterm, VTE, tmux) reads its input.

pyte ignores character-set designation (``ESC ( 0``, ``ESC ) 0``) and the shifts SO/SI in UTF-8
mode. Real terminals honour them: ncurses draws its boxes under ``TERM=xterm-256color`` in the DEC
special graphics set (``smacs=\\E(0``), so ``lqqqk`` is what it sends and ``┌───┐`` what a person
sees. ``ESC % G`` / ``ESC % @`` (select UTF-8 or not) change nothing here: the input is decoded as
UTF-8 before it is parsed, whatever a program asks.
"""

from __future__ import annotations

import pyte


class TerminalStream(pyte.Stream):
    """``pyte.Stream`` honouring G0/G1 designation and SO/SI, as xterm does in UTF-8 mode."""

    def __init__(self, screen: pyte.Screen | None = None, strict: bool = True) -> None:
        super().__init__(screen, strict)
        # In pyte.Stream (text, not bytes) this flag only decides whether the charset sequences are
        # dropped: off, they reach the screen's define_charset, shift_in and shift_out.
        self.use_utf8 = False

    def select_other_charset(self, code: str) -> None:
        """``ESC % @`` / ``ESC % G``: the bytes are UTF-8 already, and designation stays honoured."""
