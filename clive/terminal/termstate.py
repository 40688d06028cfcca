"""What the program in a terminal is doing, as the kernel tells it: waiting for a line, keys or a secret,
running, blocked, exited, or the shell back at its prompt.

clive owns the PTY, so it can ask instead of guessing from the screen:

- ``tcgetpgrp`` on the master names the foreground process group: the shell, or the job it started.
- ``/proc/<pid>/task/<tid>/stat`` says whether each task of that group is on the CPU (``R``) or asleep.
- ``/proc/<pid>/task/<tid>/syscall`` says what a sleeping task is blocked in and with which arguments:
  ``read`` on a descriptor, or ``poll``/``select``/``epoll`` on a set of them (the sets are read from
  ``/proc/<pid>/mem`` and ``/proc/<pid>/fdinfo``). A task blocked reading one that is this terminal (its
  ``/dev/pts/N`` or ``/dev/tty``) is waiting for input. In a pipeline (``seq 1 100000 | less``) that is
  the member reading the terminal, whatever the others are doing.
- The termios flags say what kind of input: canonical with echo is a line, canonical without echo a
  secret, non-canonical single keys.
- Input already typed but not yet read does not count as waiting: ``poll`` on the slave side flushes the
  kernel's flip buffer and says whether input is pending (a line in canonical mode).
- A wait on the terminal with a timeout of at most SHORT_WAIT is a program waiting for the terminal's
  answer (vim as it exits), not for a person.

Without /proc (macOS) the state is guessed from termios and the screen, and says so (``exact=False``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import platform
import re
import select
import stat
import struct
import termios
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Activity(StrEnum):
    AT_PROMPT = "at_prompt"
    WAITING_LINE = "waiting_line"
    WAITING_KEYS = "waiting_keys"
    WAITING_SECRET = "waiting_secret"
    RUNNING = "running"
    BLOCKED = "blocked"
    EXITED = "exited"


# The agent's turn: someone waits for input, or nothing more will happen.
READY = frozenset(
    {Activity.AT_PROMPT, Activity.WAITING_LINE, Activity.WAITING_KEYS, Activity.WAITING_SECRET, Activity.EXITED}
)
# Someone waits for input: run() refuses while such a program holds the terminal.
WAITING_FOR_INPUT = frozenset({Activity.WAITING_LINE, Activity.WAITING_KEYS, Activity.WAITING_SECRET})
QUESTION_MAX = 200


@dataclass(frozen=True, slots=True)
class TerminalState:
    """What the terminal is doing: who is in the foreground and whether it waits for us."""

    activity: Activity
    foreground: str  # "shell", the program's name, or "" when nobody is
    pid: int | None = None
    cmdline: tuple[str, ...] = ()
    waiting_on: str | None = None  # the syscall or kernel function a waiting or blocked task sleeps in
    # Seconds in this activity, as far as it is cheap to know: since the prompt came back, since the
    # last output (waiting), since the foreground program started (running, blocked).
    since: float | None = None
    exact: bool = True  # False: guessed from the screen because /proc is unavailable
    question: str = ""  # the last non-empty screen line at or above the cursor
    nested: str = ""  # the program that started the shell in charge (ssh, su), when not the terminal's own

    @property
    def ready(self) -> bool:
        """True when it is the agent's turn: input is awaited, the prompt is back, or the program ended."""
        return self.activity in READY

    def describe(self) -> str:
        """A short observation line, e.g. ``[waiting for a line: "Overwrite? (yes/no)"]``."""
        q = f': "{self.question}"' if self.question else ""
        name = self.foreground or "?"
        match self.activity:
            case Activity.AT_PROMPT:
                text = "[at prompt]"
            case Activity.WAITING_LINE:
                text = f"[waiting for a line{q}]"
            case Activity.WAITING_SECRET:
                text = f"[password requested{q}]"
            case Activity.WAITING_KEYS:
                # A full-screen program's "question" is just the line under its cursor: the screen says more.
                text = f"[waiting for keys in {name}]"
            case Activity.RUNNING:
                text = f"[running: {name}{_seconds(self.since)}]"
            case Activity.BLOCKED:
                on = f" in {self.waiting_on}" if self.waiting_on else ""
                text = f"[blocked: {name}{on}{_seconds(self.since)}]"
            case _:
                text = "[exited]"
        if self.nested:
            text = text[:-1] + f", in the shell {self.nested} started]"
        return text if self.exact else text + " (guessed from the screen)"


