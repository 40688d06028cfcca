"""Sessions in a folder as a person lists them: ``clive sessions``, ``clive replay --print``'s timeline, and
a session named by its id, a prefix of it, or a path."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clive.session.cast import (
    SessionError,
    parse_json_line,
)
from clive.session.files import CYCLE_PREFIX, EVENTS, META, RESULTS, pid_alive
from clive.session.reader import SessionReader

# The field that says most about each action, for one-line summaries.
_SUMMARY_FIELD = {
    "run": "command",
    "keys": "keys",
    "read_file": "path",
    "write_file": "path",
    "edit_file": "path",
    "checkpoint": "message",
    "done": "summary",
}


def summarize_action(action: Any, width: int = 40) -> str:
    """An action's JSON form in a few words: ``run make test``, ``keys :wq<Enter>``."""
    if not isinstance(action, dict):
        return "-"
    kind = action.get("type")
    if kind == "result":
        metric = action.get("metric")
        text = f"result {action.get('status', '?')} {metric if metric is not None else '-'}"
    elif isinstance(kind, str) and kind in _SUMMARY_FIELD:
        text = f"{kind} {action.get(_SUMMARY_FIELD[kind], '')}"
    else:
        text = str(kind) if kind is not None else "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of ``clive sessions``."""

    id: str
    path: Path
    started: str | None
    playbook: str | None
    policy: str | None
    status: str
    cycles: int
    duration: float | None
    best_metric: float | None
    workers: int = 1  # parallel workers (their cycles are counted in ``cycles``)


