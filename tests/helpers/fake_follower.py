"""A `docker logs`-alike over a file of `<RFC 3339 timestamp> <line>` lines, for stream tests.

    fake_follower.py [logs] --state-dir DIR [-f|--follow] [--timestamps] [--since TS]
                     [--since-seconds] [--drop-on-resume N] [--exit-on-stdin-close]
                     [--write-bytes N] [--write-pause-s S] [VM] CONTAINER

Reads DIR/CONTAINER.log. A missing file behaves like a missing container (message on
stderr, exit 1). `--since` is inclusive at full precision, or, with `--since-seconds`,
rounded down to the second as some docker versions do (so a resume sees lines again).
With `--follow` it keeps reading what is appended and starts over if the file is
replaced (rotation). `--drop-on-resume N` makes it a follower that really loses lines:
given `--since`, it leaves out the first N lines it would have shown. Without
`--exit-on-stdin-close` it ignores stdin, like `docker logs`, and lingers until a write
fails: exactly the behaviour the remote wrapper must handle. `--write-bytes N` writes
its output in pieces of at most N bytes, as docker (16 KiB pieces of a long line) and ssh
do, instead of as much as it has, `--write-pause-s S` apart (a writer paced by a network).
"""

import argparse
import os
import select
import sys

FOLLOW_POLL_S = 0.02
READ_BYTES = 1 << 20
TS_WIDTH = 30


def _parse(argv: list[str]) -> argparse.Namespace:
    if "logs" in argv:  # the subcommand (first occurrence), also after options given in a command prefix
        argv = list(argv)
        argv.remove("logs")
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("-f", "--follow", action="store_true")
    parser.add_argument("--timestamps", action="store_true")
    parser.add_argument("--since")
    parser.add_argument("--since-seconds", action="store_true")
    parser.add_argument("--drop-on-resume", type=int, default=0)
    parser.add_argument("--exit-on-stdin-close", action="store_true")
    parser.add_argument("--write-bytes", type=int, default=READ_BYTES)
    parser.add_argument("--write-pause-s", type=float, default=0.0)
    parser.add_argument("names", nargs="+")
    return parser.parse_args(argv)


class Filter:
    """Decides at each line start whether the line is shown, then passes its bytes through."""

    def __init__(self, since: str | None, seconds: bool, timestamps: bool, drop: int = 0) -> None:
        self.since = since[:19] if since and seconds else since
        self.drop = drop if since else 0  # lines still to lose
        self.width = 19 if seconds else TS_WIDTH
        self.timestamps = timestamps
        self.pending = b""  # the start of a line, until its timestamp is complete
        self.show = True
        self.at_start = True

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            if self.at_start:
                self.pending += data
                data = b""
                if len(self.pending) < TS_WIDTH + 1 and b"\n" not in self.pending:
                    break
                head, self.pending = self.pending, b""
                ts = head[: self.width].decode("ascii", "replace")
                self.show = self.since is None or ts >= self.since
                if self.show and self.drop > 0:
                    self.show, self.drop = False, self.drop - 1
                self.at_start = False
                if not self.timestamps:
                    head = head[TS_WIDTH + 1 :]
                data = head
            newline = data.find(b"\n")
            piece = data if newline < 0 else data[: newline + 1]
            if self.show:
                out.append(piece)
            if newline >= 0:
                self.at_start = True
            data = data[len(piece) :]
        return b"".join(out)


def _stdin_closed() -> bool:
    return os.read(0, 65536) == b""


def main(argv: list[str]) -> int:
    args = _parse(argv)
    path = os.path.join(args.state_dir, f"{args.names[-1]}.log")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - reopened on rotation
    except FileNotFoundError:
        print(f"Error: No such container: {args.names[-1]}", file=sys.stderr)
        return 1
    flt = Filter(args.since, args.since_seconds, args.timestamps, args.drop_on_resume)
    out = sys.stdout.buffer
    watch = [0] if args.exit_on_stdin_close else []
    try:
        while True:
            data = handle.read(READ_BYTES)
            if data:
                shown = flt.feed(data)
                for at in range(0, len(shown), args.write_bytes):
                    out.write(shown[at : at + args.write_bytes])
                    out.flush()
                    if args.write_pause_s:
                        select.select([], [], [], args.write_pause_s)
                continue
            if not args.follow:
                return 0
            if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115
                flt = Filter(args.since, args.since_seconds, args.timestamps)
                continue
            ready, _, _ = select.select(watch, [], [], FOLLOW_POLL_S)
            if ready and _stdin_closed():
                return 0
    except BrokenPipeError:
        return 0
    finally:
        handle.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
