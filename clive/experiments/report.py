"""`clive report` and `clive show`: questions to an experiment run, answered from its session.

Everything comes from durable state: results.tsv, meta.json, the events (repeats, re-measurements,
timing), the search study (search.db) and the run's git refs. A report is a dict (``--json`` prints
it as it is, for scripts and for a model's fresh context) and a few lines of text.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from clive.experiments.errors import BadInput
from clive.experiments.results import ExperimentRow, read_rows
from clive.session.files import EVENTS, META, RESULTS

PLATEAU_RUN = 6  # experiments without a keep that make a plateau, unless the playbook says otherwise
RECENT = 10  # experiments over which the recent rate of improvement is taken
TOP = 5


def _meta(session: Path) -> dict[str, Any]:
    try:
        meta = json.loads((session / META).read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{session}: meta.json unreadable ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def _events(session: Path) -> list[dict[str, Any]]:
    events = []
    try:
        with open(session / EVENTS, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                if isinstance(event, dict):
                    events.append(event)
    except OSError:
        pass
    return events


def _rows(session: Path) -> list[ExperimentRow]:
    path = session / RESULTS
    if not path.is_file():
        raise BadInput(f"{session.name} is not an experiment run (no results.tsv)")
    return read_rows(path)  # never repaired here: the run may be appending to it


def _direction_noise(meta: dict[str, Any]) -> tuple[str, float, int | None]:
    """The playbook's direction, noise margin and plateau (meta.json first, then the playbook)."""
    direction, noise, plateau = meta.get("direction"), meta.get("noise"), meta.get("plateau")
    if direction not in ("maximize", "minimize") or not isinstance(noise, int | float):
        try:
            from clive.experiments.playbook import load_playbook

            pb = load_playbook(Path(meta.get("playbook", "")))
            direction, noise, plateau = pb.direction, pb.noise, pb.stop.plateau
        except Exception:  # noqa: BLE001 - a moved playbook: the defaults below still report
            direction = direction if direction in ("maximize", "minimize") else "maximize"
            noise = noise if isinstance(noise, int | float) else 0.02
    return direction, float(noise), plateau if isinstance(plateau, int) else None


def _gain(metric: float, best: float, direction: str) -> float:
    """How much better ``metric`` is than ``best``, as a fraction of it (negative: worse)."""
    if best == 0:
        return 0.0
    change = (metric - best) / abs(best)
    return change if direction == "maximize" else -change


def build_report(session: Path) -> dict[str, Any]:
    """What a run found: the figures of `clive report`, as a JSON-ready dict."""
    meta = _meta(session)
    rows = _rows(session)
    events = _events(session)
    direction, noise, plateau_run = _direction_noise(meta)
    baseline_row = next((r for r in rows if r.experiment == 0), None)
    baseline = baseline_row.metric if baseline_row else None
    experiments = [r for r in rows if r.experiment > 0]
    counts = {s: sum(1 for r in experiments if r.status == s) for s in ("keep", "discard", "crash")}

    # The best before each row was judged: what it had to beat.
    best, best_n, best_commit, before = baseline, 0, baseline_row.commit if baseline_row else "", {}
    for r in sorted(experiments, key=lambda r: r.experiment):
        before[r.experiment] = best
        if r.status == "keep" and r.metric is not None:
            best, best_n, best_commit = r.metric, r.experiment, r.commit
    speedup = None
    if baseline and best:
        speedup = best / baseline if direction == "maximize" else baseline / best

    times = {e.get("n"): e.get("t") for e in events if e.get("type") == "experiment"}
    span = None
    if experiments and isinstance(times.get(0), int | float) and isinstance(times.get(experiments[-1].experiment),
                                                                            int | float):
        span = times[experiments[-1].experiment] - times[0]
    per_hour = len(experiments) / span * 3600 if span else None

    last = experiments[-1].experiment if experiments else 0
    since_keep = last - best_n
    recent_from = max(0, last - RECENT)
    start = baseline if recent_from == 0 else next(
        (before[n] for n in sorted(before) if n > recent_from), best)
    recent_gain = _gain(best, start, direction) if best is not None and start else None
    run = plateau_run or PLATEAU_RUN
    # A plateau: a run of experiments without a keep, or a full recent window whose keeps together
    # moved the best by no more than the noise.
    stalled = last - recent_from >= RECENT and recent_gain is not None and recent_gain <= noise
    plateaued = since_keep >= run or stalled

    near = []
    for r in experiments:
        reference = before.get(r.experiment)
        if r.status == "discard" and r.metric is not None and reference:
            gain = _gain(r.metric, reference, direction)
            if -noise <= gain <= noise:
                near.append(_brief(r) | {"vs_best": round(gain, 4)})

    measured = [r for r in rows if r.metric is not None]
    top = sorted(measured, key=lambda r: r.metric if direction == "maximize" else -r.metric, reverse=True)[:TOP]
    return {
        "session": session.name,
        "playbook": Path(str(meta.get("playbook", ""))).stem or None,
        "policy": meta.get("policy"),
        "search": meta.get("search"),
        "seed": meta.get("seed"),
        "workers": meta.get("workers"),
        "status": meta.get("status"),
        "direction": direction,
        "noise_margin": noise,
        "baseline": baseline,
        "best": best,
        "best_experiment": best_n,
        "best_commit": best_commit,
        "speedup": speedup,
        "experiments": len(experiments),
        "kept": counts["keep"],
        "discarded": counts["discard"],
        "crashed": counts["crash"],
        "keep_rate": counts["keep"] / len(experiments) if experiments else None,
        "experiments_per_hour": per_hour,
        "noise_seen": _noise_seen(events),
        "plateau": {
            "experiments_since_last_keep": since_keep,
            "recent_improvement": recent_gain,
            "recent_window": last - recent_from,
            "plateaued": plateaued,
        },
        "knobs": _knobs(session, meta, experiments, before, direction),
        "near_misses": near,
        "top": [_brief(r) for r in top],
    }


