"""Reading a PTY as fast as a program writes to it: bursts of reads shown at once, and during a flood the
wait for its next bytes (see ``Terminal._read`` for how they are shown)."""

from __future__ import annotations

import array
import fcntl
import os
import select
import termios

from clive.safety.limits import usable_cpus

try:
    from clive.terminal import _speedups  # clive/terminal/_speedups.c, where it was built: see FloodWait
except ImportError:
    _speedups = None

READ_SIZE = 65536
# Reading output (see Terminal._read): a read this long starts a batch; a batch this long is a flood,
# read on while the program keeps writing, for at most FLOOD_WINDOW seconds or bytes, then shown;
# while the kernel has nothing ready, the reads not checked yet are checked, this many at a time.
BATCH_HINT = 1024
FLOOD_BYTES = 1 << 16
FLOOD_WINDOW = 0.05
FLOOD_WINDOW_BYTES = 1 << 20
FLOOD_PAUSE_MS = 1
CHECK_PARTS = 4
# During a flood, how long the reader asks the kernel for the next bytes before it sleeps in poll():
# see FloodWait.
FLOOD_SPIN_US = 200


def read_burst(fd: int, pending: select.poll, parts: list[bytes], wait: int) -> bool:
    """Read what the PTY holds into ``parts``, up to FLOOD_BYTES, waiting up to ``wait`` ms for more;
    whether it reached its end."""
    total = 0
    waiting = FloodWait() if wait else None
    while True:
        try:
            data = os.read(fd, READ_SIZE)
        except OSError:
            return True  # EIO: every slave-side descriptor is closed
        if not data:
            return True
        parts.append(data)
        total += len(data)
        if len(parts[0]) < BATCH_HINT or total >= FLOOD_BYTES:
            return False
        if not (waiting.more_soon(fd, pending, wait) if waiting else pending.poll(0)):
            return False


class FloodWait:
    """How the reader waits for a flood's next bytes, through one window or burst of it.

    In a flood the next bytes are some 30 microseconds away: the kernel's worker moves each 4 KB to
    where read() takes it from only after the last was read. A reader asleep in poll() must then be
    woken, which on these virtual machines costs about as much again. Asking the kernel (FIONREAD)
    in a loop for the first FLOOD_SPIN_US, in C with the GIL released, does not sleep: the 10 MB
    flood benchmark went from 60-65 MB/s to 80-95. Once a loop has come back empty, the program
    writes slower than that, and looping would only burn a CPU: poll() alone for the rest of the
    window (a program writing 4 KB every 0.2 ms took 85% of a core with the loop every time, 55%
    without). Not on one CPU (or a cgroup's quota of less than two), where the loop would take the
    time the program and the kernel's worker need (the 10 MB flood pinned to one CPU: 56 MB/s without
    the loop, 48 with it), nor where the extension is not built."""

    __slots__ = ("spin",)

    def __init__(self) -> None:
        self.spin = SPIN_FIRST

    def more_soon(self, fd: int, pending: select.poll, wait: int) -> bool:
        """Whether the PTY has bytes to read within ``wait`` ms."""
        if self.spin:
            try:
                if _speedups.wait_queued(fd, FLOOD_SPIN_US):
                    return True
            except OSError:
                pass
            self.spin = False
        return bool(pending.poll(wait))


# Whether FloodWait asks in a loop first: the C loop is built and this process may keep two CPUs or
# more busy (its affinity, and any CPU quota of its cgroups).
SPIN_FIRST = _speedups is not None and usable_cpus() >= 2


def queued(fd: int, count: array.array, pending: select.poll) -> bool:
    """Whether the PTY holds bytes to read this instant. Unlike poll(), which waits for the kernel to
    move what the program wrote to where read() takes it from, FIONREAD only looks."""
    try:
        fcntl.ioctl(fd, termios.FIONREAD, count, True)
    except OSError:
        return bool(pending.poll(0))
    return count[0] > 0
