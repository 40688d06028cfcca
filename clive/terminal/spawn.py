"""Starting a Terminal's program: its command line resolved on PATH, a small known environment, and the
process in a new PTY under its limits (cgroup, rlimits, the watchdog), detached for a sandbox."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pexpect

from clive.safety.limits import Cgroup, Enforcement, Limits, Watchdog, apply_in_child, child_setup
from clive.safety.sandbox import detach_terminal
from clive.terminal import shell
from clive.terminal.errors import TerminalError


@dataclass(frozen=True, slots=True)
class Started:
    """A program running in its PTY: pexpect's handle, its cgroup (None where none could be made) and
    what is really enforced."""

    proc: pexpect.spawn
    cgroup: Cgroup | None
    enforcement: Enforcement


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A small, reproducible environment: the user's identity and PATH, a known TERM and locale."""
    env = {
        name: os.environ[name]
        for name in ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ")
        if name in os.environ
    }
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", str(Path.home()))
    env.update({"TERM": "xterm-256color", "LANG": "C.UTF-8", "COLORTERM": "truecolor"})
    if extra:
        env.update(extra)
    return env


def program_argv(command: str | Sequence[str] | None, env: dict[str, str] | None) -> list[str]:
    """The command line to start, its program found on PATH (the user's shell when ``command`` is None)."""
    if command is None:
        argv = [shell.default_shell()]
    elif isinstance(command, str):
        argv = shlex.split(command)
    else:
        argv = list(command)
    if not argv:
        raise TerminalError("empty command")
    program = shutil.which(argv[0], path=(env or {}).get("PATH") or os.environ.get("PATH"))
    if program is None:
        raise TerminalError(f"command not found: {argv[0]}")
    return [program, *argv[1:]]


def start(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    cols: int,
    rows: int,
    limits: Limits | None,
    detach: bool,
) -> Started:
    """Start ``argv`` in a new PTY under ``limits`` (default ``Limits()``), its session watched by the
    watchdog; ``detach``: the program leaves the PTY as its controlling terminal (bubblewrap's shell
    takes it again inside the sandbox)."""
    limits = limits if limits is not None else Limits()
    try:
        Watchdog.start()
    except OSError as exc:
        raise TerminalError(f"cannot start the watchdog ({sys.executable}): {exc}") from None
    cgroup = Cgroup.create(limits)
    enforcement, rlimits = child_setup(limits, cgroup)

    def before_exec() -> None:
        apply_in_child(cgroup, rlimits)
        if detach:
            detach_terminal()

    try:
        proc = pexpect.spawn(
            argv[0], argv[1:], cwd=str(cwd), env=env, dimensions=(rows, cols), echo=True, preexec_fn=before_exec
        )
    except (pexpect.ExceptionPexpect, OSError) as exc:
        if cgroup is not None:
            cgroup.remove()
        raise TerminalError(f"cannot start {argv[0]}: {exc}") from None
    if cgroup is not None and not cgroup.holds(proc.pid):
        cgroup.kill()
        cgroup.remove()
        cgroup = None
        enforcement, _ = child_setup(limits, None)
    Watchdog.watch(proc.pid)
    proc.delaybeforesend = None
    # Closing ends the whole session first (procs.end_session), so pexpect's sleeps are waste.
    proc.ptyproc.delayafterclose = 0
    proc.ptyproc.delayafterterminate = 0.05
    return Started(proc, cgroup, enforcement)
