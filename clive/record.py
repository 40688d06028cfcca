"""Sessions on disk: the recorder that writes them as they happen, and the reader that replays them.

``sessions/<id>/`` holds ``meta.json`` (rewritten atomically), ``events.jsonl`` (one JSON object
per line, each written with one ``write()``) and ``terminal.cast`` (asciicast v2). Nothing is
buffered in this process, so a SIGKILL loses at most the line being written, and the reader
reports that torn line instead of failing. Once the cast is long enough to be slow to replay, a
helper process follows it and appends ``keyframes.jsonl``: the screen every few milliseconds of
replay, so that a seek anywhere feeds the cast from the keyframe before it. Keyframes are a cache
the reader checks and may ignore; sessions without them replay as before. Secrets never reach any
of these files.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import copy
import fcntl
import json
import math
import os
import re
import secrets as _random
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyte import charsets as pyte_charsets
from pyte.screens import Char, Cursor, Margins, Savepoint, StaticDefaultDict

from clive import __version__
from clive.actions import summarize_action
from clive.cast import (
    MAX_SIZE,
    AppendedLines,
    CastEvent,
    CastReader,
    CastWriter,
    SessionError,
    encode_line,
    parse_event,
    parse_header,
    parse_json_line,
    parse_size,
    truncate_torn,
    write_all,
)
from clive.fastfeed import FastStream
from clive.screen import ControlStrings, ScreenModel, Snapshot, TerminalScreen

__all__ = [
    "REDACTED",
    "Recorder",
    "Redactor",
    "SessionError",
    "SessionReader",
    "SessionSummary",
    "format_sessions",
    "format_timeline",
    "list_sessions",
    "new_session_id",
    "resolve_session",
    "secrets_from_env",
]

META = "meta.json"
EVENTS = "events.jsonl"
CAST = "terminal.cast"
RESULTS = "results.tsv"
KEYFRAMES = "keyframes.jsonl"

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET)$|PASSWORD", re.IGNORECASE)
MIN_SECRET = 6  # shorter environment values are too common to redact ("true", "1")
MIN_TYPED_SECRET = 4  # a password typed with echo off

# The reader keeps a copy of the screen every this many cast events or characters fed, so a
# seek feeds at most one interval (pyte draws about 1 MB/s: 16 KB is ~15-25 ms).
KEYFRAME_EVENTS = 200
KEYFRAME_CHARS = 16_384
# The recorder's keyframes (keyframes.jsonl, written by a helper process): they start once the cast
# holds this much output (less replays in a few milliseconds), one every this many seconds of
# replay, so a cold seek anywhere feeds at most that much; close() waits this long for the helper
# to catch up (it finishes on its own if that is not enough).
KEYFRAME_START = 32_768
KEYFRAME_SPACING = 0.010
KEYFRAME_WAIT = 2.0
# The helper runs at idle priority (SCHED_IDLE, else nice 19): only on CPU time that nothing else
# wants, so the agent and the programs it runs (and times) never wait for it; False: nice 10. It
# replays while the recording process waits rather than while it is busy, unless this many
# seconds behind.
KEYFRAME_IDLE = True
KEYFRAME_LAG = 30.0
KEYFRAME_MAX_LINE = 32 * 2**20


def new_session_id() -> str:
    """A session id that sorts by start time (UTC), e.g. ``20261124-214501-a3f9``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _random.token_hex(2)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone().isoformat(timespec="milliseconds")


# ---- secrets ------------------------------------------------------------------------------


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of variables named like secrets (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``)."""
    env = os.environ if env is None else env
    return sorted(
        {value for name, value in env.items() if SECRET_NAME.search(name) and len(value) >= MIN_SECRET}
    )


class Redactor:
    """Replaces known secret values with ``[redacted]``; the set grows as secrets are typed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if s}
        self._build()

    def _build(self) -> None:
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # A secret inside a JSON line appears raw or, if it holds quotes, backslashes or control
        # characters, escaped; either form found means the slow, exact path.
        # (Plain substring tests: several times faster than one regex alternation.)
        forms = {json.dumps(s, ensure_ascii=False)[1:-1] for s in ordered} | set(ordered)
        self._ordered = ordered
        self._probes = [f.encode("utf-8", "backslashreplace") for f in forms]
        self._by_first: list[tuple[str, str]] = [(s[0], s) for s in ordered]

    def add(self, secret: str) -> bool:
        """Redact ``secret`` from now on; False if it was known already."""
        if not secret or secret in self._secrets:
            return False
        self._secrets.add(secret)
        self._build()
        return True

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __contains__(self, value: object) -> bool:
        return value in self._secrets

    @property
    def secrets(self) -> list[str]:
        return list(self._ordered)

    def found_in(self, data: bytes) -> bool:
        """Whether a JSON line (``encode_line``) holds a secret, raw or escaped."""
        return any(probe in data for probe in self._probes)

    def text(self, text: str) -> str:
        if self._text is None or not any(s in text for s in self._ordered):
            return text
        return self._text.sub(REDACTED, text)

    def value(self, obj: Any) -> Any:
        """A copy of a JSON-like value with secrets redacted in every string, keys included."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {self.value(k) if isinstance(k, str) else k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj

    def line(self, obj: Any) -> tuple[bytes, Any]:
        """``obj`` as one redacted JSON line, and the redacted value it holds."""
        data = encode_line(obj)
        if self.found_in(data):
            obj = self.value(obj)
            data = encode_line(obj)
        return data, obj

    def hold(self, text: str) -> int:
        """Length of the longest tail of ``text`` that could be the start of a secret."""
        n = len(text)
        best = 0
        for first, secret in self._by_first:
            # Only proper prefixes: a whole secret would have been redacted already.
            p = text.find(first, max(0, n - len(secret) + 1))
            while p != -1 and n - p > best:
                if secret.startswith(text[p:]):
                    best = n - p
                    break
                p = text.find(first, p + 1)
        return best


class _RedactedStream:
    """Redacts a text stream that arrives in pieces: a tail that could begin a secret is held
    back until the next piece shows whether it does, so a secret split across reads never
    reaches the file whole or in part."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._carry = ""

    @property
    def held(self) -> int:
        return len(self._carry)

    def feed(self, text: str) -> str:
        if not self._redactor:
            out, self._carry = self._carry + text, ""
            return out
        buf = self._redactor.text(self._carry + text)
        keep = self._redactor.hold(buf)
        self._carry = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """What is held, at the end of the stream: a long partial secret is still redacted."""
        rest, self._carry = self._carry, ""
        return REDACTED if len(rest) >= MIN_SECRET else rest


class _TypedSecret:
    """Collects what is typed while echo is off, the way the line discipline would edit it."""

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> list[str]:
        """Returns the lines completed by this input."""
        done = []
        for ch in self._decoder.decode(data):
            if ch in "\r\n":
                done.append("".join(self._chars))
                self._chars.clear()
            elif ch in "\x7f\b":
                if self._chars:
                    self._chars.pop()
            elif ch in "\x15\x03":  # Ctrl-U kills the line, Ctrl-C abandons it
                self._chars.clear()
            elif ch >= " ":
                self._chars.append(ch)
        return done

    def finish(self) -> str:
        """Echo came back on without a newline: whatever was typed still counts."""
        rest = "".join(self._chars)
        self._chars.clear()
        self._decoder.reset()
        return rest


# ---- writing ------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    """Write temp in the same directory, fsync, rename: readers see the old file or the new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
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


def _check_size(width: object, height: object) -> None:
    if type(width) is not int or type(height) is not int or parse_size(f"{width}x{height}") is None:
        raise SessionError(f"bad terminal size: {width!r}x{height!r}")