def _seconds(since: float | None) -> str:
    if since is None:
        return ""
    return f", {since:.0f} s" if since >= 10 else f", {since:.1f} s"


@dataclass(frozen=True, slots=True)
class TerminalFacts:
    """What the Terminal itself knows, taken under its lock: the PTY, the prompt markers, the screen."""

    fd: int  # the PTY master
    leader: int  # the session leader: the shell, or the program the terminal was started with
    integrated: bool  # the shell marks its prompts (OSC 133), so at_prompt is exact
    at_prompt: bool
    ended: bool
    question: str  # the last non-empty line at or above the cursor
    alternate: bool
    output_age: float  # seconds since the last output
    prompt_age: float | None  # seconds since the last prompt came back
    nested: str = ""  # the program that started the shell in charge now (ssh, su), if not the terminal's own
    remote: bool = False  # that shell runs where this kernel cannot see (another host, a container)


def question_at_cursor(screen: Any, rows: int = 5) -> str:
    """The last non-empty line of a pyte screen at or up to ``rows - 1`` rows above the cursor."""
    y = min(screen.cursor.y, screen.lines - 1)
    for row in range(y, max(-1, y - rows), -1):
        text = _row_text(screen.buffer[row], screen.columns).strip()
        if text:
            return text[-QUESTION_MAX:]
    return ""


def _row_text(line: Any, columns: int) -> str:
    # Only the cells that were written: indexing every column of pyte's default dict is slow.
    out = []
    end = 0
    for x in sorted(x for x in line if x < columns):
        if x > end:
            out.append(" " * (x - end))
        out.append(line[x].data)
        end = x + 1
    return "".join(out)


# ---- syscalls -----------------------------------------------------------------------------------

# fmt: off
_SYSCALLS = {
    "x86_64": {
        "read": 0, "readv": 19, "pread64": 17, "write": 1, "poll": 7, "select": 23, "pselect6": 270,
        "ppoll": 271, "epoll_wait": 232, "epoll_pwait": 281, "epoll_pwait2": 441, "wait4": 61,
        "waitid": 247, "nanosleep": 35, "clock_nanosleep": 230, "futex": 202, "pause": 34,
        "rt_sigsuspend": 130,
    },
    "aarch64": {
        "read": 63, "readv": 65, "pread64": 67, "write": 64, "pselect6": 72, "ppoll": 73,
        "epoll_pwait": 22, "epoll_pwait2": 441, "wait4": 260, "waitid": 95, "nanosleep": 101,
        "clock_nanosleep": 115, "futex": 98, "rt_sigsuspend": 133,
    },
}
# fmt: on
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
_BY_NAME = _SYSCALLS.get(_MACHINE.get(platform.machine(), platform.machine()), {})
_BY_NUMBER = {number: name for name, number in _BY_NAME.items()}
_READS = {"read", "readv", "pread64"}  # the first argument is the descriptor
_POLLS = {"poll", "ppoll"}  # (struct pollfd *, nfds)
_SELECTS = {"select", "pselect6"}  # (nfds, fd_set *readfds)
_EPOLLS = {"epoll_wait", "epoll_pwait", "epoll_pwait2"}  # (epfd, ...)
_CHILD_WAITS = {"wait4", "waitid"}

