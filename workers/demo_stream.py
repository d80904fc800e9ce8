"""A demo stream child: what a VM log stream looks like before any cluster exists.

It runs a real subprocess tree (a shell that forks a line generator) in its own process
group and appends one JSON record per line to `logs/demo/<child>.jsonl`, until its
duration ends, a stop is requested or the deadline passes. With `orphan` set, the shell
first starts a `sleep` in a new session and abandons it: the kind of escapee the
supervisor's subreaper and audit exist for.
"""

import os
import select
import subprocess
import time
from pathlib import Path

import orjson

from common.child_exit import ChildExit
from common.fdio import write_all
from workers.child_args import DemoStreamArgs
from workers.messages import DemoStats, StreamProgress, StreamReady
from workers.runtime import ChildContext

_GENERATOR = 'i=0; while :; do i=$((i+1)); echo "demo line $i"; sleep {interval}; done'
# A double fork: the subshell starts `sleep` in a new session and exits at once, so the
# sleep is orphaned (re-parented to the nearest subreaper) and outside every process group.
_ORPHAN = "(setsid sleep 600 </dev/null >/dev/null 2>&1 &); "
PROGRESS_EVERY_S = 1.0


def _shell_command(interval_s: float, orphan: bool) -> str:
    return (_ORPHAN if orphan else "") + _GENERATOR.format(interval=interval_s)


def main(ctx: ChildContext) -> int:
    out_dir = ctx.run_dir / "logs" / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{ctx.name.replace(':', '-')}.jsonl"
    args: DemoStreamArgs = ctx.args
    command = _shell_command(args.interval_s, args.orphan)
    proc = ctx.groups.start(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    ctx.channel.send(StreamReady(proc.pid))
    ctx.log.info("demo_stream_started", transport_pid=proc.pid, path=str(path))
    lines = _copy_lines(ctx, proc.stdout.fileno(), path, args.duration_s)
    code = ctx.groups.stop(proc, grace_s=ctx.grace_s / 2)
    ctx.channel.send(DemoStats(lines, code))
    ctx.log.info("demo_stream_stopped", lines=lines, transport_exit=code, reason=ctx.stop.reason or "done")
    return ChildExit.OK


def _copy_lines(ctx: ChildContext, fd: int, path: Path, duration_s: float) -> int:
    end = time.monotonic() + duration_s
    lines, next_progress = 0, time.monotonic() + PROGRESS_EVERY_S
    buffered = b""
    out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        while not ctx.stop.requested() and time.monotonic() < end:
            ready, _, _ = select.select([fd, ctx.stop.fd], [], [], ctx.deadline.cap(end - time.monotonic()))
            if fd not in ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *complete, buffered = (buffered + chunk).split(b"\n")
            records = b"".join(
                orjson.dumps({"run_id": ctx.run_id, "child": ctx.name, "seq": lines + i, "line": line.decode()}) + b"\n"
                for i, line in enumerate(complete)
            )
            write_all(out, records)
            lines += len(complete)
            if time.monotonic() >= next_progress:
                ctx.channel.send(StreamProgress(lines))
                next_progress = time.monotonic() + PROGRESS_EVERY_S
        os.fsync(out)
    finally:
        os.close(out)
    return lines
