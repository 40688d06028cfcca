"""The coordinator of parallel workers: N experiments in flight, one writer of the session's state.

Workers propose and measure; only the coordinator judges, writes results.tsv, the events and the run
branch. A candidate is kept only if it beats the best at the moment it is judged by more than the
noise margin. One that would be kept but was built on an older best is applied to the current best
and measured there first (both measurements are recorded); one that no longer applies is discarded
with that reason. So every keep row is a commit on the run branch, in order, and each kept metric
was measured on exactly that commit's tree. Experiment numbers are given at judging time, so
results.tsv has no gaps; what was in flight when a run was killed is proposed again on resume.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clive.agent.actions import Action
from clive.experiments.evaluation import Evaluation, judge
from clive.experiments.loop import ExperimentBook, Summary
from clive.experiments.results import ExperimentRow
from clive.experiments.worker import Assignment, Candidate, Report, describe

WAIT_SLICE = 0.2  # seconds between looks at Ctrl-C while workers work


class EngineError(Exception):
    """The engine cannot run workers (none started, the cluster went away); the message is one line."""


@dataclass(frozen=True, slots=True)
class Finished:
    """An assignment that came back: its report, or why the worker could not send one."""

    worker: int
    report: Report | None
    error: str = ""
    lost: bool = True  # the worker is gone with it (its process or node), not only this experiment


class Engine(Protocol):
    """What carries assignments to workers and their reports back (``ray_engine.RayEngine``)."""

    def workers(self) -> list[int]:
        """The workers alive now."""
        ...

    def submit(self, worker: int, assignment: Assignment, bundle: bytes | None) -> None: ...

    def wait(self, timeout: float) -> list[Finished]: ...

    def stop(self) -> None:
        """Ask every worker to stop the experiment in flight (Ctrl-C)."""
        ...

    def notes(self) -> dict[int, str]:
        """What each busy worker is doing right now, in a line (its policy's latest step)."""
        ...

    def recordings(self) -> dict[int, dict[str, bytes]]:
        """What busy workers' recordings gained since last asked (never waits), so that they can be
        watched while an experiment runs; a report brings the rest."""
        ...


class Proposer(Protocol):
    """Distinct candidates, aware of what is in flight (with each worker's note, where it wants them)."""

    exhausted: bool
    wants_notes: bool

    def propose(self, in_flight: list[tuple[Candidate, str]], waiting: bool) -> Candidate | None: ...

    def record(self, candidate: Candidate, row: ExperimentRow, metric: float | None) -> None:
        """Learn a judged row; ``metric`` is what the candidate measured on its own base."""
        ...


@dataclass(slots=True)
class _Trial:
    """One candidate from its dispatch to its row: possibly measured more than once."""

    number: int
    candidate: Candidate
    base: str
    patch: bytes | None = None
    started: float = field(default_factory=time.monotonic)
    measured: list[dict[str, Any]] = field(default_factory=list)  # earlier measurements, on older bests


class Coordinator(ExperimentBook):
    """Runs a playbook's experiments on N workers through ``engine``; owns every write."""

    def __init__(
        self,
        *args: Any,
        engine: Engine,
        proposer: Proposer,
        recording: Any,  # callable(worker, {file: bytes}): where each worker's recording goes
        **options: Any,
    ) -> None:
        super().__init__(*args, **options)
        self.engine = engine
        self.proposer = proposer
        self._recording = recording
        self._stop = False
        self._trials = 0
        self._in_flight: dict[int, _Trial] = {}  # by worker
        self._again: deque[_Trial] = deque()  # to measure again on the current best
        self._tip: dict[int, str] = {}  # the newest best each worker has the commits of
        self._bundle: tuple[str, bytes] | None = None  # (commit, bundle of the branch at it)
        self.evaluations = 0  # measurements made, re-evaluations included

    @property
    def stopping(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        self._stop = True

    def start_tips(self, workers: list[int], base: str) -> None:
        """The workers started with the branch at ``base``."""
        for k in workers:
            self._tip[k] = base

    # ---- the loop ---------------------------------------------------------------------

    def run(self) -> Summary:
        halted = ""  # why nothing at all may start any more
        stopped = ""  # why no new candidate may start (what is in flight still finishes)
        while True:
            if self.stopping and halted != "interrupted":
                halted = "interrupted"
                self.engine.stop()
            if not halted:
                halted, stopped = self._fill()
            if not self._in_flight:
                break
            for worker, files in self.engine.recordings().items():
                self._recording(worker, files)
            for done in self.engine.wait(WAIT_SLICE):
                trouble = self._take(done)
                if trouble and not halted:
                    halted = trouble
                    if trouble == "interrupted":
                        self.engine.stop()
        return self.summary(halted or stopped or "the search space is exhausted")

    def _fill(self) -> tuple[str, str]:
        """Give idle workers experiments: (why nothing may start any more, why no new candidate may)."""
        while True:
            workers = self.engine.workers()
            if not workers:
                return "every worker is gone", ""
            idle = [k for k in workers if k not in self._in_flight]
            if not idle:
                return "", ""
            if self.next_experiment == 0:
                if not self._in_flight:  # the baseline first, alone
                    self._dispatch(idle[0], self._new_trial(Candidate("baseline", "baseline"), patch=b""))
                return "", ""
            if self._again:
                trial = self._again.popleft()
                trial.base = self.best_commit
                self._dispatch(idle[0], trial)
                continue
            stopped = self._should_stop(in_flight=len(self._in_flight))
            if stopped:
                return "", stopped
            notes = self.engine.notes() if self.proposer.wants_notes and self._in_flight else {}
            busy = [(trial.candidate, notes.get(k, "")) for k, trial in self._in_flight.items()]
            candidate = self.proposer.propose(busy, bool(self._in_flight))
            if candidate is None:
                return "", "the search space is exhausted" if self.proposer.exhausted else ""
            self._dispatch(idle[0], self._new_trial(candidate))

    def _new_trial(self, candidate: Candidate, patch: bytes | None = None) -> _Trial:
        self._trials += 1
        base = self.best_commit or self.ws.head()
        return _Trial(self._trials, candidate, base, patch)

    def _dispatch(self, worker: int, trial: _Trial) -> None:
        bundle = None
        if self._tip.get(worker) != trial.base:
            bundle = self._bundle_at(trial.base)
            self._tip[worker] = trial.base
        self._in_flight[worker] = trial
        again = " again on the new best" if trial.measured else ""
        self._event("dispatch", trial=trial.number, worker=worker, base=trial.base, candidate=trial.candidate.label)
        self.progress.line(f"  w{worker} tries {trial.candidate.label}{again}")
        self.engine.submit(worker, Assignment(trial.number, trial.candidate, trial.base, trial.patch), bundle)

    def _bundle_at(self, commit: str) -> bytes:
        if self._bundle is None or self._bundle[0] != commit:
            self._bundle = (commit, self.ws.bundle())  # the branch's tip is the best: see _keep
        return self._bundle[1]

    # ---- judging ----------------------------------------------------------------------

    def _take(self, done: Finished) -> str:
        """Judge what a worker sent back; a reason to stop starting experiments, or ""."""
        trial = self._in_flight.pop(done.worker, None)
        if done.report is not None and done.report.recording:
            self._recording(done.worker, done.report.recording)
        if trial is None:
            return ""
        report = done.report
        if report is None:
            # The worker's process or node is gone (or its code failed): the experiment is recorded
            # as a crash, and the run goes on with the workers there are.
            if done.lost:
                self._tip.pop(done.worker, None)
            if self.stopping:
                return ""  # stopped by the user: proposed again on resume
            reason = f"worker {done.worker} {'lost' if done.lost else 'failed'}: {done.error}"
            if self.next_experiment == 0:
                return f"the baseline failed: {reason}"
            self._row(trial, Evaluation(None, "crash", reason, 0.0), trial.candidate.label, trial.base, done.worker)
            return ""
        self.evaluations += 1
        self._event("report", candidate=trial.candidate.label, **describe(report))
        if report.status == "interrupted":
            return "interrupted"  # not recorded: a resumed run proposes it again
        if report.status == "failed":
            return f"the policy failed: {report.description}"
        if self.next_experiment == 0:
            return self._baseline(trial, report)
        evaluation = report.evaluation
        status = judge(self.pb, evaluation, self.best)
        if status == "keep" and report.base != self.best_commit:
            return self._measure_again(trial, report)
        if status == "keep":
            return self._keep(trial, report)
        self._row(trial, evaluation, report.description, report.base, report.worker, report.patch,
                  hypothesis=report.hypothesis)
        return ""

    def _baseline(self, trial: _Trial, report: Report) -> str:
        e, base, k = report.evaluation, report.base, report.worker
        if e.status != "ok":
            self._write(ExperimentRow(0, base, None, "crash", f"baseline: {e.reason}", e.duration, k))
            return f"the baseline failed: {e.reason}"
        row = ExperimentRow(0, base, e.metric, "keep", "baseline", e.duration, k)
        self._write(row)
        self.proposer.record(trial.candidate, row, e.metric)
        self.next_experiment = 1
        return ""

    def _measure_again(self, trial: _Trial, report: Report) -> str:
        """Better than the best, but measured on an older one: apply it to the best and measure there."""
        e = report.evaluation
        made = self.ws.commit_patch(self.best_commit, report.patch, f"candidate: {report.description}")
        if made is None:
            reason = Evaluation(e.metric, "discard", f"no longer applies on the best {self.best_commit[:12]}", 0.0)
            self._row(trial, reason, report.description, report.base, report.worker, report.patch)
            return ""
        trial.measured.append({"base": report.base, "metric": e.metric, "worker": report.worker, "tree": report.tree})
        trial.patch = report.patch
        trial.candidate = Candidate(trial.candidate.key, report.description, hypothesis=trial.candidate.hypothesis)
        self._again.append(trial)
        return ""

    def _keep(self, trial: _Trial, report: Report) -> str:
        n = self.next_experiment
        made = self.ws.commit_patch(report.base, report.patch, f"experiment {n}: {report.description}")
        if made is None or made[1] != report.tree:
            # The patch must rebuild the very tree that was measured, or nothing is kept.
            why = "the patch does not apply"
            if made is not None:
                why = f"the patch makes tree {made[1][:12]}, not the {report.tree[:12]} measured"
            broken = Evaluation(report.evaluation.metric, "crash", why, report.evaluation.duration)
            self._row(trial, broken, report.description, report.base, report.worker, report.patch)
            return ""
        commit, _ = made
        self.ws.reset_to(commit)  # the run branch moves on: the best's tree, exactly
        self._row(trial, report.evaluation, report.description, report.base, report.worker,
                  commit=commit, status="keep", hypothesis=report.hypothesis)
        return ""

    def _row(
        self, trial: _Trial, evaluation: Evaluation, description: str, base: str, worker: int,
        patch: bytes | None = None, *, commit: str = "", status: str = "", hypothesis: str = "",
    ) -> None:
        n = self.next_experiment
        status = status or judge(self.pb, evaluation, self.best)
        if not commit:
            made = self.ws.commit_patch(base, patch, f"experiment {n}: {description}") if patch else None
            commit = made[0] if made else base
            if made:
                self.ws.keep_tried(n, commit)  # off the run branch, but never lost: `clive show`
        reason = "" if evaluation.status == "ok" else f" ({evaluation.reason})"
        again = ""
        if trial.measured:
            first = trial.measured[0]
            again = f" [measured {first['metric']:.6g} on {first['base'][:12]}, again on {base[:12]}]"
        row = ExperimentRow(
            n, commit, evaluation.metric, status, description + reason + again,
            time.monotonic() - trial.started, worker, trial.candidate.hypothesis or hypothesis,
        )
        self._write(row, trial=trial.number, base=base, measured=trial.measured)
        own = trial.measured[0]["metric"] if trial.measured else evaluation.metric
        self.proposer.record(trial.candidate, dataclasses.replace(row, description=description), own)
        self.next_experiment = n + 1


def steps_of(decisions: list[Any]) -> tuple[Action, ...]:
    """The actions of a scripted proposal's decisions."""
    return tuple(d.action for d in decisions)


def worker_dir(session: Path, worker: int) -> Path:
    """``workers/<k>/`` of a session: one worker's own recording."""
    return session / "workers" / str(worker)
