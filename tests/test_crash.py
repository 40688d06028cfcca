"""Crash safety: SIGKILL clive mid-eval, mid-commit, mid-append and at random moments, 20 times;
`clive run --resume` always finishes the run with results.tsv, git and the workdir in agreement."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clive.experiments.results import HYPOTHESIS_COLUMN, RESULTS_HEADER, ResultsTable

EXPERIMENTS = 6

EVAL = """\
import re, time
v = int(re.search(r"V = (\\d+)", open("params.py").read()).group(1))
time.sleep(0.15)
print("score:", {1: 10, 2: 12, 3: 9, 4: 15, 5: 15, 6: 20, 7: 3}.get(v, 1))
"""

PLAYBOOK = """\
---
name: crashy
workdir: work
eval: {python} eval.py
metric: 'score: (\\d+)'
budget: {{experiment_seconds: 10}}
noise: 0.01
readonly: [eval.py]
search:
  - name: v
    file: params.py
    pattern: '^V = (\\d+)'
    values: [2, 3, 4, 5, 6, 7]
---
Crash me.
"""


@pytest.fixture
def project(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.py").write_text("V = 1\n")
    (work / "eval.py").write_text(EVAL)
    (tmp_path / "crashy.md").write_text(PLAYBOOK.format(python=sys.executable))
    return tmp_path


def _clive(project: Path, *args: str, crash: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CLIVE_CRASH_AT"}
    if crash:
        env["CLIVE_CRASH_AT"] = crash
    return subprocess.Popen(
        [sys.executable, "-m", "clive", "run", *args, "--max-experiments", str(EXPERIMENTS)],
        cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _check_consistent(session: Path, finished: bool) -> None:
    lines = (session / "results.tsv").read_text().split("\n")
    assert lines[0] == "\t".join((*RESULTS_HEADER, HYPOTHESIS_COLUMN))
    assert lines[-1] == ""  # no torn row: the file ends with a newline
    rows = ResultsTable(session / "results.tsv").rows()
    assert len(rows) == len(lines) - 2  # every line is a whole row
    assert [r.experiment for r in rows] == list(range(len(rows)))  # no duplicate, no gap
    if finished:
        assert len(rows) == EXPERIMENTS + 1
    work = session / "work"
    branch = json.loads((session / "meta.json").read_text())["branch"]
    on_branch = _git(work, "log", "--format=%H", branch).split()
    for row in rows:
        assert any(sha.startswith(row.commit) for sha in on_branch) == (row.status == "keep"), row
    if finished:
        assert _git(work, "status", "--porcelain") == ""
        kept = [r for r in rows if r.status == "keep"]
        assert on_branch[0].startswith(kept[-1].commit)


def _resume_to_the_end(project: Path, session: Path) -> None:
    done = _clive(project, "--resume", session.name)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert "Traceback" not in err
    _check_consistent(session, finished=True)
    assert json.loads((session / "meta.json").read_text())["status"] == "done"


@pytest.mark.parametrize(
    "crash",
    ["eval:1", "eval:4", "commit:1", "commit:3", "results_append:1", "results_append:3", "results_append:6"],
)
def test_killed_at_a_named_point_resume_finishes_consistently(project, crash):
    proc = _clive(project, "crashy.md", crash=crash)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    (session,) = (project / "sessions").iterdir()
    _resume_to_the_end(project, session)


@pytest.mark.timeout(400)
def test_killed_at_random_moments_again_and_again(project):
    rng = random.Random(1234)
    kills = 0
    while kills < 13:
        # A fresh run, killed and resumed at random moments until it is done or 13 kills landed.
        before = set((project / "sessions").iterdir()) if (project / "sessions").exists() else set()
        proc = _clive(project, "crashy.md")
        session = None
        while True:
            time.sleep(rng.uniform(0.5, 1.6))
            if proc.poll() is not None:
                proc.communicate(timeout=60)
                if proc.returncode == 0:
                    break  # the run finished before this kill
            else:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=60)
                kills += 1
            if session is None:
                new = set((project / "sessions").iterdir()) - before
                assert new, "the run was killed before it made its session"
                (session,) = new
            _check_consistent(session, finished=False)
            if kills >= 13:
                break
            proc = _clive(project, "--resume", session.name)
        assert session is not None
        _resume_to_the_end(project, session)


def test_a_resumed_run_keeps_the_budget_it_was_started_with(project):
    # Started with --max-experiments 3 (the playbook has 6 values), killed after the second row:
    # the resume, given no budget, ends at 3 experiments, not at the playbook's own end.
    env = {k: v for k, v in os.environ.items() if k != "CLIVE_CRASH_AT"}
    first = subprocess.run(
        [sys.executable, "-m", "clive", "run", "crashy.md", "--max-experiments", "3"],
        cwd=project, env={**env, "CLIVE_CRASH_AT": "results_append:3"}, capture_output=True, text=True, timeout=120,
    )
    assert first.returncode == -signal.SIGKILL
    (session,) = (project / "sessions").iterdir()
    resumed = subprocess.run(
        [sys.executable, "-m", "clive", "run", "--resume", session.name],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.experiment for r in rows] == [0, 1, 2, 3]


def test_a_resume_in_the_moment_after_a_kill_is_not_refused(project):
    proc = _clive(project, "crashy.md")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list((project / "sessions").glob("*/results.tsv")) if (project / "sessions").exists() else []
        if found and len(found[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    session = found[0].parent
    proc.send_signal(signal.SIGKILL)
    # At once, before this test reaps it: the killed clive is dying, or a zombie, but records nothing.
    _resume_to_the_end(project, session)
    proc.communicate(timeout=60)
