"""The checkpoints of a session: the list, the diff between any two, and (live) restore.

The list comes from the session's events (a cycle's checkpoint commit, an experiment's commit);
everything that touches git goes through ``clive.checkpoint.Workspace``, in thread workers so the
viewer never waits on git. A replay opened away from its repository lists the checkpoints and
says why it cannot diff them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from clive.experiments.workspace import Workspace, WorkspaceError
from clive.tui.confirm import ConfirmDialog

MAX_DIFF_LINES = 20_000  # a diff longer than this is cut, and says so
_CONTROLS = {c: "?" for c in [*range(0x20), 0x7F]}  # a file's control bytes must not reach the terminal


@dataclass(frozen=True, slots=True)
class CheckpointEntry:
    """One commit the session recorded: a checkpoint action's, or an experiment's."""

    sha: str
    label: str
    cycle: int | None = None

    @property
    def short(self) -> str:
        return self.sha[:8]


def checkpoints_in(events: Iterable[dict[str, Any]]) -> list[CheckpointEntry]:
    """The commits named in session events, in the order they were recorded."""
    found = []
    for event in events:
        kind = event.get("type")
        if kind == "cycle" and isinstance(event.get("checkpoint"), str) and event["checkpoint"]:
            action = event.get("action") if isinstance(event.get("action"), dict) else {}
            message = action.get("message") if action.get("type") == "checkpoint" else None  # type: ignore[union-attr]
            cycle = event.get("cycle") if type(event.get("cycle")) is int else None
            label = f"cycle {cycle if cycle is not None else '?'}: {message or 'checkpoint'}"
            found.append(CheckpointEntry(event["checkpoint"], " ".join(label.split()), cycle))
        elif kind == "experiment" and isinstance(event.get("commit"), str) and event["commit"]:
            metric = event.get("metric")
            shown = f"{metric:g}" if isinstance(metric, int | float) and not isinstance(metric, bool) else "-"
            label = f"experiment {event.get('n', '?')} {event.get('status', '?')} {shown}"
            if event.get("description"):
                label += f": {event['description']}"
            found.append(CheckpointEntry(event["commit"], " ".join(label.split()), None))
    return found


def open_workspace(meta: dict[str, Any], session_id: str) -> Workspace:
    """The session's repository (its workdir), or WorkspaceError saying why it cannot be used."""
    workdir = meta.get("workdir")
    if not isinstance(workdir, str) or not workdir:
        raise WorkspaceError("the session does not say where its repository is (no workdir in meta.json)")
    return Workspace(Path(workdir), session_id)


class DiffView(ScrollView, can_focus=True):
    """A unified diff, coloured by line, drawn line by line (a long diff costs only what shows)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "diff--added", "diff--removed", "diff--hunk", "diff--file", "diff--note",
    }  # fmt: skip

    DEFAULT_CSS = """
    DiffView {
        height: 1fr;
        border: round $secondary 50%;
        border-title-color: $text-muted;
        scrollbar-size: 1 1;
        & > .diff--added { color: $text-success; }
        & > .diff--removed { color: $text-error; }
        & > .diff--hunk { color: $text-accent; }
        & > .diff--file { text-style: bold; }
        & > .diff--note { color: $text-muted; text-style: italic; }
        &:focus { border: round $secondary; }
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "diff"
        self.lines: list[str] = []
        self._kinds: list[str] = []
        self._styles: dict[str, Style] = {}
        self._base = Style()

    def show_text(self, text: str, title: str) -> None:
        lines = text.splitlines()
        if len(lines) > MAX_DIFF_LINES:
            lines = lines[:MAX_DIFF_LINES] + [f"(the diff goes on for {len(lines) - MAX_DIFF_LINES} more lines)"]
        if not lines:
            lines = ["(no differences)"]
        self._set(lines, [self._kind(line) for line in lines], title)

    def show_message(self, message: str, title: str = "diff") -> None:
        lines = message.splitlines() or [""]
        self._set(lines, ["diff--note"] * len(lines), title)

    def _set(self, lines: list[str], kinds: list[str], title: str) -> None:
        self.lines, self._kinds = lines, kinds
        self.border_title = title
        self.virtual_size = Size(max(len(line) for line in lines), len(lines))
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    @staticmethod
    def _kind(line: str) -> str:
        if line.startswith(("diff --git", "+++", "---", "index ", "new file", "deleted file")):
            return "diff--file"
        if line.startswith("@@"):
            return "diff--hunk"
        if line.startswith("+"):
            return "diff--added"
        if line.startswith("-"):
            return "diff--removed"
        if line.startswith("("):
            return "diff--note"
        return ""

    def render_lines(self, crop: Region) -> list[Strip]:
        self._styles = {name: self.get_component_rich_style(name) for name in self.COMPONENT_CLASSES}
        self._styles[""] = Style()
        self._base = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.size.width
        if row >= len(self.lines):
            return Strip.blank(width, self._base)
        text = self.lines[row].expandtabs(4).translate(_CONTROLS)
        strip = Strip([Segment(text, self._styles[self._kinds[row]])])
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width).apply_style(self._base)


