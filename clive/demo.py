"""A short tour of the terminal core: bash with exact exit codes, then vim driven by keys."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TextIO

from clive.terminal import Terminal


def run_demo(out: TextIO = sys.stdout) -> int:
    with tempfile.TemporaryDirectory(prefix="clive-demo-") as folder, Terminal(cwd=folder) as term:
        for command in ("echo hello from a real PTY", "false", "(exit 3)", "seq 1 3000 | wc -l"):
            result = term.run(command)
            first = result.output.splitlines()[0] if result.output else ""
            print(
                f"$ {command:<32} exit {result.exit_code}  {result.duration * 1000:6.2f} ms  {first}",
                file=out,
            )
        term.press("vim -u NONE -N note.txt<Enter>")
        term.wait_text('"note.txt" [New]')
        term.press("iclive typed this in vim<Esc>")
        status = term.wait_text("clive typed this").lines[-1]
        term.press(":wq<Enter>")
        term.wait_prompt()
        written = (Path(folder) / "note.txt").read_text().strip()
        print(f"vim status line while editing: {status.strip()!r}", file=out)
        print(f"note.txt after :wq -> {written!r}", file=out)
        print("screen now:", file=out)
        for line in term.snapshot().text().splitlines()[-4:]:
            print(f"  | {line}", file=out)
    return 0
