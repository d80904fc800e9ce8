"""`--cluster ssh`: a running embedded-API cluster, attached to; its hosts' logs followed over ssh."""

import shutil

from common.errors import UsageError
from supervisor.backends.base import Backend, ClusterChild, RunView, no_tunnel
from supervisor.children import ChildSpec
from supervisor.config import RunConfig, SshHost
from supervisor.streams import Host
from workers.hosts import Role
from workers.messages import HostEntry
from workers.transports import Transport


class SshBackend(Backend):
    tcp_controller = True  # beside the private socket, its controller may be at HOST:PORT

    def check(self, config: RunConfig) -> None:
        if shutil.which("ssh") is None:
            raise UsageError("--cluster ssh: the `ssh` client is not on PATH (apt-get install openssh-client)")
        if not config.attached:
            raise UsageError(
                "--cluster ssh: attaches to a running cluster; give its --controller ADDR (or cluster.controller)"
            )
        no_tunnel(config)

    def cluster_child(self, config: RunConfig) -> ClusterChild:
        return ClusterChild("attach", reach_only=True)

    def discovery(self, run: RunView) -> ChildSpec | list[Host]:
        """`[[ssh.hosts]]` when configured (no discovery child), else the controller's listing."""
        if run.config.ssh.hosts:
            return [static_host(h) for h in run.config.ssh.hosts]
        return super().discovery(run)

    def transport(self, run: RunView, host: Host) -> Transport:
        return run.config.ssh.transport


def static_host(host: SshHost) -> HostEntry:
    role = Role(host.role)
    container = "iris-controller" if role is Role.CONTROLLER else "iris-worker"
    return HostEntry(host.vm, host.host, role, host.address, "", container)


BACKEND = SshBackend()
