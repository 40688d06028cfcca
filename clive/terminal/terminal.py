"""A real pseudo-terminal driven through pexpect, rendered by a pyte screen, with exact command completion."""

from __future__ import annotations

import array
import codecs
import dataclasses
import os
import re
import select
import shutil
import signal
import termios
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import pexpect

from clive.safety import procs
from clive.safety.limits import Limits, Watchdog
from clive.safety.sandbox import Sandbox, SandboxError
from clive.terminal import nesting, shell, termstate
from clive.terminal.errors import TerminalError, TerminalTimeout
from clive.terminal.fastfeed import CheckedText, FastStream
from clive.terminal.keys import parse_keys
from clive.terminal.markers import ShellMarkers
from clive.terminal.nested import NestedShells
from clive.terminal.plaintext import render_output
from clive.terminal.reading import (
    CHECK_PARTS,
    FLOOD_BYTES,
    FLOOD_PAUSE_MS,
    FLOOD_WINDOW,
    FLOOD_WINDOW_BYTES,
    READ_SIZE,
    FloodWait,
    queued,
    read_burst,
)
from clive.terminal.repairs import Repairs
from clive.terminal.result import CommandResult
from clive.terminal.screen import ControlStrings, Snapshot
from clive.terminal.spawn import clean_environment, program_argv, start
from clive.terminal.terminal_screen import TerminalScreen

# wait_ready's re-checks after output (seconds): see wait_ready.
_READY_FIRST_CHECK = 0.0002
_READY_LAST_QUICK_CHECK = 0.005
_READY_SLOW_CHECK = 0.05
# run() when the prompt is not back: a foreground program still waiting for input after this long
# holds the terminal (refused); until then, and while it works, the prompt is waited for.
PROMPT_GRACE = 0.1
PROMPT_POLL = 0.01  # seconds between looks at the foreground meanwhile (output wakes it sooner)
# parser_errors and listener_errors keep this many messages; a program could otherwise grow them forever.
ERRORS_KEPT = 100


class TerminalListener(Protocol):
    """Receives every byte the terminal shows and every byte sent to it (the recorder is one)."""

    def on_output(self, data: bytes) -> None: ...

    def on_input(self, data: bytes, secret: bool) -> None: ...


