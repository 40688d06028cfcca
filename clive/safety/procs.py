"""Processes of a terminal's session, read from /proc, and ending them all."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that clive uses."""

    pid: int
    name: str
    state: str
    ppid: int
    pgrp: int
    session: int


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # The name is in parentheses and may itself contain spaces or parentheses.
    open_paren, close_paren = raw.find("("), raw.rfind(")")
    fields = raw[close_paren + 2 :].split()
    try:
        return ProcStat(
            pid=pid,
            name=raw[open_paren + 1 : close_paren],
            state=fields[0],
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
        )
    except (IndexError, ValueError):
        return None


def session_members(sid: int) -> list[ProcStat]:
    """Every live process whose session id is ``sid`` (zombies excluded)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = read_stat(int(entry))
        if stat is not None and stat.session == sid and stat.state != "Z":
            members.append(stat)
    return members


def end_session(sid: int, grace: float = 0.3) -> None:
    """SIGHUP then SIGKILL every process of the session; the session leader is reaped by its parent."""
    members = session_members(sid)
    for proc in members:
        _kill(proc.pid, signal.SIGHUP)
        _kill(proc.pid, signal.SIGCONT)  # a stopped job must wake to see the hangup
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not session_members(sid):
            return
        time.sleep(0.01)
    for proc in session_members(sid):
        _kill(proc.pid, signal.SIGKILL)


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
