"""FastStream leaves exactly the screen pyte.Stream leaves (the parser as a UTF-8 terminal reads it,
``TerminalStream``: character sets honoured), for any bytes and any chunking.

The examples per property default to a CI budget; ``CLIVE_HYPOTHESIS_EXAMPLES=5000`` runs more.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import random
from collections.abc import Iterator
from typing import Any

import pyte
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clive.terminal import Terminal, clusters, fastcheck, reading
from clive.terminal.fastfeed import CheckedText, FastStream
from clive.terminal.fastrows import _apply_sgr
from clive.terminal.parser import TerminalStream
from clive.terminal.screen import ControlStrings, ScreenModel
from clive.terminal.terminal_screen import TerminalScreen

EXAMPLES = int(os.environ.get("CLIVE_HYPOTHESIS_EXAMPLES", "300"))
# The screen model, and the Terminal's own subclass of it.
SCREENS = [ScreenModel, TerminalScreen]
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# A long run (thousands of examples) may take many minutes: no per-test timeout then.
LONG_RUN = pytest.mark.timeout(0 if EXAMPLES > 300 else 120)

# ---- byte streams ----------------------------------------------------------------------------

_num = st.integers(min_value=0, max_value=30).map(str)
_opt = st.one_of(st.just(""), _num)


def _csi(final: str, params: st.SearchStrategy[str] = _opt) -> st.SearchStrategy[bytes]:
    return params.map(lambda p: f"\x1b[{p}{final}".encode())


_sgr_param = st.one_of(
    st.sampled_from(["", "0", "00", "1", "3", "4", "5", "7", "9", "22", "23", "24", "27", "29", "39", "49", "99"]),
    st.integers(30, 47).map(str),
    st.integers(90, 107).map(str),
    st.integers(0, 300).map(lambda n: f"38;5;{n}"),
    st.integers(0, 260).map(lambda n: f"48;5;{n}"),
    st.tuples(st.integers(0, 300), st.integers(0, 255), st.integers(0, 255)).map(lambda t: "38;2;{};{};{}".format(*t)),
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(lambda t: "48;2;{};{}".format(*t)),  # one short
    st.sampled_from(["38", "38;5", "48;2", "12345"]),
)
sgr = st.lists(_sgr_param, max_size=4).map(lambda ps: ("\x1b[" + ";".join(ps) + "m").encode())

words = st.sampled_from([b"hello", b"world ", b"a", b" ", b"   ", b"foo bar baz", b"0123456789" * 3])
long_run = st.integers(1, 200).map(lambda n: b"x" * n)
narrow = st.sampled_from(["é", "ß", "─", "│", "λ", "€", "\ufffd", "ж"]).map(str.encode)
wide = st.sampled_from(["中", "文", "😀", "🎉", "\u3000", "ｱ"]).map(str.encode)
# Runs of two-cell characters (the fast paths take those of the BMP), mixed with one-cell ones.
_cjk_piece = st.sampled_from(["中", "文", "漢字", "ｱ", "x", "中a", "\u3000", "日本語テキスト"])
cjk = st.lists(_cjk_piece, min_size=1, max_size=50).map(lambda ps: "".join(ps).encode())
combining = st.sampled_from(["e\u0301", "\u0301", "a\u0308\u0304", "\u0327"]).map(str.encode)
# Text with clusters, as the fast paths take it: letters with accents, emoji with skin tones, ZWJ
# sequences, flags (three indicators: a pair and a lone one), a variation selector beyond the BMP, a
# one-cell character beyond the BMP, and a joiner on a two-cell letter.
_cluster_piece = st.sampled_from(
    ["cafe\u0301", "a\u0308\u0304", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷🇩", "🇩🇪", "❤\ufe0f", "\U0001d400",
     "😀", "x\U000e0100", "中\u200d文", "a\u200d\u200db", "🏳\ufe0f\u200d🌈", " ", "ab", "中"]
)  # fmt: skip
clustered = st.lists(_cluster_piece, min_size=1, max_size=20).map(lambda ps: "".join(ps).encode())
invalid = st.sampled_from([b"\xff", b"\xc3", b"\xe4\xb8", b"\x80", b"\xed\xa0\x80", b"\xf0\x9f"])
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\r", b"\n", b"\t", b"\x08", b"\x08\x08"])
moves = st.one_of(
    st.tuples(_opt, _opt).map(lambda t: f"\x1b[{t[0]};{t[1]}H".encode()),
    *(_csi(f) for f in "ABCDEFGdf`e"),
)
erase = st.one_of(_csi("K", st.sampled_from(["", "0", "1", "2"])), _csi("J", st.sampled_from(["", "0", "1", "2", "3"])))
regions = st.one_of(
    st.tuples(_opt, _opt).map(lambda t: f"\x1b[{t[0]};{t[1]}r".encode()),
    st.just(b"\x1b[r"),
    st.sampled_from([b"\x1bD", b"\x1bM", b"\x1bE"]),
)
edits = st.one_of(*(_csi(f) for f in "LM@PX"))
alternate = st.sampled_from(
    [b"\x1b[?1049h", b"\x1b[?1049l", b"\x1b[?47h", b"\x1b[?47l", b"\x1b[?1047h", b"\x1b[?1047l"]
)
modes = st.sampled_from(
    [
        b"\x1b[?7l",
        b"\x1b[?7h",
        b"\x1b[4h",
        b"\x1b[4l",
        b"\x1b[20h",
        b"\x1b[20l",
        b"\x1b[?5h",
        b"\x1b[?5l",
        b"\x1b[?25l",
        b"\x1b[?25h",
        b"\x1b[?2004h",
        b"\x1b[?1h",
    ]
)
misc = st.sampled_from(
    [
        b"\x1bc",
        b"\x1b]0;a title\x07",
        b"\x1b]2;t\x1b\\",
        b"\x1bH",
        b"\x1b[3g",
        b"\x1b[g",
        b"\x1b7",
        b"\x1b8",
        b"\x07",
        b"\x00",
        b"\x7f",
        b"\x1b[6n",
        b"\x1b[5n",
        b"\x1b[c",
        b"\x1b(0",
        b"\x1b#8",
        b"\x1b[?3h",
        b"\x1b[3",
    ]
)
# Grapheme clusters: joiners, variation selectors, flags, skin tones (a joiner may end a chunk).
graphemes = st.sampled_from(
    ["👨\u200d👩\u200d👧", "🇫🇷", "🇫", "👍🏽", "❤\ufe0f", "\u200d", "\ufe0f", "🏳\ufe0f\u200d🌈", "\u200b", "🧑\u200d⚕"]
).map(str.encode)
# Character sets: DEC special graphics in G0 or G1, shifted in and out, among the text they change.
charsets = st.sampled_from(
    [b"\x1b(0", b"\x1b(B", b"\x1b)0", b"\x1b)B", b"\x0e", b"\x0f", b"lqqqk", b"x a x", b"mqqj", b"\x1b%G"]
)
# pyte's draw() stops a text run at these and drops the rest of it (so runs split differently differ),
# and these sequences raise inside pyte (so the rest of that chunk is lost): chunking changes them.
run_breakers = st.sampled_from(
    ["\x01", "\x1a", "\x0b", "\x0c", "\x0e", "\u200d", "\ufe0f", "\u200b", "\u0085", "\u20dd"]
).map(str.encode)
raisers = st.sampled_from([b"\x1b[?6h\x1b[3d", b"\x1b[1;2;3A", b"\x1b[?1m", "\x1b[\u00b2m".encode(), b"\x1b[?5f"])


def _flood_line(cols: int) -> st.SearchStrategy[bytes]:
    piece = st.one_of(
        words,
        sgr,
        sgr,
        st.just(b"\t"),
        narrow,
        cjk,
        clustered,
        st.integers(0, 3 * cols).map(lambda n: b"w" * n),
        st.sampled_from([b"\r", b"\x08", b"  "]),
    )
    end = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r\r\n", b"", b"\r"])
    return st.tuples(st.lists(piece, max_size=6), end).map(lambda t: b"".join(t[0]) + t[1])


def _flood(cols: int) -> st.SearchStrategy[bytes]:
    """A burst of lines, as a program printing a lot writes them."""
    return st.lists(_flood_line(cols), min_size=1, max_size=40).map(b"".join)


def _clean_flood(cols: int, tabs: bool) -> st.SearchStrategy[bytes]:
    """Many lines of only text and SGR, each ended by CR LF (as the PTY makes of a program's LF): what
    FastStream takes in bulk, skipping the lines that scroll out of the history."""
    pieces = [words, sgr, sgr, narrow, cjk, clustered, st.integers(0, 3 * cols).map(lambda n: b"w" * n)]
    if tabs:
        pieces.append(st.just(b"\t"))
    line = st.lists(st.one_of(*pieces), max_size=5).map(lambda ps: b"".join(ps) + b"\r\n")
    return st.lists(line, min_size=1, max_size=80).map(b"".join)


@functools.cache
def _token(cols: int, *, exact_chunking: bool) -> st.SearchStrategy[bytes]:
    common = [
        words,
        words,
        long_run,
        narrow,
        wide,
        combining,
        invalid,
        sgr,
        sgr,
        line_ends,
        line_ends,
        moves,
        erase,
        regions,
        edits,
        alternate,
        modes,
        misc,
        charsets,
        charsets,
        graphemes,
        graphemes,
        _flood_line(cols),
        _flood(cols),
        _flood(cols),
        _flood(cols),
        _clean_flood(cols, tabs=False),
        _clean_flood(cols, tabs=True),
    ]
    if exact_chunking:
        common += [run_breakers, raisers]
    return st.one_of(*common)


@st.composite
def sessions(draw: Any, *, exact_chunking: bool) -> tuple[type, int, int, int, list[Any]]:
    """(screen class, columns, rows, history, ops): ops are bytes or ('resize', rows, columns)."""
    screen = draw(st.sampled_from(SCREENS))
    cols = draw(st.sampled_from([1, 2, 5, 8, 9, 17, 40, 80]))
    rows = draw(st.sampled_from([1, 2, 3, 5, 24]))
    history = draw(st.sampled_from([0, 3, 100]))
    ops: list[Any] = []
    for _ in range(draw(st.integers(1, 60))):
        if draw(st.integers(0, 30)) == 0:
            ops.append(("resize", draw(st.integers(1, 30)), draw(st.integers(1, 90))))
        else:
            ops.append(draw(_token(cols, exact_chunking=exact_chunking)))
    return screen, cols, rows, history, ops


def _cuts(draw: Any, data: bytes) -> list[bytes]:
    sizes = st.sampled_from([1, 1, 2, 3, 5, 8, 13, 64, 500, 4096])
    chunks = []
    pos = 0
    while pos < len(data):
        size = draw(sizes)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def _segments(ops: list[Any]) -> list[Any]:
    """Bytes between resizes joined: [bytes, ('resize', r, c), bytes, ...]."""
    out: list[Any] = [b""]
    for op in ops:
        if isinstance(op, tuple):
            out.extend([op, b""])
        else:
            out[-1] += op
    return out


# ---- feeding and comparing --------------------------------------------------------------------


class Fed:
    """A screen fed through a stream the way Terminal feeds it (incremental UTF-8, errors replaced)."""

    def __init__(self, cols: int, rows: int, history: int, stream: type, screen: type = ScreenModel) -> None:
        self.screen = screen(cols, rows, history=history)
        self.stream = stream(self.screen)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.errors: list[str] = []

    def feed(self, chunk: bytes) -> None:
        try:
            self.stream.feed(self.decoder.decode(chunk))
        except Exception as exc:  # noqa: BLE001 - pyte raises on some sequences; both must raise alike
            self.errors.append(type(exc).__name__)

    def feed_checked(self, chunks: list[bytes], check: list[bool], columns: int) -> None:
        """As the Terminal's reader feeds a flood: the chunks put together, checked on the way (for a
        screen ``columns`` wide: the screen's width, or not)."""
        checked = CheckedText(None, columns)
        for chunk, now in zip(chunks, check, strict=True):
            checked.add(self.decoder.decode(chunk))
            if now:
                checked.check()
        try:
            self.stream.feed(checked.text(), checked)
        except Exception as exc:  # noqa: BLE001 - as in feed()
            self.errors.append(type(exc).__name__)

    def resize(self, rows: int, cols: int) -> None:
        self.screen.resize(rows, cols)


def _between_resizes(ops: list[Any], *screens: Fed) -> Iterator[bytes]:
    """The bytes between resizes, each resize done to every screen on the way."""
    for segment in _segments(ops):
        if isinstance(segment, tuple):
            for fed in screens:
                fed.resize(segment[1], segment[2])
            continue
        yield segment


def _rows(rows: dict) -> dict:
    return {y: (row.default, dict(row)) for y, row in rows.items()}


def state(screen: ScreenModel) -> dict[str, Any]:
    """Everything a feed can change, cells included (reading `buffer` builds any pending rows)."""
    c = screen.cursor
    saved = screen._saved_main
    return {
        "size": (screen.columns, screen.lines),
        "rows": _rows(screen.buffer),
        "cursor": (c.x, c.y, c.attrs, c.hidden),
        "mode": set(screen.mode),
        "margins": screen.margins,
        "title": (screen.title, screen.icon_name),
        "history": list(screen.history),
        "scrolled": screen.scrolled,
        "alternate": screen.alternate,
        "dirty": set(screen.dirty),
        "tabstops": set(screen.tabstops),
        "charsets": (screen.charset, screen.g0_charset, screen.g1_charset),
        "savepoints": [
            (sp.cursor.x, sp.cursor.y, sp.cursor.attrs, sp.cursor.hidden, sp[1:]) for sp in screen.savepoints
        ],
        "saved_main": None
        if saved is None
        else (_rows(saved[0]), saved[1] and (saved[1].x, saved[1].y, saved[1].attrs)),
    }


def assert_same(reference: Fed, fast: Fed) -> None:
    want, got = state(reference.screen), state(fast.screen)
    for key in want:
        assert got[key] == want[key], f"{key} differs"
    assert fast.errors == reference.errors


# ---- properties ---------------------------------------------------------------------------------


@LONG_RUN
@PROPERTY
@given(session=sessions(exact_chunking=True), data=st.data())
def test_same_chunks_give_the_same_screen_for_any_bytes(session: Any, data: st.DataObject) -> None:
    """Any bytes at all, the same chunks to both, the screen read (text_lines) at the same moments."""
    screen, cols, rows, history, ops = session
    reference = Fed(cols, rows, history, TerminalStream, screen)
    fast = Fed(cols, rows, history, FastStream, screen)
    for segment in _between_resizes(ops, reference, fast):
        for chunk in _cuts(data.draw, segment):
            reference.feed(chunk)
            fast.feed(chunk)
            if data.draw(st.integers(0, 3)) == 0:
                assert fast.screen.text_lines() == reference.screen.text_lines()
            if data.draw(st.integers(0, 7)) == 0:
                assert list(fast.screen.history) == list(reference.screen.history)
    assert_same(reference, fast)


@LONG_RUN
@PROPERTY
@given(session=sessions(exact_chunking=False), data=st.data())
def test_any_chunking_gives_the_screen_of_one_feed(session: Any, data: st.DataObject) -> None:
    """pyte fed everything between resizes at once; FastStream fed the same bytes cut anywhere."""
    screen, cols, rows, history, ops = session
    reference = Fed(cols, rows, history, TerminalStream, screen)
    fast = Fed(cols, rows, history, FastStream, screen)
    for segment in _between_resizes(ops, reference, fast):
        reference.feed(segment)
        for chunk in _cuts(data.draw, segment):
            fast.feed(chunk)
    assert_same(reference, fast)


@contextlib.contextmanager
def checks_in(language: str) -> Iterator[None]:
    """FastStream's checks in C (clive/_speedups.c) or in Python (where the extension is not built)."""
    built = fastcheck._speedups
    if language == "python":
        fastcheck._speedups = None
    try:
        yield
    finally:
        fastcheck._speedups = built


@pytest.mark.parametrize("screen", [ScreenModel, TerminalScreen])
def test_a_wrap_pending_at_a_line_feed_makes_no_empty_row_the_fast_path_lacks(screen: Any) -> None:
    # Found by the property below: the reference screen fetched the cursor's row before wrapping,
    # which left an empty row 1 in its buffer that the fast path (rightly) never made.
    reference, fast = Fed(8, 3, 0, TerminalStream, screen), Fed(8, 3, 0, FastStream, screen)
    for fed in (reference, fast):
        fed.feed(b"wwwwwwww\n")
        fed.feed(b"hello")
    assert_same(reference, fast)
    assert 1 not in reference.screen.buffer


def test_the_c_checks_are_built() -> None:
    """pip install builds clive/_speedups.c (with gcc, which the tests need anyway); the tests below run
    FastStream with it, and again without it."""
    assert fastcheck._speedups is not None, "clive.terminal._speedups is not built: pip install -e . with a C compiler"


# Text to check: anything, the byte streams above decoded, and dense mixes of SGRs, their pieces and controls.
_texts = st.one_of(
    st.text(),
    st.lists(_token(80, exact_chunking=True), max_size=12).map(lambda ts: b"".join(ts).decode("utf-8", "replace")),
    st.text(alphabet="\x1b[;0123456789m\r\n\t\x08 ab\x7f\x00\x9b中é", max_size=300),
    # One-cell text beyond Latin-1 (check_text's UCS2 pass), with what stops it: combining, two-cell.
    st.text(alphabet="\x1b[;1m\r\n\t\x08 a✓─é\u0301中", max_size=300),
    # Clusters, and what breaks them: a joiner or a mark after a control, an SGR inside one.
    st.text(alphabet="\x1b[;1m\r\n\t\x08 a中\u0301\u200d\ufe0f😀🇫🇷\U0001d400\U000e0100", max_size=300),
)


@LONG_RUN
@PROPERTY
@given(text=_texts, columns=st.integers(1, 100))
def test_the_c_checks_answer_as_the_python_ones(text: str, columns: int) -> None:
    speedups = fastcheck._speedups
    tables = [fastcheck._WIDTHS, fastcheck.all_widths()]
    assert speedups is not None
    with checks_in("python"):
        want = fastcheck._checked_slice(text, columns)
    assert fastcheck._checked_slice(text, columns) == want
    if text.isascii():
        found = [speedups.check_ascii(text, columns)]
    else:
        # With the BMP's widths (as at first), and every plane's; the clusters seen have their tokens now.
        found = [speedups.check_text(text, columns, table, clusters.TOKENS) for table in tables]
    for answer in found:
        # NotImplemented: the Python checks answer (beyond the table, a new cluster, a line with a
        # two-cell character and an LF of its own).
        if answer is not NotImplemented:
            assert answer == (None if want is None else (*want[:3], *want[3]))
    # Every ESC the regex leaves starts no SGR, and makes the C version give up.
    plain = fastcheck.SGR.sub("", text)
    assert speedups.strip_sgr(text) == (None if "\x1b" in plain else plain)


@LONG_RUN
@PROPERTY
@pytest.mark.parametrize("checks", ["c", "python"])
@given(session=sessions(exact_chunking=False), data=st.data())
def test_long_chunks_checked_in_slices_give_the_screen_of_one_feed(
    checks: str, session: Any, data: st.DataObject
) -> None:
    """As the Terminal feeds a flood: long chunks (whole segments, often, or put together from pieces
    checked on the way), checked for the fast paths a few characters at a time, so that a slice fails
    anywhere and lines skipped come from many; with the checks in C and in Python."""
    screen, cols, rows, history, ops = session
    reference = Fed(cols, rows, history, TerminalStream, screen)
    fast = Fed(cols, rows, history, FastStream, screen)
    slice_before = fastcheck._SLICE
    fastcheck._SLICE = data.draw(st.sampled_from([1, 2, 5, 16, 64, 300]))
    try:
        with checks_in(checks):
            for segment in _between_resizes(ops, reference, fast):
                reference.feed(segment)
                how = data.draw(st.sampled_from(["whole", "cut", "checked"]))
                if how == "whole":
                    fast.feed(segment)
                elif how == "cut":
                    for chunk in _cuts(data.draw, segment):
                        fast.feed(chunk)
                else:
                    # What the last feed held back (an SGR cut short) starts the checked text.
                    cut = data.draw(st.integers(0, len(segment)))
                    fast.feed(segment[:cut])
                    chunks = _cuts(data.draw, segment[cut:])
                    width = fast.screen.columns
                    columns = data.draw(st.sampled_from([width, width, width + 1, 0]))
                    fast.feed_checked(chunks, [data.draw(st.booleans()) for _ in chunks], columns)
    finally:
        fastcheck._SLICE = slice_before
    assert_same(reference, fast)


@LONG_RUN
@PROPERTY
@given(
    st.lists(st.integers(0, 10_050), max_size=8),
    st.sampled_from(["default", "red", "ff0000"]),
    st.booleans(),
    st.booleans(),
)
def test_sgr_is_pytes(params: list[int], fg: str, bold: bool, reverse_screen: bool) -> None:
    screen = ScreenModel(10, 2)
    if reverse_screen:
        screen.set_mode(pyte.modes.DECSCNM >> 5, private=True)
    screen.cursor.attrs = screen.cursor.attrs._replace(fg=fg, bold=bold)
    before = screen.cursor.attrs
    text = ";".join(map(str, params))
    screen.select_graphic_rendition(*[min(p, 9999) for p in params] or [0])
    assert _apply_sgr(before, text, screen.default_char) == screen.cursor.attrs


# ---- floods ---------------------------------------------------------------------------------------


def coloured_flood(size: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    out = []
    total = 0
    n = 0
    while total < size:
        words = [
            rng.choice(["alpha", "beta", "gamma", "ERROR", "warn", "x" * rng.randint(1, 60)])
            for _ in range(rng.randint(0, 14))
        ]
        if n % 97 == 0:
            words = ["\t", *[w[:8] for w in words[:3]], "\tend"]
        line = " ".join(
            f"\x1b[{rng.choice(['31', '1;32', '38;5;208', '48;2;1;2;3'])}m{w}\x1b[0m" if i % 3 == 1 else w
            for i, w in enumerate(words)
        )
        line = f"{n:07d} {line}\r\n".encode()
        out.append(line)
        total += len(line)
        n += 1
    return b"".join(out)


def test_a_2mb_coloured_flood_in_random_chunks_matches_pyte() -> None:
    data = coloured_flood(2_000_000)
    rng = random.Random(11)
    reference, fast = Fed(80, 24, 5000, TerminalStream), Fed(80, 24, 5000, FastStream)
    reference.feed(data)
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 7, 100, 4095, 4096, 65536])
        fast.feed(data[pos : pos + size])
        pos += size
    assert fast.screen._pending is not None  # the bottom rows' cells are not built yet
    assert fast.screen.text_lines() == reference.screen.text_lines()
    assert_same(reference, fast)


def test_a_flood_larger_than_the_scrollback_in_one_feed_keeps_only_what_can_be_seen() -> None:
    data = coloured_flood(600_000, seed=5) + b"last line\r\n\x1b[1mbold prompt$ "
    reference, fast = Fed(80, 24, 300, TerminalStream), Fed(80, 24, 300, FastStream)
    reference.feed(data)
    fast.feed(data)
    assert fast.screen.text_lines() == reference.screen.text_lines()
    assert_same(reference, fast)
    assert fast.screen.history[-1] == "last line" or "last line" in fast.screen.text_lines()


def flood_with_loose_ends(size: int, seed: int, tabs: bool = False) -> bytes:
    """Coloured lines, some wider than 80 columns (2 or 3 rows), some colours never reset (so they
    carry on into the lines after), empty lines, and tabs if asked for."""
    rng = random.Random(seed)
    out = []
    total = 0
    n = 0
    while total < size:
        kind = rng.randrange(10)
        if kind == 0:
            line = f"\x1b[{rng.choice(['1;35', '38;5;99', '4', '7'])}m{n} carried on"  # no reset
        elif kind == 1:
            line = f"{n} " + "\x1b[32mw\x1b[0mide " * rng.randint(20, 45)  # 2 or 3 rows
        elif kind == 2:
            line = f"{n}\tcol\x1b[0m\tumns" if tabs else f"\x1b[0m{n} reset"
        elif kind == 3:
            line = ""
        else:
            line = f"{n:06d} \x1b[{rng.choice(['31', '1;32', '0', '', '38;2;1;2;3'])}mword\x1b[39m tail"
        if rng.randrange(50) == 0:
            line = "\x1b[0m" * 3 + line + "\x1b[3m"  # resets first, italics carried on
        data = f"{line}\r\n".encode()
        out.append(data)
        total += len(data)
        n += 1
    return b"".join(out)


@pytest.mark.parametrize("history, tabs", [(0, False), (7, False), (300, False), (7, True)])
def test_a_flood_past_the_history_skips_lines_and_keeps_their_colours_and_row_counts(history: int, tabs: bool) -> None:
    data = flood_with_loose_ends(400_000, seed=history, tabs=tabs) + b"end\r\n\x1b[1mbold prompt$ "
    reference = Fed(80, 24, history, TerminalStream)
    reference.feed(data)
    for chunks in ([data], [data[i : i + 50_000] for i in range(0, len(data), 50_000)]):
        fast = Fed(80, 24, history, FastStream)
        for chunk in chunks:
            fast.feed(chunk)
        assert fast.screen.text_lines() == reference.screen.text_lines()
        assert_same(reference, fast)


def cjk_flood(size: int, seed: int) -> bytes:
    """Lines of two-cell characters mixed with one-cell ones, coloured here and there, many wider than
    the screen: a two-cell character often meets the last column."""
    rng = random.Random(seed)
    words = ["中文", "漢字", "日本語", "ｱｲｳ", "x", "ab", "\x1b[31m红\x1b[0m", "\x1b[1m粗\x1b[22m", " "]
    out = []
    total = 0
    while total < size:
        line = "".join(rng.choice(words) for _ in range(rng.randint(0, 70)))
        data = f"{line}\r\n".encode()
        out.append(data)
        total += len(data)
    return b"".join(out)


@pytest.mark.parametrize("cols", [80, 79, 7, 1])
def test_a_cjk_flood_matches_pyte_in_any_chunks(cols: int) -> None:
    data = cjk_flood(120_000, seed=cols) + "末行\r\n\x1b[1mプロンプト$ ".encode()
    assert_any_chunks_match_pyte(data, cols, seed=cols)


def assert_any_chunks_match_pyte(data: bytes, cols: int, seed: int) -> None:
    """``data`` fed whole, in 5000-byte chunks and in random ones gives the screen pyte makes of it."""
    reference = Fed(cols, 24, 300, TerminalStream)
    reference.feed(data)
    rng = random.Random(seed)
    for chunks in ([data], [data[i : i + 5000] for i in range(0, len(data), 5000)]):
        fast = Fed(cols, 24, 300, FastStream)
        for chunk in chunks:
            fast.feed(chunk)
        assert fast.screen.text_lines() == reference.screen.text_lines()
        assert_same(reference, fast)
    fast = Fed(cols, 24, 300, FastStream)
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 2, 3, 100, 4096])
        fast.feed(data[pos : pos + size])
        pos += size
    assert_same(reference, fast)


def cluster_flood(size: int, seed: int) -> bytes:
    """Log lines with emoji and accents among their words, coloured here and there, many wider than the
    screen: clusters meet the last column, the screen's start and the ends of chunks."""
    rng = random.Random(seed)
    words = ["step", "x", " ", "中", "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "🇩🇪🇫", "❤\ufe0f", "cafe\u0301",
             "a\u0308\u0304", "\U0001d400", "\x1b[31m🔥\x1b[0m", "\x1b[1me\u0301\x1b[22m",
             "🏳\ufe0f\u200d🌈"]  # fmt: skip
    out = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        data = f"{line}\r\n".encode()
        out.append(data)
        total += len(data)
    return b"".join(out)


@pytest.mark.parametrize("checks", ["c", "python"])
@pytest.mark.parametrize("cols", [80, 79, 7, 2, 1])
def test_a_flood_of_emoji_and_accents_matches_pyte_in_any_chunks(cols: int, checks: str) -> None:
    data = cluster_flood(60_000, seed=cols) + "末行 🇫🇷\r\n\x1b[1m👍🏽 $ ".encode()
    with checks_in(checks):
        assert_any_chunks_match_pyte(data, cols, seed=cols)


def test_the_c_checks_take_clusters_once_they_have_tokens() -> None:
    # The Python checks give a cluster its token the first time; from then on the C pass takes text
    # with it itself (a flood of emoji is not left to Python).
    text = "step 👨\u200d👩\u200d👧 cafe\u0301 🇫🇷 \x1b[1m❤\ufe0f\x1b[0m\r\n" * 3
    with checks_in("python"):
        want = fastcheck._checked_slice(text, 80)
    assert want is not None
    found = fastcheck._speedups.check_text(text, 80, fastcheck.all_widths(), clusters.TOKENS)
    assert found == (*want[:3], *want[3])
    assert "\u200d" not in found[0] and "\u0301" not in found[0]  # each cluster is one token


@pytest.mark.parametrize("checks", ["c", "python"])
def test_a_regional_indicator_first_in_a_chunk_pairs_with_the_one_on_screen(checks: str) -> None:
    reference, fast = Fed(10, 3, 0, TerminalStream), Fed(10, 3, 0, FastStream)
    with checks_in(checks):
        for fed in (reference, fast):
            fed.feed("\r\n\r\nab🇫".encode())  # on the bottom row, where the lazy path takes lines
            fed.feed("🇷 x".encode())
    assert_same(reference, fast)
    assert fast.screen.cursor.x == 6
    assert fast.screen.buffer[2][2].data == "🇫🇷"


