"""Key notation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clive.terminal.keys import UnknownKey, parse_keys


@pytest.mark.parametrize(
    ("notation", "sent"),
    [
        (":wq<Enter>", ":wq\r"),
        ("<Tab><Esc><BS>", "\t\x1b\x7f"),
        ("<C-a><C-z><C-c>", "\x01\x1a\x03"),
        ("<M-x>", "\x1bx"),
        ("<Up><Down><Right><Left>", "\x1b[A\x1b[B\x1b[C\x1b[D"),
        ("<Home><End><PageUp><PageDown>", "\x1b[H\x1b[F\x1b[5~\x1b[6~"),
        ("<F1><F5><F12>", "\x1bOP\x1b[15~\x1b[24~"),
        ("<lt>Enter>", "<Enter>"),
        ("a < b", "a < b"),
        ("if (a<b) {", "if (a<b) {"),
        ("<enter>", "\r"),
        ("<C-]>", "\x1d"),
    ],
)
def test_notation_becomes_the_bytes_a_terminal_sends(notation, sent):
    assert parse_keys(notation) == sent


def test_cursor_keys_in_application_mode_use_ss3():
    assert parse_keys("<Up><Left><Home>", app_cursor=True) == "\x1bOA\x1bOD\x1bOH"


@pytest.mark.parametrize("name", ["Foo", "C-1", "F13", "Ctrl-c"])
def test_unknown_names_are_an_error_naming_the_name(name):
    with pytest.raises(UnknownKey) as info:
        parse_keys(f"abc<{name}>def")
    assert str(info.value) == f"unknown key <{name}>"


@given(st.text())
def test_any_text_parses_or_names_an_unknown_key(text):
    try:
        parse_keys(text)
    except UnknownKey as exc:
        assert str(exc).startswith("unknown key <")


@given(st.text(alphabet=st.characters(blacklist_characters="<")))
def test_text_without_angle_brackets_is_sent_verbatim(text):
    assert parse_keys(text) == text
