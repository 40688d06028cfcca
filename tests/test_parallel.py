"""Parallel workers on real Ray: a private instance per run, and a two-node cluster on 127.0.0.1.

Every Ray process these tests start binds to 127.0.0.1. The runs go through the command line in a
process of their own, as a user runs them; the cluster is one fixture for the whole session.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from clive.experiments.results import HYPOTHESIS_COLUMN, RESULTS_HEADER, WORKER_COLUMN, ResultsTable
from clive.session import SessionReader

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[test]' installs it)")

HERE = Path(__file__).parent
TOKEN = secrets.token_hex(16)  # the test cluster's, given to every clive that joins it

# score = the sum of the knobs' values weighted as below; the eval sleeps SLOW[knob=value] seconds
# first, and for DIE[knob=value] it ends its worker's process (the shell's parent) instead, once.
EVAL = """\
import glob, json, os, re, sys, time
knobs = dict(re.findall(r"^(\\w+) = (\\d+)", "".join(open(f).read() for f in sorted(glob.glob("knob_*.py"))), re.M))
spec = json.loads(open("spec.json").read())
for name, value in knobs.items():
    key = f"{name}={value}"
    time.sleep(spec["slow"].get(key, 0))
    if key in spec["die"] and not os.path.exists(spec["died"]):
        open(spec["died"], "w").close()  # once: the same candidate on a later best measures as usual
        shell = os.getppid()
        worker = int(open(f"/proc/{shell}/stat").read().rsplit(")", 1)[1].split()[1])
        os.kill(worker, 9)
        time.sleep(30)
