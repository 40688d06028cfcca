"""Turn raw terminal output into the lines a person reads: control sequences gone, CR and BS applied."""

from __future__ import annotations

import re

# OSC/DCS/SOS/PM/APC strings end at BEL or ST; CSI ends at a final byte; other ESC pairs are two chars.
_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b\[([0-?]*)[ -/]*([@-~])"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_TOKENS = re.compile(r"(\x1b\[[0-?]*[ -/]*[@-~])|([\r\n\b\t])|([\x00-\x08\x0b-\x1f\x7f])")


def render_output(text: str, tab: int = 8) -> str:
    """Apply carriage returns, backspaces, tabs and erase-line; drop every other control sequence."""
    lines: list[str] = []
    line: list[str] = []
    col = 0

    def put(chunk: str) -> None:
        nonlocal col
        end = col + len(chunk)
        if col > len(line):
            line.extend(" " * (col - len(line)))
        line[col:end] = list(chunk)
        col = end

    # First drop the sequences that are not about the current line; keep CSI K and CSI G.
    def keep_line_csi(m: re.Match[str]) -> str:
        if m.group(2) in ("K", "G") and m.group(0).startswith("\x1b["):
            return m.group(0)
        return ""

    text = _ESCAPES.sub(keep_line_csi, text)
    pos = 0
    for m in _TOKENS.finditer(text):
        if m.start() > pos:
            put(text[pos : m.start()])
        pos = m.end()
        csi, ctrl = m.group(1), m.group(2)
        if csi:
            params, final = csi[2:-1], csi[-1]
            if final == "K":
                if params in ("", "0"):
                    del line[col:]
                elif params == "2":
                    line.clear()
            elif final == "G":
                col = max(int(params or "1") - 1, 0) if params.isdigit() or not params else col
        elif ctrl == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        elif ctrl == "\r":
            col = 0
        elif ctrl == "\b":
            col = max(col - 1, 0)
        elif ctrl == "\t":
            put(" " * (tab - col % tab))
    if pos < len(text):
        put(text[pos:])
    last = "".join(line).rstrip()
    if last:
        lines.append(last)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)
