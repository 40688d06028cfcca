"""results.tsv: one row per experiment, appended a flushed, fsynced row at a time; a torn last row is
dropped on reading and repaired on resume. Its first columns are autoresearch's; new ones go at the end."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clive.experiments.faults import crash_point

RESULTS_HEADER = ("commit", "metric", "status", "description", "experiment", "duration")
# Runs with parallel workers add the worker that measured each row (an in-process run's table has no
# such column). Every table made now ends with the hypothesis: why the experiment was tried. Columns
# are read by their names in the header, so tables written before either column still read.
WORKER_COLUMN = "worker"
HYPOTHESIS_COLUMN = "hypothesis"


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
    hypothesis: str = ""  # why it was tried: the model's one-line reason, or the sampler's

    def tsv(self, columns: tuple[str, ...] = RESULTS_HEADER) -> str:
        fields = {
            "commit": self.commit[:12],
            "metric": "" if self.metric is None else f"{self.metric:.6g}",
            "status": self.status,
            "description": " ".join(self.description.split()),
            "experiment": str(self.experiment),
            "duration": f"{self.duration:.2f}",
            WORKER_COLUMN: "" if self.worker is None else str(self.worker),
            HYPOTHESIS_COLUMN: " ".join(self.hypothesis.split()),
        }
        return "\t".join(fields.get(name, "") for name in columns)


class ResultsTable:
    """results.tsv: appended one flushed, fsynced row at a time; a torn last row is ignored."""

    def __init__(self, path: Path, *, workers: bool = False) -> None:
        """``workers``: a new table gets the worker column (an existing one keeps its header)."""
        self.path = path
        self.repair()
        if not path.exists() or path.stat().st_size == 0:
            columns = (*RESULTS_HEADER, *((WORKER_COLUMN,) if workers else ()), HYPOTHESIS_COLUMN)
            self._append_line("\t".join(columns))
        self.columns = tuple(self._header())

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
        return read_rows(self.path)


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


def read_rows(path: Path) -> list[ExperimentRow]:
    """The complete rows of a results.tsv, read only: a torn last row (an append in progress) is skipped."""
    rows = []
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.split("\n")
    complete = lines[:-1]  # the part after the last newline is empty or a torn row
    names = complete[0].split("\t") if complete else list(RESULTS_HEADER)
    for line in complete[1:]:
        parts = line.split("\t")
        if len(parts) < len(RESULTS_HEADER):
            continue
        f = dict(zip(names, parts, strict=False))
        worker = f.get(WORKER_COLUMN, "")
        try:
            rows.append(
                ExperimentRow(
                    int(f["experiment"]), f["commit"], float(f["metric"]) if f["metric"] else None,
                    f["status"], f["description"], float(f["duration"]), int(worker) if worker else None,
                    f.get(HYPOTHESIS_COLUMN, ""),
                )
            )
        except (ValueError, KeyError):
            continue
    return rows
