"""Playbooks: Markdown with YAML front matter; the front matter drives the machine, the body
the model.

``load_playbook`` validates everything it can before anything runs, so a bad playbook fails with
one line naming the file, the line of the offending key and the field (``PlaybookError``; the CLI
maps it to exit code 2). Nothing in a playbook is executed here.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from clive.agent.actions import Action, ActionError, parse_action

DIRECTIONS = ("maximize", "minimize")
# The offline search's strategies (``search.strategy``, ``--search``): Optuna's samplers, and the
# hill-climber as greedy.
STRATEGIES = ("tpe", "greedy", "random", "grid", "cmaes", "gp")
_DELIMITERS = ("---", "...")
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class PlaybookError(Exception):
    """A playbook that cannot be used; ``str()`` is ``<file>:<line>: <field>: <problem>``."""

    def __init__(self, path: Path | str, line: int, field_name: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = _one_line(field_name)
        self.problem = _one_line(problem)
        super().__init__(f"{self.path}:{line}: {self.field}: {self.problem}")


def _one_line(text: str) -> str:
    """Whitespace collapsed and control characters escaped: an error message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(text.split()))


@dataclass(frozen=True, slots=True)
class Budget:
    """Time and count limits of an experiment run."""

    experiment_seconds: float = 300.0  # per experiment: check + eval (all repeats)
    max_experiments: int | None = None
    wall_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """When an experiment run ends early."""

    target: float | None = None  # the metric reached (in the playbook's direction)
    plateau: int | None = None  # this many discards in a row


@dataclass(frozen=True, slots=True)
class SandboxView:
    """What a sandboxed run sees beyond the workdir: ``sandbox:`` in the front matter."""

    network: bool = False  # reach the network (``--sandbox-net`` says the same)
    home: tuple[str, ...] = ()  # dotfiles of $HOME shown read-only, e.g. .gitconfig
    paths: tuple[str, ...] = ()  # more host folders shown read-only (a dataset, a toolchain)
    gpu: bool | None = None  # pass the GPUs through (default: when the playbook needs one)


@dataclass(frozen=True, slots=True)
class Move:
    """One named move of the offline search space: replace a regex group's text in a file."""

    name: str
    file: str  # relative to the workdir
    pattern: str  # exactly one group, matched with re.MULTILINE
    values: tuple[str, ...]  # alternatives for the group's text, as written in the YAML


@dataclass(frozen=True, slots=True)
class Expect:
    """What a scripted step expects on the screen afterwards: a text or a regex."""

    text: str | None = None
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class Playbook:
    """A parsed, validated playbook."""

    path: Path
    name: str
    body: str
    workdir: Path | None = None
    setup: tuple[str, ...] = ()
    eval: str | None = None
    metric: re.Pattern[str] | None = None  # compiled with re.MULTILINE, exactly one group
    direction: str = "maximize"
    check: str | None = None
    budget: Budget = field(default_factory=Budget)
    repeats: int = 1
    noise: float = 0.02
    editable: tuple[str, ...] = ()
    readonly: tuple[str, ...] = ()
    stop: Stop = field(default_factory=Stop)
    search: tuple[Move, ...] = ()
    search_strategy: str | None = None  # the offline search's sampler (None: the default)
    search_seed: int | None = None
    steps: tuple[Action, ...] = ()
    expects: tuple[Expect | None, ...] = ()  # parallel to steps
    requires: tuple[str, ...] = ()
    model: str | None = None
    workers: int = 1  # experiments in flight at once (``--workers`` overrides)
    resources: dict[str, float] = field(default_factory=dict)  # each worker's: cpus, gpus, or a Ray resource
    sandbox: SandboxView = field(default_factory=SandboxView)

    @property
    def needs_gpu(self) -> bool:
        """Whether the work runs on a GPU: a GPU resource per worker, or an NVIDIA tool it requires."""
        if self.sandbox.gpu is not None:
            return self.sandbox.gpu
        return self.resources.get("gpus", 0) > 0 or any(c in _GPU_TOOLS for c in self.requires)

    @property
    def is_experiment(self) -> bool:
        """Whether this playbook measures something (it has an eval command and a metric)."""
        return self.eval is not None and self.metric is not None


