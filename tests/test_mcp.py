"""`clive mcp`: terminals served to MCP clients, driven here with the SDK's own clients over stdio and
streamable HTTP, against a real `clive mcp` subprocess (on 127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from sshd import SSHD, SSHServer

from clive.mcp.auth import BearerGuard
from clive.mcp.tools import as_notation
from clive.session import SessionReader, format_timeline
from clive.terminal.keys import parse_keys

CLIVE = [sys.executable, "-m", "clive"]
DENIED = r"\bforbidden-tool\b"


class McpClient:
    """An SDK client kept open on a blocking portal, so that tests (and their threads) call it plainly."""

    def __init__(self, portal: BlockingPortal, server: Any) -> None:
        self._portal = portal
        self._cm = portal.wrap_async_context_manager(Client(server, read_timeout_seconds=60))
        self._client = self._cm.__enter__()

    def call(self, tool: str, **arguments: Any) -> Any:
        return self._portal.call(self._client.call_tool, tool, arguments)

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """The structured reply of a call that must succeed."""
        result = self.call(tool, **arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content

    def error(self, tool: str, **arguments: Any) -> str:
        """The text of a call that must fail."""
        result = self.call(tool, **arguments)
        assert result.is_error, result.content[0].text
        return result.content[0].text

    def tools(self) -> list[Any]:
        return self._portal.call(self._client.list_tools).tools

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp")


@pytest.fixture(scope="module")
def mcp(portal: BlockingPortal, world: Path) -> Iterator[McpClient]:
    """One stdio server for the module, with a --deny rule of its own."""
    params = StdioServerParameters(
        command=CLIVE[0], args=[*CLIVE[1:], "mcp", "--sessions", str(world / "sessions"), "--deny", DENIED],
        cwd=str(world),
    )
    client = McpClient(portal, params)
    yield client
    client.close()


@pytest.fixture
def term(mcp: McpClient) -> Iterator[str]:
    """A fresh 80x24 terminal, closed afterwards."""
    tid = mcp.ok("open_terminal", cols=80, rows=24)["terminal"]
    yield tid
    mcp.call("close_terminal", terminal=tid)


def test_the_tools_carry_schemas_and_descriptions_for_a_model(mcp):
    tools = {tool.name: tool for tool in mcp.tools()}
    assert {"open_terminal", "list_terminals", "close_terminal", "run", "press", "type", "look", "wait",
            "interrupt", "resize", "checkpoint"} <= set(tools)
    for tool in tools.values():
        assert len(tool.description) > 40, tool.name
        assert tool.input_schema["type"] == "object"
    assert tools["run"].input_schema["required"] == ["terminal", "command"]


def test_run_reports_the_exit_codes_of_true_and_false(mcp, term):
    assert mcp.ok("run", terminal=term, command="true")["exit_code"] == 0
    failed = mcp.ok("run", terminal=term, command="false")
    assert failed["exit_code"] == 1
    assert failed["duration"] >= 0


def test_output_that_scrolled_off_the_screen_comes_back_whole(mcp, term):
    reply = mcp.ok("run", terminal=term, command="seq 1 2000")
    assert reply["output"].split() == [str(n) for n in range(1, 2001)]


def test_long_output_is_cut_with_a_note_and_read_in_pages(mcp, term):
    expected = "".join(f"{n}\n" for n in range(1, 60001)).rstrip("\n")
    reply = mcp.ok("run", terminal=term, command="seq 1 60000")
    assert reply["cut"] and reply["output_chars"] == len(expected)
    note = re.search(r"read_output terminal=(\S+) run=(\d+) offset=(\d+)", reply["output"])
    assert note, reply["output"][:300]
    assert reply["output"].startswith(expected[: int(note.group(3))])
    pages, offset = [], 0
    while offset < reply["output_chars"]:
        page = mcp.ok("read_output", terminal=term, run=int(note.group(2)), offset=offset, limit=50_000)
        pages.append(page["output"])
        offset = page["end"]
    assert "".join(pages) == expected


def test_vim_edits_a_file_through_keys_and_waits(mcp, term, world):
    if shutil.which("vim") is None:
        pytest.skip("needs vim")
    target = world / "notes.txt"
    started = mcp.ok("run", terminal=term, command=f"vim -u NONE -N {target}")
    assert started["running"] and started["state"]["activity"] == "waiting_keys", started
    mcp.ok("press", terminal=term, keys="iwritten through MCP<Esc>")
    seen = mcp.ok("wait", terminal=term, until="text", pattern="written through MCP")
    assert "written through MCP" in seen["screen"]
    mcp.ok("press", terminal=term, keys=":wq<Enter>")
    back = mcp.ok("wait", terminal=term, until="prompt")
    assert back["state"]["activity"] == "at_prompt"
    assert back["ended"]["exit_code"] == 0
    assert target.read_text() == "written through MCP\n"


def test_run_refuses_while_a_program_waits_for_input_and_goes_on_once_it_ends(mcp, term, world):
    if shutil.which("vim") is None:
        pytest.skip("needs vim")
    mcp.ok("type", terminal=term, text=f"vim -u NONE -N {world / 'held.txt'}\n")
    assert mcp.ok("wait", terminal=term)["state"]["activity"] == "waiting_keys"
    assert "vim is waiting for input" in mcp.error("run", terminal=term, command="echo too-soon")
    mcp.ok("press", terminal=term, keys="ikept<Esc>:wq<Enter>")
    after = mcp.ok("run", terminal=term, command="echo after-vim")  # at once: vim is on its way out
    assert (after["exit_code"], after["output"].strip()) == (0, "after-vim")
    assert (world / "held.txt").read_text() == "kept\n"
    assert "too-soon" not in mcp.ok("look", terminal=term)["screen"]


def test_a_password_prompt_shows_in_the_state_and_is_never_typed_into(mcp, term):
    asked = mcp.ok("run", terminal=term, command="read -s -p 'Password: ' secret; echo got=${#secret}")
    assert asked["running"] and asked["state"]["password"] and asked["state"]["activity"] == "waiting_secret"
    looked = mcp.ok("look", terminal=term)
    assert "password requested" in looked["state"]["description"] and "Password:" in looked["screen"]
    assert "password" in mcp.error("type", terminal=term, text="hunter22\n")
    assert "password" in mcp.error("press", terminal=term, keys="hunter22<Enter>")
    mcp.ok("interrupt", terminal=term)
    after = mcp.ok("run", terminal=term, command="echo ${#secret}")
    assert after["output"].strip() == "0"  # nothing reached the prompt


def test_a_python_getpass_prompt_is_refused_too(mcp, term):
    mcp.ok("type", terminal=term, text=f"{sys.executable} -c 'import getpass; getpass.getpass()'\n")
    state = mcp.ok("wait", terminal=term, until="ready", timeout=20)["state"]
    assert state["password"], state
    assert "password" in mcp.error("type", terminal=term, text="x\n")
    mcp.ok("interrupt", terminal=term)


def test_interrupt_ends_a_sleep(mcp, term):
    began = time.monotonic()
    left = mcp.ok("run", terminal=term, command="sleep 30", timeout=0.3)
    assert left["running"] and left["state"]["activity"] in ("blocked", "running")
    assert "still going" in mcp.error("run", terminal=term, command="true")
    back = mcp.ok("interrupt", terminal=term)
    assert back["state"]["activity"] == "at_prompt"
    assert back["ended"]["exit_code"] == 130
    assert time.monotonic() - began < 20
    assert mcp.ok("run", terminal=term, command="true")["exit_code"] == 0


BAD_CALLS = [
    ("run", {"terminal": "t999", "command": "true"}, "no terminal 't999'"),
    ("press", {"terminal": "TERM", "keys": "<NoSuchKey>"}, "unknown key"),
    ("wait", {"terminal": "TERM", "timeout": -1}, "timeout must be at least 0"),
    ("wait", {"terminal": "TERM", "until": "text"}, "needs a pattern"),
    ("wait", {"terminal": "TERM", "until": "text", "pattern": "("}, "bad pattern"),
    ("run", {"terminal": "TERM", "command": 42}, "command must be a string"),
    ("run", {"terminal": "TERM"}, "missing argument 'command'"),
    ("resize", {"terminal": "TERM", "cols": 0, "rows": 10}, "cols must be at least"),
    ("look", {"terminal": "TERM", "colour": True}, "unknown argument 'colour'"),
    ("no_such_tool", {}, "unknown tool"),
]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    if SSHD is None:
        pytest.skip("sshd is not installed (openssh-server; .ci/run installs it)")
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.close()


def test_run_enters_ssh_and_keeps_exact_exit_codes_there(mcp, term, sshd):
    entered = mcp.ok("run", terminal=term, command=sshd.command(), timeout=30)
    assert entered["entered"] == "ssh" and entered["exit_code"] is None
    assert [mcp.ok("run", terminal=term, command=c)["exit_code"] for c in ("true", "false", "(exit 7)")] == [0, 1, 7]
    assert mcp.ok("run", terminal=term, command="echo $SSH_CONNECTION")["output"].startswith("127.0.0.1 ")
    assert "in the shell ssh started" in mcp.ok("look", terminal=term)["state"]["description"]
    assert mcp.ok("run", terminal=term, command="exit")["exit_code"] == 0
    assert mcp.ok("run", terminal=term, command="echo ${SSH_CONNECTION:-local}")["output"] == "local"


@pytest.mark.parametrize(("tool", "arguments", "says"), BAD_CALLS, ids=[c[2] for c in BAD_CALLS])
def test_bad_arguments_are_one_line_tool_errors_and_the_server_goes_on(mcp, term, tool, arguments, says):
    arguments = {k: term if v == "TERM" else v for k, v in arguments.items()}
    text = mcp.error(tool, **arguments)
    assert says in text and "\n" not in text
    assert mcp.ok("run", terminal=term, command="true")["exit_code"] == 0


def test_the_guard_and_deny_rules_refuse_and_say_why(mcp, term):
    assert "recursive delete" in mcp.error("run", terminal=term, command="rm -rf / --no-preserve-root")
    assert "deny pattern" in mcp.error("run", terminal=term, command="forbidden-tool --now")
    assert "deny pattern" in mcp.error("type", terminal=term, text="forbidden-tool\n")
    assert "forbidden-tool" not in mcp.ok("look", terminal=term)["screen"]  # nothing was typed


def test_eight_terminals_work_at_once(mcp):
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: mcp.ok("open_terminal", cols=40, rows=10)["terminal"], range(8)))
        assert len(set(ids)) == 8
        listed = {t["terminal"] for t in mcp.ok("list_terminals")["terminals"]}
        assert set(ids) <= listed
        squares = list(pool.map(
            lambda n: mcp.ok("run", terminal=ids[n], command=f"sleep 0.2; echo $(({n} * {n}))")["output"].strip(),
            range(8),
        ))
        assert squares == [str(n * n) for n in range(8)]
        list(pool.map(lambda tid: mcp.ok("close_terminal", terminal=tid), ids))
    assert not set(ids) & {t["terminal"] for t in mcp.ok("list_terminals")["terminals"]}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_checkpoint_saves_the_work_without_touching_the_users_branch_index_or_files(mcp, world):
    repo = world / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "kept.txt").write_text("one\n")
    _git(repo, "add", "kept.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    (repo / "kept.txt").write_text("two\n")
    _git(repo, "add", "kept.txt")  # staged
    (repo / "draft.txt").write_text("untracked\n")
    before = (_git(repo, "rev-parse", "HEAD"), _git(repo, "symbolic-ref", "HEAD"),
              (repo / ".git" / "index").read_bytes(), _git(repo, "status", "--porcelain"))
    tid = mcp.ok("open_terminal", cwd=str(repo))["terminal"]
    mcp.ok("run", terminal=tid, command="echo made by the agent > made.txt")
    saved = mcp.ok("checkpoint", terminal=tid, message="the agent's work")
    assert saved["ref"].startswith("refs/clive/") and saved["n"] == 1
    assert _git(repo, "show", f"{saved['ref']}:made.txt") == "made by the agent\n"
    assert _git(repo, "show", f"{saved['ref']}:kept.txt") == "two\n"
    assert _git(repo, "log", "-1", "--format=%s", saved["ref"]).strip() == "the agent's work"
    after = (_git(repo, "rev-parse", "HEAD"), _git(repo, "symbolic-ref", "HEAD"),
             (repo / ".git" / "index").read_bytes(), _git(repo, "status", "--porcelain"))
    assert after[:3] == before[:3]
    assert after[3] == before[3] + "?? made.txt\n"
    mcp.ok("close_terminal", terminal=tid)
    assert "not a git repository" in mcp.error("checkpoint", terminal=mcp.ok("open_terminal", cwd="/")["terminal"],
                                               message="x")


def test_every_terminal_is_a_session_that_replays(mcp, world):
    opened = mcp.ok("open_terminal", cols=80, rows=24)
    tid, session = opened["terminal"], Path(opened["session"])
    mcp.ok("run", terminal=tid, command="true")
    mcp.ok("run", terminal=tid, command="false")
    mcp.ok("type", terminal=tid, text="echo typed-by-mcp\n")
    mcp.ok("wait", terminal=tid, until="text", pattern="^typed-by-mcp", timeout=10)
    mcp.error("run", terminal=tid, command="forbidden-tool")
    mcp.ok("close_terminal", terminal=tid)
    assert session.parent == world / "sessions"
    meta = json.loads((session / "meta.json").read_text())
    assert (meta["policy"], meta["kind"], meta["status"]) == ("mcp", "mcp", "done")
    reader = SessionReader.open(session)
    timeline = "\n".join(format_timeline(reader))
    assert re.search(r"run true\s+exit 0", timeline) and re.search(r"run false\s+exit 1", timeline), timeline
    assert "keys echo typed-by-mcp<Enter>" in timeline and "run forbidden-tool" in timeline
    assert reader.problems == []
    last = reader.screen_at_event(reader.cast_length)
    assert "typed-by-mcp" in last.text()
    printed = subprocess.run([*CLIVE, "replay", str(session), "--print"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0 and "run false" in printed.stdout


def test_a_sandboxed_terminal_writes_only_its_workdir(mcp, world):
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap (bwrap)")
    box = world / "box"
    box.mkdir()
    opened = mcp.call("open_terminal", cwd=str(box), sandbox=True)
    if opened.is_error:
        pytest.skip(f"bubblewrap cannot start here: {opened.content[0].text}")
    tid = opened.structured_content["terminal"]
    assert mcp.ok("run", terminal=tid, command="echo inside > here.txt")["exit_code"] == 0
    assert (box / "here.txt").read_text() == "inside\n"
    mcp.ok("run", terminal=tid, command=f"touch {world}/outside.txt")  # a private /tmp inside, if anything
    assert not (world / "outside.txt").exists()
    assert mcp.ok("run", terminal=tid, command="touch /usr/clive-mcp-test")["exit_code"] != 0
    mcp.ok("close_terminal", terminal=tid)


@given(st.text())
def test_typed_text_is_recorded_as_key_notation_that_types_exactly_it(text):
    assert parse_keys(as_notation(text)) == text


# ---- a client that dies ----------------------------------------------------------------------

DYING_CLIENT = textwrap.dedent(
    """
    import json, sys, anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async def main():
        params = StdioServerParameters(command=sys.executable, args=["-m", "clive", "mcp", "--sessions", sys.argv[1]])
        async with Client(params) as client:
            pids = {}
            for n in range(2):
                tid = (await client.call_tool("open_terminal", {})).structured_content["terminal"]
                command = "sleep 300 & echo pids $! $$ $PPID"
                reply = await client.call_tool("run", {"terminal": tid, "command": command})
                sleeper, shell, server = reply.structured_content["output"].rsplit("pids ", 1)[1].split()
                pids[tid] = [int(sleeper), int(shell), int(server)]
            await client.call_tool("run", {"terminal": "t1", "command": "sleep 300", "timeout": 0.2})
            print(json.dumps(pids), flush=True)
            await anyio.sleep(3600)

    anyio.run(main)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_client_killed_with_sigkill_leaves_no_process_behind(world):
    sessions = world / "dying"
    client = subprocess.Popen([sys.executable, "-c", DYING_CLIENT, str(sessions)], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        line = client.stdout.readline()
        assert line, "the client did not start"
        pids = [pid for group in json.loads(line).values() for pid in group]
        assert all(_alive(pid) for pid in pids)
    finally:
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if _alive(pid)] == []
    for meta in sessions.glob("*/meta.json"):
        assert json.loads(meta.read_text())["status"] != "running"


