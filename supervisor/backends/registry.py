"""The cluster kinds, and the backend module of each: the one place that names them.

A kind's behaviour (its preflight checks, its cluster child, discovery, the streams'
transport, cleanup, default intervals) is its backend module's (`supervisor/backends/base.py`
is the interface); the run, preflight and config ask `backend_of(kind)` and never compare
kinds. The modules are named, not imported, here (as a child's entrypoint is): the backends
read `RunConfig`, which itself names its kind with this enum, so this module imports nothing.
"""

import enum


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
