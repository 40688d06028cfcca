"""The command guard: commands clive refuses to type, whoever asks (a model, a playbook, a screen)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_DENY: tuple[tuple[str, str], ...] = (
    (r"\brm\s+(?:-[^\s]*\s+)*-[^\s]*[rR][^\s]*\s+(?:-[^\s]+\s+)*(?:/|/\*|~/?|\$HOME/?)(?:\s|;|&|\||$)",
     "recursive delete of / or the home folder"),
    (r"\bgit\s+push\b[^;&|]*(?:--force\b|--force-with-lease\b|\s-f\b|\s\+\S)", "force push"),
    (r"\bmkfs(?:\.\w+)?\b", "making a file system"),
    (r":\s*\(\s*\)\s*\{", "fork bomb"),
    (r"\b(?:curl|wget)\b[^|;&]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b", "piping a download into a shell"),
    (r"\bdd\b[^;&|]*\bof=/dev/(?:sd|hd|vd|nvme|xvd|mmcblk)", "writing to a disk device"),
    (r"(?:^|[;&|]\s*)(?:sudo\s+)?(?:shutdown|reboot|halt|poweroff)\b", "shutting the machine down"),
    (r">\s*/dev/(?:sd|hd|vd|nvme)", "writing to a disk device"),
)


class GuardError(ValueError):
    """A deny pattern that is not a valid regex."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command was refused."""

    pattern: str
    reason: str

    def message(self, command: str) -> str:
        return f"refused by the command guard ({self.reason}): {command}"


class CommandGuard:
    """Checks commands against deny patterns (defaults plus the user's own)."""

    def __init__(self, extra: Iterable[str] = (), *, defaults: bool = True) -> None:
        rules = list(DEFAULT_DENY) if defaults else []
        for pattern in extra:
            rules.append((pattern, f"matches deny pattern {pattern!r}"))
        self._rules: list[tuple[re.Pattern[str], Refusal]] = []
        for pattern, reason in rules:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise GuardError(f"bad deny pattern {pattern!r}: {exc}") from None
            self._rules.append((compiled, Refusal(pattern, reason)))

    def check(self, command: str) -> Refusal | None:
        """The refusal for ``command``, or None when it may run."""
        for line in command.replace("\r", "\n").split("\n"):
            for compiled, refusal in self._rules:
                if compiled.search(line):
                    return refusal
        return None
