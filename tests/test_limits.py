"""Runaway children: fork bombs and memory hogs hit the terminal's limits, and nothing it started
outlives it, even when clive itself is killed with SIGKILL."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clive.safety import limits as limits_module
from clive.safety.limits import Limits
from clive.terminal import Terminal

# Each child blocks on a pipe until the parent is done; at most 200 forks, whatever the limits do.
FORK_BOMB = textwrap.dedent(
    """
    import errno, os
    r, w = os.pipe()
    kids, error = [], None
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError as exc:
            error = errno.errorcode[exc.errno]
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        kids.append(pid)
    os.close(w)
    for pid in kids:
        os.waitpid(pid, 0)
    print("forked", len(kids), "then", error)
    """
)


def _cmdlines() -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            found[int(entry)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _sleepers(tag: str) -> dict[str, int]:
    """The live ``sleep <tag><n>`` processes, by their argument."""
    return {cmd.split()[1]: pid for pid, cmd in _cmdlines().items() if cmd.startswith(f"sleep {tag}")}


def _kill_all(pids: object) -> None:
    for pid in pids:  # type: ignore[attr-defined]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_fork_bomb_stops_at_the_process_limit(tmp_path):
    script = tmp_path / "bomb.py"
    script.write_text(FORK_BOMB)
    with Terminal(cwd=tmp_path, limits=Limits(processes=64)) as term:
        if term.enforcement.processes is None:
            pytest.skip(f"no process limit can be enforced here: {term.enforcement.describe()}")
        result = term.run(f"{sys.executable} {script}", timeout=30)
        # The shell and python take two of the 64 tasks.
        forked, error = result.output.split()[1], result.output.split()[3]
        assert 50 <= int(forked) <= 62, result.output
        assert error == "EAGAIN"
        assert term.run("echo the shell still works").output == "the shell still works"


def test_memory_hog_is_stopped_at_the_memory_limit(tmp_path):
    with Terminal(cwd=tmp_path, limits=Limits(memory=200 << 20)) as term:
        if term.enforcement.memory is None:
            pytest.skip(f"no memory limit can be enforced here: {term.enforcement.describe()}")
        hog = term.run(f"{sys.executable} -c \"b = b'x' * (400 << 20); print('survived')\"", timeout=30)
        assert hog.exit_code == 128 + signal.SIGKILL  # the OOM killer, inside the terminal's cgroup only
        assert "survived" not in hog.output
        assert term.run(f"{sys.executable} -c \"b = b'x' * (50 << 20); print('fits')\"").output == "fits"


def test_address_space_limit_gives_a_memory_error(tmp_path):
    with Terminal(cwd=tmp_path, limits=Limits(address_space=400 << 20)) as term:
        assert term.enforcement.address_space
        result = term.run(f"{sys.executable} -c 'bytearray(600 << 20)'", timeout=30)
        assert result.exit_code == 1
        assert "MemoryError" in result.output


def test_no_core_dumps_by_default(tmp_path):
    with Terminal(cwd=tmp_path) as term:
        assert term.run("ulimit -c").output == "0"
        assert term.run("ulimit -H -c").output == "0"


def test_interrupt_kills_a_child_that_ignores_ctrl_c_and_sigterm(tmp_path):
    with Terminal(cwd=tmp_path) as term:
        term.type("bash -c \"trap '' INT TERM; sleep 1000\"\r")
        deadline = time.monotonic() + 5
        while term.state().foreground != "sleep" and time.monotonic() < deadline:
            time.sleep(0.01)
        term.interrupt(grace=0.3)
        assert term.at_prompt
        assert term.last_exit_code == 128 + signal.SIGKILL


def test_close_kills_children_that_left_the_session(tmp_path):
    tag = f"{random.randrange(10**6, 10**7)}."
    term = Terminal(cwd=tmp_path)
    if not term.enforcement.every_process.startswith("cgroup"):
        term.close()
        pytest.skip(f"no cgroup here: {term.enforcement.describe()}")
    term.run(f"setsid sleep {tag}1 &")
    term.run(f"nohup sleep {tag}2 >/dev/null 2>&1 &")
    deadline = time.monotonic() + 5
    while len(_sleepers(tag)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_sleepers(tag)) == 2
    term.close()
    left = _sleepers(tag)
    _kill_all(left.values())
    assert left == {}


# A clive that is killed with SIGKILL: its terminal has children of every kind.
VICTIM = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from clive.safety import limits
    from clive.safety.sandbox import Sandbox
    from clive.terminal import Terminal
    tag, mode, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if mode == "no-cgroup":
        limits.Cgroup.create = classmethod(lambda cls, limits: None)
    t = Terminal(cwd=work, sandbox=Sandbox(work, work) if mode == "sandbox" else None)
    t.run(f"sleep {tag}1 &")
    t.run(f"nohup sleep {tag}2 >/dev/null 2>&1 &")
    t.run(f"(trap '' HUP; exec sleep {tag}3) &")
    t.run(f"setsid sleep {tag}4 &")
    print(t.enforcement.every_process, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("mode", ["plain", "sandbox", "no-cgroup"])
def test_no_process_survives_clive_killed(tmp_path, mode):
    if mode == "sandbox" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (.ci/run installs it)")
    tag = f"{random.randrange(10**6, 10**7)}."
    script = tmp_path / "victim.py"
    script.write_text(VICTIM)
    work = tmp_path / "work"
    work.mkdir()
    clive = subprocess.Popen(
        [sys.executable, str(script), tag, mode, str(work)], stdout=subprocess.PIPE, text=True
    )
    try:
        cleanup = clive.stdout.readline().strip()
        deadline = time.monotonic() + 5
        while len(_sleepers(tag)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(_sleepers(tag)) == 4
    finally:
        clive.kill()
        clive.wait()
    # The watchdog sees clive's end at once; give it, and the kernel's hangup, a moment.
    deadline = time.monotonic() + 5
    expected: set[str] = set()
    if mode == "no-cgroup":
        expected = {f"{tag}4"}  # without a cgroup, a child in a session of its own is out of reach
    while set(_sleepers(tag)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    left = _sleepers(tag)
    _kill_all(left.values())
    assert set(left) == expected, f"{cleanup}: survivors {left}"


def test_cgroup_is_removed_when_the_terminal_closes(tmp_path):
    term = Terminal(cwd=tmp_path)
    dirs = list(term._cgroup.dirs) if term._cgroup else []
    if not dirs:
        term.close()
        pytest.skip("no cgroup here")
    assert all(d.is_dir() for d in dirs)
    term.close()
    assert not any(d.exists() for d in dirs)


def test_enforcement_says_what_is_enforced():
    text = limits_module.Enforcement(None, "cgroup v2 memory.max", None, "session").describe()
    assert text == "processes: not enforced; memory: cgroup v2 memory.max; cleanup: session"


def test_a_cpu_quota_is_read_as_the_tightest_on_the_way_up(tmp_path):
    # The files as the kernel writes them, in folders standing for a cgroup and its parents.
    v2 = tmp_path / "v2"
    (v2 / "box" / "job").mkdir(parents=True)
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "box" / "cpu.max").write_text("150000 100000\n")  # --cpus=1.5 on the container
    (v2 / "box" / "job" / "cpu.max").write_text("max 100000\n")
    assert limits_module._cpu_quota(v2 / "box" / "job", v2, 2) == 1.5
    (v2 / "box" / "job" / "cpu.max").write_text("50000 100000\n")
    assert limits_module._cpu_quota(v2 / "box" / "job", v2, 2) == 0.5
    v1 = tmp_path / "v1"
    (v1 / "job").mkdir(parents=True)
    for folder, quota in ((v1, "-1"), (v1 / "job", "200000")):
        (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
        (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert limits_module._cpu_quota(v1 / "job", v1, 1) == 2.0
    assert limits_module._cpu_quota(v1, v1, 1) is None  # -1: no quota
    assert limits_module._cpu_quota(tmp_path / "none", tmp_path, 2) is None  # no files: no quota


def _cpu_cgroup(name: str) -> tuple[Path, int] | None:
    """A new cgroup with the cpu controller where this machine lets us make one."""
    for h in limits_module._hierarchies():
        try:
            if h.version == 2 and "cpu" not in (h.own / "cgroup.subtree_control").read_text().split():
                continue
            if h.version == 1 and "cpu" not in h.controllers:
                continue
            path = h.own / name
            path.mkdir()
            return path, h.version
        except OSError:
            continue
    return None


def test_a_process_under_a_cpu_quota_of_half_a_cpu_does_not_spin_on_floods():
    made = _cpu_cgroup(f"clive-test-{os.getpid()}")
    if made is None:
        pytest.skip("no cgroup with the cpu controller can be made here")
    path, version = made
    try:
        if version == 2:
            (path / "cpu.max").write_text("50000 100000")
        else:
            (path / "cpu.cfs_period_us").write_text("100000")
            (path / "cpu.cfs_quota_us").write_text("50000")
        probe = (
            "from clive.safety import limits; from clive.terminal import reading; "
            "print(limits.usable_cpus(), reading.SPIN_FIRST)"
        )
        done = subprocess.run(
            ["sh", "-c", f'echo $$ > "{path}/cgroup.procs" && exec "$0" -c "$1"', sys.executable, probe],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout.split() == ["0.5", "False"]
    finally:
        path.rmdir()
