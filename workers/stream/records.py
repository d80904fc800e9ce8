"""Lines to JSON records: the hot path, resume dedupe and gap detection.

One record per line, keys in this order (the fast path relies on it):
`seq, received, run_id, vm, host, role, container, ts, line`, then the flags
`truncated` and `invalid_utf8` when true. `seq` counts records in the file.

Fast path (a run of well-formed lines): no Python code runs per line. The run is
decoded once, newlines are swapped for DEL (0x7f, which JSON does not escape and which
the run does not contain), the whole run is escaped by one `orjson.dumps`, one regex
substitution with a literal replacement turns the space after each line's timestamp into
`","line":"` (the match must be preceded by DEL plus a fixed-width timestamp, and the
number of matches must equal the number of lines, which proves every line has one),
DEL becomes the record separator with a `%d` for `seq`, and one `%` format fills in all
sequence numbers. Anything unusual (a truncated line, invalid UTF-8, a line without a
timestamp or with a non-fixed one, a DEL byte, a resume in progress) takes the slow path,
one line at a time, for that run only. The per-line slow path is the reference: the fast
path must give its bytes exactly, or refuse the run (tests/streams/test_records_fast_path.py).

Resume: after a reconnect or a restart the follower is asked for lines `--since` the
last timestamp written, inclusive as docker's is (some docker versions even round it
down to the second). Until a line newer than that point arrives, older lines are
skipped, and lines at exactly that timestamp are skipped if a line with the same text
was already written at it. The first newer line settles how the resume went:
- OVERLAP: the follower replayed a line already written (at the resume point or
  before). Lines come in order, so everything after it was delivered: nothing lost.
- NO_OVERLAP: the follower started after what was written (log rotated, container
  recreated, a follower that skipped lines). Nothing proves the interval empty, so it
  is a gap, bounded by the last line written before it and the first one after it.
  A new text at the resume timestamp is no proof either way: Iris stamps by the
  millisecond, so a lost line may share its stamp.
A follower that replays nothing new leaves the resume open until a newer line arrives.

Resume by cursor (the iris_log transport, `cursor.py`): the follower starts exactly after
the store row of the last line on disk, so nothing needs proving. The lines written after
that row's marker (`skip`) come first and are dropped by count; the first new line
settles the resume as EXACT. If the follower says the store no longer holds the row
(`#cursor-unknown`), it resumes by since instead, and the resume settles as a gap,
CURSOR_UNKNOWN, bounded like NO_OVERLAP's.
"""

import collections
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from workers.stream.cursor import CursorMark, parse_marker, split_markers
from workers.stream.framing import Segment
from workers.stream.timestamps import FIXED_WIDTH, parse_prefix

# Lines sharing one nanosecond timestamp that we remember for dedupe; more is not a
# real docker log, and remembering them all would unbound memory.
MAX_SAME_TS_LINES = 1024
DIAGNOSTIC_LINES = 5
DIAGNOSTIC_CHARS = 300

_DEL = b"\x7f"
_TS_END = re.compile(rb"Z (?<=\x7f\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\d\d\d\d\d\d\dZ )")
_TS_TO_LINE = b'Z","line":"'


def encode_run(run: bytes, head: bytes, seq: int) -> tuple[bytes, int] | None:
    """The fast path: a run's records and line count, or None (the run takes the slow path)."""
    if _DEL in run:
        return None
    try:
        text = run.replace(b"\n", _DEL).decode()
    except UnicodeDecodeError:
        return None
    escaped = orjson.dumps(text)  # b'"...\x7f"'
    body, found = _TS_END.subn(_TS_TO_LINE, _DEL + escaped[1:-2])
    template = b'{"seq":%d,' + head.replace(b"%", b"%%") + b',"ts":"'
    body = body[1:].replace(b"%", b"%%").replace(_DEL, b'"}\n' + template)
    try:
        # One %d per line: the format fails unless every line had its timestamp match.
        out = (template + body + b'"}\n') % tuple(range(seq, seq + found))
    except TypeError:
        return None
    return out, found


class ResumeOutcome(enum.StrEnum):
    OVERLAP = "overlap"  # the resume point was replayed: nothing lost
    NO_OVERLAP = "no_overlap"  # the replay began after the resume point: lines may be missing
    EXACT = "exact"  # resumed by cursor, exactly after the last row on disk
    CURSOR_UNKNOWN = "cursor_unknown"  # the store lost the cursor's row: lines may be missing


class ResumeBy(enum.StrEnum):
    SINCE = "since"
    CURSOR = "cursor"


