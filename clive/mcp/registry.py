"""The terminals a server has open: each a Terminal with its recorded session, an id the client names
it by, and what the tools remember about it between calls."""

from __future__ import annotations

import collections
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clive import __version__
from clive.mcp.errors import ToolFailure
from clive.safety.guard import CommandGuard
from clive.safety.sandbox import Sandbox
from clive.session import Recorder, SessionError
from clive.terminal import CommandResult, Terminal, TerminalError
from clive.terminal.screen import Snapshot
from clive.terminal.shell import default_shell

MAX_TERMINALS = 32  # a client that opens terminals in a loop runs out here, not out of processes
OUTPUTS_KEPT = 16  # cut outputs kept per terminal for read_output


@dataclass(slots=True)
class PendingRun:
    """A command run() handed back early (it waits for input or outlived its timeout); it goes on."""

    number: int
    command: str
    future: Future[CommandResult]
    reported: bool = False  # its end was told to the client


@dataclass(eq=False, slots=True)
class Opened:
    """One open terminal, its session and what the tools remember of it between calls."""

    id: str
    terminal: Terminal
    recorder: Recorder
    workdir: Path
    program: str
    sandbox: bool
    # run() hands each command to this thread, so that it can go on after the call returns.
    runner: ThreadPoolExecutor
    lock: threading.Lock = field(default_factory=threading.Lock)  # cycle numbers and records
    cycle: int = 0
    runs: int = 0
    pending: PendingRun | None = None
    seen: Snapshot | None = None  # the screen as the client last saw it
    outputs: collections.OrderedDict[int, str] = field(default_factory=collections.OrderedDict)

    def record(self, action: dict[str, Any], outcome: dict[str, Any], **fields: Any) -> None:
        """One tool call as a cycle of the session, as the agent loop records its actions."""
        with self.lock:
            self.cycle += 1
            try:
                self.recorder.event("cycle", self.cycle, source="mcp", action=action, outcome=outcome, **fields)
            except (SessionError, OSError):
                pass  # the call itself went through; a full disk must not turn it into an error

    def keep_output(self, number: int, output: str) -> None:
        with self.lock:
            self.outputs[number] = output
            while len(self.outputs) > OUTPUTS_KEPT:
                self.outputs.popitem(last=False)


class Terminals:
    """The open terminals of one server, by id ("t1", "t2", ...)."""

    def __init__(
        self,
        sessions: Path,
        *,
        guard: CommandGuard | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.sessions = sessions
        self.guard = guard or CommandGuard()
        self.cwd = cwd or Path.cwd()
        self._open: dict[str, Opened] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # bubblewrap dies with the thread that started it (--die-with-parent): sandboxed shells are
        # started on this thread, which lives as long as the server.
        self._keeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clive-mcp-sandbox")
        self._closed = False

    def open(
        self, *, cols: int, rows: int, cwd: str | None, shell: str | None, sandbox: bool, client: str | None = None
    ) -> Opened:
        """Start a terminal with its recorded session (``client``: who asked, for meta.json); ToolFailure
        says why it could not."""
        workdir = (self.cwd / Path(cwd).expanduser()).resolve() if cwd else self.cwd
        if not workdir.is_dir():
            raise ToolFailure(f"open_terminal: no such directory: {workdir}")
        with self._lock:
            if self._closed:
                raise ToolFailure("open_terminal: the server is shutting down")
            if len(self._open) >= MAX_TERMINALS:
                raise ToolFailure(f"open_terminal: {MAX_TERMINALS} terminals are open; close one first")
            tid = f"t{next(self._ids)}"
        meta = {
            "playbook": None,
            "policy": "mcp",
            "kind": "mcp",
            "client": client,
            "terminal": tid,
            "workdir": str(workdir),
            "shell": shell,
            "sandbox": sandbox,
            "clive_version": __version__,
        }
        try:
            recorder = Recorder.create(self.sessions, meta, cols, rows)
        except SessionError as exc:
            raise ToolFailure(f"open_terminal: {exc}") from None
        try:
            if sandbox:
                terminal = self._keeper.submit(self._start, recorder, workdir, shell, cols, rows, True).result()
            else:
                terminal = self._start(recorder, workdir, shell, cols, rows, False)
        except (TerminalError, OSError) as exc:
            try:
                recorder.close("failed")
            except SessionError:
                pass
            raise ToolFailure(f"open_terminal: {exc}") from None
        recorder.update_meta(limits=terminal.enforcement.describe(), program=_program(shell))
        opened = Opened(
            tid, terminal, recorder, workdir, _program(shell), sandbox,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"clive-mcp-{tid}"),
        )
        with self._lock:
            if not self._closed:
                self._open[tid] = opened
                return opened
        self._finish(opened, "interrupted")
        raise ToolFailure("open_terminal: the server is shutting down")

    def _start(
        self, recorder: Recorder, workdir: Path, shell: str | None, cols: int, rows: int, sandbox: bool
    ) -> Terminal:
        boxed = None
        if sandbox:
            scratch = recorder.path / "scratch"
            scratch.mkdir(exist_ok=True)
            boxed = Sandbox(workdir, scratch)
        return Terminal(shell, cols=cols, rows=rows, cwd=workdir, listeners=[recorder], sandbox=boxed)

    def get(self, tid: str) -> Opened:
        """The open terminal ``tid``; ToolFailure names the ones that are open."""
        with self._lock:
            opened = self._open.get(tid)
            if opened is None:
                raise self._unknown(tid)
        return opened

    def all(self) -> list[Opened]:
        with self._lock:
            return sorted(self._open.values(), key=lambda o: int(o.id[1:]))

    def close(self, tid: str, status: str = "done") -> Opened:
        """Close one terminal and finish its session."""
        with self._lock:
            opened = self._open.pop(tid, None)
            if opened is None:
                raise self._unknown(tid)
        self._finish(opened, status)
        return opened

    def _unknown(self, tid: str) -> ToolFailure:
        known = sorted(self._open, key=lambda t: int(t[1:]))
        open_now = f"open now: {', '.join(known)}" if known else "none is open; open one with open_terminal"
        return ToolFailure(f"no terminal {tid!r} ({open_now})")

    def close_all(self, status: str = "interrupted") -> None:
        """Close every terminal (the client has gone or the server is ending); no new ones open."""
        with self._lock:
            self._closed = True
            closing, self._open = list(self._open.values()), {}
        threads = [threading.Thread(target=self._finish, args=(o, status)) for o in closing]
        for thread in threads:  # in parallel: each close may give a stubborn program a moment
            thread.start()
        for thread in threads:
            thread.join()
        self._keeper.shutdown(wait=False)

    @staticmethod
    def _finish(opened: Opened, status: str) -> None:
        opened.terminal.close()
        opened.runner.shutdown(wait=False)
        try:
            opened.recorder.close(status)
        except SessionError:
            pass  # what could be written is written; the server goes on


def _program(shell: str | None) -> str:
    """What runs in the terminal, as the client named it (or the default shell)."""
    return shell if shell else Path(default_shell()).name
