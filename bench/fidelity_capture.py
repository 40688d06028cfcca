"""Capture the byte streams of the fidelity suite from real programs (run by hand; the streams are
shipped in tests/data/fidelity/, so the suite needs only tmux).

Each program runs in a fresh PTY of the stream's size with TERM=xterm-256color and LANG=C.UTF-8,
is driven by a few keys, and everything it writes is kept until the screen worth comparing is up;
then it is killed (its exit sequences are not part of the stream). Nothing answers its queries, as
nothing does when the stream is replayed.

    python -m bench.fidelity_capture [NAME ...]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "fidelity"
PY = shutil.which("python3") or sys.executable

CURSES_BOX = r"""
import curses
def main(s):
    curses.start_color(); curses.use_default_colors()
    curses.init_pair(1, curses.COLOR_YELLOW, curses.COLOR_BLUE)
    s.box()
    s.addstr(2, 4, "curses box() with TERM=xterm-256color", curses.A_BOLD)
    w = curses.newwin(6, 30, 5, 10); w.bkgd(" ", curses.color_pair(1)); w.box()
    w.addstr(2, 2, "inner window", curses.A_REVERSE)
    s.hline(12, 1, curses.ACS_HLINE, 40); s.addch(12, 41, curses.ACS_DIAMOND); s.addstr(14, 4, "ünïcödé 漢字 ok")
    s.refresh(); w.refresh(); s.move(20, 5); s.refresh()
    import time; time.sleep(30)
