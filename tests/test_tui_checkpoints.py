"""The viewer's checkpoints (list, diff of any two, restore that asks first) and its metric chart,
on real git repositories with checkpoints made through clive.checkpoint."""

from __future__ import annotations

import pytest
from pilot import wait_until

from clive.agent import Agent
from clive.agent.actions import Checkpoint, Run
from clive.agent.executor import Executor
from clive.experiments.scripted import ScriptedPolicy
from clive.experiments.workspace import Workspace
from clive.session import Recorder, SessionReader
from clive.terminal import Terminal
from clive.tui.checkpoints import CheckpointsScreen, DiffView, checkpoints_in
from clive.tui.confirm import ConfirmDialog
from clive.tui.live import LiveApp
from clive.tui.metric_chart import MetricChart, Point, legend, plot
from clive.tui.replay import ReplayApp

SIZE = (100, 30)

pytestmark = pytest.mark.anyio


def diff_text(app) -> str:
    return "\n".join(app.screen.query_one(DiffView).lines)


def checkpoint_cycle(rec: Recorder, cycle: int, message: str, sha: str) -> None:
    rec.event(
        "cycle", cycle, source="policy", action={"type": "checkpoint", "message": message},
        outcome={"ok": True, "text": f"checkpoint {sha}"}, checkpoint=sha,
    )  # fmt: skip


@pytest.fixture
def session_with_checkpoints(tmp_path):
    """A session whose cycles took two checkpoints of a real repository, and one experiment
    commit on a run branch."""
    repo = tmp_path / "repo"
    rec = Recorder.create(tmp_path / "sessions", {"policy": "scripted", "workdir": str(repo)}, 80, 24, secrets=[])
    ws = Workspace(repo, rec.id, init=True)
    (repo / "notes.txt").write_text("one\n")
    first = ws.checkpoint("first draft")
    (repo / "notes.txt").write_text("two\n")
    (repo / "new.txt").write_text("added\n")
    second = ws.checkpoint("second draft")
    rec.on_output(b"w# \r\n")
    checkpoint_cycle(rec, 1, "first draft", first.sha)
    rec.event("cycle", 2, action={"type": "run", "command": "edit"}, outcome={"exit_code": 0})
    checkpoint_cycle(rec, 3, "second draft", second.sha)
    rec.close("done")
    return rec.path, repo, first, second


# ---- the list and the diff ------------------------------------------------------------------


def test_checkpoints_are_read_from_cycle_and_experiment_events():
    events = [
        {"type": "cycle", "cycle": 1, "action": {"type": "run", "command": "x"}, "checkpoint": None},
        {"type": "cycle", "cycle": 2, "action": {"type": "checkpoint", "message": "before\nrefactor"},
         "checkpoint": "a" * 40},
        {"type": "experiment", "n": 3, "commit": "b" * 40, "metric": 7.5, "status": "keep", "description": "tile"},
        {"type": "experiment", "n": 4, "commit": "", "metric": None, "status": "crash"},
    ]  # fmt: skip
    entries = checkpoints_in(events)
    assert [(e.sha[0], e.label, e.cycle) for e in entries] == [
        ("a", "cycle 2: before refactor", 2),
        ("b", "experiment 3 keep 7.5: tile", None),
    ]


async def test_replay_diffs_the_two_checkpoints_marked_a_and_b(session_with_checkpoints):
    path, repo, first, second = session_with_checkpoints
    app = ReplayApp(SessionReader.open(path), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        assert len(app.checkpoints) == 2
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, CheckpointsScreen)
        await wait_until(pilot, lambda: screen.workspace is not None)
        assert str(repo) in str(screen.query_one("#where").render())
        await pilot.press("up", "a", "down", "b")  # from the first checkpoint to the second
        await wait_until(pilot, lambda: screen.last_diff == (first.sha, second.sha))
        text = diff_text(app)
        assert "-one" in text and "+two" in text and "+added" in text and "new.txt" in text
        # Marked the other way round, the diff is reversed.
        await pilot.press("a", "up", "b")
        await wait_until(pilot, lambda: screen.last_diff == (second.sha, first.sha))
        assert "+one" in diff_text(app) and "-two" in diff_text(app)
        # Replay restores nothing: R is not offered, and pressing it changes no file.
        assert not screen.check_action("restore", ())
        await pilot.press("R")
        assert (repo / "notes.txt").read_text() == "two\n"
        await pilot.press("escape")
        assert not isinstance(app.screen, CheckpointsScreen)


