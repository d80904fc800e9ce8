"""The interface every cluster kind implements, and the lookup of a kind's backend.

A backend answers, for its kind: the preflight checks beyond the common ones; the `cluster`
child (which mode of it, its entrypoint: the embedded or Iris cluster it starts, the
controller it attaches to, the tunnel it opens); discovery (a child, or a static host list);
the transport a host's stream follows its logs through; its cleanup steps; its default
intervals. It builds data (child specs, transports) and starts nothing: the run does.
Every kind serves every standard test; the tests child skips one a cluster cannot serve
from what the cluster offers (workers/smoke_tests/parity_tests.py), not from its kind. A
fleet check's call the controller cannot answer (the embedded one has no database, process
status or priority bands) is `not_served` with the reason the controller's adapter gives
(workers/controller/grpc_api.py): a fact of the wire (`api`), shared by the local and ssh kinds,
and said by the cluster at run time, so no backend keeps a list of what it cannot serve.
"""

import abc
from dataclasses import dataclass

from common.controller_target import ApiKind, ControllerTarget
from common.errors import UsageError
from supervisor import audit
from supervisor.backends.registry import BACKENDS, ClusterKind, load
from supervisor.children import ChildSpec
from supervisor.config import RunConfig
from supervisor.streams import Host
from workers.child_args import DiscoveryArgs
from workers.gcp.settings import GcpSettings
from workers.messages import ClusterReady
from workers.transports import Transport

CLUSTER_STOP_GRACE_S = 8.0  # the local cluster stops every VM host and its tasks first
IRIS_STOP_GRACE_S = 16.0  # a real Iris local cluster takes ~3 s to stop its workers and log server
CLUSTER_ENTRYPOINT = "workers.cluster:main"  # its modes: start, keep, attach, iris-local


@dataclass(frozen=True)
class ClusterChild:
    """The `cluster` child of a run: its mode (`ClusterArgs.mode`, READY's `mode`) and how it is run."""

    mode: str
    entrypoint: str = CLUSTER_ENTRYPOINT
    stop_grace_s: float = CLUSTER_STOP_GRACE_S
    # Started here and reached directly (not through a tunnel): a refused connection means gone.
    owned: bool = False
    # Nothing to start: a READY that never came means the controller never answered.
    reach_only: bool = False


@dataclass(frozen=True)
class RunView:
    """What a backend sees of a run whose cluster said READY."""

    config: RunConfig
    prefix: str  # the run's label prefix
    cluster: ClusterReady | None  # the cluster child's READY (None until it came)
    target: ControllerTarget  # the controller, at the address READY gave
    cluster_prefix: str  # the prefix that names the cluster's VMs
    log_reader: str = ""  # the abstract socket name of the run's log reader, if its kind has one

    @property
    def gcp(self) -> GcpSettings:
        return self.config.gcp.with_prefix(self.prefix)


@dataclass(frozen=True)
class Cleanup:
    """A child the run's cleanup starts after every other child stopped, and how long it may take."""

    spec: ChildSpec
    budget_s: float


class Backend(abc.ABC):
    api: ApiKind = ApiKind.EMBEDDED  # the controller's wire, for every child that talks to it
    # None in the config: how often discovery lists hosts, and the monitors poll.
    discovery_interval_s = 10.0
    monitor_interval_s = 1.0
    # `--controller`'s form: an Iris http(s) URL; or, beside the private socket, HOST:PORT.
    iris_controller = False
    tcp_controller = False
    keep_refused = ""  # why `--keep` cannot be honoured; "" = it can

    def check(self, config: RunConfig) -> None:
        """Preflight: what this kind needs (tools on PATH, settings), else UsageError naming the field."""
        no_tunnel(config)

    @abc.abstractmethod
    def cluster_child(self, config: RunConfig) -> ClusterChild: ...

    def discovery(self, run: RunView) -> ChildSpec | list[Host]:
        """The child that lists the cluster's hosts (or the hosts themselves, when they are configured)."""
        outage_s = run.config.verdict.controller_outage_s
        args = DiscoveryArgs(run.target, run.cluster_prefix, run.config.discovery_every_s, outage_s)
        return ChildSpec(name="discovery", role="discovery", entrypoint="workers.discovery:main", args=args)

    def log_reader(self, run: RunView) -> ChildSpec | None:
        """The run's one reader of the cluster's log service, which its streams subscribe to (Iris)."""
        return None

    @abc.abstractmethod
    def transport(self, run: RunView, host: Host) -> Transport:
        """How the stream of `host` (a discovery listing's entry) follows its container log."""

    def sweeps_leftovers(self, config: RunConfig) -> bool:
        """The run deletes what else runs under its prefix, at its start and end (its own local cluster)."""
        return False

    def cleanup(self, run: RunView, now: float) -> Cleanup | None:
        """A cleanup child, after every other child stopped (gcp: delete the prefix's resources)."""
        return None

    def region_attribute(self, config: RunConfig) -> str:
        """The worker attribute naming a region, when the suite's config does not say ("": `region`)."""
        return ""

    def kept(self, cluster_pid: int) -> bool:
        """What `--keep` left running, asked at the verdict: the cluster's process, if still alive."""
        return audit.kept_alive(cluster_pid)

    def keep_hint(self, prefix: str, address: str, pid: int) -> str:
        """How to reuse and stop what `--keep` left."""
        return (
            f"iris-smoke: local cluster kept running at {address} (prefix {prefix}, pid {pid});\n"
            f"  reuse it:  iris-smoke run --controller {address}\n"
            f"  stop it:   kill -TERM {pid}"
        )


def backend_of(kind: ClusterKind) -> Backend:
    """The backend of `kind`, from the module the registry names."""
    backend = load(kind)
    if not isinstance(backend, Backend):
        raise TypeError(f"{BACKENDS[kind]}.BACKEND is not a Backend")
    return backend


def no_tunnel(config: RunConfig) -> None:
    """`[iris] tunnel_command` is only for a remote Iris (`--cluster iris`)."""
    if config.iris.tunnel_command:
        raise UsageError(f"iris.tunnel_command: only for --cluster iris (a remote Iris through it), "
                         f"not --cluster {config.cluster}; drop it or use --cluster iris")  # fmt: skip
