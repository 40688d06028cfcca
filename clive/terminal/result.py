"""What ``Terminal.run()`` returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What ``run()`` learned: the exit code the shell reported, the command's text and its duration."""

    command: str
    exit_code: int
    output: str
    duration: float
    truncated: bool = False
    # The command started a shell inside the terminal (ssh, su, ...): the launcher's name. Its exit
    # code comes when that shell exits; until then run() runs commands in it.
    entered: str | None = None
    # How the end was seen: the shell's marker, or (a nested shell without integration) the screen.
    completion: str = "marker"
