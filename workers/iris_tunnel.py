"""The `cluster` child for `--cluster iris` with `[iris] tunnel_command`: a remote Iris through the user's forward.

args: `workers.child_args.ClusterArgs` (tunnel: the argv template and the controller's port;
target: ControllerTarget, Iris API, no address yet; boot_timeout_s).

The run reaches a controller it cannot see directly (behind a bastion, inside a Kubernetes
cluster) by running the user's own forward, e.g.

    ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", "{port}:localhost:{remote_port}", "bastion-host"]
    ["kubectl", "port-forward", "svc/iris-controller-svc", "{port}:{remote_port}"]

with `{port}` a free local port this child picks and `{remote_port}` `[iris] controller_port`.
It is the same supervised tunnel as a GCP run's (`workers.tunnel`): healthy once Iris's
`/health` answers through it within `--boot-timeout`, then READY with `http://127.0.0.1:<port>`,
the address every other child uses; reopened on that port when it drops, ended with the usual
escalation at the end. One that never comes up is `controller_unreachable` with its stderr.
Nothing of the cluster is started or stopped: like `--controller`, it outlives the run.
"""

import os
import time

from workers.child_args import ClusterArgs
from workers.runtime import ChildContext
from workers.tunnel import Tunnel, controller_health, serve, tunnel_env


def main(ctx: ChildContext) -> int:
    args: ClusterArgs = ctx.args
    assert args.tunnel is not None, "the supervisor gives a tunnel cluster child its command"
    started = time.monotonic()
    boot = ctx.deadline.within(args.boot_timeout_s)
    tunnel = Tunnel(args.tunnel.argv, ctx.groups, ctx.log, controller_health(args.target, ctx.deadline),
                    args.tunnel.remote_port, tunnel_env(os.environ))  # fmt: skip
    return serve(ctx, tunnel, boot, started, "tunnel")
