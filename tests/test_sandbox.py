"""Sandboxed runs: under bubblewrap the shell sees a view of the machine (system programs read-only,
the workdir and scratch writable, an empty home, nothing else of the host), reaches no network
unless asked, holds no capabilities, and still runs real work (the matmul playbook)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from clive.safety.sandbox import Sandbox
from clive.terminal import Terminal, TerminalError

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def folders(tmp_path):
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    # A writable host folder that the sandbox sees (not under /tmp: that is a tmpfs inside).
    outside = Path(tempfile.mkdtemp(prefix="clive-outside-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    yield work, scratch, outside
    shutil.rmtree(outside, ignore_errors=True)


@pytest.fixture
def boxed(folders):
    work, scratch, _ = folders
    t = Terminal(cwd=work, sandbox=Sandbox(work, scratch))
    yield t
    t.close()


def test_writes_only_in_the_workdir_and_scratch(boxed, folders):
    work, scratch, outside = folders
    assert boxed.run("echo kept > result.txt").exit_code == 0
    assert (work / "result.txt").read_text() == "kept\n"
    assert boxed.run(f"echo kept > {scratch}/note.txt").exit_code == 0
    assert (scratch / "note.txt").read_text() == "kept\n"

    denied = boxed.run(f"echo escaped > {outside}/x.txt")
    assert denied.exit_code != 0
    assert "No such file or directory" in denied.output  # the host's /var/tmp is not even there
    assert not (outside / "x.txt").exists()
    for target in ("/etc/clive-escaped", "/usr/local/clive-escaped", "/escaped"):
        assert boxed.run(f"touch {target}").exit_code != 0
        assert not Path(target).exists()
    # The home inside is a private tmpfs: writable, and nothing of it reaches the host's.
    assert boxed.run("touch ~/clive-escaped").exit_code == 0
    assert not (Path.home() / "clive-escaped").exists()
    # /tmp inside is a private tmpfs: writable, and nothing of it reaches the host's /tmp.
    assert boxed.run("echo private > /tmp/clive-sandbox-probe && cat /tmp/clive-sandbox-probe").output == "private"
    assert not Path("/tmp/clive-sandbox-probe").exists()


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """Secrets where a careless sandbox would show them: the home's ~/.ssh and history, a folder beside
    the workdir, and a second user's home under /home."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("home-key-material\n")
    (home / ".bash_history").write_text("export TOKEN=history-material\n")
    (home / ".gitconfig").write_text("[user]\n\tname = Planted Person\n\temail = p@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("sibling-material\n")
    other = Path(tempfile.mkdtemp(prefix="clive-other-user-", dir="/home" if os.access("/home", os.W_OK) else None))
    (other / ".ssh").mkdir()
    (other / ".ssh" / "id_rsa").write_text("other-user-material\n")
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    yield work, scratch, home, sibling, other
    shutil.rmtree(other, ignore_errors=True)


def test_the_home_a_sibling_folder_and_other_users_are_not_there(planted):
    work, scratch, home, sibling, other = planted
    with Terminal(cwd=work, sandbox=Sandbox(work, scratch)) as term:
        for path in (home / ".ssh" / "id_ed25519", "~/.ssh/id_ed25519", "~/.bash_history", home / ".gitconfig",
                     sibling / "secret.txt", other / ".ssh" / "id_rsa"):
            result = term.run(f"cat {path}")
            assert result.exit_code != 0, path
            assert "material" not in result.output and "Planted" not in result.output
        assert term.run("ls -A ~ | grep -v '^\\.' | wc -l").output == "0"  # an empty home (but PATH folders)
        assert term.run("ls -A ~/.ssh").exit_code != 0
        assert term.run("echo $HOME").output == str(home)
        assert term.run("echo note > ~/note && cat ~/note").output == "note"  # a private, writable home
    assert not (home / "note").exists()


def test_dotfiles_the_playbook_lists_are_shown_read_only(planted):
    work, scratch, home, _, _ = planted
    with Terminal(cwd=work, sandbox=Sandbox(work, scratch, home_files=(".gitconfig",))) as term:
        assert term.run("git config user.name").output == "Planted Person"
        assert term.run("echo x >> ~/.gitconfig").exit_code != 0
        assert term.run("cat ~/.ssh/id_ed25519").exit_code != 0


def test_root_shows_only_the_system_and_what_the_work_needs(boxed, folders):
    work, scratch, _ = folders
    names = set(boxed.run("ls -A /").output.split())
    # The system, the sandbox's own /dev, /proc, /sys, /tmp, /run, /var/tmp, and the first folder of
    # each path the work needs: the workdir, the scratch folder, the home, PATH and clive's Python.
    needed = [work, scratch, Path.home(), sys.prefix, sys.base_prefix, *os.environ["PATH"].split(os.pathsep)]
    tops = {Path(os.path.realpath(p)).parts[1] for p in needed if p and os.path.isabs(p) and os.path.exists(p)}
    allowed = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc", "sys", "tmp", "run",
               "var"} | tops
    assert names <= allowed, names - allowed
    for host_only in {"boot", "srv", "mnt", "media", "opt", "home", "lost+found"} - tops:
        assert host_only not in names
    assert boxed.run("ls -A /var").output.split() == ["tmp"]
    assert boxed.run("cat /etc/shadow").exit_code != 0
    assert boxed.run("cat /etc/hostname").exit_code == 0  # the rest of /etc is there, read-only


