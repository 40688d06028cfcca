"""``clive run --workers N --tui``: the run goes on headless in a process of its own, exactly as it
would without ``--tui``, and the viewer follows its session on disk: the results and the chart as
experiments are judged, and each worker's terminal (``w``, or choose a result's row) as its recording
comes back, about once a second. Quitting the viewer stops the run as Ctrl-C does: every worker
stops, everything is saved, and ``clive run --resume`` continues it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from clive.session import SessionError, SessionReader
from clive.tui.replay import ReplayApp

SESSION_LINE = re.compile(r"^session (\S+) in (.+)$")  # the runner's first line on stderr
LOG_TAIL = 20  # lines of the run's own output shown once the viewer closes
STOP_WAIT = 120.0  # seconds for a stopped run to save and end


class RunProcess(Protocol):
    """The run being watched, as far as the viewer asks (a ``subprocess.Popen`` is one)."""

    def poll(self) -> int | None: ...


class WatchApp(ReplayApp):
    """The replay viewer on a run still going, told when its process ends."""

    start_at_first = False  # the newest cycle, as the live co-pilot opens

    def __init__(self, reader: SessionReader, run: RunProcess, **kwargs: Any) -> None:
        super().__init__(reader, follow=True, **kwargs)
        self.run_process = run
        self._ended_told = False
        self._newest_shown: tuple[Any, int] | None = None  # (reader, cast length) last drawn whole

    def started(self) -> None:
        self.set_interval(0.5, self._check_run, name="run")

    def _check_run(self) -> None:
        code = self.run_process.poll()
        if code is not None and not self._ended_told:
            self._ended_told = True
            self.notify(f"the run ended (exit {code}); q closes the viewer", timeout=10)
        if self._at_newest() and not self.playing:
            self._show_newest()

    def _at_newest(self) -> bool:
        return bool(self.cycle_events) and self.index == len(self.cycle_events) - 1

    def show_screen(self, event: dict[str, Any]) -> None:
        # At the newest cycle the terminal shows what came after it too: the command still running.
        self._newest_shown = None
        if self._at_newest() and self._show_newest():
            return
        super().show_screen(event)

    def _show_newest(self) -> bool:
        reader = self.reader
        if reader is None or reader.cast_length == 0:
            return False
        if self._newest_shown == (reader, reader.cast_length):
            return True
        try:
            snap = reader.screen_at_time(float("inf"), with_style=True)
        except SessionError:
            return False
        self._newest_shown = (reader, reader.cast_length)
        self.terminal_view.show(snap)
        return True

    def title_parts(self) -> list[str]:
        parts = super().title_parts()
        if self.run_process.poll() is None:
            parts.insert(0, "● live")
        return parts


def watch_run(argv: list[str], say: Any = None) -> int:
    """Start ``clive run ARGV`` (without ``--tui``) and follow its session; returns the run's exit code."""
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    run = subprocess.Popen(
        [sys.executable, "-m", "clive", "run", *argv],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # the viewer's keys are its own: stopping the run is the viewer's call
    )
    assert run.stderr is not None
    said: deque[str] = deque(maxlen=LOG_TAIL)
    session: Path | None = None
    for line in run.stderr:
        said.append(line.rstrip("\n"))
        found = SESSION_LINE.match(line.rstrip("\n"))
        if found:
            session = Path(found.group(2))
            break
    drain = threading.Thread(target=lambda: said.extend(line.rstrip("\n") for line in run.stderr), daemon=True)
    drain.start()  # the run must never block on a full pipe while the viewer is open
    code: int | None = None
    try:
        if session is not None:
            try:
                reader = SessionReader.open(session)
            except SessionError as exc:
                say(f"clive: cannot follow the run: {exc}")
            else:
                WatchApp(reader, run).run()
        if run.poll() is None:
            say("clive: stopping the run (every worker saves what it has)")
            run.send_signal(signal.SIGINT)
        code = run.wait(timeout=STOP_WAIT)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        run.send_signal(signal.SIGINT)  # a second Ctrl-C: the run aborts, as in a terminal
        try:
            code = run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()  # its watchdog ends what it started
            code = run.wait()
    drain.join(timeout=5)
    for line in said:
        say(line)
    return code
