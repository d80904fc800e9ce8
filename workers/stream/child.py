"""The stream child's loop: follow one container log until stopped.

    validate args -> open (lock, recover) the file -> loop:
        start follower (since = last timestamp written) -> READY once
        read stdout/stderr/stop under one poll, timeouts from the deadline and timers
        follower exited -> stream_disconnected -> backoff (interruptible) -> again
    stop -> close follower stdin, short drain, end its group -> write, fsync -> STATS

A stream's file is capped at `max_bytes` (`StreamSpec`): only whole records that fit are
written; then the follower is ended, `stream_capped` is logged once, the STATS say
`capped`, and the child exits without reconnecting. The cap counts the file's size, so a
restarted child (or a returning host) starts with what is already there.

The STATS count the followers in a row, up to the stop, that could not reach the source
(`failed_connects`: never started, or ended by themselves, non-zero, with no line) and keep
the last one's error: the parent tells a stream cut off at the end from one that was not.

An iris_log stream keeps the log-service cursor of its last line on disk in a sidecar
(`cursor.py`) and resumes by it, exactly; without one (first start, no or a stale
sidecar) it resumes by since, and then the sidecar is removed until a new mark is saved.

A follower that exits API_MISMATCH (the log service's API is not ours: `follower_exit`) is
reported once, as every child reports one (`polling.report_api_mismatch`), so it reaches the
verdict; the stream keeps retrying with backoff like after any other exit.

An idle stream sleeps in poll(2) until data, a stop (ctx.stop.fd), the stale mark, the
next progress message or the deadline; it never polls in a loop.
"""

import dataclasses
import enum
import math
import select
import time
from typing import TypeAlias

from common.child_exit import ChildExit
from workers.controller import polling
from workers.controller.model import ErrorCode
from workers.messages import StreamProgress, StreamReady, StreamStats
from workers.runtime import ChildContext
from workers.stream import cursor, timestamps
from workers.stream.backoff import Backoff
from workers.stream.connection import Connection
from workers.stream.follower_exit import BROKEN_REPLY_CODES, BROKEN_REPLY_PREFIX, FollowerExit, parse_mismatch
from workers.stream.framing import LineFramer
from workers.stream.outfile import StreamFile, StreamFileBusy
from workers.stream.records import RecordEncoder, Resumed
from workers.stream.spec import StreamSpec
from workers.stream.subscription import Subscribe, Subscription, abstract_address
from workers.transports import IrisLogTransport, LocalTransport

# Where a stream's lines come from: a follower process, or the run's log reader.
Source: TypeAlias = Connection | Subscription

# Shares of the child's stop grace (runtime's hard-exit timer): waiting for the follower
# to leave by itself after stdin EOF, then TERM-to-KILL for its group. The rest is for
# writing and fsync.
EXIT_WAIT_SHARE = 0.3
TERM_GRACE_SHARE = 0.2
# Draining (SIGUSR1, at the end of a run): the follower counts as caught up once it has
# been silent this long. Before it delivered anything at all it gets longer, since a
# follower that has just been started may still be loading (a Python interpreter, an
# ssh handshake); the supervisor's drain budget bounds the whole wait either way.
DRAIN_QUIET_S = 0.3
DRAIN_FIRST_DATA_S = 2.0
# Read coalescing: a stream's CPU goes per wake-up, not per byte (poll, read, timestamp,
# encode, write: ~120 µs for one line, ~3 µs a line in large reads). After a read smaller
# than this, the follower's pipe is left alone for a moment so lines gather there; a drain
# or a stop ends the pause at once. A busy stream of lines is not paused: encoding a full
# read takes long enough for the next one to be large. The rest of an over-long line is
# never paused: it is dropped as it comes, so nothing batches it, and paused it drained
# at a pipe's worth per pause (a 1 GiB line in 16 KiB writes at 4 MB/s, later lines waiting).
COALESCE_BELOW_BYTES = 16384
COALESCE_S = 0.5
LAST_ERROR_CHARS = 300  # of the last failed follower's stderr, in the STATS


