"""The `cluster` child: starts a cluster, or attaches to one, and reports READY with the
controller's address once it answers its health check.

Modes (`MODES`; the run's backend, `supervisor/backends`, names the one to run):
- `start`: the embedded local cluster runs as this child's subprocess, in a process
  group of its own, carrying the run tag; stopping this child stops it (SIGTERM, then
  the cluster stops its VM hosts within its grace).
- `keep` (`--keep`): the embedded cluster must outlive the run. It is started without the
  run tag or the run's deadline, in a new session and with `IRIS_SMOKE_KEPT_CLUSTER`
  set, which the supervisor's stop and audit leave alone; stopping this child leaves it.
- `iris-local`: a real Iris local cluster (`iris --config X cluster start`) as this
  child's subprocess, supervised like the embedded one, with the allowlisted environment.
  Its HOME and TMPDIR live in the run directory (Iris writes a token store and temporary
  directories there), so nothing it leaves can hide outside the run, and what it leaves
  is reported (results.json `cluster.iris_tmp_left`). Healthy when `/health` answers on
  the port the run wrote into its config; Iris's own error line ends the wait early, and
  a port taken in the meantime is retried once on a fresh one.
- `attach` (`--controller`): nothing is started; the child checks health and waits. It
  never stops or reconfigures that cluster.
If the cluster exits while the run still needs it, this child fails, and it is critical.

The embedded cluster listens on `unix:/…/controller.sock` in a private directory, and
beside the socket it describes itself (`local_cluster.private_socket`): its state
directory, where the container logs are, and its prefix, which names its VMs. READY
carries both, read the same way whether this run started the cluster or attaches to it,
so a run's streams follow that cluster's logs and name its controller after its prefix.
The embedded cluster starts with a minimal environment (`local_cluster.environment`):
its tasks run arbitrary code and must not inherit the supervisor's credentials. On a
cluster this run started, jobs it did not submit are reported (workers/foreign_jobs.py).
"""

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import env, ports
from common.child_exit import ChildExit
from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from common.processes import wait_exit
from local_cluster import private_socket
from local_cluster.environment import minimal_env
from workers import iris_local
from workers.child_args import ClusterArgs
from workers.controller.api import Controller, open_controller
from workers.controller.model import ControllerError
from workers.messages import ClusterReady, IrisTmpLeft
from workers.runtime import ChildContext

ADDR_POLL_S = 0.05
# Cheap (one ListJobs on a local socket); a foreign job is also caught by the final look.
FOREIGN_JOB_POLL_S = 1.0
# Only for a user's own Iris config: where Iris says it listens (ours names the port itself).
IRIS_STARTED = re.compile(r"Controller started at (http://\S+)")
IRIS_HEALTH_SLICE_S = 0.5  # how often a booting Iris's stderr is read for its own error line


def _embedded_argv(args: ClusterArgs, state_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "local_cluster", "--state-dir", str(state_dir), "--prefix", args.prefix]
    if args.config:
        argv += ["--config", args.config]
    return argv


def _start_embedded(ctx: ChildContext, state_dir: Path, keep: bool) -> "subprocess.Popen[bytes]":
    args: ClusterArgs = ctx.args
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cluster_env = minimal_env(os.environ)
    out = open(state_dir / "local-cluster.stderr", "ab")  # noqa: SIM115 - handed to the subprocess
    try:
        if not keep:
            return ctx.groups.start(
                _embedded_argv(args, state_dir), stdout=subprocess.DEVNULL, stderr=out, env=cluster_env
            )
        kept_env = {k: v for k, v in cluster_env.items() if k not in (env.RUN_TAG, env.RUN_INSTANCE, env.DEADLINE_UNIX)}
        kept_env[env.KEPT_CLUSTER] = args.prefix
        return subprocess.Popen(
            _embedded_argv(args, state_dir),
            stdout=subprocess.DEVNULL,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=kept_env,
        )
    finally:
        out.close()


