"""The shipped playbooks run headless through `clive run` and find real improvements on this machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fakeapi import FakeMessagesAPI, tool_use

from clive.cli import main
from clive.experiments.results import ResultsTable

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"


def _run(name: str, sessions: Path, experiments: int) -> tuple[Path, list]:
    return _run_with([], name, sessions, experiments)


def _run_with(extra: list[str], name: str, sessions: Path, experiments: int) -> tuple[Path, list]:
    code = main(["run", str(PLAYBOOKS / f"{name}.md"), "--sessions", str(sessions),
                 "--max-experiments", str(experiments), *extra])
    assert code == 0
    (session,) = sessions.iterdir()
    return session, ResultsTable(session / "results.tsv").rows()


def test_matmul_finds_a_real_speedup_and_git_matches_results(tmp_path, capsys):
    session, rows = _run("matmul", tmp_path / "sessions", 3)
    baseline = rows[0]
    assert baseline.status == "keep" and baseline.metric > 0
    kept = [r for r in rows[1:] if r.status == "keep"]
    assert kept and max(r.metric for r in kept) >= 1.5 * baseline.metric
    branch = json.loads((session / "meta.json").read_text())["branch"]
    log = subprocess.run(["git", "-C", str(session / "work"), "log", "--format=%H", branch],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(log) == 1 + len(kept)
    for row in rows:
        assert any(sha.startswith(row.commit) for sha in log) == (row.status == "keep")
    assert (session / "progress.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["replay", str(session), "--print"]) == 0
    timeline = capsys.readouterr().out
    assert "make bench" in timeline and "edit_file matmul.c" in timeline


@pytest.mark.parametrize("name", ["python", "inference"])
def test_other_cpu_playbooks_run(name, tmp_path):
    _, rows = _run(name, tmp_path / "sessions", 2)
    assert rows[0].status == "keep" and rows[0].metric is not None
    assert len(rows) == 3


@pytest.mark.skipif(shutil.which("nvcc") and shutil.which("nvidia-smi"), reason="a GPU machine runs it for real")
def test_cuda_playbook_says_clearly_that_it_needs_a_gpu(tmp_path, capsys):
    code = main(["run", str(PLAYBOOKS / "cuda.md"), "--sessions", str(tmp_path / "s")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("clive: cannot run cuda: needs ") and "not found on PATH" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_matmul_runs_in_the_sandbox_to_a_kept_improvement(tmp_path, capsys):
    session, rows = _run_with(["--sandbox", "--seed", "1"], "matmul", tmp_path / "sessions", 2)
    assert rows[0].status == "keep" and len(rows) == 3
    assert any(r.status == "keep" and r.metric > rows[0].metric for r in rows[1:]), rows
    assert json.loads((session / "meta.json").read_text())["sandbox"] is True
    assert "sandboxed (bubblewrap: workdir and scratch writable, empty home, no network)" in capsys.readouterr().err


def test_matmul_with_the_claude_policy_through_the_fake_api(tmp_path, monkeypatch):
    script = [
        tool_use("read_file", {"path": "matmul.c", "start": 1, "end": 30}, text="Look at the knobs first."),
        tool_use("edit_file", {"path": "matmul.c", "old": "#define LOOP_ORDER 0", "new": "#define LOOP_ORDER 1"}),
        tool_use("run", {"command": "make check"}),
        tool_use("done", {"summary": "ikj loop order: stream through rows of B"}),
    ]
    with FakeMessagesAPI(script) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        session, rows = _run_with(["--policy", "claude"], "matmul", tmp_path / "sessions", 1)
    assert [r.status for r in rows] == ["keep", "keep"]
    assert rows[1].description == "ikj loop order: stream through rows of B"
    assert rows[1].metric >= 1.5 * rows[0].metric
    # The model's context was the playbook's program.md, cached with the tools.
    system = api.requests[0].body["system"]
    assert "Make a single-precision matrix multiply fast" in system[-1]["text"]
    assert system[-1]["cache_control"] == {"type": "ephemeral"}
