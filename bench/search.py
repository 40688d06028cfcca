"""Search strategies at equal budgets: the default (multivariate TPE) against the hill-climber (greedy).

Each run drives the offline policy's own proposals (``SearchPolicy`` on an Optuna study, or
``SweepPolicy``) through the playbook's real eval command in a copy of its workdir: edits applied as
the executor would, keep or discard judged with the playbook's noise margin as the loop does. What it
leaves out is the terminal and git, whose cost per experiment is the same for every strategy (see
loop_overhead). Reported per playbook, over seeds: the median best metric, and the median number of
experiments until the run was within 5% of its own final best (and, on the synthetic playbook with a
known optimum of 100, within 2% of the optimum).

    python -m bench --only search [--quick]
    python bench/search.py [--quick] [--playbooks synthetic,matmul] [--seeds 5] [--budget 30]
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clive.agent.actions import Done, EditFile  # noqa: E402
from clive.experiments.evaluation import better, read_metric  # noqa: E402
from clive.experiments.playbook import Playbook, load_playbook  # noqa: E402
from clive.experiments.results import ExperimentRow  # noqa: E402
from clive.experiments.search import DEFAULT_STRATEGY, Search  # noqa: E402
from clive.experiments.search_policy import SearchPolicy  # noqa: E402
from clive.experiments.sweep import SweepPolicy  # noqa: E402

SYNTHETIC_OPTIMUM = 100.0


@dataclass(frozen=True, slots=True)
class Trace:
    """One search run: the metric of each experiment (the baseline first; None for a crash)."""

    metrics: list[float | None]
    best: list[float]  # the best kept after each experiment
    fractions: list[float | None]  # of the bound the eval measured beside it (OpenBLAS, memory), per experiment

    def first_within(self, target: float, direction: str = "maximize") -> int | None:
        """The first experiment whose best kept is within ``target`` (a metric), or None."""
        for n, value in enumerate(self.best):
            if (value >= target) if direction == "maximize" else (value <= target):
                return n
        return None


# What fraction of its bound an experiment reached, as the matmul (OpenBLAS measured in the same run)
# and inference (this machine's read bandwidth) harnesses print it.
FRACTION = re.compile(r"([0-9.]+)% of it")


def _eval(pb: Playbook, work: Path, fractions: list[float | None]) -> float | None:
    """The metric (None: a crash); appends the fraction the eval printed (or None) to ``fractions``."""
    checked = not pb.check or subprocess.run(pb.check, shell=True, cwd=work, capture_output=True).returncode == 0
    done = subprocess.run(pb.eval or "", shell=True, cwd=work, capture_output=True, text=True,
                          timeout=pb.budget.experiment_seconds) if checked else None
    if done is None or done.returncode != 0:
        fractions.append(None)
        return None
    found = FRACTION.findall(done.stdout)
    fractions.append(float(found[-1]) / 100 if found else None)
    return read_metric(pb, done.stdout)


def drive(playbook: Path, strategy: str, seed: int, budget: int, scratch: Path) -> Trace:
    """Run ``budget`` experiments of ``strategy`` on a copy of the playbook's workdir."""
    pb = load_playbook(playbook)
    assert pb.workdir is not None
    work = scratch / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pb.workdir, work)
    for command in pb.setup:
        subprocess.run(command, shell=True, cwd=work, capture_output=True)
    if strategy == "greedy":
        policy: Any = SweepPolicy(pb.search, work)
    else:
        study = scratch / f"{strategy}-{seed}.db"
        study.unlink(missing_ok=True)
        search = Search(pb.search, work, study, name="bench", direction=pb.direction, strategy=strategy, seed=seed)
        policy = SearchPolicy(search, work)
    files = sorted({m.file for m in pb.search})
    fractions: list[float | None] = []
    baseline = _eval(pb, work, fractions)
    assert baseline is not None, f"{pb.name}: the baseline failed"
    policy.record(ExperimentRow(0, "c0", baseline, "keep", "baseline", 0.0))
    best, kept = baseline, {f: (work / f).read_text() for f in files}
    best_fraction = [fractions[-1]]  # of the best kept after each experiment
    metrics: list[float | None] = [baseline]
    bests = [baseline]
    for n in range(1, budget + 1):
        policy.new_context("")
        label = ""
        while True:
            action = policy.decide(None).action  # the offline policies do not read the screen
            if isinstance(action, EditFile):
                path = work / action.path
                path.write_text(path.read_text().replace(action.old, action.new, 1))
            elif isinstance(action, Done):
                label = action.summary
                break
        if getattr(policy, "exhausted", False):
            break
        metric = _eval(pb, work, fractions)
        status = "crash" if metric is None else "keep" if better(pb, metric, best) else "discard"
        if status == "keep":
            best, kept = metric, {f: (work / f).read_text() for f in files}
            best_fraction.append(fractions[-1])
        else:
            best_fraction.append(best_fraction[-1])
            for f, text in kept.items():
                (work / f).write_text(text)
        policy.record(ExperimentRow(n, f"c{n}", metric, status, label, 0.0))
        metrics.append(metric)
        bests.append(best)
    return Trace(metrics, bests, best_fraction)


