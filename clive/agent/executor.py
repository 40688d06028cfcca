"""Carrying out actions on the terminal and the workdir (the file channel), within the guard's limits."""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clive.agent.actions import (
    Action,
    Checkpoint,
    Done,
    EditFile,
    Keys,
    ReadFile,
    Result,
    Run,
    WriteFile,
)
from clive.safety.guard import CommandGuard
from clive.terminal import Terminal, TerminalError, TerminalTimeout
from clive.terminal.keys import UnknownKey, parse_keys
from clive.terminal.nesting import nested_shell

OUTPUT_EXCERPT = 4000  # characters of command output kept in an outcome (head and tail)
READ_LIMIT = 60_000  # characters a read_file returns at most


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened when an action was carried out; ``text`` is what the policy is told."""

    ok: bool
    text: str
    exit_code: int | None = None
    duration: float = 0.0
    output: str | None = None
    refused: bool = False
    checkpoint: str | None = None  # the commit a checkpoint action wrote

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "duration": round(self.duration, 4)}
        if self.exit_code is not None:
            data["exit_code"] = self.exit_code
        if self.output is not None:
            data["output"] = excerpt(self.output)
        if self.refused:
            data["refused"] = True
        if not self.ok or self.refused:
            data["error"] = self.text
        return data


def excerpt(text: str, limit: int = OUTPUT_EXCERPT) -> str:
    """Head and tail of a long text, with the number of characters left out between them."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 4], text[-(limit * 3 // 4) :]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters left out ...]\n{tail}"