curses.wrapper(main)
"""

RICH_PROGRESS = r"""
import time
from rich.progress import Progress, BarColumn, TextColumn
with Progress(TextColumn("[bold blue]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
              refresh_per_second=20) as p:
    a = p.add_task("download", total=40); b = p.add_task("unpack ✓", total=40)
    for i in range(40):
        p.advance(a); p.advance(b, 0.5); time.sleep(0.02)
print("[done] 漢字 and emoji 🚀")
"""

TEXTUAL_APP = r"""
from textual.app import App
from textual.widgets import Header, Footer, Static, DataTable
class Demo(App):
    def compose(self):
        yield Header(); yield Static("Textual inside the fidelity suite — 漢字 ✓"); yield DataTable(); yield Footer()
    def on_mount(self):
        t = self.query_one(DataTable); t.add_columns("name", "value")
        for i in range(8): t.add_row(f"row {i}", str(i * i))
Demo().run()
"""

LOG = (
    "printf '\\033[32m[ok]\\033[0m 漢字のログ行 %s ✓ 한국어 中文\\n' $(seq 1 12); "
    "printf 'e\\xcc\\x81 a\\xcc\\x8a\\xcc\\x81 👨\\u200d👩\\u200d👧 family 🇫🇷 flag ❤\\xef\\xb8\\x8f end\\n'; "
    "printf '\\033[1;31merror\\033[0m 🚀 rocket ｆｕｌｌｗｉｄｔｈ end\\n'; sleep 30"
)

VIM_FILE = """import os


def walk(top):
    \"\"\"Yield every file under top.\"\"\"
    for root, dirs, files in os.walk(top):
        for name in files:  # comment
            yield os.path.join(root, name)


if __name__ == "__main__":
    print(sum(1 for _ in walk(".")), "files")
"""


def programs(tmp: Path) -> dict[str, dict]:
    (tmp / "walk.py").write_text(VIM_FILE * 3)
    (tmp / "box.py").write_text(CURSES_BOX)
    (tmp / "rich_progress.py").write_text(RICH_PROGRESS)
    (tmp / "textual_app.py").write_text(TEXTUAL_APP)
    coloured = "".join(f"\033[3{i % 8}mline {i}\033[0m \033[1mbold\033[0m \033[4munder\033[0m text\n"
                       for i in range(200))
    (tmp / "coloured.txt").write_text(coloured)
    return {
        "vim": {"argv": ["vim", "-u", "NONE", "-N", "-c", "syntax on", "-c", "set number hlsearch", "walk.py"],
                "steps": [1.0, b"10j", 0.3, b"/yield\r", 0.5]},
        "less": {"argv": ["less", "-R", "coloured.txt"], "steps": [0.5, b" ", 0.3, b"/bold\r", 0.5]},
        "htop": {"argv": ["htop", "-d", "10"], "steps": [1.5]},
        "mc": {"argv": ["mc", "--nosubshell", str(tmp), str(tmp)], "steps": [2.0]},
        "dialog": {"argv": ["dialog", "--checklist", "Pick what to build:", "15", "50", "5",
                            "matmul", "C kernel", "on", "inference", "int8 matvec", "off", "cuda", "GPU kernel", "on"],
                   "steps": [0.8, b"\x1b[B", 0.3]},
        "whiptail": {"argv": ["whiptail", "--yesno", "Keep this experiment?", "10", "40"], "steps": [0.8]},
        "ncdu": {"argv": ["ncdu", "-x", str(ROOT / "clive")], "steps": [1.5]},
        "git-log-graph": {"argv": ["bash", "--norc", "-c", f"git -C {ROOT} log --graph --color=always --oneline "
                                   "--decorate -40 --no-show-signature | cat; sleep 30"], "steps": [1.0]},
        "curses-box": {"argv": [PY, "box.py"], "steps": [1.0]},
        "rich-progress": {"argv": [sys.executable, "rich_progress.py"], "steps": [2.5]},
        "textual-app": {"argv": [sys.executable, "textual_app.py"], "steps": [3.0]},
        "cjk-emoji-log": {"argv": ["bash", "--norc", "-c", LOG], "steps": [1.0]},
    }


# The classic conformance screens: vttest's menus (1 cursor movements, 2 screen features, 3 character sets, 8 VT102
# insert/delete), one stream per screen, each from vttest's start to that screen.
VTTEST_MENUS = {"1": 6, "2": 15, "3": 1, "8": 12}
# What vttest asks a terminal and is answered here as a VT100 with advanced video would answer.
ANSWERS = {b"\x1b[0c": b"\x1b[?1;2c", b"\x1b[c": b"\x1b[?1;2c", b"\x1b[6n": b"\x1b[24;80R"}


class Captured:
    """A program in a fresh PTY of the stream's size, and everything it has written so far. Nothing
    answers its queries (as nothing does when the stream is replayed) but those in ``answers``."""

    def __init__(self, argv: list[str], cwd: Path, cols: int = 80, rows: int = 24,
                 answers: dict[bytes, bytes] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER")}
        env.update(TERM="xterm-256color", LANG="C.UTF-8", COLUMNS=str(cols), LINES=str(rows))
        self.child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env, dimensions=(rows, cols))
        self.child.delaybeforesend = None
        self.data = bytearray()
        self.answers = answers or {}

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return
            self.data.extend(chunk)
            for query, answer in self.answers.items():
                if query in chunk:
                    self.child.send(answer)

    def send(self, keys: bytes | str) -> None:
        self.child.send(keys)

    def kill(self) -> bytes:
        """Kill it (its exit sequences are not part of the stream); everything it wrote."""
        self.child.kill(9)
        self.child.close(force=True)
        return bytes(self.data)


def capture_vttest(menu: str, screens: int, cwd: Path) -> list[bytes]:
    vttest = Captured(["vttest"], cwd, answers=ANSWERS)
    vttest.drain(1.0)
    shots = []
    for key in [f"{menu}\r"] + ["\r"] * (screens - 1):
        vttest.send(key)
        vttest.drain(0.5)
        shots.append(bytes(vttest.data))
    vttest.kill()
    return shots


def capture(argv: list[str], steps: list, cwd: Path) -> bytes:
    program = Captured(argv, cwd)
    for step in steps:
        if isinstance(step, bytes):
            program.send(step)
        else:
            program.drain(step)
    return program.kill()


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clive-fidelity-") as tmp:
        table = programs(Path(tmp))
        for name, spec in table.items():
            if names and name not in names:
                continue
            if shutil.which(spec["argv"][0]) is None and not os.path.exists(spec["argv"][0]):
                print(f"{name}: skipped ({spec['argv'][0]} is not installed)", file=sys.stderr)
                continue
            data = capture(spec["argv"], spec["steps"], Path(tmp))
            (OUT / f"{name}.80x24.bin").write_bytes(data)
            print(f"{name}: {len(data)} bytes", file=sys.stderr)
        if (not names or "vttest" in names) and shutil.which("vttest"):
            for menu, screens in VTTEST_MENUS.items():
                for k, data in enumerate(capture_vttest(menu, screens, Path(tmp)), 1):
                    (OUT / f"vttest-{menu}-{k:02d}.80x24.bin").write_bytes(data)
                print(f"vttest menu {menu}: {screens} screens", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
