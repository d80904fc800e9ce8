"""How the log-service follower (`workers.logservice_follow`) ended: a protocol with the stream child.

Most endings are worth a reconnect (a network blip, a restarting server). An API mismatch is
not: the log service does not speak the API we know, and asking again will not change that.
The follower then exits API_MISMATCH and writes, as its last stderr line, the mismatch as
JSON (`MISMATCH_PREFIX {"method", "field", "details"}`), which the stream child turns into
the same `api_mismatch` report every other child sends. Standard library only: the stream
child is preloaded in the supervisor, which must never import the HTTP client.

A reply the follower stopped reading (longer than its cap even for one line, or begun and not
finished in time) is the same kind of ending: it exits BROKEN_REPLY with
`BROKEN_REPLY_PREFIX {"code", "method", "details"}` as its last stderr line.
"""

import enum
import json
from typing import Any

MISMATCH_PREFIX = "iris_api_mismatch "
BROKEN_REPLY_PREFIX = "broken_reply "
BROKEN_REPLY_CODES = ("controller_timeout", "reply_too_large")


class FollowerExit(enum.IntEnum):
    OK = 0  # stdin closed, SIGTERM or the deadline
    CALL_FAILED = 1  # unreachable, or an error answer: reconnect with backoff
    USAGE = 2
    API_MISMATCH = 3
    BROKEN_REPLY = 4
    INTERRUPTED = 130


def mismatch_line(method: str, field: str, details: str) -> str:
    return MISMATCH_PREFIX + json.dumps({"method": method, "field": field, "details": details})


def broken_reply_line(code: str, method: str, details: str) -> str:
    return BROKEN_REPLY_PREFIX + json.dumps({"code": code, "method": method, "details": details})


def parse_mismatch(stderr: str, prefix: str = MISMATCH_PREFIX) -> dict[str, str] | None:
    """The report (a mismatch, or a broken reply with `prefix`) a follower wrote last on its stderr, or None."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(prefix):
            try:
                found: Any = json.loads(line.removeprefix(prefix))
            except ValueError:
                return None
            return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None
    return None
