"""The shell's OSC 133 markers in a PTY's output (see ``shell``): where each command's output starts and
ends, its exit code, the prompt's number, and the output captured in between. Only markers that carry
the shell's nonce count; a forged one stays part of the output."""

from __future__ import annotations

import collections
import re

from clive.terminal import shell

# Captured command output is bounded; past this the oldest bytes are dropped and the result says so.
CAPTURE_LIMIT = 8 * 1024 * 1024
# The typed command as echoed, for the echo check: escape sequences and white space removed.
ECHO_NOISE = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x20\x7f]")
# How every shell.MARKER starts: a chunk without it needs no regex search (nor one without its "]":
# searching for that one byte is much faster in text full of ESC).
_MARKER_START = b"\x1b]133;"


class Tail:
    """The last ``limit`` bytes of a stream, kept as its chunks, so that appending costs no copy."""

    __slots__ = ("chunks", "size", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.chunks: collections.deque[bytes | memoryview] = collections.deque()
        self.size = 0
        self.dropped = 0
        self.limit = limit

    def append(self, chunk: bytes | memoryview) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        while self.size - len(self.chunks[0]) >= self.limit:
            first = self.chunks.popleft()
            self.size -= len(first)
            self.dropped += len(first)

    def value(self) -> tuple[bytes, int]:
        """The bytes kept, and how many were dropped before them."""
        data = b"".join(self.chunks)
        excess = max(0, len(data) - self.limit)
        return data[excess:], self.dropped + excess


class ShellMarkers:
    """What the markers read so far say, fed every chunk of output in order (``scan``). Not thread-safe:
    the Terminal calls it under its lock."""

    def __init__(self, nonce: bytes | None) -> None:
        self.nonce = nonce  # the terminal's own shell's
        # Every integrated shell's nonce (the terminal's own, then nested ones: ssh, su), with the
        # number of its newest prompt: each shell counts its prompts from 1.
        self.shells: dict[bytes, int] = {nonce: 0} if nonce else {}
        self.current = nonce  # the shell whose prompt came last
        self.tail = b""  # the end of the last chunk, held back: it may start a marker
        self.capture: Tail | None = None  # the running command's output, from its C marker
        self.last_capture = Tail(CAPTURE_LIMIT)  # the last command's, joined only when asked for
        self.output_markers = 0  # C markers seen: a command's output began
        self.prompt_no = 0  # how many new prompts the shells have drawn
        self.enter_prompt_no = 0  # the prompt number when Enter was last sent
        self.exit_code: int | None = None  # the newest command's
        self.ended_at = 0.0  # when its D marker was read (time.monotonic), 0 before any
        self.at_prompt = False
        self.echo_expected: bytes | None = None  # the start of the line run() typed, as echoed
        self.echo_lost = False

    def command_typed(self, command: str) -> tuple[int, int]:
        """Start capturing for a command about to be typed; (prompt number, C markers) before it."""
        self.capture = Tail(CAPTURE_LIMIT)
        self.echo_expected = ECHO_NOISE.sub(b"", command.encode())[:24]
        return self.prompt_no, self.output_markers

    def add_shell(self, nonce: bytes) -> None:
        """Count the markers of a nested shell (one clive set up inside this terminal) from now on."""
        self.shells.setdefault(nonce, 0)

    @property
    def depth(self) -> int:
        """0 at the terminal's own shell, 1 in a shell started from it, and so on."""
        return list(self.shells).index(self.current) if self.current in self.shells else 0

    def line_sent(self) -> None:
        """Enter (or Ctrl-C, Ctrl-D) was sent: the prompt is gone until the next one is drawn."""
        self.at_prompt = False
        self.enter_prompt_no = self.prompt_no

    def scan(self, data: bytes, now: float) -> None:
        """Take the next chunk of output: act on each marker with the nonce, capture the rest."""
        buf = self.tail + data if self.tail else data
        # Hold back a trailing partial marker so one split across reads is still seen whole. A marker holds
        # no ESC but its first: only a last ESC that may start one (ESC ]) is held, not an SGR's, which
        # would cost a copy of the next chunk (a window of a flood: a megabyte).
        cut = len(buf)
        esc = buf.rfind(b"\x1b", max(0, len(buf) - shell.MARKER_MAX))
        if esc != -1 and buf[esc + 1 : esc + 2] in (b"", b"]") and b"\x07" not in buf[esc:]:
            cut = esc
        self.tail = buf[cut:]
        region = memoryview(buf)[:cut]  # a flood is large: no copies
        pos = 0
        first = buf.find(_MARKER_START, 0, cut) if b"]" in buf else -1
        if first != -1:
            for m in shell.MARKER.finditer(buf, first, cut):  # not from 0: a window of a flood is long
                if m.group(4) not in self.shells:
                    continue  # a forged marker: it stays part of the output
                self._keep(region[pos : m.start()])
                pos = m.end()
                self.on_marker(m.group(1).decode(), m.group(2), m.group(3), now, m.group(4))
        self._keep(region[pos:])

    def _keep(self, chunk: bytes | memoryview) -> None:
        if self.capture is not None and chunk:
            self.capture.append(chunk)

    def on_marker(
        self, kind: str, code: bytes | None, prompt_no: bytes | None, now: float, nonce: bytes | None = None
    ) -> None:
        nonce = self.nonce if nonce is None else nonce
        if kind == "C":
            self.output_markers += 1
            self._check_echo()
            self.capture = Tail(CAPTURE_LIMIT)
        elif kind == "D":
            last = self.shells.get(nonce, 0)
            number = int(prompt_no) if prompt_no is not None else last + 1
            if number <= last:
                return  # the same prompt drawn again (after SIGWINCH): no command ended
            self.shells[nonce] = number
            self.current = nonce
            self.prompt_no += 1
            self.exit_code = int(code) if code is not None else None
            self.ended_at = now
            if self.capture is not None:
                self.last_capture = self.capture
            self.capture = None
        elif kind == "B" and self.prompt_no > self.enter_prompt_no:
            self.at_prompt = True

    def _check_echo(self) -> None:
        # Readline does not echo what is typed when the last command left echo off (stty -echo); the
        # modes cannot show it at the prompt, but the line run() typed is missing before the C marker.
        expected, self.echo_expected = self.echo_expected, None
        if expected and self.capture is not None:
            self.echo_lost = expected not in ECHO_NOISE.sub(b"", self.capture.value()[0])
