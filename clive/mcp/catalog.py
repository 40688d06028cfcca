"""The tools a client sees: names, descriptions written for a model, JSON schemas, and the check of a
call's arguments against them (one line naming the bad argument)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clive.mcp.errors import ToolFailure

MAX_TIMEOUT = 3600.0  # seconds; a client's own request timeout is usually far shorter
MAX_SIZE = 1000  # columns or rows


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, what a model is told about it, and its input schema."""

    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool = False  # it only looks: no keys reach the terminal, nothing is written


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


_TERMINAL = {"type": "string", "description": "The terminal's id from open_terminal, e.g. \"t1\"."}


def _timeout(default: float, what: str) -> dict[str, Any]:
    return {
        "type": "number",
        "minimum": 0,
        "maximum": MAX_TIMEOUT,
        "default": default,
        "description": f"Seconds to wait for {what} (default {default:g}).",
    }


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "open_terminal",
        "Open a new terminal: a real pseudo-terminal running a shell (bash by default) that you drive like "
        "a person at a keyboard. Returns its id (pass it to the other tools), its screen and its state. "
        "Everything that happens in it is recorded as a clive session on disk (replay it with `clive replay`). "
        "With sandbox=true the shell runs under bubblewrap: only the working directory and a scratch folder "
        "are writable and there is no network.",
        _object({
            "cols": {"type": "integer", "minimum": 2, "maximum": MAX_SIZE, "default": 120,
                     "description": "Screen width in columns (default 120)."},
            "rows": {"type": "integer", "minimum": 2, "maximum": MAX_SIZE, "default": 32,
                     "description": "Screen height in rows (default 32)."},
            "cwd": {"type": "string",
                    "description": "Working directory (default: the directory the server was started in)."},
            "shell": {"type": "string",
                      "description": "The shell to start: bash (default: $SHELL when it is bash or zsh) or zsh. "
                      "Any other program starts too, but then `run` is not available: use press/type/wait."},
            "sandbox": {"type": "boolean", "default": False,
                        "description": "Run the shell under bubblewrap: only cwd and a scratch folder writable, "
                        "no network."},
        }),
    ),
    ToolSpec(
        "list_terminals",
        "List the open terminals: id, working directory, size, what each is doing now, and where its session "
        "is recorded.",
        _object({}),
        read_only=True,
    ),
    ToolSpec(
        "close_terminal",
        "Close a terminal: ends its shell and everything started in it, and finishes its recorded session.",
        _object({"terminal": _TERMINAL}, ("terminal",)),
    ),
    ToolSpec(
        "run",
        "Run one shell command at the prompt and return its exit code, duration and complete output (also "
        "what scrolled off the screen). Returns the moment the shell reports the exit code. If the command "
        "stops to wait for input (a question, a password, an editor like vim, a REPL) it returns early with "
        "the screen and state instead: answer with press/type, then `wait` with until=\"prompt\", which "
        "reports the exit code once it ends. One line only; join commands with ';' or '&&'. Long output is "
        "cut in the middle; read the rest with read_output.",
        _object({
            "terminal": _TERMINAL,
            "command": {"type": "string", "description": "The command line, e.g. \"make test\"."},
            "timeout": _timeout(120, "the command; past it the command keeps running and you get the screen"),
        }, ("terminal", "command")),
    ),
    ToolSpec(
        "read_output",
        "Read part of a command's complete output that run cut short: run reports the run number and where "
        "the cut starts.",
        _object({
            "terminal": _TERMINAL,
            "run": {"type": "integer", "minimum": 1, "description": "The run number that run reported."},
            "offset": {"type": "integer", "minimum": 0, "default": 0,
                       "description": "The first character to return (0 is the start of the output)."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200000, "default": 16000,
                      "description": "How many characters to return at most (default 16000)."},
        }, ("terminal", "run")),
        read_only=True,
    ),
    ToolSpec(
        "press",
        "Send keys in key notation: plain characters are typed as they are, and <...> names a key: <Enter>, "
        "<Esc>, <Tab>, <BS>, <Up>/<Down>/<Left>/<Right>, <Home>, <End>, <PageUp>, <PageDown>, <F1>..<F12>, "
        "<C-c> (Ctrl-C), <C-d>, <M-x> (Alt-x), <lt> for a literal '<'. Example: \"ihello<Esc>:wq<Enter>\" in "
        "vim. Returns at once; use wait to let the program react. Refused while the program asks for a "
        "password.",
        _object({
            "terminal": _TERMINAL,
            "keys": {"type": "string", "description": "The keys, e.g. \":wq<Enter>\" or \"<C-c>\"."},
        }, ("terminal", "keys")),
    ),
    ToolSpec(
        "type",
        "Type text exactly as given (no key notation: '<' is just '<'); a newline in the text is the Enter "
        "key. Returns at once; use wait to let the program react. Refused while the program asks for a "
        "password.",
        _object({
            "terminal": _TERMINAL,
            "text": {"type": "string", "description": "The text to type."},
        }, ("terminal", "text")),
    ),
    ToolSpec(
        "look",
        "See the terminal as a person would: the screen as text with row numbers and the cursor, and what "
        "the terminal is doing (at the prompt, waiting for a line / keys / a password, running, blocked, "
        "exited). With changes_only, only the rows that changed since your last look or wait.",
        _object({
            "terminal": _TERMINAL,
            "changes_only": {"type": "boolean", "default": False,
                             "description": "Only what changed since the last look (falls back to the whole "
                             "screen when that is shorter)."},
            "scrollback": {"type": "integer", "minimum": 0, "maximum": 5000, "default": 0,
                           "description": "Also show this many lines that scrolled off the top."},
        }, ("terminal",)),
        read_only=True,
    ),
    ToolSpec(
        "wait",
        "Wait, then show the screen and state. until=\"ready\" (default): until it is your turn: the program "
        "waits for input, the prompt is back, or it exited. until=\"prompt\": until the shell prompt is back "
        "(and report the exit code of a command that run left running). until=\"text\": until the regular "
        "expression `pattern` matches the screen. until=\"idle\": until nothing was printed for quiet_ms.",
        _object({
            "terminal": _TERMINAL,
            "until": {"type": "string", "enum": ["ready", "prompt", "text", "idle"], "default": "ready",
                      "description": "What to wait for."},
            "pattern": {"type": "string", "description": "For until=\"text\": a regular expression (Python; ^ and "
                        "$ match at each line of the screen)."},
            "quiet_ms": {"type": "integer", "minimum": 1, "maximum": 60000, "default": 300,
                         "description": "For until=\"idle\": milliseconds without output."},
            "timeout": _timeout(30, "it"),
        }, ("terminal",)),
        read_only=True,
    ),
    ToolSpec(
        "interrupt",
        "Bring the prompt back: Ctrl-C, then SIGTERM, then SIGKILL to the program in the foreground, each "
        "given a moment. Use it to stop a command that runs too long or to leave a program that hangs.",
        _object({"terminal": _TERMINAL}, ("terminal",)),
    ),
    ToolSpec(
        "resize",
        "Resize the terminal; the program in it is told (SIGWINCH) and redraws.",
        _object({
            "terminal": _TERMINAL,
            "cols": {"type": "integer", "minimum": 2, "maximum": MAX_SIZE, "description": "New width."},
            "rows": {"type": "integer", "minimum": 2, "maximum": MAX_SIZE, "description": "New height."},
        }, ("terminal", "cols", "rows")),
    ),
    ToolSpec(
        "checkpoint",
        "Save the whole working directory of the terminal (a git repository) as a checkpoint commit under "
        "refs/clive/<session>/<n>, to compare or go back to later. Your branch, HEAD, staged changes and "
        "files are not touched.",
        _object({
            "terminal": _TERMINAL,
            "message": {"type": "string", "description": "What this checkpoint holds, e.g. \"tests pass\"."},
        }, ("terminal", "message")),
    ),
)

