"""The per-host stream file: append-only, one writer, resumable.

- Opened with O_APPEND and never truncated by us, with one exception: a record torn by a
  SIGKILL in the middle of a `write(2)` (a write to a regular file can end short when a
  fatal signal arrives). That torn tail is ours, it is not valid JSON, and its lines will
  be fetched again on resume, so it is cut back to the last newline before appending.
- An exclusive `flock` makes a second writer fail at start instead of interleaving
  sequence numbers; the kernel drops the lock when the holder dies, however it dies.
- On start, only the tail is read (bounded by the largest possible record) to recover
  the next `seq`, the last source timestamp and the texts written at it.
"""

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from common.fdio import write_all
from common.files import open_sole_writer
from workers.stream.records import MAX_SAME_TS_LINES, line_key

# A record's line can grow 6x when escaped (a control byte becomes \u00XX).
_RECORD_OVERHEAD_BYTES = 64 * 1024
_ESCAPE_GROWTH = 6


class StreamFileBusy(OSError):
    """Another process holds the file's writer lock."""


@dataclass
class Recovered:
    next_seq: int = 0
    last_ts: str | None = None
    at_last_ts: collections.Counter[int] = field(default_factory=collections.Counter)
    torn_bytes: int = 0
    unreadable_lines: int = 0


class StreamFile:
    def __init__(self, path: Path, max_line_bytes: int) -> None:
        self.path = path
        self.fd = open_sole_writer(path, os.O_RDWR | os.O_APPEND, StreamFileBusy, "is being written by another process")
        self.dirty = False
        self.recovered = self._recover(max_line_bytes * _ESCAPE_GROWTH + _RECORD_OVERHEAD_BYTES)
        # The file's size, what the byte cap counts: it spans restarts and a host's returns.
        self.size = os.fstat(self.fd).st_size

    def _recover(self, window: int) -> Recovered:
        size = os.fstat(self.fd).st_size
        start = max(0, size - window)
        tail = os.pread(self.fd, size - start, start)
        found = Recovered()
        if tail and not tail.endswith(b"\n"):
            keep = tail.rfind(b"\n") + 1
            if keep or start == 0:
                os.ftruncate(self.fd, start + keep)
                found.torn_bytes = len(tail) - keep
                tail = tail[:keep]
            else:
                # No newline in a whole window: not a file we wrote. Seal it, do not cut it.
                os.write(self.fd, b"\n")
                tail += b"\n"
        lines = tail.split(b"\n")[1 if start else 0 : -1]  # the first may be a partial line
        for line in reversed(lines):
            try:
                record = orjson.loads(line)
                seq, ts, text = int(record["seq"]), record["ts"], record["line"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                found.unreadable_lines += 1
                continue
            if found.last_ts is None:
                found.next_seq, found.last_ts = seq + 1, ts
            elif ts != found.last_ts or found.at_last_ts.total() >= MAX_SAME_TS_LINES:
                break
            found.at_last_ts[line_key(text)] += 1
        return found

    def write(self, data: bytes) -> None:
        write_all(self.fd, data)
        self.size += len(data)
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            os.fdatasync(self.fd)
            self.dirty = False

    def close(self) -> None:
        os.close(self.fd)