def _number(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    return None


def _lines_with_prefix(data: bytes, prefix: bytes) -> list[dict[str, Any]]:
    found = []
    start = 0 if data.startswith(prefix) else data.find(b"\n" + prefix)
    while start != -1:
        if data[start : start + 1] == b"\n":
            start += 1
        end = data.find(b"\n", start)
        if end == -1:
            break  # torn
        try:
            event = parse_json_line(data[start:end])
        except ValueError:
            event = None
        if isinstance(event, dict):
            found.append(event)
        start = data.find(b"\n" + prefix, end)
    return found


def _last_t(data: bytes) -> float | None:
    end = data.rfind(b"\n")
    while end > 0:
        start = data.rfind(b"\n", 0, end) + 1
        try:
            event = parse_json_line(data[start:end])
        except ValueError:
            event = None
        if isinstance(event, dict) and _number(event.get("t")) is not None:
            return _number(event["t"])
        end = start - 1
    return None


def _results_tsv(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    if not lines:
        return []
    head = lines[0].split("\t")
    if "metric" in head and "status" in head:
        mi, si, rows = head.index("metric"), head.index("status"), lines[1:]
    else:
        mi, si, rows = 1, 2, lines
    out = []
    for line in rows:
        cols = line.split("\t")
        if len(cols) > max(mi, si):
            try:
                metric: float | None = float(cols[mi])
            except ValueError:
                metric = None
            out.append({"metric": metric, "status": cols[si].strip()})
    return out


def _best(results: list[dict[str, Any]], direction: Any) -> float | None:
    kept = [m for r in results if r.get("status") == "keep" and (m := _number(r.get("metric"))) is not None]
    if not kept:
        return None
    if direction == "minimize":
        return min(kept)
    if direction == "maximize":
        return max(kept)
    return kept[-1]  # keep means "better than before": the last one kept is the best


def summarize_session(path: str | os.PathLike[str]) -> SessionSummary:
    """What ``clive sessions`` shows for one session, read quickly (cycle lines are counted,
    not parsed)."""
    path = Path(path)
    meta: dict[str, Any] = {}
    try:
        raw = parse_json_line((path / META).read_bytes())
        if isinstance(raw, dict):
            meta = raw
    except (OSError, ValueError):
        pass
    try:
        data = (path / EVENTS).read_bytes()
    except OSError:
        data = b""
    data = data[: data.rfind(b"\n") + 1]  # complete lines only
    cycles = _count_cycles(data)
    # A parallel run's cycles are its workers': each recorded under workers/<k>/.
    worker_dirs = [p for p in path.glob("workers/*") if p.name.isdigit()]
    for folder in worker_dirs:
        try:
            cycles += _count_cycles((folder / EVENTS).read_bytes())
        except OSError:
            pass
    experiments = _lines_with_prefix(data, b'{"type": "experiment"')
    ends = _lines_with_prefix(data, b'{"type": "end"')
    status = meta.get("status")
    if not isinstance(status, str):
        end_status = ends[-1].get("status") if ends else None
        status = end_status if isinstance(end_status, str) else "unknown"
    if status == "running" and not pid_alive(meta):
        status = "unfinished"
    duration = _number(meta.get("duration")) if status != "running" else None
    if duration is None:
        duration = _last_t(data)
    results = experiments or _results_tsv(path / RESULTS)

    def text(key: str) -> str | None:
        value = meta.get(key)
        return str(value) if value is not None else None

    sid = meta.get("id")
    return SessionSummary(
        id=sid if isinstance(sid, str) else path.name,
        path=path,
        started=text("started"),
        playbook=text("playbook"),
        policy=text("policy"),
        status=status,
        cycles=cycles,
        duration=duration,
        best_metric=_best(results, meta.get("direction")),
        workers=meta["workers"] if type(meta.get("workers")) is int and meta["workers"] > 0 else 1,
    )


def _count_cycles(data: bytes) -> int:
    data = data[: data.rfind(b"\n") + 1]  # complete lines only
    return data.count(b"\n" + CYCLE_PREFIX) + data.startswith(CYCLE_PREFIX)


def list_sessions(sessions_dir: str | os.PathLike[str]) -> list[SessionSummary]:
    """Every session under ``sessions_dir``, oldest first (an absent directory has none)."""
    root = Path(sessions_dir)
    try:
        dirs = sorted(p for p in root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise SessionError(f"not a directory: {root}") from None
    return [
        summarize_session(d) for d in dirs if (d / META).is_file() or (d / EVENTS).is_file()
    ]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    tenths = int((seconds - whole) * 10)
    return f"{h}:{m:02d}:{s:02d}.{tenths}"


def format_sessions(summaries: Iterable[SessionSummary]) -> list[str]:
    """One line per session: id, status, cycles, duration, best metric, policy, workers, playbook."""
    lines = []
    for s in summaries:
        best = f"best {s.best_metric:g}" if s.best_metric is not None else "-"
        workers = f"{s.workers} workers  " if s.workers > 1 else ""
        lines.append(
            f"{s.id:<22} {s.status:<11} {s.cycles:>6} cycles  {_clock(s.duration):>11}  "
            f"{best:<16} {s.policy or '-':<9} {workers}{s.playbook or '-'}"
        )
    return lines


def format_timeline(reader: SessionReader) -> list[str]:
    """``clive replay --print``: one line per cycle: cycle, time, action, exit code, duration,
    checkpoint."""
    lines = []
    for event in reader.cycles():
        outcome = event.get("outcome")
        outcome = outcome if isinstance(outcome, dict) else {}
        code = outcome.get("exit_code")
        exit_text = f"exit {code}" if type(code) is int else "-"
        duration = _number(outcome.get("duration"))
        dur_text = f"{duration:.2f}s" if duration is not None else "-"
        checkpoint = event.get("checkpoint")
        ckpt = str(checkpoint)[:12] if checkpoint else "-"  # a short sha
        cycle = event.get("cycle")
        action = summarize_action(event.get("action"), 48)
        lines.append(
            f"{str(cycle):>5}  {_clock(_number(event.get('t'))):>11}  {action:<48}  "
            f"{exit_text:>8}  {dur_text:>8}  {ckpt}"
        )
    return lines


def format_workers(reader: SessionReader) -> list[str]:
    """``clive replay --print`` of a run with several workers: its experiments (which worker ran
    each), then each worker's own timeline from ``workers/<k>/``. Empty for any other session."""
    folder = reader.path / "workers"
    try:
        workers = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    except OSError:
        return []
    lines = [f"{'n':>5}  {'worker':>6}  {'status':<8}  {'metric':>10}  description"]
    for e in reader.events:
        if e.get("type") != "experiment":
            continue
        metric = _number(e.get("metric"))
        worker = e.get("worker")
        lines.append(
            f"{str(e.get('n', '?')):>5}  {f'w{worker}' if type(worker) is int else '-':>6}  "
            f"{str(e.get('status', '?')):<8}  {f'{metric:.6g}' if metric is not None else '-':>10}  "
            f"{e.get('description', '')}"
        )
    for path in workers:
        lines += ["", f"worker {path.name} ({path}):"]
        try:
            lines += format_timeline(SessionReader.open(path))
        except SessionError as exc:
            lines.append(f"  cannot read: {exc}")
    return lines


def resolve_session(name: str, sessions_dir: str | os.PathLike[str]) -> Path:
    """A session named on the command line: a directory, an id in ``sessions_dir``, or a
    unique prefix of one."""
    if not name:
        raise SessionError("no session given")
    direct = Path(name)
    if direct.is_dir():
        return direct
    root = Path(sessions_dir)
    if (root / name).is_dir():
        return root / name
    try:
        matches = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(name))
    except OSError:
        matches = []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(p.name for p in matches[:4])
        raise SessionError(f"{name!r} matches {len(matches)} sessions in {root}: {shown}")
    raise SessionError(f"no such session: {name} (not a directory, nor an id in {root})")
