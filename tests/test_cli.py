"""`clive` as a user runs it: a steps playbook, Ctrl-C, SIGKILL and resume, --approve, bad usage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clive.session import Recorder
from clive.terminal import Terminal

CLIVE = [sys.executable, "-m", "clive"]
DATA = Path(__file__).parent / "data" / "tui-session"  # a recorded session

STEPS_PLAYBOOK = """\
---
name: hello-c
steps:
  - type: keys
    keys: "vim -u NONE -N hello.c<Enter>"
    wait: {kind: text, value: '"hello.c" [New]'}
  - type: keys
    keys: 'i#include <lt>stdio.h><Enter>int main(void) { printf("%d\\n", 6 * 7); return 0; }<Esc>'
    wait: {kind: idle, value: 200}
  - type: keys
    keys: ":wq<Enter>"
    wait: {kind: prompt}
  - gcc -O2 -o hello hello.c
  - type: run
    command: ./hello
    expect: "42"
---
Write, build and run a C program.
"""

SLOW_PLAYBOOK = """\
---
name: slow
steps:
  - echo step-one
  - sleep 4.5
  - echo step-three
---
Three steps, the second slow.
"""


def _clive(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLIVE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, **kw)


def _events(session: Path) -> list[dict]:
    return [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines() if line.strip()]


def test_steps_playbook_writes_compiles_and_runs_c_offline(tmp_path):
    (tmp_path / "hello.md").write_text(STEPS_PLAYBOOK)
    done = _clive("run", "hello.md", cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "done: all 5 steps done" in done.stderr
    assert "printf" in (tmp_path / "hello.c").read_text()
    (session,) = (tmp_path / "sessions").iterdir()
    cycles = [e for e in _events(session) if e["type"] == "cycle"]
    assert cycles[4]["outcome"]["output"] == "42"
    listing = _clive("sessions", cwd=tmp_path)
    assert session.name in listing.stdout and "done" in listing.stdout
    timeline = _clive("replay", session.name, "--print", cwd=tmp_path)
    assert timeline.returncode == 0
    assert "./hello" in timeline.stdout and "exit 0" in timeline.stdout


def _start_slow(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "slow.md").write_text(SLOW_PLAYBOOK)
    proc = subprocess.Popen([*CLIVE, "run", "slow.md"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    session = None
    while time.monotonic() < deadline:
        sessions = list((tmp_path / "sessions").glob("*/events.jsonl"))
        if sessions and "step-one" in sessions[0].read_text():
            session = sessions[0].parent
            break
        time.sleep(0.05)
    assert session is not None, "the run did not start"
    time.sleep(0.3)  # let it type `sleep 4.5`
    return proc, session


def test_ctrl_c_stops_at_a_safe_point_and_exits_130(tmp_path):
    proc, session = _start_slow(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    meta = json.loads((session / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["ended"]
    commands = [e["action"].get("command") for e in _events(session) if e["type"] == "cycle"]
    assert commands == ["echo step-one", "sleep 4.5"]  # step three never started


def test_sigkill_loses_nothing_completed_and_resume_finishes(tmp_path):
    proc, session = _start_slow(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    timeline = _clive("replay", str(session), "--print", cwd=tmp_path)
    assert timeline.returncode == 0
    assert "echo step-one" in timeline.stdout
    # The killed run's shell and its command got the PTY's hangup: nothing of it is left running.
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", "sleep 4.5"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the killed run left a process behind"
        time.sleep(0.05)
    resumed = _clive("run", "--resume", session.name, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    commands = [e["action"].get("command") for e in _events(session) if e["type"] == "cycle"]
    # The step in flight when the run was killed is run again; the one before it is not.
    assert commands == ["echo step-one", "sleep 4.5", "echo step-three", None]
    assert json.loads((session / "meta.json").read_text())["status"] == "done"


def test_approve_asks_on_stdin_and_a_no_is_recorded_as_refused(tmp_path):
    (tmp_path / "two.md").write_text("---\nname: two\nsteps:\n  - echo first-ok\n  - echo second-no\n---\n")
    done = _clive("run", "two.md", "--approve", cwd=tmp_path, input="y\nn\ny\n")
    assert done.returncode == 0, done.stderr
    assert "approve? [y]es / [n]o / [e]dit" in done.stderr
    (session,) = (tmp_path / "sessions").iterdir()
    cycles = [e for e in _events(session) if e["type"] == "cycle"]
    assert cycles[0]["outcome"]["output"] == "first-ok"
    assert cycles[1]["outcome"]["refused"] and "rejected" in cycles[1]["outcome"]["error"]
    assert "second-no" not in (session / "terminal.cast").read_text().replace("echo second-no", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.md"], "missing.md:1: file: no such file"),
        (["run", "--max-experiments", "0", "x.md"], "must be positive, got 0"),
        (["run", "--policy", "gpt", "x.md"], "invalid choice: 'gpt'"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["replay", "nope", "--print"], "no such session: nope"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(tmp_path, args, message):
    done = _clive(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_claude_without_a_key_says_how_to_set_it(tmp_path):
    (tmp_path / "p.md").write_text("# just prose\nDo something useful.\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    done = _clive("run", "p.md", "--policy", "claude", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "ANTHROPIC_API_KEY is not set" in done.stderr and "--policy scripted" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "sessions").exists()  # refused before anything was made


def test_a_plain_program_md_with_the_scripted_policy_is_refused_before_a_session_exists(tmp_path):
    (tmp_path / "program.md").write_text("# My research program\n\nMake it faster.\n")
    done = _clive("run", "program.md", cwd=tmp_path)
    assert done.returncode == 2
    assert "the scripted policy needs `steps`" in done.stderr and "--policy claude" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sessions").exists()


THREE_STEPS = """\
---
name: three
steps:
  - echo step-one
  - echo step-two
  - echo step-three
