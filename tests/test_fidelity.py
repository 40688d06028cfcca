"""The screen as a real terminal draws it: byte streams captured from real programs and vttest's
VT100/VT102 conformance screens, replayed into clive's screen and into tmux at the same size, every
cell compared (text, colours, attributes) and the cursor. A quick subset here; all of them in
``python -m bench --only fidelity``."""

from __future__ import annotations

import shutil

import pytest

from bench.fidelity import DATA, TmuxReplay, clive_view, differences, probe, streams

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

QUICK = [
    "curses-box",  # DEC special graphics under TERM=xterm-256color, colours, an inner window
    "cjk-emoji-log",  # wide characters, combining marks, ZWJ sequences, flags
    "dialog",  # leaves the alternate screen twice: the cursor saved by 1049 comes back
    "htop",  # scrolls its process list with SD in a scroll region
    "textual-app",
    "vttest-1-01",  # cursor movements at the margins with a pending wrap
    "vttest-1-03",  # after DECCOLM: the screen is cleared
    "vttest-2-03",  # DECSCNM: the screen's reverse video is no cell's attribute
    "vttest-3-01",  # the character sets: G0..G3 designation, SO/SI
    "vttest-8-04",  # delete character after insert mode
]
# Where clive and tmux 3.3a disagree on purpose: after DECSTBM in origin mode the cursor goes to the
# top of the scroll region (VT100, xterm, and vttest's own text: "This line should be at the bottom
# of the screen"); tmux homes it to the top of the screen.
KNOWN = {"vttest-2-11": "row 23: clive 'Origin mode test. This line should be at the bottom of the screen.'"}


@pytest.fixture(scope="module")
def tmux():
    replay = TmuxReplay()
    yield replay
    replay.close()


def test_the_shipped_streams_are_all_there():
    names = {s.name for s in streams()}
    assert set(QUICK) | set(KNOWN) <= names
    assert len([n for n in names if n.startswith("vttest-")]) == 34 and len(names) == 46, sorted(names)


@pytest.mark.parametrize("name", QUICK)
def test_a_real_programs_screen_is_the_one_tmux_shows(tmux, name):
    (stream,) = [s for s in streams() if s.name == name]
    assert differences(clive_view(stream), tmux.view(stream)) == []


def test_the_one_known_difference_is_where_clive_follows_the_vt100(tmux):
    (stream,) = [s for s in streams() if s.name == "vttest-2-11"]
    found = differences(clive_view(stream), tmux.view(stream))
    assert any(line.startswith(KNOWN["vttest-2-11"]) for line in found), found


@pytest.mark.parametrize(
    "data",
    [
        b"x" * 80 + b"\x1b[AY",  # CUU ends a pending wrap
        b"x" * 80 + b"\x08Y",  # a backspace counts from just past the last column
        b"x" * 80 + b"\tY",  # a tab there changes nothing
        b"x" * 80 + b"\x1bEY",  # NEL is CR LF
        b"A" + b"*" * 78 + b"B\x1b[1;2H\x1b[5@\x1b[1;2H\x1b[78P",  # ICH and DCH keep to the row
        b"ab\x1b7" + b"x" * 80 + b"\x1b8Y\x1b8Z",  # DECRC restores the one saved cursor, twice
        b"hello\x1b[?3h",  # DECCOLM clears and homes
        b"".join(b"line %d\r\n" % i for i in range(23)) + b"\x1b[5;10r\x1b[3;3H\x1b[2TQ",  # SD in a region
        b"x" * 78 + b"y\x1b[5b",  # REP, to the end of the line
        b"a\x1b*Bb\x1b+0c\x1b(0lqk\x1b(B",  # G2/G3 designation swallowed; DEC graphics as xterm
    ],
)
def test_sequences_pyte_got_wrong_draw_as_in_tmux(tmux, data):
    assert probe(data, replay=tmux) == []


def test_streams_live_in_the_data_folder():
    assert DATA.name == "fidelity" and any(DATA.glob("vttest-*.bin"))
