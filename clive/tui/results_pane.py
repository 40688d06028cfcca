"""Experiment results: the table (n, commit, metric, status, description, and the worker in a run
with several) and a metric chart. Choosing a row (Enter or a click) asks the viewer to show it."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable

from clive.tui.metric_chart import MetricChart, Point


def _metric(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ResultsPane(Horizontal):
    """Hidden until the session has an experiment event."""

    DEFAULT_CSS = """
    ResultsPane {
        height: 25%;
        min-height: 7;
        max-height: 14;
        display: none;
    }
    ResultsPane.-has-results {
        display: block;
        layout: horizontal;
    }
    ResultsPane > DataTable {
        width: 3fr;
        height: 1fr;
        border: round $accent 50%;
        border-title-color: $text-muted;
    }
    ResultsPane > MetricChart {
        width: 2fr;
        height: 1fr;
        border: round $accent 50%;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        padding: 0 1;
    }
    """

    class Chosen(Message):
        """The person chose an experiment's row: ``event`` is its experiment event."""

        def __init__(self, event: dict[str, Any]) -> None:
            super().__init__()
            self.event = event

    def __init__(self, *, workers: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.by_worker = workers  # a column for the worker that ran each experiment
        self.events: list[dict[str, Any]] = []  # one per row
        self.table: DataTable[str] = DataTable(cursor_type="row", id="results-table")
        self.table.border_title = "results"
        self.chart = MetricChart(id="metric-chart")
        self.points: list[Point] = []

    def compose(self):  # type: ignore[no-untyped-def]
        yield self.table
        yield self.chart

    def on_mount(self) -> None:
        names = ("n", "w", "commit", "metric", "status", "description") if self.by_worker else (
            "n", "commit", "metric", "status", "description")
        for name in names:
            self.table.add_column(name, key=name)

    def add_results(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        for e in events:
            metric = _metric(e.get("metric"))
            commit = str(e.get("commit") or "-")[:8]
            worker = e.get("worker") if type(e.get("worker")) is int else None
            cells = [
                str(e.get("n", "?")),
                commit,
                f"{metric:g}" if metric is not None else "-",
                str(e.get("status", "?")),
                str(e.get("description", "")),
            ]
            if self.by_worker:
                cells.insert(1, f"w{worker}" if worker is not None else "-")
            self.table.add_row(*cells)
            self.events.append(e)
            n = e.get("n")
            self.points.append(Point(n if type(n) is int else len(self.points), metric, str(e.get("status", "?")),
                                     worker if self.by_worker else None))
        self.chart.set_points(self.points)
        self.add_class("-has-results")

    @on(DataTable.RowSelected)
    def _chosen(self, message: DataTable.RowSelected) -> None:
        message.stop()
        if 0 <= message.cursor_row < len(self.events):
            self.post_message(self.Chosen(self.events[message.cursor_row]))
