"""Shells started inside the terminal keep exact completion: over ssh (a real sshd on 127.0.0.1),
after su, and in a shell clive cannot integrate with, where commands end by a named screen rule."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
from sshd import SSHD, SSHServer

from clive.session import Recorder
from clive.terminal import Terminal, TerminalError
from clive.terminal.nested import SCREEN_RULE
from clive.terminal.nesting import nested_shell


@pytest.mark.parametrize(
    ("command", "launcher"),
    [
        ("ssh gpu-box", "ssh"),
        ("ssh -p 2222 -i ~/.ssh/k me@10.0.0.5", "ssh"),
        ("ssh -t gpu-box bash -l", "ssh"),
        ("ssh gpu-box nvidia-smi", None),
        ("ssh -N -L 8000:127.0.0.1:8000 gpu-box", None),
        ("su", "su"),
        ("su - nobody", "su"),
        ("su -c id nobody", None),
        ("sudo -i", "sudo"),
        ("sudo su -", "sudo"),
        ("sudo make install", None),
        ("docker exec -it box bash", "docker"),
        ("docker exec box ls", None),
        ("kubectl exec -it pod -- /bin/sh", "kubectl"),
        ("bash", "bash"),
        ("bash build.sh", None),
        ("zsh -c 'echo hi'", None),
        ("python3", None),
    ],
)
def test_which_command_lines_start_a_shell(command, launcher):
    assert nested_shell(command) == launcher


needs_sshd = pytest.mark.skipif(SSHD is None, reason="sshd is not installed (openssh-server; .ci/run installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if SSHD is None:
        pytest.skip("sshd is not installed (openssh-server; .ci/run installs it)")
    ssh = SSHServer(tmp_path_factory.mktemp("sshd"))
    yield ssh
    ssh.close()


@needs_sshd
def test_run_over_ssh_returns_exact_exit_codes_and_the_recording_holds_no_nonce(server, tmp_path):
    recorder = Recorder.create(tmp_path / "sessions", {"playbook": "-"}, 100, 30)
    with Terminal(cwd=tmp_path, cols=100, rows=30, listeners=[recorder]) as term:
        entered = term.run(server.command(), timeout=30)
        assert (entered.entered, entered.completion) == ("ssh", "marker"), entered
        assert term.nested is not None and term.nested.remote and term.nested.launcher == "ssh"
        assert [term.run(c).exit_code for c in ("true", "false", "(exit 7)")] == [0, 1, 7]
        assert term.run("echo $SSH_CONNECTION").output.startswith("127.0.0.1 ")
        assert term.run("seq 3").output == "1\n2\n3"
        assert "in the shell ssh started" in term.state().describe()
        nonces = [n.decode() for n in term._markers.shells]
        back = term.run("exit")
        assert back.exit_code == 0 and term.nested is None
        assert term.run("echo ${SSH_CONNECTION:-local}").output == "local"
        assert len(nonces) == 2
    recorder.close("done")
    recorded = b"".join(p.read_bytes() for p in recorder.path.iterdir() if p.is_file())
    for nonce in nonces:
        assert nonce.encode() not in recorded
    assert b"SSH_CONNECTION" in recorded


@needs_sshd
def test_vim_edits_a_file_over_ssh_and_ctrl_c_interrupts_there(server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("one\n")
    with Terminal(cwd=tmp_path, cols=100, rows=30) as term:
        assert term.run(server.command(), timeout=30).entered == "ssh"
        term.run(f"cd {tmp_path}")
        term.type("vim -u NONE -N notes.txt\r")
        term.wait_text('"notes.txt"', timeout=10)
        term.press("Otwo<Esc>:wq<Enter>")
        term.wait_prompt(timeout=10)
        assert notes.read_text() == "two\none\n"
        term.type("sleep 30\r")
        term.wait_text("sleep 30", timeout=5)
        time.sleep(0.3)
        started = time.monotonic()
        term.interrupt()
        assert time.monotonic() - started < 5
        assert term.nested is not None and term.nested.launcher == "ssh"  # the session lives on
        assert term.run("echo still here").output == "still here"
        term.run("exit")


@needs_sshd
def test_a_refused_login_is_the_commands_result(server, tmp_path):
    with Terminal(cwd=tmp_path) as term:
        refused = term.run(server.command("-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null",
                                          "-o", "PubkeyAuthentication=no"), timeout=30)
        assert refused.entered is None and refused.exit_code == 255
        assert "Permission denied" in refused.output
        assert term.nested is None and term.run("true").exit_code == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="su to another user without a password needs root")
def test_su_to_another_user_keeps_exact_exit_codes(tmp_path):
    with Terminal(cwd="/") as term:
        entered = term.run("su -s /bin/bash nobody", timeout=15)
        assert entered.entered == "su" and term.nested is not None and not term.nested.remote
        assert term.run("id -un").output == "nobody"
        assert [term.run(c).exit_code for c in ("true", "false")] == [0, 1]
        term.type("sleep 30\r")
        term.wait_text("sleep 30", timeout=5)
        time.sleep(0.2)
        term.interrupt()
        assert term.run("id -un").output == "nobody"
        assert term.run("exit").exit_code == 0 and term.nested is None
        assert term.run("id -un").output != "nobody"


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is not installed")
def test_a_shell_without_integration_ends_commands_by_the_named_screen_rule(tmp_path):
    with Terminal(cwd=tmp_path) as term:
        entered = term.run("dash", timeout=15)
        assert entered.entered == "dash" and entered.completion == SCREEN_RULE
        assert term.nested is not None and term.nested.nonce is None
        result = term.run("echo hi from dash")
        assert (result.output, result.exit_code, result.completion) == ("hi from dash", -1, SCREEN_RULE)
        term.run("exit")
        assert term.nested is None
        assert term.run("false").exit_code == 1  # markers again


def test_a_password_prompt_while_entering_is_refused_and_interrupted(tmp_path):
    script = tmp_path / "fake-login"
    script.write_text("#!/bin/bash\nread -s -p 'Password: ' pw\necho\nexec bash --norc\n")
    script.chmod(0o755)
    with Terminal(cwd=tmp_path) as term:
        # A launcher clive knows by name, asking for a secret before its shell starts.
        term.run(f"ln -s {script} ssh && export PATH=$PWD:$PATH")
        with pytest.raises(TerminalError, match="asked for a password"):
            term.run("ssh somewhere", timeout=15)
        assert term.at_prompt and term.run("true").exit_code == 0


@needs_sshd
def test_a_session_started_on_ssh_runs_its_steps_there(server, tmp_path, monkeypatch, capsys):
    from clive.experiments.runner import RunOptions, run

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    option = server.command().split()[1:-1]  # -i KEY -p PORT -o ...: as an ssh_config host entry
    pairs = [(option[i], option[i + 1]) for i in range(0, len(option), 2)]
    lines = ["Host gpu-box", "  HostName 127.0.0.1", f"  User {server.user}"]
    names = {"-i": "IdentityFile", "-p": "Port"}
    lines += [f"  {names[flag]} {value}" if flag in names else f"  {value.replace('=', ' ')}" for flag, value in pairs]
    (home / ".ssh" / "config").write_text("\n".join(lines) + "\n")
    # ssh reads the config of the passwd entry's home, not $HOME: a wrapper first on PATH names it.
    wrapper = home / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {home}/.ssh/config "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    playbook = tmp_path / "remote.md"
    playbook.write_text("---\nsteps:\n  - echo on $SSH_CONNECTION\n  - (exit 3)\n---\nLook around over there.\n")
    code = run(RunOptions(playbook=playbook, sessions=tmp_path / "sessions", workdir=tmp_path, ssh="gpu-box"))
    err = capsys.readouterr().err
    assert "entered the shell ssh started" in err
    (session,) = (tmp_path / "sessions").iterdir()
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    runs = [e for e in events if e["type"] == "cycle" and e["action"]["type"] == "run"]
    assert runs[0]["action"]["command"] == "ssh gpu-box"
    assert runs[1]["outcome"]["output"].startswith("on 127.0.0.1 ")
    assert runs[2]["outcome"]["exit_code"] == 3  # exact, over there
    assert code == 0


def test_an_ssh_target_that_reads_as_an_option_is_refused(tmp_path):
    from clive.cli import main

    assert main(["tui", "--ssh=-oProxyCommand=touch x", "--sessions", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


@needs_sshd
def test_a_shell_inside_the_remote_shell_is_nested_once_more(server, tmp_path):
    with Terminal(cwd=tmp_path) as term:
        assert term.run(server.command(), timeout=30).entered == "ssh"
        inner = term.run("bash", timeout=15)
        assert inner.entered == "bash" and term.nested is not None
        assert (term.nested.launcher, term.nested.remote, term.nested.level) == ("bash", True, 2)
        assert term.run("false").exit_code == 1
        assert term.run("exit").exit_code == 1  # bash ends with its last command's status
        assert term.nested is not None and term.nested.launcher == "ssh"
        assert term.run("(exit 4)").exit_code == 4
        assert term.run("exit").exit_code == 4 and term.nested is None


@needs_sshd
def test_ssh_typed_as_keys_at_the_prompt_is_entered_as_run_enters_it(server, tmp_path):
    from clive.agent.actions import Keys, Run
    from clive.agent.executor import Executor

    with Terminal(cwd=tmp_path) as term:
        executor = Executor(term, tmp_path)
        entered = executor.execute(Keys(server.command() + "<Enter>"))
        assert entered.ok and "entered the shell ssh started" in entered.text
        assert executor.execute(Run("false")).exit_code == 1  # exact, over there
        term.type("read -s -p 'Passphrase for the vault: ' x\r")
        term.wait_text(re.compile(r"(?m)^Passphrase for the vault:"), timeout=5)  # the prompt, not the echo
        refused = executor.execute(Keys("hunter22<Enter>"))  # the far side asks for a secret: the screen says so
        assert refused.refused and "password" in refused.text
        term.press("<C-c>")
        term.wait_prompt(timeout=5)
        assert executor.execute(Run("exit")).exit_code == 130
