"""asciicast v2: a writer that survives a kill at any moment, and a reader that tolerates one.

A cast is a JSON header line, then one event per line: ``[t, code, text]`` with ``t`` in
seconds since the recording started and code ``o`` (output), ``i`` (input) or ``r``
(resize, text ``"COLSxROWS"``). ``asciinema play`` and ``asciinema cat`` read it.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A screen this large is a corrupt file, not a terminal (pyte allocates per column).
MAX_SIZE = 1000


class SessionError(Exception):
    """A session (or its cast) that cannot be read or written: the message names the file.

    Re-exported by ``clive.session``, where callers import it from.
    """


# One encoder for every line: json.dumps with options builds a new encoder on each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=str)


def encode_line(obj: Any, *, escape_surrogates: bool = True) -> bytes:
    """One JSON line as bytes, ready for a single ``write()``."""
    text = _ENCODER.encode(obj)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (undecodable file names): keep them as JSON escapes, or as '?'.
        data = text.encode("utf-8", "backslashreplace" if escape_surrogates else "replace")
    return data + b"\n"


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # only for huge lines, or a signal arriving mid-write
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def parse_size(text: Any) -> tuple[int, int] | None:
    """``"COLSxROWS"`` as (cols, rows), or None when it is not a sane size."""
    if not isinstance(text, str):
        return None
    cols, sep, rows = text.partition("x")
    if not sep or not all(v.isascii() and v.isdigit() and len(v) <= 6 for v in (cols, rows)):
        return None
    size = int(cols), int(rows)
    return size if all(0 < v <= MAX_SIZE for v in size) else None


class CastWriter:
    """Appends events to an asciicast v2 file; each line is one ``write()``, so nothing waits in
    a buffer and a SIGKILL leaves at most a torn last line."""

    def __init__(self, path: Path, fd: int, events: int = 0) -> None:
        self.path = path
        self._fd: int | None = fd
        self.events = events  # event lines in the file so far (the header not counted)
        self._last_t = 0.0
        self._decoders = {
            code: codecs.getincrementaldecoder("utf-8")(errors="replace") for code in "oi"
        }

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        *,
        timestamp: float | None = None,
        env: dict[str, str] | None = None,
        **extra: Any,
    ) -> CastWriter:
        """Start a new cast with its header; fails if the file exists."""
        path = Path(path)
        header: dict[str, Any] = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(timestamp if timestamp is not None else time.time()),
            "env": env if env is not None else {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
        }
        header.update(extra)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        write_all(fd, encode_line(header, escape_surrogates=False))
        return cls(path, fd)

    @classmethod
    def append(cls, path: str | os.PathLike[str], events: int) -> CastWriter:
        """Continue an existing cast that already holds ``events`` complete event lines."""
        path = Path(path)
        return cls(path, os.open(path, os.O_WRONLY | os.O_APPEND), events)

    def write(self, t: float, code: str, text: str) -> None:
        """One event of already-decoded text."""
        if self._fd is None:
            raise SessionError(f"{self.path}: the cast is closed")
        write_all(self._fd, encode_line([round(t, 6), code, text], escape_surrogates=False))
        self.events += 1
        self._last_t = t

    def output(self, t: float, data: bytes) -> None:
        """PTY output; a multibyte character split across chunks is decoded whole."""
        text = self._decoders["o"].decode(data)
        if text:
            self.write(t, "o", text)

    def input(self, t: float, data: bytes) -> None:
        """Bytes sent to the PTY."""
        text = self._decoders["i"].decode(data)
        if text:
            self.write(t, "i", text)

    def resize(self, t: float, cols: int, rows: int) -> None:
        self.write(t, "r", f"{cols}x{rows}")

    def sync(self) -> None:
        """Push written lines to the disk (they already survive a crash of this process)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """Write what the decoders still hold (a torn character becomes U+FFFD), sync, close."""
        if self._fd is None:
            return
        try:
            for code, decoder in self._decoders.items():
                rest = decoder.decode(b"", final=True)
                if rest:
                    self.write(self._last_t, code, rest)
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None