class Executor:
    """Runs actions: keys and commands through the terminal, files through the file channel."""

    def __init__(
        self,
        terminal: Terminal,
        workdir: Path,
        *,
        guard: CommandGuard | None = None,
        readonly: tuple[str, ...] = (),
        checkpoint: Callable[[str], str] | None = None,
    ) -> None:
        self.terminal = terminal
        self.workdir = workdir.resolve()
        self.guard = guard or CommandGuard()
        self.readonly = readonly
        self._checkpoint = checkpoint

    def execute(self, action: Action) -> Outcome:
        started = time.monotonic()
        try:
            outcome = self._dispatch(action)
        except TerminalTimeout as exc:
            outcome = Outcome(False, f"{exc}\n{exc.snapshot.text()}")
        except (TerminalError, OSError, UnknownKey) as exc:
            outcome = Outcome(False, f"error: {exc}")
        if outcome.duration == 0.0:
            outcome = _with_duration(outcome, time.monotonic() - started)
        return outcome

    def _dispatch(self, action: Action) -> Outcome:
        match action:
            case Run():
                return self._run(action)
            case Keys():
                return self._keys(action)
            case ReadFile():
                return self._read(action)
            case WriteFile():
                return self._write(action)
            case EditFile():
                return self._edit(action)
            case Checkpoint(message=message):
                if self._checkpoint is None:
                    return Outcome(False, "error: checkpoints are not available in this run")
                sha = self._checkpoint(message)
                return Outcome(True, f"checkpoint {sha}", checkpoint=sha)
            case Result(metric=metric, status=status, description=description):
                return Outcome(True, f"result recorded: {status} {metric} {description}")
            case Done(summary=summary):
                return Outcome(True, f"done: {summary}")
        return Outcome(False, f"error: unknown action {action!r}")

    def _refusal(self, command: str) -> Outcome | None:
        refusal = self.guard.check(command)
        if refusal is None:
            return None
        return Outcome(False, refusal.message(command), refused=True)

    def _run(self, action: Run) -> Outcome:
        refused = self._refusal(action.command)
        if refused:
            return refused
        try:
            result = self.terminal.run(action.command, timeout=action.timeout)
        except TerminalTimeout as exc:
            self.terminal.interrupt()
            return Outcome(
                False,
                f"timed out after {action.timeout:g}s and was interrupted: {action.command}\n"
                + exc.snapshot.text(),
                exit_code=None,
                duration=action.timeout,
            )
        if result.entered is not None:
            if result.completion == "marker":
                how = "clive's prompt markers are set up there: run() reports exact exit codes"
            else:
                how = f"no prompt markers there (not bash or zsh): commands end by the {result.completion}"
            return Outcome(True, f"entered the shell {result.entered} started; {how}; `exit` comes back",
                           exit_code=None, duration=result.duration, output=result.output)
        if result.completion != "marker":
            text = f"exit code unknown (ended by the {result.completion}) after {result.duration:.2f}s"
        else:
            text = f"exit code {result.exit_code} after {result.duration:.2f}s"
        lines = result.output.count("\n") + 1 if result.output else 0
        if lines > self.terminal.size[1] - 3:
            # Output that scrolled past the screen: the screen diff shows only its tail.
            text += "\n" + excerpt(result.output)
        return Outcome(
            result.exit_code == 0 or result.completion != "marker",
            text,
            exit_code=result.exit_code,
            duration=result.duration,
            output=result.output,
        )

    def _keys(self, action: Keys) -> Outcome:
        typed = parse_keys(action.keys)
        refused = self._refusal(typed)
        if refused:
            return refused
        line = typed[:-1] if typed.endswith("\r") else None
        if line and "\r" not in line and nested_shell(line) is not None and self.terminal.at_prompt:
            # `ssh host` typed at the prompt: entered as run() enters it, so that shell gets the markers.
            return self._run(Run(line, timeout=max(action.wait.timeout, 30.0)))
        if self.terminal.asks_for_secret():
            # A password prompt (here, or on the far side of ssh as the screen shows it): clive never
            # types a secret it would have to make up or record.
            return Outcome(
                False,
                "refused: the program is asking for a password; clive does not type secrets "
                "(run it where a person can answer, or give the credential through the environment)",
                refused=True,
            )
        self.terminal.press(action.keys)
        wait = action.wait
        if wait.kind == "prompt":
            self.terminal.wait_prompt(timeout=wait.timeout)
        elif wait.kind == "idle":
            self.terminal.wait_idle(quiet_ms=int(wait.value or 300), timeout=wait.timeout)
        elif wait.kind == "text":
            self.terminal.wait_text(str(wait.value), timeout=wait.timeout)
        elif wait.kind == "regex":
            self.terminal.wait_text(re.compile(str(wait.value)), timeout=wait.timeout)
        elif wait.kind == "ready":
            self.terminal.wait_ready(timeout=wait.timeout)
        return Outcome(True, "sent")  # the policy knows which; the screen shows what they did

    def _path(self, raw: str) -> Path | Outcome:
        path = (self.workdir / raw).resolve()
        if path != self.workdir and self.workdir not in path.parents:
            return Outcome(False, f"refused: {raw} is outside the workdir {self.workdir}", refused=True)
        return path

    def _writable(self, raw: str) -> Path | Outcome:
        path = self._path(raw)
        if isinstance(path, Outcome):
            return path
        relative = path.relative_to(self.workdir).as_posix()
        for pattern in self.readonly:
            if fnmatch.fnmatch(relative, pattern):
                return Outcome(False, f"refused: {relative} is read-only ({pattern})", refused=True)
        return path

    def _read(self, action: ReadFile) -> Outcome:
        path = self._path(action.path)
        if isinstance(path, Outcome):
            return path
        if not path.is_file():
            return Outcome(False, f"error: no such file: {action.path}")
        lines = path.read_text(errors="replace").splitlines()
        start = action.start or 1
        end = action.end or len(lines)
        chosen = lines[start - 1 : end]
        body = "\n".join(f"{n:>5}  {line}" for n, line in enumerate(chosen, start))
        if len(body) > READ_LIMIT:
            body = body[:READ_LIMIT] + "\n[... cut: ask for a line range ...]"
        return Outcome(True, f"{action.path} lines {start}-{min(end, len(lines))} of {len(lines)}\n{body}")

    def _write(self, action: WriteFile) -> Outcome:
        path = self._writable(action.path)
        if isinstance(path, Outcome):
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, action.content)
        return Outcome(True, f"wrote {action.path} ({len(action.content)} characters)")

    def _edit(self, action: EditFile) -> Outcome:
        path = self._writable(action.path)
        if isinstance(path, Outcome):
            return path
        if not path.is_file():
            return Outcome(False, f"error: no such file: {action.path}")
        text = path.read_text()
        count = text.count(action.old)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times (must be unique)"
            return Outcome(False, f"error: edit_file {action.path}: old text {where}")
        _atomic_write(path, text.replace(action.old, action.new, 1))
        return Outcome(True, f"edited {action.path}")


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.clive-tmp")
    tmp.write_text(content)
    mode = path.stat().st_mode if path.exists() else None
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(path)


def _with_duration(outcome: Outcome, duration: float) -> Outcome:
    return Outcome(
        outcome.ok, outcome.text, outcome.exit_code, duration, outcome.output, outcome.refused,
        outcome.checkpoint,
    )
