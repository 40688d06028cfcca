"""Sessions on disk: the recorder that writes them as they happen, and the reader that replays them.

``sessions/<id>/`` holds ``meta.json`` (rewritten atomically), ``events.jsonl`` (one JSON object
per line, each written with one ``write()``) and ``terminal.cast`` (asciicast v2). Nothing is
buffered in this process, so a SIGKILL loses at most the line being written, and the reader
reports that torn line instead of failing. Once the cast is long enough to be slow to replay, a
helper process follows it and appends ``keyframes.jsonl``: the screen every few milliseconds of
replay, so that a seek anywhere feeds the cast from the keyframe before it (``clive.keyframes``).
Keyframes are a cache the reader checks and may ignore; sessions without them replay as before.
Secrets never reach any of these files.
"""

from __future__ import annotations

import bisect
import codecs
import json
import math
import os
import re
import secrets as _random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyte.screens import Char

from clive import __version__, keyframes
from clive.actions import summarize_action
from clive.cast import (
    AppendedLines,
    CastReader,
    CastWriter,
    SessionError,
    encode_line,
    parse_json_line,
    parse_size,
    truncate_torn,
    write_all,
)
from clive.keyframes import Keyframe, RecordedKeyframes, Replay
from clive.screen import ScreenModel, Snapshot, TerminalScreen

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


# What the keyframe process runs (``python -c``): keyframes.keyframe_process, with a Redactor of its own
# that learns the secrets the recorder sends it.
_HELPER = "import clive.keyframes as k, clive.record as r; k.keyframe_process(r.Redactor())"


class Recorder:
    """Writes one session as it happens; a Terminal listener (``on_output``, ``on_input``).

    Every line goes to the kernel with one ``write()`` before the call returns, so a crash of
    this process loses nothing written; ``fsync_interval`` bounds what a power cut can lose
    (cycle events fsync both files at most this often; None: only on close). Thread-safe:
    output arrives on the terminal's reader thread while events come from the loop. Once the cast
    holds ``KEYFRAME_START`` characters of output, a helper process writes keyframes.jsonl beside
    it (see ``keyframes.keyframe_process``): the reader's seeks start from those.
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
            if not self._keyframer_tried and self._cast_chars >= keyframes.KEYFRAME_START:
                self._start_keyframer()
            return record

    # ---- keyframes -------------------------------------------------------------------------

    def _start_keyframer(self) -> None:
        """Start the keyframe process (see ``keyframes.keyframe_process``); without it, seeks replay."""
        self._keyframer_tried = True
        if not sys.executable:
            return
        # Only what it needs: no secret-looking variables, and clive importable as it is here.
        env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._keyframer = subprocess.Popen(
                [sys.executable, "-c", _HELPER, str(self.path / CAST), str(self.path / KEYFRAMES),
                 repr(keyframes.KEYFRAME_SPACING), repr(keyframes.KEYFRAME_LAG), str(int(keyframes.KEYFRAME_IDLE))],
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
            self._stop_keyframer(keyframes.KEYFRAME_WAIT)  # the cast is complete: keyframes catch up
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
        self._kf: dict[int, Keyframe] = {}
        self._cells: dict[Char, Char] = {}
        self._recorded = RecordedKeyframes(path / KEYFRAMES) if recorded_keyframes else None
        self._replay: Replay | None = None  # the working screen, after _work_pos cast events
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
            self._kf[0] = Keyframe(first, self._cells)
        while True:
            k = self._kf_pos[bisect.bisect_right(self._kf_pos, n) - 1]
            r = self._recorded.before(n) if self._recorded is not None else -1
            if self._replay is not None and max(k, r) <= self._work_pos <= n:
                break  # the working screen is as close as any keyframe
            if r > k:
                screen = self._recorded.take(r, self._cells)  # type: ignore[union-attr]
                if screen is not None:
                    bisect.insort(self._kf_pos, r)
                    self._kf[r] = Keyframe(screen, self._cells)
                    self._start_work(Replay(screen), r)
                    break
                continue  # unusable: the next one back
            self._start_work(Replay(self._kf[k].thaw()), k)
            break
        self._advance(n)
        assert self._replay is not None
        return self._replay.screen

    def _start_work(self, replay: Replay, pos: int) -> None:
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
                pos - self._last_kf >= keyframes.KEYFRAME_EVENTS or self._chars_since_kf >= keyframes.KEYFRAME_CHARS
            ) and replay.at_ground:
                if pos not in self._kf:
                    bisect.insort(self._kf_pos, pos)
                    self._kf[pos] = Keyframe(replay.screen, self._cells)
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
