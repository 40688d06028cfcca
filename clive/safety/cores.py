"""CPU cores claimed by one worker on this machine, so that two benchmarks never share a core.

Each core has a lock file; a worker holds the locks of its cores (``flock``) for as long as its
process lives, and the kernel lets go of them when it ends, however it ends. Workers of any run, in
any process on this machine, see each other's claims; no server is needed."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path


class CoresBusy(Exception):
    """Fewer free cores than a worker asked for."""


def _lock_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"clive-cores-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class CoreClaim:
    """``count`` cores of this process's affinity, held until ``release`` or the process's end."""

    def __init__(self, count: int) -> None:
        self.cores: list[int] = []
        self._fds: list[int] = []
        allowed = sorted(os.sched_getaffinity(0))
        folder = _lock_dir()
        for core in allowed:
            if len(self.cores) == count:
                break
            fd = os.open(folder / f"{core}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.cores.append(core)
            self._fds.append(fd)
        if len(self.cores) < count:
            self.release()
            raise CoresBusy(f"asked for {count} free CPU cores, found {len(self.cores)} of {len(allowed)}")

    def pin(self) -> None:
        """Run this process (and what it starts from now on) on the claimed cores only."""
        os.sched_setaffinity(0, self.cores)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
