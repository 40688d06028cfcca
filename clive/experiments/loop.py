"""The experiment loop: baseline, then propose → apply → check → eval → keep or discard, persisted each time.

Every experiment starts from durable state (the playbook, results.tsv, the run branch), not from
memory: the policy gets a fresh briefing, and a killed run resumes from the same files.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from clive.agent.loop import Agent
from clive.agent.policy import Policy
from clive.experiments.evaluation import Evaluation, evaluate, judge
from clive.experiments.playbook import Playbook
from clive.experiments.results import ExperimentRow, ResultsTable
from clive.experiments.workspace import Workspace

PROPOSAL_CYCLES = 40  # cycles a policy may spend proposing one experiment


@dataclass(frozen=True, slots=True)
class Summary:
    baseline: float | None
    best: float | None
    best_commit: str
    kept: int
    discarded: int
    crashed: int
    experiments: int
    branch: str
    run_dir: Path
    stopped_because: str

    @property
    def speedup(self) -> float | None:
        if self.baseline in (None, 0) or self.best is None:
            return None
        return self.best / self.baseline

    def lines(self, direction: str) -> list[str]:
        ratio = self.speedup
        if ratio is not None and direction == "minimize":
            ratio = 1 / ratio if ratio else None
        gain = f" ({ratio:.2f}x)" if ratio is not None else ""
        return [
            f"baseline {_fmt(self.baseline)}, best {_fmt(self.best)}{gain} at {self.best_commit[:12]}",
            f"{self.experiments} experiments: {self.kept} kept, {self.discarded} discarded, "
            f"{self.crashed} crashed; stopped: {self.stopped_because}",
            f"branch {self.branch} in {self.run_dir}",
        ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


class Progress:
    """Headless progress on stderr: one line per experiment, and a bar when stderr is a terminal."""

    def __init__(self, total: int | None, unit: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def experiment(self, row: ExperimentRow, best: float | None, baseline: float | None, direction: str) -> None:
        total = f"/{self.total}" if self.total else ""
        gain = ""
        if best is not None and baseline:
            ratio = best / baseline if direction == "maximize" else baseline / best if best else 0
            gain = f" {ratio:.2f}x baseline"
        bar = ""
        if row.experiment == 0:
            self.line(f"baseline {row.status:<7} {_fmt(row.metric):>9} {self.unit}  {row.description}")
            return
        if self.total:
            done = min(row.experiment, self.total)
            filled = round(20 * done / self.total)
            bar = "[" + "#" * filled + "." * (20 - filled) + "] "
        worker = f"w{row.worker} " if row.worker is not None else ""
        self.line(
            f"{bar}experiment {row.experiment}{total} {row.status:<7} {_fmt(row.metric):>9} {self.unit}"
            f"  best {_fmt(best)}{gain}  {worker}{row.description}"
        )


class ExperimentBook:
    """The state of an experiment run that results.tsv and the run branch hold, and what follows from
    it: the baseline, the best, the counts, when to stop, the rows written. The in-process loop and
    the parallel coordinator keep their books the same way."""

    def __init__(
        self,
        playbook: Playbook,
        workspace: Workspace,
        policy: Any,
        results: ResultsTable,
        *,
        max_experiments: int | None = None,
        progress: Progress | None = None,
        record_event: Callable[..., object] | None = None,
        briefing: Callable[[], str] | None = None,
    ) -> None:
        self.pb = playbook
        self.ws = workspace
        self.policy = policy  # its restore() and record() learn the rows, where it has them
        self.results = results
        self.max_experiments = max_experiments if max_experiments is not None else playbook.budget.max_experiments
        self.progress = progress or Progress(self.max_experiments, "")
        self._event = record_event or (lambda *a, **k: None)
        self._briefing = briefing or self.default_briefing
        self.baseline: float | None = None
        self.best: float | None = None
        self.best_commit = ""
        self.counts = {"keep": 0, "discard": 0, "crash": 0}
        self.next_experiment = 0
        self.started = time.monotonic()
        self._discards_in_a_row = 0

    @property
    def stopping(self) -> bool:
        """Whether the user asked the run to stop (Ctrl-C)."""
        return False

    # ---- state from disk ----------------------------------------------------------------

    def load_state(self) -> None:
        """Continue from results.tsv and the run branch (for --resume)."""
        self.results.repair()
        rows = self.results.rows()
        for row in rows:
            self._account(row)
        if rows:
            self.next_experiment = max(r.experiment for r in rows) + 1
        restore = getattr(self.policy, "restore", None)
        if restore is not None:
            restore(rows)
        if self.best_commit:
            # A crash between committing an experiment and recording it leaves an unjudged commit.
            full = self.ws.resolve(self.best_commit)
            if self.ws.head() != full or not self.ws.matches_head():
                self.ws.reset_to(full)
                self.progress.line(f"resume: run branch reset to the last kept commit {full[:12]}")

    def _account(self, row: ExperimentRow) -> None:
        if row.experiment == 0:
            self.baseline = row.metric
        if row.status == "keep":
            self.best, self.best_commit = row.metric, row.commit
            self._discards_in_a_row = 0
        else:
            self._discards_in_a_row += 1
        if row.experiment > 0:
            self.counts[row.status] = self.counts.get(row.status, 0) + 1

    def summary(self, stopped: str) -> Summary:
        return Summary(
            baseline=self.baseline,
            best=self.best,
            best_commit=self.best_commit,
            kept=self.counts.get("keep", 0),
            discarded=self.counts.get("discard", 0),
            crashed=self.counts.get("crash", 0),
            experiments=sum(self.counts.values()),
            branch=self.ws.branch,
            run_dir=self.ws.path,
            stopped_because=stopped,
        )

    def _should_stop(self, in_flight: int = 0) -> str:
        """Why no further experiment should start ("" if one may); ``in_flight`` count as done."""
        done = sum(self.counts.values()) + in_flight
        if self.stopping:
            return "interrupted"
        if self.max_experiments is not None and done >= self.max_experiments:
            return f"{self.max_experiments} experiments done"
        wall = self.pb.budget.wall_seconds
        if wall is not None and time.monotonic() - self.started >= wall:
            return f"wall-time budget of {wall:g}s used"
        target = self.pb.stop.target
        if target is not None and self.best is not None and self._reached(self.best, target):
            return f"target {target:g} reached"
        plateau = self.pb.stop.plateau
        if plateau is not None and self._discards_in_a_row >= plateau:
            return f"plateau: {plateau} experiments in a row without improvement"
        return ""

    def _reached(self, value: float, target: float) -> bool:
        return value >= target if self.pb.direction == "maximize" else value <= target

    def _write(self, row: ExperimentRow, **more: Any) -> None:
        """Append the row to results.tsv, take it into the books, record it and show it."""
        self.results.append(row)
        self._account(row)
        self._event(
            "experiment",
            n=row.experiment,
            commit=row.commit,
            metric=row.metric,
            status=row.status,
            description=row.description,
            duration=round(row.duration, 3),
            **({"worker": row.worker} if row.worker is not None else {}),
            **({"hypothesis": row.hypothesis} if row.hypothesis else {}),
            **more,
        )
        self.progress.experiment(row, self.best, self.baseline, self.pb.direction)

    def default_briefing(self) -> str:
        """Durable state for a fresh context: the playbook, results so far, the branch's log."""
        rows = self.results.rows()
        table = "\n".join(r.tsv(self.results.columns) for r in rows[-30:]) or "(none yet)"
        log = "\n".join(f"{sha[:12]} {subject}" for sha, subject in self.ws.log(10))
        best = f"{_fmt(self.best)} at {self.best_commit[:12]}" if self.best is not None else "-"
        return (
            f"{self.pb.body.strip()}\n\n"
            f"## State\nThe metric is read with /{self.pb.metric.pattern if self.pb.metric else ''}/ "
            f"from `{self.pb.eval}`; direction: {self.pb.direction}. Best so far: {best} "
            f"(baseline {_fmt(self.baseline)}).\n"
            f"Editable: {', '.join(self.pb.editable) or 'any file'}; read-only: "
            f"{', '.join(self.pb.readonly) or 'none'}.\n\n"
            f"results.tsv ({', '.join(self.results.columns)}):\n{table}\n\n"
            f"git log of the run branch:\n{log}\n\n"
            f"{self._findings()}"
            "## Your task now\nPropose ONE experiment: edit the files (edit_file / write_file), "
            "optionally try a build with `run`, then call `done` with a one-line description of the "
            "idea. clive then runs the check and the eval and keeps or discards it."
        )


    def _findings(self) -> str:
        """`clive report --json`'s questions answered so far, for a fresh context: plateau, near misses
        (candidates to combine), what each kind of change did."""
        if self.next_experiment < 2:
            return ""
        from clive.experiments.report import build_report

        try:
            report = build_report(self.results.path.parent)
        except Exception:  # noqa: BLE001 - the briefing stands without its findings
            return ""
        effects = sorted(report["knobs"]["by_change"].items(), key=lambda kv: -(kv[1]["median_gain"] or -1e9))
        findings = {
            "keep_rate": report["keep_rate"],
            "plateau": report["plateau"],
            "noise_seen": report["noise_seen"],
            "near_misses": report["near_misses"][:5],
            "effect_by_change": dict(effects[:8]),
            "knob_importance": report["knobs"]["importance"],
        }
        return (
            "## Findings so far (clive report --json)\nNear misses were discarded within the noise of the best: "
            "combining them may pay. A plateau means the current line of ideas is spent: try a different one.\n"
            f"{json.dumps(findings, default=str)}\n\n"
        )


