"""Sessions on disk: recorded from real terminals, killed with SIGKILL, replayed, never leaking."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clive.session import (
    REDACTED,
    Recorder,
    SessionError,
    SessionReader,
    format_sessions,
    format_timeline,
    keyframes,
    list_sessions,
    new_session_id,
    resolve_session,
    secrets_from_env,
)
from clive.session import recorder as recorder_module
from clive.terminal import Terminal

ASCIINEMA = Path(sys.executable).with_name("asciinema")


def cycle_event(rec: Recorder, n: int, command: str, exit_code: int = 0, **extra) -> dict:
    return rec.event(
        "cycle",
        n,
        observation={"screen": "…"},
        action={"type": "run", "command": command},
        outcome={"exit_code": exit_code, "duration": 0.01, "output": ""},
        checkpoint=extra.pop("checkpoint", None),
        usage=None,
        reasoning="",
        **extra,
    )


def all_bytes(session: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(session.rglob("*")) if p.is_file())


# ---- recording a real terminal -----------------------------------------------------------


def test_asciinema_cat_reproduces_a_recorded_bash_session(tmp_path):
    rec = Recorder.create(tmp_path / "sessions", {"playbook": "demo.md"}, 80, 24, secrets=[])
    with Terminal(cols=80, rows=24, cwd=tmp_path, listeners=[rec]) as term:
        term.run("echo hello-from-clive")
        term.run("printf 'caf\\xc3\\xa9 \\xe6\\xbc\\xa2\\xe5\\xad\\x97\\n'")  # é and 漢字
        term.run("seq 1 40")
    rec.close("done")

    cast = rec.path / "terminal.cast"
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (80, 24)
    assert isinstance(header["timestamp"], int) and abs(header["timestamp"] - time.time()) < 60
    assert header["env"]["TERM"] == "xterm-256color"

    out = subprocess.run(
        [str(ASCIINEMA), "cat", str(cast)],
        capture_output=True, check=True, start_new_session=True,  # no /dev/tty to put in raw mode
    ).stdout.decode()  # fmt: skip
    assert "hello-from-clive" in out
    assert "café 漢字" in out  # multibyte characters survive being split across reads
    assert "\r\n40\r\n" in out
    assert "\ufffd" not in out

    meta = json.loads((rec.path / "meta.json").read_text())
    assert meta["status"] == "done" and meta["ended"] and meta["playbook"] == "demo.md"


def test_secrets_reach_no_file_of_the_session(tmp_path, monkeypatch):
    key = "sk-test-" + "4f9a1c7e2b" * 3
    password = "hunter2-correct-horse"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setattr(keyframes, "KEYFRAME_START", 0)  # keyframes from the first event,
    monkeypatch.setattr(keyframes, "KEYFRAME_SPACING", 0)  # after nearly every cast event
    monkeypatch.setattr(keyframes, "KEYFRAME_WAIT", 120)  # close() waits for them all
    monkeypatch.setattr(keyframes, "KEYFRAME_IDLE", False)
    rec = Recorder.create(tmp_path / "s", {"note": f"started with {key}"}, 80, 24)  # env scanned
    cycle_event(rec, 0, "start")  # the keyframe process starts here, and learns the rest later
    with Terminal(cols=80, rows=24, cwd=tmp_path, env={"ANTHROPIC_API_KEY": key}, listeners=[rec]) as t:
        t.run("echo $ANTHROPIC_API_KEY")
        # The key printed in two writes, so it reaches us in two reads.
        t.run('printf %s "${ANTHROPIC_API_KEY:0:11}"; sleep 0.2; echo "${ANTHROPIC_API_KEY:11}"')
        t.type("read -s -p 'Password: ' pw; echo\r")
        t.wait_text("Password:")
        deadline = time.monotonic() + 5
        while not t.echo_off_canonical() and time.monotonic() < deadline:
            time.sleep(0.01)
        t.type(password + "\r")
        t.wait_prompt()
        t.run('echo "you typed $pw"')  # the program prints the password later
        cycle_event(rec, 1, f"echo {password}", note=key)
    rec.close("done")

    assert len((rec.path / "keyframes.jsonl").read_bytes().splitlines()) > 10
    data = all_bytes(rec.path)
    assert key.encode() not in data
    assert password.encode() not in data
    assert key[:12].encode() not in data and password[:10].encode() not in data
    assert REDACTED.encode() in (rec.path / "terminal.cast").read_bytes()
    assert b"you typed [redacted]" in (rec.path / "terminal.cast").read_bytes()
    assert b"echo [redacted]" in (rec.path / "events.jsonl").read_bytes()


@settings(max_examples=150, deadline=None)
@given(
    before=st.text(alphabet="abcpw-\r\n xyz", max_size=30),
    after=st.text(alphabet="abcpw-\r\n xyz", max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_a_secret_split_anywhere_across_output_chunks_never_leaks(before, after, cuts):
    secret = "pw-abc-123456"  # a known value, not a shape redaction knows (that has a test of its own)
    text = f"{before}{secret}{after}{secret}{secret[:5]}!\n"
    assert _cast_of(text, cuts, [secret]) == text.replace(secret, REDACTED)


def _cast_of(text: str, cuts: list[int], secrets: list[str]) -> str:
    """The output a recording keeps of ``text`` read in pieces cut at ``cuts``."""
    data = text.encode()
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder.create(tmp, {}, 80, 24, secrets=secrets)
        bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
        for a, b in zip(bounds, bounds[1:], strict=False):
            rec.on_output(data[a:b])
        rec.close("done")
        cast = (rec.path / "terminal.cast").read_text().splitlines()[1:]
        return "".join(json.loads(line)[2] for line in cast)


_KEY_LINES = ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
              "QyNTUxOQAAACCnV6SAzM1y3kC4vu8w0P3CwCEC8lrT2yNrM/9+vhqgxQAAAJgAdl8RAHZf"]
_TOKEN = "ghp_" + "Zq81" * 9


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(alphabet="ab-\r\n $", max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    cut_short=st.booleans(),
)
def test_keys_and_tokens_recognised_by_shape_never_leak_however_output_is_cut(before, cuts, cut_short):
    end = "" if cut_short else "-----END OPENSSH PRIVATE KEY-----\r\n"
    text = (f"{before}-----BEGIN OPENSSH PRIVATE KEY-----\r\n" + "\r\n".join(_KEY_LINES) + "\r\n" + end
            + f"$ echo GITHUB={_TOKEN} done\r\n$ ")
    written = _cast_of(text, cuts, [])
    for secret in [*_KEY_LINES, _TOKEN]:
        assert secret not in written
        assert secret[:10] not in written  # not even in part
    assert written.count(REDACTED) == len(_KEY_LINES) + 1
    assert written.endswith(" done\r\n$ ") and "-----BEGIN OPENSSH PRIVATE KEY-----" in written


def test_an_observation_is_scrubbed_of_what_looks_like_a_secret():
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder.create(tmp, {}, 80, 24, secrets=[])
        screen = "$ cat ~/.aws/credentials\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n$ "
        scrubbed = rec.scrub(screen)
        assert "wJalrXUtnFEMI" not in scrubbed and "aws_secret_access_key = [redacted]" in scrubbed
        # Learned: the same value is redacted in the files from now on, wherever it shows.
        cycle_event(rec, 1, "echo wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        rec.close("done")
        assert b"wJalrXUtnFEMI" not in (rec.path / "events.jsonl").read_bytes()
    assert rec.scrub("plain text, sk-short, ghp_x and a-----b") == "plain text, sk-short, ghp_x and a-----b"


def test_secrets_from_env_picks_secret_looking_names():
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-123456",
        "GITHUB_TOKEN": "ghp_abcdef",
        "MY_SECRET": "s3cr3t-value",
        "DB_PASSWORD_FILE": "/run/pw-file",
        "aws_secret": "lowercase-ok",
        "SHORT_KEY": "abc",  # too short to redact safely
        "KEYBOARD": "not-a-secret",
        "PATH": "/usr/bin:/bin",
    }
    assert set(secrets_from_env(env)) == {
        "sk-ant-123456", "ghp_abcdef", "s3cr3t-value", "/run/pw-file", "lowercase-ok",
    }  # fmt: skip


# ---- screens rebuilt from the cast --------------------------------------------------------


COMMANDS = [
    "echo cycle {n}",
    "seq {n} {m}",
    r"printf '\033[1;31mred {n}\033[0m and \033[42mgreen\033[0m\n'",
    r"printf 'over\rwrite {n}\n'",
    r"printf '\033[?1049h\033[Hin the alternate screen {n}\n'",  # left three cycles later
    "echo still alternate {n}",
    "seq {n} {m}",
    r"printf 'leaving {n}\n\033[?1049l'",
    r"printf '\033[s\033[5;10Hplaced {n}\033[u\n'",
    "clear",
    r"printf 'wide 漢字 {n} %.0s' 1 2 3; echo",
]


def test_screen_at_any_cycle_is_the_screen_the_terminal_showed(tmp_path, monkeypatch):
    monkeypatch.setattr(keyframes, "KEYFRAME_EVENTS", 20)
    rec = Recorder.create(tmp_path / "s", {}, 60, 12, secrets=[])
    live = {}
    with Terminal(cols=60, rows=12, cwd=tmp_path, listeners=[rec]) as term:
        for n in range(1, 121):
            if n == 60:
                term.resize(72, 14)
                rec.resize(72, 14)
            command = COMMANDS[n % len(COMMANDS)].format(n=n, m=n + n % 17)
            result = term.run(command)
            live[n] = term.wait_idle(quiet_ms=20)
            cycle_event(rec, n, command, result.exit_code)
    rec.close("done")

    reader = SessionReader.open(rec.path)
    assert reader.problems == []
    for n in range(1, 121):
        assert reader.screen_at(n) == live[n], f"cycle {n}"
    assert reader.keyframes > 5
    coloured = reader.screen_at(3, with_style=True)  # cycle 3 printed red and green
    assert {run.fg for row in coloured.styles for run in row} >= {"red"}
    length = reader.cast_length

    rng = random.Random(4)
    seeks = [rng.randint(1, 120) for _ in range(100)]
    before = reader.fed_events
    for n in seeks:
        assert reader.screen_at(n) == live[n], f"cycle {n}"
    fed = reader.fed_events - before
    # Each seek starts from the nearest keyframe: never a replay from the start.
    assert fed <= 100 * keyframes.KEYFRAME_EVENTS < 100 * length

    fresh = SessionReader.open(rec.path)
    assert fresh.screen_at(120) == live[120]
    first_pass = fresh.fed_events
    fresh.screen_at(3)
    fresh.screen_at(119)
    assert fresh.fed_events - first_pass <= 2 * keyframes.KEYFRAME_EVENTS

    # Playing the cast, by event or by time.
    assert fresh.screen_at_event(fresh.cycles()[-1]["cast_index"]) == live[120]
    assert fresh.screen_at_time(1e9) == fresh.screen_at_event(fresh.cast_length)
    assert fresh.screen_at_event(0).lines == ("",) * 12


def test_screen_at_includes_output_that_redaction_held_back(tmp_path):
    rec = Recorder.create(tmp_path, {}, 40, 5, secrets=["sk-abcdef"])
    rec.on_output(b"ask")  # could be the start of "sk-abcdef": held back
    event = cycle_event(rec, 1, "x")
    rec.on_output(b"ed twice\r\n")
    cycle_event(rec, 2, "y")
    rec.on_output(b"sk-abc")
    cycle_event(rec, 3, "z")
    rec.on_output(b"def done\r\n")
    rec.close("done")
    assert event["cast_held"] == 2
    reader = SessionReader(rec.path)
    assert reader.screen_at(1).lines[0] == "ask"
    assert reader.screen_at(2).lines[0] == "asked twice"
    assert reader.screen_at(3).lines[1].startswith("[redac")  # the secret's start never shows
    assert reader.screen_at(2).lines[0] == "asked twice"


def test_replay_draws_what_the_live_terminal_drew_past_odd_sequences(tmp_path):
    rec = Recorder.create(tmp_path, {}, 40, 6, secrets=[])
    with Terminal(cols=40, rows=6, cwd=tmp_path, listeners=[rec]) as term:
        # A private CSI pyte has no use for, and a DCS string a terminal never draws.
        term.run(r"printf 'before \033[?5X after \033P+q544e\033\\end\n'; echo next line")
        live = term.wait_idle(quiet_ms=20)
        cycle_event(rec, 1, "printf")
    rec.close("done")
    assert live.contains("before  after end")
    reader = SessionReader(rec.path)
    assert reader.screen_at(1) == live
    assert not reader.problems


# ---- crashes and resume -------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys
    from clive.session import Recorder
    from clive.session.cast import encode_line

    rec = Recorder.create(sys.argv[1], {"playbook": "loop.md", "policy": "scripted"}, 80, 24,
                          secrets=[], fsync_interval=None)
    tear_at = int(sys.argv[2])
    n = 0
    while True:
        n += 1
        rec.on_output(f"$ make step-{n}\\r\\nbuilding {n}\\r\\n".encode() * 3)
        if n == tear_at:
            # Die in the middle of writing cycle n, as a kill during write() leaves it.
            line = encode_line({"type": "cycle", "t": 1.0, "cycle": n, "action": None})
            os.write(os.open(rec.path / "events.jsonl", os.O_WRONLY | os.O_APPEND), line[:25])
            os.write(os.open(rec.path / "terminal.cast", os.O_WRONLY | os.O_APPEND), b'[1.5, "o", "ha')
            print(rec.path, flush=True)
            sys.stdin.read()
        rec.event("cycle", n, action={"type": "run", "command": f"make step-{n}"},
                  outcome={"exit_code": n % 3, "duration": 0.5, "output": "x" * (n * 100)},
                  checkpoint=f"c{n:07x}", usage=None, reasoning="")
    """
)


