"""The session directory: its file names, its ids, and how its files are written so that a crash leaves
each one whole (the old version or the new) or with at most one torn last line."""

from __future__ import annotations

import os
import secrets as _random
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clive.session.cast import (
    SessionError,
    parse_json_line,
    parse_size,
    write_all,
)

META = "meta.json"
EVENTS = "events.jsonl"
CAST = "terminal.cast"
RESULTS = "results.tsv"
KEYFRAMES = "keyframes.jsonl"


def new_session_id() -> str:
    """A session id that sorts by start time (UTC), e.g. ``20261124-214501-a3f9``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _random.token_hex(2)


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone().isoformat(timespec="milliseconds")


def atomic_write(path: Path, data: bytes) -> None:
    """Write temp in the same directory, fsync, rename: readers see the old file or the new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_size(width: object, height: object) -> None:
    if type(width) is not int or type(height) is not int or parse_size(f"{width}x{height}") is None:
        raise SessionError(f"bad terminal size: {width!r}x{height!r}")


def pid_alive(meta: Mapping[str, Any]) -> bool:
    """Whether the process that meta.json says is recording the session still runs (on this host)."""
    pid = meta.get("pid")
    if type(pid) is not int or pid <= 0 or meta.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # it exists, we just may not signal it
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): it exists
    return state not in (b"Z", b"X")  # killed, waiting only to be reaped: it records nothing


CYCLE_PREFIX = b'{"type": "cycle"'


def count_cycles(path: Path) -> tuple[int, int]:
    """(cycle events, highest cycle number) of an events file, reading only cycle lines."""
    count = 0
    last = 0
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0
    for line in data.split(b"\n"):
        if not line.startswith(CYCLE_PREFIX):
            continue
        try:
            event = parse_json_line(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "cycle":
            count += 1
            if type(event.get("cycle")) is int:
                last = max(last, event["cycle"])
    return count, last
