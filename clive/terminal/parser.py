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
    """``pyte.Stream`` honouring G0/G1 designation and SO/SI, as xterm does in UTF-8 mode; ``ESC E``
    (NEL) is the screen's ``next_line`` (a carriage return and a line feed; pyte's is a line feed),
    and cursor up and down go to ``move_up`` and ``move_down`` (see ScreenModel)."""

    escape = {**pyte.Stream.escape, "E": "next_line"}
    # CUU and CUD end a pending wrap (the screen's move_up, move_down); pyte's index does not.
    # And what pyte does not know: SU, SD, REP, CHT, CBT and HPA.
    csi = {**pyte.Stream.csi, "A": "move_up", "B": "move_down", "S": "scroll_up", "T": "scroll_down",
           "b": "repeat_character", "I": "forward_tab", "Z": "back_tab", "`": "cursor_to_column"}

    def __init__(self, screen: pyte.Screen | None = None, strict: bool = True) -> None:
        super().__init__(screen, strict)
        # In pyte.Stream (text, not bytes) this flag only decides whether the charset sequences are
        # dropped: off, they reach the screen's define_charset, shift_in and shift_out.
        self.use_utf8 = False

    def _parser_fsm(self):  # type: ignore[no-untyped-def]  # pyte's generator protocol
        """pyte's parser, with ``ESC * X``, ``ESC + X`` (G2, G3) and ``ESC - . / X`` (96-character
        sets) read whole: pyte knows only G0 and G1 and draws the set's letter as text. Nothing here
        invokes G2 or G3 (no SS2, SS3 or locking shifts beyond SO/SI), so the designation is dropped."""
        inner = pyte.Stream._parser_fsm(self)
        state = next(inner)
        escaped = False
        while True:
            char = yield state
            if escaped and char in "*+-./":
                inner.send("\x00")  # a final that means nothing: pyte is back at ground
                yield None  # the set's code
                state, escaped = True, False
                continue
            state = inner.send(char)
            escaped = char == "\x1b" and state is None

    def select_other_charset(self, code: str) -> None:
        """``ESC % @`` / ``ESC % G``: the bytes are UTF-8 already, and designation stays honoured."""
