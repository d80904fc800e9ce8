"""`--cluster iris-local`: a real Iris local cluster (`iris cluster start`), started and stopped by the run."""

import shutil
from pathlib import Path

from common.controller_target import ApiKind
from common.errors import UsageError
from supervisor.backends.base import IRIS_STOP_GRACE_S, Backend, ClusterChild, RunView, no_tunnel
from supervisor.backends.iris import iris_log_reader, iris_log_transport
from supervisor.children import ChildSpec
from supervisor.config import RunConfig
from supervisor.streams import Host
from workers import iris_local
from workers.transports import Transport


class IrisLocalBackend(Backend):
    api = ApiKind.IRIS
    iris_controller = True
    discovery_interval_s = 1.0
    monitor_interval_s = 0.25
    # Its controller would outlive the run on a TCP port with no auth (anyone on the host
    # could run jobs as us), its files live in the run directory, and its stop can hang.
    keep_refused = (
        "--keep: an iris-local cluster stops with its run; for one that stays up, start a standing Iris "
        "(`iris --config YAML cluster start`) and attach to it with --cluster iris --controller http://HOST:PORT"
    )

    def check(self, config: RunConfig) -> None:
        no_tunnel(config)
        if config.attached:
            raise UsageError(
                "--cluster iris-local: starts its own cluster; to attach use --cluster iris --controller URL"
            )
        if shutil.which(config.iris.bin) is None:
            raise UsageError(
                f"--iris-bin: {config.iris.bin!r} is not an executable (install marin-iris in a Python 3.12 venv: "
                "bash scripts/install_iris.sh prints the path)"
            )
        if config.iris.config and not Path(config.iris.config).is_file():
            raise UsageError(f"--iris-config: {config.iris.config} is not a readable file")

    def cluster_child(self, config: RunConfig) -> ClusterChild:
        return ClusterChild("iris-local", stop_grace_s=IRIS_STOP_GRACE_S, owned=True)

    def log_reader(self, run: RunView) -> ChildSpec:
        return iris_log_reader(run)

    def transport(self, run: RunView, host: Host) -> Transport:
        return iris_log_transport(run)

    def region_attribute(self, config: RunConfig) -> str:
        """The run's own Iris config names its regions `pool`; a user's config says nothing here."""
        return "" if config.iris.config else iris_local.REGION_ATTRIBUTE


BACKEND = IrisLocalBackend()
