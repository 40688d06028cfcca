"""What the sandbox costs: a sandboxed terminal against a plain one, in the same run.

* start-up: ``Terminal(...)`` to its first prompt, sandboxed (bubblewrap builds the view) vs not;
* a trivial command to its exit code: ``run("/bin/true")`` (an exec, so the sandbox's mount table
  and PID namespace are in the path), median of 200 rounds (50 with --quick);
* a matmul experiment: ``make clean && make check && make bench`` in a copy of playbooks/matmul,
  sandboxed and not, alternating, median of 5 (3 with --quick).

    python -m bench --only sandbox [--quick]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clive.safety.sandbox import Sandbox, unavailable
from clive.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent
COMMAND_TARGET = 1.2
EXPERIMENT_TARGET = 1.03
EXPERIMENT = "make clean >/dev/null && make check >/dev/null && make bench"


def _terminal(work: Path, scratch: Path, sandboxed: bool) -> Terminal:
    return Terminal(cwd=work, cols=120, rows=32, sandbox=Sandbox(work, scratch) if sandboxed else None)


def startup(work: Path, scratch: Path, rounds: int) -> dict[bool, float]:
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for sandboxed in (False, True):
            started = time.perf_counter()
            term = _terminal(work, scratch, sandboxed)
            times[sandboxed].append(time.perf_counter() - started)
            term.close()
    return {k: statistics.median(v) for k, v in times.items()}


def command(work: Path, scratch: Path, rounds: int) -> dict[bool, float]:
    out = {}
    for sandboxed in (False, True):
        with _terminal(work, scratch, sandboxed) as term:
            for _ in range(10):
                term.run("/bin/true")
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                if term.run("/bin/true").exit_code != 0:
                    raise RuntimeError("/bin/true failed")
                times.append(time.perf_counter() - started)
        out[sandboxed] = statistics.median(times)
    return out


def experiment(work: Path, scratch: Path, rounds: int) -> dict[bool, float]:
    terms = {s: _terminal(work, scratch, s) for s in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for i in range(rounds + 1):
            for sandboxed in (False, True) if i % 2 else (True, False):  # alternate who goes first
                started = time.perf_counter()
                result = terms[sandboxed].run(EXPERIMENT, timeout=300)
                if result.exit_code != 0:
                    raise RuntimeError(f"the matmul experiment failed: {result.output[-300:]}")
                if i:  # the first round warms the caches
                    times[sandboxed].append(time.perf_counter() - started)
    finally:
        for term in terms.values():
            term.close()
    return {k: statistics.median(v) for k, v in times.items()}


def run(quick: bool) -> list[dict[str, Any]]:
    reason = unavailable()
    if reason is not None:
        return [{"figure": "sandbox: not measured", "clive": f"skipped: {reason}", "pass": None}]
    rows = []
    with tempfile.TemporaryDirectory(prefix="clive-bench-sandbox-") as tmp:
        work, scratch = Path(tmp) / "matmul", Path(tmp) / "scratch"
        shutil.copytree(ROOT / "playbooks" / "matmul", work)
        scratch.mkdir()
        up = startup(work, scratch, 5 if quick else 10)
        cmd = command(work, scratch, 50 if quick else 200)
        exp = experiment(work, scratch, 3 if quick else 5)
    for figure, got, unit, scale, target in (
        ("sandbox: terminal start-up to the first prompt", up, "ms", 1000, None),
        ("sandbox: /bin/true to its exit code, median", cmd, "ms", 1000, COMMAND_TARGET),
        ("sandbox: matmul experiment (build, check, bench), median", exp, "s", 1, EXPERIMENT_TARGET),
    ):
        ratio = got[True] / got[False]
        print(f"{figure}: sandboxed {got[True] * scale:.3f} {unit}, plain {got[False] * scale:.3f} {unit} "
              f"({ratio:.2f}x)", file=sys.stderr, flush=True)
        rows.append({
            "figure": figure,
            "clive": got[True] * scale,
            "baseline": got[False] * scale,
            "unit": unit,
            "ratio": ratio,
            "target": f"<= {target:g}x unsandboxed" if target else "-",
            "pass": ratio <= target if target else None,
        })
    return rows


if __name__ == "__main__":
    from bench.run import render_table

    print(render_table(run(quick="--quick" in sys.argv[1:])))
