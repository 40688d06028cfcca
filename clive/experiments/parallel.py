"""``clive run --workers N [--cluster ADDRESS]``: the coordinator, the engine and the session's worker
recordings wired together. With one worker and no cluster, ``runner`` keeps today's in-process loop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from clive.experiments.coordinator import Coordinator, EngineError, worker_dir
from clive.experiments.errors import BadInput, RunFailed
from clive.experiments.loop import Progress, Summary
from clive.experiments.playbook import Playbook
from clive.experiments.proposals import ModelProposer, SweepProposer
from clive.experiments.results import ResultsTable
from clive.experiments.search import STUDY_FILE, Search, SearchError
from clive.experiments.search_policy import SearchPolicy, SearchProposer
from clive.experiments.sweep import SweepPolicy
from clive.experiments.worker import WorkerSetup
from clive.experiments.workspace import Workspace
from clive.session.files import META, atomic_write
from clive.session.recorder import Recorder


def wanted(options: Any) -> bool:
    """Whether this run takes the parallel path: more than one worker, or a cluster named."""
    return (options.workers or 1) > 1 or options.cluster is not None


def cpus_per_worker(pb: Playbook) -> float:
    """The CPUs each worker is given: the playbook's ``resources.cpus``, else one (none beside a GPU)."""
    if "cpus" in pb.resources:
        return pb.resources["cpus"]
    return 0.0 if pb.resources.get("gpus") else 1.0


def check(pb: Playbook, options: Any, policy: str, hosted: bool) -> None:
    """Refuse what parallel workers cannot do, in one line each, before a session is made."""
    from clive.experiments.ray_engine import INSTALL, gpu_count, ray_available

    if not pb.is_experiment:
        raise BadInput(f"{pb.path}: --workers needs an experiment playbook (an eval and a metric)")
    if policy not in ("scripted", "claude"):
        raise BadInput(f"--workers runs the scripted or the claude policy, not {policy}")
    if policy == "scripted" and not pb.search:
        raise BadInput(f"{pb.path}: the scripted policy needs a `search` space for an experiment playbook")
    if options.approve:
        raise BadInput("--approve takes one worker: a parallel run's experiments are not approved one by one")
    if hosted:
        raise BadInput("the co-pilot drives one worker: `clive run PLAYBOOK --workers N --tui` watches a parallel run")
    if not ray_available():
        raise BadInput(INSTALL)
    gpus = pb.resources.get("gpus", 0)
    if options.cluster is None and gpus and gpus * options.workers > (have := gpu_count()):
        raise BadInput(
            f"--workers {options.workers} with resources gpus: {gpus:g} needs {gpus * options.workers:g} GPUs; "
            f"this machine has {have or 'none'} (fewer workers, or --cluster ADDRESS)"
        )
    cpus = cpus_per_worker(pb)
    if options.cluster is None and cpus * options.workers > (os.cpu_count() or 1):
        raise BadInput(
            f"--workers {options.workers} with {cpus:g} CPU each needs {cpus * options.workers:g} CPUs; this "
            f"machine has {os.cpu_count()} (fewer workers, or resources: {{cpus: 0.5}} in the playbook to share)"
        )


def save_recording(session: Path) -> Callable[[int, dict[str, bytes]], None]:
    """Where workers' recordings go: ``workers/<k>/`` of the session, appended as they arrive."""

    def save(worker: int, files: dict[str, bytes]) -> None:
        folder = worker_dir(session, worker)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            if name == META:
                atomic_write(folder / META, data)
            else:
                with open(folder / name, "ab") as f:
                    f.write(data)

    return save


@contextmanager
def stop_on_ctrl_c(coordinator: Coordinator, say: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C: every worker stops its experiment and the run ends saved; second: abort."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if coordinator.stopping:
            raise KeyboardInterrupt
        say("\nclive: stopping every worker (Ctrl-C again to abort)")
        coordinator.request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_parallel(
    pb: Playbook,
    options: Any,
    policy: str,
    recorder: Recorder,
    workspace: Workspace,
    workdir: Path,
    say: Callable[[str], None],
    *,
    unit: str,
) -> tuple[Summary, ResultsTable]:
    """Run the experiments on the workers; the summary and results.tsv (the runner concludes)."""
    from clive.experiments.ray_engine import RayEngine

    results = ResultsTable(recorder.path / "results.tsv", workers=True)
    proposer: Any
    if policy == "scripted" and options.search in (None, "greedy"):
        proposer = SweepProposer(SweepPolicy(pb.search, workdir))
    elif policy == "scripted":
        try:
            search = Search(pb.search, workdir, recorder.path / STUDY_FILE, name=recorder.id,
                            direction=pb.direction, strategy=options.search, seed=options.seed)
        except SearchError as exc:
            raise RunFailed(str(exc)) from None
        proposer = SearchProposer(SearchPolicy(search, workdir))
    else:
        proposer = ModelProposer(lambda: coordinator.default_briefing())
    save = save_recording(recorder.path)
    progress = Progress(options.max_experiments or pb.budget.max_experiments, unit)
    starting = time.monotonic()
    try:
        engine = RayEngine(
            address=options.cluster,
            resources=pb.resources,
            namespace=f"clive-{recorder.id}",
            say=say,
            experiment_seconds=pb.budget.experiment_seconds,
        )
    except EngineError as exc:
        raise RunFailed(str(exc)) from None
    coordinator = Coordinator(
        pb, workspace, proposer, results,
        max_experiments=options.max_experiments,
        progress=progress,
        record_event=lambda type, **fields: recorder.event(type, 0, **fields),
        engine=engine,
        proposer=proposer,
        recording=save,
    )
    try:
        if options.resume:
            coordinator.load_state()
            say(f"resuming at experiment {coordinator.next_experiment}")
        # A resumed run's workers are new processes: they get numbers of their own after the earlier ones.
        first = 1 + max((int(p.name) for p in (recorder.path / "workers").glob("*") if p.name.isdigit()), default=0)
        cpus = cpus_per_worker(pb)
        base = workspace.head()
        setups = [
            WorkerSetup(
                index=first + i, session_id=recorder.id, playbook=pb, policy=policy, model=options.model,
                subdir=str(workdir.relative_to(workspace.path)) if workdir != workspace.path else "",
                base=base, sandbox=bool(options.sandbox), sandbox_net=options.sandbox_net, deny=tuple(options.deny),
                cpus=int(cpus) if cpus >= 1 and float(cpus).is_integer() else 0,
            )
            for i in range(options.workers)
        ]
        where = f"a private Ray on {engine.address}" if engine.local else f"the Ray cluster at {engine.address}"
        say(f"starting {options.workers} workers on {where}")
        started = engine.start(setups, workspace.bundle())
        if not started:
            raise RunFailed("no worker started (see above)")
        hosts = {k: engine.host(k) for k in started}
        say(f"workers: {', '.join(f'w{k} on {h}' for k, h in hosts.items())} ({engine.nodes()} node(s))")
        recorder.update_meta(workers=options.workers, cluster=options.cluster, worker_hosts=hosts)
        recorder.event(
            "workers", 0, started=started, hosts=hosts, nodes={k: engine.node_of.get(k) for k in started},
            address=engine.address, private=bool(engine.local), startup_s=round(time.monotonic() - starting, 3),
        )
        coordinator.start_tips(started, base)
        with stop_on_ctrl_c(coordinator, say):
            summary = coordinator.run()
    finally:
        for worker, files in engine.close().items():
            save(worker, files)
    return summary, results
