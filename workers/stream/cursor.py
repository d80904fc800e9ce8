"""The log-service cursor of the last line on disk: marker lines in, a sidecar file out.

The iris_log follower prints `#cursor <seq>` after each page: every store row up to
`seq` has been printed above it. A marker is only worth keeping once the lines before it
are in the stream file, because lines still in a pipe die with a killed stream child; so
the encoder notes where each marker falls in its output, and the child saves the last
marker its write covered to `<stream file>.cursor` (written whole, then renamed).

A saved mark is `{cursor, next_seq, ts}`: the file held `next_seq` records, the last one
stamped `ts`, when row `cursor` was the last printed. Records after it in the file can
only come from followers that continued exactly from it (the same connection, or one
resumed by this cursor), because a resume by since discards the mark first. So a child
that resumes by cursor asks for the rows after `cursor`, printed from `ts` on, and drops
the first `records in file - next_seq` lines: those are already written.

A mark that does not fit the file (missing, unreadable, or ahead of it after a crash that
kept the rename but not the records) is ignored, and the stream resumes by since.
"""

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from common.files import write_atomically
from workers.stream.timestamps import TimestampError, validate_since

MARKER = re.compile(rb"#cursor(-unknown)? ([1-9][0-9]{0,18})\n", re.ASCII)


@dataclass(frozen=True)
class CursorMark:
    cursor: int  # the store row printed last
    next_seq: int  # records in the file when it was
    ts: str  # the timestamp of the last of them


@dataclass(frozen=True)
class Marker:
    cursor: int
    unknown: bool  # the store no longer holds that row: the follower resumes by since


def parse_marker(line: bytes) -> Marker | None:
    match = MARKER.fullmatch(line)
    return None if match is None else Marker(int(match[2]), match[1] is not None)


def split_markers(run: bytes) -> list[bytes]:
    """A run of lines cut around its marker lines (the lines that start with "#")."""
    pieces: list[bytes] = []
    start = 0
    while start < len(run):
        if run.startswith(b"#", start):
            at = start
        else:
            found = run.find(b"\n#", start)
            if found < 0:
                pieces.append(run[start:] if start else run)
                break
            at = found + 1
            pieces.append(run[start:at])
        end = run.find(b"\n", at) + 1 or len(run)
        pieces.append(run[at:end])
        start = end
    return pieces


def sidecar_path(stream_file: Path) -> Path:
    return stream_file.with_name(stream_file.name + ".cursor")


def save(path: Path, mark: CursorMark) -> None:
    write_atomically(path, orjson.dumps({"cursor": mark.cursor, "next_seq": mark.next_seq, "ts": mark.ts}))


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def load(path: Path, next_seq: int, last_ts: str | None) -> CursorMark | None:
    """The saved mark, if it fits a file of `next_seq` records ending at `last_ts`."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError, TypeError, KeyError, ValueError, TimestampError):
        found = orjson.loads(path.read_bytes())
        mark = CursorMark(int(found["cursor"]), int(found["next_seq"]), validate_since(found["ts"]))
        if mark.cursor <= 0 or not 0 < mark.next_seq <= next_seq or last_ts is None:
            return None
        if (mark.next_seq == next_seq and mark.ts != last_ts) or mark.ts > last_ts:
            return None
        return mark
    return None
