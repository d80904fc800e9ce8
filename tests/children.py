"""Child entrypoints with behaviours the product never has, for supervisor tests."""

import gc
import select
import signal

from common.child_exit import ChildExit
from common.fdio import write_all
from common.messages import Kind, encode
from workers.runtime import ChildContext


def ignore_term(ctx: ChildContext) -> int:
    """Ignores SIGTERM and the deadline alarm entirely: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    ctx.channel.send(Kind.READY)
    while True:
        select.select([], [], [], 3600)


def crash(ctx: ChildContext) -> int:
    ctx.channel.send(Kind.READY)
    raise RuntimeError("this child always crashes")


def wait_for_stop(ctx: ChildContext) -> int:
    ctx.channel.send(Kind.READY)
    select.select([ctx.stop.fd], [], [], ctx.deadline.remaining() + 5)
    return ChildExit.OK


def disk_full(ctx: ChildContext) -> int:
    """Writes where no space is left: /dev/full answers every write with ENOSPC."""
    ctx.channel.send(Kind.READY)
    with open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    return ChildExit.OK


def collect_garbage(ctx: ChildContext) -> int:
    """A full collection, so any garbage inherited from the parent would be finalized here."""
    gc.collect()
    return ChildExit.OK


def big_error(ctx: ChildContext) -> int:
    """A test result whose error is `error_bytes` long (a job's error as a controller sent it)."""
    ctx.channel.send(Kind.READY)
    ctx.channel.send(Kind.RESULT, test="big", outcome="failed", error="E" * ctx.args["error_bytes"])
    ctx.channel.send(Kind.STATS, after=True)
    return ChildExit.OK


def oversized_line(ctx: ChildContext) -> int:
    """READY, a line of `line_bytes` (past the message limit) and STATS, in one write."""
    size = ctx.args["line_bytes"]
    huge = b'{"kind":"result","body":{"error":"' + b"x" * (size - 37) + b'"}}'
    assert len(huge) == size
    write_all(ctx.channel.fd, encode(Kind.READY, {}) + huge + b"\n" + encode(Kind.STATS, {"lines": 3}))
    return ChildExit.OK
