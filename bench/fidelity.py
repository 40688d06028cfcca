"""The fidelity suite: byte streams captured from real programs (tests/data/fidelity, made by
bench/fidelity_capture.py) replayed into clive's screen and into tmux at the same size, and every
cell compared: its text, and its colours and attributes as ``capture-pane -e`` reports them (fg, bg,
bold, italics, underline, reverse), and the cursor.

tmux stores the DEC special-graphics letters of a line-drawing box (``lqqk``) and marks them with
SO/SI in ``capture-pane -e``; they are compared as the glyphs xterm draws for them (``┌──┐``), which
is what clive's screen holds. Text is compared in NFC (clive keeps combining marks composed).

    python -m bench --only fidelity          # every stream; the test suite replays a quick subset
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyte
from wcwidth import wcwidth

from clive.terminal.fastfeed import FastStream
from clive.terminal.terminal_screen import TerminalScreen

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "fidelity"
_NAME = re.compile(r"(?P<name>.+)\.(?P<cols>\d+)x(?P<rows>\d+)\.bin$")
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
# xterm's glyphs for the DEC special-graphics letters (what a box drawn with ESC ( 0 shows).
# tmux keeps "_" under SO (its table lacks it); xterm draws it blank.
_DEC = dict(zip("_`abcdefghijklmnopqrstuvwxyz{|}~", "\xa0◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·", strict=True))
Cell = tuple[str, tuple[Any, ...]]  # text, (fg, bg, bold, italics, underscore, reverse)


@dataclass(frozen=True, slots=True)
class Stream:
    name: str
    cols: int
    rows: int
    path: Path


@dataclass(frozen=True, slots=True)
class View:
    """A screen reduced to what is compared: each row's cells (column -> text, style), the cursor."""

    rows: tuple[dict[int, Cell], ...]
    cursor: tuple[int, int]

    def text(self, y: int) -> str:
        row = self.rows[y]
        return "".join(row[x][0] for x in sorted(row)).rstrip()


def streams(folder: Path = DATA) -> list[Stream]:
    found = []
    for path in sorted(folder.glob("*.bin")):
        m = _NAME.match(path.name)
        if m:
            found.append(Stream(m["name"], int(m["cols"]), int(m["rows"]), path))
    return found


def clive_view(stream: Stream) -> View:
    """The stream as clive's terminal shows it: the same screen and fast feed Terminal uses."""
    screen = TerminalScreen(stream.cols, stream.rows, history=0)
    feed = FastStream(screen)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    data = stream.path.read_bytes()
    for i in range(0, len(data), 4096):  # in reads of a PTY's size, as the reader gets them
        feed.feed(decoder.decode(data[i : i + 4096]))
    feed.feed(decoder.decode(b"", final=True))
    rows = []
    for y in range(screen.lines):
        line = screen.buffer[y]
        cells: dict[int, Cell] = {}
        for x in range(screen.columns):
            ch = line[x]
            if ch.data == "":
                continue  # the second cell of a wide character
            style = (ch.fg, ch.bg, ch.bold, ch.italics, ch.underscore, ch.reverse)
            cells[x] = (unicodedata.normalize("NFC", ch.data), style)
        rows.append(cells)
    return View(tuple(rows), (screen.cursor.x, screen.cursor.y))


class TmuxReplay:
    """One private tmux server; each stream is cat'ed raw into a session of its own size."""

    def __init__(self) -> None:
        self.socket = f"clive-fidelity-{os.getpid()}"
        self.env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER")},
                    "TERM": "xterm-256color", "LANG": "C.UTF-8"}
        self._tmp = tempfile.TemporaryDirectory(prefix="clive-fidelity-")
        self._n = 0

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {args[0]}: {proc.stderr.strip()}")
        return proc.stdout

    def view(self, stream: Stream) -> View:
        self._n += 1
        name, done = f"s{self._n}", Path(self._tmp.name) / f"{self._n}.done"
        # Raw and without output processing, as the program's own terminal was when it wrote.
        self.tmux("new-session", "-d", "-s", name, "-x", str(stream.cols), "-y", str(stream.rows),
                  f"stty raw -echo; cat '{stream.path}'; touch '{done}'; exec sleep 600")
        try:
            deadline = time.monotonic() + 20
            while not done.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tmux did not finish replaying {stream.name}")
                time.sleep(0.02)
            previous = None
            while True:  # tmux reads the pane asynchronously: wait until what it shows stops changing
                time.sleep(0.05)
                shown = self.tmux("capture-pane", "-p", "-e", "-N", "-t", name), self.tmux(
                    "display", "-p", "-t", name, "#{cursor_x} #{cursor_y}")
                if shown == previous:
                    break
                previous = shown
        finally:
            self.tmux("kill-session", "-t", name)
        text, cursor = previous
        x, y = (int(v) for v in cursor.split())
        return View(_parse_capture(text, stream.rows), (x, y))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True)
        self._tmp.cleanup()