# A wait on the terminal with a timeout this short is not a person's turn (see _kernel_state).
SHORT_WAIT = 0.25
_DEV_TTY = os.makedev(5, 0)  # /dev/tty: whichever terminal controls the process
_TIOCGPTPEER = 0x5441  # open the slave of a PTY master (Linux 4.13+), whatever /dev/pts is mounted as
_TIOCGPTN = 0x80045430
_POLLIN = 0x1
_PEER_FLAGS = os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class _Task:
    pid: int
    tid: int
    name: str
    state: str
    syscall: int | None  # None: on the CPU, or asleep outside a syscall
    args: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Proc:
    pid: int
    name: str
    state: str
    pgrp: int
    session: int
    threads: int
    start_ticks: int


# ---- the slave side of the PTY ------------------------------------------------------------------


def _open_peer(master: int) -> int | None:
    try:
        return fcntl.ioctl(master, _TIOCGPTPEER, _PEER_FLAGS)
    except OSError:
        pass
    try:
        number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))[0]
        return os.open(f"/dev/pts/{number}", _PEER_FLAGS)
    except OSError:
        return None


def _slave_facts(master: int) -> tuple[int | None, bool]:
    """The slave's device number, and whether input is pending on it (typed, not yet read)."""
    peer = _open_peer(master)
    if peer is None:
        return None, False
    try:
        rdev = os.fstat(peer).st_rdev
        # n_tty's poll flushes the flip buffer first, so bytes just written to the master count.
        poller = select.poll()
        poller.register(peer, select.POLLIN)
        pending = any(ev & select.POLLIN for _, ev in poller.poll(0))
        return rdev, pending
    except OSError:
        return None, False
    finally:
        os.close(peer)


def output_pending(master: int) -> bool:
    """True while the program has written output that nobody has read from the master yet."""
    poller = select.poll()
    poller.register(master, select.POLLIN)
    try:
        return any(ev & select.POLLIN for _, ev in poller.poll(0))
    except OSError:
        return False


# ---- /proc --------------------------------------------------------------------------------------


def _read(path: str, size: int = 4096) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _parse_stat(pid: int, raw: bytes) -> _Proc | None:
    text = raw.decode(errors="replace")
    close = text.rfind(")")
    fields = text[close + 2 :].split()
    try:
        name = text[text.find("(") + 1 : close]
        return _Proc(pid, name, fields[0], int(fields[2]), int(fields[3]), int(fields[17]), int(fields[19]))
    except (IndexError, ValueError):
        return None


# Per session: the newest pid when /proc was last scanned, and the pids of the session then. A process
# cannot join a session it was not born in, so the session's processes now are among those pids and
# the ones handed out since: re-reading only them keeps a check to a few reads instead of all of /proc.
_scans: dict[tuple[str, int], tuple[int, frozenset[int]]] = {}
_SCANS_KEPT = 64
_NEW_PIDS_PROBED = 64


def _group(proc: str, session: int, pgrp: int) -> list[_Proc] | None:
    """The live processes of process group ``pgrp`` in ``session``; None when /proc cannot be read."""
    newest = _newest_pid(proc)
    known = _scans.get((proc, session))
    candidates: Iterable[int]
    if newest is not None and known is not None and 0 <= newest - known[0] <= _NEW_PIDS_PROBED:
        candidates = sorted(known[1].union(range(known[0] + 1, newest + 1)))
    else:  # the first look, many new processes, or pids wrapped around: read them all
        try:
            candidates = [int(e) for e in os.listdir(proc) if e.isdigit()]
        except OSError:
            return None
    in_session = set()
    members = []
    for pid in candidates:
        raw = _read(f"{proc}/{pid}/stat", 1024)
        p = _parse_stat(pid, raw) if raw else None
        if p is None or p.session != session:
            continue
        in_session.add(pid)
        if p.pgrp == pgrp and p.state not in "ZX":
            members.append(p)
    if newest is not None:
        if len(_scans) >= _SCANS_KEPT:
            _scans.clear()
        _scans[(proc, session)] = (newest, frozenset(in_session))
    members.sort(key=lambda p: (p.pid != pgrp, p.pid))
    return members


