"""The cluster kinds, and the backend module of each: the one place that names them.

A kind's behaviour (its preflight checks, its cluster child, discovery, the streams'
transport, cleanup, default intervals) is its backend module's (`supervisor/backends/base.py`
is the interface); the run and preflight ask `backend_of(kind)`, config asks `intervals_of`,
and neither compares kinds. The modules are named here, not imported (as a child's entrypoint
is named): the backends read `RunConfig`, which names its kind with this enum, so this module
sits below config and loads a backend only when one is asked for.
"""

import enum
import functools
import importlib
from typing import Protocol, runtime_checkable


class ClusterKind(enum.StrEnum):
    LOCAL = "local"  # the embedded local cluster (our gRPC API)
    SSH = "ssh"  # an embedded-API cluster reached over ssh
    GCP = "gcp"  # TPU slices and VMs found with gcloud, the Iris controller through an ssh tunnel
    IRIS = "iris"  # attach to a real Iris controller (Connect over HTTP)
    IRIS_LOCAL = "iris-local"  # a real Iris local cluster, started and stopped by the run

    @property
    def real_iris(self) -> bool:
        """An Iris the run attaches to or starts itself (gcp's is an Iris too, behind its tunnel)."""
        return self in (ClusterKind.IRIS, ClusterKind.IRIS_LOCAL)


DEFAULT_KIND = ClusterKind.LOCAL

# Each kind's backend: a module whose `BACKEND` implements `supervisor.backends.base.Backend`.
BACKENDS = {
    ClusterKind.LOCAL: "supervisor.backends.local",
    ClusterKind.SSH: "supervisor.backends.ssh",
    ClusterKind.GCP: "supervisor.backends.gcp",
    ClusterKind.IRIS: "supervisor.backends.iris",
    ClusterKind.IRIS_LOCAL: "supervisor.backends.iris_local",
}


@runtime_checkable
class Intervals(Protocol):
    """What the run's config asks of a kind (every `Backend` has it): its default polling intervals."""

    @property
    def discovery_interval_s(self) -> float: ...

    @property
    def monitor_interval_s(self) -> float: ...


@functools.cache
def load(kind: ClusterKind) -> object:
    """The `BACKEND` of the module the registry names for `kind`."""
    return importlib.import_module(BACKENDS[kind]).BACKEND


def intervals_of(kind: ClusterKind) -> Intervals:
    backend = load(kind)
    if not isinstance(backend, Intervals):
        raise TypeError(f"{BACKENDS[kind]}.BACKEND has no default intervals")
    return backend
