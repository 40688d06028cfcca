"""The offline search on Optuna: a playbook's moves as a search space, trials asked and told.

Each move is a knob; its choices are the value the baseline files hold and the move's values (numbers
in order, so that samplers that model distances can use them; texts as categories). A trial is a
whole configuration: every knob set to one of its choices on top of the best kept state. The study
lives in the session (``search.db``, Optuna's SQLite storage), so a resumed run continues it, and
parallel workers are given distinct trials (the sampler lies about trials in flight, and a
configuration already measured or in flight is never handed out again).

The hill-climber of ``sweep`` stays as the ``greedy`` strategy; this module serves the others.
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import math
import os
import re
import sqlite3
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clive.experiments.playbook import STRATEGIES, Move
from clive.experiments.results import ExperimentRow

# Chosen by measurement (bench/search.py): on the synthetic playbook and on matmul, multivariate TPE
# reached the best sooner than the hill-climber; see the README's table.
DEFAULT_STRATEGY = "tpe"
STUDY_FILE = "search.db"
MAX_ASKS = 200  # asks in a row that give only configurations already measured: the space is spent
_TRIAL_REF = re.compile(r"\btrial (\d+)\b")


class SearchError(Exception):
    """A search that cannot start (a strategy's package missing, a damaged study); one line."""


def check_strategy(strategy: str) -> None:
    """Refuse a strategy that does not exist or cannot run here, naming what is missing."""
    if strategy not in STRATEGIES:
        raise SearchError(f"unknown search strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")
    if strategy == "greedy":
        return
    needs = {"cmaes": "cmaes", "gp": "torch"}.get(strategy)
    if importlib.util.find_spec("optuna") is None:
        raise SearchError(f"search strategy {strategy} needs Optuna: pip install optuna (or --search greedy)")
    if needs and importlib.util.find_spec(needs) is None:
        raise SearchError(f"search strategy {strategy} needs the {needs} package: pip install {needs}")


@dataclass(frozen=True, slots=True)
class Knob:
    """One move as a search dimension: its choices, in order when they are all numbers."""

    move: Move
    choices: tuple[str, ...]
    ordinal: bool

    @property
    def name(self) -> str:
        return self.move.name

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, IntDistribution

        if self.ordinal:
            return IntDistribution(0, len(self.choices) - 1)
        return CategoricalDistribution(self.choices)

    def value(self, param: Any) -> str:
        return self.choices[int(param)] if self.ordinal else str(param)

    def param(self, value: str) -> Any:
        return self.choices.index(value) if self.ordinal else value


def current_value(workdir: Path, move: Move) -> str | None:
    """The text the move's pattern group holds in its file now."""
    try:
        text = (workdir / move.file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(move.pattern, text, re.MULTILINE)
    return None if match is None or match.group(1) is None else match.group(1)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def make_space(moves: Iterable[Move], workdir: Path) -> list[Knob]:
    """The knobs of a search space: the baseline's value of each move first, then its values."""
    knobs = []
    for move in moves:
        start = current_value(workdir, move)
        choices = list(dict.fromkeys(([start] if start is not None else []) + list(move.values)))
        numbers = [_number(c) for c in choices]
        ordinal = len(choices) > 1 and all(n is not None for n in numbers)
        if ordinal:
            choices = [c for _, c in sorted(zip(numbers, choices, strict=True), key=lambda p: p[0])]
        knobs.append(Knob(move, tuple(choices), ordinal))
    return knobs


@dataclass(frozen=True, slots=True)
class Proposal:
    """One trial to measure: the study's trial number, every knob's value, and why it was asked."""

    number: int
    values: dict[str, str]
    hypothesis: str

    @property
    def key(self) -> str:
        return config_key(self.values)


def config_key(values: dict[str, str]) -> str:
    return "\x1f".join(f"{k}={v}" for k, v in sorted(values.items()))


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Multivariate TPE and friends are marked experimental; that is a fact of Optuna, not news to a user.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _sampler(strategy: str, seed: int | None, knobs: list[Knob], startup: int) -> Any:
    optuna = _quiet_optuna()
    if strategy == "tpe":
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, constant_liar=True, n_startup_trials=startup, seed=seed
        )
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "grid":
        space = {k.name: list(range(len(k.choices))) if k.ordinal else list(k.choices) for k in knobs}
        return optuna.samplers.GridSampler(space, seed=seed)
    if strategy == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if strategy == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    raise SearchError(f"unknown search strategy {strategy!r}")


def startup_trials(knobs: list[Knob]) -> int:
    """Random trials before the model is fitted (the baseline counts as one): Optuna's default of 10.
    On the synthetic playbook, 6 seeds x 40 experiments, 10 reached the optimum in 5 runs, 8 and 6 in
    3, 4 in 4 (bench/search.py); a space smaller than that is mostly sampled at random anyway."""
    return 10


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _storage_error(exc: BaseException, path: Path) -> OSError | None:
    """The OSError a failure of the study's SQLite storage is (a full disk, above all), or None when
    ``exc`` is something else. Optuna wraps SQLAlchemy's error, which wraps sqlite3's."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if not any(isinstance(e, sqlite3.Error) or type(e).__module__.startswith(("sqlalchemy", "optuna.storages"))
               or type(e).__name__ == "StorageInternalError" for e in chain):
        return None
    text = " ".join(str(e) for e in chain).lower()
    if "full" in text or "no space" in text:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"the search study failed: {' '.join(str(chain[-1]).split())[:200]}", str(path))


def _on_disk(method: _Method) -> _Method:
    """A method that writes the study: a storage failure comes out as the OSError it is, so the run
    stops with one line (as for any file of the session) instead of SQLAlchemy's traceback."""

    @functools.wraps(method)
    def wrapper(self: Search, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            failure = _storage_error(exc, self.path)
            if failure is None:
                raise
            raise failure from None

    return wrapper  # type: ignore[return-value]


class Search:
    """An Optuna study of one run: ask for distinct configurations, tell what they measured."""

    def __init__(
        self,
        moves: Iterable[Move],
        workdir: Path,
        path: Path,
        *,
        name: str,
        direction: str,
        strategy: str = DEFAULT_STRATEGY,
        seed: int | None = None,
    ) -> None:
        check_strategy(strategy)
        optuna = _quiet_optuna()
        self.strategy = strategy
        self.path = path
        storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
        moves = list(moves)
        try:
            existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
            if name in existing:
                stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get("space")
                self.knobs = self._stored_space(moves, stored)
            else:
                self.knobs = make_space(moves, workdir)
            sampler = _sampler(strategy, seed, self.knobs, startup_trials(self.knobs))
            self.study = optuna.create_study(
                storage=storage, study_name=name, direction=direction, sampler=sampler, load_if_exists=True
            )
        except optuna.exceptions.OptunaError as exc:
            failure = _storage_error(exc, path)
            if failure is not None and failure.errno == errno.ENOSPC:
                raise failure from None
            raise SearchError(f"the search study in {path} cannot be used: {exc}") from None
        if name not in existing:
            self.study.set_user_attr("space", {k.name: [list(k.choices), k.ordinal] for k in self.knobs})
            self.study.set_user_attr("strategy", strategy)
        self._distributions = {k.name: k.distribution() for k in self.knobs}
        self.size = math.prod(len(k.choices) for k in self.knobs)
        self.measured: dict[str, float | None] = {}  # configuration → its metric (None: it crashed)
        self.running: dict[int, str] = {}  # trial number → configuration, asked and not told
        self.exhausted = False
        requeued = set(self.study.user_attrs.get("requeued", []))
        for trial in self.study.get_trials(deepcopy=False):
            values = self._values(trial.params) if len(trial.params) == len(self.knobs) else None
            if values is None or trial.user_attrs.get("duplicate") or trial.number in requeued:
                continue
            if trial.state.name == "COMPLETE":
                self.measured[config_key(values)] = trial.value
            elif trial.state.name == "FAIL":
                self.measured[config_key(values)] = None
            elif trial.state.name == "RUNNING":
                self.running[trial.number] = config_key(values)

    def _stored_space(self, moves: list[Move], stored: Any) -> list[Knob]:
        by_name = {m.name: m for m in moves}
        if not isinstance(stored, dict) or set(stored) != set(by_name):
            raise SearchError(f"the search study in {self.path} is for other moves than the playbook's")
        knobs = []
        for name, (choices, ordinal) in stored.items():
            knobs.append(Knob(by_name[name], tuple(choices), bool(ordinal)))
        return knobs

    def _values(self, params: dict[str, Any]) -> dict[str, str] | None:
        try:
            return {k.name: k.value(params[k.name]) for k in self.knobs}
        except (KeyError, IndexError, ValueError, TypeError):
            return None

    # ---- the two halves of ask/tell -------------------------------------------------------

    @_on_disk
    def ask(self, busy: Iterable[str] = (), best: dict[str, str] | None = None) -> Proposal | None:
        """A configuration neither measured nor in ``busy`` (keys of trials in flight), or None when
        there is none now (``exhausted`` says whether there will be none at all)."""
        optuna = _quiet_optuna()
        busy = set(busy) | set(self.running.values())
        for _ in range(MAX_ASKS):
            if len(self.measured) + len(busy - self.measured.keys()) >= self.size:
                self.exhausted = not busy
                return None
            trial = self.study.ask(self._distributions)
            values = self._values(trial.params)
            assert values is not None  # asked with our own distributions
            key = config_key(values)
            if key in self.measured or key in busy:
                # Tell the sampler what it proposed again, at no experiment's cost: the known value, or a
                # failure while it is in flight (so the liar does not hand it out twice).
                known = self.measured.get(key)
                trial.set_user_attr("duplicate", True)
                if key in self.measured and known is not None:
                    self.study.tell(trial, known)
                else:
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            self.running[trial.number] = key
            return Proposal(trial.number, values, self._why(trial.number))
        self.exhausted = not busy
        return None

    @_on_disk
    def tell(self, number: int, metric: float | None) -> None:
        """What trial ``number`` measured (None: it crashed or could not be measured)."""
        optuna = _quiet_optuna()
        key = self.running.pop(number, None)
        if key is None:
            return  # told already (a resumed run reads rows a first run told)
        self.measured[key] = metric
        try:
            if metric is None:
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(number, metric)
        except (ValueError, RuntimeError):
            pass  # finished already: the study holds its result

    @_on_disk
    def add_baseline(self, values: dict[str, str], metric: float | None) -> None:
        """The baseline's configuration and metric, as the study's first known result."""
        optuna = _quiet_optuna()
        key = config_key(values)
        if key in self.measured or metric is None or len(values) != len(self.knobs):
            return
        params = {k.name: k.param(values[k.name]) for k in self.knobs}
        self.study.add_trial(
            optuna.trial.create_trial(params=params, distributions=self._distributions, value=metric)
        )
        self.measured[key] = metric

    @_on_disk
    def restore(self, rows: Iterable[ExperimentRow]) -> None:
        """On resume: tell trials whose rows were written before the kill; what was in flight without a
        row is asked again (the same configuration, a new trial)."""
        optuna = _quiet_optuna()
        for row in rows:
            match = _TRIAL_REF.search(row.hypothesis)
            if match and int(match.group(1)) in self.running:
                self.tell(int(match.group(1)), row.metric if row.status != "crash" else None)
        for number in list(self.running):
            params = self.study.trials[number].params
            # Not a result: listed so that a later resume does not read it as a crash.
            requeued = [*self.study.user_attrs.get("requeued", []), number]
            self.study.set_user_attr("requeued", requeued)
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
            del self.running[number]
            self.study.enqueue_trial(params, skip_if_exists=False)

    def _why(self, number: int) -> str:
        complete = sum(1 for t in self.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                       and not t.user_attrs.get("duplicate"))
        if self.strategy == "tpe":
            startup = startup_trials(self.knobs)
            if complete < startup:
                return f"tpe trial {number}: start-up sample {complete + 1} of {startup}, to seed the model"
            return f"tpe trial {number}: most promising under a multivariate TPE model of {complete} results"
        if self.strategy == "grid":
            return f"grid trial {number}: the next point of {self.size}"
        if self.strategy == "random":
            return f"random trial {number}: sampled uniformly"
        return f"{self.strategy} trial {number}: sampled from a model of {complete} results"

    def importances(self) -> dict[str, float]:
        """How much each knob explains of the measured metric (Optuna's fANOVA estimate); empty when
        too few trials have finished to say."""
        optuna = _quiet_optuna()
        complete = [t for t in self.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        if len(complete) < 3 or len(self.knobs) < 1:
            return {}
        try:
            return dict(optuna.importance.get_param_importances(self.study))
        except (ValueError, RuntimeError, ZeroDivisionError):
            return {}