@dataclass(frozen=True)
class Resumed:
    """How one resume went, settled by the first line newer than the resume point.

    `start`/`start_seq` are the last line written before the reconnect (the resume
    point), `end`/`end_seq` the first line written after it. For NO_OVERLAP they bound
    the lines that may be missing: after record `start_seq` and before `end_seq`, stamped
    from `start` to `end`.
    """

    outcome: ResumeOutcome
    start: str
    start_seq: int
    end: str
    end_seq: int
    replayed: int  # lines of the replay dropped as already written
    by: ResumeBy = ResumeBy.SINCE

    @property
    def gap(self) -> bool:
        return self.outcome in (ResumeOutcome.NO_OVERLAP, ResumeOutcome.CURSOR_UNKNOWN)


@dataclass
class Counters:
    lines: int = 0
    truncated_lines: int = 0
    invalid_utf8_lines: int = 0
    untimestamped_lines: int = 0
    duplicates_skipped: int = 0
    gaps: int = 0


@dataclass
class Resume:
    """Active from a reconnect until the first line newer than `since`.

    Overlap means a replayed line was already written: older than `since`, or at `since`
    with a text written at it. A new text at `since` proves nothing (a follower stamping
    by the millisecond, as Iris's, has many lines per stamp and may have lost some of
    them), so it is written but the question stays open.
    """

    since: str
    seen: collections.Counter[int]
    start_seq: int  # the last record before the reconnect
    overlap: bool = False
    replayed: int = 0
    first_new: tuple[str, int] | None = None  # (ts, seq) of the first line written since
    by: ResumeBy = ResumeBy.SINCE
    to_skip: int = 0  # by cursor: lines already written after the cursor's
    cursor_unknown: bool = False

    def lost_cursor(self) -> None:
        """The follower resumes by since after all: dedupe as such, and settle as a gap."""
        self.cursor_unknown, self.to_skip = True, 0

    def skip(self, ts: str, key: int) -> bool:
        if self.by is ResumeBy.CURSOR and not self.cursor_unknown:
            if self.to_skip <= 0:
                return False
            self.to_skip -= 1
            self.replayed += 1
            return True
        if ts > self.since or (ts == self.since and self.seen[key] <= 0):
            return False
        if ts == self.since:
            self.seen[key] -= 1
        self.overlap = True
        self.replayed += 1
        return True

    def settle(self, ts: str, seq: int) -> "Resumed | None":
        """Note a line about to be written as `seq`; how the resume went once it is past `since`."""
        self.first_new = self.first_new or (ts, seq)
        if self.cursor_unknown:
            outcome = ResumeOutcome.CURSOR_UNKNOWN
        elif self.by is ResumeBy.CURSOR:
            outcome = ResumeOutcome.EXACT
        else:
            outcome = ResumeOutcome.OVERLAP if self.overlap else ResumeOutcome.NO_OVERLAP
        if ts <= self.since and outcome is not ResumeOutcome.EXACT:
            return None
        end, end_seq = self.first_new
        return Resumed(outcome, self.since, self.start_seq, end, end_seq, self.replayed, self.by)


def line_key(text: str) -> int:
    # hash() is salted per process, but keys are only compared within one process: a
    # restarted child recomputes them from the texts in its file.
    return hash(text)


