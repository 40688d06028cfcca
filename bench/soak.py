"""Soak: thousands of observe-act cycles against a real shell, with the recorder on.

Reports resident memory and open file descriptors at the start and the end (target: no
growth beyond 10%). The baseline column is the start, the clive column the end.

    python bench/soak.py [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from clive.agent import Agent
from clive.agent.actions import Keys, Run, Wait
from clive.agent.executor import Executor
from clive.session import Recorder
from clive.terminal import Terminal


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run(quick: bool) -> list[dict]:
    cycles = 1000 if quick else 5000
    warmup = 200
    actions = [Run("echo soak $RANDOM"), Run("true"), Keys("echo typed<Enter>", Wait("prompt", None, 10)),
               Run("seq 1 30")]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        recorder = Recorder.create(root / "sessions", {"playbook": "soak"}, 80, 24)
        with Terminal(cwd=root, listeners=[recorder]) as term:
            agent = Agent(term, Executor(term, root), recorder)
            for i in range(warmup):
                agent.observe()
                agent.act(actions[i % len(actions)])
            rss0, fds0 = _rss_kb(), _fds()
            for i in range(cycles):
                agent.observe()
                agent.act(actions[i % len(actions)])
            rss1, fds1 = _rss_kb(), _fds()
        recorder.close("done")
    return [
        {"figure": f"resident memory after {warmup} warm-up + {cycles} cycles", "clive": rss1 / 1024,
         "baseline": rss0 / 1024, "unit": "MiB", "ratio": round(rss1 / rss0, 3),
         "target": "<= 1.10", "pass": rss1 <= 1.10 * rss0},
        {"figure": "open file descriptors, end vs start", "clive": fds1, "baseline": fds0, "unit": "fds",
         "ratio": round(fds1 / fds0, 3), "target": "<= 1.10", "pass": fds1 <= 1.10 * fds0},
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row['figure']}: end {row['clive']:.1f} vs start {row['baseline']:.1f} {row['unit']} "
              f"-> ratio {row['ratio']} (target {row['target']}) {'PASS' if row['pass'] else 'FAIL'}")
