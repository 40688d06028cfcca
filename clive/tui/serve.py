"""``clive serve``: the viewer in a browser. textual-serve starts one viewer process per browser
connection and carries its screen and keys over a websocket; this is the only module that imports
it. The page is clive's own (serve.html): script, styles and font come from this server, so a
browser that opens it calls no one else.

On 127.0.0.1 (the default) no token is asked, but only requests addressed to a loopback name are
answered and a websocket must come from the page itself: another site open in the same browser
can neither rebind a name to us nor open the viewer's socket. Anywhere else every request needs the
token that the printed address carries (a cookie keeps it for the page's own requests)."""

from __future__ import annotations

import asyncio
import errno
import hmac
import html
import json
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from clive.experiments.errors import BadInput
from clive.tui.watch import SESSION_LINE, STOP_WAIT

if TYPE_CHECKING:
    from aiohttp import web

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})  # hosts served without a token
PAGE = Path(__file__).with_name("serve.html")
INSTALL = "pip install 'clive[serve]'"
TICK = 0.5  # seconds between looks at the run being served
RUN_CODES = {"done": 0, "interrupted": 130}  # a run's status in meta.json -> its exit code (else 1)


@dataclass(frozen=True, slots=True)
class Listener:
    """A socket bound and listening, and the address a browser opens to reach it."""

    sock: socket.socket
    url: str
    token: str | None  # None: loopback, served without one


def require_textual_serve() -> None:
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        raise BadInput(f"serving the viewer needs textual-serve: {INSTALL}") from None