class AppendedLines:
    """Complete lines added to a file since the last read; an unfinished last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # just past the last complete line read
        self.count = 0  # complete lines read so far
        self.pending = 0  # bytes of an unfinished last line (torn, or still being written)
        self.error: str | None = None

    def read(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.error = f"{self.path.name}: cannot read ({exc.strerror or exc})"
            return []
        self.error = None
        end = data.rfind(b"\n")
        self.pending = len(data) - end - 1
        if end == -1:
            return []
        lines = data[:end].split(b"\n")
        self.offset += end + 1
        self.count += len(lines)
        return lines


def parse_json_line(line: bytes) -> Any:
    """A line's JSON value, or raise ValueError (bad UTF-8 is replaced, deep nesting refused)."""
    try:
        return json.loads(line.decode("utf-8", errors="replace"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


@dataclass(frozen=True, slots=True)
class CastHeader:
    width: int
    height: int
    timestamp: float | None
    env: dict[str, Any] = field(default_factory=dict)


def parse_header(line: bytes, path: Path) -> CastHeader:
    try:
        raw = parse_json_line(line)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or raw.get("version") != 2:
        raise SessionError(f"{path}: not an asciicast v2 file (bad header line)")
    width, height = raw.get("width"), raw.get("height")
    size = parse_size(f"{width}x{height}") if type(width) is int and type(height) is int else None
    if size is None:
        raise SessionError(f"{path}: bad terminal size in the header: {width!r}x{height!r}")
    stamp = raw.get("timestamp")
    if type(stamp) not in (int, float) or not math.isfinite(stamp):
        stamp = None
    env = raw.get("env")
    return CastHeader(size[0], size[1], stamp, env if isinstance(env, dict) else {})


CastEvent = tuple[float, str, str]


def parse_event(line: bytes) -> CastEvent | None:
    """An event line as (t, code, text), or None when it is not one."""
    try:
        raw = parse_json_line(line)
    except ValueError:
        return None
    if not isinstance(raw, list) or len(raw) < 3:
        return None
    t, code, text = raw[0], raw[1], raw[2]
    if type(t) not in (int, float) or not math.isfinite(t) or t < 0:
        return None
    if not isinstance(code, str) or not isinstance(text, str):
        return None
    return float(t), code, text


class CastReader:
    """Reads a cast, tolerating a torn last line; ``refresh()`` picks up events appended later.

    ``events[i]`` is the i-th event line, or None where a line was not an event (kept so that
    indices match what the writer counted)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SessionError(f"{self.path}: no such cast file")
        self._lines = AppendedLines(self.path)
        first = self._lines.read()
        if not first:
            raise SessionError(f"{self.path}: no asciicast header (empty or torn file)")
        self.header = parse_header(first[0], self.path)
        self.events: list[CastEvent | None] = []
        self.times: list[float] = []  # nondecreasing for a good file; bad lines repeat the last
        self.bad_lines: list[int] = []  # 1-based line numbers
        self._add(first[1:])

    @property
    def error(self) -> str | None:
        """Why the last refresh could not read the file, if it could not."""
        return self._lines.error

    @property
    def torn(self) -> int:
        """Bytes of an unfinished last line (0 when the file ends with a complete line)."""
        return self._lines.pending

    def refresh(self) -> int:
        """Read events appended since the last read; returns how many."""
        return self._add(self._lines.read())

    def _add(self, lines: list[bytes]) -> int:
        for line in lines:
            event = parse_event(line)
            if event is None:
                self.bad_lines.append(len(self.events) + 2)
            self.events.append(event)
            last = self.times[-1] if self.times else 0.0
            self.times.append(event[0] if event is not None else last)
        return len(lines)


def truncate_torn(path: str | os.PathLike[str]) -> int:
    """Cut an unfinished last line off a line-oriented file; returns the bytes removed."""
    path = Path(path)
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        pos = size
        block = 65536
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl != -1:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep
