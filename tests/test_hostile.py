"""Hostile output: whatever a program prints, the reader survives, nothing reaches clive's own
terminal, the screen shows what a person would see, and a terminal left broken is repaired before
the next command."""

from __future__ import annotations

import base64
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clive.terminal import Terminal

needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it)")

ESC = b"\x1b"
ST = ESC + b"\\"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One shell for the property tests (a new one per example would take most of the time)."""
    t = Terminal(cols=80, rows=24, cwd=tmp_path_factory.mktemp("hostile"))
    yield t
    t.close()


@pytest.fixture
def term(tmp_path):
    t = Terminal(cols=80, rows=24, cwd=tmp_path)
    yield t
    t.close()


def _assert_healthy(term: Terminal) -> None:
    assert term.parser_errors == []
    assert term.listener_errors == []
    assert term._reader.is_alive()
    assert term.run("echo still-alive").output == "still-alive"


def _cat(term: Terminal, tmp_path, data: bytes, name: str = "hostile.bin"):
    (tmp_path / name).write_bytes(data)
    return term.run(f"cat {name}", timeout=30)


# (name, bytes a program prints, text that must be on the screen, text that must not)
HOSTILE = [
    ("osc52 clipboard write", ESC + b"]52;c;" + base64.b64encode(b"rm -rf ~") + b"\x07shown", "shown", "cm0g"),
    ("osc52 clipboard query", ESC + b"]52;c;?" + ST + b"shown", "shown", "52;"),
    ("osc8 link", ESC + b"]8;;https://evil.example/x" + ST + b"click me" + ESC + b"]8;;" + ST, "click me", "evil"),
    ("dcs decrqss", ESC + b"P$qm" + ST + b"shown", "shown", "$qm"),
    ("dcs sixel", ESC + b"Pq#0;2;0;0;0#0!40~-" + ST + b"shown", "shown", "#0"),
    ("dcs tmux passthrough", ESC + b"Ptmux;" + ESC + ESC + b"]52;c;eA==\x07" + ST + b"shown", "shown", "tmux"),
    ("apc kitty image", ESC + b"_Gf=100,a=T;" + b"QUJD" * 50_000 + ST + b"shown", "shown", "QUJD"),
    ("pm", ESC + b"^private message" + ST + b"shown", "shown", "private"),
    ("sos", ESC + b"Xstart of string" + ST + b"shown", "shown", "start of"),
    ("string ended by another escape", ESC + b"_payload" + ESC + b"[1mshown", "shown", "payload"),
    ("ris reset", b"gone" + ESC + b"c" + b"shown", "shown", "gone"),
    ("deccolm 132 columns", ESC + b"[?3hshown", "shown", None),
    ("title report request", ESC + b"]2;touch pwned\x07" + ESC + b"[21t" + ESC + b"[6n" + ESC + b"[cshown",
     "shown", None),
    ("huge csi parameters", ESC + b"[99999999999999999999;99999999999999999999H" + ESC + b"[999999999@"
     + ESC + b"[999999999L" + ESC + b"[99999999999999999999mshown", "shown", None),
    ("unknown erase modes", b"kept" + ESC + b"[5K" + ESC + b"[7J" + ESC + b"[?9K shown", "kept shown", None),
    ("extra parameters", ESC + b"[1;2;3L" + ESC + b"[4;5;6@" + ESC + b"[1;2;3;4H" + ESC + b"[1;2c" + b"shown",
     "shown", None),
    ("unterminated osc", b"shown" + ESC + b"]2;never ends", "shown", "never"),
    ("unterminated apc", b"shown" + ESC + b"_never ends", "shown", "never"),
]


@pytest.mark.parametrize("name, data, visible, hidden", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_output_is_drawn_as_a_terminal_would_and_harms_nothing(
    term, tmp_path, capfd, name, data, visible, hidden
):
    _cat(term, tmp_path, data + b"\n")
    text = term.snapshot().text() + "\n" + "\n".join(term.history())
    assert visible in text
    if hidden is not None:
        assert hidden not in text
    assert term.size == (80, 24)
    _assert_healthy(term)
    assert not (tmp_path / "pwned").exists()
    assert capfd.readouterr() == ("", "")


def test_title_spam(term, tmp_path, capfd):
    spam = b"".join(ESC + b"]0;title %d\x07" % i for i in range(10_000))
    _cat(term, tmp_path, spam)
    assert term.snapshot().title == "title 9999"
    _assert_healthy(term)
    assert capfd.readouterr() == ("", "")


def test_ten_thousand_column_line(term, tmp_path):
    line = "".join(chr(ord("a") + i % 26) for i in range(10_000))
    result = _cat(term, tmp_path, line.encode() + b"\n")
    assert result.output == line
    # It wraps at 80 columns: its last 80-column row is on the screen, the rest scrolled off.
    assert line[-(10_000 % 80 or 80):] in term.snapshot().lines
    _assert_healthy(term)


def test_answers_a_program_left_unread_do_not_garble_the_next_command(term, tmp_path):
    # cat asks for the cursor position and attributes and exits; the answers wait in the shell's input.
    _cat(term, tmp_path, ESC + b"[6n" + ESC + b"[c" + ESC + b"[5n\n")
    assert term.run("echo ok").output == "ok"


def test_alternate_screen_left_on_is_left_before_the_next_command(term):
    term.run("echo on the main screen")
    term.run(r"printf '\e[?1049h\e[?25l\e[5;10rdrawn on the alternate screen'")
    assert term.snapshot().alternate
    result = term.run("echo back")
    assert result.output == "back"
    snap = term.snapshot()
    assert not snap.alternate and snap.cursor_visible
    assert snap.contains("on the main screen") and snap.contains("back")
    assert term.repairs == [
        "screen: left the alternate screen, showed the cursor, full-screen scroll region"
    ]
    term.run("true")
    assert len(term.repairs) == 1  # nothing more to repair


def _modes(term: Terminal) -> dict[str, bool]:
    """The modes the next run() command gets, as `stty -a` shows them."""
    words = term.run("stty -a").output.split()
    return {flag: flag in words and f"-{flag}" not in words for flag in ("isig", "icanon", "echo", "opost")}


SANE = {"isig": True, "icanon": True, "echo": True, "opost": True}


@pytest.mark.parametrize("breakage", ["stty raw -echo", "stty raw", "stty -opost"])
def test_bash_raw_mode_left_behind_is_repaired_before_the_next_command(term, breakage):
    term.run(breakage)
    # The modes that show at the prompt give it away: the next command runs with sane ones.
    assert _modes(term) == SANE
    assert len(term.repairs) == 1 and term.repairs[0].startswith("terminal modes: stty sane, ")
    assert _modes(term) == SANE
    assert len(term.repairs) == 1


def test_bash_echo_left_off_is_repaired_once_a_command_shows_it(term):
    # Readline hides echo's state at the prompt; the first command typed is not echoed, which gives
    # it away, so the command after that one runs with echo on again.
    term.run("stty -echo")
    assert term.run("echo unseen").output == "unseen"
    assert not term.snapshot().contains("echo unseen")
    assert term.repairs == []
    assert _modes(term) == SANE
    assert term.repairs == ["terminal modes: stty sane, echo had been switched off"]
    assert term.run("echo seen").output == "seen"
    assert term.snapshot().contains("echo seen")


@needs_zsh
@pytest.mark.parametrize("breakage", ["stty raw -echo", "stty -echo", "stty -isig -icanon"])
def test_zsh_undoes_broken_modes_itself(tmp_path, breakage):
    with Terminal("zsh", cwd=tmp_path) as term:
        term.run(breakage)
        assert _modes(term) == SANE
        assert term.repairs == []


@pytest.mark.parametrize("shell", ["bash", pytest.param("zsh", marks=needs_zsh)])
def test_programs_that_set_their_own_modes_are_not_repaired(tmp_path, shell):
    with Terminal(shell, cwd=tmp_path) as term:
        term.type("vim -u NONE\r")
        term.wait_text("VIM")
        term.press(":q<Enter>")
        term.wait_prompt()
        term.run("read -t 0.01 x; true")
        assert _modes(term) == SANE
        assert term.repairs == []


def test_sane_modes_are_left_alone(term):
    for _ in range(20):
        term.run("true")
    assert term.repairs == []


CHUNKS = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [ESC, b"[", b"]", b"P", b"_", b"^", b"X", b"\\", b"\x07", b"?", b";", b"0", b"1", b"9" * 12,
             b"\x9b", b"\x9d", b"\xc2\x9b", b"\xc2\x90", b"\xe2\x80", b"m", b"H", b"h", b"l", b"r", b"J",
             b"\r", b"\n", b"\x08", b"\t", b"c", b"(0", b"#8", b"[?1049h", b"[?3h", b"]133;D;0;p=999;",
             b"]133;A;" + b"0" * 32 + b"\x07", b"\xff\xfe", "漢字".encode(), b"e\xcc\x81", b"[?", b"[?6n",
             b"[?5X", b"[?3@", b"[?2P", b"[?1r", b"[?4d"]
        ),
    ),
    max_size=60,
).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=CHUNKS)
def test_random_bytes_never_crash_the_reader(shared, capfd, data):
    # The reader's own path: listeners, markers, the control-string filter, pyte.
    errors = len(shared.parser_errors)
    shared._ingest(data)
    assert shared.parser_errors[errors:] == []
    assert shared._reader.is_alive()
    assert capfd.readouterr() == ("", "")


def test_after_random_bytes_the_shell_still_runs_commands(shared):
    # Runs after the property test on the same terminal, whatever state the bytes left it in.
    _assert_healthy(shared)
    assert not shared.snapshot().alternate


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=CHUNKS)
def test_random_bytes_through_a_real_pty_never_crash_the_reader(shared, tmp_path_factory, data):
    folder = tmp_path_factory.getbasetemp()
    (folder / "random.bin").write_bytes(data)
    errors = len(shared.parser_errors)
    result = shared.run(f"cat {folder / 'random.bin'}", timeout=30)
    assert result.exit_code == 0
    assert shared.parser_errors[errors:] == []
    assert shared._reader.is_alive()