def load_playbook(path: Path | str, workdir: Path | str | None = None) -> Playbook:
    """Read and validate a playbook; ``workdir`` (the CLI's ``--workdir``) overrides its own."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise PlaybookError(path, 1, "file", "no such file") from None
    except IsADirectoryError:
        raise PlaybookError(path, 1, "file", "is a directory, not a playbook") from None
    except OSError as exc:
        raise PlaybookError(path, 1, "file", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = _line_of_byte(path, exc.start)
        raise PlaybookError(path, line, "file", f"not UTF-8 text ({exc.reason})") from None
    return _parse(path, text, workdir)


def missing_requirements(pb: Playbook) -> list[str]:
    """The commands of ``requires`` that are not on PATH."""
    return [command for command in pb.requires if shutil.which(command) is None]


def _line_of_byte(path: Path, offset: int) -> int:
    """The 1-based line holding byte ``offset`` of a file."""
    try:
        return path.read_bytes()[:offset].count(b"\n") + 1
    except OSError:
        return 1


def _split_front_matter(path: Path, text: str) -> tuple[str | None, str]:
    """The front matter's YAML text (None if there is none) and the body."""
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        return None, text
    for index in range(1, len(lines)):
        if lines[index].rstrip() in _DELIMITERS:
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :])
    raise PlaybookError(path, 1, "front matter", "no closing '---' line")


def _parse(path: Path, text: str, workdir_override: Path | str | None) -> Playbook:
    yaml_text, body = _split_front_matter(path, text)
    resolved = path.resolve()
    if yaml_text is None:
        # A plain program.md (autoresearch style): everything is for the model.
        workdir = _override_workdir(path, workdir_override)
        return Playbook(path=resolved, name=path.stem, body=text, workdir=workdir)
    reader = _Reader(path, yaml_text)
    root = reader.root()
    return reader.playbook(root, resolved, body, workdir_override)


def _override_workdir(path: Path, override: Path | str | None) -> Path | None:
    if override is None:
        return None
    # Given on the command line, not in the file: the error points at the file's first line.
    try:
        workdir = Path(override).expanduser().resolve()
        is_dir = workdir.is_dir()
    except (OSError, ValueError, RuntimeError) as exc:
        raise PlaybookError(path, 1, "workdir", f"bad path {str(override)!r}: {exc}") from None
    if not is_dir:
        raise PlaybookError(path, 1, "workdir", f"{override} is not a directory")
    return workdir


_TOP_FIELDS = (
    "name",
    "workdir",
    "setup",
    "eval",
    "metric",
    "direction",
    "check",
    "budget",
    "repeats",
    "noise",
    "editable",
    "readonly",
    "stop",
    "search",
    "steps",
    "requires",
    "model",
    "workers",
    "resources",
    "sandbox",
)
_GPU_TOOLS = ("nvcc", "nvidia-smi", "rocm-smi", "hipcc")
# A resource name as Ray takes it; cpus and gpus are the usual ones.
_RESOURCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")


