"""The one owner of git: checkpoints on refs/clive/<session>/<n> and the experiment run branch.

Checkpoints are commits built with a temporary index, so the user's HEAD, branch, index file,
stash and working tree are never touched by taking one. Experiments run on their own branch
``clive/<session>``, in a work tree clive owns (a copy, or a linked worktree of the user's repo).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from clive.experiments.faults import crash_point

# A fixed identity, so commits work on machines without user.name/user.email.
IDENTITY = {
    "GIT_AUTHOR_NAME": "clive",
    "GIT_AUTHOR_EMAIL": "clive@localhost",
    "GIT_COMMITTER_NAME": "clive",
    "GIT_COMMITTER_EMAIL": "clive@localhost",
}
_ENV = {
    **IDENTITY,
    # status/diff may otherwise rewrite the user's index to refresh stat data.
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": ":",
}
# Passed to every git call. clive's commits are bookkeeping: the user's hooks must not veto or
# edit them, signing must not prompt, and auto-gc must not run, because gc expires old reflog
# entries and the stash list is a reflog.
_CONFIG = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "commit.gpgSign=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
)  # fmt: skip
# A split index written through a temporary index could write and expire shared index files
# in the user's .git; a temporary index is always written whole.
_TEMP_INDEX_CONFIG = ("-c", "core.splitIndex=false")
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class WorkspaceError(Exception):
    """A git operation clive cannot do here; the message is one line naming the bad value."""


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    """One checkpoint: a commit of the whole working tree under refs/clive/<session>/<n>."""

    ref: str  # "refs/clive/<session>/<n>"
    sha: str
    n: int
    message: str


def _one_line(stderr: str, status: int = 1) -> str:
    """The line of git's stderr that says what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    return lines[-1] if lines else f"exit status {status}, no message"


def _git(cwd: Path, *args: str, index: Path | None = None, check: bool = True) -> tuple[int, str, str]:
    """Run git in cwd; return (status, stdout, stderr), raising WorkspaceError when check fails."""
    env = dict(_ENV)
    config = _CONFIG
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
        config = _CONFIG + _TEMP_INDEX_CONFIG
    try:
        status, out, err = git.Git(cwd).execute(
            ["git", *config, *args],
            env=env,
            with_extended_output=True,
            with_exceptions=False,
        )
    except git.GitCommandNotFound as e:
        raise WorkspaceError(f"git is not installed or not on PATH ({e.command[0]})") from None
    except OSError as e:
        raise WorkspaceError(f"cannot run git in {cwd}: {e.strerror or e}") from None
    if check and status != 0:
        raise WorkspaceError(f"git {args[0]} failed in {cwd}: {_one_line(err, status)}")
    return status, out, err


def _out(cwd: Path, *args: str, index: Path | None = None) -> str:
    return _git(cwd, *args, index=index)[1]


def _out_bytes(cwd: Path, *args: str, index: Path | None = None) -> bytes:
    """git's stdout as bytes, untouched: a binary patch is not text."""
    env = dict(_ENV)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    try:
        status, out, err = git.Git(cwd).execute(
            ["git", *_CONFIG, *args], env=env, with_extended_output=True, with_exceptions=False,
            stdout_as_string=False, strip_newline_in_stdout=False,
        )
    except (git.GitCommandNotFound, OSError) as e:
        raise WorkspaceError(f"cannot run git in {cwd}: {e}") from None
    if status != 0:
        message = err.decode("utf-8", "replace") if isinstance(err, bytes) else err
        raise WorkspaceError(f"git {args[0]} failed in {cwd}: {_one_line(message, status)}")
    return out


def _check_session_id(session_id: str) -> str:
    # The id is one ref component and the tail of a branch name; "/" would make "<session>/<n>"
    # ambiguous.
    if not _SESSION_ID.fullmatch(session_id) or ".." in session_id or session_id.endswith((".", ".lock")):
        raise WorkspaceError(f"session id {session_id!r} cannot name a git ref (use letters, digits, '.', '_', '-')")
    return session_id


