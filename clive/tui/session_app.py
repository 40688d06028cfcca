"""What replay and live mode share: the layout, cycle navigation, following a session on disk, and
in a run with several workers, switching the terminal and timeline between the workers' recordings."""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.actions import SkipAction
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from clive.session import SessionError, SessionReader
from clive.terminal.screen import Snapshot
from clive.tui.checkpoints import CheckpointEntry, CheckpointsScreen, checkpoints_in
from clive.tui.cycle_detail import CycleDetail
from clive.tui.results_pane import ResultsPane
from clive.tui.terminal_view import TerminalView
from clive.tui.timeline import Timeline
from clive.tui.title_bar import TitleBar

FOLLOW_INTERVAL = 0.5  # seconds between looks at a session still being written
SCREEN_CACHE = 256  # recorded screens kept, so stepping back and forth does not replay the cast


def styled_screen_at(reader: SessionReader, cycle: int) -> Snapshot:
    """The screen at ``cycle`` with its colours."""
    return reader.screen_at(cycle, with_style=True)


def blank_snapshot(columns: int = 80, rows: int = 24, message: str = "") -> Snapshot:
    lines = tuple([message] + [""] * (rows - 1))
    return Snapshot(lines=lines, cursor=(0, 0), columns=columns, rows=rows, cursor_visible=False)


# The footer shows bindings in the order they are declared and cuts them at the right edge, so
# each mode puts its own keys first (live mode hides the navigation keys there).
NAVIGATION: list[BindingType] = [
    Binding("j", "next_cycle", "Next"),
    Binding("k", "prev_cycle", "Prev"),
    Binding("g", "first_cycle", "First", show=False),
    Binding("G", "last_cycle", "Last", show=False),
    Binding("colon", "goto", "Go to"),
]
GENERAL: list[BindingType] = [
    Binding("w", "next_worker", "Worker"),
    Binding("c", "checkpoints", "Checkpoints"),
    Binding("d", "toggle_dark", "Theme", show=False),
    Binding("q", "quit", "Quit"),
]
ZOOM = Binding("z", "zoom", "Zoom")
# Keys of the ":" prompt: priority, so they reach it whatever has the focus; when the prompt is
# closed the action skips and the key goes on as if unbound.
PROMPT_KEYS: list[BindingType] = [
    Binding(k, f"prompt_key('{k}')", show=False, priority=True) for k in [*"0123456789", "backspace", "enter", "escape"]
]


