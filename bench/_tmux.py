"""A private tmux server for benchmarks: one pane running bash without rc files."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


class Tmux:
    """A tmux server on its own socket with one ``cols`` x ``rows`` pane (status line off)."""

    def __init__(self, workdir: Path, cols: int = 80, rows: int = 24) -> None:
        self.socket = f"clive-bench-{os.getpid()}"
        conf = workdir / "tmux.conf"
        conf.write_text("set -g history-limit 5000\nset -g status off\n")
        env = {k: os.environ[k] for k in ("PATH", "HOME", "USER") if k in os.environ}
        env.update({"TERM": "xterm-256color", "LANG": "C.UTF-8"})
        self.env = env
        self.tmux(
            "-f",
            str(conf),
            "new-session",
            "-d",
            "-x",
            str(cols),
            "-y",
            str(rows),
            "-s",
            "bench",
            "bash --norc --noprofile",
        )
        deadline = time.monotonic() + 10
        while not self.capture().strip():
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("tmux: the shell prompt did not appear")
            time.sleep(0.02)

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {args[0]}: {proc.stderr.strip()}")
        return proc.stdout

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def send(self, text: str) -> None:
        """Type ``text`` and Enter (one tmux call)."""
        self.tmux("send-keys", "-t", "bench", "-l", text, ";", "send-keys", "-t", "bench", "Enter")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
