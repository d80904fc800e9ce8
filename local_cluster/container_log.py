"""Container logs in `docker logs --timestamps` form, and their timestamps.

Each line is `<RFC 3339 UTC timestamp with nanoseconds> <text>\n`, e.g.
`2026-11-29T06:51:51.465936123Z hello`. The timestamp is always 30 bytes wide, so
timestamps compare as bytes and `--since` can binary-search a file. Timestamps are
strictly increasing within a file (a repeated clock reading is bumped by 1 ns, and a
writer reopening a file starts after its last line) so that `--since <last seen>`
(inclusive, as docker's) replays exactly the one line last seen, then what follows: the
reader drops that one line and knows nothing between was lost.

One writer per file. A batch of lines is one `write(2)` on an O_APPEND descriptor, so a
reader never sees lines from two batches interleaved (it may see a batch's tail missing
for a moment, which is why the reader only emits complete lines).
"""

import calendar
import functools
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from common.fdio import write_all

TS_WIDTH = 30  # len("2026-11-29T06:51:51.465936123Z")
_TAIL_BYTES = 64 * 1024
_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)$")
_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")


@functools.lru_cache(maxsize=8)
def _second(seconds: int) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode()


def format_ts(ns: int) -> bytes:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return b"%s.%09dZ" % (_second(seconds), fraction)


def parse_ts(text: str) -> int:
    """Nanoseconds since the epoch from RFC 3339 (any offset) or Unix seconds, as docker's --since."""
    text = text.strip()
    if m := _UNIX.match(text):
        return int(m[1]) * 1_000_000_000 + int((m[2] or "").ljust(9, "0"))
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp or Unix seconds: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = m[8]
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((m[7] or "").ljust(9, "0"))


def last_timestamp_ns(path: Path) -> int:
    """The timestamp of the file's last complete line, 0 if there is none."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return 0
    for line in reversed(tail.split(b"\n")[:-1]):
        try:
            return parse_ts(line[:TS_WIDTH].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            continue
    return 0


class ContainerLogWriter:
    """Appends timestamped lines to one container log; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._last_ns = last_timestamp_ns(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()

    def write_lines(self, lines: Iterable[bytes]) -> list[int]:
        """Write a batch in one system call; returns each line's timestamp (ns)."""
        parts: list[bytes] = []
        stamps: list[int] = []
        with self._lock:
            for line in lines:
                ns = max(time.time_ns(), self._last_ns + 1)
                self._last_ns = ns
                stamps.append(ns)
                parts += (format_ts(ns), b" ", line.replace(b"\n", b" "), b"\n")
            if self._fd >= 0:  # a late line after close() is dropped, not an error
                write_all(self._fd, b"".join(parts))
        return stamps

    def write_text(self, text: str) -> int:
        return self.write_lines([text.encode("utf-8", "backslashreplace")])[0]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
