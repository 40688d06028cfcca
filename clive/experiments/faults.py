"""Fault injection for the crash-safety tests: CLIVE_CRASH_AT=point[:n] kills clive at that point.

Points are named places where a real crash would hurt most (mid-commit, mid-append, mid-eval).
Without the variable every call is a no-op costing one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

_seen: dict[str, int] = {}


def crash_point(name: str, *, delay: float | None = None) -> None:
    """SIGKILL this process here (or ``delay`` seconds from now) on the n-th visit named in the env."""
    spec = os.environ.get("CLIVE_CRASH_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != (int(count) if count else 1):
        return
    if delay is None:
        os.kill(os.getpid(), signal.SIGKILL)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()
