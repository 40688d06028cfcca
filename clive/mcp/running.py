"""A command run through MCP: typed at the prompt by the terminal's own thread, and answered the moment
the shell reports its exit code, or earlier, with the screen, when the command stops to wait for input
(or outlives the call's timeout); then it goes on, and its end is told with a later call."""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from clive.agent.executor import excerpt
from clive.mcp.errors import ToolFailure
from clive.mcp.registry import Opened, PendingRun
from clive.mcp.replies import NOTHING, Reply, failed, state_data, view
from clive.terminal import CommandResult, TerminalError, TerminalTimeout
from clive.terminal.nesting import nested_shell
from clive.terminal.terminal import PROMPT_GRACE, PROMPT_POLL
from clive.terminal.termstate import WAITING_FOR_INPUT, Activity

OUTPUT_LIMIT = 16_000  # characters of a command's output in run's reply; the rest via read_output
OUTPUT_HEAD = 4_000  # of which the start (the rest is the end, where the errors usually are)
# How long a command may take before the terminal's state is watched for a program waiting for input:
# most commands end sooner, and watching reads /proc on every output.
FIRST_WAIT = 0.05
RUN_LIMIT = 7 * 24 * 3600.0  # a command left running is waited for until it ends or the terminal closes
SETTLE = 1.0  # seconds for the exit code to arrive once the prompt is back


@dataclass(eq=False)
class RunCall:
    """One call of the run tool: answered once, by whichever comes first."""

    opened: Opened
    number: int
    command: str
    timeout: float
    earlier: Reply  # a note on an earlier command that has ended since, put in front of the answer
    started: float = field(default_factory=time.monotonic)
    reply: Future[Reply] = field(default_factory=Future)
    lock: threading.Lock = field(default_factory=threading.Lock)
    run: Future[CommandResult] | None = None

    def answer(self, make: Callable[[], Reply]) -> None:
        """Answer with ``make()`` unless already answered."""
        with self.lock:
            if self.reply.done():
                return
            try:
                reply = make()
            except ToolFailure as exc:
                reply = failed(str(exc))
            except Exception as exc:  # noqa: BLE001 - the call must be answered, whatever happened
                reply = failed(f"run: internal error: {type(exc).__name__}: {exc}")
            self.reply.set_result(self.earlier + reply)


