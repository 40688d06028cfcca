"""The offline policy on an Optuna study: each experiment is one trial, a whole configuration of the
playbook's moves, edited into the best kept state and shown in the terminal with ``git diff``.

``SearchPolicy`` serves the in-process loop one experiment at a time; ``SearchProposer`` hands
parallel workers distinct trials through the same study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from clive.agent.actions import Done, EditFile, Run
from clive.agent.policy import Decision, Observation
from clive.experiments.results import ExperimentRow
from clive.experiments.search import Proposal, Search, current_value
from clive.experiments.sweep import edit_in, move_label
from clive.experiments.worker import Candidate

_TRIAL = re.compile(r"\btrial (\d+)\b")


class SearchPolicy:
    """Proposes one trial per experiment and tells the study what it measured."""

    name = "scripted"
    reads_briefing = False

    def __init__(self, search: Search, workdir: Path) -> None:
        self.search = search
        self.workdir = workdir
        self._pending: list[Decision] = []
        self._current: Proposal | None = None
        self.best: float | None = None

    @property
    def exhausted(self) -> bool:
        return self.search.exhausted

    # ---- the experiment loop's side --------------------------------------------------------

    def new_context(self, briefing: str) -> None:
        """A new experiment (the briefing is for models; the study is the search's memory)."""
        self._pending = []

    def record(self, row: ExperimentRow) -> None:
        """Tell the study what the current trial measured (the baseline is its first result)."""
        if row.experiment == 0:
            self.search.add_baseline(self.current_values(), row.metric)
        elif self._current is not None:
            self.search.tell(self._current.number, row.metric if row.status != "crash" else None)
            self._current = None
        if row.status == "keep":
            self.best = row.metric

    def restore(self, rows: Iterable[ExperimentRow]) -> None:
        rows = list(rows)
        for row in rows:
            if row.status == "keep":
                self.best = row.metric
        self.search.restore(rows)

    def current_values(self) -> dict[str, str]:
        """Every knob's value in the working copy's files now."""
        values = {}
        for knob in self.search.knobs:
            value = current_value(self.workdir, knob.move)
            if value is not None:
                values[knob.name] = value
        return values

    # ---- proposing --------------------------------------------------------------------------

    def decide(self, observation: Observation) -> Decision:
        if not self._pending:
            got = self.next_trial()
            if got is None:
                return Decision(Done("search exhausted: every configuration of the search space was measured"))
            self._current, label, steps = got
            self._pending = [Decision(step, reasoning=self._current.hypothesis) for step in steps]
        return self._pending.pop(0)

    def next_trial(self, busy: Iterable[str] = ()) -> tuple[Proposal, str, list] | None:
        """The next trial that changes the best state: (proposal, label, its steps), or None."""
        busy = set(busy)
        while True:
            proposal = self.search.ask(busy)
            if proposal is None:
                return None
            edits, changed = self._edits(proposal.values)
            if edits:
                label = ", ".join(move_label(knob.move, proposal.values[knob.name]) for knob in changed)
                steps = [*edits, Run("git --no-pager diff --stat --patch -U0"), Done(label)]
                return proposal, label, steps
            # The best state already is this configuration: its result is the best's.
            self.search.tell(proposal.number, self.best)

    def _edits(self, values: dict[str, str]) -> tuple[list[EditFile], list]:
        edits, changed, texts = [], [], {}
        for knob in self.search.knobs:
            file = knob.move.file
            if file not in texts:
                texts[file] = (self.workdir / file).read_text()
            edit = edit_in(texts[file], knob.move.pattern, values[knob.name])
            if edit is None:
                continue
            old, new = edit
            texts[file] = texts[file].replace(old, new, 1)
            edits.append(EditFile(file, old, new))
            changed.append(knob)
        return edits, changed


class SearchProposer:
    """Distinct trials for parallel workers: configurations in flight are never asked again."""

    wants_notes = False

    def __init__(self, policy: SearchPolicy) -> None:
        self.policy = policy

    @property
    def exhausted(self) -> bool:
        return self.policy.exhausted

    def propose(self, in_flight: list[tuple[Candidate, str]], waiting: bool) -> Candidate | None:
        got = self.policy.next_trial(c.key for c, _ in in_flight)
        if got is None:
            return None
        proposal, label, steps = got
        return Candidate(proposal.key, label, steps=tuple(steps), hypothesis=proposal.hypothesis)

    def record(self, candidate: Candidate, row: ExperimentRow, metric: float | None) -> None:
        """``metric``: what the trial's own configuration measured (a row measured again on a newer
        best holds another configuration's)."""
        if row.experiment == 0:
            self.policy.record(row)
            return
        if row.status == "keep":
            self.policy.best = row.metric
        match = _TRIAL.search(candidate.hypothesis)
        if match:
            self.policy.search.tell(int(match.group(1)), metric if row.status != "crash" else None)

    def restore(self, rows: Iterable[ExperimentRow]) -> None:
        self.policy.restore(rows)