class Terminal(NestedShells, Repairs):
    """One program (by default a shell with integration) in a real PTY, read into a screen model.

    Everything it starts runs under ``limits`` (default: ``Limits()``; see ``enforcement`` for what
    this machine really enforces) and, with ``sandbox``, under bubblewrap."""

    # True from the reader's select() to the end of _show: bytes may be off the PTY but not yet on
    # the screen, so wait_ready must not yet trust the screen.
    _reading = False
    _flooding = False  # the reader's last read was a flood's window

    def __init__(
        self,
        command: str | Sequence[str] | None = None,
        *,
        cols: int = 80,
        rows: int = 24,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        user_rc: bool = False,
        history: int = 5000,
        startup_timeout: float = 10.0,
        listeners: Sequence[TerminalListener] = (),
        limits: Limits | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        _check_size(cols, rows)
        workdir = Path(cwd) if cwd is not None else Path.cwd()
        if not workdir.is_dir():
            raise TerminalError(f"working directory does not exist: {workdir}")
        argv = program_argv(command, env)
        program = argv[0]

        self._launch: shell.ShellLaunch | None = None
        if shell.shell_kind(program) and len(argv) == 1:
            self._launch = shell.launch(program, user_rc=user_rc)
            argv = list(self._launch.argv)
        self.integrated = self._launch is not None
        self._markers = ShellMarkers(self._launch.nonce.encode() if self._launch else None)
        self._nested: list[nesting.NestedShell] = []  # shells started inside this one, innermost last
        self.listeners: list[TerminalListener] = list(listeners)
        if self._launch:
            # The nonce must not reach a recording, or a program that reads it could forge markers.
            for listener in self.listeners:
                add_secret = getattr(listener, "add_secret", None)
                if add_secret is not None:
                    add_secret(self._launch.nonce)
        self.sandbox = sandbox
        if sandbox is not None:
            readable = self._launch.cleanup if self._launch else ()
            try:
                argv = sandbox.argv(argv, cwd=workdir, readable=readable, own_session=self.integrated)
            except SandboxError as exc:
                self._cleanup_files()
                raise TerminalError(str(exc)) from None

        self._cond = threading.Condition()
        self._screen = TerminalScreen(cols, rows, history=history, reply=self._reply)
        self._stream = FastStream(self._screen)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._strings = ControlStrings()
        # Held by the reader for each chunk, and by run() when it feeds a repair to the screen, so
        # the listeners and the screen see output in one order.
        self._feed_lock = threading.Lock()
        self.parser_errors: list[str] = []
        self.listener_errors: list[str] = []
        self.repairs: list[str] = []  # what clive restored after a program left the terminal broken
        self._tty_baseline: list | None = None  # the modes at the first prompt
        self._replied = False  # answered a query (cursor position, attributes) since the last command
        self._last_output_time = time.monotonic()
        self._output_seq = 0
        self._eof = False
        self._closed = False

        child_env = clean_environment(env)
        if self._launch:
            child_env.update(self._launch.env)
        if sandbox is not None:
            child_env["TMPDIR"] = "/tmp"  # the sandbox's own tmpfs; the host's may not be writable
        try:
            started = start(
                argv, cwd=workdir, env=child_env, cols=cols, rows=rows, limits=limits,
                detach=sandbox is not None and self.integrated,
            )
        except TerminalError:
            self._cleanup_files()
            raise
        self._proc, self._cgroup, self.enforcement = started.proc, started.cgroup, started.enforcement
        # The process pexpect started leads a session: the shell's, or in a sandbox bubblewrap's
        # (the shell inside leads another). ``pid`` is the shell's, known in a sandbox once the
        # shell shows its prompt.
        self._session: int = self._proc.pid
        self.pid: int = self._proc.pid
        self._fd: int = self._proc.child_fd
        self._wake_r, self._wake_w = os.pipe()
        self._reader = threading.Thread(target=self._read_loop, name="clive-pty-reader", daemon=True)
        self._reader.start()
        self.started = time.monotonic()
        if self.integrated:
            try:
                self.wait_prompt(timeout=startup_timeout)
            except TerminalError:
                self.close()
                raise
            self._cleanup_files()  # the shell has read its rc file; the nonce lives only in memory now
            try:
                if sandbox is not None:
                    # At its prompt the shell owns the terminal: its process group is the shell.
                    self.pid = os.tcgetpgrp(self._fd)
                self._tty_baseline = termios.tcgetattr(self._fd)
            except (OSError, termios.error):
                pass

    # ---- reading -------------------------------------------------------------------------

    def _read_loop(self) -> None:
        fd = self._fd
        pending = select.poll()
        pending.register(fd, select.POLLIN)
        while True:
            try:
                ready, _, _ = select.select([fd, self._wake_r], [], [])
            except (OSError, ValueError):
                break
            if self._wake_r in ready:
                break
            self._reading = True
            if self._read(fd, pending):
                break
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read(self, fd: int, pending: select.poll) -> bool:
        """Read what the PTY holds and show it; whether the PTY reached its end.

        A PTY hands over at most about 4 KB a read, so output is read on while more is waiting and
        shown at once: once per read would cost far more. Past _FLOOD_BYTES it is a flood, read in
        windows (_read_flood)."""
        parts: list[bytes] = []
        # Right after a flood's window the kernel has little: the program was waiting for the reader.
        eof = read_burst(fd, pending, parts, FLOOD_PAUSE_MS if self._flooding else 0)
        self._flooding = False
        if not eof and sum(map(len, parts)) >= FLOOD_BYTES:
            eof = self._read_flood(fd, pending, parts)
            self._flooding = not eof
        elif parts:
            self._ingest(b"".join(parts))
        return eof

    def _read_flood(self, fd: int, pending: select.poll, parts: list[bytes]) -> bool:
        """Read a flood on and show it as one window; whether the PTY reached its end.

        The reader waits up to a millisecond for the program's next write and shows the window when
        the program pauses, or after FLOOD_WINDOW (seconds or bytes): the screen is that much behind,
        and in return FastStream cuts rows only for what reaches the screen (the history gets whole
        lines, mostly pushed out again by the next window), and the reads are not held up by the
        screen. The kernel takes tens of microseconds to ready each read; meanwhile the reader
        decodes, checks and measures what it has (CheckedText), so that showing the window costs
        little: about 1 ms a megabyte."""
        total = sum(map(len, parts))
        eof = False
        with self._feed_lock:  # the decoder and the filter see the window now
            checked = CheckedText(self._strings, self._screen.columns)
            done = 0  # parts decoded
            started = time.monotonic()
            count = array.array("i", [0])
            waiting = FloodWait()
            while total < FLOOD_WINDOW_BYTES and time.monotonic() - started < FLOOD_WINDOW:
                if not queued(fd, count, pending):
                    if done < len(parts):
                        step = min(len(parts), done + CHECK_PARTS)
                        checked.add(self._decoder.decode(b"".join(parts[done:step])))
                        done = step
                        checked.check()
                        continue
                    if not waiting.more_soon(fd, pending, FLOOD_PAUSE_MS):
                        break
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    eof = True
                    break
                parts.append(data)
                total += len(data)
            checked.add(self._decoder.decode(b"".join(parts[done:])))
            self._show(b"".join(parts), checked.text(), checked, from_pty=True)
        return eof

    def _ingest(self, data: bytes, *, from_pty: bool = True) -> None:
        with self._feed_lock:
            self._show(data, self._strings.feed(self._decoder.decode(data)), None, from_pty=from_pty)

    def _show(self, data: bytes, text: str, checked: CheckedText | None, *, from_pty: bool) -> None:
        # Nothing here may raise: an exception would end the reader thread and freeze the terminal.
        for listener in self.listeners:
            try:
                listener.on_output(data)
            except Exception as exc:  # noqa: BLE001 - a listener's bug must not kill the reader
                _note(self.listener_errors, exc)
        now = time.monotonic()
        with self._cond:
            try:
                if self.integrated and from_pty:
                    self._markers.scan(data, now)
                if checked is not None and isinstance(self._stream, FastStream):
                    self._stream.feed(text, checked)
                else:
                    self._stream.feed(text)
            except Exception as exc:  # noqa: BLE001 - a parser bug must not kill the reader
                _note(self.parser_errors, exc)
                self._stream = type(self._stream)(self._screen)
            self._last_output_time = now
            self._output_seq += 1
            if from_pty:
                self._reading = False
            self._cond.notify_all()

    def _reply(self, data: str) -> None:
        try:
            os.write(self._fd, data.encode())
        except OSError:
            pass
        self._replied = True

    # ---- writing -------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        if self._closed or self._eof:
            raise TerminalError(self._gone_message())
        data = text.encode("utf-8")
        secret = self.asks_for_secret()
        with self._cond:
            if any(c in text for c in "\r\n\x03\x04"):
                self._markers.line_sent()
        for listener in self.listeners:
            listener.on_input(data, secret)
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                select.select([], [self._fd], [], 1.0)
                continue
            except OSError as exc:
                raise TerminalError(f"cannot write to the terminal: {exc}") from None
            view = view[written:]

    def type(self, text: str) -> None:
        """Send text exactly as given (no key notation)."""
        self._send(text)

    def press(self, keys: str) -> None:
        """Send keys in key notation, e.g. ``":wq<Enter>"`` or ``"<C-c>"``."""
        with self._cond:
            app_cursor = self._screen.app_cursor_keys
        self._send(parse_keys(keys, app_cursor=app_cursor))

    def echo_off_canonical(self) -> bool:
        """True while a program reads a line with echo off: a password prompt."""
        try:
            lflag = termios.tcgetattr(self._fd)[3]
        except (termios.error, OSError):
            return False
        return not (lflag & termios.ECHO) and bool(lflag & termios.ICANON)

    # ---- commands ------------------------------------------------------------------------

    def run(self, command: str, timeout: float = 600.0) -> CommandResult:
        """Type a command at the prompt and return the moment the shell reports its exit code."""
        if not self.integrated:
            raise TerminalError("run() needs a shell with integration (bash or zsh)")
        if "\n" in command or "\r" in command:
            raise TerminalError("run() takes one line; join commands with ';' or '&&'")
        started = time.monotonic()
        nested = self.nested
        if nested is not None and nested.nonce is None:
            return self._run_by_screen(command, timeout)
        self._until_prompt(command, timeout)
        self._repair()
        remaining = max(timeout - (time.monotonic() - started), 0.001)
        launcher = nesting.nested_shell(command)
        if launcher is not None:
            return self._enter(command, launcher, remaining)
        return self._run_line(command, remaining)

    def _finished(self, command: str, started: float, c0: int) -> CommandResult:
        """The result of the command whose end the shell's marker just said (call under the lock)."""
        markers = self._markers
        raw, dropped = markers.last_capture.value()
        saw_output_marker = markers.output_markers > c0
        code = markers.exit_code
        duration = markers.ended_at - started
        output = render_output(raw.decode("utf-8", errors="replace"))
        if not saw_output_marker:
            # No C marker (an empty line or a syntax error): the capture starts with the echoed line.
            output = output.partition("\n")[2]
        return CommandResult(command, code if code is not None else -1, output, duration, dropped > 0)

    def _until_prompt(self, command: str, timeout: float) -> None:
        """Before run(): wait for a prompt that is coming (a program is ending or still working);
        refuse, naming the program, once the foreground waits for input instead of ending."""
        markers = self._markers
        deadline = time.monotonic() + timeout
        waiting_since: float | None = None
        while True:
            with self._cond:
                if markers.at_prompt:
                    return
                if self._eof or self._closed:
                    raise TerminalError(f"{self._gone_message()} before running: {command}")
            state = self.state()
            now = time.monotonic()
            # Keys that end a program (q, :wq, .quit) reach it a moment before it exits: only a program
            # still waiting for input after PROMPT_GRACE holds the terminal.
            waiting = state.activity in termstate.WAITING_FOR_INPUT
            waiting_since = (waiting_since or now) if waiting else None
            if waiting_since is not None and now - waiting_since >= PROMPT_GRACE:
                raise TerminalError(f"the shell is not at its prompt: {state.foreground or 'a program'} is "
                                    f"waiting for input {state.describe()}; answer it or interrupt() first")
            if now >= deadline:
                raise TerminalTimeout(
                    f"timed out after {timeout:g}s waiting for the prompt before running: {command} "
                    f"({state.describe()})",
                    self.snapshot(),
                )
            with self._cond:
                if not markers.at_prompt:
                    self._cond.wait(min(PROMPT_POLL, deadline - now))

    def _run_line(self, command: str, timeout: float) -> CommandResult:
        with self._cond:
            p0, c0 = self._markers.command_typed(command)
        # A program that asked for the cursor position and exited without reading the answer left
        # it in the shell's input, in front of whatever is typed next: Ctrl-U clears the line.
        clear = "\x15" if self._replied else ""
        self._replied = False
        started = time.monotonic()
        markers = self._markers
        self._send(clear + command + "\r")
        self._wait_for(
            lambda: markers.prompt_no > p0 and markers.at_prompt,
            timeout,
            f"command to finish: {command}",
        )
        with self._cond:
            return self._finished(command, started, c0)

    def interrupt(self, grace: float = 1.0) -> None:
        """Bring the prompt back: Ctrl-C, then SIGTERM, then SIGKILL to the foreground process group."""
        if not self.integrated:
            self.press("<C-c>")
            return
        nested = self.nested
        if nested is not None and (nested.remote or nested.nonce is None):
            self._interrupt_nested(nested, grace)
            return
        steps: list[tuple[str, Callable[[], None]]] = [
            ("Ctrl-C", lambda: self._send("\x03")),
            ("SIGTERM", lambda: self._signal_foreground(signal.SIGTERM)),
            ("SIGKILL", lambda: self._signal_foreground(signal.SIGKILL)),
        ]
        for _, step in steps:
            step()
            try:
                self.wait_prompt(timeout=grace)
                return
            except TerminalTimeout:
                continue
        raise TerminalError("interrupt failed: the prompt did not come back after SIGKILL")

    def _signal_foreground(self, sig: signal.Signals) -> None:
        try:
            pgrp = os.tcgetpgrp(self._fd)
        except OSError:
            return
        if pgrp in (self.pid, 0):
            return
        try:
            os.killpg(pgrp, sig)
        except ProcessLookupError:
            pass

    # ---- waits ---------------------------------------------------------------------------

    def _wait_for(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                if self._eof:
                    raise TerminalError(f"{self._gone_message()} while waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    snap = self._screen.snapshot()
                    raise TerminalTimeout(f"timed out after {timeout:g}s waiting for {what}", snap)
                self._cond.wait(remaining)

    def wait_prompt(self, timeout: float = 30.0) -> None:
        """Return once the shell shows its prompt (at once if it already does)."""
        markers = self._markers
        self._wait_for(lambda: markers.at_prompt, timeout, "the shell prompt")

    def wait_text(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> Snapshot:
        """Wait until text (a string) or a regex (compiled) appears on the screen."""
        if isinstance(pattern, str):
            found = lambda: any(pattern in line for line in self._screen.text_lines())  # noqa: E731
            what = f"text {pattern!r}"
        else:
            found = lambda: pattern.search("\n".join(self._screen.text_lines())) is not None  # noqa: E731
            what = f"regex {pattern.pattern!r}"
        self._wait_for(found, timeout, what)
        return self.snapshot()

    def wait_screen(self, predicate: Callable[[Snapshot], bool], timeout: float = 10.0) -> Snapshot:
        """Wait until ``predicate(snapshot)`` holds."""
        self._wait_for(lambda: predicate(self._screen.snapshot()), timeout, "the screen condition")
        return self.snapshot()

    def wait_idle(self, quiet_ms: int = 300, timeout: float = 10.0) -> Snapshot:
        """Wait until nothing has been printed for ``quiet_ms``."""
        quiet = quiet_ms / 1000
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                silent = now - self._last_output_time
                if silent >= quiet or self._eof:
                    return self._screen.snapshot()
                if now >= deadline:
                    snap = self._screen.snapshot()
                    raise TerminalTimeout(
                        f"timed out after {timeout:g}s waiting for {quiet_ms} ms of quiet", snap
                    )
                self._cond.wait(min(quiet - silent, deadline - now))

    def wait_ready(self, timeout: float = 30.0) -> termstate.TerminalState:
        """Return as soon as it is our turn: the foreground waits for a line, keys or a secret, the
        prompt is back, or the program exited. Raises TerminalTimeout while it still works."""
        # The kernel has no event for "a process started to block on the terminal", so this is
        # event-driven with a short bounded backoff, not an idle timeout or a list of screen regexes:
        # a program prints its question just before it blocks, so the state is checked on every
        # output, then again after 0.2, 0.4, ... 5 ms (the gap between the write and the read); after
        # that, on the next output or every 50 ms, for programs that block without printing.
        deadline = time.monotonic() + timeout
        delay = _READY_FIRST_CHECK
        nested = self.nested
        if nested is not None and nested.remote:
            return self._wait_ready_remote(deadline, timeout)
        while True:
            facts, seq = self._state_facts()
            state = termstate.read_state(facts)
            if state.activity in (termstate.Activity.AT_PROMPT, termstate.Activity.EXITED):
                return state
            # Trust a waiting state only once the screen holds all the program wrote before it blocked.
            if state.ready and not termstate.output_pending(self._fd) and not self._reading:
                with self._cond:
                    if self._output_seq == seq:
                        return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TerminalTimeout(
                    f"timed out after {timeout:g}s waiting for the program to be ready: {state.describe()}",
                    self.snapshot(),
                )
            with self._cond:
                if self._output_seq == seq and not self._eof:
                    self._cond.wait(min(delay, remaining))
                output = self._output_seq != seq
            if output:
                delay = _READY_FIRST_CHECK
            elif delay < _READY_LAST_QUICK_CHECK:
                delay = min(delay * 2, _READY_LAST_QUICK_CHECK)
            else:
                delay = _READY_SLOW_CHECK

    # ---- state ---------------------------------------------------------------------------

    def state(self) -> termstate.TerminalState:
        """What the terminal is doing now: at the prompt, waiting for input, running, blocked, exited."""
        return termstate.read_state(self._state_facts()[0])

    def _state_facts(self) -> tuple[termstate.TerminalFacts, int]:
        with self._cond:
            now = time.monotonic()
            facts = termstate.TerminalFacts(
                fd=self._fd,
                leader=self.pid,
                integrated=self.integrated,
                at_prompt=self._markers.at_prompt,
                ended=self._eof or self._closed,
                question=termstate.question_at_cursor(self._screen),
                alternate=self._screen.alternate,
                output_age=now - self._last_output_time,
                prompt_age=now - self._markers.ended_at if self._markers.ended_at else None,
            )
            nested = self._nested_now()
            if nested is not None:
                facts = dataclasses.replace(facts, nested=nested.launcher, remote=nested.remote)
            return facts, self._output_seq

    def snapshot(self, *, with_style: bool = False) -> Snapshot:
        with self._cond:
            return self._screen.snapshot(with_style=with_style)

    def history(self) -> list[str]:
        """Lines scrolled off the top of the main screen, oldest first."""
        with self._cond:
            return list(self._screen.history)

    @property
    def clears(self) -> tuple[int, int]:
        """How many times the (main, alternate) screen was wiped whole (ESC [2J, ESC c) so far."""
        with self._cond:
            main, alternate = self._screen.clears
            return main, alternate

    @property
    def last_exit_code(self) -> int | None:
        """The exit code of the newest shell command to end (None before any)."""
        with self._cond:
            return self._markers.exit_code

    @property
    def at_prompt(self) -> bool:
        with self._cond:
            return self._markers.at_prompt

    @property
    def size(self) -> tuple[int, int]:
        with self._cond:
            return self._screen.columns, self._screen.lines

    @property
    def alive(self) -> bool:
        return not self._eof and not self._closed

    @property
    def output_seq(self) -> int:
        """Counts reads from the PTY; changes whenever anything was printed."""
        with self._cond:
            return self._output_seq

    @property
    def commands_finished(self) -> int:
        """A count that grows each time a shell command ends; ``last_exit_code`` is the newest one's."""
        with self._cond:
            return self._markers.prompt_no

    def resize(self, cols: int, rows: int) -> None:
        """Resize the screen and the PTY; the child gets SIGWINCH."""
        _check_size(cols, rows)
        with self._cond:
            self._screen.resize(rows, cols)
        self._proc.setwinsize(rows, cols)

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        """Wait for the program to end; its exit status (None if killed by a signal)."""
        self._wait_for(lambda: self._eof, timeout, "the program to exit")
        self._proc.close(force=True)
        return self._proc.exitstatus

    def _gone_message(self) -> str:
        if self._closed:
            return "the terminal is closed"
        return "the program in the terminal exited"

    # ---- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """End the program and everything it started in this terminal's session; reap them all."""
        if self._closed:
            return
        self._closed = True
        procs.end_session(self.pid)
        if self._session != self.pid:
            procs.end_session(self._session)  # bubblewrap: its sandbox dies with it
        if self._cgroup is not None:
            self._cgroup.kill()  # what left the session (setsid, daemons) is still in the cgroup
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._reader.join(timeout=5)
        try:
            self._proc.close(force=True)
        except (pexpect.ExceptionPexpect, OSError):
            pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._cgroup is not None:
            self._cgroup.remove()
        Watchdog.unwatch(self._session)
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self._launch:
            for path in self._launch.cleanup:
                shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _note(errors: list[str], exc: Exception) -> None:
    if len(errors) < ERRORS_KEPT:
        errors.append(f"{type(exc).__name__}: {exc}")


def _check_size(cols: int, rows: int) -> None:
    for name, value in (("cols", cols), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise TerminalError(f"{name} must be a positive integer, got {value!r}")
