"""Distinct candidates for parallel workers: never two alike in flight, each aware of the others.

The offline sweep hands out (move, value) edits of the best state that are neither tried on it nor
in flight. A model proposes in the worker's own terminal; its fresh context says what the other
workers are trying now (their latest reasoning and action) and the current best, so that it does
not try the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from clive.experiments.results import ExperimentRow
from clive.experiments.sweep import SweepPolicy
from clive.experiments.worker import Candidate


class SweepProposer:
    """The sweep's moves, one (move, value) per candidate, on the best kept state."""

    wants_notes = False

    def __init__(self, sweep: SweepPolicy) -> None:
        self.sweep = sweep

    @property
    def exhausted(self) -> bool:
        return self.sweep.exhausted

    def propose(self, in_flight: list[tuple[Candidate, str]], waiting: bool) -> Candidate | None:
        got = self.sweep.propose_distinct({c.key for c, _ in in_flight}, waiting)
        if got is None:
            return None
        label, decisions = got
        return Candidate(label, label, steps=tuple(d.action for d in decisions), hypothesis=decisions[0].reasoning)

    def record(self, candidate: Candidate, row: ExperimentRow, metric: float | None) -> None:
        self.sweep.record(row)

    def restore(self, rows: Iterable[ExperimentRow]) -> None:
        self.sweep.restore(rows)


class ModelProposer:
    """Candidates for a model: a fresh briefing each, naming what is in flight elsewhere."""

    wants_notes = True
    exhausted = False

    def __init__(self, briefing: Callable[[], str]) -> None:
        self._briefing = briefing
        self._made = 0

    def propose(self, in_flight: list[tuple[Candidate, str]], waiting: bool) -> Candidate | None:
        self._made += 1
        others = "\n".join(f"- {note or c.label}" for c, note in in_flight) or "- nothing: the other workers are idle"
        text = (
            f"{self._briefing()}\n\n## What the other workers are trying right now\n{others}\n"
            "Propose something different from these: the same idea twice wastes a worker."
        )
        return Candidate(f"model-{self._made}", f"model proposal {self._made}", briefing=text)

    def record(self, candidate: Candidate, row: ExperimentRow, metric: float | None) -> None:
        """The model learns results from results.tsv in its next briefing."""

    def restore(self, rows: Iterable[ExperimentRow]) -> None:
        """Nothing to rebuild: each briefing is made from the files."""