class CheckpointsScreen(ModalScreen[None]):
    """The list of checkpoints over the diff of the two marked ``a`` (from) and ``b`` (to).

    Modal, so that the app's keys (step, approve, reject) do not act behind it.
    ``restore_blocker`` (live mode only) says why a restore cannot happen now, or None when it
    can; without it the screen offers no restore.
    """

    DEFAULT_CSS = """
    CheckpointsScreen {
        background: $background;
    }
    CheckpointsScreen #where {
        height: auto;
        max-height: 2;
        background: $primary 30%;
        padding: 0 1;
    }
    CheckpointsScreen #where.-problem {
        background: $error 30%;
    }
    CheckpointsScreen OptionList {
        height: auto;
        max-height: 40%;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    CheckpointsScreen OptionList:focus {
        border: round $primary;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "mark('a')", "From"),
        Binding("b", "mark('b')", "To"),
        Binding("R", "restore", "Restore"),
        Binding("escape,c", "back", "Back"),
        Binding("tab", "app.focus_next", "Switch pane", show=False),
    ]

    def __init__(
        self,
        entries: list[CheckpointEntry],
        meta: dict[str, Any],
        session_id: str,
        restore_blocker: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.entries = list(entries)
        self.meta = meta
        self.session_id = session_id
        self.restore_blocker = restore_blocker
        self.marks: dict[str, int] = {}  # "a"/"b" -> index into entries
        self.workspace: Workspace | None = None
        self.problem: str | None = None  # why git cannot be used here, once known
        self.last_diff: tuple[str, str] | None = None  # (a, b) shas of the diff shown

    def compose(self) -> ComposeResult:
        yield Static(f"checkpoints of session {self.session_id}", id="where", markup=False)
        options = OptionList(*[Option(self._prompt(i)) for i in range(len(self.entries))], id="checkpoint-list")
        options.border_title = "checkpoints  (a: from, b: to, Enter: against the one before)"
        yield options
        yield DiffView(id="diff")
        yield Footer(compact=True)

    @property
    def option_list(self) -> OptionList:
        return self.query_one(OptionList)

    @property
    def diff_view(self) -> DiffView:
        return self.query_one(DiffView)

    def on_mount(self) -> None:
        self.option_list.focus()
        if self.entries:
            self.option_list.highlighted = len(self.entries) - 1
            self.diff_view.show_message("mark two checkpoints, a (from) and b (to), to see their diff")
        else:
            self.diff_view.show_message("this session has no checkpoints yet")
        self._open()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restore":
            return self.restore_blocker is not None
        return True

    # ---- the list ------------------------------------------------------------------------

    def _prompt(self, index: int) -> str:
        entry = self.entries[index]
        mark = "".join(k.upper() for k in ("a", "b") if self.marks.get(k) == index)
        return f"{mark:<2} {entry.short}  {entry.label}"

    def add_entries(self, entries: list[CheckpointEntry]) -> None:
        """Checkpoints recorded while the screen is open (live mode)."""
        start = len(self.entries)
        self.entries.extend(entries)
        self.option_list.add_options([Option(self._prompt(i)) for i in range(start, len(self.entries))])

    def _highlighted(self) -> int | None:
        index = self.option_list.highlighted
        return index if index is not None and 0 <= index < len(self.entries) else None

    def action_mark(self, which: str) -> None:
        index = self._highlighted()
        if index is None:
            return
        before = set(self.marks.values())
        self.marks[which] = index
        for i in before | {index}:
            self.option_list.replace_option_prompt_at_index(i, self._prompt(i))
        if "a" in self.marks and "b" in self.marks:
            self.show_diff(self.marks["a"], self.marks["b"])

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        index = event.option_index
        if index > 0:
            self.show_diff(index - 1, index)
        else:
            self.notify("the first checkpoint has none before it; mark two with a and b", timeout=3)

    def action_back(self) -> None:
        self.dismiss(None)

    # ---- git, in threads -------------------------------------------------------------------
    # Workers never touch widgets: they hand results to _later, which drops them if the person
    # has closed the screen meanwhile. Notices about restores go to the app, which outlives it.

    def _later(self, callback: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            if self.is_attached:
                callback(*args)

        self.app.call_from_thread(run)

    def _tell(self, message: str, severity: SeverityLevel = "information") -> None:
        self.app.call_from_thread(self.app.notify, message, severity=severity, timeout=6)

    def _where(self, text: str, problem: bool) -> None:
        where = self.query_one("#where", Static)
        where.update(text)
        where.set_class(problem, "-problem")

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open(self) -> None:
        try:
            workspace = open_workspace(self.meta, self.session_id)
        except WorkspaceError as exc:
            self._later(self._opened, None, str(exc))
            return
        self._later(self._opened, workspace, None)

    def _opened(self, workspace: Workspace | None, problem: str | None) -> None:
        self.workspace, self.problem = workspace, problem
        if workspace is None:
            cannot = "cannot diff or restore" if self.restore_blocker is not None else "cannot diff"
            self._where(f"{cannot}: {problem}", True)
        else:
            self._where(f"checkpoints of session {self.session_id} in {workspace.path}", False)

    def _git(self) -> Workspace | None:
        """The workspace (opening it here if the first look has not finished); None if unusable."""
        if self.workspace is None and self.problem is None:
            try:
                self.workspace = open_workspace(self.meta, self.session_id)
            except WorkspaceError as exc:
                self.problem = str(exc)
        return self.workspace

    def show_diff(self, a: int, b: int) -> None:
        """The diff from checkpoint ``a`` to checkpoint ``b`` (indices into the list)."""
        first, second = self.entries[a], self.entries[b]
        self.diff_view.show_message("running git diff …", f"diff {first.short}..{second.short}")
        self._diff(first, second)

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def _diff(self, first: CheckpointEntry, second: CheckpointEntry) -> None:
        title = f"diff {first.short}..{second.short}"
        workspace = self._git()
        if workspace is None:
            self._later(self._no_diff, f"no diff: {self.problem}", title)
            return
        try:
            text = workspace.diff(first.sha, second.sha)
        except WorkspaceError as exc:
            self._later(self._no_diff, f"no diff: {exc}", title)
            return
        self._later(self._diff_shown, text, title, (first.sha, second.sha))

    def _no_diff(self, message: str, title: str) -> None:
        self.diff_view.show_message(message, title)

    def _diff_shown(self, text: str, title: str, shas: tuple[str, str]) -> None:
        self.diff_view.show_text(text, title)
        self.last_diff = shas

    # ---- restore (live mode) ---------------------------------------------------------------

    def action_restore(self) -> None:
        if self.restore_blocker is None:
            return
        index = self._highlighted()
        if index is None:
            return
        why = self.restore_blocker()
        if why:
            self.notify(why, severity="warning", timeout=4)
            return
        self._prepare_restore(self.entries[index])

    @work(thread=True, exclusive=True, group="restore", exit_on_error=False)
    def _prepare_restore(self, entry: CheckpointEntry) -> None:
        workspace = self._git()
        if workspace is None:
            self._tell(f"cannot restore: {self.problem}", "error")
            return
        try:
            at_risk = workspace.restore_would_overwrite(entry.sha)
        except WorkspaceError as exc:
            self._tell(f"cannot restore: {exc}", "error")
            return
        self._later(self._ask_restore, workspace, entry, at_risk)

    def _ask_restore(self, workspace: Workspace, entry: CheckpointEntry, at_risk: list[str]) -> None:
        question = f"Restore the working tree in {workspace.path}\nto {entry.short} ({entry.label})?\n\n"
        if at_risk:
            shown = ", ".join(at_risk[:8]) + (f" and {len(at_risk) - 8} more" if len(at_risk) > 8 else "")
            question += f"This OVERWRITES uncommitted changes in: {shown}"
        else:
            question += "No uncommitted changes are at risk. HEAD and the index stay as they are."

        def answered(yes: bool | None) -> None:
            if yes:
                self._restore(entry, at_risk)

        self.app.push_screen(ConfirmDialog(question, yes="Restore"), answered)

    @work(thread=True, exclusive=True, group="restore", exit_on_error=False)
    def _restore(self, entry: CheckpointEntry, confirmed: list[str]) -> None:
        workspace = self._git()
        assert workspace is not None
        try:
            at_risk = workspace.restore_would_overwrite(entry.sha)
            unseen = sorted(set(at_risk) - set(confirmed))
            if unseen:
                # Files changed after the question was asked: the person has not agreed to lose them.
                raise WorkspaceError(f"{', '.join(unseen[:5])} changed since you confirmed; nothing restored")
            workspace.restore(entry.sha, force=bool(at_risk))
        except WorkspaceError as exc:
            self._tell(f"restore failed: {exc}", "error")
            return
        self._tell(f"restored {entry.short} into {workspace.path}")