class SessionApp(App[int]):
    """A session's terminal, timeline, detail and results; subclasses feed it."""

    CSS_PATH = "viewer.tcss"
    TITLE = "clive"

    BINDINGS: ClassVar[list[BindingType]] = [*NAVIGATION, *GENERAL, ZOOM, *PROMPT_KEYS]

    terminal_title = "terminal"
    follow_interval = FOLLOW_INTERVAL

    start_at_first = True  # replay opens at cycle 1; live mode at the newest

    def __init__(self, reader: SessionReader | None, *, follow: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.home = reader  # the session opened: its results, title and status
        self.reader = reader  # the recording in the terminal and timeline: home's, or a worker's
        self.worker: int | None = None  # whose recording is shown (None: home's own)
        self._worker_readers: dict[int, SessionReader] = {}
        meta = reader.meta if reader is not None else {}
        workers = meta.get("workers")
        # Workers ran it: several, or one on a cluster (a run in-process has no workers/ folder).
        self.parallel = (type(workers) is int and workers > 1) or bool(meta.get("cluster")) or (
            reader is not None and (reader.path / "workers").is_dir())
        self.follow = follow
        self.cycle_events: list[dict[str, Any]] = []
        self.index = -1  # selected row of the timeline
        self.exit_code = 0
        self._problems_shown: list[str] = []
        self._screens: OrderedDict[Any, Snapshot] = OrderedDict()
        self._index_of: dict[Any, int] = {}  # cycle number -> its row in the timeline
        self.checkpoints: list[CheckpointEntry] = []
        self._focus_before_zoom: Widget | None = None

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
        yield ResultsPane(id="results", workers=self.parallel)
        yield Footer(compact=True, id="footer")

    def compose_extra(self) -> ComposeResult:
        yield from ()

    @property
    def terminal_view(self) -> TerminalView:
        return self.query_one(TerminalView)

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    @property
    def detail(self) -> CycleDetail:
        return self.query_one(CycleDetail)

    def on_mount(self) -> None:
        # Textual calls every on_mount along the class hierarchy: subclasses do not define one,
        # they override started().
        self.terminal_view.border_title = self.terminal_title
        self.terminal_view.show(blank_snapshot())
        self.load_new()
        if self.parallel and not self.cycle_events and self.worker_numbers():
            self.show_worker(self.worker_numbers()[0])  # the coordinator types nothing: its workers do
        # The session read so far lives as long as the viewer: keep it out of the collector's
        # full passes, which otherwise walk every event and pause a step for tens of ms.
        gc.freeze()
        self.timeline.focus()
        if self.follow and self.reader is not None:
            self.set_interval(self.follow_interval, self.poll_session, name="follow")
        self.started()

    def started(self) -> None:
        """Called once the app is mounted and the session read so far is shown."""

    def on_unmount(self) -> None:
        gc.unfreeze()

    def title_parts(self) -> list[str]:
        reader = self.home
        if reader is None:
            return []
        meta = reader.meta
        parts = [f"session {reader.id}", str(meta.get("status", "?"))]
        if self.worker is not None:
            parts.append(f"worker {self.worker}")
        # Where we are comes early: the line is cut at the right edge of a narrow terminal.
        count = len(self.cycle_events)
        if 0 <= self.index < count:
            parts.append(f"#{self.cycle_events[self.index].get('cycle', '?')} of {count} cycles")
        else:
            parts.append(f"{count} cycles")
        if self.checkpoints:
            parts.append(f"{len(self.checkpoints)} checkpoints")
        if meta.get("playbook"):
            parts.append(Path(str(meta["playbook"])).name)
        if meta.get("policy"):
            parts.append(str(meta["policy"]))
        return parts

    def update_title(self) -> None:
        self.query_one(TitleBar).text = "  ·  ".join(self.title_parts())

    # ---- reading the session -------------------------------------------------------------

    def load_new(self, new: Iterable[dict[str, Any]] | None = None) -> None:
        """Add the session's events to the results, and to the timeline while its own recording is
        shown (all the session has, the first time)."""
        reader = self.home
        if reader is None:
            return
        events = list(reader.events if new is None else new)
        self.query_one(ResultsPane).add_results([e for e in events if e.get("type") == "experiment"])
        if self.reader is reader:
            self.load_cycles(events)
        self.show_problems()
        self.update_title()

    def load_cycles(self, events: list[dict[str, Any]]) -> None:
        """Add the shown recording's cycles to the timeline, and its checkpoints."""
        cycles = [e for e in events if e.get("type") == "cycle"]
        at_end = self.index == len(self.cycle_events) - 1
        if cycles:
            for i, event in enumerate(cycles, start=len(self.cycle_events)):
                self._index_of.setdefault(event.get("cycle"), i)
            self.cycle_events.extend(cycles)
            self.timeline.add_cycles(cycles)
            last = len(self.cycle_events) - 1
            if self.index < 0:
                self.select(0 if self.start_at_first else last)
            elif at_end and self.follow:
                self.select(last)
        self.add_checkpoints(checkpoints_in(events))

    def add_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        if not entries:
            return
        first = not self.checkpoints
        self.checkpoints.extend(entries)
        if first:
            self.refresh_bindings()  # c appears in the footer
        if isinstance(self.screen, CheckpointsScreen):
            self.screen.add_entries(entries)

    def poll_session(self) -> None:
        if self.home is None:
            return
        try:
            new = self.home.refresh()
            shown = self.reader.refresh() if self.reader is not self.home and self.reader is not None else []
        except (OSError, SessionError) as exc:
            self.show_problems([str(exc)])
            return
        if new:
            self.load_new(new)
        else:
            self.show_problems()
        if self.parallel and self.worker is None and not self.cycle_events and self.worker_numbers():
            self.show_worker(self.worker_numbers()[0])  # the first worker's recording has come
        if shown:
            self.load_cycles(shown)
            self.update_title()

    # ---- workers -----------------------------------------------------------------------

    def worker_numbers(self) -> list[int]:
        """The workers with a recording in the session (``workers/<k>/``), in order."""
        if self.home is None:
            return []
        try:
            return sorted(int(p.name) for p in (self.home.path / "workers").iterdir() if p.name.isdigit())
        except OSError:
            return []

    def show_worker(self, worker: int) -> bool:
        """Show worker ``worker``'s recording in the terminal and the timeline."""
        if worker == self.worker:
            return True
        reader = self._worker_readers.get(worker)
        if reader is None and self.home is not None:
            try:
                reader = SessionReader.open(self.home.path / "workers" / str(worker))
            except SessionError as exc:
                self.notify(f"worker {worker}: {exc}", severity="warning")
                return False
            self._worker_readers[worker] = reader
        self.reader, self.worker = reader, worker
        self.cycle_events, self.index = [], -1
        self._screens.clear()
        self._index_of.clear()
        self.timeline.clear()
        self.checkpoints = []
        self.terminal_view.border_title = f"{self.terminal_title} · worker {worker}"
        self.terminal_view.show(blank_snapshot(message=f"worker {worker} has no cycles yet"))
        if reader is not None:
            reader.refresh()
            self.load_cycles(reader.events)
        self.refresh_bindings()
        self.update_title()
        return True

    def action_next_worker(self) -> None:
        numbers = self.worker_numbers()
        if not numbers:
            self.notify("no worker has sent its recording yet", severity="warning")
            return
        later = [k for k in numbers if self.worker is None or k > self.worker]
        self.show_worker(later[0] if later else numbers[0])

    @on(ResultsPane.Chosen)
    def _experiment_chosen(self, message: ResultsPane.Chosen) -> None:
        """Show the experiment's worker at the cycle where the experiment began."""
        worker, trial = message.event.get("worker"), message.event.get("trial")
        if not self.parallel or type(worker) is not int or not self.show_worker(worker) or self.reader is None:
            return
        # The row's measurement is the worker's last assignment of the trial (an earlier one may have
        # been measured on an older best).
        events = self.reader.events
        starts = [e.get("cycle") for e in events if e.get("type") == "assignment" and e.get("trial") == trial]
        start = starts[-1] if starts else None
        if type(start) is int:
            # The assignment is logged after the cycles before it: its experiment's first is the next.
            later = [i for i, e in enumerate(self.cycle_events) if type(e.get("cycle")) is int and e["cycle"] > start]
            if later:
                self.select(later[0])
                self.timeline.focus()

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
        self.timeline.move_cursor(index)
        self.show_cycle(index)

    def show_cycle(self, index: int) -> None:
        event = self.cycle_events[index]
        self.detail.show(event)
        self.show_screen(event)
        self.update_title()

    def show_screen(self, event: dict[str, Any]) -> None:
        """The terminal pane for the selected cycle: its recorded screen."""
        if self.reader is None:
            return
        self.terminal_view.show(self.screen_of(event))

    def screen_of(self, event: dict[str, Any]) -> Snapshot:
        """The recorded screen of a cycle, from a cache of the screens shown lately."""
        cycle = event.get("cycle")
        snap = self._screens.get(cycle)
        if snap is not None:
            self._screens.move_to_end(cycle)
            return snap
        assert self.reader is not None
        try:
            snap = styled_screen_at(self.reader, cycle)  # type: ignore[arg-type]
        except SessionError as exc:
            return blank_snapshot(message=f"[no screen for this cycle: {exc}]")
        # A session still being written may have the cycle's event before its terminal output:
        # keep the screen only once the cast has gone past the cycle's place in it.
        index = event.get("cast_index")
        if type(index) is int and self.reader.cast_length > index:
            self._screens[cycle] = snap
            if len(self._screens) > SCREEN_CACHE:
                self._screens.popitem(last=False)
        return snap

    @on(Timeline.Selected)
    def _timeline_selected(self, message: Timeline.Selected) -> None:
        if message.index != self.index and 0 <= message.index < len(self.cycle_events):
            self.index = message.index
            self.show_cycle(message.index)

    def jump(self, cycle: int) -> None:
        """Select cycle number ``cycle``."""
        index = self._index_of.get(cycle)
        if index is None:
            self.notify(f"no cycle {cycle}", severity="warning")
        else:
            self.select(index)

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
        self.zoomed = False  # the prompt is in the title bar
        self.query_one(TitleBar).open()

    @property
    def zoomed(self) -> bool:
        """Whether the terminal is shown alone (z): no border, panes, title or footer, so that an
        80x24 recording fills an 80x24 terminal."""
        return self.has_class("-zoomed")

    @zoomed.setter
    def zoomed(self, on: bool) -> None:
        if on == self.zoomed:
            return
        self.set_class(on, "-zoomed")
        if on:
            # The pane that had the focus is hidden now; it gets it back when the panes return.
            self._focus_before_zoom = self.focused
            self.terminal_view.focus()
        elif self._focus_before_zoom is not None and self._focus_before_zoom.is_attached:
            self._focus_before_zoom.focus()

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed

    def action_prompt_key(self, key: str) -> None:
        bar = self.query_one(TitleBar)
        if not bar.prompting:
            raise SkipAction()
        cycle = bar.key(key)
        if cycle is not None:
            self.jump(cycle)

    def action_checkpoints(self) -> None:
        if isinstance(self.screen, CheckpointsScreen):
            return
        self.query_one(TitleBar).close()
        reader = self.reader
        meta = reader.meta if reader is not None else {}
        session_id = reader.id if reader is not None else "?"
        self.push_screen(CheckpointsScreen(self.checkpoints, meta, session_id, self.restore_blocker()))

    def restore_blocker(self) -> Callable[[], str | None] | None:
        """Replay restores nothing: a recording is looked at, not acted on (live mode overrides)."""
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "checkpoints":
            return bool(self.checkpoints)  # hidden until the session has one
        if action == "next_worker":
            return self.parallel  # only a run with several workers has any
        return True

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
        ("Zoom the terminal", "Show the terminal alone, or everything again (z)", "zoom"),
        ("Checkpoints", "List the checkpoints, diff two of them (c)", "checkpoints"),
        ("Next worker", "Show the next worker's terminal and cycles (w; or choose a result row)", "next_worker"),
        ("Toggle light/dark theme", "Switch between the light and dark theme (d)", "toggle_dark"),
    ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in self.COMMANDS_EXTRA:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