def _parse_capture(text: str, rows: int) -> tuple[dict[int, Cell], ...]:
    """``capture-pane -p -e`` lines as cells: SGR applied the way pyte applies it (so colours are
    named alike on both sides), SO/SI marking DEC special graphics."""
    lines = text.split("\n")[:rows]
    lines += [""] * (rows - len(lines))
    attrs = pyte.Screen(1, 1)
    out = []
    graphics = False  # SO/SI and SGR carry on from one line to the next, as in a terminal
    for line in lines:
        cells: dict[int, Cell] = {}
        x, pos = 0, 0
        while pos < len(line):
            m = _SGR.match(line, pos)
            if m:
                params = [int(p) if p else 0 for p in re.split("[;:]", m[1])] if m[1] else [0]
                attrs.select_graphic_rendition(*params)
                pos = m.end()
                continue
            ch = line[pos]
            pos += 1
            if ch in "\x0e\x0f":
                graphics = ch == "\x0e"
                continue
            if graphics:
                ch = _DEC.get(ch, ch)
            width = wcwidth(ch)
            if width <= 0 and cells:  # a mark joining the cell before it
                last = max(cells)
                cells[last] = (unicodedata.normalize("NFC", cells[last][0] + ch), cells[last][1])
                continue
            a = attrs.cursor.attrs
            cells[x] = (ch, (a.fg, a.bg, a.bold, a.italics, a.underscore, a.reverse))
            x += max(width, 1)
        out.append(cells)
    return tuple(out)


def differences(ours: View, theirs: View, *, styles: bool = True) -> list[str]:
    """Where clive and tmux disagree, one line each (empty: identical)."""
    found = []
    for y, (a, b) in enumerate(zip(ours.rows, theirs.rows, strict=True)):
        ta, tb = ours.text(y), theirs.text(y)
        if ta != tb:
            found.append(f"row {y}: clive {ta!r} / tmux {tb!r}")
            continue
        if styles:
            # Only where capture-pane reports a cell: it leaves out blanks erased with a background
            # colour (ESC [ K after ESC [ 44 m), which tmux shows coloured but does not print.
            for x in sorted(set(a) & set(b)):
                (ca, sa), (cb, sb) = a[x], b[x]
                if ca == cb == " ":
                    sa, sb = sa[1:2] + sa[5:], sb[1:2] + sb[5:]  # a blank shows only its background
                if sa != sb:
                    found.append(f"row {y} col {x} {ca!r}: clive {sa} / tmux {sb}")
                    break
    if ours.cursor != theirs.cursor:
        found.append(f"cursor: clive {ours.cursor} / tmux {theirs.cursor}")
    return found


def compare_all(selected: list[Stream]) -> dict[str, list[str]]:
    replay = TmuxReplay()
    try:
        return {s.name: differences(clive_view(s), replay.view(s)) for s in selected}
    finally:
        replay.close()


def run(quick: bool) -> list[dict[str, Any]]:
    if shutil.which("tmux") is None:
        return [{"figure": "fidelity: not measured", "clive": "skipped: tmux is not installed", "pass": None}]
    found = compare_all(streams())
    same = [name for name, diffs in found.items() if not diffs]
    for name, diffs in found.items():
        print(f"fidelity {name}: {'identical' if not diffs else '; '.join(diffs[:3])}", file=sys.stderr, flush=True)
    return [{
        "figure": "fidelity: streams of real programs identical to tmux (text, colours, attributes, cursor)",
        "clive": len(same), "baseline": len(found), "unit": "streams", "ratio": len(same) / max(len(found), 1),
        "target": "all", "pass": len(same) == len(found),
    }]


if __name__ == "__main__":
    for name, diffs in compare_all(streams()).items():
        print(f"{name}: {'identical' if not diffs else ''}")
        for d in diffs[:6]:
            print("   ", d)


def probe(data: bytes, cols: int = 80, rows: int = 24, replay: TmuxReplay | None = None) -> list[str]:
    """One stream's differences, for trying a sequence by hand: ``probe(b"x" * 80 + b"\\x1b[AY")``
    (on ``replay``'s tmux server, else on one of its own)."""
    with tempfile.NamedTemporaryFile(suffix=f".{cols}x{rows}.bin", delete=False) as f:
        f.write(data)
    stream = Stream("probe", cols, rows, Path(f.name))
    own = replay is None
    replay = replay or TmuxReplay()
    try:
        return differences(clive_view(stream), replay.view(stream))
    finally:
        if own:
            replay.close()
        os.unlink(f.name)
