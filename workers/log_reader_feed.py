"""The log reader's loop: subscriptions in, one shared poll of the log service, each key's rows out.

    accept subscriptions (own uid only) -> each new one catches up alone, one page per turn:
        `Follower.resume_after` / `fetch_page` on its key (MATCH_SCOPE_EXACT), as its own follower did
    -> then it is live: one FetchLogs of `/system/` (MATCH_SCOPE_PREFIX) from the global cursor per
       poll, its key's rows after its own position handed to `Follower.deliver`
    -> a failure ends the subscriptions it concerns as a follower would have ended (`ending`)

Why a live subscription misses nothing: the global cursor is first taken (the store's last row)
before any subscription catches up, and a catch-up always runs after the latest shared poll; so
a row of its key at or below the global cursor was already there when it caught up, and every
row above it comes in a later shared poll. Rows at or below a subscription's own position are
dropped, so none is handed over twice. Each row is printed once per subscription, and the
`#cursor` marker after a batch names that key's last row, so a stream's sidecar resumes it exactly.

Bounded: a shared poll waits while the bytes queued for the subscriptions exceed one page
(`max_log_page_bytes`); a subscription catches up only once its queue is empty; one that takes
nothing for STUCK_S is ended (CALL_FAILED) and resumes by its cursor when it subscribes again.
"""

import collections
import contextlib
import os
import select
import socket
import time
from dataclasses import dataclass, field

from common.jsonshape import JsonObject
from workers.child_args import LogReaderArgs
from workers.controller.connect_http import ConnectClient
from workers.controller.credentials import Credentials
from workers.controller.log_server import FETCH_LOGS
from workers.controller.model import ControllerError, ErrorCode
from workers.logservice_follow import (
    CALL_TIMEOUT_S,
    PAGE_LINES,
    Follower,
    Row,
    Stop,
    ending,
    log_client,
    parse_keyed_page,
)
from workers.messages import Ready
from workers.runtime import ChildContext
from workers.stream.follower_exit import FollowerExit
from workers.stream.subscription import DATA, MAX_DATA_BYTES, RECV_BYTES, Subscribe, end_message, peer_pid_uid
from workers.stream.timestamps import TimestampError, validate_since

SHARED_SOURCE = "/system/"  # workers (/system/worker/<id>) and the controller (/system/controller)
STUCK_S = 10.0
RESOLVE_RETRY_S = 1.0
SEND_BUFFER_BYTES = 1 << 20


@dataclass
class Subscriber:
    sock: socket.socket
    request: Subscribe | None = None  # until its SUBSCRIBE arrived
    follower: Follower | None = None
    live: bool = False
    closing: bool = False  # END queued: close once it is sent
    queue: collections.deque[bytes] = field(default_factory=collections.deque)
    queued: int = 0
    blocked_since: float | None = None

    def put(self, message: bytes) -> None:
        self.queue.append(message)
        self.queued += len(message)

    def send_data(self, data: bytes) -> None:
        for at in range(0, len(data), MAX_DATA_BYTES):
            self.put(DATA + data[at : at + MAX_DATA_BYTES])

    def end(self, code: int, stderr: str) -> None:
        """Drop what is queued (the stream resumes by its cursor) and say how it ended."""
        if not self.closing:
            self.queue.clear()
            self.queued = 0
            self.put(end_message(code, stderr))
            self.closing = True

    def flush(self, now: float) -> bool:
        """Send what the socket takes; False once this subscription is over (sent its END, or gone)."""
        try:
            while self.queue:
                self.sock.send(self.queue[0])
                self.queued -= len(self.queue.popleft())
        except BlockingIOError:
            self.blocked_since = self.blocked_since or now
            return True
        except OSError:
            return False
        self.blocked_since = None
        return not self.closing


