"""The offline experiment proposer: a hill climber over a playbook's search moves.

Each experiment is one move set to one value on top of the best kept state. The edit goes
through the file channel and is then shown in the terminal with ``git diff``, so the recording
of an offline run looks like a model-driven one. A pass tries every value of every move; the
search ends after a pass in which nothing was kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from clive.agent.actions import Done, EditFile, Run
from clive.agent.policy import Decision, Observation
from clive.experiments.playbook import Move
from clive.experiments.results import ExperimentRow


def move_label(move: Move, value: str) -> str:
    """How an experiment is described in results.tsv; ``restore`` reads it back."""
    return f"{move.name} = {value}"


class SweepPolicy:
    """Proposes (move, value) edits one experiment at a time and learns what was kept."""

    name = "scripted"
    reads_briefing = False

    def __init__(self, moves: Iterable[Move], workdir: Path) -> None:
        self.moves = list(moves)
        self.workdir = workdir
        self.exhausted = False
        self._tried: set[tuple[str, str, str]] = set()  # (best state id, move, value)
        self._best_id = "baseline"
        self._kept_in_pass = False
        self._cursor = 0  # index into the candidate list of the current pass
        self._pending: list[Decision] = []
        self._current: tuple[Move, str] | None = None

    # ---- the experiment loop's side --------------------------------------------------------

    def new_context(self, briefing: str) -> None:
        """Start a new experiment (the briefing is for models; the sweep keeps its own state)."""
        self._pending = []
        self._current = None

    def record(self, row: ExperimentRow) -> None:
        """Learn the fate of an experiment, so the next proposal starts from the best state."""
        if row.status == "keep" and row.experiment > 0:
            self._best_id = row.commit
            self._kept_in_pass = True

    def restore(self, rows: Iterable[ExperimentRow]) -> None:
        """Rebuild what was tried from results.tsv's rows on resume."""
        for row in rows:
            if row.experiment == 0:
                continue
            # The loop appends why an experiment failed in parentheses: "mode = x (eval failed …)".
            name, _, value = row.description.split(" (", 1)[0].partition(" = ")
            if value:
                self._tried.add((self._best_id, name, value))
            self.record(row)

    # ---- proposing --------------------------------------------------------------------------

    def decide(self, observation: Observation) -> Decision:
        if not self._pending:
            self._pending = self._propose()
        return self._pending.pop(0)

    def _propose(self) -> list[Decision]:
        candidate = self._next_candidate()
        if candidate is None:
            self.exhausted = True
            return [Decision(Done("search exhausted: no move improves on the best kept state"))]
        move, value, old_text, new_text = candidate
        self._current = (move, value)
        label = move_label(move, value)
        return [
            Decision(EditFile(move.file, old_text, new_text), reasoning=self.hypothesis(move)),
            Decision(Run("git --no-pager diff --stat --patch -U0")),  # one git: the stat, then the edit
            Decision(Done(label)),
        ]

    @staticmethod
    def hypothesis(move: Move) -> str:
        return f"greedy: the next value of {move.name} on the best kept state, one knob at a time"

    def _candidates(self) -> list[tuple[Move, str]]:
        return [(move, str(value)) for move in self.moves for value in move.values]

    def propose_distinct(self, busy: set[str], waiting: bool) -> tuple[str, list[Decision]] | None:
        """For parallel workers: the next candidate whose label is not in ``busy`` (in flight), as
        (label, its steps). None when there is none now; ``waiting`` (experiments in flight may yet
        be kept) keeps a pass that kept nothing from ending the search."""
        candidate = self._next_candidate(busy)
        if candidate is None:
            self.exhausted = not waiting
            return None
        move, value, old_text, new_text = candidate
        label = move_label(move, value)
        return label, [
            Decision(EditFile(move.file, old_text, new_text), reasoning=self.hypothesis(move)),
            Decision(Run("git --no-pager diff --stat --patch -U0")),
            Decision(Done(label)),
        ]

    def _next_candidate(self, busy: set[str] | frozenset[str] = frozenset()) -> tuple[Move, str, str, str] | None:
        candidates = self._candidates()
        # Walk the candidates in order, wrapping into a new pass; a pass that kept nothing ends it
        # (once nothing in flight can still be kept).
        for _ in range(2 * len(candidates) + 1):
            if self._cursor >= len(candidates):
                if not self._kept_in_pass:
                    return None  # unless what is in flight is kept (``waiting``): then a new pass
                self._cursor, self._kept_in_pass = 0, False
            move, value = candidates[self._cursor]
            self._cursor += 1
            key = (self._best_id, move.name, value)
            if key in self._tried or move_label(move, value) in busy:
                continue
            edit = self._edit_for(move, value)
            if edit is None:
                continue  # the best state already has this value
            self._tried.add(key)
            return (move, value, *edit)
        return None

    def _edit_for(self, move: Move, value: str) -> tuple[str, str] | None:
        return edit_for(self.workdir, move, value)


def edit_for(workdir: Path, move: Move, value: str) -> tuple[str, str] | None:
    """(old text, new text) that sets the move's group to ``value`` in its file, with the old text
    widened until it occurs once; None when the file already holds the value (or no match)."""
    return edit_in((workdir / move.file).read_text(), move.pattern, value)


def edit_in(text: str, pattern: str, value: str) -> tuple[str, str] | None:
    """``edit_for`` on a file's text (several edits of one file are made one after another)."""
    match = re.search(pattern, text, re.MULTILINE)
    if match is None or match.group(1) == value:
        return None
    old = text[match.start() : match.end()]
    new = text[match.start() : match.start(1)] + value + text[match.end(1) : match.end()]
    lo, hi = match.start(), match.end()
    # edit_file needs old text that occurs once: widen the context a character at a time
    # (a newline before "CFLAGS =" tells it apart from "HARNESS_CFLAGS =").
    while text.count(old) != 1:
        if lo == 0 and hi == len(text):
            return None
        lo, hi = max(lo - 1, 0), min(hi + 1, len(text))
        old = text[lo:hi]
        new = text[lo : match.start(1)] + value + text[match.end(1) : hi]
    return old, new
