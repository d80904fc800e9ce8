"""log_reader: one reader of Iris's log service per run, feeding every Iris stream of the run.

args: `workers.child_args.LogReaderArgs` (target, the socket's abstract name, poll interval).

A stream child subscribes over a Unix socket (`workers.stream.subscription`) with its key and
resume point and reads its key's lines as it read its own follower's stdout. The reader polls
FetchLogs once for every worker and the controller (`source=/system/`, `MATCH_SCOPE_PREFIX`,
one global cursor) and hands each row to the subscriptions of its key; a new subscription first
catches up by itself (its key's own pages, exactly as a follower would, cursor or since), then
joins the shared poll (`workers.log_reader_feed`). The controller gets one poll per run instead
of one per stream, and a stream costs its child alone (bench/stream_memory.py).

The socket is bound before anything else, HTTP client included, is imported: the streams the
supervisor forks right after this child find it listening (a connection that arrives while the
reader is still loading waits in the backlog), and so do those of a restarted reader.
"""

import socket

from common.child_exit import ChildExit
from workers.child_args import LogReaderArgs
from workers.runtime import ChildContext
from workers.stream.subscription import abstract_address, new_socket


def listen(name: str) -> socket.socket:
    sock = new_socket()
    try:
        sock.bind(abstract_address(name))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def main(ctx: ChildContext) -> int:
    args: LogReaderArgs = ctx.args
    with listen(args.name) as listener:
        # Imported once listening: the HTTP client is most of this child's start-up.
        from workers.log_reader_feed import serve

        serve(ctx, args, listener)
    return ChildExit.OK
