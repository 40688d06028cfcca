"""What the terminal is doing, read from the kernel, on real programs in a real PTY."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clive.safety import procs
from clive.terminal import Terminal, TerminalTimeout, termstate
from clive.terminal.termstate import Activity, TerminalState

PY = sys.executable


@pytest.fixture
def term(tmp_path):
    t = Terminal(cols=100, rows=24, cwd=tmp_path)
    yield t
    t.close()


def _until(t: Terminal, done: Callable[[TerminalState], bool], timeout: float = 10.0) -> TerminalState:
    """Poll the state (test setup only: for states that are not the agent's turn)."""
    deadline = time.monotonic() + timeout
    while True:
        state = t.state()
        if done(state):
            return state
        assert time.monotonic() < deadline, f"state never came: last {state}"
        time.sleep(0.01)


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(body)
    return f"{PY} {path}"


def test_idle_shell_is_at_prompt(term):
    state = term.state()
    assert state.activity == Activity.AT_PROMPT
    assert state.foreground == "shell" and state.pid == term.pid
    assert state.exact and state.ready
    assert state.describe() == "[at prompt]"
    assert term.wait_ready(timeout=1).activity == Activity.AT_PROMPT


def test_python_input_waits_for_a_line(term):
    term.press(f"""{PY} -c 'input("Name? ")'<Enter>""")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_LINE
    assert state.foreground.startswith("python")
    assert state.cmdline[1:] == ("-c", 'input("Name? ")')
    assert state.waiting_on == "read"
    assert state.question == "Name?"
    assert state.describe() == '[waiting for a line: "Name?"]'
    term.press("Ada<Enter>")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT


def test_bash_read_builtin_waits_for_a_line_in_the_shell(term):
    term.press("read -p 'Overwrite? (yes/no) ' answer<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_LINE
    assert state.foreground == "shell"
    assert state.describe() == '[waiting for a line: "Overwrite? (yes/no)"]'
    term.press("yes<Enter>")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT
    assert term.run("echo $answer").output == "yes"


def test_read_silent_is_a_password_prompt(term):
    term.press("read -s -p 'Password: ' secret<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_SECRET
    assert state.describe() == '[password requested: "Password:"]'


def test_python_getpass_is_a_password_prompt(term):
    # getpass reads /dev/tty, not stdin, with echo off.
    term.press(f"{PY} -c 'import getpass; getpass.getpass()'<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_SECRET
    assert state.question == "Password:"
    term.press("hunter2<Enter>")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT


def test_sleep_is_blocked_in_nanosleep_and_never_ready(term):
    term.press("sleep 30<Enter>")
    state = _until(term, lambda s: s.foreground == "sleep" and s.activity == Activity.BLOCKED)
    assert "nanosleep" in (state.waiting_on or "")
    assert state.cmdline == ("sleep", "30")
    assert state.describe().startswith("[blocked: sleep in ")
    assert not state.ready
    with pytest.raises(TerminalTimeout, match="blocked: sleep"):
        term.wait_ready(timeout=0.3)
    term.interrupt()


def test_cpu_bound_loop_is_running(term):
    term.press(f"{PY} -c 'while True: pass'<Enter>")
    state = _until(term, lambda s: s.foreground.startswith("python") and s.activity == Activity.RUNNING)
    assert state.describe().startswith("[running: python")
    assert state.since is not None and state.since >= 0
    term.interrupt()


def test_vim_waits_for_keys(term):
    term.press("vim -u NONE<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_KEYS
    assert state.foreground == "vim"
    assert state.describe().startswith("[waiting for keys in vim")
    term.press("<Esc>:q!<Enter>")
    # vim waits for the terminal's answers with a short timeout as it exits: not a person's turn.
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT


def test_less_waits_for_keys(term, tmp_path):
    (tmp_path / "notes.txt").write_text("".join(f"line {i}\n" for i in range(200)))
    term.press("less notes.txt<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_KEYS
    assert state.foreground == "less"
    term.press("q")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT


@pytest.mark.parametrize("lines", [100_000, 10_000_000])
def test_pipeline_into_less_waits_for_keys(term, lines):
    term.press(f"seq 1 {lines} | less<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_KEYS
    assert state.foreground == "less"
    if lines == 10_000_000:
        # seq leads the group and is stuck writing into the full pipe; the member reading the
        # terminal decides.
        less = procs.read_stat(state.pid)
        assert less is not None
        seq = [p for p in procs.session_members(term.pid) if p.pgrp == less.pgrp and p.name == "seq"]
        # (seq may be caught refilling the pipe, so its state is not asserted.)
        assert len(seq) == 1 and seq[0].pid == less.pgrp
    term.press("q")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT


def test_git_add_patch_asks_about_a_hunk(term, tmp_path):
    git = "git -c user.name=t -c user.email=t@example.com -c color.ui=never"
    assert term.run(f"git init -q . && printf 'a\\nb\\n' > f && {git} add f && {git} commit -qm one").exit_code == 0
    term.run("printf 'a\\nB\\n' > f")
    term.press(f"{git} add -p<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity in (Activity.WAITING_LINE, Activity.WAITING_KEYS)
    assert "Stage this hunk" in state.question
    term.press("y<Enter>")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT
    assert term.run("git diff --cached --name-only").output == "f"


def test_yes_no_prompt_from_a_script(term, tmp_path):
    command = _script(
        tmp_path,
        "apt.py",
        "import sys\n"
        "print('After this operation, 12 MB of disk space will be used.')\n"
        "sys.stdout.write('Do you want to continue? [Y/n] '); sys.stdout.flush()\n"
        "sys.exit(0 if sys.stdin.readline().strip() in ('', 'y', 'Y') else 1)\n",
    )
    term.press(command + "<Enter>")
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_LINE
    assert state.describe() == '[waiting for a line: "Do you want to continue? [Y/n]"]'
    term.press("n<Enter>")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT
    assert term.run("echo $?").output == "1"


def test_question_after_silent_work_is_seen_when_it_appears_not_before(term, tmp_path):
    asked = tmp_path / "asked"
    command = _script(
        tmp_path,
        "slow.py",
        "import pathlib, sys, time\n"
        "print('working...', flush=True)\n"
        "time.sleep(2)\n"
        f"pathlib.Path({str(asked)!r}).write_text('yes')\n"
        "sys.stdout.write('Overwrite results.tsv? (yes/no) '); sys.stdout.flush()\n"
        "input()\n",
    )
    term.press(command + "<Enter>")
    state = term.wait_ready(timeout=15)
    assert asked.exists()
    assert state.activity == Activity.WAITING_LINE
    assert state.question == "Overwrite results.tsv? (yes/no)"
    assert term.snapshot().contains("Overwrite results.tsv? (yes/no)")


def test_silence_alone_is_not_a_question(term):
    # No idle timeout: a program that printed and went quiet is still working.
    term.press(f"{PY} -c 'import time; print(\"working...\", flush=True); time.sleep(30)'<Enter>")
    term.wait_text("working...")
    with pytest.raises(TerminalTimeout, match="blocked"):
        term.wait_ready(timeout=0.5)
    term.interrupt()


def test_an_answered_question_is_not_taken_for_a_new_one(term, tmp_path):
    # Right after the answer is sent the program may still sleep in the read that will take it:
    # input is pending, so it is not waiting for us.
    command = _script(tmp_path, "quiz.py", "for i in range(20):\n    input(f'q{i}? ')\n")
    term.press(command + "<Enter>")
    for i in range(20):
        state = term.wait_ready(timeout=10)
        assert (state.activity, state.question) == (Activity.WAITING_LINE, f"q{i}?")
        term.press("y<Enter>")
    assert term.wait_ready(timeout=10).activity == Activity.AT_PROMPT


def test_typed_ahead_line_is_read_without_waiting(term, tmp_path):
    command = _script(
        tmp_path,
        "later.py",
        "import os, time\n"
        "print('busy', flush=True)\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.01)\n"
        "first = input()\n"
        "input(f'got {first}; second? ')\n",
    )
    term.press(command + "<Enter>")
    term.wait_text("busy")
    term.press("one<Enter>")  # typed before the program reads: the kernel keeps the line
    (tmp_path / "go").touch()
    state = term.wait_ready(timeout=10)
    assert state.activity == Activity.WAITING_LINE
    assert state.question == "got one; second?"


def test_program_without_a_shell(tmp_path):
    with Terminal([PY, "-c", "input('ready? ')"], cwd=tmp_path) as t:
        state = t.wait_ready(timeout=10)
        assert state.activity == Activity.WAITING_LINE
        assert state.foreground.startswith("python") and state.pid == t.pid
        t.press("<Enter>")
        state = t.wait_ready(timeout=10)
        assert state.activity == Activity.EXITED and state.ready
        assert state.describe() == "[exited]"


def test_without_proc_the_state_is_guessed_from_the_screen(term, tmp_path):
    no_proc = str(tmp_path / "no-proc")

    def guess() -> TerminalState:
        return termstate.read_state(term._state_facts()[0], proc=no_proc)

    assert guess().activity == Activity.AT_PROMPT  # OSC 133 needs no /proc
    term.press("read -s -p 'Password: ' secret<Enter>")
    term.wait_ready(timeout=10)
    state = guess()
    assert state.activity == Activity.WAITING_SECRET and not state.exact
    assert state.describe().endswith("(guessed from the screen)")
    term.press("x<Enter>")
    term.wait_ready(timeout=10)
    term.press("read -p 'Continue? [Y/n] ' answer<Enter>")
    term.wait_ready(timeout=10)
    deadline = time.monotonic() + 10
    state = guess()
    while state.activity == Activity.RUNNING and time.monotonic() < deadline:  # a guess needs quiet
        time.sleep(0.05)
        state = guess()
    assert state.activity == Activity.WAITING_LINE and not state.exact


def test_describe_says_what_and_how_long():
    running = TerminalState(Activity.RUNNING, "make", 42, ("make", "-j8"), since=12.3)
    assert running.describe() == "[running: make, 12 s]"
    blocked = TerminalState(Activity.BLOCKED, "sleep", 7, waiting_on="clock_nanosleep", since=0.5)
    assert blocked.describe() == "[blocked: sleep in clock_nanosleep, 0.5 s]"
    assert TerminalState(Activity.WAITING_SECRET, "sudo").describe() == "[password requested]"
    assert not running.ready and TerminalState(Activity.WAITING_KEYS, "less").ready
