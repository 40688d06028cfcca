"""Live mode's proposal bar: what the agent wants to do next, and the editor for changing it."""

from __future__ import annotations

import json

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from clive.agent.actions import Action, action_to_dict, parse_action


def action_json(action: Action) -> str:
    return json.dumps(action_to_dict(action), ensure_ascii=False)


class ProposalBar(Static):
    """One or two lines: the proposed action and the state of the agent."""

    DEFAULT_CSS = """
    ProposalBar {
        height: auto;
        max-height: 3;
        padding: 0 1;
        background: $boost;
    }
    ProposalBar.-waiting {
        background: $warning 25%;
    }
    ProposalBar.-takeover {
        background: $error 30%;
    }
    """

    state: reactive[str] = reactive("starting")
    proposal: reactive[Action | None] = reactive(None)

    def render(self) -> Text:
        text = Text()
        text.append(f"[{self.state}] ", style="bold")
        if self.state == "take over":
            text.append("keys go to the terminal; Ctrl-] hands back")
        elif self.proposal is not None:
            text.append("next: ", style="bold")
            text.append(action_json(self.proposal))
            if self.state == "waiting":
                text.append("   a approve · e edit · r reject", style="dim")
        return text

    def watch_state(self, state: str) -> None:
        self.set_class(state == "waiting", "-waiting")
        self.set_class(state == "take over", "-takeover")


class ActionEditor(Input):
    """The proposed action as JSON; Enter posts ``ActionEditor.Edited`` with the parsed action."""

    DEFAULT_CSS = """
    ActionEditor {
        display: none;
        height: 3;
    }
    ActionEditor.-open {
        display: block;
    }
    """

    BINDINGS = [Binding("escape", "close", "Cancel edit", show=False)]

    class Edited(Message):
        def __init__(self, action: Action) -> None:
            super().__init__()
            self.action = action

    def open(self, action: Action) -> None:
        self.value = action_json(action)
        self.add_class("-open")
        self.focus()

    def action_close(self) -> None:
        self.remove_class("-open")
        self.screen.focus_next()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            action = parse_action(json.loads(self.value))
        except (ValueError, TypeError) as exc:
            self.app.notify(f"not an action: {exc}", severity="error")
            return
        self.action_close()
        self.post_message(self.Edited(action))
