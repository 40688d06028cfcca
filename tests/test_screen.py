"""The screen model and snapshots."""

from __future__ import annotations

import collections

import pyte
from hypothesis import given
from hypothesis import strategies as st

from clive.terminal.screen import History, LineRows, ScreenModel, Snapshot, numbered_rows, rows_pattern


def _feed(screen: ScreenModel, text: str) -> ScreenModel:
    pyte.Stream(screen).feed(text)
    return screen


def test_scrollback_keeps_lines_pushed_off_the_top():
    screen = _feed(ScreenModel(20, 5, history=100), "".join(f"l{i}\r\n" for i in range(12)))
    assert list(screen.history) == [f"l{i}" for i in range(8)]
    assert screen.scrolled == 8
    assert screen.text_lines() == ["l8", "l9", "l10", "l11", ""]


def test_scrollback_is_bounded():
    screen = _feed(ScreenModel(20, 5, history=3), "".join(f"l{i}\r\n" for i in range(12)))
    assert list(screen.history) == ["l5", "l6", "l7"]


def _cut(lines: list[str], columns: int) -> list[str]:
    """Rows of lines each written from column 0, the slow way."""
    rows = []
    for line in lines:
        rows += [line[k : k + columns].rstrip() for k in range(0, len(line), columns)] or [""]
    return rows


_line = st.text(alphabet="ab ", max_size=25)
_history_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), _line),
        st.tuples(st.just("extend"), st.lists(_line, max_size=12)),
        st.tuples(st.just("lines"), st.lists(_line, min_size=1, max_size=30), st.integers(0, 40)),
        st.tuples(st.just("read"), st.integers(-3, 3)),
    ),
    max_size=30,
)


@given(maxlen=st.sampled_from([0, 1, 3, 10, 50]), columns=st.sampled_from([1, 4, 10]), ops=_history_ops)
def test_history_keeps_what_a_bounded_deque_of_the_cut_rows_keeps(maxlen: int, columns: int, ops: list) -> None:
    history = History(maxlen)
    reference: collections.deque[str] = collections.deque(maxlen=maxlen)
    for op in ops:
        if op[0] == "append":
            history.append(op[1])
            reference.append(op[1])
        elif op[0] == "extend":
            history.extend(op[1])
            reference.extend(op[1])
        elif op[0] == "lines":
            rows = _cut(op[1], columns)
            count = min(op[2], len(rows))  # the last `count` rows of the lines
            history.extend_lines(LineRows(op[1], columns, count))
            reference.extend(rows[len(rows) - count :])
        elif reference and -len(reference) <= op[1] < len(reference):
            assert history[op[1]] == reference[op[1]]
        assert len(history) == len(reference)
    assert list(history) == list(reference)
    assert len(history) == len(reference) and bool(history) == bool(reference)


class _Uncuttable(LineRows):
    def rows(self) -> list[str]:
        raise AssertionError("lines pushed out of the history were cut into rows")


def test_history_cuts_lines_pushed_out_before_anything_reads_them_never():
    history = History(3)
    history.extend_lines(_Uncuttable(["x" * 50] * 1000, 10, 3))
    history.extend_lines(LineRows(["a", "bbbbbbbbbbbbcc", ""], 12, 4))
    assert list(history) == ["a", "bbbbbbbbbbbb", "cc", ""][1:]


def test_rows_pattern_cuts_lines_into_rows_and_keeps_empty_lines():
    assert rows_pattern(3).findall("\n".join(["abcdefg", "", "ab"])) == ["abc", "def", "g", "", "ab"]


def test_alternate_screen_leaves_the_main_screen_intact():
    screen = _feed(ScreenModel(20, 5), "main text\r\n")
    _feed(screen, "\x1b[?1049h\x1b[Hfull screen app")
    assert screen.alternate and screen.text_lines()[0] == "full screen app"
    _feed(screen, "\r\n" * 10)  # scrolling in the alternate screen does not reach scrollback
    assert not screen.history
    _feed(screen, "\x1b[?1049l")
    assert not screen.alternate
    assert screen.text_lines()[0] == "main text"
    assert (screen.cursor.x, screen.cursor.y) == (0, 1)


def test_snapshot_diff_names_only_changed_rows():
    screen = _feed(ScreenModel(20, 5), "one\r\ntwo\r\n")
    before = screen.snapshot()
    _feed(screen, "three")
    diff = screen.snapshot().diff(before)
    assert diff.rows == ((2, "three"),)
    assert diff.cursor == (5, 2)
    assert "3| three" in diff.render()
    assert screen.snapshot().diff(screen.snapshot()).empty


def test_snapshot_diff_after_resize_asks_for_a_full_screen():
    before = ScreenModel(20, 5).snapshot()
    assert ScreenModel(30, 5).snapshot().diff(before) is None


def test_snapshot_json_round_trip_with_styles():
    screen = _feed(ScreenModel(20, 3), "\x1b]2;my title\x07\x1b[1;31mred\x1b[0m plain 漢")
    snap = screen.snapshot(with_style=True)
    again = Snapshot.from_json(snap.to_json())
    assert again == snap
    assert again.styles == snap.styles
    assert snap.title == "my title"
    assert snap.styles[0][0].fg == "red" and snap.styles[0][0].bold
    assert snap.lines[0] == "red plain 漢"


def test_private_sgr_is_ignored():
    screen = _feed(ScreenModel(20, 3), "\x1b[>4;2mok")
    assert screen.text_lines()[0] == "ok"


def test_a_scroll_is_sent_as_a_shift_plus_the_new_rows():
    screen = _feed(ScreenModel(20, 10), "".join(f"row {i}\r\n" for i in range(9)) + "$ ")
    before = screen.snapshot()
    _feed(screen, "ls\r\nout a\r\nout b\r\n$ ")
    after = screen.snapshot()
    diff = after.diff(before)
    assert diff.scrolled == 3
    assert diff.apply(before) == after.lines
    assert len(diff.rows) <= 4
    assert "scrolled up 3 lines]" in diff.render()


@given(
    st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=6, max_size=6),
    st.lists(st.sampled_from(["a", "b", "c", "d", ""]), min_size=6, max_size=6),
)
def test_applying_a_diff_always_rebuilds_the_new_screen(old, new):
    before = Snapshot(lines=tuple(old), cursor=(0, 0), columns=10, rows=6)
    after = Snapshot(lines=tuple(new), cursor=(0, 0), columns=10, rows=6)
    assert after.diff(before).apply(before) == after.lines


def test_runs_of_identical_rows_are_sent_as_one_line():
    screen = _feed(ScreenModel(20, 8), "text\r\n" + "~\r\n" * 5 + "end")
    rendered = screen.snapshot().render()
    assert "\n2-6| ~\n" in rendered
    assert "1| text" in rendered and "7| end" in rendered
    assert numbered_rows([(0, "a"), (1, "a"), (3, "a"), (4, "b")]) == ["1| a", "2| a", "4| a", "5| b"]


def test_a_cursor_that_only_moved_is_still_reported():
    screen = _feed(ScreenModel(20, 5), "one\r\ntwo")
    before = screen.snapshot()
    _feed(screen, "\x1b[1;2H")
    diff = screen.snapshot().diff(before)
    assert diff.empty and diff.moved
    assert diff.render() == "[screen unchanged, cursor row 1, col 2]"
    assert diff.render(cursor=False) == ""
    assert screen.snapshot().diff(screen.snapshot()).render() == ""
