"""Follow one key of Iris's log service (finelog) and print it as `docker logs -f --timestamps` would.

    python -m workers.logservice_follow --controller URL --key KEY [--since TS [--cursor N]]
        [--cursor-markers] [--token-file F | --token-env NAME] [--poll-interval S]
        [--proxy-token-file F | --proxy-token-command JSON [--proxy-token-ttl S]]
        [--exit-on-stdin-close] [--deadline-unix T]

The follower process of the `iris_log` transport: a stream child reads its stdout as it
reads `docker logs`, lines of `<RFC 3339, 9 fractional digits>Z <text>`. Why it works so:
- Inclusive resume. The stream child restarts a follower with `--since` = the last
  timestamp it wrote and drops the replayed lines itself (older ones, and ones at `since`
  it already has, counted exactly). That needs everything AT `since` replayed, as docker
  does; FetchLogs' `sinceMs` is exclusive, so we ask for `ms(since) - 1` and a margin
  (RESUME_LOOKBACK_MS, see below), then drop rows before the first one at or after `since`.
- Cursor within a connection. After that the position is the store's row id (`cursor`,
  exclusive): each poll returns every new row of the key exactly once, in seq order,
  whatever its timestamp. Timestamps alone could not: many rows share a millisecond.
- Time never goes back. Iris stamps a record when it is created but appends it when its
  handler gets the lock, so rows of one key can step back a few ms in seq order (seen:
  up to 9 ms between worker threads). The stream child resumes from its last line's time,
  so each line is printed at max(its time, the time printed before it): a straggler is
  written a few ms late instead of making a resume duplicate lines or report a false gap.
  On resume, a straggler already written is at `since` (dropped by the count-exact
  dedupe); one not yet written is within the lookback, after the row at `since`: kept.
- Cursor markers (--cursor-markers). After each page that moved the cursor, a line
  `#cursor <seq>` says that every row up to `seq` has been printed above it (no log line
  starts with `#`: each starts with its timestamp). The stream child keeps the marker once
  the lines before it are in its file, and resumes with `--since <that line's time>
  --cursor <seq>`: we check that the store still holds row `seq` of the key, then print
  exactly the rows after it, each at no earlier than `since` (no look-back, no replay, no
  out-of-order row lost). A store without that row (rotated, or a new one) gets
  `#cursor-unknown <seq>` first and then the resume by since above: the child reports a gap.
- Stopping. The stream child closes our stdin to stop us: with --exit-on-stdin-close the
  wait between polls is a select() on fd 0, so EOF ends us at once (exit 0), as do SIGTERM
  and --deadline-unix. A server that is unreachable or answers an error ends us with
  CALL_FAILED and one line on stderr; the stream child backs off and resumes (by cursor
  when it has one). A reply we cannot read or a method the server lacks ends us with
  API_MISMATCH and the mismatch as JSON on stderr (`workers.stream.follower_exit`): the
  stream child reports it like every other child, so it reaches the verdict.
- The log service is found by `workers.controller.log_server` (the adapter uses the same):
  through the controller's `/proxy/system.log-server/` route wherever Iris has it.
- Credentials: we are given where the tokens are (a file, an environment variable's name, the
  proxy token's command as a JSON argv), never a token, and read them ourselves
  (`workers.controller.credentials`, which also keeps the proxy token fresh).
- Bounded pages. A page longer than --max-page-bytes is refused by the client, unread
  (`reply_too_large`); the follower asks again for half as many lines, down to one. A single
  entry over the cap, or a page that did not arrive within its call's time although it had
  begun (`controller_timeout`), ends us with API_MISMATCH's sibling BROKEN_REPLY and the
  report on stderr (`workers.stream.follower_exit`): the stream child reports it, and the run
  ends with that reason.
"""

import argparse
import calendar
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from common.controller_target import DEFAULT_MAX_LOG_PAGE_BYTES, PROXY_TOKEN_TTL_S, ProxyToken
from common.fdio import write_all
from common.jsonshape import JsonObject
from common.logs import redacted
from workers.controller.connect_http import ConnectClient
from workers.controller.credentials import Credentials
from workers.controller.log_server import FETCH_LOGS, resolve_log_service
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode
from workers.controller.reply import Field
from workers.stream.follower_exit import FollowerExit, broken_reply_line, mismatch_line
from workers.stream.timestamps import TimestampError, format_unix_ns, validate_since

PAGE_LINES = 1000
CALL_TIMEOUT_S = 10.0
RESUME_LOOKBACK_MS = 2000
CURSOR_MARKER = b"#cursor "
CURSOR_UNKNOWN_MARKER = b"#cursor-unknown "


class Stop(BaseException):
    """Time to exit 0: stdin EOF, SIGTERM or the deadline (a BaseException, so that no
    library's `except Exception` swallows it when SIGTERM lands inside an HTTP call)."""


def since_ms(ts: str) -> int:
    """The millisecond of a fixed-width timestamp (the form the stream child passes)."""
    ts = validate_since(ts)
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(ts[20:23])


def format_ms(epoch_ms: int) -> str:
    return format_unix_ns(epoch_ms * 1_000_000)


