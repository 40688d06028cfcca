"""The terminal core, driven against real programs in a real PTY."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
import unicodedata

import pytest

from clive.safety import procs
from clive.terminal import Terminal, TerminalError, TerminalTimeout, reading
from clive.terminal.markers import CAPTURE_LIMIT, ShellMarkers, Tail
from clive.terminal.reading import FloodWait


@pytest.fixture
def term(tmp_path):
    t = Terminal(cols=80, rows=24, cwd=tmp_path)
    yield t
    t.close()


def _alive(pid: int) -> bool:
    stat = procs.read_stat(pid)
    return stat is not None and stat.state != "Z"


def test_run_reports_exit_codes(term):
    assert term.run("true").exit_code == 0
    assert term.run("false").exit_code == 1
    assert term.run("(exit 3)").exit_code == 3
    missing = term.run("no-such-command-xyz")
    assert missing.exit_code == 127
    assert "no-such-command-xyz: command not found" in missing.output


def test_run_output_is_complete_even_past_the_screen(term):
    result = term.run("seq 1 5000")
    lines = result.output.splitlines()
    assert lines == [str(i) for i in range(1, 5001)]
    assert not result.truncated
    # The screen shows the tail and the prompt; the head went to scrollback.
    snap = term.snapshot()
    assert snap.lines[-2] == "5000"
    assert term.history()[-1] == str(5000 - 23)


def test_run_output_has_no_control_sequences(term):
    result = term.run(r"printf '\033[1;31mred\033[0m plain\r\nprogress 10%%\rprogress 100%%\n'")
    assert result.output == "red plain\nprogress 100%"


def test_utf8_renders_as_a_person_sees_it(term):
    term.run("printf '漢字 🎉 e\\xcc\\x81 end\\n'")
    line = next(line for line in term.snapshot().lines if line.startswith("漢字"))
    # Wide characters take two cells (pyte keeps an empty stub); a combining mark joins its base.
    assert line == "漢字 🎉 \u00e9 end"


def test_invalid_utf8_becomes_replacement_characters(term):
    result = term.run(r"printf 'ok \xff\xfe bad\n'")
    assert result.exit_code == 0
    assert "ok \ufffd\ufffd bad" in result.output
    assert term.snapshot().contains("ok \ufffd\ufffd bad")


def test_wait_queued_answers_with_the_bytes_the_pty_holds():
    from clive.terminal import _speedups  # built by pip install (see test_the_c_checks_are_built)

    controller, program = os.openpty()
    try:
        assert _speedups.wait_queued(controller, 2000) == 0  # nothing written: it gives up
        os.write(program, b"four")
        assert _speedups.wait_queued(controller, 5_000_000) == 4  # as soon as the kernel has moved them
        assert os.read(controller, 100) == b"four"
        assert _speedups.wait_queued(controller, 0) == 0
    finally:
        os.close(controller)
        os.close(program)
    with pytest.raises(OSError):
        _speedups.wait_queued(controller, 10)  # closed
    with pytest.raises(ValueError, match="-1"):
        _speedups.wait_queued(-1, 10)


def test_a_flood_wait_stops_asking_in_a_loop_once_a_loop_came_back_empty(monkeypatch):
    monkeypatch.setattr(reading, "SPIN_FIRST", True)  # as on two CPUs or more
    controller, program = os.openpty()
    pending = select.poll()
    pending.register(controller, select.POLLIN)
    try:
        waiting = FloodWait()
        os.write(program, b"more")
        assert pending.poll(5000)  # the kernel has moved the bytes: the loop finds them at once
        assert waiting.more_soon(controller, pending, 1000) and waiting.spin
        os.read(controller, 100)
        assert not waiting.more_soon(controller, pending, 0)  # the program paused
        assert not waiting.spin  # poll() alone from now on: the loop would only burn a CPU
        os.write(program, b"again")
        assert waiting.more_soon(controller, pending, 5000)
    finally:
        os.close(controller)
        os.close(program)


def test_multibyte_character_split_across_reads(tmp_path):
    script = tmp_path / "split.py"
    script.write_text(
        "import os, time\n"
        "data = 'α→漢🎉'.encode() * 50\n"
        "for i in range(0, len(data), 3):\n"
        "    os.write(1, data[i:i + 3]); time.sleep(0.001)\n"
        "os.write(1, b'\\n')\n"
    )
    with Terminal(cols=400, rows=10, cwd=tmp_path) as t:
        result = t.run(f"{sys.executable} split.py")
        assert result.output == "α→漢🎉" * 50
        assert "\ufffd" not in t.snapshot().text()


def test_vim_writes_file_typed_through_keys(term, tmp_path):
    term.press("vim -u NONE -N notes.txt<Enter>")
    snap = term.wait_text('"notes.txt" [New]')
    assert snap.alternate
    term.press("ihello from clive<Esc>")
    term.press("o<lt>second line><Esc>")
    term.wait_text("<second line>")
    term.press(":set ruler<Enter>")
    term.wait_text(re.compile(r"2,\d+"))
    term.press(":wq<Enter>")
    term.wait_prompt(timeout=10)
    assert (tmp_path / "notes.txt").read_text() == "hello from clive\n<second line>\n"
    assert not term.snapshot().alternate


def test_vim_status_line_visible_while_editing(term, tmp_path):
    (tmp_path / "f.txt").write_text("abc\n")
    term.press("vim -u NONE -N f.txt<Enter>")
    snap = term.wait_text('"f.txt"')
    assert snap.lines[-1].startswith('"f.txt"')
    term.press("i")
    snap = term.wait_text("-- INSERT --")
    assert "-- INSERT --" in snap.lines[-1]
    term.press("<Esc>:q!<Enter>")
    term.wait_prompt()


def test_cursor_keys_follow_application_mode(term):
    term.press("vim -u NONE -N<Enter>")
    term.wait_text("~")
    term.press("ione<Enter>two<Esc>")
    term.wait_text("two")
    # vim switches on DECCKM; <Up> must then send ESC O A, which vim understands.
    assert term._screen.app_cursor_keys
    term.press("<Up>x")
    snap = term.wait_screen(lambda s: s.lines[0] != "one")
    assert snap.lines[0] in ("on", "ne", "oe")
    term.press("<Esc>:q!<Enter>")
    term.wait_prompt()


def test_less_is_driven_by_keys(term, tmp_path):
    (tmp_path / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 201)))
    term.press("less big.txt<Enter>")
    term.wait_text("line 1")
    term.press("G")
    snap = term.wait_text("line 200")
    assert "(END)" in snap.text() or snap.lines[-1].strip() in (":", "(END)")
    term.press("?line 150<Enter>")
    term.wait_screen(lambda s: s.lines[0] == "line 150")
    term.press("q")
    term.wait_prompt()


def test_python_repl_driven_by_keys(term):
    term.press(f"{sys.executable} -q<Enter>")
    term.wait_text(">>>")
    term.press("6 * 7<Enter>")
    term.wait_text("42")
    term.wait_ready()  # Ctrl-D sent before Python reads again would be lost
    term.press("<C-d>")
    term.wait_prompt()
    assert term.run("echo back").output == "back"


@pytest.mark.parametrize(
    ("start", "ready_text", "quit_keys"),
    [
        ("less big.txt", "line 1", "q"),
        ("vim -u NONE big.txt", "line 1", ":wq<Enter>"),
        ("sqlite3 :memory:", "sqlite>", ".quit<Enter>"),
        (f"{sys.executable} -q", ">>>", "exit()<Enter>"),
    ],
)
def test_run_right_after_the_keys_that_end_a_program_waits_for_the_prompt(term, tmp_path, start, ready_text,
                                                                           quit_keys):
    if shutil.which(start.split()[0]) is None:
        pytest.skip(f"{start.split()[0]} is not installed")
    (tmp_path / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 201)))
    term.press(f"{start}<Enter>")
    term.wait_text(ready_text)
    term.wait_ready()
    term.press(quit_keys)
    result = term.run("echo back-at-the-prompt")  # no sleep, no wait_prompt: run() waits for it
    assert (result.exit_code, result.output) == (0, "back-at-the-prompt")


def test_run_waits_for_a_working_program_and_refuses_one_that_waits_for_input(term):
    term.press("sleep 0.5; echo slept<Enter>")
    result = term.run("echo after", timeout=10)
    assert result.output == "after" and "slept" in term.snapshot().text()
    term.press("cat<Enter>")
    term.wait_ready()
    started = time.monotonic()
    with pytest.raises(TerminalError, match=r"cat is waiting for input \[waiting for a line"):
        term.run("echo never", timeout=10)
    assert time.monotonic() - started < 2  # refused, not waited out
    assert "never" not in term.snapshot().text()
    term.press("<C-d>")
    assert term.run("echo done").output == "done"


def test_a_curses_box_reads_as_xterm_draws_it_not_as_the_letters_sent(term, tmp_path):
    # ncurses draws lines in the DEC special graphics set under xterm-256color: ESC ( 0, then lqqk.
    (tmp_path / "box.py").write_text(
        "import curses\n"
        "def main(w):\n"
        "    w.box()\n"
        "    w.addstr(1, 2, 'boxed')\n"
        "    w.refresh()\n"
        "    w.getch()\n"
        "curses.wrapper(main)\n"
    )
    term.press(f"TERM=xterm-256color {sys.executable} box.py<Enter>")
    term.wait_text("boxed")
    term.wait_ready()
    snap = term.snapshot()
    assert snap.lines[0] == "┌" + "─" * 78 + "┐"
    assert snap.lines[1] == "│ boxed" + " " * 72 + "│"
    assert snap.lines[23] == "└" + "─" * 78 + "┘"
    term.press("q")
    assert term.run("echo after").output == "after"
    assert not term.snapshot().contains("┌")  # the alternate screen is gone, and G0 is ASCII again


def test_wait_idle_settles_on_a_redrawing_program(term, tmp_path):
    script = tmp_path / "top.py"
    script.write_text(
        "import sys, time\n"
        "for i in range(20):\n"
        "    sys.stdout.write(f'\\x1b[H\\x1b[2Jtick {i}\\n'); sys.stdout.flush(); time.sleep(0.02)\n"
        "sys.stdout.write('settled\\n'); sys.stdout.flush(); time.sleep(30)\n"
    )
    term.press(f"{sys.executable} top.py<Enter>")
    snap = term.wait_idle(quiet_ms=300, timeout=10)
    assert snap.contains("settled")
    assert snap.contains("tick 19")
    term.interrupt()


def test_resize_reaches_the_child(term):
    assert term.run("tput cols").output == "80"
    term.resize(120, 40)
    assert term.size == (120, 40)
    assert term.run("tput cols").output == "120"
    assert term.run("tput lines").output == "40"


def test_hanging_command_times_out_with_the_screen_then_interrupt(term):
    with pytest.raises(TerminalTimeout) as info:
        term.run("echo started; sleep 60", timeout=0.5)
    assert "sleep 60" in str(info.value)
    assert info.value.snapshot.contains("started")
    term.interrupt()
    assert term.at_prompt
    assert term.run("echo ok").output == "ok"


def test_interrupt_escalates_past_a_program_ignoring_sigint(term, tmp_path):
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    term.press(f"{sys.executable} stubborn.py<Enter>")
    term.wait_text("ready")
    pid = next(p.pid for p in procs.session_members(term.pid) if "python" in p.name)
    term.interrupt(grace=0.5)
    assert term.at_prompt
    assert not _alive(pid)


def test_child_that_exits_ends_the_terminal(tmp_path):
    t = Terminal([sys.executable, "-c", "print('bye')"], cwd=tmp_path)
    try:
        assert t.wait_exit(timeout=10) == 0
        assert t.snapshot().contains("bye")
        with pytest.raises(TerminalError, match="exited"):
            t.type("x")
    finally:
        t.close()


def test_close_leaves_no_process_behind(tmp_path):
    t = Terminal(cwd=tmp_path)
    t.press("sleep 300 & sleep 301 | cat<Enter>")
    t.wait_screen(lambda s: len(procs.session_members(t.pid)) >= 4, timeout=5)
    members = [p.pid for p in procs.session_members(t.pid)]
    shell_pid = t.pid
    t.close()
    assert all(not _alive(pid) for pid in members)
    # The shell itself was reaped: no zombie left under our process.
    with pytest.raises(ChildProcessError):
        os.waitpid(shell_pid, os.WNOHANG)


def test_headless_without_a_tty_on_stdin(tmp_path):
    code = (
        "from clive.terminal import Terminal\n"
        "with Terminal() as t:\n"
        "    r = t.run('echo headless; false')\n"
        "    print(r.output, r.exit_code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "headless 1"


def test_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIVE_TEST_LEAK", "should-not-pass")
    with Terminal(cwd=tmp_path) as t:
        assert t.run("echo $TERM $LANG").output == "xterm-256color C.UTF-8"
        assert t.run('echo "[$CLIVE_TEST_LEAK]"').output == "[]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cols": 0}, "cols must be a positive integer, got 0"),
        ({"rows": -5}, "rows must be a positive integer, got -5"),
        ({"cwd": "/no/such/dir"}, "working directory does not exist: /no/such/dir"),
        ({"command": "no-such-program-xyz"}, "command not found: no-such-program-xyz"),
    ],
)
def test_bad_arguments_give_one_line_errors(kwargs, message):
    before = set(os.listdir("/proc"))
    with pytest.raises(TerminalError) as info:
        Terminal(**kwargs)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    assert not any(
        e.isdigit() and (s := procs.read_stat(int(e))) and s.ppid == os.getpid() and s.state != "Z"
        for e in set(os.listdir("/proc")) - before
    )


def test_forged_completion_marker_does_not_fool_run(term):
    # A program printing an OSC 133 D marker without the session nonce must not end run().
    fake = r"printf '\033]133;D;0;%s\007' 0123456789abcdef0123456789abcdef; sleep 0.3; exit 7"
    result = term.run(f"bash -c \"{fake}\"")
    assert result.exit_code == 7


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_same_visible_text_as_tmux(tmp_path):
    script = tmp_path / "scene.sh"
    script.write_text(
        "printf 'plain line\\n'\n"
        "printf '\\033[1;32mgreen\\033[0m and \\033[7mreverse\\033[0m\\n'\n"
        "printf 'tab\\there\\n'\n"
        "printf 'overwrite me\\rOVER\\n'\n"
        "printf '漢字 wide and e\\xcc\\x81\\n'\n"
        "printf '\\033[5;10Hplaced\\n'\n"
        "printf 'erase this\\033[5D\\033[Kend\\n'\n"
        "seq 1 30\n"
    )
    tmux = ["tmux", "-L", f"clive-test-{os.getpid()}", "-f", "/dev/null"]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "80", "-y", "24", f"bash --norc {script}; sleep 30"],
        check=True, env={**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"},
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            pane = subprocess.run(
                [*tmux, "capture-pane", "-p"], capture_output=True, text=True, check=True
            ).stdout
            if "30" in pane.splitlines() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    with Terminal(["bash", "--norc", str(script)], cols=80, rows=24, cwd=tmp_path) as t:
        t.wait_exit(timeout=10)
        ours = t.snapshot().lines
    theirs = pane.rstrip("\n").split("\n")
    theirs = [line.rstrip() for line in theirs] + [""] * (24 - len(theirs))
    assert list(ours) == theirs


GRAPHEMES = [
    "👨\u200d👩\u200d👧 family",  # a ZWJ sequence: one cluster
    "🇫🇷 flag",  # two regional indicators: one cluster
    "🏳\ufe0f\u200d🌈 rainbow",
    "🧑\u200d⚕ health",  # a joiner before a one-cell character from the BMP
    "❤\ufe0f heart",  # a variation selector
    "e\u0301\u0308 marks",
    "zero\u200bwidth space",
]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_grapheme_clusters_take_the_cells_tmux_gives_them_and_keep_what_follows(tmp_path):
    tmux = ["tmux", "-L", f"clive-graphemes-{os.getpid()}", "-f", "/dev/null"]
    env = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    scripts = []
    for i, text in enumerate(GRAPHEMES):
        script = tmp_path / f"g{i}.sh"
        script.write_text(f"printf '%s' 'ab{text}'\n")
        scripts.append(script)
    theirs = []
    try:
        for i, script in enumerate(scripts):
            verb = "new-session" if i == 0 else "new-window"
            subprocess.run([*tmux, verb, *(["-d", "-x", "80", "-y", "5"] if i == 0 else ["-d"]), "-n", f"g{i}",
                            f"bash --norc {script}; sleep 30"], check=True, env=env)
        for i, text in enumerate(GRAPHEMES):
            deadline = time.monotonic() + 10
            while True:
                pane = subprocess.run([*tmux, "capture-pane", "-p", "-t", f"g{i}"], capture_output=True, text=True,
                                      check=True).stdout
                if text.split()[-1] in pane or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            x = subprocess.run([*tmux, "display", "-p", "-t", f"g{i}", "#{cursor_x}"], capture_output=True,
                               text=True, check=True).stdout.strip()
            theirs.append((pane.split("\n")[0].rstrip(), int(x)))
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    ours = []
    for script in scripts:
        with Terminal(["bash", "--norc", str(script)], cols=80, rows=5, cwd=tmp_path) as t:
            t.wait_exit(timeout=10)
            snap = t.snapshot()
            ours.append((snap.lines[0], snap.cursor[0]))
    # Both sides' text compared as a person reads it (clive keeps combining marks composed, NFC).
    assert [(unicodedata.normalize("NFC", line), x) for line, x in ours] == [
        (unicodedata.normalize("NFC", line), x) for line, x in theirs
    ]
    assert all(line.endswith(text.split()[-1]) for (line, _), text in zip(ours, GRAPHEMES, strict=True))


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it)")
def test_zsh_integration_reports_exit_codes_and_output(tmp_path):
    with Terminal(shutil.which("zsh"), cwd=tmp_path) as t:
        assert t.integrated
        assert t.run("true").exit_code == 0
        assert t.run("(exit 3)").exit_code == 3
        assert t.run("seq 1 3").output == "1\n2\n3"
        t.resize(100, 30)
        assert t.run("tput cols").output == "100"


def test_a_marker_split_anywhere_among_colours_is_seen_once_and_kept_out_of_the_capture():
    # The reader holds back the end of a read that may start a marker (ESC ]), and only that: an SGR's
    # ESC at the end is no marker's start.
    nonce = b"0123456789abcdef" * 2
    marker = b"\x1b]133;D;7;" + nonce + b"\x07"
    before, after = b"\x1b[31mred\x1b[0m\x1b", b"[1mbold\x1b[0m\x1b"
    data = before + marker + after
    markers = ShellMarkers(nonce)  # the marker scan alone, no shell
    seen: list[tuple[str, bytes | None]] = []
    markers.on_marker = lambda kind, code, number, now, nonce: seen.append((kind, code))  # type: ignore[method-assign]
    for cut in range(len(data) + 1):
        seen.clear()
        markers.tail = b""
        markers.capture = Tail(CAPTURE_LIMIT)
        for read in (data[:cut], data[cut:], b""):
            markers.scan(read, 0.0)
        captured, dropped = markers.capture.value()
        assert seen == [("D", b"7")], cut
        # The last ESC may yet start a marker: it waits for the next read.
        assert (captured, dropped, markers.tail) == (before + after[:-1], 0, b"\x1b"), cut