def run_child(where: Path, tear_at: int) -> subprocess.Popen:
    """A separate process that records cycles in a loop (it tears a line at cycle ``tear_at``)."""
    where.mkdir(exist_ok=True)
    script = where / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(where / "sessions"), str(tear_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip


def test_sigkill_mid_session_loses_at_most_the_cycle_in_flight(tmp_path):
    # Killed at an arbitrary moment of a busy loop.
    proc = run_child(tmp_path, tear_at=10**9)
    found: list[Path] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = list((tmp_path / "sessions").glob("*/events.jsonl"))
        if found and found[0].stat().st_size > 200_000:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader = SessionReader.open(found[0].parent)
    numbers = [e["cycle"] for e in reader.cycles()]
    assert len(numbers) > 20 and numbers == list(range(1, len(numbers) + 1))
    ends_whole = found[0].read_bytes().endswith(b"\n")
    assert ends_whole or any("last line is incomplete" in p for p in reader.problems)

    # Killed with a line half written: every completed cycle is there, the torn one reported.
    proc = run_child(tmp_path / "torn", tear_at=25)
    path = Path(proc.stdout.readline().decode().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    reader = SessionReader.open(path)
    assert [e["cycle"] for e in reader.cycles()] == list(range(1, 25))
    assert any(p.startswith("events.jsonl: the last line is incomplete (25 bytes)") for p in reader.problems)
    assert any(p.startswith("terminal.cast: the last line is incomplete") for p in reader.problems)
    assert reader.meta["status"] == "running"
    assert reader.screen_at(24).lines[-2] == "building 24"

    timeline = format_timeline(reader)
    assert len(timeline) == 24
    assert "make step-1 " in timeline[0] and "exit 1" in timeline[0] and "c0000001" in timeline[0]
    assert "make step-24" in timeline[-1] and "exit 0" in timeline[-1]

    [summary] = list_sessions(path.parent)
    assert (summary.status, summary.cycles, summary.playbook) == ("unfinished", 24, "loop.md")

    # Resume: torn lines cut away and reported, times go on from the original start.
    last_t = reader.cycles()[-1]["t"]
    rec = Recorder.open_for_resume(path, secrets=[])
    assert rec.last_cycle == 24
    rec.on_output(b"$ make step-25\r\n")
    cycle_event(rec, 25, "make step-25")
    rec.close("done")
    resumed = SessionReader.open(path)
    assert resumed.problems == []
    assert [e["cycle"] for e in resumed.cycles()] == list(range(1, 26))
    [resume] = [e for e in resumed.events if e["type"] == "resume"]
    assert resume["truncated"] == {"events.jsonl": 25, "terminal.cast": len(b'[1.5, "o", "ha')}
    assert resume["previous_status"] == "running"
    assert resumed.cycles()[-1]["t"] >= last_t
    assert resumed.screen_at(25).lines[0] == "$ make step-25"  # a new terminal: a fresh screen
    assert resumed.meta["status"] == "done" and resumed.meta["cycles"] == 25
    assert len(resumed.meta["resumed"]) == 1


FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from clive.session import Recorder, SessionError
    from clive.terminal import Terminal

    rec = Recorder.create(sys.argv[1], {}, 80, 24, secrets=[])
    with Terminal(cols=80, rows=24, cwd=sys.argv[1], listeners=[rec]) as term:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        size = (rec.path / "terminal.cast").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2000, size + 2000))
        result = term.run("seq 1 3000")  # the cast fills up on the terminal's reader thread
        print("terminal still works:", result.exit_code, term.run("echo ok").output)
        try:
            rec.event("cycle", 1)
        except SessionError as exc:
            print("event:", exc)
    try:
        rec.close("failed")
    except SessionError as exc:
        print("close:", exc, rec.meta["status"])
    """
)


def test_a_full_disk_stops_the_recording_not_the_terminal(tmp_path):
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, timeout=30
    ).stdout.decode()
    assert "terminal still works: 0 ok" in out
    assert "event: cannot write" in out and "terminal.cast" in out
    assert "close: cannot write" in out and out.rstrip().endswith("failed")


# ---- listing, following ------------------------------------------------------------------


def test_sessions_are_listed_with_status_cycles_and_best_metric(tmp_path):
    root = tmp_path / "sessions"
    rec = Recorder.create(root, {"playbook": "matmul.md", "policy": "scripted",
                                 "direction": "maximize"}, 80, 24, secrets=[])  # fmt: skip
    for n, (metric, status) in enumerate([(7.7, "keep"), (9.1, "keep"), (12.0, "discard")], 1):
        cycle_event(rec, n, f"bench {n}")
        rec.event("experiment", n, n=n, commit=f"abc{n}", metric=metric, status=status,
                  description="try", duration=1.0)  # fmt: skip
    rec.event("end", 3, status="done", summary="three experiments")
    rec.close("done")
    crashed = Recorder.create(root, {"playbook": "x.md", "policy": "claude"}, 80, 24, secrets=[])
    cycle_event(crashed, 1, "make")
    crashed.update_meta(pid=2**22 + 12345)  # a process that is gone
    (root / "not-a-session").mkdir()

    summaries = list_sessions(root)
    assert [s.id for s in summaries] == sorted([rec.id, crashed.id])
    done = next(s for s in summaries if s.id == rec.id)
    assert (done.status, done.cycles, done.best_metric, done.policy) == ("done", 3, 9.1, "scripted")
    lost = next(s for s in summaries if s.id == crashed.id)
    assert (lost.status, lost.cycles, lost.best_metric) == ("unfinished", 1, None)
    lines = format_sessions(summaries)
    assert len(lines) == 2
    assert any(rec.id in line and "best 9.1" in line and "matmul.md" in line for line in lines)
    assert list_sessions(tmp_path / "nowhere") == []
    crashed.close("failed")


def test_a_reader_follows_a_live_writer(tmp_path):
    rec = Recorder.create(tmp_path, {}, 80, 24, secrets=[])
    cycle_event(rec, 1, "one")
    reader = SessionReader.open(rec.path)
    assert [e["cycle"] for e in reader.cycles()] == [1]
    with open(rec.path / "events.jsonl", "ab") as f:  # a line half written, as the writer may be
        f.write(b'{"type": "cycle", "t": 1, "cy')
    assert reader.refresh() == []
    with open(rec.path / "events.jsonl", "ab") as f:
        f.write(b'cle": 2}\n')
    assert [e["cycle"] for e in reader.refresh()] == [2]
    cycle_event(rec, 3, "three")
    rec.event("end", 3, status="done", summary="")
    assert [e["type"] for e in reader.follow(interval=0.01, timeout=1)] == ["cycle", "end"]
    assert reader.problems == []
    rec.close("done")


def test_session_ids_sort_by_time_and_are_unique():
    ids = [new_session_id() for _ in range(50)]
    assert len(set(ids)) > 45
    assert all(len(i) == 20 and i[8] == "-" and i[15] == "-" for i in ids)


# ---- bad input ---------------------------------------------------------------------------


def test_bad_sessions_give_one_clear_error_or_a_problem(tmp_path, monkeypatch):
    with pytest.raises(SessionError, match="no such session"):
        SessionReader.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionError, match="not a session"):
        SessionReader.open(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SessionError, match="not a session directory"):
        SessionReader.open(tmp_path / "file")
    with pytest.raises(SessionError, match="no such session"):
        resolve_session("nope", tmp_path)
    with pytest.raises(SessionError, match="cannot resume"):
        Recorder.open_for_resume(tmp_path / "empty")
    live = Recorder.create(tmp_path / "live", {}, 80, 24, secrets=[])
    live.update_meta(pid=os.getppid())  # as if another process, still alive, were recording it
    monkeypatch.setattr(recorder_module, "RESUME_WAIT", 0.2)  # it does not die: no use waiting long
    with pytest.raises(SessionError, match="still recording"):
        Recorder.open_for_resume(live.path)
    live.close("done")

    rec = Recorder.create(tmp_path / "s", {}, 80, 24, secrets=[])
    rec.on_output(b"hello\r\n")
    cycle_event(rec, 1, "one")
    rec.close("done")
    session = rec.path
    assert resolve_session(rec.id[:17], tmp_path / "s") == session
    with open(session / "events.jsonl", "ab") as f:
        f.write(b"garbage\n[1, 2]\n\xff\xfe\n" + b"[" * 100_000 + b"\n")
        f.write(json.dumps({"type": "cycle", "t": 2, "cycle": 2}).encode() + b"\n{\"ty")
    (session / "meta.json").unlink()
    reader = SessionReader.open(session)
    assert [e["cycle"] for e in reader.cycles()] == [1, 2]
    assert reader.id == session.name
    assert "meta.json is missing" in reader.problems
    assert "events.jsonl: 4 unreadable lines skipped (lines 2, 3, 4, 5)" in reader.problems
    assert reader.screen_at(1).lines[0] == "hello"
    with pytest.raises(SessionError, match="no cycle 7"):
        reader.screen_at(7)
    assert len(format_timeline(reader)) == 2

    (session / "terminal.cast").write_text('{"version": 1, "width": 80}\n[0.1, "o", "x"]\n')
    reader = SessionReader.open(session)
    assert any("not an asciicast v2 file" in p for p in reader.problems)
    with pytest.raises(SessionError, match="no usable terminal recording"):
        reader.screen_at(1)
    (session / "meta.json").write_text("{not json")
    assert "meta.json: not valid JSON" in SessionReader.open(session).problems


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
_EVENT_LINE = st.fixed_dictionaries(
    {"type": st.sampled_from(["cycle", "cycle", "experiment", "end", "start"])},
    optional={
        "cycle": st.integers(-2, 6) | _JSON,
        "cast_index": st.integers(-2, 40) | _JSON,
        "cast_held": st.integers(-2, 40) | _JSON,
        "t": st.floats() | _JSON,
        "action": st.fixed_dictionaries({"type": st.sampled_from(["run", "keys", "result", "x"])},
                                        optional={"command": _JSON, "metric": _JSON}) | _JSON,
        "outcome": st.fixed_dictionaries({}, optional={"exit_code": _JSON, "duration": _JSON}),
        "checkpoint": _JSON,
        "status": _JSON,
        "metric": _JSON,
    },
)  # fmt: skip
_CAST_LINE = st.tuples(
    st.floats(min_value=-1, max_value=50) | _JSON,
    st.sampled_from(["o", "o", "r", "i", "m"]),
    st.text(max_size=30) | st.sampled_from(["80x24", "0x0", "3x2", "1000x1", "x", "\x1b[?1049h"]),
)
_FRAGMENTS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"{", b"}", b"[", b"]", b'"', b",", b"\n", b"\xff", b"null", b"1e999", b"-1"]),
    st.builds(lambda v: json.dumps(v).encode() + b"\n", _JSON | _EVENT_LINE | _CAST_LINE),
    st.builds(lambda v: json.dumps(v).encode() + b"\n", _EVENT_LINE | _CAST_LINE),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(_FRAGMENTS, max_size=10).map(b"".join),
    cast=st.lists(_FRAGMENTS, max_size=10).map(b"".join),
    header=st.sampled_from([b"", b'{"version": 2, "width": 20, "height": 5}\n', b'{"version": 2}\n']),
    meta=st.binary(max_size=30),
)
def test_any_bytes_on_disk_give_a_reader_or_a_session_error(events, cast, header, meta):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s"
        path.mkdir()
        (path / "events.jsonl").write_bytes(events)
        (path / "terminal.cast").write_bytes(header + cast)
        (path / "meta.json").write_bytes(meta)
        try:
            reader = SessionReader.open(path)
            assert all(isinstance(p, str) for p in reader.problems)
            format_timeline(reader)
            reader.results()
            for event in reader.cycles()[:5]:
                try:
                    reader.screen_at(event.get("cycle"))
                except SessionError:
                    pass
            if reader.cast_length:
                reader.screen_at_time(0.5)
                reader.screen_at_event(reader.cast_length)
            format_sessions(list_sessions(Path(tmp)))
        except SessionError:
            pass


def test_the_shell_nonce_never_reaches_the_recording(tmp_path):
    recorder = Recorder.create(tmp_path / "sessions", {"playbook": "nonce"}, 80, 24, secrets=[])
    with Terminal(cwd=tmp_path, listeners=[recorder]) as term:
        nonce = term._launch.nonce
        assert term.run("echo hi").output == "hi"
    recorder.close("done")
    for path in recorder.path.iterdir():
        assert nonce.encode() not in path.read_bytes(), path.name
