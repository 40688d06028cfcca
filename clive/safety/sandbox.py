"""Run a terminal's shell under bubblewrap: the file system read-only but for the workdir and a
scratch folder, no network, no capabilities, its own process tree.

What the sandbox does and does not do:

* ``/`` is bound read-only (with every mount below it); the workdir and the scratch folder are bound
  read-write; ``/tmp`` and ``/run`` are fresh tmpfs (so the host's sockets there are out of reach);
  ``/dev`` is a minimal one (null, zero, random, tty, a private devpts); ``/proc`` is the sandbox's
  own, with ``/proc/sys`` read-only.
* ``--cap-drop ALL``: bubblewrap started by root keeps every capability unless told otherwise, and
  with ``CAP_SYS_ADMIN`` a sandboxed program could simply remount ``/`` read-write.
* ``--unshare-net``: only a loopback interface of its own; nothing on the host (not even
  127.0.0.1) or beyond can be reached. ``--unshare-pid`` and ``--unshare-ipc``: it sees and signals
  only its own processes, and when the sandbox's init dies the kernel kills every one of them.
* ``--die-with-parent``: bubblewrap is killed when the thread that started it ends (the kernel's
  parent-death signal follows the creating thread), so create a sandboxed Terminal on a thread that
  outlives it.
* Not covered: the uid stays the same (run as root, a program can leave a setuid-root file in the
  workdir for someone outside to run); host sockets outside ``/tmp`` and ``/run`` can still be
  connected to; CPU time and disk space are not bounded (memory and processes are: clive.safety.limits).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import termios
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class SandboxError(Exception):
    """The sandbox cannot be set up here (no bubblewrap, a folder that does not exist)."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Where a sandboxed shell may write: ``workdir`` and ``scratch`` (plus private tmpfs)."""

    workdir: Path
    scratch: Path
    writable: tuple[Path, ...] = field(default=())  # more folders to bind read-write
    network: bool = False

    def argv(
        self, command: Sequence[str], *, cwd: Path, readable: Sequence[Path] = (), own_session: bool = False
    ) -> list[str]:
        """The bubblewrap command line that runs ``command`` in the sandbox, starting in ``cwd``.

        ``readable`` are host paths hidden by the sandbox's tmpfs (e.g. the shell's rc file under
        /tmp) that must still be visible inside, read-only. With ``own_session``, ``command`` leads
        its own session with the terminal as its controlling terminal, as a shell started straight
        in the PTY would (the caller must run ``detach_terminal`` in the child before exec)."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxError("the sandbox needs bubblewrap (bwrap); install the 'bubblewrap' package")
        setsid = shutil.which("setsid")
        if own_session and setsid is None:
            raise SandboxError("the sandbox needs setsid (util-linux)")
        folders = [Path(os.path.realpath(p)) for p in (self.workdir, self.scratch, *self.writable)]
        for folder in folders:
            if not folder.is_dir():
                raise SandboxError(f"sandbox folder does not exist: {folder}")
        args = [
            bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--ro-bind", "/proc/sys", "/proc/sys",
            "--tmpfs", "/tmp",
            "--tmpfs", "/run",
        ]
        for path in [*readable, *_tools_under_tmpfs()]:
            real = os.path.realpath(path)
            args += ["--ro-bind", real, real]
        for folder in folders:
            args += ["--bind", str(folder), str(folder)]
        if not self.network:
            args.append("--unshare-net")
        args += [
            "--unshare-pid",
            "--unshare-ipc",
            "--die-with-parent",
            "--cap-drop", "ALL",
            "--chdir", os.path.realpath(cwd),
            "--",
        ]
        if own_session:
            args += [str(setsid), "--ctty"]
        return args + list(command)


def _tools_under_tmpfs() -> list[str]:
    """PATH folders and clive's own Python that live under /tmp or /run, which the sandbox hides
    behind its private tmpfs: they stay visible, read-only, so the shell's PATH still works."""
    hidden = ("/tmp/", "/run/")
    candidates = [*os.environ.get("PATH", "").split(os.pathsep), sys.prefix]
    found = []
    for path in candidates:
        real = os.path.realpath(path) if path else ""
        if real.startswith(hidden) and os.path.isdir(real) and real not in found:
            found.append(real)
    return found


def detach_terminal() -> None:
    """Give up the controlling terminal (in the child, between fork and exec).

    pexpect makes the child (here bubblewrap) the leader of a session that owns the PTY; the shell
    inside is then one more member, and the session's id is not the shell's. Once the PTY is free,
    ``setsid --ctty`` makes the shell the leader of its own session that owns it, as without a
    sandbox. The kernel sends the leader SIGHUP as it lets go: ignore it for that moment."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        fcntl.ioctl(0, termios.TIOCNOTTY)
    finally:
        signal.signal(signal.SIGHUP, previous)