def _start_iris(ctx: ChildContext, iris_dir: Path, port: int | None) -> "subprocess.Popen[bytes]":
    """`iris cluster start` on the user's config (used as is), else on ours with controller `port`."""
    home, tmpdir = iris_dir / "home", iris_dir / "tmp"
    for path in (home, tmpdir):
        path.mkdir(parents=True, exist_ok=True)
    config = iris_dir / "cluster.yaml"
    args: ClusterArgs = ctx.args
    if port is None:
        shutil.copyfile(args.iris_config, config)
    else:
        config.write_text(iris_local.local_config_yaml(port))
    with open(iris_dir / "iris.stdout", "ab") as out, open(iris_dir / "iris.stderr", "ab") as err:
        return ctx.groups.start(
            iris_local.iris_argv(args.iris_bin, str(config)),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=iris_local.iris_env(os.environ, home, tmpdir),
        )


def _boot_iris(ctx: ChildContext, iris_dir: Path, boot: Deadline) -> "tuple[subprocess.Popen[bytes], str, str]":
    """Start Iris and wait until `/health` answers: (its process, its address, "") or (…, "", why not).

    On our config the address is the port the run wrote; on the user's, the one Iris prints.
    A port taken between `free_port` and Iris's bind is retried once on a fresh port.
    """
    args: ClusterArgs = ctx.args
    for attempt in (1, 2):
        port = None if args.iris_config else ports.free_port()
        stderr = iris_dir / "iris.stderr"
        since = stderr.stat().st_size if stderr.exists() else 0  # this start's words only
        proc = _start_iris(ctx, iris_dir, port)
        address = f"http://127.0.0.1:{port}" if port is not None else None
        if address is None:
            address = _wait_address(ctx, proc, AddressReader(iris_dir / "iris.stdout", IRIS_STARTED), boot)
        failure = _iris_health(ctx, proc, stderr, since, address, boot)
        if not failure:
            return proc, str(address), ""
        if attempt == 1 and port is not None and iris_local.is_bind_failure(failure):
            ctx.log.warning("iris_port_taken", port=port, error=failure)
            ctx.groups.stop(proc, grace_s=iris_local.STOP_GRACE_S)
            continue
        break
    return proc, "", failure


def _iris_health(
    ctx: ChildContext, proc: "subprocess.Popen[bytes]", stderr: Path, since: int, address: str | None, boot: Deadline
) -> str:
    """Empty once Iris answers `/health` on `address`; else why not, in Iris's own words where it gave any."""
    target = dataclasses.replace(ctx.args.target, address=address or "http://127.0.0.1:1")
    with open_controller(target, ctx.deadline) as controller:
        while True:
            if address and controller.serving(boot.cap(IRIS_HEALTH_SLICE_S), ctx.stop.fd):
                return ""
            failure = iris_local.start_failure(stderr, exited=proc.poll() is not None, since=since)
            if failure or proc.poll() is not None:
                return failure or f"iris exited with {proc.returncode}"
            if ctx.stop.requested():
                return "stopped"
            if boot.expired():
                return f"/health did not answer within the boot timeout ({ctx.args.boot_timeout_s:g} s)"
            if not address:
                return "iris printed no address"


def _wait_address(
    ctx: ChildContext, proc: "subprocess.Popen[bytes]", read: "AddressReader", boot: Deadline
) -> str | None:
    """Wait until the cluster says where it listens, it exits, or a stop comes."""
    while not boot.expired() and not ctx.stop.requested():
        found = read()
        if found:
            return found
        if proc.poll() is not None:
            return None
        ctx.stop.wait(boot.cap(ADDR_POLL_S))
    return None


class AddressReader:
    """Where a started cluster says it listens: a file it writes, or a line it prints."""

    def __init__(self, path: Path, pattern: re.Pattern[str] | None = None) -> None:
        self.path, self.pattern = path, pattern

    def __call__(self) -> str | None:
        if not self.path.exists():
            return None
        text = self.path.read_text(errors="replace")
        if self.pattern is None:
            return text.strip() or None
        match = self.pattern.search(text)
        return match.group(1) if match else None


