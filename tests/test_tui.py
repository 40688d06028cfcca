"""The Textual viewer: replay stepping, following a live session, the co-pilot's approve / edit /
reject / take-over, and snapshots of the replay screen on the recording in tests/data/."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from pilot import wait_until
from textual.app import App

from clive.agent import Agent
from clive.agent.actions import Run
from clive.agent.executor import Executor
from clive.agent.policies.human import HumanPolicy
from clive.experiments.scripted import ScriptedPolicy
from clive.session import Recorder, SessionReader
from clive.terminal import Terminal
from clive.terminal.screen import Snapshot, StyleRun
from clive.tui.live import LiveApp
from clive.tui.proposal import ActionEditor
from clive.tui.replay import ReplayApp
from clive.tui.terminal_view import TerminalView, row_strip

DATA = Path(__file__).parent / "data" / "tui-session"
SIZE = (100, 30)

pytestmark = pytest.mark.anyio


# ---- the terminal widget ------------------------------------------------------------------


def test_row_strip_keeps_wide_characters_in_their_cells_and_styles_by_column():
    runs = (StyleRun(8, 10, fg="red", bold=True),)
    strip = row_strip("wide: 日本 x", runs, 20, cursor_x=None)
    assert strip.cell_length == 20
    styled = [seg for seg in strip if seg.style and seg.style.bold]
    # Columns 8-9 hold the second wide character (日 at 6-7, 本 at 8-9).
    assert [seg.text for seg in styled] == ["本"]
    assert styled[0].style.color.name == "color(1)"


def test_row_strip_draws_the_cursor_and_hex_colours():
    strip = row_strip("ab", (StyleRun(0, 1, fg="ff8700"),), 4, cursor_x=2)
    segs = list(strip)
    assert segs[0].style.color.triplet.hex == "#ff8700"
    assert any(seg.style and seg.style.reverse and seg.text.startswith(" ") for seg in segs)


async def test_terminal_view_draws_only_rows_it_has_not_drawn_before():
    class One(App[None]):
        def compose(self):
            yield TerminalView()

    def snap(lines: list[str], cursor: tuple[int, int]) -> Snapshot:
        return Snapshot(lines=tuple(lines), cursor=cursor, columns=20, rows=5, cursor_visible=True)

    app = One()
    async with app.run_test(size=(30, 8)) as pilot:
        view = app.query_one(TerminalView)
        view.show(snap(["$ make", "ok", "$", "", ""], (2, 2)))
        await pilot.pause()
        before = view.drawn_rows
        view.show(snap(["$ make", "ok", "$ ls", "", ""], (4, 2)))  # one row typed into
        await pilot.pause()
        assert view.drawn_rows - before == 1
        # Output that scrolls up is not drawn again: only the new bottom line is.
        view.show(snap(["one", "two", "three", "four", ""], (0, 4)))
        await pilot.pause()
        before = view.drawn_rows
        view.show(snap(["two", "three", "four", "five", ""], (0, 4)))
        await pilot.pause()
        assert view.drawn_rows - before == 1


async def test_terminal_view_follows_the_cursor_out_of_sight_but_not_a_person_who_scrolled():
    class Small(App[None]):
        def compose(self):
            yield TerminalView()

    def snap(cursor: tuple[int, int]) -> Snapshot:
        lines = tuple(f"line {n}" for n in range(12))
        return Snapshot(lines=lines, cursor=cursor, columns=20, rows=12, cursor_visible=True)

    app = Small()
    async with app.run_test(size=(21, 5)) as pilot:  # 5 rows of a 12-row screen, a scrollbar
        view = app.query_one(TerminalView)
        view.show(snap((0, 11)))
        await pilot.pause()
        assert view.scroll_offset.y + view.size.height - 1 == 11  # the cursor's row is the last shown
        view.scroll_to(y=0, animate=False, immediate=True)
        view.show(snap((0, 11)))  # the same cursor: the view stays where the person put it
        await pilot.pause()
        assert view.scroll_offset.y == 0
        view.show(snap((3, 9)))  # the cursor moved: the view follows it
        await pilot.pause()
        assert view.scroll_offset.y <= 9 < view.scroll_offset.y + view.size.height


# ---- replay -------------------------------------------------------------------------------


async def test_replay_stepping_shows_the_screen_of_each_cycle():
    reader = SessionReader.open(DATA)
    expected = SessionReader.open(DATA)
    app = ReplayApp(reader, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        cycles = [e["cycle"] for e in expected.cycles()]
        assert app.terminal_view.snapshot.lines == expected.screen_at(cycles[0]).lines
        for cycle in cycles[1:]:
            await pilot.press("j")
            assert app.cycle_events[app.index]["cycle"] == cycle
            assert app.terminal_view.snapshot.lines == expected.screen_at(cycle).lines
        await pilot.press("k", "k")
        assert app.terminal_view.snapshot.lines == expected.screen_at(cycles[-3]).lines


async def test_replay_jumps_to_a_cycle_number_and_to_the_ends():
    app = ReplayApp(SessionReader.open(DATA), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", "4", "enter")
        assert app.cycle_events[app.index]["cycle"] == 4
        # The prompt takes digits and backspace; Escape leaves without moving.
        await pilot.press("colon", "2", "9", "backspace", "escape")
        assert app.cycle_events[app.index]["cycle"] == 4
        await pilot.press("colon", "2", "9", "backspace", "enter")
        assert app.cycle_events[app.index]["cycle"] == 2
        await pilot.press("G")
        assert app.index == len(app.cycle_events) - 1
        await pilot.press("g")
        assert app.index == 0
        # The replayed screen keeps its colours: cycle 1 printed red bold text.
        await pilot.press("j")
        styles = app.terminal_view.snapshot.styles
        assert styles is not None and any(r.fg == "red" and r.bold for row in styles for r in row)


async def test_zoom_shows_an_80x24_recording_whole_in_an_80x24_terminal():
    app = ReplayApp(SessionReader.open(DATA), follow=False)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.terminal_view
        assert view.size.width < 80 and view.max_scroll_x > 0  # beside the panes, it scrolls
        await pilot.press("z")
        assert app.zoomed and not app.query_one("#side").display and not app.query_one("#results").display
        assert view.size == (80, 24) and (view.max_scroll_x, view.max_scroll_y) == (0, 0)
        assert app.focused is view
        await pilot.press("j")  # stepping goes on while zoomed
        assert app.cycle_events[app.index]["cycle"] == 2
        await pilot.press("z")
        assert not app.zoomed and app.query_one("#side").display
        assert app.focused is app.timeline  # the pane that had the focus has it again
        await pilot.press("z", "colon")  # the prompt is in the title bar: it shows the panes again
        assert not app.zoomed and app.query_one("#title-bar").display


async def test_replay_shows_results_and_plays_the_cast():
    app = ReplayApp(SessionReader.open(DATA), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one("#results-table")
        assert table.row_count == 3
        await pilot.press("plus", "plus")
        assert app.speed == 16
        await pilot.press("space")
        await wait_until(pilot, lambda: not app.playing, timeout=10)
        # The cast played to its end: the last command is on the screen.
        assert app.terminal_view.snapshot.contains("typed-by-keys")


async def test_replay_follows_a_session_still_being_written(tmp_path):
    rec = Recorder.create(tmp_path, {"playbook": "x.md"}, 40, 10, secrets=[])
    rec.on_output(b"first screen\r\n")
    rec.event("cycle", 1, action={"type": "run", "command": "one"}, outcome={"exit_code": 0})
    app = ReplayApp(SessionReader.open(rec.path), follow=True)
    async with app.run_test(size=SIZE) as pilot:
        assert len(app.cycle_events) == 1
        await pilot.press("G")
        rec.on_output(b"second-screen-text\r\n")
        rec.event("cycle", 2, action={"type": "run", "command": "two"}, outcome={"exit_code": 3})
        await wait_until(pilot, lambda: len(app.cycle_events) == 2, timeout=5)
        # At the newest cycle, the viewer moves along with the session.
        assert app.cycle_events[app.index]["cycle"] == 2
        assert app.terminal_view.snapshot.contains("second-screen-text")
    rec.close("done")


async def test_a_corrupt_session_shows_what_could_be_read_and_the_problems(tmp_path):
    session = tmp_path / "broken"
    shutil.copytree(DATA, session)
    with (session / "events.jsonl").open("a") as f:
        f.write("this is not json\n")
        f.write('{"type": "cycle", "cycle": 99, "t": 1')  # torn last line
    cast = (session / "terminal.cast").read_bytes()
    (session / "terminal.cast").write_bytes(cast[: len(cast) - 7])
    (session / "meta.json").write_text("{not json")
    app = ReplayApp(SessionReader.open(session), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("G", "k", "g")
        notice = str(app.query_one("#problems").render())
        assert "events.jsonl" in notice and "meta.json" in notice
        assert len(app.cycle_events) == 6


# ---- live co-pilot ------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path):
    """A real shell, recorder and agent; ``make(steps)`` gives a LiveApp driving them."""
    terminal = Terminal(cwd=tmp_path, cols=80, rows=24)
    recorder = Recorder.create(tmp_path / "sessions", {"policy": "scripted"}, 80, 24, secrets=[])
    terminal.listeners.append(recorder)

    def make(steps) -> tuple[LiveApp, Terminal]:
        agent = Agent(terminal, Executor(terminal, tmp_path), recorder)
        policy = ScriptedPolicy(steps, screen=terminal.snapshot)

        def drive() -> int:
            return 0 if agent.run(policy).status == "done" else 1

        return LiveApp(terminal, agent, drive, recorder.path), terminal

    yield make
    terminal.close()
    recorder.close("done")


async def _decide(pilot, app: LiveApp, *keys: str) -> None:
    await wait_until(pilot, lambda: app.proposal is not None)
    await pilot.press(*keys)


async def test_approve_sends_the_action_to_the_terminal(live):
    app, terminal = live([Run("echo approved-xyz")])
    async with app.run_test(size=SIZE) as pilot:
        await _decide(pilot, app, "a")  # echo
        await _decide(pilot, app, "a")  # done
        await wait_until(pilot, app.finished.is_set)
        assert terminal.snapshot().contains("approved-xyz")
        await wait_until(pilot, lambda: len(app.cycle_events) == 2)
        assert app.exit_code == 0
        await wait_until(pilot, lambda: app.terminal_view.snapshot.contains("approved-xyz"), timeout=2)


async def test_reject_keeps_the_action_from_the_terminal(live):
    app, terminal = live([Run("echo rejected-xyz")])
    async with app.run_test(size=SIZE) as pilot:
        await _decide(pilot, app, "r")
        await _decide(pilot, app, "a")
        await wait_until(pilot, app.finished.is_set)
        assert not any("rejected-xyz" in line for line in terminal.snapshot().lines if "echo" not in line)
        assert not terminal.snapshot().contains("echo rejected-xyz")
        await wait_until(pilot, lambda: len(app.cycle_events) >= 1)
        assert app.cycle_events[0]["outcome"].get("refused")


async def test_edit_changes_what_reaches_the_terminal(live):
    app, terminal = live([Run("echo original-xyz")])
    async with app.run_test(size=SIZE) as pilot:
        await _decide(pilot, app, "e")
        editor = app.query_one("#editor")
        assert "original-xyz" in editor.value
        editor.value = '{"type": "run", "command": "echo edited-xyz"}'
        await pilot.press("enter")
        await _decide(pilot, app, "a")
        await wait_until(pilot, app.finished.is_set)
        assert terminal.snapshot().contains("edited-xyz")
        assert not terminal.snapshot().contains("original-xyz")


async def test_take_over_types_keys_into_the_terminal_until_ctrl_bracket(live):
    app, terminal = live([Run("true")])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.proposal is not None)
        await pilot.press("t")
        assert app.takeover
        await pilot.press(*"echo typed-xyz", "enter")
        await asyncio.to_thread(
            terminal.wait_screen, lambda snap: any(line == "typed-xyz" for line in snap.lines), 5
        )
        await pilot.press("ctrl+right_square_bracket")
        assert not app.takeover
        # Back in the app: "a" approves again instead of reaching the shell.
        await pilot.press("a")
        await _decide(pilot, app, "a")
        await wait_until(pilot, app.finished.is_set)
        assert any(line == "typed-xyz" for line in terminal.snapshot().lines)


# ---- snapshots ----------------------------------------------------------------------------


def test_replay_screen_snapshot(snap_compare):
    app = ReplayApp(SessionReader.open(DATA), follow=False)
    assert snap_compare(app, terminal_size=(80, 24), press=["j"])


def test_replay_screen_snapshot_zoomed(snap_compare):
    app = ReplayApp(SessionReader.open(DATA), follow=False)
    assert snap_compare(app, terminal_size=(80, 24), press=["j", "z"])


def test_replay_screen_snapshot_wide(snap_compare):
    app = ReplayApp(SessionReader.open(DATA), follow=False)
    assert snap_compare(app, terminal_size=(140, 40), press=["G", "k"])


# What the live snapshot's terminal shows: a screen cleared and drawn by a command that then waits,
# so no prompt (which differs between users) is on it.
LIVE_SCREEN = (
    r"printf '\033[2J\033[H\033[1;32mbuilding\033[0m kernel.c\n\033[33mwarning:\033[0m unused n\n"
    r"\033[7m 3 tests \033[0m ok\n'; sleep 600"
)


def test_live_screen_snapshot(snap_compare, tmp_path):
    """The co-pilot waiting for approval: a live shell, the agent's proposal, and the session it
    records into (a copy of the recorded session, so the timeline and results are fixed)."""
    session = tmp_path / "session"
    shutil.copytree(DATA, session)
    recorder = Recorder.open_for_resume(session, secrets=[])
    (tmp_path / "w").mkdir()
    terminal = Terminal(cwd=tmp_path / "w", cols=80, rows=24)
    terminal.listeners.append(recorder)
    try:
        terminal.type(LIVE_SCREEN + "\r")
        terminal.wait_screen(lambda snap: snap.lines[2] == " 3 tests  ok" and snap.cursor == (0, 3))
        agent = Agent(terminal, Executor(terminal, tmp_path / "w"), recorder)
        policy = ScriptedPolicy([Run("make test")], screen=terminal.snapshot)
        app = LiveApp(terminal, agent, lambda: 0 if agent.run(policy).status == "done" else 1, session)

        async def proposed(pilot) -> None:
            await wait_until(pilot, lambda: app.proposal is not None and app.bar.state == "waiting")
            await wait_until(pilot, lambda: app.terminal_view.snapshot.contains("3 tests"))
            await pilot.pause()

        assert snap_compare(app, terminal_size=(80, 24), run_before=proposed)
    finally:
        terminal.close()
        recorder.close("done")


async def test_free_hand_copilot_runs_what_the_person_writes(tmp_path):
    terminal = Terminal(cwd=tmp_path, cols=80, rows=24)
    recorder = Recorder.create(tmp_path / "sessions", {"policy": "human"}, 80, 24, secrets=[])
    terminal.listeners.append(recorder)
    agent = Agent(terminal, Executor(terminal, tmp_path), recorder)
    human = HumanPolicy()
    app = LiveApp(terminal, agent, lambda: 0 if agent.run(human).status == "done" else 1, recorder.path,
                  auto_approve=True, human=human)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("e")
            editor = app.query_one(ActionEditor)
            editor.value = '{"type": "run", "command": "echo by-hand-xyz"}'
            await pilot.press("enter")
            await wait_until(pilot, lambda: terminal.snapshot().contains("by-hand-xyz"))
            await wait_until(pilot, lambda: len(app.cycle_events) == 1)
            assert app.cycle_events[0]["reasoning"] == "typed by the person"
            await pilot.press("q")
        assert app.finished.wait(10)
    finally:
        terminal.close()
        recorder.close("done")