def _brief(r: ExperimentRow) -> dict[str, Any]:
    return {"n": r.experiment, "metric": r.metric, "status": r.status, "description": r.description,
            "commit": r.commit, **({"hypothesis": r.hypothesis} if r.hypothesis else {})}


def _noise_seen(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The spread of repeated measurements of one tree: the eval's repeats, and a candidate measured
    again on a newer best (a different tree, so only a hint)."""
    spreads = []
    for e in events:
        repeats = [v for v in e.get("repeats") or () if isinstance(v, int | float)]
        if e.get("type") in ("experiment", "report") and len(repeats) > 1 and statistics.median(repeats):
            spreads.append((max(repeats) - min(repeats)) / abs(statistics.median(repeats)))
    return {
        "measurements": len(spreads),
        "median_spread": statistics.median(spreads) if spreads else None,
        "max_spread": max(spreads) if spreads else None,
    }


_GROUP = re.compile(r"(?:^|, )([^=,]+?) = ")  # the moves of "tile = 8, unroll = 4"


def _knobs(session: Path, meta: dict[str, Any], experiments: list[ExperimentRow], before: dict[int, Any],
           direction: str) -> dict[str, Any]:
    """The effect of each knob: Optuna's importances where a study exists; for every run, the
    experiments grouped by what they changed (the move, or the description's first words) with the
    median gain over the best they were judged against."""
    gains: dict[str, list[float]] = {}
    tried: dict[str, int] = {}
    kept: dict[str, int] = {}
    for r in experiments:
        names = _GROUP.findall(r.description.split(" (")[0]) or [" ".join(r.description.lower().split()[:3])]
        reference = before.get(r.experiment)
        for name in dict.fromkeys(n.strip() for n in names):
            tried[name] = tried.get(name, 0) + 1
            kept[name] = kept.get(name, 0) + (r.status == "keep")
            gains.setdefault(name, [])
            if r.metric is not None and reference:
                gains[name].append(_gain(r.metric, reference, direction))
    effects = {
        name: {"experiments": tried[name], "kept": kept[name],
               "median_gain": statistics.median(g) if g else None}
        for name, g in gains.items()
    }
    return {"importance": _importances(session, meta), "by_change": effects}


def _importances(session: Path, meta: dict[str, Any]) -> dict[str, float]:
    from clive.experiments.search import STUDY_FILE

    study_file = session / STUDY_FILE
    if not study_file.is_file():
        return {}
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=session.name, storage=f"sqlite:///{study_file}")
        finished = [t for t in study.trials if t.state.name == "COMPLETE"]
        if len(finished) < 4:
            return {}
        return {k: round(v, 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:  # noqa: BLE001 - importances are an estimate; a report without them still stands
        return {}


# ---- text --------------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def format_report(r: dict[str, Any]) -> list[str]:
    search = f", search {r['search']} (seed {r['seed']})" if r.get("search") else ""
    lines = [
        f"{r['session']}: {r['playbook'] or '?'}, policy {r['policy'] or '?'}{search}, {r['direction']}, "
        f"status {r['status'] or '?'}",
        f"baseline {_f(r['baseline'])}, best {_f(r['best'])} at experiment {r['best_experiment']} "
        f"({r['best_commit'][:12] or '-'})" + (f", {r['speedup']:.2f}x" if r["speedup"] else ""),
        f"{r['experiments']} experiments: {r['kept']} kept, {r['discarded']} discarded, {r['crashed']} crashed"
        + (f" (keep rate {r['keep_rate']:.0%})" if r["keep_rate"] is not None else "")
        + (f"; {r['experiments_per_hour']:.0f} experiments/hour" if r["experiments_per_hour"] else ""),
    ]
    noise = r["noise_seen"]
    if noise["measurements"]:
        lines.append(f"noise: repeats of one tree spread {noise['median_spread']:.1%} (median of "
                     f"{noise['measurements']}), at most {noise['max_spread']:.1%}; margin {r['noise_margin']:.0%}")
    else:
        lines.append(f"noise: no repeated measurements (repeats: 1); margin {r['noise_margin']:.0%}")
    p = r["plateau"]
    state = "plateaued" if p["plateaued"] else "still improving" if p["experiments_since_last_keep"] == 0 else "going"
    lines.append(f"plateau: {p['experiments_since_last_keep']} experiments since the last keep; the best moved "
                 f"{_pct(p['recent_improvement'])} over the last {p['recent_window']}: {state}")
    importance = r["knobs"]["importance"]
    if importance:
        lines.append("knob importance (Optuna, fANOVA): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))
    by_change = r["knobs"]["by_change"]
    if by_change:
        lines.append("effect by change (median gain over the best it faced, kept/tried):")
        ordered = sorted(by_change.items(), key=lambda kv: -(kv[1]["median_gain"] or -math.inf))
        for name, e in ordered[:10]:
            lines.append(f"  {name[:40]:40} {_pct(e['median_gain']):>8}  {e['kept']}/{e['experiments']}")
    if r["near_misses"]:
        lines.append("near misses (discarded within the noise of the best: candidates to combine):")
        for m in r["near_misses"][:TOP]:
            lines.append(f"  #{m['n']:<3} {_f(m['metric']):>9} {_pct(m['vs_best']):>7}  {m['description'][:70]}")
    lines.append("top experiments:")
    for t in r["top"]:
        lines.append(f"  #{t['n']:<3} {_f(t['metric']):>9} {t['status']:<7} {t['description'][:70]}")
    return lines


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Two runs of one playbook side by side."""
    if a["playbook"] != b["playbook"]:
        raise BadInput(
            f"{a['session']} and {b['session']} ran different playbooks ({a['playbook']} vs {b['playbook']})"
        )
    rows = [
        ("policy / search", lambda r: f"{r['policy']}/{r['search'] or '-'}"),
        ("baseline", lambda r: _f(r["baseline"])),
        ("best", lambda r: _f(r["best"])),
        ("speedup", lambda r: f"{r['speedup']:.2f}x" if r["speedup"] else "-"),
        ("experiments", lambda r: str(r["experiments"])),
        ("keep rate", lambda r: f"{r['keep_rate']:.0%}" if r["keep_rate"] is not None else "-"),
        ("experiments/hour", lambda r: f"{r['experiments_per_hour']:.0f}" if r["experiments_per_hour"] else "-"),
        ("best at experiment", lambda r: str(r["best_experiment"])),
        ("plateaued", lambda r: "yes" if r["plateau"]["plateaued"] else "no"),
    ]
    lines = [f"{'':20} {a['session']:>24} {b['session']:>24}"]
    lines += [f"{name:20} {get(a):>24} {get(b):>24}" for name, get in rows]
    if a["best"] and b["best"]:
        ratio = b["best"] / a["best"] if a["direction"] == "maximize" else a["best"] / b["best"]
        lines.append(f"{b['session']} reached {ratio:.2f}x the best of {a['session']}")
    return lines


# ---- clive show ----------------------------------------------------------------------------------


def show_experiment(session: Path, n: int) -> list[str]:
    """Experiment ``n``: description, metric, status, why, and its diff against the state it started from."""
    from clive.experiments.workspace import Workspace, WorkspaceError

    rows = {r.experiment: r for r in _rows(session)}
    if n not in rows:
        have = f"0..{max(rows)}" if rows else "none yet"
        raise BadInput(f"{session.name} has no experiment {n} (experiments: {have})")
    r = rows[n]
    lines = [
        f"experiment {n}: {r.description}",
        f"status {r.status}, metric {_f(r.metric)}" + (f", worker {r.worker}" if r.worker is not None else ""),
    ]
    if r.hypothesis:
        lines.append(f"why: {r.hypothesis}")
    if n == 0:
        return lines + [f"commit {r.commit} (the baseline: nothing changed yet)"]
    try:
        ws = Workspace(session / "work", session.name)
        ref = r.commit if r.status == "keep" else ws.tried_ref(n)
        if not ws.has_commit(ref):
            return lines + ["no tree was kept for it (it changed nothing, or clive then kept no tried trees)"]
        commit = ws.resolve(ref)
        parent = ws.resolve(f"{commit}^")
    except WorkspaceError as exc:
        return lines + [f"no diff: {exc}"]
    where = f"on the run branch {ws.branch}" if r.status == "keep" else f"kept under {ws.tried_ref(n)}"
    lines.append(f"commit {commit[:12]} {where}, started from {parent[:12]}")
    diff = ws.diff(parent, commit)
    return lines + ([""] + diff.splitlines() if diff.strip() else ["(no change)"])
