"""Bounds on what a terminal's programs may take, and a cgroup that holds every process they start.

Three mechanisms, used where they work:

* **A cgroup** (v2, or v1 ``pids`` and ``memory`` hierarchies), entered by the shell before it
  execs. It bounds the whole tree (``pids.max`` stops a fork bomb, the memory limit stops a memory
  hog with the OOM killer), binds root too, and holds every descendant, even one that called
  ``setsid`` to leave the terminal's session, so that closing the terminal kills them all. It needs
  a writable cgroup file system (root, or a delegated subtree); without one, ``Cgroup.create``
  returns None and the terminal falls back to its session (``procs.end_session``).
* **Resource limits** (setrlimit) on the shell, inherited by everything it starts: no core dumps;
  ``RLIMIT_NPROC`` (per user, and Linux does not apply it to root); ``RLIMIT_AS`` only when asked
  for (``Limits.address_space``), because CUDA, JITs and sanitizers reserve far more address space
  than they use.
* **A watchdog**: one small process per clive process, outside every terminal's session, waiting
  on a pipe only clive holds. When clive ends without closing a terminal (even by SIGKILL) the pipe
  closes, and the watchdog kills what is left in clive's cgroups and sessions, then removes the
  cgroups.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from clive.safety import procs

_CGROUP_NAMES = itertools.count()


def physical_memory() -> int:
    """Bytes of RAM on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True, slots=True)
