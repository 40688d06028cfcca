"""The one module that imports the ``mcp`` SDK: clive's tool catalog and replies in the SDK's types,
served over stdio or streamable HTTP (uvicorn, behind the bearer guard)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings

from clive import __version__
from clive.mcp.auth import BearerGuard
from clive.mcp.catalog import TOOLS
from clive.mcp.tools import Tools

INSTRUCTIONS = (
    "clive gives you real terminals. open_terminal starts a shell; run executes a command and returns its "
    "exit code and complete output; for interactive programs (editors, REPLs, prompts) use press/type, then "
    "wait (until it is your turn) and look (the screen as a person sees it). Every terminal is recorded as a "
    "clive session."
)


def build_server(tools: Tools) -> Server[Any]:
    """An MCP server whose tools are clive's catalog, carried out by ``tools`` on worker threads."""
    listing = types.ListToolsResult(tools=[
        types.Tool(
            name=spec.name,
            description=spec.description,
            input_schema=spec.schema,
            annotations=types.ToolAnnotations(read_only_hint=spec.read_only, open_world_hint=False),
        )
        for spec in TOOLS
    ])

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        client = ctx.session.client_params
        name = client.client_info.name if client is not None else None
        # A tool that may wait (a command, a prompt) is answered from the thread that finishes it. If the
        # client goes away meanwhile, the call is dropped; closing the terminals ends the wait.
        reply = await asyncio.wrap_future(tools.submit(params.name, params.arguments, client=name))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=reply.text)],
            structured_content=reply.data,
            is_error=reply.error,
        )

    server: Server[Any] = Server(
        "clive",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    return server


def serve_stdio(tools: Tools) -> None:
    """Serve on stdin/stdout until the client closes stdin, or SIGTERM or SIGHUP (which is how a client
    stops a server that did not go when its stdin closed)."""
    server = build_server(tools)

    async def main() -> None:
        async with anyio.create_task_group() as group:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                    async for _ in signals:
                        group.cancel_scope.cancel()

            group.start_soon(stop_on_signal)
            async with _wire() as (lines, out), stdio_server(lines, out) as (read, write):
                await server.run(read, write, server.create_initialization_options())
            group.cancel_scope.cancel()

    anyio.run(main)


class _Lines:
    """stdin as the SDK's stdio transport reads it (``async for line``), from the event loop itself."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Out:
    """stdout as the SDK's stdio transport writes it; a client that has gone is not an error here
    (its stdin closing ends the server)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        if not self._writer.is_closing():
            self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        try:
            await self._writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass


@asynccontextmanager
async def _wire() -> AsyncIterator[tuple[_Lines | None, _Out | None]]:
    """The client's pipes, read and written by the event loop (the SDK's default reads stdin on a
    worker thread, a few thread hops per message). fd 0 and 1 are pointed at /dev/null and stderr
    meanwhile, as the SDK does, so that nothing else writes into the wire. (None, None) where stdin or
    stdout is not a pipe or a terminal: then the SDK's own transport serves."""
    loop = asyncio.get_running_loop()
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                            os.fdopen(wire_out, "wb", 0))
    except (ValueError, OSError):  # a regular file: not something the event loop can watch
        for fd in (wire_in, wire_out):
            with contextlib.suppress(OSError):
                os.close(fd)
        yield None, None
        return
    saved = [os.dup(0), os.dup(1)]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    try:
        yield _Lines(reader), _Out(asyncio.StreamWriter(transport, protocol, None, loop))  # type: ignore[arg-type]
    finally:
        for fd, original in zip((0, 1), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)
        transport.close()


def serve_http(
    tools: Tools, host: str, port: int, token: str, *, remote: bool, ready: Callable[[str], None]
) -> None:
    """Serve streamable HTTP at http://host:port/mcp until SIGINT or SIGTERM; ``ready`` gets the URL."""
    server = build_server(tools)
    security = None if not remote else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = BearerGuard(server.streamable_http_app(host=host, transport_security=security), token, remote=remote)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)  # before the address is announced: a client that comes at once waits, not refused
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    # An open event stream would hold a graceful shutdown forever.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    ready(f"http://{shown}:{bound}/mcp")
    uvicorn.Server(config).run(sockets=[sock])