def entry_lines(epoch_ms: int, data: str) -> bytes:
    """One docker-style line per text line, all at the entry's time; a final newline ends the last."""
    prefix = format_ms(epoch_ms) + " "
    text = data.removesuffix("\n")
    return "".join(f"{prefix}{line}\n" for line in text.split("\n")).encode("utf-8", "backslashreplace")


Row = tuple[int, int, str]  # (seq, epoch_ms, data)


def parse_page(reply: JsonObject) -> tuple[list[Row], int]:
    """(seq, epoch_ms, data) rows of a FetchLogs reply in seq order, and its cursor (JSON leaves out zeros)."""
    rows, cursor = parse_keyed_page(reply)
    return [row for _key, row in rows], cursor


def parse_keyed_page(reply: JsonObject) -> tuple[list[tuple[str, Row]], int]:
    """(key, row) of a FetchLogs reply in seq order (a prefix query's rows have several keys), and its cursor."""
    page = Field.of(FETCH_LOGS, reply)
    rows = [
        (
            e.at("key").as_str(),
            (e.at("seq").as_int(), e.at("timestamp").at("epochMs").as_epoch_ms(), e.at("data").as_str()),
        )
        for e in page.at("entries").as_list()
    ]
    return sorted(rows, key=lambda row: row[1][0]), page.at("cursor").as_int()


def write_stdout(data: bytes) -> None:
    write_all(1, data)


class Follower:
    """One key's rows, printed as docker would: its own polls (`run`), or rows a reader of many keys
    hands it (`deliver`, workers.log_reader). `write` takes what would go to stdout."""

    def __init__(
        self,
        client: ConnectClient,
        key: str,
        since: str | None,
        *,
        poll_s: float = 0.5,
        deadline_unix: float | None = None,
        stdin: int | None = None,
        markers: bool = False,
        write: Callable[[bytes], None] = write_stdout,
    ) -> None:
        self.client, self.key, self.write = client, key, write
        self.poll_s, self.deadline = poll_s, deadline_unix
        self.stdin = stdin
        self.floor_ms = since_ms(since) if since is not None else None  # rows before the first one >= it are old
        self.last_ms = self.floor_ms or 0
        self.since_param = None if self.floor_ms is None else str(max(0, self.floor_ms - 1 - RESUME_LOOKBACK_MS))
        self.cursor = 0
        self.markers = markers
        self.page_lines = PAGE_LINES  # halved while pages are too large for the client's cap

    def resume_after(self, cursor: int) -> None:
        """Start exactly after row `cursor`, if the store still holds it; else say so and resume by since."""
        body: JsonObject = {"source": self.key, "matchScope": "MATCH_SCOPE_EXACT", "maxLines": 1}
        body |= {"cursor": str(cursor - 1), "untilCursor": str(cursor + 1)}
        rows, _ = parse_page(self.client.call(FETCH_LOGS, body, min(CALL_TIMEOUT_S, self.time_left())))
        if [seq for seq, _, _ in rows] != [cursor]:
            self.write(CURSOR_UNKNOWN_MARKER + b"%d\n" % cursor)
            return
        self.cursor, self.floor_ms, self.since_param = cursor, None, None

    def run(self) -> None:
        while True:
            if self.fetch_page() < self.page_lines:
                self.wait(self.poll_s)
            else:
                self.wait(0.0)  # more is waiting: only look at stdin and the deadline

    def fetch_page(self) -> int:
        """Print one page; the number of rows it had (a full page: more may be waiting)."""
        body: JsonObject = {"source": self.key, "matchScope": "MATCH_SCOPE_EXACT", "maxLines": self.page_lines}
        body["cursor"] = str(self.cursor)  # int64 is a string in JSON
        if self.since_param is not None:
            body["sinceMs"] = self.since_param
        try:
            reply = self.client.call(FETCH_LOGS, body, min(CALL_TIMEOUT_S, self.time_left()))
        except ControllerError as exc:
            if exc.code is not ErrorCode.REPLY_TOO_LARGE or self.page_lines == 1:
                raise
            self.page_lines //= 2
            return self.page_lines  # nothing printed: ask again at once, for fewer lines
        rows, cursor = parse_page(reply)
        self.deliver(rows, cursor)
        return len(rows)

    def deliver(self, rows: list[Row], cursor: int) -> None:
        """Print `rows` (this key's, in seq order) and, if the position moved, the marker of `cursor`."""
        out, start = [], self.cursor
        for seq, epoch_ms, data in rows:
            self.cursor = max(self.cursor, seq)
            if self.floor_ms is not None:
                if epoch_ms < self.floor_ms:
                    continue
                self.floor_ms = None
            self.last_ms = max(self.last_ms, epoch_ms)
            out.append(entry_lines(self.last_ms, data))
        moved = max(self.cursor, cursor) > start
        self.cursor = max(self.cursor, cursor)
        if moved and self.markers:
            out.append(CURSOR_MARKER + b"%d\n" % self.cursor)
        if out:
            self.write(b"".join(out))

    def time_left(self) -> float:
        return time_left(self.deadline)

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds` (bounded by the deadline); Stop on stdin EOF or the deadline."""
        end = time.monotonic() + min(seconds, self.time_left())
        while True:
            left = max(0.0, end - time.monotonic())
            readable, _, _ = select.select([self.stdin] if self.stdin is not None else [], [], [], left)
            if readable and os.read(0, 65536) == b"":
                raise Stop
            if time.monotonic() >= end:
                self.time_left()
                return


def time_left(deadline_unix: float | None) -> float:
    """The time a call may take: what is left before --deadline-unix (Stop once it has passed)."""
    if deadline_unix is None:
        return CALL_TIMEOUT_S
    left = float(deadline_unix - time.time())
    if left <= 0:
        raise Stop
    return left


def log_client(controller: ConnectClient, deadline_unix: float | None) -> ConnectClient:
    """The log service's client (workers.controller.log_server), the lookup capped by --deadline-unix."""
    service = resolve_log_service(controller, min(CALL_TIMEOUT_S, time_left(deadline_unix)))
    return controller.at(service.url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers.logservice_follow", description=__doc__.splitlines()[0])
    parser.add_argument("--controller", required=True, help="the Iris controller's URL")
    parser.add_argument("--key", required=True, help="/system/controller or /system/worker/<worker id>")
    parser.add_argument("--since", help="replay from this fixed-width RFC 3339 timestamp, inclusive")
    parser.add_argument("--cursor", type=int, help="with --since: resume after this row of the store, exactly")
    parser.add_argument("--cursor-markers", action="store_true", help="print a `#cursor <seq>` line after each page")
    parser.add_argument("--token-file", help="a file holding the bearer token")
    parser.add_argument("--token-env", help="the environment variable holding the bearer token")
    parser.add_argument("--proxy-token-file", default="", help="a file holding the Proxy-Authorization token")
    parser.add_argument("--proxy-token-command", type=command_argv, default=(), help="its command, a JSON argv")
    parser.add_argument("--proxy-token-ttl", type=float, default=PROXY_TOKEN_TTL_S, help="an opaque token's life")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between polls once caught up")
    parser.add_argument("--exit-on-stdin-close", action="store_true", help="exit when stdin reaches EOF")
    parser.add_argument("--deadline-unix", type=float, help="exit (0) at this Unix time")
    parser.add_argument(
        "--max-page-bytes", type=int, default=DEFAULT_MAX_LOG_PAGE_BYTES, help="refuse a longer reply (reply_too_large)"
    )
    return parser


