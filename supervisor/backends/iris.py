"""`--cluster iris`: a running real Iris, attached to at `--controller` or reached through
`[iris] tunnel_command` (the cluster child runs the forward); logs followed in its log service."""

import shutil

from common.controller_target import ApiKind
from common.errors import UsageError
from supervisor.backends.base import Backend, ClusterChild, RunView
from supervisor.children import ChildSpec
from supervisor.config import RunConfig
from supervisor.streams import Host
from workers.child_args import LogReaderArgs
from workers.transports import IrisLogTransport, Transport

LOG_READER = "log_reader"  # the child's name and role


class IrisBackend(Backend):
    api = ApiKind.IRIS
    iris_controller = True

    def check(self, config: RunConfig) -> None:
        command = config.iris.tunnel_command
        if command and config.attached:
            raise UsageError("iris.tunnel_command: the run reaches Iris through its tunnel; drop --controller "
                             "(cluster.controller), or drop iris.tunnel_command to attach directly")  # fmt: skip
        if command and shutil.which(command[0]) is None:
            raise UsageError(f"iris.tunnel_command: {command[0]!r} is not on PATH (install it, or give its full path)")
        if not config.attached and config.tunnel is None:
            raise UsageError("--cluster iris: attaches to a running Iris controller; give --controller "
                             "http://HOST:PORT, or reach it through [iris] tunnel_command")  # fmt: skip

    def cluster_child(self, config: RunConfig) -> ClusterChild:
        if config.tunnel is not None:
            return ClusterChild("tunnel", entrypoint="workers.iris_tunnel:main", reach_only=True)
        return ClusterChild("attach", reach_only=True)

    def log_reader(self, run: RunView) -> ChildSpec:
        return iris_log_reader(run)

    def transport(self, run: RunView, host: Host) -> Transport:
        return iris_log_transport(run)


def iris_log_reader(run: RunView) -> ChildSpec:
    """One reader of the log service for the run (workers.log_reader); every stream subscribes to it."""
    args = LogReaderArgs(run.target, run.log_reader, IrisLogTransport.poll_interval_s)
    return ChildSpec(name=LOG_READER, role=LOG_READER, entrypoint="workers.log_reader:main", preload=True, args=args)


def iris_log_transport(run: RunView) -> IrisLogTransport:
    """Iris keeps worker and controller logs in its log service: follow them there, through the run's reader."""
    iris = run.config.iris
    return IrisLogTransport(
        run.target.address, iris.token_file or None, iris.token_env or None, proxy_token=iris.proxy_token,
        max_page_bytes=iris.max_log_page_bytes, reader=run.log_reader,
    )  # fmt: skip


BACKEND = IrisBackend()