def _newest_pid(proc: str) -> int | None:
    """The pid handed out last (the last field of /proc/loadavg)."""
    loadavg = _read(f"{proc}/loadavg", 256)
    try:
        return int(loadavg.split()[-1]) if loadavg else None
    except (IndexError, ValueError):
        return None


def _tasks(proc: str, p: _Proc) -> list[_Task]:
    if p.threads <= 1:
        tids = [p.pid]
    else:
        try:
            tids = sorted(int(t) for t in os.listdir(f"{proc}/{p.pid}/task"))[:64]
        except OSError:
            tids = [p.pid]
    tasks = []
    for tid in tids:
        base = f"{proc}/{p.pid}/task/{tid}"
        state = p.state
        if tid != p.pid:
            raw = _read(f"{base}/stat", 1024)
            t = _parse_stat(tid, raw) if raw else None
            if t is None or t.state in "ZX":
                continue
            state = t.state
        number: int | None = None
        args: tuple[int, ...] = ()
        if state != "R":
            line = (_read(f"{base}/syscall", 512) or b"").split()
            # "running", "-1 sp pc" (asleep outside a syscall) or "nr arg1..arg6 sp pc".
            if line and line[0] not in (b"running", b"-1"):
                try:
                    number = int(line[0])
                    args = tuple(int(a, 16) for a in line[1:7])
                except ValueError:
                    number = None
            elif line and line[0] == b"running":
                state = "R"
        tasks.append(_Task(p.pid, tid, p.name, state, number, args))
    return tasks


def _is_tty(proc: str, pid: int, fd: int, ttys: set[int]) -> bool:
    try:
        st = os.stat(f"{proc}/{pid}/fd/{fd}")
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev in ttys


def _tty_fds(proc: str, pid: int, ttys: set[int]) -> list[int]:
    try:
        fds = [int(n) for n in os.listdir(f"{proc}/{pid}/fd")]
    except OSError:
        return []
    return [fd for fd in fds if _is_tty(proc, pid, fd, ttys)]


