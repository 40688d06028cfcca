"""`clive run`: wire a playbook, a policy, a terminal, a workspace and a recorder together."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from clive import __version__
from clive.agent.actions import Action, Run, action_to_dict, parse_action
from clive.agent.executor import Executor
from clive.agent.loop import Agent, AgentOutcome, Budget
from clive.agent.policies.human import HumanPolicy
from clive.agent.policy import Policy
from clive.experiments import parallel
from clive.experiments.errors import BadInput, RunFailed
from clive.experiments.loop import ExperimentLoop, Progress, ResultsTable, Summary
from clive.experiments.playbook import Playbook, load_playbook, missing_requirements
from clive.experiments.sandboxing import decide_sandbox, sandbox_for
from clive.experiments.scripted import ScriptedPolicy
from clive.experiments.search import DEFAULT_STRATEGY, STUDY_FILE, SearchError, check_strategy
from clive.experiments.sweep import SweepPolicy
from clive.experiments.workspace import Workspace, WorkspaceError
from clive.safety.guard import CommandGuard, GuardError
from clive.session import Recorder, SessionError, SessionReader, resolve_session
from clive.terminal import Terminal

COLS, ROWS = 120, 32




@dataclass(frozen=True, slots=True)
class RunOptions:
    playbook: Path | None
    policy: str = "scripted"
    workdir: Path | None = None
    sessions: Path = Path("sessions")
    max_experiments: int | None = None
    resume: str | None = None
    model: str | None = None
    approve: bool = False
    deny: tuple[str, ...] = ()
    max_cycles: int | None = None
    sandbox: bool | None = None  # None: as the policy goes (a model's runs are sandboxed)
    sandbox_net: bool = False  # the sandbox reaches the network
    workers: int | None = None  # experiments in flight (None: the playbook's, else 1)
    cluster: str | None = None  # a Ray cluster's address (None: $RAY_ADDRESS with workers, else local)
    search: str | None = None  # the offline search's strategy (None: the playbook's, else the default)
    seed: int | None = None  # the search's seed (None: the playbook's, else a fresh one, recorded)
    ssh: str | None = None  # USER@HOST: work in a shell there (ssh from the terminal, with clive's markers)


@contextmanager
def stop_on_ctrl_c(agent: Agent, terminal: Terminal) -> Iterator[None]:
    """First Ctrl-C: stop at the next safe point (and interrupt the command running); second: abort."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if agent.stop_requested:
            raise KeyboardInterrupt
        print("\nclive: stopping after this step (Ctrl-C again to abort)", file=sys.stderr, flush=True)
        agent.request_stop()
        try:
            terminal.type("\x03")
        except Exception:  # noqa: BLE001 - the terminal may already be gone
            pass

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def approve_on_stdin(action: Action) -> Action | None:
    """--approve in headless mode: ask on stdin before each action; 'e' edits its JSON."""
    shown = json.dumps(action_to_dict(action), ensure_ascii=False)
    while True:
        print(f"clive wants to: {shown}\napprove? [y]es / [n]o / [e]dit: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:
            return None
        choice = answer.strip().lower()[:1]
        if choice == "y":
            return action
        if choice == "n":
            return None
        if choice == "e":
            print("new action as JSON: ", end="", file=sys.stderr, flush=True)
            try:
                return parse_action(json.loads(sys.stdin.readline()))
            except (ValueError, TypeError) as exc:
                print(f"not an action: {exc}", file=sys.stderr)


def check_policy(name: str, pb: Playbook, strategy: str | None = None) -> None:
    """Refuse a playbook the policy cannot run (before anything is made for the run)."""
    if name == "scripted":
        if pb.is_experiment and not pb.search:
            raise BadInput(f"{pb.path}: the scripted policy needs a `search` space for an experiment playbook")
        if pb.is_experiment and strategy is not None:
            try:
                check_strategy(strategy)
            except SearchError as exc:
                raise BadInput(str(exc)) from None
        if not pb.is_experiment and not pb.steps:
            raise BadInput(
                f"{pb.path}: the scripted policy needs `steps` (or `search`); "
                "use --policy claude for a plain program.md"
            )
    elif name == "claude":
        from clive.agent.policies.claude import require_credentials

        require_credentials()
    elif name != "human":
        raise BadInput(f"unknown policy {name!r} (expected scripted or claude)")


def make_policy(
    name: str, pb: Playbook, terminal: Terminal, workdir: Path, model: str | None,
    search: tuple[str, int | None, Path, str] | None = None,
) -> Policy:
    """``search``: (strategy, seed, study file, study name) of an experiment run's offline search."""
    check_policy(name, pb)
    if name == "scripted":
        if pb.is_experiment:
            return offline_search(pb, workdir, search)
        return ScriptedPolicy(pb.steps, pb.expects, screen=terminal.snapshot)
    if name == "claude":
        from clive.agent.policies.claude import ClaudePolicy

        return ClaudePolicy(pb.body, model=model or pb.model)
    return HumanPolicy()


def offline_search(pb: Playbook, workdir: Path, search: tuple[str, int | None, Path, str] | None) -> Any:
    """The scripted policy of an experiment playbook: the hill-climber (greedy) or an Optuna study."""
    strategy, seed, study, name = search or ("greedy", None, Path(), "")
    if strategy == "greedy":
        return SweepPolicy(pb.search, workdir)
    from clive.experiments.search import Search
    from clive.experiments.search_policy import SearchPolicy

    try:
        found = Search(pb.search, workdir, study, name=name, direction=pb.direction, strategy=strategy, seed=seed)
    except SearchError as exc:
        raise RunFailed(str(exc)) from None
    return SearchPolicy(found, workdir)


def search_settings(pb: Playbook, options: RunOptions) -> tuple[str, int]:
    """The strategy and seed an experiment run searches with (the command line, then the playbook,
    then the default; a seed made up is recorded, so that a run can be repeated)."""
    strategy = options.search or pb.search_strategy or DEFAULT_STRATEGY
    seed = options.seed if options.seed is not None else pb.search_seed
    if seed is None:
        seed = random.randrange(2**31)
    return strategy, seed


Body = Callable[[Callable[[str], None]], tuple[int, str]]
# A host runs the body of a run (setup, then the experiments or the steps) its own way: the
# co-pilot viewer runs it in a worker thread and shows what it says. Returns (exit code, status).
Host = Callable[[Terminal, Agent, Recorder, Policy, Body], tuple[int, str]]


def runs_in_parallel(options: RunOptions) -> bool:
    """Whether ``clive run --tui`` with these options takes parallel workers (the playbook's
    ``workers``, a resumed run's own count, or the command line's); bad input is refused here as
    by ``run``."""
    return parallel.wanted(_plan(options, hosted=True)[3])


def _plan(options: RunOptions, *, hosted: bool) -> tuple[Playbook, str, dict[str, Any] | None, RunOptions]:
    """The playbook, the policy, a resumed run's meta.json, and the options with the budgets and
    workers the run was started with filled in (the command line wins)."""
    resume_meta: dict[str, Any] | None = None
    if options.resume:
        session_dir = _session_dir(options.sessions, options.resume)
        try:
            resume_meta = json.loads((session_dir / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot resume {options.resume}: meta.json unreadable ({exc})") from None
        recorded = resume_meta.get("playbook", "")
        playbook_path = options.playbook or (None if recorded == "-" else Path(recorded))  # "-": free hand
        policy_name = resume_meta.get("policy", options.policy)
        if policy_name == "human" and not hosted:
            raise BadInput(f"{options.resume} is a free-hand co-pilot session: `clive tui --resume {options.resume}`")
    else:
        if options.playbook is None and options.policy != "human":
            raise BadInput("a playbook is required (or --resume SESSION)")
        playbook_path = options.playbook
        policy_name = options.policy

    if playbook_path is None:
        # The free-hand co-pilot: a person decides every action; there is no playbook to follow.
        pb = Playbook(path=Path("-"), name="free hand", body="", workdir=options.workdir)
    else:
        pb = load_playbook(playbook_path, workdir=options.workdir if not resume_meta else None)
    started_with = resume_meta or {}
    recorded_search = started_with.get("search")
    if resume_meta is not None and "search" not in resume_meta:
        recorded_search = "greedy"  # a session from before the search: it hill-climbed
    search = options.search or (recorded_search if isinstance(recorded_search, str) else None)
    seed = options.seed if options.seed is not None else _seed(started_with.get("seed"))
    if playbook_path is not None:
        check_policy(policy_name, pb, search or pb.search_strategy or DEFAULT_STRATEGY)
    missing = missing_requirements(pb)
    if missing:
        raise RunFailed(f"cannot run {pb.name}: needs {', '.join(missing)} (not found on PATH)")
    # What the run was started with holds on resume, unless the command line says otherwise.
    max_experiments = options.max_experiments or _count(started_with.get("max_experiments"))
    max_cycles = options.max_cycles or _count(started_with.get("max_cycles"))
    workers = options.workers or _count(started_with.get("workers")) or pb.workers
    recorded_cluster = started_with.get("cluster")
    cluster = options.cluster or (recorded_cluster if isinstance(recorded_cluster, str) else None)
    if cluster is None and workers > 1:
        cluster = os.environ.get("RAY_ADDRESS") or None
    sandbox_net = options.sandbox_net or started_with.get("sandbox_network") is True
    sandbox = decide_sandbox(options.sandbox, sandbox_net, policy_name, started_with.get("sandbox"))
    options = dataclasses.replace(options, max_experiments=max_experiments, max_cycles=max_cycles,
                                  workers=workers, cluster=cluster, search=search, seed=seed,
                                  sandbox=sandbox, sandbox_net=sandbox_net)
    return pb, policy_name, resume_meta, options


def run(options: RunOptions, err: Callable[[str], None] | None = None, *, host: Host | None = None) -> int:
    """Run (or resume) a playbook headless, or inside ``host``; returns the exit code."""
    say = err or (lambda text: print(text, file=sys.stderr, flush=True))
    pb, policy_name, resume_meta, options = _plan(options, hosted=host is not None)
    playbook_path = None if pb.path == Path("-") else pb.path
    if parallel.wanted(options):
        parallel.check(pb, options, policy_name, host is not None)
    searches = pb.is_experiment and policy_name == "scripted"
    if searches:
        strategy, seed = search_settings(pb, options)  # in meta.json from the start: resume keeps them
        options = dataclasses.replace(options, search=strategy, seed=seed)
    try:
        guard = CommandGuard(options.deny)
    except GuardError as exc:
        raise BadInput(str(exc)) from None

    if resume_meta is not None:
        recorder = Recorder.open_for_resume(_session_dir(options.sessions, options.resume or ""))
    else:
        recorder = Recorder.create(
            options.sessions,
            {
                "playbook": "-" if playbook_path is None else str(pb.path.resolve()),  # resume from anywhere
                "policy": policy_name,
                "model": options.model or pb.model,
                "status": "running",
                "clive_version": __version__,
                "max_experiments": options.max_experiments,
                "max_cycles": options.max_cycles,
                "workers": options.workers,
                "cluster": options.cluster,
                "sandbox": options.sandbox,
                "sandbox_network": options.sandbox_net,
                **({"search": options.search, "seed": options.seed} if searches else {}),
                **({"direction": pb.direction, "noise": pb.noise, "plateau": pb.stop.plateau}
                   if pb.is_experiment else {}),
            },
            COLS,
            ROWS,
        )
    sid = recorder.id
    say(f"session {sid} in {recorder.path}")
    search = None
    if searches:
        assert options.search is not None
        search = (options.search, options.seed, recorder.path / STUDY_FILE, recorder.id)
        recorder.update_meta(search=options.search, seed=options.seed)  # a resume may change them
        say(f"search: {options.search}, seed {options.seed}")
    status = "failed"
    try:
        workspace, workdir = _workspace(pb, options, recorder, resume_meta)
        recorder.update_meta(workdir=str(workdir), branch=workspace.branch if workspace else None)
        if pb.is_experiment:
            ResultsTable(recorder.path / "results.tsv", workers=parallel.wanted(options))  # its header, first
        if parallel.wanted(options):
            assert workspace is not None  # an experiment playbook always has one
            summary, results = parallel.run_parallel(
                pb, options, policy_name, recorder, workspace, workdir, say, unit=_unit(pb)
            )
            code, status = conclude(pb, summary, results, recorder, say, 0)
            return code
        sandbox = None
        if options.sandbox:
            scratch = recorder.path / "scratch"
            scratch.mkdir(exist_ok=True)
            sandbox = sandbox_for(pb, Path(workdir), scratch, network=options.sandbox_net)
        with Terminal(cwd=workdir, cols=COLS, rows=ROWS, listeners=[recorder], sandbox=sandbox) as terminal:
            limits = terminal.enforcement.describe()
            say(f"limits: {limits}; " + (sandbox.describe() if sandbox else "not sandboxed"))
            recorder.update_meta(limits=limits, sandbox=bool(sandbox))
            executor = Executor(
                terminal,
                workdir,
                guard=guard,
                readonly=pb.readonly,
                checkpoint=(lambda m: workspace.checkpoint(m).sha) if workspace else None,
            )
            agent = Agent(
                terminal,
                executor,
                recorder,
                budget=Budget(max_cycles=options.max_cycles, wall_seconds=pb.budget.wall_seconds),
                approve=approve_on_stdin if options.approve and host is None else None,
                cycles_before=recorder.last_cycle,
            )
            policy = make_policy(policy_name, pb, terminal, workdir, options.model, search)
            if resume_meta is not None and isinstance(policy, ScriptedPolicy):
                policy.skip(_steps_done(recorder.path))

            def body(tell: Callable[[str], None]) -> tuple[int, str]:
                if options.ssh:
                    _enter_ssh(options.ssh, agent, tell)
                if resume_meta is None:
                    _setup(pb, agent, tell)
                if pb.is_experiment and workspace is not None:
                    return _experiments(pb, agent, workspace, policy, recorder, options, tell)
                return _steps(agent, policy, tell)

            if host is not None:
                code, status = host(terminal, agent, recorder, policy, body)
            else:
                with stop_on_ctrl_c(agent, terminal):
                    code, status = body(say)
        return code
    except KeyboardInterrupt:
        status = "interrupted"
        say("clive: aborted; the session is saved")
        return 130
    except (SessionError, WorkspaceError, OSError) as exc:
        # A disk that filled up or a file that cannot be written mid-run: the run stops, and what
        # was written so far stays readable (every file is appended or replaced atomically).
        raise RunFailed(_one_line(exc)) from None
    finally:
        try:
            recorder.close(status)
        except (SessionError, OSError):
            pass  # the error that stopped the run has been said; closing cannot add to it


def _count(value: Any) -> int | None:
    """A positive whole number from meta.json, or None (absent in older sessions, or damaged)."""
    return value if type(value) is int and value > 0 else None


def _seed(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot write {exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def _steps_done(session_dir: Path) -> int:
    """How many scripted steps an earlier run of the session carried out (its policy cycles)."""
    reader = SessionReader.open(session_dir)
    return sum(1 for c in reader.cycles() if c.get("source") == "policy" and c["action"]["type"] != "done")


def _session_dir(sessions: Path, ref: str) -> Path:
    try:
        return resolve_session(ref, sessions)
    except SessionError as exc:
        raise BadInput(str(exc)) from None


def _workspace(
    pb: Playbook, options: RunOptions, recorder: Recorder, resume_meta: dict[str, Any] | None
) -> tuple[Workspace | None, Path]:
    sid = recorder.id
    try:
        if pb.is_experiment:
            run_dir = recorder.path / "work"
            source = Path(options.workdir or pb.workdir or Path.cwd())
            if resume_meta is not None and (run_dir / ".git").exists():
                ws = Workspace.reopen_experiment(run_dir, sid, source=source)
            elif resume_meta is not None:
                # Killed before the run's repository was made: start it now.
                shutil.rmtree(run_dir, ignore_errors=True)
                ws = Workspace.for_experiment(source, sid, run_dir)
            else:
                ws = Workspace.for_experiment(source, sid, run_dir)
            return ws, ws.workdir
        workdir = Path(resume_meta["workdir"]) if resume_meta else (options.workdir or pb.workdir or Path.cwd())
        try:
            return Workspace(Path(workdir), sid), Path(workdir)
        except WorkspaceError:
            return None, Path(workdir)  # checkpoints need git; a plain folder still runs
    except WorkspaceError as exc:
        raise BadInput(str(exc)) from None


def _setup(pb: Playbook, agent: Agent, say: Callable[[str], None]) -> None:
    for command in pb.setup:
        say(f"setup: {command}")
        outcome = agent.act(Run(command, timeout=pb.budget.experiment_seconds), source="setup")
        if not outcome.ok:
            raise RunFailed(f"setup command failed ({_why(outcome)}): {command}")


def _enter_ssh(target: str, agent: Agent, say: Callable[[str], None]) -> None:
    say(f"ssh {target}")
    outcome = agent.act(Run(f"ssh {shlex.quote(target)}", timeout=60), source="setup")
    if outcome.exit_code is not None or not outcome.ok:
        raise RunFailed(f"ssh {target} did not give a shell ({_why(outcome)}): {(outcome.output or '').strip()[-200:]}")
    say(outcome.text.splitlines()[0])


def check_ssh_target(target: str) -> str:
    """USER@HOST (or HOST) as ssh takes it; refused in one line if it could be read as an option."""
    if not target or target.startswith("-") or any(c.isspace() for c in target):
        raise BadInput(f"--ssh: expected USER@HOST, got {target!r}")
    return target


def _why(outcome: Any) -> str:
    return f"exit {outcome.exit_code}" if outcome.exit_code is not None else outcome.text.splitlines()[0]


def _experiments(
    pb: Playbook,
    agent: Agent,
    workspace: Workspace,
    policy: Policy,
    recorder: Recorder,
    options: RunOptions,
    say: Callable[[str], None],
) -> tuple[int, str]:
    metric_unit = _unit(pb)
    loop = ExperimentLoop(
        pb,
        agent,
        workspace,
        policy,
        ResultsTable(recorder.path / "results.tsv"),
        max_experiments=options.max_experiments,
        progress=Progress(options.max_experiments or pb.budget.max_experiments, metric_unit),
        record_event=lambda type, **f: recorder.event(type, agent.cycle, **f),
    )
    if options.resume:
        loop.load_state()
        say(f"resuming at experiment {loop.next_experiment}")
    return conclude(pb, loop.run(), loop.results, recorder, say, agent.cycle)


def conclude(
    pb: Playbook, summary: Summary, results: ResultsTable, recorder: Recorder, say: Callable[[str], None], cycle: int
) -> tuple[int, str]:
    """Say how an experiment run ended, put it in meta.json and the events, chart it; (exit code, status)."""
    for line in summary.lines(pb.direction):
        say(line)
    recorder.update_meta(
        baseline=summary.baseline, best=summary.best, best_commit=summary.best_commit,
        kept=summary.kept, discarded=summary.discarded, crashed=summary.crashed,
    )
    chart = _chart(results, recorder.path / "progress.png", pb)
    if chart:
        say(f"chart: {chart}")
    status = _status(summary)
    recorder.event("end", cycle, status=status, summary=" | ".join(summary.lines(pb.direction)))
    if status == "failed":
        say(f"clive: {summary.stopped_because}")
    code = {"done": 0, "interrupted": 130}.get(status, 1)
    return code, status


def _status(summary: Summary) -> str:
    if summary.stopped_because == "interrupted":
        return "interrupted"
    if summary.baseline is None or summary.stopped_because.startswith(("the baseline failed", "the policy failed")):
        return "failed"
    return "done"


def _steps(agent: Agent, policy: Policy, say: Callable[[str], None]) -> tuple[int, str]:
    outcome: AgentOutcome = agent.run(policy)
    agent.recorder.event("end", agent.cycle, status=outcome.status, summary=outcome.summary)  # type: ignore[union-attr]
    say(f"{outcome.status}: {outcome.summary} ({outcome.cycles} cycles)")
    code = {"done": 0, "interrupted": 130}.get(outcome.status, 1)
    return code, outcome.status


def _unit(pb: Playbook) -> str:
    pattern = pb.metric.pattern if pb.metric else ""
    head = pattern.split("(")[0].strip().rstrip(":").replace("\\", "")
    return head[:16]


def _chart(results: ResultsTable, path: Path, pb: Playbook) -> Path | None:
    """progress.png: the metric per experiment, kept ones joined by the best-so-far line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = results.rows()
    if not any(r.metric is not None for r in rows):
        return None
    xs = [r.experiment for r in rows if r.metric is not None]
    ys = [r.metric for r in rows if r.metric is not None]
    kept = [(r.experiment, r.metric) for r in rows if r.status == "keep" and r.metric is not None]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.scatter(xs, ys, s=14, color="#999999", label="experiment")
    if kept:
        kx, ky = zip(*kept, strict=True)
        ax.step(kx, ky, where="post", color="#1f77b4", label="best kept")
        ax.scatter(kx, ky, s=24, color="#1f77b4")
    ax.set_xlabel("experiment")
    ax.set_ylabel(_unit(pb) or "metric")
    ax.set_title(f"{pb.name}: {pb.direction}")
    ax.legend(loc="best")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path

