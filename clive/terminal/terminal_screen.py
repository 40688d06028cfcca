"""The screen a Terminal draws on: ``ScreenModel`` drawing as tmux does where pyte differs (the
fidelity suite, bench/fidelity.py, compares them cell by cell), and taking any CSI parameters as
xterm does."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pyte

from clive.terminal.screen import ScreenModel


def _tolerant(screen: type[ScreenModel], name: str) -> Callable[..., None] | None:
    """``screen.<name>`` taking any CSI parameters, as xterm does: extra ones are dropped, and a
    private (``CSI ? ...``) form the handler has no use for is ignored. None if it already does."""
    handler = getattr(screen, name)
    params = list(inspect.signature(handler).parameters.values())[1:]
    takes_private = any(p.name == "private" or p.kind is p.VAR_KEYWORD for p in params)
    if takes_private and any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    most = sum(1 for p in params if p.kind in positional and p.name != "private")

    def tolerant(self: ScreenModel, *values: int, private: bool = False) -> None:
        if not private:
            handler(self, *values[:most])
        elif takes_private:
            handler(self, *values[:most], private=True)

    tolerant.__name__ = name
    return tolerant


# Private modes handled here rather than by pyte: DECCOLM (132 columns) and DECSCNM (reverse video).
_DECCOLM, _DECSCNM = 3, 5


class TerminalScreen(ScreenModel):
    """The screen model drawing as tmux does where pyte differs (the fidelity suite, bench/fidelity.py,
    compares them cell by cell, vttest's conformance screens among its streams):

    * DECCOLM (``CSI ? 3 h/l``) clears the screen, homes the cursor and resets the margins, as a VT100
      and tmux do, but keeps the size: the PTY's is the host's to set.
    * DECSCNM (``CSI ? 5 h``, the whole screen in reverse video) is a mode of the display: no cell's
      attributes change (pyte inverts every cell, and text written after it).
    * The pending wrap, ``ESC E`` (NEL): see ScreenModel.
    * Insert and delete character (ICH, DCH) keep to the row: pyte leaves cells past its end.
    * Extra parameters and unknown private forms of other sequences are ignored (below)."""

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            if _DECCOLM in modes:
                self._column_mode()
            if _DECSCNM in modes:
                self._rows_made_now()
                self.mode.add(pyte.modes.DECSCNM)
            modes = tuple(m for m in modes if m not in (_DECCOLM, _DECSCNM))
        if modes:
            super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            if _DECCOLM in modes:
                self._column_mode()
            if _DECSCNM in modes:
                self._rows_made_now()
                self.mode.discard(pyte.modes.DECSCNM)
            modes = tuple(m for m in modes if m not in (_DECCOLM, _DECSCNM))
        if modes:
            super().reset_mode(*modes, **kwargs)

    def _rows_made_now(self) -> None:
        """Build the rows a flood left as text (``fastrows.PendingRows``) with the default cell in force
        when they were written: DECSCNM changes it for rows made after."""
        if self._pending is not None:
            self._pending.flush(self)

    def _column_mode(self) -> None:
        self.set_margins()
        self.erase_in_display(2)
        self.cursor_position()

    def insert_characters(self, count: int | None = None) -> None:
        self.dirty.add(self.cursor.y)
        count = count or 1
        line = self.buffer[self.cursor.y]
        for x in range(self.columns - 1, self.cursor.x - 1, -1):
            if x in line and x + count < self.columns:
                line[x + count] = line[x]
            else:
                line.pop(x + count, None)
            line.pop(x, None)
        _trim(line, self.columns)

    def delete_characters(self, count: int | None = None) -> None:
        self.dirty.add(self.cursor.y)
        count = count or 1
        line = self.buffer[self.cursor.y]
        for x in range(self.cursor.x, self.columns):
            if x + count < self.columns and x + count in line:
                line[x] = line[x + count]
            else:
                line.pop(x, None)
        _trim(line, self.columns)

    # pyte fails (UnboundLocalError) on an erase mode it does not know; xterm ignores it.
    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        if how in (0, 1, 2):
            super().erase_in_line(how, private)

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        if how in (2, 3):
            self.clears[self.alternate] += 1  # the agent sends a whole screen after a clear
        if how in (0, 1, 2, 3):
            super().erase_in_display(how, *args, **kwargs)


def _trim(line: Any, columns: int) -> None:
    for x in [x for x in line if x >= columns]:
        del line[x]


# pyte hands a handler every parameter of its sequence, and ``private=True`` for ``CSI ? ...``: most
# handlers take neither, and the TypeError would reset the parser and lose the rest of the chunk.
for _name in set(pyte.Stream.csi.values()) | {"move_up", "move_down", "scroll_up", "scroll_down",
                                                "repeat_character", "forward_tab", "back_tab"}:
    _handler = _tolerant(TerminalScreen, _name)
    if _handler is not None:
        setattr(TerminalScreen, _name, _handler)
