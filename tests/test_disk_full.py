"""A disk that fills up mid-run stops the run with one clear line and leaves every file readable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clive.experiments.results import ResultsTable
from clive.session import SessionReader

PLAYBOOK = """\
---
name: filler
workdir: work
eval: {python} eval.py
metric: 'score: (\\d+)'
search:
  - name: v
    file: params.py
    pattern: '^V = (\\d+)'
    values: [{values}]
---
Fill the disk.
"""

EVAL = "import re\nprint('score:', re.search(r'V = (\\d+)', open('params.py').read()).group(1))\nprint('x' * 20000)\n"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_no_space_left_stops_the_run_with_one_line(tmp_path, small_disk):
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.py").write_text("V = 1\n")
    (work / "eval.py").write_text(EVAL)
    values = ", ".join(str(v) for v in range(2, 400))
    (tmp_path / "filler.md").write_text(PLAYBOOK.format(python=sys.executable, values=values))
    done = subprocess.run(
        [sys.executable, "-m", "clive", "run", "filler.md", "--sessions", str(small_disk)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("clive: ") and "No space left on device" in last, done.stderr
    assert "Traceback" not in done.stderr
    (session,) = Path(small_disk).iterdir()
    reader = SessionReader.open(session)  # every file still opens
    assert reader.cycles()
    rows = ResultsTable.__new__(ResultsTable)
    rows.path = session / "results.tsv"
    assert rows.rows()[0].description == "baseline"


def test_a_full_disk_under_the_search_study_is_an_oserror_not_a_traceback(tmp_path, small_disk):
    from clive.experiments.playbook import Move
    from clive.experiments.search import Search

    work = tmp_path / "work"
    work.mkdir()
    (work / "params.py").write_text("V = 1\n")
    moves = [Move(name="v", file="params.py", pattern=r"^V = (\d+)", values=tuple(str(v) for v in range(2, 50)))]
    search = Search(moves, work, small_disk / "search.db", name="s", direction="maximize", seed=1)
    proposal = search.ask()
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # the rest of the disk, to the last block
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
    with pytest.raises(OSError) as caught:
        for _ in range(50):  # SQLite may still fit a page or two it holds free
            search.tell(proposal.number, 1.0)
            proposal = search.ask()
    assert caught.value.filename == str(small_disk / "search.db")
    assert "No space left on device" in str(caught.value)