@dataclass(frozen=True)
class Booted:
    """A mode's boot: the process it started (None: nothing to start), its directory, and the address
    its controller answers at ("" = it failed, and said why; the child then exits with `failed`)."""

    proc: "subprocess.Popen[bytes] | None"
    state_dir: Path | None
    address: str
    failed: int = ChildExit.ERROR


def _boot_attached(ctx: ChildContext, boot: Deadline) -> Booted:
    return Booted(None, None, ctx.args.target.address)


def _boot_embedded(ctx: ChildContext, boot: Deadline, keep: bool) -> Booted:
    state_dir = ctx.run_dir / "cluster"
    proc = _start_embedded(ctx, state_dir, keep=keep)
    found = _wait_address(ctx, proc, AddressReader(state_dir / "controller.addr"), boot)
    if found is None:
        ctx.log.error("cluster_start_failed", mode=ctx.args.mode, exit_code=proc.poll(), state_dir=str(state_dir))
    return Booted(proc, state_dir, found or "")


def _boot_iris_local(ctx: ChildContext, boot: Deadline) -> Booted:
    started = time.monotonic()
    state_dir = ctx.run_dir / "iris"
    proc, address, failure = _boot_iris(ctx, state_dir, boot)
    if failure:
        ctx.log.error("cluster_start_failed", mode=ctx.args.mode, exit_code=proc.poll(), state_dir=str(state_dir),
                      error=failure, waited_s=round(time.monotonic() - started, 3))  # fmt: skip
    return Booted(
        proc, state_dir, "" if failure else address, ChildExit.OK if ctx.stop.requested() else ChildExit.ERROR
    )


@dataclass(frozen=True)
class Mode:
    """What one mode of this child does; the supervisor's backend for the run's kind names the mode."""

    boot: Callable[[ChildContext, Deadline], Booted]
    watch_exit: bool = False  # the cluster's exit while the run needs it fails the run
    watch_foreign_jobs: bool = False  # an embedded cluster the run started: report jobs it did not submit
    outlives_child: bool = False  # `--keep`: once it served, stopping this child leaves it running
    stop_grace_s: float | None = None  # at most this for its stop (None: this child's grace)
    reports_tmp_left: bool = False  # say what it left in its TMPDIR (results.json `cluster.iris_tmp_left`)


MODES = {
    "start": Mode(functools.partial(_boot_embedded, keep=False), watch_exit=True, watch_foreign_jobs=True),
    "keep": Mode(functools.partial(_boot_embedded, keep=True), watch_foreign_jobs=True, outlives_child=True),
    "attach": Mode(_boot_attached),
    "iris-local": Mode(_boot_iris_local, watch_exit=True, stop_grace_s=iris_local.STOP_GRACE_S, reports_tmp_left=True),
}


def main(ctx: ChildContext) -> int:
    args: ClusterArgs = ctx.args
    mode = MODES[args.mode]
    boot = ctx.deadline.within(args.boot_timeout_s)
    started = time.monotonic()
    booted = mode.boot(ctx, boot)
    proc, state_dir = booted.proc, booted.state_dir
    if not booted.address:
        return _stop(ctx, proc, mode, state_dir, booted.failed)
    target = dataclasses.replace(args.target, address=booted.address)
    with open_controller(target, ctx.deadline) as controller:
        serving = controller.serving(boot.remaining(), ctx.stop.fd)
        if serving:
            log_route(ctx, controller)
    if not serving:
        ctx.log.error("controller_unreachable", address=target.address, waited_s=round(time.monotonic() - started, 3))
        failed = ChildExit.ERROR if not ctx.stop.requested() else ChildExit.OK
        return _stop(ctx, proc, mode, state_dir, failed)
    try:
        described = _describe(target, state_dir)
    except private_socket.SocketPathError as exc:
        ctx.log.error("cluster_description_invalid", address=target.address, error=str(exc))
        return _stop(ctx, proc, mode, state_dir, ChildExit.ERROR)
    ctx.log.info("cluster_ready", address=target.address, mode=args.mode,
                 boot_s=round(time.monotonic() - started, 3), **described)  # fmt: skip
    ctx.channel.send(ClusterReady(target.address, args.mode, proc.pid if proc else 0, **described))
    code = _serve(ctx, proc if mode.watch_exit else None, target if mode.watch_foreign_jobs else None)
    return _stop(ctx, proc, mode, state_dir, code, ready=True)


