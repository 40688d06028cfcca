"""The offline search on Optuna: strategies against the synthetic playbook, the study in the session
(resume continues it, parallel workers get distinct trials), tried experiments kept and shown, and
bad search settings refused in one line."""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from clive.cli import main
from clive.experiments.results import ResultsTable

ROOT = Path(__file__).resolve().parent.parent
SYNTHETIC = ROOT / "playbooks" / "synthetic.md"
sys.path.insert(0, str(ROOT))

from bench.search import SYNTHETIC_OPTIMUM, drive  # noqa: E402


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _clive(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CLIVE_CRASH_AT")}
    return subprocess.run([sys.executable, "-m", "clive", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _only(sessions: Path) -> Path:
    (session,) = sessions.iterdir()
    return session


def _configurations(session: Path) -> list[tuple]:
    """The configurations the study measured (each trial's values), duplicates told for free excluded."""
    study = optuna.load_study(study_name=session.name, storage=f"sqlite:///{session / 'search.db'}")
    requeued = set(study.user_attrs.get("requeued", []))
    return [tuple(sorted(t.params.items())) for t in study.trials
            if t.state.name in ("COMPLETE", "FAIL") and not t.user_attrs.get("duplicate") and t.number not in requeued]


@pytest.fixture
def synthetic(tmp_path):
    """The synthetic playbook and its workdir, copied so that a run may be pointed anywhere."""
    shutil.copytree(SYNTHETIC.parent / "synthetic", tmp_path / "synthetic")
    shutil.copy(SYNTHETIC, tmp_path / "synthetic.md")
    return tmp_path / "synthetic.md"


def _first_hit(strategy: str, seed: int, budget: int, scratch: Path) -> float:
    """The experiment at which a run first came within 2% of the optimum (inf: never)."""
    scratch.mkdir(parents=True)
    hit = drive(SYNTHETIC, strategy, seed, budget, scratch).first_within(0.98 * SYNTHETIC_OPTIMUM)
    return math.inf if hit is None else hit


def test_the_default_strategy_reaches_the_optimum_where_the_hill_climber_never_does(tmp_path):
    budget, seeds = 40, range(5)
    # Ten independent runs, two at a time (each in a folder of its own): they take most of a minute in a row.
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        runs = {(strategy, seed): pool.submit(_first_hit, strategy, seed, budget, tmp_path / f"{strategy}-{seed}")
                for strategy in ("tpe", "greedy") for seed in seeds}
        reached = {strategy: [runs[strategy, seed].result() for seed in seeds] for strategy in ("tpe", "greedy")}
    # The hill-climber changes one knob at a time: every single step from the start is worse.
    assert reached["greedy"] == [math.inf] * len(seeds)
    assert sum(n <= budget for n in reached["tpe"]) >= 3, reached
    assert sorted(reached["tpe"])[2] < sorted(reached["greedy"])[2]  # the medians
    # A seed repeats its run exactly (the noise is fixed per configuration).
    again = drive(SYNTHETIC, "tpe", 0, 8, tmp_path)
    assert again.metrics == drive(SYNTHETIC, "tpe", 0, 8, tmp_path).metrics


def test_a_run_keeps_its_study_in_the_session_and_resume_continues_it(synthetic, tmp_path):
    sessions = tmp_path / "sessions"
    first = _clive(tmp_path, "run", str(synthetic), "--sessions", str(sessions), "--max-experiments", "4",
                   "--seed", "7")
    assert first.returncode == 0, first.stderr
    assert "search: tpe, seed 7" in first.stderr
    session = _only(sessions)
    meta = json.loads((session / "meta.json").read_text())
    assert (meta["search"], meta["seed"]) == ("tpe", 7)
    header = (session / "results.tsv").read_text().splitlines()[0].split("\t")
    assert header[:5] == ["commit", "metric", "status", "description", "experiment"]
    assert header[-1] == "hypothesis"
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.experiment for r in rows] == [0, 1, 2, 3, 4]
    assert all(r.hypothesis.startswith(f"tpe trial {r.experiment}:") for r in rows[1:]), rows
    before = _configurations(session)
    assert len(before) == 5  # the baseline is the study's first result

    again = _clive(tmp_path, "run", "--resume", session.name, "--sessions", str(sessions), "--max-experiments", "9")
    assert again.returncode == 0, again.stderr
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.experiment for r in rows] == list(range(10))
    after = _configurations(session)
    assert after[:5] == before  # the same study, continued
    assert len(after) == 10 and len(set(after)) == 10  # no configuration measured twice
    numbers = [int(r.hypothesis.split()[2].rstrip(":")) for r in rows[1:]]
    assert numbers == sorted(numbers) and numbers[4] > numbers[3]


def test_a_run_killed_mid_experiment_asks_the_trial_in_flight_again_on_resume(synthetic, tmp_path):
    sessions = tmp_path / "sessions"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    killed = subprocess.run(
        [sys.executable, "-m", "clive", "run", str(synthetic), "--sessions", str(sessions), "--max-experiments", "5",
         "--seed", "3"],
        cwd=tmp_path, env={**env, "CLIVE_CRASH_AT": "commit:3"}, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert killed.returncode != 0
    session = _only(sessions)
    study = optuna.load_study(study_name=session.name, storage=f"sqlite:///{session / 'search.db'}")
    (in_flight,) = [t for t in study.trials if t.state.name == "RUNNING"]
    done = _clive(tmp_path, "run", "--resume", session.name, "--sessions", str(sessions))
    assert done.returncode == 0, done.stderr
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.experiment for r in rows] == list(range(6))
    configurations = _configurations(session)
    assert tuple(sorted(in_flight.params.items())) in configurations  # measured after all
    assert len(configurations) == len(set(configurations)) == 6


def test_two_workers_are_never_given_the_same_configuration(synthetic, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[test]' installs it)")
    sessions = tmp_path / "sessions"
    done = _clive(tmp_path, "run", str(synthetic), "--sessions", str(sessions), "--workers", "2",
                  "--max-experiments", "10", "--seed", "1")
    assert done.returncode == 0, done.stderr
    session = _only(sessions)
    rows = ResultsTable(session / "results.tsv").rows()
    assert len(rows) == 11 and {r.worker for r in rows[1:]} == {1, 2}
    configurations = _configurations(session)
    assert len(configurations) == len(set(configurations)) == 11
    assert all(r.hypothesis.startswith("tpe trial") for r in rows[1:])


def test_greedy_stays_the_hill_climber(synthetic, tmp_path):
    sessions = tmp_path / "sessions"
    code = main(["run", str(synthetic), "--sessions", str(sessions), "--search", "greedy", "--max-experiments", "3"])
    assert code == 0
    rows = ResultsTable(_only(sessions) / "results.tsv").rows()
    # One knob at a time, in the playbook's order, from the best.
    assert [r.description for r in rows[1:]] == ["tile = 2", "tile = 4", "tile = 8"]
    assert all(r.hypothesis.startswith("greedy:") for r in rows[1:])
    assert not (_only(sessions) / "search.db").exists()


def test_discarded_experiments_are_kept_as_tried_refs_and_shown_without_touching_the_users_repository(
    synthetic, tmp_path, capsys
):
    repo = synthetic.parent / "synthetic"
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "mine")
    (repo / "notes.txt").write_text("uncommitted work\n")
    (repo / "config.py").write_text((repo / "config.py").read_text() + "# my edit\n")
    _git(repo, "add", "config.py")
    head, branches = _git(repo, "rev-parse", "HEAD"), _git(repo, "branch", "--list")
    status, index = _git(repo, "status", "--porcelain"), _git(repo, "ls-files", "-s")

    sessions = tmp_path / "sessions"
    code = main(["run", str(synthetic), "--sessions", str(sessions), "--max-experiments", "6", "--seed", "2"])
    assert code == 0
    session = _only(sessions)
    assert _git(repo, "rev-parse", "HEAD") == head
    assert _git(repo, "status", "--porcelain") == status
    assert _git(repo, "ls-files", "-s") == index
    assert _git(repo, "branch", "--list").replace(f"+ clive/{session.name}\n", "") == branches

    rows = ResultsTable(session / "results.tsv").rows()
    tried = _git(repo, "for-each-ref", "--format=%(refname)", f"refs/clive/{session.name}/tried").split()
    not_kept = [r.experiment for r in rows if r.status != "keep"]
    assert not_kept and sorted(int(ref.rsplit("/", 1)[1]) for ref in tried) == not_kept
    on_branch = _git(repo, "log", "--format=%H", f"clive/{session.name}").split()
    for ref in tried:
        assert _git(repo, "rev-parse", ref).strip() not in on_branch

    n = not_kept[0]
    capsys.readouterr()
    assert main(["show", session.name, str(n), "--sessions", str(sessions)]) == 0
    out = capsys.readouterr().out
    row = rows[n]
    assert out.startswith(f"experiment {n}: {row.description}\nstatus discard")
    assert f"refs/clive/{session.name}/tried/{n}" in out
    assert "--- a/config.py" in out
    assert any(f"\n-{knob} = " in out for knob in ("TILE", "UNROLL", "VECTOR", "PREFETCH")), out
    assert main(["show", session.name, "99", "--sessions", str(sessions)]) == 2
    assert "has no experiment 99" in capsys.readouterr().err


BAD_SEARCH = [
    ("search:\n  strategy: annealing\n  moves: []\n", "search.strategy: unknown strategy 'annealing'"),
    ("search:\n  strategy: tpe\n", "search.moves: missing"),
    ("search:\n  strategy: tpe\n  seed: -1\n  moves: []\n", "search.seed: must be at least 0"),
    ("search:\n  moves:\n    - name: tile\n      file: config.py\n      pattern: '^TILE = (\\d+)'\n      values: []\n",
     "search[0] (tile).values: expected a non-empty list of values"),
]


@pytest.mark.parametrize(("search", "message"), BAD_SEARCH)
def test_bad_search_settings_are_refused_in_one_line_before_a_session_is_made(synthetic, tmp_path, search, message):
    text = synthetic.read_text()
    start = text.index("search:")
    end = text.index("---", start)
    synthetic.write_text(text[:start] + search + text[end:])
    done = _clive(tmp_path, "run", str(synthetic), "--sessions", str(tmp_path / "sessions"))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "sessions").exists()


