"""Run a terminal's shell under bubblewrap in a view of the machine that holds only what the work
needs: no file of the user's beyond the workdir, no network, no capabilities, its own process tree.

What the sandbox shows (its root is an empty, read-only tmpfs; nothing else of the host is there):

* read-only: the system's programs and libraries (``/usr`` and its ``/bin``, ``/lib*`` links or
  folders), ``/etc`` with the files that hold credentials masked (``shadow``, ``sudoers``, the SSH
  host keys, ``ssl/private``), every folder on PATH outside them, clive's own Python, the
  installation of each program in ``readable`` (a playbook's ``requires``: ``nvcc`` brings its CUDA
  toolkit) and the git folder a linked worktree points to;
* read-write: the workdir, a scratch folder and ``writable``; ``/tmp``, ``/var/tmp``, ``/run`` and
  ``/dev/shm`` are private tmpfs;
* ``$HOME`` is an empty tmpfs, or holds only the dotfiles in ``home_files``, read-only: no shell
  history, ``~/.ssh``, ``~/.aws`` or ``~/.config``; other users' homes are not there at all;
* ``/dev`` is a minimal one (null, zero, random, tty, a private devpts) plus, with ``gpu``, the
  host's ``/dev/nvidia*`` and ``/dev/dri``; ``/proc`` is the sandbox's own (``/proc/sys``
  read-only), ``/sys`` the host's, read-only.

And what it keeps out:

* ``--cap-drop ALL``: bubblewrap started by root keeps every capability unless told otherwise, and
  with ``CAP_SYS_ADMIN`` a sandboxed program could simply mount what it likes.
* ``--unshare-net`` unless ``network``: only a loopback interface of its own; nothing on the host
  (not even 127.0.0.1) or beyond can be reached. ``--unshare-pid`` and ``--unshare-ipc``: it sees
  and signals only its own processes, and when the sandbox's init dies the kernel kills them all.
* ``--die-with-parent``: bubblewrap is killed when the thread that started it ends (the kernel's
  parent-death signal follows the creating thread), so create a sandboxed Terminal on a thread that
  outlives it.
* Not covered: the uid stays the same (run as root, a program can leave a setuid-root file in the
  workdir for someone outside to run); CPU time and disk space are not bounded (memory and
  processes are: clive.safety.limits).
"""

from __future__ import annotations

import fcntl
import functools
import glob
import os
import shutil
import signal
import subprocess
import sys
import termios
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The system's programs and libraries: a folder is bound read-only, a merged-/usr link is recreated.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Files of /etc that hold credentials (hashes, who may sudo, the host's private keys).
MASKED_FILES = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers", "/etc/security/opasswd",
    "/etc/ssh/ssh_host_*_key", "/etc/krb5.keytab",
)  # fmt: skip
# Folders of /etc that hold private keys, cluster or VPN credentials, saved Wi-Fi passwords.
MASKED_FOLDERS = (
    "/etc/sudoers.d", "/etc/ssl/private", "/etc/pki/tls/private", "/etc/letsencrypt", "/etc/kubernetes",
    "/etc/rancher", "/etc/wireguard", "/etc/openvpn", "/etc/NetworkManager/system-connections", "/etc/ceph",
    "/etc/docker", "/etc/gitlab-runner",
)  # fmt: skip
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/run", "/dev/shm")
GPU_DEVICES = ("/dev/nvidia*", "/dev/dri")