class ExperimentLoop(ExperimentBook):
    """Runs a playbook's experiments one at a time on the run branch of ``workspace`` through ``agent``,
    in this process: today's path, and the one ``--workers 1`` takes."""

    def __init__(self, playbook: Playbook, agent: Agent, workspace: Workspace, policy: Policy,
                 results: ResultsTable, **options: Any) -> None:
        super().__init__(playbook, workspace, policy, results, **options)
        self.agent = agent

    @property
    def stopping(self) -> bool:
        return self.agent.stop_requested

    # ---- the loop ---------------------------------------------------------------------

    def run(self) -> Summary:
        stopped = ""
        if self.next_experiment == 0:
            stopped = self._baseline()
        while not stopped:
            stopped = self._should_stop()
            if stopped:
                break
            stopped = self._experiment(self.next_experiment)
        return self.summary(stopped)

    def _baseline(self) -> str:
        self.progress.line(f"baseline: {self.pb.eval}")
        evaluation = self.evaluate()
        head = self.ws.head()
        if evaluation.status != "ok":
            row = ExperimentRow(0, head, None, "crash", f"baseline: {evaluation.reason}", evaluation.duration)
            self._write(row)
            return f"the baseline failed: {evaluation.reason}"
        row = ExperimentRow(0, head, evaluation.metric, "keep", "baseline", evaluation.duration)
        self._write(row, repeats=list(evaluation.repeats))
        self._tell(row)
        self.next_experiment = 1
        return ""

    def _experiment(self, n: int) -> str:
        started = time.monotonic()
        # The offline policies keep their own state: building a briefing (the report reads the whole
        # session) is only for policies that read it.
        self.policy.new_context(self._briefing() if getattr(self.policy, "reads_briefing", True) else "")
        outcome = self.agent.run(self.policy, max_cycles=PROPOSAL_CYCLES)
        if outcome.status == "interrupted":
            self.ws.reset_to(self.ws.resolve(self.best_commit))
            return "interrupted"
        if getattr(self.policy, "exhausted", False):
            return "the search space is exhausted"
        if outcome.status == "failed":
            self.ws.reset_to(self.ws.resolve(self.best_commit))
            return f"the policy failed: {outcome.summary}"
        description = outcome.summary if outcome.status == "done" else f"unfinished proposal: {outcome.summary}"
        changed = self.ws.changed_files()
        touched = [path for path in changed if any(fnmatch.fnmatch(path, p) for p in self.pb.readonly)]
        commit = self.ws.commit_all(f"experiment {n}: {description}")
        if touched:
            evaluation = Evaluation(None, "crash", f"edited read-only {', '.join(touched)}", 0.0)
        elif not changed:
            evaluation = Evaluation(None, "discard", "no change proposed", 0.0)
        else:
            evaluation = self.evaluate()
        status = judge(self.pb, evaluation, self.best)
        if status == "keep":
            self.best, self.best_commit = evaluation.metric, commit
        else:
            self.ws.keep_tried(n, commit)  # off the run branch, but never lost: `clive show`
            self.ws.reset_to(self.ws.resolve(self.best_commit))
        reason = "" if evaluation.status == "ok" else f" ({evaluation.reason})"
        row = ExperimentRow(n, commit, evaluation.metric, status, description + reason,
                            time.monotonic() - started, hypothesis=outcome.reasoning)
        self._write(row, repeats=list(evaluation.repeats))
        self._tell(dataclasses.replace(row, description=description))
        self.next_experiment = n + 1
        return ""

    def _tell(self, row: ExperimentRow) -> None:
        record = getattr(self.policy, "record", None)
        if record is not None:
            record(row)

    # ---- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> Evaluation:
        """Run check and eval (``repeats`` times) within the experiment's time budget."""
        return evaluate(self.agent, self.pb)