---
Three steps, each approved in the co-pilot.
"""


def _approve(term: Terminal, what: str) -> None:
    """Wait until the co-pilot's bar proposes ``what``, then approve it."""
    term.wait_screen(lambda snap: any("[waiting]" in line and what in line for line in snap.lines), timeout=60)
    term.press("a")


@pytest.mark.timeout(240)
def test_the_copilot_quit_mid_run_resumes_where_it_stopped_and_numbers_cycles_on(tmp_path):
    # The co-pilot as a person runs it, in a real PTY: approve a step, quit while the next one waits,
    # then `clive tui --resume` proposes that one again (nobody decided it) and goes on.
    (tmp_path / "three.md").write_text(THREE_STEPS)
    with Terminal(cols=100, rows=30, cwd=tmp_path) as term:
        term.type(f"{sys.executable} -m clive tui three.md --workdir {tmp_path}\r")
        _approve(term, "echo step-one")
        term.wait_screen(lambda snap: any("[waiting]" in ln and "step-two" in ln for ln in snap.lines), timeout=60)
        term.press("q")
        term.wait_prompt(timeout=60)
        assert term.run("echo $?").output.strip() == "130"
        (session,) = (tmp_path / "sessions").iterdir()
        assert json.loads((session / "meta.json").read_text())["status"] == "interrupted"
        assert [c["action"].get("command") for c in _events(session) if c["type"] == "cycle"] == ["echo step-one"]

        term.type(f"{sys.executable} -m clive tui --resume {session.name}\r")
        for what in ("echo step-two", "echo step-three", '"type": "done"'):
            _approve(term, what)
        term.wait_screen(lambda snap: any("finished (exit 0)" in line for line in snap.lines), timeout=60)
        term.press("q")
        term.wait_prompt(timeout=60)
        assert term.run("echo $?").output.strip() == "0"
    cycles = [c for c in _events(session) if c["type"] == "cycle"]
    assert [c["action"].get("command") for c in cycles[:3]] == ["echo step-one", "echo step-two", "echo step-three"]
    assert [c["cycle"] for c in cycles] == list(range(1, len(cycles) + 1))
    assert all(c["outcome"]["ok"] for c in cycles)
    assert json.loads((session / "meta.json").read_text())["status"] == "done"


def test_a_free_hand_session_resumes_in_the_copilot_not_headless(tmp_path):
    recorder = Recorder.create(tmp_path / "sessions", {"playbook": "-", "policy": "human"}, 80, 24, secrets=[])
    recorder.close("interrupted")
    done = _clive("run", "--resume", recorder.id, cwd=tmp_path)
    assert done.returncode == 2
    hint = f"`clive tui --resume {recorder.id}`"
    assert done.stderr.strip() == f"clive: {recorder.id} is a free-hand co-pilot session: {hint}"


@pytest.mark.parametrize("lines", ["a few", "many"])
def test_output_closed_early_ends_quietly_with_141(tmp_path, lines):
    # As `clive replay --print S | head -1` once head has what it wants: no traceback.
    session = DATA
    if lines == "many":  # more than a pipe holds, so a write fails before the end, not the last flush
        session = tmp_path / "long"
        shutil.copytree(DATA, session)
        events = (session / "events.jsonl").read_text()
        (session / "events.jsonl").write_text(events * 400)
    read, write = os.pipe()
    os.close(read)  # the reader has gone before clive writes anything
    try:
        done = subprocess.run([*CLIVE, "replay", "--print", str(session)], cwd=tmp_path, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_help_lists_every_command(tmp_path):
    done = _clive("--help", cwd=tmp_path)
    for command in ("run", "sessions", "replay", "tui", "demo"):
        assert command in done.stdout


def test_a_bad_deny_pattern_is_bad_input(tmp_path):
    (tmp_path / "one.md").write_text("---\nname: one\nsteps:\n  - echo hi\n---\n")
    done = _clive("run", "one.md", "--deny", "(", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "clive: bad deny pattern '(': missing ), unterminated subpattern at position 0"
    assert not (tmp_path / "sessions").exists()
