"""Secrets kept out of every session file and every observation a model reads: values of variables
named like secrets, what is typed at a password prompt, and what looks like a secret wherever it
shows (private-key blocks, API keys and tokens of the common formats), replaced by ``[redacted]``.

A secret recognised by its shape is learned as a value, like the others: from then on the same
exact-value redaction keeps it out of the cast, the events, the keyframes and the screen."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from clive.session.cast import (
    encode_line,
)

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET)$|PASSWORD", re.IGNORECASE)
MIN_SECRET = 6  # shorter environment values are too common to redact ("true", "1")
MIN_TYPED_SECRET = 4  # a password typed with echo off

# API keys and tokens by their published shapes: a literal prefix, then enough key characters that
# ordinary words and identifiers do not match.
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-[A-Za-z0-9_\-]{20,}"  # Anthropic (sk-ant-…), OpenAI (sk-…, sk-proj-…)
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"  # JSON web tokens
    r")"
)
# Secrets known by the name they are given, e.g. in ~/.aws/credentials or an HTTP header.
_NAMED = re.compile(
    r"(?i)(?:aws_secret_access_key\s*[=:]\s*[\"']?|authorization:\s*bearer\s+)([A-Za-z0-9/+=_.\-]{16,})"
)
# Cheap tests before the regexes: most output holds none of these.
_TOKEN_HINTS = (
    "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "AKIA", "ASIA", "xox", "AIza", "hf_",
    "k_live_", "k_test_", "npm_", "eyJ",
)  # fmt: skip
_NAMED_HINTS = ("ws_secret", "WS_SECRET", "earer", "EARER")
_HINT_BYTES = tuple(h.encode() for h in (*_TOKEN_HINTS, *_NAMED_HINTS, "-----BEGIN"))
_TOKEN_PREFIXES = (
    "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "AKIA", "ASIA", "xoxa-", "xoxb-",
    "xoxp-", "xoxo-", "xoxs-", "xoxr-", "AIza", "hf_", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "npm_", "eyJ",
)  # fmt: skip
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]{16,}")
_PEM_HEADER = re.compile(r"[A-Za-z-]+: ")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def secrets_in(text: str) -> list[str]:
    """What in ``text`` looks like a secret: tokens of the known formats and the lines of a
    private-key block (to its END line, or as far as it goes when cut short)."""
    found = _tokens_in(text)
    if "-----BEGIN" in text:
        scanner = SecretScanner()
        for line in text.split("\n"):
            scanner.line(line, found)
    return found


def may_show_secrets(data: bytes) -> bool:
    """Whether encoded text holds anything a secret's shape starts with (most text does not)."""
    return any(hint in data for hint in _HINT_BYTES)


def _tokens_in(text: str) -> list[str]:
    found = []
    if any(hint in text for hint in _TOKEN_HINTS):
        found += [m.group(0) for m in _TOKEN.finditer(text)]
    if any(hint in text for hint in _NAMED_HINTS):
        found += [m.group(1) for m in _NAMED.finditer(text)]
    return found


class SecretScanner:
    """Finds secrets by their shape in a stream that arrives in pieces: says which are complete,
    and how much of the end to hold back because a secret may be arriving (a key's line, a token)."""

    def __init__(self) -> None:
        self.in_key = False  # inside a private-key block

    def scan(self, buf: str) -> tuple[list[str], int]:
        """The secrets in ``buf`` (held text of the last call, then new text), and the length of
        its tail to hold back until more arrives."""
        found: list[str] = []
        last = buf.rfind("\n") + 1
        if self.in_key or "-----" in buf:
            for line in buf[:last].split("\n")[:-1]:
                self.line(line, found)
        tail = buf[last:]
        if self.in_key or "-----" in tail or tail.endswith("-"):
            hold = len(tail)  # a key's line, or a BEGIN line, still arriving
        else:
            hold = _token_tail(buf)
        found += _tokens_in(buf[: len(buf) - hold] if hold else buf)
        return found, hold

    def line(self, line: str, found: list[str]) -> None:
        line = _ANSI.sub("", line).strip()
        if not self.in_key:
            begin = _PEM_BEGIN.search(line)
            if begin is not None and not _PEM_END.search(line, begin.end()):
                self.in_key = True
                found += _PEM_BODY.findall(line, begin.end())
            return
        if _PEM_END.search(line):
            self.in_key = False
            found += _PEM_BODY.findall(line[: _PEM_END.search(line).start()])
        elif not line or _PEM_HEADER.match(line):
            pass
        elif _PEM_BODY.fullmatch(line) or all(_PEM_BODY.fullmatch(w) or w == "" for w in line.split(" ")):
            found += _PEM_BODY.findall(line)
        else:
            self.in_key = False  # cut short (head -3 key): what came is learned, the rest is not a key


def _token_tail(buf: str) -> int:
    """Length of a token that may still be arriving at the end of ``buf``, or 0."""
    i = len(buf)
    while i > 0 and buf[i - 1] in _TOKEN_CHARS and len(buf) - i < 512:
        i -= 1
    word = buf[i:]
    if not word:
        return 0
    if any(word.startswith(p) or p.startswith(word) for p in _TOKEN_PREFIXES):
        return len(word)
    return 0


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

    def scrub(self, text: str) -> str:
        """``text`` with secrets redacted, those it shows by their shape learned first."""
        for secret in secrets_in(text):
            self.add(secret)
        return self.text(text)

    def learn_from(self, obj: Any) -> list[str]:
        """Learn the secrets that every string in a JSON-like value shows; returns the new ones."""
        new = []
        if isinstance(obj, str):
            new += [s for s in secrets_in(obj) if self.add(s)]
        elif isinstance(obj, Mapping):
            for k, v in obj.items():
                new += self.learn_from(k) + self.learn_from(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                new += self.learn_from(v)
        return new

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

    def line(self, obj: Any, data: bytes | None = None) -> tuple[bytes, Any]:
        """``obj`` as one redacted JSON line (``data``: it encoded already), and the redacted value it holds."""
        data = encode_line(obj) if data is None else data
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
    reaches the file whole or in part. Secrets recognised by their shape are learned on the way
    (``learned`` is told each new one)."""

    def __init__(self, redactor: Redactor, learned: Callable[[str], None] | None = None) -> None:
        self._redactor = redactor
        self._carry = ""
        self._scanner = SecretScanner()
        self._learned = learned

    @property
    def held(self) -> int:
        return len(self._carry)

    def feed(self, text: str) -> str:
        buf = self._carry + text
        found, scan_hold = self._scanner.scan(buf)
        for secret in found:
            if self._redactor.add(secret) and self._learned is not None:
                self._learned(secret)
        tail = buf[len(buf) - scan_hold :] if scan_hold else ""
        settled = buf[: len(buf) - scan_hold]
        if not self._redactor:
            self._carry = tail
            return settled
        settled = self._redactor.text(settled)
        keep = self._redactor.hold(settled)
        self._carry = (settled[len(settled) - keep :] if keep else "") + tail
        return settled[: len(settled) - keep]

    def flush(self) -> str:
        """What is held, at the end of the stream: a long partial secret is still redacted."""
        rest, self._carry = self._carry, ""
        for secret in secrets_in(rest):
            self._redactor.add(secret)
        rest = self._redactor.text(rest)
        return REDACTED if len(rest) >= MIN_SECRET and self._redactor.hold(rest) else rest


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