class Recorder:
    """Writes one session as it happens; a Terminal listener (``on_output``, ``on_input``).

    Every line goes to the kernel with one ``write()`` before the call returns, so a crash of
    this process loses nothing written; ``fsync_interval`` bounds what a power cut can lose
    (cycle events fsync both files at most this often; None: only on close). Thread-safe:
    output arrives on the terminal's reader thread while events come from the loop. Once the cast
    holds ``KEYFRAME_START`` characters of output, a helper process writes keyframes.jsonl beside
    it (see ``_keyframe_process``): the reader's seeks start from those.
    """

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        *,
        cast: CastWriter,
        events_fd: int,
        elapsed: float,
        redactor: Redactor,
        fsync_interval: float | None,
        cycles: int = 0,
        last_cycle: int = 0,
    ) -> None:
        self.path = path
        self.id: str = meta["id"]
        self._meta = meta
        self._cast = cast
        self._events_fd: int | None = events_fd
        self._t0 = time.monotonic() - elapsed
        self._redactor = redactor
        self._fsync_interval = fsync_interval
        self._last_sync = time.monotonic()
        self._lock = threading.RLock()
        self._decoders = {c: codecs.getincrementaldecoder("utf-8")(errors="replace") for c in "oi"}
        self._streams = {c: _RedactedStream(redactor) for c in "oi"}
        self._typed: _TypedSecret | None = None
        self.cycles = cycles  # cycle events written, over the whole session
        self.last_cycle = last_cycle  # the highest cycle number written
        self.closed = False
        self.failure: str | None = None  # why the cast stopped, if a write failed
        self._cast_chars = 0  # output characters in the cast (keyframes start at KEYFRAME_START)
        self._keyframer: subprocess.Popen[bytes] | None = None
        self._keyframer_tried = False

    # ---- opening ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        sessions_dir: str | os.PathLike[str],
        meta: Mapping[str, Any],
        width: int,
        height: int,
        *,
        secrets: Iterable[str] | None = None,
        fsync_interval: float | None = 1.0,
        cast_env: dict[str, str] | None = None,
    ) -> Recorder:
        """Create ``sessions_dir/<new id>/`` with its three files; ``secrets`` defaults to the
        secret-looking values of ``os.environ``."""
        _check_size(width, height)
        sessions_dir = Path(sessions_dir)
        try:
            sessions_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SessionError(f"cannot create {sessions_dir}: {exc.strerror or exc}") from None
        for _ in range(100):
            sid = new_session_id()
            path = sessions_dir / sid
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise SessionError(f"cannot create {path}: {exc.strerror or exc}") from None
        else:
            raise SessionError(f"cannot find a free session id in {sessions_dir}")

        started = time.time()
        full: dict[str, Any] = {"id": sid, "started": _iso(started), "ended": None, "status": "running"}
        full.update({k: v for k, v in meta.items() if k not in ("id", "started", "ended", "status")})
        full.setdefault("cols", width)
        full.setdefault("rows", height)
        full.update(clive_version=__version__, pid=os.getpid(), host=socket.gethostname())
        redactor = Redactor(secrets_from_env() if secrets is None else secrets)
        env = cast_env or {"TERM": "xterm-256color", "SHELL": os.environ.get("SHELL", "/bin/bash")}
        events_fd = None
        try:
            _atomic_write(path / META, _meta_bytes(full, redactor))
            events_fd = os.open(path / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            writer = CastWriter.create(
                path / CAST, width, height, timestamp=started, env=redactor.value(env)
            )
        except OSError as exc:
            if events_fd is not None:
                os.close(events_fd)
            shutil.rmtree(path, ignore_errors=True)  # bad input never leaves a half-made session
            raise SessionError(f"cannot create the session in {path}: {exc.strerror or exc}") from None
        _fsync_dir(path)
        return cls(
            path,
            full,
            cast=writer,
            events_fd=events_fd,
            elapsed=time.time() - started,
            redactor=redactor,
            fsync_interval=fsync_interval,
        )

    @classmethod
    def open_for_resume(
        cls,
        session_dir: str | os.PathLike[str],
        *,
        width: int | None = None,
        height: int | None = None,
        secrets: Iterable[str] | None = None,
        fsync_interval: float | None = 1.0,
    ) -> Recorder:
        """Append to an interrupted session. Torn last lines are cut off first and reported in a
        ``resume`` event; cast times go on from the original start. The cast gets a terminal
        reset (``ESC c``): the resumed session runs in a new terminal with a blank screen."""
        path = Path(session_dir)
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
            started = datetime.fromisoformat(meta["started"]).timestamp()
            if not isinstance(meta.get("id"), str):
                raise ValueError("no id")
        except FileNotFoundError:
            raise SessionError(f"cannot resume {path}: no {META}") from None
        except (OSError, ValueError, TypeError, KeyError, RecursionError):
            raise SessionError(f"cannot resume {path}: {META} is damaged") from None
        if meta.get("status") == "running" and _pid_alive(meta) and meta.get("pid") != os.getpid():
            raise SessionError(f"cannot resume {path}: process {meta['pid']} is still recording it")
        try:
            cast = CastReader(path / CAST)  # checks the header before anything is changed
            if not (path / EVENTS).exists():
                (path / EVENTS).touch()
            cut_cast = truncate_torn(path / CAST)
            cut_events = truncate_torn(path / EVENTS)
        except OSError as exc:
            raise SessionError(f"cannot resume {path}: {exc.strerror or exc}") from None
        cycles, last_cycle = _count_cycles(path / EVENTS)

        redactor = Redactor(secrets_from_env() if secrets is None else secrets)
        writer = CastWriter.append(path / CAST, len(cast.events))
        events_fd = os.open(path / EVENTS, os.O_WRONLY | os.O_APPEND)
        previous = meta.get("status")
        meta.update(
            status="running",
            ended=None,
            pid=os.getpid(),
            host=socket.gethostname(),
            resumed=[*_list(meta.get("resumed")), _iso(time.time())],
        )
        rec = cls(
            path,
            meta,
            cast=writer,
            events_fd=events_fd,
            elapsed=time.time() - started,
            redactor=redactor,
            fsync_interval=fsync_interval,
            cycles=cycles,
            last_cycle=last_cycle,
        )
        try:
            rec._cast_chars = (path / CAST).stat().st_size  # keyframes go on at once if worth it
        except OSError:
            pass
        with rec._lock:
            writer.write(rec._now(), "o", "\x1bc")
            if width is not None and height is not None:
                _check_size(width, height)
                writer.resize(rec._now(), width, height)
        rec.event(
            "resume",
            last_cycle,
            previous_status=previous,
            truncated={EVENTS: cut_events, CAST: cut_cast},
        )
        rec.update_meta()
        return rec

    # ---- the terminal listener -------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def on_output(self, data: bytes) -> None:
        with self._lock:
            if self.closed or self.failure:
                return
            text = self._streams["o"].feed(self._decoders["o"].decode(data))
            if text:
                self._write_cast("o", text)

    def on_input(self, data: bytes, secret: bool) -> None:
        with self._lock:
            if self.closed or self.failure:
                return
            if secret:
                # Echo is off: a password. Record that keys were sent, never which, and redact
                # the typed value wherever it shows up later.
                if self._typed is None:
                    self._typed = _TypedSecret()
                    self._write_input(self._streams["i"].flush())
                for line in self._typed.feed(data):
                    self._learn(line)
                self._write_cast("i", REDACTED)
                return
            if self._typed is not None:
                self._learn(self._typed.finish())
                self._typed = None
            self._write_input(self._streams["i"].feed(self._decoders["i"].decode(data)))

    def _write_cast(self, code: str, text: str) -> None:
        # Called on the terminal's reader thread: an exception here would kill it, so a write
        # error (disk full) stops the cast and is raised by the next event() instead.
        try:
            self._cast.write(self._now(), code, text)
        except OSError as exc:
            self.failure = f"cannot write {self.path / CAST}: {exc.strerror or exc}"
            return
        if code == "o":
            self._cast_chars += len(text)

    def _write_input(self, text: str) -> None:
        if text:
            self._write_cast("i", text)

    def _learn(self, secret: str) -> None:
        if len(secret) >= MIN_TYPED_SECRET:
            self._add_secret(secret)

    def add_secret(self, value: str) -> None:
        """Redact ``value`` in everything written from now on."""
        with self._lock:
            self._add_secret(value)

    def _add_secret(self, value: str) -> None:
        if self._redactor.add(value) and self._keyframer is not None:
            self._tell_keyframer(encode_line(value))

    def resize(self, cols: int, rows: int) -> None:
        _check_size(cols, rows)
        with self._lock:
            if not self.closed and not self.failure:
                self._write_cast("r", f"{cols}x{rows}")

    # ---- events and meta -------------------------------------------------------------------

    def event(self, type: str, cycle: int, **fields: Any) -> dict[str, Any]:
        """Append ``{"type", "t", "cycle", **fields, "cast_index"}`` to events.jsonl; returns it
        as written. ``cast_index`` counts the cast events written so far (the screen at this
        event is the cast replayed that far); ``cast_held``, when present, counts characters of
        output held back by redaction that start the next output event."""
        with self._lock:
            if self.closed or self._events_fd is None:
                raise SessionError(f"{self.path}: the recorder is closed")
            if self.failure:
                raise SessionError(self.failure)
            record: dict[str, Any] = {"type": type, "t": round(self._now(), 3), "cycle": cycle}
            record.update(fields)
            record["cast_index"] = self._cast.events
            held = self._streams["o"].held
            if held:
                record["cast_held"] = held
            data, record = self._redactor.line(record)
            try:
                write_all(self._events_fd, data)
            except OSError as exc:
                raise SessionError(f"cannot write {self.path / EVENTS}: {exc.strerror or exc}") from None
            if type == "cycle":
                self.cycles += 1
                if isinstance(cycle, int):
                    self.last_cycle = max(self.last_cycle, cycle)
                try:
                    self._maybe_sync()
                except OSError as exc:
                    raise SessionError(f"cannot sync {self.path}: {exc.strerror or exc}") from None
            if not self._keyframer_tried and self._cast_chars >= KEYFRAME_START:
                self._start_keyframer()
            return record

    # ---- keyframes -------------------------------------------------------------------------

    def _start_keyframer(self) -> None:
        """Start the keyframe process (see ``_keyframe_process``); without it, seeks replay."""
        self._keyframer_tried = True
        if not sys.executable:
            return
        # Only what it needs: no secret-looking variables, and clive importable as it is here.
        env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._keyframer = subprocess.Popen(
                [sys.executable, "-c", _HELPER, str(self.path), repr(KEYFRAME_SPACING), repr(KEYFRAME_LAG),
                 str(int(KEYFRAME_IDLE))],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, start_new_session=True,  # not stopped by the Ctrl-C meant for clive
            )  # fmt: skip
        except (OSError, ValueError, subprocess.SubprocessError):
            return
        self._tell_keyframer(b"".join(encode_line(s) for s in self._redactor.secrets) + b"\n")

    def _tell_keyframer(self, data: bytes) -> None:
        assert self._keyframer is not None and self._keyframer.stdin is not None
        try:
            self._keyframer.stdin.write(data)
            self._keyframer.stdin.flush()
        except (OSError, ValueError):
            self._stop_keyframer(wait=0)  # it died: keyframes stop here, replay covers the rest

    def _stop_keyframer(self, wait: float) -> None:
        """Tell the keyframe process the session has ended (it catches up, then exits), and wait
        up to ``wait`` seconds for it."""
        proc, self._keyframer = self._keyframer, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass  # it finishes on its own

    def _maybe_sync(self) -> None:
        if self._fsync_interval is None:
            return
        now = time.monotonic()
        if now - self._last_sync >= self._fsync_interval:
            self._sync()
            self._last_sync = now

    def _sync(self) -> None:
        if self._events_fd is not None:
            os.fsync(self._events_fd)
        self._cast.sync()

    @property
    def meta(self) -> dict[str, Any]:
        with self._lock:
            return self._redactor.value(self._meta)

    def update_meta(self, **fields: Any) -> None:
        """Merge ``fields`` into meta.json (rewritten atomically)."""
        with self._lock:
            self._meta.update(fields)
            self._write_meta()

    def close(self, status: str) -> None:
        """Finish the session: flush what redaction held back, sync, and mark meta ended."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            now = self._now()
            if self._typed is not None:
                self._learn(self._typed.finish())
            error = self.failure
            try:
                for code in "oi":
                    rest = self._decoders[code].decode(b"", final=True)
                    text = self._streams[code].feed(rest) + self._streams[code].flush()
                    if text and not error:
                        self._cast.write(now, code, text)
            except OSError as exc:
                error = f"cannot write {self.path / CAST}: {exc.strerror or exc}"
            try:
                self._cast.close()
            except OSError as exc:
                error = error or f"cannot write {self.path / CAST}: {exc.strerror or exc}"
            if self._events_fd is not None:
                try:
                    os.fsync(self._events_fd)
                except OSError as exc:
                    error = error or f"cannot write {self.path / EVENTS}: {exc.strerror or exc}"
                finally:
                    os.close(self._events_fd)
                    self._events_fd = None
            self._stop_keyframer(KEYFRAME_WAIT)  # the cast is complete: keyframes catch up
            self._meta.update(
                status=status,
                ended=_iso(time.time()),
                duration=round(now, 3),
                cycles=self.cycles,
            )
            self._write_meta()
            if error:
                raise SessionError(error)

    def _write_meta(self) -> None:
        try:
            _atomic_write(self.path / META, _meta_bytes(self._meta, self._redactor))
        except OSError as exc:
            raise SessionError(f"cannot write {self.path / META}: {exc.strerror or exc}") from None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            status = "done"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "interrupted"
        else:
            status = "failed"
        self.close(status)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _meta_bytes(meta: Mapping[str, Any], redactor: Redactor) -> bytes:
    text = json.dumps(redactor.value(meta), ensure_ascii=False, indent=2, default=str)
    return text.encode("utf-8", "backslashreplace") + b"\n"


_CYCLE_PREFIX = b'{"type": "cycle"'


def _count_cycles(path: Path) -> tuple[int, int]:
    """(cycle events, highest cycle number) of an events file, reading only cycle lines."""
    count = 0
    last = 0
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0
    for line in data.split(b"\n"):
        if not line.startswith(_CYCLE_PREFIX):
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


# ---- reading ------------------------------------------------------------------------------


def _bare_copy(src: ScreenModel) -> ScreenModel:
    """A copy of a screen's whole state except its cells (the buffer starts empty)."""
    dst = copy.copy(src)
    dst.buffer = defaultdict(lambda: StaticDefaultDict(dst.default_char))
    dst.dirty = set()
    dst.mode = set(src.mode)
    dst.tabstops = set(src.tabstops)
    dst.cursor = copy.copy(src.cursor)
    dst.savepoints = [sp._replace(cursor=copy.copy(sp.cursor)) for sp in src.savepoints]
    dst.history = deque(src.history, maxlen=src.history.maxlen)
    dst.clears = list(src.clears)  # a counter list: a copy must not share it with its source
    if src._saved_main is not None:
        cursor = src._saved_main[1]
        dst._saved_main = ({}, copy.copy(cursor) if cursor is not None else None)
    return dst


_Row = tuple[Char, tuple[Char | None, ...]]


def _freeze_row(row: StaticDefaultDict, cells: dict[Char, Char]) -> _Row:
    # Cells are immutable and mostly repeat: share one object per distinct cell, so a keyframe
    # costs a pointer per column instead of a dict and a tuple per cell.
    line: list[Char | None] = [None] * (max(row) + 1 if row else 0)
    for x, char in row.items():
        line[x] = cells.setdefault(char, char)
    return cells.setdefault(row.default, row.default), tuple(line)


def _thaw_row(frozen: _Row) -> StaticDefaultDict:
    default, line = frozen
    row = StaticDefaultDict(default)
    row.update({x: char for x, char in enumerate(line) if char is not None})
    return row


class _Keyframe:
    """A screen frozen compactly, from which any number of working screens can be thawed."""

    __slots__ = ("shell", "rows", "saved_rows")

    def __init__(self, screen: ScreenModel, cells: dict[Char, Char]) -> None:
        self.shell = _bare_copy(screen)
        self.rows = {y: _freeze_row(row, cells) for y, row in screen.buffer.items()}
        saved = screen._saved_main
        self.saved_rows = (
            {y: _freeze_row(row, cells) for y, row in saved[0].items()} if saved else None
        )

    def thaw(self) -> ScreenModel:
        screen = _bare_copy(self.shell)
        for y, row in self.rows.items():
            screen.buffer[y] = _thaw_row(row)
        if self.saved_rows is not None and screen._saved_main is not None:
            rows = {y: _thaw_row(row) for y, row in self.saved_rows.items()}
            screen._saved_main = (rows, screen._saved_main[1])
        return screen


def _ground(stream: FastStream) -> bool:
    # pyte's parser is a generator, which cannot be copied: keep keyframes only where it is
    # between escape sequences, so a fresh Stream continues exactly.
    return bool(getattr(stream, "_taking_plain_text", True))


# ---- keyframes on disk --------------------------------------------------------------------
#
# keyframes.jsonl holds one screen per line, ``{"index": N, "v": 1, ...}``: the screen replay
# reaches after the first N cast events (parser between sequences there). The form is plain JSON,
# checked field by field on load: a session may come from anyone, so a keyframe is data to
# validate, never code to run, and one that is off in any way is dropped (replay covers it).

KEYFRAME_FORM = 1
_KF_PREFIX = b'{"index": '
_CHARSET_NAME = {table: name for name, table in pyte_charsets.MAPS.items()}
_KF_KEYS = frozenset(
    "index v size styles rows cursor savepoints mode margins tabstops charset g0 g1 title icon "
    "saved_columns alternate saved_main scrolled clears".split()
)
_BIG = 2**62  # counters (lines scrolled, clears) and mode numbers stay below this


class _BadKeyframe(ValueError):
    pass


class _StyleTable:
    """Cell styles (every Char field but ``data``) numbered in order of first use."""

    def __init__(self) -> None:
        self.table: list[list[Any]] = []
        self._index: dict[tuple[Any, ...], int] = {}
        self._by_char: dict[Char, int] = {}

    def ref(self, char: Char) -> int:
        n = self._by_char.get(char)
        if n is None:
            key = tuple(char[1:])
            n = self._index.get(key)
            if n is None:
                n = self._index[key] = len(self.table)
                self.table.append(list(key))
            self._by_char[char] = n
        return n


def _encode_rows(rows: Mapping[int, Mapping[int, Char]], styles: _StyleTable) -> list[Any]:
    # Per row: [y, default cell, runs]; a run is [x, style, text] over consecutive columns of one
    # style, text a string when every cell holds one character, else the list of cell strings
    # (a wide character's empty stub, combining marks). Absent cells stay absent: pyte can tell.
    out = []
    for y in sorted(rows):
        row = rows[y]
        runs: list[Any] = []
        start = style = -1
        cells: list[str] = []
        for x in sorted(row):
            char = row[x]
            s = styles.ref(char)
            if s != style or x != start + len(cells):
                if cells:
                    runs.append([start, style, "".join(cells) if all(len(c) == 1 for c in cells) else cells])
                start, style, cells = x, s, []
            cells.append(char.data)
        if cells:
            runs.append([start, style, "".join(cells) if all(len(c) == 1 for c in cells) else cells])
        default = row.default  # type: ignore[attr-defined]
        out.append([y, [default.data, styles.ref(default)], runs])
    return out


def _encode_cursor(cursor: Any, styles: _StyleTable) -> list[Any]:
    attrs = cursor.attrs
    return [cursor.x, cursor.y, cursor.hidden, [attrs.data, styles.ref(attrs)]]


def _encode_screen(screen: ScreenModel, index: int) -> dict[str, Any]:
    """A screen (with ``history=0``, as the reader keeps it) as a keyframe's plain JSON value."""
    styles = _StyleTable()
    saved = screen._saved_main
    return {
        "index": index,  # first, so the reader finds it without parsing the line
        "v": KEYFRAME_FORM,
        "size": [screen.columns, screen.lines],
        "rows": _encode_rows(screen.buffer, styles),
        "cursor": _encode_cursor(screen.cursor, styles),
        "savepoints": [
            [_encode_cursor(sp.cursor, styles), _CHARSET_NAME[sp.g0_charset], _CHARSET_NAME[sp.g1_charset],
             sp.charset, sp.origin, sp.wrap]
            for sp in screen.savepoints
        ],  # fmt: skip
        "mode": sorted(screen.mode),
        "margins": list(screen.margins) if screen.margins is not None else None,
        "tabstops": sorted(screen.tabstops),
        "charset": screen.charset,
        "g0": _CHARSET_NAME[screen.g0_charset],
        "g1": _CHARSET_NAME[screen.g1_charset],
        "title": screen.title,
        "icon": screen.icon_name,
        "saved_columns": screen.saved_columns,
        "alternate": screen.alternate,
        "saved_main": None
        if saved is None
        else [_encode_rows(saved[0], styles), _encode_cursor(saved[1], styles) if saved[1] is not None else None],
        "scrolled": screen.scrolled,
        "clears": list(screen.clears),
        "styles": styles.table,
    }


def _want(ok: bool, what: str) -> None:
    if not ok:
        raise _BadKeyframe(what)


def _int(value: Any, low: int, high: int, what: str) -> int:
    _want(type(value) is int and low <= value <= high, what)
    return value


def _bool(value: Any, what: str) -> bool:
    _want(type(value) is bool, what)
    return value


def _str(value: Any, what: str) -> str:
    _want(type(value) is str, what)
    return value


def _array(value: Any, what: str, length: int | None = None) -> list[Any]:
    _want(type(value) is list and (length is None or len(value) == length), what)
    return value


class _KeyframeDecoder:
    """Builds a screen from a keyframe's JSON value, refusing anything a replay could not produce
    the shape of (types, ranges, names); raises ``_BadKeyframe``."""

    def __init__(self, obj: Any, cells: dict[Char, Char]) -> None:
        _want(type(obj) is dict and obj.keys() == _KF_KEYS, "keys")
        _want(obj["v"] == KEYFRAME_FORM and type(obj["v"]) is int, "form")
        self.obj = obj
        self._cells = cells
        styles = []
        for style in _array(obj["styles"], "styles"):
            fg, bg, *flags = _array(style, "style", 8)
            _str(fg, "fg"), _str(bg, "bg")
            styles.append((fg, bg, *(_bool(f, "flag") for f in flags)))
        self._styles = styles
        self._made: dict[tuple[str, int], Char] = {}

    def char(self, data: Any, style: Any) -> Char:
        made = self._made.get((data, style)) if type(data) is str and type(style) is int else None
        if made is None:
            _str(data, "cell")
            _int(style, 0, len(self._styles) - 1, "style ref")
            char = Char(data, *self._styles[style])
            made = self._made[(data, style)] = self._cells.setdefault(char, char)
        return made

    def rows(self, value: Any) -> dict[int, StaticDefaultDict]:
        out: dict[int, StaticDefaultDict] = {}
        for item in _array(value, "rows"):
            y, default, runs = _array(item, "row", 3)
            _int(y, 0, MAX_SIZE, "row y")
            _want(y not in out, "row twice")
            row = StaticDefaultDict(self.char(*_array(default, "default cell", 2)))
            for run in _array(runs, "runs"):
                x, style, text = _array(run, "run", 3)
                _int(x, 0, MAX_SIZE, "run x")
                if type(text) is list:
                    _want(all(type(c) is str for c in text), "cells")
                else:
                    _str(text, "run text")
                _want(0 < len(text) <= MAX_SIZE + 1 - x, "run length")
                for dx, data in enumerate(text):
                    _want(x + dx not in row, "cell twice")
                    row[x + dx] = self.char(data, style)
            out[y] = row
        return out

    def cursor(self, value: Any) -> Cursor:
        x, y, hidden, attrs = _array(value, "cursor", 4)
        cursor = Cursor(_int(x, 0, MAX_SIZE, "cursor x"), _int(y, 0, MAX_SIZE, "cursor y"),
                        self.char(*_array(attrs, "cursor attrs", 2)))  # fmt: skip
        cursor.hidden = _bool(hidden, "cursor hidden")
        return cursor

    @staticmethod
    def charset(name: Any) -> str:
        _want(type(name) is str and name in pyte_charsets.MAPS, "charset")
        return pyte_charsets.MAPS[name]

    def screen(self) -> TerminalScreen:
        obj = self.obj
        columns, lines = _array(obj["size"], "size", 2)
        _int(columns, 1, MAX_SIZE, "columns"), _int(lines, 1, MAX_SIZE, "lines")
        screen = TerminalScreen(columns, lines, history=0)
        for y, row in self.rows(obj["rows"]).items():
            screen.buffer[y] = row
        screen.dirty = set()
        screen.cursor = self.cursor(obj["cursor"])
        savepoints = []
        for item in _array(obj["savepoints"], "savepoints"):
            cursor, g0, g1, charset, origin, wrap = _array(item, "savepoint", 6)
            savepoints.append(Savepoint(self.cursor(cursor), self.charset(g0), self.charset(g1),
                                        _int(charset, 0, 1, "charset"), _bool(origin, "origin"),
                                        _bool(wrap, "wrap")))  # fmt: skip
        screen.savepoints = savepoints
        screen.mode = {_int(m, 0, _BIG, "mode") for m in _array(obj["mode"], "mode")}
        margins = obj["margins"]
        if margins is not None:
            top, bottom = _array(margins, "margins", 2)
            _int(top, 0, MAX_SIZE, "top"), _int(bottom, top, MAX_SIZE, "bottom")
            margins = Margins(top, bottom)
        screen.margins = margins
        screen.tabstops = {_int(t, 0, MAX_SIZE, "tabstop") for t in _array(obj["tabstops"], "tabstops")}
        screen.charset = _int(obj["charset"], 0, 1, "charset")
        screen.g0_charset = self.charset(obj["g0"])
        screen.g1_charset = self.charset(obj["g1"])
        screen.title = _str(obj["title"], "title")
        screen.icon_name = _str(obj["icon"], "icon")
        saved_columns = obj["saved_columns"]
        screen.saved_columns = None if saved_columns is None else _int(saved_columns, 1, MAX_SIZE, "saved columns")
        screen.alternate = _bool(obj["alternate"], "alternate")
        saved = obj["saved_main"]
        if saved is not None:
            rows, cursor = _array(saved, "saved main", 2)
            screen._saved_main = (self.rows(rows), None if cursor is None else self.cursor(cursor))
        _want(saved is None or screen.alternate, "saved main screen outside the alternate screen")
        screen.scrolled = _int(obj["scrolled"], 0, _BIG, "scrolled")
        clears = _array(obj["clears"], "clears", 2)
        screen.clears = [_int(c, 0, _BIG, "clears") for c in clears]
        return screen


def _decode_screen(obj: Any, cells: dict[Char, Char] | None = None) -> TerminalScreen:
    """The screen a keyframe's JSON value holds; ``_BadKeyframe`` if it is not a sound one."""
    return _KeyframeDecoder(obj, {} if cells is None else cells).screen()


class _Replay:
    """A screen fed cast events the way replay feeds them. The reader and the recorder's keyframe
    process share it, so a recorded keyframe is exactly the screen a replay reaches."""

    __slots__ = ("screen", "stream", "strings")

    def __init__(self, screen: ScreenModel) -> None:
        self.screen = screen
        self.stream = FastStream(screen)
        self.strings = ControlStrings()  # keyframes are only taken outside control strings

    def feed(self, event: CastEvent | None) -> str | None:
        """Apply one event; what the parser raised, if it failed (replay goes on past it)."""
        if event is None:
            return None
        try:
            if event[1] == "o":
                # The live terminal drops DCS/APC/PM/SOS strings before its screen: so does replay.
                self.stream.feed(self.strings.feed(event[2]))
            elif event[1] == "r":
                size = parse_size(event[2])
                if size is not None:
                    self.screen.resize(size[1], size[0])
        except Exception as exc:  # noqa: BLE001 - pyte fails on some sequences
            # Do what Terminal does live: drop the rest of the chunk, start a new parser.
            self.stream = FastStream(self.screen)
            return f"{type(exc).__name__}: {exc}"
        return None

    @property
    def at_ground(self) -> bool:
        """Between escape sequences and control strings: a fresh parser would go on the same."""
        return _ground(self.stream) and self.strings.at_ground


class _RecordedKeyframes:
    """keyframes.jsonl as a reader sees it: which cast positions have a keyframe and where its
    line is; a line is parsed and checked only when a seek wants it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0  # just past the last complete line scanned
        self._where: dict[int, tuple[int, int]] = {}  # cast index -> (offset, length) of the line
        self.positions: list[int] = []  # sorted; indices not tried yet
        self.rejected = 0  # lines found unusable (garbage, or a keyframe that failed its checks)

    def refresh(self) -> None:
        """Note the complete lines appended since the last look (a torn last line waits)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return  # no keyframes (an older session), or unreadable: replay covers it
        start, end = 0, data.rfind(b"\n")
        while start <= end:
            stop = data.index(b"\n", start)
            index = _keyframe_index(data, start, stop)
            if index is None:
                self.rejected += 1
            elif index > 0 and index not in self._where:
                self._where[index] = (self._offset + start, stop - start)
                bisect.insort(self.positions, index)
            start = stop + 1
        self._offset += end + 1

    def before(self, n: int) -> int:
        """The last untried keyframe position at or before ``n`` (-1 if none)."""
        i = bisect.bisect_right(self.positions, n)
        return self.positions[i - 1] if i else -1

    def take(self, index: int, cells: dict[Char, Char]) -> TerminalScreen | None:
        """The screen of the keyframe at ``index`` (tried once: it leaves ``positions``), or None
        if its line does not hold a sound one."""
        self.positions.remove(index)
        offset, length = self._where.pop(index)
        try:
            if length > KEYFRAME_MAX_LINE:
                raise _BadKeyframe("too long")
            with open(self.path, "rb") as f:
                data = os.pread(f.fileno(), length, offset)
            obj = parse_json_line(data)
            _want(type(obj) is dict and obj.get("index") == index, "index")
            return _decode_screen(obj, cells)
        except (OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError, MemoryError):
            self.rejected += 1
            return None


def _keyframe_index(data: bytes, start: int, stop: int) -> int | None:
    """The cast index a keyframe line starts with (``{"index": N, ``), or None."""
    if not data.startswith(_KF_PREFIX, start):
        return None
    head = start + len(_KF_PREFIX)
    comma = data.find(b", ", head, min(stop, head + 16))
    digits = data[head:comma] if comma != -1 else b""
    return int(digits) if digits.isdigit() else None


# ---- the keyframe process -----------------------------------------------------------------
#
# Replaying is as costly as drawing: a second screen in the recording process would cost the agent
# loop ~10%. So the recorder starts a helper process once the cast is worth it; the helper follows
# terminal.cast as it grows, replays it with _Replay, and appends a keyframe whenever about
# KEYFRAME_SPACING seconds of replay have passed since the last one. It learns the secrets on its
# stdin (never argv or environment), and ends, after catching up, when that pipe closes: when the
# recorder closes, or dies. It gives way: to everything else on the machine (idle priority), and
# to the recording process itself, replaying while that waits (on the model, on a command) rather
# than while it is busy, unless it has fallen KEYFRAME_LAG seconds behind. Keyframes are a cache:
# whatever goes wrong here, replay still works.

_HELPER = "import clive.record as r; r._keyframe_process()"


class _KeyframeWriter:
    """Follows one session's cast and appends its keyframes (the helper process's work)."""

    def __init__(self, path: Path, spacing: float, redactor: Redactor) -> None:
        self._path = path
        self._spacing = spacing
        self._redactor = redactor
        self._fd = os.open(path / KEYFRAMES, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # A helper of an earlier run of this session may still be catching up: it goes first.
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        truncate_torn(path / KEYFRAMES)
        self._cast = AppendedLines(path / CAST)
        self._header = False
        self._lines: deque[bytes] = deque()  # cast lines read, not yet replayed
        self._pos = 0  # cast events replayed (or skipped)
        self._skip = 0  # events already covered by the keyframe this replay starts from
        self._replay: _Replay | None = None
        self._start = _RecordedKeyframes(path / KEYFRAMES)
        self._start.refresh()
        self._since = 0.0  # seconds of replay since the last keyframe
        self._cost = 0.0  # seconds the last keyframe took to write

    def _begin(self, width: int, height: int, events: int) -> None:
        # Go on from the last sound keyframe (a resumed session), else from a blank screen.
        for index in reversed(list(self._start.positions)):
            screen = self._start.take(index, {}) if index <= events else None
            if screen is not None:
                self._replay, self._skip = _Replay(screen), index
                return
        self._replay = _Replay(TerminalScreen(width, height, history=0))

    def behind(self) -> bool:
        """Read what the cast gained; whether any of it is left to replay."""
        lines = self._cast.read()
        if not self._header and lines:
            header = parse_header(lines[0], self._path / CAST)
            self._header = True
            lines = lines[1:]
            self._begin(header.width, header.height, len(lines))
        self._lines.extend(lines)
        return bool(self._lines)

    def step(self, budget: float | None = None) -> None:
        """Replay the lines read, for about ``budget`` seconds (None: all of them)."""
        replay, queue = self._replay, self._lines
        clock = time.perf_counter
        stop = None if budget is None else clock() + budget
        while queue and (stop is None or clock() < stop):
            line = queue.popleft()
            self._pos += 1
            if self._pos <= self._skip:
                continue
            assert replay is not None
            started = clock()
            replay.feed(parse_event(line))
            self._since += clock() - started
            # At least KEYFRAME_SPACING of replay apart, and 4 times what one costs to write (a
            # big screen); spacing 0: after every event that leaves the parser between sequences.
            due = self._since >= self._spacing and (not self._spacing or self._since >= 4 * self._cost)
            if due and replay.at_ground:
                started = clock()
                self._write(self._pos)
                self._cost = clock() - started
                self._since = 0.0

    def _write(self, index: int) -> None:
        assert self._replay is not None
        try:
            data = encode_line(_encode_screen(self._replay.screen, index))
        except (KeyError, TypeError, ValueError):  # a state the form has no words for: skip it
            return
        # The screen comes from the redacted cast, but a secret can still be put together on it
        # (written in pieces, or learned late): such a keyframe is not written; replay covers it.
        if len(data) <= KEYFRAME_MAX_LINE and not self._redactor.found_in(data):
            write_all(self._fd, data)

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


class _ProcessLoad:
    """Whether a process has been busy lately: more than a fifth of a CPU over the last 0.1 s or
    more (from /proc; where there is none, never). One that waits uses next to none; one that
    works, on a machine busy with others, may get well under a whole CPU."""

    def __init__(self, pid: int) -> None:
        self._stat = f"/proc/{pid}/stat"
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._at, self._ticks = time.monotonic(), self._cpu_ticks()
        self._busy = False

    def _cpu_ticks(self) -> int | None:
        try:
            with open(self._stat, "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            return int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, ValueError, IndexError):
            return None

    def busy(self) -> bool:
        now = time.monotonic()
        if now - self._at >= 0.1:
            ticks = self._cpu_ticks()
            if ticks is None or self._ticks is None:
                self._busy = False
            else:
                self._busy = (ticks - self._ticks) / self._hz > 0.2 * (now - self._at)
            self._at, self._ticks = now, ticks
        return self._busy


def _keyframe_process() -> None:
    """Entry point of the helper: ``python -c _HELPER SESSION_DIR SPACING LAG IDLE``; stdin carries
    the secrets, one JSON string a line, an empty line after the first batch, and ends with the
    session."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, spacing, lag, idle = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
    try:
        if not idle:
            raise OSError
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19 if idle else 10)
    recorder = _ProcessLoad(os.getppid())
    redactor = Redactor()
    pending = b""
    started = open_ = False

    def read_secrets() -> None:
        nonlocal pending, started, open_
        data = os.read(0, 65536)
        open_ = bool(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line:
                started = True
            elif isinstance(secret := parse_json_line(line), str):
                redactor.add(secret)

    open_ = True
    while open_ and not started:  # every secret known so far, before any keyframe is written
        read_secrets()
    if not started:
        return
    writer = _KeyframeWriter(path, spacing, redactor)
    caught_up = time.monotonic()
    while open_:
        if writer.behind():
            working = not recorder.busy() or time.monotonic() - caught_up > lag
        else:
            working, caught_up = False, time.monotonic()
        if working:
            writer.step(0.05)
        if select.select([0], [], [], 0 if working else 0.05)[0]:
            read_secrets()
    writer.behind()
    writer.step()
    writer.close()


class SessionReader:
    """A recorded (or live) session, read as well as its files allow.

    Opening fails only for a path that is not a session at all; anything else that is wrong
    (a torn last line, garbage lines, no meta.json, a bad cast) lands in ``problems``. A seek
    starts from the nearest keyframe: one the recorder wrote (``keyframes.jsonl``, unless
    ``recorded_keyframes`` is False) or one this reader kept from an earlier replay.
    """

    def __init__(self, path: str | os.PathLike[str], *, recorded_keyframes: bool = True) -> None:
        path = Path(path)
        if not path.exists():
            raise SessionError(f"no such session: {path}")
        if not path.is_dir():
            raise SessionError(f"not a session directory: {path}")
        if not (path / META).is_file() and not (path / EVENTS).is_file():
            raise SessionError(f"not a session (no {META} or {EVENTS}): {path}")
        self.path = path
        self.meta: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self._cycles: list[dict[str, Any]] = []
        self._cycle_at: dict[int, dict[str, Any]] = {}
        self._meta_problem: str | None = None
        self._events_file = AppendedLines(path / EVENTS)
        self._bad_events: list[int] = []
        self._cast: CastReader | None = None
        self._cast_problem: str | None = None
        # Keyframes: cast position -> screen after that many events; position 0 always exists.
        self._kf_pos: list[int] = []
        self._kf: dict[int, _Keyframe] = {}
        self._cells: dict[Char, Char] = {}
        self._recorded = _RecordedKeyframes(path / KEYFRAMES) if recorded_keyframes else None
        self._replay: _Replay | None = None  # the working screen, after _work_pos cast events
        self._work_pos = 0
        self._last_kf = 0
        self._chars_since_kf = 0
        self.fed_events = 0  # cast events fed to a screen, ever (tests and benchmarks watch it)
        self._parser_errors: dict[int, str] = {}  # cast line -> what pyte raised there
        self.refresh()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, recorded_keyframes: bool = True) -> SessionReader:
        return cls(path, recorded_keyframes=recorded_keyframes)

    @property
    def id(self) -> str:
        sid = self.meta.get("id")
        return sid if isinstance(sid, str) else self.path.name

    # ---- loading ---------------------------------------------------------------------------

    def _load_meta(self) -> None:
        try:
            raw = (self.path / META).read_bytes()
        except FileNotFoundError:
            self._meta_problem = f"{META} is missing"
            return
        except OSError as exc:
            self._meta_problem = f"{META}: cannot read ({exc.strerror or exc})"
            return
        try:
            meta = parse_json_line(raw)
        except ValueError:
            self._meta_problem = f"{META}: not valid JSON"
            return
        if not isinstance(meta, dict):
            self._meta_problem = f"{META}: not a JSON object"
            return
        self.meta, self._meta_problem = meta, None

    def refresh(self) -> list[dict[str, Any]]:
        """Read what a live writer appended since the last read; returns the new events."""
        self._load_meta()
        new = []
        first = self._events_file.count
        for n, line in enumerate(self._events_file.read(), start=first + 1):
            try:
                event = parse_json_line(line)
            except ValueError:
                event = None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                self._bad_events.append(n)
                continue
            self.events.append(event)
            new.append(event)
            if event["type"] == "cycle":
                self._cycles.append(event)
                if type(event.get("cycle")) is int:
                    self._cycle_at[event["cycle"]] = event
        if self._cast is None:
            try:
                self._cast = CastReader(self.path / CAST)
                self._cast_problem = None
            except SessionError as exc:
                self._cast_problem = str(exc)
            except OSError as exc:
                self._cast_problem = f"{self.path / CAST}: cannot read ({exc.strerror or exc})"
        else:
            self._cast.refresh()
        if self._recorded is not None:
            self._recorded.refresh()
        return new

    def follow(self, interval: float = 0.2, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield events as a live writer appends them, until an ``end`` event, or until
        ``timeout`` seconds pass with nothing new."""
        quiet_since = time.monotonic()
        while True:
            new = self.refresh()
            yield from new
            now = time.monotonic()
            if any(e["type"] == "end" for e in new):
                return
            if new:
                quiet_since = now
            elif timeout is not None and now - quiet_since >= timeout:
                return
            time.sleep(interval)

    @property
    def problems(self) -> list[str]:
        """What could not be read, one line each."""
        out = []
        if self._meta_problem:
            out.append(self._meta_problem)
        if not (self.path / EVENTS).exists():
            out.append(f"{EVENTS} is missing")
        if self._events_file.error:
            out.append(self._events_file.error)
        out.extend(_line_problems(EVENTS, self._bad_events, self._events_file.pending))
        if self._cast_problem:
            out.append(self._cast_problem)
        elif self._cast is not None:
            if self._cast.error:
                out.append(self._cast.error)
            out.extend(_line_problems(CAST, self._cast.bad_lines, self._cast.torn))
        if self._recorded is not None and self._recorded.rejected:
            n = self._recorded.rejected
            out.append(f"{KEYFRAMES}: {n} unusable line{'s' if n > 1 else ''} skipped (replayed instead)")
        if self._parser_errors:
            where = ", ".join(str(p + 1) for p in sorted(self._parser_errors)[:5])
            first = self._parser_errors[min(self._parser_errors)]
            out.append(
                f"{CAST}: the screen parser failed at line {where} ({first}); "
                "replayed past it as the live terminal did"
            )
        return out

    # ---- events ----------------------------------------------------------------------------

    def cycles(self) -> list[dict[str, Any]]:
        """Cycle events in the order they were recorded."""
        return list(self._cycles)

    def results(self) -> list[dict[str, Any]]:
        """Experiment events in order."""
        return [e for e in self.events if e["type"] == "experiment"]

    # ---- screens ---------------------------------------------------------------------------

    @property
    def cast_length(self) -> int:
        """Cast events read so far (``screen_at_event`` takes 0 to this)."""
        return len(self._cast.events) if self._cast is not None else 0

    def _require_cast(self) -> CastReader:
        if self._cast is None:
            raise SessionError(f"{self.path}: no usable terminal recording ({self._cast_problem})")
        return self._cast

    def screen_at(self, cycle: int, *, with_style: bool = False) -> Snapshot:
        """The screen as it was when ``cycle`` was recorded (with colours if ``with_style``)."""
        event = self._cycle_at.get(cycle) if type(cycle) is int else None
        if event is None:
            raise SessionError(f"{self.path}: no cycle {cycle!r} in this session")
        index = event.get("cast_index")
        if type(index) is not int or index < 0:
            raise SessionError(f"{self.path}: cycle {cycle} has no cast position")
        held = event.get("cast_held")
        return self._screen_at(index, held if type(held) is int and held > 0 else 0, with_style)

    def screen_at_event(self, index: int, *, with_style: bool = False) -> Snapshot:
        """The screen after the first ``index`` cast events."""
        return self._screen_at(max(0, index), 0, with_style)

    def screen_at_time(self, t: float, *, with_style: bool = False) -> Snapshot:
        """The screen at ``t`` seconds into the recording (for playing the cast)."""
        cast = self._require_cast()
        return self._screen_at(bisect.bisect_right(cast.times, t), 0, with_style)

    def _screen_at(self, index: int, held: int, with_style: bool) -> Snapshot:
        cast = self._require_cast()
        index = min(index, len(cast.events))
        screen = self._seek(index)
        if not held:
            return screen.snapshot(with_style=with_style)
        # Output held back by redaction at this moment begins the next output event; feed just
        # that much, then drop the working screen, which is now between two events.
        for event in cast.events[index:]:
            if event is not None and event[1] == "o":
                assert self._replay is not None
                self._replay.stream.feed(event[2][:held])
                break
        snap = screen.snapshot(with_style=with_style)
        self._replay = None
        return snap

    def _seek(self, n: int) -> ScreenModel:
        cast = self._require_cast()
        if not self._kf_pos:
            first = TerminalScreen(cast.header.width, cast.header.height, history=0)
            self._kf_pos.append(0)
            self._kf[0] = _Keyframe(first, self._cells)
        while True:
            k = self._kf_pos[bisect.bisect_right(self._kf_pos, n) - 1]
            r = self._recorded.before(n) if self._recorded is not None else -1
            if self._replay is not None and max(k, r) <= self._work_pos <= n:
                break  # the working screen is as close as any keyframe
            if r > k:
                screen = self._recorded.take(r, self._cells)  # type: ignore[union-attr]
                if screen is not None:
                    bisect.insort(self._kf_pos, r)
                    self._kf[r] = _Keyframe(screen, self._cells)
                    self._start_work(_Replay(screen), r)
                    break
                continue  # unusable: the next one back
            self._start_work(_Replay(self._kf[k].thaw()), k)
            break
        self._advance(n)
        assert self._replay is not None
        return self._replay.screen

    def _start_work(self, replay: _Replay, pos: int) -> None:
        self._replay = replay
        self._work_pos = self._last_kf = pos
        self._chars_since_kf = 0

    def _advance(self, n: int) -> None:
        assert self._replay is not None and self._cast is not None
        replay, events = self._replay, self._cast.events
        pos = self._work_pos
        while pos < n:
            event = events[pos]
            pos += 1
            error = replay.feed(event)
            if error is not None and pos not in self._parser_errors:
                self._parser_errors[pos] = error
            if event is not None and event[1] == "o":
                self._chars_since_kf += len(event[2])
            self.fed_events += 1
            if (
                pos - self._last_kf >= KEYFRAME_EVENTS or self._chars_since_kf >= KEYFRAME_CHARS
            ) and replay.at_ground:
                if pos not in self._kf:
                    bisect.insort(self._kf_pos, pos)
                    self._kf[pos] = _Keyframe(replay.screen, self._cells)
                self._last_kf = pos
                self._chars_since_kf = 0
        self._work_pos = pos

    def build_keyframes(self) -> None:
        """Replay the whole cast once so that every later seek is short (a viewer can call this
        in a worker right after opening; seeks also build keyframes as they go). With the
        recorder's keyframes, seeks are short already: this replays only the tail they miss."""
        self._seek(self.cast_length)

    @property
    def keyframes(self) -> int:
        """Keyframes a seek can start from: kept in memory, or recorded and not yet read."""
        return len(self._kf_pos) + (len(self._recorded.positions) if self._recorded is not None else 0)


def _line_problems(name: str, bad: list[int], pending: int) -> list[str]:
    out = []
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", …" if len(bad) > 5 else "")
        plural = "s" if len(bad) > 1 else ""
        out.append(f"{name}: {len(bad)} unreadable line{plural} skipped (line{plural} {shown})")
    if pending:
        out.append(
            f"{name}: the last line is incomplete ({pending} bytes): "
            "cut off by a crash, or still being written"
        )
    return out


# ---- listing and printing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of ``clive sessions``."""

    id: str
    path: Path
    started: str | None
    playbook: str | None
    policy: str | None
    status: str
    cycles: int
    duration: float | None
    best_metric: float | None


def _number(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    return None


def _pid_alive(meta: Mapping[str, Any]) -> bool:
    pid = meta.get("pid")
    if type(pid) is not int or pid <= 0 or meta.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, we just may not signal it
    return True


def _lines_with_prefix(data: bytes, prefix: bytes) -> list[dict[str, Any]]:
    found = []
    start = 0 if data.startswith(prefix) else data.find(b"\n" + prefix)
    while start != -1:
        if data[start : start + 1] == b"\n":
            start += 1
        end = data.find(b"\n", start)
        if end == -1:
            break  # torn
        try:
            event = parse_json_line(data[start:end])
        except ValueError:
            event = None
        if isinstance(event, dict):
            found.append(event)
        start = data.find(b"\n" + prefix, end)
    return found


def _last_t(data: bytes) -> float | None:
    end = data.rfind(b"\n")
    while end > 0:
        start = data.rfind(b"\n", 0, end) + 1
        try:
            event = parse_json_line(data[start:end])
        except ValueError:
            event = None
        if isinstance(event, dict) and _number(event.get("t")) is not None:
            return _number(event["t"])
        end = start - 1
    return None


def _results_tsv(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    if not lines:
        return []
    head = lines[0].split("\t")
    if "metric" in head and "status" in head:
        mi, si, rows = head.index("metric"), head.index("status"), lines[1:]
    else:
        mi, si, rows = 1, 2, lines
    out = []
    for line in rows:
        cols = line.split("\t")
        if len(cols) > max(mi, si):
            try:
                metric: float | None = float(cols[mi])
            except ValueError:
                metric = None
            out.append({"metric": metric, "status": cols[si].strip()})
    return out


def _best(results: list[dict[str, Any]], direction: Any) -> float | None:
    kept = [m for r in results if r.get("status") == "keep" and (m := _number(r.get("metric"))) is not None]
    if not kept:
        return None
    if direction == "minimize":
        return min(kept)
    if direction == "maximize":
        return max(kept)
    return kept[-1]  # keep means "better than before": the last one kept is the best


def summarize_session(path: str | os.PathLike[str]) -> SessionSummary:
    """What ``clive sessions`` shows for one session, read quickly (cycle lines are counted,
    not parsed)."""
    path = Path(path)
    meta: dict[str, Any] = {}
    try:
        raw = parse_json_line((path / META).read_bytes())
        if isinstance(raw, dict):
            meta = raw
    except (OSError, ValueError):
        pass
    try:
        data = (path / EVENTS).read_bytes()
    except OSError:
        data = b""
    data = data[: data.rfind(b"\n") + 1]  # complete lines only
    cycles = data.count(b"\n" + _CYCLE_PREFIX) + data.startswith(_CYCLE_PREFIX)
    experiments = _lines_with_prefix(data, b'{"type": "experiment"')
    ends = _lines_with_prefix(data, b'{"type": "end"')
    status = meta.get("status")
    if not isinstance(status, str):
        end_status = ends[-1].get("status") if ends else None
        status = end_status if isinstance(end_status, str) else "unknown"
    if status == "running" and not _pid_alive(meta):
        status = "unfinished"
    duration = _number(meta.get("duration")) if status != "running" else None
    if duration is None:
        duration = _last_t(data)
    results = experiments or _results_tsv(path / RESULTS)

    def text(key: str) -> str | None:
        value = meta.get(key)
        return str(value) if value is not None else None

    sid = meta.get("id")
    return SessionSummary(
        id=sid if isinstance(sid, str) else path.name,
        path=path,
        started=text("started"),
        playbook=text("playbook"),
        policy=text("policy"),
        status=status,
        cycles=cycles,
        duration=duration,
        best_metric=_best(results, meta.get("direction")),
    )


def list_sessions(sessions_dir: str | os.PathLike[str]) -> list[SessionSummary]:
    """Every session under ``sessions_dir``, oldest first (an absent directory has none)."""
    root = Path(sessions_dir)
    try:
        dirs = sorted(p for p in root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise SessionError(f"not a directory: {root}") from None
    return [
        summarize_session(d) for d in dirs if (d / META).is_file() or (d / EVENTS).is_file()
    ]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    tenths = int((seconds - whole) * 10)
    return f"{h}:{m:02d}:{s:02d}.{tenths}"


def format_sessions(summaries: Iterable[SessionSummary]) -> list[str]:
    """One line per session: id, status, cycles, duration, best metric, policy, playbook."""
    lines = []
    for s in summaries:
        best = f"best {s.best_metric:g}" if s.best_metric is not None else "-"
        lines.append(
            f"{s.id:<22} {s.status:<11} {s.cycles:>6} cycles  {_clock(s.duration):>11}  "
            f"{best:<16} {s.policy or '-':<9} {s.playbook or '-'}"
        )
    return lines


def format_timeline(reader: SessionReader) -> list[str]:
    """``clive replay --print``: one line per cycle: cycle, time, action, exit code, duration,
    checkpoint."""
    lines = []
    for event in reader.cycles():
        outcome = event.get("outcome")
        outcome = outcome if isinstance(outcome, dict) else {}
        code = outcome.get("exit_code")
        exit_text = f"exit {code}" if type(code) is int else "-"
        duration = _number(outcome.get("duration"))
        dur_text = f"{duration:.2f}s" if duration is not None else "-"
        checkpoint = event.get("checkpoint")
        ckpt = str(checkpoint)[:12] if checkpoint else "-"  # a short sha
        cycle = event.get("cycle")
        action = summarize_action(event.get("action"), 48)
        lines.append(
            f"{str(cycle):>5}  {_clock(_number(event.get('t'))):>11}  {action:<48}  "
            f"{exit_text:>8}  {dur_text:>8}  {ckpt}"
        )
    return lines


def resolve_session(name: str, sessions_dir: str | os.PathLike[str]) -> Path:
    """A session named on the command line: a directory, an id in ``sessions_dir``, or a
    unique prefix of one."""
    if not name:
        raise SessionError("no session given")
    direct = Path(name)
    if direct.is_dir():
        return direct
    root = Path(sessions_dir)
    if (root / name).is_dir():
        return root / name
    try:
        matches = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(name))
    except OSError:
        matches = []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(p.name for p in matches[:4])
        raise SessionError(f"{name!r} matches {len(matches)} sessions in {root}: {shown}")
    raise SessionError(f"no such session: {name} (not a directory, nor an id in {root})")
