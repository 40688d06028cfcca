"""results.tsv: one row per experiment, appended a flushed, fsynced row at a time; a torn last row is
dropped on reading and repaired on resume. Its first columns are autoresearch's; new ones go at the end."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clive.experiments.faults import crash_point

RESULTS_HEADER = ("commit", "metric", "status", "description", "experiment", "duration")
# Runs with parallel workers add the worker that measured each row (an in-process run's table keeps
# the six columns it always had).
WORKER_COLUMN = "worker"


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One row of results.tsv."""

    experiment: int
    commit: str
    metric: float | None
    status: str  # keep, discard, crash
    description: str
    duration: float
    worker: int | None = None  # the parallel worker that measured it

    def tsv(self, columns: int = len(RESULTS_HEADER)) -> str:
        metric = "" if self.metric is None else f"{self.metric:.6g}"
        description = " ".join(self.description.split())
        fields = [self.commit[:12], metric, self.status, description, str(self.experiment), f"{self.duration:.2f}"]
        if columns > len(RESULTS_HEADER):
            fields.append("" if self.worker is None else str(self.worker))
        return "\t".join(fields)


class ResultsTable:
    """results.tsv: appended one flushed, fsynced row at a time; a torn last row is ignored."""

    def __init__(self, path: Path, *, workers: bool = False) -> None:
        """``workers``: a new table gets the worker column (an existing one keeps its header)."""
        self.path = path
        self.repair()
        if not path.exists() or path.stat().st_size == 0:
            self._append_line("\t".join((*RESULTS_HEADER, WORKER_COLUMN) if workers else RESULTS_HEADER))
        self.columns = len(self._header())

    def _header(self) -> list[str]:
        with open(self.path, encoding="utf-8") as f:
            return f.readline().rstrip("\n").split("\t")

    def _append_line(self, line: str) -> None:
        data = line + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            crash_point("results_append")  # a crash here leaves a torn row for repair() to drop
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())

    def append(self, row: ExperimentRow) -> None:
        self._append_line(row.tsv(self.columns))

    def rows(self) -> list[ExperimentRow]:
        rows = []
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        lines = text.split("\n")
        complete = lines[:-1]  # the part after the last newline is empty or a torn row
        for line in complete[1:]:
            parts = line.split("\t")
            if len(parts) < len(RESULTS_HEADER):
                continue
            commit, metric, status, description, experiment, duration = parts[: len(RESULTS_HEADER)]
            worker = parts[len(RESULTS_HEADER)] if len(parts) > len(RESULTS_HEADER) else ""
            try:
                rows.append(
                    ExperimentRow(
                        int(experiment), commit, float(metric) if metric else None, status,
                        description, float(duration), int(worker) if worker else None,
                    )
                )
            except ValueError:
                continue
        return rows

    def repair(self) -> None:
        """Drop a torn last row (a crash mid-append) so later rows start on a line of their own."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            tmp = self.path.with_suffix(".tsv.tmp")
            tmp.write_bytes(keep)
            os.replace(tmp, self.path)