def _toplevel(path: Path) -> Path | None:
    """The top of the work tree that holds path, or None when path is in no git repository."""
    status, out, err = _git(path, "rev-parse", "--is-inside-work-tree", check=False)
    if status != 0:
        if "not a git repository" in err:
            return None
        raise WorkspaceError(f"{path} cannot be used as a git repository: {_one_line(err)}")
    if out.strip() != "true":
        raise WorkspaceError(f"{path} is in a .git directory or bare repository, not a work tree")
    return Path(_out(path, "rev-parse", "--show-toplevel")).resolve()


def _name_status(out: str) -> list[tuple[str, str]]:
    """Parse `--name-status -z` output into (status, path) pairs."""
    fields = out.split("\0")
    return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2) if fields[i]]


class Workspace:
    """A git work tree clive checkpoints, and for experiment runs, commits on its own branch."""

    def __init__(self, path: Path, session_id: str, *, init: bool = False) -> None:
        self.session_id = _check_session_id(session_id)
        self.branch = f"clive/{session_id}"
        path = Path(path).expanduser().resolve()
        if not path.is_dir():
            if not init or path.exists():
                why = "not a directory" if path.exists() else "no such directory"
                raise WorkspaceError(f"{path} is not a git repository ({why})")
            try:
                path.mkdir(parents=True)
            except OSError as e:
                raise WorkspaceError(f"cannot create {path}: {e.strerror or e}") from None
        top = _toplevel(path)
        if top is None:
            if not init:
                raise WorkspaceError(f"{path} is not a git repository (run `git init` there, or ask clive to)")
            _git(path, "init", "-q")
            top = path
        self.path: Path = top
        # Where the source folder sits inside this work tree (differs from path only when an
        # experiment starts from a subdirectory of a repository).
        self.workdir: Path = top
        self._index_path: Path | None = None
        self._refs: git.Repo | None = None
        self._empty_tree: str | None = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r}, {self.session_id!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _run(self, *args: str, index: Path | None = None) -> str:
        return _out(self.path, *args, index=index)

    def _try(self, *args: str) -> str | None:
        status, out, _ = _git(self.path, *args, check=False)
        return out if status == 0 else None

    def _rev(self, rev: str) -> str | None:
        return self._try("rev-parse", "--verify", "--quiet", rev)

    def _head_commit(self) -> str | None:
        """HEAD's commit, or None on an unborn branch."""
        return self._rev("HEAD^{commit}")

    def _head_tree(self) -> str:
        return self._rev("HEAD^{tree}") or self._empty()

    def _empty(self) -> str:
        if self._empty_tree is None:
            self._empty_tree = self._run("mktree")  # stdin is empty: the empty tree, any hash
        return self._empty_tree

    def _user_index(self) -> Path:
        # A linked worktree keeps its index under .git/worktrees/<name>/, so ask git.
        if self._index_path is None:
            self._index_path = self.path / self._run("rev-parse", "--git-path", "index")
        return self._index_path

    @contextmanager
    def _temp_index(self) -> Iterator[Path]:
        """A private index file, seeded with a copy of the user's index when there is one."""
        # Starting from the user's index keeps its stat cache (so `add -A` hashes only changed
        # files), its sparse/skip-worktree bits and its idea of what is tracked; `add -A` then
        # makes the copy match the working tree. The user's file is only read.
        with tempfile.TemporaryDirectory(prefix="clive-index-") as tmp:
            index = Path(tmp) / "index"
            user_index = self._user_index()
            if user_index.is_file():
                # copy2 keeps the mtime: git trusts an entry's stat data only if the file is
                # older than the index file, so a fresh mtime would hide racy edits.
                shutil.copy2(user_index, index)
            yield index

    def _snapshot_tree(self, index: Path) -> str:
        """Write the working tree (tracked + untracked, minus ignored) as a tree; return its sha."""
        self._run("add", "-A", index=index)  # resolves unmerged entries in the copy only
        return self._run("write-tree", index=index)

    def _diff_trees(self, a: str, b: str) -> list[tuple[str, str]]:
        out = self._run("diff-tree", "-r", "-z", "--no-renames", "--name-status", a, b)
        return _name_status(out)

    def _status_paths(self) -> list[str]:
        out = self._run("status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=all")
        # Each entry is "XY path"; --no-renames keeps it one field per entry.
        return [entry[3:] for entry in out.split("\0") if entry]

    def _repo_files(self) -> git.Repo:
        """The repository as GitPython reads it from its files: for the refs an experiment reads
        before and after each commit, where starting git would cost 1-2 ms each."""
        if self._refs is None:
            try:
                self._refs = git.Repo(self.path)
            except (git.GitError, OSError) as e:
                raise WorkspaceError(f"cannot read the git repository at {self.path}: {e}") from None
        return self._refs

    def _current_branch(self) -> str | None:
        """The branch HEAD names, as `git symbolic-ref -q HEAD` says; None for a detached HEAD."""
        try:
            head = self._repo_files().head
            return None if head.is_detached else head.reference.path.removeprefix("refs/heads/")
        except (ValueError, TypeError, OSError):  # HEAD unreadable
            return None

    def _require_on_branch(self) -> None:
        current = self._current_branch()
        if current != self.branch:
            raise WorkspaceError(f"{self.path} is on {current or 'a detached HEAD'}, not on branch {self.branch}")

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, message: str) -> CheckpointRef:
        """Record the whole working tree as the next commit under refs/clive/<session>/."""
        earlier = self.checkpoints()
        n = earlier[-1].n + 1 if earlier else 1
        parent = earlier[-1].sha if earlier else self._head_commit()
        with self._temp_index() as index:
            tree = self._snapshot_tree(index)
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args += ["-p", parent]
        sha = self._run(*args)
        ref = f"refs/clive/{self.session_id}/{n}"
        # The empty old value makes this create-only: two writers never overwrite one number.
        self._run("update-ref", ref, sha, "")
        return CheckpointRef(ref=ref, sha=sha, n=n, message=message)

    def checkpoints(self) -> list[CheckpointRef]:
        """This session's checkpoints, oldest first."""
        return self.session_checkpoints(self.session_id)

    def session_checkpoints(self, session_id: str) -> list[CheckpointRef]:
        """Any session's checkpoints in this repository, oldest first."""
        prefix = f"refs/clive/{_check_session_id(session_id)}"
        out = self._run("for-each-ref", "--format=%(refname)%00%(objectname)%00%(contents)%1e", prefix)
        found = []
        for record in out.split("\x1e"):
            record = record.lstrip("\n")
            if not record:
                continue
            ref, sha, contents = record.split("\0", 2)
            n = ref.removeprefix(prefix + "/")
            if n.isdigit():
                found.append(CheckpointRef(ref, sha, int(n), contents.rstrip("\n")))
        return sorted(found, key=lambda c: c.n)

    def resolve(self, ref: str) -> str:
        """The commit sha for "refs/clive/s/3", "s/3", "3" (this session), a sha or a ref name."""
        name = ref.strip()
        if not name or name.startswith("-"):
            raise WorkspaceError(f"no checkpoint or commit {ref!r} in {self.path}")
        if name.isdigit():
            # A number is this session's checkpoint; failing that, an all-digit abbreviated sha.
            candidates = [f"refs/clive/{self.session_id}/{int(name)}"]
            if len(name) >= 4:
                candidates.append(name)
        elif re.fullmatch(r"[^/]+/\d+", name):
            # "feature/3" may be a branch: a checkpoint wins, the literal name is the fallback.
            session, n = name.split("/")
            candidates = [f"refs/clive/{session}/{int(n)}", name]
        else:
            candidates = [name]
        for candidate in candidates:
            sha = self._rev(candidate + "^{commit}")
            if sha:
                return sha
        raise WorkspaceError(f"no checkpoint or commit {ref!r} in {self.path}")

    def restore(self, ref: str, *, force: bool = False) -> None:
        """Make the working tree that checkpoint's tree; HEAD and the user's index stay put."""
        target = self._run("rev-parse", self.resolve(ref) + "^{tree}")
        with self._temp_index() as index:
            current = self._snapshot_tree(index)
            if not force:
                at_risk = self._restore_would_lose(current, target)
                if at_risk:
                    shown = ", ".join(at_risk[:5]) + (" …" if len(at_risk) > 5 else "")
                    raise WorkspaceError(
                        f"restoring {ref} would overwrite uncommitted changes in {self.path} "
                        f"({shown}); checkpoint first or restore with force"
                    )
            # The temporary index holds the current tree with fresh stat data, so a reset
            # rewrites only files that differ and removes exactly the non-ignored files the
            # checkpoint lacks; ignored files are not in the index and are left alone.
            self._run("read-tree", "--reset", "-u", target, index=index)

    def restore_would_overwrite(self, ref: str) -> list[str]:
        """Paths with uncommitted changes that restoring ref would overwrite or remove; empty
        when ``restore(ref)`` needs no force (a viewer asks the person before forcing)."""
        target = self._run("rev-parse", self.resolve(ref) + "^{tree}")
        with self._temp_index() as index:
            current = self._snapshot_tree(index)
        return self._restore_would_lose(current, target)

    def _restore_would_lose(self, current: str, target: str) -> list[str]:
        """Paths whose uncommitted state would be overwritten or removed by going to target."""
        dirty = {path for _, path in self._diff_trees(self._head_tree(), current)}
        lost = []
        for status, path in self._diff_trees(target, current):
            if path in dirty:
                lost.append(path)
            elif status == "D" and self._occupied(path):
                lost.append(path)  # an ignored file (or one in the way) the checkpoint overwrites
        return sorted(lost)

    def _occupied(self, path: str) -> bool:
        """Whether writing path would replace something on disk (the file, or a parent file)."""
        full = self.path / path
        if full.exists() or full.is_symlink():
            return True
        return any(
            parent.is_file() or parent.is_symlink()
            for parent in full.parents
            if parent != self.path and self.path in parent.parents
        )

    def diff(self, a: str, b: str) -> str:
        """Unified diff from a to b (anything resolve accepts)."""
        # diff-tree is plumbing: no pager, colour, external diff or prefix settings apply.
        return self._run("diff-tree", "-p", "-r", "--no-color", self.resolve(a), self.resolve(b))

    def is_dirty(self) -> bool:
        """Whether the working tree differs from HEAD (staged, unstaged or untracked changes)."""
        return bool(self._status_paths())

    # -- the experiment run branch ---------------------------------------------------------

    @classmethod
    def for_experiment(cls, source: Path, session_id: str, run_dir: Path) -> Workspace:
        """A work tree at run_dir on a new branch clive/<session>, started from source."""
        _check_session_id(session_id)
        source = Path(source).expanduser().resolve()
        run_dir = Path(run_dir).expanduser().resolve()
        branch = f"clive/{session_id}"
        if not source.is_dir():
            raise WorkspaceError(f"experiment source {source} is not a directory")
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise WorkspaceError(f"run directory {run_dir} already exists and is not empty")
        top = _toplevel(source)
        if top is None or top != source:
            # A plain folder, or a folder inside someone's repository (a shipped playbook's
            # workdir): the run gets a fresh repository of its own, never a branch in theirs.
            return cls._from_plain_folder(source, session_id, run_dir)

        if not _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)[1]:
            raise WorkspaceError(
                f"{top} has no commits yet (unborn branch): commit once before an experiment "
                "run, or start from a plain folder"
            )
        if _git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)[1]:
            raise WorkspaceError(f"branch {branch} already exists in {top}: resume that session")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        # A linked worktree: its own HEAD and index, so the user's checkout is not touched.
        _git(top, "worktree", "add", "-q", "-b", branch, str(run_dir), "HEAD")
        workspace = cls(run_dir, session_id)
        workspace.workdir = run_dir / source.relative_to(top)
        return workspace

    @classmethod
    def _from_plain_folder(cls, source: Path, session_id: str, run_dir: Path) -> Workspace:
        # The run directory may sit inside the source (sessions/ under the workdir): skip it.
        def skip_run_dir(folder: str, names: list[str]) -> list[str]:
            return [name for name in names if Path(folder, name).resolve() == run_dir]

        try:
            shutil.copytree(source, run_dir, symlinks=True, ignore=skip_run_dir, dirs_exist_ok=True)
        except (OSError, shutil.Error) as e:
            raise WorkspaceError(f"cannot copy {source} to {run_dir}: {e}") from None
        _git(run_dir, "init", "-q", f"--initial-branch=clive/{session_id}")
        workspace = cls(run_dir, session_id)
        workspace._run("add", "-A")
        workspace._commit("baseline")
        return workspace

    @classmethod
    def reopen_experiment(cls, run_dir: Path, session_id: str, *, source: Path | None = None) -> Workspace:
        """The run work tree of an earlier session, for resume; it must be on clive/<session>."""
        _remove_stale_lock(Path(run_dir))
        workspace = cls(run_dir, session_id)
        run_dir = Path(run_dir).expanduser().resolve()
        if workspace.path != run_dir:
            raise WorkspaceError(f"{run_dir} is not the top of an experiment work tree")
        workspace._require_on_branch()
        if source is not None:
            top = _toplevel(Path(source).expanduser().resolve())
            if top is not None and top == Path(source).expanduser().resolve():
                workspace.workdir = run_dir / Path(source).resolve().relative_to(top)
        return workspace

    def head(self) -> str:
        """The sha of the run branch tip."""
        try:
            return git.SymbolicReference.dereference_recursive(self._repo_files(), f"refs/heads/{self.branch}")
        except (ValueError, OSError):
            raise WorkspaceError(f"branch {self.branch} does not exist in {self.path}") from None

    def _commit(self, message: str) -> None:
        self._run("commit", "-q", "--allow-empty", "--allow-empty-message", "--no-verify", "-m", message)

    def commit_all(self, message: str) -> str:
        """Commit everything in the run work tree on the run branch (even if nothing changed)."""
        self._require_on_branch()
        self._run("add", "-A")
        crash_point("commit")
        self._commit(message)
        return self.head()

    def reset_to(self, sha: str) -> None:
        """Discard: hard-reset the run branch and work tree to sha, removing untracked files."""
        self._require_on_branch()
        target = self.resolve(sha)
        self._run("reset", "-q", "--hard", target)
        self._run("clean", "-q", "-f", "-d")  # ignored files (build outputs) survive

    def log(self, n: int = 20) -> list[tuple[str, str]]:
        """(sha, subject) of the run branch, newest first."""
        out = self._run(
            "log", f"--max-count={int(n)}", "--no-show-signature", "--format=%H%x00%s",
            f"refs/heads/{self.branch}", "--",
        )  # fmt: skip
        entries = []
        for line in out.splitlines():
            sha, _, subject = line.partition("\0")
            entries.append((sha, subject))
        return entries

    def tried_ref(self, n: int) -> str:
        return f"refs/clive/{self.session_id}/tried/{int(n)}"

    def keep_tried(self, n: int, commit: str) -> None:
        """Keep a discarded or crashed experiment's commit under refs/clive/<session>/tried/<n>: off
        the run branch, out of the user's refs, and safe from garbage collection."""
        self._run("update-ref", self.tried_ref(n), self.resolve(commit))

    def changed_files(self) -> list[str]:
        """Paths that differ from HEAD: staged, unstaged, deleted and untracked (not ignored)."""
        return sorted(set(self._status_paths()))

    def matches_head(self) -> bool:
        """Whether the work tree is on the run branch with nothing uncommitted."""
        return self._current_branch() == self.branch and not self.is_dirty()


    # -- parallel workers: the repository as bytes, candidates as patches -------------------------

    def bundle(self) -> bytes:
        """The run branch and its history as a git bundle: how a worker anywhere gets the repository."""
        with tempfile.TemporaryDirectory(prefix="clive-bundle-") as tmp:
            path = Path(tmp) / "run.bundle"
            self._run("bundle", "create", "-q", str(path), f"refs/heads/{self.branch}")
            return path.read_bytes()

    def commit_patch(self, base: str, patch: bytes, message: str) -> tuple[str, str] | None:
        """A commit of ``patch`` applied to ``base``, made with a private index and on no branch:
        (commit, tree), or None when the patch does not apply there. The work tree is not touched."""
        with tempfile.TemporaryDirectory(prefix="clive-patch-") as tmp:
            index = Path(tmp) / "index"
            self._run("read-tree", base, index=index)
            if patch:
                (Path(tmp) / "candidate.patch").write_bytes(patch)
                status, _, _ = _git(
                    self.path, "apply", "--cached", "--binary", str(Path(tmp) / "candidate.patch"),
                    index=index, check=False,
                )
                if status != 0:
                    return None
            tree = self._run("write-tree", index=index)
        return self._run("commit-tree", tree, "-p", base, "-m", message), tree

    @classmethod
    def from_bundle(cls, bundle: bytes, path: Path, session_id: str, base: str) -> Workspace:
        """A worker's own working copy: a new repository at ``path`` holding the bundle, on the run
        branch at ``base``."""
        workspace = cls(path, session_id, init=True)
        workspace.fetch_bundle(bundle)
        workspace._run("checkout", "-q", "-B", workspace.branch, base)
        return workspace

    def fetch_bundle(self, bundle: bytes) -> None:
        """Take in the commits of a newer bundle of the run branch."""
        with tempfile.TemporaryDirectory(prefix="clive-bundle-") as tmp:
            path = Path(tmp) / "run.bundle"
            path.write_bytes(bundle)
            self._run("fetch", "-q", "--no-tags", str(path), f"+refs/heads/{self.branch}:refs/clive-run/best")

    def has_commit(self, sha: str) -> bool:
        return self._rev(f"{sha}^{{commit}}") is not None

    def staged_patch(self, base: str) -> tuple[bytes, str]:
        """Everything the work tree changed since ``base`` as a binary patch, and the tree it makes."""
        self._run("add", "-A")
        patch = _out_bytes(self.path, "diff", "--cached", "--binary", "--full-index", "--no-renames", base)
        return patch, self._run("write-tree")

    def apply_patch(self, patch: bytes) -> None:
        """Apply a candidate's patch to the work tree and the index (it was made against HEAD)."""
        if not patch:
            return
        with tempfile.TemporaryDirectory(prefix="clive-patch-") as tmp:
            path = Path(tmp) / "candidate.patch"
            path.write_bytes(patch)
            self._run("apply", "--index", "--binary", str(path))


def _remove_stale_lock(run_dir: Path) -> None:
    """A clive killed mid-commit leaves index.lock behind; on resume no git of ours is running."""
    dotgit = run_dir / ".git"
    if dotgit.is_file():  # a linked worktree: .git names the real git dir
        text = dotgit.read_text().strip()
        if text.startswith("gitdir:"):
            dotgit = (run_dir / text.partition(":")[2].strip()).resolve()
    lock = dotgit / "index.lock"
    if lock.is_file():
        lock.unlink()
