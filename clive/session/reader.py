"""The reader: a recorded (or live) session read as well as its files allow, with seeks to any cycle's
screen from the nearest keyframe."""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyte.screens import Char

from clive.session import keyframes
from clive.session.cast import (
    AppendedLines,
    CastReader,
    SessionError,
    parse_json_line,
)
from clive.session.files import CAST, EVENTS, KEYFRAMES, META
from clive.session.keyframes import Keyframe, RecordedKeyframes, Replay
from clive.terminal.screen import ScreenModel, Snapshot
from clive.terminal.terminal_screen import TerminalScreen


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
