"""Run every benchmark in bench/ and print one table: figure, clive, baseline, ratio, target, pass.

A benchmark is a module in this folder with ``def run(quick: bool) -> list[dict]``; each row is
``{"figure", "clive", "baseline", "unit", "ratio", "target", "pass"}`` with ``ratio`` = clive /
baseline. Each module runs in its own process, so one that crashes or leaks only costs its own
rows, and its peak memory is its own. The table is also written to ``bench/results.json``.

    python -m bench [--quick] [--only NAME[,NAME...]] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
NOT_BENCHMARKS = {"run", "__main__", "__init__"}
COLUMNS = ("figure", "clive", "baseline", "ratio", "target", "pass")


def discover() -> list[str]:
    """Module names in bench/ that may hold a benchmark (those without ``run`` are skipped later)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if info.name not in NOT_BENCHMARKS and not info.name.startswith("_")
    )


def run_module(name: str, quick: bool) -> list[dict[str, Any]] | None:
    """Import ``bench.<name>`` and run it here; None when it has no ``run(quick)``."""
    module = importlib.import_module(f"bench.{name}")
    run = getattr(module, "run", None)
    if not callable(run):
        return None
    rows = run(quick)
    return [normalise(row) for row in rows]


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "figure": str(row.get("figure", "?")),
        "clive": row.get("clive"),
        "baseline": row.get("baseline"),
        "unit": str(row.get("unit") or ""),
        "ratio": row.get("ratio"),
        "target": str(row.get("target") or ""),
        "pass": row.get("pass"),
    }
    if out["ratio"] is None and _number(out["clive"]) and _number(out["baseline"]) and out["baseline"]:
        out["ratio"] = out["clive"] / out["baseline"]
    for key, value in row.items():
        out.setdefault(key, value)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def error_row(name: str, message: str) -> dict[str, Any]:
    return {
        "figure": f"{name}: did not run",
        "clive": f"ERROR: {message}",
        "baseline": None,
        "unit": "",
        "ratio": None,
        "target": "",
        "pass": False,
        "error": message,
    }


def run_isolated(name: str, quick: bool, timeout: float) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Run one module in a child process: (rows or None, error or None)."""
    with tempfile.TemporaryDirectory(prefix="clive-bench-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "bench.run", "--child", name, "--child-out", str(out)]
        if quick:
            cmd.append("--quick")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout, stdout=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:g}s"
        if not out.exists():
            return None, f"exited with status {proc.returncode} and no result"
        result = json.loads(out.read_text())
        return result.get("rows"), result.get("error")


def child(name: str, quick: bool, out: Path) -> int:
    try:
        rows = run_module(name, quick)
        result: dict[str, Any] = {"rows": rows, "error": None}
    except BaseException as exc:  # noqa: BLE001 - report any failure as a row, never crash the suite
        traceback.print_exc()
        last = str(exc).strip().splitlines()
        result = {"rows": None, "error": f"{type(exc).__name__}: {last[-1] if last else ''}".rstrip(": ")}
    out.write_text(json.dumps(result, default=str))
    return 0


def fmt_value(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _number(value):
        number = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return f"{number} {unit}".rstrip()
    return str(value)


def render_table(rows: list[dict[str, Any]]) -> str:
    cells = [["figure", "clive", "baseline", "ratio", "target", "pass"]]
    for row in rows:
        verdict = {True: "PASS", False: "FAIL", None: "-"}.get(row.get("pass"), str(row.get("pass")))
        ratio = row.get("ratio")
        cells.append(
            [
                row["figure"],
                fmt_value(row.get("clive"), row.get("unit", "")),
                fmt_value(row.get("baseline"), row.get("unit", "")),
                "-" if ratio is None else f"{ratio:.3g}x" if _number(ratio) else str(ratio),
                row.get("target", ""),
                verdict,
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = []
    for n, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "c_checks": _c_checks(),
    }


def _c_checks() -> bool:
    """Whether FastStream's checks run in C: clive/_speedups.c was built and loads (else floods are slower)."""
    try:
        importlib.import_module("clive._speedups")
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: under a minute per module")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these modules (repeat or separate with commas)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results.json", help="where to write JSON")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per module (default 120 quick, 1800)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.quick, args.child_out)

    names = discover()
    wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"no benchmark module named {', '.join(unknown)} (have: {', '.join(names)})")
    if wanted:
        names = [n for n in names if n in wanted]
    timeout = args.timeout or (120.0 if args.quick else 1800.0)

    rows: list[dict[str, Any]] = []
    modules: dict[str, Any] = {}
    started = time.monotonic()
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        got, error = run_isolated(name, args.quick, timeout)
        seconds = time.monotonic() - t0
        if error is not None:
            rows.append(error_row(name, error))
            print(f"bench: {name} failed after {seconds:.1f}s: {error}", file=sys.stderr, flush=True)
        elif got is None:
            print(f"bench: {name} has no run(quick); skipped", file=sys.stderr, flush=True)
        else:
            for row in got:
                row.setdefault("module", name)
            rows.extend(got)
            print(f"bench: {name} done in {seconds:.1f}s", file=sys.stderr, flush=True)
        modules[name] = {"seconds": round(seconds, 2), "error": error, "skipped": error is None and got is None}

    print(render_table(rows))
    print("ratio = clive / baseline", file=sys.stderr)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "seconds": round(time.monotonic() - started, 2),
        "modules": modules,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 1 if any(m["error"] for m in modules.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