@pytest.mark.parametrize("checks", ["c", "python"])
def test_a_zero_width_character_first_in_a_chunk_joins_the_cell_before(checks: str) -> None:
    reference, fast = Fed(10, 3, 0, TerminalStream), Fed(10, 3, 0, FastStream)
    with checks_in(checks):
        for fed in (reference, fast):
            fed.feed(b"\r\n\r\ncafe")
            fed.feed("\u0301 ok\r\n".encode())
    assert_same(reference, fast)
    assert fast.screen.buffer[1][3].data == "é"


def test_clusters_past_the_tokens_there_are_go_the_slow_way_and_stay_exact(monkeypatch: Any) -> None:
    monkeypatch.setattr(clusters, "CAPACITY", len(clusters.TEXT))  # no token left for a new cluster
    data = "".join(f"{chr(0x61 + i % 26)}\u0300\u0301\u0302{i}\r\n" for i in range(200)).encode()
    reference, fast = Fed(80, 24, 100, TerminalStream), Fed(80, 24, 100, FastStream)
    reference.feed(data)
    fast.feed(data)
    assert_same(reference, fast)


def test_reverse_video_set_during_a_flood_keeps_the_rows_made_before_it() -> None:
    # Found by the property tests: the Terminal's screen sets DECSCNM without touching any row, so the
    # rows a flood left as text were built later with the reverse default cell.
    data = b"".join(b"line %d\r\n" % i for i in range(40)) + b"\x1b[?5h"
    reference, fast = Fed(20, 5, 10, TerminalStream, TerminalScreen), Fed(20, 5, 10, FastStream, TerminalScreen)
    for fed in (reference, fast):
        fed.feed(data)
        fed.screen.text_lines()
        fed.feed(b"more\r\n")
    assert_same(reference, fast)


