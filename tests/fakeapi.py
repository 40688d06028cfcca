"""A fake Anthropic Messages API on 127.0.0.1 that replays scripted model turns.

    with FakeMessagesAPI([tool_use("run", {"command": "make"}), http_error(529), ...]) as api:
        policy = ClaudePolicy("...", base_url=api.url, api_key="test-key")
        ...
        api.requests[0].body["tools"]

A turn is a ``Turn`` or a callable ``(request body) -> Turn`` (to answer from the observation
received); the script may also be one such callable, asked for every request. Requests that
ask for ``stream`` get proper server-sent events (text deltas, ``input_json_delta`` chunks,
message_delta with stop_reason and usage); others get one JSON message.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)

DEFAULT_USAGE = {
    "input_tokens": 120,
    "output_tokens": 30,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


@dataclass(frozen=True)
class Turn:
    """One scripted answer. Build it with tool_use, text_only, malformed, cut_off or http_error."""

    text: str = ""
    tool: str | None = None
    tool_input: str = ""  # the JSON text of the tool input exactly as streamed (may be broken)
    tool_id: str = ""
    stop_reason: str = "end_turn"
    status: int = 200  # other than 200: an HTTP error with an Anthropic error body
    error_type: str = ""
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    chunk: int = 5  # characters per input_json_delta
    stream_error: bool = False  # send an SSE error event (overloaded_error) mid-stream
    disconnect: bool = False  # close the connection without answering


def tool_use(name: str, tool_input: dict[str, Any], text: str = "", **kw: Any) -> Turn:
    """A normal reply: optional text, then one tool call streamed in several chunks."""
    return Turn(text=text, tool=name, tool_input=json.dumps(tool_input), stop_reason="tool_use", **kw)


def malformed(name: str, raw_json: str, text: str = "", **kw: Any) -> Turn:
    """A tool call whose input is the given (possibly invalid) JSON text."""
    return Turn(text=text, tool=name, tool_input=raw_json, stop_reason="tool_use", **kw)


def cut_off(name: str, partial_json: str, text: str = "", **kw: Any) -> Turn:
    """A reply stopped by max_tokens in the middle of a tool input."""
    return Turn(text=text, tool=name, tool_input=partial_json, stop_reason="max_tokens", **kw)


def text_only(text: str, stop_reason: str = "end_turn", **kw: Any) -> Turn:
    """A reply with no tool call."""
    return Turn(text=text, stop_reason=stop_reason, **kw)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def http_error(
    status: int, message: str = "", error_type: str = "", retry_after: str | None = None
) -> Turn:
    """An HTTP error answer with the API's error body, e.g. http_error(529)."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Turn(
        status=status,
        error_type=error_type or _ERROR_TYPES.get(status, "api_error"),
        error_message=message or {529: "Overloaded", 401: "invalid x-api-key"}.get(status, "error"),
        headers=headers,
    )


def disconnect() -> Turn:
    """Close the connection without a word: a network failure for the client."""
    return Turn(disconnect=True)


def overloaded_mid_stream() -> Turn:
    """A 200 stream that starts, then carries an overloaded_error event."""
    return Turn(stream_error=True)


Responder = Callable[[dict[str, Any]], Turn]


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    def last_user_text(self) -> str:
        """The text of the last user turn: its text blocks and tool_result contents, joined."""
        return user_text(self.messages[-1]) if self.messages else ""


def user_text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            inner = block.get("content", "")
            if isinstance(inner, list):
                inner = "\n".join(b.get("text", "") for b in inner)
            parts.append(inner)
    return "\n".join(parts)


