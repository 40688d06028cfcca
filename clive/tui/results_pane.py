"""Experiment results: the table (n, commit, metric, status, description) and a metric chart."""

from __future__ import annotations

from typing import Any

from textual.containers import Horizontal
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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table: DataTable[str] = DataTable(cursor_type="row", id="results-table")
        self.table.border_title = "results"
        self.chart = MetricChart(id="metric-chart")
        self.points: list[Point] = []

    def compose(self):  # type: ignore[no-untyped-def]
        yield self.table
        yield self.chart

    def on_mount(self) -> None:
        for name in ("n", "commit", "metric", "status", "description"):
            self.table.add_column(name, key=name)

    def add_results(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        for e in events:
            metric = _metric(e.get("metric"))
            commit = str(e.get("commit") or "-")[:8]
            self.table.add_row(
                str(e.get("n", "?")),
                commit,
                f"{metric:g}" if metric is not None else "-",
                str(e.get("status", "?")),
                str(e.get("description", "")),
            )
            n = e.get("n")
            self.points.append(Point(n if type(n) is int else len(self.points), metric, str(e.get("status", "?"))))
        self.chart.set_points(self.points)
        self.add_class("-has-results")
