"""One parallel worker: its own working copy, terminal and recording; stateless between experiments.

A worker gets the run's repository as bytes (a git bundle) and, for each experiment, a candidate and
the commit to start from. It proposes in its own terminal (the sweep's edit, or a model's), measures
there as the in-process loop does, and reports the candidate as a patch against that commit, the tree
it measured, the evaluation, and what its recording gained since the last report. It judges nothing
and writes nothing of the session's: the coordinator does. Nothing here knows the engine (Ray) that
carries it; ``ray_engine`` adapts it.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clive import __version__
from clive.agent.actions import Action, Run, action_to_dict
from clive.agent.executor import Executor
from clive.agent.loop import Agent, Budget
from clive.agent.policy import Policy
from clive.experiments.evaluation import Evaluation, evaluate
from clive.experiments.playbook import Playbook
from clive.experiments.sandboxing import sandbox_for
from clive.experiments.scripted import ScriptedPolicy
from clive.experiments.workspace import Workspace, WorkspaceError
from clive.safety.cores import CoreClaim, CoresBusy
from clive.safety.guard import CommandGuard
from clive.session.files import CAST, EVENTS, KEYFRAMES, META
from clive.session.listing import summarize_action
from clive.session.recorder import Recorder
from clive.terminal import Terminal, TerminalError

PROPOSAL_CYCLES = 40  # cycles a policy may spend proposing one experiment
COLS, ROWS = 120, 32
# What a worker passes on to its terminal from its own environment: the engine's choice of GPU.
_PASSED_ON = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
# The recording's appended files, sent as they grow; meta.json is sent whole.
_GROWING = (EVENTS, CAST, KEYFRAMES)


class WorkerError(Exception):
    """A worker could not start (no free cores, setup failed, no repository); the message is one line."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """What one experiment tries. ``key`` must not be in flight twice; ``label`` is what progress shows.
    A scripted candidate carries its ``steps`` (the sweep's edit); a model's carries a ``briefing``."""

    key: str
    label: str
    steps: tuple[Action, ...] = ()
    briefing: str | None = None
    hypothesis: str = ""


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What every worker of a run is started with."""

    index: int  # workers/<index>/ in the session
    session_id: str
    playbook: Playbook
    policy: str  # scripted or claude
    model: str | None
    subdir: str  # the playbook's workdir inside the repository ("" for its top)
    base: str  # the commit the working copy starts at
    sandbox: bool = False
    sandbox_net: bool = False
    deny: tuple[str, ...] = ()
    cpus: int = 0  # cores to claim and pin to (0: none)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One experiment for a worker: a candidate to propose on ``base``, or (``patch`` set) a candidate
    proposed on an older best, to apply to ``base`` and measure again."""

    trial: int  # the coordinator's number for this dispatch
    candidate: Candidate
    base: str
    patch: bytes | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """What a worker sends back for an assignment."""

    trial: int
    worker: int
    base: str
    description: str
    patch: bytes
    tree: str  # the tree measured: base with the patch applied
    evaluation: Evaluation
    status: str  # done, failed (the policy could not go on) or interrupted
    duration: float
    recording: dict[str, bytes] = field(default_factory=dict)
    host: str = ""
    hypothesis: str = ""  # a model's one-line reason for its proposal


class Worker:
    """A working copy, a terminal and a recording on whatever machine the engine put this process."""

    def __init__(self, setup: WorkerSetup, bundle: bytes, scratch: Path) -> None:
        self.setup = setup
        self.pb = setup.playbook
        self.scratch = Path(scratch)
        self._claim: CoreClaim | None = None
        if setup.cpus:
            try:
                self._claim = CoreClaim(setup.cpus)
            except CoresBusy as exc:
                raise WorkerError(f"worker {setup.index} on {socket.gethostname()}: {exc}") from None
            self._claim.pin()  # the terminal and everything it runs inherit the cores
        try:
            self.ws = Workspace.from_bundle(bundle, self.scratch / "work", setup.session_id, setup.base)
        except WorkspaceError as exc:
            raise WorkerError(f"worker {setup.index}: cannot make its working copy: {exc}") from None
        self.workdir = self.ws.path / setup.subdir
        self.recorder = Recorder.create(
            self.scratch / "recording",
            {
                "playbook": str(self.pb.path),
                "policy": setup.policy,
                "model": setup.model,
                "worker": setup.index,
                "session": setup.session_id,
                "cores": self._claim.cores if self._claim else None,
                "clive_version": __version__,
            },
            COLS,
            ROWS,
        )
        self._sent: dict[str, int] = dict.fromkeys(_GROWING, 0)
        self._sending = threading.Lock()  # the coordinator asks for news while run() works
        self.note = ""  # what the policy did last, for the other workers' briefings
        env = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
        sandbox = None
        if setup.sandbox:
            scratch_dir = self.scratch / "sandbox-scratch"
            scratch_dir.mkdir(exist_ok=True)
            sandbox = sandbox_for(self.pb, self.workdir, scratch_dir, network=setup.sandbox_net)
        try:
            self.terminal = Terminal(
                cwd=self.workdir, cols=COLS, rows=ROWS, listeners=[self.recorder], sandbox=sandbox, env=env
            )
        except TerminalError as exc:
            self.recorder.close("failed")
            raise WorkerError(f"worker {setup.index}: {exc}") from None
        self.recorder.update_meta(limits=self.terminal.enforcement.describe(), sandbox=bool(sandbox), gpus=env)
        executor = Executor(self.terminal, self.workdir, guard=CommandGuard(setup.deny), readonly=self.pb.readonly)
        self.agent = Agent(self.terminal, executor, self.recorder, budget=Budget(wall_seconds=None))
        for command in self.pb.setup:
            outcome = self.agent.act(Run(command, timeout=self.pb.budget.experiment_seconds), source="setup")
            if not outcome.ok:
                self.close("failed")
                raise WorkerError(f"worker {setup.index}: setup command failed: {command}")

    def needs(self, base: str) -> bool:
        """Whether this working copy lacks ``base`` (then the next assignment brings a bundle)."""
        return not self.ws.has_commit(base)

    def run(self, assignment: Assignment, bundle: bytes | None = None) -> Report:
        """Propose (or apply) and measure one candidate on ``assignment.base``."""
        started = time.monotonic()
        if bundle is not None:
            self.ws.fetch_bundle(bundle)
        self.ws.reset_to(assignment.base)
        self.note = f"{assignment.candidate.label}: starting"
        self.recorder.event(
            "assignment", self.agent.cycle, trial=assignment.trial, base=assignment.base,
            candidate=assignment.candidate.label, reevaluation=assignment.patch is not None,
        )
        status = "done"
        why = ""
        if assignment.patch is not None:
            self.ws.apply_patch(assignment.patch)
            self.agent.act(Run("git --no-pager diff --cached --stat", timeout=30), source="loop")
            description = assignment.candidate.label
        else:
            policy = _Noted(self._policy(assignment.candidate), self)
            outcome = self.agent.run(policy, max_cycles=PROPOSAL_CYCLES)
            if outcome.status in ("interrupted", "failed"):
                return self._report(assignment, outcome.summary, b"", "", None, outcome.status, started)
            description = outcome.summary if outcome.status == "done" else f"unfinished proposal: {outcome.summary}"
            why = outcome.reasoning
        self.note = f"{description} (being measured)"
        changed = self.ws.changed_files()
        touched = [path for path in changed if any(fnmatch.fnmatch(path, p) for p in self.pb.readonly)]
        patch, tree = self.ws.staged_patch(assignment.base)
        if touched:
            evaluation = Evaluation(None, "crash", f"edited read-only {', '.join(touched)}", 0.0)
        elif not patch and assignment.patch is None:
            evaluation = Evaluation(None, "discard", "no change proposed", 0.0)
        else:
            evaluation = evaluate(self.agent, self.pb)
        if self.agent.stop_requested:
            status = "interrupted"
        return self._report(assignment, description, patch, tree, evaluation, status, started, why)

    def _policy(self, candidate: Candidate) -> Policy:
        if candidate.steps:
            return ScriptedPolicy(candidate.steps, screen=self.terminal.snapshot)
        from clive.agent.policies.claude import ClaudePolicy  # only a model-driven run needs the SDK

        policy = ClaudePolicy(self.pb.body, model=self.setup.model or self.pb.model)
        policy.new_context(candidate.briefing or "")
        return policy

    def _report(
        self, a: Assignment, description: str, patch: bytes, tree: str,
        evaluation: Evaluation | None, status: str, started: float, hypothesis: str = "",
    ) -> Report:
        evaluation = evaluation or Evaluation(None, "crash", description, 0.0)
        return Report(
            trial=a.trial, worker=self.setup.index, base=a.base, description=description, patch=patch,
            tree=tree, evaluation=evaluation, status=status, duration=time.monotonic() - started,
            recording=self.recording(), host=socket.gethostname(), hypothesis=hypothesis,
        )

    def stop(self) -> None:
        """Stop the experiment in flight at the next safe point, interrupting the command it runs."""
        self.agent.request_stop()
        try:
            self.terminal.type("\x03")
        except TerminalError:
            pass

    def recording(self) -> dict[str, bytes]:
        """What the recording's files gained since the last call (whole lines only), and meta.json.
        Each byte is sent once, in order, whichever thread asks."""
        with self._sending:
            return self._recording()

    def _recording(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name in _GROWING:
            path = self.recorder.path / name
            try:
                with open(path, "rb") as f:
                    f.seek(self._sent[name])
                    data = f.read()
            except FileNotFoundError:
                continue
            data = data[: data.rfind(b"\n") + 1]
            if data:
                out[name] = data
                self._sent[name] += len(data)
        try:
            out[META] = (self.recorder.path / META).read_bytes()
        except OSError:
            pass
        return out

    def close(self, status: str = "done") -> dict[str, bytes]:
        """End the terminal and the recording; the recording's last bytes."""
        try:
            self.terminal.close()
        except (TerminalError, AttributeError):
            pass
        self.recorder.close(status)
        rest = self.recording()
        if self._claim is not None:
            self._claim.release()
        shutil.rmtree(self.ws.path, ignore_errors=True)
        return rest


class _Noted:
    """A policy whose every decision leaves a one-line note on the worker (``Worker.note``)."""

    def __init__(self, policy: Policy, worker: Worker) -> None:
        self._policy = policy
        self._worker = worker
        self.name = getattr(policy, "name", "")

    @property
    def wants_full_screen(self) -> bool:
        return bool(getattr(self._policy, "wants_full_screen", False))

    def decide(self, observation: Any) -> Any:
        decision = self._policy.decide(observation)
        why = " ".join(decision.reasoning.split())[:160]
        self._worker.note = f"{summarize_action(action_to_dict(decision.action), 60)}" + (f" ({why})" if why else "")
        return decision

    def new_context(self, briefing: str) -> None:
        self._policy.new_context(briefing)


def describe(report: Report) -> dict[str, Any]:
    """A report's fields for the coordinator's events (no patch bytes, no recording)."""
    e = report.evaluation
    return {
        "trial": report.trial, "worker": report.worker, "base": report.base, "tree": report.tree,
        "metric": e.metric, "evaluation": e.status, "reason": e.reason, "repeats": list(e.repeats),
        "duration": round(report.duration, 3), "host": report.host,
    }