class Reader:
    def __init__(self, ctx: ChildContext, args: LogReaderArgs, listener: socket.socket) -> None:
        self.ctx, self.args, self.listener = ctx, args, listener
        self.log = ctx.log
        self.subs: dict[int, Subscriber] = {}  # by socket fd
        self.controller: ConnectClient | None = None
        self.client: ConnectClient | None = None  # the log service's
        self.cursor: int | None = None  # the shared poll's position (None until taken)
        self.page_lines = PAGE_LINES
        self.next_poll = self.retry_at = 0.0
        self.failing = ""  # the shared poll's last failure, logged once per change
        self.polls = self.rows = self.subscriptions = 0

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        while not (self.ctx.stop.requested() or self.ctx.deadline.expired()):
            now = time.monotonic()
            if self.client is None and now >= self.retry_at:
                self._resolve()
            if self.client is not None:
                for sub in [s for s in self.subs.values() if s.request and not s.live and not s.closing]:
                    if not sub.queue:
                        self._catch_up(sub)
                if self._poll_due():
                    self._shared_poll()
            self._flush()
            self._wait()
        for sub in list(self.subs.values()):
            self._close(sub)

    def _poll_wanted(self) -> bool:
        """A shared poll has a use: a live subscription, and room in the queues for a page."""
        live = any(s.live and not s.closing for s in self.subs.values())
        return live and sum(s.queued for s in self.subs.values()) <= self.args.target.max_log_page_bytes

    def _poll_due(self) -> bool:
        return self._poll_wanted() and time.monotonic() >= self.next_poll

    def _wait(self) -> None:
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.ctx.stop.fd, select.POLLIN)
        for fd, sub in self.subs.items():
            # A closing one is not read: its EOF stays readable until its END is through.
            poller.register(fd, (0 if sub.closing else select.POLLIN) | (select.POLLOUT if sub.queue else 0))
        for fd, events in poller.poll(self._timeout_ms()):
            if fd == self.listener.fileno():
                self._accept()
            elif fd in self.subs:
                self._on_event(self.subs[fd], events)

    def _timeout_ms(self) -> int:
        now = time.monotonic()
        due = [self.ctx.deadline.remaining()]
        if self._poll_wanted():  # else a subscription, or room in the queues, wakes us first
            due.append(max(0.0, self.next_poll - now))
        if self.client is None:
            due.append(max(0.0, self.retry_at - now))
        elif any(s.request and not s.live and not s.closing and not s.queue for s in self.subs.values()):
            due.append(0.0)  # a catch-up to continue
        blocked = [s.blocked_since + STUCK_S - now for s in self.subs.values() if s.blocked_since is not None]
        return max(0, int(min(due + blocked) * 1000))

    # -- subscriptions ----------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # none waiting (EAGAIN), or gone before we took it
                return
            pid, uid = peer_pid_uid(sock)
            if uid != os.getuid():
                self.log.warning("log_reader_refused", peer_pid=pid, peer_uid=uid)
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            self.subs[sock.fileno()] = Subscriber(sock)

    def _on_event(self, sub: Subscriber, events: int) -> None:
        if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                message = sub.sock.recv(RECV_BYTES)
            except OSError:
                message = b""
            if not message:  # the stream is done (it shut its side down), or gone
                sub.end(FollowerExit.OK, "")
            elif sub.request is None:
                self._subscribe(sub, message)

    def _subscribe(self, sub: Subscriber, message: bytes) -> None:
        try:
            request = Subscribe.decode(message)
            if request.since is not None:
                validate_since(request.since)
            if request.cursor is not None and (request.since is None or request.cursor <= 0):
                raise TimestampError("a cursor needs a since and a positive row id")
        except (ValueError, KeyError, TypeError, TimestampError) as exc:
            sub.end(FollowerExit.USAGE, f"log_reader: bad subscription: {exc}\n")
            return
        sub.request = request
        self.subscriptions += 1

    def _catch_up(self, sub: Subscriber) -> None:
        """One page of the subscription's own key (after resuming at its cursor); live once a page is not full."""
        request = sub.request
        assert request is not None and self.client is not None
        try:
            if sub.follower is None:
                sub.follower = Follower(
                    self.client, request.key, request.since, markers=True,
                    deadline_unix=self.ctx.deadline.as_unix_time(), write=sub.send_data,
                )  # fmt: skip
                if request.cursor is not None:
                    sub.follower.resume_after(request.cursor)
            sub.follower.client = self.client
            sub.live = sub.follower.fetch_page() < sub.follower.page_lines
        except ControllerError as exc:
            self._end(sub, exc)

    def _end(self, sub: Subscriber, exc: ControllerError | OSError) -> None:
        code, report = ending(exc, "log_reader")
        sub.end(code, report)

    def _flush(self) -> None:
        now = time.monotonic()
        for sub in list(self.subs.values()):
            if not sub.flush(now):
                self._close(sub)
            elif sub.blocked_since is not None and now - sub.blocked_since >= STUCK_S:
                self.log.warning(
                    "log_reader_subscriber_stuck", key=sub.request.key if sub.request else "", stuck_s=STUCK_S
                )
                self._close(sub)  # no END can get through a full socket; the stream reads EOF

    def _close(self, sub: Subscriber) -> None:
        self.subs.pop(sub.sock.fileno(), None)
        with contextlib.suppress(OSError):
            sub.sock.close()

    # -- the log service ----------------------------------------------------------------

    def _resolve(self) -> None:
        """The log service's route (workers.controller.log_server) and the shared poll's start: its last row."""
        assert self.controller is not None
        try:
            client = log_client(self.controller, self.ctx.deadline.as_unix_time())
            if self.cursor is None:
                body: JsonObject = {"source": SHARED_SOURCE, "matchScope": "MATCH_SCOPE_PREFIX", "maxLines": 1}
                _rows, self.cursor = parse_keyed_page(client.call(FETCH_LOGS, body | {"tail": True}, CALL_TIMEOUT_S))
        except ControllerError as exc:
            self.retry_at = time.monotonic() + RESOLVE_RETRY_S
            self._failed(exc, [s for s in self.subs.values() if s.request])
            return
        self.client = client
        self.log.info("log_reader_ready", log_service=client.base_url, cursor=self.cursor)

    def _shared_poll(self) -> None:
        assert self.client is not None and self.cursor is not None
        body: JsonObject = {"source": SHARED_SOURCE, "matchScope": "MATCH_SCOPE_PREFIX", "maxLines": self.page_lines}
        body["cursor"] = str(self.cursor)
        live = [s for s in self.subs.values() if s.live and not s.closing]
        try:
            reply = self.client.call(FETCH_LOGS, body, min(CALL_TIMEOUT_S, self.ctx.deadline.remaining()))
            rows, cursor = parse_keyed_page(reply)
        except ControllerError as exc:
            if exc.code is ErrorCode.REPLY_TOO_LARGE and self.page_lines > 1:
                self.page_lines //= 2  # ask again at once, for fewer lines
                return
            self._failed(exc, live)
            self.next_poll = time.monotonic() + self.args.poll_interval_s
            return
        self.polls, self.rows = self.polls + 1, self.rows + len(rows)
        self._hand_out(rows, live)
        self.cursor = max([self.cursor, cursor, *(row[0] for _key, row in rows)])
        full = len(rows) >= self.page_lines
        self.next_poll = time.monotonic() + (0.0 if full else self.args.poll_interval_s)
        if self.failing:
            self.failing = ""
            self.log.info("log_reader_recovered", cursor=self.cursor)

    def _hand_out(self, rows: list[tuple[str, Row]], live: list[Subscriber]) -> None:
        by_key: dict[str, list[Row]] = collections.defaultdict(list)
        for key, row in rows:
            by_key[key].append(row)
        for sub in live:
            assert sub.request is not None and sub.follower is not None
            mine = [row for row in by_key.get(sub.request.key, ()) if row[0] > sub.follower.cursor]
            if mine:
                sub.follower.deliver(mine, 0)

    def _failed(self, exc: ControllerError, subs: list[Subscriber]) -> None:
        """A failure of the shared poll (or of finding the log service) ends the subscriptions it
        concerns as their followers would have ended; an unreachable service is looked up again."""
        for sub in subs:
            self._end(sub, exc)
        if exc.code not in (ErrorCode.API_MISMATCH, ErrorCode.REPLY_TOO_LARGE):
            self.client = None
        error = str(exc)
        if error != self.failing:
            self.failing = error
            self.log.warning("log_reader_failed", code=str(exc.code), error=error[:300], subscriptions=len(subs))


def serve(ctx: ChildContext, args: LogReaderArgs, listener: socket.socket) -> None:
    target = args.target
    reader = Reader(ctx, args, listener)
    with ConnectClient(target.address, Credentials.for_target(target), max_reply_bytes=target.max_log_page_bytes) as (
        controller
    ):
        reader.controller = controller
        ctx.channel.send(Ready())
        with contextlib.suppress(Stop):
            reader.run()
    ctx.log.info(
        "log_reader_stopped", polls=reader.polls, rows=reader.rows, subscriptions=reader.subscriptions,
        cursor=reader.cursor,
    )  # fmt: skip