class FakeMessagesAPI:
    """The fake server: ``url`` for base_url, ``requests`` for what arrived, ``script`` to extend."""

    def __init__(self, script: list[Turn | Responder] | Responder | None = None) -> None:
        self.script: list[Turn | Responder] | Responder = script if script is not None else []
        self.requests: list[Received] = []
        self.replies: list[dict[str, Any]] = []  # the messages answered, tool ids included
        self.errors: list[Exception] = []  # what callable turns raised (answered with a 400)
        self._served = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeMessagesAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                api._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering -----------------------------------------------------------------------

    def _next_turn(self, body: dict[str, Any]) -> Turn | None:
        with self._lock:
            if callable(self.script):
                turn: Turn | Responder = self.script
            elif self._served < len(self.script):
                turn = self.script[self._served]
            else:
                return None
            self._served += 1
        return turn(body) if callable(turn) else turn

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("content-length") or 0)
        raw = http.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        headers = {k.lower(): v for k, v in http.headers.items()}
        with self._lock:
            self.requests.append(Received(http.path, headers, body))
        if not http.path.rstrip("/").endswith("/v1/messages"):
            self._error(http, 404, "not_found_error", f"no such path {http.path}")
            return
        try:
            turn = self._next_turn(body)
        except Exception as exc:  # noqa: BLE001 - a test's responder failed: say so, don't hang up
            self.errors.append(exc)
            self._error(http, 400, "invalid_request_error", f"fake API responder failed: {exc!r}")
            return
        if turn is None:
            n = len(self.requests)
            self._error(http, 400, "invalid_request_error", f"fake API: no turn left for request {n}")
            return
        if turn.disconnect:
            http.close_connection = True
            http.connection.close()
            return
        if turn.status != 200:
            self._error(http, turn.status, turn.error_type, turn.error_message, turn.headers)
            return
        message = _message(body, turn)
        with self._lock:
            self.replies.append(message)
        if body.get("stream"):
            self._stream(http, message, turn)
        else:
            self._json(http, 200, message, turn.headers)

    @staticmethod
    def _json(http: BaseHTTPRequestHandler, status: int, data: Any, headers=None) -> None:
        payload = json.dumps(data).encode()
        http.send_response(status)
        http.send_header("content-type", "application/json")
        http.send_header("content-length", str(len(payload)))
        http.send_header("request-id", f"req_fake_{next(_ids)}")
        for name, value in (headers or {}).items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(payload)

    def _error(self, http, status: int, kind: str, message: str, headers=None) -> None:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        self._json(http, status, body, headers)

    @staticmethod
    def _stream(http: BaseHTTPRequestHandler, message: dict[str, Any], turn: Turn) -> None:
        http.send_response(200)
        http.send_header("content-type", "text/event-stream")
        http.send_header("cache-control", "no-cache")
        http.send_header("request-id", f"req_fake_{next(_ids)}")
        for name, value in turn.headers.items():
            http.send_header(name, value)
        http.end_headers()

        def send(event: str, data: dict[str, Any]) -> None:
            http.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            http.wfile.flush()

        def block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            send("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": start})
            for delta in deltas:
                send("content_block_delta", {"type": "content_block_delta", "index": index,
                                             "delta": delta})
            send("content_block_stop", {"type": "content_block_stop", "index": index})

        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**turn.usage, "output_tokens": 1}
        send("message_start", {"type": "message_start", "message": start})
        send("ping", {"type": "ping"})
        if turn.stream_error:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            send("error", {"type": "error", "error": error})
            return
        index = 0
        if turn.text:
            pieces = [turn.text[i : i + 16] for i in range(0, len(turn.text), 16)]
            block(index, {"type": "text", "text": ""},
                  [{"type": "text_delta", "text": piece} for piece in pieces])
            index += 1
        if turn.tool:
            step = max(turn.chunk, 1)
            raw = turn.tool_input
            pieces = [raw[i : i + step] for i in range(0, len(raw), step)]
            block(index, {**message["content"][-1], "input": {}},
                  [{"type": "input_json_delta", "partial_json": piece} for piece in pieces])
        delta = {"stop_reason": turn.stop_reason, "stop_sequence": None}
        usage = {"output_tokens": turn.usage.get("output_tokens", 0)}
        send("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        send("message_stop", {"type": "message_stop"})


def _message(body: dict[str, Any], turn: Turn) -> dict[str, Any]:
    """The whole message of a turn, as a non-streaming answer."""
    content: list[dict[str, Any]] = []
    if turn.text:
        content.append({"type": "text", "text": turn.text})
    if turn.tool:
        try:
            tool_input = json.loads(turn.tool_input)
        except json.JSONDecodeError:
            tool_input = {}  # a broken input cannot travel inside a JSON body
        tool_id = turn.tool_id or f"toolu_fake_{next(_ids):04d}"
        content.append({"type": "tool_use", "id": tool_id, "name": turn.tool, "input": tool_input})
    return {
        "id": f"msg_fake_{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": content,
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": dict(turn.usage),
    }
