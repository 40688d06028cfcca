"""Parallel workers: experiments per hour with 1 and 2 workers, and what pinning does to the metric.

1. An eval that waits (~1 s asleep, no CPU): the same experiments through `clive run` in-process (one
   worker) and with `--workers 2` on a private Ray. The rate counts from the baseline's row to the last
   row (Ray's start-up is reported apart). Every candidate is discarded, so each experiment is measured
   once. The coordinator's overhead: time per experiment per worker against the eval run directly.
2. A CPU-bound eval (the matmul playbook's naive kernel, unchanged by its knob): the spread of the
   metric over the experiments, (max - min) / median, with one worker, with two pinned to a core each,
   and with two sharing the cores unpinned, against the playbook's noise margin.

3. Where there are GPUs: `playbooks/cuda.md` in-process (one GPU) against N workers with a GPU each
   (N = the GPUs this process may use) on a Ray instance on 127.0.0.1. Target: >= 0.9 N times the
   experiments per hour. With one GPU that is the cost of the Ray path on a GPU eval.

    python bench/parallel.py [--quick] [--only=rates,spreads,gpus]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

WAIT_EVAL = (
    "import re, time\n"
    "v = re.search(r'V = (\\d+)', open('params.py').read()).group(1)\n"
    "time.sleep(1.0)\n"
    "print('score: 1')\n"
)

WAIT_PLAYBOOK = """---
name: waits
workdir: work
eval: {python} eval.py
metric: 'score: (\\d+)'
budget: {{experiment_seconds: 30}}
search:
  - name: v
    file: params.py
    pattern: '^V = (\\d+)'
    values: [{values}]
---
An eval that waits.
"""

MATMUL_PLAYBOOK = """---
name: matmul-spread
workdir: matmul
setup: [make clean, make]
eval: make bench
metric: 'GFLOP/s: ([0-9.]+)'
budget: {{experiment_seconds: 60}}
noise: {noise}
{resources}search:
  - name: knob
    file: knob.txt
    pattern: '^(\\d+)'
    values: [{values}]
