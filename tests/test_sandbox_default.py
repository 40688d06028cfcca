"""A model-driven run is sandboxed unless the person says --no-sandbox: it cannot read what lies
outside its view, and a secret it prints inside the workdir reaches neither the model nor the
recording (the real SDK against a fake Messages API on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakeapi import FakeMessagesAPI, tool_use

TASK = "# Look around\nRead the files of this folder and report what they hold.\n"


def _clive(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clive", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def _api_env(url: str) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test-key",
            "CLIVE_MODEL": "claude-sonnet-4-6"}


@pytest.fixture
def path_without_bwrap(tmp_path):
    """A PATH with every program of this one but bubblewrap, as on a machine without it."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for folder in reversed(os.environ["PATH"].split(os.pathsep)):  # the first on PATH wins, as the shell does
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            if entry.name != "bwrap":
                link = bin_dir / entry.name
                link.unlink(missing_ok=True)
                link.symlink_to(entry.path)
    return str(bin_dir)


def test_a_model_run_without_bubblewrap_stops_in_one_line_before_anything_is_made(tmp_path, path_without_bwrap):
    (tmp_path / "task.md").write_text(TASK)
    env = {**_api_env("http://127.0.0.1:9"), "PATH": path_without_bwrap}  # the API is never asked
    done = _clive(["run", "task.md", "--policy", "claude"], tmp_path, env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "bubblewrap" in done.stderr and "--no-sandbox" in done.stderr
    assert not (tmp_path / "sessions").exists()


def test_with_no_sandbox_a_model_run_goes_on_and_says_so(tmp_path, path_without_bwrap):
    (tmp_path / "task.md").write_text(TASK)
    with FakeMessagesAPI([tool_use("run", {"command": "ls"}), tool_use("done", {"summary": "seen"})]) as api:
        env = {**_api_env(api.url), "PATH": path_without_bwrap}
        done = _clive(["run", "task.md", "--policy", "claude", "--no-sandbox"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "not sandboxed" in done.stderr
    (session,) = (tmp_path / "sessions").iterdir()
    assert json.loads((session / "meta.json").read_text())["sandbox"] is False


def _pem(body: bytes) -> str:
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_a_model_run_is_sandboxed_and_keys_reach_neither_the_model_nor_the_recording(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    outside_key = _pem(secrets.token_bytes(300))
    (home / ".ssh" / "id_ed25519").write_text(outside_key)
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    (work / "task.md").write_text(TASK)
    inside_key = _pem(secrets.token_bytes(300))
    (work / "deploy.pem").write_text(inside_key)
    token = "sk-ant-api03-" + secrets.token_urlsafe(40)
    (work / "settings.env").write_text(f"ANTHROPIC_KEY_FOR_DEPLOY={token}\n")
    script = [
        tool_use("run", {"command": f"cat {home}/.ssh/id_ed25519"}),
        tool_use("run", {"command": "cat ~/.ssh/id_ed25519"}),
        tool_use("run", {"command": "cat deploy.pem settings.env"}),
        tool_use("read_file", {"path": "deploy.pem"}),
        tool_use("done", {"summary": "read what there was"}),
    ]
    with FakeMessagesAPI(script) as api:
        done = _clive(["run", "task.md", "--policy", "claude"], work, _api_env(api.url))
    assert done.returncode == 0, done.stderr
    assert "sandboxed (bubblewrap" in done.stderr
    (session,) = (work / "sessions").iterdir()
    assert json.loads((session / "meta.json").read_text())["sandbox"] is True
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    runs = [e for e in events if e["type"] == "cycle" and e["action"]["type"] == "run"]
    assert [r["outcome"]["exit_code"] != 0 for r in runs] == [True, True, False]  # the home's key is not there

    key_lines = [line for key in (outside_key, inside_key) for line in key.splitlines() if "-----" not in line]
    sent = "\n".join(json.dumps(r.body) for r in api.requests)
    recorded = "\n".join(p.read_text(errors="replace") for p in session.rglob("*") if p.is_file() and p.suffix != ".db")
    for line in [*key_lines, token]:
        assert line not in sent
        assert line not in recorded
    assert "[redacted]" in sent and "-----BEGIN OPENSSH PRIVATE KEY-----" in sent  # the model is told a key was there
    assert "[redacted]" in (session / "terminal.cast").read_text()
