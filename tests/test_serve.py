"""`clive serve` and `clive run --serve` as a person uses them: a real headless Chromium opens the
printed address, the viewer's screen arrives over its websocket (read back by feeding the frames
the browser received to pyte), a key steps the replay, and the browser never calls anyone but
127.0.0.1. Also: loopback only by default, a token anywhere else, bad input in one line."""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pyte
import pytest

from clive import cli
from clive.tui.serve import without_serve

CLIVE = [sys.executable, "-m", "clive"]
DATA = Path(__file__).parent / "data" / "tui-session"  # a recorded session
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}  # the rest (data:, chrome:, blob:) stay in the browser
WAIT = 20.0  # seconds for the browser to show what a step expects


# ---- the server ---------------------------------------------------------------------------------


@contextmanager
def _serving(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """Start ``clive ARGS`` and wait for the address it prints; stop it (SIGINT, as Ctrl-C) after."""
    proc = subprocess.Popen([*CLIVE, *args], cwd=cwd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            said.append(line.rstrip("\n"))
            found = re.search(r"http://\S+", line)
            if found:
                url = found.group(0)
                break
        assert url is not None, f"no address printed: {said}"
        yield proc, url, said
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            said.extend(proc.stderr.read().splitlines())


def _session(tmp_path: Path) -> Path:
    copy = tmp_path / DATA.name
    shutil.copytree(DATA, copy)
    return copy


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) != port or state != "0A":  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel writes each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            family = socket.AF_INET if width == 4 else socket.AF_INET6
            found.add(socket.inet_ntop(family, raw))
    return found


# ---- the browser --------------------------------------------------------------------------------


class Browser:
    """One headless Chromium, with what it sent and received read from its DevTools network log."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.requests: list[str] = []
        self.screens: dict[str, pyte.Screen] = {}  # websocket request id -> the screen it drew
        self.streams: dict[str, pyte.ByteStream] = {}
        self.latest: str | None = None

    def open(self, url: str) -> None:
        self.pump()
        self.requests.clear()
        self.screens.clear()
        self.streams.clear()
        self.latest = None
        self.driver.get(url)

    def pump(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message["method"], message["params"]
            if method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif method == "Network.webSocketCreated":
                self.requests.append(params["url"])
                query = parse_qs(urlsplit(params["url"]).query)
                screen = pyte.Screen(int(query["width"][0]), int(query["height"][0]))
                self.screens[params["requestId"]] = screen
                self.streams[params["requestId"]] = pyte.ByteStream(screen)
                self.latest = params["requestId"]
            elif method == "Network.webSocketFrameSent" and params["requestId"] in self.screens:
                sent = json.loads(params["response"]["payloadData"])
                if sent[0] == "resize":
                    self.screens[params["requestId"]].resize(sent[1]["height"], sent[1]["width"])
            elif method == "Network.webSocketFrameReceived" and params["requestId"] in self.streams:
                frame = params["response"]
                if frame["opcode"] == 2:  # binary: the app's terminal output
                    self.streams[params["requestId"]].feed(base64.b64decode(frame["payloadData"]))

    def text(self) -> str:
        self.pump()
        return "\n".join(self.screens[self.latest].display) if self.latest else ""

    def wait_text(self, pattern: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            text = self.text()
            if re.search(pattern, text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never showed; the page's terminal reads:\n{self.text()}")

    def press(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        self.driver.execute_script("document.querySelector('.xterm-helper-textarea').focus()")
        ActionChains(self.driver).send_keys(keys).perform()

    def left_the_machine(self) -> list[str]:
        self.pump()
        return [u for u in self.requests
                if urlsplit(u).scheme in NETWORK_SCHEMES and urlsplit(u).hostname != "127.0.0.1"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        # Every name but 127.0.0.1 fails to resolve: nothing the page asks for can leave the machine.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield Browser(driver)
    finally:
        driver.quit()


def _with_query(url: str, **extra: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | extra
    return parts._replace(query=urlencode(query)).geturl()


# ---- tests --------------------------------------------------------------------------------------


def test_a_recorded_session_opens_in_the_browser_and_j_steps_it(tmp_path, browser):
    session = _session(tmp_path)
    meta = json.loads((session / "meta.json").read_text())
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines() if line.strip()]
    cycles = sum(1 for e in events if e["type"] == "cycle")
    with _serving("serve", str(session), "--port", "0", cwd=tmp_path) as (_, url, _said):
        browser.open(_with_query(url, delay="1"))  # ?delay: the page waits for its Start button
        start = browser.driver.find_element("id", "start")
        assert start.is_displayed()
        start.click()
        first = browser.wait_text(rf"session {meta['id']}.*#1 of {cycles} cycles")
        assert "cycles" in first and "terminal" in first  # the timeline and the terminal pane
        before = browser.driver.get_screenshot_as_png()
        browser.press("j")
        browser.wait_text(rf"#2 of {cycles} cycles")
        time.sleep(0.5)  # xterm.js paints on its next animation frame
        after = browser.driver.get_screenshot_as_png()
        shot = tmp_path / "serve.png"
        browser.driver.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert before != after  # the step is visible, not only in the bytes sent
    assert browser.left_the_machine() == []
    font = [u for u in browser.requests if u.endswith(".ttf")]
    assert font and all(urlsplit(u).hostname == "127.0.0.1" for u in font)  # the page's font is ours
    refused = [e["message"] for e in browser.driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert refused == []


def test_it_listens_on_127_0_0_1_only_and_answers_to_loopback_names_only(tmp_path):
    with _serving("serve", str(_session(tmp_path)), "--port", "0", cwd=tmp_path) as (_, url, said):
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and not parts.query  # no token on loopback
        assert _listening_addresses(parts.port) == {"127.0.0.1"}
        assert _get(url, "/").status == 200
        assert _get(url, "/", {"Host": f"localhost:{parts.port}"}).status == 200
        # A page elsewhere that rebinds its own name to 127.0.0.1, or opens our websocket: refused.
        assert _get(url, "/", {"Host": f"rebound.example:{parts.port}"}).status == 403
        assert _get(url, "/ws", {"Origin": "http://evil.example"}).status == 403
    assert any("Ctrl-C stops" in line for line in said)


def test_another_host_needs_the_token_the_printed_address_carries(tmp_path):
    # 127.0.0.2 reaches this machine only, yet is not the default: the token rules apply.
    with _serving("serve", str(_session(tmp_path)), "--host", "127.0.0.2", "--port", "0", cwd=tmp_path) as (
            _, url, _said):
        token = parse_qs(urlsplit(url).query)["token"][0]
        assert urlsplit(url).hostname == "127.0.0.2"
        for path in ("/", "/ws", "/static/js/textual.js", "/?token=wrong" + token):
            assert _get(url, path).status == 401, path
        page = _get(url, f"/?token={token}")
        assert page.status == 200
        cookie = page.getheader("Set-Cookie").split(";")[0]
        assert _get(url, "/static/js/textual.js", {"Cookie": cookie}).status == 200  # the page's own requests


def test_a_run_served_with_run_serve_is_watched_live_and_ends_with_the_run(tmp_path, browser):
    (tmp_path / "slow.md").write_text("---\nname: slow\nsteps:\n  - echo step-one\n  - sleep 4\n"
                                      "  - echo step-three\n---\nThree steps, the second slow.\n")
    with _serving("run", "slow.md", "--serve", "0", cwd=tmp_path) as (proc, url, said):
        (session,) = (tmp_path / "sessions").iterdir()
        browser.open(url)
        browser.wait_text(rf"● live.*session {session.name}")
        code = proc.wait(timeout=60)  # the run goes on headless and ends on its own
    assert code == 0, said
    assert any("done: all 3 steps done" in line for line in said)
    assert json.loads((session / "meta.json").read_text())["status"] == "done"
    assert browser.left_the_machine() == []


def test_the_co_pilot_in_the_browser_drives_a_shell_and_records_it(tmp_path, browser):
    sessions = tmp_path / "copilot-sessions"
    with _serving("serve", "--port", "0", "--tui", "--sessions", str(sessions), cwd=tmp_path) as (_, url, said):
        browser.open(url)
        browser.wait_text(r"session \d{8}-\d{6}-\w{4}.*human")  # the free-hand co-pilot's first screen
        browser.press("t")  # take over the keyboard
        time.sleep(0.5)
        browser.press("echo hello-from-the-browser\n")
        browser.wait_text(r"┃hello-from-the-browser\s*┃")  # the command's output on a row of its own
        browser.press("\x1d")  # Ctrl-]: hand the keyboard back
    assert any("each browser gets a session of its own" in line for line in said)
    (session,) = sessions.iterdir()
    assert b"hello-from-the-browser" in (session / "terminal.cast").read_bytes()
    assert browser.left_the_machine() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "nope"], "no such session: nope"),
        (["serve", str(DATA), "--port", "70000"], "not a port (0-65535): 70000"),
        (["serve", str(DATA), "--port", "x"], "not a whole number: 'x'"),
        (["serve"], "serve takes a SESSION, or --run PLAYBOOK"),
        (["serve", "--port", "0", "--run", "missing.md"], "missing.md:1: file: no such file"),
        (["serve", "--port", "0", "--run", "x.md", "--max-experiments", "0"], "must be positive, got 0"),
        (["serve", "--port", "0", "--run", "x.md", "--serve", "0"], "not --tui or --serve"),
        (["run", "x.md", "--serve", "0", "--tui"], "--tui and --serve both show the run: choose one"),
        (["serve", str(DATA), "--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid"),
        (["serve", "--port", "0", "--tui", "missing.md"], "missing.md:1: file: no such file"),
        (["serve", str(DATA), "--tui"], "serve takes one of SESSION, --run PLAYBOOK or --tui"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_makes_nothing(tmp_path, args, message):
    done = subprocess.run([*CLIVE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_port_in_use_is_one_line_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args in (["serve", str(DATA), "--port", str(port)], ["run", "x.md", "--serve", str(port)]):
            done = subprocess.run([*CLIVE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 2, done.stderr
            assert f"port {port} on 127.0.0.1 is in use" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_textual_serve_it_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "textual_serve", None)
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert cli.main(["serve", str(DATA), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'clive[serve]'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "kept"),
    [
        (["x.md", "--serve", "0", "--max-cycles", "3"], ["x.md", "--max-cycles", "3"]),
        (["x.md", "--serve=8080"], ["x.md"]),
        (["--ser", "9", "x.md", "--seed", "1"], ["x.md", "--seed", "1"]),
        (["x.md", "--search", "tpe", "--sessions", "s"], ["x.md", "--search", "tpe", "--sessions", "s"]),
    ],
)
def test_the_run_started_for_serve_never_gets_serve_again(argv, kept):
    assert without_serve(argv) == kept