class Alarms:
    """Calls a function on a thread of its own once a delay has passed, unless it is no longer wanted
    by then: one sleeping thread for all the runs in flight, woken only when one is due (a thread per
    run, waiting, would wake with every command and slow the common case down)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None], Callable[[], bool]]] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def after(self, delay: float, fn: Callable[[], None], wanted: Callable[[], bool]) -> None:
        """``fn()`` in ``delay`` seconds if ``wanted()`` still holds then."""
        when = time.monotonic() + delay
        with self._cond:
            heapq.heappush(self._due, (when, next(self._order), fn, wanted))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="clive-mcp-alarms", daemon=True)
                self._thread.start()
            if when < self._wake_at:
                self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while True:
                self._due = [item for item in self._due if item[3]()]  # forget what ended meanwhile
                heapq.heapify(self._due)
                now = time.monotonic()
                ready = []
                while self._due and self._due[0][0] <= now:
                    ready.append(heapq.heappop(self._due)[2])
                self._wake_at = self._due[0][0] if self._due else math.inf
                if ready:
                    self._cond.release()
                    try:
                        for fn in ready:
                            try:
                                fn()
                            except RuntimeError:
                                pass  # the server is closing: nothing is watched any more
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(self._wake_at - now if self._due else None)


def start(call: RunCall, watchers: Executor, alarms: Alarms) -> None:
    """Type the command (the terminal's thread waits for its exit code), and watch it from ``watchers``
    should it not end within FIRST_WAIT."""
    term = call.opened.terminal
    action = {"type": "run", "command": call.command, "timeout": call.timeout}
    # A command that starts a shell (ssh, su, a container's) waits for keys while it logs in: run() enters
    # it and answers once its prompt has markers, or refuses (a password prompt), within the timeout.
    entering = nested_shell(call.command) is not None
    run = call.opened.runner.submit(term.run, call.command, call.timeout if entering else RUN_LIMIT)
    call.run = run
    run.add_done_callback(lambda f: _record(call.opened, action, f))
    run.add_done_callback(lambda f: call.answer(lambda: finished(call.opened, call.number, f)))
    if not entering:
        alarms.after(min(FIRST_WAIT, call.timeout), lambda: watchers.submit(_watch, call), lambda: not run.done())


def start_after_prompt(call: RunCall, watchers: Executor, alarms: Alarms) -> None:
    """start(), once a program that is ending gives the prompt back (on a watcher thread); refused while
    a program holds the terminal, waiting for input, or past the call's timeout."""
    term = call.opened.terminal
    deadline = call.started + call.timeout
    waiting_since: float | None = None
    while not term.at_prompt:
        try:
            state = term.wait_ready(timeout=max(deadline - time.monotonic(), 0.0))
        except TerminalTimeout:
            why = f"the shell is not at its prompt after {call.timeout:g}s {term.state().describe()}; wait " \
                "for it or interrupt"
            call.answer(functools.partial(failed, f"run: {why}"))
            return
        now = time.monotonic()
        waiting = state.activity in WAITING_FOR_INPUT
        waiting_since = (waiting_since or now) if waiting else None
        # Keys that end a program (q, :wq) reach it a moment before it exits: only a program still
        # waiting after PROMPT_GRACE holds the terminal.
        if waiting_since is not None and now - waiting_since >= PROMPT_GRACE:
            why = f"the shell is not at its prompt: {state.foreground or 'a program'} is waiting for input " \
                f"{state.describe()}; answer it (press/type) or interrupt first"
            call.answer(functools.partial(failed, f"run: {why}"))
            return
        if state.activity == Activity.EXITED:
            call.answer(lambda: failed("run: the program in the terminal exited"))
            return
        time.sleep(PROMPT_POLL)
    start(call, watchers, alarms)


def _watch(call: RunCall) -> None:
    assert call.run is not None
    term = call.opened.terminal
    deadline = call.started + call.timeout
    while True:
        if call.reply.done() or call.run.done():
            return  # the run answers for itself
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            state = term.wait_ready(timeout=min(remaining, 1.0))
        except TerminalTimeout:
            continue
        if state.activity in WAITING_FOR_INPUT:
            if _settled(call.run, 0) is not None:
                return
            break
        if _settled(call.run, min(SETTLE, remaining)) is not None:
            return
    call.answer(lambda: _left_running(call))


def _left_running(call: RunCall) -> Reply:
    opened = call.opened
    assert call.run is not None
    with opened.lock:
        opened.pending = PendingRun(call.number, call.command, call.run)
    state, screen = view(opened)
    if state.activity in WAITING_FOR_INPUT:
        why = f"is waiting for input {state.describe()}"
        then = "answer it with press/type, then wait until=prompt"
    else:
        why = f"is still running after {call.timeout:g}s {state.describe()}"
        then = "wait until=prompt, or interrupt"
    text = f"run {call.number}: {call.command} {why}; it goes on: {then} for its exit code\n{screen}"
    return Reply(text, {"run": call.number, "running": True, "state": state_data(state), "screen": screen})


def finished(opened: Opened, number: int, run: Future[CommandResult]) -> Reply:
    """The answer for a command that ended: exit code, duration, output (cut in the middle if long)."""
    try:
        result = run.result()
    except TerminalError as exc:
        raise ToolFailure(f"run: {exc}") from None
    output = result.output
    shown = output
    cut = len(output) > OUTPUT_LIMIT
    if cut:
        opened.keep_output(number, output)
        tail = OUTPUT_LIMIT - OUTPUT_HEAD
        shown = (
            f"{output[:OUTPUT_HEAD]}\n[... {len(output) - OUTPUT_LIMIT} characters cut here; read them with "
            f"read_output terminal={opened.id} run={number} offset={OUTPUT_HEAD} ...]\n{output[-tail:]}"
        )
    dropped = " (more than clive keeps was printed: the start is lost)" if result.truncated else ""
    if result.entered is not None:
        how = "exact exit codes there" if result.completion == "marker" else f"commands end by the {result.completion}"
        text = f"entered the shell {result.entered} started ({how}); `exit` comes back"
    elif result.completion != "marker":
        text = f"ended by the {result.completion} in {result.duration:.3f}s (exit code unknown){dropped}"
    else:
        text = f"exit code {result.exit_code} in {result.duration:.3f}s{dropped}"
    if shown:
        text += "\n" + shown
    return Reply(text, {
        "run": number,
        "entered": result.entered,
        "exit_code": result.exit_code if result.completion == "marker" and result.entered is None else None,
        "duration": round(result.duration, 6),
        "output": shown,
        "output_chars": len(output),
        "cut": cut,
    })


def ended_since(opened: Opened) -> Reply:
    """A note on a command that run left going and that has ended since (told once)."""
    with opened.lock:
        pending = opened.pending
        if pending is None or not pending.future.done() or pending.reported:
            return NOTHING
        pending.reported = True
        opened.pending = None
    try:
        result = pending.future.result()
    except Exception as exc:  # noqa: BLE001 - the run's own failure, told as a line
        return Reply(f"[run {pending.number} ({pending.command}) ended: {exc}]\n")
    if result.output:
        opened.keep_output(pending.number, result.output)
    more = (
        f"; its output ({len(result.output)} characters): read_output terminal={opened.id} run={pending.number}"
        if result.output else ""
    )
    text = f"[run {pending.number} ({pending.command}) ended: exit code {result.exit_code} after " \
        f"{result.duration:.2f}s{more}]\n"
    return Reply(text, {"ended": {"run": pending.number, "exit_code": result.exit_code}})


def settle(opened: Opened) -> None:
    """Once the prompt is back, give a command run left going the moment it needs to end."""
    with opened.lock:
        pending = opened.pending
    if pending is not None:
        _settled(pending.future, SETTLE)


def _settled(run: Future[CommandResult], timeout: float) -> CommandResult | BaseException | None:
    """The run's result or its failure once done within ``timeout``; None while it goes on."""
    try:
        return run.result(timeout=timeout)
    except FutureTimeout:
        return None
    except Exception as exc:  # noqa: BLE001 - the terminal's failure, reported by the caller
        return exc


def _record(opened: Opened, action: dict[str, Any], run: Future[CommandResult]) -> None:
    try:
        result = run.result()
    except Exception as exc:  # noqa: BLE001 - recorded as the run's outcome
        opened.record(action, {"ok": False, "error": str(exc)})
        return
    opened.record(action, {
        "ok": result.exit_code == 0,
        "exit_code": result.exit_code,
        "duration": round(result.duration, 4),
        "output": excerpt(result.output),
    })
