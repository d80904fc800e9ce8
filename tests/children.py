"""Child entrypoints with behaviours the product never has, for supervisor tests."""

import gc
import select
import signal

from common.child_exit import ChildExit
from common.fdio import write_all
from common.messages import encode
from common.outcome import Outcome
from tests.messages import ProbeStats
from workers.messages import Ready, TestResult
from workers.runtime import ChildContext


def ignore_term(ctx: ChildContext) -> int:
    """Ignores SIGTERM and the deadline alarm entirely: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    ctx.channel.send(Ready())
    while True:
        select.select([], [], [], 3600)


def crash(ctx: ChildContext) -> int:
    ctx.channel.send(Ready())
    raise RuntimeError("this child always crashes")


def wait_for_stop(ctx: ChildContext) -> int:
    ctx.channel.send(Ready())
    select.select([ctx.stop.fd], [], [], ctx.deadline.remaining() + 5)
    return ChildExit.OK


def wait_for_drain(ctx: ChildContext) -> int:
    """Exits 0 once drained (SIGUSR1), 1 if stopped otherwise."""
    ctx.channel.send(Ready())
    select.select([ctx.drain.fd, ctx.stop.fd], [], [], ctx.deadline.remaining() + 5)
    return ChildExit.OK if ctx.drain.requested() else 1


def disk_full(ctx: ChildContext) -> int:
    """Writes where no space is left: /dev/full answers every write with ENOSPC."""
    ctx.channel.send(Ready())
    with open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    return ChildExit.OK


def collect_garbage(ctx: ChildContext) -> int:
    """A full collection, so any garbage inherited from the parent would be finalized here."""
    gc.collect()
    return ChildExit.OK


def big_error(ctx: ChildContext) -> int:
    """A test result whose error is `error_bytes` long (a job's error as a controller sent it)."""
    ctx.channel.send(Ready())
    ctx.channel.send(TestResult("big", Outcome.FAILED, 0.0, "E" * ctx.args["error_bytes"]))
    ctx.channel.send(ProbeStats(after=True))
    return ChildExit.OK


def oversized_line(ctx: ChildContext) -> int:
    """READY, a line of `line_bytes` (past the message limit) and STATS, in one write."""
    size = ctx.args["line_bytes"]
    huge = b'{"kind":"result","body":{"error":"' + b"x" * (size - 37) + b'"}}'
    assert len(huge) == size
    write_all(ctx.channel.fd, encode(Ready()) + huge + b"\n" + encode(ProbeStats(lines=3)))
    return ChildExit.OK