BY_NAME: dict[str, ToolSpec] = {tool.name: tool for tool in TOOLS}

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def check_arguments(spec: ToolSpec, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """The arguments with defaults filled in; ToolFailure names the first one that is wrong."""
    given = dict(arguments or {})
    properties: dict[str, Any] = spec.schema["properties"]
    unknown = sorted(set(given) - set(properties))
    if unknown:
        known = ", ".join(properties) or "none"
        raise ToolFailure(f"{spec.name}: unknown argument {unknown[0]!r} (it takes: {known})")
    for name in spec.schema.get("required", ()):
        if given.get(name) is None:
            raise ToolFailure(f"{spec.name}: missing argument {name!r}")
    checked: dict[str, Any] = {}
    for name, prop in properties.items():
        value = given.get(name)
        if value is None:
            checked[name] = prop.get("default")
            continue
        checked[name] = _check(spec.name, name, prop, value)
    return checked


def _check(tool: str, name: str, prop: Mapping[str, Any], value: Any) -> Any:
    kind = prop["type"]
    # bool is an int in Python, and JSON numbers may come as 3.0 for an integer.
    ok = isinstance(value, _TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise ToolFailure(f"{tool}: {name} must be {'an' if kind == 'integer' else 'a'} {kind}, got {value!r}")
    if kind == "number" and not math.isfinite(value):
        raise ToolFailure(f"{tool}: {name} must be a finite number, got {value!r}")
    if "enum" in prop and value not in prop["enum"]:
        raise ToolFailure(f"{tool}: {name} must be one of {', '.join(prop['enum'])}; got {value!r}")
    if "minimum" in prop and value < prop["minimum"]:
        raise ToolFailure(f"{tool}: {name} must be at least {prop['minimum']}, got {value!r}")
    if "maximum" in prop and value > prop["maximum"]:
        raise ToolFailure(f"{tool}: {name} must be at most {prop['maximum']}, got {value!r}")
    return value
