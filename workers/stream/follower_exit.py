"""How the log-service follower (`workers.logservice_follow`) ended: a protocol with the stream child.

Most endings are worth a reconnect (a network blip, a restarting server). An API mismatch is
not: the log service does not speak the API we know, and asking again will not change that.
The follower then exits API_MISMATCH and writes, as its last stderr line, the mismatch as
JSON (`MISMATCH_PREFIX {"method", "field", "details"}`), which the stream child turns into
the same `api_mismatch` report every other child sends. Standard library only: the stream
child is preloaded in the supervisor, which must never import the HTTP client.
"""

import enum
import json
from typing import Any

MISMATCH_PREFIX = "iris_api_mismatch "


class FollowerExit(enum.IntEnum):
    OK = 0  # stdin closed, SIGTERM or the deadline
    CALL_FAILED = 1  # unreachable, or an error answer: reconnect with backoff
    USAGE = 2
    API_MISMATCH = 3
    INTERRUPTED = 130


def mismatch_line(method: str, field: str, details: str) -> str:
    return MISMATCH_PREFIX + json.dumps({"method": method, "field": field, "details": details})


def parse_mismatch(stderr: str) -> dict[str, str] | None:
    """The mismatch a follower reported in its stderr (the last such line), or None."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(MISMATCH_PREFIX):
            try:
                found: Any = json.loads(line.removeprefix(MISMATCH_PREFIX))
            except ValueError:
                return None
            return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None
    return None
