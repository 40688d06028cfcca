"""The tools, on clive's own types: each call is checked against the catalog, carried out on a Terminal
of the registry, recorded in that terminal's session, and answered with a Reply. Nothing here knows
the MCP SDK.

``submit`` answers at once where a tool cannot wait (looking, listing), hands a call that may wait to a
worker thread, and gives a command to its terminal's own thread (running.py): whoever finishes a call
answers it, with no thread in between."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from clive.mcp import running
from clive.mcp.catalog import BY_NAME, TOOLS, check_arguments
from clive.mcp.errors import ToolFailure
from clive.mcp.registry import Opened, Terminals
from clive.mcp.replies import Reply, describe, failed, screen_reply, state_data, view
from clive.terminal import TerminalError, TerminalTimeout
from clive.terminal.keys import UnknownKey, parse_keys
from clive.terminal.termstate import Activity

# Tools that never wait: answered on the caller's thread.
AT_ONCE = frozenset({"list_terminals", "read_output", "look", "resize"})
WORKERS = 64  # calls that may wait (open, wait, interrupt, keys, ...) at once
OPEN_SETTLE = 5.0  # seconds open_terminal gives a program (not a shell) to be ready for input


class Tools:
    """Carries out tool calls on the registry's terminals; ``call`` and ``submit`` never raise."""

    def __init__(self, terminals: Terminals) -> None:
        self.terminals = terminals
        self._workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="clive-mcp-call")
        self._watchers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="clive-mcp-watch")
        self._alarms = running.Alarms()
        self._dispatch: dict[str, Callable[..., Reply]] = {
            "open_terminal": self._open_terminal,
            "list_terminals": self._list_terminals,
            "close_terminal": self._close_terminal,
            "read_output": self._read_output,
            "press": self._press,
            "type": self._type,
            "look": self._look,
            "wait": self._wait,
            "interrupt": self._interrupt,
            "resize": self._resize,
            "checkpoint": self._checkpoint,
        }
        assert set(self._dispatch) | {"run"} == {tool.name for tool in TOOLS}

    def call(self, name: str, arguments: Mapping[str, Any] | None, *, client: str | None = None) -> Reply:
        """Carry out one call and wait for its answer."""
        return self.submit(name, arguments, client=client).result()

    def submit(self, name: str, arguments: Mapping[str, Any] | None, *, client: str | None = None) -> Future[Reply]:
        """Start one call; its answer comes in the future. A failure is a Reply with ``error`` set and a
        one-line reason first. ``client`` is the client's name, for the sessions it opens."""
        spec = BY_NAME.get(name)
        if spec is None:
            return _done(failed(f"unknown tool {name!r} (tools: {', '.join(BY_NAME)})"))
        try:
            checked = check_arguments(spec, arguments)
        except ToolFailure as exc:
            return _done(failed(str(exc)))
        if name == "run":
            return self._run(**checked)
        if name == "open_terminal":
            checked["client"] = client
        if name in AT_ONCE:
            return _done(self._guarded(name, checked))
        return self._workers.submit(self._guarded, name, checked)

    def close(self) -> None:
        """Stop taking calls (the registry closes the terminals, which ends any wait)."""
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._watchers.shutdown(wait=False, cancel_futures=True)

    def _guarded(self, name: str, checked: dict[str, Any]) -> Reply:
        try:
            return self._dispatch[name](**checked)
        except ToolFailure as exc:
            return failed(str(exc))
        except TerminalTimeout as exc:
            return failed(f"{name}: {exc}\n{exc.snapshot.render()}")
        except (TerminalError, UnknownKey, OSError) as exc:
            return failed(f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad call must not end the server
            return failed(f"{name}: internal error: {type(exc).__name__}: {exc}")

    # ---- terminals -------------------------------------------------------------------------

    def _open_terminal(
        self, cols: int, rows: int, cwd: str | None, shell: str | None, sandbox: bool, client: str | None
    ) -> Reply:
        opened = self.terminals.open(cols=cols, rows=rows, cwd=cwd, shell=shell, sandbox=sandbox, client=client)
        if not opened.terminal.integrated:
            try:  # a shell is at its prompt by now; another program is given a moment to start
                opened.terminal.wait_ready(timeout=OPEN_SETTLE)
            except TerminalTimeout:
                pass
        where = f"{opened.program} in {opened.workdir}, {cols}x{rows}" + (", sandboxed" if sandbox else "")
        head = Reply(f"opened {opened.id}: {where}; recorded in {opened.recorder.path}\n", describe(opened))
        return head + screen_reply(opened)

    def _list_terminals(self) -> Reply:
        found = self.terminals.all()
        if not found:
            return Reply("no terminals open (open one with open_terminal)", {"terminals": []})
        rows = [describe(o) | {"state": state_data(o.terminal.state())} for o in found]
        lines = [
            f"{r['terminal']}: {r['program']} in {r['workdir']}, {r['cols']}x{r['rows']}"
            f"{', sandboxed' if r['sandbox'] else ''} {r['state']['description']}; session {r['session']}"
            for r in rows
        ]
        return Reply("\n".join(lines), {"terminals": rows})

    def _close_terminal(self, terminal: str) -> Reply:
        opened = self.terminals.close(terminal)
        path = opened.recorder.path
        text = f"closed {terminal}; its session is {path} (replay: clive replay {path})"
        return Reply(text, {"terminal": terminal, "session": str(path)})

    # ---- commands --------------------------------------------------------------------------

    def _run(self, terminal: str, command: str, timeout: float) -> Future[Reply]:
        try:
            call = self._run_call(terminal, command, timeout)
            if call.opened.terminal.at_prompt:
                running.start(call, self._watchers, self._alarms)
            else:
                self._watchers.submit(running.start_after_prompt, call, self._watchers, self._alarms)
        except ToolFailure as exc:
            return _done(failed(str(exc)))
        except RuntimeError:  # a thread pool shut down under the call: the terminal or the server closed
            return _done(failed(f"run: {terminal} was closed"))
        return call.reply

    def _run_call(self, terminal: str, command: str, timeout: float) -> running.RunCall:
        opened = self.terminals.get(terminal)
        term = opened.terminal
        refusal = self.terminals.guard.check(command)
        if refusal is not None:
            message = refusal.message(command)
            action = {"type": "run", "command": command, "timeout": timeout}
            opened.record(action, {"ok": False, "refused": True, "error": message})
            raise ToolFailure(f"run: {message}")
        if not term.integrated:
            raise ToolFailure(f"run: {opened.program} is not a shell clive integrates with; use press/type and wait")
        if "\n" in command or "\r" in command:
            raise ToolFailure("run: one line only; join commands with ';' or '&&'")
        with opened.lock:
            pending = opened.pending
            if pending is not None and not pending.future.done():
                raise ToolFailure(
                    f"run: run {pending.number} ({pending.command}) is still going in {terminal} "
                    f"{term.state().describe()}; answer it with press/type, wait until=prompt, or interrupt"
                )
            opened.runs += 1
            number = opened.runs
        return running.RunCall(opened, number, command, timeout, running.ended_since(opened))

    def _read_output(self, terminal: str, run: int, offset: int, limit: int) -> Reply:
        opened = self.terminals.get(terminal)
        with opened.lock:
            output = opened.outputs.get(run)
        if output is None:
            raise ToolFailure(
                f"read_output: no kept output for run {run} of {terminal} (only output that run cut short is "
                f"kept, for the last few runs)"
            )
        end = min(len(output), offset + limit)
        chunk = output[offset:end]
        text = f"[run {run} output, characters {offset}-{end} of {len(output)}]\n{chunk}"
        return Reply(text, {"run": run, "offset": offset, "end": end, "total": len(output), "output": chunk})

    # ---- keys ------------------------------------------------------------------------------

    def _press(self, terminal: str, keys: str) -> Reply:
        opened = self.terminals.get(terminal)
        try:
            data = parse_keys(keys)
        except UnknownKey as exc:
            raise ToolFailure(f"press: {exc} (see the key notation in press's description)") from None
        self._send(opened, "press", data, keys, lambda: opened.terminal.press(keys))
        return Reply(f"sent {keys}", {"sent": len(data)})

    def _type(self, terminal: str, text: str) -> Reply:
        opened = self.terminals.get(terminal)
        data = text.replace("\r\n", "\r").replace("\n", "\r")  # Enter sends CR, in raw mode too
        self._send(opened, "type", data, as_notation(data), lambda: opened.terminal.type(data))
        return Reply(f"typed {len(data)} characters", {"sent": len(data)})

    def _send(self, opened: Opened, tool: str, data: str, notation: str, send: Callable[[], None]) -> None:
        action = {"type": "keys", "keys": notation}
        refusal = self.terminals.guard.check(data)
        if refusal is not None:
            message = refusal.message(data.strip())
            opened.record(action, {"ok": False, "refused": True, "error": message})
            raise ToolFailure(f"{tool}: {message}")
        state = opened.terminal.state()
        # Echo off here, or (a shell on another machine) a password prompt on the screen.
        if opened.terminal.echo_off_canonical() or state.activity == Activity.WAITING_SECRET:
            message = (
                f"refused: the program is asking for a password {state.describe()}; clive never types into a "
                "password prompt: let a person answer it in that terminal, give the secret another way (an "
                "environment variable, a file), or interrupt it"
            )
            opened.record(action, {"ok": False, "refused": True, "error": message})
            raise ToolFailure(f"{tool}: {message}")
        send()
        opened.record(action, {"ok": True})

    # ---- looking and waiting ---------------------------------------------------------------

    def _look(self, terminal: str, changes_only: bool, scrollback: int) -> Reply:
        opened = self.terminals.get(terminal)
        earlier = running.ended_since(opened)
        state, screen = view(opened, changes_only=changes_only)
        above = ""
        if scrollback:
            history = opened.terminal.history()[-scrollback:]
            above = f"[{len(history)} lines above the screen]\n" + "\n".join(history) + "\n"
        text = f"{state.describe()}\n{above}{screen}"
        return earlier + Reply(text, {"state": state_data(state), "screen": screen, "scrollback": above})

    def _wait(self, terminal: str, until: str, pattern: str | None, quiet_ms: int, timeout: float) -> Reply:
        opened = self.terminals.get(terminal)
        term = opened.terminal
        action: dict[str, Any] = {"type": "wait", "until": until, "timeout": timeout}
        started = time.monotonic()
        if until == "text":
            if not pattern:
                raise ToolFailure("wait: until=text needs a pattern (a regular expression)")
            try:
                compiled = re.compile(pattern, re.MULTILINE)  # ^ and $ at each screen line
            except re.error as exc:
                raise ToolFailure(f"wait: bad pattern {pattern!r}: {exc}") from None
            action["pattern"] = pattern
            waiting: Callable[[], object] = lambda: term.wait_text(compiled, timeout=timeout)  # noqa: E731
        elif until == "prompt":
            if not term.integrated:
                raise ToolFailure(f"wait: until=prompt needs a shell clive integrates with; {opened.program} "
                                  "shows no prompt marks")
            waiting = lambda: term.wait_prompt(timeout=timeout)  # noqa: E731
        elif until == "idle":
            action["quiet_ms"] = quiet_ms
            waiting = lambda: term.wait_idle(quiet_ms=quiet_ms, timeout=timeout)  # noqa: E731
        else:
            waiting = lambda: term.wait_ready(timeout=timeout)  # noqa: E731
        try:
            waiting()
        except TerminalTimeout as exc:
            opened.record(action, {"ok": False, "error": str(exc), "duration": round(time.monotonic() - started, 4)})
            opened.seen = exc.snapshot
            raise ToolFailure(f"wait: {exc} {term.state().describe()}\n{exc.snapshot.render()}") from None
        opened.record(action, {"ok": True, "duration": round(time.monotonic() - started, 4)})
        if until == "prompt":
            running.settle(opened)
        return running.ended_since(opened) + screen_reply(opened)

    def _interrupt(self, terminal: str) -> Reply:
        opened = self.terminals.get(terminal)
        started = time.monotonic()
        try:
            opened.terminal.interrupt()
        except TerminalError as exc:
            opened.record({"type": "interrupt"}, {"ok": False, "error": str(exc)})
            raise
        opened.record({"type": "interrupt"}, {"ok": True, "duration": round(time.monotonic() - started, 4)})
        running.settle(opened)
        return running.ended_since(opened) + screen_reply(opened)

    def _resize(self, terminal: str, cols: int, rows: int) -> Reply:
        opened = self.terminals.get(terminal)
        opened.terminal.resize(cols, rows)
        opened.recorder.resize(cols, rows)
        opened.record({"type": "resize", "cols": cols, "rows": rows}, {"ok": True})
        return Reply(f"resized {terminal} to {cols}x{rows}", {"cols": cols, "rows": rows})

    def _checkpoint(self, terminal: str, message: str) -> Reply:
        from clive.experiments.workspace import Workspace, WorkspaceError  # GitPython: only when asked

        opened = self.terminals.get(terminal)
        action = {"type": "checkpoint", "message": message}
        try:
            ref = Workspace(opened.workdir, opened.recorder.id).checkpoint(message)
        except WorkspaceError as exc:
            opened.record(action, {"ok": False, "error": str(exc)})
            raise ToolFailure(f"checkpoint: {exc}") from None
        opened.record(action, {"ok": True}, checkpoint=ref.sha)
        text = f"checkpoint {ref.n}: {ref.ref} = {ref.sha} (see it with: git show {ref.ref})"
        return Reply(text, {"ref": ref.ref, "sha": ref.sha, "n": ref.n})


def as_notation(text: str) -> str:
    """Text as key notation that types exactly it (for the record: the replay reads keys)."""
    named = {"<": "<lt>", "\r": "<Enter>", "\t": "<Tab>", "\x1b": "<Esc>", "\x7f": "<BS>"}
    out = []
    for char in text:
        if char in named:
            out.append(named[char])
        elif "\x01" <= char <= "\x1a":
            out.append(f"<C-{chr(ord(char) + 96)}>")
        else:
            out.append(char)
    return "".join(out)


def _done(reply: Reply) -> Future[Reply]:
    future: Future[Reply] = Future()
    future.set_result(reply)
    return future
