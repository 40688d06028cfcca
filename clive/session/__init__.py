"""Sessions on disk: the recorder that writes ``sessions/<id>/`` as it happens (events.jsonl, the
asciicast, keyframes, meta.json), the reader that replays it, redaction of secrets, and the listing.

May import ``clive.terminal`` (the screen model, to replay) and ``clive.safety``; decides nothing."""

from clive.session.cast import SessionError
from clive.session.files import new_session_id
from clive.session.listing import (
    SessionSummary,
    format_sessions,
    format_timeline,
    format_workers,
    list_sessions,
    resolve_session,
    summarize_action,
)
from clive.session.reader import SessionReader
from clive.session.recorder import Recorder
from clive.session.redaction import REDACTED, Redactor, secrets_from_env

__all__ = [
    "REDACTED",
    "Recorder",
    "Redactor",
    "SessionError",
    "SessionReader",
    "SessionSummary",
    "format_sessions",
    "format_timeline",
    "format_workers",
    "list_sessions",
    "new_session_id",
    "resolve_session",
    "secrets_from_env",
    "summarize_action",
]
