"""The viewer on a synthetic 10,000-cycle recording, headless: the time to open it (read the
session, build the timeline, show the first screen), to step through 1,000 cycles with ``j`` and
to seek to cycles far apart with ``:N Enter``.

What a step's figure contains: the time from the key event entering the app's message queue
(the way Textual's Pilot and a terminal driver deliver it) until the app is idle again with the
new cycle's screen painted. That is the binding and action (select the cycle, fetch its screen
from the reader, update the terminal widget, the detail pane, the timeline cursor and the title),
the wait for Textual's next screen-update tick (it paints at most 60 times a second, so up to
16.7 ms of the figure is that frame pacing), the compositor rendering every changed line, and the
encoding of the frame as terminal escape sequences, which the headless driver would skip but a
real terminal pays for. The step ends when no widget has a refresh, layout or message pending.

``Pilot.press`` is not used for the figure: it sleeps at least twice 20 ms per key waiting for
the process to look idle, a fixed cost that is not the app's; its figure is printed for reference.

    python bench/viewer.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events
from textual._compositor import CompositorUpdate
from textual.pilot import Pilot

from clive.session import Recorder, SessionReader
from clive.tui.replay import ReplayApp

SIZE = (120, 40)


def record(path: Path, cycles: int) -> Path:
    """A session whose every cycle runs a command that prints a few coloured lines."""
    rec = Recorder.create(path, {"playbook": "bench-viewer.md", "policy": "scripted"}, 100, 30, secrets=[])
    for n in range(1, cycles + 1):
        command = f"python eval.py --variant {n % 97} --seed {n}"
        rec.on_input((command + "\r").encode(), False)
        out = [f"$ {command}\r\n"]
        out += [f"\x1b[1mepoch {k}\x1b[0m loss \x1b[32m{1 / (k + n % 7 + 1):.4f}\x1b[0m\r\n" for k in range(3)]
        rec.on_output("".join(out).encode())
        rec.event(
            "cycle", n,
            action={"type": "run", "command": command, "timeout": 600.0},
            outcome={"ok": True, "exit_code": 0, "duration": 0.25, "text": f"loss {n}"},
            observation={"kind": "diff", "screen": f" 1| $ {command}"},
            reasoning=f"step {n}", usage={"input_tokens": 1200, "output_tokens": 80},
        )  # fmt: skip
    rec.close("done")
    return rec.path


class FrameClock:
    """Notes when the app paints a frame, and encodes it as a real terminal driver would."""

    def __init__(self, app: ReplayApp) -> None:
        self.app = app
        self.last = 0.0  # perf_counter of the latest painted frame
        self.frames = 0
        self.painted = asyncio.Event()
        display = app._display

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)  # the bytes a terminal would be sent
                self.last = time.perf_counter()
                self.frames += 1
                self.painted.set()

        app._display = timed_display  # type: ignore[method-assign]

    def busy(self) -> bool:
        """Whether any widget or the screen still has a repaint, relayout or scroll to do."""
        screen = self.app.screen
        if screen._dirty_widgets or screen._layout_required or screen._repaint_required or screen._scroll_required:
            return True
        return any(w._repaint_required or w._layout_required or w._scroll_required for w in screen.walk_children())

    async def key(self, pilot: Pilot[Any], key: str, done: Callable[[], bool]) -> float:
        """Seconds from sending ``key`` until ``done()`` holds and the app is idle with it painted."""
        app = self.app
        frames = self.frames
        t0 = time.perf_counter()
        app._driver.send_message(events.Key(key, key if len(key) == 1 else None))  # type: ignore[union-attr]
        while True:
            self.painted.clear()
            await pilot._wait_for_screen()  # every message queued so far has been handled
            if done() and self.frames > frames and not self.busy():
                return time.perf_counter() - t0
            if self.busy():
                try:
                    await asyncio.wait_for(self.painted.wait(), 0.1)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)


def shows_screen_of(app: ReplayApp, cycle: int, reader: SessionReader) -> Callable[[], bool]:
    want = reader.screen_at(cycle).lines
    return lambda: app.cycle_events[app.index]["cycle"] == cycle and app.terminal_view.snapshot.lines == want


async def measure(path: Path, steps: int, seeks: int) -> dict[str, Any]:
    started = time.perf_counter()
    app = ReplayApp(SessionReader.open(path), follow=False)
    check = SessionReader.open(path)  # a second reader, to know what each screen must show
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        opened = time.perf_counter() - started
        assert app.terminal_view.snapshot is not None and len(app.cycle_events) > steps
        clock = FrameClock(app)
        step_times = []
        for i in range(1, steps + 1):
            step_times.append(await clock.key(pilot, "j", shows_screen_of(app, app.cycle_events[i]["cycle"], check)))
        seek_times = []
        rng = random.Random(7)
        for _ in range(seeks):
            target = rng.randrange(len(app.cycle_events))
            cycle = app.cycle_events[target]["cycle"]
            await pilot.press("colon", *str(cycle))
            seek_times.append(await clock.key(pilot, "enter", shows_screen_of(app, cycle, check)))
        await pilot.press("g")
        pilot_times = []
        for _ in range(min(steps, 100)):
            t0 = time.perf_counter()
            await pilot.press("j")
            pilot_times.append(time.perf_counter() - t0)
    return {"open": opened, "step": step_times, "seek": seek_times, "pilot": pilot_times}


def row(figure: str, clive: float, target: str, ok: bool | None) -> dict[str, Any]:
    return {"figure": figure, "clive": clive, "baseline": None, "unit": "s", "ratio": None,
            "target": target, "pass": ok}  # fmt: skip


def p95(times: list[float]) -> float:
    return sorted(times)[max(0, int(0.95 * len(times)) - 1)]


def run(quick: bool) -> list[dict[str, Any]]:
    cycles = 1000 if quick else 10_000
    steps = 200 if quick else 1000
    seeks = 20 if quick else 100
    with tempfile.TemporaryDirectory() as tmp:
        path = record(Path(tmp), cycles)
        m = asyncio.run(measure(path, steps, seeks))
    opened, step, seek, pilot = m["open"], m["step"], m["seek"], m["pilot"]
    return [
        row(f"open a {cycles:,}-cycle recording", opened, "≤ 1.5 s", opened <= 1.5),
        row(f"step through {steps:,} cycles (key to painted, idle), mean", statistics.fmean(step), "≤ 30 ms",
            statistics.fmean(step) <= 0.030),
        row(f"step through {steps:,} cycles (key to painted, idle), p95", p95(step), "≤ 30 ms", p95(step) <= 0.030),
        row(f"seek to {seeks} random cycles (:N Enter), mean", statistics.fmean(seek), "≤ 30 ms",
            statistics.fmean(seek) <= 0.030),
        row(f"seek to {seeks} random cycles (:N Enter), p95", p95(seek), "≤ 30 ms", p95(seek) <= 0.030),
        row(f"step with Pilot.press (+ its 2x20 ms idle waits), mean of {len(pilot)}", statistics.fmean(pilot),
            "reference", None),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 cycles, 200 steps, 20 seeks")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    width = max(len(r["figure"]) for r in rows)
    for r in rows:
        verdict = {True: "yes", False: "NO", None: ""}[r["pass"]]
        print(f"{r['figure']:<{width}}  {r['clive'] * 1000:9.1f} ms  {r['target']:<9} {verdict}")
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
