"""The top line: which session and cycle this is, or the ``:`` prompt that jumps to a cycle.

The prompt lives in this line instead of an input that appears and takes the focus: opening and
closing it changes no layout, focus or footer, so a jump costs what a step costs.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class TitleBar(Widget):
    """One line; ``typed`` is None for the title, else the digits typed after ``:``."""

    # The prompt's look is a component style, not a CSS class on the bar: a class change restyles
    # the node on the next idle and costs a second frame.
    COMPONENT_CLASSES: ClassVar[set[str]] = {"title-bar--prompt"}

    DEFAULT_CSS = """
    TitleBar {
        height: 1;
        background: $primary 30%;
        color: $text;
        padding: 0 1;
        & > .title-bar--prompt {
            background: $warning 40%;
        }
    }
    """

    text: reactive[str] = reactive("")
    typed: reactive[str | None] = reactive(None)

    @property
    def prompting(self) -> bool:
        return self.typed is not None

    def open(self) -> None:
        self.typed = ""

    def close(self) -> None:
        self.typed = None

    def key(self, key: str) -> int | None:
        """A key typed at the prompt: a digit, backspace, escape (cancel) or enter, which closes
        the prompt and returns the cycle number typed. (A return value, not a message: the jump
        then paints in the same frame as the prompt closing.)"""
        typed = self.typed or ""
        if key.isdigit():
            self.typed = (typed + key)[:9]
        elif key == "backspace":
            self.typed = typed[:-1]
        elif key == "escape":
            self.close()
        elif key == "enter":
            self.close()
            return int(typed) if typed else None
        return None

    def render(self) -> Text:
        if self.typed is None:
            return Text(self.text, no_wrap=True, overflow="ellipsis")  # Text: a name with [ is not markup
        text = Text("go to cycle: ", style="bold")
        text.append(self.typed)
        text.append("▏")
        text.append("   Enter jumps · Esc cancels", style="dim")
        text.truncate(self.content_region.width, pad=True)
        text.stylize(self.get_component_rich_style("title-bar--prompt"), 0)
        return text
