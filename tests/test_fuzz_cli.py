"""Fuzzing the command line with bad playbooks and bad sessions: one line, exit 2, never a traceback."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clive.cli import main
from clive.experiments.playbook import PlaybookError, load_playbook

FIELDS = ["name", "workdir", "setup", "eval", "metric", "direction", "check", "budget", "repeats",
          "noise", "editable", "readonly", "stop", "search", "steps", "requires", "model", "colour"]
VALUES = st.one_of(
    st.integers(-5, 5).map(str), st.sampled_from(["", "[]", "{}", "'(x'", "'a (\\d+)'", "maximize", "[1, a]",
                                                  "{target: x}", "[{type: nope}]", "null", "- a", "'''"]),
    st.text(alphabet=string.printable, max_size=12),
)


@st.composite
def front_matter(draw) -> str:
    lines = [f"{draw(st.sampled_from(FIELDS))}: {draw(VALUES)}" for _ in range(draw(st.integers(0, 5)))]
    return "---\n" + "\n".join(lines) + "\n---\nbody\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(front_matter(), st.text(max_size=200)))
def test_a_bad_playbook_is_one_line_and_exit_2(tmp_path_factory, capsys, text):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "p.md"
    path.write_text(text)
    try:
        load_playbook(path)
    except PlaybookError:
        pass
    else:
        assume(False)  # a valid playbook would run its commands: not for a fuzzer
    code = main(["run", str(path), "--sessions", str(folder / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("clive: ")
    assert not (folder / "s").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.binary(max_size=300), meta=st.binary(max_size=100), cast=st.binary(max_size=200))
def test_replay_of_a_garbage_session_never_tracebacks(tmp_path_factory, capsys, events, meta, cast):
    session = tmp_path_factory.mktemp("sessions") / "20260101-000000-abcd"
    session.mkdir()
    (session / "events.jsonl").write_bytes(events)
    (session / "meta.json").write_bytes(meta)
    (session / "terminal.cast").write_bytes(cast)
    code = main(["replay", str(session), "--print"])
    captured = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in captured.err
    if code == 2:
        assert captured.err.count("\n") == 1
