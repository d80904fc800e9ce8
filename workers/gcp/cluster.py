"""The `cluster` child for `--cluster gcp`: find the controller VM, tunnel to its API, keep it up.

args: `workers.child_args.ClusterArgs` (gcp: GcpSettings, label prefix set; target:
ControllerTarget, Iris API, no address yet; boot_timeout_s).

1. A private 0700 directory for the ssh control sockets (`ControlPath=<dir>/%C`), short
   enough for a socket path; READY hands it to the streams, which share one multiplexed
   connection per host through it.
2. The controller VM (`inventory.only_controller`), looked for until `--boot-timeout`:
   the cluster may still be coming up. Two or more is an error naming them.
3. Its ssh command from one `gcloud compute ssh --dry-run`, then the tunnel (`workers.tunnel`:
   `ssh -N -L` to the controller's port), healthy through the Iris Connect client's health check.
4. READY with `http://127.0.0.1:<port>`: every other child talks to Iris through it.
   Until a stop, a dropped tunnel is reopened on the same port.
On the way out: the tunnel ends, every multiplexed master still running is told to exit
(`ssh -O exit`: a master has left its stream's process group and would outlive the run)
and the directory is removed. Deleting cloud resources is the cleanup child's job.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common.child_exit import ChildExit
from common.deadline import Deadline
from common.processes import wait_exit
from workers.child_args import ClusterArgs
from workers.gcp.cluster_cli import run_cluster_command
from workers.gcp.gcloud import Gcloud, GcloudFailed
from workers.gcp.inventory import Resource, TooManyControllers, list_inventory, only_controller
from workers.gcp.settings import GcpSettings
from workers.gcp.ssh_target import DryRunRefused, SshTarget, dry_run_words, parse_dry_run
from workers.hosts import HostileNameError
from workers.runtime import ChildContext
from workers.transports import SshTransport
from workers.tunnel import Command, Tunnel, controller_health, serve, tunnel_env

LOOKUP_RETRY_S = 2.0
MASTER_EXIT_TIMEOUT_S = 2.0


class ControllerNotFound(Exception):
    pass


def find_controller(ctx: ChildContext, gcloud: Gcloud, settings: GcpSettings, boot: Deadline) -> Resource:
    """The one controller VM; looked for again until `boot` while none is listed or a listing fails."""
    why = f"no instance named {settings.controller_vm} or labelled {settings.controller_label}=true"
    while not boot.expired() and not ctx.stop.requested():
        try:
            found = only_controller(list_inventory(gcloud, settings, ctx.log))
        except GcloudFailed as exc:
            found, why = None, str(exc)
        if found is not None:
            return found
        ctx.stop.wait(boot.cap(LOOKUP_RETRY_S))
    raise ControllerNotFound(why)


def resolve(gcloud: Gcloud, settings: GcpSettings, controller: Resource) -> SshTarget:
    result = gcloud.run(gcloud.argv(*dry_run_words(controller, 0)), settings.call_timeout_s)
    if not result.ok:
        raise GcloudFailed(result, "ssh --dry-run")
    return parse_dry_run(result.stdout)


def login(target: SshTarget, settings: GcpSettings, control_dir: str | None = None) -> SshTransport:
    """The ssh we run for `target`: gcloud's user, key, known hosts and options; ours for the rest."""
    return SshTransport(
        user=target.user,
        identity_file=target.identity_file or None,
        port=target.port,
        known_hosts_file=target.known_hosts_file or None,
        strict_host_key_checking=target.strict_host_key_checking or settings.strict_host_key_checking,
        connect_timeout_s=settings.connect_timeout_s,
        control_dir=control_dir,
        extra_options=target.options,
    )


def ssh_forward(login_argv: Sequence[str], address: str, remote_port: int) -> Command:
    """`ssh -N -L` from a local port to the controller's API port on `address` (exits if it cannot bind)."""

    def argv(port: int) -> list[str]:
        forward = f"127.0.0.1:{port}:localhost:{remote_port}"
        return [*login_argv, "-N", "-o", "ExitOnForwardFailure=yes", "-L", forward, address]

    return argv


def main(ctx: ChildContext) -> int:
    args: ClusterArgs = ctx.args
    assert args.gcp is not None, "the supervisor gives a GCP cluster child its settings"
    settings, target = args.gcp, args.target
    boot = ctx.deadline.within(args.boot_timeout_s)
    started = time.monotonic()
    gcloud = Gcloud(settings.gcloud, settings.project, ctx.groups, ctx.log, ctx.deadline, ctx.stop.fd)
    control_dir = Path(tempfile.mkdtemp(prefix="iris-smoke-ssh-"))  # 0700, ours
    try:
        started_by_us = run_cluster_command(gcloud, settings, "start", ctx.log)
        if started_by_us is not None and not started_by_us.ok:
            ctx.log.error("cluster_start_failed", mode="gcp", error="start_command failed",
                          **started_by_us.failure_fields())  # fmt: skip
            return ChildExit.ERROR
        try:
            controller = find_controller(ctx, gcloud, settings, boot)
            ssh = resolve(gcloud, settings, controller)
        except (ControllerNotFound, TooManyControllers, GcloudFailed, DryRunRefused, HostileNameError) as exc:
            fields = {"controllers": exc.names} if isinstance(exc, TooManyControllers) else {}
            ctx.log.error("cluster_start_failed", mode="gcp", error=str(exc), **fields)
            return ChildExit.ERROR
        forward = ssh_forward(login(ssh, settings).login_argv(), ssh.address, settings.controller_port)
        tunnel = Tunnel(forward, ctx.groups, ctx.log, controller_health(target, ctx.deadline),
                        settings.controller_port, tunnel_env(os.environ))  # fmt: skip
        return serve(ctx, tunnel, boot, started, "gcp", controller_vm=controller.name, zone=controller.zone,
                     control_dir=str(control_dir))  # fmt: skip
    finally:
        close_masters(ctx, control_dir)


def close_masters(ctx: ChildContext, control_dir: Path) -> None:
    """`ssh -O exit` for every control socket left, then the directory goes."""
    for socket_path in sorted(control_dir.glob("*")):
        argv = ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "iris-smoke-master"]
        proc = ctx.groups.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_exit(proc, Deadline.after(MASTER_EXIT_TIMEOUT_S))
        ctx.groups.stop(proc, 0)
        ctx.log.info("ssh_master_closed", socket=socket_path.name)
    shutil.rmtree(control_dir, ignore_errors=True)
