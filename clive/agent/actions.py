"""The actions an agent can take: one schema for every policy, the model's tools and events.jsonl."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

WAIT_KINDS = ("prompt", "idle", "text", "regex", "ready", "none")
RESULT_STATUSES = ("keep", "discard", "crash")


class ActionError(ValueError):
    """An action that cannot be built from what a policy or a playbook gave: names the bad field."""


@dataclass(frozen=True, slots=True)
class Wait:
    """What to wait for after sending keys."""

    kind: Literal["prompt", "idle", "text", "regex", "ready", "none"] = "idle"
    value: str | int | None = None  # text or regex for text/regex, quiet ms for idle
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Keys:
    """Type keys in key notation (``":wq<Enter>"``), then wait."""

    keys: str
    wait: Wait = field(default_factory=Wait)
    type: Literal["keys"] = "keys"


@dataclass(frozen=True, slots=True)
class Run:
    """Run a shell command at the prompt and wait for its exit code."""

    command: str
    timeout: float = 600.0
    type: Literal["run"] = "run"


@dataclass(frozen=True, slots=True)
class ReadFile:
    """Read a file in the workdir, optionally lines start..end (1-based, inclusive)."""

    path: str
    start: int | None = None
    end: int | None = None
    type: Literal["read_file"] = "read_file"


@dataclass(frozen=True, slots=True)
class WriteFile:
    """Write a whole file in the workdir (the file channel: content is never typed)."""

    path: str
    content: str
    type: Literal["write_file"] = "write_file"


@dataclass(frozen=True, slots=True)
class EditFile:
    """Replace exactly one occurrence of ``old`` with ``new`` in a file of the workdir."""

    path: str
    old: str
    new: str
    type: Literal["edit_file"] = "edit_file"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Record the working tree as a checkpoint commit."""

    message: str
    type: Literal["checkpoint"] = "checkpoint"


@dataclass(frozen=True, slots=True)
class Result:
    """Report an experiment's outcome (the experiment loop decides what to do with it)."""

    metric: float | None
    status: Literal["keep", "discard", "crash"]
    description: str
    type: Literal["result"] = "result"


@dataclass(frozen=True, slots=True)
class Done:
    """The policy has finished."""

    summary: str
    type: Literal["done"] = "done"


Action = Keys | Run | ReadFile | WriteFile | EditFile | Checkpoint | Result | Done

_FIELDS: dict[str, tuple[type, dict[str, tuple[tuple[type, ...], bool]]]] = {
    # type name -> (class, {field: (accepted python types, required)})
    "keys": (Keys, {"keys": ((str,), True), "wait": ((dict, str), False)}),
    "run": (Run, {"command": ((str,), True), "timeout": ((int, float), False)}),
    "read_file": (
        ReadFile,
        {"path": ((str,), True), "start": ((int,), False), "end": ((int,), False)},
    ),
    "write_file": (WriteFile, {"path": ((str,), True), "content": ((str,), True)}),
    "edit_file": (
        EditFile,
        {"path": ((str,), True), "old": ((str,), True), "new": ((str,), True)},
    ),
    "checkpoint": (Checkpoint, {"message": ((str,), True)}),
    "result": (
        Result,
        {
            "metric": ((int, float, type(None)), True),
            "status": ((str,), True),
            "description": ((str,), True),
        },
    ),
    "done": (Done, {"summary": ((str,), True)}),
}

ACTION_TYPES = tuple(_FIELDS)


def _parse_wait(raw: dict[str, Any] | str) -> Wait:
    if isinstance(raw, str):
        raw = {"kind": raw}
    kind = raw.get("kind", "idle")
    if not isinstance(kind, str) or kind not in WAIT_KINDS:
        raise ActionError(f"wait.kind: unknown kind {kind!r} (expected one of {', '.join(WAIT_KINDS)})")
    unknown = set(raw) - {"kind", "value", "timeout"}
    if unknown:
        raise ActionError(f"wait: unknown field {sorted(unknown)[0]!r}")
    value = raw.get("value")
    if kind in ("text", "regex") and not isinstance(value, str):
        raise ActionError(f"wait.value: a {kind} wait needs a string value, got {value!r}")
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise ActionError(f"wait.value: bad regex {value!r}: {exc}") from None
    if kind == "idle":
        if value is None:
            value = 300
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ActionError(f"wait.value: idle needs a positive number of ms, got {value!r}")
    timeout = raw.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ActionError(f"wait.timeout: must be a positive number of seconds, got {timeout!r}")
    return Wait(kind=kind, value=value, timeout=float(timeout))


def parse_action(raw: Any) -> Action:
    """Build an action from its JSON form, e.g. ``{"type": "run", "command": "make"}``."""
    if not isinstance(raw, dict):
        raise ActionError(f"an action must be a mapping, got {type(raw).__name__}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ActionError(f"type: unknown action {kind!r} (expected one of {', '.join(ACTION_TYPES)})")
    cls, spec = _FIELDS[kind]
    unknown = set(raw) - set(spec) - {"type"}
    if unknown:
        raise ActionError(f"{kind}: unknown field {sorted(unknown)[0]!r}")
    kwargs: dict[str, Any] = {}
    for name, (types, required) in spec.items():
        if name not in raw:
            if required:
                raise ActionError(f"{kind}: missing field {name!r}")
            continue
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise ActionError(f"{kind}.{name}: expected {wanted}, got {value!r}")
        kwargs[name] = value
    if kind == "keys" and "wait" in kwargs:
        kwargs["wait"] = _parse_wait(kwargs["wait"])
    if kind == "run" and "timeout" in kwargs:
        if kwargs["timeout"] <= 0:
            raise ActionError(f"run.timeout: must be positive, got {kwargs['timeout']!r}")
        kwargs["timeout"] = float(kwargs["timeout"])
    if kind == "result":
        if kwargs["status"] not in RESULT_STATUSES:
            raise ActionError(
                f"result.status: expected keep, discard or crash, got {kwargs['status']!r}"
            )
        metric = kwargs["metric"]
        if metric is not None:
            if not math.isfinite(metric):
                raise ActionError(f"result.metric: must be a finite number, got {metric!r}")
            kwargs["metric"] = float(metric)
    if kind == "read_file":
        for name in ("start", "end"):
            if name in kwargs and kwargs[name] < 1:
                raise ActionError(f"read_file.{name}: line numbers start at 1, got {kwargs[name]}")
    return cls(**kwargs)


def action_to_dict(action: Action) -> dict[str, Any]:
    """The JSON form of an action, ``type`` first; ``parse_action`` reads it back."""
    data = asdict(action)
    return {"type": data.pop("type"), **data}
