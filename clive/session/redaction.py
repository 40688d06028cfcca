"""Secrets kept out of every session file: values of variables named like secrets, and what is typed
at a password prompt, replaced by ``[redacted]`` in the output, the input and the metadata."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from clive.session.cast import (
    encode_line,
)

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET)$|PASSWORD", re.IGNORECASE)
MIN_SECRET = 6  # shorter environment values are too common to redact ("true", "1")
MIN_TYPED_SECRET = 4  # a password typed with echo off


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of variables named like secrets (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``)."""
    env = os.environ if env is None else env
    return sorted(
        {value for name, value in env.items() if SECRET_NAME.search(name) and len(value) >= MIN_SECRET}
    )


class Redactor:
    """Replaces known secret values with ``[redacted]``; the set grows as secrets are typed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if s}
        self._build()

    def _build(self) -> None:
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # A secret inside a JSON line appears raw or, if it holds quotes, backslashes or control
        # characters, escaped; either form found means the slow, exact path.
        # (Plain substring tests: several times faster than one regex alternation.)
        forms = {json.dumps(s, ensure_ascii=False)[1:-1] for s in ordered} | set(ordered)
        self._ordered = ordered
        self._probes = [f.encode("utf-8", "backslashreplace") for f in forms]
        self._by_first: list[tuple[str, str]] = [(s[0], s) for s in ordered]

    def add(self, secret: str) -> bool:
        """Redact ``secret`` from now on; False if it was known already."""
        if not secret or secret in self._secrets:
            return False
        self._secrets.add(secret)
        self._build()
        return True

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __contains__(self, value: object) -> bool:
        return value in self._secrets

    @property
    def secrets(self) -> list[str]:
        return list(self._ordered)

    def found_in(self, data: bytes) -> bool:
        """Whether a JSON line (``encode_line``) holds a secret, raw or escaped."""
        return any(probe in data for probe in self._probes)

    def text(self, text: str) -> str:
        if self._text is None or not any(s in text for s in self._ordered):
            return text
        return self._text.sub(REDACTED, text)

    def value(self, obj: Any) -> Any:
        """A copy of a JSON-like value with secrets redacted in every string, keys included."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {self.value(k) if isinstance(k, str) else k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj

    def line(self, obj: Any) -> tuple[bytes, Any]:
        """``obj`` as one redacted JSON line, and the redacted value it holds."""
        data = encode_line(obj)
        if self.found_in(data):
            obj = self.value(obj)
            data = encode_line(obj)
        return data, obj

    def hold(self, text: str) -> int:
        """Length of the longest tail of ``text`` that could be the start of a secret."""
        n = len(text)
        best = 0
        for first, secret in self._by_first:
            # Only proper prefixes: a whole secret would have been redacted already.
            p = text.find(first, max(0, n - len(secret) + 1))
            while p != -1 and n - p > best:
                if secret.startswith(text[p:]):
                    best = n - p
                    break
                p = text.find(first, p + 1)
        return best


class RedactedStream:
    """Redacts a text stream that arrives in pieces: a tail that could begin a secret is held
    back until the next piece shows whether it does, so a secret split across reads never
    reaches the file whole or in part."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._carry = ""

    @property
    def held(self) -> int:
        return len(self._carry)

    def feed(self, text: str) -> str:
        if not self._redactor:
            out, self._carry = self._carry + text, ""
            return out
        buf = self._redactor.text(self._carry + text)
        keep = self._redactor.hold(buf)
        self._carry = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """What is held, at the end of the stream: a long partial secret is still redacted."""
        rest, self._carry = self._carry, ""
        return REDACTED if len(rest) >= MIN_SECRET else rest


class TypedSecret:
    """Collects what is typed while echo is off, the way the line discipline would edit it."""

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> list[str]:
        """Returns the lines completed by this input."""
        done = []
        for ch in self._decoder.decode(data):
            if ch in "\r\n":
                done.append("".join(self._chars))
                self._chars.clear()
            elif ch in "\x7f\b":
                if self._chars:
                    self._chars.pop()
            elif ch in "\x15\x03":  # Ctrl-U kills the line, Ctrl-C abandons it
                self._chars.clear()
            elif ch >= " ":
                self._chars.append(ch)
        return done

    def finish(self) -> str:
        """Echo came back on without a newline: whatever was typed still counts."""
        rest = "".join(self._chars)
        self._chars.clear()
        self._decoder.reset()
        return rest
