"""The guard in front of ``clive mcp --http``: a bearer token on every request, and clients on this
machine only unless the server was bound to another address on purpose. Plain ASGI: it knows
nothing of MCP."""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_ENV = "CLIVE_MCP_TOKEN"
MIN_TOKEN = 16  # characters: a short token could be guessed by anything on the machine that can connect


def new_token() -> str:
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) means this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class BearerGuard:
    """Answers 401 without ``Authorization: Bearer <token>``, and 403 to a client on another machine
    unless ``remote`` (the server was bound to a non-loopback address on purpose)."""

    def __init__(self, app: App, token: str, *, remote: bool = False) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self.remote = remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # MCP speaks plain HTTP
            return
        client = scope.get("client")
        if not self.remote and not (client and _loopback_address(client[0])):
            await _refuse(send, 403, "clients on other machines are refused (start with --host to allow them)")
            return
        given = dict(scope.get("headers") or ()).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._expected):
            why = "wrong bearer token" if given else "missing bearer token (Authorization: Bearer <token>)"
            await _refuse(send, 401, why, [(b"www-authenticate", b'Bearer realm="clive"')])
            return
        await self.app(scope, receive, send)


def _loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


async def _refuse(send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": body})
