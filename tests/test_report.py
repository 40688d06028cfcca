"""`clive report` on crafted sessions: the figures, plateau and near misses, JSON, and comparing two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clive.cli import main

HEADER = "commit\tmetric\tstatus\tdescription\texperiment\tduration\thypothesis\n"
# (metric, status, description): the best goes 10 -> 12 -> 15, then nine experiments keep nothing.
ROWS = [
    (10, "keep", "baseline"),
    (12, "keep", "tile = 2"),
    (11.8, "discard", "tile = 4"),  # within 3% of the best it faced (12): a near miss
    (15, "keep", "unroll = 2"),
    (14.9, "discard", "tile = 8, unroll = 4"),  # within 3% of 15: a near miss
    (9, "discard", "unroll = 8"),
    (None, "crash", "tile = 16 (eval failed (exit 1))"),
    *[(13, "discard", f"vector = {v}") for v in (2, 4, 8, 16, 32, 64)],
]


def craft(sessions: Path, name: str, rows: list, *, playbook: str = "/nowhere/kernel.md", repeats: bool = True) -> Path:
    session = sessions / name
    session.mkdir(parents=True)
    meta = {"id": name, "playbook": playbook, "policy": "scripted", "search": "greedy", "status": "done",
            "direction": "maximize", "noise": 0.03, "plateau": None}
    (session / "meta.json").write_text(json.dumps(meta))
    lines = [HEADER]
    events = []
    for n, (metric, status, description) in enumerate(rows):
        shown = "" if metric is None else str(metric)
        lines.append(f"{n:012x}\t{shown}\t{status}\t{description}\t{n}\t10.00\tbecause {n}\n")
        spread = [metric * 0.99, metric, metric * 1.01] if repeats and metric else []
        events.append({"type": "experiment", "t": 10.0 * n, "cycle": n, "n": n, "metric": metric, "status": status,
                       "repeats": spread})
    (session / "results.tsv").write_text("".join(lines))
    (session / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return session


def test_a_report_says_best_speedup_rate_noise_plateau_and_near_misses(tmp_path, capsys):
    craft(tmp_path, "20261205-100000-aaaa", ROWS)
    assert main(["report", "20261205-100000-aaaa", "--sessions", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["baseline"], r["best"], r["best_experiment"]) == (10, 15, 3)
    assert r["speedup"] == pytest.approx(1.5)
    assert (r["experiments"], r["kept"], r["discarded"], r["crashed"]) == (12, 2, 9, 1)
    assert r["keep_rate"] == pytest.approx(2 / 12)
    assert r["experiments_per_hour"] == pytest.approx(12 / 120 * 3600)  # 12 experiments in 120 s
    assert r["noise_seen"]["measurements"] == 12
    assert r["noise_seen"]["median_spread"] == pytest.approx(0.02)
    assert r["plateau"]["experiments_since_last_keep"] == 9
    assert r["plateau"]["plateaued"] is True
    assert [m["n"] for m in r["near_misses"]] == [2, 4]
    assert r["near_misses"][0]["vs_best"] == pytest.approx(-0.2 / 12, abs=1e-4)
    assert [t["n"] for t in r["top"]] == [3, 4, 7, 8, 9]
    assert r["top"][0]["hypothesis"] == "because 3"
    effects = r["knobs"]["by_change"]
    assert effects["tile"]["experiments"] == 4 and effects["tile"]["kept"] == 1
    assert effects["unroll"]["kept"] == 1 and effects["vector"]["kept"] == 0
    # tile's gains over the best each faced: +20% (12 on 10), -1.7% (11.8 on 12), -0.7% (14.9 on 15).
    assert effects["tile"]["median_gain"] == pytest.approx(-0.1 / 15)

    assert main(["report", "20261205-100000-aaaa", "--sessions", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "baseline 10, best 15 at experiment 3" in text and "1.50x" in text
    assert "12 experiments: 2 kept, 9 discarded, 1 crashed (keep rate 17%); 360 experiments/hour" in text
    assert "plateau: 9 experiments since the last keep" in text and "plateaued" in text
    assert "near misses" in text and "#2" in text and "#4" in text


def test_a_run_still_improving_is_not_a_plateau(tmp_path, capsys):
    rows = [(10, "keep", "baseline"), (11, "discard", "a = 1"), (12, "keep", "a = 2"), (14, "keep", "b = 1")]
    craft(tmp_path, "20261205-100000-bbbb", rows, repeats=False)
    assert main(["report", "20261205-100000-bbbb", "--sessions", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["plateau"] == {"experiments_since_last_keep": 0, "recent_improvement": pytest.approx(0.4),
                            "recent_window": 3, "plateaued": False}
    assert r["near_misses"] == []  # 11 is 10% above the baseline it faced: a clear loss to the keep rule
    assert r["noise_seen"]["measurements"] == 0


def test_two_runs_of_one_playbook_are_compared_and_of_two_playbooks_refused(tmp_path, capsys):
    craft(tmp_path, "20261205-100000-aaaa", ROWS)
    craft(tmp_path, "20261205-110000-cccc", [(10, "keep", "baseline"), (20, "keep", "tile = 2, unroll = 2")])
    craft(tmp_path, "20261205-120000-dddd", ROWS, playbook="/nowhere/other.md")
    assert main(["report", "20261205-100000-aaaa", "20261205-110000-cccc", "--sessions", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "20261205-110000-cccc reached 1.33x the best of 20261205-100000-aaaa" in out
    assert "keep rate" in out and "17%" in out and "100%" in out
    assert main(["report", "20261205-100000-aaaa", "20261205-120000-dddd", "--sessions", str(tmp_path)]) == 2
    assert "ran different playbooks (kernel vs other)" in capsys.readouterr().err


def test_report_refuses_what_is_not_an_experiment_run(tmp_path, capsys):
    (tmp_path / "20261205-100000-eeee").mkdir()
    (tmp_path / "20261205-100000-eeee" / "meta.json").write_text("{}")
    (tmp_path / "20261205-100000-eeee" / "events.jsonl").write_text("")
    assert main(["report", "20261205-100000-eeee", "--sessions", str(tmp_path)]) == 2
    assert "is not an experiment run (no results.tsv)" in capsys.readouterr().err
    assert main(["report", "nope", "--sessions", str(tmp_path)]) == 2
