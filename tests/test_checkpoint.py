"""Workspace: checkpoints that never touch the user's git state, and the experiment run branch."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from clive.experiments.workspace import CheckpointRef, Workspace, WorkspaceError

# --- a small real world -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config (clive must work without one), no repo above tmp_path."""
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_AUTHOR_NAME"):
        monkeypatch.delenv(var, raising=False)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git as the user would (the test's identity, not clive's)."""
    result = subprocess.run(
        ["git", "-c", "user.name=Test User", "-c", "user.email=test@example.com",
         "-c", "init.defaultBranch=main", *args],
        cwd=cwd, capture_output=True, check=check,
    )  # fmt: skip
    return result.stdout.decode()


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)


def files_on_disk(root: Path) -> dict[str, bytes]:
    """Every file of a work tree except git's own, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def files_in_commit(repo: Path, sha: str) -> dict[str, bytes]:
    names = git(repo, "ls-tree", "-r", "-z", "--name-only", sha).split("\0")
    return {
        name: subprocess.run(
            ["git", "cat-file", "blob", f"{sha}:{name}"], cwd=repo, capture_output=True, check=True
        ).stdout
        for name in names
        if name
    }


def not_ignored(files: dict[str, bytes]) -> dict[str, bytes]:
    """What a checkpoint should hold, given the .gitignore of user_repo (*.log, build/)."""
    return {name: data for name, data in files.items() if not name.endswith(".log") and not name.startswith("build/")}


def git_file(repo: Path, name: str) -> Path:
    return repo / git(repo, "rev-parse", "--git-path", name).strip()


def guarded_state(repo: Path) -> dict[str, object]:
    """What clive must never change: HEAD, index, branch refs and the stash, as bytes."""
    state: dict[str, object] = {}
    for name in ("HEAD", "index", "refs/heads/main", "refs/heads/feature", "refs/stash",
                 "logs/refs/stash", "packed-refs", "MERGE_HEAD"):  # fmt: skip
        path = git_file(repo, name)
        state[name] = path.read_bytes() if path.exists() else None
    state["stash list"] = git(repo, "stash", "list")
    return state


def parent_of(repo: Path, sha: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """A user's repo mid-work: two branches, a stash, staged, unstaged, untracked, ignored."""
    repo = tmp_path / "user"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, {
        ".gitignore": "*.log\nbuild/\n",
        "a.txt": "a1\n",
        "b.txt": "b1\n",
        "old.txt": "to be deleted\n",
        "src/mod.py": "x = 1\n",
    })  # fmt: skip
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, {"a.txt": "a2\n"})
    git(repo, "commit", "-q", "-am", "feature work")
    write(repo, {"b.txt": "stashed edit\n"})
    git(repo, "stash", "push", "-q", "-m", "wip")
    write(repo, {"a.txt": "a3 staged\n", "staged.txt": "new and staged\n"})
    git(repo, "add", "a.txt", "staged.txt")
    write(repo, {
        "b.txt": "b2 unstaged\n",
        "notes.txt": "untracked\n",
        "src/new_mod.py": "y = 2\n",
        "debug.log": "ignored\n",
        "build/out.bin": b"\x00\x01ignored",
    })  # fmt: skip
    (repo / "old.txt").unlink()
    return repo