@dataclass
class RecordEncoder:
    run_id: str
    vm: str
    host: int
    role: str
    container: str
    next_seq: int = 0
    last_ts: str | None = None
    at_last_ts: collections.Counter[int] = field(default_factory=collections.Counter)
    counters: Counters = field(default_factory=Counters)
    resume: Resume | None = None
    resumes: list[Resumed] = field(default_factory=list)  # settled since the caller last cleared it
    diagnostics: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=DIAGNOSTIC_LINES))
    cursor_markers: bool = False  # the follower prints `#cursor` lines (cursor.py)
    # Cursor marks of the last encode, each with the output length it covers; and whether
    # the follower said the store lost the cursor we resumed from.
    marks: list[tuple[int, CursorMark]] = field(default_factory=list)
    cursor_lost: bool = False

    def start_resume(self, skip: int | None = None) -> None:
        """A new connection asked for lines since `last_ts` (dedupe until past it), or after
        a cursor, `skip` of its lines being already written."""
        if self.last_ts is not None:
            self.resume = Resume(self.last_ts, collections.Counter(self.at_last_ts), self.next_seq - 1)
            if skip is not None:
                self.resume.by, self.resume.to_skip = ResumeBy.CURSOR, skip

    def encode(self, segments: Iterable[Segment], received: str) -> bytes:
        head = self._head(received)
        parts: list[bytes] = []
        for segment in segments:
            if segment.truncated:
                parts.append(self._slow_line(segment.data, True, head))
                continue
            for run in split_markers(segment.data) if self.cursor_markers else (segment.data,):
                if run.startswith(b"#") and self.cursor_markers:
                    self._marker(run, sum(map(len, parts)))
                    continue
                fast = None if self.resume is not None else self._fast_run(run, head)
                parts.append(fast if fast is not None else self._slow_run(run, head))
        return b"".join(parts)

    def _marker(self, line: bytes, offset: int) -> None:
        marker = parse_marker(line)
        if marker is None:
            self.counters.untimestamped_lines += 1
            self.diagnostics.append(line[:DIAGNOSTIC_CHARS].decode("utf-8", "backslashreplace"))
        elif marker.unknown:
            self.cursor_lost = True
            if self.resume is not None:
                self.resume.lost_cursor()
        elif self.resume is None and self.last_ts is not None:
            # While a resume is open the lines on disk may be ahead of this follower's.
            self.marks.append((offset, CursorMark(marker.cursor, self.next_seq, self.last_ts)))

    def _head(self, received: str) -> bytes:
        fields = {
            "received": received,
            "run_id": self.run_id,
            "vm": self.vm,
            "host": self.host,
            "role": self.role,
            "container": self.container,
        }
        return orjson.dumps(fields)[1:-1]

    def _fast_run(self, run: bytes, head: bytes) -> bytes | None:
        encoded = encode_run(run, head, self.next_seq)
        if encoded is None:
            return None
        out, found = encoded
        self.next_seq += found
        self.counters.lines += found
        self._remember_tail(run, found)
        return out

    def _remember_tail(self, run: bytes, count: int) -> None:
        """After a fast run: the last timestamp and the texts written at it, for dedupe."""
        end = len(run)
        last_start = run.rfind(b"\n", 0, end - 1) + 1
        last = run[last_start : last_start + FIXED_WIDTH]
        keys: collections.Counter[int] = collections.Counter()
        walked = 0
        while end > 0 and walked < MAX_SAME_TS_LINES:
            start = run.rfind(b"\n", 0, end - 1) + 1
            if run[start : start + FIXED_WIDTH] != last:
                break
            keys[line_key(run[start + FIXED_WIDTH + 1 : end - 1].decode())] += 1
            walked += 1
            end = start
        last_ts = last.decode("ascii")
        if walked == count and last_ts == self.last_ts:
            self.at_last_ts.update(keys)
        else:
            self.at_last_ts = keys
        self.last_ts = last_ts

    def _slow_run(self, run: bytes, head: bytes) -> bytes:
        lines = run.split(b"\n")
        lines.pop()  # a run ends with "\n"
        return b"".join([self._slow_line(line, False, head) for line in lines])

    def _slow_line(self, raw: bytes, truncated: bool, head: bytes) -> bytes:
        parsed = parse_prefix(raw)
        if parsed is None:
            self.counters.untimestamped_lines += 1
            self.diagnostics.append(raw[:DIAGNOSTIC_CHARS].decode("utf-8", "backslashreplace"))
            return b""
        ts, start = parsed
        text, invalid = decode_line(raw[start:], truncated)
        key = line_key(text)
        if self.resume is not None and self._resume_skips(ts, key):
            self.counters.duplicates_skipped += 1
            return b""
        return self._record(head, ts, text, key, truncated, invalid)

    def _resume_skips(self, ts: str, key: int) -> bool:
        resume = self.resume
        assert resume is not None
        if resume.skip(ts, key):
            return True
        settled = resume.settle(ts, self.next_seq)
        if settled is not None:
            self.resumes.append(settled)
            self.counters.gaps += settled.gap
            self.resume = None
        return False

    def _record(self, head: bytes, ts: str, text: str, key: int, truncated: bool, invalid: bool) -> bytes:
        tail: dict[str, object] = {"ts": ts, "line": text}
        if truncated:
            tail["truncated"] = True
            self.counters.truncated_lines += 1
        if invalid:
            tail["invalid_utf8"] = True
            self.counters.invalid_utf8_lines += 1
        if ts != self.last_ts:
            self.last_ts = ts
            self.at_last_ts = collections.Counter()
        if self.at_last_ts.total() < MAX_SAME_TS_LINES:
            self.at_last_ts[key] += 1
        seq = self.next_seq
        self.next_seq += 1
        self.counters.lines += 1
        return b'{"seq":%d,%s,%s\n' % (seq, head, orjson.dumps(tail)[1:])


def decode_line(body: bytes, truncated: bool) -> tuple[str, bool]:
    """Text and whether it had invalid UTF-8 (kept visible as \\xNN escapes)."""
    try:
        return body.decode(), False
    except UnicodeDecodeError as exc:
        # A cut in the middle of a multi-byte character is our doing, not the VM's.
        if truncated and exc.end == len(body) and exc.reason == "unexpected end of data":
            head = body[: exc.start]
            try:
                return head.decode(), False
            except UnicodeDecodeError:
                pass
        return body.decode("utf-8", "backslashreplace"), True
