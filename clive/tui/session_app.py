"""What replay and live mode share: the layout, cycle navigation, following a session on disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from clive.record import SessionError, SessionReader
from clive.screen import Snapshot
from clive.tui.cycle_detail import CycleDetail
from clive.tui.goto_input import GotoInput
from clive.tui.results_pane import ResultsPane
from clive.tui.terminal_view import TerminalView
from clive.tui.timeline import Timeline

FOLLOW_INTERVAL = 0.5  # seconds between looks at a session still being written


def styled_screen_at(reader: SessionReader, cycle: int) -> Snapshot:
    """The screen at ``cycle`` with its colours."""
    return reader.screen_at(cycle, with_style=True)


def blank_snapshot(columns: int = 80, rows: int = 24, message: str = "") -> Snapshot:
    lines = tuple([message] + [""] * (rows - 1))
    return Snapshot(lines=lines, cursor=(0, 0), columns=columns, rows=rows, cursor_visible=False)


class TitleBar(Widget):
    """One line naming the session and where we are in it (repaints without a relayout)."""

    text: reactive[str] = reactive("")

    def render(self) -> str:
        return self.text


class SessionApp(App[int]):
    """A session's terminal, timeline, detail and results; subclasses feed it."""

    CSS_PATH = "viewer.tcss"
    TITLE = "clive"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "next_cycle", "Next"),
        Binding("k", "prev_cycle", "Prev"),
        Binding("g", "first_cycle", "First", show=False),
        Binding("G", "last_cycle", "Last", show=False),
        Binding("colon", "goto", "Go to"),
        Binding("d", "toggle_dark", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    start_at_first = True  # replay opens at cycle 1; live mode at the newest

    def __init__(self, reader: SessionReader | None, *, follow: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reader = reader
        self.follow = follow
        self.cycle_events: list[dict[str, Any]] = []
        self.index = -1  # selected row of the timeline
        self.exit_code = 0
        self._problems_shown: list[str] = []

    # ---- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title-bar")
        yield Static("", id="problems")
        with Horizontal(id="main"):
            yield TerminalView(id="terminal")
            with Vertical(id="side"):
                yield Timeline(id="timeline")
                yield CycleDetail(id="detail")
        yield from self.compose_extra()
        yield ResultsPane(id="results")
        yield GotoInput(id="goto")
        yield Footer()

    def compose_extra(self) -> ComposeResult:
        yield from ()

    @property
    def terminal_view(self) -> TerminalView:
        return self.query_one(TerminalView)

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    def on_mount(self) -> None:
        self.terminal_view.border_title = "terminal"
        self.terminal_view.show(blank_snapshot())
        self.load_new()
        self.timeline.focus()
        if self.follow and self.reader is not None:
            self.set_interval(FOLLOW_INTERVAL, self.poll_session, name="follow")

    def title_parts(self) -> list[str]:
        reader = self.reader
        if reader is None:
            return []
        meta = reader.meta
        parts = [f"session {reader.id}", str(meta.get("status", "?"))]
        if meta.get("playbook"):
            parts.append(Path(str(meta["playbook"])).name)
        if meta.get("policy"):
            parts.append(str(meta["policy"]))
        parts.append(f"{len(self.cycle_events)} cycles")
        if 0 <= self.index < len(self.cycle_events):
            parts.append(f"at #{self.cycle_events[self.index].get('cycle', '?')}")
        return parts

    def update_title(self) -> None:
        self.query_one(TitleBar).text = "  ·  ".join(self.title_parts())

    # ---- reading the session -------------------------------------------------------------

    def load_new(self, new: Iterable[dict[str, Any]] | None = None) -> None:
        """Add events to the timeline and results (all the reader has, the first time)."""
        reader = self.reader
        if reader is None:
            return
        events = list(reader.events if new is None else new)
        cycles = [e for e in events if e.get("type") == "cycle"]
        results = [e for e in events if e.get("type") == "experiment"]
        at_end = self.index == len(self.cycle_events) - 1
        if cycles:
            self.cycle_events.extend(cycles)
            self.timeline.add_cycles(cycles)
            last = len(self.cycle_events) - 1
            if self.index < 0:
                self.select(0 if self.start_at_first else last)
            elif at_end and self.follow:
                self.select(last)
        self.query_one(ResultsPane).add_results(results)
        self.show_problems()
        self.update_title()

    def poll_session(self) -> None:
        if self.reader is None:
            return
        try:
            new = self.reader.refresh()
        except (OSError, SessionError) as exc:
            self.show_problems([str(exc)])
            return
        if new:
            self.load_new(new)
        else:
            self.show_problems()

    def show_problems(self, extra: list[str] | None = None) -> None:
        problems = list(self.reader.problems if self.reader is not None else []) + list(extra or [])
        if problems == self._problems_shown:
            return
        self._problems_shown = problems
        notice = self.query_one("#problems", Static)
        notice.update("could not read: " + "; ".join(problems) if problems else "")
        notice.set_class(bool(problems), "-shown")

    # ---- the selected cycle ------------------------------------------------------------

    def select(self, index: int) -> None:
        if not self.cycle_events:
            return
        index = max(0, min(index, len(self.cycle_events) - 1))
        self.index = index
        table = self.timeline
        if table.cursor_row != index:
            table.move_cursor(row=index, animate=False)
        self.show_cycle(index)

    def show_cycle(self, index: int) -> None:
        event = self.cycle_events[index]
        self.query_one(CycleDetail).show(event)
        self.show_screen(event)
        self.update_title()

    def show_screen(self, event: dict[str, Any]) -> None:
        """The terminal pane for the selected cycle: its recorded screen."""
        if self.reader is None:
            return
        cycle = event.get("cycle")
        try:
            snap = styled_screen_at(self.reader, cycle)  # type: ignore[arg-type]
        except SessionError as exc:
            snap = blank_snapshot(message=f"[no screen for this cycle: {exc}]")
        self.terminal_view.show(snap)

    @on(Timeline.Selected)
    def _timeline_selected(self, message: Timeline.Selected) -> None:
        if message.index != self.index and 0 <= message.index < len(self.cycle_events):
            self.index = message.index
            self.show_cycle(message.index)

    @on(GotoInput.Jump)
    def _jump(self, message: GotoInput.Jump) -> None:
        for i, event in enumerate(self.cycle_events):
            if event.get("cycle") == message.cycle:
                self.select(i)
                return
        self.notify(f"no cycle {message.cycle}", severity="warning")

    # ---- actions -----------------------------------------------------------------------

    def action_next_cycle(self) -> None:
        self.select(self.index + 1)

    def action_prev_cycle(self) -> None:
        self.select(self.index - 1)

    def action_first_cycle(self) -> None:
        self.select(0)

    def action_last_cycle(self) -> None:
        self.select(len(self.cycle_events) - 1)

    def action_goto(self) -> None:
        self.query_one(GotoInput).open()

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_quit(self) -> None:  # type: ignore[override]
        self.exit(self.exit_code)

    COMMANDS_EXTRA: ClassVar[list[tuple[str, str, str]]] = [
        ("Next cycle", "Select the next cycle (j)", "next_cycle"),
        ("Previous cycle", "Select the previous cycle (k)", "prev_cycle"),
        ("First cycle", "Select the first cycle (g)", "first_cycle"),
        ("Last cycle", "Select the last cycle (G)", "last_cycle"),
        ("Go to cycle", "Jump to a cycle by number (:)", "goto"),
        ("Toggle light/dark theme", "Switch between the light and dark theme (d)", "toggle_dark"),
    ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in self.COMMANDS_EXTRA:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