@pytest.fixture
def clean_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "clean"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, {".gitignore": "*.log\n", "a.txt": "line one\nold line\n", "b.txt": "b\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


# --- checkpoints --------------------------------------------------------------------------


def test_fifty_checkpoints_leave_head_index_stash_and_edits_untouched(user_repo: Path, tmp_path: Path) -> None:
    before = guarded_state(user_repo)
    expected_files = files_on_disk(user_repo)
    workspace = Workspace(user_repo, "s1")
    recorded: dict[int, tuple[CheckpointRef, dict[str, bytes]]] = {}

    for i in range(1, 51):
        if i % 7 == 0:  # the agent edits between some checkpoints
            edits = {"b.txt": f"b edited at {i}\n", f"gen/{i}.txt": f"generated {i}\n"}
            write(user_repo, edits)
            expected_files.update({k: v.encode() for k, v in edits.items()})
        ref = workspace.checkpoint(f"step {i}")
        assert ref == CheckpointRef(f"refs/clive/s1/{i}", ref.sha, i, f"step {i}")
        if i in (1, 25, 50):
            recorded[i] = (ref, not_ignored(expected_files))

    # Only the edits the test made itself changed the tree; git's state is byte-identical.
    assert guarded_state(user_repo) == before
    assert files_on_disk(user_repo) == expected_files
    assert [c.n for c in workspace.checkpoints()] == list(range(1, 51))
    for ref, files in recorded.values():
        assert files_in_commit(user_repo, ref.sha) == files

    # Another session checkpoints the same dirty tree; a clean work tree of the same repo
    # (a linked worktree at the branch tip) then restores it.
    theirs = Workspace(user_repo, "other").checkpoint("other's view")
    clean = tmp_path / "clean-tree"
    git(user_repo, "worktree", "add", "-q", "--detach", str(clean), "feature")
    write(clean, {"keep.log": "ignored, must survive"})
    mine = Workspace(clean, "s3")
    assert not mine.is_dirty()
    clean_before = guarded_state(clean)

    mine.restore("other/1")

    assert files_on_disk(clean) == {
        **files_in_commit(user_repo, theirs.sha),
        "keep.log": b"ignored, must survive",
    }
    assert not (clean / "old.txt").exists()  # deleted in the checkpoint, so removed
    assert guarded_state(clean) == clean_before
    assert guarded_state(user_repo) == before


def test_checkpoint_holds_untracked_files_not_ignored_ones_and_chains_parents(
    clean_repo: Path,
) -> None:
    head = git(clean_repo, "rev-parse", "HEAD").strip()
    write(clean_repo, {"new/untracked.txt": "u\n", "trace.log": "ignored\n"})
    workspace = Workspace(clean_repo, "s1")
    first = workspace.checkpoint("first")
    write(clean_repo, {"b.txt": "b changed\n"})
    second = workspace.checkpoint("second\n\nwith a body")
    other = Workspace(clean_repo, "s10").checkpoint("another session")

    files = files_in_commit(clean_repo, first.sha)
    assert files["new/untracked.txt"] == b"u\n"
    assert "trace.log" not in files
    assert files_in_commit(clean_repo, second.sha)["b.txt"] == b"b changed\n"
    assert parent_of(clean_repo, first.sha) == [head]
    assert parent_of(clean_repo, second.sha) == [first.sha]
    assert parent_of(clean_repo, other.sha) == [head]
    assert workspace.checkpoints() == [first, second]
    assert second.message == "second\n\nwith a body"
    refs = git(clean_repo, "for-each-ref", "--format=%(refname)", "refs/clive").split()
    assert sorted(refs) == ["refs/clive/s1/1", "refs/clive/s1/2", "refs/clive/s10/1"]
    assert git(clean_repo, "log", "-1", "--format=%an <%ae>", first.sha).strip() == ("clive <clive@localhost>")


def test_checkpoint_sees_an_edit_that_keeps_size_and_mtime(clean_repo: Path) -> None:
    # The racy-git case: an edit within the index file's own timestamp. Git re-reads such a
    # file only while the index it consults keeps the user's index mtime.
    git(clean_repo, "config", "core.trustctime", "false")  # a test cannot set ctime back
    a, index = clean_repo / "a.txt", git_file(clean_repo, "index")
    past = time.time_ns() - 10 * 10**9
    os.utime(a, ns=(past, past))
    git(clean_repo, "update-index", "--refresh")  # the index records that mtime
    os.utime(index, ns=(past, past))
    a.write_text("line one\nOLD LINE\n")  # same size, same mtime
    os.utime(a, ns=(past, past))
    ref = Workspace(clean_repo, "s1").checkpoint("racy")
    assert files_in_commit(clean_repo, ref.sha)["a.txt"] == b"line one\nOLD LINE\n"


def test_resolve_accepts_full_ref_session_ref_number_and_sha(clean_repo: Path) -> None:
    workspace = Workspace(clean_repo, "s1")
    workspace.checkpoint("one")
    two = workspace.checkpoint("two")
    for name in ("refs/clive/s1/2", "s1/2", "2", two.sha, two.sha[:10]):
        assert workspace.resolve(name) == two.sha
    assert workspace.resolve("HEAD") == git(clean_repo, "rev-parse", "HEAD").strip()
    for missing in ("7", "nosuch/3", "refs/clive/s1/9", "deadbeef", "-h", ""):
        with pytest.raises(WorkspaceError, match="no checkpoint or commit") as error:
            workspace.resolve(missing)
        assert repr(missing) in str(error.value)


def test_restore_refuses_over_uncommitted_changes_unless_forced(clean_repo: Path) -> None:
    workspace = Workspace(clean_repo, "s1")
    write(clean_repo, {"a.txt": "checkpointed\n", "extra.txt": "x\n"})
    workspace.checkpoint("edited")
    write(clean_repo, {"a.txt": "later, unsaved\n", "scratch.txt": "unsaved\n"})
    (clean_repo / "b.txt").unlink()
    write(clean_repo, {"run.log": "ignored\n"})
    index_before = git_file(clean_repo, "index").read_bytes()

    with pytest.raises(WorkspaceError, match=r"a\.txt.*force"):
        workspace.restore("1")
    assert (clean_repo / "a.txt").read_text() == "later, unsaved\n"
    assert (clean_repo / "scratch.txt").exists()

    workspace.restore("1", force=True)
    assert files_on_disk(clean_repo) == {
        ".gitignore": b"*.log\n",
        "a.txt": b"checkpointed\n",
        "b.txt": b"b\n",
        "extra.txt": b"x\n",
        "run.log": b"ignored\n",
    }
    assert git_file(clean_repo, "index").read_bytes() == index_before


def test_restore_into_a_clean_tree_needs_no_force_but_protects_untracked_files(
    clean_repo: Path,
) -> None:
    workspace = Workspace(clean_repo, "s1")
    write(clean_repo, {"made.txt": "by the agent\n"})
    workspace.checkpoint("made a file")
    (clean_repo / "made.txt").unlink()  # clean again: nothing would be lost
    untouched = (clean_repo / "a.txt").stat()
    workspace.restore("1")
    assert (clean_repo / "made.txt").read_text() == "by the agent\n"
    # Only files that differ are written, so build tools see no spurious change.
    assert (clean_repo / "a.txt").stat().st_mtime_ns == untouched.st_mtime_ns
    assert (clean_repo / "a.txt").stat().st_ino == untouched.st_ino

    write(clean_repo, {"mine.txt": "user's untracked\n"})
    workspace.checkpoint("2")
    git(clean_repo, "clean", "-q", "-f")  # mine.txt and made.txt gone
    write(clean_repo, {"mine.txt": "user's untracked\n"})
    workspace.restore("2")  # would write mine.txt with the same bytes: nothing lost
    write(clean_repo, {"theirs.txt": "new untracked\n"})
    with pytest.raises(WorkspaceError, match="theirs.txt"):
        workspace.restore("refs/clive/s1/2")  # would remove theirs.txt


def test_restore_will_not_overwrite_an_ignored_file_unless_forced(clean_repo: Path) -> None:
    (clean_repo / ".gitignore").unlink()
    git(clean_repo, "commit", "-q", "-am", "no ignore rules")
    write(clean_repo, {"out.dat": "from the checkpoint\n"})
    workspace = Workspace(clean_repo, "s1")
    workspace.checkpoint("with out.dat")
    write(clean_repo, {".gitignore": "*.dat\n"})
    git(clean_repo, "add", ".gitignore")
    git(clean_repo, "commit", "-q", "-m", "ignore .dat")
    write(clean_repo, {"out.dat": "precious, ignored\n"})
    assert not workspace.is_dirty()

    with pytest.raises(WorkspaceError, match="out.dat"):
        workspace.restore("1")
    workspace.restore("1", force=True)
    assert (clean_repo / "out.dat").read_text() == "from the checkpoint\n"
    assert not (clean_repo / ".gitignore").exists()


def test_diff_between_checkpoints_shows_the_change(clean_repo: Path) -> None:
    workspace = Workspace(clean_repo, "s1")
    workspace.checkpoint("before")
    write(clean_repo, {"a.txt": "line one\nnew line\n", "added.txt": "hello\n"})
    workspace.checkpoint("after")
    text = workspace.diff("1", "s1/2")
    assert "--- a/a.txt" in text and "+++ b/a.txt" in text
    assert "-old line" in text and "+new line" in text
    assert "+hello" in text
    assert workspace.diff("2", "2") == ""


def test_is_dirty_sees_untracked_changes_and_never_rewrites_the_index(clean_repo: Path) -> None:
    workspace = Workspace(clean_repo, "s1")
    index = git_file(clean_repo, "index")
    before = index.read_bytes()
    stat = (clean_repo / "a.txt").stat()
    os.utime(clean_repo / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # A stale stat cache tempts git status into refreshing the index file; clive must not.
    assert not workspace.is_dirty()
    assert index.read_bytes() == before
    write(clean_repo, {"x.log": "ignored\n"})
    assert not workspace.is_dirty()
    write(clean_repo, {"u.txt": "untracked\n"})
    assert workspace.is_dirty()


# --- unusual repository states -------------------------------------------------------------


def test_a_folder_that_is_not_a_repository_is_refused_unless_init(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    write(plain, {"f.txt": "data\n"})
    with pytest.raises(WorkspaceError, match=r"plain is not a git repository"):
        Workspace(plain, "s1")
    assert not (plain / ".git").exists()
    with pytest.raises(WorkspaceError, match="no such directory"):
        Workspace(tmp_path / "missing", "s1")

    workspace = Workspace(plain, "s1", init=True)
    assert workspace.path == plain.resolve()
    ref = workspace.checkpoint("first on an unborn branch")
    assert files_in_commit(plain, ref.sha) == {"f.txt": b"data\n"}
    assert parent_of(plain, ref.sha) == []
    assert git(plain, "rev-parse", "--verify", "-q", "HEAD", check=False) == ""


def test_unborn_branch_checkpoints_and_restores(tmp_path: Path) -> None:
    repo = tmp_path / "unborn"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, {"a.txt": "one\n"})
    git(repo, "add", "a.txt")
    index_before = git_file(repo, "index").read_bytes()
    workspace = Workspace(repo, "s1")
    first = workspace.checkpoint("one")
    write(repo, {"a.txt": "two\n", "b.txt": "new\n"})
    second = workspace.checkpoint("two")
    assert parent_of(repo, second.sha) == [first.sha]
    with pytest.raises(WorkspaceError, match="force"):
        workspace.restore("1")
    workspace.restore("1", force=True)
    assert files_on_disk(repo) == {"a.txt": b"one\n"}
    assert git_file(repo, "index").read_bytes() == index_before


def test_detached_head_checkpoints_without_moving_head(clean_repo: Path) -> None:
    git(clean_repo, "checkout", "-q", "--detach")
    head_file = git_file(clean_repo, "HEAD").read_bytes()
    write(clean_repo, {"a.txt": "edited\n"})
    workspace = Workspace(clean_repo, "s1")
    ref = workspace.checkpoint("detached")
    assert parent_of(clean_repo, ref.sha) == [head_file.decode().strip()]
    assert git_file(clean_repo, "HEAD").read_bytes() == head_file


def test_merge_in_progress_can_be_checkpointed_and_is_left_in_progress(clean_repo: Path) -> None:
    git(clean_repo, "checkout", "-q", "-b", "side")
    write(clean_repo, {"a.txt": "side\n"})
    git(clean_repo, "commit", "-q", "-am", "side")
    git(clean_repo, "checkout", "-q", "main")
    write(clean_repo, {"a.txt": "main\n"})
    git(clean_repo, "commit", "-q", "-am", "main")
    git(clean_repo, "merge", "side", check=False)
    before = guarded_state(clean_repo)
    assert before["MERGE_HEAD"] is not None

    workspace = Workspace(clean_repo, "s1")
    ref = workspace.checkpoint("mid-merge")

    assert b"<<<<<<<" in files_in_commit(clean_repo, ref.sha)["a.txt"]
    assert guarded_state(clean_repo) == before
    with pytest.raises(WorkspaceError, match=r"a\.txt"):
        workspace.restore("HEAD")


def test_bad_session_ids_are_refused(clean_repo: Path) -> None:
    for bad in ("a/b", "", "..", "x.lock", "-n", "a b"):
        with pytest.raises(WorkspaceError, match="session id"):
            Workspace(clean_repo, bad)


# --- the experiment run branch ------------------------------------------------------------


def test_experiment_from_a_plain_folder_keeps_and_discards(tmp_path: Path) -> None:
    source = tmp_path / "bench"
    write(source, {"train.py": "lr = 0.1\n", "data/x.csv": "1,2\n", ".gitignore": "*.o\n"})
    workspace = Workspace.for_experiment(source, "e1", tmp_path / "runs" / "e1")
    run = workspace.path
    assert not (source / ".git").exists()
    assert workspace.branch == "clive/e1"
    assert git(run, "symbolic-ref", "HEAD").strip() == "refs/heads/clive/e1"
    baseline = workspace.head()
    assert workspace.log() == [(baseline, "baseline")]
    assert workspace.matches_head()

    write(run, {"train.py": "lr = 0.2\n", "notes.txt": "new\n", "kernel.o": "ignored build\n"})
    assert workspace.changed_files() == ["notes.txt", "train.py"]
    assert not workspace.matches_head()
    kept = workspace.commit_all("exp 1: lr 0.2")
    assert workspace.matches_head()

    write(run, {"train.py": "lr = 9\n", "scratch/tmp.txt": "junk\n"})
    (run / "data" / "x.csv").unlink()
    assert workspace.changed_files() == ["data/x.csv", "scratch/tmp.txt", "train.py"]
    discarded = workspace.commit_all("exp 2: lr 9")
    write(run, {"leftover.txt": "uncommitted junk\n"})
    workspace.reset_to(kept)

    assert workspace.head() == kept
    assert discarded not in git(run, "rev-list", "clive/e1")
    assert (run / "train.py").read_text() == "lr = 0.2\n"
    assert (run / "data" / "x.csv").exists()
    assert not (run / "scratch").exists() and not (run / "leftover.txt").exists()
    assert (run / "kernel.o").exists()  # ignored files survive a discard
    assert workspace.matches_head()

    same = workspace.commit_all("exp 3: no change")  # still one commit per experiment
    assert same != kept
    assert [subject for _, subject in workspace.log()] == [
        "exp 3: no change", "exp 1: lr 0.2", "baseline",
    ]  # fmt: skip
    assert workspace.log(1) == [(same, "exp 3: no change")]


def test_experiment_in_a_user_repo_leaves_the_users_checkout_alone(user_repo: Path, tmp_path: Path) -> None:
    # The user's hooks and signing config must not veto or prompt for clive's commits.
    for hook in ("pre-commit", "commit-msg", "post-checkout"):
        write(user_repo / ".git" / "hooks", {hook: "#!/bin/sh\nexit 1\n"})
        (user_repo / ".git" / "hooks" / hook).chmod(0o755)
    git(user_repo, "config", "commit.gpgSign", "true")
    before = guarded_state(user_repo)
    files = files_on_disk(user_repo)
    user_head = git(user_repo, "rev-parse", "HEAD").strip()

    workspace = Workspace.for_experiment(user_repo, "e2", tmp_path / "runs" / "e2")
    run = workspace.path
    assert git(run, "symbolic-ref", "HEAD").strip() == "refs/heads/clive/e2"
    assert workspace.head() == user_head
    assert files_on_disk(run) == files_in_commit(user_repo, user_head)  # committed state only

    write(run, {"a.txt": "experiment\n", "result.txt": "0.93\n"})
    sha = workspace.commit_all("exp 1")
    workspace.checkpoint("inside the run")
    write(run, {"a.txt": "worse\n"})
    workspace.reset_to(sha)

    assert guarded_state(user_repo) == before
    assert files_on_disk(user_repo) == files
    assert git(user_repo, "rev-parse", "clive/e2").strip() == sha
    assert git(user_repo, "rev-parse", "refs/clive/e2/1").strip()  # refs are shared
    assert Workspace.reopen_experiment(run, "e2").head() == sha


def test_experiment_from_a_repo_subdirectory_gets_a_fresh_repository(user_repo: Path, tmp_path: Path) -> None:
    before = guarded_state(user_repo)
    workspace = Workspace.for_experiment(user_repo / "src", "e3", tmp_path / "run")
    assert workspace.path == (tmp_path / "run").resolve()
    assert workspace.workdir == workspace.path
    assert (workspace.workdir / "mod.py").exists()
    assert workspace.log(5)[0][1] == "baseline"
    # The user's repository gained no branch: a subfolder (a shipped playbook's workdir) is copied.
    assert guarded_state(user_repo) == before
    assert not git(user_repo, "branch", "--list", "clive/e3").strip()


def test_experiment_refusals_are_one_line_workspace_errors(clean_repo: Path, tmp_path: Path) -> None:
    unborn = tmp_path / "unborn"
    unborn.mkdir()
    git(unborn, "init", "-q")
    with pytest.raises(WorkspaceError, match="no commits yet"):
        Workspace.for_experiment(unborn, "e1", tmp_path / "r1")

    workspace = Workspace.for_experiment(clean_repo, "e1", tmp_path / "r2")
    with pytest.raises(WorkspaceError, match="clive/e1 already exists"):
        Workspace.for_experiment(clean_repo, "e1", tmp_path / "r3")
    with pytest.raises(WorkspaceError, match="not empty"):
        Workspace.for_experiment(clean_repo, "e9", tmp_path / "r2")
    with pytest.raises(WorkspaceError, match="nosuch"):
        workspace.reset_to("nosuch")

    with pytest.raises(WorkspaceError, match="on main, not on branch clive/e1"):
        Workspace.reopen_experiment(clean_repo, "e1")
    git(workspace.path, "checkout", "-q", "--detach")
    assert not workspace.matches_head()
    with pytest.raises(WorkspaceError, match="detached HEAD") as error:
        workspace.commit_all("lost")
    assert "\n" not in str(error.value)
