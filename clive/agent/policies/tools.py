"""The tools a model sees: one per action type, shaped so ``parse_action({"type": name, **input})``
accepts what the schema allows."""

from __future__ import annotations

from typing import Any

from clive.agent.actions import RESULT_STATUSES, WAIT_KINDS


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


_PATH = {"type": "string", "description": "Path relative to the workdir."}

TOOLS: list[dict[str, Any]] = [
    _tool(
        "keys",
        "Type keys into the terminal, then wait. Text is typed as is; named keys in angle "
        "brackets: <Enter> <Tab> <Esc> <BS> <Space> <Up> <Down> <Left> <Right> <Home> <End> "
        "<PageUp> <PageDown> <F1>..<F12>, <C-c> (Ctrl+C), <M-x> (Alt+X); <lt> types a literal "
        "'<'. For interactive programs (vim, REPLs, prompts); use run for shell commands.",
        {
            "keys": {"type": "string", "description": 'e.g. ":wq<Enter>" or "<C-c>"'},
            "wait": {
                "type": "object",
                "description": "What to wait for afterwards (default: idle 300 ms). "
                "prompt: the shell prompt is back; idle: no output for value ms; "
                "text / regex: value appears on screen; ready: the program waits for input; "
                "none: do not wait.",
                "properties": {
                    "kind": {"type": "string", "enum": list(WAIT_KINDS)},
                    "value": {
                        "type": ["string", "integer"],
                        "description": "text or regex for text/regex waits, quiet ms for idle",
                    },
                    "timeout": {"type": "number", "description": "seconds (default 10)"},
                },
                "required": ["kind"],
                "additionalProperties": False,
            },
        },
        ["keys"],
    ),
    _tool(
        "run",
        "Run one shell command at the prompt and wait for it to finish; returns its exit code, "
        "output and duration. Use this for shell commands, not keys.",
        {
            "command": {"type": "string"},
            "timeout": {"type": "number", "description": "seconds (default 600)"},
        },
        ["command"],
    ),
    _tool(
        "read_file",
        "Read a file of the workdir, optionally only lines start..end (1-based, inclusive).",
        {
            "path": _PATH,
            "start": {"type": "integer", "minimum": 1},
            "end": {"type": "integer", "minimum": 1},
        },
        ["path"],
    ),
    _tool(
        "write_file",
        "Write a whole file of the workdir (created or replaced). Content is not typed, so size "
        "is no problem.",
        {"path": _PATH, "content": {"type": "string"}},
        ["path", "content"],
    ),
    _tool(
        "edit_file",
        "Replace exactly one occurrence of old with new in a file of the workdir. old must match "
        "the file exactly, whitespace included, and occur once.",
        {"path": _PATH, "old": {"type": "string"}, "new": {"type": "string"}},
        ["path", "old", "new"],
    ),
    _tool(
        "checkpoint",
        "Commit the working tree as a checkpoint, to come back to later.",
        {"message": {"type": "string"}},
        ["message"],
    ),
    _tool(
        "result",
        "Report the outcome of the current experiment: its metric (null if it crashed), keep "
        "or discard (or crash), and a short description of what was tried.",
        {
            "metric": {"type": ["number", "null"]},
            "status": {"type": "string", "enum": list(RESULT_STATUSES)},
            "description": {"type": "string"},
        },
        ["metric", "status", "description"],
    ),
    _tool(
        "done",
        "Finish: the task is complete (or cannot be done). Summarise what was achieved.",
        {"summary": {"type": "string"}},
        ["summary"],
    ),
]

TOOL_NAMES: tuple[str, ...] = tuple(tool["name"] for tool in TOOLS)  # == actions.ACTION_TYPES
