"""The metric per experiment as a small character chart: kept and discarded experiments marked,
crashes at the bottom, and the best-so-far line stepping to each kept one (the keep rule only keeps
improvements, so the last kept metric is the best so far, whichever the direction). In a run with
several workers each measured experiment is drawn as the number of the worker that ran it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

KEEP, DISCARD, CRASH, BEST, AXIS = "keep", "discard", "crash", "best", "axis"
MARKS = {KEEP: "●", DISCARD: "○", CRASH: "×"}


@dataclass(frozen=True, slots=True)
class Point:
    """One experiment: its number, metric (None when it crashed or printed none), status, and the
    worker that ran it (None in a run without workers)."""

    n: int
    metric: float | None
    status: str
    worker: int | None = None


def mark(p: Point) -> str:
    """The character for a measured experiment: its worker's number (1-9), else its status's mark."""
    if p.worker is not None and 1 <= p.worker <= 9:
        return str(p.worker)
    return MARKS[p.status if p.status in MARKS else DISCARD]


def fmt(value: float) -> str:
    return f"{value:.4g}"


def best_so_far(points: list[Point]) -> list[float | None]:
    """For each experiment, the metric of the latest kept one up to it."""
    best: float | None = None
    out = []
    for p in points:
        if p.status == KEEP and p.metric is not None:
            best = p.metric
        out.append(best)
    return out


def legend(points: list[Point]) -> str:
    """What the marks on the chart mean, naming only those it shows (the border is narrow)."""
    kinds = {p.status if p.metric is not None else CRASH for p in points}
    shown = (CRASH,) if any(p.worker is not None for p in points) else (KEEP, DISCARD, CRASH)
    parts = [f"{MARKS[k]}{k}" for k in shown if k in kinds]
    if len(shown) == 1:
        parts.insert(0, "1-9 the worker, bold kept")
    if any(b is not None for b in best_so_far(points)):
        parts.append("─best")
    return " ".join(parts)


Cell = tuple[str, str]  # (character, kind: keep/discard/crash/best/axis or "")


def plot(points: list[Point], width: int, height: int) -> list[list[Cell]]:
    """The chart as ``height`` rows of ``width`` cells: y-axis labels, plot, x-axis with numbers."""
    grid: list[list[Cell]] = [[(" ", "")] * width for _ in range(height)]
    metrics = [p.metric for p in points if p.metric is not None]
    if not metrics or width < 8 or height < 2:
        return grid
    lo, hi = min(metrics), max(metrics)
    if lo == hi:
        lo, hi = lo - (abs(lo) * 0.05 or 1.0), hi + (abs(hi) * 0.05 or 1.0)
    rows = height - 1  # the last row is the x axis
    label_w = max(len(fmt(hi)), len(fmt(lo)))
    plot_x = label_w + 1
    plot_w = width - plot_x
    if plot_w < 2:
        return grid

    def put(y: int, x: int, ch: str, kind: str) -> None:
        if 0 <= y < height and 0 <= x < width:
            grid[y][x] = (ch, kind)

    def text(y: int, x: int, s: str, kind: str) -> None:
        for i, ch in enumerate(s):
            put(y, x + i, ch, kind)

    def row_of(value: float) -> int:
        return round((hi - value) / (hi - lo) * (rows - 1)) if rows > 1 else 0

    # Axes: the extremes on the left, the first and last experiment numbers under the plot.
    for y in range(rows):
        put(y, label_w, "│", AXIS)
    text(row_of(hi), 0, fmt(hi).rjust(label_w), AXIS)
    put(row_of(hi), label_w, "┤", AXIS)
    if rows > 1:
        text(row_of(lo), 0, fmt(lo).rjust(label_w), AXIS)
        put(row_of(lo), label_w, "┤", AXIS)
    put(rows, label_w, "└", AXIS)
    text(rows, plot_x, "─" * plot_w, AXIS)
    first, last = str(points[0].n), str(points[-1].n)
    text(rows, plot_x, first, AXIS)
    if len(points) > 1 and len(first) + len(last) < plot_w:
        text(rows, width - len(last), last, AXIS)

    # Columns: one per experiment while they fit, else several share one (most recent wins).
    count = len(points)
    if count == 1:
        columns = [plot_x]
    elif count <= plot_w:
        columns = [plot_x + round(i * (plot_w - 1) / (count - 1)) for i in range(count)]
    else:
        columns = [plot_x + i * plot_w // count for i in range(count)]

    # The best-so-far line, stepping at each kept experiment.
    best = best_so_far(points)
    line_row: int | None = None
    last_x = plot_x - 1
    for x, value in zip(columns, best, strict=True):
        if value is None:
            continue
        r = row_of(value)
        if line_row is not None:
            for fill in range(last_x + 1, x):
                put(line_row, fill, "─", BEST)
            if r == line_row:
                put(r, x, "─", BEST)
            else:
                put(line_row, x, "┘" if r < line_row else "┐", BEST)
                for between in range(min(r, line_row) + 1, max(r, line_row)):
                    put(between, x, "│", BEST)
        line_row, last_x = r, x
    if line_row is not None:
        for fill in range(last_x + 1, width):
            put(line_row, fill, "─", BEST)

    # The experiments on top; a kept one is never hidden by a discarded one in its column.
    order = sorted(range(count), key=lambda i: (points[i].status == KEEP, i))
    for i in order:
        p, x = points[i], columns[i]
        if p.metric is None:
            put(rows - 1, x, MARKS[CRASH], CRASH)
        else:
            kind = p.status if p.status in MARKS else DISCARD
            put(row_of(p.metric), x, mark(p), kind)
    return grid


class MetricChart(Widget):
    """The chart of ``points``, redrawn at whatever size the widget has."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "metric-chart--keep", "metric-chart--discard", "metric-chart--crash", "metric-chart--best",
        "metric-chart--axis",
    }  # fmt: skip

    DEFAULT_CSS = """
    MetricChart {
        & > .metric-chart--keep { color: $text-success; text-style: bold; }
        & > .metric-chart--discard { color: $text-muted; }
        & > .metric-chart--crash { color: $text-error; text-style: bold; }
        & > .metric-chart--best { color: $text-accent; }
        & > .metric-chart--axis { color: $text-muted; }
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.points: list[Point] = []

    def set_points(self, points: list[Point]) -> None:
        self.points = list(points)
        metrics = [p.metric for p in points if p.metric is not None]
        best = next((b for b in reversed(best_so_far(self.points)) if b is not None), None)
        title = "metric"
        if best is not None:
            title += f" · best {fmt(best)}"
        elif metrics:
            title += f" {fmt(min(metrics))}…{fmt(max(metrics))}"
        self.border_title = title
        self.border_subtitle = legend(self.points) if metrics else None
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_region.size
        if not any(p.metric is not None for p in self.points):
            return Text("no metric yet", style="dim")
        styles: dict[str, Style] = {
            kind: self.get_component_rich_style(f"metric-chart--{kind}") for kind in (KEEP, DISCARD, CRASH, BEST, AXIS)
        }
        text = Text(no_wrap=True, overflow="crop")
        for y, row in enumerate(plot(self.points, width, height)):
            if y:
                text.append("\n")
            for ch, kind in row:
                text.append(ch, styles.get(kind))
        return text