class EndReason(enum.StrEnum):
    TRANSPORT_EXITED = "transport_exited"
    STOP_REQUESTED = "stop_requested"
    DRAINED = "drained"
    DEADLINE = "deadline"
    CAPPED = "capped"


class StreamChild:
    def __init__(self, ctx: ChildContext, spec: StreamSpec, backoff: Backoff, out: StreamFile) -> None:
        self.ctx, self.spec, self.backoff, self.out = ctx, spec, backoff, out
        host = spec.host
        self.encoder = RecordEncoder(ctx.run_id, host.vm, host.host, host.role, spec.container)
        found = out.recovered
        self.encoder.next_seq, self.encoder.last_ts = found.next_seq, found.last_ts
        self.encoder.at_last_ts = found.at_last_ts
        self.by_cursor = isinstance(spec.transport, IrisLogTransport)
        self.paused_until: float | None = None  # reads paused for coalescing until then
        self.encoder.cursor_markers = self.by_cursor
        self.cursor_file = cursor.sidecar_path(out.path)
        self.mark = cursor.load(self.cursor_file, found.next_seq, found.last_ts) if self.by_cursor else None
        self.framer = LineFramer(spec.max_line_bytes)
        self.log = ctx.log.bind(vm=host.vm, host=host.host, container=spec.container)
        self.bytes_in = self.reconnects = self.stale = self.failed_connects = 0
        self.last_error = ""
        self.ready_sent = False
        self.stale_reported = False
        self.capped = False
        self.mismatch_reported = False
        self.broken_reply_reported = False
        now = time.monotonic()
        self.last_data_at: float | None = None
        self.drain_started: float | None = None
        self.next_progress = now + spec.progress_interval_s
        self.next_sync = now + spec.fsync_interval_s

    # -- the loop ---------------------------------------------------------------

    def run(self) -> None:
        if self.out.size >= self.spec.max_bytes:
            self._cap()
        while not (self._stopping() or self.capped):
            conn = self._connect()
            reason = self._pump(conn) if conn is not None else EndReason.TRANSPORT_EXITED
            if conn is not None:
                self._disconnect(conn, reason)
            self._count_failed_connect(conn, reason)
            if self._stopping() or self.capped:
                break
            self._wait_backoff(conn)
        self._finish()

    def _stopping(self) -> bool:
        return self.ctx.stop.requested() or self.ctx.drain.requested() or self.ctx.deadline.expired()

    def _drained(self, conn: Source, now: float) -> float | None:
        """While draining: 0 when caught up, else the seconds until it may count as caught up."""
        if not self.ctx.drain.requested():
            return None
        quiet = DRAIN_QUIET_S if conn.delivered else DRAIN_FIRST_DATA_S
        since = max(self._silent_since(conn), self.drain_started or now)
        return max(0.0, since + quiet - now)

    def _connect(self) -> Source | None:
        since, mark, left = self.encoder.last_ts, self.mark, self.ctx.deadline.remaining()
        transport = self.spec.transport
        conn: Source
        try:
            if isinstance(transport, IrisLogTransport) and transport.reader:
                request = Subscribe(transport.key(self.spec.host), since, None)
                if mark is not None:
                    request = Subscribe(request.key, mark.ts, mark.cursor)
                conn = Subscription.open(abstract_address(transport.reader), request)
            else:
                conn = self._start_follower(since, mark, left)
        except OSError as exc:  # the program itself is missing or not executable; no reader listens
            self.log.warning("stream_disconnected", exit_code=None, error=str(exc), stderr_tail="")
            return None
        if mark is None:
            if self.by_cursor:
                # Lines a resume by since writes do not continue a saved mark.
                cursor.discard(self.cursor_file)
            self.encoder.start_resume()
        else:
            self.encoder.start_resume(skip=self.encoder.next_seq - mark.next_seq)
        self.framer = LineFramer(self.spec.max_line_bytes)  # a new follower starts on a line boundary
        cursor_at = None if mark is None else mark.cursor
        self.log.info(
            "stream_connected", transport=transport.kind, since=since, cursor=cursor_at, transport_pid=conn.pid
        )
        if not self.ready_sent:
            self.ctx.channel.send(StreamReady(conn.pid, str(self.out.path)))
            self.ready_sent = True
        return conn

    def _start_follower(self, since: str | None, mark: cursor.CursorMark | None, left: float) -> Connection:
        """A follower process of this stream's own (ssh, the local `logs`, an Iris follower)."""
        transport = self.spec.transport
        if isinstance(transport, IrisLogTransport) and mark is not None:
            argv = transport.argv(self.spec.host, self.spec.container, mark.ts, left, cursor=mark.cursor)
        else:
            argv = transport.argv(self.spec.host, self.spec.container, since, left)
        forked = transport.forked if isinstance(transport, IrisLogTransport | LocalTransport) else None
        return Connection.start(
            self.ctx.groups, argv, self.spec.read_chunk_bytes, transport.inherited_secrets, forked=forked
        )

    def _pump(self, conn: Source) -> EndReason:
        poller = select.poll()
        for fd in (conn.out_fd, self.ctx.stop.fd, self.ctx.drain.fd):
            poller.register(fd, select.POLLIN)
        if conn.err_open:
            poller.register(conn.err_fd, select.POLLIN)
        self.paused_until = None
        while conn.out_open:
            if self.paused_until is not None and (time.monotonic() >= self.paused_until or self.ctx.drain.requested()):
                poller.register(conn.out_fd, select.POLLIN)
                self.paused_until = None
            if self.ctx.stop.requested():
                return EndReason.STOP_REQUESTED
            if self.ctx.deadline.expired():
                return EndReason.DEADLINE
            if self._drained(conn, time.monotonic()) == 0:
                return EndReason.DRAINED
            for fd, _events in poller.poll(self._timeout_ms(conn)):
                if fd == self.ctx.stop.fd:
                    return EndReason.STOP_REQUESTED
                if fd == self.ctx.drain.fd:
                    poller.unregister(fd)  # it stays readable; once is enough
                    self.drain_started = self.drain_started or time.monotonic()
                if fd == conn.out_fd:
                    data = conn.read_stdout()
                    if data:
                        self._ingest(data)
                        conn.delivered = True
                        if self.capped:
                            return EndReason.CAPPED
                        if self._coalesce(data):
                            poller.unregister(fd)
                            self.paused_until = time.monotonic() + COALESCE_S
                    else:
                        poller.unregister(fd)
                elif fd == conn.err_fd:
                    conn.read_stderr()
                    if not conn.err_open:
                        poller.unregister(fd)
            self._tick(conn)
        return EndReason.TRANSPORT_EXITED

    def _coalesce(self, data: bytes) -> bool:
        """Pause reads after this one? After a small read, unless inside an over-long line."""
        small = len(data) < COALESCE_BELOW_BYTES
        return small and not (self.framer.discarding or self.ctx.drain.requested())

    def _timeout_ms(self, conn: Source) -> int:
        now = time.monotonic()
        due = [self.ctx.deadline.remaining(), self.next_progress - now]
        if not self.stale_reported:
            due.append(self._silent_since(conn) + self.spec.stale_after_s - now)
        if self.out.dirty:
            due.append(self.next_sync - now)
        drained = self._drained(conn, now)
        if drained is not None:
            due.append(drained)
        if self.paused_until is not None:
            due.append(self.paused_until - now)
        return max(0, math.ceil(min(due) * 1000))

    def _silent_since(self, conn: Source) -> float:
        return max(conn.started_at, self.last_data_at or 0.0)

    # -- data -------------------------------------------------------------------

    def _ingest(self, data: bytes) -> None:
        self.bytes_in += len(data)
        batch = self.encoder.encode(self.framer.feed(data), timestamps.now())
        # Said before the lines are written: a SIGKILL between the two must not leave the lines on
        # disk and the resume that placed them unsaid.
        for resumed in self.encoder.resumes:
            self._log_resumed(resumed)
        self.encoder.resumes.clear()
        written = self._write(batch) if batch else 0
        if self.by_cursor:
            self._keep_cursor(written)
        self.last_data_at = time.monotonic()
        self.stale_reported = False

    def _log_resumed(self, resumed: Resumed) -> None:
        """stream_resumed: the replay overlapped, nothing lost; stream_gap: lines between the bounds may be missing."""
        fields = dataclasses.asdict(resumed)
        outcome = fields.pop("outcome")
        if resumed.gap:
            self.log.warning("stream_gap", reason=outcome, **fields)
        else:
            self.log.info("stream_resumed", **fields)

    def _write(self, batch: bytes) -> int:
        """Whole records up to the cap; the first that does not fit caps the stream. The bytes written."""
        room = self.spec.max_bytes - self.out.size
        fits = batch if len(batch) <= room else batch[: batch.rfind(b"\n", 0, max(0, room)) + 1]
        if fits:
            self.out.write(fits)
        if len(fits) < len(batch):
            self._cap()
        return len(fits)

    def _keep_cursor(self, written: int) -> None:
        """Save the last cursor mark whose lines are all in the file; forget one the store lost."""
        if self.encoder.cursor_lost:
            self.encoder.cursor_lost, self.mark = False, None
            cursor.discard(self.cursor_file)
        covered = [mark for offset, mark in self.encoder.marks if offset <= written]
        self.encoder.marks.clear()
        if covered:
            self.mark = covered[-1]
            cursor.save(self.cursor_file, self.mark)

    def _cap(self) -> None:
        if not self.capped:
            self.capped = True
            self.log.warning("stream_capped", bytes=self.out.size, max_bytes=self.spec.max_bytes)

    def _tick(self, conn: Source) -> None:
        now = time.monotonic()
        silent_s = now - self._silent_since(conn)
        if not self.stale_reported and silent_s >= self.spec.stale_after_s:
            self.stale_reported = True
            self.stale += 1
            self.log.warning("stream_stale", silent_s=round(silent_s, 3), last_ts=self.encoder.last_ts)
        if now >= self.next_progress:
            self.next_progress = now + self.spec.progress_interval_s
            self.ctx.channel.send(self._progress(now))
        if self.out.dirty and now >= self.next_sync:
            self.next_sync = now + self.spec.fsync_interval_s
            self.out.sync()

    def _progress(self, now: float) -> StreamProgress:
        age = None if self.last_data_at is None else round(now - self.last_data_at, 3)
        return StreamProgress(self.encoder.counters.lines, age, self.stale_reported)

    # -- ending a connection, waiting, finishing -----------------------------------

    def _count_failed_connect(self, conn: Source | None, reason: EndReason) -> None:
        """Followers in a row that could not reach the source: never started, or failed by themselves with no line."""
        if conn is not None and conn.delivered:
            self.failed_connects, self.last_error = 0, ""
        elif reason is EndReason.TRANSPORT_EXITED and (conn is None or conn.returncode != 0):
            self.failed_connects += 1
            self.last_error = conn.stderr_text()[-LAST_ERROR_CHARS:] if conn is not None else "could not start"

    def _disconnect(self, conn: Source, reason: EndReason) -> None:
        grace = self.ctx.grace_s
        if reason is not EndReason.TRANSPORT_EXITED:
            conn.close_stdin()
            conn.read_until_eof(grace * EXIT_WAIT_SHARE, self._ingest)
        if isinstance(conn, Subscription):
            code = conn.end(grace * EXIT_WAIT_SHARE, self._ingest)
        else:
            code = conn.end(self.ctx.groups, grace * EXIT_WAIT_SHARE, grace * TERM_GRACE_SHARE, self._ingest)
        self.log.info(
            "stream_disconnected",
            reason=reason,
            exit_code=code,
            stderr_tail=conn.stderr_text(),
            output_tail=list(self.encoder.diagnostics),
            lines=self.encoder.counters.lines,
        )
        self.encoder.diagnostics.clear()
        if self.by_cursor and code == FollowerExit.API_MISMATCH:
            self._report_mismatch(conn.stderr_text())
        if self.by_cursor and code == FollowerExit.BROKEN_REPLY:
            self._report_broken_reply(conn.stderr_text())

    def _report_mismatch(self, stderr: str) -> None:
        """Once per child: reconnecting will not change the log service's API."""
        if self.mismatch_reported:
            return
        self.mismatch_reported = True
        found = parse_mismatch(stderr) or {}
        method, field = found.get("method", "<log service>"), found.get("field", "")
        polling.report_api_mismatch(self.ctx, method, field, found.get("details", stderr[-300:]))

    def _report_broken_reply(self, stderr: str) -> None:
        """Once per child: the supervisor ends the run on the first one (supervisor/smoke.py)."""
        found = parse_mismatch(stderr, BROKEN_REPLY_PREFIX) or {}
        if self.broken_reply_reported or found.get("code") not in BROKEN_REPLY_CODES:
            return
        self.broken_reply_reported = True
        code, method = ErrorCode(found["code"]), found.get("method", "<log service>")
        polling.report_broken_reply(self.ctx, code, method, found.get("details", ""))

    def _wait_backoff(self, conn: Source | None) -> None:
        started = conn.started_at if conn is not None else time.monotonic()
        delay = self.backoff.next_delay(started, conn is not None and conn.delivered)
        self.reconnects += 1
        self.log.info("stream_backoff", delay_s=round(delay, 3), attempt=self.backoff.attempt)
        poller = select.poll()
        poller.register(self.ctx.stop.fd, select.POLLIN)
        poller.register(self.ctx.drain.fd, select.POLLIN)
        poller.poll(math.ceil(self.ctx.deadline.cap(delay) * 1000))

    def _finish(self) -> None:
        self.out.sync()
        self.out.close()
        stats = self.stats()
        reason = self.ctx.stop.reason or self.ctx.drain.reason or ("capped" if self.capped else "deadline")
        self.log.info("stream_stopped", reason=reason, **stats.body)
        self.ctx.channel.send(stats)

    def stats(self) -> StreamStats:
        c = self.encoder.counters
        return StreamStats(
            lines=c.lines,
            bytes=self.bytes_in,
            reconnects=self.reconnects,
            gaps=c.gaps,
            truncated_lines=c.truncated_lines,
            invalid_utf8_lines=c.invalid_utf8_lines,
            untimestamped_lines=c.untimestamped_lines,
            duplicates_skipped=c.duplicates_skipped,
            stale=self.stale,
            failed_connects=self.failed_connects,
            last_error=self.last_error,
            capped=self.capped,
            file_bytes=self.out.size,
            last_ts=self.encoder.last_ts,
            next_seq=self.encoder.next_seq,
        )


def main(ctx: ChildContext) -> int:
    spec: StreamSpec = ctx.args
    output = spec.output_path(ctx.run_dir)
    try:
        out = StreamFile(output, spec.max_line_bytes)
    except StreamFileBusy as exc:
        ctx.log.error("stream_file_busy", path=str(output), error=str(exc))
        return ChildExit.ERROR
    found = out.recovered
    if found.torn_bytes or found.unreadable_lines:
        ctx.log.warning("stream_file_repaired", torn_bytes=found.torn_bytes, unreadable=found.unreadable_lines)
    StreamChild(ctx, spec, spec.new_backoff(), out).run()
    return ChildExit.OK