def command_argv(text: str) -> tuple[str, ...]:
    """`--proxy-token-command`: a JSON list of strings, the first one not empty."""
    try:
        argv = json.loads(text)
    except ValueError:
        argv = None
    if not (isinstance(argv, list) and argv and argv[0] and all(isinstance(a, str) for a in argv)):
        raise argparse.ArgumentTypeError(f"not a JSON list of strings: {text!r}")
    return tuple(argv)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise Stop


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        proxy = ProxyToken(args.proxy_token_file, args.proxy_token_command, args.proxy_token_ttl)
        credentials = Credentials.of(args.token_file or "", args.token_env or "", proxy)
        since = None if args.since is None else validate_since(args.since)
        if args.cursor is not None and (since is None or args.cursor <= 0):
            raise TimestampError("--cursor needs --since and a positive row id")
        with ConnectClient(args.controller, credentials, max_reply_bytes=args.max_page_bytes) as controller:
            follower = Follower(
                log_client(controller, args.deadline_unix), args.key, since, poll_s=args.poll_interval,
                deadline_unix=args.deadline_unix, stdin=0 if args.exit_on_stdin_close else None,
                markers=args.cursor_markers,
            )  # fmt: skip
            if args.cursor is not None:
                follower.resume_after(args.cursor)
            follower.run()
    except (Stop, BrokenPipeError):
        return FollowerExit.OK
    except KeyboardInterrupt:
        return FollowerExit.INTERRUPTED
    except (OSError, TimestampError, ControllerError) as exc:
        code, report = ending(exc)
        print(report, file=sys.stderr, end="")
        return code
    return FollowerExit.OK


def ending(exc: OSError | TimestampError | ControllerError, who: str = "logservice_follow") -> tuple[FollowerExit, str]:
    """How a failure ends a follower: its exit code and its stderr (the last line the report that
    `workers.stream.follower_exit` parses), every line redacted. The log reader ends a subscription so too."""
    lines = [f"{who}: {exc}"]
    code = FollowerExit.CALL_FAILED
    if isinstance(exc, OSError | TimestampError):
        code = FollowerExit.USAGE
    elif isinstance(exc, ApiMismatch):
        code = FollowerExit.API_MISMATCH
        lines.append(mismatch_line(exc.method, exc.field, exc.details))
    elif exc.code in (ErrorCode.REPLY_TOO_LARGE, ErrorCode.CONTROLLER_TIMEOUT):
        code = FollowerExit.BROKEN_REPLY
        lines.append(broken_reply_line(exc.code, exc.method, exc.details))
    return code, "".join(redacted(line) + "\n" for line in lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