def test_compilers_build_tools_python_and_git_work_inside(boxed, folders):
    work, _, _ = folders
    (work / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hi from c"); return 0; }\n')
    (work / "Makefile").write_text("hello: hello.c\n\tgcc -O2 -o hello hello.c\n")
    assert boxed.run("make && ./hello").output.endswith("hi from c")
    assert boxed.run(f"{sys.executable} -c 'print(6 * 7)'").output == "42"
    assert boxed.run("python3 -c 'import sys; print(sys.version_info[0])'").output == "3"
    git = "git -c user.name=t -c user.email=t@example.com"
    assert boxed.run(f"git init -q && git add hello.c && {git} commit -qm one && git log --format=%s").output == "one"


def test_no_capabilities_to_undo_the_sandbox(boxed):
    assert boxed.run("grep CapEff /proc/self/status").output.split()[1] == "0000000000000000"
    assert boxed.run("mount -o remount,rw / 2>&1").exit_code != 0
    assert boxed.run("echo 1 > /proc/sys/kernel/printk_ratelimit").exit_code != 0
    assert boxed.run("mkdir /sys/fs/cgroup/escape").exit_code != 0


def test_sees_and_signals_only_its_own_processes(boxed):
    names = boxed.run("cat /proc/[0-9]*/comm").output.split()
    assert {"bash", "bwrap"} <= set(names) <= {"bash", "bwrap", "cat"}  # bwrap is the sandbox's init
    assert boxed.run(f"kill -0 {os.getpid()}").exit_code != 0  # pytest's pid means nothing inside


@pytest.fixture
def server():
    """A TCP server on the host's 127.0.0.1 that answers 'hello' to every connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"hello\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


CONNECT = (
    "{python} -c \"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=3); "
    "print(s.recv(6).decode().strip())\""
)


def test_no_network_not_even_the_hosts_loopback(boxed, server, tmp_path):
    command = CONNECT.format(python=sys.executable, port=server)
    with Terminal(cwd=tmp_path) as plain:  # the server is reachable from outside the sandbox
        assert plain.run(command).output == "hello"
    result = boxed.run(command)
    assert result.exit_code != 0
    assert "ConnectionRefusedError" in result.output
    assert boxed.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1").output.split() == ["lo"]


def test_the_network_is_there_when_asked_for(folders, server):
    work, scratch, _ = folders
    with Terminal(cwd=work, sandbox=Sandbox(work, scratch, network=True)) as term:
        result = term.run(CONNECT.format(python=sys.executable, port=server))
        assert result.output == "hello", result.output
        assert term.run("cat ~/.ssh/id_ed25519 /etc/shadow").exit_code != 0  # the rest of the view holds


def test_the_terminal_works_as_usual_inside(boxed, folders):
    work, _, _ = folders
    (work / "notes.txt").write_text("one\n")
    # Job control, the screen, keys, a full-screen program, an exit code, interrupt().
    assert boxed.run("sleep 0.1 & wait").exit_code == 0
    boxed.type("vim -u NONE notes.txt\r")
    boxed.wait_text("notes.txt")
    boxed.press("Otwo<Esc>:wq<Enter>")
    boxed.wait_prompt()
    assert (work / "notes.txt").read_text() == "two\none\n"
    boxed.type("sleep 1000\r")
    deadline = time.monotonic() + 5
    while boxed.state().foreground != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert boxed.state().foreground == "sleep"
    boxed.interrupt()
    assert boxed.run("(exit 3)").exit_code == 3
    assert boxed.run("echo $TMPDIR").output == "/tmp"


def test_matmul_playbook_builds_checks_and_benchmarks_in_the_sandbox(tmp_path):
    work, scratch = tmp_path / "matmul", tmp_path / "scratch"
    shutil.copytree(REPO / "playbooks" / "matmul", work)
    scratch.mkdir()
    with Terminal(cwd=work, sandbox=Sandbox(work, scratch)) as term:
        assert term.run("make clean").exit_code == 0
        result = term.run("make check && make bench", timeout=120)
        assert result.exit_code == 0, result.output
        assert "GFLOP/s" in result.output
    assert (work / "matmul-bench").exists()


def test_a_missing_sandbox_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(TerminalError, match="sandbox folder does not exist"):
        Terminal(cwd=tmp_path, sandbox=Sandbox(tmp_path, tmp_path / "missing"))