def test_a_colour_set_in_the_skipped_lines_colours_the_screen_after_them() -> None:
    lines = b"".join(b"line %d\r\n" % i for i in range(30))
    data = lines + b"\x1b[1;31m" + lines * 7 + b"\x1b[4mtail"
    reference, fast = Fed(80, 24, 10, TerminalStream), Fed(80, 24, 10, FastStream)
    reference.feed(data)
    fast.feed(data)
    assert_same(reference, fast)
    assert fast.screen.buffer[0][0].fg == "red"


def test_a_flood_in_slices_that_ends_with_escapes_keeps_its_skipped_part() -> None:
    # The last slice holds a prompt with escapes the fast paths leave to pyte: the slices before
    # are still taken as one stretch, the lines that scroll out of the history skipped.
    data = flood_with_loose_ends(100_000, seed=3) + b"\x1b]0;title\x07\x1b[2;5Hmoved\x1b[K\r\nprompt$ "
    reference, fast = Fed(80, 24, 50, TerminalStream), Fed(80, 24, 50, FastStream)
    reference.feed(data)
    slice_before = fastcheck._SLICE
    fastcheck._SLICE = 1000
    try:
        fast.feed(data)
    finally:
        fastcheck._SLICE = slice_before
    assert_same(reference, fast)


