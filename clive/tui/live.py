"""``clive tui`` / ``clive run --tui``: the co-pilot. The agent runs in a thread worker; before each
policy action its ``approve`` hook blocks that worker until the person approves, edits or rejects."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message

from clive.agent.actions import Action, Run
from clive.agent.loop import Agent
from clive.agent.policies.human import HumanPolicy
from clive.session import SessionError, SessionReader
from clive.terminal import Terminal
from clive.tui.proposal import ActionEditor, ProposalBar
from clive.tui.session_app import GENERAL, NAVIGATION, PROMPT_KEYS, ZOOM, SessionApp
from clive.tui.terminal_view import TerminalView
from clive.tui.title_bar import TitleBar

if TYPE_CHECKING:
    from clive.experiments.runner import RunOptions

SCREEN_INTERVAL = 0.05  # how often the terminal pane looks for new output
LIVE_FOLLOW_INTERVAL = 0.25

_CLOSED = object()  # put in the decision queue when the app goes away


class LiveApp(SessionApp, inherit_bindings=False):
    """The co-pilot: the live terminal, the session's cycles as they are recorded, and the
    proposed next action waiting for the person."""

    # Declared whole (not inherited) so that the co-pilot's keys come first in the footer.
    BINDINGS: ClassVar[list[BindingType]] = [
        *App.BINDINGS,
        Binding("a", "approve", "Approve"),
        Binding("e", "edit", "Edit"),
        Binding("r", "reject", "Reject"),
        Binding("p", "pause", "Pause"),
        Binding("t", "take_over", "Take over"),
        *GENERAL,
        replace(ZOOM, show=False),  # at 80 columns the footer has no room left for it
        *(replace(b, show=False) for b in NAVIGATION if isinstance(b, Binding)),
        *PROMPT_KEYS,
    ]

    COMMANDS_EXTRA = [
        ("Approve", "Let the agent take the proposed action (a)", "approve"),
        ("Edit", "Change the proposed action before it runs (e)", "edit"),
        ("Reject", "Refuse the proposed action (r)", "reject"),
        ("Pause / resume", "Hold the agent before its next action (p)", "pause"),
        ("Take over", "Type straight into the terminal until Ctrl-] (t)", "take_over"),
        *SessionApp.COMMANDS_EXTRA,
    ]

    terminal_title = "terminal (live)"
    follow_interval = LIVE_FOLLOW_INTERVAL
    start_at_first = False

    class Proposed(Message):
        """The agent wants to take ``action`` (posted from the worker thread)."""

        def __init__(self, action: Action) -> None:
            super().__init__()
            self.action = action

    class Finished(Message):
        def __init__(self, code: int, text: str) -> None:
            super().__init__()
            self.code = code
            self.text = text

    class Said(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(
        self,
        terminal: Terminal,
        agent: Agent,
        drive: Callable[[], int],
        session_dir: Path | None = None,
        *,
        auto_approve: bool = False,
        human: HumanPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        self.human = human  # the free-hand co-pilot: e writes the next action
        reader = None
        if session_dir is not None:
            try:
                reader = SessionReader.open(session_dir)
            except SessionError:
                reader = None
        super().__init__(reader, follow=True, **kwargs)
        self.terminal = terminal
        self.agent = agent
        self._drive = drive
        self.auto_approve = auto_approve
        self.paused = False
        self.takeover = False
        self.proposal: Action | None = None
        self._decisions: queue.Queue[object] = queue.Queue()
        self._live_started = False
        self._agent_closing = threading.Event()
        self.finished = threading.Event()
        self._seen_seq = -1
        agent.approve = self.approve_hook

    # ---- layout ------------------------------------------------------------------------

    def compose_extra(self) -> ComposeResult:
        yield ProposalBar(id="proposal")
        yield ActionEditor(id="editor")

    @property
    def bar(self) -> ProposalBar:
        return self.query_one(ProposalBar)

    def started(self) -> None:
        self._live_started = True
        self.set_interval(SCREEN_INTERVAL, self.refresh_terminal, name="screen")
        self.refresh_terminal()
        self.bar.state = "running"
        self.run_agent()

    def show_screen(self, event: dict[str, Any]) -> None:
        """The terminal pane stays live; the timeline only changes the detail pane."""

    def refresh_terminal(self) -> None:
        seq = self.terminal.output_seq
        if seq != self._seen_seq:
            self._seen_seq = seq
            self.terminal_view.show(self.terminal.snapshot(with_style=True))

    # ---- the agent (worker thread) -------------------------------------------------------

    @work(thread=True, exit_on_error=False, name="agent")
    def run_agent(self) -> None:
        code, text = 1, ""
        try:
            code = self._drive()
            text = f"finished (exit {code})"
        except Exception as exc:  # noqa: BLE001 - shown to the person, never a traceback
            text = f"the run failed: {exc}"
        finally:
            self.finished.set()
            self.post_message(self.Finished(code, text))

    def approve_hook(self, action: Action) -> Action | None:
        """Called by the agent in the worker thread before each policy action; blocks until the
        person decides (or, with auto-approve, until they resume)."""
        if self.human is not None:
            return action  # the person wrote it: nothing to approve
        proposed = False
        while True:
            if self._agent_closing.is_set() or (self._live_started and not self.is_running):
                self.close_agent()  # the app is gone: nobody can approve anything any more
                return None
            if self.auto_approve and not self.paused and not self.takeover:
                return action
            if not proposed:
                self.post_message(self.Proposed(action))
                proposed = True
            try:
                decision = self._decisions.get(timeout=0.1)
            except queue.Empty:
                continue
            if decision is _CLOSED:
                return None
            return decision  # type: ignore[return-value]

    def say(self, text: str) -> None:
        """Progress from the run (thread-safe)."""
        self.post_message(self.Said(text))

    @on(Proposed)
    def _proposed(self, message: Proposed) -> None:
        self.proposal = message.action
        self.bar.proposal = message.action
        if not self.takeover:
            self.bar.state = "paused" if self.paused else "waiting"

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.exit_code = message.code
        self.proposal = None
        self.bar.proposal = None
        self.bar.state = message.text
        self.poll_session()

    @on(Said)
    def _said(self, message: Said) -> None:
        self.notify(message.text, timeout=3)

    def _decide(self, decision: object) -> None:
        if self.proposal is None:
            self.notify("nothing is waiting for approval", severity="warning", timeout=2)
            return
        self.proposal = None
        self.bar.proposal = None
        self.bar.state = "running"
        self._decisions.put(decision)

    # ---- actions -----------------------------------------------------------------------

    def action_approve(self) -> None:
        self._decide(self.proposal)

    def action_reject(self) -> None:
        self._decide(None)

    def action_edit(self) -> None:
        if self.proposal is None and self.human is not None:
            # Free hand: the person writes the next action (t types straight into the terminal).
            self.query_one(ActionEditor).open(Run(""))
            return
        if self.proposal is None:
            self.notify("nothing to edit", severity="warning", timeout=2)
            return
        self.query_one(ActionEditor).open(self.proposal)

    @on(ActionEditor.Edited)
    def _edited(self, message: ActionEditor.Edited) -> None:
        if self.proposal is None and self.human is not None:
            self.human.submit(message.action)
            return
        self._decide(message.action)

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self.proposal is None:
            self.bar.state = "paused (before the next action)" if self.paused else "running"
        else:
            self.bar.state = "paused" if self.paused else "waiting"

    def action_take_over(self) -> None:
        self.takeover = True
        self.query_one(TitleBar).close()  # from now on digits are the terminal's
        view = self.terminal_view
        view.keys_to = self.terminal.type
        view.add_class("-takeover")
        view.focus()
        self.bar.state = "take over"

    @on(TerminalView.HandBack)
    def _hand_back(self) -> None:
        self.takeover = False
        view = self.terminal_view
        view.keys_to = None
        view.remove_class("-takeover")
        self.timeline.focus()
        self.bar.state = ("waiting" if not self.paused else "paused") if self.proposal else "running"

    def restore_blocker(self) -> Callable[[], str | None]:
        """Restoring is safe while the agent waits (a proposal, or the run is over); a person at
        the free-hand co-pilot runs every command themselves."""

        def blocker() -> str | None:
            if self.finished.is_set() or self.proposal is not None or self.human is not None:
                return None
            return "the agent is acting: go back (Esc), pause it (p), and restore while it waits"

        return blocker

    def action_quit(self) -> None:  # type: ignore[override]
        self.close_agent()
        self.exit(self.exit_code)

    def close_agent(self) -> None:
        """Ask the agent to stop and free a worker waiting for a decision."""
        if not self._agent_closing.is_set():
            self._agent_closing.set()
            if self.human is not None:
                self.human.close()  # a person ending a free-hand session is its normal end
            else:
                self.agent.request_stop()
            self._decisions.put(_CLOSED)

    def on_unmount(self) -> None:
        self.close_agent()


def run_live(options: RunOptions, *, auto_approve: bool = False) -> int:
    """Run a playbook with the co-pilot (``clive tui PLAYBOOK``, ``clive run --tui``); returns
    the exit code. ``auto_approve`` lets actions through until the person pauses (p)."""
    from clive.experiments import runner
    def host(terminal: Terminal, agent: Agent, recorder: Any, policy: Any, body: runner.Body) -> tuple[int, str]:
        outcome: dict[str, Any] = {}
        app: LiveApp | None = None

        def drive() -> int:
            assert app is not None
            outcome["code"], outcome["status"] = body(app.say)
            return outcome["code"]

        human = policy if isinstance(policy, HumanPolicy) else None
        app = LiveApp(terminal, agent, drive, recorder.path, auto_approve=auto_approve or human is not None,
                      human=human)
        app.run()
        if human is not None:
            app.finished.wait(5)  # the Done that closing sent is being recorded
        if not app.finished.is_set():
            # The person quit mid-run: stop the agent and the command it is waiting on.
            app.close_agent()
            terminal.type("\x03")
            app.finished.wait(10)
        if not app.finished.is_set():
            return 130, "interrupted"
        # What the run itself ended with, not the app's code: a person who quits while an action
        # waits for approval leaves an interrupted run (130), whatever the app last showed.
        return outcome.get("code", 1), outcome.get("status", "failed")

    return runner.run(options, host=host)