def test_a_strategy_whose_package_is_missing_is_refused_before_a_session_is_made(synthetic, tmp_path):
    bad = _clive(tmp_path, "run", str(synthetic), "--sessions", str(tmp_path / "sessions"), "--search", "annealing")
    assert bad.returncode == 2 and "invalid choice: 'annealing'" in bad.stderr
    try:
        import torch  # noqa: F401
    except ImportError:
        done = _clive(tmp_path, "run", str(synthetic), "--sessions", str(tmp_path / "sessions"), "--search", "gp")
        assert done.returncode == 2
        assert done.stderr.strip() == "clive: search strategy gp needs the torch package: pip install torch"
    assert not (tmp_path / "sessions").exists()


def test_a_session_from_before_the_search_resumes_as_the_hill_climber_it_was(synthetic, tmp_path):
    sessions = tmp_path / "sessions"
    assert main(["run", str(synthetic), "--sessions", str(sessions), "--search", "greedy",
                 "--max-experiments", "2"]) == 0
    session = _only(sessions)
    meta = json.loads((session / "meta.json").read_text())
    del meta["search"], meta["seed"]  # as meta.json was written before the search existed
    (session / "meta.json").write_text(json.dumps(meta))
    assert main(["run", "--resume", session.name, "--sessions", str(sessions), "--max-experiments", "4"]) == 0
    assert json.loads((session / "meta.json").read_text())["search"] == "greedy"
    rows = ResultsTable(session / "results.tsv").rows()
    assert [r.description for r in rows[1:]] == ["tile = 2", "tile = 4", "tile = 8", "tile = 16"]
    assert not (session / "search.db").exists()
