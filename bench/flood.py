"""Flood throughput: how fast each terminal shows the last line of a big ``cat``.

For a 10 MB and a 50 MB file of log lines, plain and coloured (SGR every few words), the time from
typing the command to the screen showing a marker printed after the file:

* clive: a real ``Terminal`` (bash) with ``FastStream`` running ``clear``, then ``cat FILE; echo FLOOD""_DONE``
  timed until ``wait_text("FLOOD_DONE")`` returns (the file's last line is checked on screen);
* plain pyte: the same Terminal reading through ``pyte.Stream`` (slow: a smaller file, its MB/s
  stands for every size);
* tmux: ``clear``, then ``send-keys "cat FILE; tmux wait-for -S done"`` and ``tmux wait-for done``;
* raw PTY: pexpect spawns ``cat FILE`` and reads to EOF without rendering anything, timed from the
  moment cat runs.

Also: 1 MB (and 10 MB) of CJK log lines (two-cell characters) and of log lines with emoji and accents
(clusters: skin tones, ZWJ sequences, flags, combining marks), against tmux and a raw read; Ctrl-C on a
50 MB flood (seconds until the prompt
is back), the peak RSS of a fresh process showing one coloured flood of each size (bounded: no
growth with the size), and the peak RSS of this process.

    python -m bench --only flood [--quick]        (quick: 10 MB only)
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pexpect
import pyte

from bench._tmux import Tmux
from clive.terminal import Terminal, fastcheck
from clive.terminal.fastfeed import FastStream

MB = 1_000_000
MARK = "FLOOD_DONE"
MARK_COMMAND = 'echo FLOOD""_DONE'  # the echoed command line must not contain the marker
RSS_TARGET_MB = 256


# ---- the files -------------------------------------------------------------------------------


def make_file(path: Path, size: int, coloured: bool, seed: int = 7) -> str:
    """Write about ``size`` bytes of log lines (some wider than 80 columns); returns the last line."""
    rng = random.Random(seed)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "kernel",
        "batch",
        "loss",
        "step",
        "warn",
        "cache",
        "miss",
        "hit",
        "tensor",
        "shape",
        "grad",
        "norm",
        "queue",
        "flush",
        "sync",
    ]
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    colours = {"INFO": "32", "DEBUG": "36", "WARN": "33", "ERROR": "1;31"}
    phrases = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 14))) for _ in range(4096)]
    if coloured:
        phrases = [
            " ".join(
                f"\x1b[{rng.choice(['1', '35', '38;5;208', '4'])}m{w}\x1b[0m" if i % 3 == 2 else w
                for i, w in enumerate(p.split())
            )
            for p in phrases
        ]
    written = 0
    n = 0
    with path.open("w", encoding="utf-8") as f:
        while written < size:
            block = []
            for _ in range(2000):
                level = levels[n % 6]
                tag = f"\x1b[{colours[level]}m{level:5}\x1b[0m" if coloured else f"{level:5}"
                block.append(
                    f"{n:08d} 12:{n // 60 % 60:02d}:{n % 60:02d} {tag} w{n % 16:02d} "
                    f"{phrases[(n * 7919) % 4096]} ({n % 997} ms)\n"
                )
                n += 1
            text = "".join(block)
            f.write(text)
            written += len(text.encode())
        last = f"END OF FLOOD {n} lines"
        f.write(last + "\n")
    return last


def _write_lines(path: Path, size: int, line: Any) -> str:
    """Write ``line(n)`` for n = 0, 1, ... until about ``size`` bytes, then a last line; returns that."""
    written = 0
    n = 0
    with path.open("w", encoding="utf-8") as f:
        while written < size:
            text = line(n)
            f.write(text)
            written += len(text.encode())
            n += 1
        last = f"END OF FLOOD {n} lines"
        f.write(last + "\n")
    return last


def make_cjk_file(path: Path, size: int, seed: int = 7) -> str:
    """Write about ``size`` bytes of log lines that are mostly two-cell characters; returns the last line."""
    rng = random.Random(seed)
    words = ["模型", "训练", "步骤", "损失", "梯度", "缓存", "队列", "张量", "形状", "同步", "警告", "完成"]
    return _write_lines(
        path, size, lambda n: f"{n:08d} INFO " + "".join(rng.choice(words) for _ in range(rng.randint(3, 30))) + "\n"
    )


def make_emoji_file(path: Path, size: int, seed: int = 7) -> str:
    """Write about ``size`` bytes of log lines, each with emoji and accents among its words: two-cell
    characters beyond the BMP, skin tones, ZWJ sequences, flags, variation selectors and combining
    marks (clusters a terminal keeps in one cell); returns the last line."""
    rng = random.Random(seed)
    words = ["step", "loss", "batch", "kernel", "cache", "sync", "grad", "warn"]
    marks = ["✅", "🚀", "🔥", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "❤\ufe0f", "⚠\ufe0f", "🧪",
             "cafe\u0301", "nai\u0308ve", "e\u0301\u0323"]  # fmt: skip

    def line(n: int) -> str:
        parts = [f"{n:08d} INFO"]
        for _ in range(rng.randint(3, 14)):
            parts.append(rng.choice(words) if rng.random() < 0.7 else rng.choice(marks))
        return " ".join(parts) + "\n"

    return _write_lines(path, size, line)


# ---- the four readers --------------------------------------------------------------------------


def _terminal(stream: str) -> Terminal:
    term = Terminal(cols=80, rows=24)
    with term._cond:
        screen = term._screen
        if stream == "fast" and not isinstance(term._stream, FastStream):
            term._stream = FastStream(screen)
        elif stream == "pyte":
            term._stream = pyte.Stream(screen)
    return term


def clive_flood(path: Path, last: str, stream: str = "fast") -> tuple[float, bool]:
    """Seconds until the screen shows the marker after ``cat``; whether the file's last line shows."""
    size = path.stat().st_size
    term = _terminal(stream)
    try:
        timeout = 30 + size / (0.2 * MB)
        # As tmux_flood does, and its shell has long run: a shell that has run `clear`. The first command
        # after a shell starts ran 5-10% slower here.
        term.run("clear")
        started = time.perf_counter()
        term.type(f"cat {path}; {MARK_COMMAND}\r")
        snap = term.wait_text(MARK, timeout=timeout)
        seconds = time.perf_counter() - started
        shown = any(line.startswith(MARK) for line in snap.lines) and any(last in line for line in snap.lines)
        return seconds, shown
    finally:
        term.close()