def compare(playbook: Path, seeds: int, budget: int, strategies: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    pb = load_playbook(playbook)
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="clive-bench-search-") as tmp:
        for strategy in strategies:
            finals, to_final, to_optimum, fractions = [], [], [], []
            for seed in range(seeds):
                trace = drive(playbook, strategy, seed, budget, Path(tmp))
                final = trace.best[-1]
                finals.append(final)
                if trace.fractions[-1] is not None:
                    fractions.append(trace.fractions[-1])
                margin = 0.05 * abs(final)
                reached = trace.first_within(final - margin if pb.direction == "maximize" else final + margin,
                                             pb.direction)
                to_final.append(reached if reached is not None else math.inf)
                if pb.name == "synthetic":
                    hit = trace.first_within(0.98 * SYNTHETIC_OPTIMUM)
                    to_optimum.append(hit if hit is not None else math.inf)
            out[strategy] = {
                "best": statistics.median(finals),
                "to_within_5pct_of_final": statistics.median(to_final),
                "to_within_2pct_of_optimum": statistics.median(to_optimum) if to_optimum else None,
                "finals": finals,
                "of_bound": statistics.median(fractions) if fractions else None,
            }
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows for `python -m bench`: the synthetic playbook always; matmul unless --quick."""
    seeds, budget = (3, 30) if quick else (5, 30)
    names = ["synthetic"] if quick else ["synthetic", "matmul"]
    rows = []
    for name in names:
        result = compare(ROOT / "playbooks" / f"{name}.md", seeds, budget, (DEFAULT_STRATEGY, "greedy"))
        ours, greedy = result[DEFAULT_STRATEGY], result["greedy"]
        print(f"{name}: {seeds} seeds x {budget} experiments", file=sys.stderr)
        for strategy, r in result.items():
            print(f"  {strategy:7} median best {_fmt(r['best'])}  to 5% of final {_fmt(r['to_within_5pct_of_final'])}"
                  f"  to 2% of optimum {_fmt(r['to_within_2pct_of_optimum'])}  finals {r['finals']}",
                  file=sys.stderr)
        ratio = ours["best"] / greedy["best"] if greedy["best"] else None
        rows.append({
            "figure": f"search {name}: median best, {DEFAULT_STRATEGY} vs greedy ({seeds} seeds x {budget})",
            "clive": round(ours["best"], 3), "baseline": round(greedy["best"], 3), "unit": "metric",
            "ratio": round(ratio, 3) if ratio else None, "target": ">= 1", "pass": bool(ratio and ratio >= 1),
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--playbooks", default="synthetic,matmul")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--strategies", default=f"{DEFAULT_STRATEGY},greedy")
    args = parser.parse_args()
    print(f"{'playbook':10} {'strategy':8} {'median best':>12} {'to 5% of final':>15} {'to 2% of optimum':>17}"
          f" {'of its bound':>12}")
    for name in args.playbooks.split(","):
        result = compare(ROOT / "playbooks" / f"{name}.md", args.seeds, args.budget,
                         tuple(args.strategies.split(",")))
        for strategy, r in result.items():
            print(f"{name:10} {strategy:8} {_fmt(r['best']):>12} {_fmt(r['to_within_5pct_of_final']):>15}"
                  f" {_fmt(r['to_within_2pct_of_optimum']):>17} {_fmt(r['of_bound']):>12}  finals {r['finals']}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
