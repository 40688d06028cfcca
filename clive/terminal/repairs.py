"""What a program that exited can leave behind at the prompt, and the fix: screen modes (the
alternate screen, a hidden cursor, insert mode, no wrap, a scroll region) and terminal modes that
bash hands on to the next command."""

from __future__ import annotations

import termios
from typing import TYPE_CHECKING, Any

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


class Repairs:
    """The part of ``Terminal`` that puts right what a program left behind, before the next command.
    Mixed into ``Terminal``: it uses its lock, screen, markers and PTY."""

    if TYPE_CHECKING:  # what Terminal provides
        import threading

        from clive.terminal.markers import ShellMarkers
        from clive.terminal.nesting import NestedShell
        from clive.terminal.result import CommandResult

        _cond: threading.Condition
        _screen: ScreenModel
        _markers: ShellMarkers
        _fd: int
        _tty_baseline: list | None
        repairs: list[str]

        @property
        def nested(self) -> NestedShell | None: ...
        def _ingest(self, data: bytes, *, from_pty: bool) -> None: ...
        def _run_line(self, command: str, timeout: float) -> CommandResult: ...

    def _repair(self) -> None:
        """Undo what a program that exited left behind: screen modes, then terminal modes."""
        with self._cond:
            screen_fix, fixed = screen_repair(self._screen)
        if screen_fix:
            # Fed to the screen as output (and so recorded in the cast), as a terminal would get it.
            self._ingest(screen_fix.encode(), from_pty=False)
            self.repairs.append("screen: " + ", ".join(fixed))
        try:
            modes = termios.tcgetattr(self._fd)
        except (OSError, termios.error):
            return
        if self.nested is not None:
            return  # the modes here are the nested shell's or its client's (ssh keeps raw mode): not ours
        bad = lost_modes(modes, self._tty_baseline)
        if self._markers.echo_lost:
            bad.append("echo")
        if bad:
            # bash keeps the modes the last command left and gives them to the next one; `stty sane`
            # run by the shell puts its saved modes right. (zsh undoes them itself: ttyctl -f.)
            result = self._run_line("stty sane", timeout=10.0)
            self._markers.echo_lost = False
            outcome = "" if result.exit_code == 0 else f" (failed: exit code {result.exit_code})"
            self.repairs.append(f"terminal modes: stty sane, {', '.join(bad)} had been switched off{outcome}")
