"""Measuring a candidate and judging it: the playbook's check and eval run through an agent's terminal
(``evaluate``), the metric read from what the eval printed, and keep or discard against the best.

The in-process loop and every parallel worker measure the same way; only the coordinator judges."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from clive.agent.actions import Run
from clive.agent.loop import Agent
from clive.experiments.faults import crash_point
from clive.experiments.playbook import Playbook


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What measuring one tree gave: the metric (the median of the repeats), ok or crash and why."""

    metric: float | None
    status: str  # ok, crash, or discard (nothing to measure)
    reason: str
    duration: float
    repeats: tuple[float, ...] = ()  # every eval's metric, in order


def evaluate(agent: Agent, pb: Playbook) -> Evaluation:
    """Run check and eval (``repeats`` times) in the agent's terminal within the experiment's budget."""
    started = time.monotonic()
    deadline = started + pb.budget.experiment_seconds

    def remaining() -> float:
        return max(round(deadline - time.monotonic(), 1), 0.1)

    def crash(reason: str) -> Evaluation:
        return Evaluation(None, "crash", reason, time.monotonic() - started)

    if pb.check:
        out = agent.act(Run(pb.check, timeout=remaining()), source="loop")
        if out.exit_code is None:
            return crash("check ran past the time budget")
        if out.exit_code != 0:
            return crash(f"check failed (exit {out.exit_code})")
    metrics = []
    for _ in range(pb.repeats):
        crash_point("eval", delay=0.05)  # SIGKILL while the eval runs in the terminal
        out = agent.act(Run(pb.eval or "", timeout=remaining()), source="loop")
        if out.exit_code is None:
            return crash("eval ran past the time budget")
        if out.exit_code != 0:
            return crash(f"eval failed (exit {out.exit_code})")
        value = read_metric(pb, out.output or "")
        if value is None:
            return crash("no metric in the eval output")
        metrics.append(value)
    return Evaluation(statistics.median(metrics), "ok", "", time.monotonic() - started, tuple(metrics))


def read_metric(pb: Playbook, output: str) -> float | None:
    """The last match of the playbook's metric regex in what the eval printed."""
    assert pb.metric is not None
    matches = list(pb.metric.finditer(output))
    if not matches:
        return None
    try:
        value = float(matches[-1].group(1))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def better(pb: Playbook, metric: float, best: float) -> bool:
    """Whether ``metric`` beats ``best`` by more than the playbook's noise margin."""
    margin = pb.noise * abs(best)
    return metric > best + margin if pb.direction == "maximize" else metric < best - margin


def judge(pb: Playbook, evaluation: Evaluation, best: float | None) -> str:
    """keep, discard or crash: keep only what beats the best at the moment it is judged."""
    if evaluation.status == "crash":
        return "crash"
    if evaluation.status != "ok" or evaluation.metric is None or best is None:
        return "discard"
    return "keep" if better(pb, evaluation.metric, best) else "discard"