def clive_interrupt(path: Path) -> float:
    """Seconds from Ctrl-C (sent 0.3 s into the flood) until the prompt is back."""
    term = _terminal("fast")
    try:
        term.type(f"cat {path}\r")
        time.sleep(0.3)
        started = time.perf_counter()
        term.interrupt(grace=5.0)
        return time.perf_counter() - started
    finally:
        term.close()


def tmux_flood(tmux: Tmux, path: Path, last: str) -> tuple[float, bool]:
    tmux.send("clear")
    time.sleep(0.05)
    started = time.perf_counter()
    tmux.send(f"cat {path}; tmux -L {tmux.socket} wait-for -S done")
    tmux.tmux("wait-for", "done")
    seconds = time.perf_counter() - started
    return seconds, last in tmux.capture()


def raw_flood(path: Path) -> float:
    child = pexpect.spawn("cat", [str(path)], dimensions=(24, 80))
    # Timed from a running cat: pexpect's own start (about 7 ms here, twice what it takes bash to start
    # cat for clive) is no part of reading a PTY, and would flatter clive's ratio.
    started = time.perf_counter()
    fd = child.child_fd
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
        return time.perf_counter() - started
    finally:
        child.close(force=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# VmHWM, not ru_maxrss: on Linux a process's ru_maxrss keeps the peak of the process it was forked from.
_ONE_FLOOD = """
import sys
from pathlib import Path
from bench.flood import clive_flood
seconds, shown = clive_flood(Path(sys.argv[1]), sys.argv[2])
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(peak[0] if shown else -1)
"""


def one_flood_peak_rss_mb(path: Path, last: str) -> float:
    """Peak RSS of a fresh process showing one flood: what the flood itself costs. This process's own
    peak also holds what the runs before it left behind in the allocator."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _ONE_FLOOD, str(path), last], cwd=root, capture_output=True, text=True, check=True
    )
    kib = int(done.stdout.split()[-1])
    if kib < 0:
        raise RuntimeError(f"the flood of {path.name} did not end with its last line on screen")
    return kib / 1024


# ---- the table -----------------------------------------------------------------------------------


def _row(figure: str, clive: Any, baseline: Any, unit: str, target: str, ok: bool | None, **extra: Any) -> dict:
    ratio = clive / baseline if isinstance(clive, float) and isinstance(baseline, float) and baseline else None
    return {
        "figure": figure,
        "clive": clive,
        "baseline": baseline,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "pass": ok,
        **extra,
    }


def _rate(path: Path, runs: list[float]) -> float:
    """MB/s of the best of ``runs`` (seconds): the least disturbed by the rest of the machine."""
    return path.stat().st_size / min(runs) / MB


def _compare(path: Path, last: str, tmux: Tmux, repeats: int) -> tuple[float, float, float, bool]:
    """MB/s of clive, tmux and the raw read on one file, interleaved; whether clive showed its last line."""
    clive, tmux_runs, raw = [], [], []
    shown = True
    for _ in range(repeats):
        seconds, on_screen = clive_flood(path, last)
        clive.append(seconds)
        shown &= on_screen
        tmux_runs.append(tmux_flood(tmux, path, last)[0])
        raw.append(raw_flood(path))
    return _rate(path, clive), _rate(path, tmux_runs), _rate(path, raw), shown


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = [10 * MB] if quick else [10 * MB, 50 * MB]
    pyte_size = 1 * MB if quick else 4 * MB
    repeats = 2 if quick else 3
    if not shutil.which("tmux"):
        raise RuntimeError("tmux is not installed")
    rows: list[dict[str, Any]] = []
    checks = "C" if fastcheck._speedups is not None else "Python (clive.terminal._speedups is not built)"
    print(f"flood: FastStream's checks in {checks}", file=sys.stderr, flush=True)
    rss_of: dict[int, float] = {}  # peak RSS of a process showing one coloured flood, by size
    with tempfile.TemporaryDirectory(prefix="clive-flood-") as tmp, Tmux(Path(tmp)) as tmux:
        work = Path(tmp)
        pyte_rate = {}
        for variant in ("plain", "coloured"):
            small = work / f"{variant}-pyte.txt"
            last = make_file(small, pyte_size, variant == "coloured")
            pyte_rate[variant] = _rate(small, [clive_flood(small, last, stream="pyte")[0]])
            print(f"flood: plain pyte, {variant}: {pyte_rate[variant]:.2f} MB/s", file=sys.stderr, flush=True)
        # Two-cell characters (CJK), and emoji and accents (clusters): against a raw read and tmux.
        # The first flood of emoji in a process also makes the width table of every plane (about 70 ms).
        wide_sizes = [MB] if quick else [MB, 10 * MB]
        for name, make, figure in (
            ("CJK", make_cjk_file, "CJK log lines (two-cell characters)"),
            ("emoji", make_emoji_file, "log lines with emoji and accents (clusters)"),
        ):
            for size in wide_sizes:
                path = work / f"{name}-{size // MB}.txt"
                last = make(path, size)
                clive, tmux_rate, raw, shown = _compare(path, last, tmux, repeats)
                pyte_wide = _rate(path, [clive_flood(path, last, stream="pyte")[0]]) if size == MB else None
                path.unlink()
                label = f"flood {size // MB} MB of {figure}"
                pyte_note = "" if pyte_wide is None else f", plain pyte {pyte_wide:.2f}"
                print(f"flood: {label}: clive {clive:.1f}, tmux {tmux_rate:.1f}, raw {raw:.1f}{pyte_note} MB/s",
                      file=sys.stderr)  # fmt: skip
                note = "" if shown else " (last line NOT on screen)"
                target_tmux = ">= 1x tmux" if name == "emoji" else "-"
                rows += [
                    _row(f"{label}: clive vs tmux{note}", clive, tmux_rate, "MB/s", target_tmux,
                         shown and clive >= tmux_rate if name == "emoji" else None),
                    _row(f"{label}: clive vs raw PTY read", clive, raw, "MB/s", ">= 0.5x raw" if name == "CJK" else "-",
                         shown and clive >= 0.5 * raw if name == "CJK" else None),
                ]  # fmt: skip
                if pyte_wide is not None:
                    rows.append(_row(f"{label}: clive vs plain pyte", clive, pyte_wide, "MB/s", "-", None))
        for size in sizes:
            for variant in ("plain", "coloured"):
                path = work / f"{variant}-{size // MB}.txt"
                last = make_file(path, size, variant == "coloured")
                clive, tmux_rate, raw, shown = _compare(path, last, tmux, repeats)
                if variant == "coloured":
                    rss_of[size] = one_flood_peak_rss_mb(path, last)
                path.unlink()
                label = f"flood {size // MB} MB {variant}"
                print(f"flood: {label}: clive {clive:.1f}, tmux {tmux_rate:.1f}, raw {raw:.1f} MB/s", file=sys.stderr)
                note = "" if shown else " (last line NOT on screen)"
                rows += [
                    _row(f"{label}: clive vs tmux{note}", clive, tmux_rate, "MB/s", ">= 1x tmux",
                         shown and clive >= tmux_rate),
                    _row(f"{label}: clive vs raw PTY read", clive, raw, "MB/s", ">= 0.5x raw",
                         shown and clive >= 0.5 * raw),
                    _row(f"{label}: clive vs plain pyte ({pyte_size // MB} MB)", clive, pyte_rate[variant], "MB/s",
                         "-", None),
                ]  # fmt: skip
        big = work / "interrupt.txt"
        make_file(big, 50 * MB, coloured=True)
        seconds = clive_interrupt(big)
        rows.append(_row("flood: Ctrl-C on a 50 MB coloured cat, prompt back", seconds, None, "s", "<= 1 s",
                         seconds <= 1.0))  # fmt: skip
    for size, peak in sorted(rss_of.items()):
        rows.append(_row(f"flood: peak RSS of a process showing one {size // MB} MB coloured flood", peak, None,
                         "MB", f"< {RSS_TARGET_MB} MB", peak < RSS_TARGET_MB))  # fmt: skip
    if len(rss_of) > 1:
        growth = rss_of[max(rss_of)] - rss_of[min(rss_of)]
        rows.append(_row("flood: peak RSS growth from the 10 MB to the 50 MB flood", growth, None, "MB",
                         "< 32 MB (bounded)", growth < 32))  # fmt: skip
    peak = peak_rss_mb()
    rows.append(_row("flood: peak RSS of the benchmark process (all runs)", peak, None, "MB",
                     f"< {RSS_TARGET_MB} MB", peak < RSS_TARGET_MB))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.run import render_table

    print(render_table(run(quick="--quick" in sys.argv[1:])))
