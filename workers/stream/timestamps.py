"""Docker's log timestamps, parsed and normalised so that comparing strings compares times.

`docker logs --timestamps` prefixes each line with RFC 3339 in UTC with exactly nine
fractional digits (Go's RFC3339NanoFixed) and one space. We store that fixed form: at a
fixed width, string order is time order, so resume and dedupe compare plain strings
with full nanosecond precision. Other RFC 3339 forms (fewer digits, an offset) are
accepted on the slow path and converted to the fixed form.
"""

import re
import time
from datetime import UTC, datetime, timedelta

FIXED_WIDTH = 30  # "2024-01-02T03:04:05.123456789Z"
FIXED = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", re.ASCII)
_FIXED_STR = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", re.ASCII)
_FLEXIBLE = re.compile(
    rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d) ",
    re.ASCII,
)


class TimestampError(ValueError):
    pass


def parse_prefix(line: bytes) -> tuple[str, int] | None:
    """The normalised timestamp that starts `line` and where the text begins, or None."""
    if len(line) > FIXED_WIDTH and line[FIXED_WIDTH] == 0x20 and FIXED.match(line):
        return line[:FIXED_WIDTH].decode("ascii"), FIXED_WIDTH + 1
    match = _FLEXIBLE.match(line)
    if match is None:
        return None
    seconds, fraction, offset = match.groups()
    try:
        base = datetime.fromisoformat(seconds.decode("ascii"))
    except ValueError:
        return None
    if offset not in (b"Z", b"z"):
        sign = 1 if offset[:1] == b"+" else -1
        base -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    nanos = (fraction or b"").decode("ascii").ljust(9, "0")
    return f"{base.strftime('%Y-%m-%dT%H:%M:%S')}.{nanos}Z", match.end()


def validate_since(ts: str) -> str:
    """A resume point must be a timestamp we wrote ourselves: the fixed form, nothing else."""
    if not isinstance(ts, str) or _FIXED_STR.fullmatch(ts) is None:
        raise TimestampError(f"not a fixed-width RFC 3339 UTC timestamp: {ts!r}")
    return ts


def format_unix_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC).strftime('%Y-%m-%dT%H:%M:%S')}.{nanos:09d}Z"


def now() -> str:
    """The receive timestamp, in the same fixed form as the source timestamps."""
    return format_unix_ns(time.time_ns())
