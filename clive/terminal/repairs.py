"""What a program that exited can leave behind at the prompt, and the fix: screen modes (the
alternate screen, a hidden cursor, insert mode, no wrap, a scroll region) and terminal modes that
bash hands on to the next command."""

from __future__ import annotations

import termios
from typing import Any

import pyte

from clive.terminal.screen import ScreenModel

# Terminal modes a program may leave switched off that show at the prompt, as (name, index in
# tcgetattr's list, flag). Readline and ZLE switch echo and canonical mode off while a line is edited
# and back to what the last command left to run the next, so those cannot be seen there.
PROMPT_MODES = (("isig", 3, termios.ISIG), ("opost", 1, termios.OPOST))


def screen_repair(screen: ScreenModel) -> tuple[str, list[str]]:
    """Escape sequences that put back what a program left on at the prompt, and what they fix."""
    fixes = []
    if screen.alternate:
        fixes.append(("\x1b[?1049l", "left the alternate screen"))
    if not screen.cursor_visible:
        fixes.append(("\x1b[?25h", "showed the cursor"))
    if pyte.modes.IRM in screen.mode:
        fixes.append(("\x1b[4l", "insert mode off"))
    if pyte.modes.DECAWM not in screen.mode:
        fixes.append(("\x1b[?7h", "line wrap on"))
    if screen.margins is not None and tuple(screen.margins) != (0, screen.lines - 1):
        # DECSTBM homes the cursor: save and restore it around the reset.
        fixes.append(("\x1b7\x1b[r\x1b8", "full-screen scroll region"))
    return "".join(code for code, _ in fixes), [what for _, what in fixes]


def lost_modes(modes: list[Any], baseline: list[Any] | None) -> list[str]:
    """The PROMPT_MODES on in ``baseline`` (the shell's modes at its start) and off in ``modes``."""
    if not baseline:
        return []
    return [name for name, i, flag in PROMPT_MODES if baseline[i] & flag and not modes[i] & flag]