def test_checked_text_checks_on_past_what_the_fast_paths_leave_to_pyte() -> None:
    # A flood's first window often starts with escapes (the shell's marker, a title): the slices after
    # them are still checked, so that feed takes them as known.
    start = "\x1b]0;title\x07\x1b[2J\x1b[H$ cat log\r\n"
    checked = CheckedText(ControlStrings(), 80)
    checked.add(start)
    checked.check()
    for i in range(300):
        checked.add(f"\x1b[32m{i:05d}\x1b[0m {'word ' * (i % 30)}\r\n")
        checked.check()
    assert checked.slices and checked.slices[0][0] == len(start)
    text = checked.text()
    reference, fast = Fed(80, 24, 100, TerminalStream), Fed(80, 24, 100, FastStream)
    reference.stream.feed(text)
    fast.stream.feed(text, checked)
    assert_same(reference, fast)


def test_text_lines_reads_a_flood_without_building_cells() -> None:
    fast = Fed(80, 24, 100, FastStream)
    fast.feed(b"".join(b"line %d\r\n" % i for i in range(1000)))
    lines = fast.screen.text_lines()
    assert lines[-2] == "line 999" and fast.screen._pending is not None
    assert fast.screen.buffer[22][0].data == "l" and fast.screen._pending is None


def test_a_chunk_ending_inside_an_sgr_waits_for_the_rest() -> None:
    fast = Fed(20, 3, 10, FastStream)
    fast.feed(b"a\x1b[3")
    assert not fast.stream._taking_plain_text
    fast.feed(b"1mb\r\n")
    assert fast.screen.buffer[0][1].fg == "red"


@pytest.mark.timeout(60)
def test_fast_stream_in_a_real_terminal_keeps_screen_and_scrollback(tmp_path: Any) -> None:
    with Terminal(cols=80, rows=24, cwd=tmp_path) as term:
        with term._cond:
            if not isinstance(term._stream, FastStream):
                term._stream = FastStream(term._screen)
            assert term._stream._fast, "the Terminal's screen class turns FastStream's shortcuts off"
        result = term.run("seq 1 20000; printf '\\033[31mred\\033[0m done\\n'")
        assert result.exit_code == 0
        snap = term.snapshot(with_style=True)
        assert "red done" in snap.lines and "20000" in snap.lines
        assert "19000" in term.history()
        assert any(run.fg == "red" for row in snap.styles or () for run in row)


class _Bytes:
    def __init__(self) -> None:
        self.out = bytearray()

    def on_output(self, data: bytes) -> None:
        self.out += data

    def on_input(self, data: bytes, secret: bool) -> None:
        pass


@pytest.mark.timeout(120)
@pytest.mark.parametrize("waits", ["asking in a loop", "in poll"])
@pytest.mark.parametrize("kind", ["coloured", "cjk"])
def test_a_terminal_reading_a_flood_in_windows_ends_with_the_screen_pyte_makes_of_its_bytes(
    tmp_path: Any, kind: str, waits: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flood long enough that the reader takes it in windows of many reads, and FastStream skips
    # the lines that scroll out of the history: the result is pyte's for the very same bytes. The
    # reader waits for the next bytes as it does on two CPUs or more, and as on one.
    monkeypatch.setattr(reading, "SPIN_FIRST", waits == "asking in a loop")
    flood = tmp_path / "flood.txt"
    data = flood_with_loose_ends(3_000_000, seed=8) if kind == "coloured" else cjk_flood(600_000, seed=8)
    flood.write_bytes(data.replace(b"\r\n", b"\n"))
    output = _Bytes()
    with Terminal(cols=80, rows=24, cwd=tmp_path, history=2000, listeners=[output]) as term:
        assert isinstance(term._stream, FastStream) and term._stream._fast
        term.run(f"cat {flood}; printf '\\033[1mbold\\033[0m end\\n'")
        with term._cond:
            got = state(term._screen)
        reference = Fed(80, 24, 2000, TerminalStream, type(term._screen))
        reference.feed(bytes(output.out))
        want = state(reference.screen)
    assert "bold end" in [_line(reference.screen, y) for y in range(24)]
    for key in ("rows", "cursor", "history", "scrolled"):
        assert got[key] == want[key], f"{key} differs"


def _line(screen: ScreenModel, y: int) -> str:
    return "".join(screen.buffer[y][x].data for x in range(screen.columns)).rstrip()
