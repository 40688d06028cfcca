"""Observation size: what the agent sends with screen diffs versus the full screen every cycle.

A 200-cycle session of real work (editing C in vim, building, running, reading files, paging
with less) is driven through the agent loop; for every cycle we count the characters of the
observation clive sends and of the full-screen rendering a diff-less agent would send.
Tokens are estimated at 4 characters each.

    python bench/tokens.py [--quick]
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from clive.agent import Agent
from clive.agent.actions import Keys, Run, Wait
from clive.agent.executor import Executor
from clive.terminal import Terminal

KERNEL = """#include <stdio.h>
int main(void) {
    long s = 0;
    for (int i = 0; i < %d; i++) s += i %% 7;
    printf("sum %%ld\\n", s);
    return 0;
}
"""


def _work(cycles: int):
    """A repeating round of ordinary terminal work, cut to ``cycles`` actions."""
    round_ = [
        Run("ls -la"),
        Keys("vim -u NONE -N kernel.c<Enter>", Wait("ready", None, 10)),
        Keys("4G", Wait("ready", None, 5)),
        Keys("A /* tuned */<Esc>", Wait("ready", None, 5)),
        Keys(":w<Enter>", Wait("ready", None, 5)),
        Keys(":q<Enter>", Wait("prompt", None, 10)),
        Run("gcc -O2 -o kernel kernel.c"),
        Run("./kernel"),
        Run("wc -l kernel.c && head -3 kernel.c"),
        Keys("less kernel.c<Enter>", Wait("ready", None, 10)),
        Keys("q", Wait("prompt", None, 10)),
        Run("git status --short 2>/dev/null | head -5; echo done"),
        Run("seq 1 40 | tail -5"),
    ]
    out = []
    while len(out) < cycles:
        out.extend(round_)
    return out[:cycles]


def measure(cycles: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "kernel.c").write_text(KERNEL % 1000)
        with Terminal(cwd=work, cols=100, rows=30) as term:
            agent = Agent(term, Executor(term, work))
            sent = full = 0
            for action in _work(cycles):
                observation = agent.observe()
                sent += len(observation.render())
                # A diff-less agent sends the same feedback and state, with the whole screen.
                whole = dataclasses.replace(observation, kind="full", screen=term.snapshot().render())
                full += len(whole.render())
                agent.act(action)
            return sent, full


def run(quick: bool) -> list[dict]:
    cycles = 60 if quick else 200
    sent, full = measure(cycles)
    ratio = sent / full
    return [
        {
            "figure": f"observation chars per cycle ({cycles} cycles, diffs vs full screen)",
            "clive": round(sent / cycles, 1),
            "baseline": round(full / cycles, 1),
            "unit": "chars",
            "ratio": round(ratio, 3),
            "target": "<= 0.30",
            "pass": ratio <= 0.30,
        },
        {
            "figure": "estimated tokens for the whole session (chars / 4)",
            "clive": sent // 4,
            "baseline": full // 4,
            "unit": "tokens",
            "ratio": round(ratio, 3),
            "target": "<= 0.30",
            "pass": ratio <= 0.30,
        },
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row['figure']}: clive {row['clive']} vs full screen {row['baseline']} {row['unit']} "
              f"-> ratio {row['ratio']} (target {row['target']}) {'PASS' if row['pass'] else 'FAIL'}")
