"""What ``clive mcp`` runs: check the options, then serve the terminals over stdio or HTTP, and close
every terminal when the server ends, however it ends."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clive.experiments.errors import BadInput, RunFailed
from clive.mcp.auth import MIN_TOKEN, TOKEN_ENV, is_loopback, new_token
from clive.mcp.registry import Terminals
from clive.mcp.tools import Tools
from clive.safety.guard import CommandGuard, GuardError

LOOPBACK = "127.0.0.1"
INSTALL = "clive mcp needs the MCP SDK (mcp>=2.3): pip install 'clive[mcp]'"


@dataclass(frozen=True, slots=True)
class McpOptions:
    sessions: Path
    http: int | None = None  # a port (0: any free one); None serves stdio
    host: str | None = None  # given only on purpose: anything else than 127.0.0.1
    token: str | None = None
    deny: tuple[str, ...] = ()


def serve(options: McpOptions, say: Callable[[str], None] | None = None) -> int:
    """Serve until the client goes (stdio) or a signal ends it (HTTP); 0 when it ended normally."""
    say = say or (lambda line: print(f"clive mcp: {line}", file=sys.stderr, flush=True))
    if options.http is None and (options.host is not None or options.token is not None):
        raise BadInput("--host and --token go with --http PORT (stdio needs neither)")
    given = options.token if options.token is not None else os.environ.get(TOKEN_ENV)
    source = "--token" if options.token is not None else f"${TOKEN_ENV}"
    if options.http is not None and given is not None and len(given) < MIN_TOKEN:
        raise BadInput(f"the token ({source}) must have at least {MIN_TOKEN} characters")
    try:
        guard = CommandGuard(options.deny)
    except GuardError as exc:
        raise BadInput(str(exc)) from None
    try:
        from clive.mcp import server
    except ImportError:
        raise BadInput(INSTALL) from None
    terminals = Terminals(options.sessions.resolve(), guard=guard)
    tools = Tools(terminals)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)  # the usual way to stop an HTTP server: the finally below closes the terminals

    # However the server ends, the terminals close and their sessions are finished (even a SIGKILL
    # leaves nothing running: the watchdog ends the terminals).
    try:
        if options.http is None:
            say(f"serving on stdio; sessions go to {terminals.sessions}")
            server.serve_stdio(tools)
        else:
            host = options.host or LOOPBACK
            token = given or new_token()
            # uvicorn shuts down gracefully on SIGTERM, then raises it again for the handler found before.
            signal.signal(signal.SIGTERM, stop)

            def ready(url: str) -> None:
                say(f"serving on {url}; sessions go to {terminals.sessions}")
                shown = token if given is None else f"the one in {source}"
                say(f"bearer token: {shown} (send it as: Authorization: Bearer <token>)")

            try:
                server.serve_http(tools, host, options.http, token, remote=not is_loopback(host), ready=ready)
            except OSError as exc:
                raise RunFailed(str(exc)) from None
    finally:
        tools.close()
        terminals.close_all("interrupted")
    return 0