class SandboxError(Exception):
    """The sandbox cannot be set up here (no bubblewrap, a folder that does not exist)."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What a sandboxed shell sees: see the module's docstring."""

    workdir: Path
    scratch: Path
    writable: tuple[Path, ...] = field(default=())  # more folders to bind read-write
    network: bool = False
    readable: tuple[str, ...] = field(default=())  # programs (by name or path) or folders to show read-only
    home_files: tuple[str, ...] = field(default=())  # dotfiles of $HOME to show read-only
    gpu: bool = False  # pass the GPU device files through

    def describe(self) -> str:
        """One line for a run's first lines: what the sandbox lets through."""
        parts = ["sandboxed (bubblewrap: workdir and scratch writable, empty home"]
        if self.home_files:
            parts.append(f" but {', '.join(self.home_files)}")
        parts.append(", network on" if self.network else ", no network")
        if self.gpu:
            parts.append(", GPUs")
        return "".join(parts) + ")"

    def argv(
        self, command: Sequence[str], *, cwd: Path, readable: Sequence[Path] = (), own_session: bool = False
    ) -> list[str]:
        """The bubblewrap command line that runs ``command`` in the sandbox, starting in ``cwd``.

        ``readable`` are more host paths to show read-only (e.g. the shell's rc file). With
        ``own_session``, ``command`` leads its own session with the terminal as its controlling
        terminal, as a shell started straight in the PTY would (the caller must run
        ``detach_terminal`` in the child before exec)."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxError("the sandbox needs bubblewrap (bwrap); install the 'bubblewrap' package")
        setsid = shutil.which("setsid")
        if own_session and setsid is None:
            raise SandboxError("the sandbox needs setsid (util-linux)")
        folders = [Path(os.path.realpath(p)) for p in (self.workdir, self.scratch, *self.writable)]
        for folder in folders:
            if not folder.is_dir():
                raise SandboxError(f"sandbox folder does not exist: {folder}")
        home = os.path.realpath(os.environ.get("HOME") or "/root")

        mounts = _Mounts()
        for path in SYSTEM:
            if os.path.islink(path):
                mounts.link(path, os.readlink(path))
            elif os.path.isdir(path):
                mounts.ro(path)
        for pattern in MASKED_FILES:
            for path in glob.glob(pattern):
                mounts.mask_file(path)
        for path in MASKED_FOLDERS:
            if os.path.isdir(path):
                mounts.tmpfs(path)
        for path in PRIVATE_TMPFS:
            mounts.tmpfs(path)
        if home != "/":
            mounts.tmpfs(home)
            for name in self.home_files:
                dotfile = os.path.join(home, name)
                if os.path.exists(dotfile):
                    mounts.ro(dotfile)
        for path in _shown_paths(home, self.readable, self.workdir):
            mounts.ro(path)
        for path in readable:
            mounts.ro(os.path.realpath(path))
        for folder in folders:
            mounts.rw(str(folder))
        if self.gpu:
            for pattern in GPU_DEVICES:
                for path in glob.glob(pattern):
                    mounts.device(path)

        args = [bwrap, "--tmpfs", "/", "--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
        if os.path.isdir("/sys"):
            args += ["--ro-bind", "/sys", "/sys"]
        args += mounts.args()
        args += ["--remount-ro", "/"]  # the root's own tmpfs: no stray files beside the mounts
        if not self.network:
            args.append("--unshare-net")
        args += [
            "--unshare-pid",
            "--unshare-ipc",
            "--die-with-parent",
            "--cap-drop", "ALL",
            "--chdir", os.path.realpath(cwd),
            "--",
        ]  # fmt: skip
        if own_session:
            args += [str(setsid), "--ctty"]
        return args + list(command)


class _Mounts:
    """The sandbox's mounts, put in an order that works: a folder before what is mounted inside it,
    so a read-write workdir under an empty home, or a tmpfs over a masked folder, lands on top."""

    def __init__(self) -> None:
        self._mounts: dict[str, tuple[str, ...]] = {}
        self._links: list[tuple[str, str]] = []

    def ro(self, path: str) -> None:
        self._mounts.setdefault(path, ("--ro-bind", path, path))  # a mask or a tmpfs there stays

    def rw(self, path: str) -> None:
        self._mounts[path] = ("--bind", path, path)

    def tmpfs(self, path: str) -> None:
        self._mounts[path] = ("--tmpfs", path)

    def mask_file(self, path: str) -> None:
        self._mounts[path] = ("--ro-bind", "/dev/null", path)

    def device(self, path: str) -> None:
        self._mounts[path] = ("--dev-bind", path, path)

    def link(self, path: str, target: str) -> None:
        self._links.append((target, path))

    def args(self) -> list[str]:
        out: list[str] = []
        for target, path in self._links:
            out += ["--symlink", target, path]
        # Shallow first; at one depth a tmpfs first, so binds beside it are not hidden under it.
        ordered = sorted(self._mounts, key=lambda p: (p.rstrip("/").count("/"), self._mounts[p][0] != "--tmpfs"))
        for path in ordered:
            if not self._shown_already(path):
                out += self._mounts[path]
        return out

    def _shown_already(self, path: str) -> bool:
        """Whether ``path`` is a read-only bind inside another one, with nothing mounted between."""
        if self._mounts[path][0] != "--ro-bind" or self._mounts[path][1] != path:
            return False
        outer = [p for p in self._mounts if p != path and _within(path, p)]
        if not outer:
            return False
        nearest = max(outer, key=len)
        return self._mounts[nearest][0] == "--ro-bind" and self._mounts[nearest][1] == nearest


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _shown_paths(home: str, readable: Sequence[str], workdir: Path) -> list[str]:
    """The host folders shown read-only beside the system: PATH, clive's Python, what ``readable``
    names (a program's installation, or a folder), and the git folder of a linked worktree."""
    shown: list[str] = []

    def show(path: str) -> None:
        real = os.path.realpath(path)
        # Never a folder that holds the home or the whole machine: that would undo the view.
        if os.path.isabs(path) and os.path.exists(real) and real != "/" and not _within(home, real):
            if real not in shown:
                shown.append(real)

    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and os.path.isdir(entry):
            show(entry)
    show(sys.prefix)
    show(sys.base_prefix)
    for item in readable:
        if os.sep in item:
            show(item)
        elif (found := shutil.which(item)) is not None:
            show(installation_of(found))
    gitdir = _linked_git_dir(workdir)
    if gitdir is not None:
        show(gitdir)
    return shown


def installation_of(program: str) -> str:
    """The folder a program is installed in: ``/opt/cuda`` for ``/opt/cuda/bin/nvcc``."""
    folder = os.path.dirname(os.path.realpath(program))
    if os.path.basename(folder) in ("bin", "sbin", "shims"):
        folder = os.path.dirname(folder)
    return folder


def _linked_git_dir(workdir: Path) -> str | None:
    """The repository folder a linked worktree's ``.git`` file points into, if it is one."""
    dotgit = Path(workdir) / ".git"
    try:
        text = dotgit.read_text(encoding="utf-8") if dotgit.is_file() else ""
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(workdir, text.split(":", 1)[1].strip())
    common = gitdir / "commondir"
    try:
        return os.path.realpath(gitdir / common.read_text(encoding="utf-8").strip())
    except OSError:
        return os.path.realpath(gitdir)


@functools.cache
def unavailable() -> str | None:
    """Why a sandbox cannot start on this machine (no bubblewrap, no namespaces), or None if it can."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--cap-drop", "ALL", "--", "true"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap cannot start: {exc}"
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or ["exit code " + str(probe.returncode)])[-1]
        return f"bubblewrap cannot create namespaces here ({detail})"
    return None


def detach_terminal() -> None:
    """Give up the controlling terminal (in the child, between fork and exec).

    pexpect makes the child (here bubblewrap) the leader of a session that owns the PTY; the shell
    inside is then one more member, and the session's id is not the shell's. Once the PTY is free,
    ``setsid --ctty`` makes the shell the leader of its own session that owns it, as without a
    sandbox. The kernel sends the leader SIGHUP as it lets go: ignore it for that moment."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        fcntl.ioctl(0, termios.TIOCNOTTY)
    finally:
        signal.signal(signal.SIGHUP, previous)
