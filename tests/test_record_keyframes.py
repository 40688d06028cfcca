"""Keyframes the recorder writes (keyframes.jsonl): a seek starts from one, and lands on exactly
the screen a replay of the whole cast gives; a bad one is refused, never trusted."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clive.session import REDACTED, Recorder, SessionReader, keyframes
from clive.terminal import Terminal


@pytest.fixture
def dense(monkeypatch):
    """Keyframes from the first event, one after every event where the parser is at rest (and
    close() waits for all of them, however busy the machine)."""
    monkeypatch.setattr(keyframes, "KEYFRAME_START", 0)
    monkeypatch.setattr(keyframes, "KEYFRAME_SPACING", 0)
    monkeypatch.setattr(keyframes, "KEYFRAME_WAIT", 120)
    monkeypatch.setattr(keyframes, "KEYFRAME_IDLE", False)  # a machine busy with other tests: not idle


def cycle(rec: Recorder, n: int, command: str = "") -> None:
    rec.event("cycle", n, action={"type": "run", "command": command}, outcome={"exit_code": 0})


def keyframe_lines(session: Path) -> list[bytes]:
    return (session / "keyframes.jsonl").read_bytes().splitlines()


# Everything of a replayed screen that later output can depend on, read straight from the screen
# (not through the keyframe encoder under test).
SCREEN_FIELDS = {
    "_buffer", "_pending", "_reply", "_saved_main", "alternate", "charset", "clears", "columns",
    "cursor", "dirty", "g0_charset", "g1_charset", "icon_name", "join_at", "lines", "margins",
    "mode", "saved_columns", "savepoints", "scrolled", "tabstops", "title",
}  # fmt: skip
HISTORY_FIELDS = {"history", "_history", "_pushed", "_pushed_rows"}  # scrollback, however it is kept


def _cursor(c: Any) -> tuple:
    return (c.x, c.y, c.hidden, c.attrs)


def _rows(buffer: dict) -> dict:
    return {y: (row.default, dict(row)) for y, row in buffer.items()}


def screen_state(screen: Any) -> dict:
    # dirty, _pending and _reply do not change what later output draws.
    assert set(vars(screen)) - HISTORY_FIELDS == SCREEN_FIELDS, "the screen grew state the keyframes do not know"
    saved = screen._saved_main
    return {
        "rows": _rows(screen.buffer),
        "cursor": _cursor(screen.cursor),
        "savepoints": [(_cursor(sp.cursor), *sp[1:]) for sp in screen.savepoints],
        "saved_main": None if saved is None else (_rows(saved[0]), saved[1] and _cursor(saved[1])),
        "history": (list(screen.history), screen.history.maxlen),
        **{k: copy.copy(getattr(screen, k)) for k in (
            "alternate", "charset", "clears", "columns", "g0_charset", "g1_charset", "icon_name",
            "join_at", "lines", "margins", "mode", "saved_columns", "scrolled", "tabstops", "title")},
    }  # fmt: skip


def assert_same_as_replay(session: Path) -> SessionReader:
    """Every cast position and cycle, seeking with the recorded keyframes, gives the screen that
    replaying the cast from the start gives; returns the reader that used the keyframes."""
    keyed = SessionReader.open(session)
    replay = SessionReader.open(session, recorded_keyframes=False)
    assert keyed.keyframes > 1 and keyed.problems == []
    for index in range(keyed.cast_length, -1, -1):  # backwards: every seek starts afresh
        a = keyed._seek(index)
        assert screen_state(a) == screen_state(replay._seek(index)), f"cast event {index}"
    for event in keyed.cycles():
        n = event["cycle"]
        a, b = keyed.screen_at(n, with_style=True), replay.screen_at(n, with_style=True)
        assert (a, a.styles) == (b, b.styles), f"cycle {n}"
    assert keyed.problems == []
    assert keyed.fed_events < replay.fed_events / 4  # the seeks did start from recorded keyframes
    return keyed


# Output that reaches every part of the screen's state: colours, the alternate screen with and
# without saved cursor, DECSC/DECRC, scroll margins, tab stops, title, hidden cursor, reverse video,
# insert mode, wide and combining characters, a joiner waiting, character sets, control strings, a
# clear, a reset.
COMMANDS = [
    r"printf '\033[1;31mred {n}\033[0m \033[4;42mgreen\033[0m \033[38;5;208m256\033[0m\n'",
    "seq {n} {m}",
    r"printf '\033]2;title {n}\007\033[?25lhidden cursor\n'",
    r"printf '\0337\033[3;20Hsaved {n}\0338 and restored\n'",
    r"printf '\033[?1049h\033[Halternate {n}\033[5;5H\033[7mreverse\033[0m'",
    r"printf '\033[2;4r\033[4;1Hin margins\n1\n2\n3\n\033[r'",  # still alternate
    r"printf '\033[?1049l\033[?25hleft the alternate screen {n}\n'",
    r"printf 'wide 漢字 {n} e\xcc\x81 combining\n'",
    r"printf 'a joiner left waiting {n} \xf0\x9f\x91\xa8\xe2\x80\x8d'; sleep 0.1",  # the prompt's 1st joins
    r"printf '\033)0\016lqqk\017 G1 {n} \033(0lqk'",  # G0 left on DEC graphics: the prompt draws in it
    r"printf '\033(B\xf0\x9f\x87\xab\xf0\x9f\x87\xb7 flag {n}\n'",
    r"printf '\033[3g\033[1;5H\033H\033[1;30H\033H\r\tA\tB {n}\n'",
    r"printf '\033[4hinsert\033[4l \033P+q544e\033\\after a DCS {n}\n'",
    r"printf '\033[?5hreverse video {n}\033[?5l\n'",
    r"printf '\033[?1047h\033[2;2Hsmall alternate {n}\033[?1047l'",
    "clear",
    r"printf '\033c reset {n}\n'",
]


def test_seeking_with_recorded_keyframes_gives_exactly_the_replayed_screen(tmp_path, dense):
    rec = Recorder.create(tmp_path / "s", {}, 50, 10, secrets=[])
    live = {}
    with Terminal(cols=50, rows=10, cwd=tmp_path, listeners=[rec]) as term:
        for n in range(1, 2 * len(COMMANDS) + 1):
            if n == len(COMMANDS):
                term.resize(60, 12)
                rec.resize(60, 12)
            command = COMMANDS[n % len(COMMANDS)].format(n=n, m=n + 7)
            term.run(command)
            live[n] = term.wait_idle(quiet_ms=20)
            cycle(rec, n, command)
        while_live = SessionReader.open(rec.path)  # a viewer that follows the session
    rec.close("done")

    assert len(keyframe_lines(rec.path)) > 50
    reader = assert_same_as_replay(rec.path)
    for n, screen in live.items():
        assert reader.screen_at(n) == screen, f"cycle {n}"

    while_live.refresh()
    before = while_live.fed_events
    assert while_live.screen_at(len(live)) == live[len(live)]
    assert while_live.fed_events - before < 20  # from a recorded keyframe, not from the start


def test_each_seek_starts_from_the_recorded_keyframe_before_it(tmp_path, monkeypatch):
    monkeypatch.setattr(keyframes, "KEYFRAME_START", 0)
    monkeypatch.setattr(keyframes, "KEYFRAME_WAIT", 120)
    monkeypatch.setattr(keyframes, "KEYFRAME_IDLE", False)  # a machine busy with other tests: not idle
    rec = Recorder.create(tmp_path, {}, 80, 24, secrets=[])
    for n in range(1, 3001):
        rec.on_output(f"$ step {n}\r\n\x1b[32m{'=' * (n % 70)}\x1b[0m\r\n".encode())
        cycle(rec, n)
    rec.close("done")
    indices = [json.loads(line)["index"] for line in keyframe_lines(rec.path)]
    assert indices == sorted(indices) and len(indices) >= 2

    reader = SessionReader.open(rec.path)
    replay = SessionReader.open(rec.path, recorded_keyframes=False)
    for n in (3000, 17, 2999, 1500, 1, 2222):
        before = reader.fed_events
        assert reader.screen_at(n) == replay.screen_at(n)
        index = reader.cycles()[n - 1]["cast_index"]
        start = max([0] + [i for i in indices if i <= index])
        assert reader.fed_events - before <= index - start


def test_a_session_without_keyframes_replays_as_before(tmp_path, monkeypatch):
    monkeypatch.setattr(keyframes, "KEYFRAME_START", 10**12)  # as recorded before keyframes existed
    rec = Recorder.create(tmp_path, {}, 40, 6, secrets=[])
    for n in range(1, 301):
        rec.on_output(f"line {n}\r\n".encode())
        cycle(rec, n)
    rec.close("done")
    assert not (rec.path / "keyframes.jsonl").exists()
    reader = SessionReader.open(rec.path)
    assert reader.screen_at(300).lines[-2] == "line 300"
    assert reader.screen_at(7).lines[-2] == "line 7"
    assert reader.problems == []
    assert reader.keyframes > 1  # kept by the reader as it replayed

    shipped = Path(__file__).parent / "data" / "tui-session"  # recorded before keyframes existed
    assert not (shipped / "keyframes.jsonl").exists()
    old, replay = SessionReader.open(shipped), SessionReader.open(shipped, recorded_keyframes=False)
    for event in reversed(old.cycles()):
        n = event["cycle"]
        assert old.screen_at(n, with_style=True) == replay.screen_at(n, with_style=True)
    assert old.problems == replay.problems


# ---- damaged and hostile keyframes ---------------------------------------------------------


@pytest.fixture
def session(tmp_path, dense) -> Path:
    """A small recorded session with a keyframe after nearly every event."""
    rec = Recorder.create(tmp_path / "s", {}, 30, 6, secrets=[])
    for n in range(1, 41):
        rec.on_output(f"\x1b]2;t{n}\x07\x1b[1;3{n % 8}mrow {n}\x1b[0m \u6f22\r\n".encode())
        if n % 10 == 5:
            rec.on_output(b"\x1b[?1049h\x1b[2;2Halt\x1b7")
        if n % 10 == 8:
            rec.on_output(b"\x1b[?1049l")
        cycle(rec, n)
    rec.close("done")
    assert len(keyframe_lines(rec.path)) > 30
    return rec.path


def test_torn_and_garbage_keyframe_lines_are_skipped(session):
    lines = keyframe_lines(session)
    middle = len(lines) // 2
    lines[middle] = lines[middle][: len(lines[middle]) // 2]  # complete line, cut short
    lines.insert(3, b"garbage")
    lines.insert(5, b'{"index": 12, "v": 1}')  # the right start, nothing else
    data = b"\n".join(lines) + b"\n" + lines[-1][:40]  # and a torn last line, as a kill leaves it
    (session / "keyframes.jsonl").write_bytes(data)
    assert_problem = "keyframes.jsonl: 3 unusable lines skipped (replayed instead)"

    reader = assert_same_as_replay_allowing_problems(session)
    assert reader.problems == [assert_problem]


def assert_same_as_replay_allowing_problems(session: Path) -> SessionReader:
    keyed = SessionReader.open(session)
    replay = SessionReader.open(session, recorded_keyframes=False)
    for index in range(keyed.cast_length, -1, -1):
        assert screen_state(keyed._seek(index)) == screen_state(replay._seek(index)), index
    return keyed


def _valid(session: Path) -> dict:
    """A keyframe from the middle of the session, on the alternate screen, with a savepoint."""
    for line in keyframe_lines(session):
        obj = json.loads(line)
        if obj["alternate"] and obj["savepoints"] and obj["index"] > 20:
            return obj
    raise AssertionError("no keyframe on the alternate screen")


HOSTILE = {
    "unknown key": lambda k: k.update(__reduce__="os.system"),
    "missing key": lambda k: k.pop("title"),
    "newer form": lambda k: k.update(v=2),
    "size as text": lambda k: k.update(size=["30", 6]),
    "huge size": lambda k: k.update(size=[10**30, 6]),
    "zero rows": lambda k: k.update(size=[30, 0]),
    "float cursor": lambda k: k["cursor"].__setitem__(0, 1.0),
    "bool as int": lambda k: k["cursor"].__setitem__(1, True),
    "cursor far away": lambda k: k["cursor"].__setitem__(0, 2**70),
    "negative row": lambda k: k["rows"][0].__setitem__(0, -1),
    "row far away": lambda k: k["rows"][0].__setitem__(0, 10**9),
    "run past the edge": lambda k: k["rows"][0][2].append([999, 0, "xyz"]),
    "style out of range": lambda k: k["rows"][0][1].__setitem__(1, 10**6),
    "flag not a bool": lambda k: k["styles"][0].__setitem__(2, "yes"),
    "style too short": lambda k: k["styles"].append(["red"]),
    "cell not text": lambda k: k["rows"][0][2].append([29, 0, [None]]),
    "unknown charset": lambda k: k.update(g0="../../etc/passwd"),
    "huge mode": lambda k: k["mode"].append(10**100),
    "margins upside down": lambda k: k.update(margins=[4, 1]),
    "title not text": lambda k: k.update(title={"$ne": 1}),
    "NaN counter": lambda k: k.update(scrolled=float("nan")),
    "deep nesting": lambda k: k.update(rows="DEEP"),  # made 50,000 lists deep below
    "saved screen, not alternate": lambda k: k.update(alternate=False),
    "index said twice": lambda k: None,  # below: the line starts with one index, JSON keeps the other
}


@pytest.mark.parametrize("damage", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_keyframe_is_refused_and_the_screen_replayed(session, damage):
    good = _valid(session)
    bad = copy.deepcopy(good)
    HOSTILE[damage](bad)
    line = json.dumps(bad, ensure_ascii=False)
    if damage == "index said twice":
        line = line[:-1] + f', "index": {good["index"] - 1}}}'
    line = line.replace('"DEEP"', "[" * 50_000 + "]" * 50_000)
    (session / "keyframes.jsonl").write_text(line + "\n")

    keyed = SessionReader.open(session)
    replay = SessionReader.open(session, recorded_keyframes=False)
    index = good["index"]
    before = keyed.fed_events
    assert screen_state(keyed._seek(index)) == screen_state(replay._seek(index))
    assert keyed.fed_events - before == index  # replayed from the start: the keyframe was refused
    assert keyed.problems == ["keyframes.jsonl: 1 unusable line skipped (replayed instead)"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*path, i))
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyframes, "KEYFRAME_START", 0)
        mp.setattr(keyframes, "KEYFRAME_SPACING", 0)
        mp.setattr(keyframes, "KEYFRAME_WAIT", 120)
        mp.setattr(keyframes, "KEYFRAME_IDLE", False)
        rec = Recorder.create(tmp_path_factory.mktemp("kf"), {}, 20, 5, secrets=[])
        for n in range(1, 13):
            rec.on_output(f"\x1b[3{n % 8}mx{n}\x1b[0m\u6f22\r\n".encode())
            if n == 6:
                rec.on_output(b"\x1b[?1049h\x1b7\x1b[2;3r\x1b]0;t\x07")
            cycle(rec, n)
        rec.close("done")
    return rec.path, _valid_anywhere(rec.path)


def _valid_anywhere(session: Path) -> dict:
    return max((json.loads(line) for line in keyframe_lines(session)), key=lambda k: len(json.dumps(k)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_to_a_keyframe_leaves_a_working_reader(sample, data):
    session, good = sample
    bad = copy.deepcopy(good)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(bad)[1:]))
        *parent, last = path
        holder = bad
        for step in parent:
            holder = holder[step]
        holder[last] = data.draw(_JSON | st.integers(-3, 1100) | st.sampled_from([True, 0, "", [], {}]))
    with tempfile.TemporaryDirectory() as tmp:
        copy_ = Path(tmp) / "s"
        copy_.mkdir()
        for name in ("meta.json", "events.jsonl", "terminal.cast"):
            (copy_ / name).write_bytes((session / name).read_bytes())
        (copy_ / "keyframes.jsonl").write_text(json.dumps(bad) + "\n")
        reader = SessionReader.open(copy_)
        for event in reader.cycles():  # through the keyframe and beyond it: never a traceback
            snap = reader.screen_at(event["cycle"], with_style=True)
            assert len(snap.lines) == snap.rows
        reader.screen_at_event(reader.cast_length)
        assert all(isinstance(p, str) for p in reader.problems)


# ---- secrets, crashes, resume --------------------------------------------------------------


def test_a_secret_put_together_on_the_screen_reaches_no_keyframe(tmp_path, dense):
    secret = "sk-abc-123456"
    rec = Recorder.create(tmp_path, {}, 40, 5, secrets=[secret])
    rec.on_output(b"before\r\n")
    cycle(rec, 1)
    # Never whole in the output, so the cast holds it in two harmless pieces; on the screen the
    # second half is written first, then the first half in front of it.
    rec.on_output(b"XXXXXX-123456\r")
    rec.on_output(b"sk-abc\r\n")
    cycle(rec, 2)
    rec.on_output(f"printed {secret} whole\r\n".encode())
    cycle(rec, 3)
    rec.close("done")
    for path in rec.path.iterdir():
        assert secret.encode() not in path.read_bytes(), path.name
    reader = SessionReader.open(rec.path)
    assert reader.screen_at(2).lines[1] == secret  # replay still shows what the cast draws
    assert reader.screen_at(3).lines[2] == f"printed {REDACTED} whole"
    assert keyframe_lines(rec.path)


CHILD = textwrap.dedent(
    """
    import sys
    from clive.session import keyframes
    from clive.session import Recorder

    keyframes.KEYFRAME_START = 0
    keyframes.KEYFRAME_LAG = 0  # this loop never waits: keyframes as it goes, not once it waits
    keyframes.KEYFRAME_IDLE = False
    rec = Recorder.create(sys.argv[1], {}, 80, 24, secrets=[], fsync_interval=None)
    print(rec.path, flush=True)
    n = 0
    while True:
        n += 1
        rec.on_output(f"\\x1b[1m$ make step-{n}\\x1b[0m\\r\\nbuilding {n}\\r\\n".encode() * 3)
        rec.event("cycle", n, action={"type": "run", "command": f"make step-{n}"})
    """
)


def test_killed_recorder_keyframes_finish_and_resume_goes_on_from_them(tmp_path, dense):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "sessions")], stdout=subprocess.PIPE)
    path = Path(proc.stdout.readline().decode().strip())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kf = path / "keyframes.jsonl"
        if kf.exists() and kf.stat().st_size > 50_000:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with open(path / "keyframes.jsonl", "ab") as f:
        # The keyframe process holds this lock until it has caught up with the cast, on its own,
        # and ended.
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(b'{"index": 99999999, "v": 1, "si')  # as a kill in the middle of a write leaves it

    rec = Recorder.open_for_resume(path, secrets=[])
    cycles = rec.last_cycle
    for n in range(cycles + 1, cycles + 301):
        rec.on_output(f"resumed {n}\r\n".encode())
        cycle(rec, n)
    rec.close("done")

    lines = keyframe_lines(path)
    assert all(line.endswith(b"}") for line in lines)  # the torn line was cut off first
    resume_index = next(e for e in SessionReader.open(path).events if e["type"] == "resume")["cast_index"]
    assert any(json.loads(line)["index"] > resume_index for line in lines)
    reader = SessionReader.open(path)
    replay = SessionReader.open(path, recorded_keyframes=False)
    assert reader.problems == []
    for event in reader.cycles()[-1:-400:-7]:
        assert reader.screen_at(event["cycle"]) == replay.screen_at(event["cycle"])
    assert reader.screen_at(cycles + 300).lines[-2] == f"resumed {cycles + 300}"