def open_listener(host: str = DEFAULT_HOST, port: int | None = None) -> Listener:
    """Bind ``host:port`` now (0: a free port), so that a taken port is said before anything starts."""
    port = DEFAULT_PORT if port is None else port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise BadInput(f"cannot listen on {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart needs not wait out TIME_WAIT
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BadInput(f"port {port} on {host} is in use: choose another with --port (0 picks a free one)") \
                from None
        if exc.errno == errno.EACCES:
            raise BadInput(f"port {port} needs privileges: choose one above 1023 with --port") from None
        raise BadInput(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    token = None if host in LOOPBACK else secrets.token_urlsafe(18)
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    return Listener(sock, url, token)


# ---- the web application ------------------------------------------------------------------------


def web_app(command: str, title: str, listener: Listener) -> web.Application:
    """The page, its static files and the websocket that runs ``command`` per connection."""
    import textual_serve
    from aiohttp import web
    from textual_serve.server import Server

    bridge = Server(command, title=title)  # runs the command and carries its bytes: textual-serve's part
    static = Path(textual_serve.__file__).parent / "static"
    page = Template(PAGE.read_text(encoding="utf-8"))
    cookie = f"clive-serve-{listener.sock.getsockname()[1]}"
    token = listener.token
    viewers: set[asyncio.BaseTransport] = set()  # the connections of the websockets open now

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if token is None and request.url.host not in LOOPBACK:
            # A name that resolves to us but is not ours: a DNS-rebinding page, not the person.
            raise web.HTTPForbidden(text="clive serve answers to 127.0.0.1 and localhost only\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="clive serve: another site's page may not use this viewer\n")
        if token is not None:
            given = request.query.get("token") or request.cookies.get(cookie) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise web.HTTPUnauthorized(text="clive serve: open the address it printed, token included\n")
        transport = request.transport
        if request.path != "/ws" or transport is None:
            return await handler(request)
        viewers.add(transport)
        try:
            return await handler(request)
        finally:
            viewers.discard(transport)

    async def close_viewers(app: web.Application) -> None:
        # Cut the browsers off when we stop: textual-serve's loop waits for the browser's next
        # message, and the server would wait out its shutdown timeout for every open viewer.
        for transport in list(viewers):
            transport.close()

    async def index(request: web.Request) -> web.Response:
        scheme = "wss" if request.secure else "ws"
        try:
            font_size = max(6, min(48, int(request.query.get("fontsize", "16"))))
        except ValueError:
            font_size = 16
        body = page.substitute(
            title=html.escape(title), static="/static/", font_size=font_size,
            websocket=html.escape(f"{scheme}://{request.host}/ws"),
        )
        response = web.Response(text=body, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        # The browser holds the page to its own server, whatever a script in it might try.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            f"font-src 'self'; img-src 'self' data:; connect-src 'self' {scheme}://{request.host}; "
            "worker-src 'self' blob:; frame-ancestors 'none'"
        )
        if token is not None and request.query.get("token"):
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
        return response

    app = web.Application(middlewares=[guard])
    app.on_shutdown.append(close_viewers)
    app.add_routes([
        web.get("/", index),
        web.get("/ws", bridge.handle_websocket),
        web.get("/download/{key}", bridge.handle_download),
        web.static("/static", static),
    ])
    return app


def serve(listener: Listener, command: str, title: str, tick: Callable[[], bool] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, or until ``tick()`` (called every TICK seconds) says stop."""

    async def main() -> None:
        from aiohttp import web

        runner = web.AppRunner(web_app(command, title, listener), access_log=None, shutdown_timeout=3.0)
        await runner.setup()
        await web.SockSite(runner, listener.sock).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            while not stop.is_set() and not (tick is not None and tick()):
                try:
                    await asyncio.wait_for(stop.wait(), TICK)
                except TimeoutError:
                    pass
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await runner.cleanup()

    asyncio.run(main())


def viewer_command(session_dir: Path) -> str:
    """The shell command textual-serve runs for each browser: this module's viewer on the session."""
    return shlex.join([sys.executable, "-m", "clive.tui.serve", str(session_dir.resolve())])


# ---- clive serve SESSION, clive serve --run, clive run --serve --------------------------------------


def serve_session(session_dir: Path, host: str = DEFAULT_HOST, port: int | None = None,
                  say: Callable[[str], None] | None = None) -> int:
    """``clive serve SESSION``: the viewer on a recording (followed while it grows) until Ctrl-C."""
    from clive.session import SessionReader

    say = say or _stderr
    require_textual_serve()
    reader = SessionReader.open(session_dir)  # not a session: SessionError, before anything listens
    listener = open_listener(host, port)
    with listener.sock:
        say(f"clive: serving session {reader.id} at {listener.url} (Ctrl-C stops)")
        serve(listener, viewer_command(session_dir), f"clive · session {reader.id}")
    return 0


def serve_copilot(tui_argv: list[str], host: str = DEFAULT_HOST, port: int | None = None,
                  say: Callable[[str], None] | None = None) -> int:
    """``clive serve --tui``: the co-pilot in a browser, until Ctrl-C. Each connection runs ``clive tui
    TUI_ARGV`` of its own (a session each, recorded as in a terminal): whoever opens the address
    drives a shell as the user clive runs as, so it is 127.0.0.1 only unless --host says otherwise,
    and then the address carries a token."""
    say = say or _stderr
    require_textual_serve()
    listener = open_listener(host, port)
    with listener.sock:
        say(f"clive: the co-pilot at {listener.url} (each browser gets a session of its own; Ctrl-C stops)")
        serve(listener, shlex.join([sys.executable, "-m", "clive", "tui", *tui_argv]), "clive · co-pilot")
    return 0


def serve_run(run_argv: list[str], host: str = DEFAULT_HOST, port: int | None = None, *,
              keep_serving: bool = True, say: Callable[[str], None] | None = None) -> int:
    """Start ``clive run RUN_ARGV`` headless and serve its session live; returns the run's exit code.
    ``keep_serving``: once the run ends, go on serving its session until Ctrl-C (``clive serve
    --run``); else stop with the run (``clive run --serve``)."""
    say = say or _stderr
    require_textual_serve()
    listener = open_listener(host, port)  # a taken port: said before the run makes anything
    with listener.sock:
        run = subprocess.Popen(
            [sys.executable, "-m", "clive", "run", *run_argv], stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # Ctrl-C is ours to pass on once, as with --tui: a second one aborts
        )
        try:
            said = run.stderr
            assert said is not None
            session: Path | None = None
            for line in said:
                say(line.rstrip("\n"))
                found = SESSION_LINE.match(line.rstrip("\n"))
                if found:
                    session = Path(found.group(2))
                    break
            if session is None:
                return run.wait()  # it refused (bad playbook, ...) and said why

            def pass_on_progress() -> None:
                for line in said:
                    say(line.rstrip("\n"))

            pass_on = threading.Thread(target=pass_on_progress, daemon=True)
            pass_on.start()  # its progress goes on to our stderr, and it never blocks on a full pipe
            say(f"clive: watch the run at {listener.url} (Ctrl-C stops it)")
            told = False

            def tick() -> bool:
                nonlocal told
                code = run.poll()
                if code is None or told:
                    return False
                told = True
                if keep_serving:
                    say(f"clive: the run ended (exit {code}); still serving its session, Ctrl-C stops")
                return not keep_serving

            serve(listener, viewer_command(session), f"clive · session {session.name}", tick)
            code = _stop_run(run, say)
            pass_on.join(timeout=5)
            return code
        finally:
            if run.poll() is None:
                _stop_run(run, say)


def _stop_run(run: subprocess.Popen[str], say: Callable[[str], None]) -> int:
    if run.poll() is None:
        say("clive: stopping the run (it saves what it has)")
        run.send_signal(signal.SIGINT)
    try:
        return run.wait(timeout=STOP_WAIT)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        run.send_signal(signal.SIGINT)  # a second Ctrl-C: the run aborts, as in a terminal
        try:
            return run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            return run.wait()


def without_serve(argv: list[str]) -> list[str]:
    """``clive run``'s arguments less ``--serve PORT`` (or an abbreviation of it), for the run itself."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if len(name) >= len("--ser") and "--serve".startswith(name):
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- one browser connection's viewer (run by textual-serve) -----------------------------------------


class RecordingRun:
    """The run that records a session, known from its meta.json: ``poll()`` as ``Popen``'s, for the
    watch view, in a process that did not start the run."""

    def __init__(self, session_dir: Path) -> None:
        self.meta_path = session_dir / "meta.json"

    def poll(self) -> int | None:
        from clive.session.files import pid_alive

        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # being rewritten: look again next time
        status = meta.get("status")
        if status == "running" and pid_alive(meta):
            return None
        return RUN_CODES.get(str(status), 1)


def view(session_dir: Path) -> int:
    """The live watch view while the session's run goes on, else the replay; returns its exit code."""
    from clive.session import SessionReader
    from clive.tui.replay import ReplayApp
    from clive.tui.watch import WatchApp

    reader = SessionReader.open(session_dir)
    run = RecordingRun(session_dir)
    app = WatchApp(reader, run) if run.poll() is None else ReplayApp(reader)
    result = app.run()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(view(Path(sys.argv[1])))