class _Reader:
    """Walks the composed YAML nodes, so every error can name the line of its key."""

    def __init__(self, path: Path, yaml_text: str) -> None:
        self.path = path
        self.yaml_text = yaml_text
        self.loader: yaml.SafeLoader

    # --- errors and lines -------------------------------------------------------------------

    def line(self, node: Node | None) -> int:
        # Front matter starts on the file's line 2; marks count from 0.
        return 1 if node is None else node.start_mark.line + 2

    def fail(self, node: Node | None, name: str, problem: str) -> NoReturn:
        raise PlaybookError(self.path, self.line(node), name, problem)

    def root(self) -> MappingNode | None:
        try:
            self.loader = yaml.SafeLoader(self.yaml_text)  # checks for unprintable characters
            node = self.loader.get_single_node()
            self.loader.dispose()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 2 if mark is not None else 1
            raise PlaybookError(self.path, line, "front matter", f"bad YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise PlaybookError(self.path, 1, "front matter", f"bad YAML: {exc}") from None
        except RecursionError:
            raise PlaybookError(self.path, 1, "front matter", "bad YAML: nested too deeply") from None
        if node is None or (isinstance(node, ScalarNode) and node.tag == _NULL_TAG):
            return None  # empty front matter: all defaults
        if not isinstance(node, MappingNode):
            self.fail(node, "front matter", f"must be a mapping of fields, got {_kind(node)}")
        return node

    # --- generic readers --------------------------------------------------------------------

    def value(self, node: Node, name: str) -> Any:
        """The Python value of a node (plain YAML types only)."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.fail(node, name, f"bad YAML value: {problem}")

    def mapping(self, node: Node, name: str, allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]]:
        """The entries of a mapping node by key, each as (key node, value node)."""
        if not isinstance(node, MappingNode):
            self.fail(node, name, f"expected a mapping, got {self.shown(node)}")
        try:
            self.loader.flatten_mapping(node)  # resolves '<<' merge keys in place
        except (yaml.YAMLError, RecursionError) as exc:
            self.fail(node, name, f"bad YAML merge: {getattr(exc, 'problem', exc)}")
        entries: dict[str, tuple[Node, Node]] = {}
        prefix = "" if name == "front matter" else f"{name}."
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (_STR_TAG, _INT_TAG):
                self.fail(key_node, name, f"keys must be plain names, got {self.shown(key_node)}")
            key = key_node.value
            if key not in allowed:
                where = "a field" if name == "front matter" else f"a field of {name}"
                self.fail(
                    key_node,
                    f"{prefix}{key}",
                    f"unknown field (not {where}; known: {', '.join(allowed)})",
                )
            if key in entries:
                self.fail(key_node, f"{prefix}{key}", "given twice")
            entries[key] = (key_node, value_node)
        return entries

    def shown(self, node: Node) -> str:
        """A node as an error message shows it: ``int 5``, ``a list``, ``nothing (null)``."""
        if isinstance(node, ScalarNode):
            try:
                value = self.loader.construct_object(node, deep=True)
            except Exception:  # an odd tag or timestamp: show the text as written
                return f"{node.tag} {node.value!r}"
            return f"{type(value).__name__} {value!r}" if value is not None else "nothing (null)"
        return _kind(node)

    def text(self, node: Node, name: str, *, key: Node | None = None) -> str:
        if not isinstance(node, ScalarNode) or node.tag not in (_STR_TAG,):
            self.fail(key or node, name, f"expected a string, got {self.shown(node)}")
        return self.value(node, name)

    def number(
        self,
        node: Node,
        name: str,
        *,
        key: Node | None = None,
        minimum: float = 0.0,
        strict: bool = True,
    ) -> float:
        value = self.value(node, name) if isinstance(node, ScalarNode) else None
        if not isinstance(node, ScalarNode) or node.tag not in (_INT_TAG, _FLOAT_TAG):
            self.fail(key or node, name, f"expected a number, got {self.shown(node)}")
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            self.fail(key or node, name, f"expected a finite number, got {node.value!r}")
        if value < minimum or (strict and value == minimum):
            bound = f"more than {minimum:g}" if strict else f"at least {minimum:g}"
            self.fail(key or node, name, f"must be {bound}, got {node.value!r}")
        return value

    def integer(self, node: Node, name: str, *, key: Node | None = None, minimum: int = 1) -> int:
        if not isinstance(node, ScalarNode) or node.tag != _INT_TAG:
            self.fail(key or node, name, f"expected an integer, got {self.shown(node)}")
        value = self.value(node, name)
        if value < minimum:
            self.fail(key or node, name, f"must be at least {minimum}, got {value!r}")
        return value

    def texts(self, node: Node, name: str, *, key: Node | None = None) -> tuple[str, ...]:
        """A string or a list of strings."""
        if isinstance(node, ScalarNode) and node.tag == _STR_TAG:
            return (self.value(node, name),)
        if not isinstance(node, SequenceNode):
            self.fail(key or node, name, f"expected a list of strings, got {self.shown(node)}")
        return tuple(self.text(item, f"{name}[{i}]") for i, item in enumerate(node.value))

    def regex(self, node: Node, name: str, *, key: Node | None = None, groups: int | None = None) -> re.Pattern[str]:
        source = self.text(node, name, key=key)
        try:
            pattern = re.compile(source, re.MULTILINE)
        except (re.error, RecursionError, OverflowError) as exc:
            self.fail(key or node, name, f"bad regex {source!r}: {exc}")
        if groups is not None and pattern.groups != groups:
            self.fail(
                key or node,
                name,
                f"regex {source!r} must have exactly {groups} group(s), it has {pattern.groups}",
            )
        return pattern

    # --- the playbook -----------------------------------------------------------------------

    def playbook(self, root: MappingNode | None, path: Path, body: str, override: Path | str | None) -> Playbook:
        fields = self.mapping(root, "front matter", _TOP_FIELDS) if root is not None else {}
        got: dict[str, Any] = {}

        def node(name: str) -> tuple[Node, Node] | None:
            return fields.get(name)

        for name in ("name", "eval", "check", "model"):
            if entry := node(name):
                got[name] = self.text(entry[1], name, key=entry[0])
                if not got[name].strip():
                    self.fail(entry[0], name, "must not be empty")
        for name in ("setup", "editable", "readonly", "requires"):
            if entry := node(name):
                got[name] = self.texts(entry[1], name, key=entry[0])
        if entry := node("metric"):
            got["metric"] = self.regex(entry[1], "metric", key=entry[0], groups=1)
        if entry := node("direction"):
            direction = self.text(entry[1], "direction", key=entry[0])
            if direction not in DIRECTIONS:
                self.fail(entry[0], "direction", f"expected maximize or minimize, got {direction!r}")
            got["direction"] = direction
        if entry := node("repeats"):
            got["repeats"] = self.integer(entry[1], "repeats", key=entry[0])
        if entry := node("workers"):
            got["workers"] = self.integer(entry[1], "workers", key=entry[0])
        if entry := node("resources"):
            got["resources"] = self.resources(*entry)
        if entry := node("sandbox"):
            got["sandbox"] = self.sandbox(*entry)
        if entry := node("noise"):
            got["noise"] = self.number(entry[1], "noise", key=entry[0], strict=False)
        if entry := node("budget"):
            got["budget"] = self.budget(*entry)
        if entry := node("stop"):
            got["stop"] = self.stop(*entry)
        if entry := node("steps"):
            got["steps"], got["expects"] = self.steps(*entry)

        workdir = self.workdir(fields, override)
        got["workdir"] = workdir
        if workdir is not None and "editable" in fields:
            self.check_globs(workdir, fields["editable"][0], "editable", got["editable"], True)
        if workdir is not None and "readonly" in fields:
            self.check_globs(workdir, fields["readonly"][0], "readonly", got["readonly"], False)
        if entry := node("search"):
            key, value = entry
            if isinstance(value, MappingNode):  # {strategy: tpe, seed: 1, moves: [...]}
                settings = self.mapping(value, "search", ("strategy", "seed", "moves"))
                if "moves" not in settings:
                    self.fail(key, "search.moves", "missing (the knobs to search: a list of moves)")
                if entry := settings.get("strategy"):
                    got["search_strategy"] = self.strategy(*entry)
                if entry := settings.get("seed"):
                    got["search_seed"] = self.integer(entry[1], "search.seed", key=entry[0], minimum=0)
                key, value = settings["moves"]
            got["search"] = self.search(key, value, workdir, got.get("editable"), got.get("readonly"))

        # An experiment needs both halves of a measurement; a search space needs an experiment.
        if "search" in fields and "eval" not in fields:
            self.fail(
                fields["search"][0],
                "eval",
                "missing (a playbook with a search space needs an eval command and a metric)",
            )
        if "eval" in fields and "metric" not in fields:
            self.fail(
                fields["eval"][0],
                "metric",
                "missing (an eval needs a metric regex with one group to read its result)",
            )
        if "metric" in fields and "eval" not in fields:
            self.fail(
                fields["metric"][0],
                "eval",
                "missing (a metric is read from an eval command's output)",
            )
        got.setdefault("name", path.stem)
        return Playbook(path=path, body=body.lstrip("\n"), **got)

    def workdir(self, fields: dict[str, tuple[Node, Node]], override: Path | str | None) -> Path | None:
        if override is not None:
            return _override_workdir(self.path, override)
        if "workdir" not in fields:
            return None
        key, node = fields["workdir"]
        raw = self.text(node, "workdir", key=key)
        try:
            workdir = (self.path.parent / Path(raw).expanduser()).resolve()
            exists, is_dir = workdir.exists(), workdir.is_dir()
        except (OSError, ValueError, RuntimeError) as exc:
            self.fail(key, "workdir", f"bad path {raw!r}: {exc}")
        if not exists:
            self.fail(key, "workdir", f"{raw} does not exist (relative to {self.path.parent})")
        if not is_dir:
            self.fail(key, "workdir", f"{raw} is not a directory")
        return workdir

    def check_globs(self, workdir: Path, key: Node, name: str, globs: tuple[str, ...], must_match: bool) -> None:
        for glob in globs:
            if not glob.strip() or Path(glob).is_absolute() or ".." in Path(glob).parts:
                self.fail(key, name, f"{glob!r} must be a glob relative to the workdir")
            try:
                matches = any(p.is_file() for p in workdir.glob(glob))
            except (ValueError, NotImplementedError, OSError, RuntimeError) as exc:
                self.fail(key, name, f"bad glob {glob!r}: {exc}")
            if must_match and not matches:
                self.fail(key, name, f"{glob!r} matches no file in {workdir}")

    def budget(self, key: Node, node: Node) -> Budget:
        if isinstance(node, ScalarNode):  # "budget: 60" is the time per experiment
            return Budget(experiment_seconds=self.number(node, "budget", key=key))
        entries = self.mapping(node, "budget", ("experiment_seconds", "max_experiments", "wall_seconds"))
        got: dict[str, Any] = {}
        for name, (k, v) in entries.items():
            if name == "max_experiments":
                got[name] = self.integer(v, f"budget.{name}", key=k)
            else:
                got[name] = self.number(v, f"budget.{name}", key=k)
        return Budget(**got)

    def resources(self, key: Node, node: Node) -> dict[str, float]:
        """Each worker's share: ``{gpus: 1}``, ``{cpus: 2}``, or any resource the Ray cluster declares."""
        if not isinstance(node, MappingNode):
            self.fail(key, "resources", f"expected a mapping like {{gpus: 1}} or {{cpus: 1}}, got {self.shown(node)}")
        got: dict[str, float] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, ScalarNode) else ""
            if not _RESOURCE_NAME.fullmatch(name):
                self.fail(k, "resources", f"a resource is named like cpus, gpus or a Ray resource, got {self.shown(k)}")
            if name in got:
                self.fail(k, f"resources.{name}", "given twice")
            got[name] = self.number(v, f"resources.{name}", key=k, strict=name != "gpus")
        return got

    def sandbox(self, key: Node, node: Node) -> SandboxView:
        entries = self.mapping(node, "sandbox", ("network", "home", "paths", "gpu"))
        got: dict[str, Any] = {}
        for name in ("network", "gpu"):
            if entry := entries.get(name):
                value = self.value(entry[1], f"sandbox.{name}")
                if not isinstance(value, bool):
                    self.fail(entry[0], f"sandbox.{name}", f"expected true or false, got {self.shown(entry[1])}")
                got[name] = value
        if entry := entries.get("home"):
            got["home"] = self.texts(entry[1], "sandbox.home", key=entry[0])
            for name in got["home"]:
                if not name.strip() or Path(name).is_absolute() or ".." in Path(name).parts:
                    self.fail(entry[0], "sandbox.home", f"{name!r} must be a path relative to the home folder")
        if entry := entries.get("paths"):
            got["paths"] = tuple(str(Path(p).expanduser()) for p in self.texts(entry[1], "sandbox.paths", key=entry[0]))
            for path in got["paths"]:
                if not Path(path).is_absolute():
                    self.fail(entry[0], "sandbox.paths", f"{path!r} must be an absolute path")
        return SandboxView(**got)

    def stop(self, key: Node, node: Node) -> Stop:
        entries = self.mapping(node, "stop", ("target", "plateau"))
        got: dict[str, Any] = {}
        if entry := entries.get("target"):
            got["target"] = self.number(entry[1], "stop.target", key=entry[0], minimum=-math.inf)
        if entry := entries.get("plateau"):
            got["plateau"] = self.integer(entry[1], "stop.plateau", key=entry[0])
        return Stop(**got)

    def steps(self, key: Node, node: Node) -> tuple[tuple[Action, ...], tuple[Expect | None, ...]]:
        if not isinstance(node, SequenceNode):
            self.fail(key, "steps", f"expected a list of actions, got {self.shown(node)}")
        actions: list[Action] = []
        expects: list[Expect | None] = []
        for index, item in enumerate(node.value):
            name = f"steps[{index}]"
            if isinstance(item, ScalarNode) and item.tag == _STR_TAG:
                # A bare string is the common case: run this shell command.
                actions.append(self.action(item, name, {"type": "run", "command": item.value}))
                expects.append(None)
                continue
            if not isinstance(item, MappingNode):
                self.fail(item, name, f"expected an action mapping, got {self.shown(item)}")
            raw = self.value(item, name)
            if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
                self.fail(item, name, "an action's keys must be plain names")
            expect = raw.pop("expect", None)
            expects.append(self.expect(item, f"{name}.expect", expect) if expect is not None else None)
            actions.append(self.action(item, name, raw))
        return tuple(actions), tuple(expects)

    def action(self, node: Node, name: str, raw: dict[str, Any]) -> Action:
        if not isinstance(raw.get("type"), str | None):
            # parse_action looks the type up in a dict: an unhashable one must not reach it
            self.fail(self.key_line_node(node, "step.type"), name, f"type: expected a string, got {raw['type']!r}")
        try:
            return parse_action(raw)
        except (ActionError, TypeError, ValueError) as exc:
            self.fail(self.key_line_node(node, str(exc)), name, str(exc))

    def key_line_node(self, node: Node, message: str) -> Node:
        """The key an ActionError names (``run.timeout: …`` → ``timeout``), else the step."""
        match = re.match(r"\w+\.(\w+)", message)
        if match and isinstance(node, MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == match.group(1):
                    return key_node
        return node

    def expect(self, step: Node, name: str, raw: Any) -> Expect:
        at = self.key_line_node(step, "step.expect")
        if isinstance(raw, str):
            return Expect(text=raw)
        if not isinstance(raw, dict) or len(raw) != 1 or not set(raw) <= {"text", "regex"}:
            self.fail(at, name, f"expected a text or {{regex: ...}} or {{text: ...}}, got {raw!r}")
        ((kind, value),) = raw.items()
        if not isinstance(value, str):
            self.fail(at, f"{name}.{kind}", f"expected a string, got {value!r}")
        if kind == "regex":
            try:
                re.compile(value)
            except (re.error, RecursionError, OverflowError) as exc:
                self.fail(at, f"{name}.regex", f"bad regex {value!r}: {exc}")
            return Expect(regex=value)
        return Expect(text=value)

    def search(
        self,
        key: Node,
        node: Node,
        workdir: Path | None,
        editable: tuple[str, ...] | None,
        readonly: tuple[str, ...] | None,
    ) -> tuple[Move, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.fail(key, "search", f"expected a non-empty list of moves, got {self.shown(node)}")
        moves: list[Move] = []
        for index, item in enumerate(node.value):
            name = f"search[{index}]"
            entries = self.mapping(item, name, ("name", "file", "pattern", "values"))
            for required in ("name", "file", "pattern", "values"):
                if required not in entries:
                    self.fail(item, f"{name}.{required}", "missing")
            move_name = self.text(entries["name"][1], f"{name}.name", key=entries["name"][0])
            if any(m.name == move_name for m in moves):
                self.fail(entries["name"][0], f"{name}.name", f"{move_name!r} is used twice")
            name = f"search[{index}] ({move_name})"
            file_key, file_node = entries["file"]
            file = self.text(file_node, f"{name}.file", key=file_key)
            pattern_key, pattern_node = entries["pattern"]
            pattern = self.regex(pattern_node, f"{name}.pattern", key=pattern_key, groups=1)
            values = self.move_values(*entries["values"], f"{name}.values")
            if workdir is not None:
                self.check_move_file(workdir, file_key, f"{name}.file", file, editable, readonly)
                try:
                    content = (workdir / file).read_text(encoding="utf-8", errors="replace")
                except OSError as exc:
                    self.fail(file_key, f"{name}.file", f"cannot read {file}: {exc.strerror}")
                if not any(m.group(1) is not None for m in pattern.finditer(content)):
                    self.fail(
                        pattern_key,
                        f"{name}.pattern",
                        f"{pattern.pattern!r} matches nothing in {file}",
                    )
            moves.append(Move(name=move_name, file=file, pattern=pattern.pattern, values=values))
        return tuple(moves)

    def strategy(self, key: Node, node: Node) -> str:
        value = self.text(node, "search.strategy", key=key)
        if value not in STRATEGIES:
            self.fail(key, "search.strategy", f"unknown strategy {value!r} (expected one of {', '.join(STRATEGIES)})")
        return value

    def move_values(self, key: Node, node: Node, name: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.fail(key, name, f"expected a non-empty list of values, got {self.shown(node)}")
        values: list[str] = []
        for i, item in enumerate(node.value):
            if not isinstance(item, ScalarNode) or item.tag not in (
                _STR_TAG,
                _INT_TAG,
                _FLOAT_TAG,
                _BOOL_TAG,
            ):
                self.fail(
                    item,
                    f"{name}[{i}]",
                    f'expected a text or a number, got {self.shown(item)} (quote an empty text: "")',
                )
            # The text as written: 0x10 stays 0x10, 1.50 stays 1.50, on stays on.
            values.append(item.value)
        return tuple(values)

    def check_move_file(
        self,
        workdir: Path,
        key: Node,
        name: str,
        file: str,
        editable: tuple[str, ...] | None,
        readonly: tuple[str, ...] | None,
    ) -> None:
        try:
            target = (workdir / file).resolve()
            is_file = target.is_file()
        except (OSError, ValueError, RuntimeError) as exc:
            self.fail(key, name, f"bad path {file!r}: {exc}")
        if Path(file).is_absolute() or not target.is_relative_to(workdir):
            self.fail(key, name, f"{file} is outside the workdir")
        if not is_file:
            self.fail(key, name, f"{file} does not exist in {workdir}")
        if readonly and target in _glob_files(workdir, readonly):
            self.fail(key, name, f"{file} is readonly")
        if editable and target not in _glob_files(workdir, editable):
            self.fail(key, name, f"{file} is not editable (editable: {', '.join(editable)})")


def _glob_files(workdir: Path, globs: tuple[str, ...]) -> set[Path]:
    """The files the globs match, resolved (globs were checked by ``check_globs``)."""
    return {p.resolve() for glob in globs for p in workdir.glob(glob) if p.is_file()}


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"a scalar {node.value!r}"
