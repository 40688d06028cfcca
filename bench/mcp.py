"""`clive mcp` latency: a trivial command (`true`) through MCP over stdio to its exit code.

* mcp: the SDK's own client (``mcp.Client`` over stdio) calls the ``run`` tool of a ``clive mcp``
  subprocess, which runs it in a real terminal and answers with the exit code; timed at the client,
  so it includes both JSON-RPC hops, the tool's recording in the session and the SDK on both sides;
* in-process: ``Terminal.run("true")`` in this process (what the tool does inside the server);
* tmux: ``send-keys`` then ``capture-pane`` every 10 ms until the exit-code marker shows (bench.latency).

Median (and p95 on stderr) over 200 rounds each (50 with --quick), in the same run.

    python -m bench --only mcp [--quick]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.latency import _p95, clive_rounds, tmux_rounds

TARGET_MS = 2.0
TARGET_RATIO = 5.0  # at most this many times the in-process run()
WARMUP = 20


def mcp_rounds(rounds: int) -> list[float]:
    """Seconds per ``run`` tool call of ``true`` through a ``clive mcp`` stdio server."""
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async def measure(workdir: str) -> list[float]:
        server = StdioServerParameters(
            command=sys.executable, args=["-m", "clive", "mcp", "--sessions", str(Path(workdir) / "sessions")],
            cwd=workdir,
        )
        async with Client(server) as client:
            opened = await client.call_tool("open_terminal", {})
            tid = opened.structured_content["terminal"]
            times = []
            for i in range(-WARMUP, rounds):
                started = time.perf_counter()
                reply = await client.call_tool("run", {"terminal": tid, "command": "true"})
                elapsed = time.perf_counter() - started
                if reply.is_error or reply.structured_content.get("exit_code") != 0:
                    raise RuntimeError(f"mcp: true did not exit 0: {reply.content[0].text}")
                if i >= 0:
                    times.append(elapsed)
            return times

    with tempfile.TemporaryDirectory(prefix="clive-bench-mcp-") as tmp:
        return anyio.run(measure, tmp)


def run(quick: bool) -> list[dict[str, Any]]:
    rounds = 50 if quick else 200
    inside = clive_rounds(rounds, "true")  # what the run tool does inside the server
    served = mcp_rounds(rounds)
    tmux = tmux_rounds(rounds) if shutil.which("tmux") else None
    m, i = statistics.median(served) * 1000, statistics.median(inside) * 1000
    t = statistics.median(tmux) * 1000 if tmux else None
    print(
        f"mcp: median {m:.2f} ms (p95 {_p95(served) * 1000:.2f}), in-process {i:.2f} ms (p95 "
        f"{_p95(inside) * 1000:.2f}), tmux {'-' if t is None else f'{t:.2f}'} ms; mcp / in-process {m / i:.2f}x",
        file=sys.stderr,
        flush=True,
    )
    rows: list[dict[str, Any]] = [
        {
            "figure": f"mcp: `true` to its exit code through MCP (stdio) vs Terminal.run in-process, median "
            f"({rounds} rounds)",
            "clive": m,
            "baseline": i,
            "unit": "ms",
            "ratio": m / i,
            "target": f"<= {TARGET_MS:g} ms, <= {TARGET_RATIO:g}x in-process",
            "pass": m <= TARGET_MS and m / i <= TARGET_RATIO,
        }
    ]
    if t is not None:
        rows.append(
            {
                "figure": f"mcp: `true` through MCP (stdio) vs tmux send-keys + capture-pane polling, median "
                f"({rounds} rounds)",
                "clive": m,
                "baseline": t,
                "unit": "ms",
                "ratio": m / t,
                "target": "faster than tmux polling",
                "pass": m < t,
            }
        )
    return rows


if __name__ == "__main__":
    from bench.run import render_table

    print(render_table(run(quick="--quick" in sys.argv[1:])))