def log_route(ctx: ChildContext, controller: Controller) -> None:
    """Say how the run's streams, log tails and diagnostics will read the cluster's logs (they
    each ask the same resolver; a failure here is theirs to report, with its reason)."""
    try:
        service = controller.log_service()
    except ControllerError as exc:
        ctx.log.warning("log_route_unknown", code=exc.code, details=exc.details)
        return
    if service is not None:
        ctx.log.info("log_route", route=service.route, url=service.url)


def _describe(target: ControllerTarget, state_dir: Path | None) -> dict[str, str]:
    """Where the cluster's container logs are and which prefix names its VMs ("" if it cannot say).

    An embedded cluster says so itself, beside its socket; anything else has only what
    this child knows (the directory of a cluster it started).
    """
    if target.api is ApiKind.EMBEDDED and target.address.startswith(private_socket.SCHEME):
        info = private_socket.read_info(target.address)
        return {"state_dir": info.state_dir, "prefix": info.prefix}
    return {"state_dir": str(state_dir) if state_dir else "", "prefix": ""}


def _serve(ctx: ChildContext, proc: "subprocess.Popen[bytes] | None", owned: ControllerTarget | None) -> int:
    """Wait for a stop; a cluster that dies first is a failure of the run.

    The cluster's pidfd becomes readable when it exits, so this waits without polling,
    except to look for foreign jobs on an embedded cluster the run started (`owned`).
    """
    if owned is None or owned.api is not ApiKind.EMBEDDED:
        return _wait_stop(ctx, proc, None)
    from workers.controller.grpc_api import EmbeddedController  # grpc: only in this child
    from workers.foreign_jobs import ForeignJobWatch

    with EmbeddedController.open(owned, ctx.deadline) as controller:
        watch = ForeignJobWatch(ctx, controller, owned.job_root)
        code = _wait_stop(ctx, proc, watch.check)
        watch.check()  # the last look: the tests are over, the cluster still up
    return code


def _wait_stop(ctx: ChildContext, proc: "subprocess.Popen[bytes] | None", every_poll: Callable[[], None] | None) -> int:
    procs = [proc] if proc is not None else []
    while not ctx.stop.requested() and not ctx.deadline.expired():
        until = ctx.deadline if every_poll is None else ctx.deadline.within(FOREIGN_JOB_POLL_S)
        if wait_exit(procs, until, [ctx.stop.fd]):
            ctx.log.error("cluster_exited", exit_code=procs[0].returncode)
            return ChildExit.ERROR
        if every_poll is not None:
            every_poll()
    return ChildExit.OK


def _left_in(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("*"))


def _stop(
    ctx: ChildContext,
    proc: "subprocess.Popen[bytes] | None",
    mode: Mode,
    state_dir: Path | None,
    code: int,
    ready: bool = False,
) -> int:
    """End a cluster this child started, and say what it left behind. A kept one stays, once it
    has served: one that never became ready is stopped, so nothing half-started outlives the run."""
    if proc is None or (mode.outlives_child and ready):
        return code
    grace_s = ctx.grace_s * 0.8
    if mode.stop_grace_s is not None:
        grace_s = min(grace_s, mode.stop_grace_s)
    tmp = state_dir / "tmp" if mode.reports_tmp_left and state_dir is not None else None
    # Iris's grace is for its temporary directories (iris_local.STOP_GRACE_S): once they are gone, no more.
    settled = None if tmp is None else lambda: not _left_in(tmp)
    exit_code = ctx.groups.stop(proc, grace_s=grace_s, settled=settled)
    ctx.log.info("cluster_stopped", mode=ctx.args.mode, exit_code=exit_code)
    if tmp is not None:
        left = _left_in(tmp)
        if left:
            ctx.log.warning("iris_tmp_left", entries=left[:20], count=len(left))
            ctx.channel.send(IrisTmpLeft(tuple(left[:20])))
    return code
