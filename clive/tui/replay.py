"""``clive replay SESSION``: the viewer on a recording, stepping cycle by cycle or playing the cast."""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from clive.session import SessionError, SessionReader
from clive.tui.session_app import SessionApp, blank_snapshot

SPEEDS = (1, 4, 16)
PLAY_TICK = 0.1  # seconds between frames while playing


class ReplayApp(SessionApp):
    """A recorded (or still recording) session read from disk."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *SessionApp.BINDINGS,
        Binding("space", "play", "Play"),
        Binding("plus", "faster", "Speed"),
    ]

    COMMANDS_EXTRA = [
        *SessionApp.COMMANDS_EXTRA,
        ("Play / pause", "Play the terminal recording from the selected cycle (space)", "play"),
        ("Change speed", "Cycle the play speed 1x, 4x, 16x (+)", "faster"),
    ]

    def __init__(self, reader: SessionReader, *, follow: bool = True, **kwargs: Any) -> None:
        super().__init__(reader, follow=follow, **kwargs)
        self.speed = 1
        self.playing = False
        self.play_time = 0.0
        self._play_timer: Any = None

    def title_parts(self) -> list[str]:
        parts = super().title_parts()
        if self.playing:
            parts.insert(0, f"▶ {self.speed}x {self.play_time:.1f}s")
        return parts

    # ---- playing the cast ----------------------------------------------------------------

    def action_play(self) -> None:
        if self.playing:
            self._stop_playing()
            return
        if self.reader is None or self.reader.cast_length == 0:
            self.notify("no terminal recording to play", severity="warning")
            return
        event = self.cycle_events[self.index] if 0 <= self.index < len(self.cycle_events) else {}
        t = event.get("t")
        self.play_time = float(t) if isinstance(t, int | float) and self.index > 0 else 0.0
        self.playing = True
        self._play_timer = self.set_interval(PLAY_TICK, self._play_tick, name="play")
        self.update_title()

    def action_faster(self) -> None:
        self.speed = SPEEDS[(SPEEDS.index(self.speed) + 1) % len(SPEEDS)]
        self.notify(f"speed {self.speed}x", timeout=1.5)
        self.update_title()

    def _stop_playing(self) -> None:
        self.playing = False
        if self._play_timer is not None:
            self._play_timer.stop()
            self._play_timer = None
        self.update_title()

    def _end_time(self) -> float:
        times = [e.get("t") for e in self.reader.events] if self.reader else []
        numbers = [t for t in times if isinstance(t, int | float)]
        return max(numbers, default=0.0)

    def _play_tick(self) -> None:
        assert self.reader is not None
        self.play_time += PLAY_TICK * self.speed
        try:
            snap = self.reader.screen_at_time(self.play_time)
        except SessionError as exc:
            self.terminal_view.show(blank_snapshot(message=str(exc)))
            self._stop_playing()
            return
        self.terminal_view.show(snap)
        # Keep the timeline on the cycle being played, without redrawing the recorded screen.
        times = [e.get("t") if isinstance(e.get("t"), int | float) else 0.0 for e in self.cycle_events]
        i = bisect.bisect_right(times, self.play_time) - 1
        if i >= 0 and i != self.index:
            self.index = i
            self.timeline.move_cursor(i)
            self.detail.show(self.cycle_events[i])
        self.update_title()
        if self.play_time >= self._end_time() + 1.0:
            self._stop_playing()

    def select(self, index: int) -> None:
        if self.playing:
            self._stop_playing()
        super().select(index)


def run_replay(session_dir: Path, *, follow: bool = True) -> int:
    """Open the viewer on a session directory; returns the exit code (2: not a session)."""
    try:
        reader = SessionReader.open(session_dir)
    except SessionError as exc:
        import sys

        print(f"clive: {exc}", file=sys.stderr)
        return 2
    result = ReplayApp(reader, follow=follow).run()
    return result if isinstance(result, int) else 0