print("score:", 1 + sum(spec["weight"][name] * int(value) for name, value in knobs.items()))
"""

PLAYBOOK = """\
---
name: knobs
workdir: work
eval: {python} eval.py
metric: 'score: (\\d+)'
budget: {{experiment_seconds: 30}}
noise: 0.01
readonly: [eval.py, spec.json]
{extra}search:
  strategy: greedy  # the tests follow the hill-climber's order
  moves:
{moves}---
Turn the knobs.
"""


def make_project(root: Path, knobs: dict[str, list[int]], *, weight: dict[str, int] | None = None,
                 slow: dict[str, float] | None = None, die: list[str] = (), extra: str = "") -> Path:
    work = root / "work"
    work.mkdir(parents=True)
    for name in knobs:  # a file each: a patch to one applies whatever the others hold
        (work / f"knob_{name}.py").write_text(f"{name} = 0\n")
    (work / "eval.py").write_text(EVAL)
    spec = {"weight": weight or dict.fromkeys(knobs, 10), "slow": slow or {}, "die": list(die),
            "died": str(root / "died")}
    (work / "spec.json").write_text(json.dumps(spec))
    moves = "".join(
        f"  - name: {name}\n    file: knob_{name}.py\n    pattern: '^{name} = (\\d+)'\n    values: {values}\n"
        for name, values in knobs.items()
    )
    (root / "knobs.md").write_text(PLAYBOOK.format(python=sys.executable, moves=moves, extra=extra))
    return root


def clive(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    full = {**os.environ, **(env or {})}
    for name in ("RAY_ADDRESS", "CLIVE_CRASH_AT"):
        full.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "clive", "run", *args], cwd=root, env=full, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def only_session(root: Path) -> Path:
    (session,) = (root / "sessions").iterdir()
    return session


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def events(path: Path, kind: str) -> list[dict]:
    lines = (path / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == kind]


def check_consistent(session: Path, experiments: int | None = None) -> list:
    """rows ≡ run branch: every keep row is a commit on it, in order, and nothing else is."""
    lines = (session / "results.tsv").read_text().split("\n")
    assert lines[0] == "\t".join((*RESULTS_HEADER, WORKER_COLUMN, HYPOTHESIS_COLUMN))
    assert lines[-1] == ""
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.experiment for r in rows] == list(range(len(rows)))  # no gap, no duplicate
    if experiments is not None:
        assert len(rows) == experiments + 1
    work = session / "work"
    branch = json.loads((session / "meta.json").read_text())["branch"]
    on_branch = git(work, "log", "--format=%H", "--reverse", branch).split()
    kept = [r.commit for r in rows if r.status == "keep"]
    assert len(on_branch) == len(kept)
    assert all(full.startswith(short) for full, short in zip(on_branch, kept, strict=True))
    assert git(work, "status", "--porcelain") == ""
    return rows


def check_measured_trees(session: Path) -> None:
    """Each kept metric was measured on exactly the tree of its commit."""
    reports = {(e["trial"], e["base"]): e for e in events(session, "report")}
    for row in events(session, "experiment"):
        if row["status"] != "keep" or row["n"] == 0:
            continue
        tree = git(session / "work", "rev-parse", f"{row['commit']}^{{tree}}").strip()
        assert reports[(row["trial"], row["base"])]["tree"] == tree, row


def check_recordings_replay(session: Path) -> None:
    folders = sorted((session / "workers").iterdir())
    assert folders
    for folder in folders:
        reader = SessionReader.open(folder)
        assert not reader.problems, (folder, reader.problems)
        assert reader.cycles()
        reader.screen_at(len(reader.cycles()) - 1)  # the last cycle's screen replays


def ray_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.fixture(scope="session")
def cluster():
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    env.pop("RAY_ADDRESS", None)
    said = tempfile.TemporaryFile(mode="w+")  # what the cluster said, shown if it does not start
    proc = subprocess.Popen([sys.executable, str(HERE / "ray_cluster.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=said, text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        said.seek(0)
        pytest.fail("the test cluster did not start: " + " | ".join(said.read().strip().splitlines()[-8:]))
    info = json.loads(line)
    assert info["address"].startswith("127.0.0.1:")
    yield {**info, "env": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}}
    proc.stdin.close()
    proc.wait(timeout=60)
    said.close()


@pytest.fixture(scope="module")
def private_run(tmp_path_factory):
    """A run of 2 workers on a private Ray: (the project, the finished run's process, its session)."""
    root = make_project(tmp_path_factory.mktemp("private"), {"a": [1, 2, 3], "b": [1, 2], "c": [1]},
                        weight={"a": 10, "b": 3, "c": 1})
    done = clive(root, "knobs.md", "--workers", "2", "--max-experiments", "6")
    return root, done, only_session(root) if (root / "sessions").exists() else None


def test_two_workers_on_a_private_ray_keep_results_branch_and_recordings_in_agreement(private_run):
    root, done, session = private_run
    assert done.returncode == 0, done.stderr
    assert "a private Ray on 127.0.0.1:" in done.stderr
    rows = check_consistent(session, 6)
    check_measured_trees(session)
    assert {r.worker for r in rows[1:]} == {1, 2}  # both workers measured experiments
    # No candidate goes out twice on the same best (a measurement again on a newer best is the rule).
    sent = [(d["base"], d["candidate"]) for d in events(session, "dispatch")]
    assert len(sent) == len(set(sent))
    check_recordings_replay(session)
    meta = json.loads((session / "meta.json").read_text())
    assert meta["workers"] == 2 and meta["status"] == "done"
    assert not ray_processes("clive-ray-")  # the private Ray went away with the run
    listed = subprocess.run([sys.executable, "-m", "clive", "sessions"], cwd=root, capture_output=True, text=True)
    assert "2 workers" in listed.stdout


@pytest.mark.anyio
async def test_the_replay_names_each_experiments_worker_and_switches_between_their_terminals(private_run):
    from textual.widgets import DataTable

    from clive.tui.replay import ReplayApp

    root, done, session = private_run
    assert done.returncode == 0, done.stderr
    rows = ResultsTable(session / "results.tsv").rows()
    workers = {k: SessionReader.open(session / "workers" / str(k)) for k in (1, 2)}
    app = ReplayApp(SessionReader.open(session), follow=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one("#results-table", DataTable)
        assert [table.get_row_at(i)[1] for i in range(table.row_count)] == [f"w{r.worker}" for r in rows]
        # The coordinator types nothing: the viewer opens on the first worker's terminal.
        assert app.worker == 1 and len(app.cycle_events) == len(workers[1].cycles())
        assert "worker 1" in app.terminal_view.border_title
        await pilot.press("w")
        assert app.worker == 2 and len(app.cycle_events) == len(workers[2].cycles())
        assert app.cycle_events[app.index] == workers[2].cycles()[0]
        # Choosing an experiment's row shows its worker at the experiment's first cycle: the edit.
        row = next(i for i, r in enumerate(rows) if i > 0 and r.worker == 1 and "again on" not in r.description)
        table.focus()
        table.move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        assert app.worker == 1
        knob = rows[row].description.split(" = ")[0]
        action = app.cycle_events[app.index]["action"]
        assert action["type"] == "edit_file" and action["path"] == f"knob_{knob}.py", action
        assert app.terminal_view.snapshot is not None
    printed = subprocess.run([sys.executable, "-m", "clive", "replay", str(session), "--print"],
                             cwd=root, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    listed = [line.split() for line in printed.stdout.splitlines()[1:len(rows) + 1]]
    assert [(int(p[0]), p[1]) for p in listed] == [(r.experiment, f"w{r.worker}") for r in rows]
    assert f"worker 1 ({session / 'workers' / '1'}):" in printed.stdout
    assert f"worker 2 ({session / 'workers' / '2'}):" in printed.stdout


def test_a_workers_recording_reaches_the_session_while_its_experiment_runs(tmp_path, cluster):
    root = make_project(tmp_path, {"a": [1], "b": [1]}, slow={"a=1": 6.0})
    env = {**os.environ, **cluster["env"]}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clive", "run", "knobs.md", "--workers", "2", "--cluster", cluster["address"]],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        seen_early = False
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and not seen_early:
            time.sleep(0.2)
            found = list(root.glob("sessions/*/workers/*/events.jsonl"))
            results = list(root.glob("sessions/*/results.tsv"))
            measured = results[0].read_text() if results else ""
            for path in found:
                if '"candidate": "a = 1"' in path.read_text() and "a = 1" not in measured:
                    seen_early = True  # the slow experiment is under way, and its worker's cycles are here
        assert seen_early, "no worker's recording came before its report"
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    session = only_session(root)
    check_consistent(session, 2)
    check_recordings_replay(session)
    for folder in (session / "workers").iterdir():  # every event once, in order
        times = [e["t"] for e in map(json.loads, (folder / "events.jsonl").read_text().splitlines())]
        assert times == sorted(times)
        cycles = [e["cycle"] for e in SessionReader.open(folder).cycles()]
        assert cycles == list(range(1, len(cycles) + 1))


@pytest.mark.timeout(240)
def test_a_parallel_run_with_tui_is_watched_live_and_quitting_the_viewer_stops_it_saved(tmp_path):
    from clive.terminal import Terminal

    # Both first experiments take a minute: the viewer is looked at while they run.
    root = make_project(tmp_path, {"a": [1, 2]}, slow={"a=1": 60.0, "a=2": 60.0})
    passed_on = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}  # where clive is not installed
    with Terminal(cols=140, rows=40, cwd=root, env=passed_on) as term:
        term.type(f"{sys.executable} -m clive run knobs.md --workers 2 --tui\r")

        def shows(*texts: str) -> Any:
            return lambda snap: all(any(t in line for line in snap.lines) for t in texts)

        # Worker 1's terminal, streamed while its experiment runs: the edit it made for a = 1.
        term.wait_screen(shows("● live", "worker 1", "w1", "knob_a.py"), timeout=90)
        term.press("w")
        term.wait_screen(shows("worker 2", "knob_a.py"), timeout=30)
        term.press("q")
        term.wait_prompt(timeout=90)
        assert term.run("echo $?").output.strip() == "130"
        said = term.snapshot().text()
    assert "stopping the run" in said and "interrupted" in said
    session = only_session(root)
    assert json.loads((session / "meta.json").read_text())["status"] == "interrupted"
    rows = check_consistent(session)
    assert [r.description for r in rows] == ["baseline"]  # the two in flight are proposed again on resume
    assert not ray_processes("clive-ray-")


def test_a_better_candidate_built_on_an_older_best_is_measured_again_on_the_best(tmp_path, cluster):
    # y is slow: while it is measured on the baseline, x=1 is kept. y's result beats the new best,
    # so it is applied to the best (x=1) and measured there before it is kept.
    root = make_project(tmp_path, {"x": [1], "y": [1]}, weight={"x": 10, "y": 20}, slow={"y=1": 2.0})
    done = clive(root, "knobs.md", "--workers", "2", "--cluster", cluster["address"], env=cluster["env"])
    assert done.returncode == 0, done.stderr
    session = only_session(root)
    rows = check_consistent(session)
    check_measured_trees(session)
    assert [(r.description.split(" [")[0], r.status) for r in rows] == [
        ("baseline", "keep"), ("x = 1", "keep"), ("y = 1", "keep")
    ]
    assert re.search(r"\[measured 21 on [0-9a-f]{12}, again on [0-9a-f]{12}\]", rows[2].description)
    assert rows[2].metric == 31  # measured again with x=1 under it
    (kept_y,) = [e for e in events(session, "experiment") if e["n"] == 2]
    assert [m["metric"] for m in kept_y["measured"]] == [21]  # both measurements are recorded
    assert (session / "work" / "knob_y.py").read_text() == "y = 1\n"  # the best has both
    assert (session / "work" / "knob_x.py").read_text() == "x = 1\n"


def test_a_better_candidate_that_no_longer_applies_on_the_best_is_discarded_with_the_reason(tmp_path, cluster):
    root = make_project(tmp_path, {"x": [1, 2]}, weight={"x": 10}, slow={"x=2": 2.0})
    done = clive(root, "knobs.md", "--workers", "2", "--cluster", cluster["address"], env=cluster["env"])
    assert done.returncode == 0, done.stderr
    session = only_session(root)
    rows = check_consistent(session)
    assert [(r.description.split(" (")[0], r.status) for r in rows] == [
        ("baseline", "keep"), ("x = 1", "keep"), ("x = 2", "discard")
    ]
    assert "no longer applies on the best" in rows[2].description
    assert "again on" not in rows[2].description  # it was measured once, on the older best


def test_a_worker_on_the_second_node_of_a_cluster(tmp_path, cluster):
    # The custom resource exists on the second node only: the worker can run nowhere else.
    root = make_project(tmp_path, {"a": [1, 2]}, extra="resources: {second: 1, cpus: 1}\n")
    done = clive(root, "knobs.md", "--cluster", cluster["address"], "--max-experiments", "2", env=cluster["env"])
    assert done.returncode == 0, done.stderr
    session = only_session(root)
    check_consistent(session, 2)
    (started,) = events(session, "workers")
    assert started["nodes"] == {"1": cluster["second"]} and started["private"] is False
    check_recordings_replay(session)


def test_a_worker_killed_mid_eval_is_recorded_and_the_run_finishes_on_the_others(tmp_path, cluster):
    root = make_project(tmp_path, {"a": [1, 2, 3], "b": [1]}, weight={"a": 10, "b": 1}, die=["a=2"])
    done = clive(root, "knobs.md", "--workers", "2", "--cluster", cluster["address"], env=cluster["env"])
    assert done.returncode == 0, done.stderr
    session = only_session(root)
    rows = check_consistent(session)
    (lost,) = [r for r in rows if r.status == "crash"]
    assert lost.description.startswith("a = 2 (worker ") and " lost: " in lost.description
    assert {r.description.split(" (")[0] for r in rows[1:]} == {"a = 1", "a = 2", "a = 3", "b = 1"}


@pytest.mark.timeout(240)
def test_the_coordinator_killed_mid_run_and_resumed_keeps_rows_and_branch_consistent(tmp_path):
    root = make_project(tmp_path, {"a": [1, 2, 3, 4], "b": [1, 2, 3]}, weight={"a": 10, "b": 3},
                        slow={f"a={v}": 0.3 for v in range(5)})
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CLIVE_CRASH_AT")}
    proc = subprocess.Popen([sys.executable, "-m", "clive", "run", "knobs.md", "--workers", "2",
                             "--max-experiments", "6"], cwd=root, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list((root / "sessions").glob("*/results.tsv")) if (root / "sessions").exists() else []
        if found and len(found[0].read_text().splitlines()) >= 4:  # the baseline and two experiments
            results = found[0]
            break
        time.sleep(0.05)
    assert results is not None, "the run did not get going"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    session = results.parent
    # The watchdog ends the run's private Ray; the resume starts its own.
    deadline = time.monotonic() + 30
    while ray_processes("clive-ray-") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ray_processes("clive-ray-")
    done = clive(root, "--resume", session.name)  # no --max-experiments: the run's own 6 hold
    assert done.returncode == 0, done.stderr
    check_consistent(session, 6)
    check_measured_trees(session)
    assert sorted(p.name for p in (session / "workers").iterdir()) == ["1", "2", "3", "4"]


def test_parallel_runs_refuse_bad_input_in_one_line_before_making_a_session(tmp_path):
    root = make_project(tmp_path, {"a": [1]})
    (root / "steps.md").write_text("---\nsteps:\n  - 'true'\n---\nsteps\n")
    cases = [
        (["steps.md", "--workers", "2"], "needs an experiment playbook"),
        (["knobs.md", "--workers", "0"], "must be positive"),
        (["knobs.md", "--workers", str(4 * (os.cpu_count() or 1))], "CPUs; this machine has"),
        (["knobs.md", "--workers", "2", "--approve"], "--approve takes one worker"),
        (["gpus.md", "--workers", "2"], "needs 2 GPUs; this machine has none"),
    ]
    (root / "gpus.md").write_text((root / "knobs.md").read_text().replace("---\n", "---\nresources: {gpus: 1}\n", 1))
    for args, said in cases:
        done = clive(root, *args, env={"CUDA_VISIBLE_DEVICES": ""})
        assert done.returncode == 2, (args, done.stderr)
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    no_ray = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['ray'] = None; from clive.cli import main; "
         "sys.exit(main(['run', 'knobs.md', '--workers', '2']))"],
        cwd=root, capture_output=True, text=True,
    )
    assert no_ray.returncode == 2 and "pip install 'clive[cluster]'" in no_ray.stderr
    assert not (root / "sessions").exists()


def test_two_model_driven_workers_each_hear_what_the_other_is_trying(tmp_path):
    # The fake model raises one knob per experiment (a, b, c, d in turn). a is slow to measure: while
    # it is, the other worker's next briefing names it.
    from fakeapi import FakeMessagesAPI, tool_use

    root = make_project(tmp_path, {k: [1] for k in "abcd"}, slow={"a=1": 3.0})
    order = iter("abcd")

    def model(body: dict) -> Any:
        last = body["messages"][-1]
        if len(body["messages"]) > 1 and "edited" in json.dumps(last):
            knob = re.search(r"knob_(\w)\.py", json.dumps(body["messages"])).group(1)
            return tool_use("done", {"summary": f"{knob} = 1"})
        knob = next(order)
        return tool_use("edit_file", {"path": f"knob_{knob}.py", "old": f"{knob} = 0", "new": f"{knob} = 1"},
                        text=f"raise {knob}")

    with FakeMessagesAPI(model) as api:
        env = {"ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "test-key", "CLIVE_MODEL": "claude-sonnet-4-6"}
        done = clive(root, "knobs.md", "--policy", "claude", "--workers", "2", "--max-experiments", "4", env=env)
    assert done.returncode == 0, done.stderr
    session = only_session(root)
    rows = check_consistent(session, 4)
    assert sorted(r.description.split(" [")[0] for r in rows[1:]) == ["a = 1", "b = 1", "c = 1", "d = 1"]
    briefings = [json.dumps(r.body["messages"][0]) for r in api.requests if len(r.body["messages"]) == 1]
    assert len(briefings) == 4
    assert all("What the other workers are trying right now" in b for b in briefings)
    assert any("a = 1 (being measured)" in b for b in briefings[2:])
