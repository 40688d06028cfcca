"""Sandboxed runs: under bubblewrap the shell writes only to the workdir and the scratch folder,
reaches no network, holds no capabilities, and still runs real work (the matmul playbook)."""

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
    assert "Read-only file system" in denied.output
    assert not (outside / "x.txt").exists()
    for target in ("/etc/clive-escaped", f"{Path.home()}/clive-escaped", "/usr/local/clive-escaped"):
        assert boxed.run(f"touch {target}").exit_code != 0
        assert not Path(target).exists()
    # /tmp inside is a private tmpfs: writable, and nothing of it reaches the host's /tmp.
    assert boxed.run("echo private > /tmp/clive-sandbox-probe && cat /tmp/clive-sandbox-probe").output == "private"
    assert not Path("/tmp/clive-sandbox-probe").exists()


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
