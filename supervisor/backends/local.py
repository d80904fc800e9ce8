"""`--cluster local`: the embedded local cluster, started by the run (kept with `--keep`) or attached to."""

from supervisor.backends.base import Backend, ClusterChild, RunView
from supervisor.config import RunConfig
from supervisor.streams import Host
from workers.transports import LocalTransport, Transport


class LocalBackend(Backend):
    # Listing it is a local RPC; a pending reason lasts as long as a local boot.
    discovery_interval_s = 1.0
    monitor_interval_s = 0.25

    def cluster_child(self, config: RunConfig) -> ClusterChild:
        if config.attached:
            return ClusterChild("attach", reach_only=True)
        return ClusterChild("keep", owned=True) if config.keep else ClusterChild("start", owned=True)

    def transport(self, run: RunView, host: Host) -> Transport:
        # The cluster's container logs are files in its state directory (READY says where).
        assert run.cluster is not None, "a stream starts once the cluster said READY"
        return LocalTransport(state_dir=run.cluster.state_dir)

    def sweeps_leftovers(self, config: RunConfig) -> bool:
        return not config.attached


BACKEND = LocalBackend()