class Limits:
    """What a terminal's programs may take, all together; None means unbounded."""

    # Tasks (processes and threads) in the terminal's cgroup; thread pools grow with the cores.
    processes: int | None = field(default_factory=lambda: max(4096, 32 * (os.cpu_count() or 1)))
    memory: int | None = field(default_factory=lambda: physical_memory() // 2)  # bytes, whole tree
    address_space: int | None = None  # bytes of virtual memory per process (RLIMIT_AS)
    core_dumps: bool = False

    @classmethod
    def unbounded(cls) -> Limits:
        return cls(processes=None, memory=None, address_space=None, core_dumps=True)


@dataclass(frozen=True, slots=True)
class Enforcement:
    """How each limit is really enforced on this machine (None: it is not)."""

    processes: str | None
    memory: str | None
    address_space: str | None
    every_process: str  # what catches a child that left the terminal's session (setsid)

    def describe(self) -> str:
        parts = [
            f"processes: {self.processes or 'not enforced'}",
            f"memory: {self.memory or 'not enforced'}",
        ]
        if self.address_space:
            parts.append(f"address space: {self.address_space}")
        parts.append(f"cleanup: {self.every_process}")
        return "; ".join(parts)


# ---- cgroups ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hierarchy:
    mount: Path
    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: the controllers mounted there; v2: empty
    own: Path  # this process's cgroup in it


def _hierarchies() -> list[_Hierarchy]:
    """The cgroup hierarchies this process is in, with their mount points."""
    try:
        own_lines = Path("/proc/self/cgroup").read_text().splitlines()
        mount_lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    paths: dict[str, str] = {}  # "" for v2, else the sorted controller list
    for line in own_lines:
        _, controllers, path = line.split(":", 2)
        paths[",".join(sorted(c for c in controllers.split(",") if c))] = path
    found = []
    for line in mount_lines:
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3 or extra[0] not in ("cgroup", "cgroup2"):
            continue
        root, mount = fields[3], Path(fields[4])
        if extra[0] == "cgroup2":
            key, controllers = "", frozenset[str]()
        else:
            controllers = frozenset(o for o in extra[2].split(",") if o not in ("rw", "ro") and "=" not in o)
            key = ",".join(sorted(controllers))
        path = paths.get(key)
        if path is None or not (path + "/").startswith(root.rstrip("/") + "/"):
            continue  # a mount of some other part of the tree
        relative = path[len(root.rstrip("/")) :].lstrip("/")
        found.append(_Hierarchy(mount, 2 if extra[0] == "cgroup2" else 1, controllers, mount / relative))
    return found


def usable_cpus() -> float:
    """How many CPUs this process may keep busy: those it may run on, and below that any CPU quota
    its cgroups set (as a container's --cpus does), the tightest on the way to the root."""
    cpus = float(len(os.sched_getaffinity(0)))
    for h in _hierarchies():
        if h.version == 2 or "cpu" in h.controllers:
            quota = _cpu_quota(h.own, h.mount, h.version)
            if quota is not None:
                cpus = min(cpus, quota)
    return cpus


def _cpu_quota(own: Path, mount: Path, version: int) -> float | None:
    """The tightest CPU quota, in CPUs, set in ``own`` or a cgroup above it up to ``mount``; None if none
    (cgroup v2 ``cpu.max``: "max 100000" or "150000 100000"; v1 ``cpu.cfs_quota_us``, -1 for none,
    over ``cpu.cfs_period_us``)."""
    tightest = None
    path = own
    while True:
        try:
            if version == 2:
                quota, _, period = (path / "cpu.max").read_text().strip().partition(" ")
                share = None if quota == "max" else int(quota) / int(period)
            else:
                quota_us = int((path / "cpu.cfs_quota_us").read_text())
                share = None if quota_us < 0 else quota_us / int((path / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError, ZeroDivisionError):
            share = None
        if share is not None and share > 0 and (tightest is None or share < tightest):
            tightest = share
        if path == mount or mount not in path.parents:
            return tightest
        path = path.parent


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _mkdir(parent: Path, name: str) -> Path | None:
    try:
        (parent / name).mkdir()
    except OSError:
        return None
    return parent / name


def _rmdir(path: Path, timeout: float = 1.0) -> None:
    # rmdir fails (EBUSY) until the last task has left; killed tasks leave within milliseconds.
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)


def _v2_parent(hierarchy: _Hierarchy, wanted: set[str]) -> Path:
    """Where a v2 child cgroup gets the most of ``wanted`` controllers: our own cgroup or the root."""

    def enabled(path: Path) -> set[str]:
        try:
            return set((path / "cgroup.subtree_control").read_text().split())
        except OSError:
            return set()

    best, best_count = hierarchy.own, -1
    for parent in dict.fromkeys([hierarchy.own, hierarchy.mount]):
        for controller in wanted - enabled(parent):
            # Refused (EBUSY) when processes live in ``parent`` itself: v2 has no internal processes.
            _write(parent / "cgroup.subtree_control", f"+{controller}")
        count = len(wanted & enabled(parent))
        if count > best_count:
            best, best_count = parent, count
    return best


class Cgroup:
    """One cgroup per hierarchy (a v2 one and/or v1 ``pids`` and ``memory`` ones) for one terminal."""

    def __init__(self, dirs: list[Path], processes: str | None, memory: str | None, kill_file: Path | None):
        self.dirs = dirs
        self.processes = processes  # how the process limit is enforced, if it is
        self.memory = memory
        self._kill_file = kill_file

    @classmethod
    def create(cls, limits: Limits) -> Cgroup | None:
        """A new cgroup with ``limits`` applied, or None where no cgroup can be made here."""
        name = f"clive-{os.getpid()}-{next(_CGROUP_NAMES)}"
        dirs: list[Path] = []
        processes = memory = None
        kill_file = None
        hierarchies = _hierarchies()
        for h in (h for h in hierarchies if h.version == 2):
            path = _mkdir(_v2_parent(h, {"pids", "memory"}), name)
            if path is None:
                continue
            dirs.append(path)
            if (path / "cgroup.kill").exists():
                kill_file = path / "cgroup.kill"
            if limits.processes is not None and _write(path / "pids.max", str(limits.processes)):
                processes = "cgroup v2 pids.max"
            if limits.memory is not None and _write(path / "memory.max", str(limits.memory)):
                _write(path / "memory.swap.max", "0")
                memory = "cgroup v2 memory.max"
            break
        track = not dirs  # without a v2 cgroup, a v1 pids one still holds every descendant
        for h in (h for h in hierarchies if h.version == 1):
            if "pids" in h.controllers and processes is None and (limits.processes is not None or track):
                path = _mkdir(h.own, name)
                if path is not None:
                    dirs.append(path)
                    if limits.processes is not None and _write(path / "pids.max", str(limits.processes)):
                        processes = "cgroup v1 pids.max"
            if "memory" in h.controllers and memory is None and limits.memory is not None:
                path = _mkdir(h.own, name)
                if path is not None:
                    dirs.append(path)
                    if _write(path / "memory.limit_in_bytes", str(limits.memory)):
                        _write(path / "memory.memsw.limit_in_bytes", str(limits.memory))
                        memory = "cgroup v1 memory.limit_in_bytes"
        if not dirs:
            return None
        return cls(dirs, processes, memory, kill_file)

    def enter(self) -> None:
        """Move the calling process in (run in the child between fork and exec; errors are checked
        by ``holds`` in the parent)."""
        for path in self.dirs:
            try:
                fd = os.open(path / "cgroup.procs", os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            except OSError:
                pass

    def holds(self, pid: int) -> bool:
        """True if ``pid`` is in every one of this cgroup's directories."""
        return all(pid in _procs_of(path) for path in self.dirs)

    def pids(self) -> set[int]:
        """Every live process in the cgroup."""
        found: set[int] = set()
        for path in self.dirs:
            found |= _procs_of(path)
        return {pid for pid in found if _live(pid)}

    def kill(self, timeout: float = 2.0) -> None:
        """SIGKILL every process in the cgroup, until none is left (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids or time.monotonic() >= deadline:
                return
            if self._kill_file is not None:
                _write(self._kill_file, "1")
            for pid in pids:  # v1 has no cgroup.kill; a bomb is bounded by pids.max, so this converges
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)

    def remove(self) -> None:
        for path in self.dirs:
            _rmdir(path)


def _procs_of(path: Path) -> set[int]:
    try:
        return {int(line) for line in (path / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def _live(pid: int) -> bool:
    stat = procs.read_stat(pid)
    return stat is not None and stat.state not in ("Z", "X")


# ---- the child's side ------------------------------------------------------------------------


def _user_tasks(uid: int) -> int:
    """Tasks (processes and threads) of ``uid``: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count


def child_setup(limits: Limits, cgroup: Cgroup | None) -> tuple[Enforcement, list[tuple[int, int]]]:
    """What will be enforced, and the rlimits to set in the child before it execs."""
    rlimits: list[tuple[int, int]] = []
    if not limits.core_dumps:
        rlimits.append((resource.RLIMIT_CORE, 0))
    nproc = None
    if limits.processes is not None and os.geteuid() != 0:
        # RLIMIT_NPROC counts every task of the user, so it is set that far above what runs now.
        rlimits.append((resource.RLIMIT_NPROC, _user_tasks(os.geteuid()) + limits.processes))
        nproc = "RLIMIT_NPROC (per user)"
    if limits.address_space is not None:
        rlimits.append((resource.RLIMIT_AS, limits.address_space))
    enforcement = Enforcement(
        processes=(cgroup.processes if cgroup else None) or nproc,
        memory=cgroup.memory if cgroup else None,
        address_space="RLIMIT_AS (per process)" if limits.address_space is not None else None,
        every_process="cgroup (setsid children too)" if cgroup else "session (a setsid child escapes)",
    )
    return enforcement, rlimits


def apply_in_child(cgroup: Cgroup | None, rlimits: list[tuple[int, int]]) -> None:
    """Enter the cgroup and lower the rlimits (between fork and exec)."""
    if cgroup is not None:
        cgroup.enter()
    for kind, value in rlimits:
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass


# ---- the watchdog ----------------------------------------------------------------------------


def _cgroup_parents() -> list[Path]:
    """Every folder ``Cgroup.create`` may make a cgroup in."""
    parents: list[Path] = []
    for h in _hierarchies():
        parents.append(h.own)
        if h.version == 2:
            parents.append(h.mount)
    return list(dict.fromkeys(parents))


# Runs as ``python -I -S -c``: no site, no clive import, so it starts fast and keeps working whatever
# happens to clive's files. argv: clive's pid, then the folders clive makes cgroups in. It reads
# lines from clive: "+ <session>" when a terminal starts, "- <session>" when it closed. At end of
# file (clive exited or died) it kills the sessions still open and every process in a cgroup named
# clive-<pid>-*, and removes those cgroups: also one made in the instant before clive could say so.
_WATCHDOG = r"""
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
    signal.signal(s, signal.SIG_IGN)
clive, parents = sys.argv[1], sys.argv[2:]
sessions, buf = set(), b""
while True:
    chunk = os.read(0, 4096)
    if not chunk:
        break
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for line in lines:
        sign, _, sid = line.decode().partition(" ")
        if sid.isdigit():
            (sessions.add if sign == "+" else sessions.discard)(int(sid))
dirs = []
for parent in parents:
    try:
        dirs += [os.path.join(parent, e) for e in os.listdir(parent) if e.startswith(f"clive-{clive}-")]
    except OSError:
        pass
def stat(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if fields[0] not in (b"Z", b"X") else None
def members():
    found = set()
    for d in dirs:
        try:
            found |= {int(p) for p in open(os.path.join(d, "cgroup.procs")).read().split()}
        except (OSError, ValueError):
            pass
    for e in os.listdir("/proc"):
        if e.isdigit():
            fields = stat(e)
            if fields is not None and int(fields[3]) in sessions:
                found.add(int(e))
    return {p for p in found if p != os.getpid() and stat(p) is not None}
for _ in range(400):
    pids = members()
    if not pids:
        break
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.005)
for d in dirs:
    for _ in range(100):
        try:
            os.rmdir(d)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.01)
"""


class Watchdog:
    """One process per clive process that, when clive exits or dies, kills what its terminals left
    running and removes their cgroups: it waits on a pipe only clive holds."""

    _lock = threading.Lock()
    _proc: subprocess.Popen[bytes] | None = None
    _pipe: int | None = None
    _sessions: set[int] = set()

    @classmethod
    def start(cls) -> None:
        """Start it if it is not running (before making a cgroup, so that none is left behind)."""
        with cls._lock:
            if cls._proc is None or cls._proc.poll() is not None:
                cls._start()

    @classmethod
    def watch(cls, session: int) -> None:
        """Kill ``session`` should clive end before ``unwatch(session)``."""
        with cls._lock:
            cls._sessions.add(session)
            cls._say(f"+ {session}")

    @classmethod
    def unwatch(cls, session: int) -> None:
        with cls._lock:
            if session in cls._sessions:
                cls._sessions.discard(session)
                cls._say(f"- {session}")

    @classmethod
    def _say(cls, line: str) -> None:
        for _ in range(2):
            if cls._pipe is None or cls._proc is None or cls._proc.poll() is not None:
                try:
                    cls._start()  # (again, if it died): it is told every open session
                except OSError:
                    pass  # close() still ends everything; only clive's own death would leak
                return
            try:
                os.write(cls._pipe, line.encode() + b"\n")  # one short write: atomic on a pipe
                return
            except OSError:
                cls._proc = None

    @classmethod
    def _start(cls) -> None:
        if cls._pipe is not None:
            os.close(cls._pipe)
        read_end, cls._pipe = os.pipe()  # both close-on-exec: only the watchdog gets read_end
        try:
            cls._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), *map(str, _cgroup_parents())],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # out of clive's process group: a Ctrl-C to clive spares it
            )
        finally:
            os.close(read_end)
        for session in cls._sessions:
            os.write(cls._pipe, f"+ {session}\n".encode())

    @classmethod
    def _forget(cls) -> None:
        # In a forked child: the parent's terminals are the parent's watchdog's business.
        if cls._pipe is not None:
            os.close(cls._pipe)
        cls._lock, cls._proc, cls._pipe, cls._sessions = threading.Lock(), None, None, set()


os.register_at_fork(after_in_child=Watchdog._forget)
