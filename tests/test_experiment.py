"""The experiment loop end to end through `clive run`: statuses, git history, results.tsv, resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fakeapi import FakeMessagesAPI, tool_use

from clive.cli import main
from clive.experiments.results import ResultsTable

# params.py is read as text, not imported: a stale .pyc of a same-size edit would hide the change.
READ_MODE = "import re, sys, time\nMODE = re.search(r'MODE = \"(\\w+)\"', open('params.py').read()).group(1)\n"

EVAL = READ_MODE + """\
if MODE == "crash":
    sys.exit(3)
if MODE == "hang":
    time.sleep(60)
if MODE == "nometric":
    print("finished, but I forgot the number")
    sys.exit(0)
print("score:", {"base": 10, "good": 20, "worse": 5, "badcheck": 99}.get(MODE, 1))
"""

CHECK = READ_MODE + """\
sys.exit(1 if MODE == "badcheck" else 0)
"""

PLAYBOOK = """\
---
name: toy
workdir: toy
check: {python} check.py
eval: {python} eval.py
metric: 'score: (\\d+)'
direction: maximize
budget:
  experiment_seconds: 3
noise: 0.02
editable: [params.py]
readonly: [eval.py, check.py]
search:
  strategy: greedy  # these tests follow the hill-climber's order
  moves:
  - name: mode
    file: params.py
    pattern: '^MODE = "(\\w+)"'
    values: [crash, hang, nometric, badcheck, worse, good]
---
# Toy
Make the score higher.
"""


@pytest.fixture
def toy(tmp_path):
    work = tmp_path / "toy"
    work.mkdir()
    (work / "params.py").write_text('MODE = "base"\n')
    (work / "eval.py").write_text(EVAL)
    (work / "check.py").write_text(CHECK)
    (work / ".gitignore").write_text("__pycache__/\n")
    playbook = tmp_path / "toy.md"
    playbook.write_text(PLAYBOOK.format(python=sys.executable))
    return playbook, tmp_path / "sessions"


def _session(sessions: Path) -> Path:
    (only,) = sessions.iterdir()
    return only


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_each_failure_gets_its_status_and_only_keeps_reach_the_branch(toy, capsys):
    playbook, sessions = toy
    code = main(["run", str(playbook), "--sessions", str(sessions), "--max-experiments", "6"])
    assert code == 0
    session = _session(sessions)
    rows = ResultsTable(session / "results.tsv").rows()
    assert [(r.experiment, r.status, r.metric) for r in rows] == [
        (0, "keep", 10.0),
        (1, "crash", None),
        (2, "crash", None),
        (3, "crash", None),
        (4, "crash", None),
        (5, "discard", 5.0),
        (6, "keep", 20.0),
    ]
    reasons = [r.description for r in rows]
    assert "eval failed (exit 3)" in reasons[1]
    assert "eval ran past the time budget" in reasons[2]
    assert "no metric in the eval output" in reasons[3]
    assert "check failed (exit 1)" in reasons[4]
    work = session / "work"
    branch = json.loads((session / "meta.json").read_text())["branch"]
    on_branch = _git(work, "log", "--format=%H", branch).split()
    # Each keep is a commit on the run branch; each discard or crash is not.
    for row in rows:
        reachable = any(sha.startswith(row.commit) for sha in on_branch)
        assert reachable == (row.status == "keep"), row
    assert _git(work, "status", "--porcelain") == ""
    assert (work / "params.py").read_text() == 'MODE = "good"\n'
    err = capsys.readouterr().err
    assert "baseline 10, best 20 (2.00x)" in err
    assert "1 kept, 1 discarded, 4 crashed" in err
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["type"] == "experiment"] == [r.status for r in rows]


def test_resume_continues_after_the_last_recorded_experiment(toy):
    playbook, sessions = toy
    assert main(["run", str(playbook), "--sessions", str(sessions), "--max-experiments", "1"]) == 0
    session = _session(sessions)
    assert len(ResultsTable(session / "results.tsv").rows()) == 2
    assert main(["run", "--resume", session.name, "--sessions", str(sessions), "--max-experiments", "3"]) == 0
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.experiment for r in rows] == [0, 1, 2, 3]
    # The sweep does not repeat what it tried before the resume.
    assert [r.description.split(" (")[0] for r in rows[1:]] == ["mode = crash", "mode = hang", "mode = nometric"]


def test_the_claude_policy_runs_the_same_playbook_through_the_fake_api(toy, monkeypatch):
    playbook, sessions = toy
    script = [
        tool_use("read_file", {"path": "params.py"}, text="Let me look at the knob."),
        tool_use("edit_file", {"path": "params.py", "old": 'MODE = "base"', "new": 'MODE = "good"'}),
        tool_use("done", {"summary": "switch to the good mode"}),
        tool_use("edit_file", {"path": "eval.py", "old": "import re,", "new": "import os,"}),
        tool_use("edit_file", {"path": "params.py", "old": 'MODE = "good"', "new": 'MODE = "worse"'}),
        tool_use("done", {"summary": "try the worse mode"}),
    ]
    with FakeMessagesAPI(script) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        code = main(["run", str(playbook), "--policy", "claude", "--sessions", str(sessions),
                     "--max-experiments", "2"])
    assert code == 0
    session = _session(sessions)
    rows = ResultsTable(session / "results.tsv").rows()
    assert [(r.status, r.metric, r.description) for r in rows] == [
        ("keep", 10.0, "baseline"),
        ("keep", 20.0, "switch to the good mode"),
        ("discard", 5.0, "try the worse mode"),
    ]
    # Each experiment started from a fresh context built from durable state.
    first_of_exp2 = api.requests[3].messages[0]
    text = json.dumps(first_of_exp2)
    assert "results.tsv" in text and "switch to the good mode" in text
    # The read-only harness could not be edited through the file channel.
    assert (session / "work" / "eval.py").read_text().startswith("import re, sys")
    cycles = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    refused = [c for c in cycles if c["type"] == "cycle" and c["outcome"].get("refused")]
    assert refused and "read-only" in refused[0]["outcome"]["error"]


@pytest.mark.parametrize(
    ("change", "field", "line"),
    [
        ((r"eval: .*\n", ""), "eval", 12),
        ((r"\(\\d\+\)", r"\\d+"), "metric", 6),
        (("direction: maximize\n", "direction: maximize\ncolour: blue\n"), "colour", 8),
        ((r"editable: \[params.py\]", "editable: [missing.py]"), "editable", 11),
    ],
)
def test_bad_playbooks_exit_2_naming_file_line_and_field_before_anything_runs(toy, capsys, change, field, line):
    playbook, sessions = toy
    pattern, replacement = change
    text = playbook.read_text()
    changed = re.sub(pattern, lambda _: replacement, text, count=1)
    assert changed != text
    playbook.write_text(changed)
    assert main(["run", str(playbook), "--sessions", str(sessions)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"clive: {playbook}:{line}: {field}:"), err
    assert "\n" not in err
    assert not sessions.exists()


def test_unknown_session_to_resume_is_bad_input(toy, capsys):
    _, sessions = toy
    assert main(["run", "--resume", "nope", "--sessions", str(sessions)]) == 2
    assert "no such session: nope" in capsys.readouterr().err
