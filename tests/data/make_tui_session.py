"""Records tests/data/tui-session, the small fixed session the viewer's tests replay.

Run from the repository root: ``.venv/bin/python tests/data/make_tui_session.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from clive.actions import Keys, Run, Wait
from clive.executor import Executor
from clive.policies.scripted import ScriptedPolicy
from clive.record import Recorder

from clive.agent import Agent
from clive.terminal import Terminal

HERE = Path(__file__).parent
TARGET = HERE / "tui-session"

STEPS = [
    Run("printf '\\033[1;31mred bold\\033[0m \\033[42mgreen bg\\033[0m \\033[4munder\\033[0m\\n'"),
    Run("echo 'wide: 日本語 ok'"),
    Run("printf 'line %s\\n' 1 2 3"),
    Keys("echo typed-by-keys<Enter>", Wait("prompt", None, 10)),
    Run("false"),
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        work.mkdir()
        recorder = Recorder.create(
            Path(tmp) / "s", {"playbook": "demo.md", "policy": "scripted"}, 80, 24, secrets=[],
            cast_env={"TERM": "xterm-256color", "SHELL": "/bin/bash"},
        )
        with Terminal(cwd=work, cols=80, rows=24, listeners=[recorder]) as term:
            agent = Agent(term, Executor(term, work), recorder)
            outcome = agent.run(ScriptedPolicy(STEPS, screen=term.snapshot))
            for n, (metric, status) in enumerate([(7.5, "keep"), (9.25, "keep"), (8.0, "discard")], 1):
                recorder.event("experiment", agent.totals.cycles, n=n, commit=f"abc{n}def0", metric=metric,
                               status=status, description=f"experiment {n}", duration=0.5)
            recorder.event("end", agent.totals.cycles, status=outcome.status, summary=outcome.summary)
        recorder.close(outcome.status)
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(recorder.path, TARGET)
    print(f"recorded {TARGET}")


if __name__ == "__main__":
    main()
