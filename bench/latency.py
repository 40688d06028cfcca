"""Command latency: from sending a trivial command to knowing its exit code.

* clive: ``Terminal.run(":")`` on bash with shell integration (the prompt's OSC 133 D marker carries
  the exit code, so it returns the moment the prompt comes back);
* tmux: ``send-keys "true; echo __done_<i>_$?" Enter``, then ``capture-pane`` every 10 ms until the
  line ``__done_<i>_0`` appears (how tmux-based agents learn a command finished).

Median and p95 over 200 rounds each (50 with --quick), in the same run.

    python -m bench --only latency [--quick]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._tmux import Tmux
from clive.terminal import Terminal

POLL = 0.010
TARGET_MS = 3.0
TARGET_SPEEDUP = 3.0


def clive_rounds(rounds: int, command: str = ":") -> list[float]:
    """Seconds per ``run(command)``."""
    with tempfile.TemporaryDirectory(prefix="clive-latency-") as tmp, Terminal(cols=80, rows=24, cwd=tmp) as term:
        for _ in range(10):
            term.run(command)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            result = term.run(command)
            times.append(time.perf_counter() - started)
            if result.exit_code != 0:
                raise RuntimeError(f"clive: {command!r} exited {result.exit_code}")
        return times


def tmux_rounds(rounds: int) -> list[float]:
    """Seconds from send-keys to seeing the marker with its exit code in capture-pane."""
    with tempfile.TemporaryDirectory(prefix="clive-latency-") as tmp, Tmux(Path(tmp)) as tmux:
        times = []
        for i in range(-5, rounds):  # five rounds of warm-up
            if i % 20 == 0:
                tmux.send("clear")
                time.sleep(0.05)
            marker = f"__done_{i}_0"
            started = time.perf_counter()
            tmux.send(f"true; echo __done_{i}_$?")
            deadline = started + 10
            while marker not in tmux.capture():
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"tmux: {marker} did not appear")
                time.sleep(POLL)
            if i >= 0:
                times.append(time.perf_counter() - started)
        return times


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def run(quick: bool) -> list[dict[str, Any]]:
    rounds = 50 if quick else 200
    clive = clive_rounds(rounds)
    tmux = tmux_rounds(rounds)
    rows = []
    for name, stat in (("median", statistics.median), ("p95", _p95)):
        c, t = stat(clive) * 1000, stat(tmux) * 1000
        ok = c <= TARGET_MS and t / c >= TARGET_SPEEDUP if name == "median" else None
        print(f"latency: {name} clive {c:.2f} ms, tmux {t:.2f} ms", file=sys.stderr, flush=True)
        rows.append(
            {
                "figure": f"latency: trivial command to exit code, {name} ({rounds} rounds)",
                "clive": c,
                "baseline": t,
                "unit": "ms",
                "ratio": c / t,
                "target": f"<= {TARGET_MS:g} ms, <= 1/{TARGET_SPEEDUP:g} of tmux" if name == "median" else "-",
                "pass": ok,
            }
        )
    return rows


if __name__ == "__main__":
    from bench.run import render_table

    print(render_table(run(quick="--quick" in sys.argv[1:])))
