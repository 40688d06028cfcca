"""The recorder: writes one session as it happens (meta.json, events.jsonl, terminal.cast) and starts the
keyframe helper beside it.

Nothing is buffered in this process, so a SIGKILL loses at most the line being written, and the
reader reports that torn line instead of failing. Once the cast is long enough to be slow to replay,
a helper process follows it and appends ``keyframes.jsonl`` (``clive.session.keyframes``). Secrets
never reach any of these files (``clive.session.redaction``).
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from clive import __version__
from clive.session import keyframes
from clive.session.cast import (
    CastReader,
    CastWriter,
    SessionError,
    encode_line,
    truncate_torn,
    write_all,
)
from clive.session.files import (
    CAST,
    EVENTS,
    KEYFRAMES,
    META,
    atomic_write,
    check_size,
    count_cycles,
    fsync_dir,
    iso_time,
    new_session_id,
    pid_alive,
)
from clive.session.redaction import (
    MIN_TYPED_SECRET,
    REDACTED,
    SECRET_NAME,
    RedactedStream,
    Redactor,
    TypedSecret,
    may_show_secrets,
    secrets_from_env,
    secrets_in,
)

# How long a resume waits for the process that recorded the session to end (seconds).
RESUME_WAIT = 5.0
# What the keyframe process runs (``python -c``): keyframes.keyframe_process, with a Redactor of its own
# that learns the secrets the recorder sends it.
_HELPER = "import clive.session.keyframes as k, clive.session.redaction as r; k.keyframe_process(r.Redactor())"


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
        self._streams = {c: RedactedStream(redactor, learned=self._learned) for c in "oi"}
        self._typed: TypedSecret | None = None
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
        check_size(width, height)
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
        full: dict[str, Any] = {"id": sid, "started": iso_time(started), "ended": None, "status": "running"}
        full.update({k: v for k, v in meta.items() if k not in ("id", "started", "ended", "status")})
        full.setdefault("cols", width)
        full.setdefault("rows", height)
        full.update(clive_version=__version__, pid=os.getpid(), host=socket.gethostname())
        redactor = Redactor(secrets_from_env() if secrets is None else secrets)
        env = cast_env or {"TERM": "xterm-256color", "SHELL": os.environ.get("SHELL", "/bin/bash")}
        events_fd = None
        try:
            atomic_write(path / META, _meta_bytes(full, redactor))
            events_fd = os.open(path / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            writer = CastWriter.create(
                path / CAST, width, height, timestamp=started, env=redactor.value(env)
            )
        except OSError as exc:
            if events_fd is not None:
                os.close(events_fd)
            shutil.rmtree(path, ignore_errors=True)  # bad input never leaves a half-made session
            raise SessionError(f"cannot create the session in {path}: {exc.strerror or exc}") from None
        fsync_dir(path)
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
        if meta.get("status") == "running" and meta.get("pid") != os.getpid():
            # A process killed a moment ago may still be dying (a kill -9 takes its time to reap):
            # give it a few seconds before saying it records the session.
            deadline = time.monotonic() + RESUME_WAIT
            while pid_alive(meta):
                if time.monotonic() > deadline:
                    raise SessionError(f"cannot resume {path}: process {meta['pid']} is still recording it")
                time.sleep(0.05)
        try:
            cast = CastReader(path / CAST)  # checks the header before anything is changed
            if not (path / EVENTS).exists():
                (path / EVENTS).touch()
            cut_cast = truncate_torn(path / CAST)
            cut_events = truncate_torn(path / EVENTS)
        except OSError as exc:
            raise SessionError(f"cannot resume {path}: {exc.strerror or exc}") from None
        cycles, last_cycle = count_cycles(path / EVENTS)

        redactor = Redactor(secrets_from_env() if secrets is None else secrets)
        writer = CastWriter.append(path / CAST, len(cast.events))
        events_fd = os.open(path / EVENTS, os.O_WRONLY | os.O_APPEND)
        previous = meta.get("status")
        meta.update(
            status="running",
            ended=None,
            pid=os.getpid(),
            host=socket.gethostname(),
            resumed=[*_list(meta.get("resumed")), iso_time(time.time())],
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
                check_size(width, height)
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
                    self._typed = TypedSecret()
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

    def _learned(self, value: str) -> None:
        """A secret the streams recognised by its shape (called with the lock held)."""
        if self._keyframer is not None:
            self._tell_keyframer(encode_line(value))

    def scrub(self, text: str) -> str:
        """``text`` (a screen, an action's output) as a model may read it: every secret it shows,
        known or recognised by its shape, redacted; a new one is redacted in the files from now on."""
        with self._lock:
            for secret in secrets_in(text):
                self._add_secret(secret)
            return self._redactor.text(text)

    def add_secret(self, value: str) -> None:
        """Redact ``value`` in everything written from now on."""
        with self._lock:
            self._add_secret(value)

    def _add_secret(self, value: str) -> None:
        if self._redactor.add(value) and self._keyframer is not None:
            self._tell_keyframer(encode_line(value))

    def resize(self, cols: int, rows: int) -> None:
        check_size(cols, rows)
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
            data = encode_line(record)
            if may_show_secrets(data):
                for secret in self._redactor.learn_from(record):
                    self._learned(secret)
            data, record = self._redactor.line(record, data)
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
                ended=iso_time(time.time()),
                duration=round(now, 3),
                cycles=self.cycles,
            )
            self._write_meta()
            if error:
                raise SessionError(error)

    def _write_meta(self) -> None:
        try:
            atomic_write(self.path / META, _meta_bytes(self._meta, self._redactor))
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