def _read_mem(proc: str, pid: int, address: int, size: int) -> bytes | None:
    if size <= 0 or size > 1 << 16:
        return None
    try:
        fd = os.open(f"{proc}/{pid}/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, size, address)
        return data if len(data) == size else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _watched_fds(proc: str, task: _Task, name: str) -> list[int] | None:
    """The descriptors a task sleeping in poll/select/epoll waits to read; None when unreadable."""
    a = task.args
    if name in _POLLS:
        data = _read_mem(proc, task.pid, a[0], a[1] * 8)
        if data is None:
            return None
        fds = []
        for i in range(a[1]):
            fd, events, _ = struct.unpack_from("iHH", data, i * 8)
            if fd >= 0 and events & _POLLIN:
                fds.append(fd)
        return fds
    if name in _SELECTS:
        if not a[1]:
            return []
        nfds = min(a[0], 1 << 16)
        words = (nfds + 63) // 64
        data = _read_mem(proc, task.pid, a[1], words * 8)
        if data is None:
            return None
        bits = int.from_bytes(data, "little")
        return [fd for fd in range(nfds) if bits >> fd & 1]
    if name in _EPOLLS:
        info = _read(f"{proc}/{task.pid}/fdinfo/{a[0]}", 65536)
        if info is None:
            return None
        # "tfd:        0 events:       19 data: ..." for every watched descriptor.
        return [
            int(m.group(1))
            for m in re.finditer(rb"tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)", info)
            if int(m.group(2), 16) & _POLLIN
        ]
    return []


def _reads_tty(proc: str, task: _Task, ttys: set[int]) -> bool:
    """True when a sleeping task is blocked reading (or polling to read) this terminal."""
    if task.syscall is None or task.state not in "SD":
        return False
    name = _BY_NUMBER.get(task.syscall, "")
    if name in _READS:
        return _is_tty(proc, task.pid, task.args[0], ttys)
    if name in _POLLS or name in _SELECTS or name in _EPOLLS:
        fds = _watched_fds(proc, task, name)
        if fds is None:  # its memory is unreadable: count any open terminal descriptor
            return bool(_tty_fds(proc, task.pid, ttys))
        return any(_is_tty(proc, task.pid, fd, ttys) for fd in fds)
    return False


def _timeout(proc: str, task: _Task) -> float | None:
    """The timeout a task sleeping in poll/select/epoll asked for, in seconds; None: none (forever)."""
    name = _BY_NUMBER.get(task.syscall) if task.syscall is not None else None
    a = task.args
    if name in ("poll", "epoll_wait", "epoll_pwait"):
        ms = struct.unpack("i", struct.pack("I", (a[2] if name == "poll" else a[3]) & 0xFFFFFFFF))[0]
        return None if ms < 0 else ms / 1000
    pointer = {"ppoll": 2, "pselect6": 4, "select": 4, "epoll_pwait2": 3}.get(name or "")
    if pointer is None or not a[pointer]:
        return None
    data = _read_mem(proc, task.pid, a[pointer], 16)
    if data is None:
        return None
    seconds, fraction = struct.unpack("qq", data)  # timespec (ns), or timeval (us) for select
    return seconds + fraction / (1e6 if name == "select" else 1e9)


def _waiting_on(proc: str, task: _Task) -> str | None:
    if task.state in "tT":
        return "stopped"
    name = _BY_NUMBER.get(task.syscall) if task.syscall is not None else None
    if name:
        return name
    wchan = (_read(f"{proc}/{task.pid}/task/{task.tid}/wchan", 256) or b"").decode(errors="replace")
    if wchan and wchan != "0":
        return wchan
    return f"syscall {task.syscall}" if task.syscall is not None else None


def _cmdline(proc: str, pid: int) -> tuple[str, ...]:
    raw = _read(f"{proc}/{pid}/cmdline", 8192) or b""
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _running_for(proc: str, p: _Proc) -> float | None:
    uptime = _read(f"{proc}/uptime", 128)
    if not uptime:
        return None
    try:
        return max(0.0, float(uptime.split()[0]) - p.start_ticks / os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError):
        return None


def _input_kind(lflag: int | None) -> Activity:
    if lflag is None or not lflag & termios.ICANON:
        return Activity.WAITING_KEYS
    return Activity.WAITING_LINE if lflag & termios.ECHO else Activity.WAITING_SECRET


def _lflag(fd: int) -> int | None:
    try:
        return termios.tcgetattr(fd)[3]
    except (termios.error, OSError):
        return None


# ---- the state ----------------------------------------------------------------------------------


def read_state(facts: TerminalFacts, *, proc: str = "/proc") -> TerminalState:
    """Classify what the terminal is doing: from the kernel where /proc is readable, else the screen."""
    question = facts.question
    if facts.ended:
        return TerminalState(Activity.EXITED, "", question=question)
    if facts.integrated and facts.at_prompt:
        # OSC 133 says so exactly, on every platform.
        return TerminalState(Activity.AT_PROMPT, "shell", facts.leader, since=facts.prompt_age, question=question,
                             nested=facts.nested)
    if facts.remote:
        # Here the kernel sees only the client (ssh, docker) reading keys in raw mode, whatever runs on
        # the other side: the screen is all there is.
        if _SECRET_QUESTION.search(question):
            return TerminalState(Activity.WAITING_SECRET, facts.nested, exact=False, question=question,
                                 nested=facts.nested)
        return TerminalState(Activity.RUNNING, facts.nested, exact=False, question=question, nested=facts.nested)
    try:
        pgrp = os.tcgetpgrp(facts.fd)
    except OSError:
        return TerminalState(Activity.EXITED, "", question=question)
    state = _kernel_state(facts, pgrp, question, proc)
    state = state if state is not None else _screen_state(facts, pgrp, question)
    return dataclasses.replace(state, nested=facts.nested) if facts.nested else state


def _kernel_state(facts: TerminalFacts, pgrp: int, question: str, proc: str) -> TerminalState | None:
    # The pending-input check comes first: what /proc shows afterwards is after that input was read.
    slave, pending = _slave_facts(facts.fd)
    members = _group(proc, facts.leader, pgrp)
    if members is None:
        return None
    lflag = _lflag(facts.fd)

    def label(pid: int, name: str) -> str:
        return "shell" if facts.integrated and pid == facts.leader else name

    if not members:  # the job just ended; its parent has not taken the terminal back yet
        return TerminalState(Activity.BLOCKED, "", waiting_on="exit", question=question)
    ttys = {_DEV_TTY} | ({slave} if slave is not None else set())
    tasks = [task for p in members for task in _tasks(proc, p)]
    leader = next((p for p in members if p.pid == pgrp), members[0])
    for task in tasks:
        if _reads_tty(proc, task, ttys):
            if pending:
                break  # it is about to read what was typed: not waiting for us
            timeout = _timeout(proc, task)
            if timeout is not None and timeout <= SHORT_WAIT:
                # vim waits 100 ms for the terminal's answers as it exits, in canonical mode: that
                # is a program waiting for the terminal, not for a person.
                return TerminalState(
                    Activity.BLOCKED,
                    label(task.pid, task.name),
                    task.pid,
                    _cmdline(proc, task.pid),
                    waiting_on=f"the terminal, {timeout * 1000:.0f} ms timeout",
                    question=question,
                )
            return TerminalState(
                _input_kind(lflag),
                label(task.pid, task.name),
                task.pid,
                _cmdline(proc, task.pid),
                waiting_on=_BY_NUMBER.get(task.syscall) if task.syscall is not None else None,
                since=facts.output_age,
                question=question,
            )
    busy = pending or any(task.state == "R" for task in tasks)
    base = dict(
        foreground=label(leader.pid, leader.name),
        pid=leader.pid,
        cmdline=_cmdline(proc, leader.pid),
        since=_running_for(proc, leader),
        question=question,
    )
    if busy:
        return TerminalState(Activity.RUNNING, **base)
    # Name the wait that says most: a parent waiting for its child says less than the child's own.
    sleeper = next(
        (t for t in tasks if (t.syscall is None or _BY_NUMBER.get(t.syscall) not in _CHILD_WAITS)),
        next((t for t in tasks if t.pid == leader.pid), tasks[0] if tasks else None),
    )
    waiting_on = _waiting_on(proc, sleeper) if sleeper else None
    return TerminalState(Activity.BLOCKED, waiting_on=waiting_on, **base)


# Without /proc: a screen quiet this long whose last line looks like a question is taken as asking.
FALLBACK_QUIET = 0.3
_SECRET_QUESTION = re.compile(r"(password|passphrase|passcode|\bpin)\b[^\n]*:\s*$", re.IGNORECASE)
_PROMPTISH = re.compile(r"(\[[yn]/[yn]\]|\(yes/no\)|password|passphrase|[?:>\]$#])\s*$", re.IGNORECASE)


def _screen_state(facts: TerminalFacts, pgrp: int, question: str) -> TerminalState:
    lflag = _lflag(facts.fd)
    name = "shell" if facts.integrated and pgrp == facts.leader else ""
    guess = dict(foreground=name, pid=pgrp, exact=False, question=question)
    quiet = facts.output_age >= FALLBACK_QUIET
    if lflag is not None and lflag & termios.ICANON and not lflag & termios.ECHO:
        return TerminalState(Activity.WAITING_SECRET, since=facts.output_age, **guess)
    if quiet and (facts.alternate or (lflag is not None and not lflag & termios.ICANON)):
        return TerminalState(Activity.WAITING_KEYS, since=facts.output_age, **guess)
    if quiet and _PROMPTISH.search(question):
        return TerminalState(_input_kind(lflag), since=facts.output_age, **guess)
    if not quiet:
        return TerminalState(Activity.RUNNING, **guess)
    return TerminalState(Activity.BLOCKED, **guess)
