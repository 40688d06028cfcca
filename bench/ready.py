"""How soon clive sees a program's question: ``wait_ready`` against the two usual ways, in the same run.

A program works silently for a moment, writes a CLOCK_MONOTONIC timestamp to a file, prints
``Continue? [y/N]`` and reads the answer. Each round measures the time from that timestamp to the
moment the wait returns, rotating between:

- clive: ``Terminal.wait_ready()`` (the kernel says the program blocks reading the terminal);
- idle timeout: return once the screen has been unchanged for 2 s (``wait_idle(quiet_ms=2000)``);
- screen poll: every 10 ms, look for a prompt-like regex on the cursor's line.

CLOCK_MONOTONIC is one clock for every process on Linux, so the program's timestamp and the wait's
return time compare directly. Run: ``python bench/ready.py [--quick]``.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clive.terminal import Terminal

TARGET_MS = 2.0
IDLE_QUIET_MS = 2000
POLL_INTERVAL = 0.01
# What screen-polling agents look for: the usual prompt endings.
PROMPT_RE = re.compile(r"(\[y/n\]|\(yes/no\)|password:|passphrase|continue\?)\s*$", re.IGNORECASE)

ASKER = """\
import os, sys, time
stamp, rounds = sys.argv[1], int(sys.argv[2])
fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
for n in range(rounds):
    time.sleep(0.05 + 0.05 * (n % 4))  # silent work
    t = time.monotonic()
    os.pwrite(fd, f"{n:6d} {t!r:>24}".encode(), 0)  # fixed width: each record overwrites the last
    os.write(1, f"round {n}: Continue? [y/N] ".encode())
    input()
"""


def _wait_clive(t: Terminal) -> None:
    t.wait_ready(timeout=30)


def _wait_idle(t: Terminal) -> None:
    t.wait_idle(quiet_ms=IDLE_QUIET_MS, timeout=30)


def _wait_poll(t: Terminal) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        snap = t.snapshot()
        if PROMPT_RE.search(snap.lines[snap.cursor[1]].rstrip()):
            return
    raise TimeoutError("no prompt-like line within 30 s")


METHODS: dict[str, Callable[[Terminal], None]] = {
    "clive": _wait_clive,
    "idle": _wait_idle,
    "poll": _wait_poll,
}


def _measure(rounds: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    latencies: dict[str, list[float]] = {name: [] for name in METHODS}
    early = dict.fromkeys(METHODS, 0)
    order = list(METHODS) * rounds
    with tempfile.TemporaryDirectory(prefix="clive-bench-ready-") as tmp:
        work = Path(tmp)
        (work / "asker.py").write_text(ASKER)
        stamp = work / "stamp"
        with Terminal(cols=100, rows=30, cwd=work) as t:
            t.press(f"{sys.executable} asker.py stamp {len(order)}<Enter>")
            for n, name in enumerate(order):
                METHODS[name](t)
                returned = time.monotonic()
                record = stamp.read_text().split() if stamp.exists() else []
                asked, when = (record + ["-1", "0"])[:2]
                if asked != str(n) or not t.snapshot().contains(f"round {n}: Continue?"):
                    early[name] += 1  # returned before the question was on the screen
                    t.wait_text(f"round {n}: Continue?", timeout=30)
                    t.wait_ready(timeout=30)
                else:
                    latencies[name].append((returned - float(when)) * 1000)
                t.press("y<Enter>")
            t.wait_prompt(timeout=30)
    return latencies, early


def run(quick: bool) -> list[dict]:
    """Rows comparing wait_ready's latency with an idle timeout and a 10 ms screen poll."""
    latencies, early = _measure(5 if quick else 20)

    def median(name: str) -> float:
        return statistics.median(latencies[name]) if latencies[name] else float("nan")

    def worst(name: str) -> float:
        return max(latencies[name]) if latencies[name] else float("nan")

    def row(figure: str, clive: float, baseline: float, unit: str, target: str, ok: bool) -> dict:
        ratio = round(baseline / clive, 1) if clive and baseline == baseline else None
        return {
            "figure": figure,
            "clive": round(clive, 3),
            "baseline": round(baseline, 3),
            "unit": unit,
            "ratio": ratio,
            "target": target,
            "pass": ok,
        }

    rounds = len(latencies["clive"]) + early["clive"]
    target = f"<= {TARGET_MS:g} ms"
    return [
        row(
            f"question -> ready, median of {rounds} (baseline: {IDLE_QUIET_MS} ms idle timeout)",
            median("clive"),
            median("idle"),
            "ms",
            target,
            median("clive") <= TARGET_MS,
        ),
        row(
            f"question -> ready, median of {rounds} (baseline: 10 ms screen poll)",
            median("clive"),
            median("poll"),
            "ms",
            target,
            median("clive") <= TARGET_MS,
        ),
        row(
            f"question -> ready, worst of {rounds} (baseline: 10 ms screen poll)",
            worst("clive"),
            worst("poll"),
            "ms",
            target,
            worst("clive") <= TARGET_MS,
        ),
        row(
            "returned before the question appeared (baseline: 10 ms screen poll)",
            early["clive"],
            early["poll"],
            "rounds",
            "0",
            early["clive"] == 0,
        ),
    ]


def main() -> None:
    rows = run(quick="--quick" in sys.argv[1:])
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{width}}  {'clive':>9}  {'baseline':>9}  unit    ratio  target    pass")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:g}x"
        print(
            f"{r['figure']:<{width}}  {r['clive']:>9g}  {r['baseline']:>9g}  {r['unit']:<6}  "
            f"{ratio:>6}  {r['target']:<8}  {'yes' if r['pass'] else 'NO'}"
        )


if __name__ == "__main__":
    main()
