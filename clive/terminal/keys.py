"""Key notation: ``":wq<Enter>"``, ``"<C-c>"``, ``"<Up>"`` turned into the bytes a terminal sends."""

from __future__ import annotations

import re

ESC = "\x1b"


class UnknownKey(ValueError):
    """A key name that does not exist; the message names it."""

_FIXED = {
    "enter": "\r",
    "cr": "\r",
    "return": "\r",
    "tab": "\t",
    "s-tab": ESC + "[Z",
    "esc": ESC,
    "bs": "\x7f",
    "backspace": "\x7f",
    "space": " ",
    "lt": "<",
    "gt": ">",
    "bar": "|",
    "bslash": "\\",
    "nl": "\n",
    "insert": ESC + "[2~",
    "ins": ESC + "[2~",
    "del": ESC + "[3~",
    "delete": ESC + "[3~",
    "pageup": ESC + "[5~",
    "pgup": ESC + "[5~",
    "pagedown": ESC + "[6~",
    "pgdn": ESC + "[6~",
    "f1": ESC + "OP",
    "f2": ESC + "OQ",
    "f3": ESC + "OR",
    "f4": ESC + "OS",
    "f5": ESC + "[15~",
    "f6": ESC + "[17~",
    "f7": ESC + "[18~",
    "f8": ESC + "[19~",
    "f9": ESC + "[20~",
    "f10": ESC + "[21~",
    "f11": ESC + "[23~",
    "f12": ESC + "[24~",
}

# Cursor keys send CSI in normal mode and SS3 in application cursor mode (DECCKM).
_CURSOR = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}

_CONTROL_PUNCT = {"@": "\x00", "[": ESC, "\\": "\x1c", "]": "\x1d", "^": "\x1e", "_": "\x1f", "?": "\x7f"}

_TOKEN = re.compile(r"<([A-Za-z0-9][A-Za-z0-9_-]*|[CcMmAa]-.)>")


def _named(name: str, app_cursor: bool) -> str:
    lower = name.lower()
    if lower in _FIXED:
        return _FIXED[lower]
    if lower in _CURSOR:
        return (ESC + "O" if app_cursor else ESC + "[") + _CURSOR[lower]
    if len(name) >= 3 and name[1] == "-":
        mod, key = name[0].lower(), name[2:]
        if mod == "c":
            if len(key) == 1:
                if key.isalpha():
                    return chr(ord(key.lower()) - ord("a") + 1)
                if key in _CONTROL_PUNCT:
                    return _CONTROL_PUNCT[key]
            elif key.lower() == "space":
                return "\x00"
        if mod in ("m", "a"):
            # Meta sends ESC before the key, as xterm does with metaSendsEscape.
            if len(key) == 1:
                return ESC + key
            return ESC + _named(key, app_cursor)
    raise UnknownKey(f"unknown key <{name}>")


def parse_keys(notation: str, *, app_cursor: bool = False) -> str:
    """Translate key notation into the text to write to the terminal.

    Text outside ``<...>`` is sent as it is. A ``<`` that does not open a key name is literal;
    ``<lt>`` always is. An unknown name raises ``UnknownKey`` naming it.
    """
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(notation):
        out.append(notation[pos : match.start()])
        out.append(_named(match.group(1), app_cursor))
        pos = match.end()
    out.append(notation[pos:])
    return "".join(out)
