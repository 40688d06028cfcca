"""Shells started inside the terminal (ssh, su, sudo -i, a container's shell), as ``Terminal`` drives
them: entering one through ``run()``, giving it clive's prompt markers with a nonce of its own, and
running commands in one that has none by a named screen rule. Mixed into ``Terminal``: these methods
use its lock, markers, screen and keyboard."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from clive.terminal import nesting, shell, termstate
from clive.terminal.errors import TerminalError, TerminalTimeout
from clive.terminal.plaintext import render_output
from clive.terminal.result import CommandResult

if TYPE_CHECKING:
    import threading

    from clive.terminal.markers import ShellMarkers
    from clive.terminal.screen import Snapshot
    from clive.terminal.terminal_screen import TerminalScreen

# A nested shell's prompt: output quiet this long, a prompt's end before the cursor.
NEST_QUIET = 0.15
NEST_SETUP_TIMEOUT = 3.0  # for the integration line to bring a marked prompt (else: no integration)
NEST_QUESTION = 1.0  # a launcher asking something else (ssh's host key) this long: say so
# Without integration a nested shell's command ends, by the screen, when output has been quiet this
# long and a prompt's end is before the cursor.
SCREEN_RULE = "screen: a prompt's end before the cursor after 0.3 s of quiet"
SCREEN_QUIET = 0.3
_ECHOED_END = shell.NESTED_SETUP_END.replace(" ", "")  # as the screen shows it, over wrapped rows


class NestedShells:
    """The part of ``Terminal`` that knows the shells started inside its own."""

    if TYPE_CHECKING:  # what Terminal provides
        _cond: threading.Condition
        _markers: ShellMarkers
        _screen: TerminalScreen
        _nested: list[nesting.NestedShell]
        _last_output_time: float
        _output_seq: int
        _eof: bool
        listeners: list

        def _send(self, text: str) -> None: ...
        def _wait_for(self, done, timeout: float, what: str) -> None: ...  # noqa: ANN001
        def _finished(self, command: str, started: float, c0: int) -> CommandResult: ...
        def _gone_message(self) -> str: ...
        def state(self) -> termstate.TerminalState: ...
        def snapshot(self, *, with_style: bool = False) -> Snapshot: ...
        def wait_prompt(self, timeout: float = 30.0) -> None: ...
        def echo_off_canonical(self) -> bool: ...
        def wait_idle(self, quiet_ms: int = 300, timeout: float = 10.0) -> Snapshot: ...

    @property
    def nested(self) -> nesting.NestedShell | None:
        """The shell started inside this one that has the terminal now (ssh, su, ...), if any."""
        with self._cond:
            return self._nested_now()

    def _nested_now(self) -> nesting.NestedShell | None:
        markers = self._markers
        while self._nested:
            top = self._nested[-1]
            if top.nonce is None:
                gone = markers.prompt_no > top.since  # an outer shell drew a prompt: it has exited
            else:
                gone = markers.shells.get(markers.current or b"") is not None and markers.depth < top.level
            if not gone:
                return top
            self._nested.pop()
        return None

    def _enter(self, command: str, launcher: str, timeout: float) -> CommandResult:
        """Type a command that starts a shell inside this one, wait for that shell's prompt, and give
        it clive's prompt markers; if the launcher ends instead (a refused login), its result."""
        markers = self._markers
        with self._cond:
            p0, c0 = markers.command_typed(command)
        started = time.monotonic()
        deadline = started + timeout
        self._send(command + "\r")
        asking_since: float | None = None
        outer = self.nested
        remote = outer is not None and outer.remote  # from a remote shell the kernel sees only the client
        while True:
            with self._cond:
                if markers.prompt_no > p0 and markers.at_prompt:
                    return self._finished(command, started, c0)
                quiet = time.monotonic() - self._last_output_time
                before_cursor = self._screen.text_lines()[self._screen.cursor.y][: self._screen.cursor.x]
            state = self.state()
            now = time.monotonic()
            if state.activity == termstate.Activity.WAITING_SECRET:
                self._send("\x03")
                try:
                    self.wait_prompt(timeout=5.0)
                except TerminalTimeout:
                    pass
                raise TerminalError(f"{launcher} asked for a password ({state.question!r}); clive does not type "
                                    "secrets: set up key-based login (or sudo without a password) and run it again")
            waiting = remote or state.activity in termstate.WAITING_FOR_INPUT
            if waiting and quiet >= NEST_QUIET and nesting.PROMPT_END.search(before_cursor):
                break
            asked = waiting and quiet >= NEST_QUIET and before_cursor.rstrip().endswith(("?", ":", "]", ")"))
            asking_since = (asking_since or now) if asked else None
            if asking_since is not None and now - asking_since >= NEST_QUESTION:
                raise TerminalError(f"{launcher} is asking {state.question!r}: answer it with keys; clive gives the "
                                    "shell its markers when run() next finds its prompt")
            if now >= deadline:
                raise TerminalTimeout(f"timed out after {timeout:g}s waiting for the shell of: {command} "
                                      f"({state.describe()})", self.snapshot())
            with self._cond:
                self._cond.wait(min(0.05, deadline - now))
        self._adopt(command, launcher, p0, max(deadline - time.monotonic(), 0.001))
        nested = self.nested
        with self._cond:
            raw, dropped = markers.capture.value() if markers.capture is not None else (b"", 0)
        output = render_output(raw.decode("utf-8", errors="replace")).partition("\n")[2]
        return CommandResult(command, -1, output, time.monotonic() - started, dropped > 0, entered=launcher,
                             completion="marker" if nested is not None and nested.nonce else SCREEN_RULE)

    def _adopt(self, command: str, launcher: str, since: int, timeout: float) -> None:
        """Give the shell at the cursor clive's prompt markers, with a nonce of its own."""
        markers = self._markers
        nonce = shell.new_nonce()
        for listener in self.listeners:
            add_secret = getattr(listener, "add_secret", None)
            if add_secret is not None:
                add_secret(nonce)  # before it is typed: the recording never holds it
        with self._cond:
            markers.add_shell(nonce.encode())
            level = list(markers.shells).index(nonce.encode())
            p0 = markers.prompt_no
            # The line as echoed takes this many rows from the cursor on; the shell erases them.
            start, cols = self._screen.cursor.x, self._screen.columns
        rows = -(-(start + len(shell.nested_setup(nonce))) // cols)
        with self._cond:
            seq = self._output_seq
        self._send(shell.nested_setup(nonce, rows) + "\r")
        remote = launcher in nesting.REMOTE or any(n.remote for n in self._nested)
        deadline = time.monotonic() + min(timeout, NEST_SETUP_TIMEOUT)
        with self._cond:
            while not (markers.prompt_no > p0 and markers.at_prompt and markers.current == nonce.encode()):
                now = time.monotonic()
                quiet = now - self._last_output_time
                before_cursor = self._screen.text_lines()[self._screen.cursor.y][: self._screen.cursor.x]
                # Not bash or zsh (dash, busybox, fish): the line echoed whole (bash and zsh erase it)
                # and a plain prompt after it, or nothing comes; commands there end by the screen rule.
                plain = (self._output_seq != seq and quiet >= SCREEN_QUIET and nesting.PROMPT_END.search(before_cursor)
                         and _ECHOED_END in "".join(self._screen.text_lines()).replace(" ", ""))
                if plain or now >= deadline or self._eof:
                    del markers.shells[nonce.encode()]
                    self._nested.append(nesting.NestedShell(launcher, command, remote, None, level, markers.prompt_no))
                    return
                self._cond.wait(min(0.05, deadline - now))
            self._nested.append(nesting.NestedShell(launcher, command, remote, nonce.encode(), level, since))

    def _run_by_screen(self, command: str, timeout: float) -> CommandResult:
        """run() in a nested shell without markers: the end is seen on the screen (SCREEN_RULE), the
        exit code is not known (-1)."""
        markers = self._markers
        with self._cond:
            markers.command_typed(command)
            seq = self._output_seq
        started = time.monotonic()
        self._send(command + "\r")
        deadline = started + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                line = self._screen.text_lines()[self._screen.cursor.y][: self._screen.cursor.x]
                quiet = now - self._last_output_time
                if self._output_seq != seq and quiet >= SCREEN_QUIET and nesting.PROMPT_END.search(line):
                    break
                if self._eof:
                    raise TerminalError(f"{self._gone_message()} while waiting for: {command}")
                if now >= deadline:
                    raise TerminalTimeout(f"timed out after {timeout:g}s waiting for: {command} ({SCREEN_RULE})",
                                          self._screen.snapshot())
                self._cond.wait(max(0.01, min(SCREEN_QUIET - quiet if quiet < SCREEN_QUIET else 0.05,
                                              deadline - now)))
            raw, dropped = markers.capture.value() if markers.capture is not None else (b"", 0)
            markers.capture = None
        lines = render_output(raw.decode("utf-8", errors="replace")).split("\n")
        output = "\n".join(lines[1:-1])  # without the echoed command and the next prompt
        return CommandResult(command, -1, output, time.monotonic() - started, dropped > 0, completion=SCREEN_RULE)

    def asks_for_secret(self) -> bool:
        """Whether the program in front waits for a password: echo off here (the kernel says so), or a
        password prompt on the far side of ssh or a container (the screen says so)."""
        return self.echo_off_canonical() or self._remote_secret_asked()

    def _remote_secret_asked(self) -> bool:
        """Whether the other side of a remote shell (ssh, docker) shows a password prompt: there the
        kernel here sees only raw mode, so the screen decides."""
        with self._cond:
            nested = self._nested_now()
            if nested is None or not nested.remote or self._markers.at_prompt:
                return False
        return self.state().activity == termstate.Activity.WAITING_SECRET

    def _interrupt_nested(self, nested: nesting.NestedShell, grace: float) -> None:
        """interrupt() in a remote shell or one without markers: signals here would reach the client
        (ssh, docker), ending the whole session, so only Ctrl-C goes over; the prompt must come back."""
        self._send("\x03")
        if nested.nonce is None:
            self.wait_idle(int(SCREEN_QUIET * 1000), timeout=grace * 5)
            return
        try:
            self.wait_prompt(timeout=grace * 5)
        except TerminalTimeout:
            raise TerminalError(f"interrupt: Ctrl-C did not bring the prompt back in the shell {nested.launcher} "
                                f"started; clive sends no signal to {nested.launcher} (it would end that session)"
                                ) from None

    def _wait_ready_remote(self, deadline: float, timeout: float) -> termstate.TerminalState:
        """wait_ready() in a remote shell: the kernel cannot see the far side, so its turn is read from
        the screen (SCREEN_QUIET of quiet), or the prompt is back."""
        while True:
            state = self.state()
            if state.activity in (termstate.Activity.AT_PROMPT, termstate.Activity.EXITED):
                return state
            with self._cond:
                quiet = time.monotonic() - self._last_output_time
            if quiet >= SCREEN_QUIET:
                return state
            if time.monotonic() >= deadline:
                raise TerminalTimeout(f"timed out after {timeout:g}s waiting for output to pause ({SCREEN_RULE})",
                                      self.snapshot())
            with self._cond:
                self._cond.wait(min(SCREEN_QUIET - quiet, max(deadline - time.monotonic(), 0.001)))