---
The same kernel, measured again and again.
"""


def _clive(root: Path, *args: str) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CLIVE_CRASH_AT")}
    done = subprocess.run([sys.executable, "-m", "clive", "run", *args, "--sessions", str(root / "s")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"clive run {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    newest = max((root / "s").iterdir(), key=lambda p: p.stat().st_mtime)
    return newest


def _events(session: Path) -> list[dict]:
    return [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]


def _span(session: Path) -> tuple[float, int, float | None]:
    """(seconds from the baseline's row to the last row, experiments after the baseline, Ray start-up)."""
    events = _events(session)
    rows = [e for e in events if e["type"] == "experiment"]
    started = [e for e in events if e["type"] == "workers"]
    startup = started[0]["startup_s"] if started else None
    return rows[-1]["t"] - rows[0]["t"], len(rows) - 1, startup


def _rates(quick: bool) -> list[dict]:
    experiments = 8 if quick else 16
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        work = root / "work"
        work.mkdir()
        (work / "params.py").write_text("V = 0\n")
        (work / "eval.py").write_text(WAIT_EVAL)
        values = ", ".join(str(v) for v in range(1, experiments + 3))
        (root / "pb.md").write_text(WAIT_PLAYBOOK.format(python=sys.executable, values=values))
        one = _span(_clive(root, "pb.md", "--max-experiments", str(experiments)))
        two = _span(_clive(root, "pb.md", "--max-experiments", str(experiments), "--workers", "2"))
        direct = []
        for _ in range(3):
            t = time.monotonic()
            subprocess.run([sys.executable, "eval.py"], cwd=work, check=True, capture_output=True)
            direct.append(time.monotonic() - t)
    per_hour_1 = 3600 * one[1] / one[0]
    per_hour_2 = 3600 * two[1] / two[0]
    per_worker = 2 * two[0] / two[1]
    eval_time = statistics.median(direct)
    rows.append({
        "figure": f"experiments per hour, eval waiting ~1 s, 2 workers vs 1 ({experiments} each)",
        "clive": round(per_hour_2), "baseline": round(per_hour_1), "unit": "/h",
        "ratio": round(per_hour_2 / per_hour_1, 3), "target": ">= 1.8x", "pass": per_hour_2 / per_hour_1 >= 1.8,
    })
    rows.append({
        "figure": "time per experiment per worker at 2 workers (baseline: the eval run directly)",
        "clive": round(per_worker, 3), "baseline": round(eval_time, 3), "unit": "s",
        "ratio": round(per_worker / eval_time, 3), "target": "overhead <= 5%", "pass": per_worker / eval_time <= 1.05,
    })
    if two[2] is not None:
        rows.append({"figure": "private Ray on 127.0.0.1 and 2 workers started", "clive": round(two[2], 2),
                     "baseline": None, "unit": "s", "ratio": None, "target": "", "pass": None})
    return rows


def _spreads(quick: bool) -> list[dict]:
    experiments = 6 if quick else 12
    noise = 0.03
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(ROOT / "playbooks" / "matmul", root / "matmul")
        (root / "matmul" / "knob.txt").write_text("0\n")
        values = ", ".join(str(v) for v in range(1, experiments + 2))
        spreads = {}
        for name, args, resources in [
            ("1 worker", (), ""),
            ("2 workers pinned to a core each", ("--workers", "2"), "resources: {cpus: 1}\n"),
            ("2 workers unpinned", ("--workers", "2"), "resources: {cpus: 0.5}\n"),
        ]:
            (root / "pb.md").write_text(MATMUL_PLAYBOOK.format(noise=noise, values=values, resources=resources))
            session = _clive(root, "pb.md", "--max-experiments", str(experiments), *args)
            metrics = [e["metric"] for e in _events(session) if e["type"] == "experiment" and e["n"] >= 1]
            if len(metrics) < 3 or None in metrics:
                raise RuntimeError(f"{name}: {len(metrics)} measurements")
            spreads[name] = (max(metrics) - min(metrics)) / statistics.median(metrics)
            spreads[name + " median"] = statistics.median(metrics)
    one = spreads["1 worker"]
    for name in ("2 workers pinned to a core each", "2 workers unpinned"):
        pinned = "pinned" in name and "unpinned" not in name
        rows.append({
            "figure": f"matmul metric spread (max-min)/median, {name} (baseline: 1 worker; median "
                      f"{spreads[name + ' median']:.3g} vs {spreads['1 worker median']:.3g} GFLOP/s)",
            "clive": round(spreads[name], 4), "baseline": round(one, 4), "unit": "",
            "ratio": round(spreads[name] / one, 3) if one else None,
            "target": f"<= {2 * noise:g} (noise {noise:g} either way)" if pinned else "",
            "pass": spreads[name] <= 2 * noise if pinned else None,
        })
    return rows


def _started(ray: Any, timeout: float) -> bool:
    """Whether ``ray start`` said its node is up (it prints this once the raylet has joined)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ray.proc.poll() is None:
        if "Ray runtime started" in (ray.temp_dir / "ray-start.log").read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def _gpus(quick: bool) -> list[dict]:
    from clive.experiments.ray_engine import LocalRay, gpu_count

    gpus = gpu_count()
    if not gpus or not shutil.which("nvcc"):
        return [{"figure": "cuda.md, N workers with a GPU each vs 1 in-process: no GPU or nvcc here, not measured",
                 "clive": None, "baseline": None, "unit": "", "ratio": None, "target": "", "pass": None}]
    experiments = 6 if quick else 12
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(ROOT / "playbooks" / "cuda", root / "cuda")
        shutil.copy(ROOT / "playbooks" / "cuda.md", root / "cuda.md")
        one = _span(_clive(root, "cuda.md", "--max-experiments", str(experiments)))
        ray = LocalRay(cpus=os.cpu_count() or 1, gpus=gpus)  # its token is in os.environ for the run
        try:
            if not _started(ray, 60):
                raise RuntimeError(f"the Ray instance did not start: {ray.failure()}")
            session = _clive(root, "cuda.md", "--max-experiments", str(experiments), "--workers", str(gpus),
                             "--cluster", ray.address)
            many = _span(session)
            assigned = sorted(
                json.loads((w / "meta.json").read_text()).get("gpus", {}).get("CUDA_VISIBLE_DEVICES", "?")
                for w in (session / "workers").iterdir()
            )
        finally:
            ray.close()
    rate_one, rate_many = 3600 * one[1] / one[0], 3600 * many[1] / many[0]
    return [{
        "figure": f"cuda.md experiments per hour, {gpus} worker(s) with a GPU each (CUDA_VISIBLE_DEVICES "
                  f"{', '.join(assigned)}) vs 1 in-process ({experiments} each)",
        "clive": round(rate_many), "baseline": round(rate_one), "unit": "/h",
        "ratio": round(rate_many / rate_one, 3), "target": f">= {0.9 * gpus:g}x",
        "pass": rate_many / rate_one >= 0.9 * gpus,
    }]


PARTS = {"rates": _rates, "spreads": _spreads, "gpus": _gpus}


def run(quick: bool, only: tuple[str, ...] = tuple(PARTS)) -> list[dict]:
    return [row for name in only for row in PARTS[name](quick)]


if __name__ == "__main__":
    chosen = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), ",".join(PARTS))
    for row in run("--quick" in sys.argv, tuple(chosen.split(","))):
        print(f"{row['figure']}: clive {row['clive']} {row['unit']} vs {row['baseline']} -> ratio {row['ratio']} "
              f"(target {row['target'] or '-'}) {'' if row['pass'] is None else 'PASS' if row['pass'] else 'FAIL'}")
