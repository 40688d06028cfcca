"""A whole task done by the agent loop with the claude policy, through the real SDK and a fake API."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fakeapi import FakeMessagesAPI, http_error, malformed, text_only, tool_use

PLAYBOOK = "# Hello in C\nWrite hello.c with vim that prints 6*7, compile it with gcc, run it, report the number.\n"

C_LINE = 'i#include <lt>stdio.h><Enter>int main(void) { printf("%d\\n", 6 * 7); return 0; }<Esc>'


def test_claude_writes_compiles_and_runs_c_through_the_terminal(tmp_path):
    (tmp_path / "task.md").write_text(PLAYBOOK)
    script = [
        tool_use("keys", {"keys": "vim -u NONE -N hello.c<Enter>", "wait": {"kind": "text", "value": '"hello.c"'}},
                 text="I'll open vim."),
        http_error(529, "Overloaded"),
        tool_use("keys", {"keys": C_LINE, "wait": {"kind": "idle", "value": 200}}),
        malformed("keys", '{"keys": ":wq<Enter>", "wait": '),
        tool_use("keys", {"keys": ":wq<Enter>", "wait": {"kind": "prompt"}}),
        tool_use("run", {"command": "gcc -O2 -o hello hello.c && ./hello"}),
        text_only("The program printed 42."),
        tool_use("done", {"summary": "hello.c prints 42"}),
    ]
    with FakeMessagesAPI(script) as api:
        env = {**os.environ, "ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "test-key",
               "CLIVE_MODEL": "claude-sonnet-4-6"}
        done = subprocess.run([sys.executable, "-m", "clive", "run", "task.md", "--policy", "claude"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "hello.c prints 42" in done.stderr
    assert "printf" in (tmp_path / "hello.c").read_text()

    (session,) = (tmp_path / "sessions").iterdir()
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    cycles = [e for e in events if e["type"] == "cycle"]
    assert [c["action"]["type"] for c in cycles] == ["keys", "keys", "keys", "run", "done"]
    assert cycles[3]["outcome"]["output"] == "42"
    assert cycles[0]["reasoning"] == "I'll open vim."
    assert [e["count"] for e in events if e["type"] == "invalid_reply"] == [1, 1]
    meta = json.loads((session / "meta.json").read_text())
    assert meta["status"] == "done" and meta["policy"] == "claude"

    bodies = [r.body for r in api.requests]
    assert len(bodies) == 8  # the 529 was retried
    first = bodies[0]
    assert {t["name"] for t in first["tools"]} == {
        "keys", "run", "read_file", "write_file", "edit_file", "checkpoint", "result", "done"}
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "Write hello.c with vim" in json.dumps(first["system"])
    # The first observation is the whole screen; later ones carry only what changed.
    first_text = json.dumps(first["messages"][-1])
    assert "[screen 120x32" in first_text
    # vim's screen is new to the model: it is sent whole.
    assert "[screen 120x32, alternate]" in json.dumps(bodies[1]["messages"][-1])
    after_run = json.dumps(bodies[6]["messages"][-1])
    assert "[changed rows" in after_run and "[screen 120x32" not in after_run
    # The malformed reply was answered with an error tool_result before the next observation.
    after_bad = json.dumps(bodies[4]["messages"])
    assert '"is_error": true' in after_bad
    # The replay shows every cycle.
    timeline = subprocess.run([sys.executable, "-m", "clive", "replay", str(session), "--print"],
                              capture_output=True, text=True, timeout=60).stdout
    assert timeline.count("\n") >= 5 and "gcc -O2" in timeline