async def test_enter_diffs_a_checkpoint_against_the_one_before(session_with_checkpoints):
    path, _, first, second = session_with_checkpoints
    app = ReplayApp(SessionReader.open(path), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        screen = app.screen
        await pilot.press("enter")  # the newest checkpoint is highlighted
        await wait_until(pilot, lambda: screen.last_diff == (first.sha, second.sha))
        assert "+two" in diff_text(app)


async def test_a_replay_away_from_its_repository_lists_checkpoints_and_says_why_it_cannot_diff(
    session_with_checkpoints, tmp_path
):
    path, repo, _, _ = session_with_checkpoints
    moved = tmp_path / "elsewhere"
    repo.rename(moved)
    app = ReplayApp(SessionReader.open(path), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        screen = app.screen
        await wait_until(pilot, lambda: screen.problem is not None)
        assert len(screen.entries) == 2
        assert "cannot diff" in str(screen.query_one("#where").render())
        await pilot.press("up", "a", "down", "b")
        await wait_until(pilot, lambda: "no diff" in diff_text(app))
        assert str(repo) in diff_text(app)


async def test_leaving_the_checkpoints_while_git_still_runs_is_harmless(session_with_checkpoints):
    path, _, _, _ = session_with_checkpoints
    app = ReplayApp(SessionReader.open(path), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c", "up", "a", "down", "b", "escape")  # the diff's git is still running
        await pilot.pause(0.5)
        assert app.is_running and not isinstance(app.screen, CheckpointsScreen)
        await pilot.press("j")
        assert app.index == 1


async def test_experiment_commits_are_checkpoints_too(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "kernel.c").write_text("int n = 1;\n")
    rec = Recorder.create(tmp_path / "sessions", {"policy": "scripted"}, 80, 24, secrets=[])
    ws = Workspace.for_experiment(source, rec.id, rec.path / "work")
    rec.update_meta(workdir=str(ws.workdir))
    baseline = ws.head()
    (ws.path / "kernel.c").write_text("int n = 2;\n")
    tried = ws.commit_all("experiment 1: n = 2")
    rec.event("experiment", 0, n=0, commit=baseline, metric=1.0, status="keep", description="baseline")
    rec.event("experiment", 0, n=1, commit=tried, metric=2.0, status="keep", description="n = 2")
    rec.close("done")
    app = ReplayApp(SessionReader.open(rec.path), follow=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        screen = app.screen
        assert [e.label for e in screen.entries] == ["experiment 0 keep 1: baseline", "experiment 1 keep 2: n = 2"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.last_diff == (baseline, tried))
        assert "-int n = 1;" in diff_text(app) and "+int n = 2;" in diff_text(app)


# ---- restore in live mode ---------------------------------------------------------------------


async def test_live_restore_asks_first_and_then_restores_the_checkpoint(tmp_path):
    repo = tmp_path / "repo"
    rec = Recorder.create(tmp_path / "sessions", {"policy": "scripted", "workdir": str(repo)}, 80, 24, secrets=[])
    ws = Workspace(repo, rec.id, init=True)
    (repo / "notes.txt").write_text("one\n")
    terminal = Terminal(cwd=repo, cols=80, rows=24)
    terminal.listeners.append(rec)
    try:
        agent = Agent(terminal, Executor(terminal, repo, checkpoint=lambda m: ws.checkpoint(m).sha), rec)
        policy = ScriptedPolicy(
            [Checkpoint("one"), Run("echo two > notes.txt"), Checkpoint("two")], screen=terminal.snapshot
        )
        app = LiveApp(terminal, agent, lambda: 0 if agent.run(policy).status == "done" else 1, rec.path,
                      auto_approve=True)  # fmt: skip
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, app.finished.is_set, timeout=20)
            await wait_until(pilot, lambda: len(app.checkpoints) == 2)
            assert (repo / "notes.txt").read_text() == "two\n"
            (repo / "notes.txt").write_text("uncommitted work\n")
            await pilot.press("c")
            screen = app.screen
            assert isinstance(screen, CheckpointsScreen) and screen.check_action("restore", ())
            await pilot.press("up", "R")  # restore the first checkpoint
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            question = str(app.screen.query_one("#question").render())
            assert "OVERWRITES uncommitted changes in: notes.txt" in question
            await pilot.press("n")
            await wait_until(pilot, lambda: app.screen is screen)
            assert (repo / "notes.txt").read_text() == "uncommitted work\n"  # said no: nothing changed
            await pilot.press("R")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await wait_until(pilot, lambda: (repo / "notes.txt").read_text() == "one\n")
            await pilot.press("escape", "q")
    finally:
        terminal.close()
        rec.close("done")


async def test_live_restore_waits_until_the_agent_is_not_acting(tmp_path):
    repo = tmp_path / "repo"
    rec = Recorder.create(tmp_path / "sessions", {"policy": "scripted", "workdir": str(repo)}, 80, 24, secrets=[])
    ws = Workspace(repo, rec.id, init=True)
    (repo / "notes.txt").write_text("one\n")
    terminal = Terminal(cwd=repo, cols=80, rows=24)
    try:
        agent = Agent(terminal, Executor(terminal, repo, checkpoint=lambda m: ws.checkpoint(m).sha), rec)
        app = LiveApp(terminal, agent, lambda: 0, rec.path)
        app.finished.clear()
        blocker = app.restore_blocker()
        assert blocker() is not None  # running, nothing proposed: no restore now
        app.proposal = Run("true")
        assert blocker() is None  # the agent waits for approval: safe
    finally:
        terminal.close()
        rec.close("done")


# ---- the metric chart ----------------------------------------------------------------------------


def marks(grid) -> dict[str, list[tuple[int, int]]]:
    found: dict[str, list[tuple[int, int]]] = {}
    for y, row in enumerate(grid):
        for x, (_, kind) in enumerate(row):
            if kind in ("keep", "discard", "crash"):
                found.setdefault(kind, []).append((y, x))
    return found


def test_chart_marks_kept_discarded_and_crashed_experiments_under_the_best_so_far_line():
    points = [Point(0, 10.0, "keep"), Point(1, 9.0, "discard"), Point(2, 12.0, "keep"), Point(3, None, "crash")]
    grid = plot(points, 30, 6)
    found = marks(grid)
    assert len(found["keep"]) == 2 and len(found["discard"]) == 1 and len(found["crash"]) == 1
    (top_y, top_x), (base_y, base_x) = sorted(found["keep"])
    assert top_y == 0 and base_y > top_y  # 12 is the highest value, 10 below it
    assert found["crash"][0][0] == 4  # crashes sit on the bottom row of the plot
    assert found["discard"][0][0] == 4  # 9 is the lowest metric
    # The best-so-far line runs at 10 until experiment 2, then at 12 to the right edge.
    best = {(y, x) for y, row in enumerate(grid) for x, (_, kind) in enumerate(row) if kind == "best"}
    assert all((base_y, x) in best for x in range(base_x + 1, top_x))
    assert all((top_y, x) in best for x in range(top_x + 1, 30))
    # Axis labels name the extremes; the x axis names the first and last experiment.
    assert "".join(ch for ch, _ in grid[0]).startswith("12┤")
    assert "".join(ch for ch, _ in grid[5]).strip().startswith("└0") and grid[5][-1][0] == "3"


def test_chart_of_a_run_with_workers_draws_each_experiment_as_its_workers_number():
    points = [Point(0, 10.0, "keep", 1), Point(1, 9.0, "discard", 2), Point(2, 12.0, "keep", 2),
              Point(3, None, "crash", 1)]
    cells = {(ch, kind) for row in plot(points, 30, 6) for ch, kind in row if kind in ("keep", "discard", "crash")}
    assert cells == {("1", "keep"), ("2", "discard"), ("2", "keep"), ("×", "crash")}
    assert legend(points) == "1-9 the worker, bold kept ×crash ─best"
    assert legend(points[:2]) == "1-9 the worker, bold kept ─best"


def test_chart_squeezes_many_experiments_into_its_width_keeping_kept_ones_visible():
    points = [Point(i, float(i % 5), "discard") for i in range(200)] + [Point(200, 9.0, "keep")]
    grid = plot(points, 24, 5)
    assert all(len(row) == 24 for row in grid)
    assert len(marks(grid)["keep"]) == 1


async def test_the_results_chart_follows_experiments_as_they_are_recorded(tmp_path):
    rec = Recorder.create(tmp_path / "sessions", {"policy": "scripted"}, 80, 24, secrets=[])
    rec.on_output(b"w# \r\n")
    rec.event("cycle", 1, action={"type": "run", "command": "make"}, outcome={"exit_code": 0})
    rec.event("experiment", 1, n=0, commit="a" * 40, metric=10.0, status="keep", description="baseline")
    app = ReplayApp(SessionReader.open(rec.path), follow=True)
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one(MetricChart)
        assert [p.metric for p in chart.points] == [10.0]
        rec.event("experiment", 1, n=1, commit="b" * 40, metric=8.0, status="discard", description="worse")
        rec.event("experiment", 1, n=2, commit="c" * 40, metric=13.5, status="keep", description="better")
        rec.event("experiment", 1, n=3, commit="d" * 40, metric=None, status="crash", description="segfault")
        await wait_until(pilot, lambda: len(chart.points) == 4, timeout=5)
        await pilot.pause()
        assert chart.border_title == "metric · best 13.5"
        assert chart.border_subtitle == "●keep ○discard ×crash ─best"
        # It fits an 80x24 terminal: the whole chart is on screen, with room for its marks.
        assert chart.region.right <= 80 and chart.region.bottom <= 24
        width, height = chart.content_region.size
        assert width >= 20 and height >= 4
        drawn = chart.render().plain
        assert drawn.count("●") == 2 and drawn.count("○") == 1 and drawn.count("×") == 1 and "13.5" in drawn
    rec.close("done")
