"""The viewer on a synthetic 10,000-cycle recording, headless (Textual's Pilot): the time to open
it (read the session, build the timeline, show the first screen) and to step through 1,000 cycles
with ``j`` (each step redraws the recorded screen, the detail pane and the timeline cursor).

    python bench/viewer.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clive.record import Recorder, SessionReader
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


async def measure(path: Path, steps: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    app = ReplayApp(SessionReader.open(path), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        opened = time.perf_counter() - started
        assert app.terminal_view.snapshot is not None and len(app.cycle_events) > steps
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            await pilot.press("j")
            times.append(time.perf_counter() - t0)
        assert app.index == steps
    return opened, times


def row(figure: str, clive: float, target: str, ok: bool) -> dict[str, Any]:
    return {"figure": figure, "clive": clive, "baseline": None, "unit": "s", "ratio": None,
            "target": target, "pass": ok}  # fmt: skip


def run(quick: bool) -> list[dict[str, Any]]:
    cycles = 1000 if quick else 10_000
    steps = 200 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        path = record(Path(tmp), cycles)
        opened, times = asyncio.run(measure(path, steps))
    mean = statistics.fmean(times)
    p95 = sorted(times)[int(0.95 * len(times)) - 1]
    return [
        row(f"open a {cycles:,}-cycle recording", opened, "≤ 1.5 s", opened <= 1.5),
        row(f"step through {steps:,} cycles, mean", mean, "≤ 30 ms", mean <= 0.030),
        row(f"step through {steps:,} cycles, p95", p95, "≤ 30 ms", p95 <= 0.030),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 cycles and 200 steps")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    width = max(len(r["figure"]) for r in rows)
    for r in rows:
        print(f"{r['figure']:<{width}}  {r['clive'] * 1000:9.1f} ms  {r['target']:<9} "
              f"{'yes' if r['pass'] else 'NO'}")  # fmt: skip
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