# ---- HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server(world: Path) -> Iterator[tuple[str, str]]:
    """`clive mcp --http 0`: its URL and the token it printed."""
    proc = subprocess.Popen([*CLIVE, "mcp", "--http", "0", "--sessions", str(world / "http-sessions")],
                            cwd=world, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    deadline = time.monotonic() + 30
    url = token = None
    while (url is None or token is None) and time.monotonic() < deadline and proc.poll() is None:
        text = "".join(lines)
        url = (m := re.search(r"serving on (http://\S+/mcp)", text)) and m.group(1)
        token = (m := re.search(r"bearer token: (\S+)", text)) and m.group(1)
        time.sleep(0.02)
    assert url and token, "".join(lines)
    yield url, token
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def _post(url: str, headers: dict[str, str]) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_http_listens_on_127_0_0_1_only(http_server):
    url, _ = http_server
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    listening = [
        line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port
    ]
    assert listening == [f"0100007F:{port:04X}"]


def test_http_without_the_token_or_with_a_wrong_one_is_401(http_server):
    url, token = http_server
    assert _post(url, {}) == 401
    assert _post(url, {"Authorization": "Bearer " + "x" * len(token)}) == 401
    assert _post(url, {"Authorization": token}) == 401  # not as a bearer token


def test_http_with_the_token_serves_the_tools(http_server, portal):
    url, token = http_server

    async def session() -> tuple[int, int]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tid = (await client.call_tool("open_terminal", {})).structured_content["terminal"]
                codes = [(await client.call_tool("run", {"terminal": tid, "command": c})).structured_content
                         ["exit_code"] for c in ("true", "false")]
                await client.call_tool("close_terminal", {"terminal": tid})
                return codes[0], codes[1]

    assert portal.call(session) == (0, 1)


def test_http_refuses_clients_on_other_machines_unless_bound_there_on_purpose():
    async def ask(guard_remote: bool, client: str) -> int:
        statuses: list[int] = []

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "client": (client, 40000), "headers": [(b"authorization", b"Bearer " + b"k" * 20)]}
        await BearerGuard(app, "k" * 20, remote=guard_remote)(scope, receive, send)
        return statuses[0]

    assert anyio.run(ask, False, "127.0.0.1") == 200
    assert anyio.run(ask, False, "10.1.2.3") == 403
    assert anyio.run(ask, True, "10.1.2.3") == 200


# ---- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--token", "x" * 20], "go with --http"),
        (["--http", "0", "--token", "short"], "at least 16 characters"),
        (["--http", "70000"], "--http"),
        (["--deny", "("], "bad deny pattern"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, says):
    done = subprocess.run([*CLIVE, "mcp", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert says in done.stderr and done.stderr.count("\n") == 1


def test_without_the_sdk_it_says_how_to_install_it():
    script = "import sys; sys.modules['mcp'] = None; from clive.cli import main; sys.exit(main(['mcp']))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'clive[mcp]'" in done.stderr and done.stderr.count("\n") == 1
