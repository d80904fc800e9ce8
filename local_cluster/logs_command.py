"""`local-cluster logs`: `docker logs` over the local cluster's container log files.

    local-cluster logs --state-dir DIR [--follow] [--timestamps] [--since TS]
                       [--exit-on-stdin-close] VM CONTAINER

On the hot path of log streaming (one per VM host per run), so it imports neither grpc
nor structlog, finds the `--since` position by binary search (timestamps are strictly
increasing and fixed-width, see container_log.py), copies in 1 MiB chunks and flushes
once per batch. Following polls the file size every FOLLOW_POLL_S: inotify is not in the
standard library, and a 50 ms bounded poll costs nothing measurable for one file. The
wait is a select() that also watches stdin when --exit-on-stdin-close is given, so a
remote follower ends as soon as its ssh channel closes.

`--since TS` is inclusive, as `docker logs --since` is: a line stamped exactly TS is
printed. A stream resumes with `--since <last timestamp it wrote>` and counts the replay
of that line as proof that nothing between its two connections was lost; an exclusive
`--since` would make every reconnect look like a gap.
"""

import argparse
import os
import select
import sys
from pathlib import Path
from typing import BinaryIO

from local_cluster import layout
from local_cluster.container_log import TS_WIDTH, format_ts, parse_ts

CHUNK_BYTES = 1 << 20
FOLLOW_POLL_S = 0.05


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iris-smoke local-cluster logs", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True, type=Path, help="the local cluster's state directory")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("-t", "--timestamps", action="store_true", help="keep each line's timestamp")
    parser.add_argument("--since", help="only lines at or after this RFC 3339 time or Unix seconds (as docker)")
    parser.add_argument("--exit-on-stdin-close", action="store_true", help="exit when stdin reaches EOF")
    parser.add_argument("vm", help="VM name, e.g. local-tpu-0-w1 or local-controller")
    parser.add_argument("container", help="iris-worker or iris-controller")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = layout.container_log(args.state_dir, args.vm, args.container)
        since = format_ts(parse_ts(args.since)) if args.since else None
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        print(f"Error: No such container: {args.container} on VM {args.vm}", file=sys.stderr)
        return 1
    try:
        if since is not None:
            os.lseek(fd, first_line_at_or_after(fd, since), os.SEEK_SET)
        stdin = 0 if args.exit_on_stdin_close else None
        return copy_lines(fd, sys.stdout.buffer, args.timestamps, args.follow, stdin)
    except BrokenPipeError:
        # The reader went away (`| head`, a closed ssh channel): not an error, and stdout
        # must not be flushed again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        os.close(fd)


def _line_start_at_or_after(fd: int, pos: int, size: int) -> int:
    if pos == 0:
        return 0
    offset = pos - 1  # the newline ending the line that holds byte pos-1
    while offset < size:
        chunk = os.pread(fd, 4096, offset)
        newline = chunk.find(b"\n")
        if newline >= 0:
            return offset + newline + 1
        offset += len(chunk) or size
    return size


def first_line_at_or_after(fd: int, since: bytes) -> int:
    """Offset of the first line whose timestamp is >= `since`, or the file's size.

    Binary search over byte positions p of the monotone predicate "the line starting at
    or after p is not older than since"; the smallest such p maps to the wanted line.
    """
    size = os.fstat(fd).st_size

    def reached(pos: int) -> bool:
        start = _line_start_at_or_after(fd, pos, size)
        return start >= size or os.pread(fd, TS_WIDTH, start) >= since

    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if reached(mid):
            hi = mid
        else:
            lo = mid + 1
    return _line_start_at_or_after(fd, lo, size)


def _strip_timestamps(block: bytes) -> bytes:
    return b"".join(line[TS_WIDTH + 1 :] for line in block.splitlines(keepends=True))


def _wait_for_more(stdin: int | None) -> bool:
    """Sleep one poll interval; False when stdin closed (time to exit)."""
    readable, _, _ = select.select([stdin] if stdin is not None else [], [], [], FOLLOW_POLL_S)
    return not readable or stdin is None or os.read(stdin, 65536) != b""


def copy_lines(fd: int, out: BinaryIO, timestamps: bool, follow: bool, stdin: int | None) -> int:
    partial = b""
    while True:
        data = os.read(fd, CHUNK_BYTES)
        if data:
            partial += data
            cut = partial.rfind(b"\n") + 1
            if cut:
                block, partial = partial[:cut], partial[cut:]
                out.write(block if timestamps else _strip_timestamps(block))
            if len(data) == CHUNK_BYTES:
                continue  # more is waiting: flush once per batch, not per chunk
        out.flush()
        if not follow:
            return 0
        if not _wait_for_more(stdin):
            return 0
