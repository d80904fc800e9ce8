"""The `cluster` child: starts the embedded local cluster, or attaches to a controller, and
reports READY with the controller's address once gRPC health says SERVING.

Modes:
- `start`: the local cluster runs as this child's subprocess, in a process group of its
  own, carrying the run tag; stopping this child stops it (SIGTERM, then the cluster
  stops its VM hosts within its grace).
- `keep` (`--keep`): the local cluster must outlive the run. It is started without the
  run tag or the run's deadline, in a new session and with `IRIS_SMOKE_KEPT_CLUSTER`
  set, which the supervisor's stop and audit leave alone; stopping this child leaves it.
- `attach` (`--controller`): nothing is started; the child checks health and waits.
If the cluster exits while the run still needs it, this child fails, and it is critical.
"""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from common import env
from common.child_exit import ChildExit
from common.deadline import Deadline
from common.messages import Kind
from workers.controller_client import wait_until_serving
from workers.runtime import ChildContext

ADDR_POLL_S = 0.05


def _argv(ctx: ChildContext, state_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "local_cluster", "--state-dir", str(state_dir), "--port", "0"]
    argv += ["--prefix", str(ctx.args["prefix"])]
    if ctx.args.get("config"):
        argv += ["--config", str(ctx.args["config"])]
    return argv


def _start(ctx: ChildContext, state_dir: Path, keep: bool) -> "subprocess.Popen[bytes]":
    state_dir.mkdir(parents=True, exist_ok=True)
    out = open(state_dir / "local-cluster.stderr", "ab")  # noqa: SIM115 - handed to the subprocess
    try:
        if not keep:
            return ctx.groups.start(_argv(ctx, state_dir), stdout=subprocess.DEVNULL, stderr=out)
        kept_env = {k: v for k, v in os.environ.items() if k not in (env.RUN_TAG, env.DEADLINE_UNIX, env.CHILD_NAME)}
        kept_env[env.KEPT_CLUSTER] = str(ctx.args["prefix"])
        return subprocess.Popen(
            _argv(ctx, state_dir),
            stdout=subprocess.DEVNULL,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=kept_env,
        )
    finally:
        out.close()


def _wait_address(ctx: ChildContext, proc: "subprocess.Popen[bytes]", path: Path, boot: Deadline) -> str | None:
    """The cluster writes its address atomically once it listens; wait for that, its exit, or a stop."""
    while not boot.expired() and not ctx.stop.requested():
        if path.exists():
            return path.read_text().strip()
        if proc.poll() is not None:
            return None
        select.select([ctx.stop.fd], [], [], boot.cap(ADDR_POLL_S))
    return None


def main(ctx: ChildContext) -> int:
    mode = str(ctx.args["mode"])
    boot = Deadline.after(min(float(ctx.args["boot_timeout_s"]), ctx.deadline.remaining()))
    started = time.monotonic()
    proc = None
    if mode == "attach":
        address = str(ctx.args["controller"])
        state_dir = None
    else:
        state_dir = ctx.run_dir / "cluster"
        proc = _start(ctx, state_dir, keep=mode == "keep")
        found = _wait_address(ctx, proc, state_dir / "controller.addr", boot)
        if found is None:
            ctx.log.error("cluster_start_failed", exit_code=proc.poll(), stderr=str(state_dir / "local-cluster.stderr"))
            return ChildExit.ERROR
        address = found
    if not wait_until_serving(address, ctx.deadline, boot.remaining(), ctx.stop.fd):
        ctx.log.error("controller_unreachable", address=address, waited_s=round(time.monotonic() - started, 3))
        return ChildExit.ERROR if not ctx.stop.requested() else ChildExit.OK
    ctx.log.info("cluster_ready", address=address, mode=mode, boot_s=round(time.monotonic() - started, 3))
    ctx.channel.send(
        Kind.READY,
        address=address,
        mode=mode,
        state_dir=str(state_dir) if state_dir else "",
        cluster_pid=proc.pid if proc else 0,
    )
    return _serve(ctx, proc if mode == "start" else None)


def _serve(ctx: ChildContext, proc: "subprocess.Popen[bytes] | None") -> int:
    """Wait for a stop; a cluster that dies first is a failure of the run.

    The cluster's pidfd becomes readable when it exits, so this waits without polling.
    """
    watched = [ctx.stop.fd]
    pidfd = os.pidfd_open(proc.pid) if proc is not None else None
    if pidfd is not None:
        watched.append(pidfd)
    try:
        while not ctx.stop.requested() and not ctx.deadline.expired():
            ready = select.select(watched, [], [], ctx.deadline.remaining())[0]
            if pidfd in ready and proc is not None and proc.poll() is not None:
                ctx.log.error("cluster_exited", exit_code=proc.returncode)
                ctx.groups.forget(proc)
                return ChildExit.ERROR
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if proc is not None:
        code = ctx.groups.stop(proc, grace_s=ctx.grace_s * 0.8)
        ctx.log.info("cluster_stopped", exit_code=code)
    return ChildExit.OK
